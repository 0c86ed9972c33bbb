"""Sizes for the fault tests: small enough for CI by default, large under ``make soak``.

``SECUREKEY_SOAK=1`` (set by ``make soak``) selects the long versions.
"""

from __future__ import annotations

import os

__all__ = ["SOAK", "scaled"]

SOAK = os.environ.get("SECUREKEY_SOAK", "") not in ("", "0")


def scaled(ci: int, soak: int) -> int:
    """``soak`` under ``make soak``, otherwise ``ci``."""
    return soak if SOAK else ci
