"""Quick presets for the demo models and CPU workers, and what the dataset page says about them."""

from __future__ import annotations

import pytest
from django.test import Client

from gpu_workers.training.presets import PRESETS, QUICK_OVERRIDES, describe_presets, resolve_params
from models_catalog.models import BaseModel
from training.models import Dataset, TrainingJob
from training.plan import training_plan, wants_quick_preset

from .helpers import smooth_png, upload, zip_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def real_sd15(db: None) -> BaseModel:
    return BaseModel.objects.create(
        name="Real SD 1.5",
        source="local",
        external_id="real-sd15",
        family="sd15",
        approved=True,
        is_demo=False,
        status="installed",
        store_ref="local:sd15",
    )


def browser(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def demo_sized_dataset(persona) -> Dataset:
    """Pictures the size the demo images are (96 px): fine at 64 px, far too small for 512 px."""
    files = [upload("set.zip", zip_of([(f"{i}.png", smooth_png(96, 96, seed=i)) for i in range(6)]))]
    response = persona.client().post("/api/v1/datasets", {"images": files, "name": "Mira"}, format="multipart")
    assert response.status_code == 201, response.content
    return Dataset.objects.get(pk=response.json()["id"])


def test_the_demo_model_gets_the_quick_preset_even_on_a_gpu(settings, sd15_model, real_sd15):
    settings.KIZY_DEVICE = "cuda"
    assert wants_quick_preset(sd15_model) and not wants_quick_preset(real_sd15)
    quick = resolve_params("sd15", quick=True)
    assert (quick["steps"], quick["resolution"], quick["checkpoint_every"], quick["sample_steps"]) == (60, 64, 20, 4)
    assert resolve_params("sd15")["steps"] == PRESETS["sd15"]["steps"] == 1500
    # Overrides still win over the quick preset, within the same bounds.
    assert resolve_params("sd15", {"steps": 30}, quick=True)["checkpoint_every"] == 20
    assert resolve_params("sd15", {"steps": 10}, quick=True)["checkpoint_every"] == 10
    family = next(f for f in describe_presets()["families"] if f["family"] == "flux")
    assert family["quick_preset"]["resolution"] == 64 and family["preset"]["resolution"] == 1024


def test_a_cpu_worker_gets_the_quick_preset_for_every_model(settings, real_sd15):
    settings.KIZY_DEVICE = "cpu"
    assert wants_quick_preset(real_sd15)
    settings.KIZY_COMPUTE_BACKEND = "modal"  # trainings then run on a cloud GPU, not on this CPU
    assert not wants_quick_preset(real_sd15)


def test_a_training_of_the_demo_model_is_submitted_with_the_quick_preset(owner, settings, sd15_model, monkeypatch):
    settings.KIZY_DEVICE = "cuda"
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    dataset = demo_sized_dataset(owner)
    response = owner.client().post(
        "/api/v1/trainings", {"dataset": str(dataset.pk), "model": str(sd15_model.pk)}, format="json"
    )
    assert response.status_code == 201, response.content
    job = TrainingJob.objects.get()
    assert job.total_steps == 60 and job.params["resolution"] == 64
    assert {k: job.params[k] for k in QUICK_OVERRIDES} == dict(QUICK_OVERRIDES)
    presets = owner.client().get("/api/v1/trainings/presets").json()
    assert {m["name"]: m["preset"] for m in presets["models"]} == {"Tiny SD 1.5": "quick"}


def test_the_dataset_page_states_device_time_and_checks_at_the_size_used(owner, settings, sd15_model):
    settings.KIZY_DEVICE = "cpu"
    dataset = demo_sized_dataset(owner)
    html = browser(owner).get(f"/training/datasets/{dataset.pk}?model={sd15_model.pk}").content.decode()
    assert 'data-testid="training-plan"' in html
    assert "Training runs on the CPU: about 20 seconds (estimated)." in html
    assert "tiny demo model, so this uses the quick preset (60 steps at 64 px)" in html
    assert "For SD 1.5 at 64 px." in html
    assert "Small for SD 1.5" not in html and "Every image covers 64 px training." in html
    assert 'placeholder="60"' in html  # the steps field shows the preset actually used
    assert 'data-preset="quick"' in html
    # The goal is saved as it is typed (static/js/training.js): the form says where and shows the status.
    assert "data-autosave" in html and 'data-testid="autosave-status"' in html
    assert f'data-api="/api/v1/datasets/{dataset.pk}"' in html and html.count("data-goal-field") == 5

    # Asking for 512 px (Advanced) judges the same pictures at 512 px, and the estimate grows with it.
    checks = owner.client().get(f"/api/v1/datasets/{dataset.pk}/checks?model={sd15_model.pk}&resolution=512")
    body = checks.json()
    small = next(c for c in body["checks"] if c["id"] == "too_small")
    assert small["level"] == "warning" and "training at 512 px" in small["message"]
    assert body["params"]["resolution"] == 512 and body["plan"]["estimated_seconds"] > 100


def test_a_real_model_on_a_cpu_is_not_given_a_made_up_estimate(owner, settings, real_sd15):
    settings.KIZY_DEVICE = "cpu"
    dataset = demo_sized_dataset(owner)
    html = browser(owner).get(f"/training/datasets/{dataset.pk}?model={real_sd15.pk}").content.decode()
    assert "A full-size model is very slow there" in html
    assert "so this uses the quick preset (60 steps at 64 px)" in html


def test_the_estimate_uses_the_last_training_of_the_same_model(owner, settings, real_sd15):
    settings.KIZY_DEVICE = "cuda"
    dataset = demo_sized_dataset(owner)
    params = resolve_params("sd15")
    TrainingJob.objects.create(
        workspace=owner.workspace,
        dataset=dataset,
        base_model=real_sd15,
        family="sd15",
        params=params,
        status="succeeded",
        step=1500,
        total_steps=1500,
        reproducibility={"seconds": 900.0},
    )
    plan = training_plan(workspace=owner.workspace, model=real_sd15, params=params)
    assert not plan.quick and plan.device == "cuda" and plan.seconds == 900.0
    assert "about 15 minutes (as the last training of this model here took)" in plan.note
    other = resolve_params("sd15", {"resolution": 768})
    assert training_plan(workspace=owner.workspace, model=real_sd15, params=other).seconds is None


def test_with_device_auto_the_last_workers_report_decides(owner, settings, real_sd15, monkeypatch):
    """A web process without a GPU in front of GPU workers: the device the last training's worker
    reported counts, not the web process's own."""
    from django.utils import timezone

    from training import plan

    settings.KIZY_DEVICE = "auto"
    monkeypatch.setattr(plan, "_cuda_available", lambda: False)
    assert plan.worker_device() == "cpu" and wants_quick_preset(real_sd15)
    dataset = demo_sized_dataset(owner)
    TrainingJob.objects.create(
        workspace=owner.workspace, dataset=dataset, base_model=real_sd15, family="sd15", params={},
        started_at=timezone.now(), runs=[{"run": 1, "device": "cuda"}],
    )
    assert plan.worker_device() == "cuda" and not wants_quick_preset(real_sd15)
