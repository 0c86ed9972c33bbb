"""The dashboard's pages and actions, a Starlette app mounted at ``/ui`` by the API factory.

Reads and writes go through the services, as the API's routes do. Pages need a session made
by signing in with an operator token; every POST needs the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi.concurrency import run_in_threadpool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from securekey.api.context import ApiContext
from securekey.domain.models import TokenKind
from securekey.exceptions import (
    AuthenticationError,
    NotFoundError,
    RateLimitedError,
    SecureKeyError,
    ValidationError,
)
from securekey.services.dashboard import DashboardService
from securekey.web import pages
from securekey.web.guard import (
    SIGNIN_COOKIE,
    FormError,
    SecurityHeaders,
    cookie_name,
    read_form,
    same_origin,
    set_cookie,
    tokens_match,
)
from securekey.web.sessions import Session, SessionStore

__all__ = ["Dashboard"]

log = logging.getLogger("securekey.web")

_HERE = Path(__file__).parent
#: How often a session's operator token is looked up again (revocation ends the session).
_RECHECK = 5.0

Handler = Callable[[Request, Session], Awaitable[Response]]
FormHandler = Callable[[Request, Session, dict[str, str]], Awaitable[Response]]


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(value: timedelta | float) -> str:
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    if seconds <= 0:
        return "now"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:3])


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = _iso
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.filters["seg"] = lambda text: quote(str(text), safe="")
    return env


class Dashboard:
    """The dashboard over an API context: sessions, templates, routes."""

    def __init__(self, ctx: ApiContext, sessions: SessionStore | None = None) -> None:
        self.ctx = ctx
        self.service = ctx.service
        self.extra = DashboardService(ctx.service.store, ctx.service.clock)
        self.sessions = sessions or SessionStore()
        self.env = _environment()

    # ------------------------------------------------------------------ plumbing

    def app(self) -> Starlette:
        """The ASGI app to mount at ``/ui``."""
        get, post = ["GET"], ["POST"]
        routes = [
            Route("/", self._page(self.overview), methods=get),
            Route("/sign-in", self.sign_in_form, methods=get),
            Route("/sign-in", self.sign_in, methods=post),
            Route("/sign-out", self._form(self.sign_out), methods=post),
            Route("/apps", self._form(self.create_app), methods=post),
            Route("/apps/{app}", self._page(self.app_view), methods=get),
            Route("/apps/{app}/reveal", self._form(self.reveal), methods=post),
            Route("/apps/{app}/addons", self._form(self.create_addon), methods=post),
            Route("/addons/{addon}", self._page(self.addon_view), methods=get),
            Route("/addons/{addon}/rotate", self._form(self.rotate), methods=post),
            Route("/addons/{addon}/attach", self._form(self.attach), methods=post),
            Route("/addons/{addon}/detach", self._form(self.detach), methods=post),
            Route("/addons/{addon}/destroy", self._form(self.destroy), methods=post),
            Route("/audit", self._page(self.audit), methods=get),
            Route("/webhooks", self._page(self.webhooks), methods=get),
            Route("/live/{kind}/{ref}", self._page(self.live), methods=get),
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ]
        return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])

    def render(
        self, request: Request, name: str, session: Session | None, status: int = 200, **data: Any
    ) -> HTMLResponse:
        """A page from ``templates/``, with the session's CSRF token and queued messages."""
        template = self.env.get_template(name)
        body = template.render(
            csrf=session.csrf if session else "",
            signed_in=session is not None,
            flashes=session.take_flashes() if session else [],
            path=request.url.path,
            **data,
        )
        return HTMLResponse(body, status)

    def _session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(cookie_name(request)))

    async def _still_valid(self, session: Session) -> bool:
        """Look the session's token up again now and then: a revoked token ends it."""
        now = self.sessions.clock()
        if now - session.checked < _RECHECK:
            return True
        who = await run_in_threadpool(self.extra.operator_by_hash, session.token_hash)
        if who is None:
            self.sessions.end_token(session.token_hash)
            return False
        session.checked = now
        return True

    async def _current(self, request: Request) -> Session | None:
        session = self._session(request)
        if session is None or not await self._still_valid(session):
            return None
        return session

    def _page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await self._current(request)
            if session is None:
                if request.url.path.startswith("/ui/live/"):
                    return Response("Sign in first.", 401, media_type="text/plain")
                return RedirectResponse("/ui/sign-in", 303)
            try:
                return await handler(request, session)
            except NotFoundError as error:
                return self.render(request, "error.html", session, 404, message=error.message)
            except SecureKeyError as error:
                return self.render(request, "error.html", session, 400, message=error.message)

        return endpoint

    def _form(self, handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await self._current(request)
            if session is None:
                return self._refused(request, 401, "Your session has ended; sign in again.")
            if not same_origin(request):
                return self._refused(request, 403, "Cross-site form posts are refused.")
            try:
                form = await read_form(request)
            except FormError as error:
                return self._refused(request, 400, str(error))
            if not tokens_match(form.get("csrf"), session.csrf):
                log.warning("dashboard form refused: missing or wrong CSRF token")
                return self._refused(request, 403, "The form's CSRF token is missing or wrong.")
            try:
                return await handler(request, session, form)
            except SecureKeyError as error:
                session.flash("error", error.message)
                return RedirectResponse(_back(request, form), 303)

        return endpoint

    def _refused(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "error.html", None, status, message=message)

    # ------------------------------------------------------------------ sign-in

    async def sign_in_form(self, request: Request) -> Response:
        """The sign-in page, with a fresh CSRF token bound to a short-lived cookie."""
        if await self._current(request) is not None:
            return RedirectResponse("/ui/", 303)
        return self._sign_in_page(request, None, 200)

    def _sign_in_page(self, request: Request, error: str | None, status: int) -> Response:
        token = secrets.token_urlsafe(32)
        response = self.render(
            request, "sign_in.html", None, status, signin_csrf=token, error=error
        )
        set_cookie(response, request, SIGNIN_COOKIE, token, 600)
        return response

    async def sign_in(self, request: Request) -> Response:
        """Exchange an operator token for a session; app tokens and bad tokens are refused."""
        if not same_origin(request):
            return self._refused(request, 403, "Cross-site form posts are refused.")
        try:
            form = await read_form(request)
        except FormError as error:
            return self._refused(request, 400, str(error))
        if not tokens_match(form.get("csrf"), request.cookies.get(SIGNIN_COOKIE, "")):
            return self._sign_in_page(request, "The sign-in form expired; try again.", 403)
        raw = form.get("token", "").strip()
        client = request.client.host if request.client else "unknown"
        try:
            who = await run_in_threadpool(self.ctx.auth.authenticate, f"Bearer {raw}", client)
        except RateLimitedError as error:
            response = self._sign_in_page(request, error.message, 429)
            response.headers["Retry-After"] = str(error.retry_after)
            return response
        except AuthenticationError:
            log.info("dashboard sign-in refused: invalid token from %s", client)
            return self._sign_in_page(request, "That token is not valid.", 401)
        if who.kind is not TokenKind.OPERATOR:
            log.info("dashboard sign-in refused: app token %s", who.token_id)
            return self._sign_in_page(
                request, "App tokens cannot sign in: use an operator token.", 403
            )
        session_id, session = self.sessions.create(self.ctx.tokens.digest(raw), who.token_id)
        session.flash("ok", "Signed in.")
        response = RedirectResponse("/ui/", 303)
        set_cookie(response, request, cookie_name(request), session_id, None)
        set_cookie(response, request, SIGNIN_COOKIE, "", 0)
        return response

    async def sign_out(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """End the session here and in the browser."""
        self.sessions.end(request.cookies.get(cookie_name(request)))
        response = RedirectResponse("/ui/sign-in", 303)
        # Cleared with the same attributes it was set with: a browser ignores a __Host- cookie
        # sent without Secure, so delete_cookie's defaults would leave it in place.
        set_cookie(response, request, cookie_name(request), "", 0)
        return response

    # ------------------------------------------------------------------ pages

    async def overview(self, request: Request, session: Session) -> Response:
        """Apps, add-ons, the share graph and rotations per day."""
        data = await run_in_threadpool(pages.overview_page, self.service)
        return self.render(request, "overview.html", session, **data)

    async def app_view(self, request: Request, session: Session) -> Response:
        """One app (values hidden)."""
        data = await run_in_threadpool(pages.app_page, self.service, request.path_params["app"])
        return self.render(request, "app.html", session, revealed=None, **data)

    async def addon_view(self, request: Request, session: Session) -> Response:
        """One add-on, with its live countdown."""
        ref = request.path_params["addon"]
        data = await run_in_threadpool(pages.addon_page, self.service, ref)
        return self.render(request, "addon.html", session, **data)

    async def audit(self, request: Request, session: Session) -> Response:
        """The audit log, filtered."""
        q = request.query_params
        wanted = pages.AuditFilter(
            **{k: q.get(k, "")[:200] for k in ("actor", "action", "target", "since", "until")}
        )
        try:
            data = await run_in_threadpool(pages.audit_page, self.service, wanted)
        except NotFoundError:
            session.flash("error", "Times must look like 2026-12-01 or 2026-12-01T10:30.")
            data = await run_in_threadpool(pages.audit_page, self.service, pages.AuditFilter())
        return self.render(request, "audit.html", session, **data)

    async def webhooks(self, request: Request, session: Session) -> Response:
        """Webhooks and their deliveries."""
        data = await run_in_threadpool(pages.webhooks_page, self.service, self.ctx.webhooks)
        return self.render(request, "webhooks.html", session, **data)

    # ------------------------------------------------------------------ actions

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
        return RedirectResponse(f"/ui/apps/{quote(app.name, safe='')}", 303)

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
        return RedirectResponse(f"/ui/addons/{quote(created.addon.name, safe='')}", 303)

    async def reveal(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """Show one var's value on this response only; the audit log records the reveal."""
        ref = request.path_params["app"]
        var = form.get("var", "")
        value = await run_in_threadpool(
            lambda: self.extra.reveal_config_var(ref, var, actor=self._actor(session))
        )
        data = await run_in_threadpool(pages.app_page, self.service, ref)
        return self.render(
            request, "app.html", session, revealed={"name": var, "value": value}, **data
        )

    async def rotate(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """Rotate now (or in an emergency), once the add-on's name is typed."""
        ref = request.path_params["addon"]
        emergency = form.get("emergency") == "1"
        addon = await run_in_threadpool(self.service.get_addon, ref)
        if form.get("confirm", "").strip() != addon.name:
            raise ValidationError(
                "confirm", f"Confirmation did not match {addon.name}. Nothing was rotated."
            )
        rotated = await run_in_threadpool(
            lambda: self.service.rotate(addon.id, emergency=emergency, actor=self._actor(session))
        )
        kind = "Emergency rotation of" if emergency else "Rotated"
        session.flash(
            "ok", f"{kind} {addon.name}: {len(rotated.releases)} app(s) got a new release."
        )
        return RedirectResponse(f"/ui/addons/{quote(addon.name, safe='')}", 303)

    async def attach(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """Attach this add-on to an app under a name."""
        ref = request.path_params["addon"]
        app = form.get("app", "").strip()
        as_ = form.get("as", "").strip() or None
        att, release = await run_in_threadpool(
            lambda: self.service.attach(ref, app, as_=as_, actor=self._actor(session))
        )
        session.flash("ok", f"Attached as {att.name} to {app}: v{release.version}.")
        return RedirectResponse(f"/ui/addons/{quote(ref, safe='')}", 303)

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
        return RedirectResponse(f"/ui/addons/{quote(addon.name, safe='')}", 303)

    async def destroy(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """Destroy the add-on once the billing app's name is typed, as the CLI asks."""
        ref = request.path_params["addon"]
        addon = await run_in_threadpool(self.service.get_addon, ref)
        owner = await run_in_threadpool(self.service.get_app, addon.app_id)
        if form.get("confirm", "").strip() != owner.name:
            raise ValidationError(
                "confirm", f"Confirmation did not match {owner.name}. Nothing was destroyed."
            )
        force = form.get("force") == "1"
        await run_in_threadpool(
            lambda: self.service.destroy_addon(addon.id, force=force, actor=self._actor(session))
        )
        session.flash("ok", f"Destroyed {addon.name}.")
        return RedirectResponse(f"/ui/apps/{quote(owner.name, safe='')}", 303)

    # ------------------------------------------------------------------ live view

    async def live(self, request: Request, session: Session) -> Response:
        """Server-Sent Events for one page: fresh fragments after every release it cares about.

        It listens to the release hub that feeds ``/apps/{app}/config-vars/stream`` but sends
        names, fingerprints and times only, never values, and needs the session, not a token.
        """
        kind = request.path_params["kind"]
        ref = request.path_params["ref"]
        if kind not in ("app", "addon"):
            raise NotFoundError("live_view", kind)
        await run_in_threadpool(pages.live_targets, self.service, kind, ref)
        hub = self.ctx.hub

        async def events() -> AsyncIterator[bytes]:
            last = ""
            while True:
                try:
                    _target, app_ids = await run_in_threadpool(
                        pages.live_targets, self.service, kind, ref
                    )
                    seen = {a: hub.known_version(a) for a in app_ids}
                    regions = await run_in_threadpool(self._regions, kind, ref, session)
                except NotFoundError:
                    yield b"event: deleted\ndata: {}\n\n"
                    return
                payload = json.dumps({"regions": regions})
                if payload != last:
                    yield f"event: update\ndata: {payload}\n\n".encode()
                    last = payload
                if any(hub.known_version(a) > v for a, v in seen.items()):
                    continue  # a release landed while we were rendering
                woke = await _wait_any(hub.wait, app_ids, self.ctx.ping_interval)
                if hub.closing or await request.is_disconnected():
                    return
                if not self.sessions.alive(session) or not await self._still_valid(session):
                    yield b"event: signed-out\ndata: {}\n\n"
                    return
                if not woke:
                    yield b": ping\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def _regions(self, kind: str, ref: str, session: Session) -> dict[str, str]:
        """The page fragments a live view replaces, rendered as on the page itself."""
        if kind == "app":
            data = pages.app_page(self.service, ref)
            names: tuple[str, ...] = ("releases",)
        else:
            data = pages.addon_page(self.service, ref)
            names = ("rotation", "keys", "releases", "attachments")
        context = {"csrf": session.csrf, "revealed": None, **data}
        module = self.env.get_template(f"_{kind}_regions.html").make_module(context)
        return {name: str(getattr(module, f"region_{name}")()) for name in names}


async def _wait_any(
    wait: Callable[[str, float], Awaitable[bool]], app_ids: list[str], timeout: float
) -> bool:
    """True when any of ``app_ids`` gets a release within ``timeout``."""
    tasks = [asyncio.ensure_future(wait(app_id, timeout)) for app_id in app_ids]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return any(t.result() for t in done)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def _back(request: Request, form: dict[str, str]) -> str:
    """Where a refused form returns: its own page (derived from the path, never from input)."""
    parts = request.url.path.split("/")
    if len(parts) >= 4 and parts[2] in ("apps", "addons"):
        return "/".join(parts[:4])
    return "/ui/"
