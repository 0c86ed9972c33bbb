"""Authentication: Bearer, Basic with the token as password, refusals, and the failure limit."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.api.conftest import NO_AUTH, Api, dump_state, running_api


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
