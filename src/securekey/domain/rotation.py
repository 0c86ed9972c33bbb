"""The rotation rules and the wording of releases, free of storage and time sources.

A rotation moves PREVIOUS to history, LATEST to PREVIOUS, and brings a new LATEST; an
emergency rotation revokes both and brings two new keys. Either way the next rotation is one
period after *now*: after downtime an add-on rotates once, never once per missed period,
because rotating twice would drop the PREVIOUS that consumers still hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from securekey.domain.keys import KeyPair, generate_key
from securekey.domain.models import KeyState, check_transition

__all__ = [
    "RotationOutcome",
    "describe_attach",
    "describe_detach",
    "describe_rotation",
    "describe_set",
    "describe_unset",
    "is_due",
    "next_rotation_at",
    "rotate_pair",
]


@dataclass(frozen=True, slots=True)
class RotationOutcome:
    """The new pair, its version numbers, and what happened to the old versions."""

    pair: KeyPair
    latest_version: int
    previous_version: int
    #: (old version number, new state) for each key leaving service or changing slot.
    transitions: tuple[tuple[int, KeyState], ...]


def rotate_pair(pair: KeyPair, latest_version: int, *, emergency: bool = False) -> RotationOutcome:
    """Rotate ``pair`` whose LATEST is version ``latest_version``.

    Normal: (L, P) becomes (new, L); P is retired. Emergency: both are revoked and
    (new, new') replaces them, so a leaked key stops working at once.
    """
    old_latest, old_previous = latest_version, latest_version - 1
    if emergency:
        moves = ((old_latest, KeyState.REVOKED), (old_previous, KeyState.REVOKED))
        check_transition(KeyState.LATEST, KeyState.REVOKED)
        check_transition(KeyState.PREVIOUS, KeyState.REVOKED)
        fresh = KeyPair.fresh()
        while pair.latest.hex in (fresh.latest.hex, fresh.previous.hex) or pair.previous.hex in (
            fresh.latest.hex,
            fresh.previous.hex,
        ):  # pragma: no cover - 2**-256
            fresh = KeyPair.fresh()
        return RotationOutcome(fresh, latest_version + 2, latest_version + 1, moves)
    check_transition(KeyState.LATEST, KeyState.PREVIOUS)
    check_transition(KeyState.PREVIOUS, KeyState.RETIRED)
    new = generate_key()
    while new.hex in (pair.latest.hex, pair.previous.hex):  # pragma: no cover - 2**-256
        new = generate_key()
    moves = ((old_latest, KeyState.PREVIOUS), (old_previous, KeyState.RETIRED))
    return RotationOutcome(pair.rotated(new), latest_version + 1, latest_version, moves)


def next_rotation_at(now: datetime, period: timedelta) -> datetime:
    """When an add-on rotated at ``now`` rotates next: one period later, never in the past."""
    return now + period


def is_due(next_at: datetime, now: datetime) -> bool:
    """A rotation is due once its time has come."""
    return next_at <= now


def describe_attach(attachment: str, addon: str) -> str:
    """Heroku's release description for an attachment."""
    return f"Attach {attachment} (@ref:{addon})"


def describe_detach(attachment: str, addon: str) -> str:
    """Heroku's release description for a detachment."""
    return f"Detach {attachment} (@ref:{addon})"


def describe_rotation(attachment: str, addon: str, *, emergency: bool = False) -> str:
    """Heroku's description of an add-on updating its config var (a rotation)."""
    text = f"Update {attachment} by {addon}"
    return f"{text} (emergency rotation)" if emergency else text


def describe_set(names: list[str]) -> str:
    """Heroku's description for ``config:set``."""
    return f"Set {', '.join(names)} config vars"


def describe_unset(names: list[str]) -> str:
    """Heroku's description for ``config:unset``."""
    return f"Remove {', '.join(names)} config vars"
