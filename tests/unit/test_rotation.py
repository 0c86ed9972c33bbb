"""The rotation rules and the key state machine, without storage."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from securekey.domain.keys import KeyPair
from securekey.domain.models import KeyState, check_transition
from securekey.domain.rotation import (
    describe_attach,
    describe_detach,
    describe_rotation,
    describe_set,
    describe_unset,
    is_due,
    next_rotation_at,
    rotate_pair,
)
from securekey.exceptions import RefusedError

ALLOWED = {
    (KeyState.LATEST, KeyState.PREVIOUS),
    (KeyState.LATEST, KeyState.RETIRED),
    (KeyState.LATEST, KeyState.REVOKED),
    (KeyState.PREVIOUS, KeyState.RETIRED),
    (KeyState.PREVIOUS, KeyState.REVOKED),
}


def test_normal_rotation_shifts_the_pair_by_one() -> None:
    """Normal: (L, P) becomes (new, L); L becomes PREVIOUS and P is retired."""
    pair = KeyPair.fresh()
    out = rotate_pair(pair, 7)
    assert out.pair.previous == pair.latest
    assert out.pair.latest not in (pair.latest, pair.previous)
    assert (out.latest_version, out.previous_version) == (8, 7)
    assert dict(out.transitions) == {7: KeyState.PREVIOUS, 6: KeyState.RETIRED}


def test_emergency_rotation_replaces_both_keys() -> None:
    """Emergency: both old keys are revoked and two new, distinct keys replace them."""
    pair = KeyPair.fresh()
    out = rotate_pair(pair, 2, emergency=True)
    old = {pair.latest.hex, pair.previous.hex}
    assert out.pair.latest.hex not in old
    assert out.pair.previous.hex not in old
    assert out.pair.latest != out.pair.previous
    assert (out.latest_version, out.previous_version) == (4, 3)
    assert dict(out.transitions) == {2: KeyState.REVOKED, 1: KeyState.REVOKED}


def test_rotations_never_repeat_keys() -> None:
    """A chain of rotations keeps introducing keys never seen before."""
    pair, version, seen = KeyPair.fresh(), 2, set()
    seen |= {pair.latest.hex, pair.previous.hex}
    for emergency in [False, True, False, False, True] * 4:
        out = rotate_pair(pair, version, emergency=emergency)
        fresh = {out.pair.latest.hex} | ({out.pair.previous.hex} if emergency else set())
        assert not fresh & seen
        seen |= fresh
        pair, version = out.pair, out.latest_version


@pytest.mark.parametrize(
    ("old", "new"), list(itertools.product(KeyState, KeyState)), ids=lambda s: s.value
)
def test_key_state_transitions_are_guarded(old: KeyState, new: KeyState) -> None:
    """Only LATEST->PREVIOUS/RETIRED/REVOKED and PREVIOUS->RETIRED/REVOKED are allowed."""
    if (old, new) in ALLOWED:
        check_transition(old, new)
    else:
        with pytest.raises(RefusedError, match=f"from {old.value} to {new.value}"):
            check_transition(old, new)


def test_retired_and_revoked_keys_never_come_back() -> None:
    """A retired or revoked key can never become LATEST or PREVIOUS again."""
    for dead in (KeyState.RETIRED, KeyState.REVOKED):
        for alive in (KeyState.LATEST, KeyState.PREVIOUS):
            with pytest.raises(RefusedError):
                check_transition(dead, alive)


def test_next_rotation_is_one_period_after_now_even_after_downtime() -> None:
    """The next rotation is now + period, so a late rotation schedules from now (once)."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert next_rotation_at(now, timedelta(days=14)) == datetime(2026, 3, 15, tzinfo=UTC)
    assert is_due(now, now)
    assert is_due(now - timedelta(days=100), now)
    assert not is_due(now + timedelta(microseconds=1), now)


def test_release_descriptions_follow_heroku() -> None:
    """Release descriptions use Heroku's wording for attach, detach, update, set and unset."""
    addon = "securekey-solid-14332"
    assert describe_attach("SERVICE_ONE_SECURE", addon) == (
        "Attach SERVICE_ONE_SECURE (@ref:securekey-solid-14332)"
    )
    assert describe_detach("SECURE", addon) == "Detach SECURE (@ref:securekey-solid-14332)"
    assert describe_rotation("SECURE", addon) == "Update SECURE by securekey-solid-14332"
    assert describe_rotation("SECURE", addon, emergency=True).endswith("(emergency rotation)")
    assert describe_set(["BAR", "FOO"]) == "Set BAR, FOO config vars"
    assert describe_unset(["FOO"]) == "Remove FOO config vars"
