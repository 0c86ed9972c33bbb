"""``audit``: read the audit log, who did what and when (fingerprints, never keys),
filtered by app, add-on, action, actor and time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from securekey.cli.context import JsonOption, app_option, listed, use
from securekey.cli.errors import CliError
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


AppFilter = Annotated[str | None, app_option("Events on this app or naming it.", complete=False)]
AddonFilter = Annotated[
    str | None, typer.Option("--addon", metavar="NAME", help="Events on this add-on.")
]
ActionFilter = Annotated[
    str | None,
    typer.Option("--action", metavar="ACTION", help="e.g. addon.rotate, app.create."),
]
ActorFilter = Annotated[
    str | None,
    typer.Option("--actor", metavar="ACTOR", help="operator, scheduler or app-token:ID."),
]
SinceFilter = Annotated[
    str | None,
    typer.Option("--since", metavar="AGE|TIME", help="From 30m, 1h, 2d… ago, or a time."),
]
UntilFilter = Annotated[
    str | None, typer.Option("--until", metavar="AGE|TIME", help="Up to (not including).")
]
NumOption = Annotated[
    int, typer.Option("--num", "-n", min=1, max=1000, help="How many, the newest.")
]


def _detail(details: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(details.items()))


def audit(
    ctx: typer.Context,
    app: Annotated[
        str | None, app_option("Events on this app or naming it.", complete=False)
    ] = None,
    addon: AddonFilter = None,
    action: ActionFilter = None,
    actor: ActorFilter = None,
    since: SinceFilter = None,
    until: UntilFilter = None,
    num: NumOption = 50,
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
    query = {
        "app": app,
        "target": addon,
        "target_type": "addon" if addon else None,
        "action": action,
        "actor": actor,
        "since": since and parse_since(since),
        "until": until and parse_since(until),
    }
    given = {k: v for k, v in query.items() if v}
    path = "/audit-events" + (f"?{urlencode(given)}" if given else "")
    rows: list[dict[str, Any]] = cli.api().get(
        path, headers={"Range": f"seq ..; max={num}, order=desc"}
    )
    rows.reverse()
    if listed(cli, rows, json=json, empty="No audit events match."):
        return
    cli.out.table(_COLUMNS, [_row(r) for r in rows])


_COLUMNS = [
    Column("Time"),
    Column("Actor"),
    Column("Action"),
    Column("Target", flex=True, minimum=12),
    Column("Details", flex=True, minimum=12),
]


def _row(event: dict[str, Any]) -> list[str]:
    """One audit event as a table row."""
    return [
        when(event.get("created_at"), short=True),
        str(event.get("actor", "")),
        str(event.get("action", "")),
        str(event.get("target", {}).get("name", "")),
        _detail(event.get("details") or {}),
    ]


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("audit")(audit)
