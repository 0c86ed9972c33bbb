"""Plans and custom rotation periods."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from securekey.domain.plans import MIN_PERIOD, PLANS, parse_period, parse_plan
from securekey.exceptions import ValidationError


@pytest.mark.parametrize(
    ("name", "days"), [("daily", 1), ("weekly", 7), ("fortnightly", 14), ("monthly", 28)]
)
def test_every_plan_has_the_original_add_ons_period(name: str, days: int) -> None:
    """daily/weekly/fortnightly/monthly rotate every 1/7/14/28 days, with or without the prefix."""
    for text in (f"securekey:{name}", name):
        plan = parse_plan(text)
        assert plan.name == name
        assert plan.period == timedelta(days=days)
        assert plan.full_name == f"securekey:{name}"


def test_there_are_exactly_four_plans() -> None:
    """The plan table holds the four plans of the original add-on and nothing else."""
    assert set(PLANS) == {"daily", "weekly", "fortnightly", "monthly"}


@pytest.mark.parametrize(
    "text",
    [
        "securekey:hourly",
        "redis:fortnightly",
        "securekey:",
        ":daily",
        "",
        "SECUREKEY:DAILY",
        "securekey:daily:extra",
        "securekey:daily\x00",
        "fortnightly ",
    ],
)
def test_unknown_plans_are_refused_and_list_the_known_ones(text: str) -> None:
    """An unknown plan is a ValidationError on ``plan`` that lists the valid plans."""
    with pytest.raises(ValidationError) as info:
        parse_plan(text)
    assert info.value.field == "plan"
    if "\x00" not in text:
        assert "securekey:fortnightly" in info.value.message


@pytest.mark.parametrize("value", [None, 14, b"securekey:daily", ["daily"]])
def test_non_string_plans_are_refused(value: object) -> None:
    """A plan that is not a string is a ValidationError, not a crash."""
    with pytest.raises(ValidationError):
        parse_plan(value)


def test_a_very_long_plan_is_shortened_in_the_message() -> None:
    """The error for an absurd plan does not echo all of it."""
    with pytest.raises(ValidationError) as info:
        parse_plan("z" * 1000)
    assert "z" * 41 not in info.value.message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10s", 10),
        ("5m", 300),
        ("5min", 300),
        ("2 minutes", 120),
        ("2h", 7200),
        ("3d", 3 * 86400),
        ("1w", 7 * 86400),
        ("10S", 10),
        (" 10s ", 10),
        ("10", 10),
        (10, 10),
        (1, 1),
        (1.0, 1),
        (2.5, 2.5),
        ("1s", 1),
        (3650 * 86400, 3650 * 86400),
    ],
)
def test_custom_periods_are_parsed(value: object, seconds: float) -> None:
    """Custom periods accept a number of seconds or a count with a unit (s, m, h, d, w)."""
    assert parse_period(value) == timedelta(seconds=seconds)


def test_the_minimum_period_is_one_second() -> None:
    """One second is the shortest period; anything shorter is refused."""
    assert MIN_PERIOD.total_seconds() == 1
    assert parse_period(1) == MIN_PERIOD
    for short in (0.999, 0.5, 0, -1, "0s", "0"):
        with pytest.raises(ValidationError, match="at least 1 second"):
            parse_period(short)


@pytest.mark.parametrize(
    "value",
    [
        "soon",
        "",
        "10 parsecs",
        "5ms",
        "1.5s",
        "-5s",
        "s",
        "10s10s",
        "1e3",
        "10\x00s",
        True,
        False,
        None,
        b"10s",
        [10],
        math.nan,
        math.inf,
        3650 * 86400 + 1,
        "99999999999",
    ],
)
def test_junk_periods_are_refused(value: object) -> None:
    """Anything that is not a sane duration between 1 s and 10 years is a ValidationError."""
    with pytest.raises(ValidationError) as info:
        parse_period(value)
    assert info.value.field == "period"
