"""Heroku's ``Range`` header for lists: ``version ..; max=15, order=desc`` and its kin.

Answers carry ``Content-Range`` and, when more remain, ``Next-Range`` with status 206.
Parsing is lenient about spacing and order of options; garbage is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from securekey.api.errors import ApiError

__all__ = [
    "DEFAULT_MAX",
    "RangeSpec",
    "fetched_page",
    "format_next",
    "page",
    "parse_range",
    "whole_number",
]

DEFAULT_MAX = 200
LIMIT_MAX = 1000
_HEAD = re.compile(r"^\s*([a-z_]+)\s*(.*)$")
_BOUNDS = re.compile(r"^(\]?)([^.;]*)\.\.(\[?)([^;]*)$")


@dataclass(frozen=True)
class RangeSpec:
    """A parsed Range: the field, bounds (exclusive flags), page size and order."""

    field: str
    start: str | None = None
    start_exclusive: bool = False
    end: str | None = None
    end_exclusive: bool = False
    max: int = DEFAULT_MAX
    order: Literal["asc", "desc"] = "asc"


def parse_range(header: str | None, fields: Sequence[str], default: str) -> RangeSpec:
    """Parse a Range header for a list sortable by ``fields``."""
    if header is None or not header.strip():
        return RangeSpec(default)
    if len(header) > 500 or "\x00" in header:
        raise ApiError(400, "invalid_range", "The Range header is too long or malformed.")
    head = _HEAD.match(header)
    if head is None or head.group(1) not in fields:
        raise ApiError(400, "invalid_range", f"Range must start with one of: {', '.join(fields)}.")
    field, rest = head.group(1), head.group(2)
    bounds_text, _, options_text = rest.partition(";")
    start = end = None
    start_ex = end_ex = False
    bounds_text = bounds_text.strip()
    if bounds_text:
        bounds = _BOUNDS.match(bounds_text.replace(" ", ""))
        if bounds is None:
            raise ApiError(400, "invalid_range", "Range bounds must look like a..b.")
        start_ex, end_ex = bool(bounds.group(1)), bool(bounds.group(3))
        start = bounds.group(2) or None
        end = bounds.group(4) or None
    size, order = DEFAULT_MAX, "asc"
    for option in options_text.replace(";", ",").split(","):
        key, sep, value = option.strip().partition("=")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip().lower()
        if key == "max":
            if not _digits(value) or len(value) > 6 or not 1 <= int(value) <= LIMIT_MAX:
                raise ApiError(400, "invalid_range", f"max must be 1 to {LIMIT_MAX}.")
            size = int(value)
        elif key == "order":
            if value not in ("asc", "desc"):
                raise ApiError(400, "invalid_range", "order must be asc or desc.")
            order = value
    return RangeSpec(field, start, start_ex, end, end_ex, size, order)  # type: ignore[arg-type]


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts ``²``, which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def whole_number(text: str | None, max_digits: int, message: str) -> int | None:
    """A numeric range bound (``None`` for an open end); anything else is a 400 ``message``."""
    if text is None:
        return None
    if not _digits(text) or len(text) > max_digits:
        raise ApiError(400, "invalid_range", message)
    return int(text)


_Row = TypeVar("_Row")


def fetched_page(
    rows: Sequence[_Row], spec: RangeSpec, number: Callable[[_Row], int]
) -> tuple[list[_Row], dict[str, str], bool]:
    """A page of ``rows`` read one past ``spec.max`` (so more remain when it got them), numbered
    by ``number``; returns (page, headers, partial) as ``page`` does."""
    chunk = list(rows[: spec.max])
    headers = {"Accept-Ranges": spec.field}
    if chunk:
        headers["Content-Range"] = f"{spec.field} {number(chunk[0])}..{number(chunk[-1])}"
    partial = len(rows) > spec.max
    if partial:
        headers["Next-Range"] = format_next(spec, str(number(chunk[-1])))
    return chunk, headers, partial


def format_next(spec: RangeSpec, last: str) -> str:
    """The Next-Range continuing after ``last``."""
    bounds = f"]{last}.." if spec.order == "asc" else f"..[{last}"
    return f"{spec.field} {bounds}; max={spec.max}, order={spec.order}"


def page(
    items: Sequence[dict[str, Any]],
    spec: RangeSpec,
    key: Callable[[dict[str, Any]], Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str], bool]:
    """Slice ``items`` by ``spec``; returns (page, headers, partial)."""

    def keyof(item: dict[str, Any]) -> Any:
        return key(item) if key else item.get(spec.field)

    def conv(text: str) -> Any:
        sample = keyof(items[0]) if items else ""
        if isinstance(sample, int):
            return int(text) if _digits(text.removeprefix("-")) and len(text) < 20 else None
        return text

    selected = list(items)
    if spec.start is not None and (lo := conv(spec.start)) is not None:
        selected = [
            i for i in selected if (keyof(i) > lo if spec.start_exclusive else keyof(i) >= lo)
        ]
    if spec.end is not None and (hi := conv(spec.end)) is not None:
        selected = [
            i for i in selected if (keyof(i) < hi if spec.end_exclusive else keyof(i) <= hi)
        ]
    selected.sort(key=keyof, reverse=spec.order == "desc")
    chunk = selected[: spec.max]
    headers: dict[str, str] = {"Accept-Ranges": spec.field}
    if chunk:
        headers["Content-Range"] = f"{spec.field} {keyof(chunk[0])}..{keyof(chunk[-1])}"
    partial = len(selected) > len(chunk)
    if partial:
        headers["Next-Range"] = format_next(spec, str(keyof(chunk[-1])))
    return chunk, headers, partial
