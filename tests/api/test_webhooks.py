"""App webhooks in Heroku's shape: create, list, get, delete, and their deliveries."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securekey.services.webhooks import WebhookService
from tests.api.conftest import Api, Seed, dump_state, make_seed, running_api
from tests.pg import free_port
from tests.support import wait_until


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


@pytest.fixture
def strict_api(tmp_path: Path, template_dir: Path) -> Iterator[Api]:
    """The API with the default webhook target policy (no private targets)."""
    with running_api(tmp_path / "data", template_dir, allow_private_webhooks=False) as found:
        make_seed(found)
        yield found


#: Targets the outside review reached, and the other spellings of non-public addresses.
PRIVATE_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://[::1]/hook",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://127.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://[fc00::1]/hook",
    "http://[fe80::1]/hook",
    "http://0.0.0.0:5000/apps",
    "http://[::ffff:127.0.0.1]/hook",
    "https://localhost/hook",
    "http://api.localhost/hook",
]


def test_issue8_point11_private_webhook_targets_are_refused_at_creation(strict_api: Api) -> None:
    """By default every loopback, link-local or private target is a 422 naming url; none made."""
    before = dump_state(strict_api.runtime.store.engine)
    for url in PRIVATE_URLS:
        body = {"url": url, "include": ["api:release"]}
        refused = strict_api.client.post("/apps/service-2/webhooks", json=body)
        assert refused.status_code == 422, (url, refused.text)
        assert refused.json()["field"] == "url"
        assert "--allow-private-webhooks" in refused.json()["message"]
    assert dump_state(strict_api.runtime.store.engine) == before
    # A public name is accepted: it is resolved and checked when delivered, not now.
    fine = {"url": "https://hooks.example.com/securekey", "include": ["api:release"]}
    assert strict_api.client.post("/apps/service-2/webhooks", json=fine).status_code == 201


def test_issue8_point11_private_targets_are_refused_again_at_delivery(strict_api: Api) -> None:
    """A stored hook whose host is private (made while allowed) is never connected to."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    try:
        port = listener.getsockname()[1]
        # Made while the server allowed private targets (say, before a restart without it).
        WebhookService(strict_api.runtime.store, allow_private=True).create(
            "service-2", f"http://localhost:{port}/hook", ["api:release"]
        )
        assert strict_api.client.patch("/apps/service-2/config-vars", json={"WAKE": "1"}).is_success

        def settled() -> dict[str, Any] | None:
            deliveries = strict_api.client.get("/apps/service-2/webhook-deliveries").json()
            last: dict[str, Any] | None = deliveries[0]["last_attempt"] if deliveries else None
            # Settled: an attempt in flight is listed before its outcome is recorded.
            if last is not None and (last["error_class"] is not None or last["code"] is not None):
                return last
            return None

        last = wait_until(settled, 15, "the delivery attempt's outcome", interval=0.05)
        assert last["error_class"] == "TargetRefused"
        assert last["code"] is None
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection ever reached the private receiver
    finally:
        listener.close()


def test_issue8_point12_credentials_in_webhook_urls_are_refused(strict_api: Api) -> None:
    """A URL with user:password@ is a 422 naming url that never echoes them; nothing stored."""
    before = dump_state(strict_api.runtime.store.engine)
    for url in (
        "https://user:s3cret-pass@hooks.example.com/hook",
        "https://s3cret-pass@hooks.example.com/hook",
        "https://:s3cret-pass@hooks.example.com/hook",
    ):
        body = {"url": url, "include": ["api:release"], "authorization": "Bearer abc"}
        refused = strict_api.client.post("/apps/service-2/webhooks", json=body)
        assert refused.status_code == 422, (url, refused.text)
        assert refused.json()["field"] == "url"
        assert "credentials" in refused.json()["message"]
        assert "s3cret-pass" not in refused.text
    assert dump_state(strict_api.runtime.store.engine) == before
    assert strict_api.client.get("/apps/service-2/webhooks").json() == []
