"""Failures of built-in nodes worth another attempt, turned into ``TransientNodeError`` so the executor
retries them with backoff (``Node.max_retries``):

- CUDA (or MPS) running out of memory: the worker's warm pipelines are dropped and the accelerator's
  cache emptied first, so the next attempt loads only what this node needs;
- the model store failing to reach the Hub (connection refused, timeout, 5xx, 429), as opposed to a
  model that is missing or private, which fails at once.

Anything else propagates unchanged (a ``NodeError`` keeps its words, ``JobCanceled`` still cancels).
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from gpu_workers.models.errors import ModelStoreUnreachable
from gpu_workers.sdk import NodeContext, TransientNodeError

RunMethod = TypeVar("RunMethod", bound=Callable[..., Any])


def is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None) if torch else None
    if isinstance(oom_type, type) and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_accelerator_memory(ctx: NodeContext) -> None:
    """Drop the warm pipelines (when the model provider can) and return cached blocks to the driver."""
    release = getattr(ctx.models, "free_memory", None)
    if callable(release):
        release()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def transient_failures(ctx: NodeContext) -> Iterator[None]:
    try:
        yield
    except ModelStoreUnreachable as exc:
        raise TransientNodeError(str(exc)) from exc
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        free_accelerator_memory(ctx)
        raise TransientNodeError(
            f"the accelerator ran out of memory ({exc}); freed the cached models to try again"
        ) from exc


def retries_transient_failures(run: RunMethod) -> RunMethod:
    """Decorate a node's ``run(self, ctx, inputs)`` with ``transient_failures``."""

    @functools.wraps(run)
    def wrapper(self: Any, ctx: NodeContext, inputs: Any) -> Any:
        with transient_failures(ctx):
            return run(self, ctx, inputs)

    return wrapper  # type: ignore[return-value]
