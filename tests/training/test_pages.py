"""The training pages without JavaScript (plain forms), their permissions, and the CSP rule that no
page carries inline scripts or styles."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from training.models import Dataset, TrainingJob

from .helpers import png, smooth_png, upload, zip_of

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)


def browser(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def assert_csp_clean(html: str) -> None:
    assert not INLINE_SCRIPT.search(html), "inline <script> (the CSP forbids it)"
    assert " style=" not in html and "<style" not in html, "inline style (the CSP forbids it)"


def upload_via_form(client: Client, *files) -> Dataset:
    response = client.post("/training/new", {"images": list(files), "name": "Mira"})
    assert response.status_code == 302, response.content[:500]
    return Dataset.objects.get(pk=response["Location"].rstrip("/").split("/")[-1])


def test_the_whole_flow_without_javascript(owner, sd15_model, monkeypatch):
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    client = browser(owner)
    listing = client.get("/training/")
    assert listing.status_code == 200 and b"No trainings yet" in listing.content
    assert_csp_clean(listing.content.decode())
    new = client.get("/training/new")
    assert new.status_code == 200 and b'data-testid="dropzone"' in new.content
    assert_csp_clean(new.content.decode())

    dataset = upload_via_form(client, upload("set.zip", zip_of([(f"{i}.png", smooth_png(64, 64, seed=i))
                                                                  for i in range(3)])))
    page = client.get(f"/training/datasets/{dataset.pk}")
    html = page.content.decode()
    assert page.status_code == 200 and html.count('data-testid="caption"') == 3
    assert 'data-check="count"' in html and "Few images" in html
    assert_csp_clean(html)

    item = dataset.items.first()
    shown = {f"caption-{i.pk}": i.caption for i in dataset.items.all()}  # as the page renders them
    form = {"name": "Mira", "description": "my grey cat", "goal_type": "subject", "trigger_word": "mirkat",
            "model": str(sd15_model.pk), **shown, f"caption-{item.pk}": "mirkat on a sofa", "steps": "20",
            "resolution": "64", "buckets": "", "action": "save"}
    saved = client.post(f"/training/datasets/{dataset.pk}", form)
    assert saved.status_code == 302
    item.refresh_from_db()
    dataset.refresh_from_db()
    assert (dataset.trigger_word, dataset.description, item.caption) == ("mirkat", "my grey cat", "mirkat on a sofa")
    others = dataset.items.exclude(pk=item.pk)
    # The captions left as generated follow the new description; only the edited one is kept as typed.
    assert all(o.caption_auto and o.caption.startswith("a photo of mirkat, my grey cat") for o in others)

    shown = {f"caption-{i.pk}": i.caption for i in dataset.items.all()}
    started = client.post(f"/training/datasets/{dataset.pk}", {**form, **shown, "action": "train"})
    assert started.status_code == 302
    job = TrainingJob.objects.get()
    assert started["Location"] == f"/training/{job.pk}"
    assert job.params["steps"] == 20 and job.params["resolution"] == 64 and job.params["rank"] == 16
    detail = client.get(f"/training/{job.pk}")
    assert detail.status_code == 200 and b'data-testid="loss-chart"' in detail.content
    assert_csp_clean(detail.content.decode())
    assert client.post(f"/training/{job.pk}/cancel").status_code == 302
    job.refresh_from_db()
    assert job.status == "canceled"
    assert b"Mira" in client.get("/training/").content


def test_form_errors_are_shown_next_to_the_form(owner, sd15_model):
    client = browser(owner)
    dataset = upload_via_form(client, upload("a.png", png(seed=1)))
    response = client.post(f"/training/datasets/{dataset.pk}", {
        "name": "Mira", "description": "", "goal_type": "subject", "trigger_word": "mirkat",
        "model": str(sd15_model.pk), "steps": "0", "action": "train"})
    assert response.status_code == 400
    assert b"Training steps must be at least 1" in response.content
    assert b'value="0"' in response.content  # what was typed is kept
    assert TrainingJob.objects.count() == 0


def test_a_refused_upload_lists_each_problem(owner):
    response = browser(owner).post("/training/new", {"images": [upload("x.png", b"<html>")]})
    assert response.status_code == 400
    assert b"Nothing was uploaded" in response.content and b"x.png" in response.content
    assert Dataset.objects.count() == 0


def test_viewers_see_but_cannot_change(owner, viewer, sd15_model):
    dataset = upload_via_form(browser(owner), upload("a.png", png(seed=1)))
    client = browser(viewer)
    page = client.get(f"/training/datasets/{dataset.pk}")
    assert page.status_code == 200 and b'data-testid="start-training"' not in page.content
    assert client.get("/training/new").status_code == 403
    assert client.post(f"/training/datasets/{dataset.pk}", {"name": "x", "action": "save"}).status_code == 403


def test_outsiders_get_404(owner, outsider, sd15_model, monkeypatch):
    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    dataset = upload_via_form(browser(owner), upload("a.png", png(seed=1)))
    job = TrainingJob.objects.create(workspace=owner.workspace, dataset=dataset, name="x", trigger_word="x",
                                     base_model_ref="local:sd15", family="sd15")
    item = dataset.items.first()
    client = browser(outsider)
    for method, url in [("get", f"/training/datasets/{dataset.pk}"), ("post", f"/training/datasets/{dataset.pk}"),
                        ("post", f"/training/datasets/{dataset.pk}/images"),
                        ("post", f"/training/datasets/{dataset.pk}/images/{item.pk}/remove"),
                        ("get", f"/training/{job.pk}"), ("post", f"/training/{job.pk}/cancel")]:
        assert getattr(client, method)(url).status_code == 404, url
    assert dataset.trigger_word.encode() not in client.get("/training/").content
    assert Dataset.objects.get(pk=dataset.pk).items.count() == 1
