"""Plans say how often an add-on rotates: daily, weekly, fortnightly, monthly, or a custom period.

``securekey:fortnightly`` is the seed's plan; operators may give a custom period such as ``10s``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from securekey.exceptions import ValidationError

__all__ = ["MIN_PERIOD", "PLANS", "SERVICE", "Plan", "parse_period", "parse_plan"]

SERVICE = "securekey"
MIN_PERIOD = timedelta(seconds=1)
_MAX_PERIOD = timedelta(days=3650)

#: Plan name (without the service prefix) to rotation period, as the original add-on had.
PLANS: dict[str, timedelta] = {
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "fortnightly": timedelta(days=14),
    "monthly": timedelta(days=28),
}

_PERIOD = re.compile(
    r"(\d{1,9})\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan: its short name (``fortnightly``) and the period between rotations."""

    name: str
    period: timedelta

    @property
    def full_name(self) -> str:
        """The name the Heroku API shows, e.g. ``securekey:fortnightly``."""
        return f"{SERVICE}:{self.name}"


def parse_plan(value: object) -> Plan:
    """Parse ``securekey:fortnightly`` (or bare ``fortnightly``) into a ``Plan``."""
    if not isinstance(value, str) or "\x00" in value:
        raise ValidationError("plan", "plan must be a string such as securekey:fortnightly.")
    service, sep, name = value.partition(":")
    if not sep:
        service, name = SERVICE, value
    if service != SERVICE or name not in PLANS:
        known = ", ".join(f"{SERVICE}:{p}" for p in PLANS)
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ValidationError("plan", f"Unknown plan {shown!r}. Plans: {known}.")
    return Plan(name, PLANS[name])


def parse_period(value: object) -> timedelta:
    """Parse a custom period: seconds as a number, or ``10s``, ``5m``, ``2h``, ``3d``, ``1w``."""
    if isinstance(value, bool):
        raise ValidationError("period", "period must be a duration such as 10s, 5m, 2h or 3d.")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _PERIOD.fullmatch(value.strip().lower())):
        seconds = float(int(m.group(1)) * _UNIT_SECONDS[m.group(2)[0]])
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 10:
        seconds = float(int(value.strip()))
    else:
        raise ValidationError("period", "period must be a duration such as 10s, 5m, 2h or 3d.")
    if seconds != seconds or seconds < MIN_PERIOD.total_seconds():
        raise ValidationError("period", "period must be at least 1 second.")
    if seconds > _MAX_PERIOD.total_seconds():
        raise ValidationError("period", "period must be at most 3650 days.")
    return timedelta(seconds=seconds)
