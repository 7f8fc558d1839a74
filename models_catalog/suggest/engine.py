"""Turn a prompt into a ready-to-run setup: ranked intents, a base model, LoRAs with weights, detailers.

Every pick carries a plain-language reason. Only what the workspace may use is considered (public
curated entries and its own private LoRAs), so a suggestion can never leak another workspace's LoRA.
Ties are broken by fixed keys, so the same catalog and prompt always give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from .. import access
from ..compat import family_label
from ..families import FAMILY_DEFAULTS, RUNNABLE_FAMILIES
from ..models import BaseModel, Intent, Status
from .index import current_index
from .lora_index import LoraIndex, card_for, current_lora_index
from .scorers import Evidence, IntentCard
from .text import contains_phrase, phrase_tokens, prompt_tokens

MAX_LORAS = 3
MIN_INTENT_SCORE = 0.05
USABLE = (Status.INSTALLED, Status.AVAILABLE, Status.INSTALLING)


@dataclass
class RankedIntent:
    card: IntentCard
    evidence: Evidence

    def reason(self) -> str:
        parts = []
        if self.evidence.phrases:
            quoted = ", ".join(f"“{p}”" for p in self.evidence.phrases[:4])
            parts.append(f"the prompt mentions {quoted}")
        if self.evidence.nearest_example:
            parts.append(f"it reads like “{self.evidence.nearest_example}”")
        if not parts:
            return "no strong signal in the prompt; ranked by overall similarity"
        return f"{self.card.name}: " + " and ".join(parts)


def rank_intents(prompt: str, *, use_embeddings: bool = True) -> tuple[list[RankedIntent], str]:
    scorer, cards = current_index(use_embeddings=use_embeddings)
    scores = scorer.score(prompt)
    ranked = [RankedIntent(card, scores.get(card.slug, Evidence())) for card in cards]
    ranked.sort(key=lambda r: (-round(r.evidence.score, 6), r.card.position, r.card.slug))
    return ranked, scorer.name


def _words(entry: Any) -> set[tuple[str, ...]]:
    phrases = {phrase_tokens(tag.name) for tag in entry.tags.all()}
    phrases |= {phrase_tokens(w) for w in getattr(entry, "trigger_words", []) or []}
    return {p for p in phrases if p}


def _pick_model(
    workspace: Any, prompt_words: list[str], intent: Intent | None, model_id: str | None
) -> tuple[BaseModel | None, str]:
    if model_id:
        model = access.get_model_for_workspace(workspace=workspace, id=model_id)
        return model, f"you chose {model.name}"
    wanted = intent.suggested_family if intent else None
    candidates = list(
        access.visible_models(workspace)
        .filter(status__in=USABLE, family__in=RUNNABLE_FAMILIES)
        .exclude(family="video")
        .prefetch_related("tags")
    )
    if not candidates:
        return None, "no base model is available yet; ask a curator to approve one (or run load_demo_catalog)"

    def score(model: BaseModel) -> tuple[float, ...]:
        text_hits = sum(1 for p in _words(model) if contains_phrase(prompt_words, p))
        return (
            -(4 if model.family == wanted else 0) - 2 * (model.status == Status.INSTALLED) - model.featured - text_hits,
            model.is_demo,
            -model.download_count,
            model.name,
            str(model.id),
        )

    best = min(candidates, key=score)
    reasons = []
    if intent and best.family == wanted:
        reasons.append(f"{family_label(best.family)} models suit {intent.name.lower()}")
    elif intent:
        reasons.append(f"no {family_label(wanted or '')} model is available, so the best other family is used")
    if best.status == Status.INSTALLED:
        reasons.append("it is installed, so it starts at once")
    if best.featured:
        reasons.append("curators feature it")
    if best.is_demo:
        reasons.append("demo model with random weights: it shows the pipeline, not real pictures")
    return best, "; ".join(reasons) or "the best available base model"


def _pick_loras(workspace: Any, model: BaseModel, ranked: list[RankedIntent], prompt: str) -> list[dict[str, Any]]:
    """Curated LoRAs first (featured, then linked to the prompt's intents), then the workspace's own,
    then approved public LoRAs no curator linked yet that the prompt names (tags, triggers, name, text)."""
    relevant = [r for r in ranked[:2] if r.evidence.score >= MIN_INTENT_SCORE]
    intent_rank = {r.card.slug: i for i, r in enumerate(relevant)}
    matched_ids = [m.id for m in current_lora_index().match(prompt, family=model.family)]
    queryset = (
        access.visible_loras(workspace)
        .filter(family=model.family, status__in=USABLE)
        .filter(
            Q(intents__slug__in=list(intent_rank)) | Q(workspace=workspace) | Q(featured=True) | Q(id__in=matched_ids)
        )
        .distinct()
        .prefetch_related("tags", "intents")
    )
    scored = []
    for lora in queryset:
        linked = sorted(intent_rank[i.slug] for i in lora.intents.all() if i.slug in intent_rank)
        match = LoraIndex([card_for(lora)]).match(prompt, family=lora.family)
        found = match[0] if match else None
        relevance = (3.0 if linked and linked[0] == 0 else 1.5 if linked else 0.0) + (found.relevance if found else 0.0)
        if relevance <= 0:
            continue
        public = lora.approved and lora.workspace_id is None
        tier = 3 if lora.featured else 2 if public and linked else 1 if lora.workspace_id else 0
        scored.append((tier, relevance, lora, linked, found))
    scored.sort(key=lambda s: (-s[0], -s[1], -s[2].download_count, s[2].name, str(s[2].id)))
    picks = []
    for index, (tier, _relevance, lora, linked, found) in enumerate(scored[:MAX_LORAS]):
        reasons = []
        if linked:
            reasons.append(f"made for {relevant[linked[0]].card.name.lower()}")
        if found is not None:
            reasons.append(found.reason())
        if tier == 3:
            reasons.append("featured by curators")
        elif tier == 2:
            reasons.append("approved by curators")
        elif tier == 1:
            reasons.append("one of this workspace's own LoRAs")
        else:
            reasons.append("approved by curators; picked from its own description, not linked to an intent yet")
        weight = round(lora.recommended_weight * (1.0 if index == 0 else 0.7), 2)
        if index:
            reasons.append(f"weight lowered to {weight} because it is stacked with another LoRA")
        if lora.is_demo:
            reasons.append("demo LoRA with random weights")
        picks.append(
            {
                "id": str(lora.id),
                "name": lora.name,
                "weight": weight,
                "trigger_words": list(lora.trigger_words),
                "curated": tier >= 2,
                "private": lora.workspace_id is not None,
                "reason": "; ".join(reasons),
                "installed": lora.status == Status.INSTALLED,
            }
        )
    return picks


def suggest(
    *,
    workspace: Any,
    prompt: str,
    model: BaseModel | str | None = None,
    model_id: str | None = None,
    use_embeddings: bool = True,
) -> dict[str, Any]:
    """The auto-pick for `prompt`. `model` (an entry or an id) keeps that base model and picks the rest."""
    if isinstance(model, BaseModel):
        model_id = str(model.pk)
    elif model:
        model_id = str(model)
    ranked, engine = rank_intents(prompt, use_embeddings=use_embeddings)
    prompt_words = prompt_tokens(prompt)
    top = ranked[0] if ranked else None
    intent = Intent.objects.filter(slug=top.card.slug).first() if top else None
    chosen, model_reason = _pick_model(workspace, prompt_words, intent, model_id)
    loras = _pick_loras(workspace, chosen, ranked, prompt) if chosen is not None else []
    detailers = [
        {"name": d.get("name", ""), "reason": d.get("reason", "")} for d in (intent.detailers if intent else [])
    ]
    triggers = [w for lora in loras for w in lora["trigger_words"][:1] if w.lower() not in prompt.lower()]
    settings_out = dict(FAMILY_DEFAULTS.get(chosen.family, {})) if chosen else {}
    if intent and chosen and chosen.family == intent.suggested_family:
        settings_out.update(intent.default_settings)
    settings_out.update(chosen.default_settings if chosen else {})  # the model knows its native size best
    return {
        "prompt": prompt,
        "engine": engine,
        "intents": [
            {
                "slug": r.card.slug,
                "name": r.card.name,
                "score": round(r.evidence.score, 4),
                "reason": r.reason(),
            }
            for r in ranked
        ],
        "model": None
        if chosen is None
        else {
            "id": str(chosen.id),
            "name": chosen.name,
            "family": chosen.family,
            "reason": model_reason,
            "installed": chosen.status == Status.INSTALLED,
        },
        "model_reason": model_reason,
        "loras": loras,
        "detailers": detailers,
        "prompt_with_triggers": ", ".join([prompt, *triggers]) if triggers else prompt,
        "negative_prompt": intent.negative_prompt if intent else "",
        "settings": settings_out,
    }
