"""Catalog routes for the tenancy tests in tests/accounts/test_tenancy.py: private models and LoRAs
belong to one workspace; public entries and intents are everyone's."""
from __future__ import annotations

from models_catalog.models import BaseModel, LoraAdapter
from tests.accounts.isolation import Route
from tests.conftest import Persona


def make_private_lora(persona: Persona) -> str:
    return str(LoraAdapter.objects.create(
        workspace=persona.workspace, name="Private style", family="sd15", source="upload",
        external_id=f"upload-{persona.workspace.pk}", store_ref="artifact:x", status="installed",
    ).pk)


def make_private_model(persona: Persona) -> str:
    return str(BaseModel.objects.create(
        workspace=persona.workspace, name="Private model", family="sd15", source="local",
        external_id=f"private-{persona.workspace.pk}", status="installed",
    ).pk)


ROUTES = [
    Route("catalog-model-list", "GET", "/api/v1/models", "read"),
    Route("catalog-model-detail", "GET", "/api/v1/models/{id}", "read", make=make_private_model),
    Route("catalog-lora-list", "GET", "/api/v1/loras", "read"),
    Route("catalog-lora-detail", "GET", "/api/v1/loras/{id}", "read", make=make_private_lora),
    # Without ?model= the owner is told what to add (400); an outsider never learns the LoRA exists (404).
    Route("catalog-lora-compatibility", "GET", "/api/v1/loras/{id}/compatibility", "read",
          make=make_private_lora, ok=400),
    Route("catalog-lora-import-lora", "POST", "/api/v1/loras/import", "generate", body={}, ok=400),
    # Installing needs `generate`; the owner's private entries are already installed (200, nothing queued),
    # and an outsider is told they do not exist (404).
    Route("catalog-model-install", "POST", "/api/v1/models/{id}/install", "generate", make=make_private_model),
    Route("catalog-lora-install", "POST", "/api/v1/loras/{id}/install", "generate", make=make_private_lora),
    Route("catalog-intent-list", "GET", "/api/v1/intents", "read"),
    Route("catalog-intent-detail", "GET", "/api/v1/intents/anime", "read"),
    Route("catalog-suggest", "POST", "/api/v1/suggest", "read", body={"prompt": "an anime girl"}),
]

TENANT_MODELS = [BaseModel, LoraAdapter]
