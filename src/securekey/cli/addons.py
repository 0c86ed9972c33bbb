"""``addons``, ``addons:create``, ``:info``, ``:attach``, ``:detach``, ``:destroy``, ``:rotate``,
``:keys``: the seed's add-on commands and securekey's own rotate-now and key history."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from securekey.cli.apps import attached_elsewhere
from securekey.cli.completion import complete_addons
from securekey.cli.context import AppOption, Cli, JsonOption, alias_help, confirm, seg, use
from securekey.cli.errors import CliError, ResponseError
from securekey.cli.render import Column, Part, Renderer, when

__all__ = ["parse_config", "register"]

AddonArg = Annotated[
    str,
    typer.Argument(metavar="ADDON", help="Add-on name (or id).", autocompletion=complete_addons),
]
ConfirmOption = Annotated[
    str | None,
    typer.Option("--confirm", metavar="APP", help="Skip the prompt: the billing app's name."),
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


def _price(addon: dict[str, Any]) -> str:
    price = addon.get("plan", {}).get("price") or {}
    cents = price.get("cents", 0)
    if not cents:
        return "free"
    return f"${cents / 100:.2f}/{price.get('unit', 'month')}"


def _period(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    total = int(seconds)
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if total >= size and total % size == 0:
            count = total // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{total} second{'s' if total != 1 else ''}"


def _short_plan(addon: dict[str, Any]) -> str:
    return str(addon.get("plan", {}).get("name", "?")).removeprefix("securekey:")


# ------------------------------------------------------------------- listing


def addons_list(
    ctx: typer.Context,
    app: Annotated[
        str | None,
        typer.Option("--app", "-a", metavar="APP", help="Only add-ons on this app."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """List add-ons and their attachments.

    All of them, or with -a those billed to or attached to one app.

    \b
    Example:
      $ securekey addons -a service-2
      Add-on                 Plan         Billing app  Attachments
      ─────────────────────  ───────────  ───────────  ─────────────────────────────
      securekey-solid-14332  fortnightly  service-1    service-1::SECURE
                                                       service-2::SERVICE_ONE_SECURE
    """
    cli = use(ctx)
    api = cli.api()
    addons: list[dict[str, Any]] = api.get(f"/apps/{seg(app)}/addons" if app else "/addons")
    attachments: list[dict[str, Any]] = api.get("/addon-attachments")
    if json:
        cli.out.json(addons)
        return
    if not addons:
        where = f" on {app}" if app else ""
        cli.out.tell(f"No add-ons{where}. Create one with `securekey addons:create`.")
        return
    rows = []
    for addon in addons:
        mine = sorted(
            f"{a['app']['name']}::{a['name']}"
            for a in attachments
            if a.get("addon", {}).get("id") == addon["id"]
        )
        rows.append(
            [addon["name"], _short_plan(addon), addon["app"]["name"], "\n".join(mine) or "-"]
        )
    cli.out.table(
        [
            Column("Add-on"),
            Column("Plan"),
            Column("Billing app", flex=True),
            Column("Attachments", flex=True, minimum=16),
        ],
        rows,
    )


def addons_info(
    ctx: typer.Context,
    addon: AddonArg,
    app: Annotated[
        str | None,
        typer.Option("--app", "-a", metavar="APP", help="Resolve ADDON as an attachment here."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Show an add-on, its rotations and keys.

    Plan, billing app, attachments, last and next rotation, fingerprints of the current
    pair (never the keys).

    \b
    Example:
      $ securekey addons:info securekey-solid-14332
      === securekey-solid-14332
      Attachments:     service-1::SECURE
                       service-2::SERVICE_ONE_SECURE
      Billing app:     ⬢ service-1
      ...
    """
    cli = use(ctx)
    api = cli.api()
    found = api.post("/actions/addons/resolve", {"addon": addon, "app": app})
    if not found:
        raise CliError(
            f"Couldn't find that add-on: {addon!r}. List add-ons with `securekey addons`."
        )
    full: dict[str, Any] = api.get(f"/addons/{seg(found[0]['id'])}")
    attachments: list[dict[str, Any]] = api.get(f"/addons/{seg(full['id'])}/addon-attachments")
    if json:
        cli.out.json({**full, "attachments": attachments})
        return
    extra = full.get("securekey", {})
    prints = extra.get("fingerprints", {})
    out = cli.out
    out.header(str(full["name"]))
    out.fields(
        [
            ("Attachments", sorted(f"{a['app']['name']}::{a['name']}" for a in attachments)),
            ("Billing app", out.app(str(full["app"]["name"]))),
            ("Config vars", ", ".join(full.get("config_vars", [])) or "-"),
            ("Installed at", when(full.get("created_at"))),
            ("Key version", str(extra.get("key_version", "?"))),
            ("Last rotation", when(extra.get("last_rotated_at"))),
            ("Latest key", str(prints.get("latest", "?")) + " (fingerprint)"),
            ("Next rotation", when(extra.get("next_rotation_at"))),
            ("Period", _period(extra.get("period_seconds"))),
            ("Plan", str(full.get("plan", {}).get("name", "?"))),
            ("Previous key", str(prints.get("previous", "?")) + " (fingerprint)"),
            ("Price", _price(full)),
            ("State", str(full.get("state", "?"))),
        ]
    )


# ----------------------------------------------------------- the seed's verbs


def addons_create(
    ctx: typer.Context,
    plan: Annotated[
        str, typer.Argument(metavar="SERVICE:PLAN", help="e.g. securekey:fortnightly.")
    ],
    app: AppOption,
    config: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[-- --period 10s]", help="Add-on config after `--`: a custom period."
        ),
    ] = None,
    as_: Annotated[
        str | None,
        typer.Option("--as", metavar="NAME", help="Attachment name (config var NAME_KEY)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="Name of the add-on.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Create an add-on: a rotating key pair.

    It is attached to the app as SECURE (config var SECURE_KEY) unless --as says otherwise.

    \b
    Example:
      $ securekey addons:create securekey:fortnightly -a service-1
      Creating securekey:fortnightly on ⬢ service-1... free
      Created securekey-solid-14332 as SECURE_KEY

    \b
      $ securekey addons:create securekey:daily -a service-1 --as FAST -- --period 10s
    """
    cli = use(ctx)
    out = cli.out
    body: dict[str, Any] = {
        "attachment": {"name": as_} if as_ else {},
        "config": parse_config(config or []),
        "plan": {"name": plan},
    }
    if name:
        body["name"] = name
    try:
        with out.action("Creating ", plan, " on ", out.app(app)) as status:
            addon = cli.api().post(f"/apps/{seg(app)}/addons", body)
            status.text = _price(addon)
    except ResponseError as error:
        if error.status == 422 and "already has an attachment named" in error.message:
            raise CliError(
                f"{error.message} Use --as NAME to attach the new add-on under another name "
                "(config var NAME_KEY)."
            ) from None
        raise
    if json:
        out.json(addon)
        return
    made: list[Part] = ["Created ", out.addon(str(addon["name"]))]
    if addon.get("config_vars"):
        made += [" as ", out.attachment(", ".join(addon["config_vars"]))]
    out.say(*made)


def addons_attach(
    ctx: typer.Context,
    addon: AddonArg,
    app: AppOption,
    as_: Annotated[
        str | None,
        typer.Option("--as", metavar="NAME", help="Attachment name (config var NAME_KEY)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Attach an add-on to another app.

    The app gets the same key pair, under NAME_KEY, in one release.

    \b
    Example:
      $ securekey addons:attach securekey-solid-14332 --as SERVICE_ONE_SECURE -a service-2
      Attaching securekey-solid-14332 as SERVICE_ONE_SECURE to ⬢ service-2... done
      Setting SERVICE_ONE_SECURE config vars and restarting ⬢ service-2... done, v2
    """
    cli = use(ctx)
    out = cli.out
    api = cli.api()
    found = api.get(f"/addons/{seg(addon)}")
    label: list[Any] = ["Attaching ", out.addon(str(found["name"]))]
    if as_:
        label += [" as ", out.attachment(as_)]
    with out.action(*label, " to ", out.app(app)):
        body: dict[str, Any] = {"addon": {"name": found["name"]}, "app": {"name": app}}
        if as_:
            body["name"] = as_
        attachment = api.post("/addon-attachments", body)
    _released(out, api, app, "Setting ", str(attachment["name"]))
    if json:
        out.json(attachment)


def _released(out: Renderer, api: Any, app: str, verb: str, name: str) -> None:
    with out.action(
        verb, out.attachment(name), " config vars and restarting ", out.app(app)
    ) as status:
        status.text = f"done, v{api.latest_release(app)}"


def addons_detach(
    ctx: typer.Context,
    attachment: Annotated[str, typer.Argument(metavar="NAME", help="Attachment name on APP.")],
    app: AppOption,
    json: JsonOption = False,
) -> None:
    """Detach an add-on from an app.

    The app loses the config var in one release; other apps keep the key.

    \b
    Example:
      $ securekey addons:detach SERVICE_ONE_SECURE -a service-2
      Detaching SERVICE_ONE_SECURE to securekey-solid-14332 from ⬢ service-2... done
      Unsetting SERVICE_ONE_SECURE config vars and restarting ⬢ service-2... done, v4
    """
    cli = use(ctx)
    out = cli.out
    api = cli.api()
    found = api.get(f"/apps/{seg(app)}/addon-attachments/{seg(attachment)}")
    name = str(found["name"])
    with out.action(
        "Detaching ",
        out.attachment(name),
        " to ",
        out.addon(str(found["addon"]["name"])),
        " from ",
        out.app(app),
    ):
        api.delete(f"/addon-attachments/{seg(found['id'])}")
    _released(out, api, app, "Unsetting ", name)
    if json:
        out.json(found)


def addons_destroy(
    ctx: typer.Context,
    addon: AddonArg,
    app: AppOption,
    confirm_: ConfirmOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", "-f", help="Destroy even while other apps are attached."),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Destroy an add-on (asks to confirm).

    Refused while other apps still use its key, unless --force detaches it from them.

    \b
    Example:
      $ securekey addons:destroy securekey-solid-14332 -a service-1
       ▸    WARNING: Destructive Action
       ▸    This command will affect the app service-1
       ▸    To proceed, type service-1 or re-run this command with
       ▸    --confirm service-1

    \b
      > service-1
      Destroying securekey-solid-14332 on ⬢ service-1... done
    """
    cli = use(ctx)
    out = cli.out
    api = cli.api()
    found = api.post("/actions/addons/resolve", {"addon": addon, "app": app})
    if not found:
        raise CliError(
            f"Couldn't find that add-on: {addon!r}. List add-ons with `securekey addons`."
        )
    target: dict[str, Any] = found[0]
    name, owner = str(target["name"]), str(target["app"]["name"])
    if owner != app:
        raise CliError(
            f"{name} is billed to {owner}, not {app}: destroy it with -a {owner}, or only "
            f"remove it from {app} with `securekey addons:detach ATTACHMENT -a {app}`."
        )
    attachments = api.get(f"/addons/{seg(target['id'])}/addon-attachments")
    others = [a for a in attachments if a["app"]["name"] != owner]
    refused = {"attachments": [{"app": a["app"]["name"], "name": a["name"]} for a in others]}
    if others and not force:
        error = ResponseError("", status=422, id_="attached_elsewhere", body=refused)
        raise attached_elsewhere(ctx, error, name)
    also: list[list[Part]] = [
        ["It is also attached to ", out.app(a["app"]["name"]), " as ", out.attachment(a["name"])]
        for a in others
    ]
    confirm(
        cli,
        owner,
        confirm_,
        title="WARNING: Destructive Action",
        lines=[["This command will affect the app ", out.strong(owner)], *also],
    )
    try:
        with out.action("Destroying ", out.addon(name), " on ", out.app(owner)) as status:
            gone = api.delete(
                f"/apps/{seg(target['app']['id'])}/addons/{seg(target['id'])}", {"force": force}
            )
            if gone.get("state") == "deprovisioning":
                status.text = "pending"
    except ResponseError as error:
        if error.id == "attached_elsewhere":
            raise attached_elsewhere(ctx, error, name) from None
        raise
    if json:
        out.json(gone)


# ------------------------------------------------------------ beyond the seed


def addons_rotate(
    ctx: typer.Context,
    addon: Annotated[
        str | None,
        typer.Argument(metavar="[ADDON]", help="Add-on name (or id); or use a filter below."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rotate EVERY add-on now.")] = False,
    plan: Annotated[
        str | None,
        typer.Option("--plan", metavar="PLAN", help="Rotate every add-on on PLAN now."),
    ] = None,
    app: Annotated[
        str | None,
        typer.Option(
            "--app", "-a", metavar="APP", help="Rotate every add-on billed to or attached to APP."
        ),
    ] = None,
    emergency: Annotated[
        bool,
        typer.Option(
            "--emergency", help="Replace BOTH keys now (a leaked key): old keys stop working."
        ),
    ] = False,
    confirm_: Annotated[
        str | None,
        typer.Option(
            "--confirm",
            metavar="NAME",
            help="Skip the prompt: the ADDON (emergency), or all / PLAN / APP as filtered.",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, max=1000, help="Add-ons per request with a filter (100)."
        ),
    ] = 100,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With a filter: count what matches, rotate nothing.")
    ] = False,
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
    if filters:
        _rotate_matching(
            cli,
            {"all": True} if all_ else {"plan": plan} if plan else {"app": app},
            emergency=emergency,
            confirm_=confirm_,
            batch_size=batch_size,
            dry_run=dry_run,
            json=json,
        )
        return
    assert addon is not None
    if dry_run:
        raise CliError("--dry-run goes with a filter (--all, --plan, --app), not an ADDON.")
    out = cli.out
    api = cli.api()
    found = api.get(f"/addons/{seg(addon)}")
    name = str(found["name"])
    if emergency:
        confirm(
            cli,
            name,
            confirm_,
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
    *,
    emergency: bool,
    confirm_: str | None,
    batch_size: int,
    dry_run: bool,
    json: bool,
) -> None:
    """Rotate every add-on matching ``given`` page by page, with a progress bar on stderr."""
    out = cli.out
    api = cli.api()
    what: list[Part]
    if "plan" in given:
        expected, what = str(given["plan"]), ["add-ons on ", out.strong(str(given["plan"]))]
    elif "app" in given:
        expected, what = str(given["app"]), ["add-ons of ", out.app(str(given["app"]))]
    else:
        expected, what = "all", ["every add-on"]
    counted = api.post("/actions/addons/rotate", {**given, "dry_run": True})
    total = int(counted.get("matched", 0))
    if dry_run or total == 0:
        if json:
            out.json(counted)
        else:
            out.say(f"{total} add-on{'s' if total != 1 else ''} match; nothing rotated.")
        return
    kind = "Emergency rotation" if emergency else "Rotation"
    lines: list[list[Part]] = [["This rotates ", *what, " now; every attached app gets a release"]]
    if emergency:
        lines.append(["Both keys are replaced: clients holding either old key fail until reloaded"])
    plural = "s" if total != 1 else ""
    confirm(
        cli, expected, confirm_, title=f"WARNING: {kind} of {total} add-on{plural}", lines=lines
    )
    rotated = releases = 0
    failed: list[dict[str, Any]] = []
    after: str | None = None
    verb = "Rotating (emergency) " if emergency else "Rotating "
    with out.progress(total, verb, *what) as bar:
        while True:
            body = {**given, "emergency": emergency, "limit": batch_size, "batch_size": batch_size}
            if after is not None:
                body["after"] = after
            page = api.post("/actions/addons/rotate", body)
            rotated += int(page.get("rotated", 0))
            releases += int(page.get("releases", 0))
            failed += list(page.get("failed", []))
            bar.advance(int(page.get("rotated", 0)) + len(page.get("failed", [])))
            after = page.get("next_after")
            if not after:
                break
    summary = {
        "matched": total,
        "rotated": rotated,
        "releases": releases,
        "failed": failed,
        "emergency": emergency,
    }
    if json:
        out.json(summary)
    else:
        out.say(f"Rotated {rotated} add-on{'s' if rotated != 1 else ''} ({releases} releases)")
    if failed:
        names = ", ".join(
            f"{f.get('addon', {}).get('name')} ({f.get('reason', '?')})" for f in failed[:5]
        )
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise CliError(
            f"{len(failed)} add-on{'s' if len(failed) != 1 else ''} failed to rotate and "
            f"{'are' if len(failed) != 1 else 'is'} unchanged: {names}{more}. "
            "See `securekey addons:info ADDON` and the server log."
        )


def addons_keys(ctx: typer.Context, addon: AddonArg, json: JsonOption = False) -> None:
    """Show an add-on's key history.

    Fingerprints, states and times of every key version; never the keys themselves.

    \b
    Example:
      $ securekey addons:keys securekey-solid-14332
      Version  State     Fingerprint       Created              Retired
      ───────  ────────  ────────────────  ───────────────────  ───────────────────
      3        latest    9c1e0f5a7b3d2e41  2026-12-13 10:00 UTC
      2        previous  3f6d463c2a79289d  2026-11-29 10:00 UTC
      1        retired   cf8bbe474f57d9ca  2026-11-29 10:00 UTC  2026-12-13 10:00 UTC
    """
    cli = use(ctx)
    history: list[dict[str, Any]] = cli.api().get(f"/addons/{seg(addon)}/key-versions")
    if json:
        cli.out.json(history)
        return
    cli.out.table(
        [
            Column("Version"),
            Column("State"),
            Column("Fingerprint"),
            Column("Created"),
            Column("Retired"),
        ],
        [
            [
                str(k.get("version", "?")),
                str(k.get("state", "?")),
                str(k.get("fingerprint", "?")),
                when(k.get("created_at"), short=True),
                when(k.get("retired_at"), short=True) if k.get("retired_at") else "",
            ]
            for k in history
        ],
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("addons")(addons_list)
    app.command("addons:create")(addons_create)
    app.command("addons:info")(addons_info)
    app.command("addons:attach")(addons_attach)
    app.command("addons:detach")(addons_detach)
    app.command("addons:destroy")(addons_destroy)
    app.command("addons:remove", help=alias_help("addons:destroy", addons_destroy.__doc__))(
        addons_destroy
    )
    app.command("addons:rotate")(addons_rotate)
    app.command("addons:keys")(addons_keys)
