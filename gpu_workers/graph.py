"""The workflow graph: plain JSON, validated before anything is queued (CONVENTIONS 9).

Shape::

    {"nodes": {"<id>": {"type": "<node type>",
                        "inputs": {"<port>": <literal> | {"node": "<id>", "output": "<port>"}}}},
     "outputs": ["<id>", ...]}

A node may also carry ``"meta"`` (free-form, e.g. editor positions); so may the graph. An input is
either a literal or exactly one edge; a dict with exactly the keys ``node`` and ``output`` is an edge.

``validate_graph`` reports every problem at once, each naming the node and port at fault and saying
what to change, because a user fixing a graph one error per round-trip gives up.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Literal, TypedDict

from pydantic import TypeAdapter, ValidationError

from gpu_workers.artifacts import belongs_to_workspace
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import (
    REFERENCE_PORT_TYPES,
    ArtifactRef,
    GraphValidationError,
    LoraSpec,
    ModelSpec,
    Node,
    can_connect,
)

IssueCode = Literal[
    "invalid_graph",
    "unknown_type",
    "unknown_port",
    "missing_input",
    "type_mismatch",
    "out_of_bounds",
    "invalid_value",
    "cycle",
    "unknown_output",
    "dangling_reference",
    "unknown_reference",
]


class ValidationIssue(TypedDict):
    node: str | None
    port: str | None
    code: IssueCode
    message: str


ReferenceChecker = Callable[[str, str], str | None]
"""``(port_type, ref) -> error message or None``; called for every catalog reference in a literal
of a ``model``/``lora``/``list[lora]`` port (a model's stacked LoRAs are checked as ``lora``)."""

NODE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_GRAPH_KEYS = frozenset({"nodes", "outputs", "meta"})
_NODE_KEYS = frozenset({"type", "inputs", "meta"})
_BOUNDS_ERRORS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "multiple_of",
        "too_short",
        "too_long",
        "string_too_short",
        "string_too_long",
        "finite_number",
    }
)


def is_edge(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"node", "output"}


def iter_edges(graph: Mapping[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """Yield ``(target_node, target_port, source_node, source_port)`` for every well-formed edge."""
    for node_id, spec in graph.get("nodes", {}).items():
        inputs = spec.get("inputs", {}) if isinstance(spec, dict) else {}
        if not isinstance(inputs, dict):
            continue
        for port, value in inputs.items():
            if is_edge(value) and isinstance(value["node"], str) and isinstance(value["output"], str):
                yield node_id, port, value["node"], value["output"]


@functools.lru_cache(maxsize=4096)
def literal_adapter(node_cls: type[Node], port: str) -> TypeAdapter[Any]:
    """Validator for one input port with the field's bounds, shared by validation and the executor."""
    info = node_cls.Inputs.model_fields[port]
    annotation: Any = info.annotation
    if info.metadata:  # bounds and markers live beside the annotation on a FieldInfo
        annotation = Annotated[(annotation, *info.metadata)]
    return TypeAdapter(annotation)


def plain_pydantic_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        msg = str(error["msg"])
        if msg.startswith("Input should"):
            msg = "should" + msg[len("Input should") :]
        elif msg == "Field required":
            msg = "is required"
        loc = ".".join(str(part) for part in error["loc"])
        parts.append(f"field '{loc}' {msg}" if loc else msg)
    return "; ".join(parts)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Validator:
    def __init__(
        self,
        graph: object,
        registry: NodeRegistry,
        checker: ReferenceChecker | None,
        workspace_id: str | None,
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.checker = checker
        self.workspace_id = workspace_id
        self.issues: list[ValidationIssue] = []

    def add(self, code: IssueCode, message: str, node: str | None = None, port: str | None = None) -> None:
        self.issues.append({"node": node, "port": port, "code": code, "message": message})

    def run(self) -> list[ValidationIssue]:
        graph = self.graph
        if not isinstance(graph, dict):
            self.add("invalid_graph", 'The graph must be a JSON object with "nodes" and "outputs".')
            return self.issues
        for key in sorted(set(graph) - _GRAPH_KEYS):
            self.add(
                "invalid_graph", f'Unknown top-level key "{key}"; a graph has "nodes", "outputs", "meta".'
            )
        nodes = graph.get("nodes")
        if not isinstance(nodes, dict) or not nodes:
            self.add("invalid_graph", '"nodes" must be a non-empty object mapping node ids to nodes.')
            nodes = {}
        known: dict[str, type[Node]] = {}
        for node_id, spec in nodes.items():
            node_cls = self.check_node_shape(node_id, spec)
            if node_cls is not None:
                known[node_id] = node_cls
        for node_id, node_cls in known.items():
            self.check_inputs(node_id, node_cls, nodes, known)
        self.check_outputs(graph.get("outputs"), nodes)
        self.check_cycles(nodes)
        return self.issues

    def check_node_shape(self, node_id: str, spec: object) -> type[Node] | None:
        if not NODE_ID.match(node_id):
            self.add(
                "invalid_graph",
                f"Node id {_short(node_id)} is not allowed: use 1-64 letters, digits, '_', '-' or '.'.",
                node=node_id,
            )
        if not isinstance(spec, dict):
            self.add(
                "invalid_graph", f'Node "{node_id}" must be an object with "type" and "inputs".', node_id
            )
            return None
        for key in sorted(set(spec) - _NODE_KEYS):
            self.add(
                "invalid_graph",
                f'Node "{node_id}" has unknown key "{key}"; use "type" and "inputs".',
                node_id,
            )
        if not isinstance(spec.get("inputs", {}), dict):
            self.add(
                "invalid_graph", f'Node "{node_id}": "inputs" must be an object of port values.', node_id
            )
        type_name = spec.get("type")
        if not isinstance(type_name, str):
            self.add("invalid_graph", f'Node "{node_id}" needs a "type" naming a node type.', node_id)
            return None
        if type_name not in self.registry:
            self.add(
                "unknown_type",
                f'Node "{node_id}" has type "{type_name}", which is not installed; '
                "pick a type listed by GET /api/v1/nodes.",
                node_id,
            )
            return None
        return self.registry.get(type_name)

    def check_inputs(
        self, node_id: str, node_cls: type[Node], nodes: dict[str, Any], known: dict[str, type[Node]]
    ) -> None:
        inputs = nodes[node_id].get("inputs", {})
        if not isinstance(inputs, dict):
            inputs = {}
        fields = node_cls.Inputs.model_fields
        input_types = node_cls.input_types()
        for port, value in inputs.items():
            if port not in fields:
                self.add(
                    "unknown_port",
                    f'Node "{node_id}" ({node_cls.type}) has no input "{port}"; '
                    f"its inputs are: {', '.join(fields) or 'none'}.",
                    node_id,
                    port,
                )
            elif is_edge(value):
                self.check_edge(node_id, port, input_types[port], value, nodes, known)
            elif isinstance(value, dict) and "node" in value and "output" not in value:
                self.add(
                    "invalid_graph",
                    f'Node "{node_id}" input "{port}": an edge needs both "node" and "output".',
                    node_id,
                    port,
                )
            else:
                self.check_literal(node_id, node_cls, port, input_types[port], value)
        for port, info in fields.items():
            if info.is_required() and port not in inputs:
                self.add(
                    "missing_input",
                    f'Node "{node_id}" ({node_cls.type}) is missing required input "{port}" '
                    f"({input_types[port]}): connect it to another node's output or give a value.",
                    node_id,
                    port,
                )

    def check_edge(
        self,
        node_id: str,
        port: str,
        target_type: str,
        edge: dict[str, Any],
        nodes: dict[str, Any],
        known: dict[str, type[Node]],
    ) -> None:
        source, output = edge["node"], edge["output"]
        if not isinstance(source, str) or not isinstance(output, str):
            self.add(
                "invalid_graph",
                f'Node "{node_id}" input "{port}": "node" and "output" must be strings.',
                node_id,
                port,
            )
            return
        if source not in nodes:
            self.add(
                "dangling_reference",
                f'Node "{node_id}" input "{port}" is connected to node "{source}", which does not exist.',
                node_id,
                port,
            )
            return
        source_cls = known.get(source)
        if source_cls is None:
            return  # the source's own problem (unknown type, bad shape) is already reported
        output_types = source_cls.output_types()
        if output not in output_types:
            self.add(
                "dangling_reference",
                f'Node "{node_id}" input "{port}" is connected to output "{output}" of node "{source}" '
                f"({source_cls.type}), which has no such output; its outputs are: "
                f"{', '.join(output_types) or 'none'}.",
                node_id,
                port,
            )
            return
        source_type = output_types[output]
        if not can_connect(source_type, target_type):
            self.add(
                "type_mismatch",
                f'Node "{node_id}" input "{port}" expects {target_type} but is connected to output '
                f'"{output}" of node "{source}", which gives {source_type}.',
                node_id,
                port,
            )

    def check_literal(
        self, node_id: str, node_cls: type[Node], port: str, port_type: str, value: object
    ) -> None:
        try:
            validated = literal_adapter(node_cls, port).validate_python(value)
        except ValidationError as exc:
            bounds = all(error["type"] in _BOUNDS_ERRORS for error in exc.errors())
            self.add(
                "out_of_bounds" if bounds else "invalid_value",
                f'Node "{node_id}" input "{port}" {plain_pydantic_message(exc)}; got {_short(value)}.',
                node_id,
                port,
            )
            return
        if self.workspace_id is not None:
            for artifact in _artifact_refs(validated):
                if not belongs_to_workspace(artifact.key, self.workspace_id):
                    self.add(
                        "invalid_value",
                        f'Node "{node_id}" input "{port}" refers to a file outside this workspace '
                        f"({_short(artifact.key)}); upload the file to this workspace and use its key.",
                        node_id,
                        port,
                    )
        if self.checker is None or port_type not in REFERENCE_PORT_TYPES:
            return
        for kind, ref in _references(validated):
            problem = self.checker(kind, ref)
            if problem:
                self.add(
                    "unknown_reference",
                    f'Node "{node_id}" input "{port}": {kind} "{ref}": {problem}',
                    node_id,
                    port,
                )

    def check_outputs(self, outputs: object, nodes: dict[str, Any]) -> None:
        if not isinstance(outputs, list) or not outputs:
            self.add(
                "invalid_graph", '"outputs" must be a non-empty list of node ids whose results you want.'
            )
            return
        for entry in outputs:
            if not isinstance(entry, str):
                self.add(
                    "invalid_graph", f'"outputs" entries must be node ids (strings); got {_short(entry)}.'
                )
            elif entry not in nodes:
                self.add(
                    "unknown_output",
                    f'"outputs" names node "{entry}", which is not in the graph; list existing node ids.',
                    node=entry,
                )

    def check_cycles(self, nodes: dict[str, Any]) -> None:
        for cycle in find_cycles(nodes, list(iter_edges({"nodes": nodes}))):
            path = " -> ".join(f'"{n}"' for n in [*cycle, cycle[0]])
            self.add(
                "cycle",
                f"Nodes {path} form a cycle; a node cannot depend on its own output. "
                "Remove one of these edges.",
                node=cycle[0],
            )


def _references(value: object) -> Iterator[tuple[str, str]]:
    if isinstance(value, ModelSpec):
        yield "model", value.ref
        for lora in value.loras:
            yield "lora", lora.ref
    elif isinstance(value, LoraSpec):
        yield "lora", value.ref
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _references(item)


def _artifact_refs(value: object) -> Iterator[ArtifactRef]:
    if isinstance(value, ArtifactRef):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _artifact_refs(item)


def find_cycles(nodes: Mapping[str, Any], edges: list[tuple[str, str, str, str]]) -> list[list[str]]:
    """Strongly connected components that contain a cycle (Tarjan), each in a readable order."""
    successors: dict[str, list[str]] = {node: [] for node in nodes}
    for target, _port, source, _output in edges:
        if source in successors and target in successors:
            successors[source].append(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative Tarjan: graphs come from users, so recursion depth must not depend on them.
        work: list[tuple[str, Iterator[str]]] = [(start, iter(successors[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors[node]:
                    order = {n: i for i, n in enumerate(nodes)}
                    cycles.append(sorted(component, key=order.__getitem__))

    for node in nodes:
        if node not in index:
            visit(node)
    return cycles


def validate_graph(
    graph: object,
    registry: NodeRegistry,
    reference_checker: ReferenceChecker | None = None,
    *,
    workspace_id: str | None = None,
) -> list[ValidationIssue]:
    """Every problem with ``graph``; an empty list means it can be queued.

    With ``workspace_id``, literal artifact references (an ``ImageRef`` typed into a graph) must
    point inside that workspace; nodes refuse them at run time anyway, this says so before queuing.
    """
    return _Validator(graph, registry, reference_checker, workspace_id).run()


def ensure_valid(
    graph: object,
    registry: NodeRegistry,
    reference_checker: ReferenceChecker | None = None,
    *,
    workspace_id: str | None = None,
) -> None:
    issues = validate_graph(graph, registry, reference_checker, workspace_id=workspace_id)
    if issues:
        raise GraphValidationError([dict(issue) for issue in issues])


def topological_order(graph: Mapping[str, Any]) -> list[str]:
    """Node ids so that every node comes after the nodes it reads from; ties keep the graph's order."""
    nodes = graph["nodes"]
    position = {node: i for i, node in enumerate(nodes)}
    dependencies: dict[str, set[str]] = {node: set() for node in nodes}
    dependents: dict[str, set[str]] = {node: set() for node in nodes}
    for target, _port, source, _output in iter_edges(graph):
        if source in nodes:
            dependencies[target].add(source)
            dependents[source].add(target)
    ready = sorted((n for n, deps in dependencies.items() if not deps), key=position.__getitem__)
    order: list[str] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child in sorted(dependents[node], key=position.__getitem__):
            dependencies[child].discard(node)
            if not dependencies[child]:
                ready.append(child)
        ready.sort(key=position.__getitem__)
    if len(order) != len(nodes):
        cycles = find_cycles(nodes, list(iter_edges(graph)))
        raise GraphValidationError(
            [
                {"node": c[0], "port": None, "code": "cycle", "message": f"Nodes {c} form a cycle."}
                for c in cycles
            ]
        )
    return order


def required_nodes(graph: Mapping[str, Any]) -> set[str]:
    """The output nodes and everything they depend on; other nodes need not run."""
    upstream: dict[str, set[str]] = {node: set() for node in graph["nodes"]}
    for target, _port, source, _output in iter_edges(graph):
        upstream[target].add(source)
    needed: set[str] = set()
    pending = [node for node in graph["outputs"] if node in upstream]
    while pending:
        node = pending.pop()
        if node not in needed:
            needed.add(node)
            pending.extend(upstream[node])
    return needed
