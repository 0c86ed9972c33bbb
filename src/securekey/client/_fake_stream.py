"""The fake server's event streams: one subscription per open stream, for both its fronts.

``SubscriptionStream`` is the body the mock transport returns; ``serve_stream`` the ASGI one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx

from securekey.client._middleware import Receive, Send

__all__ = ["Subscription", "SubscriptionStream", "serve_stream"]


@dataclass(eq=False)
class Subscription:
    """One open stream: wakes when its app changes, the server shuts down, or it is closed."""

    app: str
    sent: int | None
    loop: asyncio.AbstractEventLoop
    #: The server's side: the app's (release, vars) or None once it is gone, a counter of
    #: what was sent, the seconds between pings, and what to call when the stream ends.
    state: Callable[[str], tuple[int, dict[str, str]] | None]
    count: Callable[[str], None]
    ping_interval: float
    ended: Callable[[Subscription], None]
    event: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    ping_due: bool = False
    #: Sent once before the stream ends (the real server's ``event: shutdown``), if set.
    farewell: bytes | None = None

    def _ping(self) -> None:
        self.ping_due = True
        self.event.set()

    def wake(self) -> None:
        """Make the stream look at its app again (from any thread)."""
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # its loop is gone: nothing left to wake
            self.closed = True

    def close(self) -> None:
        """End the stream (after its farewell, if one is set)."""
        self.closed = True
        self.wake()

    async def next_chunk(self) -> bytes | None:
        """The next bytes to send (an event or a ping), or None when the stream ends."""
        while True:
            if self.closed:
                farewell, self.farewell = self.farewell, None
                return farewell
            state = self.state(self.app)
            if state is None:
                return None
            release, values = state
            if release != self.sent:
                self.sent = release
                self.count("events")
                data = json.dumps(values, separators=(",", ":"))
                return f"id: {release}\nevent: config\ndata: {data}\n\n".encode()
            if self.ping_due:
                self.ping_due = False
                return b": ping\n\n"
            # A timer rather than asyncio.wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as the event fires, and the stream would never end.
            timer = self.loop.call_later(self.ping_interval, self._ping)
            try:
                await self.event.wait()
            finally:
                timer.cancel()
            self.event.clear()


class SubscriptionStream(httpx.AsyncByteStream):
    """An event stream body for the mock transport."""

    def __init__(self, subscription: Subscription) -> None:
        self._sub = subscription

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._sub.next_chunk()) is not None:
            yield chunk

    async def aclose(self) -> None:
        self._sub.ended(self._sub)


async def serve_stream(sub: Subscription, receive: Receive, send: Send) -> None:
    """Send ``sub``'s chunks as an ASGI event-stream response until it or the client ends."""

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        sub.close()

    watcher = asyncio.ensure_future(watch_disconnect())
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        while (chunk := await sub.next_chunk()) is not None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if not watcher.done():
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:  # pragma: no cover - the client vanished mid-send
        pass
    finally:
        watcher.cancel()
        sub.ended(sub)
