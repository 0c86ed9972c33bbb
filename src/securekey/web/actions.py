"""The dashboard's form actions: create, reveal, rotate, attach, detach and destroy.

Each goes through the services as the API's routes do, under the session's CSRF check (done
by the dashboard before an action runs); destructive ones need the name typed again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from securekey.exceptions import NotFoundError, ValidationError
from securekey.web import pages
from securekey.web.sessions import Session

if TYPE_CHECKING:
    from securekey.web.routes import Dashboard

__all__ = ["Actions"]


def _to(kind: str, name: str) -> Response:
    """The redirect after an action: to the page of the app or add-on it changed."""
    return RedirectResponse(f"/ui/{kind}/{quote(name, safe='')}", 303)


def _confirm(form: dict[str, str], expected: str, nothing_done: str) -> None:
    """A destructive action goes ahead only once ``expected`` is typed again."""
    if form.get("confirm", "").strip() != expected:
        raise ValidationError(
            "confirm", f"Confirmation did not match {expected}. Nothing was {nothing_done}."
        )


class Actions:
    """The form actions of one dashboard."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.service = dashboard.service

    def _actor(self, session: Session) -> str:
        """How the audit log names this session's changes: as the API names an operator's."""
        del session  # every session belongs to an operator token; they share one name
        return "operator"

    async def create_app(
        self, request: Request, session: Session, form: dict[str, str]
    ) -> Response:
        """Create an app."""
        app = await run_in_threadpool(
            self.service.create_app, form.get("name", "").strip(), actor=self._actor(session)
        )
        session.flash("ok", f"Created {app.name} (v{app.release}).")
        return _to("apps", app.name)

    async def create_addon(
        self, request: Request, session: Session, form: dict[str, str]
    ) -> Response:
        """Provision an add-on on this app."""
        app = request.path_params["app"]
        period = form.get("period", "").strip() or None
        attachment = form.get("as", "").strip() or None
        created = await run_in_threadpool(
            lambda: self.service.create_addon(
                app,
                form.get("plan", ""),
                period=period,
                attachment_name=attachment,
                actor=self._actor(session),
            )
        )
        session.flash(
            "ok", f"Created {created.addon.name} as {created.attachment.var_name} on {app}."
        )
        return _to("addons", created.addon.name)

    async def reveal(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """Show one var's value on this response only; the audit log records the reveal."""
        ref = request.path_params["app"]
        var = form.get("var", "")
        value = await run_in_threadpool(
            lambda: self.dashboard.extra.reveal_config_var(ref, var, actor=self._actor(session))
        )
        data = await run_in_threadpool(pages.app_page, self.service, ref)
        return self.dashboard.render(
            request, "app.html", session, revealed={"name": var, "value": value}, **data
        )

    async def rotate(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """Rotate now (or in an emergency), once the add-on's name is typed."""
        ref = request.path_params["addon"]
        emergency = form.get("emergency") == "1"
        addon = await run_in_threadpool(self.service.get_addon, ref)
        _confirm(form, addon.name, "rotated")
        rotated = await run_in_threadpool(
            lambda: self.service.rotate(addon.id, emergency=emergency, actor=self._actor(session))
        )
        kind = "Emergency rotation of" if emergency else "Rotated"
        session.flash(
            "ok", f"{kind} {addon.name}: {len(rotated.releases)} app(s) got a new release."
        )
        return _to("addons", addon.name)

    async def attach(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """Attach this add-on to an app under a name."""
        ref = request.path_params["addon"]
        app = form.get("app", "").strip()
        as_ = form.get("as", "").strip() or None
        att, release = await run_in_threadpool(
            lambda: self.service.attach(ref, app, as_=as_, actor=self._actor(session))
        )
        session.flash("ok", f"Attached as {att.name} to {app}: v{release.version}.")
        return _to("addons", ref)

    async def detach(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """Detach one attachment (by id) of this add-on."""
        ref = request.path_params["addon"]
        addon = await run_in_threadpool(self.service.get_addon, ref)
        wanted = form.get("attachment", "")
        mine = await run_in_threadpool(lambda: self.service.list_attachments(addon_ref=addon.id))
        if wanted not in {a.id for a in mine}:
            raise NotFoundError("add_on_attachment", wanted[:60])
        att, release = await run_in_threadpool(
            lambda: self.service.detach(wanted, actor=self._actor(session))
        )
        session.flash("ok", f"Detached {att.name}: v{release.version}.")
        return _to("addons", addon.name)

    async def destroy(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """Destroy the add-on once the billing app's name is typed, as the CLI asks."""
        ref = request.path_params["addon"]
        addon = await run_in_threadpool(self.service.get_addon, ref)
        owner = await run_in_threadpool(self.service.get_app, addon.app_id)
        _confirm(form, owner.name, "destroyed")
        force = form.get("force") == "1"
        await run_in_threadpool(
            lambda: self.service.destroy_addon(addon.id, force=force, actor=self._actor(session))
        )
        session.flash("ok", f"Destroyed {addon.name}.")
        return _to("apps", owner.name)
