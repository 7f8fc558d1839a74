"""Graph validation: every problem is reported, naming the node and port and saying what to fix."""

from __future__ import annotations

from typing import Any

import pytest

from gpu_workers.graph import ValidationIssue, topological_order, validate_graph
from gpu_workers.registry import NodeRegistry


def edge(node: str, output: str) -> dict[str, str]:
    return {"node": node, "output": output}


def codes(issues: list[ValidationIssue]) -> list[tuple[str, str | None, str | None]]:
    return [(issue["code"], issue["node"], issue["port"]) for issue in issues]


def only(issues: list[ValidationIssue]) -> ValidationIssue:
    assert len(issues) == 1, issues
    return issues[0]


VALID: dict[str, Any] = {
    "nodes": {
        "one": {"type": "const_int", "inputs": {"value": 1}},
        "two": {"type": "const_int", "inputs": {"value": 2}},
        "sum": {"type": "add", "inputs": {"a": edge("one", "value"), "b": edge("two", "value")}},
    },
    "outputs": ["sum"],
}


def test_a_valid_graph_has_no_issues(registry: NodeRegistry) -> None:
    assert validate_graph(VALID, registry) == []


@pytest.mark.parametrize(
    "graph",
    [
        [],
        {"nodes": {}, "outputs": ["a"]},
        {"nodes": {"a": {"type": "const_int", "inputs": {"value": 1}}}, "outputs": []},
        {"nodes": {"a": {"type": "const_int", "inputs": {"value": 1}}}, "outputs": ["a"], "extra": 1},
        {"nodes": {"a": "const_int"}, "outputs": ["a"]},
        {"nodes": {"a": {"inputs": {}}}, "outputs": ["a"]},
        {"nodes": {"a b/..": {"type": "const_int", "inputs": {"value": 1}}}, "outputs": ["a b/.."]},
        {"nodes": {"a": {"type": "add", "inputs": {"a": {"node": "x"}}}}, "outputs": ["a"]},
    ],
    ids=[
        "not-object",
        "no-nodes",
        "no-outputs",
        "unknown-key",
        "node-not-object",
        "no-type",
        "bad-id",
        "half-edge",
    ],
)
def test_bad_shape_is_invalid_graph(registry: NodeRegistry, graph: Any) -> None:
    issues = validate_graph(graph, registry)
    assert "invalid_graph" in [issue["code"] for issue in issues]
    assert all(issue["message"] for issue in issues)


def test_unknown_type_names_the_node_and_the_type(registry: NodeRegistry) -> None:
    graph = {"nodes": {"up": {"type": "upscale_9000", "inputs": {}}}, "outputs": ["up"]}
    issue = only(validate_graph(graph, registry))
    assert (issue["code"], issue["node"]) == ("unknown_type", "up")
    assert "upscale_9000" in issue["message"] and "GET /api/v1/nodes" in issue["message"]


def test_unknown_port_lists_the_real_inputs(registry: NodeRegistry) -> None:
    graph = {"nodes": {"n": {"type": "const_int", "inputs": {"value": 1, "valu": 2}}}, "outputs": ["n"]}
    issue = only(validate_graph(graph, registry))
    assert codes([issue]) == [("unknown_port", "n", "valu")]
    assert "its inputs are: value" in issue["message"]


def test_missing_required_input(registry: NodeRegistry) -> None:
    graph = {"nodes": {"sum": {"type": "add", "inputs": {"b": 1}}}, "outputs": ["sum"]}
    issue = only(validate_graph(graph, registry))
    assert codes([issue]) == [("missing_input", "sum", "a")]
    assert "connect it" in issue["message"]


def test_edge_of_the_wrong_type_is_a_type_mismatch(registry: NodeRegistry) -> None:
    graph = {
        "nodes": {
            "img": {"type": "make_image", "inputs": {}},
            "sum": {"type": "add", "inputs": {"a": edge("img", "image")}},
        },
        "outputs": ["sum"],
    }
    issue = only(validate_graph(graph, registry))
    assert codes([issue]) == [("type_mismatch", "sum", "a")]
    assert "expects int" in issue["message"] and "gives image" in issue["message"]


def test_int_edges_may_feed_float_and_seed_ports(registry: NodeRegistry) -> None:
    graph = {
        "nodes": {
            "n": {"type": "const_int", "inputs": {"value": 3}},
            "x": {"type": "scale", "inputs": {"x": edge("n", "value")}},
            "img": {"type": "noise_image", "inputs": {"seed": edge("n", "value")}},
        },
        "outputs": ["x", "img"],
    }
    assert validate_graph(graph, registry) == []


def test_literal_out_of_bounds_quotes_the_bound(registry: NodeRegistry) -> None:
    graph = {"nodes": {"n": {"type": "const_int", "inputs": {"value": 2_000_000}}}, "outputs": ["n"]}
    issue = only(validate_graph(graph, registry))
    assert codes([issue]) == [("out_of_bounds", "n", "value")]
    assert "less than or equal to 1000000" in issue["message"] and "2000000" in issue["message"]


@pytest.mark.parametrize(
    ("node", "port", "value"),
    [
        ("const_int", "value", "three"),
        ("make_image", "color", "red"),
        ("invert_image", "image", {"key": "x"}),
    ],
)
def test_literal_of_the_wrong_kind_is_invalid_value(
    registry: NodeRegistry, node: str, port: str, value: Any
) -> None:
    graph = {"nodes": {"n": {"type": node, "inputs": {port: value}}}, "outputs": ["n"]}
    issue = only(validate_graph(graph, registry))
    assert codes([issue]) == [("invalid_value", "n", port)]


def test_seed_literal_is_bounded(registry: NodeRegistry) -> None:
    graph = {"nodes": {"n": {"type": "noise_image", "inputs": {"seed": 2**32}}}, "outputs": ["n"]}
    assert codes(validate_graph(graph, registry)) == [("out_of_bounds", "n", "seed")]


def test_cycle_names_the_nodes(registry: NodeRegistry) -> None:
    graph = {
        "nodes": {
            "start": {"type": "const_int", "inputs": {"value": 1}},
            "a": {"type": "add", "inputs": {"a": edge("start", "value"), "b": edge("b", "sum")}},
            "b": {"type": "add", "inputs": {"a": edge("a", "sum")}},
            "self": {"type": "add", "inputs": {"a": edge("self", "sum")}},
        },
        "outputs": ["b", "self"],
    }
    issues = validate_graph(graph, registry)
    assert codes(issues) == [("cycle", "a", None), ("cycle", "self", None)]
    assert '"a" -> "b" -> "a"' in issues[0]["message"]


def test_output_naming_no_node_is_unknown_output(registry: NodeRegistry) -> None:
    graph = {**VALID, "outputs": ["sum", "total"]}
    issue = only(validate_graph(graph, registry))
    assert (issue["code"], issue["node"]) == ("unknown_output", "total")


def test_edge_to_missing_node_or_output_is_dangling(registry: NodeRegistry) -> None:
    graph = {
        "nodes": {
            "one": {"type": "const_int", "inputs": {"value": 1}},
            "sum": {"type": "add", "inputs": {"a": edge("ghost", "value"), "b": edge("one", "total")}},
        },
        "outputs": ["sum"],
    }
    issues = validate_graph(graph, registry)
    assert codes(issues) == [("dangling_reference", "sum", "a"), ("dangling_reference", "sum", "b")]
    assert '"ghost", which does not exist' in issues[0]["message"]
    assert "its outputs are: value" in issues[1]["message"]


def test_reference_checker_sees_models_and_loras(registry: NodeRegistry) -> None:
    seen: list[tuple[str, str]] = []

    def checker(port_type: str, ref: str) -> str | None:
        seen.append((port_type, ref))
        return None if ref.startswith("ok") else "is not in your catalog; pick an installed model"

    graph = {
        "nodes": {
            "m": {
                "type": "model_echo",
                "inputs": {
                    "model": {
                        "ref": "ok-base",
                        "family": "sd15",
                        "loras": [{"ref": "gone-lora", "weight": 0.5}],
                    },
                    "extra_loras": [{"ref": "ok-lora", "weight": 1.0}, {"ref": "nope"}],
                },
            }
        },
        "outputs": ["m"],
    }
    issues = validate_graph(graph, registry, reference_checker=checker)
    assert seen == [("model", "ok-base"), ("lora", "gone-lora"), ("lora", "ok-lora"), ("lora", "nope")]
    assert codes(issues) == [("unknown_reference", "m", "model"), ("unknown_reference", "m", "extra_loras")]
    assert 'lora "gone-lora": is not in your catalog' in issues[0]["message"]


def test_all_problems_are_reported_at_once(registry: NodeRegistry) -> None:
    graph = {
        "nodes": {
            "one": {"type": "const_int", "inputs": {"value": -5_000_000}},
            "what": {"type": "no_such_node", "inputs": {}},
            "sum": {"type": "add", "inputs": {"b": edge("one", "value"), "c": 1}},
            "img": {"type": "invert_image", "inputs": {"image": edge("one", "value")}},
        },
        "outputs": ["sum", "img", "missing"],
    }
    assert sorted(codes(validate_graph(graph, registry)), key=str) == sorted(
        [
            ("out_of_bounds", "one", "value"),
            ("unknown_type", "what", None),
            ("unknown_port", "sum", "c"),
            ("missing_input", "sum", "a"),
            ("type_mismatch", "img", "image"),
            ("unknown_output", "missing", None),
        ],
        key=str,
    )


def test_topological_order_puts_sources_first_and_keeps_graph_order() -> None:
    graph = {
        "nodes": {
            "c": {"type": "add", "inputs": {"a": edge("b", "sum"), "b": edge("a", "value")}},
            "b": {"type": "add", "inputs": {"a": edge("a", "value")}},
            "a": {"type": "const_int", "inputs": {"value": 1}},
            "z": {"type": "const_int", "inputs": {"value": 1}},
        },
        "outputs": ["c"],
    }
    assert topological_order(graph) == ["a", "b", "c", "z"]


def test_literal_files_must_belong_to_the_workspace(registry: NodeRegistry) -> None:
    ref = {"key": f"ws/other/artifacts/{'a' * 64}.png", "sha256": "a" * 64, "width": 8, "height": 8}
    graph = {"nodes": {"inv": {"type": "invert_image", "inputs": {"image": ref}}}, "outputs": ["inv"]}

    assert validate_graph(graph, registry) == []
    issue = only(validate_graph(graph, registry, workspace_id="mine"))
    assert codes([issue]) == [("invalid_value", "inv", "image")]
    assert "outside this workspace" in issue["message"]
