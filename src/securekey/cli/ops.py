"""Operations on the database itself: ``backup``, ``restore`` and ``master-key`` rotation.

These commands open the database directly (same settings as ``securekey server``), so they run
where the server runs, beside it while it serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from securekey.cli import offline
from securekey.cli.context import DatabaseUrlOption, DataDirOption, JsonOption, use
from securekey.cli.errors import CliError
from securekey.cli.master_key import master_key_app
from securekey.exceptions import ConfigurationError

__all__ = ["register"]


def backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The backup file to write (mode 0600).")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    jsonl: Annotated[
        bool,
        typer.Option("--jsonl", help="JSON lines even on SQLite (the format PostgreSQL uses)."),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Take an online, consistent backup; stored keys stay encrypted in it.

    SQLite: a SQLite file made with the online backup API. PostgreSQL: JSON lines read in one
    REPEATABLE READ transaction. Both restore into either backend. Keep the master key
    separately: the backup is useless without it, and it without the backup.

    \b
    Example:
      $ securekey backup /backups/securekey-$(date +%F).db --data-dir ./data
    """
    offline.server_parts()
    from securekey.store.backup import backup as take_backup

    cli = use(ctx)
    with offline.opened(offline.settings(cli, data_dir, database_url)) as engine:
        try:
            counts = take_backup(engine, file, jsonl=True if jsonl else None)
        except OSError as exc:
            raise CliError(f"Cannot write the backup {file}: {exc.strerror}.") from None
    offline.report(cli, json, file, counts, "Backed up {counts} to {file}.")


def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file made by `securekey backup`.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    json: JsonOption = False,
) -> None:
    """Restore a backup into an EMPTY database, with the master key it was taken under.

    Refuses a database that holds anything, and a master key that does not open the backup.

    \b
    Example:
      $ export SECUREKEY_MASTER_KEY_FILE=/safe/place/master.key
      $ securekey restore backup.db --data-dir ./new
      $ securekey restore backup.db --database-url postgresql://…/empty
    """
    offline.server_parts()
    from securekey.crypto import Cipher
    from securekey.store.backup import restore as load_backup

    cli = use(ctx)
    settings = offline.settings(cli, data_dir, database_url)
    if not file.is_file():
        raise CliError(f"No backup file at {file}.")
    try:
        master = settings.find_master_key()
    except ConfigurationError as exc:
        raise CliError(exc.message) from None
    if master is None:
        raise CliError(
            f"Restoring needs the backup's master key: put it in {settings.default_key_file} "
            "or set SECUREKEY_MASTER_KEY (or SECUREKEY_MASTER_KEY_FILE)."
        )
    with offline.opened(settings) as engine:
        counts = load_backup(file, engine, Cipher(master, settings.old_master_keys()))
    offline.report(cli, json, file, counts, "Restored {counts} from {file}.")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("backup")(backup)
    app.command("restore")(restore)
    app.add_typer(master_key_app)
