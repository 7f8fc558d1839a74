"""Node packs: discovered through entry points, filtered by the allow-list, duplicates refused."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest
from kizy_testpack.nodes import Add
from pydantic import BaseModel, Field

from gpu_workers.registry import DuplicateNodeType, NodePackError, NodeRegistry, UnknownNodeType
from gpu_workers.sdk import ImageRef, LoraSpec, ModelSpec, Node, NodeContext, Seed, port_type


def test_installed_pack_is_discovered_with_its_provenance() -> None:
    registry = NodeRegistry.from_entry_points()

    entry = registry.entry("make_image")
    assert (entry.pack, entry.pack_version) == ("kizy-testpack", "0.3.0")
    assert registry.get("add") is Add
    assert {"const_int", "add", "flaky", "slow_steps", "fail_always"} <= {e.type for e in registry.all()}


@pytest.mark.parametrize("allow", [["kizy-testpack"], ["KIZY_TESTPACK"], ["kizy.testpack", "kizy"]])
def test_allow_list_names_distributions_like_pip_does(allow: list[str]) -> None:
    assert "add" in NodeRegistry.from_entry_points(allow=allow)


def test_packs_outside_the_allow_list_are_not_loaded() -> None:
    registry = NodeRegistry.from_entry_points(allow=["some-other-pack"])
    assert "add" not in registry
    with pytest.raises(UnknownNodeType, match="no node type 'add' is installed"):
        registry.get("add")


def entry_point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group="kizy.nodes")


def test_a_duplicate_type_name_is_refused_naming_both_packs() -> None:
    points = [entry_point("main", "kizy_testpack.nodes"), entry_point("other", "kizy_testpack.duplicates")]
    with pytest.raises(DuplicateNodeType) as duplicate:
        NodeRegistry.from_entry_points(entry_points=points)
    message = str(duplicate.value)
    assert (
        "'add'" in message
        and "kizy_testpack.nodes.Add" in message
        and "kizy_testpack.duplicates.OtherAdd" in message
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kizy_testpack.nodes:NODES", "must name a module"),
        ("kizy_testpack.counters", "must define NODES"),
        ("kizy_testpack.not_here", "failed to import: ModuleNotFoundError"),
    ],
)
def test_a_malformed_entry_point_is_reported_with_its_pack(value: str, expected: str) -> None:
    with pytest.raises(NodePackError, match=expected):
        NodeRegistry.from_entry_points(entry_points=[entry_point("broken", value)])


def make_node(**overrides: Any) -> type[Node]:
    class Inputs(BaseModel):
        x: int = Field(default=0)

    class Outputs(BaseModel):
        y: int

    attrs: dict[str, Any] = {
        "type": "probe",
        "version": "1.0.0",
        "category": "testing",
        "title": "Probe",
        "description": "d",
        "Inputs": Inputs,
        "Outputs": Outputs,
        "run": lambda self, ctx, inputs: Outputs(y=inputs.x),
    }
    attrs.update(overrides)
    return type("Probe", (Node,), attrs)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"version": "1.0"}, "is not semantic"),
        ({"type": "Bad Name"}, "lowercase words"),
        ({"title": None}, "'title'"),
        ({"Outputs": dict}, "nested pydantic model 'Outputs'"),
    ],
)
def test_a_node_class_that_breaks_the_sdk_is_refused(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(NodePackError, match=expected):
        NodeRegistry.from_classes([make_node(**overrides)], pack="my-pack")


def test_a_port_of_an_unknown_type_is_refused() -> None:
    class Inputs(BaseModel):
        blob: dict[str, int]

    with pytest.raises(NodePackError, match="is not a port type"):
        NodeRegistry.from_classes([make_node(Inputs=Inputs)])


def test_describe_gives_schema_port_types_and_provenance() -> None:
    described = {d["type"]: d for d in NodeRegistry.from_entry_points(allow=["kizy-testpack"]).describe()}

    noise = described["noise_image"]
    assert noise["pack"] == "kizy-testpack" and noise["pack_version"] == "0.3.0"
    assert noise["version"] == "1.0.0" and noise["title"] == "Seeded colour" and noise["category"] == "image"
    assert noise["input_types"] == {"seed": "seed", "size": "int"}
    assert noise["output_types"] == {"image": "image"}
    assert noise["inputs"]["properties"]["seed"]["maximum"] == 2**32 - 1
    assert noise["inputs"]["properties"]["size"]["description"] == "Side in pixels."
    assert described["model_echo"]["input_types"] == {"model": "model", "extra_loras": "list[lora]"}


def test_port_type_names() -> None:
    class Inputs(BaseModel):
        image: ImageRef
        seed: Seed = 0
        model: ModelSpec | None = None
        loras: list[LoraSpec] = Field(default_factory=list)
        flag: bool = False
        ratio: float = 1.0
        text: str = ""

    assert {name: port_type(info) for name, info in Inputs.model_fields.items()} == {
        "image": "image",
        "seed": "seed",
        "model": "model",
        "loras": "list[lora]",
        "flag": "bool",
        "ratio": "float",
        "text": "string",
    }


def test_model_specs_are_hashable_values() -> None:
    spec = ModelSpec(ref="base", family="sd15", loras=(LoraSpec(ref="a", weight=0.5),))
    same = ModelSpec.model_validate({"ref": "base", "family": "sd15", "loras": [{"ref": "a", "weight": 0.5}]})
    assert spec == same and hash(spec) == hash(same)


class _Unused(Node):
    """Type-checks the documented way of writing a node (nested Inputs/Outputs, narrowed run)."""

    type: ClassVar[str] = "unused"
    version: ClassVar[str] = "0.1.0"
    category: ClassVar[str] = "testing"
    title: ClassVar[str] = "Unused"
    description: ClassVar[str] = "d"

    class Inputs(BaseModel):
        pass

    class Outputs(BaseModel):
        pass

    def run(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        return self.Outputs()
