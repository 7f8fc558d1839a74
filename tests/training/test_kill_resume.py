"""J4 with a real process kill: a worker process is SIGKILLed after its first checkpoint; the next
worker resumes from that checkpoint, does not redo the steps before it, and finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from tests.conftest import subprocess_env
from training.models import TrainingJob

from .conftest import FAST_PARAMS
from .helpers import smooth_png, upload, zip_of

REPO = Path(__file__).resolve().parents[2]
TOTAL, EVERY = 40, 10


def worker(env: dict[str, str], job_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own manage.py with a job id from the database
        [sys.executable, "manage.py", "training_run", job_id],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_resumes_from_its_checkpoint(owner, sd15_model, settings, monkeypatch):
    monkeypatch.setattr("training.services.enqueue", lambda job: None)  # the worker processes below run it
    files = [upload("set.zip", zip_of([(f"{i}.png", smooth_png(64, 64, seed=i)) for i in range(4)]))]
    params = {**FAST_PARAMS, "steps": TOTAL, "checkpoint_every": EVERY, "batch_size": 1}
    response = owner.client().post(
        "/api/v1/trainings",
        {"images": files, "name": "Kill me", "params": json.dumps(params)},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    env = subprocess_env(settings, KIZY_TRAINING_LEASE_SECONDS="3")

    first = worker(env, job_id)
    deadline = time.monotonic() + 300
    while TrainingJob.objects.get(pk=job_id).latest_checkpoint_step is None:
        if first.poll() is not None:
            pytest.fail(f"the worker ended before its first checkpoint:\n{first.stdout.read()}")
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed = TrainingJob.objects.get(pk=job_id)
    checkpoint = killed.latest_checkpoint_step
    assert killed.status == "processing" and killed.lora_id is None and checkpoint < TOTAL
    assert killed.lease_owner  # the dead worker's lease is still on the row

    while TrainingJob.objects.get(pk=job_id).lease_expires_at > timezone.now():
        time.sleep(0.2)  # what Celery's redelivery waits for too (the visibility timeout)
    second = worker(env, job_id)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0 and output.strip().endswith("succeeded"), output

    job = TrainingJob.objects.get(pk=job_id)
    assert job.status == "succeeded" and job.step == TOTAL and job.lora_id is not None
    assert [run["resumed_from"] for run in job.runs] == [None, checkpoint]
    steps = [entry[0] for entry in job.loss_history]
    assert steps == list(range(1, TOTAL + 1))  # every step once: none lost, none redone
    runs_by_step = {entry[0]: entry[2] for entry in job.loss_history}
    assert {runs_by_step[s] for s in range(1, checkpoint + 1)} == {1}  # trained by the killed worker
    assert {runs_by_step[s] for s in range(checkpoint + 1, TOTAL + 1)} == {2}  # by the second one
    assert f"Resumed from the checkpoint at step {checkpoint}" in job.logs
    assert [c["step"] for c in job.checkpoints] == list(range(EVERY, TOTAL + 1, EVERY))
