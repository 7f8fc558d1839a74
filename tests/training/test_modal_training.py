"""Trainings on the Modal backend: the app's `GpuTrainer.train` body runs in-process with `.local()`
(as tests/gpu_workers/test_modal_backend.py does for generations), and a training submitted with
KIZY_COMPUTE_BACKEND=modal goes through it end to end, files on S3 (moto's server on loopback)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.core.files.storage import default_storage

from gpu_workers.artifacts import FilesystemArtifactStore
from gpu_workers.models.errors import ModelError
from gpu_workers.sdk import JobCanceled
from gpu_workers.training.presets import resolve_params
from gpu_workers.training.remote import TrainingPayload, replay_training
from gpu_workers.training.spec import RecordingTrainingEvents, TrainingItem, TrainingSpec
from tests.site.test_storage import moto_endpoint, s3  # noqa: F401  (fixtures)
from training import runner
from training.models import TrainingJob

from .conftest import FAST_PARAMS
from .helpers import png, smooth_png, upload, zip_of


@pytest.fixture
def trainer(monkeypatch, tiny_model_store, modal_cancel_flags):
    monkeypatch.setenv("KIZY_MODEL_STORE", str(tiny_model_store))
    from gpu_workers.backends.modal_app import GpuTrainer

    return GpuTrainer()


def payload(root, *, model_ref: str = "local:sd15", job_id: str = "train-1") -> dict:
    store = FilesystemArtifactStore(root)
    items = []
    for index in range(3):
        key = f"ws/ws-1/datasets/d1/{index}.png"
        store.put(key, png(64, 64, seed=index), "image/png")
        items.append(TrainingItem(key=key, caption=f"a photo of zkw, picture {index}", width=64, height=64))
    params = resolve_params("sd15", {"steps": 4, "resolution": 64, "checkpoint_every": 2, "sample_steps": 1,
                                     "batch_size": 1, "rank": 4, "alpha": 4})
    spec = TrainingSpec(job_id=job_id, workspace_id="ws-1", family="sd15", params=params, items=tuple(items),
                        sample_prompts=("a photo of zkw",), trigger_word="zkw")
    return TrainingPayload(spec=spec, model_ref=model_ref,
                           storage={"kind": "filesystem", "root": str(root)}).model_dump(mode="json")


def test_the_modal_trainer_streams_steps_checkpoints_and_the_lora(trainer, tmp_path):
    events = RecordingTrainingEvents()
    result = replay_training(iter(trainer.train.local(payload(tmp_path))), events, lambda: False)
    store = FilesystemArtifactStore(tmp_path)
    assert [s[0] for s in events.steps] == [1, 2, 3, 4] and events.starts == [None]
    assert [c.step for c in events.checkpoints] == [2, 4]
    assert all(store.exists(s.key) for c in events.checkpoints for s in c.samples)
    assert result.steps == 4 and store.exists(result.lora_key) and store.exists(result.kohya_key)
    assert len(result.loss_history) == 4 and result.reproducibility


def test_a_raised_cancel_flag_stops_the_modal_trainer(trainer, tmp_path, modal_cancel_flags):
    modal_cancel_flags["train-1"] = True
    with pytest.raises(JobCanceled):
        replay_training(iter(trainer.train.local(payload(tmp_path))), None, lambda: False)
    assert "train-1" not in modal_cancel_flags  # forgotten once the call ends


def test_a_missing_base_model_comes_back_as_a_model_error(trainer, tmp_path):
    with pytest.raises(ModelError, match="nothing-here"):
        replay_training(iter(trainer.train.local(payload(tmp_path, model_ref="local:nothing-here"))), None,
                        lambda: False)


@pytest.mark.django_db(transaction=True)
def test_a_training_runs_on_the_modal_backend_when_configured(
    owner, sd15_model, trainer, modal_cancel_flags, s3, settings, monkeypatch  # noqa: F811
):
    import modal

    calls = []

    def from_name(app_name, class_name):
        calls.append((app_name, class_name))
        return lambda: SimpleNamespace(train=SimpleNamespace(remote_gen=trainer.train.local))

    monkeypatch.setattr(modal.Cls, "from_name", staticmethod(from_name))
    monkeypatch.setattr(modal.Dict, "from_name", staticmethod(lambda name, **kwargs: modal_cancel_flags))
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    # If the worker trained by itself it would fail: this worker has no model store.
    settings.KIZY_MODEL_STORE = settings.KIZY_HOME / "no-models-here"
    settings.KIZY_COMPUTE_BACKEND = "modal"
    settings.KIZY_S3_BUCKET = s3

    images = zip_of([(f"{i}.png", smooth_png(64, 64, seed=20 + i)) for i in range(3)])
    response = owner.client().post(
        "/api/v1/trainings",
        {"images": [upload("set.zip", images)], "name": "Mira", "params": json.dumps(FAST_PARAMS)},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    assert runner.training_execute(job_id=job_id) == "succeeded"
    assert calls == [("kizy-gpu", "GpuTrainer")]
    job = TrainingJob.objects.get(pk=job_id)
    assert job.step == 20 and [c["step"] for c in job.checkpoints] == [10, 20]
    assert [entry[0] for entry in job.loss_history] == list(range(1, 21))
    assert job.runs[-1]["device"] == "cpu"  # what the container reported (no GPU in this test)
    assert default_storage.exists(job.lora_key) and job.lora is not None
    assert all(default_storage.exists(s["key"]) for c in job.checkpoints for s in c["samples"])


def test_with_a_storage_secret_the_bucket_keys_stay_out_of_the_training_call(monkeypatch, modal_cancel_flags, tmp_path):
    import modal

    from gpu_workers.backends.modal_backend import ModalBackend

    sent = []

    def remote_gen(data):
        sent.append(data)
        return iter([{"error": {"kind": "canceled"}}])

    monkeypatch.setattr(modal.Cls, "from_name", staticmethod(
        lambda app, name: lambda: SimpleNamespace(train=SimpleNamespace(remote_gen=remote_gen))))
    monkeypatch.setattr(modal.Dict, "from_name", staticmethod(lambda name, **kwargs: modal_cancel_flags))
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setenv("KIZY_MODAL_STORAGE_SECRET", "kizy-bucket")
    job = TrainingPayload.model_validate(payload(tmp_path)).model_copy(
        update={"storage": {"kind": "s3", "bucket": "b", "access_key": "AK", "secret_key": "SK"}}
    )
    with pytest.raises(JobCanceled):
        ModalBackend().submit_training(job)
    assert sent[0]["storage"] == {"kind": "s3", "bucket": "b"} and sent[0]["spec"]["job_id"] == "train-1"
