"""The dashboard's route table and plumbing, a Starlette app mounted at ``/ui`` by the API factory.

Reads and writes go through the services, as the API's routes do. Pages need a session made
by signing in with an operator token; every POST needs the session's CSRF token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.concurrency import run_in_threadpool
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from securekey.api.context import ApiContext
from securekey.exceptions import NotFoundError, SecureKeyError
from securekey.services.dashboard import DashboardService
from securekey.web import pages
from securekey.web.actions import Actions
from securekey.web.guard import (
    FormError,
    SecurityHeaders,
    cookie_name,
    read_form,
    same_origin,
    tokens_match,
)
from securekey.web.live import LiveView
from securekey.web.sessions import Session, SessionStore
from securekey.web.signin import SignIn
from securekey.web.templates import TEMPLATES, environment

__all__ = ["Dashboard"]

log = logging.getLogger("securekey.web")

_STATIC = TEMPLATES.parent / "static"
#: How often a session's operator token is looked up again (revocation ends the session).
_RECHECK = 5.0

Handler = Callable[[Request, Session], Awaitable[Response]]
FormHandler = Callable[[Request, Session, dict[str, str]], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class Dashboard:
    """The dashboard over an API context: sessions, templates, routes."""

    def __init__(self, ctx: ApiContext, sessions: SessionStore | None = None) -> None:
        self.ctx = ctx
        self.service = ctx.service
        self.extra = DashboardService(ctx.service.store, ctx.service.clock)
        self.sessions = sessions or SessionStore()
        self.env = environment()

    # ------------------------------------------------------------------ plumbing

    def app(self) -> Starlette:
        """The ASGI app to mount at ``/ui``."""
        signin, actions, live = SignIn(self), Actions(self), LiveView(self)
        pages_: dict[str, Handler] = {
            "/": self.overview,
            "/apps/{app}": self.app_view,
            "/addons/{addon}": self.addon_view,
            "/audit": self.audit,
            "/webhooks": self.webhooks,
            "/live/{kind}/{ref}": live.stream,
        }
        forms: dict[str, FormHandler] = {
            "/sign-out": signin.sign_out,
            "/apps": actions.create_app,
            "/apps/{app}/reveal": actions.reveal,
            "/apps/{app}/addons": actions.create_addon,
            "/addons/{addon}/rotate": actions.rotate,
            "/addons/{addon}/attach": actions.attach,
            "/addons/{addon}/detach": actions.detach,
            "/addons/{addon}/destroy": actions.destroy,
        }
        routes: list[BaseRoute] = [
            Route("/sign-in", signin.form, methods=["GET"]),
            Route("/sign-in", signin.sign_in, methods=["POST"]),
        ]
        routes += [Route(p, self._page(h), methods=["GET"]) for p, h in pages_.items()]
        routes += [Route(p, self._form(h), methods=["POST"]) for p, h in forms.items()]
        routes.append(Mount("/static", StaticFiles(directory=_STATIC), name="static"))
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

    async def still_valid(self, session: Session) -> bool:
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

    async def current(self, request: Request) -> Session | None:
        """The request's session, if it has one that is still valid."""
        session = self.sessions.get(request.cookies.get(cookie_name(request)))
        if session is None or not await self.still_valid(session):
            return None
        return session

    def _page(self, handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            session = await self.current(request)
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

    def _form(self, handler: FormHandler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            session = await self.current(request)
            if session is None:
                return self.refused(request, 401, "Your session has ended; sign in again.")
            form = await self.posted_form(request)
            if isinstance(form, Response):
                return form
            if not tokens_match(form.get("csrf"), session.csrf):
                log.warning("dashboard form refused: missing or wrong CSRF token")
                return self.refused(request, 403, "The form's CSRF token is missing or wrong.")
            try:
                return await handler(request, session, form)
            except SecureKeyError as error:
                session.flash("error", error.message)
                return RedirectResponse(_back(request, form), 303)

        return endpoint

    async def posted_form(self, request: Request) -> dict[str, str] | Response:
        """A same-origin request's form, or the refusal to answer instead (403 or 400)."""
        if not same_origin(request):
            return self.refused(request, 403, "Cross-site form posts are refused.")
        try:
            return await read_form(request)
        except FormError as error:
            return self.refused(request, 400, str(error))

    def refused(self, request: Request, status: int, message: str) -> Response:
        """The error page for a request refused before any handler ran."""
        return self.render(request, "error.html", None, status, message=message)

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


def _back(request: Request, form: dict[str, str]) -> str:
    """Where a refused form returns: its own page (derived from the path, never from input)."""
    parts = request.url.path.split("/")
    if len(parts) >= 4 and parts[2] in ("apps", "addons"):
        return "/".join(parts[:4])
    return "/ui/"
