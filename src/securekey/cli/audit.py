"""``audit`` and ``doctor``: read the audit log; check a server the way an operator would first.

``doctor`` runs every check even when one fails, so one screen shows what is wrong.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from securekey import __version__
from securekey.cli.context import JsonOption, use
from securekey.cli.errors import CliError, ResponseError
from securekey.cli.render import Column, when

__all__ = ["parse_since", "register"]

_AGO = re.compile(r"^(\d{1,6})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> str:
    """``1h``, ``30m``, ``2d`` … ago, or an ISO 8601 time, as the API's ISO 8601 UTC time."""
    now = now or datetime.now(UTC)
    ago = _AGO.match(text.strip())
    if ago:
        moment = now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise CliError(
                f"{text!r} is not a time: give an age such as 30m, 1h, 2d or 1w, or an ISO "
                "8601 time such as 2026-11-29T10:00:00Z.",
                exit_code=2,
            ) from None
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _detail(details: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(details.items()))


def audit(
    ctx: typer.Context,
    app: Annotated[
        str | None,
        typer.Option("--app", "-a", metavar="APP", help="Events on this app or naming it."),
    ] = None,
    addon: Annotated[
        str | None, typer.Option("--addon", metavar="NAME", help="Events on this add-on.")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", metavar="ACTION", help="e.g. addon.rotate, app.create."),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--actor", metavar="ACTOR", help="operator, scheduler or app-token:ID."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="AGE|TIME", help="From 30m, 1h, 2d… ago, or a time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="AGE|TIME", help="Up to (not including).")
    ] = None,
    num: Annotated[
        int, typer.Option("--num", "-n", min=1, max=1000, help="How many, the newest.")
    ] = 50,
    json: JsonOption = False,
) -> None:
    """Show the audit log: who did what, when (fingerprints, never keys).

    The newest events that match, oldest first.

    \b
    Example:
      $ securekey audit --addon securekey-solid-14332 --since 1d
      Time               Actor      Action        Target                 Details
      ─────────────────  ─────────  ────────────  ─────────────────────  ──────────────…
      2026-11-29 10:00Z  operator   addon.create  securekey-solid-14332  app=service-1 …
      2026-12-13 10:00Z  scheduler  addon.rotate  securekey-solid-14332  apps=2 latest=…
    """
    cli = use(ctx)
    query: dict[str, str] = {}
    if app:
        query["app"] = app
    if addon:
        query.update(target=addon, target_type="addon")
    if action:
        query["action"] = action
    if actor:
        query["actor"] = actor
    if since:
        query["since"] = parse_since(since)
    if until:
        query["until"] = parse_since(until)
    path = "/audit-events" + (f"?{urlencode(query)}" if query else "")
    rows: list[dict[str, Any]] = cli.api().get(
        path, headers={"Range": f"seq ..; max={num}, order=desc"}
    )
    rows.reverse()
    if json:
        cli.out.json(rows)
        return
    if not rows:
        cli.out.tell("No audit events match.")
        return
    cli.out.table(
        [
            Column("Time"),
            Column("Actor"),
            Column("Action"),
            Column("Target", flex=True, minimum=12),
            Column("Details", flex=True, minimum=12),
        ],
        [
            [
                when(r.get("created_at"), short=True),
                str(r.get("actor", "")),
                str(r.get("action", "")),
                str(r.get("target", {}).get("name", "")),
                _detail(r.get("details") or {}),
            ]
            for r in rows
        ],
    )


# ------------------------------------------------------------------ doctor


def _check(results: list[dict[str, Any]], name: str, ok: bool | None, text: str) -> None:
    """``ok`` None is a warning: worth a look, not a failure."""
    state = "ok" if ok else ("warn" if ok is None else "fail")
    results.append({"check": name, "status": state, "detail": text})


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
    out = cli.out
    results: list[dict[str, Any]] = []
    api = cli.api()
    status: dict[str, Any] | None = None
    try:
        health = api.request("GET", "/healthz").data or {}
    except CliError as error:
        _check(results, "server", False, error.message)
        health = None
    if health is not None:
        theirs = str(health.get("version", "?"))
        same = theirs == __version__
        _check(
            results,
            "server",
            True if same else None,
            f"{api.url} answers (securekey {theirs}, this CLI {__version__})"
            + ("" if same else "; versions differ"),
        )
        secure = api.url.lower().startswith("https://")
        local = re.match(r"^http://(127\.|localhost|\[::1\])", api.url.lower()) is not None
        _check(
            results,
            "tls",
            True if secure else (None if local else False),
            "HTTPS"
            if secure
            else "plain HTTP: fine on 127.0.0.1, use HTTPS across a network"
            if local
            else "plain HTTP to a remote server: tokens and keys cross the network unencrypted",
        )
        try:
            status = api.get("/status")
        except ResponseError as error:
            if error.status == 403:
                _check(
                    results,
                    "token",
                    None,
                    f"app token (from {api.credentials.token_source}): it reads one app's "
                    "config vars; the server checks below need the operator token",
                )
            else:
                _check(results, "token", False, error.message)
        except CliError as error:
            _check(results, "token", False, error.message)
    if status is not None:
        _check(
            results,
            "token",
            True,
            f"{status['token']['kind']} token (from {api.credentials.token_source})",
        )
        database = status.get("database", {})
        _check(
            results,
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
        _check(
            results,
            "scheduler",
            running and not overdue if running else False,
            (f"running every {scheduler.get('interval'):g} s; " if running else "NOT running; ")
            + nxt,
        )
        failing = status.get("webhooks", {}).get("failing", [])
        if failing:
            first = failing[0]
            _check(
                results,
                "webhooks",
                False,
                f"{len(failing)} failing deliveries, e.g. {first['url']} on {first['app']} "
                f"({first['status']}, {first['attempts']} attempts, "
                f"last {first.get('last_code') or first.get('last_error')})",
            )
        else:
            _check(results, "webhooks", True, "no failing deliveries")
    failed = any(r["status"] == "fail" for r in results)
    if json:
        out.json({"ok": not failed, "checks": results, "status": status})
    else:
        marks = {"ok": "✓", "warn": "!", "fail": "✗"}
        for r in results:
            out.say(f"{marks[r['status']]} {r['check']:<11} {r['detail']}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("audit")(audit)
    app.command("doctor")(doctor)
