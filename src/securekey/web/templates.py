"""The dashboard's Jinja2 environment: the templates shipped in the package, autoescaped, and
the filters they use to show times, durations and URL path segments.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import jinja2

__all__ = ["TEMPLATES", "environment"]

#: Where the page templates live (shipped with the package).
TEMPLATES = Path(__file__).parent / "templates"


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(value: timedelta | float) -> str:
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    if seconds <= 0:
        return "now"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:3])


def environment() -> jinja2.Environment:
    """A fresh environment over ``TEMPLATES``: strict about missing values, always escaping."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = _iso
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.filters["seg"] = lambda text: quote(str(text), safe="")
    return env
