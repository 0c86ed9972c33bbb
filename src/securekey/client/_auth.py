"""The client side of the handshake, for httpx and for requests.

Bearer mode presents LATEST; signed mode signs each request with LATEST and never sends a key.
When a server hints that a newer LATEST exists (``Securekey-Latest-Fingerprint``), the ring
refreshes itself from the securekey server in the background with this service's own token
(single-flight); a LATEST handed over by a server in ``handover="key"`` mode is adopted. On a
401 the ring is refreshed once and, if that gives a different key, the request is sent again;
so it is, after the wait the server names, when the server could not refresh yet
(``Securekey-Retry-After``), up to ``MAX_RESENDS`` times and ``MAX_RETRY_WAIT`` seconds in all.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from securekey.client._handshake import (
    LATEST_FINGERPRINT_HEADER,
    LATEST_KEY_HEADER,
    LATEST_KEYID_HEADER,
    RETRY_AFTER_HEADER,
)
from securekey.client._ring import KeyRing
from securekey.client._signing import SIGNATURE_HEADER, sign_request
from securekey.client._verify import DEFAULT_KEY_HEADER
from securekey.domain.keys import Key
from securekey.exceptions import ValidationError

__all__ = ["SecureKeyAuth", "SecureKeyRequestsAuth"]

log = logging.getLogger("securekey.client")

#: At most this many resends of one request after 401s.
MAX_RESENDS = 3
#: At most this many seconds of Securekey-Retry-After waits for one request, all resends together.
MAX_RETRY_WAIT = 5.0


class _Presenter:
    """What both auth classes share: which key to use, credentials, adopting, retrying."""

    def __init__(self, ring: KeyRing, signed: bool, header: str) -> None:
        self.ring, self.signed, self.header = ring, signed, header
        self._bearer = header.lower() == "authorization"
        # (fingerprint of the ring's LATEST when adopted, the adopted key): the adoption
        # holds only until the ring itself moves, so a stale adoption can never win.
        self._adopted: tuple[str, Key] | None = None
        self._lock = threading.Lock()

    def key(self) -> Key:
        latest = self.ring.latest
        adopted = self._adopted
        if adopted is not None and adopted[0] == latest.fingerprint:
            return adopted[1]
        return latest

    def credentials(self, method: str, target: str, body: bytes, host: str) -> tuple[str, str, str]:
        """(header, value, fingerprint of the key used) for one request to ``host``."""
        key = self.key()
        if self.signed:
            value = sign_request(key, method, target, body, host=host)
            return SIGNATURE_HEADER, value, key.fingerprint
        value = f"Bearer {key.hex}" if self._bearer else key.hex
        return self.header, value, key.fingerprint

    def observe(self, headers: Mapping[str, str], used: str) -> None:
        """Learn from a response: refresh on a hint of a newer LATEST, adopt a handed-over one."""
        value = None if self.signed else headers.get(LATEST_KEY_HEADER)
        if not value:
            hint = headers.get(LATEST_FINGERPRINT_HEADER) or headers.get(LATEST_KEYID_HEADER)
            if hint and hint.strip().lower() not in (used, self.ring.latest.fingerprint):
                self.ring.refresh_soon()
            return
        try:
            key = Key(value.strip().upper())
        except ValidationError:
            log.warning("Ignored an ill-formed %s header.", LATEST_KEY_HEADER)
            return
        with self._lock:
            if key.fingerprint not in (used, self.ring.latest.fingerprint):
                self._adopted = (self.ring.latest.fingerprint, key)
                log.info("Adopted LATEST %s handed over by the server.", key.fingerprint)

    def _forget(self, used: str) -> None:
        with self._lock:
            if self._adopted is not None and self._adopted[1].fingerprint == used:
                self._adopted = None

    def retry_after_refresh(self, used: str) -> bool:
        """After a 401: refresh once; True if there is now a different key to try."""
        self._forget(used)
        self.ring.refresh()
        return self.key().fingerprint != used

    async def aretry_after_refresh(self, used: str) -> bool:
        """``retry_after_refresh`` for coroutines."""
        self._forget(used)
        await self.ring.arefresh()
        return self.key().fingerprint != used

    def resend_after(self, status: int, headers: Mapping[str, str], used: str) -> float | None:
        """After an answer: None to keep it, else seconds to wait before sending again."""
        if status != 401:
            return None
        if self.retry_after_refresh(used):
            return 0.0
        return _server_wait(headers)

    async def aresend_after(
        self, status: int, headers: Mapping[str, str], used: str
    ) -> float | None:
        """``resend_after`` for coroutines."""
        if status != 401:
            return None
        if await self.aretry_after_refresh(used):
            return 0.0
        return _server_wait(headers)


def _server_wait(headers: Mapping[str, str]) -> float | None:
    """The wait a server named because it could not refresh its ring yet, if it is sane."""
    raw = headers.get(RETRY_AFTER_HEADER)
    if raw is None:
        return None
    try:
        wait = float(raw)
    except ValueError:
        return None
    return wait if math.isfinite(wait) and 0 <= wait <= MAX_RETRY_WAIT else None


class _KeyAuth:
    """The options both auth classes take, and the key they present (see ``SecureKeyAuth``)."""

    def __init__(
        self,
        ring: KeyRing,
        *,
        signed: bool = False,
        header: str = DEFAULT_KEY_HEADER,
        retry: bool = True,
    ) -> None:
        self._check_installed()
        self._presenter = _Presenter(ring, signed, header)
        self.retry = retry
        #: httpx reads the body into memory first when set (signing and resending need it).
        self.requires_request_body = signed or retry

    def _check_installed(self) -> None:
        """Raise ImportError if the HTTP library this class serves is missing."""

    @property
    def key(self) -> Key:
        """The key the next request will use."""
        return self._presenter.key()


class SecureKeyAuth(_KeyAuth, httpx.Auth):
    """httpx auth: ``httpx.Client(auth=SecureKeyAuth(ring))``; sync and async clients alike.

    ``signed=True`` signs instead of presenting the key. ``header`` is where the key goes
    (``Authorization: Bearer <key>`` by default, or e.g. ``X-Securekey-Key: <key>``).
    ``retry`` (default on) resends after a 401 when a refresh finds a newer key, or after the
    wait the server names when it could not refresh yet (at most ``MAX_RESENDS`` times); it
    makes httpx read the request body into memory first, as signing does.
    """

    def _apply(self, request: httpx.Request) -> str:
        body = request.content if self.requires_request_body else b""
        target = request.url.raw_path.decode("ascii")
        host = request.headers.get("host") or request.url.netloc.decode("ascii")
        name, value, used = self._presenter.credentials(request.method, target, body, host)
        request.headers[name] = value
        return used

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        if self.requires_request_body:
            request.read()
        used = self._apply(request)
        response = yield request
        self._presenter.observe(response.headers, used)
        budget = MAX_RETRY_WAIT
        for _ in range(MAX_RESENDS if self.retry else 0):
            wait = self._presenter.resend_after(response.status_code, response.headers, used)
            if wait is None or wait > budget:
                return
            budget -= wait
            if wait:
                time.sleep(wait)
            used = self._apply(request)
            response = yield request
            self._presenter.observe(response.headers, used)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self.requires_request_body:
            await request.aread()
        used = self._apply(request)
        response = yield request
        self._presenter.observe(response.headers, used)
        for _ in range(MAX_RESENDS if self.retry else 0):
            wait = await self._presenter.aresend_after(response.status_code, response.headers, used)
            if wait is None:
                return
            if wait:
                await asyncio.sleep(wait)
            used = self._apply(request)
            response = yield request
            self._presenter.observe(response.headers, used)


def _require_requests() -> None:
    try:
        importlib.import_module("requests")
    except ImportError as exc:
        raise ImportError(
            "SecureKeyRequestsAuth needs the 'requests' package, which securekey does not "
            "install: pip install requests (or use SecureKeyAuth with httpx)."
        ) from exc


def _body_bytes(body: object, signed: bool) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if signed:
        raise ValueError("A signed request needs its body in memory (bytes or str), not a stream.")
    return b""


class SecureKeyRequestsAuth(_KeyAuth):
    """requests auth: ``requests.get(url, auth=SecureKeyRequestsAuth(ring))``.

    Same options as ``SecureKeyAuth``. requests accepts any callable as ``auth`` (this is the
    ``AuthBase`` protocol); requests itself is imported only when this class is used, and a
    clear ImportError says so if it is missing.
    """

    def _check_installed(self) -> None:
        _require_requests()

    def _apply(self, request: Any) -> str:
        body = _body_bytes(request.body, self._presenter.signed)
        host = request.headers.get("Host") or urlsplit(request.url).netloc
        name, value, used = self._presenter.credentials(
            request.method, request.path_url, body, host
        )
        request.headers[name] = value
        return used

    def __call__(self, request: Any) -> Any:
        used = self._apply(request)
        request.register_hook("response", self._hook(used))
        return request

    def _hook(self, used: str) -> Callable[..., Any]:
        def handle(response: Any, **kwargs: Any) -> Any:
            self._presenter.observe(response.headers, used)
            if not self.retry or getattr(response.request, "_securekey_retried", False):
                return response
            current, current_used, history = response, used, []
            budget = MAX_RETRY_WAIT
            for _ in range(MAX_RESENDS):
                wait = self._presenter.resend_after(
                    current.status_code, current.headers, current_used
                )
                if wait is None or wait > budget:
                    break
                budget -= wait
                _ = current.content  # drain, so the connection can be reused
                current.close()
                if wait:
                    time.sleep(wait)
                again = current.request.copy()
                again._securekey_retried = True
                current_used = self._apply(again)
                history.append(current)
                current = current.connection.send(again, **kwargs)
                current.request = again
                self._presenter.observe(current.headers, current_used)
            current.history.extend(history)
            return current

        return handle
