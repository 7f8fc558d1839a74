"""The studio's cost over the work itself, measured in one run on the tiny SD 1.5 demo model:

1. end to end: POST /api/v1/generations (`Prefer: wait`, the job run by the in-process worker) until the
   PNG is in storage, against the bare diffusers call on the same warm pipeline, same steps and size;
2. submit throughput: POST /api/v1/generations that only queues (Redis broker), against a bare DRF
   endpoint with the same API-key authentication on the same server;
3. step event → websocket client latency (p50/p95) through the real consumer and Redis channel layer.

Usage: python bench/studio.py [--runs N]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KIZY_HOME", tempfile.mkdtemp(prefix="kizy-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizy_site.settings")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
os.environ.setdefault("OMP_NUM_THREADS", "1")
BODY = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 4, "seed": 1, "scheduler": "euler"}


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def setup() -> tuple[object, str]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("load_demo_catalog", family=["sd15"], verbosity=0)
    from accounts.models import Scope, User
    from accounts.services import api_key_create, workspace_create

    user = User.objects.create_user("bench@example.com", "x")
    workspace = workspace_create(name="Bench", owner=user)
    key = api_key_create(workspace=workspace, created_by=user, name="bench", scopes=Scope.values).secret
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client, key


def end_to_end(client: object, runs: int) -> None:
    import torch

    from gpu_workers.sdk import ModelSpec
    from studio.backends import worker_models
    from studio.models import Generation

    torch.set_num_threads(1)
    client.post("/api/v1/generations", BODY, format="json", HTTP_PREFER="wait")  # warm-up: loads the pipeline
    api, bare = [], []
    for index in range(runs):
        began = time.perf_counter()
        response = client.post("/api/v1/generations", {**BODY, "seed": 100 + index}, format="json",
                               HTTP_PREFER="wait")
        api.append(time.perf_counter() - began)
        assert response.json()["status"] == "succeeded", response.json()
        generation = Generation.objects.get(pk=response.json()["id"])
        spec = ModelSpec(ref=_model_ref(generation), family="sd15")
        pipe = worker_models().pipeline(spec, "txt2img")
        began = time.perf_counter()
        generator = torch.Generator("cpu").manual_seed(100 + index)
        image = pipe(BODY["prompt"], width=64, height=64, num_inference_steps=4, guidance_scale=7.0,
                     generator=generator).images[0]
        image.save(os.devnull, format="PNG")
        bare.append(time.perf_counter() - began)
    ratio = statistics.median(api) / statistics.median(bare)
    print(f"end to end (API submit -> stored PNG), median of {runs}: {median_ms(api):.1f} ms; "
          f"bare diffusers call + PNG encode: {median_ms(bare):.1f} ms")
    print(f"  ratio {ratio:.3f} (goal <= 1.05 plus fixed cost); fixed cost {median_ms(api) - median_ms(bare):.1f} ms")


def _model_ref(generation: object) -> str:
    from models_catalog.models import BaseModel

    return BaseModel.objects.get(pk=generation.model_ref).store_ref  # type: ignore[attr-defined]


def throughput(client: object, key: str, runs: int) -> None:
    from django.test.utils import override_settings
    from django.urls import path
    from rest_framework.response import Response

    from accounts.api.base import WorkspaceAPIView
    from kizy_site.celery import app as celery_app

    class Bare(WorkspaceAPIView):
        scope_map = {"POST": "generate"}

        def post(self, request):  # type: ignore[no-untyped-def]
            return Response({"ok": True}, status=201)

    import kizy_site.urls as urls

    bench_urls = type("BenchUrls", (), {"urlpatterns": [path("bench/bare", Bare.as_view()), *urls.urlpatterns]})
    celery_app.conf.task_always_eager = False  # only queue: the broker is part of the submit path
    with override_settings(ROOT_URLCONF=bench_urls):
        def rate(path: str, body: dict) -> float:
            began = time.perf_counter()
            for index in range(runs):
                response = client.post(path, {**body, "seed": index}, format="json")
                assert response.status_code == 201, response.content
            return runs / (time.perf_counter() - began)

        rate("/bench/bare", {}), rate("/api/v1/generations", BODY)  # warm-up
        bare, submit = rate("/bench/bare", {}), rate("/api/v1/generations", BODY)
    celery_app.conf.task_always_eager = True
    print(f"submit throughput: {submit:.0f} req/s vs bare DRF endpoint {bare:.0f} req/s; "
          f"ratio {submit / bare:.2f} (goal >= 0.7)")


def websocket_latency(key: str, events: int) -> None:
    from channels.testing import WebsocketCommunicator

    from kizy_site.asgi import application
    from studio import events as job_events
    from studio.models import Generation

    generation = Generation.objects.order_by("-created_at").first()

    async def measure() -> list[float]:
        ws = WebsocketCommunicator(application, f"/ws/generations/{generation.pk}/",
                                   headers=[(b"origin", b"http://127.0.0.1:8000"),
                                            (b"authorization", f"Bearer {key}".encode())])
        connected, _ = await ws.connect()
        assert connected
        await ws.receive_json_from(timeout=5)
        sent: dict[int, float] = {}

        def producer() -> None:
            for step in range(events):
                sent[step] = time.perf_counter()
                job_events.emit(generation, {"type": "step", "step": step, "total": events})
                time.sleep(0.005)

        thread = threading.Thread(target=producer)
        thread.start()
        latencies = []
        for _ in range(events):
            message = await ws.receive_json_from(timeout=10)
            latencies.append(time.perf_counter() - sent[message["step"]])
        thread.join()
        await ws.disconnect()
        return latencies

    latencies = sorted(asyncio.run(measure()))
    p50 = latencies[len(latencies) // 2] * 1000
    p95 = latencies[int(len(latencies) * 0.95) - 1] * 1000
    print(f"step event -> websocket client over {events} events: p50 {p50:.2f} ms, p95 {p95:.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    client, key = setup()
    end_to_end(client, args.runs)
    throughput(client, key, args.runs * 10)
    websocket_latency(key, 200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
