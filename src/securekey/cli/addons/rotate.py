"""``addons:rotate``: rotate one add-on now (securekey's own, the seed has no way), or every
add-on matching a filter in batches with a progress bar (the incident case)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from securekey.cli.context import Cli, JsonOption, app_option, confirm, seg, use
from securekey.cli.errors import CliError
from securekey.cli.render import Part

__all__ = ["addons_rotate"]

MaybeAddon = Annotated[
    str | None,
    typer.Argument(metavar="[ADDON]", help="Add-on name (or id); or use a filter below."),
]
AllOption = Annotated[bool, typer.Option("--all", help="Rotate EVERY add-on now.")]
PlanOption = Annotated[
    str | None, typer.Option("--plan", metavar="PLAN", help="Rotate every add-on on PLAN now.")
]
AppFilter = Annotated[
    str | None, app_option("Rotate every add-on billed to or attached to APP.", complete=False)
]
EmergencyOption = Annotated[
    bool,
    typer.Option(
        "--emergency", help="Replace BOTH keys now (a leaked key): old keys stop working."
    ),
]
ConfirmOption = Annotated[
    str | None,
    typer.Option(
        "--confirm",
        metavar="NAME",
        help="Skip the prompt: the ADDON (emergency), or all / PLAN / APP as filtered.",
    ),
]
BatchOption = Annotated[
    int,
    typer.Option("--batch-size", min=1, max=1000, help="Add-ons per request with a filter (100)."),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="With a filter: count what matches, rotate nothing.")
]


def _plural(count: int, word: str = "add-on") -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def addons_rotate(
    ctx: typer.Context,
    addon: MaybeAddon = None,
    all_: AllOption = False,
    plan: PlanOption = None,
    app: AppFilter = None,
    emergency: EmergencyOption = False,
    confirm_: ConfirmOption = None,
    batch_size: BatchOption = 100,
    dry_run: DryRunOption = False,
    json: JsonOption = False,
) -> None:
    """Rotate an add-on's key pair now, or every add-on matching a filter.

    Every attached app gets the new pair in the same transaction, one release each.

    PREVIOUS becomes the old LATEST and LATEST a new key. With --emergency both keys are
    replaced, so clients holding either old key fail until they reload.

    With --all, --plan PLAN or --app APP (the incident case) every matching add-on rotates
    now, in batches, with a progress bar; it asks to confirm (type all, the plan or the app).

    \b
    Example:
      $ securekey addons:rotate securekey-solid-14332
      Rotating securekey-solid-14332... done
      Released ⬢ service-1 v3: Update SECURE by securekey-solid-14332
      Released ⬢ service-2 v3: Update SERVICE_ONE_SECURE by securekey-solid-14332

    \b
      $ securekey addons:rotate --app service-2 --emergency --confirm service-2
      Rotating (emergency) add-ons of ⬢ service-2 ━━━━━━━━━━━━━━━━━━━━ 2/2 0:00:00
      Rotated 2 add-ons (3 releases)
    """
    cli = use(ctx)
    filters = [f for f, on in (("--all", all_), ("--plan", plan), ("--app", app)) if on]
    if (addon is None) == (not filters) or len(filters) > 1:
        raise CliError(
            "Give an ADDON, or exactly one of --all, --plan PLAN, --app APP: "
            "e.g. `securekey addons:rotate --plan securekey:daily`."
        )
    if addon is None:
        given = {"all": True} if all_ else {"plan": plan} if plan else {"app": app}
        _rotate_matching(cli, given, emergency, confirm_, batch_size, dry_run=dry_run, json=json)
        return
    if dry_run:
        raise CliError("--dry-run goes with a filter (--all, --plan, --app), not an ADDON.")
    _rotate_one(cli, addon, emergency, confirm_, json=json)


def _rotate_one(cli: Cli, addon: str, emergency: bool, given: str | None, *, json: bool) -> None:
    """Rotate ``addon`` (asking first in an emergency); print each app's new release."""
    out = cli.out
    api = cli.api()
    found = api.get(f"/addons/{seg(addon)}")
    name = str(found["name"])
    if emergency:
        confirm(
            cli,
            name,
            given,
            title="WARNING: Emergency rotation",
            lines=[
                ["This replaces both keys of ", out.addon(name), " at once: clients holding"],
                ["either old key fail until they load the new pair"],
            ],
        )
    verb = "Rotating (emergency) " if emergency else "Rotating "
    with out.action(verb, out.addon(name)):
        rotated = api.post(f"/addons/{seg(found['id'])}/actions/rotate", {"emergency": emergency})
    if json:
        out.json(rotated)
        return
    releases = sorted(rotated.get("releases", []), key=lambda r: str(r.get("app", {}).get("name")))
    for release in releases:
        app_name = str(release.get("app", {}).get("name") or "?")
        out.say(
            "Released ",
            out.app(app_name),
            f" v{release.get('version')}: ",
            str(release.get("description", "")),
        )
    prints = rotated.get("fingerprints", {})
    out.fields(
        [
            ("Latest key", str(prints.get("latest", "?")) + " (fingerprint)"),
            ("Previous key", str(prints.get("previous", "?")) + " (fingerprint)"),
        ]
    )


def _rotate_matching(
    cli: Cli,
    given: dict[str, Any],
    emergency: bool,
    confirm_: str | None,
    batch_size: int,
    *,
    dry_run: bool,
    json: bool,
) -> None:
    """Rotate every add-on matching ``given`` page by page, with a progress bar on stderr."""
    out = cli.out
    counted = cli.api().post("/actions/addons/rotate", {**given, "dry_run": True})
    total = int(counted.get("matched", 0))
    if dry_run or total == 0:
        if json:
            out.json(counted)
        else:
            out.say(f"{_plural(total)} match; nothing rotated.")
        return
    expected, what = _matching(cli, given)
    kind = "Emergency rotation" if emergency else "Rotation"
    lines: list[list[Part]] = [["This rotates ", *what, " now; every attached app gets a release"]]
    if emergency:
        lines.append(["Both keys are replaced: clients holding either old key fail until reloaded"])
    confirm(cli, expected, confirm_, title=f"WARNING: {kind} of {_plural(total)}", lines=lines)
    verb = "Rotating (emergency) " if emergency else "Rotating "
    with out.progress(total, verb, *what) as bar:
        summary = _rotate_pages(cli, given, emergency, batch_size, bar.advance)
    summary = {"matched": total, **summary, "emergency": emergency}
    if json:
        out.json(summary)
    else:
        out.say(f"Rotated {_plural(summary['rotated'])} ({summary['releases']} releases)")
    _failed(summary["failed"])


def _matching(cli: Cli, given: dict[str, Any]) -> tuple[str, list[Part]]:
    """What to type to confirm a filter, and the words that name what it matches."""
    out = cli.out
    if "plan" in given:
        return str(given["plan"]), ["add-ons on ", out.strong(str(given["plan"]))]
    if "app" in given:
        return str(given["app"]), ["add-ons of ", out.app(str(given["app"]))]
    return "all", ["every add-on"]


def _rotate_pages(
    cli: Cli, given: dict[str, Any], emergency: bool, batch_size: int, advance: Any
) -> dict[str, Any]:
    """Rotate page after page until the server names no next one; the totals."""
    rotated = releases = 0
    failed: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        body = {**given, "emergency": emergency, "limit": batch_size, "batch_size": batch_size}
        if after is not None:
            body["after"] = after
        page = cli.api().post("/actions/addons/rotate", body)
        rotated += int(page.get("rotated", 0))
        releases += int(page.get("releases", 0))
        failed += list(page.get("failed", []))
        advance(int(page.get("rotated", 0)) + len(page.get("failed", [])))
        after = page.get("next_after")
        if not after:
            return {"rotated": rotated, "releases": releases, "failed": failed}


def _failed(failed: list[dict[str, Any]]) -> None:
    """Exit 1 naming (the first five of) the add-ons that failed to rotate, if any."""
    if not failed:
        return
    names = ", ".join(
        f"{f.get('addon', {}).get('name')} ({f.get('reason', '?')})" for f in failed[:5]
    )
    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
    raise CliError(
        f"{_plural(len(failed))} failed to rotate and "
        f"{'are' if len(failed) != 1 else 'is'} unchanged: {names}{more}. "
        "See `securekey addons:info ADDON` and the server log."
    )
