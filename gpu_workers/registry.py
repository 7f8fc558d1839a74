"""Which node types this worker can run, and where each came from.

Node packs are Python distributions that register in the ``kizy.nodes`` entry-point group
(CONVENTIONS 10), the project's own built-ins included. One form only, so a pack author has one
thing to learn:

    [project.entry-points."kizy.nodes"]
    <topic> = "<package>.<module>"

The module must define ``NODES``, a sequence of ``gpu_workers.sdk.Node`` subclasses. Listing them
explicitly (rather than scanning the module) means a helper class imported into the module is never
registered by accident. The pack name is the distribution's name; an operator allow-list
(``KIZY_NODE_PACKS`` on the Django side) decides which packs load. Two nodes with the same type name
are refused outright: silently preferring one would make a graph mean different things on
different workers.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from gpu_workers.sdk import InvalidNodeClass, Node, check_node_class

ENTRY_POINT_GROUP = "kizy.nodes"


class NodePackError(RuntimeError):
    """A pack's entry point could not be loaded or does not follow the ``NODES`` form."""


class DuplicateNodeType(NodePackError):
    """Two node classes claim the same type name."""


class UnknownNodeType(KeyError):
    def __str__(self) -> str:
        return f"no node type {self.args[0]!r} is installed"


@dataclass(frozen=True)
class RegisteredNode:
    """A node class with its provenance (recorded in results for reproducibility)."""

    cls: type[Node]
    pack: str
    pack_version: str

    @property
    def type(self) -> str:
        return self.cls.type

    def describe(self) -> dict[str, Any]:
        schema = self.cls.schema()
        return {
            "type": self.cls.type,
            "version": self.cls.version,
            "category": self.cls.category,
            "title": self.cls.title,
            "description": self.cls.description,
            "pack": self.pack,
            "pack_version": self.pack_version,
            "inputs": schema["inputs"],
            "outputs": schema["outputs"],
            "input_types": schema["input_types"],
            "output_types": schema["output_types"],
        }


class NodeRegistry:
    """Node types by name. Build with ``from_entry_points`` in production, ``from_classes`` in tests."""

    def __init__(self) -> None:
        self._nodes: dict[str, RegisteredNode] = {}

    def register(self, cls: type[Node], *, pack: str, pack_version: str) -> None:
        try:
            check_node_class(cls)
        except InvalidNodeClass as exc:
            raise NodePackError(f"pack {pack!r}: {exc}") from exc
        existing = self._nodes.get(cls.type)
        if existing is not None:
            if existing.cls is cls:
                return  # the same class listed twice (e.g. re-exported by two topic modules)
            raise DuplicateNodeType(
                f"node type {cls.type!r} is defined by both pack {existing.pack!r} "
                f"({existing.cls.__module__}.{existing.cls.__qualname__}) and pack {pack!r} "
                f"({cls.__module__}.{cls.__qualname__}); remove one of the packs from the allow-list"
            )
        self._nodes[cls.type] = RegisteredNode(cls=cls, pack=pack, pack_version=pack_version)

    @classmethod
    def from_classes(
        cls, classes: Iterable[type[Node]], *, pack: str = "local", pack_version: str = "0"
    ) -> NodeRegistry:
        registry = cls()
        for node_cls in classes:
            registry.register(node_cls, pack=pack, pack_version=pack_version)
        return registry

    @classmethod
    def from_entry_points(
        cls,
        allow: Collection[str] | None = None,
        *,
        entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
    ) -> NodeRegistry:
        """Load the packs installed in this environment.

        ``allow`` lists distribution names to load (``None`` loads every pack); names compare
        case-insensitively with '-' and '_' treated alike, as pip does.
        """
        registry = cls()
        allowed = None if allow is None else {_normalise(name) for name in allow}
        found = (
            entry_points
            if entry_points is not None
            else importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        )
        for entry_point in sorted(found, key=lambda ep: (_pack_name(ep), ep.name)):
            pack = _pack_name(entry_point)
            if allowed is not None and _normalise(pack) not in allowed:
                continue
            version = entry_point.dist.version if entry_point.dist is not None else "0"
            for node_cls in _load_nodes(entry_point, pack):
                registry.register(node_cls, pack=pack, pack_version=version)
        return registry

    def get(self, type_name: str) -> type[Node]:
        return self.entry(type_name).cls

    def entry(self, type_name: str) -> RegisteredNode:
        try:
            return self._nodes[type_name]
        except KeyError:
            raise UnknownNodeType(type_name) from None

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._nodes

    def all(self) -> list[RegisteredNode]:
        return [self._nodes[name] for name in sorted(self._nodes)]

    def describe(self) -> list[dict[str, Any]]:
        """The node catalog as served by ``GET /api/v1/nodes``."""
        return [entry.describe() for entry in self.all()]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _pack_name(entry_point: importlib.metadata.EntryPoint) -> str:
    return entry_point.dist.name if entry_point.dist is not None else entry_point.module


def _load_nodes(entry_point: importlib.metadata.EntryPoint, pack: str) -> list[type[Node]]:
    where = f"pack {pack!r} entry point {entry_point.name!r} ({entry_point.value})"
    try:
        loaded = entry_point.load()
    except Exception as exc:
        raise NodePackError(f"{where} failed to import: {type(exc).__name__}: {exc}") from exc
    if not isinstance(loaded, ModuleType):
        raise NodePackError(f"{where} must name a module (no ':attribute' part)")
    nodes = getattr(loaded, "NODES", None)
    if nodes is None or isinstance(nodes, str | bytes) or not isinstance(nodes, Iterable):
        raise NodePackError(f"{where}: module {loaded.__name__} must define NODES, a list of Node classes")
    result: list[type[Node]] = []
    for item in nodes:
        if not (isinstance(item, type) and issubclass(item, Node)):
            raise NodePackError(f"{where}: NODES contains {item!r}, which is not a Node subclass")
        result.append(item)
    return result
