"""Server-sent events: the one incremental ``text/event-stream`` parser, for the SDK and tests.

It follows the WHATWG rules: CR, LF or CRLF line ends (also split across chunks), ``:``
comments, one optional space after the colon, multi-line ``data``, dispatch on a blank line,
``id`` persisting across events, ``retry`` in milliseconds.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event, or a comment line (``comment`` set, ``event`` and ``data`` empty)."""

    event: str
    data: str
    id: str | None
    comment: str | None = None


class SSEParser:
    """Feed it the stream's bytes as they arrive; it returns what each chunk completed."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None
        #: The last ``retry:`` hint, in milliseconds, or None before one.
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk``; return the events and comments it completed, in order."""
        text = self._decoder.decode(chunk)
        if self._pending_cr and text:
            self._pending_cr = False
            if text.startswith("\n"):
                text = text[1:]  # the LF of a CRLF split across chunks
        self._buffer += text
        out: list[SSEEvent] = []
        while (cut := _line_end(self._buffer)) is not None:
            line, end = cut
            if end == len(self._buffer) and self._buffer.endswith("\r"):
                self._pending_cr = True
            self._buffer = self._buffer[end:]
            item = self._line(line)
            if item is not None:
                out.append(item)
        return out

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return SSEEvent("", "", self._last_id, comment=line[1:].removeprefix(" "))
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, kind = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEEvent(kind or "message", "\n".join(data), self._last_id)


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
