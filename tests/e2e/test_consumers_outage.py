"""Consumers through an outage: the two services keep working while securekey is away.

Issue 11, point 4. The two example services run under load, following the add-on's rotations;
the securekey server is SIGKILLed in the middle of the rotations and kept down for ``OUTAGE``
seconds (5 in CI, 20 under ``make soak``), then started again on the same port and database.
Between the services not one request fails (they keep the keys they hold), and both pick up the
rotations made after the server is back.

The same with PostgreSQL stopped instead (``DB_OUTAGE`` seconds, 5 in CI, 20 under ``make
soak``): the server stays up, answers 503 to rotations and config reads from memory (stale),
keeps the services' streams open, and once the database is back they follow the next rotations.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.conftest import new_pg_database
from tests.e2e.test_two_services import (
    APPLY_DELAY_MAX,
    Load,
    Proc,
    _env,
    _uvicorn,
    await_latest,
    started,
)
from tests.pg import free_port
from tests.servers import Server, running_server
from tests.soak import scaled
from tests.support import new_app_token, seed_apps, wait_until

pytestmark = pytest.mark.slow

OUTAGE = scaled(5, 20)
DB_OUTAGE = scaled(5, 20)
ROTATE_EVERY = 0.5
ROTATIONS_EACH_SIDE = scaled(4, 20)


def _seed(server: Server) -> tuple[str, str, str]:
    """service-1 with an add-on attached to service-2; an app token for each."""
    with server.client() as http:
        addon: str = seed_apps(http).addon["name"]
        return addon, new_app_token(http, "service-1"), new_app_token(http, "service-2")


def _rotate(server: Server, addon: str, times: int) -> str:
    """Rotate ``times`` times, ``ROTATE_EVERY`` apart; the newest LATEST fingerprint."""
    latest = ""
    with server.client() as http:
        for _ in range(times):
            answer = http.post(f"/addons/{addon}/actions/rotate", json={})
            assert answer.status_code == 200, answer.text
            latest = answer.json()["fingerprints"]["latest"]
            time.sleep(ROTATE_EVERY)
    return latest


@contextlib.contextmanager
def _services(
    server: Server, mode: str, tokens: tuple[str, str], logs: Path
) -> Iterator[list[Proc]]:
    """The two example services, following ``server`` with their app tokens."""
    common = {
        "SECUREKEY_URL": server.url,
        "SECUREKEY_MODE": mode,
        "SECUREKEY_APPLY_DELAY_MAX": str(APPLY_DELAY_MAX),
        "SECUREKEY_MIN_REFRESH_INTERVAL": "0.05",
    }
    port_one, port_two = free_port(), free_port()
    url_one, url_two = f"http://127.0.0.1:{port_one}", f"http://127.0.0.1:{port_two}"
    env_one = _env(**common, SECUREKEY_TOKEN=tokens[0])
    env_two = _env(**common, SECUREKEY_TOKEN=tokens[1], SERVICE_ONE_URL=url_one)
    with started(
        ("service-1", _uvicorn("service_one", "--host", "127.0.0.1", "--port", str(port_one)),
         env_one, url_one, None),
        ("service-2", _uvicorn("service_two", "--host", "127.0.0.1", "--port", str(port_two)),
         env_two, url_two, None),
        logs=logs,
    ) as procs:  # fmt: skip
        yield procs


@pytest.mark.parametrize("mode", ["bearer", "signed"])
def test_the_services_keep_working_while_the_server_is_killed(
    mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 failed requests between the services across a SIGKILL and OUTAGE s of downtime; both
    follow the rotations made after the server is back."""
    data = tmp_path / "data"
    port = free_port()
    options = {
        "master_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "token": "sko_test_" + secrets.token_urlsafe(24),
        "port": port,
    }
    first = running_server(data, **options)  # type: ignore[arg-type]
    server = first.__enter__()
    try:
        addon, token_one, token_two = _seed(server)
        with _services(server, mode, (token_one, token_two), tmp_path) as (one, two):
            with Load(two.url, tolerate_restarts=False) as load:
                _rotate(server, addon, ROTATIONS_EACH_SIDE)
                server.process.send_signal(signal.SIGKILL)
                server.process.wait(10)
                first.__exit__(None, None, None)
                during = dict(load.counts)
                time.sleep(OUTAGE)
                served_during = load.counts["requests"] - during.get("requests", 0)
                again = running_server(data, **options)  # type: ignore[arg-type]
                server = again.__enter__()
                first = again
                latest = _rotate(server, addon, ROTATIONS_EACH_SIDE)
                # Both services pick the newest pair up (stream reconnect or polling).
                await_latest([one, two], latest, load)
            stats_one, stats_two = one.stats(), two.stats()
    finally:
        first.__exit__(None, None, None)
    c = load.counts
    line = (
        f"{mode}: outage={OUTAGE}s requests={c['requests']} ok={c['ok']} failed={c['failed']} "
        f"served_while_down={served_during} rotations={2 * ROTATIONS_EACH_SIDE} "
        f"driver_failures={c['driver_failures']} auth_retries={c['auth_retries']} "
        f"service-1 latest={stats_one['ring']['latest']} service-2 "
        f"latest={stats_two['ring']['latest']} server latest={latest}"
    )
    with capsys.disabled():
        print(f"\n{line}", flush=True)
    assert c["failed"] == 0, line
    assert c["driver_failures"] == 0, line
    assert served_during > 0, line
    assert stats_one["ring"]["latest"] == latest, line
    assert stats_two["ring"]["latest"] == latest, line


@pytest.mark.postgres
def test_the_services_keep_working_while_the_database_is_stopped(
    own_pg: pg.PgServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 failed requests between the services while PostgreSQL is stopped for DB_OUTAGE s in
    the middle of the rotations: config reads answer stale from memory, the services' streams
    stay open, and both follow the rotations made once the database is back."""
    url = new_pg_database(own_pg)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    with running_server(tmp_path / "data", database_url=url, master_key=key) as server:
        addon, token_one, token_two = _seed(server)
        reader = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token_two}"}, timeout=30
        )
        with (
            reader,
            _services(server, "bearer", (token_one, token_two), tmp_path) as (one, two),
        ):
            with Load(two.url, tolerate_restarts=False) as load:
                await_latest([one, two], _rotate(server, addon, ROTATIONS_EACH_SIDE), load)
                held = [p.stats()["ring"] for p in (one, two)]
                known = reader.get("/apps/service-2/config-vars")
                assert known.status_code == 200, known.text
                before = load.counts["requests"]
                own_pg.halt()
                stopped = time.monotonic()
                refused: dict[int, int] = {}
                stale_reads = 0
                while time.monotonic() - stopped < DB_OUTAGE:
                    with server.client() as http:
                        tried = http.post(f"/addons/{addon}/actions/rotate", json={})
                    refused[tried.status_code] = refused.get(tried.status_code, 0) + 1
                    assert tried.status_code == 503, tried.text
                    assert int(tried.headers["Retry-After"]) > 0
                    read = reader.get("/apps/service-2/config-vars")
                    assert read.status_code == 200, read.text
                    assert read.headers.get("Securekey-Stale") == "true", dict(read.headers)
                    assert read.json() == known.json()
                    stale_reads += 1
                    time.sleep(ROTATE_EVERY)
                during = [p.stats()["ring"] for p in (one, two)]
                served_during = load.counts["requests"] - before
                own_pg.resume()
                wait_until(
                    lambda: httpx.get(f"{server.url}/readyz", timeout=15).status_code == 200,
                    60,
                    "the server to be ready again",
                    interval=0.2,
                )
                latest = _rotate(server, addon, ROTATIONS_EACH_SIDE)
                await_latest([one, two], latest, load)
            stats_one, stats_two = one.stats(), two.stats()
        server_log = server.log()
    c = load.counts
    line = (
        f"database: outage={DB_OUTAGE}s requests={c['requests']} ok={c['ok']} "
        f"failed={c['failed']} served_while_down={served_during} "
        f"rotations={2 * ROTATIONS_EACH_SIDE} refused_while_down={refused} "
        f"stale_reads={stale_reads} driver_failures={c['driver_failures']} "
        f"streams_opened={[s['ring']['streams_opened'] for s in (stats_one, stats_two)]} "
        f"service-1 latest={stats_one['ring']['latest']} service-2 "
        f"latest={stats_two['ring']['latest']} server latest={latest}"
    )
    with capsys.disabled():
        print(f"\n{line}", flush=True)
    assert c["failed"] == 0, line
    assert c["driver_failures"] == 0, line
    assert served_during > 0, line
    assert stale_reads > 0, line
    # An expected outage is no crash: no traceback, no 500 in the server's log.
    assert "Traceback" not in server_log, server_log[-4000:]
    # The services kept their keys and their streams through the outage ...
    for ring_before, ring_during in zip(held, during, strict=True):
        assert ring_during["latest"] == ring_before["latest"], line
        assert ring_during["streams_opened"] == ring_before["streams_opened"], line
        assert ring_during["streaming"] is True, line
    # ... and follow the rotations made after it, over the same streams.
    assert stats_one["ring"]["latest"] == latest, line
    assert stats_two["ring"]["latest"] == latest, line
    assert stats_one["ring"]["streams_opened"] == held[0]["streams_opened"], line
    assert stats_two["ring"]["streams_opened"] == held[1]["streams_opened"], line
