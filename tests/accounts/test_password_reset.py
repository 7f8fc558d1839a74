"""Password reset in the browser, end to end through the email a person receives.

The email must come from Kizy (not Django's default "example.com" site) and point back at the site.
"""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.sites.models import Site
from django.core import mail
from django.test import Client

from tests.conftest import Persona

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a brand new lighthouse 42"


def test_the_site_is_named_kizy_at_the_site_url() -> None:
    site = Site.objects.get_current()
    assert site.name == "Kizy"
    assert site.domain and site.domain in settings.SITE_URL
    assert "example.com" not in site.domain


def test_reset_link_from_the_email_sets_a_new_password_that_logs_in(owner: Persona) -> None:
    client = Client()
    response = client.post("/accounts/password/reset/", {"email": owner.user.email})
    assert response.status_code == 302, response.content.decode()[:500]

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [owner.user.email]
    assert message.subject.startswith("[Kizy] ")
    assert "Hello from Kizy!" in message.body
    assert settings.SITE_URL in message.body
    assert "example.com" not in message.subject + message.body.replace(owner.user.email, "")

    link = re.search(r"https?://\S+/accounts/password/reset/key/\S+", message.body)
    assert link, message.body
    path = re.sub(r"^https?://[^/]+", "", link.group(0))

    # allauth moves the key from the URL into the session, then shows the form.
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    assert b"password1" in form_page.content, form_page.content.decode()[:800]
    set_password_url = form_page.redirect_chain[-1][0] if form_page.redirect_chain else path
    done = client.post(set_password_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302, done.content.decode()[:800]

    owner.user.refresh_from_db()
    assert owner.user.check_password(NEW_PASSWORD)

    fresh = Client()
    old = fresh.post("/accounts/login/", {"login": owner.user.email, "password": "correct horse battery staple"})
    assert old.status_code == 200  # the form again, with an error: the old password no longer works
    logged_in = fresh.post("/accounts/login/", {"login": owner.user.email, "password": NEW_PASSWORD})
    assert logged_in.status_code == 302
    assert fresh.get("/api/v1/me").json()["user"]["email"] == owner.user.email


def test_a_used_reset_link_does_not_work_twice(owner: Persona) -> None:
    client = Client()
    client.post("/accounts/password/reset/", {"email": owner.user.email})
    link = re.search(r"https?://\S+/password/reset/key/\S+", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    path = re.sub(r"^https?://[^/]+", "", link.group(0))
    page = client.get(path, follow=True)
    client.post(page.redirect_chain[-1][0], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    again = Client().get(path, follow=True)
    assert b"password1" not in again.content
    assert b"invalid" in again.content.lower() or b"expired" in again.content.lower()
