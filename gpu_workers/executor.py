"""Runs a validated graph: ready nodes in dependency order, reusing stored outputs.

Every finished node leaves two records in the artifact store (DESIGN §4):

- a *checkpoint*, keyed by sha256 of (type, version, validated inputs), under the workspace. Inputs
  that came over edges are the upstream outputs themselves, and artifact references carry the
  SHA-256 of their bytes, so the key changes exactly when the content feeding the node changes.
  With ``reuse_outputs`` a later job with the same node and inputs skips it.
- a *job record* ``ws/<ws>/jobs/<job_id>/<node_id>.json``. A re-run of the same job (a Celery
  redelivery after a worker died, a Modal retry) always skips the nodes it already finished, even
  when cross-job reuse is off: the user asked for fresh outputs once, not once per crash.

Only the output nodes and their ancestors run. Cancellation is cooperative: checked before each
node, between retries, and inside ``ctx.progress``. A ``BaseException`` that is not an ``Exception``
(a worker shutdown) passes through untouched, exactly like a crash, and leaves the records of the
nodes that finished.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ValidationError

from gpu_workers.artifacts import ArtifactStore, checkpoint_key, job_node_key
from gpu_workers.graph import ensure_valid, is_edge, plain_pydantic_message, required_nodes, topological_order
from gpu_workers.registry import NodeRegistry, RegisteredNode
from gpu_workers.sdk import (
    EventSink,
    ExecutionContext,
    JobCanceled,
    ModelProvider,
    ModelSpec,
    Node,
    NodeContext,
    NodeError,
    NullEventSink,
    TransientNodeError,
)

logger = logging.getLogger(__name__)

NodeStatus = Literal["pending", "succeeded", "cached", "failed", "canceled", "skipped"]
LIBRARIES = ("torch", "diffusers", "peft", "transformers", "safetensors", "accelerate", "pydantic", "pillow")
CHECKPOINT_FORMAT = 1


@dataclass
class NodeState:
    type: str
    status: NodeStatus = "pending"
    started_at: str | None = None
    seconds: float | None = None
    attempts: int = 0
    resumed: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "started_at": self.started_at,
            "seconds": self.seconds,
            "attempts": self.attempts,
            "resumed": self.resumed,
            "error": self.error,
        }


@dataclass
class GraphResult:
    """What a job returns; ``as_dict()`` is JSON-able and is what crosses back from Modal."""

    outputs: dict[str, dict[str, Any]]
    nodes: dict[str, dict[str, Any]]
    reproducibility: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "nodes": self.nodes, "reproducibility": self.reproducibility}


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compute_checkpoint_key(
    node_cls: type[Node], inputs: BaseModel, assets: Mapping[str, str] | None = None
) -> str:
    """``assets`` maps an asset port (ControlNet, upscaler weights) to its file's SHA-256, so replacing
    the weights behind the same reference changes the key; it is left out when empty, which keeps the
    keys of nodes without asset ports as they were."""
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "type": node_cls.type,
        "version": node_cls.version,
        "inputs": inputs.model_dump(mode="json"),
    }
    if assets:
        payload["assets"] = dict(sorted(assets.items()))
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def asset_ports(node_cls: type[Node]) -> list[str]:
    """Input ports holding a reference to weights other than a base model or LoRA (``kizy_reference:
    asset`` in the port's schema): ControlNets, upscalers."""
    ports = []
    for name, info in node_cls.Inputs.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("kizy_reference") == "asset":
            ports.append(name)
    return ports


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata so torch is not imported just to ask."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


ContextFactory = Callable[[str], NodeContext]


class _Run:
    def __init__(
        self,
        graph: Mapping[str, Any],
        registry: NodeRegistry,
        *,
        workspace_id: str,
        job_id: str,
        artifacts: ArtifactStore,
        models: ModelProvider | None,
        events: EventSink,
        is_cancelled: Callable[[], bool],
        reuse_outputs: bool,
        device: str,
        retry_backoff_s: float,
        sleep: Callable[[float], None],
        context_factory: ContextFactory | None,
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.workspace_id = workspace_id
        self.job_id = job_id
        self.artifacts = artifacts
        self.models = models
        self.events = events
        self.is_cancelled = is_cancelled
        self.reuse_outputs = reuse_outputs
        self.device = device
        self.retry_backoff_s = retry_backoff_s
        self.sleep = sleep
        self.context_factory = context_factory
        self.values: dict[str, BaseModel] = {}
        self.inputs: dict[str, BaseModel] = {}
        self.assets: dict[str, dict[str, dict[str, str]]] = {}
        self.states = {node_id: NodeState(type=spec["type"]) for node_id, spec in graph["nodes"].items()}

    # -- driving ------------------------------------------------------------------------------

    def execute(self) -> GraphResult:
        needed = required_nodes(self.graph)
        for node_id, state in self.states.items():
            if node_id not in needed:
                state.status = "skipped"
        try:
            for node_id in topological_order(self.graph):
                if node_id in needed:
                    self.check_cancelled()
                    self.run_node(node_id)
        except (NodeError, JobCanceled) as exc:
            exc.states = self.state_dicts()
            raise
        outputs = {node_id: self.values[node_id].model_dump(mode="json") for node_id in self.graph["outputs"]}
        return GraphResult(outputs=outputs, nodes=self.state_dicts(), reproducibility=self.reproducibility())

    def check_cancelled(self) -> None:
        if self.is_cancelled():
            raise JobCanceled()

    def state_dicts(self) -> dict[str, dict[str, Any]]:
        return {node_id: state.as_dict() for node_id, state in self.states.items()}

    def make_context(self, node_id: str) -> NodeContext:
        if self.context_factory is not None:
            return self.context_factory(node_id)
        return ExecutionContext(
            node_id=node_id,
            workspace_id=self.workspace_id,
            artifacts=self.artifacts,
            models=self.models,
            device=self.device,
            events=self.events,
            is_cancelled=self.is_cancelled,
        )

    # -- one node -----------------------------------------------------------------------------

    def run_node(self, node_id: str) -> None:
        entry = self.registry.entry(self.graph["nodes"][node_id]["type"])
        node_cls = entry.cls
        state = self.states[node_id]
        inputs = self.build_inputs(node_id, node_cls)
        self.inputs[node_id] = inputs
        self.assets[node_id] = self.asset_digests(node_cls, inputs)
        key = compute_checkpoint_key(node_cls, inputs, {p: a["sha256"] for p, a in self.assets[node_id].items()})
        began = time.monotonic()

        reused = self.load_job_record(node_id, node_cls, key)
        if reused is not None:
            state.resumed = True
        elif self.reuse_outputs and node_cls.cacheable:
            reused = self.load_record(checkpoint_key(self.workspace_id, key), node_cls, key)
        if reused is not None:
            self.values[node_id] = reused
            state.status = "cached"
            state.seconds = round(time.monotonic() - began, 6)
            self.events.node_finished(node_id, True, state.seconds)
            return

        state.started_at = datetime.now(UTC).isoformat()
        self.events.node_started(node_id, node_cls.type, node_cls.title)
        try:
            outputs = self.run_with_retries(node_id, entry, inputs, state)
        finally:
            state.seconds = round(time.monotonic() - began, 6)
        state.status = "succeeded"
        self.values[node_id] = outputs
        self.save_records(node_id, node_cls, key, outputs, state.seconds)
        self.events.node_finished(node_id, False, state.seconds)

    def asset_digests(self, node_cls: type[Node], inputs: BaseModel) -> dict[str, dict[str, str]]:
        """{port: {ref, sha256}} for the node's asset references the worker can hash. One it cannot
        resolve is left out: the node itself then fails with the store's words."""
        digest = getattr(self.models, "digest", None)
        if self.models is None or not callable(digest):
            return {}
        found = {}
        for port in asset_ports(node_cls):
            ref = getattr(inputs, port, None)
            if not isinstance(ref, str) or not ref:
                continue
            try:
                found[port] = {"ref": ref, "sha256": str(digest(self.models.resolve(ref)))}
            except Exception:  # noqa: BLE001, S112 - missing or unreachable: the node reports it
                continue
        return found

    def build_inputs(self, node_id: str, node_cls: type[Node]) -> BaseModel:
        raw: dict[str, Any] = {}
        for port, value in self.graph["nodes"][node_id].get("inputs", {}).items():
            raw[port] = getattr(self.values[value["node"]], value["output"]) if is_edge(value) else value
        try:
            return node_cls.Inputs.model_validate(raw)
        except ValidationError as exc:  # e.g. a cross-field rule, or an upstream value out of bounds
            self.states[node_id].status = "failed"
            message = (
                f'Node "{node_id}" ({node_cls.type}) received invalid inputs: {plain_pydantic_message(exc)}.'
            )
            self.states[node_id].error = message
            raise NodeError(node_id, message, node_type=node_cls.type) from exc

    def run_with_retries(
        self, node_id: str, entry: RegisteredNode, inputs: BaseModel, state: NodeState
    ) -> BaseModel:
        node_cls = entry.cls
        retryable: tuple[type[BaseException], ...] = (TransientNodeError, *node_cls.retryable_errors)
        while True:
            state.attempts += 1
            try:
                result = node_cls().run(self.make_context(node_id), inputs)
                return self.check_outputs(node_id, node_cls, result)
            except JobCanceled:
                state.status = "canceled"
                raise
            except retryable as exc:
                if state.attempts > node_cls.max_retries:
                    self.fail(node_id, node_cls, state, exc)
                delay = self.retry_backoff_s * 2 ** (state.attempts - 1)
                self.events.log(
                    node_id, f"attempt {state.attempts} failed ({exc}); retrying in {delay:.1f} s"
                )
                self.sleep(delay)
                self.check_cancelled()
            except Exception as exc:
                self.fail(node_id, node_cls, state, exc)

    def check_outputs(self, node_id: str, node_cls: type[Node], result: object) -> BaseModel:
        if isinstance(result, node_cls.Outputs):
            return result
        try:
            return node_cls.Outputs.model_validate(result)
        except ValidationError as exc:
            raise NodeError(
                node_id,
                f"returned outputs that do not match its Outputs model: {plain_pydantic_message(exc)}",
            ) from exc

    def fail(self, node_id: str, node_cls: type[Node], state: NodeState, exc: BaseException) -> NoReturn:
        detail = exc.message if isinstance(exc, NodeError) else str(exc)
        detail = detail or type(exc).__name__
        attempts = f" after {state.attempts} attempts" if state.attempts > 1 else ""
        message = f'Node "{node_id}" ({node_cls.type}) failed{attempts}: {detail}'
        state.status = "failed"
        state.error = message
        logger.error("%s (job %s, workspace %s)", message, self.job_id, self.workspace_id, exc_info=exc)
        raise NodeError(node_id, message, node_type=node_cls.type) from exc

    # -- records ------------------------------------------------------------------------------

    def load_job_record(self, node_id: str, node_cls: type[Node], key: str) -> BaseModel | None:
        return self.load_record(job_node_key(self.workspace_id, self.job_id, node_id), node_cls, key)

    def load_record(self, record_key: str, node_cls: type[Node], key: str) -> BaseModel | None:
        """The stored outputs, or None if absent, stale or pointing at artifacts that are gone."""
        if not self.artifacts.exists(record_key):
            return None
        try:
            record = self.artifacts.get_json(record_key)
            if record.get("checkpoint") != key:
                return None
            outputs = node_cls.Outputs.model_validate(record["outputs"])
        except (ValueError, KeyError, TypeError):  # ValidationError and JSON errors are ValueErrors
            logger.warning("ignoring unreadable node record %s", record_key)
            return None
        if not all(self.artifacts.exists(ref) for ref in _artifact_keys(outputs)):
            return None
        return outputs

    def save_records(
        self, node_id: str, node_cls: type[Node], key: str, outputs: BaseModel, seconds: float
    ) -> None:
        record = {
            "checkpoint": key,
            "type": node_cls.type,
            "version": node_cls.version,
            "outputs": outputs.model_dump(mode="json"),
            "seconds": seconds,
            "created_at": datetime.now(UTC).isoformat(),
        }
        if node_cls.cacheable:
            self.artifacts.put_json(checkpoint_key(self.workspace_id, key), record)
        self.artifacts.put_json(job_node_key(self.workspace_id, self.job_id, node_id), record)

    # -- reproducibility ----------------------------------------------------------------------

    def reproducibility(self) -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        seeds: dict[str, int] = {}
        models: dict[str, Any] = {}
        assets: dict[str, dict[str, str]] = {}  # ControlNet and upscaler weights, by node.port
        describe = getattr(self.models, "describe", None)
        for node_id, inputs in self.inputs.items():
            entry = self.registry.entry(self.graph["nodes"][node_id]["type"])
            nodes[node_id] = {
                "type": entry.cls.type,
                "version": entry.cls.version,
                "pack": entry.pack,
                "pack_version": entry.pack_version,
            }
            for port, kind in entry.cls.input_types().items():
                value = getattr(inputs, port)
                if kind == "seed" and isinstance(value, int):
                    seeds[f"{node_id}.{port}"] = value
                elif kind == "model" and isinstance(value, ModelSpec):
                    models[f"{node_id}.{port}"] = self.describe_model(describe, value)
            for port, asset in self.assets.get(node_id, {}).items():
                assets[f"{node_id}.{port}"] = asset
        return {
            "job_id": self.job_id,
            "nodes": nodes,
            "seeds": seeds,
            "models": models,
            "assets": assets,
            "libraries": dict(library_versions()),
            "device": self.device,
        }

    @staticmethod
    def describe_model(describe: Any, spec: ModelSpec) -> dict[str, Any]:
        described: dict[str, Any] = {"spec": spec.model_dump(mode="json")}
        if callable(describe):
            try:
                described["details"] = describe(spec)
            except Exception as exc:  # a provenance hook must never fail a finished job
                described["error"] = str(exc) or type(exc).__name__
        return described


def _artifact_keys(outputs: BaseModel) -> list[str]:
    """Keys of the artifacts an output record points to (``key`` + ``sha256`` references)."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, BaseModel):
            if isinstance(getattr(value, "key", None), str) and isinstance(
                getattr(value, "sha256", None), str
            ):
                found.append(value.key)  # type: ignore[attr-defined]
            else:
                for name in type(value).model_fields:
                    walk(getattr(value, name))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(outputs)
    return found


def run_graph(
    graph: Mapping[str, Any],
    registry: NodeRegistry,
    *,
    workspace_id: str,
    job_id: str,
    artifacts: ArtifactStore,
    models: ModelProvider | None = None,
    events: EventSink | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    reuse_outputs: bool = True,
    device: str = "cpu",
    retry_backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    context_factory: ContextFactory | None = None,
) -> GraphResult:
    """Run ``graph`` for one job and return its outputs, per-node states and reproducibility record.

    Raises ``GraphValidationError`` before running anything if the graph is invalid, ``NodeError``
    (naming node id and type) when a node fails, ``JobCanceled`` when ``is_cancelled`` turns true;
    both carry ``states`` with what had finished.
    """
    ensure_valid(graph, registry, workspace_id=workspace_id)
    return _Run(
        graph,
        registry,
        workspace_id=workspace_id,
        job_id=job_id,
        artifacts=artifacts,
        models=models,
        events=events if events is not None else NullEventSink(),
        is_cancelled=is_cancelled or (lambda: False),
        reuse_outputs=reuse_outputs,
        device=device,
        retry_backoff_s=retry_backoff_s,
        sleep=sleep,
        context_factory=context_factory,
    ).execute()
