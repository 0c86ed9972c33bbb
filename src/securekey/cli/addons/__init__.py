"""``addons``, ``addons:create``, ``:info``, ``:attach``, ``:detach``, ``:destroy``, ``:rotate``,
``:keys``: the seed's add-on commands and securekey's own rotate-now and key history."""

from __future__ import annotations

import typer

from securekey.cli.addons.common import parse_config
from securekey.cli.addons.listing import addons_info, addons_keys, addons_list
from securekey.cli.addons.rotate import addons_rotate
from securekey.cli.addons.verbs import addons_attach, addons_create, addons_destroy, addons_detach
from securekey.cli.context import add_commands

__all__ = ["parse_config", "register"]


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    add_commands(
        app,
        [
            ("addons", addons_list),
            ("addons:create", addons_create),
            ("addons:info", addons_info),
            ("addons:attach", addons_attach),
            ("addons:detach", addons_detach),
            ("addons:destroy", addons_destroy),
            ("addons:remove", addons_destroy),
            ("addons:rotate", addons_rotate),
            ("addons:keys", addons_keys),
        ],
    )
