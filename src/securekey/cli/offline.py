"""What the commands that open the database directly share (``backup``, ``restore``,
``master-key``): the server extra check, the settings, an engine that is always disposed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from securekey.cli.context import Cli, server_module
from securekey.cli.errors import CliError
from securekey.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from securekey.config import Settings

__all__ = ["opened", "report", "server_parts", "settings"]


def server_parts() -> None:
    """Refuse with a clear line when the server extra (SQLAlchemy) is not installed."""
    server_module("sqlalchemy")


def settings(cli: Cli, data_dir: Path | None, database_url: str | None) -> Settings:
    """The server's settings with the command's overrides; files written from here are private."""
    from securekey.config import Settings

    os.umask(0o077)  # everything written here (databases, keys, backups) is private
    return Settings.from_env(cli.env).with_overrides(data_dir=data_dir, database_url=database_url)


@contextmanager
def opened(config: Settings) -> Iterator[Engine]:
    """The migrated database engine, disposed afterwards; settings that cannot work are one line."""
    from securekey.runtime import open_database

    try:
        engine = open_database(config)[1]
    except ConfigurationError as exc:
        raise CliError(exc.message) from None
    try:
        yield engine
    except ConfigurationError as exc:
        raise CliError(exc.message) from None
    finally:
        engine.dispose()


def report(cli: Cli, json: bool, file: Path, counts: dict[str, int], done: str) -> None:
    """What a backup or restore moved: JSON, or ``done`` with ``{counts}`` and ``{file}`` filled."""
    if json:
        cli.out.json({"file": str(file), "counts": counts})
        return
    keep = ("apps", "addons", "attachments", "releases", "tokens", "webhooks")
    line = ", ".join(f"{counts.get(name, 0)} {name}" for name in keep)
    cli.out.tell(done.format(counts=line, file=file))
