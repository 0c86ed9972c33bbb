"""The key ring: the current ``KeyPair``, swapped atomically, checked LATEST then PREVIOUS.

It also runs the refresh a verifier asks for before refusing an unknown key: single-flight
(concurrent callers share one fetch) and rate-limited. A client's ``refresh`` waits for the next
slot; a verifier's ``try_refresh`` never does: at most one request waits, for one fetch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from hmac import compare_digest
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

from securekey.client._api import Endpoint
from securekey.client._coalescer import Coalescer
from securekey.client._fetchers import FileFetcher, HttpFetcher
from securekey.client._tls import tls_verify
from securekey.domain.keys import Key, KeyPair, Slot, parse_pair
from securekey.exceptions import NotFoundError, SecureKeyError

__all__ = ["ChangeCallback", "Fetcher", "KeyRing", "StaticKeyRing"]

log = logging.getLogger("securekey.client")

#: Called with the new pair after every change, in the thread that made the change.
ChangeCallback = Callable[[KeyPair], None]


class Fetcher(Protocol):
    """Where a ring looks for a newer pair; None means "nothing newer than what you have"."""

    def fetch(self) -> KeyPair | None:
        """Look for a newer pair, blocking."""
        ...

    async def afetch(self) -> KeyPair | None:
        """Look for a newer pair without blocking the event loop."""
        ...


class KeyRing:
    """The current ``KeyPair``: present and sign with LATEST; accept LATEST, then PREVIOUS.

    Reading is lock-free (one reference); ``swap`` is atomic and runs the change callbacks.
    A ring with a ``fetcher`` can ``refresh`` (single-flight, at most once per
    ``min_refresh_interval`` seconds); a ring without one never changes unless swapped.
    """

    def __init__(
        self,
        pair: KeyPair,
        *,
        fetcher: Fetcher | None = None,
        min_refresh_interval: float = 1.0,
        refresh_timeout: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(pair, KeyPair):
            raise TypeError("KeyRing needs a KeyPair; use KeyRing.from_value for a string.")
        self._pair = pair
        self._monotonic = monotonic
        self._changed_at = monotonic()
        self._lock = threading.RLock()
        self._callbacks: list[ChangeCallback] = []
        self._fetcher = fetcher
        self._refresher = Coalescer(
            self._fetch_and_swap,
            self._afetch_and_swap,
            min_refresh_interval,
            refresh_timeout,
            monotonic,
        )

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_value(cls, value: str, **kwargs: Any) -> KeyRing:
        """A ring from a config var value ``LATEST,PREVIOUS`` (errors never echo the value)."""
        return cls(parse_pair(value), **kwargs)

    @classmethod
    def from_environ(
        cls, var: str = "SECURE_KEY", environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> KeyRing:
        """A ring from the environment variable ``var`` (as ``securekey run`` sets it)."""
        env = os.environ if environ is None else environ
        if var not in env:
            # Said plainly: this is the process's environment, not a server lookup.
            raise NotFoundError(
                "config_var",
                var,
                message=f"The environment variable {var} is not set. Start the process under "
                f"`securekey run -a APP -- COMMAND`, which sets it, or export {var} yourself.",
            )
        return cls.from_value(env[var], **kwargs)

    @classmethod
    def from_env_file(
        cls, path: str | os.PathLike[str], var: str = "SECURE_KEY", **kwargs: Any
    ) -> KeyRing:
        """A ring from an env file; it refreshes by reading the file again.

        Pairs with ``securekey run --no-restart --env-file``: the process keeps running and
        learns each rotation the first time it meets a key it does not know.
        """
        fetcher = FileFetcher(os.fspath(path), var)
        pair = fetcher.read()
        return cls(pair, fetcher=fetcher, **kwargs)

    @classmethod
    def from_server(
        cls,
        url: str,
        app: str,
        token: str,
        *,
        var: str = "SECURE_KEY",
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        ca_bundle: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> KeyRing:
        """A ring from one GET of the app's config vars; it refreshes with a conditional GET.

        No background work: for live updates use ``WatchedKeyRing`` / ``AsyncWatchedKeyRing``.
        An ``https`` server's certificate is verified against ``ca_bundle`` (a PEM file; by
        default ``$SECUREKEY_CA_BUNDLE``, else the usual public CAs).
        """
        fetcher = HttpFetcher(
            Endpoint(url, app, token), var, transport, timeout, tls_verify(ca_bundle)
        )
        try:
            pair = fetcher.fetch()
            if pair is None:  # pragma: no cover - an unconditional GET always answers a body
                raise NotFoundError("config_var", var)
            return cls(pair, fetcher=fetcher, **kwargs)
        except BaseException:
            fetcher.close()
            raise

    # -- reading --------------------------------------------------------------------------

    @property
    def current(self) -> KeyPair:
        """The pair now in force."""
        return self._pair

    @property
    def latest(self) -> Key:
        """The key to present and to sign with."""
        return self._pair.latest

    def present(self) -> str:
        """The LATEST key as 64 hex digits, to send as a bearer credential."""
        return self._pair.latest.hex

    def verify(self, presented: str) -> Slot | None:
        """Which key ``presented`` is, "latest" or "previous" (checked in that order), or None."""
        pair = self._pair
        if not presented.isascii():
            return pair.match(presented)
        # ``KeyPair.match`` inlined (this is the hot path): both keys compared in constant
        # time, as ASCII text, so neither the comparison nor its time says which matched.
        upper = presented.upper()
        latest = compare_digest(pair.latest.hex, upper)
        previous = compare_digest(pair.previous.hex, upper)
        if latest:
            return "latest"
        if previous:
            return "previous"
        return None

    def key_for(self, fingerprint: str) -> tuple[Slot, Key] | None:
        """The slot and key a fingerprint names (LATEST first), or None."""
        return self._pair.by_fingerprint(fingerprint)

    def sign(self, message: bytes) -> str:
        """HMAC-SHA256 of ``message`` under LATEST, as hex."""
        return self._pair.latest.sign(message)

    def verify_signature(self, message: bytes, signature: str) -> Slot | None:
        """Which key signed ``message`` (HMAC-SHA256 hex), LATEST then PREVIOUS, or None."""
        pair = self._pair
        # Both are computed, so the time taken does not say which key matched.
        latest = pair.latest.signed(message, signature)
        previous = pair.previous.signed(message, signature)
        if latest:
            return "latest"
        if previous:
            return "previous"
        return None

    @property
    def pair_age(self) -> float:
        """Seconds since this ring's pair last changed (or since the ring was made)."""
        return max(0.0, self._monotonic() - self._changed_at)

    # -- changing -------------------------------------------------------------------------

    def swap(self, pair: KeyPair) -> bool:
        """Put ``pair`` in force atomically; True (and callbacks run) if it differs."""
        with self._lock:
            if pair == self._pair:
                return False
            self._pair = pair
            self._changed_at = self._monotonic()
            for callback in list(self._callbacks):
                try:
                    callback(pair)
                except Exception:
                    log.exception("A securekey on_change callback failed; the swap stands.")
            return True

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(new_pair)`` after each change; returns a function that unsubscribes."""
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    # -- refreshing -----------------------------------------------------------------------

    @property
    def can_refresh(self) -> bool:
        """Whether ``refresh`` can ever learn anything (the ring has a fetcher)."""
        return self._fetcher is not None

    @property
    def refreshes(self) -> int:
        """How many fetches the ring has started (concurrent callers share one)."""
        return self._refresher.started

    def _fetch_and_swap(self) -> bool:
        assert self._fetcher is not None
        try:
            pair = self._fetcher.fetch()
        except (SecureKeyError, httpx.HTTPError, OSError, TimeoutError) as exc:
            log.warning("Refreshing the key ring failed: %s", _describe(exc))
            return False
        return pair is not None and self.swap(pair)

    async def _afetch_and_swap(self) -> bool:
        assert self._fetcher is not None
        try:
            pair = await self._fetcher.afetch()
        except (SecureKeyError, httpx.HTTPError, OSError, TimeoutError) as exc:
            log.warning("Refreshing the key ring failed: %s", _describe(exc))
            return False
        return pair is not None and self.swap(pair)

    def refresh(self) -> bool:
        """Look for a newer pair now (blocking); True if the pair in force changed meanwhile.

        Never raises for a server problem: a failed refresh logs and returns False.
        """
        if self._fetcher is None:
            return False
        before = self._pair
        self._refresher.run_sync()
        return self._pair != before

    async def arefresh(self) -> bool:
        """``refresh`` for coroutines: the event loop keeps running while it fetches."""
        if self._fetcher is None:
            return False
        before = self._pair
        await self._refresher.run_async()
        return self._pair != before

    def try_refresh(self) -> float | None:
        """A verifier's refresh: never waits for the rate limit, at most one caller per fetch.

        If a refresh may start now, lead it and wait for it (at most ``refresh_timeout``) and
        return None. Otherwise (one is running, or the last began less than
        ``min_refresh_interval`` ago) make sure one follows, and return at once the seconds
        after which it has probably finished: refuse the request now, and tell its client
        when to try again. A ring without a fetcher returns None at once.
        """
        if self._fetcher is None:
            return None
        return self._refresher.try_run_sync()

    async def atry_refresh(self) -> float | None:
        """``try_refresh`` for coroutines."""
        if self._fetcher is None:
            return None
        return await self._refresher.try_run_async()

    def refresh_soon(self) -> None:
        """Start a refresh in the background and return at once (a hint, not a promise).

        Cheap to call on every response: while a refresh is already waiting to start, it
        does nothing more (the waiting one will see whatever prompted the hint).
        """
        if self._fetcher is not None:
            self._refresher.run_background()

    def close(self) -> None:
        """Release the HTTP connections of a ring made by ``from_server`` (else nothing)."""
        closer = getattr(self._fetcher, "close", None)
        if callable(closer):
            closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        latest, previous = self._pair.fingerprints
        return f"{type(self).__name__}(latest={latest!r}, previous={previous!r})"


def _describe(exc: BaseException) -> str:
    """A failure for the log: our errors' safe message, or just the exception's kind."""
    return exc.message if isinstance(exc, SecureKeyError) else type(exc).__name__


class _Staged:
    """The fetcher of a StaticKeyRing: hands out a staged pair once."""

    def __init__(self) -> None:
        self.pair: KeyPair | None = None
        self._lock = threading.Lock()

    def fetch(self) -> KeyPair | None:
        with self._lock:
            pair, self.pair = self.pair, None
            return pair

    async def afetch(self) -> KeyPair | None:
        return self.fetch()


class StaticKeyRing(KeyRing):
    """A ring for tests: a fixed or fresh pair that changes only when the test says so.

    ``rotate()`` changes it now; ``stage(pair)`` makes the next ``refresh`` find ``pair``,
    which is how a test plays "the server rotated, this process has not heard yet".
    """

    def __init__(
        self, pair: KeyPair | str | None = None, *, min_refresh_interval: float = 0.0
    ) -> None:
        if pair is None:
            pair = KeyPair.fresh()
        elif isinstance(pair, str):
            pair = parse_pair(pair)
        self._staged = _Staged()
        super().__init__(pair, fetcher=self._staged, min_refresh_interval=min_refresh_interval)

    def rotate(self) -> KeyPair:
        """Rotate now (PREVIOUS := LATEST, LATEST := new) and return the new pair."""
        pair = self.current.rotated()
        self.swap(pair)
        return pair

    def stage(self, pair: KeyPair | None = None) -> KeyPair:
        """Make the next refresh find ``pair`` (default: the current pair rotated); returns it."""
        staged = pair or self.current.rotated()
        self._staged.pair = staged
        return staged
