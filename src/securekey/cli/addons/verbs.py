"""``addons:create``, ``:attach``, ``:detach`` and ``:destroy``: the seed's verbs, each printing
the Heroku CLI's lines (``Creating … free``, ``Setting … and restarting ⬢ app... done, v2``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from securekey.cli.addons.common import AddonArg, AsOption, find_addon, parse_config, price
from securekey.cli.apps import attached_elsewhere
from securekey.cli.context import AppOption, Cli, JsonOption, confirm, restarting, seg, use
from securekey.cli.errors import CliError, ResponseError
from securekey.cli.render import Part

__all__ = ["addons_attach", "addons_create", "addons_destroy", "addons_detach"]

PlanArg = Annotated[str, typer.Argument(metavar="SERVICE:PLAN", help="e.g. securekey:fortnightly.")]
ConfigArgs = Annotated[
    list[str] | None,
    typer.Argument(metavar="[-- --period 10s]", help="Add-on config after `--`: a custom period."),
]
NameOption = Annotated[
    str | None, typer.Option("--name", metavar="NAME", help="Name of the add-on.")
]
ConfirmOption = Annotated[
    str | None,
    typer.Option("--confirm", metavar="APP", help="Skip the prompt: the billing app's name."),
]
ForceOption = Annotated[
    bool,
    typer.Option("--force", "-f", help="Destroy even while other apps are attached."),
]


def addons_create(
    ctx: typer.Context,
    plan: PlanArg,
    app: AppOption,
    config: ConfigArgs = None,
    as_: AsOption = None,
    name: NameOption = None,
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
            status.text = price(addon)
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
    as_: AsOption = None,
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
    with restarting(cli, app, "Setting ", out.attachment(str(attachment["name"])), " config vars"):
        pass
    if json:
        out.json(attachment)


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
    name = out.attachment(str(found["name"]))
    addon = out.addon(str(found["addon"]["name"]))
    with out.action("Detaching ", name, " to ", addon, " from ", out.app(app)):
        api.delete(f"/addon-attachments/{seg(found['id'])}")
    with restarting(cli, app, "Unsetting ", name, " config vars"):
        pass
    if json:
        out.json(found)


def addons_destroy(
    ctx: typer.Context,
    addon: AddonArg,
    app: AppOption,
    confirm_: ConfirmOption = None,
    force: ForceOption = False,
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
    target = find_addon(cli.api(), addon, app)
    name, owner = str(target["name"]), str(target["app"]["name"])
    if owner != app:
        raise CliError(
            f"{name} is billed to {owner}, not {app}: destroy it with -a {owner}, or only "
            f"remove it from {app} with `securekey addons:detach ATTACHMENT -a {app}`."
        )
    _confirm_destroy(ctx, cli, target, confirm_, force=force)
    try:
        with out.action("Destroying ", out.addon(name), " on ", out.app(owner)) as status:
            gone = cli.api().delete(
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


def _confirm_destroy(
    ctx: typer.Context, cli: Cli, target: dict[str, Any], given: str | None, *, force: bool
) -> None:
    """Refuse while other apps use the key (unless ``force``), then ask for the owner's name."""
    out = cli.out
    name, owner = str(target["name"]), str(target["app"]["name"])
    attachments = cli.api().get(f"/addons/{seg(target['id'])}/addon-attachments")
    others = [a for a in attachments if a["app"]["name"] != owner]
    if others and not force:
        refused = {"attachments": [{"app": a["app"]["name"], "name": a["name"]} for a in others]}
        error = ResponseError("", status=422, id_="attached_elsewhere", body=refused)
        raise attached_elsewhere(ctx, error, name)
    also: list[list[Part]] = [
        ["It is also attached to ", out.app(a["app"]["name"]), " as ", out.attachment(a["name"])]
        for a in others
    ]
    confirm(
        cli,
        owner,
        given,
        title="WARNING: Destructive Action",
        lines=[["This command will affect the app ", out.strong(owner)], *also],
    )
