"""A Server-Sent Events reader for end-to-end tests: the SDK's parser over an httpx stream.

The parsing is the SDK's (``securekey.client._sse``, where its spec tests live). Each event here
also carries the ``perf_counter`` instant its last byte arrived, so tests can measure push
latency against the moment an API call returned.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from securekey.client._sse import SSEParser

__all__ = ["SseEvent", "SseStream"]


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event (``comment`` set instead for a comment line)."""

    type: str
    data: str
    id: str | None
    received_at: float
    comment: str | None = None

    def json(self) -> Any:
        """The data field parsed as JSON."""
        return json.loads(self.data)


class SseStream:
    """An open event stream read in the calling thread; ``next_event`` blocks for the next one.

    The client's read timeout bounds every wait, so a missing event fails the test instead of
    hanging it.
    """

    def __init__(
        self,
        base_url: str,
        path: str,
        token: str,
        *,
        last_event_id: str | bytes | None = None,
        read_timeout: float = 5.0,
    ) -> None:
        headers = [
            (b"Authorization", f"Bearer {token}".encode()),
            (b"Accept", b"text/event-stream"),
        ]
        if last_event_id is not None:
            raw = last_event_id if isinstance(last_event_id, bytes) else last_event_id.encode()
            headers.append((b"Last-Event-ID", raw))
        self._client = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(10.0, read=read_timeout), trust_env=False
        )
        self._cm = self._client.stream("GET", path, headers=headers)
        self.response = self._cm.__enter__()
        self._chunks: Iterator[bytes] = self.response.iter_raw()
        self._parser = SSEParser()
        self._ready: deque[SseEvent] = deque()
        self.comments: list[SseEvent] = []

    def next_item(self) -> SseEvent:
        """The next event or comment, whichever comes first; EOFError when the stream ends."""
        while not self._ready:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise EOFError("the server ended the event stream")
            at = time.perf_counter()
            self._ready.extend(
                SseEvent(e.event, e.data, e.id, at, e.comment) for e in self._parser.feed(chunk)
            )
        return self._ready.popleft()

    def next_event(self) -> SseEvent:
        """The next dispatched event; comments (pings, resume notes) are kept in ``comments``."""
        while True:
            item = self.next_item()
            if item.comment is None:
                return item
            self.comments.append(item)

    def close(self) -> None:
        """Close the stream and its client."""
        try:
            self._cm.__exit__(None, None, None)
        finally:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
