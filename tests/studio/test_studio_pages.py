"""The studio's browser pages rendered with the Django test client: what a person sees, who may see
it, and that nothing breaks the strict content security policy (no inline script or style)."""
from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from models_catalog.models import BaseModel, LoraAdapter
from studio.models import Generation

pytestmark = pytest.mark.django_db


def browser(persona) -> Client:
    client = Client()
    client.force_login(persona.user)
    return client


def catalog_model(name: str, *, demo: bool, installed: bool = True, family: str = "sd15") -> BaseModel:
    return BaseModel.objects.create(
        name=name, source="local", external_id=name.lower().replace(" ", "-"), family=family, approved=True,
        is_demo=demo, status="installed" if installed else "available",
        store_ref=f"local:{name.lower().replace(' ', '-')}" if installed else "",
    )


def generation(workspace, *, prompt="a red fox", status="succeeded", model: BaseModel | None = None,
               loras=(), created_at=None, outputs=1) -> Generation:
    job = Generation.objects.create(
        workspace=workspace, graph={"nodes": {}, "outputs": []}, status=status,
        model_ref=str(model.pk) if model else "", lora_refs=[str(lora.pk) for lora in loras],
        request={"prompt": prompt, "model": str(model.pk) if model else "m", "seed": 42, "width": 64,
                 "height": 64, "steps": 4, "guidance": 7.0, "scheduler": "default", "num_outputs": outputs,
                 "detailers": {"upscale": 4}, "aspect_ratio": "1:1",
                 "loras": [{"id": str(lora.pk), "weight": 0.7, "reason": "fits the watercolor intent"}
                           for lora in loras]},
        outputs=[{"key": f"ws/{workspace.pk}/outputs/{uuid.uuid4().hex}.png", "kind": "image",
                  "content_type": "image/png", "width": 64, "height": 64, "sha256": "ab" * 32, "node": "save"}
                 for _ in range(outputs)] if status == "succeeded" else [],
        node_states={"model": {"type": "load_model", "title": "Load model", "status": "succeeded",
                               "seconds": 0.25},
                     "generate": {"type": "text_to_image", "title": "Text to image", "status": "succeeded",
                                  "seconds": 0.75}},
        reproducibility={"job_id": "x", "nodes": {"generate": {"type": "text_to_image", "version": "1.2.0",
                                                               "pack": "kizy", "pack_version": "0.1.0"}},
                         "seeds": {"generate.seed": 42},
                         "models": {"generate.model": {
                             "spec": {"ref": "local:tiny", "family": "sd15", "loras": []},
                             "details": {"ref": "local:tiny", "family": "sd15", "sha256": "cd" * 32,
                                         "loras": [{"ref": "local:demo-loras/wc", "weight": 0.7,
                                                    "sha256": "ef" * 32}]}}},
                         "libraries": {"python": "3.11.9", "diffusers": "0.42.1"}, "device": "cpu"},
    )
    if created_at is not None:
        Generation.objects.filter(pk=job.pk).update(created_at=created_at)
    return job


def assert_csp_clean(html: str) -> None:
    """No inline script and no style attribute: the page must work under `script-src 'self'`."""
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)


def config_of(html: str) -> dict:
    match = re.search(r'<script id="studio-config" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page carries its data in a JSON script block"
    return json.loads(match.group(1))


# --- access ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/studio", "/gallery", f"/gallery/{uuid.uuid4()}"])
def test_pages_ask_anonymous_visitors_to_log_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_home_leads_a_logged_in_person_to_the_studio(owner):
    response = browser(owner).get("/")
    assert response.status_code == 302 and response["Location"] == "/studio"


# --- studio ---------------------------------------------------------------------------------------

def test_studio_page_renders_with_prompt_first_and_an_empty_state(owner):
    response = browser(owner).get("/studio")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>Studio · Team A · Kizy</title>" in html
    assert html.index('id="prompt"') < html.index('id="guide-drop"') < html.index('id="model"')
    assert "No images yet — describe what you want above" in html
    advanced = re.search(r'<details class="studio-advanced" id="advanced"[^>]*>', html).group(0)
    assert " open" not in advanced
    for ratio in ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"):
        assert f'name="aspect_ratio" value="{ratio}"' in html
    assert "csrfmiddlewaretoken" in html
    assert "Content-Security-Policy" in response.headers
    assert_csp_clean(html)
    config = config_of(html)
    assert config["urls"]["generations"] == "/api/v1/generations"
    assert config["urls"]["stream"] == "/ws/generations/"
    assert config["can_generate"] is True
    assert "node_words" not in config  # the server words the running node (current_node.title)


def test_studio_says_when_only_demo_models_are_installed(owner):
    catalog_model("Tiny SD", demo=True)
    catalog_model("Real but absent", demo=False, installed=False)
    html = browser(owner).get("/studio").content.decode()
    assert 'data-testid="demo-notice"' in html
    assert "random weights" in html


def test_no_demo_notice_once_a_real_model_is_installed(owner):
    catalog_model("Tiny SD", demo=True)
    catalog_model("Real SDXL", demo=False, family="sdxl")
    html = browser(owner).get("/studio").content.decode()
    assert 'data-testid="demo-notice"' not in html
    assert 'data-testid="no-models-notice"' not in html


def test_studio_explains_how_to_get_a_model_when_none_is_installed(owner):
    html = browser(owner).get("/studio").content.decode()
    assert 'data-testid="no-models-notice"' in html
    assert "load_demo_catalog" in html


def test_a_viewer_sees_the_studio_but_cannot_generate(viewer):
    html = browser(viewer).get("/studio").content.decode()
    assert 'data-testid="viewer-notice"' in html
    assert re.search(r'<button type="submit"[^>]*id="generate"[^>]*disabled', html, re.S)
    assert config_of(html)["can_generate"] is False


def test_studio_lists_recent_generations_instead_of_the_empty_state(owner):
    generation(owner.workspace, prompt="a lighthouse at dusk")
    html = browser(owner).get("/studio").content.decode()
    assert 'data-testid="recent"' in html and "a lighthouse at dusk" in html
    assert re.search(r'data-testid="empty-state"[^>]*hidden', html)


def test_studio_prefills_from_a_generation_and_its_output_as_guide(owner):
    job = generation(owner.workspace, prompt="a teapot")
    config = config_of(browser(owner).get(f"/studio?from={job.pk}&guide=0").content.decode())
    assert config["prefill"]["prompt"] == "a teapot"
    assert config["guide"]["url"].startswith("http://testserver/files/ws/")
    assert "signature=" in config["guide"]["url"]
    assert config["guide"]["key"] == job.outputs[0]["key"]  # what the page sends back: it never expires


def test_studio_watch_hands_the_job_to_the_page(owner):
    job = generation(owner.workspace, status="processing")
    config = config_of(browser(owner).get(f"/studio?watch={job.pk}").content.decode())
    assert config["watch"]["id"] == str(job.pk) and config["watch"]["status"] == "processing"


def test_studio_never_prefills_from_another_workspace(owner, outsider):
    theirs = generation(outsider.workspace, prompt="their secret prompt")
    response = browser(owner).get(f"/studio?from={theirs.pk}&guide=0", follow=True)
    html = response.content.decode()
    assert "their secret prompt" not in html
    assert "prefill" not in config_of(html) and "guide" not in config_of(html)
    assert "not in this workspace" in html


# --- gallery --------------------------------------------------------------------------------------

def test_gallery_empty_state(owner):
    html = browser(owner).get("/gallery").content.decode()
    assert "No images yet" in html
    assert 'data-testid="gallery-filters"' not in html


def test_gallery_shows_only_this_workspaces_generations_with_signed_thumbnails(owner, outsider):
    mine = generation(owner.workspace, prompt="my cat")
    generation(outsider.workspace, prompt="their dog")
    html = browser(owner).get("/gallery").content.decode()
    assert "my cat" in html and "their dog" not in html
    assert f'href="/gallery/{mine.pk}"' in html
    assert re.search(r'<img src="http://testserver/files/ws/[^"]+signature=[0-9a-f]+', html)
    assert_csp_clean(html)


def test_gallery_filters_by_status_text_model_lora_and_date(owner):
    fox_model = catalog_model("Fox model", demo=True)
    other_model = catalog_model("Other model", demo=True)
    lora = LoraAdapter.objects.create(name="Watercolor", source="local", external_id="wc", family="sd15",
                                      approved=True, status="installed", store_ref="local:wc")
    generation(owner.workspace, prompt="a fox in snow", model=fox_model, loras=[lora])
    generation(owner.workspace, prompt="a failed owl", status="failed", model=other_model)
    generation(owner.workspace, prompt="an old fox", model=other_model,
               created_at=timezone.now() - timedelta(days=30))
    client = browser(owner)

    def prompts(query: str) -> set[str]:
        html = client.get("/gallery?" + query).content.decode()
        return set(re.findall(r'class="studio-tile-prompt">([^<]+)<', html))

    assert prompts("") == {"a fox in snow", "a failed owl", "an old fox"}
    assert prompts("status=failed") == {"a failed owl"}
    assert prompts("q=fox") == {"a fox in snow", "an old fox"}
    assert prompts(f"model={fox_model.pk}") == {"a fox in snow"}
    assert prompts(f"lora={lora.pk}") == {"a fox in snow"}
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert prompts(f"created_after={since}") == {"a fox in snow", "a failed owl"}
    until = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert prompts(f"created_before={until}") == {"an old fox"}
    html = client.get("/gallery?q=zebra").content.decode()
    assert "Nothing matches these filters" in html


def test_gallery_reports_a_bad_date_and_ignores_it(owner):
    generation(owner.workspace, prompt="a fox")
    response = browser(owner).get("/gallery?created_after=yesterday")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a valid date" in html and "a fox" in html


def test_gallery_refuses_another_workspaces_model_as_a_filter(owner, outsider):
    private = BaseModel.objects.create(name="Their model", source="local", external_id="p", family="sd15",
                                       workspace=outsider.workspace, status="installed", store_ref="local:p")
    generation(outsider.workspace, model=private)
    generation(owner.workspace, prompt="mine")
    html = browser(owner).get(f"/gallery?model={private.pk}").content.decode()
    assert "Their model" not in html
    assert "mine" in html  # the unknown choice is an error, not a filter that leaks or hides


def test_gallery_paginates_and_keeps_filters(owner):
    for index in range(30):
        generation(owner.workspace, prompt=f"fox {index}")
    client = browser(owner)
    html = client.get("/gallery?q=fox").content.decode()
    assert html.count('data-testid="gallery-item"') == 24
    assert "Page 1 of 2" in html
    assert 'href="?q=fox&amp;page=2"' in html
    second = client.get("/gallery?q=fox&page=2").content.decode()
    assert second.count('data-testid="gallery-item"') == 6


# --- one generation -------------------------------------------------------------------------------

def test_generation_detail_shows_images_request_reproducibility_and_timings(owner):
    model = catalog_model("Tiny SD", demo=True)
    lora = LoraAdapter.objects.create(name="Watercolor", source="local", external_id="wc", family="sd15",
                                      approved=True, status="installed", store_ref="local:wc")
    job = generation(owner.workspace, prompt="a watercolor fox", model=model, loras=[lora], outputs=2)
    response = browser(owner).get(f"/gallery/{job.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('data-testid="detail-image"') == 2
    assert html.count('data-testid="detail-download"') == 2
    assert "Tiny SD" in html and "Watercolor" in html and "fits the watercolor intent" in html
    assert "Upscale ×4" in html
    assert 'data-testid="detail-seed">42<' in html
    assert "text_to_image" in html and "1.2.0" in html  # node type and version
    assert "generate.seed" in html and "cd" * 32 in html  # seeds and model hash
    assert "local:demo-loras/wc" in html and "ef" * 32 in html  # each LoRA's file hash
    assert "diffusers" in html and "0.42.1" in html  # library versions
    assert "0.750 s" in html  # per-node timing
    assert 'data-testid="detail-rerun"' in html and 'data-testid="detail-vary"' in html
    assert f"/studio?from={job.pk}&amp;guide=1" in html
    assert_csp_clean(html)
    config = config_of(html)
    assert config["generation"]["request"]["prompt"] == "a watercolor fox"


def test_generation_detail_of_another_workspace_is_not_found(owner, outsider):
    theirs = generation(outsider.workspace)
    assert browser(owner).get(f"/gallery/{theirs.pk}").status_code == 404


def test_failed_generation_shows_its_error(owner):
    job = generation(owner.workspace, status="failed")
    Generation.objects.filter(pk=job.pk).update(
        error="Node generate (text_to_image) failed: out of memory",
        node_states={"generate": {"type": "text_to_image", "title": "Text to image", "status": "running"}})
    html = browser(owner).get(f"/gallery/{job.pk}").content.decode()
    assert "out of memory" in html
    assert "No images" in html
    assert '<span class="badge status-failed">failed</span>' in html  # not "running" after the job ended


def test_a_viewer_gets_no_rerun_buttons(owner, viewer):
    job = generation(owner.workspace)
    html = browser(viewer).get(f"/gallery/{job.pk}").content.decode()
    assert 'data-testid="detail-rerun"' not in html
    assert 'data-testid="detail-use-as-guide"' not in html
    assert 'data-testid="detail-download"' in html


# --- "Use in the studio" (?lora=) and the starting model ---------------------------------------------

def lora_of(family: str, *, workspace=None, name="Watercolor", installed=True, weight=0.65) -> LoraAdapter:
    return LoraAdapter.objects.create(
        name=name, source="local", external_id=f"{name.lower()}-{uuid.uuid4().hex[:6]}", family=family,
        approved=True, workspace=workspace, status="installed" if installed else "available",
        store_ref=f"local:{name.lower()}" if installed else "", recommended_weight=weight)


def test_use_in_the_studio_picks_the_lora_and_a_model_of_its_family(owner):
    catalog_model("Big SDXL", demo=True, family="sdxl")
    sd15 = catalog_model("Tiny SD", demo=True, family="sd15")
    mine = lora_of("sd15", workspace=owner.workspace, name="My trained style", weight=0.65)
    config = config_of(browser(owner).get(f"/studio?lora={mine.pk}").content.decode())
    assert config["model"] == str(sd15.pk)
    assert config["lora"] == {"id": str(mine.pk), "name": "My trained style", "family": "sd15", "weight": 0.65}


def test_use_in_the_studio_with_an_unknown_or_foreign_lora_says_so(owner, outsider):
    catalog_model("Tiny SD", demo=True)
    theirs = lora_of("sd15", workspace=outsider.workspace, name="Their secret style")
    client = browser(owner)
    for lora_id in (str(theirs.pk), str(uuid.uuid4()), "not-an-id"):
        response = client.get(f"/studio?lora={lora_id}")
        assert response.status_code == 200
        html = response.content.decode()
        assert "That LoRA is not in this workspace" in html
        assert "Their secret style" not in html
        assert "lora" not in config_of(html) and "model" not in config_of(html)


def test_use_in_the_studio_without_a_model_of_that_family_explains(owner):
    catalog_model("Tiny SD", demo=True, family="sd15")
    flux_lora = lora_of("flux", workspace=owner.workspace, name="Flux style")
    html = browser(owner).get(f"/studio?lora={flux_lora.pk}").content.decode()
    assert "is for Flux.1 models, and no such model is installed" in html
    assert "lora" not in config_of(html)


def test_the_studio_starts_on_the_catalogs_default_model(owner):
    catalog_model("A model", demo=True)
    featured = catalog_model("Featured model", demo=True)
    BaseModel.objects.filter(pk=featured.pk).update(featured=True)
    assert config_of(browser(owner).get("/studio").content.decode())["default_model"] == str(featured.pk)


# --- the workspace's default model (Settings → Workspace) --------------------------------------------

def test_an_owner_sets_the_default_model_used_by_the_api_and_the_studio(owner, demo_catalog):
    chosen = catalog_model("Chosen SD", demo=True)
    client = browser(owner)
    page = client.get("/settings/workspace").content.decode()
    assert 'data-testid="default-model-form"' in page and "Chosen SD" in page
    response = client.post("/settings/workspace/default-model", {"model": str(chosen.pk)}, follow=True)
    assert "New generations in Team A use Chosen SD" in response.content.decode()
    owner.workspace.refresh_from_db()
    assert owner.workspace.default_model == chosen
    assert f'<option value="{chosen.pk}" selected>' in client.get("/settings/workspace").content.decode()

    config = config_of(client.get("/studio").content.decode())
    assert config["default_model"] == str(chosen.pk) and config["default_model_set"] is True
    for loras in ([], "auto"):
        made = owner.client().post("/api/v1/generations", {"prompt": "a watercolor harbour", "loras": loras},
                                   format="json")
        assert made.status_code == 201, made.json()
        assert made.json()["request"]["model"] == str(chosen.pk)
    named = owner.client().post("/api/v1/generations",
                                {"prompt": "x", "model": str(demo_catalog.models[0].pk)}, format="json")
    assert named.json()["request"]["model"] == str(demo_catalog.models[0].pk)  # a named model still wins

    client.post("/settings/workspace/default-model", {"model": ""})
    owner.workspace.refresh_from_db()
    assert owner.workspace.default_model is None
    assert config_of(client.get("/studio").content.decode())["default_model_set"] is False


def test_only_owners_and_admins_change_the_default_model(owner, member, viewer):
    chosen = catalog_model("Chosen SD", demo=True)
    for persona in (member, viewer):
        page = browser(persona).get("/settings/workspace").content.decode()
        assert 'data-testid="default-model-setting"' in page and 'data-testid="default-model-form"' not in page
        assert browser(persona).post("/settings/workspace/default-model", {"model": str(chosen.pk)}).status_code == 403
    owner.workspace.refresh_from_db()
    assert owner.workspace.default_model is None


def test_another_workspaces_model_cannot_be_the_default(owner, outsider):
    theirs = BaseModel.objects.create(name="Their model", source="local", external_id="theirs", family="sd15",
                                      workspace=outsider.workspace, status="installed", store_ref="local:theirs")
    response = browser(owner).post("/settings/workspace/default-model", {"model": str(theirs.pk)}, follow=True)
    assert "That model is not installed in this workspace&#x27;s catalog" in response.content.decode()
    owner.workspace.refresh_from_db()
    assert owner.workspace.default_model is None


def test_the_recent_strip_fragment_shows_only_this_workspace(owner, outsider):
    generation(owner.workspace, prompt="my lighthouse")
    generation(outsider.workspace, prompt="their lighthouse")
    html = browser(owner).get("/studio/recent").content.decode()
    assert 'id="studio-recent"' in html and "my lighthouse" in html and "their lighthouse" not in html
    assert_csp_clean(html)
    empty = browser(outsider).get("/studio/recent")
    assert empty.status_code == 200
    Generation.objects.filter(workspace=outsider.workspace).delete()
    assert re.search(r'id="studio-recent"[^>]*hidden', browser(outsider).get("/studio/recent").content.decode())


def test_generation_detail_lists_its_webhook_deliveries(owner):
    from studio.models import WebhookDelivery

    job = generation(owner.workspace, prompt="a fox")
    other = generation(owner.workspace, prompt="another fox")
    Generation.objects.filter(pk=job.pk).update(webhook="https://hooks.example.com/kizy")
    WebhookDelivery.objects.create(id="msg_done", workspace=owner.workspace, generation=job,
                                   url="https://hooks.example.com/kizy", event="completed", payload={},
                                   status="delivered", attempts=1, last_status_code=200)
    WebhookDelivery.objects.create(id="msg_failing", workspace=owner.workspace, generation=job,
                                   url="https://hooks.example.com/kizy", event="start", payload={},
                                   status="pending", attempts=2, last_status_code=503, last_error="Service Unavailable")
    WebhookDelivery.objects.create(id="msg_other", workspace=owner.workspace, generation=other,
                                   url="https://elsewhere.example.com/hook", event="completed", payload={})
    html = browser(owner).get(f"/gallery/{job.pk}").content.decode()
    table = html[html.index('data-testid="detail-deliveries"'):]
    assert "completed" in table and "HTTP 200" in table and "HTTP 503" in table and "Service Unavailable" in table
    assert "elsewhere.example.com" not in html
    others = browser(owner).get(f"/gallery/{other.pk}").content.decode()
    assert "elsewhere.example.com" in others and "Service Unavailable" not in others
    plain = generation(owner.workspace, prompt="no hooks")
    assert 'data-testid="detail-webhooks"' not in browser(owner).get(f"/gallery/{plain.pk}").content.decode()
