"""The dashboard's pieces without a browser: the audited reveal, and cookies under TLS."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from securekey.config import Settings
from securekey.domain.clock import FixedClock
from securekey.exceptions import NotFoundError, ValidationError
from securekey.runtime import open_runtime
from securekey.services.dashboard import DashboardService
from securekey.web import pages
from tests.api.conftest import running_api


def test_reveal_records_the_var_and_never_the_value(tmp_path: Path) -> None:
    """A reveal returns the value and writes ``config.reveal`` naming actor, app and var only;
    an unknown or malformed var reveals nothing and records nothing."""
    runtime = open_runtime(Settings(data_dir=tmp_path / "data"))
    try:
        service = runtime.service
        service.create_app("reveal-app")
        service.create_addon("reveal-app", "securekey:daily")
        service.set_config("reveal-app", {"PLAIN": "not-a-key-but-private"})
        dashboard = DashboardService(runtime.store)
        config = service.config_vars("reveal-app")

        assert (
            dashboard.reveal_config_var("reveal-app", "SECURE_KEY", actor="operator")
            == (config["SECURE_KEY"])
        )
        assert dashboard.reveal_config_var("reveal-app", "PLAIN", actor="operator") == (
            "not-a-key-but-private"
        )
        events = service.audit_events(action="config.reveal")
        assert [(e.actor, e.target_name, e.details) for e in events] == [
            ("operator", "reveal-app", {"var": "SECURE_KEY"}),
            ("operator", "reveal-app", {"var": "PLAIN"}),
        ]
        everything = repr(service.audit_events())
        for secret in [*config["SECURE_KEY"].split(","), "not-a-key-but-private"]:
            assert secret not in everything

        with pytest.raises(NotFoundError):
            dashboard.reveal_config_var("reveal-app", "MISSING", actor="operator")
        with pytest.raises(ValidationError):
            dashboard.reveal_config_var("reveal-app", "no such\x00name", actor="operator")
        with pytest.raises(NotFoundError):
            dashboard.reveal_config_var("no-such-app", "SECURE_KEY", actor="operator")
        assert len(service.audit_events(action="config.reveal")) == 2
    finally:
        runtime.close()


def test_cookies_are_secure_and_host_bound_under_tls(tmp_path: Path) -> None:
    """Over HTTPS the session cookie is ``__Host-``, Secure, HttpOnly and SameSite=Strict, and
    sign-out clears it with the same attributes."""
    with running_api(tmp_path / "data") as api:
        client = api.client
        del client.headers["authorization"]
        base = "https://testserver"
        form = client.get(f"{base}/ui/sign-in")
        signin_cookie = form.headers["set-cookie"]
        assert "Secure" in signin_cookie
        assert "HttpOnly" in signin_cookie
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        answer = client.post(
            f"{base}/ui/sign-in",
            data={"csrf": csrf.group(1), "token": api.token},
            headers={"Origin": base},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        session = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("__Host-securekey")
        )
        assert "; Secure" in session
        assert "; HttpOnly" in session
        assert "SameSite=strict" in session
        assert "; Path=/" in session
        assert api.token not in session

        page = client.get(f"{base}/ui/", follow_redirects=False)
        assert page.status_code == 200
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        out = client.post(
            f"{base}/ui/sign-out",
            data={"csrf": token.group(1)},
            headers={"Origin": base},
            follow_redirects=False,
        )
        assert out.status_code == 303
        cleared = out.headers["set-cookie"]
        assert cleared.startswith('__Host-securekey_session=""')
        assert "Max-Age=0" in cleared
        assert "; Secure" in cleared
        assert client.get(f"{base}/ui/", follow_redirects=False).status_code == 303


def test_overview_chart_reads_a_bounded_page_of_recent_rotations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overview's chart counts rotations of its own days only, from at most
    ``ROTATION_EVENTS`` of the newest: an older rotation or one past the bound is not read."""
    clock = FixedClock(datetime(2026, 6, 20, 12, 0, tzinfo=UTC))
    runtime = open_runtime(Settings(data_dir=tmp_path / "data"), clock=clock)
    try:
        service = runtime.service
        service.create_app("chart-app")
        name = service.create_addon("chart-app", "securekey:daily").addon.name
        service.rotate(name)  # 20 days before "today": outside the chart
        clock.advance(timedelta(days=20))
        for _ in range(3):
            service.rotate(name)
        service.rotate(name, emergency=True)

        bars = pages.overview_page(service)["bars"]
        assert [(b.manual, b.emergency) for b in bars if b.total] == [(3, 1)]
        assert sum(b.total for b in bars) == 4
        monkeypatch.setattr(pages, "ROTATION_EVENTS", 2)
        bars = pages.overview_page(service)["bars"]
        assert [(b.manual, b.emergency) for b in bars if b.total] == [(1, 1)]
    finally:
        runtime.close()
