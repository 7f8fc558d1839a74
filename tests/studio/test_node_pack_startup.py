"""A broken or duplicate node pack stops start-up (system check and Celery worker_init), naming the pack;
KIZY_NODE_PACKS decides which packs GET /api/v1/nodes shows."""
from __future__ import annotations

import importlib.metadata

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from studio.engine import node_registry


@pytest.fixture
def fresh_registry():
    node_registry.cache_clear()
    yield
    node_registry.cache_clear()


def _with_extra_entry_point(monkeypatch, name: str, value: str) -> None:
    """Install, as far as importlib.metadata can tell, one more `kizy.nodes` entry point of the test pack."""
    real = importlib.metadata.entry_points
    testpack = next(ep for ep in real(group="kizy.nodes") if ep.dist is not None and ep.dist.name == "kizy-testpack")
    extra = importlib.metadata.EntryPoint(name, value, "kizy.nodes")
    extra._for(testpack.dist)  # belongs to the kizy-testpack distribution, so the allow-list loads it

    def entry_points(**params):
        found = real(**params)
        return [*found, extra] if params.get("group") == "kizy.nodes" else found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


@pytest.mark.parametrize(("value", "words"), [
    ("kizy_testpack.duplicates", "node type 'add' is defined by both pack"),
    ("kizy_testpack.not_here", "failed to import: ModuleNotFoundError"),
])
def test_a_duplicate_or_broken_pack_fails_the_system_check(monkeypatch, fresh_registry, value, words):
    _with_extra_entry_point(monkeypatch, "extra", value)
    with pytest.raises(SystemCheckError) as failed:
        call_command("check")
    message = str(failed.value)
    assert "studio.E010" in message and words in message and "kizy-testpack" in message
    assert "KIZY_NODE_PACKS" in message  # the hint says how to get going again


@pytest.mark.filterwarnings("ignore::celery.fixups.django.FixupWarning")
def test_a_broken_pack_stops_the_celery_worker_at_start_up(monkeypatch, fresh_registry):
    from celery import signals

    _with_extra_entry_point(monkeypatch, "extra", "kizy_testpack.duplicates")
    with pytest.raises(SystemExit) as stopped:
        signals.worker_init.send(sender=None)
    assert "Kizy worker not started" in str(stopped.value) and "'add'" in str(stopped.value)


@pytest.mark.filterwarnings("ignore::celery.fixups.django.FixupWarning")
def test_the_check_passes_and_the_worker_starts_with_sound_packs(fresh_registry):
    from celery import signals

    call_command("check")
    signals.worker_init.send(sender=None)  # no SystemExit


@pytest.mark.django_db
def test_the_allow_list_decides_which_packs_the_nodes_listing_shows(owner, settings, fresh_registry):
    listed = {n["type"]: n for n in owner.client().get("/api/v1/nodes").json()["nodes"]}
    assert listed["make_image"]["pack"] == "kizy-testpack"
    builtin = listed["text_to_image"]
    assert builtin["pack"] == "kizy" and builtin["category"] and builtin["description"] and builtin["version"]
    assert builtin["inputs"]["properties"]["steps"]["maximum"] == 150

    settings.KIZY_NODE_PACKS = ["kizy"]
    node_registry.cache_clear()
    listed = {n["type"] for n in owner.client().get("/api/v1/nodes").json()["nodes"]}
    assert "text_to_image" in listed and "make_image" not in listed
