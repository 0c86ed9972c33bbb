"""What the add-on commands share: their arguments, ``-- --period`` config, and the words
for a price, a period and a plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from securekey.cli.completion import complete_addons
from securekey.cli.errors import CliError

if TYPE_CHECKING:
    from securekey.cli.api import ApiClient

__all__ = [
    "AddonArg",
    "AsOption",
    "find_addon",
    "parse_config",
    "period",
    "price",
    "short_plan",
]

AddonArg = Annotated[
    str,
    typer.Argument(metavar="ADDON", help="Add-on name (or id).", autocompletion=complete_addons),
]
AsOption = Annotated[
    str | None,
    typer.Option("--as", metavar="NAME", help="Attachment name (config var NAME_KEY)."),
]


def parse_config(args: list[str]) -> dict[str, str]:
    """Heroku's ``-- --period 10s`` (or ``--period=10s``) add-on config into a dict."""
    config: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise CliError(
                f"Unexpected {arg!r}: give add-on config after `--` as `--name value`, "
                "e.g. `-- --period 10s`."
            )
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise CliError(f"--{key} needs a value, e.g. `-- --{key} 10s`.")
            value = args[i + 1]
            i += 1
        config[key] = value
        i += 1
    return config


def find_addon(api: ApiClient, addon: str, app: str | None) -> dict[str, Any]:
    """The add-on ``addon`` names (a name, an id, or an attachment on ``app``)."""
    found = api.post("/actions/addons/resolve", {"addon": addon, "app": app})
    if not found:
        raise CliError(
            f"Couldn't find that add-on: {addon!r}. List add-ons with `securekey addons`."
        )
    return dict(found[0])


def price(addon: dict[str, Any]) -> str:
    """``free``, or ``$5.00/month``."""
    amount = addon.get("plan", {}).get("price") or {}
    cents = amount.get("cents", 0)
    if not cents:
        return "free"
    return f"${cents / 100:.2f}/{amount.get('unit', 'month')}"


def period(seconds: object) -> str:
    """A rotation period in the largest whole unit: ``2 weeks``, ``10 seconds``."""
    if not isinstance(seconds, int | float):
        return "?"
    total = int(seconds)
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if total >= size and total % size == 0:
            count = total // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{total} second{'s' if total != 1 else ''}"


def short_plan(addon: dict[str, Any]) -> str:
    """The plan without the service: ``fortnightly``."""
    return str(addon.get("plan", {}).get("name", "?")).removeprefix("securekey:")
