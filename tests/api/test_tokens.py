"""App tokens: created once with their value, listed without it, revoked for good."""

from __future__ import annotations

import base64

from tests.api.conftest import Api, Seed


def test_create_shows_the_token_once(api: Api, seed: Seed) -> None:
    """POST /apps/{app}/tokens answers the token value with its metadata, once."""
    created = api.client.post("/apps/service-2/tokens", json={"description": "web dynos"})
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("ska_")
    assert body["kind"] == "app"
    assert body["description"] == "web dynos"
    assert body["app"]["name"] == "service-2"
    bare = api.client.post("/apps/service-2/tokens")
    assert bare.status_code == 201
    assert bare.json()["description"] == ""


def test_list_never_shows_the_value(api: Api, seed: Seed) -> None:
    """GET /apps/{app}/tokens lists ids and descriptions, never the token or its hash."""
    raw = api.app_token("service-2")
    listed = api.client.get("/apps/service-2/tokens")
    assert listed.status_code == 200
    assert [t["description"] for t in listed.json()] == ["test"]
    assert raw not in listed.text
    assert "hash" not in listed.text
    assert "token" not in listed.json()[0]
    assert api.client.get("/apps/service-1/tokens").json() == []


def test_an_app_token_reads_its_own_config(api: Api, seed: Seed) -> None:
    """An app token reads its app's config vars, with Bearer or Basic."""
    raw = api.app_token("service-2")
    by_bearer = api.call("GET", "/apps/service-2/config-vars", token=raw)
    assert by_bearer.status_code == 200
    assert "SERVICE_ONE_SECURE_KEY" in by_bearer.json()
    request = api.client.build_request("GET", "/apps/service-2/config-vars")
    request.headers["Authorization"] = "Basic " + base64.b64encode(f":{raw}".encode()).decode()
    by_basic = api.client.send(request)
    assert by_basic.status_code == 200
    assert by_basic.json() == by_bearer.json()


def test_revoked_token_gets_401(api: Api, seed: Seed) -> None:
    """DELETE /apps/{app}/tokens/{id} answers the token; it is refused with 401 at once."""
    raw = api.app_token("service-2")
    assert api.call("GET", "/apps/service-2/config-vars", token=raw).status_code == 200
    token_id = api.client.get("/apps/service-2/tokens").json()[0]["id"]
    revoked = api.client.delete(f"/apps/service-2/tokens/{token_id}")
    assert revoked.status_code == 200
    assert revoked.json()["id"] == token_id
    refused = api.call("GET", "/apps/service-2/config-vars", token=raw)
    assert refused.status_code == 401
    assert refused.json()["id"] == "unauthorized"
    assert api.client.get("/apps/service-2/tokens").json() == []


def test_revoke_through_another_app_is_404(api: Api, seed: Seed) -> None:
    """A token is revoked through its own app only; elsewhere it is not found."""
    raw = api.app_token("service-2")
    token_id = api.client.get("/apps/service-2/tokens").json()[0]["id"]
    wrong = api.client.delete(f"/apps/service-1/tokens/{token_id}")
    assert wrong.status_code == 404
    assert wrong.json()["resource"] == "token"
    assert api.call("GET", "/apps/service-2/config-vars", token=raw).status_code == 200


def test_tokens_of_unknown_app_is_404(api: Api) -> None:
    """Creating or listing tokens for an unknown app is a 404 naming the app."""
    for answer in (
        api.client.post("/apps/nope-app/tokens", json={}),
        api.client.get("/apps/nope-app/tokens"),
    ):
        assert answer.status_code == 404
        assert answer.json()["resource"] == "app"
