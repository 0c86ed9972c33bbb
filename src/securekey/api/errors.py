"""The one table from errors to HTTP: status and Heroku-style ``{"id", "message"}`` bodies.

Domain and service code never raise HTTP errors; this module translates at the edge only.
Messages are the exceptions' own, which never contain key material.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from securekey import exceptions as exc

__all__ = ["ApiError", "error_response", "install_error_handlers", "status_for"]

log = logging.getLogger("securekey.api")

# Most specific first: the first matching class decides (a BusyError is a ConflictError).
_TABLE: list[tuple[tuple[type[exc.SecureKeyError], ...], int]] = [
    ((exc.BusyError,), 409),
    ((exc.ValidationError, exc.ConflictError, exc.RefusedError), 422),
    ((exc.NotFoundError,), 404),
    ((exc.AuthenticationError,), 401),
    ((exc.ForbiddenError,), 403),
    ((exc.RateLimitedError,), 429),
    ((exc.RotationFailedError, exc.UnavailableError), 503),
    ((exc.DecryptionError, exc.ConfigurationError), 500),
]


class ApiError(Exception):
    """An HTTP-level error raised by the API layer itself (bad range, body too large, ...)."""

    def __init__(self, status: int, id_: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.id = id_
        self.message = message
        self.extra = extra


def status_for(error: exc.SecureKeyError) -> int:
    """The HTTP status for a securekey error."""
    for classes, status in _TABLE:
        if isinstance(error, classes):
            return status
    return 500


def error_response(
    status: int, id_: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """A Heroku-shaped error body."""
    return JSONResponse({"id": id_, "message": message, **extra}, status, headers=headers)


def _body(error: exc.SecureKeyError) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(error, exc.NotFoundError):
        extra["resource"] = error.resource
    if isinstance(error, exc.ValidationError | exc.ConflictError) and error.field:
        extra["field"] = error.field
    if isinstance(error, exc.AttachedElsewhereError):
        extra["attachments"] = [{"app": app, "name": name} for app, name in error.others]
    return extra


def _first_problem(problems: list[Any]) -> tuple[str, str]:
    """The field and message to report for a request that failed validation.

    A value checked against a union (``"plan": "name" | {"name": ...}``) fails once per
    member, each with the member's tag appended to its location (``plan.constrained-str``).
    Those errors share the field's location, so the field is their common prefix; the message
    is the one from a member whose type matched (a NUL byte, a length), when there is one.
    """
    if not problems:
        return "body", "is invalid"
    locs = [tuple(str(part) for part in p.get("loc", ())) for p in problems]
    head = locs[0][:2]
    same = [i for i, loc in enumerate(locs) if loc[:2] == head]
    common = list(locs[0])
    for i in same[1:]:
        size = 0
        while size < min(len(common), len(locs[i])) and common[size] == locs[i][size]:
            size += 1
        common = common[:size]
    chosen = next((i for i in same if not str(problems[i].get("type", "")).endswith("_type")), 0)
    return ".".join(common), str(problems[chosen].get("msg", "is invalid"))


def install_error_handlers(app: FastAPI) -> None:
    """Register the translations on ``app``."""
    _register(app, exc.SecureKeyError, _domain)
    _register(app, ApiError, _api)
    _register(app, RequestValidationError, _validation)
    _register(app, StarletteHTTPException, _http)
    _register(app, Exception, _unexpected)


_E = TypeVar("_E", bound=Exception)


def _register(app: FastAPI, cls: type[_E], translate: Callable[[_E], JSONResponse]) -> None:
    """Answer ``cls`` errors with ``translate``'s response."""

    async def handler(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, cls)
        return translate(error)

    app.add_exception_handler(cls, handler)


def _domain(error: exc.SecureKeyError) -> JSONResponse:
    status = status_for(error)
    # A database outage is logged once by the store, not once per request.
    if status >= 500 and not isinstance(error, exc.UnavailableError):
        log.error("%s: %s", type(error).__name__, error.message)
    headers = None
    if isinstance(error, exc.RateLimitedError | exc.UnavailableError):
        headers = {"Retry-After": str(error.retry_after)}
    if isinstance(error, exc.AuthenticationError):
        headers = {"WWW-Authenticate": 'Bearer realm="securekey"'}
    return error_response(status, error.id, error.message, headers, **_body(error))


def _api(error: ApiError) -> JSONResponse:
    return error_response(error.status, error.id, error.message, **error.extra)


def _validation(error: RequestValidationError) -> JSONResponse:
    problems = list(error.errors())
    if any(p.get("type") == "json_invalid" for p in problems):
        return error_response(400, "bad_request", "The request body is not valid JSON.")
    field, message = _first_problem(problems)
    if field == "header.Range":
        # A Range too long for its header check is as malformed as any other bad Range.
        return error_response(400, "invalid_range", "The Range header is too long.")
    field = field.removeprefix("body.").removeprefix("body") or "body"
    return error_response(422, "invalid_params", f"Invalid {field}: {message}.", field=field)


def _http(error: StarletteHTTPException) -> JSONResponse:
    ids = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
    message = error.detail if isinstance(error.detail, str) else "Request failed."
    if error.status_code == 404 and message == "Not Found":
        message = "The requested API endpoint was not found."
    return error_response(
        error.status_code,
        ids.get(error.status_code, "error"),
        message,
        dict(error.headers or {}),
    )


def _unexpected(error: Exception) -> JSONResponse:
    # Log the type only: an arbitrary exception's text could carry data we must not log.
    log.error("unexpected %s while handling a request", type(error).__name__)
    return error_response(500, "internal_error", "Internal server error.")
