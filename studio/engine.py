"""The Django side of the compute engine: storage, events and cancellation wired into gpu_workers.

`gpu_workers` knows nothing of Django (DESIGN §1); this module gives it what it needs in a worker
process: an ArtifactStore over django-storages, an EventSink that updates the job row and the
channel-layer groups, a cancel check, and the node registry loaded from the allow-listed packs.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import threading
import time
from functools import lru_cache
from typing import Any

import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from gpu_workers.artifacts import ArtifactStore
from gpu_workers.registry import NodeRegistry

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def node_registry() -> NodeRegistry:
    """Every allow-listed node pack (KIZY_NODE_PACKS), loaded once per process (M4)."""
    return NodeRegistry.from_entry_points(settings.KIZY_NODE_PACKS)


class StorageArtifactStore(ArtifactStore):
    """Artifacts in the site's storage (filesystem, S3 or R2), under the workspace's key prefix.

    Content-addressed artifacts are written once and never overwritten (T5); node records (JSON
    under checkpoints/ and jobs/) are bookkeeping and may be replaced when stale.
    """

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if default_storage.exists(key):
            if "/artifacts/" in key:
                return  # same key, same content
            default_storage.delete(key)
        saved = default_storage.save(key, ContentFile(data))
        if saved != key:  # a concurrent writer won the race; its bytes are the same content
            default_storage.delete(saved)

    def get(self, key: str) -> bytes:
        from gpu_workers.artifacts import ArtifactNotFound

        if not default_storage.exists(key):
            raise ArtifactNotFound(key)
        with default_storage.open(key, "rb") as handle:
            return bytes(handle.read())

    def exists(self, key: str) -> bool:
        return bool(default_storage.exists(key))


@lru_cache(maxsize=2)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def cancel_flag_key(job_id: str) -> str:
    return f"kizy:cancel:{job_id}"


def request_cancel(job_id: str) -> None:
    """Raise the flag the running worker checks between steps (cheaper than a query per step)."""
    _redis(settings.REDIS_URL).set(cancel_flag_key(job_id), 1, ex=24 * 3600)


def is_cancel_requested(job_id: str) -> bool:
    return bool(_redis(settings.REDIS_URL).exists(cancel_flag_key(job_id)))


def job_group(kind: str, job_id: str) -> str:
    return f"{kind}_{job_id}".replace("-", "")


def workspace_group(workspace_id: str) -> str:
    return f"workspace_{workspace_id}".replace("-", "")


class EventPublisher:
    """Sends channel-layer events from one long-lived event loop in a side thread, in order.

    `async_to_sync(group_send)` per event starts a fresh loop and a fresh Redis connection each time
    (~50-80 ms under load), which a denoising loop cannot afford per step. Here a node's step only
    enqueues; one consumer task sends events in the order they were published, over connections that
    stay open.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[list[str], dict[str, Any]] | None] | None = None
        self._pid = 0

    def _ensure_started(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked child needs its own thread
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    self._queue = asyncio.Queue()
                    loop.create_task(self._consume())
                    ready.set()
                    loop.run_forever()

                threading.Thread(target=run, daemon=True, name="kizy-event-publisher").start()
                ready.wait(5)
                self._loop, self._pid = loop, os.getpid()
            assert self._queue is not None
            return self._loop, self._queue

    async def _consume(self) -> None:
        assert self._queue is not None
        while True:
            groups, event = await self._queue.get()  # type: ignore[misc]
            layer = get_channel_layer()
            try:
                message = {"type": "job.event", "event": event}
                await asyncio.gather(*(layer.group_send(group, message) for group in groups))
            except Exception:  # noqa: BLE001 - a broken layer must never fail the job
                logger.warning("could not broadcast %s", event.get("type"), exc_info=True)
            finally:
                self._queue.task_done()

    def publish(self, groups: list[str], event: dict[str, Any]) -> None:
        if get_channel_layer() is None:
            return
        loop, queue = self._ensure_started()
        loop.call_soon_threadsafe(queue.put_nowait, (groups, event))

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every published event has been handed to the channel layer."""
        if self._loop is None or self._pid != os.getpid() or self._queue is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._queue.join(), self._loop)
        try:
            future.result(timeout)
        except Exception:  # noqa: BLE001
            logger.warning("events not flushed within %s s", timeout)


_publisher = EventPublisher()


def broadcast(groups: list[str], event: dict[str, Any]) -> None:
    """Send one event to channel-layer groups, without blocking the caller (order is kept)."""
    _publisher.publish(groups, event)


def flush_events(timeout: float = 5.0) -> None:
    _publisher.flush(timeout)


def preview_data_uri(png: bytes | None) -> str | None:
    return "data:image/png;base64," + base64.b64encode(png).decode() if png else None


class Heartbeat:
    """Keeps a job's lease alive from a side thread while a long node runs without progress."""

    def __init__(self, renew: Any, every: float = 10.0) -> None:
        self._renew, self._every = renew, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="kizy-lease-heartbeat")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._renew()
            except Exception:  # noqa: BLE001
                logger.warning("lease renewal failed", exc_info=True)


class Throttle:
    """True at most every `interval` seconds (and always for `force`)."""

    def __init__(self, interval: float) -> None:
        self.interval, self._last = interval, 0.0

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            return True
        return False
