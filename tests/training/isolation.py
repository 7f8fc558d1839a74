"""Training routes for the tenancy tests in tests/accounts/test_tenancy.py."""
from __future__ import annotations

from tests.accounts.isolation import Route
from tests.conftest import Persona
from training.models import Dataset, DatasetItem, TrainingJob

ITEM = "00000000-0000-0000-0000-000000000001"


def make_dataset(persona: Persona) -> str:
    return str(Dataset.objects.create(workspace=persona.workspace, name="Cats", trigger_word="kzcat").pk)


def make_training(persona: Persona) -> str:
    dataset = Dataset.objects.create(workspace=persona.workspace, name="Cats", trigger_word="kzcat")
    return str(TrainingJob.objects.create(
        workspace=persona.workspace, dataset=dataset, name="Cats", trigger_word="kzcat",
        base_model_ref="local:tiny/sd15", family="sd15",
    ).pk)


ROUTES = [
    Route("dataset-list", "GET", "/api/v1/datasets", "read"),
    # No images in the body: the owner is told what to upload (400); who may call it is what counts here.
    Route("dataset-list", "POST", "/api/v1/datasets", "train", body={"name": "x"}, ok=400),
    Route("dataset-detail", "GET", "/api/v1/datasets/{id}", "read", make=make_dataset),
    Route("dataset-detail", "PATCH", "/api/v1/datasets/{id}", "train", make=make_dataset,
          body={"description": "cats on sofas"}),
    Route("dataset-detail", "DELETE", "/api/v1/datasets/{id}", "train", make=make_dataset, ok=204),
    Route("dataset-images", "POST", "/api/v1/datasets/{id}/images", "train", make=make_dataset, body={}, ok=400),
    Route("dataset-captions", "POST", "/api/v1/datasets/{id}/captions", "train", make=make_dataset,
          body={"captions": {}}),
    Route("dataset-captions", "PATCH", "/api/v1/datasets/{id}/captions", "train", make=make_dataset,
          body={"captions": {}}),
    # Checks are per model family; with no trainable model installed the owner is told to pick one (400).
    Route("dataset-checks", "GET", "/api/v1/datasets/{id}/checks", "read", make=make_dataset, ok=400),
    Route("dataset-delete-item", "DELETE", f"/api/v1/datasets/{{id}}/items/{ITEM}", "train", make=make_dataset,
          ok=404),
    Route("training-list", "GET", "/api/v1/trainings", "read"),
    Route("training-list", "POST", "/api/v1/trainings", "train", body={"name": "x"}, ok=400),
    Route("training-detail", "GET", "/api/v1/trainings/{id}", "read", make=make_training),
    Route("training-cancel", "POST", "/api/v1/trainings/{id}/cancel", "train", make=make_training),
    Route("training-presets", "GET", "/api/v1/trainings/presets", "read"),
]

TENANT_MODELS = [Dataset, (DatasetItem, "dataset__workspace"), TrainingJob]
