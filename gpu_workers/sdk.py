"""The node SDK: what a node author (built-in or third-party pack) writes against.

A node is a small typed class (CONVENTIONS 7): a type name, a semantic version, pydantic ``Inputs``
and ``Outputs`` models whose fields are the ports, and one ``run(ctx, inputs) -> outputs``. Nodes see
the world only through ``NodeContext`` (CONVENTIONS 8): artifacts, models, progress, cancellation.

Port values are small, hashable, JSON-able references. A model port carries a ``ModelSpec`` (base
model reference plus stacked LoRAs), never a loaded pipeline: that keeps checkpoint keys
deterministic and lets the graph cross process boundaries; a generation node asks
``ctx.models.pipeline(spec, task)`` for the warm pipeline.
"""

from __future__ import annotations

import builtins
import enum
import hashlib
import io
import re
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from gpu_workers.artifacts import (
    ArtifactStore,
    InvalidArtifactKey,
    artifact_key,
    belongs_to_workspace,
    check_key,
)

# --------------------------------------------------------------------------------------------------
# Errors


class NodeError(Exception):
    """A node failed; the message names the node and says what went wrong, in words for users.

    The executor fills ``states`` (per-node status and timings, JSON-able) before re-raising, so the
    caller can show which nodes finished.
    """

    def __init__(self, node_id: str | None, message: str, *, node_type: str | None = None) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.node_type = node_type
        self.message = message
        self.states: dict[str, dict[str, Any]] = {}


class TransientNodeError(Exception):
    """Raised by a node for a failure worth retrying (network blip, CUDA OOM after cache eviction)."""


class JobCanceled(Exception):
    """The job was canceled; raised by ``ctx.check_cancelled()`` and propagated by the executor."""

    def __init__(self, message: str = "the job was canceled") -> None:
        super().__init__(message)
        self.states: dict[str, dict[str, Any]] = {}


class GraphValidationError(Exception):
    """The graph cannot run; ``errors`` lists every problem (see ``graph.validate_graph``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        summary = "; ".join(str(e.get("message", "")) for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        super().__init__(f"the graph is not valid: {summary}{more}")


class InvalidNodeClass(TypeError):
    """A node class does not follow the SDK (bad type name, version, ports)."""


# --------------------------------------------------------------------------------------------------
# Port value types


class ArtifactRef(BaseModel):
    """Base of every stored-bytes port value: where the bytes are and what they hash to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="Storage key of the bytes, under the workspace prefix.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the stored bytes.")


class ImageRef(ArtifactRef):
    """A stored PNG image."""

    width: int = Field(ge=1)
    height: int = Field(ge=1)


class MaskRef(ArtifactRef):
    """A stored single-channel (L) PNG: white = change, black = keep."""

    width: int = Field(ge=1)
    height: int = Field(ge=1)


class VideoRef(ArtifactRef):
    """A stored video file (MP4 unless the producing node says otherwise)."""

    frames: int = Field(ge=1)
    fps: float = Field(gt=0)
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class LatentRef(ArtifactRef):
    """Stored latents (a safetensors file); only meaningful to nodes of the same model family."""


class ConditioningRef(ArtifactRef):
    """Stored text-encoder outputs (a safetensors file), so prompts are encoded once per graph."""


class LoraSpec(BaseModel):
    """One LoRA adapter to stack on a base model, by catalog reference, with its strength."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: str = Field(min_length=1, description="Catalog or store reference of the LoRA file.")
    weight: float = Field(default=1.0, ge=-4.0, le=4.0, description="Strength of the adapter.")
    sha256: str = Field(
        default="",
        max_length=64,
        description="SHA-256 of the LoRA file, filled in by apply_lora (part of checkpoint keys).",
    )


class ModelSpec(BaseModel):
    """A base model plus stacked LoRAs: what a generation node should run, not a loaded pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ref: str = Field(min_length=1, description="Catalog or store reference of the base model.")
    family: str = Field(min_length=1, description="Architecture family, e.g. 'sd15', 'sdxl', 'flux'.")
    loras: tuple[LoraSpec, ...] = Field(default=(), description="LoRAs applied in order.")
    sha256: str = Field(
        default="",
        max_length=64,
        description=(
            "SHA-256 of the base weights, filled in by load_model. It is part of every downstream "
            "checkpoint key, so replacing the file behind a reference never serves outputs of the old one."
        ),
    )


@dataclass(frozen=True)
class PortType:
    """Marker in ``Annotated[...]`` that overrides the port type derived from the Python type."""

    name: str


Seed = Annotated[int, Field(ge=0, le=2**32 - 1), PortType("seed")]
"""A generator seed. Typed separately from ``int`` so the UI can offer "randomize" and the
reproducibility record can list it."""

# --------------------------------------------------------------------------------------------------
# Port type vocabulary

SCALAR_PORT_TYPES: dict[Any, str] = {
    ImageRef: "image",
    VideoRef: "video",
    MaskRef: "mask",
    LatentRef: "latent",
    ConditioningRef: "conditioning",
    ModelSpec: "model",
    LoraSpec: "lora",
    str: "string",
    int: "int",
    float: "float",
    bool: "bool",
}
BASE_PORT_TYPES: frozenset[str] = frozenset([*SCALAR_PORT_TYPES.values(), "seed"])
PORT_TYPES: frozenset[str] = BASE_PORT_TYPES | {f"list[{name}]" for name in BASE_PORT_TYPES}
REFERENCE_PORT_TYPES: frozenset[str] = frozenset({"model", "lora", "list[lora]"})
"""Ports whose literal values name catalog entries; validation asks the reference checker about them."""


class UnsupportedPortType(InvalidNodeClass):
    """A field's annotation maps to no port type of the vocabulary."""


def _port_type_of_annotation(annotation: Any, metadata: list[Any]) -> str:
    for item in metadata:
        if isinstance(item, PortType):
            if item.name not in PORT_TYPES:
                raise UnsupportedPortType(f"unknown port type {item.name!r}")
            return item.name
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *extra = typing.get_args(annotation)
        return _port_type_of_annotation(inner, [*extra, *metadata])
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:  # Optional[X] is X: the port may simply be left unconnected
            return _port_type_of_annotation(members[0], [])
    if origin is Literal and all(isinstance(value, str) for value in typing.get_args(annotation)):
        return "string"
    if origin in (list, tuple):
        args = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
        if len(args) == 1:
            inner = _port_type_of_annotation(args[0], [])
            if inner.startswith("list["):
                raise UnsupportedPortType("nested lists are not a port type")
            return f"list[{inner}]"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum) and issubclass(annotation, str):
        return "string"
    try:
        return SCALAR_PORT_TYPES[annotation]
    except (KeyError, TypeError):
        raise UnsupportedPortType(f"{annotation!r} is not a port type") from None


def port_type(field_info: FieldInfo) -> str:
    """The public port type name of a pydantic field, e.g. ``image``, ``seed``, ``list[lora]``."""
    return _port_type_of_annotation(field_info.annotation, list(field_info.metadata))


def can_connect(source: str, target: str) -> bool:
    """Whether an edge may carry a ``source``-typed output into a ``target``-typed input.

    Exact match, plus the lossless numeric widenings users expect: int <-> seed, int/seed -> float.
    """
    if source == target:
        return True
    return (source, target) in {("int", "seed"), ("seed", "int"), ("int", "float"), ("seed", "float")}


# --------------------------------------------------------------------------------------------------
# Context


@runtime_checkable
class ModelProvider(Protocol):
    """What nodes need from the model store / pipeline cache.

    A provider may also offer ``describe(spec) -> dict`` (file hashes, revisions); the executor puts
    its answer in the job's reproducibility record when present.
    """

    def pipeline(self, spec: ModelSpec, task: str) -> Any: ...

    def resolve(self, ref: str) -> Path: ...


class NoModels:
    """Provider for contexts that run no model (tests, CPU-only packs): every request fails clearly."""

    def pipeline(self, spec: ModelSpec, task: str) -> Any:
        raise LookupError(f"no model store is configured on this worker (asked for {spec.ref!r})")

    def resolve(self, ref: str) -> Path:
        raise LookupError(f"no model store is configured on this worker (asked for {ref!r})")


class EventSink(Protocol):
    """Where progress goes. The Celery task implements it over the channel layer and the job row."""

    def node_started(self, node_id: str, type: str, title: str) -> None: ...

    def node_finished(self, node_id: str, cached: bool, seconds: float) -> None: ...

    def step(self, node_id: str, i: int, n: int, preview_png: bytes | None) -> None: ...

    def log(self, node_id: str, message: str) -> None: ...


class NullEventSink:
    """Drops every event."""

    def node_started(self, node_id: str, type: str, title: str) -> None:
        return None

    def node_finished(self, node_id: str, cached: bool, seconds: float) -> None:
        return None

    def step(self, node_id: str, i: int, n: int, preview_png: bytes | None) -> None:
        return None

    def log(self, node_id: str, message: str) -> None:
        return None


@dataclass
class RecordingEventSink:
    """Keeps every event as a tuple, in order; for tests on either side of the project."""

    events: list[tuple[Any, ...]] = field(default_factory=list)

    def node_started(self, node_id: str, type: str, title: str) -> None:
        self.events.append(("node_started", node_id, type, title))

    def node_finished(self, node_id: str, cached: bool, seconds: float) -> None:
        self.events.append(("node_finished", node_id, cached, seconds))

    def step(self, node_id: str, i: int, n: int, preview_png: bytes | None) -> None:
        self.events.append(("step", node_id, i, n, preview_png))

    def log(self, node_id: str, message: str) -> None:
        self.events.append(("log", node_id, message))

    def of_kind(self, kind: str) -> list[tuple[Any, ...]]:
        return [event for event in self.events if event[0] == kind]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes with no metadata: no EXIF, text chunks or ICC profile (they can leak prompts,
    locations or the source file), and identical pixels give identical bytes."""
    if image.mode not in ("1", "L", "LA", "I", "P", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    clean = image.copy()
    clean.info = {}
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


PREVIEW_MAX_SIDE = 256


class NodeContext(ABC):
    """Everything a node may touch. Bound to one workspace, one job and one node.

    The concrete helpers below are built on ``artifacts`` and refuse keys outside the workspace, so
    a graph cannot smuggle in a reference to another tenant's file.
    """

    node_id: str
    workspace_id: str
    artifacts: ArtifactStore
    models: ModelProvider
    device: str

    @abstractmethod
    def progress(self, step: int, total: int, preview: Image.Image | None = None) -> None:
        """Report step ``step`` of ``total``; also a cancellation point (may raise ``JobCanceled``)."""

    @abstractmethod
    def check_cancelled(self) -> None:
        """Raise ``JobCanceled`` if the job was canceled. Call it between expensive steps."""

    @abstractmethod
    def log(self, message: str) -> None: ...

    def save_bytes(self, data: bytes, suffix: str, content_type: str) -> tuple[str, str]:
        """Store ``data`` content-addressed in this workspace; return ``(key, sha256)``."""
        digest = sha256_hex(data)
        key = artifact_key(self.workspace_id, digest, suffix)
        if not self.artifacts.exists(key):
            self.artifacts.put(key, data, content_type)
        return key, digest

    def load_bytes(self, key: str) -> bytes:
        check_key(key)
        if not belongs_to_workspace(key, self.workspace_id):
            raise InvalidArtifactKey(f"artifact {key!r} does not belong to this workspace")
        return self.artifacts.get(key)

    def save_image(self, image: Image.Image) -> ImageRef:
        key, digest = self.save_bytes(encode_png(image), "png", "image/png")
        return ImageRef(key=key, sha256=digest, width=image.width, height=image.height)

    def load_image(self, ref: ImageRef | MaskRef) -> Image.Image:
        data = self.load_bytes(ref.key)
        if sha256_hex(data) != ref.sha256:
            raise NodeError(self.node_id, f"stored image {ref.key!r} does not match its SHA-256")
        image = Image.open(io.BytesIO(data))
        image.load()
        return image


class ExecutionContext(NodeContext):
    """The context the executor builds for each node run, wired to an event sink and a cancel check."""

    def __init__(
        self,
        *,
        node_id: str,
        workspace_id: str,
        artifacts: ArtifactStore,
        models: ModelProvider | None = None,
        device: str = "cpu",
        events: EventSink | None = None,
        is_cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.node_id = node_id
        self.workspace_id = workspace_id
        self.artifacts = artifacts
        self.models = models if models is not None else NoModels()
        self.device = device
        self.events: EventSink = events if events is not None else NullEventSink()
        self._is_cancelled = is_cancelled or (lambda: False)

    def progress(self, step: int, total: int, preview: Image.Image | None = None) -> None:
        preview_png = None
        if preview is not None:
            small = preview.copy()
            small.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
            preview_png = encode_png(small)
        self.events.step(self.node_id, step, total, preview_png)
        self.check_cancelled()

    def check_cancelled(self) -> None:
        if self._is_cancelled():
            raise JobCanceled()

    def log(self, message: str) -> None:
        self.events.log(self.node_id, message)


# --------------------------------------------------------------------------------------------------
# Nodes

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


class Node(ABC):
    """Base class of every node type.

    Subclasses set the ClassVars, define nested ``Inputs``/``Outputs`` pydantic models (each field a
    port, with ``Field(description=..., ge=..., le=...)``) and implement ``run``. Bump ``version``
    whenever outputs for the same inputs change: it is part of the checkpoint key.
    """

    type: ClassVar[str]
    version: ClassVar[str]
    category: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    # ``builtins.type`` because the ClassVar ``type`` above shadows the builtin in this class body.
    Inputs: ClassVar[builtins.type[BaseModel]]
    Outputs: ClassVar[builtins.type[BaseModel]]

    retryable_errors: ClassVar[tuple[builtins.type[BaseException], ...]] = ()
    """Exceptions besides ``TransientNodeError`` that are worth another attempt."""
    max_retries: ClassVar[int] = 2
    """Extra attempts after the first for retryable errors."""
    cacheable: ClassVar[bool] = True
    """False for nodes whose output is not a function of their inputs (e.g. they read the clock);
    they are never reused across jobs, only resumed within the same job."""

    @abstractmethod
    def run(self, ctx: NodeContext, inputs: Any) -> BaseModel:
        """Compute the outputs. ``inputs`` is an instance of ``Inputs``; return an ``Outputs``."""

    @classmethod
    def input_types(cls) -> dict[str, str]:
        return {name: port_type(info) for name, info in cls.Inputs.model_fields.items()}

    @classmethod
    def output_types(cls) -> dict[str, str]:
        return {name: port_type(info) for name, info in cls.Outputs.model_fields.items()}

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """JSON Schema of the ports plus their port type names, for the API and the studio."""
        return {
            "inputs": cls.Inputs.model_json_schema(),
            "outputs": cls.Outputs.model_json_schema(),
            "input_types": cls.input_types(),
            "output_types": cls.output_types(),
        }


def check_node_class(cls: type[Node]) -> None:
    """Refuse a node class that would break the registry, validation or checkpoint keys."""
    where = getattr(cls, "__qualname__", repr(cls))
    if not (isinstance(cls, type) and issubclass(cls, Node)):
        raise InvalidNodeClass(f"{where} is not a subclass of gpu_workers.sdk.Node")
    for attr in ("type", "version", "category", "title", "description"):
        if not isinstance(getattr(cls, attr, None), str):
            raise InvalidNodeClass(f"node class {where} must set the string ClassVar {attr!r}")
    if not _TYPE_NAME.match(cls.type):
        raise InvalidNodeClass(
            f"node type {cls.type!r} ({where}) must be lowercase words joined by '_' or '.'"
        )
    if not _SEMVER.match(cls.version):
        raise InvalidNodeClass(f"node {cls.type!r} version {cls.version!r} is not semantic (e.g. 1.0.0)")
    for attr in ("Inputs", "Outputs"):
        model = getattr(cls, attr, None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise InvalidNodeClass(f"node {cls.type!r} must define a nested pydantic model {attr!r}")
    if getattr(cls, "__abstractmethods__", None):
        raise InvalidNodeClass(f"node {cls.type!r} does not implement run()")
    try:
        cls.input_types()
        cls.output_types()
    except UnsupportedPortType as exc:
        raise InvalidNodeClass(f"node {cls.type!r}: {exc}") from exc
