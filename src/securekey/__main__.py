"""``securekey`` command entry point (``python -m securekey``); the commands are in ``cli``."""

from __future__ import annotations

from securekey.cli.entry import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
