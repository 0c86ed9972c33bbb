"""``doctor``: check a server and this CLI's login the way an operator would first.

Every check runs even when one fails, so one screen shows what is wrong.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import typer

from securekey import __version__
from securekey.cli.context import JsonOption, use
from securekey.cli.errors import CliError, ResponseError
from securekey.cli.render import when

if TYPE_CHECKING:
    from securekey.cli.api import ApiClient

__all__ = ["register"]

_MARKS = {"ok": "✓", "warn": "!", "fail": "✗"}


class _Checks(list[dict[str, Any]]):
    """The checks' outcomes, in the order they ran."""

    def add(self, name: str, ok: bool | None, text: str) -> None:
        """``ok`` None is a warning: worth a look, not a failure."""
        state = "ok" if ok else ("warn" if ok is None else "fail")
        self.append({"check": name, "status": state, "detail": text})


def doctor(ctx: typer.Context, json: JsonOption = False) -> None:
    """Check the server and this CLI's login, all on one screen.

    Server reachable, versions, TLS, the token's kind, the database and its readiness, the
    scheduler and the next due rotation, failing webhook deliveries. Exits 1 if a check fails.

    \b
    Example:
      $ securekey doctor
      ✓ server      http://127.0.0.1:5000 answers (securekey 0.1.0, this CLI 0.1.0)
      ! tls         plain HTTP: fine on 127.0.0.1, use HTTPS across a network
      ✓ token       operator token (from the saved login)
      ✓ database    sqlite, ready
      ✓ scheduler   running every 1 s; next rotation securekey-solid-14332 at 2026-12-13 …
      ✓ webhooks    no failing deliveries
    """
    cli = use(ctx)
    api = cli.api()
    results = _Checks()
    status = _server_checks(api, results)
    if status is not None:
        _status_checks(api, status, results)
    failed = any(r["status"] == "fail" for r in results)
    if json:
        cli.out.json({"ok": not failed, "checks": results, "status": status})
    else:
        for r in results:
            cli.out.say(f"{_MARKS[r['status']]} {r['check']:<11} {r['detail']}")
    if failed:
        raise typer.Exit(1)


def _server_checks(api: ApiClient, results: _Checks) -> dict[str, Any] | None:
    """Server, TLS and token checks; the server's ``/status`` when the token may read it."""
    try:
        health = api.request("GET", "/healthz").data or {}
    except CliError as error:
        results.add("server", False, error.message)
        return None
    theirs = str(health.get("version", "?"))
    same = theirs == __version__
    results.add(
        "server",
        True if same else None,
        f"{api.url} answers (securekey {theirs}, this CLI {__version__})"
        + ("" if same else "; versions differ"),
    )
    secure = api.url.lower().startswith("https://")
    local = re.match(r"^http://(127\.|localhost|\[::1\])", api.url.lower()) is not None
    results.add(
        "tls",
        True if secure else (None if local else False),
        "HTTPS"
        if secure
        else "plain HTTP: fine on 127.0.0.1, use HTTPS across a network"
        if local
        else "plain HTTP to a remote server: tokens and keys cross the network unencrypted",
    )
    try:
        return dict(api.get("/status"))
    except ResponseError as error:
        if error.status != 403:
            results.add("token", False, error.message)
            return None
        results.add(
            "token",
            None,
            f"app token (from {api.credentials.token_source}): it reads one app's "
            "config vars; the server checks below need the operator token",
        )
    except CliError as error:
        results.add("token", False, error.message)
    return None


def _status_checks(api: ApiClient, status: dict[str, Any], results: _Checks) -> None:
    """Token kind, database, scheduler and webhook checks from the server's ``/status``."""
    results.add(
        "token", True, f"{status['token']['kind']} token (from {api.credentials.token_source})"
    )
    database = status.get("database", {})
    results.add(
        "database",
        bool(database.get("ready")) and bool(status.get("ready")),
        f"{database.get('backend', '?')}, "
        + ("ready" if database.get("ready") else "NOT ready: see the server's log"),
    )
    scheduler = status.get("scheduler", {})
    upcoming = status.get("next_rotation")
    nxt = (
        f"next rotation {upcoming['addon']} at {when(upcoming['at'])}"
        + (" (OVERDUE)" if upcoming.get("overdue") else "")
        if upcoming
        else "no add-ons yet"
    )
    running = bool(scheduler.get("running"))
    overdue = bool(upcoming and upcoming.get("overdue"))
    results.add(
        "scheduler",
        running and not overdue if running else False,
        (f"running every {scheduler.get('interval'):g} s; " if running else "NOT running; ") + nxt,
    )
    failing = status.get("webhooks", {}).get("failing", [])
    if not failing:
        results.add("webhooks", True, "no failing deliveries")
        return
    first = failing[0]
    results.add(
        "webhooks",
        False,
        f"{len(failing)} failing deliveries, e.g. {first['url']} on {first['app']} "
        f"({first['status']}, {first['attempts']} attempts, "
        f"last {first.get('last_code') or first.get('last_error')})",
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("doctor")(doctor)
