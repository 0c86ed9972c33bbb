"""``master-key generate``, ``status`` and ``rotate``: the key that encrypts everything stored,
replaced online in resumable batches while servers keep serving."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from securekey.cli import offline
from securekey.cli.context import Cli, DatabaseUrlOption, DataDirOption, use
from securekey.cli.errors import CliError
from securekey.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from securekey.config import Settings
    from securekey.crypto import Cipher, MasterKey

__all__ = ["master_key_app"]

#: Seconds a rotation waits after announcing the new key, so every running server (which looks
#: every ``KEY_REFRESH_SECONDS``) writes under it before the re-encryption starts.
ANNOUNCE_GRACE = 5.0
NEW_KEY_FILE = "master.key.new"

master_key_app = typer.Typer(
    name="master-key",
    help="Generate, inspect and rotate the master key that encrypts everything stored.\n\n"
    "\b\nExample:\n  $ securekey master-key status\n"
    "  $ securekey master-key rotate --new-key-file new.key",
    no_args_is_help=True,
    rich_markup_mode=None,
)


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
    offline.server_parts()
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
def status(
    ctx: typer.Context, data_dir: DataDirOption = None, database_url: DatabaseUrlOption = None
) -> None:
    """Show the database's master keys and how many stored values each one holds.

    \b
    Example:
      $ securekey master-key status
    """
    offline.server_parts()
    from securekey.store.master_keys import census, key_records

    cli = use(ctx)
    with offline.opened(offline.settings(cli, data_dir, database_url)) as engine:
        with engine.connect() as conn:
            records = key_records(conn)
        counts = census(engine)
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


@dataclass
class _Rotation:
    """A rotation announced in the database: the old key's id, the new key, both in a cipher."""

    old_id: str
    new: MasterKey
    cipher: Cipher
    announced: datetime


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
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
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
    offline.server_parts()
    cli = use(ctx)
    settings = offline.settings(cli, data_dir, database_url)
    with offline.opened(settings) as engine:
        rotation = _announce(cli, settings, engine, new_key_file)
        if rotation is None:
            return
        cli.out.tell(f"Rotating master key {rotation.old_id} → {rotation.new.key_id}.")
        waited = (datetime.now(UTC) - rotation.announced).total_seconds()
        if waited < ANNOUNCE_GRACE:
            cli.out.tell("Waiting for running servers to switch to the new key…")
            time.sleep(ANNOUNCE_GRACE - waited)
        total = _reencrypt_all(cli, engine, rotation, batch_size, max_batches)
        if total is not None:
            _finish(cli, settings, engine, rotation, total)


def _announce(
    cli: Cli, settings: Settings, engine: Engine, new_key_file: Path | None
) -> _Rotation | None:
    """Record the new key (wrapped under the current one); None when it is already done."""
    from securekey.crypto import Cipher
    from securekey.store.master_keys import ACTIVE, NEXT, begin_rotation, key_records

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
            return None
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
    return _Rotation(active.key_id, new, cipher, announced)


def _reencrypt_all(
    cli: Cli, engine: Engine, rotation: _Rotation, batch_size: int, max_batches: int | None
) -> int | None:
    """Re-encrypt in batches with a progress bar; how many values, or None when stopped early."""
    from securekey.store.master_keys import census, reencrypt

    total = sum(census(engine).values())
    with cli.out.progress(total, "Re-encrypting") as bar:
        done = reencrypt(
            engine,
            rotation.cipher,
            batch_size=batch_size,
            max_batches=max_batches,
            on_batch=bar.advance,
        )
    if not done.complete:
        cli.out.tell(
            f"Stopped after {done.batches} batches ({done.rewritten} values re-encrypted); "
            "run the same command again to go on."
        )
        return None
    for _attempt in range(3):
        left = {k: n for k, n in census(engine).items() if k != rotation.new.key_id}
        if not left:
            return total
        reencrypt(engine, rotation.cipher, batch_size=batch_size)
    raise CliError(
        f"Values are still being written under other keys ({left}): a server still "
        "runs with only the old key. Restart it with the new key and run this again."
    )


def _finish(cli: Cli, settings: Settings, engine: Engine, rotation: _Rotation, total: int) -> None:
    """Retire the old key and, with the embedded default, put the new one in master.key."""
    from securekey.store.master_keys import finish_rotation

    finish_rotation(engine, rotation.cipher)
    default = _install_default_key(settings, rotation.new)
    if default is not None:
        where = f"{default} now holds it"
    else:
        where = "give it to every server as SECUREKEY_MASTER_KEY and remove the old one"
    cli.out.tell(
        f"Done: {total} values under master key {rotation.new.key_id} ({where}); "
        f"key {rotation.old_id} is retired."
    )
