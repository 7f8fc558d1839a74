"""Headless Chromium (Debian's, through Playwright's sync API) against pytest-django's live server.

Fixtures:
- `chromium_browser`: one browser per test module.
- `open_page()`: a fresh browser context (its own cookies, so its own user) with a page on the live
  server; call it twice for two people. Pages fail the test if the browser reports a Content
  Security Policy violation or an uncaught script error.
- `screenshots_dir`: where pages worth showing in the docs are saved (docs/img with KIZY_UPDATE_SCREENSHOTS=1).
Steps shared by the tests (sign up, log in) live in helpers.py.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("KIZY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# Screenshots go to test-artifacts/ (ignored by git); KIZY_UPDATE_SCREENSHOTS=1 writes them to docs/img
# instead, to refresh the pictures the README shows.
_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = _ROOT / ("docs/img" if os.environ.get("KIZY_UPDATE_SCREENSHOTS") else "test-artifacts/screenshots")


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it (apt-get install chromium) to run browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

    # Playwright's sync API keeps an event loop running in this thread while it is active, so Django
    # refuses ORM calls from the test body (and the live server's teardown flush) with "You cannot
    # call this from an async context". Allowed for the lifetime of the browser only, tests only.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def open_page(chromium_browser: Any, live_server: Any) -> Iterator[Callable[[], Any]]:
    contexts: list[Any] = []
    problems: list[str] = []

    def _open() -> Any:
        context = chromium_browser.new_context(
            base_url=live_server.url, viewport={"width": 1280, "height": 860}, color_scheme="light"
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()

        def on_console(message: Any) -> None:
            if "Content Security Policy" in message.text:
                problems.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(f"{page.url}: script error {error}"))
        return page

    yield _open
    for context in contexts:
        context.close()
    assert not problems, "The browser reported problems:\n" + "\n".join(problems)


@pytest.fixture
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
