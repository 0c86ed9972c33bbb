"""The pure domain: names, plans, keys, entities and rotation rules. No I/O of any kind."""

from securekey.domain.clock import Clock, FixedClock, SystemClock
from securekey.domain.keys import Key, KeyPair, fingerprint, generate_key, parse_pair
from securekey.domain.models import (
    Addon,
    App,
    Attachment,
    AuditEvent,
    KeyState,
    KeyVersion,
    Release,
)
from securekey.domain.plans import Plan, parse_period, parse_plan

__all__ = [
    "Addon",
    "App",
    "Attachment",
    "AuditEvent",
    "Clock",
    "FixedClock",
    "Key",
    "KeyPair",
    "KeyState",
    "KeyVersion",
    "Plan",
    "Release",
    "SystemClock",
    "fingerprint",
    "generate_key",
    "parse_pair",
    "parse_period",
    "parse_plan",
]
