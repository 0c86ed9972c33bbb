"""One open config stream (``Watcher``): what it still has to send, and the writing of it.

The broadcast hub (``broadcast.py``) hands each watcher the newest event; the watcher writes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from starlette.types import Send

if TYPE_CHECKING:
    from securekey.api.live import CachedConfig

__all__ = ["PING", "Watcher", "config_event"]

PING = b": ping\n\n"


def config_event(snapshot: CachedConfig) -> bytes:
    """The SSE event carrying ``snapshot``: id = release, data = the vars."""
    return b"id: %d\nevent: config\ndata: %s\n\n" % (snapshot.release, snapshot.body)


class Watcher:
    """One open stream: what it still has to send, newest config only (a slow reader skips
    the releases it had no time for, never receives one older than it already has).

    Once ``attach``-ed to the server's ``send``, the watcher writes its own events, in the
    caller's loop pass (the hub's fan-out, the heartbeat): each send is stepped inline, which
    for a socket with room in its buffer completes at once, so a release wakes no task per
    watcher. A send that has to wait (the client reads slowly) is resumed by its future's
    callback, and newer events queue behind it, newest only. Unattached, ``next`` hands the
    events out one by one instead.
    """

    __slots__ = (
        "_config",
        "_final",
        "_ping",
        "_send",
        "_sending",
        "_waiter",
        "address",
        "app_id",
        "header",
        "release",
        "token_id",
    )

    def __init__(
        self, app_id: str, token_id: str, header: str | None, release: int, address: str
    ) -> None:
        self.app_id = app_id
        self.token_id = token_id
        #: The credentials and client address the stream was opened with, to check again.
        self.header = header
        self.address = address
        #: The newest release handed to this stream (sent or waiting to be).
        self.release = release
        self._config: bytes | None = None
        self._ping = False
        self._final: bytes | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._send: Send | None = None
        #: A send that had to wait (its iterator, resumed when it may go on).
        self._sending: Generator[Any, None, None] | None = None

    def offer(self, release: int, event: bytes) -> None:
        """Queue ``event`` (release ``release``) in place of any older one not yet sent."""
        if release > self.release and self._final is None:
            self.release = release
            self._config = event
            self._flush() if self._send is not None else self._wake()

    def ping(self) -> None:
        """Queue a heartbeat unless something else is about to be sent."""
        if self._config is None and self._final is None:
            self._ping = True
            self._flush() if self._send is not None else self._wake()

    def finish(self, last: bytes = b"") -> None:
        """End the stream after ``last`` (nothing more is sent after it)."""
        if self._final is None:
            self._final = last
            self._config = None
            self._ping = False
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> bytes | None:
        """What to send next; None once the stream is over (for an unattached watcher)."""
        while True:
            if self._final is not None:
                return None
            if self._config is not None or self._ping:
                chunk = self._config or PING
                self._config, self._ping = None, False
                return chunk
            await self._wait()

    async def _wait(self) -> None:
        # A bare future per wait: cheaper than an asyncio.Event for the one waiter there is.
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def last(self) -> bytes:
        """The final bytes given to ``finish`` (empty if none)."""
        return self._final or b""

    # ---------------------------------------------------------- writing itself

    def attach(self, send: Send) -> None:
        """From now on write events with ``send`` (the response has started); what is queued
        goes at once."""
        self._send = send
        self._flush()

    async def ended(self) -> None:
        """Return once the stream is over and no send of it is under way."""
        while self._final is None or self._sending is not None:
            await self._wait()

    def detach(self) -> None:
        """Stop writing (the stream's handler is leaving); a waiting send is abandoned."""
        self._send = None
        sending, self._sending = self._sending, None
        if sending is not None:
            sending.close()

    def _flush(self) -> None:
        send = self._send
        if send is None or self._sending is not None:
            return  # a send under way flushes what is newest when it is done
        while self._final is None and (self._config is not None or self._ping):
            chunk = self._config or PING
            self._config, self._ping = None, False
            message = {"type": "http.response.body", "body": chunk, "more_body": True}
            if not self._step(send(message).__await__()):
                return

    def _step(self, sending: Generator[Any, None, None]) -> bool:
        """Run the send ``sending`` until it is done (True) or has to wait (False)."""
        try:
            waits_for = sending.send(None)
        except StopIteration:
            self._sending = None
            return True
        except Exception:  # the connection is gone: the same as a disconnect
            self._sending = None
            self.finish()
            return False
        self._sending = sending
        if asyncio.isfuture(waits_for):
            waits_for._asyncio_future_blocking = False  # what a task does with what it awaits
            waits_for.add_done_callback(self._resume)
        else:  # a bare yield (``sleep(0)``): go on in the next loop pass
            asyncio.get_running_loop().call_soon(self._resume, None)
        return False

    def _resume(self, _done: object) -> None:
        sending = self._sending
        if sending is None:
            return  # abandoned by ``detach``
        if self._step(sending):
            self._flush()
        if self._sending is None and self._final is not None:
            self._wake()  # the handler waits in ``ended`` to send the last bytes
