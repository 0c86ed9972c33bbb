"""The SDK's one event-stream parser follows the WHATWG rules, however the bytes are split."""

from __future__ import annotations

import pytest

from securekey.client._sse import SSEParser

RAW = (
    b': hello\r\nid: 7\r\nevent: config\r\ndata: {"A":\r\ndata:1}\r\n\r\n'
    b"data: x\rid\r\r"
    b"retry: 3000\nevent: config\ndata: \xc3\xa9\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 5, len(RAW)])
def test_the_parser_follows_the_event_stream_rules(size: int) -> None:
    """CRLF, CR and LF line ends, chunks split anywhere (inside a CRLF or a UTF-8 character),
    comments, multi-line data, ids persisting across events and the retry hint all parse."""
    parser = SSEParser()
    items = []
    for start in range(0, len(RAW), size):
        items += parser.feed(RAW[start : start + size])
    assert [(i.comment, i.event, i.data, i.id) for i in items] == [
        ("hello", "", "", None),
        (None, "config", '{"A":\n1}', "7"),
        (None, "message", "x", ""),
        (None, "config", "é", ""),
    ]
    assert parser.retry == 3000


def test_an_event_without_data_is_not_dispatched() -> None:
    """A blank line after only ``event:`` (or nothing) dispatches nothing and resets the type."""
    parser = SSEParser()
    assert parser.feed(b"event: config\n\n\n") == []
    [event] = parser.feed(b"data: x\n\n")
    assert (event.event, event.data) == ("message", "x")


def test_odd_fields_are_ignored_as_the_spec_says() -> None:
    """Unknown fields, a non-numeric retry and an id holding NUL change nothing."""
    parser = SSEParser()
    events = parser.feed(b"id: 1\nbogus: y\nretry: soon\nid: a\x00b\ndata: z\n\n")
    assert [(e.id, e.data) for e in events] == [("1", "z")]
    assert parser.retry is None


def test_an_incomplete_event_waits_for_its_blank_line() -> None:
    """Nothing is dispatched until the blank line arrives, even across many chunks."""
    parser = SSEParser()
    assert parser.feed(b"id: 3\nevent: config\ndata: {}") == []
    assert parser.feed(b"\n") == []
    [event] = parser.feed(b"\r\n")
    assert (event.id, event.event, event.data) == ("3", "config", "{}")
