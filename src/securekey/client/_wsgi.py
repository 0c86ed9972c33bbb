"""The seed's handshake as WSGI middleware in front of any app (ASGI: ``_middleware``).

Options and answers are the ASGI middleware's; only the way a request is read differs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from securekey.client._errors import VerificationError
from securekey.client._handshake import Guard, refusal, too_large
from securekey.client._middleware import TARGET_SAFE

__all__ = ["SecureKeyWSGIMiddleware"]

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _wsgi_target(environ: Environ) -> str:
    """The path and query as sent: RAW_URI/REQUEST_URI when the server keeps them."""
    for name in ("RAW_URI", "REQUEST_URI"):
        raw = environ.get(name)
        if isinstance(raw, str) and raw.startswith("/"):
            return raw
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    target = quote(path.encode("latin-1"), safe=TARGET_SAFE) or "/"
    query = environ.get("QUERY_STRING", "")
    return f"{target}?{query}" if query else target


def _wsgi_headers(environ: Environ) -> dict[str, str]:
    headers = {
        name[5:].replace("_", "-").lower(): value
        for name, value in environ.items()
        if name.startswith("HTTP_") and isinstance(value, str)
    }
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = environ[name]
    return headers


class SecureKeyWSGIMiddleware(Guard[WSGIApp]):
    """WSGI middleware: verify every request, tell PREVIOUS users of LATEST.

    ``environ["securekey"]`` holds the ``Verified`` result. Options as ``SecureKeyMiddleware``.
    """

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") in self.exempt:
            return self.app(environ, start_response)
        headers = _wsgi_headers(environ)
        body = b""
        if self.verifier.wants_body(headers):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > self.max_body:
                return self._respond(start_response, *too_large(self.max_body))
            stream = environ["wsgi.input"]
            body = stream.read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            verified = self.verifier.verify(method, _wsgi_target(environ), headers, body)
        except VerificationError as exc:
            return self._respond(start_response, *refusal(exc, self.verifier))
        environ["securekey"] = verified
        address = environ.get("REMOTE_ADDR") or "an unknown address"
        extra = self._handshake.headers(verified, str(address))
        if not extra:
            return self.app(environ, start_response)

        def start_with_handover(
            status: str, response_headers: list[tuple[str, str]], *exc_info: Any
        ) -> Callable[[bytes], object]:
            present = {name.lower() for name, _ in response_headers}
            added = [(k, v) for k, v in extra if k.lower() not in present]
            return start_response(status, [*response_headers, *added], *exc_info)

        return self.app(environ, start_with_handover)

    @staticmethod
    def _respond(
        start_response: StartResponse, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> list[bytes]:
        reason = {401: "Unauthorized", 413: "Content Too Large"}[status]
        start_response(f"{status} {reason}", headers)
        return [body]
