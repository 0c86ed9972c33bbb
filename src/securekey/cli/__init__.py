"""The ``securekey`` command line: a client of the HTTP API with the Heroku CLI's words."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from securekey.cli.entry import build_app, main

__all__ = ["build_app", "main"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the fast path (securekey.cli.fast) runs without typer.
    if name in __all__:
        from securekey.cli import entry

        return getattr(entry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
