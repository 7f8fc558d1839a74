"""The trained LoRA, selected in a studio generation (POST /api/v1/generations), changes what is drawn;
another workspace cannot select it (T3). Uses the studio's demo catalog and its worker model store."""
from __future__ import annotations

import json

import pytest
from django.conf import LazySettings

from tests.studio.conftest import demo_catalog, tiny_sd15_files  # noqa: F401 - the studio's fixtures
from training.models import TrainingJob

from .conftest import FAST_PARAMS
from .helpers import smooth_png, upload, zip_of


@pytest.fixture(autouse=True)
def training_settings(settings: LazySettings) -> None:
    """Unlike the rest of tests/training, keep the site's model store: the studio's worker uses it."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.KIZY_DEVICE = "cpu"


@pytest.mark.django_db(transaction=True)
def test_the_trained_lora_changes_a_studio_generation(owner, outsider, demo_catalog):  # noqa: F811
    model = next(m for m in demo_catalog.models if m.family == "sd15")
    files = [upload("set.zip", zip_of([(f"{i}.png", smooth_png(64, 64, seed=30 + i)) for i in range(4)]))]
    params = {**FAST_PARAMS, "learning_rate": 1e-3}
    response = owner.client().post("/api/v1/trainings", {"images": files, "name": "Harbour ink", "goal_type": "style",
                                   "model": str(model.pk), "params": json.dumps(params)}, format="multipart")
    assert response.status_code == 201, response.content
    job = TrainingJob.objects.get(pk=response.json()["id"])
    assert job.status == "succeeded", job.error

    client = owner.client()
    body = {"prompt": f"a harbour at dawn in the style of {job.trigger_word}", "model": str(model.pk), "seed": 5,
            "steps": 2, "width": 64, "height": 64}
    shas = []
    for loras in ([], [{"id": str(job.lora_id), "weight": 1.0}], []):
        created = client.post("/api/v1/generations", {**body, "loras": loras}, format="json")
        assert created.status_code == 201, created.content
        generation = client.get(f"/api/v1/generations/{created.json()['id']}").json()
        assert generation["status"] == "succeeded", generation["error"]
        shas.append(generation["outputs"][0]["sha256"])
    assert shas[0] != shas[1], "selecting the trained LoRA should change the image"
    assert shas[0] == shas[2], "leaving it out gives the base image back"

    theirs = outsider.client().post("/api/v1/generations", {**body, "loras": [{"id": str(job.lora_id)}]},
                                    format="json")
    assert theirs.status_code == 400 and "loras" in theirs.json()["errors"]
