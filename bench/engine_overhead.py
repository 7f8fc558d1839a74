"""What the engine adds on top of a bare diffusers call, and what the warm cache saves.

On the tiny SD 1.5 model (so the model's own work is small and the overhead shows), measured in the
same run:

- direct:      a warm ``StableDiffusionPipeline`` called directly (the baseline);
- engine:      the same generation as a graph (load_model -> text_to_image -> save_image) through
               validation, the executor, checkpoints, PNG artifacts and progress events; the ratio to
               the direct call is checked against the goal (<= 1.05);
- per node:    what each node adds, from the executor's own per-node timings: load_model and
               save_image are all overhead, text_to_image is its time minus the direct call, and the
               executor's bookkeeping is the job's time minus the nodes' times;
- lora switch: ``cache.pipeline`` with a LoRA right after the same call without it, on the warm base
               (adapters switched with set_adapters / disable_lora, not reloaded), over the cold base
               load (median of fresh caches reading the same files); goal <= 0.05;
- alternating: whole jobs alternating with and without the LoRA, for the end-to-end picture.

Prints medians. Usage: python bench/engine_overhead.py [--runs N]
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

    # Interleaved: each engine job right after a direct call, so both see the same machine load (on a
    # shared machine, separate blocks of runs drift by more than the overhead being measured).
    direct(-1)
    engine(-1)
    direct_times: list[float] = []
    jobs: list[Any] = []
    job_times: list[float] = []
    for index in range(args.runs):
        began = time.perf_counter()
        direct(index)
        direct_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        jobs.append(engine(index))
        job_times.append(time.perf_counter() - began)
    baseline = statistics.median(direct_times)
    through_engine = statistics.median(job_times)
    paired_ratio = statistics.median(j / d for j, d in zip(job_times, direct_times, strict=True))
    node_ids = ("model", "draw", "keep")
    node_seconds = {n: statistics.median(j.nodes[n]["seconds"] for j in jobs) for n in node_ids}
    bookkeeping = statistics.median(
        t - sum(j.nodes[n]["seconds"] for n in node_ids) for t, j in zip(job_times, jobs, strict=True)
    )
    switching = median_seconds(lambda i: engine(i, styled if i % 2 else base), args.runs)
    loads = cache.stats.total_loads

    # LoRA switch on the warm base, measured directly on the cache (the LoRA file is loaded once, above).
    switch_times = []
    for _ in range(args.runs):
        cache.pipeline(base, "txt2img")
        began = time.perf_counter()
        cache.pipeline(styled, "txt2img")
        switch_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        cache.pipeline(base, "txt2img")
        switch_times.append(time.perf_counter() - began)
    lora_switch = statistics.median(switch_times)
    cold_loads = []  # the first load above also paid for imports: not counted
    for _ in range(max(3, args.runs // 3)):
        fresh = PipelineCache(ModelStore(root), budget_bytes=1 << 30)
        began = time.perf_counter()
        fresh.pipeline(base, "txt2img")
        cold_loads.append(time.perf_counter() - began)
        del fresh
    cold_load = statistics.median(cold_loads)

    ratio = paired_ratio
    overhead = through_engine - baseline
    print(f"direct diffusers call   {baseline * 1000:8.1f} ms   1.00x (baseline)")
    print(
        f"through the engine      {through_engine * 1000:8.1f} ms   {ratio:.3f}x (median of paired ratios)"
        f"   (+{overhead * 1000:.1f} ms per job)   goal <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'}"
    )
    print(f"per-node overhead (median of {args.runs} jobs, {len(node_ids)} nodes, "
          f"{overhead * 1000 / len(node_ids):.2f} ms per node on average):")
    print(f"  load_model            {node_seconds['model'] * 1000:8.2f} ms   (resolve + family check)")
    print(f"  text_to_image         {(node_seconds['draw'] - baseline) * 1000:8.2f} ms   "
          f"(node {node_seconds['draw'] * 1000:.1f} ms minus the direct call)")
    print(f"  save_image            {node_seconds['keep'] * 1000:8.2f} ms   (PNG re-encode + store)")
    print(f"  executor bookkeeping  {bookkeeping * 1000:8.2f} ms   (validation, checkpoints, events; per job)")
    print(
        f"alternating LoRA on/off {switching * 1000:8.1f} ms   {switching / baseline:.2f}x"
        f"   ({loads} loads in total: base once, LoRA once)"
    )
    switch_ratio = lora_switch / cold_load
    print(f"LoRA switch on warm base {lora_switch * 1000:7.2f} ms   / cold base load {cold_load * 1000:.1f} ms"
          f" = {switch_ratio:.4f}   goal <= 0.05: {'met' if switch_ratio <= 0.05 else 'NOT met'}")
    print(f"first base load         {cold * 1000:8.1f} ms   (with the library imports; paid once per worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
