"""Terminal text without rich: escaping server-supplied text, masking key pairs, whether to use
colour, and streams that never fail on a character. Light, so the fast path can use it too."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping

# Not ``typing.TYPE_CHECKING``: importing typing is a tenth of the fast path's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["GLYPH", "MARK", "mask_keys", "robust", "safe", "wants_color"]

#: Heroku's app glyph, printed before every app name.
GLYPH = "⬢"
#: Heroku's prefix for warnings and errors.
MARK = " ▸    "
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_PAIR = re.compile(r"[0-9A-F]{64}(?:,[0-9A-F]{64})?")


def safe(text: str) -> str:
    """Server-supplied text with control characters escaped (no terminal escape injection)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def mask_keys(value: str) -> str:
    """A key pair ``LATEST,PREVIOUS`` as ``3F6D…FDEE,CF8B…6EBA``; any other value unchanged."""
    if not _PAIR.fullmatch(value):
        return value
    return ",".join(f"{key[:4]}…{key[-4:]}" for key in value.split(","))


def wants_color(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Colour only for a terminal, and never under ``NO_COLOR`` or ``TERM=dumb``."""
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def robust(stream: object) -> None:
    """Make ``stream`` replace what it cannot encode rather than fail."""
    # A terminal that cannot show ⬢ gets a replacement character, not a UnicodeEncodeError.
    encoding = str(getattr(stream, "encoding", "") or "").lower().replace("-", "")
    if encoding != "utf8" and isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors="replace")
