"""The studio in real Chromium against the real stack (daphne + Celery worker + Redis + demo models):
prompt → Generate → live progress over the websocket → image → gallery; cancel mid-run; API errors
next to the form; polling when the websocket cannot be used."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from tests.browser.helpers import screenshot_path

from .studio_fixtures import Stack

pytestmark = pytest.mark.browser


RUN_TIMEOUT_MS = 180_000  # the first job on a cold worker imports the diffusers stack


def open_studio(page: Page) -> None:
    page.goto("/studio")
    expect(page).to_have_title("Studio · Demo's workspace · Kizy")
    # The model picker fills from /api/v1/models; the demo models say what they are.
    expect(page.locator("#model option:not([value=''])").first).to_be_attached()
    expect(page.get_by_test_id("demo-badge")).to_have_text("demo: random weights")


def choose_demo_model(page: Page, family: str = "sd15") -> None:
    """The tiny SD 1.5 model: the quickest of the demo models on a CPU."""
    value = page.locator(f"#model option[data-family={family}]").first.get_attribute("value")
    page.select_option("#model", value)
    expect(page.get_by_test_id("demo-badge")).to_be_visible()


def set_steps(page: Page, steps: int) -> None:
    page.locator("#advanced summary").click()
    page.fill("#steps", str(steps))


def wait_for_job(page: Page, stack: Stack, previous: str | None = None) -> str:
    """The id of the job the page follows, once the API has accepted the request (the web process's
    first request also imports the node packs, which takes a while on a cold start)."""
    try:
        page.wait_for_function(
            "(previous) => { const id = document.getElementById('run').dataset.generationId;"
            " return id && id !== previous; }", arg=previous, timeout=RUN_TIMEOUT_MS)
    except Exception as exc:
        stack.check_alive()
        raise AssertionError(f"no job started: {page.inner_text('body')[:2000]}\n{stack.logs()}") from exc
    return str(page.get_attribute("#run", "data-generation-id"))


def wait_for_status(page: Page, stack: Stack, *statuses: str, timeout: int = RUN_TIMEOUT_MS) -> str:
    try:
        page.wait_for_function(
            "(statuses) => statuses.includes(document.getElementById('run').dataset.status)",
            arg=list(statuses), timeout=timeout)
    except Exception as exc:
        stack.check_alive()
        status = page.get_attribute("#run", "data-status")
        raise AssertionError(f"the run status stayed {status!r}\n{stack.logs()}") from exc
    return str(page.get_attribute("#run", "data-status"))


def test_prompt_to_image_with_live_progress_then_in_the_gallery(
    studio_page: Page, studio_stack: Stack,
) -> None:
    page = studio_page
    open_studio(page)
    expect(page.get_by_test_id("demo-notice")).to_be_visible()
    prompt = "ink line art of a lighthouse on a cliff at dusk"
    choose_demo_model(page)
    page.fill("#prompt", prompt)
    # Auto asks the catalog as the prompt is typed and says why it picked each LoRA.
    # (The first suggestion of a fresh server loads the matcher: allow for it.)
    expect(page.locator("#suggest-summary")).to_contain_text("Looks like", timeout=RUN_TIMEOUT_MS)
    set_steps(page, 12)
    page.locator("#prompt").press("Control+Enter")

    expect(page.get_by_test_id("run")).to_be_visible()
    generation_id = wait_for_job(page, studio_stack)
    status = wait_for_status(page, studio_stack, "succeeded", "failed", "canceled")
    assert status == "succeeded", page.inner_text("#run")
    run = page.get_by_test_id("run")
    assert run.get_attribute("data-transport") == "websocket"
    assert int(run.get_attribute("data-step-events") or 0) >= 2
    seen = page.evaluate("window.__progress")
    during = [value for value in seen if 0 < value < 100]
    assert len(set(during)) >= 2, f"the bar should move through steps before finishing: {seen}"
    assert during == sorted(during), seen
    assert seen[-1] == 100
    expect(page.get_by_test_id("progress")).to_have_attribute("value", "100")

    result = page.get_by_test_id("result").first
    expect(result).to_be_visible()
    page.wait_for_function(
        "() => { const img = document.querySelector('[data-testid=result] img');"
        " return img && img.complete && img.naturalWidth > 0; }")
    assert "/files/" in (result.get_by_test_id("download").get_attribute("href") or "")
    for action in ("rerun", "vary", "use-as-guide"):
        expect(result.get_by_test_id(action)).to_be_visible()
    # The Recent strip is drawn again once the run ends, with the new image's small WebP thumbnail.
    recent_tile = page.locator(f"#studio-recent [data-generation-id='{generation_id}'] img")
    expect(recent_tile).to_be_visible()
    assert ".webp" in (recent_tile.get_attribute("src") or "")

    page.locator("#advanced summary").click()  # closed, as a person first sees it
    page.set_viewport_size({"width": 1440, "height": 1240})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshot_path("studio.png")))

    page.get_by_role("link", name="Gallery", exact=True).first.click()
    tile = page.locator(f"[data-testid=gallery-item][data-generation-id='{generation_id}']")
    expect(tile).to_be_visible()
    page.wait_for_function(
        "(id) => { const img = document.querySelector(`[data-generation-id='${id}'] img`);"
        " return img && img.complete && img.naturalWidth > 0; }", arg=generation_id)

    tile.click()
    expect(page.get_by_test_id("detail-status")).to_have_text("Succeeded")
    request = json.loads(page.get_by_test_id("request-json").text_content() or "")
    assert request["prompt"] == prompt and request["steps"] == 12
    expect(page.get_by_test_id("reproducibility")).to_contain_text("Seeds")
    expect(page.get_by_test_id("node-timings")).to_be_visible()

    # Re-run from the record: the same request again, followed live in the studio.
    page.get_by_test_id("detail-rerun").click()
    page.wait_for_url("**/studio?watch=*")
    rerun_id = wait_for_job(page, studio_stack, previous=generation_id)
    assert wait_for_status(page, studio_stack, "succeeded", "failed", "canceled") == "succeeded"
    rerun = page.request.get(f"/api/v1/generations/{rerun_id}").json()
    same = ("prompt", "seed", "steps", "model", "width", "height")
    assert {k: rerun["request"][k] for k in same} == {k: request[k] for k in same}
    assert [(lora["id"], lora["weight"]) for lora in rerun["request"]["loras"]] == [
        (lora["id"], lora["weight"]) for lora in request["loras"]]
    expect(page.get_by_test_id("result")).to_have_count(1)


def test_cancel_stops_a_long_run(
    studio_page: Page, studio_stack: Stack,
) -> None:
    page = studio_page
    open_studio(page)
    page.fill("#prompt", "a very slow cathedral, every stone drawn")
    choose_demo_model(page)
    set_steps(page, 40)
    page.get_by_test_id("generate").click()
    generation_id = wait_for_job(page, studio_stack)
    page.wait_for_function("() => Number(document.getElementById('run').dataset.stepEvents) >= 1",
                           timeout=RUN_TIMEOUT_MS)
    page.get_by_test_id("cancel").click()
    status = wait_for_status(page, studio_stack, "canceled", "succeeded", "failed", timeout=60_000)
    assert status == "canceled", page.inner_text("#run")
    expect(page.get_by_test_id("run-node")).to_have_text("Canceled")
    assert int(page.get_attribute("#run", "data-step-events") or 0) < 40
    expect(page.get_by_test_id("result")).to_have_count(0)

    job = page.request.get(f"/api/v1/generations/{generation_id}").json()
    assert job["status"] == "canceled" and job["outputs"] == []
    page.goto("/gallery?status=canceled")
    expect(page.locator(f"[data-generation-id='{generation_id}']")).to_be_visible()


def test_api_errors_are_shown_next_to_the_form(
    studio_page: Page, studio_stack: Stack,
) -> None:
    page = studio_page
    open_studio(page)
    page.fill("#prompt", "a cat")
    choose_demo_model(page)
    set_steps(page, 500)
    page.get_by_test_id("generate").click()
    errors = page.get_by_test_id("studio-errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("Kizy could not start this generation.")
    expect(errors).to_contain_text("Steps")
    expect(page.locator("[data-error-for=steps]")).to_contain_text("150")
    expect(page.get_by_test_id("run")).to_be_hidden()
    expect(page.get_by_test_id("generate")).to_be_enabled()


def test_polling_takes_over_when_the_websocket_cannot_connect(
    studio_page: Page, studio_stack: Stack,
) -> None:
    page = studio_page
    page.context.add_init_script("window.WebSocket = function () { throw new Error('refused'); };")
    open_studio(page)
    page.fill("#prompt", "a small red boat")
    choose_demo_model(page)
    set_steps(page, 4)
    page.get_by_test_id("generate").click()
    wait_for_job(page, studio_stack)
    assert wait_for_status(page, studio_stack, "succeeded", "failed", "canceled") == "succeeded"
    assert page.get_attribute("#run", "data-transport") == "polling"
    expect(page.get_by_test_id("result").first).to_be_visible()


def test_use_as_guide_image_runs_image_to_image(
    studio_page: Page, studio_stack: Stack,
) -> None:
    page = studio_page
    open_studio(page)
    page.fill("#prompt", "a green hill")
    choose_demo_model(page)
    set_steps(page, 4)
    page.get_by_test_id("generate").click()
    first_id = wait_for_job(page, studio_stack)
    assert wait_for_status(page, studio_stack, "succeeded", "failed", "canceled") == "succeeded"
    page.get_by_test_id("result").first.get_by_test_id("use-as-guide").click()
    expect(page.locator("#guide-preview")).to_be_visible()
    expect(page.get_by_test_id("controlnet-canny")).to_be_enabled()
    with page.expect_request(lambda r: r.url.endswith("/api/v1/generations") and r.method == "POST") as sent:
        page.get_by_test_id("generate").click()
    body = sent.value.post_data or ""
    assert "ws/" in body and "signature=" not in body, "the output goes back by its storage key, not a signed link"
    second_id = wait_for_job(page, studio_stack, previous=first_id)
    assert wait_for_status(page, studio_stack, "succeeded", "failed", "canceled") == "succeeded"
    job = page.request.get(f"/api/v1/generations/{second_id}").json()
    assert job["request"].get("image"), job["request"]
    assert any(node.get("type") == "image_to_image" for node in job["reproducibility"]["nodes"].values())

