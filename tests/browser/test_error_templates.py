"""Error templates that Django renders without a request (no browser needed, so not marked `browser`)."""
from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.test import Client


def test_500_page_renders_without_a_request_context() -> None:
    html = render_to_string("500.html")  # Django's server_error view passes no context at all
    assert "Something went wrong" in html
    assert "/static/css/kizy.css" in html


@pytest.mark.django_db
def test_csrf_failure_page_is_friendly() -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"login": "a@example.com", "password": "x"})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()
