"""The dashboard's front door: session cookies, CSRF checks, form parsing, security headers.

Every state-changing request is a POST that must carry the session's synchronizer token
(compared in constant time) and, when the browser sends one, an ``Origin`` equal to ours.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "SIGNIN_COOKIE",
    "FormError",
    "SecurityHeaders",
    "cookie_name",
    "is_https",
    "read_form",
    "same_origin",
    "set_cookie",
    "tokens_match",
]

SIGNIN_COOKIE = "securekey_signin"
_MAX_FIELDS = 20

#: Only our own scripts, styles and forms; no framing; nothing cached.
_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        b"object-src 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class FormError(Exception):
    """A form that cannot be read (wrong type, too many fields, not UTF-8)."""


def is_https(request: Request) -> bool:
    """Whether the browser reached us over TLS (then cookies are ``Secure``)."""
    return request.url.scheme == "https"


def cookie_name(request: Request) -> str:
    """``__Host-`` cookies under TLS: the browser then refuses them without Secure and Path=/."""
    return "__Host-securekey_session" if is_https(request) else "securekey_session"


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None
) -> None:
    """An HttpOnly, SameSite=Strict cookie for the whole site, Secure under TLS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def tokens_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted token with the expected one."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # old browsers; the synchronizer token still has to match
    host = request.headers.get("host", "")
    return origin == f"{request.url.scheme}://{host}"


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (first value of each); ``FormError`` for anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError("Forms must be sent as application/x-www-form-urlencoded.")
    body = await request.body()
    try:
        text = body.decode("utf-8")
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise FormError("The form could not be read.") from None
    out = {}
    for key, values in parsed.items():
        if "\x00" in key or any("\x00" in v for v in values):
            raise FormError("Form fields must not contain NUL bytes.")
        out[key] = values[0]
    return out


class SecurityHeaders:
    """ASGI middleware: the headers above on every dashboard response, static files included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _HEADERS if k not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
