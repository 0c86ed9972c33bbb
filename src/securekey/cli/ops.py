"""Operations on the database itself: ``backup``, ``restore`` and ``master-key`` rotation.

These commands open the database directly (same settings as ``securekey server``), so they run
where the server runs, beside it while it serves.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from securekey.cli.context import Cli, JsonOption, use
from securekey.cli.errors import CliError
from securekey.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from securekey.config import Settings
    from securekey.crypto import MasterKey

__all__ = ["register"]

#: Seconds a rotation waits after announcing the new key, so every running server (which looks
#: every ``KEY_REFRESH_SECONDS``) writes under it before the re-encryption starts.
ANNOUNCE_GRACE = 5.0
NEW_KEY_FILE = "master.key.new"

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Directory of the embedded SQLite database (./data)."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="PostgreSQL URL instead of the embedded database."),
]

master_key_app = typer.Typer(
    name="master-key",
    help="Generate, inspect and rotate the master key that encrypts everything stored.\n\n"
    "\b\nExample:\n  $ securekey master-key status\n"
    "  $ securekey master-key rotate --new-key-file new.key",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _server_parts() -> None:
    try:
        import sqlalchemy  # noqa: F401
    except ModuleNotFoundError as exc:
        raise CliError(
            f"This command needs {exc.name}, which is not installed: "
            "pip install 'securekey[server]'."
        ) from None


def _settings(cli: Cli, data_dir: Path | None, database_url: str | None) -> Settings:
    from securekey.config import Settings

    os.umask(0o077)  # everything written here (databases, keys, backups) is private
    return Settings.from_env(cli.env).with_overrides(data_dir=data_dir, database_url=database_url)


def _open(settings: Settings) -> Engine:
    from securekey.runtime import open_database

    try:
        return open_database(settings)[1]
    except ConfigurationError as exc:
        raise CliError(exc.message) from None


def _counts_line(counts: dict[str, int]) -> str:
    keep = ("apps", "addons", "attachments", "releases", "tokens", "webhooks")
    return ", ".join(f"{counts.get(name, 0)} {name}" for name in keep)


# ----------------------------------------------------------------------------- backup/restore


def backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The backup file to write (mode 0600).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
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
    _server_parts()
    from securekey.store.backup import backup as take_backup

    cli = use(ctx)
    engine = _open(_settings(cli, data_dir, database_url))
    try:
        counts = take_backup(engine, file, jsonl=True if jsonl else None)
    except ConfigurationError as exc:
        raise CliError(exc.message) from None
    except OSError as exc:
        raise CliError(f"Cannot write the backup {file}: {exc.strerror}.") from None
    finally:
        engine.dispose()
    if json:
        cli.out.json({"file": str(file), "counts": counts})
        return
    cli.out.tell(f"Backed up {_counts_line(counts)} to {file}.")


def restore(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A file made by `securekey backup`.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
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
    _server_parts()
    from securekey.crypto import Cipher
    from securekey.store.backup import restore as load_backup

    cli = use(ctx)
    settings = _settings(cli, data_dir, database_url)
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
    engine = _open(settings)
    try:
        counts = load_backup(file, engine, Cipher(master, settings.old_master_keys()))
    except ConfigurationError as exc:
        raise CliError(exc.message) from None
    finally:
        engine.dispose()
    if json:
        cli.out.json({"file": str(file), "counts": counts})
        return
    cli.out.tell(f"Restored {_counts_line(counts)} from {file}.")


# ---------------------------------------------------------------------------------- master-key


@master_key_app.command("generate")
def generate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Where to write the new key (mode 0600).")],
) -> None:
    """Write a new random master key to FILE (refuses to overwrite) and print its id.

    \b
    Example:
      $ securekey master-key generate new.key
    """
    _server_parts()
    from securekey.crypto import MasterKey, write_private_file

    if file.exists():
        raise CliError(f"{file} exists; choose a new file name.")
    key = MasterKey.generate()
    try:
        write_private_file(file, (key.to_base64() + "\n").encode())
    except OSError as exc:
        raise CliError(f"Cannot write {file}: {exc.strerror}.") from None
    use(ctx).out.say(f"Wrote master key {key.key_id} to {file}.")


@master_key_app.command("status")
def status(ctx: typer.Context, data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Show the database's master keys and how many stored values each one holds.

    \b
    Example:
      $ securekey master-key status
    """
    _server_parts()
    from securekey.store.master_keys import census, key_records

    cli = use(ctx)
    engine = _open(_settings(cli, data_dir, database_url))
    try:
        with engine.connect() as conn:
            records = key_records(conn)
        counts = census(engine)
    finally:
        engine.dispose()
    for rec in sorted(records.values(), key=lambda r: r.created_at):
        cli.out.say(f"{rec.key_id}  {rec.state:<8} {counts.get(rec.key_id, 0)} values")
    if counts.get("legacy"):
        cli.out.say(f"(no id)           {counts['legacy']} values in the format before key ids")


def _new_key(cli: Cli, settings: Settings, new_key_file: Path | None) -> MasterKey:
    from securekey.crypto import MasterKey, write_private_file

    if new_key_file is not None:
        return MasterKey.from_file(new_key_file)
    if cli.env.get("SECUREKEY_NEW_MASTER_KEY"):
        return MasterKey.from_base64(cli.env["SECUREKEY_NEW_MASTER_KEY"])
    default = settings.default_key_file
    if default is None:
        raise ConfigurationError(
            "Give the new master key with --new-key-file FILE or SECUREKEY_NEW_MASTER_KEY "
            "(make one with `securekey master-key generate FILE`)."
        )
    pending = default.with_name(NEW_KEY_FILE)
    if pending.exists():
        return MasterKey.from_file(pending)
    key = MasterKey.generate()
    write_private_file(pending, (key.to_base64() + "\n").encode())
    return key


def _install_default_key(settings: Settings, new: MasterKey) -> Path | None:
    """With the embedded default, put ``new`` in master.key (atomically); the file, if any."""
    from securekey.crypto import write_private_file

    default = settings.default_key_file
    if default is None:
        return None
    write_private_file(default, (new.to_base64() + "\n").encode())
    default.with_name(NEW_KEY_FILE).unlink(missing_ok=True)
    return default


@master_key_app.command("rotate")
def rotate(
    ctx: typer.Context,
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            help="File with the new key (or SECUREKEY_NEW_MASTER_KEY); the embedded default "
            "generates one next to master.key.",
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10000, help="Values per transaction.")
    ] = 500,
    max_batches: Annotated[
        int | None,
        typer.Option(
            "--max-batches", min=1, help="Stop after this many batches; run again to go on."
        ),
    ] = None,
) -> None:
    """Re-encrypt everything stored under a new master key, online, in resumable batches.

    Running servers learn the new key from the database (wrapped under the current one) within
    seconds and write under it; afterwards the old key is retired and opens nothing. Then give
    every server the new key (SECUREKEY_MASTER_KEY); the embedded default's master.key is
    replaced for you.

    \b
    Example:
      $ securekey master-key generate new.key
      $ securekey master-key rotate --new-key-file new.key --database-url postgresql://…
    """
    _server_parts()
    from securekey.crypto import Cipher
    from securekey.store.master_keys import (
        ACTIVE,
        NEXT,
        begin_rotation,
        census,
        finish_rotation,
        key_records,
        reencrypt,
    )

    cli = use(ctx)
    settings = _settings(cli, data_dir, database_url)
    engine = _open(settings)
    try:
        try:
            current = settings.find_master_key()
            if current is None:
                raise ConfigurationError(
                    f"No master key: {settings.default_key_file} is missing. Restore it first."
                )
            new = _new_key(cli, settings, new_key_file)
            cipher = Cipher(new, [current, *settings.old_master_keys()])
            with engine.begin() as conn:
                records = key_records(conn)
                active = next((r for r in records.values() if r.state == ACTIVE), None)
                if active is None:
                    raise ConfigurationError(
                        "This database has no recorded master key: start the server on it once."
                    )
                pending = next((r for r in records.values() if r.state == NEXT), None)
                if active.key_id == new.key_id and pending is None:
                    # Also the resumption of a run that stopped right after finishing.
                    _install_default_key(settings, new)
                    cli.out.tell(f"Everything is already under master key {new.key_id}.")
                    return
                held = [k for k in cipher.previous if k.key_id == active.key_id]
                if not held or not Cipher(held[0]).opens_check_value(
                    active.key_id, active.check_enc or b""
                ):
                    raise ConfigurationError(
                        f"The current master key (id {active.key_id}) is needed to rotate: set "
                        "SECUREKEY_MASTER_KEY (or SECUREKEY_MASTER_KEY_FILE) to it."
                    )
                begin_rotation(conn, cipher, records)
                announced = key_records(conn)[new.key_id].created_at
        except ConfigurationError as exc:
            raise CliError(exc.message) from None
        cli.out.tell(f"Rotating master key {active.key_id} → {new.key_id}.")
        waited = (datetime.now(UTC) - announced).total_seconds()
        if waited < ANNOUNCE_GRACE:
            cli.out.tell("Waiting for running servers to switch to the new key…")
            time.sleep(ANNOUNCE_GRACE - waited)
        counts = census(engine)
        total = sum(counts.values())
        with cli.out.progress(total, "Re-encrypting") as bar:
            done = reencrypt(
                engine,
                cipher,
                batch_size=batch_size,
                max_batches=max_batches,
                on_batch=bar.advance,
            )
        if not done.complete:
            cli.out.tell(
                f"Stopped after {done.batches} batches ({done.rewritten} values re-encrypted); "
                "run the same command again to go on."
            )
            return
        for _attempt in range(3):
            left = {k: n for k, n in census(engine).items() if k != new.key_id}
            if not left:
                break
            reencrypt(engine, cipher, batch_size=batch_size)
        else:
            raise CliError(
                f"Values are still being written under other keys ({left}): a server still "
                "runs with only the old key. Restart it with the new key and run this again."
            )
        finish_rotation(engine, cipher)
        default = _install_default_key(settings, new)
        if default is not None:
            where = f"{default} now holds it"
        else:
            where = "give it to every server as SECUREKEY_MASTER_KEY and remove the old one"
        cli.out.tell(
            f"Done: {total} values under master key {new.key_id} ({where}); "
            f"key {active.key_id} is retired."
        )
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("backup")(backup)
    app.command("restore")(restore)
    app.add_typer(master_key_app)
