"""A broken or duplicate node pack stops start-up, naming the pack.

`manage.py check`, `migrate` and `runserver` run the system check below (so does `make up`, whose first
step is `migrate`); a Celery worker runs the same load in `worker_init` and exits. Without this, the
registry would fail on every request that needs it (`lru_cache` does not cache exceptions) and answer
500s instead of refusing to start."""
from __future__ import annotations

import logging
from typing import Any

from django.core.checks import Error, register

from gpu_workers.registry import NodePackError

from .engine import node_registry

logger = logging.getLogger(__name__)
NODE_PACKS_TAG = "kizy_node_packs"
HINT = ("Fix or uninstall the pack named above, or leave it out of KIZY_NODE_PACKS (the allow-list of packs "
        "that may load); see docs/node-packs.md.")


def node_pack_problem() -> str | None:
    """Load every allow-listed pack now; the error's words when one is broken or defines a taken type."""
    try:
        node_registry()
    except NodePackError as exc:
        return str(exc)
    return None


@register(NODE_PACKS_TAG)
def node_packs_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    problem = node_pack_problem()
    if problem is None:
        return []
    return [Error(f"The node packs cannot be loaded: {problem}", hint=HINT, id="studio.E010")]


def refuse_to_start_worker(**kwargs: Any) -> None:
    """Celery `worker_init`: a worker with a broken pack would fail every job; exit instead.

    SystemExit, because Celery logs and ignores ordinary exceptions raised by signal handlers."""
    problem = node_pack_problem()
    if problem is not None:
        logger.critical("The node packs cannot be loaded: %s", problem)
        raise SystemExit(f"Kizy worker not started. The node packs cannot be loaded: {problem}\n{HINT}")
