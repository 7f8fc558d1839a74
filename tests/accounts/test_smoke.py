import pytest


@pytest.mark.django_db
def test_me_with_key(owner):
    response = owner.client().get("/api/v1/me")
    assert response.status_code == 200, response.content
    assert response.json()["workspace"]["name"] == "Team A"
    assert "admin" in response.json()["scopes"]


@pytest.mark.django_db
def test_outsider_cannot_see_keys(owner, outsider):
    key_id = owner.client().get("/api/v1/api-keys").json()["results"][0]["id"]
    assert outsider.client().get(f"/api/v1/api-keys/{key_id}").status_code == 404
