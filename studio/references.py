"""Catalog references inside graphs: checked against what the workspace may use, then resolved to
model-store references (`local:`, `hf:`, `civitai:`, `artifact:`) before a graph leaves Django.

Where references live in a graph's literals:
- a `model` port (ModelSpec `{"ref", "family", "loras"}`) and a `lora` port (LoraSpec `{"ref", "weight"}`)
  name catalog ids;
- a string port marked `json_schema_extra={"kizy_reference": "model" | "lora"}` (e.g. `load_model.ref`)
  names a catalog id;
- a string port marked `{"kizy_reference": "asset"}` (ControlNet and upscaler weights) names a file the
  operator installed in the model store: only `local:` references are accepted from clients, so a
  request can never make the worker download arbitrary repositories or read another tenant's files.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from accounts.models import Workspace
from gpu_workers.graph import is_edge
from gpu_workers.registry import NodeRegistry

Resolver = Callable[[str, str], str]  # (kind, catalog id) -> store ref; raises LookupError with a message


@dataclass(frozen=True)
class LiteralRef:
    node: str
    port: str
    kind: str  # model | lora | asset
    ref: str
    path: tuple[Any, ...]  # where the ref string sits inside the port's literal value


def reference_ports(node_cls: Any) -> dict[str, str]:
    """Input ports of a node class that hold references, with their kind."""
    ports: dict[str, str] = {}
    types = node_cls.input_types()
    for name, field in node_cls.Inputs.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        kind = extra.get("kizy_reference")
        if kind in ("model", "lora", "asset"):
            ports[name] = str(kind)
        elif types.get(name) in ("model", "lora", "list[lora]"):
            ports[name] = types[name]
    return ports


def _refs_in(value: Any, kind: str) -> Iterator[tuple[str, str, tuple[Any, ...]]]:
    if kind in ("model", "lora", "asset") and isinstance(value, str):
        yield kind, value, ()
    elif kind == "model" and isinstance(value, dict):  # a ModelSpec literal
        if isinstance(value.get("ref"), str):
            yield "model", value["ref"], ("ref",)
        for index, lora in enumerate(value.get("loras") or []):
            if isinstance(lora, dict) and isinstance(lora.get("ref"), str):
                yield "lora", lora["ref"], ("loras", index, "ref")
    elif kind == "lora" and isinstance(value, dict) and isinstance(value.get("ref"), str):
        yield "lora", value["ref"], ("ref",)
    elif kind == "list[lora]" and isinstance(value, list):
        for index, item in enumerate(value):
            for inner_kind, ref, path in _refs_in(item, "lora"):
                yield inner_kind, ref, (index, *path)


def literal_refs(graph: Any, registry: NodeRegistry) -> Iterator[LiteralRef]:
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    for node_id, node in (nodes or {}).items() if isinstance(nodes, dict) else ():
        if not isinstance(node, dict) or node.get("type") not in registry:
            continue
        ports = reference_ports(registry.get(node["type"]))
        inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        for port, value in inputs.items():
            if port in ports and not is_edge(value):
                for kind, ref, path in _refs_in(value, ports[port]):
                    yield LiteralRef(node_id, port, kind, ref, path)


def resolve_asset(ref: str) -> str:
    if not ref.startswith("local:"):
        raise LookupError(f"{ref!r} is not an installed asset; use a local: reference of a file the operator "
                          "installed in the model store (for example local:realesrgan-x4plus).")
    return ref


def catalog_resolver(workspace: Workspace, known: dict[tuple[str, str], str] | None = None) -> Resolver:
    """Resolve a catalog id for this workspace; other workspaces' private entries are unknown (T3).

    Answers are remembered for the resolver's life (one request or one job); `known` seeds it with
    references the caller has already looked up.
    """
    memo: dict[tuple[str, str], str] = dict(known or {})

    def resolve(kind: str, ref: str) -> str:
        from . import catalog_bridge

        if (kind, ref) not in memo:
            if kind == "asset":
                memo[(kind, ref)] = resolve_asset(ref)
            elif kind == "model":
                memo[(kind, ref)] = catalog_bridge.store_ref_for_model(workspace=workspace, ref=ref)
            else:
                memo[(kind, ref)] = catalog_bridge.store_ref_for_lora(workspace=workspace, ref=ref)
        return memo[(kind, ref)]

    return resolve


def reference_problems(graph: Any, registry: NodeRegistry, resolve: Resolver) -> list[dict[str, Any]]:
    problems = []
    for item in literal_refs(graph, registry):
        try:
            resolve(item.kind, item.ref)
        except LookupError as exc:
            problems.append({"node": item.node, "port": item.port, "code": "unknown_reference",
                             "message": f'Node "{item.node}" input "{item.port}": {exc.args[0] if exc.args else exc}'})
    return problems


def resolve_graph(graph: dict[str, Any], registry: NodeRegistry, resolve: Resolver) -> dict[str, Any]:
    """A copy of the graph whose catalog ids are replaced by model-store references."""
    resolved = copy.deepcopy(graph)
    for item in literal_refs(graph, registry):
        inputs = resolved["nodes"][item.node]["inputs"]
        if not item.path:
            inputs[item.port] = resolve(item.kind, item.ref)
            continue
        container = inputs[item.port]
        for step in item.path[:-1]:
            container = container[step]
        container[item.path[-1]] = resolve(item.kind, item.ref)
    return resolved
