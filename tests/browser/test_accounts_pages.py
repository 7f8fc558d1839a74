"""The account pages as a person uses them: sign up, API keys, invitations, the workspace switcher."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests

from accounts.models import Membership, Role, User, Workspace
from accounts.services import user_ensure_personal_workspace, workspace_create

from .helpers import PASSWORD, login, signup

expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEY_SHAPE = re.compile(r"^kizy_[0-9A-Za-z]{8}_[0-9A-Za-z]{38}$")


def active_workspace(page: Any) -> Any:
    return page.get_by_test_id("active-workspace")


def open_workspace_menu(page: Any) -> None:
    page.get_by_test_id("workspace-switcher").locator("summary").click()


def open_user_menu(page: Any) -> None:
    page.get_by_test_id("user-menu").locator("summary").click()


def call_me(live_server: Any, key: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return requests.get(f"{live_server.url}/api/v1/me", headers=headers, timeout=10)


def role_of(email: str, workspace: str) -> str:
    return Membership.objects.get(user__email=email, workspace__name=workspace).role


def test_signup_create_api_key_shown_once_then_log_out_and_in(
    open_page: Any, live_server: Any, screenshots_dir: Path
) -> None:
    page = open_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_role("link", name="Create an account").click()

    signup(page, "ada@example.com")

    expect(active_workspace(page)).to_have_text("ada's workspace")
    assert Workspace.objects.filter(memberships__user__email="ada@example.com").count() == 1

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.get_by_test_id("workspace-name")).to_have_text("ada's workspace")
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()

    page.get_by_label("Name", exact=True).fill("Laptop script")
    page.get_by_label("Train").check()
    page.get_by_role("button", name="Create key").click()

    key = page.get_by_test_id("new-key-value").inner_text().strip()
    assert KEY_SHAPE.match(key), key
    expect(page.get_by_text("you won't see it again")).to_be_visible()
    page.screenshot(path=str(screenshots_dir / "api-keys.png"), full_page=True)

    page.get_by_test_id("copy-key").click()
    expect(page.get_by_test_id("copy-key")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key

    response = call_me(live_server, key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["workspace"]["name"] == "ada's workspace"
    assert body["api_key"]["name"] == "Laptop script"
    assert body["scopes"] == ["generate", "read", "train"]

    prefix = key.split("_")[1]
    page.goto("/settings/api-keys")
    expect(page.get_by_test_id("new-key")).to_have_count(0)
    assert key not in page.content()
    row = page.locator(f"tr[data-key-prefix='{prefix}']")
    expect(row).to_contain_text(f"kizy_{prefix}_")
    expect(row).to_contain_text("Laptop script")
    expect(row).to_contain_text("ada@example.com")
    expect(row).to_contain_text("Active")

    open_user_menu(page)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_test_id("user-menu")).to_have_count(0)
    assert call_me(live_server, key).status_code == 200  # logging out does not touch API keys

    login(page, "ada@example.com")
    expect(active_workspace(page)).to_have_text("ada's workspace")
    page.goto("/settings/api-keys")
    expect(page.locator(f"tr[data-key-prefix='{prefix}']")).to_be_visible()


def test_revoked_key_stops_working(open_page: Any, live_server: Any) -> None:
    page = open_page()
    page.goto("/accounts/signup/")
    signup(page, "grace@example.com")
    page.goto("/settings/api-keys")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-key-value").inner_text().strip()
    assert call_me(live_server, key).status_code == 200

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"tr[data-key-prefix='{key.split('_')[1]}']").get_by_role("button", name="Revoke").click()
    expect(page.get_by_test_id("message")).to_contain_text("Revoked")
    expect(page.locator(f"tr[data-key-prefix='{key.split('_')[1]}']")).to_contain_text("Revoked")
    assert call_me(live_server, key).status_code == 401


def test_invited_person_signs_up_from_the_link_and_joins_with_the_chosen_role(
    open_page: Any, live_server: Any, mailoutbox: list[Any]
) -> None:
    owner = User.objects.create_user("olivia@example.com", PASSWORD)
    user_ensure_personal_workspace(user=owner)

    page = open_page()
    login(page, "olivia@example.com")
    open_workspace_menu(page)
    page.get_by_test_id("workspace-switcher").get_by_role("link", name="New workspace").click()
    page.get_by_label("Workspace name").fill("Acme Studio")
    page.get_by_role("button", name="Create workspace").click()
    expect(active_workspace(page)).to_have_text("Acme Studio")

    invite = page.get_by_test_id("invite-form")
    invite.get_by_label("Email address").fill("bob@example.com")
    invite.get_by_label("Role").select_option("viewer")
    invite.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_test_id("message")).to_contain_text("Invitation sent to bob@example.com")
    expect(page.get_by_test_id("invitations-table")).to_contain_text("bob@example.com")

    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == ["bob@example.com"]
    assert "Acme Studio" in email.subject
    link = re.search(r"https?://\S+/invitations/\S+", email.body)
    assert link, email.body

    guest = open_page()
    guest.goto(link.group(0))
    expect(guest.get_by_role("heading", name="Join Acme Studio")).to_be_visible()
    expect(guest.get_by_test_id("invitation")).to_contain_text("Viewer")
    guest.get_by_role("link", name="Create an account").click()
    signup(guest, "bob@example.com")

    # Back on the invitation, now signed in with the invited address.
    guest.get_by_role("button", name="Accept and join Acme Studio").click()
    expect(guest.get_by_test_id("message")).to_contain_text("You joined Acme Studio as Viewer")
    expect(active_workspace(guest)).to_have_text("Acme Studio")
    expect(guest.locator("tr[data-member='bob@example.com']")).to_contain_text("Viewer")
    # A viewer cannot invite, and sees no key creation form.
    expect(guest.get_by_test_id("invite-form")).to_have_count(0)
    guest.goto("/settings/api-keys")
    expect(guest.get_by_test_id("create-key-form")).to_have_count(0)
    assert role_of("bob@example.com", "Acme Studio") == Role.VIEWER

    # The owner sees the new member and promotes them.
    page.goto("/settings/workspace")
    expect(page.get_by_test_id("invitations-table")).to_have_count(0)
    row = page.locator("tr[data-member='bob@example.com']")
    row.get_by_label("Role of bob@example.com").select_option("member")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("message")).to_contain_text("bob@example.com is now Member")
    assert role_of("bob@example.com", "Acme Studio") == Role.MEMBER


def test_workspace_switcher_changes_the_active_workspace(open_page: Any, live_server: Any) -> None:
    user = User.objects.create_user("wes@example.com", PASSWORD)
    user_ensure_personal_workspace(user=user)
    workspace_create(name="Night Shift", owner=user)

    page = open_page()
    login(page, "wes@example.com")
    expect(active_workspace(page)).to_have_text("wes's workspace")

    page.goto("/settings/api-keys")
    open_workspace_menu(page)
    page.get_by_role("button", name=re.compile("Night Shift")).click()
    expect(page.get_by_test_id("message")).to_contain_text("Switched to Night Shift")
    expect(active_workspace(page)).to_have_text("Night Shift")
    expect(page).to_have_url(re.compile(r"/settings/api-keys$"))  # stays on the same page

    # What the page creates now belongs to the workspace it switched to.
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-key-value").inner_text().strip()
    assert call_me(live_server, key).json()["workspace"]["name"] == "Night Shift"

    page.goto("/settings/workspace")
    expect(page.get_by_test_id("workspace-name")).to_have_text("Night Shift")
    open_workspace_menu(page)
    page.get_by_role("button", name=re.compile("wes's workspace")).click()
    expect(page.get_by_test_id("workspace-name")).to_have_text("wes's workspace")


def test_error_pages_are_friendly(open_page: Any, live_server: Any) -> None:
    page = open_page()
    response = page.goto("/no-such-page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="We couldn't find that page")).to_be_visible()
    expect(page.get_by_role("link", name="Go home")).to_be_visible()

    page.goto("/accounts/signup/")
    signup(page, "vera@example.com")
    response = page.goto("/invitations/not-a-real-token")
    assert response is not None and response.status == 404
    expect(page.get_by_test_id("error-404")).to_be_visible()
    expect(active_workspace(page)).to_have_text("vera's workspace")  # the layout still knows who you are


def test_api_docs_and_admin_render(open_page: Any, live_server: Any) -> None:
    staff = User.objects.create_user("root@example.com", PASSWORD, is_staff=True, is_superuser=True)
    user_ensure_personal_workspace(user=staff)
    page = open_page()
    response = page.goto("/api/docs/")
    assert response is not None and response.status == 200
    expect(page.get_by_text("/api/v1/me")).to_be_visible()

    login(page, "root@example.com")
    open_user_menu(page)
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
