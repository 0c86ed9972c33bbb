"""Dashboard sign-in and sign-out: an operator token exchanged for a server-side session.

App tokens and bad tokens are refused, failures count toward the API's limiter, and the form
carries its own CSRF token bound to a short-lived cookie.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from securekey.domain.models import TokenKind
from securekey.exceptions import AuthenticationError, RateLimitedError
from securekey.web.guard import (
    SIGNIN_COOKIE,
    cookie_name,
    set_cookie,
    tokens_match,
)
from securekey.web.sessions import Session

if TYPE_CHECKING:
    from securekey.web.routes import Dashboard

__all__ = ["SignIn"]

log = logging.getLogger("securekey.web")


class SignIn:
    """The sign-in page and form, and sign-out, for one dashboard."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    async def form(self, request: Request) -> Response:
        """The sign-in page, with a fresh CSRF token bound to a short-lived cookie."""
        if await self.dashboard.current(request) is not None:
            return RedirectResponse("/ui/", 303)
        return self._page(request, None, 200)

    def _page(self, request: Request, error: str | None, status: int) -> Response:
        token = secrets.token_urlsafe(32)
        response = self.dashboard.render(
            request, "sign_in.html", None, status, signin_csrf=token, error=error
        )
        set_cookie(response, request, SIGNIN_COOKIE, token, 600)
        return response

    async def sign_in(self, request: Request) -> Response:
        """Exchange an operator token for a session; app tokens and bad tokens are refused."""
        dashboard = self.dashboard
        form = await dashboard.posted_form(request)
        if isinstance(form, Response):
            return form
        if not tokens_match(form.get("csrf"), request.cookies.get(SIGNIN_COOKIE, "")):
            return self._page(request, "The sign-in form expired; try again.", 403)
        raw = form.get("token", "").strip()
        client = request.client.host if request.client else "unknown"
        try:
            who = await run_in_threadpool(dashboard.ctx.auth.authenticate, f"Bearer {raw}", client)
        except RateLimitedError as error:
            response = self._page(request, error.message, 429)
            response.headers["Retry-After"] = str(error.retry_after)
            return response
        except AuthenticationError:
            log.info("dashboard sign-in refused: invalid token from %s", client)
            return self._page(request, "That token is not valid.", 401)
        if who.kind is not TokenKind.OPERATOR:
            log.info("dashboard sign-in refused: app token %s", who.token_id)
            return self._page(request, "App tokens cannot sign in: use an operator token.", 403)
        session_id, session = dashboard.sessions.create(
            dashboard.ctx.tokens.digest(raw), who.token_id
        )
        session.flash("ok", "Signed in.")
        response = RedirectResponse("/ui/", 303)
        set_cookie(response, request, cookie_name(request), session_id, None)
        set_cookie(response, request, SIGNIN_COOKIE, "", 0)
        return response

    async def sign_out(self, request: Request, session: Session, form: dict[str, str]) -> Response:
        """End the session here and in the browser."""
        self.dashboard.sessions.end(request.cookies.get(cookie_name(request)))
        response = RedirectResponse("/ui/sign-in", 303)
        # Cleared with the same attributes it was set with: a browser ignores a __Host- cookie
        # sent without Secure, so delete_cookie's defaults would leave it in place.
        set_cookie(response, request, cookie_name(request), "", 0)
        return response
