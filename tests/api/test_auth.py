"""Authentication: Bearer, Basic with the token as password, refusals, and the failure limit."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest

from securekey.api.auth import FailureLimiter, client_key
from securekey.domain.clock import FixedClock
from securekey.exceptions import AuthenticationError, RateLimitedError
from securekey.services.resources import iso
from tests.api.conftest import NO_AUTH, Api, Seed, dump_state, running_api


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer_token(api: Api) -> None:
    """Authorization: Bearer <operator token> is accepted."""
    answer = api.call("GET", "/apps", headers={"Authorization": f"Bearer {api.token}"})
    assert answer.status_code == 200


def test_basic_with_empty_user_and_token_as_password(api: Api) -> None:
    """HTTP Basic with an empty user and the token as password, as Heroku clients send."""
    request = api.client.build_request("GET", "/apps")
    request.headers["Authorization"] = _basic("", api.token)
    assert api.client.send(request).status_code == 200
    request = api.client.build_request("GET", "/apps")
    request.headers["Authorization"] = _basic("someone@example.com", api.token)
    assert api.client.send(request).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b"no-colon-at-all").decode(),
        "Basic ",
        "Bearer ",
        "Bearer",
        "Digest abc",
        "sko_just-a-token",
    ],
)
def test_malformed_credentials_are_401(api: Api, header: str) -> None:
    """Malformed Basic, empty Bearer and unknown schemes are 401 with WWW-Authenticate."""
    request = api.client.build_request("GET", "/apps")
    request.headers["Authorization"] = header
    answer = api.client.send(request)
    assert answer.status_code == 401
    assert answer.json()["id"] == "unauthorized"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_missing_and_unknown_tokens_are_401(api: Api) -> None:
    """No credentials and a token nobody issued are both 401."""
    assert api.call("GET", "/apps", token=NO_AUTH).status_code == 401
    assert api.call("GET", "/apps", token="sko_" + "x" * 43).status_code == 401
    assert api.call("GET", "/apps", token="t" * 5000).status_code == 401


def test_error_messages_do_not_echo_the_token(api: Api) -> None:
    """A refused token never appears in the answer."""
    secretish = "sko_this-is-not-a-real-token-but-looks-like-one"
    answer = api.call("GET", "/apps", token=secretish)
    assert secretish not in answer.text


def test_repeated_bad_tokens_are_rate_limited(tmp_path: Path, template_dir: Path) -> None:
    """Past the limit one client's failures get 429 with Retry-After, and nothing changes."""
    with running_api(tmp_path / "data", template_dir, auth_failure_limit=3) as api:
        before = dump_state(api.runtime.store.engine)
        for _ in range(3):
            refused = api.call("POST", "/apps", token="bad-token", json={"name": "evil-app"})
            assert refused.status_code == 401
        limited = api.call("POST", "/apps", token="bad-token", json={"name": "evil-app"})
        assert limited.status_code == 429
        assert limited.json()["id"] == "rate_limit"
        assert 1 <= int(limited.headers["retry-after"]) <= 61
        assert api.call("GET", "/apps", token=NO_AUTH).status_code == 429
        assert api.call("GET", "/healthz", token=NO_AUTH).status_code == 200
        assert dump_state(api.runtime.store.engine) == before


def test_point3_valid_tokens_pass_while_failures_are_limited(
    tmp_path: Path, template_dir: Path
) -> None:
    """Past the limit the same address's failures get 429, yet its valid operator and app
    tokens are served (read path, routes and writes alike)."""
    with running_api(tmp_path / "data", template_dir, auth_failure_limit=3) as api:
        assert api.client.post("/apps", json={"name": "nat-app"}).status_code == 201
        app_token = api.app_token("nat-app")
        for _ in range(5):
            api.call("GET", "/apps/nat-app/config-vars", token="bad-token")
        assert api.call("GET", "/apps", token="bad-token").status_code == 429
        assert api.call("GET", "/apps").status_code == 200
        assert api.client.post("/apps", json={"name": "good-app"}).status_code == 201
        for _ in range(2):  # the slow path, then the cached fast path
            read = api.call("GET", "/apps/nat-app/config-vars", token=app_token)
            assert read.status_code == 200


def test_point3_the_limiter_forgets_the_oldest_not_everyone() -> None:
    """A flood of new addresses evicts the least recently failing ones, never the whole
    table: an address that keeps failing stays limited."""
    limiter = FailureLimiter(limit=3, window=600, max_clients=100)
    bad = AuthenticationError("Invalid credentials provided.")
    for _ in range(4):
        answer = limiter.fail("198.51.100.1", bad)
    assert isinstance(answer, RateLimitedError)
    for i in range(1000):
        limiter.fail(f"10.0.{i // 250}.{i % 250}", bad)
        if i % 50 == 0:
            assert isinstance(limiter.fail("198.51.100.1", bad), RateLimitedError)
    assert len(limiter) <= 100
    assert isinstance(limiter.fail("198.51.100.1", bad), RateLimitedError)


def test_point3_ipv6_clients_are_counted_per_64() -> None:
    """Addresses in one IPv6 /64 (one host's usual share) count together; IPv4-mapped
    addresses count as their IPv4 address."""
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("testclient") == "testclient"
    limiter = FailureLimiter(limit=2)
    bad = AuthenticationError("Invalid credentials provided.")
    for i in range(2):
        assert limiter.fail(f"2001:db8::{i}", bad) is bad
    assert isinstance(limiter.fail("2001:db8::ff", bad), RateLimitedError)


def test_point14_several_authorization_headers_are_refused_on_both_paths(
    api: Api, seed: Seed
) -> None:
    """Two Authorization headers are a 401 saying so, whichever comes first, on the cached
    fast read path and on the routes alike; one header still works."""
    good = f"Bearer {api.token}"
    bad = "Bearer sko_" + "0" * 43
    path = "/apps/service-2/config-vars"
    for _ in range(2):  # warm the token and config caches: the fast path would answer
        assert api.call("GET", path).status_code == 200
    for target in (path, "/apps", "/apps/service-2/config-vars/stream"):
        for first, second in ((good, bad), (bad, good), (good, good)):
            headers = [("Authorization", first), ("Authorization", second)]
            answer = api.client.get(target, headers=headers)
            assert answer.status_code == 401, (target, first[:12], second[:12])
            assert "one Authorization header" in answer.json()["message"]
    assert api.call("GET", path).status_code == 200


def test_point14_last_used_at_moves_coarsely(tmp_path: Path, template_dir: Path) -> None:
    """Token listings show when a token was last used; it moves at most once a minute."""
    clock = FixedClock()
    options = {"clock": clock, "auth_cache_ttl": 0.0}
    with running_api(tmp_path / "data", template_dir, **options) as api:
        assert api.client.post("/apps", json={"name": "used-app"}).status_code == 201
        raw = api.app_token("used-app")

        def last_used() -> str | None:
            value: str | None = api.client.get("/apps/used-app/tokens").json()[0]["last_used_at"]
            return value

        assert last_used() is None
        start = clock.now()
        assert api.call("GET", "/apps/used-app/config-vars", token=raw).status_code == 200
        assert last_used() == iso(start)
        clock.advance(timedelta(seconds=30))
        api.call("GET", "/apps/used-app/config-vars", token=raw)
        assert last_used() == iso(start)
        clock.advance(timedelta(seconds=31))
        api.call("GET", "/apps/used-app/config-vars", token=raw)
        assert last_used() == iso(clock.now())
        [operator] = api.client.get("/operator-tokens").json()
        assert operator["last_used_at"] is not None
