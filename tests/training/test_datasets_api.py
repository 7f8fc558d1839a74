"""Datasets over the API: goal, trigger word, captions, checks, and tenancy (T2/T3, K2)."""

from __future__ import annotations

import pytest

from gpu_workers.training.captions import TRIGGER_PATTERN
from models_catalog.models import BaseModel
from training.models import Dataset, TrainingJob

from .helpers import png, smooth_png, upload, zip_of

pytestmark = pytest.mark.django_db


def create_dataset(persona, files=None, **fields):
    files = files or [
        upload("a.png", smooth_png(64, 64, seed=1)),
        upload("b.png", smooth_png(64, 64, seed=2)),
    ]
    response = persona.client().post("/api/v1/datasets", {"images": files, **fields}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def test_trigger_word_is_generated_unique_and_editable(owner, sd15_model):
    first = create_dataset(owner, name="Mira the cat")
    second = create_dataset(owner, name="Mira the cat")
    assert TRIGGER_PATTERN.match(first["trigger_word"]) and first["trigger_word"].startswith("mir")
    assert first["trigger_word"] != second["trigger_word"]
    client = owner.client()
    taken = client.patch(
        f"/api/v1/datasets/{second['id']}", {"trigger_word": first["trigger_word"]}, format="json"
    )
    assert taken.status_code == 400 and "already the trigger word" in taken.json()["detail"]
    bad = client.patch(f"/api/v1/datasets/{second['id']}", {"trigger_word": "two words"}, format="json")
    assert bad.status_code == 400 and "no spaces" in bad.json()["detail"]
    renamed = client.patch(f"/api/v1/datasets/{second['id']}", {"trigger_word": "zorblat"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["trigger_word"] == "zorblat"
    assert all("zorblat" in item["caption"] for item in renamed.json()["items"])


def test_captions_follow_the_description_until_edited(owner, sd15_model):
    dataset = create_dataset(owner, name="Mira", goal_type="subject")
    client = owner.client()
    body = client.patch(
        f"/api/v1/datasets/{dataset['id']}", {"description": "my grey tabby cat, green eyes"}, format="json"
    ).json()
    word = body["trigger_word"]
    assert all(
        item["caption"].startswith(f"a photo of {word}, my grey tabby cat, green eyes")
        for item in body["items"]
    )
    first, second = body["items"]
    edited = client.patch(
        f"/api/v1/datasets/{dataset['id']}/captions",
        {"captions": {first["id"]: f"{word} asleep on a red sofa"}},
        format="json",
    ).json()
    assert edited["items"][0]["caption"] == f"{word} asleep on a red sofa"
    assert edited["items"][0]["caption_auto"] is False
    restyled = client.patch(
        f"/api/v1/datasets/{dataset['id']}",
        {"goal_type": "style", "description": "ink wash", "trigger_word": "inkwsh"},
        format="json",
    ).json()
    assert restyled["items"][0]["caption"] == "inkwsh asleep on a red sofa"  # edited: only the word swapped
    assert restyled["items"][1]["caption"].startswith("an image in the style of inkwsh, ink wash")
    reset = client.patch(
        f"/api/v1/datasets/{dataset['id']}/captions", {"captions": {first["id"]: ""}}, format="json"
    ).json()
    assert reset["items"][0]["caption"].startswith("an image in the style of inkwsh")
    unknown = client.patch(
        f"/api/v1/datasets/{dataset['id']}/captions",
        {"captions": {"00000000-0000-0000-0000-000000000000": "x"}},
        format="json",
    )
    assert unknown.status_code == 400


def _checks(body):
    checks = body["checks"]["checks"] if "items" in body else body["checks"]
    return {check["id"]: check for check in checks}


def test_checks_before_training(owner, sd15_model):
    base = smooth_png(600, 600, seed=3)
    near = smooth_png(560, 560, seed=3)  # the same picture, resized
    other = smooth_png(800, 520, seed=4)  # landscape
    small = smooth_png(120, 120, seed=5)
    body = create_dataset(
        owner,
        [
            upload("base.png", base),
            upload("near.png", near),
            upload("wide.png", other),
            upload("small.png", small),
        ],
        name="Checks",
    )
    # The tiny demo model trains at 64 px (quick preset), where even the 120 px picture is big enough.
    assert body["checks"]["family"] == "sd15" and body["checks"]["resolution"] == 64
    assert _checks(body)["too_small"]["level"] == "ok"
    assert body["checks"]["plan"]["quick_preset"] is True and body["checks"]["params"]["steps"] == 60
    client = owner.client()
    body = {**body, "checks": client.get(f"/api/v1/datasets/{body['id']}/checks", {"resolution": 512}).json()}
    checks = _checks(body)
    assert body["checks"]["resolution"] == 512
    assert checks["count"]["level"] == "warning" and "4 image(s)" in checks["count"]["message"]
    by_name = {item["source_name"]: item["id"] for item in body["items"]}
    assert checks["near_duplicates"]["level"] == "warning"
    assert checks["near_duplicates"]["groups"] == [[by_name["base.png"], by_name["near.png"]]]
    assert checks["too_small"]["level"] == "warning" and checks["too_small"]["items"] == [
        by_name["small.png"]
    ]
    assert "small.png" in checks["too_small"]["message"]
    assert checks["aspect_ratios"]["level"] == "info"
    assert {(b["width"], b["height"]) for b in body["checks"]["buckets"]} == {(512, 512), (640, 384)}
    assert body["checks"]["ok"] is True

    no_buckets = client.get(f"/api/v1/datasets/{body['id']}/checks", {"buckets": "false"}).json()
    assert _checks(no_buckets)["aspect_ratios"]["level"] == "warning"
    assert "cropped to a square" in _checks(no_buckets)["aspect_ratios"]["message"]
    small_res = client.get(f"/api/v1/datasets/{body['id']}/checks", {"resolution": 128}).json()
    assert _checks(small_res)["too_small"]["level"] == "ok"
    bad = client.get(f"/api/v1/datasets/{body['id']}/checks", {"resolution": 100})
    assert bad.status_code == 400 and "multiple of 64" in bad.json()["detail"]


def test_presets_list_bounds_explanations_and_models(owner, sd15_model):
    body = owner.client().get("/api/v1/trainings/presets").json()
    assert {f["family"] for f in body["families"]} == {"sd15", "sdxl", "flux"}
    rank = next(p for p in body["params"] if p["name"] == "rank")
    assert rank["min"] == 1 and rank["max"] == 256 and "overfit" in rank["help"]
    assert body["models"] == [
        {"id": str(sd15_model.pk), "name": "Tiny SD 1.5", "family": "sd15", "is_demo": True, "preset": "quick"}
    ]


def test_parameters_out_of_bounds_are_refused_with_the_explanation(owner, sd15_model, clean_media):
    dataset = create_dataset(owner)
    response = owner.client().post(
        "/api/v1/trainings",
        {"dataset": dataset["id"], "params": {"rank": 0, "learning_rate": 1, "bogus": 1}},
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["errors"]["params"]
    assert "at least 1" in errors["rank"] and "adapter" in errors["rank"]
    assert "at most 0.01" in errors["learning_rate"]
    assert "unknown parameter" in errors["bogus"]
    assert TrainingJob.objects.count() == 0


def test_training_upload_with_bad_params_writes_nothing(owner, sd15_model, clean_media):
    response = owner.client().post(
        "/api/v1/trainings", {"images": [upload("a.png", png())], "steps": 0}, format="multipart"
    )
    assert response.status_code == 400 and "steps" in response.json()["errors"]["params"]
    assert Dataset.objects.count() == 0 and not (clean_media / "ws").exists()


# -- tenancy --------------------------------------------------------------------------------------


def test_outsiders_get_404_on_every_route_and_change_nothing(owner, outsider, sd15_model):
    dataset = create_dataset(owner, name="Private")
    item = dataset["items"][0]
    job = TrainingJob.objects.create(
        workspace=owner.workspace,
        dataset_id=dataset["id"],
        name="x",
        trigger_word="x",
        base_model_ref="local:sd15",
        family="sd15",
    )
    client = outsider.client()
    routes = [
        ("get", f"/api/v1/datasets/{dataset['id']}", None),
        ("patch", f"/api/v1/datasets/{dataset['id']}", {"name": "stolen"}),
        ("delete", f"/api/v1/datasets/{dataset['id']}", None),
        ("get", f"/api/v1/datasets/{dataset['id']}/checks", None),
        ("patch", f"/api/v1/datasets/{dataset['id']}/captions", {"captions": {item["id"]: "stolen"}}),
        ("post", f"/api/v1/datasets/{dataset['id']}/images", None),
        ("delete", f"/api/v1/datasets/{dataset['id']}/items/{item['id']}", None),
        ("get", f"/api/v1/trainings/{job.pk}", None),
        ("post", f"/api/v1/trainings/{job.pk}/cancel", None),
    ]
    for method, url, data in routes:
        response = getattr(client, method)(url, data, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
    assert client.get("/api/v1/datasets").json()["results"] == []
    assert client.get("/api/v1/trainings").json()["results"] == []
    # T3: naming the other workspace's dataset in a request body is refused too.
    theirs = client.post("/api/v1/trainings", {"dataset": dataset["id"]}, format="json")
    assert theirs.status_code in (400, 404)
    fresh = Dataset.objects.get(pk=dataset["id"])
    assert fresh.name == "Private" and fresh.items.count() == 2
    job.refresh_from_db()
    assert not job.cancel_requested


def test_another_workspaces_private_model_is_not_offered_or_accepted(owner, outsider, sd15_model):
    private = BaseModel.objects.create(
        name="Their model",
        source="local",
        external_id="their",
        family="sd15",
        status="installed",
        store_ref="local:sd15",
        workspace=outsider.workspace,
    )
    dataset = create_dataset(owner)
    models = owner.client().get("/api/v1/trainings/presets").json()["models"]
    assert str(private.pk) not in {m["id"] for m in models}
    response = owner.client().post(
        "/api/v1/trainings", {"dataset": dataset["id"], "model": str(private.pk)}, format="json"
    )
    assert response.status_code == 400 and "model" in response.json()["errors"]
    assert TrainingJob.objects.count() == 0


def test_viewers_read_but_cannot_write(owner, viewer, sd15_model):
    dataset = create_dataset(owner)
    client = viewer.client()
    assert client.get(f"/api/v1/datasets/{dataset['id']}").status_code == 200
    assert client.patch(f"/api/v1/datasets/{dataset['id']}", {"name": "x"}, format="json").status_code == 403
    refused = client.post("/api/v1/datasets", {"images": [upload("a.png", png())]}, format="multipart")
    assert refused.status_code == 403 and "'train' scope" in refused.json()["detail"]
    assert client.post("/api/v1/trainings", {"dataset": dataset["id"]}, format="json").status_code == 403


def test_members_can_train_and_delete_images(member, sd15_model):
    dataset = create_dataset(
        member, [upload("x.zip", zip_of([("a.png", png(seed=1)), ("b.png", png(seed=2))]))]
    )
    client = member.client()
    item = dataset["items"][0]
    assert client.delete(f"/api/v1/datasets/{dataset['id']}/items/{item['id']}").status_code == 204
    assert len(client.get(f"/api/v1/datasets/{dataset['id']}").json()["items"]) == 1
    added = client.post(
        f"/api/v1/datasets/{dataset['id']}/images",
        {"images": [upload("c.png", png(seed=3))]},
        format="multipart",
    )
    assert added.status_code == 201 and len(added.json()["items"]) == 2


def test_a_captioning_model_is_used_when_installed(owner, settings, tmp_path):
    from training.services import captioner

    from .helpers import build_tiny_captioner

    settings.KIZY_MODEL_STORE = tmp_path
    build_tiny_captioner(tmp_path / "local" / "captioner")
    captioner.cache_clear()
    try:
        body = create_dataset(owner, [upload("a.png", smooth_png(64, 64, seed=1))], description="my cat")
    finally:
        captioner.cache_clear()
    word = body["trigger_word"]
    # What the model saw replaces the description in the caption; the trigger word stays.
    assert body["items"][0]["caption"].startswith(f"a photo of {word}, cat cat")


def test_retrying_a_training_upload_with_its_idempotency_key_stores_nothing_new(
    owner, sd15_model, monkeypatch, media_root
):
    import shutil

    monkeypatch.setattr("training.services.enqueue", lambda job: None)
    shutil.rmtree(media_root / "ws", ignore_errors=True)

    def send():
        files = [upload("set.zip", zip_of([(f"{i}.png", smooth_png(64, 64, seed=i)) for i in range(3)]))]
        return owner.client().post(
            "/api/v1/trainings",
            {"images": files, "name": "Mira", "params": '{"steps": 20}'},
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="retry-1",
        )

    first = send()
    assert first.status_code == 201, first.content
    stored = sorted(p for p in (media_root / "ws").rglob("*") if p.is_file())
    for _ in range(2):
        again = send()
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert (Dataset.objects.count(), TrainingJob.objects.count()) == (1, 1)
    assert sorted(p for p in (media_root / "ws").rglob("*") if p.is_file()) == stored
