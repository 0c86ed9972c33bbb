"""``securekey audit`` and ``securekey doctor`` against a real server (issue 12, 10 and 12)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx

from securekey.cli.audit import parse_since
from tests.cli.conftest import Cli, make_app, one_clear_line
from tests.pg import free_port


def test_parse_since_takes_ages_and_times() -> None:
    """30m, 1h, 2d, 1w are ages before now; an ISO time passes through in UTC."""
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_since("1h", now=now) == "2026-12-01T11:00:00Z"
    assert parse_since("2d", now=now) == "2026-11-29T12:00:00Z"
    assert parse_since("2026-11-29T10:00:00+01:00", now=now) == "2026-11-29T09:00:00Z"


def test_audit_lists_and_filters_events(cli: Cli, http: httpx.Client) -> None:
    """audit shows the newest events oldest first; --addon, --action, --since and --json filter."""
    addon = make_app(http, "aud-1", "securekey:weekly")
    make_app(http, "aud-2")
    http.post("/addon-attachments", json={"addon": addon, "app": "aud-2", "name": "OTHER"})
    http.post(f"/addons/{addon}/actions/rotate", json={})
    table = cli("audit", "--addon", addon)
    assert table.code == 0, table.err
    assert table.lines[0].split() == ["Time", "Actor", "Action", "Target", "Details"]
    actions = [line.split()[3] for line in table.lines[2:]]
    assert actions == ["addon.create", "addon.attach", "addon.rotate"]
    rows = json.loads(cli("audit", "-a", "aud-2", "--json").out)
    assert [r["action"] for r in rows] == ["app.create", "addon.attach"]
    only = json.loads(cli("audit", "--action", "addon.rotate", "--since", "1h", "--json").out)
    assert {r["target"]["name"] for r in only} >= {addon}
    newest = json.loads(cli("audit", "-n", "1", "--json").out)
    assert [r["action"] for r in newest] == ["addon.rotate"]
    none = cli("audit", "--since", "2999-01-01T00:00:00Z")
    assert (none.code, none.out) == (0, "")
    assert "No audit events match" in none.err
    bad = cli("audit", "--since", "yesterday")
    assert bad.code == 2
    assert "30m, 1h" in bad.err


def test_audit_refuses_app_tokens(cli: Cli, http: httpx.Client) -> None:
    """An app token cannot read the audit log: one line saying to use the operator token."""
    make_app(http, "aud-tok")
    token = http.post("/apps/aud-tok/tokens", json={}).json()["token"]
    result = cli("audit", env=cli.env(SECUREKEY_TOKEN=token))
    one_clear_line(result, "operator token")


def test_doctor_on_a_healthy_server(cli: Cli, http: httpx.Client) -> None:
    """doctor: every check on one screen, exit 0, and the same facts as JSON."""
    addon = make_app(http, "doc-1", "securekey:weekly")
    result = cli("doctor")
    assert result.code == 0, (result.out, result.err)
    checks = [line.split()[1] for line in result.lines]
    assert checks == ["server", "tls", "token", "database", "scheduler", "webhooks"]
    assert result.lines[0].startswith("✓ server")
    assert "operator token" in result.out
    assert "sqlite, ready" in result.out
    assert "running every" in result.out
    as_json = json.loads(cli("doctor", "--json").out)
    assert as_json["ok"] is True
    assert as_json["status"]["database"] == {"backend": "sqlite", "ready": True}
    assert as_json["status"]["next_rotation"]["addon"] in {addon} | {
        a["name"] for a in http.get("/addons").json()
    }


def test_doctor_with_no_server_says_what_to_do(cli: Cli) -> None:
    """doctor against a closed port fails the server check with the usual hint, and exits 1."""
    result = cli("doctor", env=cli.env(SECUREKEY_URL=f"http://127.0.0.1:{free_port()}"))
    assert result.code == 1
    assert result.lines[0].startswith("✗ server")
    assert "securekey server" in result.lines[0]
    assert "Traceback" not in result.err


def test_doctor_with_an_app_token_warns(cli: Cli, http: httpx.Client) -> None:
    """With an app token doctor says so and which checks need the operator token."""
    make_app(http, "doc-tok")
    token = http.post("/apps/doc-tok/tokens", json={}).json()["token"]
    result = cli("doctor", env=cli.env(SECUREKEY_TOKEN=token))
    assert result.code == 0, result.out
    assert any(line.startswith("! token") and "app token" in line for line in result.lines)
