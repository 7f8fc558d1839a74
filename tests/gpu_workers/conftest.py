"""Fixtures for the compute core's tests: the test node pack, an in-memory store, fresh counters.

Nothing here touches Django; these tests run the executor exactly as a worker would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kizy_testpack import counters

from gpu_workers.artifacts import MemoryArtifactStore
from gpu_workers.registry import NodeRegistry
from gpu_workers.sdk import RecordingEventSink


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    counters.reset()
    yield
    counters.reset()


@pytest.fixture(scope="session")
def registry() -> NodeRegistry:
    return NodeRegistry.from_entry_points(allow=["kizy-testpack"])


@pytest.fixture
def store() -> MemoryArtifactStore:
    return MemoryArtifactStore()


@pytest.fixture
def sink() -> RecordingEventSink:
    return RecordingEventSink()
