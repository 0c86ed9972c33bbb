"""App webhooks in Heroku's shape: create, list, get, delete, and their deliveries."""

from __future__ import annotations

from tests.api.conftest import Api, Seed
from tests.pg import free_port


def _hook_body(port: int) -> dict[str, object]:
    return {"url": f"http://127.0.0.1:{port}/hook", "include": ["api:release"], "level": "notify"}


def test_create_generates_a_secret_and_returns_it_in_a_header(api: Api, seed: Seed) -> None:
    """Without a secret one is generated, shown once in Heroku-Webhook-Secret."""
    created = api.client.post("/apps/service-2/webhooks", json=_hook_body(free_port()))
    assert created.status_code == 201
    body = created.json()
    assert body["include"] == ["api:release"]
    assert body["level"] == "notify"
    assert body["app"]["name"] == "service-2"
    secret = created.headers["heroku-webhook-secret"]
    assert len(secret) >= 32
    assert secret not in created.text


def test_create_with_a_secret_does_not_echo_it(api: Api, seed: Seed) -> None:
    """A given secret is kept and never echoed."""
    created = api.client.post(
        "/apps/service-2/webhooks", json={**_hook_body(free_port()), "secret": "s3cret-value"}
    )
    assert created.status_code == 201
    assert "heroku-webhook-secret" not in created.headers
    assert "s3cret-value" not in created.text


def test_list_get_and_delete(api: Api, seed: Seed) -> None:
    """A webhook is listed, fetched by id, deleted, and then gone."""
    hook = api.client.post("/apps/service-2/webhooks", json=_hook_body(free_port())).json()
    listed = api.client.get("/apps/service-2/webhooks")
    assert [h["id"] for h in listed.json()] == [hook["id"]]
    fetched = api.client.get(f"/apps/service-2/webhooks/{hook['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["url"] == hook["url"]
    assert api.client.get(f"/apps/service-1/webhooks/{hook['id']}").status_code == 404
    gone = api.client.delete(f"/apps/service-2/webhooks/{hook['id']}")
    assert gone.status_code == 200
    assert gone.json()["id"] == hook["id"]
    missing = api.client.get(f"/apps/service-2/webhooks/{hook['id']}")
    assert missing.status_code == 404
    assert missing.json()["resource"] == "app_webhook"
    assert api.client.get("/apps/service-2/webhooks").json() == []


def test_invalid_webhooks_are_refused(api: Api, seed: Seed) -> None:
    """Bad url, include or level are 422s naming the field; nothing is created."""
    port = free_port()
    cases = [
        ({**_hook_body(port), "url": "ftp://127.0.0.1/x"}, "url"),
        ({**_hook_body(port), "include": ["api:build"]}, "include"),
        ({**_hook_body(port), "include": []}, "include"),
        ({**_hook_body(port), "level": "loud"}, "level"),
    ]
    for body, field in cases:
        refused = api.client.post("/apps/service-2/webhooks", json=body)
        assert refused.status_code == 422, body
        assert refused.json()["field"] == field
    assert api.client.get("/apps/service-2/webhooks").json() == []


def test_a_release_queues_a_delivery(api: Api, seed: Seed) -> None:
    """A config change on the app queues an api:release delivery, listed and fetchable."""
    hook = api.client.post("/apps/service-2/webhooks", json=_hook_body(free_port())).json()
    assert api.client.get("/apps/service-2/webhook-deliveries").json() == []
    api.client.patch("/apps/service-2/config-vars", json={"A": "1"})
    listed = api.client.get("/apps/service-2/webhook-deliveries")
    assert listed.status_code == 200
    deliveries = listed.json()
    assert len(deliveries) == 1
    delivery = deliveries[0]
    assert delivery["webhook"]["id"] == hook["id"]
    assert delivery["event"]["include"] == "api:release"
    assert delivery["status"] in ("pending", "retrying", "failed")
    one = api.client.get(f"/apps/service-2/webhook-deliveries/{delivery['id']}")
    assert one.status_code == 200
    assert one.json()["id"] == delivery["id"]
    missing = api.client.get(
        "/apps/service-2/webhook-deliveries/00000000-0000-4000-8000-000000000000"
    )
    assert missing.status_code == 404
    assert missing.json()["resource"] == "app_webhook_delivery"


def test_webhooks_of_unknown_app_is_404(api: Api) -> None:
    """Webhooks and deliveries of an unknown app are 404s naming the app."""
    for answer in (
        api.client.get("/apps/nope-app/webhooks"),
        api.client.post("/apps/nope-app/webhooks", json=_hook_body(free_port())),
        api.client.get("/apps/nope-app/webhook-deliveries"),
    ):
        assert answer.status_code == 404
        assert answer.json()["resource"] == "app"
