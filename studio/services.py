"""Writes for generation jobs: submit (idempotent, queued on commit), cancel."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.workspace_auth import WorkspaceAuth
from gpu_workers.graph import validate_graph

from . import events
from .engine import node_registry, request_cancel
from .models import Generation, Source, Status
from .references import Resolver, catalog_resolver, reference_problems

WEBHOOK_EVENTS = ("start", "output", "logs", "completed")


class GraphInvalid(ValidationError):
    """400 with every problem of a graph, each naming node and port."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__({"graph": errors})
        self.errors = errors


def graph_problems(*, graph: Any, auth: WorkspaceAuth, resolve: Resolver | None = None) -> list[dict[str, Any]]:
    registry = node_registry()
    resolve = resolve or catalog_resolver(auth.workspace)
    # References are checked here, once, for every kind of port (see references.py).
    problems = [dict(issue) for issue in validate_graph(graph, registry, workspace_id=str(auth.workspace.pk))]
    return problems + reference_problems(graph, registry, resolve)


@dataclass(frozen=True)
class Submitted:
    generation: Generation
    created: bool  # False when an Idempotency-Key matched an earlier request


def _clean_webhook(webhook: str, events_filter: list[str] | None) -> list[str]:
    chosen = list(events_filter or (WEBHOOK_EVENTS if webhook else []))
    unknown = [event for event in chosen if event not in WEBHOOK_EVENTS]
    if unknown:
        raise ValidationError({"webhook_events_filter": f"Unknown event(s) {', '.join(unknown)}; "
                                                        f"choose from {', '.join(WEBHOOK_EVENTS)}."})
    if webhook:
        from .webhooks import check_destination_url

        check_destination_url(webhook)
    return chosen


def generation_submit(
    *, auth: WorkspaceAuth, graph: dict[str, Any], source: str = Source.WORKFLOW, request: dict[str, Any] | None = None,
    idempotency_key: str = "", webhook: str = "", webhook_events_filter: list[str] | None = None,
    model_ref: str = "", lora_refs: list[str] | None = None, resolve: Resolver | None = None,
) -> Submitted:
    """Validate the graph, write the job row, and queue its task once the row is committed."""
    idempotency_key = (idempotency_key or "").strip()[:200]
    if idempotency_key:
        earlier = Generation.objects.filter(workspace=auth.workspace, idempotency_key=idempotency_key).first()
        if earlier is not None:
            return Submitted(generation=earlier, created=False)
    problems = graph_problems(graph=graph, auth=auth, resolve=resolve)
    if problems:
        raise GraphInvalid(problems)
    events_filter = _clean_webhook(webhook, webhook_events_filter)
    try:
        with transaction.atomic():
            generation = Generation.objects.create(
                workspace=auth.workspace, created_by=auth.user, api_key=auth.api_key, source=source,
                request=request or {}, graph=graph, idempotency_key=idempotency_key, webhook=webhook,
                webhook_events_filter=events_filter, model_ref=model_ref, lora_refs=lora_refs or [],
            )
            transaction.on_commit(lambda: enqueue(generation))
    except IntegrityError:  # two identical Idempotency-Keys raced; the first one wins
        generation = Generation.objects.get(workspace=auth.workspace, idempotency_key=idempotency_key)
        return Submitted(generation=generation, created=False)
    return Submitted(generation=generation, created=True)


def enqueue(generation: Generation) -> None:
    from .tasks import run_generation

    run_generation.apply_async(args=[str(generation.pk)], queue="gpu")


@transaction.atomic
def generation_cancel(*, generation: Generation) -> Generation:
    """Cancel: a queued job ends at once; a running one stops at its next step."""
    generation = Generation.objects.select_for_update().get(pk=generation.pk)
    if generation.is_terminal:
        return generation
    generation.cancel_requested = True
    fields = ["cancel_requested"]
    if generation.status == Status.STARTING and generation.lease_owner == "":
        generation.status = Status.CANCELED
        generation.completed_at = timezone.now()
        fields += ["status", "completed_at"]
    generation.save(update_fields=fields)
    job_id = str(generation.pk)
    transaction.on_commit(lambda: request_cancel(job_id))
    if generation.status == Status.CANCELED:
        events.job_finished_on_commit(generation)
    return generation


def controlnet_for(family: str, preprocessor: str) -> str:
    """The operator-installed ControlNet for a family (KIZY_CONTROLNETS), or a 400 saying it is missing."""
    from django.conf import settings

    ref = (settings.KIZY_CONTROLNETS.get(family) or {}).get(preprocessor, "")
    if not ref:
        raise ValidationError({"detailers": f"No {preprocessor} ControlNet is installed for {family} models; "
                                            "turn ControlNet off or ask the operator to add one (KIZY_CONTROLNETS)."})
    return str(ref)


def generation_request_submit(
    *, auth: WorkspaceAuth, data: dict[str, Any], image_upload: Any = None, source: str = Source.STUDIO,
    idempotency_key: str = "", webhook: str = "", webhook_events_filter: list[str] | None = None,
) -> Submitted:
    """A studio request (prompt, guide image, model, LoRAs, detailers, size…) → graph → job."""
    import secrets

    from . import catalog_bridge
    from .compiler import compile_request
    from .guide_images import store_guide_image
    from .request_schema import GenerationRequestSerializer

    if idempotency_key:
        earlier = Generation.objects.filter(workspace=auth.workspace, idempotency_key=idempotency_key.strip()).first()
        if earlier is not None:
            return Submitted(generation=earlier, created=False)
    if image_upload is not None:
        data = {**data, "image": ""}
    serializer = GenerationRequestSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    request = dict(serializer.validated_data)
    try:
        chosen = (catalog_bridge.model_entry(workspace=auth.workspace, ref=request["model"])
                  if request["model"] else None)
        if request["loras"] == "auto":  # Auto also picks the model when the person did not
            model, picks = catalog_bridge.auto_pick(workspace=auth.workspace, prompt=request["prompt"], model=chosen)
        else:
            model, picks = chosen or catalog_bridge.default_model(workspace=auth.workspace), request["loras"]
        known = {("model", str(model.pk)): catalog_bridge.installed_ref(model, "model")}
        loras = catalog_bridge.lora_choices(workspace=auth.workspace, model=model, picks=picks, known=known)
    except LookupError as exc:
        field = "loras" if "LoRA" in str(exc) else "model"
        raise ValidationError({field: str(exc.args[0] if exc.args else exc)}) from exc
    guide = store_guide_image(workspace=auth.workspace, value=image_upload or request.pop("image", ""))
    request.pop("image", None)
    seed = request["seed"] if request.get("seed") is not None else secrets.randbelow(2**32)
    controlnet_ref = ""
    if request["detailers"].get("controlnet"):
        controlnet_ref = controlnet_for(model.family, request["detailers"]["controlnet"])
    compiled = compile_request(request, model=catalog_bridge.model_choice(model), loras=loras, guide=guide, seed=seed,
                               controlnet_ref=controlnet_ref)
    record = {**compiled.resolved, "auto_loras": data.get("loras") == "auto"}
    if guide:
        record["image"] = guide["key"]
    return generation_submit(
        auth=auth, graph=compiled.graph, source=source, request=record, idempotency_key=idempotency_key,
        webhook=webhook, webhook_events_filter=webhook_events_filter, model_ref=str(model.pk),
        lora_refs=[lora.id for lora in loras], resolve=catalog_resolver(auth.workspace, known),
    )
