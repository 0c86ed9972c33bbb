"""A Server-Sent Events reader for end-to-end tests: a spec-following parser over an httpx stream.

The parser follows the WHATWG event-stream rules (CR, LF or CRLF line ends, ``:`` comments,
one optional space after the colon, multi-line ``data``, dispatch on a blank line, ``id``
persisting across events). Each event carries the ``perf_counter`` instant its last byte arrived,
so tests can measure push latency against the moment an API call returned.
"""

from __future__ import annotations

import codecs
import json
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

__all__ = ["SseEvent", "SseParser", "SseStream"]


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


class SseParser:
    """Incremental event-stream parser: feed bytes, take dispatched events and comments."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""
        self._pending_cr = False
        self._data: list[str] = []
        self._type = ""
        self._last_id: str | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes, at: float) -> list[SseEvent]:
        """Parse ``chunk`` (received at ``at``); return what it completed, in order."""
        text = self._decoder.decode(chunk)
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across chunks
        self._pending_cr = False
        self._buffer += text
        out: list[SseEvent] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                break
            line, end = cut
            if self._buffer[len(line) :].startswith("\r") and end == len(self._buffer):
                self._pending_cr = True
            self._buffer = self._buffer[end:]
            event = self._line(line, at)
            if event is not None:
                out.append(event)
        return out

    def _line(self, line: str, at: float) -> SseEvent | None:
        if line == "":
            return self._dispatch(at)
        if line.startswith(":"):
            return SseEvent("", "", self._last_id, at, comment=line[1:].removeprefix(" "))
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id" and "\x00" not in value:
            self._last_id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self, at: float) -> SseEvent | None:
        data, kind = self._data, self._type
        self._data, self._type = [], ""
        if not data:
            return None
        return SseEvent(kind or "message", "\n".join(data), self._last_id, at)


def _line_end(buffer: str) -> tuple[str, int] | None:
    """The first complete line of ``buffer`` and where the next one starts."""
    for i, char in enumerate(buffer):
        if char == "\n":
            return buffer[:i], i + 1
        if char == "\r":
            if i + 1 < len(buffer):
                return buffer[:i], i + 2 if buffer[i + 1] == "\n" else i + 1
            return buffer[:i], i + 1
    return None


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
        self._parser = SseParser()
        self._ready: deque[SseEvent] = deque()
        self.comments: list[SseEvent] = []

    def next_item(self) -> SseEvent:
        """The next event or comment, whichever comes first; EOFError when the stream ends."""
        while not self._ready:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise EOFError("the server ended the event stream")
            self._ready.extend(self._parser.feed(chunk, time.perf_counter()))
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
