"""What the engine adds on top of a bare diffusers call, and what the warm cache saves.

On the tiny SD 1.5 model (so the model's own work is small and the overhead shows), measured in the
same run:

- direct:      a warm ``StableDiffusionPipeline`` called directly (the baseline);
- engine:      the same generation as a graph (load_model -> text_to_image -> save_image) through
               validation, the executor, checkpoints, PNG artifacts and progress events;
- lora switch: alternating jobs with and without a LoRA on the warm base (adapters switched, not
               reloaded);
- cold load:   loading the base model from disk, which the cache avoids on every later job.

Prints medians and ratios to the direct call. Usage: python bench/engine_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = {"width": 64, "height": 64, "steps": 4, "scheduler": "euler", "prompt": "a cat"}


def median_seconds(fn: Callable[[int], object], runs: int) -> float:
    fn(-1)  # warm-up
    times = []
    for index in range(runs):
        began = time.perf_counter()
        fn(index)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # tiny ops: one thread avoids OpenMP barrier waits on a busy machine

    from gpu_workers.artifacts import MemoryArtifactStore
    from gpu_workers.diffusion.schedulers import make_scheduler
    from gpu_workers.executor import run_graph
    from gpu_workers.models.cache import PipelineCache
    from gpu_workers.models.store import ModelStore
    from gpu_workers.models.tiny import build_lora, build_sd15
    from gpu_workers.nodes.builtin import NODES
    from gpu_workers.registry import NodeRegistry
    from gpu_workers.sdk import ModelSpec

    root = Path(tempfile.mkdtemp(prefix="kizy-bench-"))
    build_sd15(root / "local")
    build_lora(root / "local", "sd15")

    cache = PipelineCache(ModelStore(root), budget_bytes=1 << 30)
    base = ModelSpec(ref="local:sd15", family="sd15")
    styled = ModelSpec.model_validate({**base.model_dump(), "loras": [{"ref": "local:sd15-lora"}]})

    cold_began = time.perf_counter()
    pipe = cache.pipeline(base, "txt2img")
    cold = time.perf_counter() - cold_began
    pipe.scheduler = make_scheduler("euler", pipe.scheduler, "sd15")  # the sampler the graphs use

    def direct(seed: int) -> Any:
        generator = torch.Generator().manual_seed(seed)
        kwargs = {"width": 64, "height": 64, "num_inference_steps": 4, "prompt": "a cat"}
        return pipe(**kwargs, generator=generator, output_type="pil").images[0]

    registry = NodeRegistry.from_classes(NODES, pack="kizy")
    artifacts = MemoryArtifactStore()
    models = cache.bind(artifacts=artifacts, workspace_id="bench")

    def engine(seed: int, spec: ModelSpec = base) -> Any:
        model: dict[str, Any] = {"node": "model", "output": "model"}
        nodes: dict[str, Any] = {
            "model": {"type": "load_model", "inputs": {"ref": "local:sd15"}},
            "draw": {"type": "text_to_image", "inputs": {"model": model, "seed": seed + 1, **SIZE}},
            "keep": {"type": "save_image", "inputs": {"image": {"node": "draw", "output": "image"}}},
        }
        if spec.loras:
            lora = {"ref": "local:sd15-lora"}
            nodes["style"] = {"type": "apply_lora", "inputs": {"model": model, "lora": lora}}
            nodes["draw"]["inputs"]["model"] = {"node": "style", "output": "model"}
        graph = {"nodes": nodes, "outputs": ["keep"]}
        job = f"job-{'lora' if spec.loras else 'base'}-{time.perf_counter_ns()}"
        return run_graph(
            graph,
            registry,
            workspace_id="bench",
            job_id=job,
            artifacts=artifacts,
            models=models,
            reuse_outputs=False,
        )

    baseline = median_seconds(direct, args.runs)
    through_engine = median_seconds(engine, args.runs)
    switching = median_seconds(lambda i: engine(i, styled if i % 2 else base), args.runs)
    loads = cache.stats.total_loads

    print(f"direct diffusers call   {baseline * 1000:8.1f} ms   1.00x (baseline)")
    print(
        f"through the engine      {through_engine * 1000:8.1f} ms   {through_engine / baseline:.2f}x"
        f"   (+{(through_engine - baseline) * 1000:.1f} ms per job)"
    )
    print(
        f"alternating LoRA on/off {switching * 1000:8.1f} ms   {switching / baseline:.2f}x"
        f"   ({loads} loads in total: base once, LoRA once)"
    )
    print(f"cold base load          {cold * 1000:8.1f} ms   {cold / baseline:.2f}x (paid once per worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
