"""The workflow API end to end: validate, queue on commit, run in the (eager) worker, fetch results."""
from __future__ import annotations

import pytest
from PIL import Image

from studio.models import Generation

pytestmark = pytest.mark.django_db

GRAPH = {
    "nodes": {
        "img": {"type": "make_image", "inputs": {"width": 12, "height": 8, "color": "#102030"}},
        "inv": {"type": "invert_image", "inputs": {"image": {"node": "img", "output": "image"}}},
    },
    "outputs": ["inv"],
}


def submit(client, graph, **headers):
    return client.post("/api/v1/workflows", {"graph": graph}, format="json", **headers)


def test_workflow_runs_and_returns_signed_output(owner, django_capture_on_commit_callbacks, client):
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(owner.client(), GRAPH)
    assert response.status_code == 201, response.json()
    job = owner.client().get(f"/api/v1/workflows/{response.json()['id']}").json()
    assert job["status"] == "succeeded", job
    assert job["nodes"]["img"]["status"] in ("succeeded", "cached")
    [output] = job["outputs"]
    assert (output["width"], output["height"]) == (12, 8)
    image_response = client.get(output["url"].replace("http://testserver", ""))
    assert image_response.status_code == 200
    image = Image.open(__import__("io").BytesIO(b"".join(image_response.streaming_content)))
    assert image.getpixel((0, 0))[:3] == (255 - 0x10, 255 - 0x20, 255 - 0x30)
    assert job["reproducibility"]["nodes"]["inv"]["type"] == "invert_image"


def test_invalid_graph_lists_every_problem(owner):
    bad = {
        "nodes": {
            "a": {"type": "no_such_node", "inputs": {}},
            "b": {"type": "make_image", "inputs": {"width": 100000, "colour": "red"}},
            "c": {"type": "invert_image", "inputs": {"image": {"node": "zzz", "output": "image"}}},
        },
        "outputs": ["c", "missing"],
    }
    response = submit(owner.client(), bad)
    assert response.status_code == 400
    codes = {(e["node"], e["port"], e["code"]) for e in response.json()["errors"]}
    assert ("a", None, "unknown_type") in codes
    assert ("b", "width", "out_of_bounds") in codes
    assert ("b", "colour", "unknown_port") in codes
    assert ("c", "image", "dangling_reference") in codes
    assert Generation.objects.count() == 0


def test_idempotency_key_returns_the_first_job(owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = submit(owner.client(), GRAPH, HTTP_IDEMPOTENCY_KEY="abc-1")
        second = submit(owner.client(), GRAPH, HTTP_IDEMPOTENCY_KEY="abc-1")
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert Generation.objects.count() == 1


def test_isolation_and_roles(owner, viewer, outsider, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = submit(owner.client(), GRAPH).json()["id"]
    assert outsider.client().get(f"/api/v1/workflows/{job_id}").status_code == 404
    assert outsider.client().post(f"/api/v1/workflows/{job_id}/cancel").status_code == 404
    assert job_id not in str(outsider.client().get("/api/v1/workflows").json())
    assert viewer.client().get(f"/api/v1/workflows/{job_id}").status_code == 200
    assert submit(viewer.client(), GRAPH).status_code == 403


def test_cancel_a_queued_job(owner):
    response = submit(owner.client(), GRAPH)  # not executed: on_commit callbacks are not run here
    job_id = response.json()["id"]
    canceled = owner.client().post(f"/api/v1/workflows/{job_id}/cancel").json()
    assert canceled["status"] == "canceled"


def test_nodes_listing_has_schemas(owner):
    nodes = {n["type"]: n for n in owner.client().get("/api/v1/nodes").json()["nodes"]}
    assert "make_image" in nodes and "resize" in nodes
    assert nodes["make_image"]["inputs"]["properties"]["width"]["maximum"] == 1024
