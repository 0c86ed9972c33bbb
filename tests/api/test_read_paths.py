"""The read paths issue 9 reshaped: the in-memory config read, which asks the route's own
permission rule and names its route template for the metrics, and views read in one transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from securekey.api.middleware import CachedConfigRead, route_template
from tests.api.conftest import NO_AUTH, Api, make_seed, running_api


@contextmanager
def _transactions(api: Api) -> Iterator[list[int]]:
    """Counts the database transactions begun inside the block (``count[0]``)."""
    count = [0]

    def begun(_conn: Any) -> None:
        count[0] += 1

    engine = api.runtime.store.engine
    sa.event.listen(engine, "begin", begun)
    try:
        yield count
    finally:
        sa.event.remove(engine, "begin", begun)


def test_addon_views_are_read_in_one_transaction(tmp_path: Path, template_dir: Path) -> None:
    """Listing add-ons, or one with its fingerprints, takes two transactions however many."""
    with running_api(tmp_path / "data", template_dir, auth_cache_ttl=3600.0) as api:
        seed = make_seed(api)
        for plan, name in (("securekey:daily", "DAILY"), ("securekey:weekly", "WEEKLY")):
            body = {"plan": plan, "attachment": {"name": name}}
            made = api.client.post("/apps/service-2/addons", json=body)
            assert made.status_code == 201, made.text
        assert api.client.get("/apps").status_code == 200  # the token is verified and cached
        with _transactions(api) as count:
            listed = api.client.get("/addons")
        assert listed.status_code == 200
        assert len(listed.json()) == 3
        assert {a["app"]["name"] for a in listed.json()} == {"service-1", "service-2"}
        assert count[0] == 2  # the add-ons, then their view
        with _transactions(api) as count:
            one = api.client.get(f"/addons/{seed.addon['name']}")
        assert one.status_code == 200
        assert one.json()["config_vars"] == ["SECURE_KEY"]
        assert set(one.json()["securekey"]["fingerprints"]) == {"latest", "previous"}
        assert count[0] == 2


def _request(path: str, token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "state": {},
    }


def _answer(api: Api, path: str, token: str) -> tuple[dict[str, Any], list[Any], bool]:
    """Ask the fast path alone: what it sent, and whether it passed the request on."""
    passed_on = False

    async def route(_scope: Any, _receive: Any, _send: Any) -> None:
        nonlocal passed_on
        passed_on = True

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = _request(path, token)
    middleware = CachedConfigRead(route, ctx=api.app.state.ctx)
    asyncio.run(middleware(scope, receive, send))
    return scope, sent, passed_on


def test_fast_path_answers_with_the_routes_rule_and_names_its_template(
    api: Api,
) -> None:
    """A cached read is answered from memory only for a caller the route's rule admits."""
    make_seed(api)
    own, other = api.app_token("service-1"), api.app_token("service-2")
    for token in (own, other):
        api.call("GET", "/apps/service-1/config-vars", token=token)  # caches token and config
    scope, sent, passed_on = _answer(api, "/apps/service-1/config-vars", own)
    assert not passed_on
    assert sent[0]["status"] == 200
    assert route_template(scope) == "/apps/{app}/config-vars"
    scope, sent, passed_on = _answer(api, "/apps/service-1/config-vars", other)
    assert passed_on  # the route gives the 403, with its message
    assert not sent
    assert route_template(scope) == "unmatched"
    refused = api.call("GET", "/apps/service-1/config-vars", token=other)
    assert refused.status_code == 403
    assert refused.json()["message"] == "This token belongs to another app."


def test_fast_reads_are_timed_under_the_route_template(api: Api) -> None:
    """Reads answered from memory count under ``/apps/{app}/config-vars``, not ``unmatched``."""
    make_seed(api)
    for _ in range(3):
        assert api.client.get("/apps/service-1/config-vars").status_code == 200
    text = api.call("GET", "/metrics", token=NO_AUTH).text
    labels = 'method="GET",route="/apps/{app}/config-vars",status="200"'
    assert f"securekey_request_duration_seconds_count{{{labels}}} 3.0" in text
    assert 'route="unmatched",status="200"' not in text


def test_a_hit_late_in_the_cache_ttl_renews_the_entry_before_it_expires(
    tmp_path: Path, template_dir: Path
) -> None:
    """A fast-path hit on a config past 80 % of its TTL is answered from memory and re-reads
    that config once in the background, so the entry is renewed (same body, newer timestamp)
    before any request has to miss; a later rotation is still what the next read returns."""
    with running_api(tmp_path / "data", template_dir, auth_cache_ttl=3600.0, cache_ttl=1.0) as api:
        make_seed(api)
        cache = api.app.state.ctx.cache
        first = api.client.get("/apps/service-1/config-vars")
        assert first.status_code == 200
        filled = cache.lookup("service-1")
        assert filled is not None
        deadline = time.monotonic() + 10
        while time.monotonic() - filled.stored_at <= 0.85 and time.monotonic() < deadline:
            time.sleep(0.05)
        hits = cache.hits
        again = api.client.get("/apps/service-1/config-vars")
        assert again.status_code == 200
        assert again.json() == first.json()
        renewed = filled
        while renewed is filled and time.monotonic() < deadline:
            time.sleep(0.02)
            renewed = cache.lookup("service-1") or filled
        assert renewed.stored_at > filled.stored_at
        assert renewed.body == filled.body
        assert cache.hits > hits  # the late read itself was a hit, not a miss
        addon = api.client.get("/apps/service-1/addons").json()[0]["name"]
        assert api.client.post(f"/addons/{addon}/actions/rotate").status_code in (200, 201)
        rotated = api.client.get("/apps/service-1/config-vars").json()
        assert rotated["SECURE_KEY"] != first.json()["SECURE_KEY"]


def test_a_token_hit_late_in_its_ttl_is_checked_again_before_it_expires(
    tmp_path: Path, template_dir: Path
) -> None:
    """A request whose token was checked over 80 % of the token cache's TTL ago is answered
    from the cache and re-checks that token once in the background (the entry is renewed
    before it expires, so requests in flight never all miss together)."""
    with running_api(tmp_path / "data", template_dir, auth_cache_ttl=1.0, cache_ttl=3600.0) as api:
        make_seed(api)
        auth = api.app.state.ctx.auth
        assert api.client.get("/apps/service-1/config-vars").status_code == 200
        first = auth.checked_at(api.token)
        assert first is not None
        deadline = time.monotonic() + 10
        while time.monotonic() - first <= 0.85 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert api.client.get("/apps/service-1/config-vars").status_code == 200
        renewed = first
        while renewed == first and time.monotonic() < deadline:
            time.sleep(0.02)
            renewed = auth.checked_at(api.token) or first
        assert renewed > first, "the late hit did not renew the token's entry"


def test_a_recheck_drops_a_token_revoked_without_a_notice(
    tmp_path: Path, template_dir: Path
) -> None:
    """Abuse case: a token revoked where no notice reached this process (written to the
    database behind its back) is dropped from the cache by the next re-check, and refused."""
    with running_api(tmp_path / "data", template_dir, auth_cache_ttl=3600.0) as api:
        make_seed(api)
        made = api.client.post("/apps/service-1/tokens", json={"description": "leaked"})
        assert made.status_code == 201, made.text
        leaked = made.json()["token"]
        assert api.client.get("/apps/service-1/config-vars", headers=api.auth(leaked)).is_success
        auth = api.app.state.ctx.auth
        assert auth.checked_at(leaked) is not None
        with api.runtime.store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE tokens SET revoked_at = CURRENT_TIMESTAMP WHERE id = :i"),
                         {"i": made.json()["id"]})  # fmt: skip
        auth.recheck(leaked)
        assert auth.checked_at(leaked) is None
        refused = api.client.get("/apps/service-1/config-vars", headers=api.auth(leaked))
        assert refused.status_code == 401
        auth.recheck(api.token)  # a valid token is renewed, not dropped
        assert auth.checked_at(api.token) is not None
