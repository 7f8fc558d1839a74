"""What a person does on the entrance pages, as steps the browser tests share."""
from __future__ import annotations

from pathlib import Path
from typing import Any

PASSWORD = "correct horse battery staple"  # noqa: S105 (test accounts only)


def signup(page: Any, email: str, password: str = PASSWORD) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password (again)").fill(password)
    page.get_by_role("button", name="Create account").click()


def login(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def screenshot_path(name: str) -> Path:
    """Where a test saves a screenshot: test-artifacts/screenshots, or docs/img when refreshing the
    pictures the README shows (KIZY_UPDATE_SCREENSHOTS=1), so a plain test run leaves the tree clean."""
    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
