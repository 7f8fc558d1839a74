"""Studio routes for the tenancy tests in tests/accounts/test_tenancy.py."""
from __future__ import annotations

from studio.models import Generation, WebhookDelivery, WebhookEndpoint
from tests.accounts.isolation import Route
from tests.conftest import Persona

GRAPH = {"nodes": {"n": {"type": "const_int", "inputs": {"value": 1}}}, "outputs": ["n"]}


def make_generation(persona: Persona) -> str:
    return str(Generation.objects.create(workspace=persona.workspace, graph=GRAPH, source="workflow").pk)


def make_upload(persona: Persona) -> str:
    """A file uploaded through `/v1/files` (stored as PNG, content-addressed): its id."""
    import hashlib
    import io

    from PIL import Image

    from gpu_workers.artifacts import artifact_key
    from studio.engine import StorageArtifactStore

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    sha = hashlib.sha256(buffer.getvalue()).hexdigest()
    StorageArtifactStore().put(artifact_key(str(persona.workspace.pk), sha, "png"), buffer.getvalue(), "image/png")
    return sha


# Prompt requests answer 400 here because these tests install no model ("No model is installed yet");
# what they check is who may call them at all.
NO_MODEL = 400

ROUTES = [
    Route("api-nodes", "GET", "/api/v1/nodes", "read"),
    Route("workflow-list", "GET", "/api/v1/workflows", "read"),
    Route("workflow-list", "POST", "/api/v1/workflows", "generate", body={"graph": GRAPH}, ok=201),
    Route("workflow-detail", "GET", "/api/v1/workflows/{id}", "read", make=make_generation),
    Route("workflow-cancel", "POST", "/api/v1/workflows/{id}/cancel", "generate", make=make_generation),
    Route("generation-list", "GET", "/api/v1/generations", "read"),
    Route("generation-list", "POST", "/api/v1/generations", "generate", body={"prompt": "a fox"}, ok=NO_MODEL),
    Route("generation-detail", "GET", "/api/v1/generations/{id}", "read", make=make_generation),
    Route("generation-cancel", "POST", "/api/v1/generations/{id}/cancel", "generate", make=make_generation),
    Route("replicate-predictions", "GET", "/v1/predictions", "read"),
    Route("replicate-predictions", "POST", "/v1/predictions", "generate",
          body={"version": "kizy/none", "input": {"prompt": "a fox"}}, ok=NO_MODEL),
    Route("replicate-prediction", "GET", "/v1/predictions/{id}", "read", make=make_generation),
    Route("replicate-cancel", "POST", "/v1/predictions/{id}/cancel", "generate", make=make_generation),
    Route("replicate-model-run", "POST", "/v1/models/kizy/none/predictions", "generate",
          body={"input": {"prompt": "a fox"}}, ok=NO_MODEL),
    Route("replicate-files", "POST", "/v1/files", "generate", body={}, ok=400),  # no upload: "content" is named
    Route("replicate-file", "GET", "/v1/files/{id}", "read", make=make_upload),
    Route("openai-images", "POST", "/v1/images/generations", "generate", body={"prompt": "a fox"}, ok=NO_MODEL),
    Route("openai-image-edits", "POST", "/v1/images/edits", "generate", body={"prompt": "a fox"}, ok=NO_MODEL),
]

TENANT_MODELS = [Generation, WebhookEndpoint, WebhookDelivery]


def make_endpoint(persona: Persona) -> str:
    return str(WebhookEndpoint.objects.create(workspace=persona.workspace, url="https://hooks.example.com/k").pk)


def make_delivery(persona: Persona) -> str:
    return WebhookDelivery.objects.create(id=f"msg_{persona.workspace.pk.hex[:12]}", workspace=persona.workspace,
                                          url="https://hooks.example.com/k", event="completed", payload={}).pk


ROUTES += [
    Route("webhook-endpoint-list", "GET", "/api/v1/webhooks", "read"),
    # example.com does not resolve from the test machine: the URL check answers 400 naming the field.
    Route("webhook-endpoint-list", "POST", "/api/v1/webhooks", "admin", body={"url": "https://hooks.invalid/x"},
          ok=400),
    Route("webhook-endpoint-detail", "GET", "/api/v1/webhooks/{id}", "read", make=make_endpoint),
    Route("webhook-endpoint-detail", "DELETE", "/api/v1/webhooks/{id}", "admin", make=make_endpoint, ok=204),
    Route("webhook-delivery-list", "GET", "/api/v1/webhook-deliveries", "read"),
    Route("webhook-delivery-detail", "GET", "/api/v1/webhook-deliveries/{id}", "read", make=make_delivery),
    Route("webhook-secret", "GET", "/api/v1/webhooks/secret", "admin"),
    Route("webhook-secret", "POST", "/api/v1/webhooks/secret", "admin"),
]
