"""The running node in plain words, worded once by the server: the `node` event, the row the polling
fallback and the API read (`current_node.title`), and so `?watch=` and `/ws/workspace/` alike."""
from __future__ import annotations

import pytest

from studio import runner
from studio.models import Generation
from studio.node_titles import plain_title
from studio.serializers_output import generation_payload
from tests.studio.conftest import png_data_uri
from tests.studio.test_generations_api import FAST, create

pytestmark = pytest.mark.django_db


def test_a_real_run_with_upscale_words_every_node_for_events_and_the_api(
        owner, demo_catalog, django_capture_on_commit_callbacks, monkeypatch):
    seen: list[tuple[str, str, str | None]] = []
    emit = runner.events.emit

    def recording_emit(generation, event):
        if event.get("type") == "node" and event.get("state") == "started":
            polled = generation_payload(Generation.objects.get(pk=generation.pk))  # what GET /generations/<id> says
            seen.append((event["node_type"], event["title"], (polled["current_node"] or {}).get("title")))
        emit(generation, event)

    monkeypatch.setattr(runner.events, "emit", recording_emit)
    response = create(owner.client(), django_capture_on_commit_callbacks,
                      {"prompt": "a harbour at night", "image": png_data_uri(), "strength": 0.5,
                       "detailers": ["upscale_x2"], **FAST})
    assert response.status_code == 201, response.json()
    job = owner.client().get(f"/api/v1/generations/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    titles = {node_type: (event_title, polled_title) for node_type, event_title, polled_title in seen}
    assert titles["upscale"] == ("Upscaling ×2", "Upscaling ×2")
    assert titles["image_to_image"] == ("Generating from the guide image",) * 2
    assert titles["load_model"] == ("Loading the model",) * 2
    assert titles["save_image"] == ("Saving",) * 2
    assert job["nodes"]["generate"]["title"] != "Generating from the guide image"  # the class title stays there


def test_plain_titles_for_detailers_and_unknown_nodes():
    assert plain_title("upscale", "Upscale ×2 / ×4", {"scale": 4}) == "Upscaling ×4"
    assert plain_title("upscale", "Upscale ×2 / ×4", {"scale": {"node": "x", "output": "scale"}}) == "Upscaling"
    assert plain_title("face_detail", "Face detailer", {}) == "Fixing faces"
    assert plain_title("text_to_image", "Text to image") == "Generating"
    assert plain_title("my_pack.sharpen", "Sharpen (my pack)") == "Sharpen (my pack)"
