"""J1/J2 with real processes: a Celery worker is SIGKILLed mid-job; the job is picked up again,
resumes from its node checkpoints, and ends with one output set and one `completed` webhook."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kizy_site.celery import app as celery_app
from studio.models import Generation, WebhookDelivery
from studio.runner import acquire_lease, generation_execute, requeue_stale_jobs
from tests.conftest import subprocess_env
from tests.studio.test_webhooks import Receiver

REPO = Path(__file__).resolve().parents[2]
GRAPH = {
    "nodes": {
        "img": {"type": "make_image", "inputs": {"width": 8, "height": 8}},
        "slow": {"type": "slow_steps", "inputs": {"label": "crash", "steps": 30, "delay_s": 0.2}},
        "inv": {"type": "invert_image", "inputs": {"image": {"node": "img", "output": "image"}}},
        "sum": {"type": "add", "inputs": {"a": {"node": "slow", "output": "completed"}, "b": 1}},
    },
    "outputs": ["inv", "sum"],
}


def start_worker(env: dict[str, str], name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "kizy_site", "worker", "-Q", "gpu,default", "--pool=solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h", "--loglevel=INFO"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_worker_job_resumes_with_one_output_and_one_webhook(owner, settings):
    settings.KIZY_WEBHOOK_ALLOW_PRIVATE = True
    settings.KIZY_JOB_LEASE_SECONDS = 3
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False  # this test process only queues; real workers run the job
    receiver = Receiver([])
    env = subprocess_env(settings, CELERY_TASK_ALWAYS_EAGER="false", KIZY_JOB_LEASE_SECONDS="3",
                         KIZY_WEBHOOK_ALLOW_PRIVATE="true")
    workers = [start_worker(env, "first")]
    try:
        response = owner.client().post("/api/v1/workflows", {"graph": GRAPH, "webhook": receiver.url,
                                                             "webhook_events_filter": ["completed"]}, format="json")
        assert response.status_code == 201, response.json()
        job = Generation.objects.get(pk=response.json()["id"])

        def slow_is_running() -> bool:
            job.refresh_from_db()
            return job.node_states.get("slow", {}).get("status") == "running" and job.progress > 0.3

        wait_for(slow_is_running, 120, "the slow node to start in the first worker")
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=10)

        workers.append(start_worker(env, "second"))
        time.sleep(3.5)  # the dead worker's lease runs out
        assert requeue_stale_jobs() == [str(job.pk)]  # what Celery beat does every minute

        def finished() -> bool:
            job.refresh_from_db()
            return job.is_terminal

        wait_for(finished, 120, "the job to finish in the second worker")
        assert job.status == "succeeded", job.error
        assert job.attempts == 2
        assert job.node_states["img"]["resumed"] is True  # finished before the kill: not run again
        assert job.node_states["slow"]["resumed"] is False
        assert len(job.outputs) == 1 and job.outputs[0]["node"] == "inv"
        wait_for(lambda: len(receiver.requests) >= 1, 30, "the completed webhook")
        time.sleep(1)
        assert len(receiver.requests) == 1
        assert WebhookDelivery.objects.filter(generation=job, event="completed").count() == 1
    finally:
        celery_app.conf.task_always_eager = eager
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
        receiver.close()


@pytest.mark.django_db
def test_a_redelivered_duplicate_sees_the_lease_and_exits(owner, monkeypatch):
    job = Generation.objects.create(workspace=owner.workspace, graph=GRAPH)
    assert acquire_lease(str(job.pk), "worker-a:1") is not None
    monkeypatch.setattr("studio.runner.worker_id", lambda: "worker-b:2")
    assert generation_execute(generation_id=str(job.pk)).startswith("skipped")
    job.refresh_from_db()
    assert job.status == "starting" and job.lease_owner == "worker-a:1" and job.attempts == 1


@pytest.mark.django_db
def test_a_poison_job_fails_after_its_attempts(owner, settings):
    job = Generation.objects.create(workspace=owner.workspace, graph=GRAPH, attempts=3)
    assert generation_execute(generation_id=str(job.pk)) == "failed: too many attempts"
    job.refresh_from_db()
    assert job.status == "failed" and "3 attempts" in job.error and job.lease_owner == ""
