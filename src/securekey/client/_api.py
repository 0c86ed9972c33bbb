"""The server's config-var endpoints as the SDK sees them: one GET, one event stream.

The only place that turns HTTP statuses and transport failures into ``SecureKeyError``s.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from securekey.client._errors import ServerUnavailableError
from securekey.client._sse import SSEParser
from securekey.client._tls import CA_BUNDLE_ENV, untrusted_certificate
from securekey.domain.keys import KeyPair, parse_pair
from securekey.exceptions import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    SecureKeyError,
)

__all__ = ["ACCEPT", "ConfigSnapshot", "Endpoint", "StreamShutdown", "parse_etag"]

#: The Heroku Platform API v3 media type the server speaks.
ACCEPT = "application/vnd.heroku+json; version=3"


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """An app's config vars at one release; its repr lists names only, never values."""

    release: int
    vars: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vars", MappingProxyType(dict(self.vars)))

    def pair(self, var: str) -> KeyPair:
        """The key pair held in ``var``; NotFoundError if unset, ValidationError if ill-formed."""
        value = self.vars.get(var)
        if value is None:
            raise NotFoundError("config_var", var)
        return parse_pair(value)

    def __repr__(self) -> str:
        names = ", ".join(sorted(self.vars))
        return f"ConfigSnapshot(release={self.release}, vars=[{names}])"

    __str__ = __repr__


def parse_etag(value: str | None) -> int | None:
    """The release number in an ``ETag: "<n>"`` header (weak or strong), or None."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    return int(text) if text.isdigit() else None


def _config_vars(payload: object) -> dict[str, str]:
    """Validate a JSON config-var object; a null value means unset (Heroku's convention)."""
    if not isinstance(payload, dict):
        raise ServerUnavailableError(
            "The securekey server sent config vars that are not an object."
        )
    result: dict[str, str] = {}
    for name, value in payload.items():
        if value is None:
            continue
        if not isinstance(name, str) or not isinstance(value, str):
            raise ServerUnavailableError(
                "The securekey server sent a config var that is not a string."
            )
        result[name] = value
    return result


@dataclass(frozen=True, slots=True)
class StreamShutdown:
    """The server ended the stream on purpose (``event: shutdown``, graceful shutdown).

    ``retry`` is the server's ``retry:`` hint in seconds, or None without one: reconnect after
    it, resuming with ``Last-Event-ID`` (to another replica, as a rule). Not a failure.
    """

    retry: float | None


def _host(url: str) -> str:
    """``scheme://host:port`` of a URL, dropping any user info, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _error_message(response: httpx.Response) -> str:
    """The server's ``message`` from an error body, when it sent one."""
    try:
        body: Any = json.loads(response.content or b"null")
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return ""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one app's config vars live on a server, and the app token that may read them."""

    url: str
    app: str
    token: str = field(repr=False)

    @property
    def config_url(self) -> str:
        """``{url}/apps/{app}/config-vars``."""
        return f"{self.url.rstrip('/')}/apps/{quote(self.app, safe='')}/config-vars"

    @property
    def stream_url(self) -> str:
        """``{url}/apps/{app}/config-vars/stream``."""
        return self.config_url + "/stream"

    def headers(
        self, *, etag: int | None = None, last_event_id: int | None = None
    ) -> dict[str, str]:
        """Request headers: bearer token, API version, and the conditional ones."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": ACCEPT}
        if etag is not None:
            headers["If-None-Match"] = f'"{etag}"'
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        return headers

    def unreachable(self, exc: Exception) -> ServerUnavailableError:
        """The error for a transport failure, naming the host and the failure's kind only."""
        untrusted = untrusted_certificate(exc)
        if untrusted is not None:
            return ServerUnavailableError(
                f"The securekey server at {_host(self.url)} presented a certificate that is not "
                f"trusted ({untrusted.verify_message}); if a private CA signed it, give its PEM "
                f"file as ca_bundle= or in {CA_BUNDLE_ENV}."
            )
        return ServerUnavailableError(
            f"Cannot reach the securekey server at {_host(self.url)} ({type(exc).__name__})."
        )

    def check(self, response: httpx.Response) -> None:
        """Raise the SecureKeyError a non-success status means (the edge translation table)."""
        status = response.status_code
        if status < 400:
            return
        detail = _error_message(response)
        suffix = f": {detail}" if detail else "."
        if status == 401:
            raise AuthenticationError(f"The securekey server refused the token (401){suffix}")
        if status == 403:
            raise ForbiddenError(
                f"The token may not read the config vars of {self.app!r} (403){suffix}"
            )
        if status == 404:
            raise NotFoundError("app", self.app)
        if status >= 500:
            raise ServerUnavailableError(
                f"The securekey server at {_host(self.url)} answered {status}{suffix}"
            )
        raise SecureKeyError(f"The securekey server answered {status}{suffix}")

    def snapshot(self, response: httpx.Response) -> ConfigSnapshot | None:
        """The snapshot a config-vars GET answered, or None for 304 Not Modified."""
        if response.status_code == 304:
            return None
        self.check(response)
        release = parse_etag(response.headers.get("ETag"))
        if release is None:
            raise ServerUnavailableError("The securekey server sent config vars without an ETag.")
        try:
            payload = response.json()
        except ValueError as exc:
            raise ServerUnavailableError(
                "The securekey server sent a body that is not JSON."
            ) from exc
        return ConfigSnapshot(release, _config_vars(payload))

    def get(self, client: httpx.Client, etag: int | None = None) -> ConfigSnapshot | None:
        """GET the config vars (conditional on ``etag``); None when unchanged."""
        try:
            response = client.get(self.config_url, headers=self.headers(etag=etag))
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        return self.snapshot(response)

    async def aget(
        self, client: httpx.AsyncClient, etag: int | None = None
    ) -> ConfigSnapshot | None:
        """GET the config vars (conditional on ``etag``); None when unchanged."""
        try:
            response = await client.get(self.config_url, headers=self.headers(etag=etag))
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        return self.snapshot(response)

    async def astream(
        self, client: httpx.AsyncClient, last_event_id: int | None, read_timeout: float
    ) -> AsyncIterator[ConfigSnapshot | StreamShutdown | None]:
        """Follow the event stream: None once it is open, then a snapshot per ``config`` event.

        Ends when the server ends the stream; a graceful end (``event: shutdown``) yields a
        ``StreamShutdown`` last. Raises SecureKeyError subclasses for refusals
        and for a server that does not stream.
        """
        timeout = httpx.Timeout(10.0, read=read_timeout)
        headers = self.headers(last_event_id=last_event_id)
        headers["Accept"] = "text/event-stream"
        try:
            async with client.stream(
                "GET", self.stream_url, headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                if response.status_code == 404:  # no such app, or a server without the stream
                    detail = _error_message(response) or "Not found."
                    raise ServerUnavailableError(f"No config-var stream here (404): {detail}")
                self.check(response)
                kind = response.headers.get("Content-Type", "")
                if not kind.startswith("text/event-stream"):
                    raise ServerUnavailableError(
                        "The securekey server's config-var stream is not an event stream."
                    )
                yield None
                async for item in _config_events(response):
                    yield item
                    if isinstance(item, StreamShutdown):
                        return
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc


async def _config_events(
    response: httpx.Response,
) -> AsyncIterator[ConfigSnapshot | StreamShutdown]:
    """The snapshots a config-var stream carries, then a ``StreamShutdown`` if it ends so."""
    parser = SSEParser()
    async for chunk in response.aiter_bytes():
        for event in parser.feed(chunk):
            if event.event == "shutdown":
                retry = None if parser.retry is None else parser.retry / 1000
                yield StreamShutdown(retry)
                return
            if event.event != "config" or event.id is None or not event.id.isdigit():
                continue
            try:
                payload = json.loads(event.data)
            except ValueError:
                continue
            yield ConfigSnapshot(int(event.id), _config_vars(payload))
