"""Warm pipelines: load a base model once, derive task pipelines from it, switch LoRAs in place.

Loading a base model is the slow part of a job (seconds to minutes); switching LoRAs on a warm one
takes milliseconds. So the worker keeps loaded bases in an LRU bounded by memory (the bytes of their
parameters and buffers), and for each base:

- task pipelines (``txt2img``, ``img2img``, ``controlnet:<ref>``, ``txt2video``, ``img2video``) are
  derived with ``from_pipe``: they share the base's modules, so they cost no extra weight memory;
- each LoRA file is loaded once as a named peft adapter (``load_lora_weights(adapter_name=...)``);
  a job activates exactly its own stack with ``set_adapters(names, weights)``, and a job with no
  LoRAs disables adapters, which gives bit-identical output to the base;
- the scheduler is rebuilt from the base's original config for every request, so one job's
  scheduler choice (or a stateful scheduler's step counter) never leaks into the next.

``stats`` counts every load, so a test can assert that a second job on the same model loads nothing.
One job uses a cache at a time (a worker runs one job per device); the lock only protects the
bookkeeping from a stray concurrent call.

Upscalers (ESRGAN family, via spandrel) live in the same LRU under family ``upscaler`` / task
``upscale`` so that their memory counts against the same budget.
"""

from __future__ import annotations

import gc
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_workers.models.detect import detect_file, family_from_keys, pipeline_family
from gpu_workers.models.errors import ModelError, UnsupportedModelError
from gpu_workers.models.lazy import untyped
from gpu_workers.models.safetensors_check import read_safetensors_header
from gpu_workers.models.store import ArtifactSource, ModelStore, single_weights_file
from gpu_workers.sdk import ModelSpec

FAMILY_NAMES = {
    "sd15": "SD 1.5",
    "sdxl": "SDXL",
    "flux": "Flux",
    "video": "AnimateDiff video",
    "upscaler": "upscaler",
}


def with_article(name: str) -> str:
    """'an SD 1.5', 'an SDXL', 'an AnimateDiff video', 'a Flux': letters read as names (S, F...) count."""
    return f"{'an' if name[:1] in 'AEIOU' or name.startswith('SD') else 'a'} {name}"

#: diffusers pipeline class for each (family, task). A missing pair is a task the family cannot do.
TASK_PIPELINES: dict[str, dict[str, str]] = {
    "sd15": {
        "txt2img": "StableDiffusionPipeline",
        "img2img": "StableDiffusionImg2ImgPipeline",
        "controlnet": "StableDiffusionControlNetPipeline",
    },
    "sdxl": {
        "txt2img": "StableDiffusionXLPipeline",
        "img2img": "StableDiffusionXLImg2ImgPipeline",
        "controlnet": "StableDiffusionXLControlNetPipeline",
    },
    "flux": {
        "txt2img": "FluxPipeline",
        "img2img": "FluxImg2ImgPipeline",
        "controlnet": "FluxControlNetPipeline",
    },
    "video": {"txt2video": "AnimateDiffPipeline", "img2video": "AnimateDiffVideoToVideoPipeline"},
}
CONTROLNET_MODELS = {"sd15": "ControlNetModel", "sdxl": "ControlNetModel", "flux": "FluxControlNetModel"}
#: Which LoRA families each base accepts (AnimateDiff runs on an SD 1.5 UNet).
LORA_FAMILIES = {"sd15": {"sd15"}, "sdxl": {"sdxl"}, "flux": {"flux"}, "video": {"sd15", "video"}}


@dataclass
class LoadStats:
    base_loads: int = 0
    lora_loads: int = 0
    controlnet_loads: int = 0
    upscaler_loads: int = 0
    derived_pipelines: int = 0
    evictions: int = 0

    @property
    def total_loads(self) -> int:
        return self.base_loads + self.lora_loads + self.controlnet_loads + self.upscaler_loads


@dataclass
class _Warm:
    """One loaded base model and everything derived from it."""

    ref: str
    family: str
    base: Any
    scheduler_config: dict[str, Any] | None
    scheduler_cls: Any = None
    pipelines: dict[str, Any] = field(default_factory=dict)
    adapters: OrderedDict[str, str] = field(default_factory=OrderedDict)  # adapter name -> LoRA ref
    nbytes: int = 0
    sha256: str = ""  # the weights' digest when the spec that loaded them carried one


def module_bytes(objects: list[Any]) -> int:
    """Bytes of parameters and buffers of every distinct ``torch.nn.Module`` among the components."""
    import torch

    seen: set[int] = set()
    total = 0
    for obj in objects:
        modules = list(obj.components.values()) if hasattr(obj, "components") else [obj]
        for module in modules:
            if isinstance(module, torch.nn.Module) and id(module) not in seen:
                seen.add(id(module))
                tensors = [*module.parameters(), *module.buffers()]
                total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def quiet_diffusers() -> None:
    """No download/loading progress bars or info logs: a worker's output is job events, not tqdm."""
    for library in ("diffusers", "transformers"):
        logging = untyped(f"{library}.utils.logging")
        logging.disable_progress_bar()
        logging.set_verbosity_error()


class PipelineCache:
    """The worker-wide cache. Nodes reach it through ``bind(...)``, a per-job ``ModelProvider``."""

    def __init__(
        self,
        store: ModelStore,
        *,
        budget_bytes: int,
        device: str = "cpu",
        half_precision: bool | None = None,
        max_adapters_per_model: int = 8,
    ) -> None:
        self.store = store
        self.budget_bytes = budget_bytes
        self.device = device
        self.half_precision = device != "cpu" if half_precision is None else half_precision
        self.max_adapters_per_model = max_adapters_per_model
        self.stats = LoadStats()
        self._warm: OrderedDict[str, _Warm] = OrderedDict()
        self._lock = threading.RLock()

    # -- the ModelProvider surface ---------------------------------------------------------------

    def bind(self, *, artifacts: ArtifactSource | None, workspace_id: str | None) -> BoundModels:
        """A view for one job: ``artifact:`` references resolve only inside that workspace."""
        return BoundModels(self, artifacts=artifacts, workspace_id=workspace_id)

    def resolve(
        self, ref: str, *, artifacts: ArtifactSource | None = None, workspace_id: str | None = None
    ) -> Path:
        return self.store.resolve(ref, artifacts=artifacts, workspace_id=workspace_id)

    def digest(self, path: Path) -> str:
        """SHA-256 of a resolved model file or folder (remembered per path, size and mtime)."""
        return self.store.sha256(path)

    def pipeline(
        self,
        spec: ModelSpec,
        task: str,
        *,
        artifacts: ArtifactSource | None = None,
        workspace_id: str | None = None,
    ) -> Any:
        """The warm pipeline for ``task`` on ``spec``'s base with exactly ``spec.loras`` active.

        ``task`` is ``txt2img``, ``img2img``, ``controlnet:<controlnet ref>``, ``txt2video``,
        ``img2video``, or ``upscale`` (for ``family="upscaler"``, returns a spandrel descriptor).
        """
        with self._lock:
            loads_before = (self.stats.total_loads, self.stats.derived_pipelines)
            warm = self._base(spec, artifacts, workspace_id)
            if warm.family == "upscaler":
                if task != "upscale" or spec.loras:
                    raise UnsupportedModelError(
                        f"{spec.ref} is an upscaler; it can only run the upscale task"
                    )
                self._evict(keep=warm.ref)
                return warm.base
            pipe = self._task_pipeline(warm, task, artifacts, workspace_id)
            self._apply_loras(warm, spec, artifacts, workspace_id)
            if warm.scheduler_cls is not None:
                pipe.scheduler = warm.scheduler_cls.from_config(warm.scheduler_config)
            if (self.stats.total_loads, self.stats.derived_pipelines) != loads_before:
                # Only a load changes memory use; skip walking every parameter on warm jobs.
                warm.nbytes = module_bytes([warm.base, *warm.pipelines.values()])
                self._evict(keep=warm.ref)
            return pipe

    def describe(
        self, spec: ModelSpec, *, artifacts: ArtifactSource | None = None, workspace_id: str | None = None
    ) -> dict[str, Any]:
        """Content hashes of the base model and each LoRA, for the job's reproducibility record."""
        base = self.resolve(spec.ref, artifacts=artifacts, workspace_id=workspace_id)
        loras = []
        for lora in spec.loras:
            path = single_weights_file(self.resolve(lora.ref, artifacts=artifacts, workspace_id=workspace_id))
            loras.append({"ref": lora.ref, "weight": lora.weight, "sha256": self.store.sha256(path)})
        return {"ref": spec.ref, "family": spec.family, "sha256": self.store.sha256(base), "loras": loras}

    # -- introspection ---------------------------------------------------------------------------

    def memory_bytes(self) -> int:
        with self._lock:
            return sum(w.nbytes for w in self._warm.values())

    def warm_refs(self) -> list[str]:
        """Loaded base references, least recently used first."""
        with self._lock:
            return list(self._warm)

    def clear(self) -> None:
        with self._lock:
            self._warm.clear()
            self._release_memory()

    # -- internals -------------------------------------------------------------------------------

    def _dtype(self, family: str) -> Any:
        import torch

        if not self.half_precision:
            return torch.float32
        return torch.bfloat16 if family == "flux" else torch.float16

    def _base(self, spec: ModelSpec, artifacts: ArtifactSource | None, workspace_id: str | None) -> _Warm:
        warm = self._warm.get(spec.ref)
        if warm is not None and spec.sha256 and warm.sha256 and warm.sha256 != spec.sha256:
            # The file behind the reference was replaced since it was loaded: load the new weights.
            del self._warm[spec.ref]
            self._release_memory()
            warm = None
        if warm is not None and spec.ref.startswith("artifact:"):
            # Warm or not, a workspace's artifact is only served to jobs of that workspace.
            self.resolve(spec.ref, artifacts=artifacts, workspace_id=workspace_id)
        if warm is None:
            path = self.resolve(spec.ref, artifacts=artifacts, workspace_id=workspace_id)
            warm = self._load_base(spec.ref, path, spec.family)
            warm.sha256 = spec.sha256
            self._warm[spec.ref] = warm
        self._warm.move_to_end(spec.ref)
        if spec.family != warm.family:
            raise UnsupportedModelError(
                f"{spec.ref} is {with_article(FAMILY_NAMES.get(warm.family, warm.family))} model, "
                f"but the request says {FAMILY_NAMES.get(spec.family, spec.family)}"
            )
        return warm

    def _load_base(self, ref: str, path: Path, requested_family: str) -> _Warm:
        if requested_family == "upscaler":
            from gpu_workers.models.upscalers import load_upscaler

            descriptor = load_upscaler(single_weights_file(path), device=self.device)
            self.stats.upscaler_loads += 1
            return _Warm(
                ref=ref,
                family="upscaler",
                base=descriptor,
                scheduler_config=None,
                nbytes=module_bytes([descriptor.model]),
            )
        family = detect_base_family(path)
        quiet_diffusers()
        diffusers = untyped("diffusers")

        dtype = self._dtype(family)
        try:
            if path.is_dir():
                extra: dict[str, Any] = {}
                index = json.loads((path / "model_index.json").read_text())
                if "safety_checker" in index:
                    # Moderation is the platform's job (on prompts and outputs), not SD's classifier.
                    extra = {"safety_checker": None, "requires_safety_checker": False}
                base = diffusers.DiffusionPipeline.from_pretrained(
                    path, use_safetensors=True, dtype=dtype, **extra
                )
            else:
                first_task = next(iter(TASK_PIPELINES[family]))
                cls = getattr(diffusers, TASK_PIPELINES[family][first_task])
                base = cls.from_single_file(str(path), dtype=dtype)
        except (OSError, ValueError) as exc:
            hint = (
                " (a single-file checkpoint needs its diffusers config from Hugging Face the first time)"
                if path.is_file()
                else ""
            )
            raise ModelError(f"could not load {ref}: {exc}{hint}") from exc
        base.to(self.device)
        base.set_progress_bar_config(disable=True)
        self.stats.base_loads += 1
        warm = _Warm(
            ref=ref,
            family=family,
            base=base,
            scheduler_config=dict(base.scheduler.config),
            scheduler_cls=type(base.scheduler),
        )
        warm.pipelines[type(base).__name__] = base
        warm.nbytes = module_bytes([base])
        return warm

    def _task_pipeline(
        self, warm: _Warm, task: str, artifacts: ArtifactSource | None, workspace_id: str | None
    ) -> Any:
        diffusers = untyped("diffusers")

        kind, _, controlnet_ref = task.partition(":")
        supported = TASK_PIPELINES[warm.family]
        if kind not in supported:
            can = ", ".join(supported)
            raise UnsupportedModelError(
                f"{warm.ref} is {with_article(FAMILY_NAMES[warm.family])} model; it cannot run {kind} "
                f"(it can run: {can})"
            )
        if kind == "controlnet" and not controlnet_ref:
            raise ModelError("the controlnet task needs a ControlNet reference: controlnet:<ref>")
        key = task if kind == "controlnet" else supported[kind]
        if key in warm.pipelines:
            if controlnet_ref.startswith("artifact:"):
                self.resolve(controlnet_ref, artifacts=artifacts, workspace_id=workspace_id)
            return warm.pipelines[key]
        cls = getattr(diffusers, supported[kind])
        extra: dict[str, Any] = {}
        if kind == "controlnet":
            extra["controlnet"] = self._load_controlnet(warm, controlnet_ref, artifacts, workspace_id)
        pipe = cls.from_pipe(warm.base, **extra)
        pipe.set_progress_bar_config(disable=True)
        warm.pipelines[key] = pipe
        self.stats.derived_pipelines += 1
        return pipe

    def _load_controlnet(
        self, warm: _Warm, ref: str, artifacts: ArtifactSource | None, workspace_id: str | None
    ) -> Any:
        diffusers = untyped("diffusers")

        path = self.resolve(ref, artifacts=artifacts, workspace_id=workspace_id)
        family = detect_controlnet_family(path)
        if family is not None and family != warm.family:
            raise UnsupportedModelError(
                f"ControlNet {ref} is for {FAMILY_NAMES[family]} models, "
                f"not {FAMILY_NAMES[warm.family]} ({warm.ref})"
            )
        cls = getattr(diffusers, CONTROLNET_MODELS[warm.family])
        dtype = self._dtype(warm.family)
        if path.is_dir():
            controlnet = cls.from_pretrained(path, use_safetensors=True, dtype=dtype)
        else:
            controlnet = cls.from_single_file(str(path), dtype=dtype)
        self.stats.controlnet_loads += 1
        return controlnet.to(self.device)

    def _apply_loras(
        self, warm: _Warm, spec: ModelSpec, artifacts: ArtifactSource | None, workspace_id: str | None
    ) -> None:
        wanted: OrderedDict[str, float] = OrderedDict()
        for lora in spec.loras:
            path = single_weights_file(self.resolve(lora.ref, artifacts=artifacts, workspace_id=workspace_id))
            name = "lora_" + self.store.sha256(path)[:16]
            if name not in warm.adapters:
                self._load_lora(warm, lora.ref, path, name)
            warm.adapters.move_to_end(name)
            wanted[name] = wanted.get(name, 0.0) + lora.weight
        surplus = [n for n in warm.adapters if n not in wanted][
            : max(0, len(warm.adapters) - self.max_adapters_per_model)
        ]
        if surplus:
            warm.base.delete_adapters(surplus)
            for name in surplus:
                del warm.adapters[name]
        if wanted:
            warm.base.enable_lora()
            warm.base.set_adapters(list(wanted), list(wanted.values()))
        elif warm.adapters:
            warm.base.disable_lora()

    def _load_lora(self, warm: _Warm, ref: str, path: Path, name: str) -> None:
        _header, fmt, family = detect_file(path)
        if fmt is None:
            raise UnsupportedModelError(f"{ref} is not a LoRA file (no LoRA weights in it)")
        if family is not None and family not in LORA_FAMILIES.get(warm.family, set()):
            raise UnsupportedModelError(
                f"LoRA {ref} is for {FAMILY_NAMES[family]} models; it cannot be applied to "
                f"{warm.ref}, a {FAMILY_NAMES[warm.family]} model"
            )
        try:
            warm.base.load_lora_weights(str(path), adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise UnsupportedModelError(f"LoRA {ref} ({fmt} format) does not fit {warm.ref}: {exc}") from exc
        self.stats.lora_loads += 1
        warm.adapters[name] = ref

    def _evict(self, *, keep: str) -> None:
        evicted = False
        while len(self._warm) > 1 and sum(w.nbytes for w in self._warm.values()) > self.budget_bytes:
            oldest = next(ref for ref in self._warm if ref != keep)
            del self._warm[oldest]
            self.stats.evictions += 1
            evicted = True
        if evicted:
            self._release_memory()

    def _release_memory(self) -> None:
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


class BoundModels:
    """``sdk.ModelProvider`` for one job: the shared cache plus that job's workspace artifacts."""

    def __init__(
        self, cache: PipelineCache, *, artifacts: ArtifactSource | None, workspace_id: str | None
    ) -> None:
        self.cache = cache
        self.artifacts = artifacts
        self.workspace_id = workspace_id

    def pipeline(self, spec: ModelSpec, task: str) -> Any:
        return self.cache.pipeline(spec, task, artifacts=self.artifacts, workspace_id=self.workspace_id)

    def resolve(self, ref: str) -> Path:
        return self.cache.resolve(ref, artifacts=self.artifacts, workspace_id=self.workspace_id)

    def describe(self, spec: ModelSpec) -> dict[str, Any]:
        return self.cache.describe(spec, artifacts=self.artifacts, workspace_id=self.workspace_id)

    def digest(self, path: Path) -> str:
        return self.cache.digest(path)

    def free_memory(self) -> None:
        """Drop every warm pipeline (after an out-of-memory error; the retry reloads what it needs)."""
        self.cache.clear()


def detect_base_family(path: Path) -> str:
    """Family of a base model: the pipeline class of a diffusers folder, or a checkpoint's key layout."""
    family = pipeline_family(path) if path.is_dir() else None
    if family is None and path.is_file():
        header = read_safetensors_header(path)
        family = family_from_keys(header.tensors, header.metadata)
    if family is None:
        raise UnsupportedModelError(
            f"{path.name} is not an SD 1.5, SDXL, Flux or AnimateDiff model Kizy can run"
        )
    return family


def detect_controlnet_family(path: Path) -> str | None:
    """sd15 / sdxl / flux for a ControlNet folder (from its config), ``None`` when unsure."""
    config_path = path / "config.json" if path.is_dir() else None
    if config_path is None or not config_path.is_file():
        return None
    config = json.loads(config_path.read_text())
    if config.get("_class_name") == "FluxControlNetModel":
        return "flux"
    if config.get("_class_name") != "ControlNetModel":
        raise UnsupportedModelError(f"{path.name} is a {config.get('_class_name')}, not a ControlNet")
    return "sdxl" if config.get("addition_embed_type") == "text_time" else "sd15"
