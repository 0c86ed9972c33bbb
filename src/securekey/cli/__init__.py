"""The ``securekey`` command line: a client of the HTTP API with the Heroku CLI's words."""

from __future__ import annotations

# Not ``typing.TYPE_CHECKING``: importing typing is a tenth of the fast path's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from securekey.cli.entry import build_app, main

__all__ = ["build_app", "main"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the fast path (securekey.cli.fast) runs without typer.
    if name in __all__:
        from securekey.cli import entry

        return getattr(entry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
