"""PostgreSQL stopped under a running server: 503 with Retry-After, stale reads, and recovery.

Issue 11, point 3. The database is stopped for ``OUTAGE`` seconds (10 in CI, 30 under
``make soak``) while requests keep coming; afterwards everything works again by itself.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from securekey.store import make_engine
from securekey.store import tables as t
from tests import pg
from tests.conftest import new_pg_database
from tests.e2e._sse import SseStream
from tests.servers import running_server
from tests.soak import scaled
from tests.support import app_with_addon, new_app_token, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OUTAGE = scaled(10, 30)
#: No request may take longer than this during the outage (connect timeout 5 s, plus slack).
BOUND = 15.0
DUE = 3  # add-ons falling due while the database is away


def _new_app(http: httpx.Client) -> tuple[str, str, str]:
    """A fresh app, its add-on and an app token."""
    app, addon = app_with_addon(http, "out")
    return app, addon, new_app_token(http, app)


def _newest(http: httpx.Client, addon: str) -> int:
    got = http.get(f"/addons/{addon}/key-versions")
    assert got.status_code == 200, got.text
    return max(int(v["version"]) for v in got.json())


def test_a_database_outage_answers_503_serves_known_config_and_recovers(
    own_pg: pg.PgServer, tmp_path: object
) -> None:
    """While PostgreSQL is down: 503 + Retry-After (never 500, never a hang), stale reads, one
    warning; afterwards the stream resumes and due add-ons are rotated exactly once."""
    started = time.monotonic()
    url = new_pg_database(own_pg)
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    root = tmp_path / "srv"  # type: ignore[operator]
    with running_server(root / "data", database_url=url, master_key=key) as server:
        http = server.client()
        app, addon, app_token = _new_app(http)
        due = [_new_app(http) for _ in range(DUE)]
        reader = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {app_token}"}, timeout=30
        )
        known = reader.get(f"/apps/{app}/config-vars")
        assert known.status_code == 200
        before = {d[1]: _newest(http, d[1]) for d in due}
        engine = make_engine(url)
        when = datetime.now(UTC) + timedelta(seconds=OUTAGE / 3)
        with engine.begin() as conn:
            names = [d[1] for d in due]
            conn.execute(
                t.addons.update().where(t.addons.c.name.in_(names)).values(next_rotation_at=when)
            )
        engine.dispose()
        stream = SseStream(
            server.url, f"/apps/{app}/config-vars/stream", app_token, read_timeout=30
        )
        first = stream.next_event()
        assert first.id == known.headers["ETag"].strip('"')

        print(f"set up in {time.monotonic() - started:.1f}s")
        own_pg.halt()
        stopped = time.monotonic()
        statuses: Counter[str] = Counter()
        slowest = 0.0
        while time.monotonic() - stopped < OUTAGE:
            for method, path, client in (
                ("GET", "/apps", http),
                ("POST", "/apps", http),
                ("POST", f"/addons/{addon}/actions/rotate", http),
                ("GET", f"/apps/{app}/config-vars", reader),
            ):
                began = time.monotonic()
                body = {"name": f"new-{secrets.token_hex(3)}"} if path == "/apps" else {}
                answer = client.request(method, path, json=body if method == "POST" else None)
                slowest = max(slowest, time.monotonic() - began)
                statuses[f"{method} {path.split('/')[1]} {answer.status_code}"] += 1
                if client is reader:
                    assert answer.status_code == 200, answer.text
                    assert answer.json() == known.json()
                    assert answer.headers["Securekey-Stale"] == "true"
                    assert "Warning" in answer.headers
                else:
                    assert answer.status_code == 503, answer.text
                    assert answer.json()["id"] == "unavailable"
                    assert answer.json()["message"]
                    assert int(answer.headers["Retry-After"]) > 0
            assert httpx.get(f"{server.url}/readyz", timeout=BOUND).status_code == 503
            time.sleep(0.5)
        own_pg.resume()
        back = time.monotonic()

        wait_until(
            lambda: http.get("/apps").status_code == 200, 30, "the API to answer", interval=0.2
        )
        recovered_in = time.monotonic() - back
        fresh = reader.get(f"/apps/{app}/config-vars")
        assert fresh.status_code == 200
        assert "Securekey-Stale" not in fresh.headers

        # The stream held through the outage hears the next release.
        rotated = http.post(f"/addons/{addon}/actions/rotate", json={})
        assert rotated.status_code == 200, rotated.text
        event = stream.next_event()
        while event.type != "config":
            event = stream.next_event()
        assert int(event.id or 0) > int(first.id or 0)
        assert event.json() == reader.get(f"/apps/{app}/config-vars").json()
        stream.close()

        # The scheduler catches up: each add-on that fell due is rotated, exactly once.
        wait_until(
            lambda: all(_newest(http, name) > before[name] for name in before),
            30,
            "the scheduler to rotate the add-ons that fell due",
            interval=0.3,
        )
        time.sleep(2)  # not a wait for progress: ten more ticks in which a double would show
        versions = {name: _newest(http, name) - before[name] for name in before}
        http.close()
        reader.close()
        log = server.log()

    warnings = [line for line in log.splitlines() if "database unavailable" in line]
    print(
        f"outage={OUTAGE}s requests={dict(statuses)} slowest={slowest:.2f}s "
        f"recovered_in={recovered_in:.2f}s rotated={versions} warnings={len(warnings)} "
        f"total={time.monotonic() - started:.1f}s"
    )
    assert slowest < BOUND
    assert all(v == 1 for v in versions.values()), versions
    assert "Traceback" not in log
    assert " ERROR " not in log, log
    assert len(warnings) == 1, warnings
