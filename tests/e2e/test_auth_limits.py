"""Issue 8 against real servers: the failed-auth limiter behind (and without) a proxy, an open
stream that others' failures cannot cut (point 3), and the caps on live streams (point 10)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e._sse import SseStream
from tests.servers import Server, running_server
from tests.support import new_app, new_app_token, wait_until

BAD = "sko_" + "0" * 43


def _bad_tries(server: Server, count: int, forwarded: list[str] | None = None) -> list[int]:
    """Statuses of ``count`` requests with a wrong token, each with its own X-Forwarded-For."""
    statuses = []
    with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
        for i in range(count):
            headers = {"Authorization": f"Bearer {BAD}"}
            if forwarded is not None:
                headers["X-Forwarded-For"] = forwarded[i % len(forwarded)]
            statuses.append(client.get("/apps", headers=headers).status_code)
    return statuses


def _app_with_token(http: httpx.Client, name: str) -> str:
    """A new app ``name`` and an app token for it."""
    return new_app_token(http, new_app(http, name))


def test_point3_forwarded_for_cannot_dodge_the_limiter(tmp_path: Path) -> None:
    """By default X-Forwarded-For is not believed: 40 bad tokens with 40 made-up client
    addresses from one connection address are counted together and get 429 past 30."""
    with running_server(tmp_path / "data") as server:
        spoofed = [f"203.0.113.{i}" for i in range(40)]
        statuses = _bad_tries(server, 40, spoofed)
        assert statuses[:30] == [401] * 30
        assert set(statuses[30:]) == {429}
        with server.client() as http:
            assert http.get("/apps").status_code == 200  # the limit never stops good tokens


def test_point3_forwarded_allow_ips_trusts_the_named_proxy(tmp_path: Path) -> None:
    """With --forwarded-allow-ips naming the proxy, each forwarded client has its own count."""
    extra = ["--forwarded-allow-ips", "127.0.0.1"]
    with running_server(tmp_path / "data", extra_args=extra) as server:
        spread = _bad_tries(server, 40, [f"203.0.113.{i}" for i in range(40)])
        assert set(spread) == {401}
        one = _bad_tries(server, 32, ["198.51.100.7"])
        assert one[:30] == [401] * 30
        assert set(one[30:]) == {429}


def test_point3_failures_do_not_lock_out_valid_tokens_or_cut_streams(tmp_path: Path) -> None:
    """After 40 failures from the same address, the operator and app tokens from it still
    work, and a stream open before the failures still delivers releases and can reconnect."""
    with running_server(tmp_path / "data") as server, server.client() as http:
        token = _app_with_token(http, "nat-app")
        path = "/apps/nat-app/config-vars/stream"
        with SseStream(server.url, path, token, read_timeout=25) as stream:
            first = stream.next_event()
            assert statuses_limited(_bad_tries(server, 40))
            # Past the read cache's lifetime, so the stream checks its token in the database.
            time.sleep(6)
            assert http.patch("/apps/nat-app/config-vars", json={"A": "1"}).status_code == 200
            second = stream.next_event()
            assert int(second.id or 0) > int(first.id or 0)
            assert second.json()["A"] == "1"
        assert http.get("/apps").status_code == 200
        with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as app_client:
            read = app_client.get(
                "/apps/nat-app/config-vars", headers={"Authorization": f"Bearer {token}"}
            )
            assert read.status_code == 200
        with SseStream(server.url, path, token) as again:
            assert again.next_event().json()["A"] == "1"


def statuses_limited(statuses: list[int]) -> bool:
    """The failures ended up answered 429."""
    return statuses[-1] == 429 and set(statuses) == {401, 429}


def test_point10_streams_are_capped_per_token_and_in_total(tmp_path: Path) -> None:
    """Past --max-streams-per-token one token's next stream is 429 with a clear message,
    other tokens go on up to --max-streams, and a closed stream frees its slot."""
    extra = ["--max-streams-per-token", "2", "--max-streams", "3"]
    with running_server(tmp_path / "data", extra_args=extra) as server, server.client() as http:
        one = _app_with_token(http, "cap-one")
        two = _app_with_token(http, "cap-two")
        path = "/apps/{}/config-vars/stream"
        opened = [SseStream(server.url, path.format("cap-one"), one) for _ in range(2)]
        try:
            for stream in opened:
                assert stream.response.status_code == 200
            with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
                headers = {"Authorization": f"Bearer {one}"}
                third = client.get(path.format("cap-one"), headers=headers)
                assert third.status_code == 429
                assert third.json()["id"] == "rate_limit"
                assert "open config streams" in third.json()["message"]
                assert "per token" in third.json()["message"]
                assert int(third.headers["retry-after"]) >= 1
            other = SseStream(server.url, path.format("cap-two"), two)
            opened.append(other)
            assert other.response.status_code == 200
            with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client:
                headers = {"Authorization": f"Bearer {two}"}
                full = client.get(path.format("cap-two"), headers=headers)
                assert full.status_code == 429
                assert "limit" in full.json()["message"]
            opened.pop(0).close()

            def reopened() -> SseStream | None:
                again = SseStream(server.url, path.format("cap-one"), one)
                if again.response.status_code == 200:
                    return again
                again.close()
                return None

            # The server notices the closed socket and frees the slot.
            opened.append(
                wait_until(reopened, 10, "a closed stream's slot to be freed", interval=0.1)
            )
            assert http.get("/apps").status_code == 200  # other requests are not capped
        finally:
            for stream in opened:
                stream.close()


def test_point2_a_new_environment_token_revokes_the_old_one(tmp_path: Path) -> None:
    """Restarting with a new SECUREKEY_OPERATOR_TOKEN makes the old one 401; restarting with
    the old one again is refused with a clear error instead of bringing it back."""
    data = tmp_path / "data"
    old = "sko_env_" + secrets.token_urlsafe(16)
    new = "sko_env_" + secrets.token_urlsafe(16)
    with running_server(data, token=old) as server, server.client() as http:
        assert http.get("/apps").status_code == 200
    with (
        running_server(data, token=new) as server,
        httpx.Client(base_url=server.url, timeout=10, trust_env=False) as client,
    ):
        stale = client.get("/apps", headers={"Authorization": f"Bearer {old}"})
        assert stale.status_code == 401
        fresh = client.get("/apps", headers={"Authorization": f"Bearer {new}"})
        assert fresh.status_code == 200
        listed = client.get("/operator-tokens", headers={"Authorization": f"Bearer {new}"})
        assert [t["source"] for t in listed.json()] == ["env"]
    with (
        pytest.raises(RuntimeError, match="SECUREKEY_OPERATOR_TOKEN holds a token that was"),
        running_server(data, token=old),
    ):
        raise AssertionError("a revoked SECUREKEY_OPERATOR_TOKEN was accepted again")
