"""The composition root: turns ``Settings`` into a store and a service. Entry points call it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from securekey.config import KEY_FILE, Settings
from securekey.crypto import Cipher
from securekey.domain.clock import Clock
from securekey.exceptions import ConfigurationError
from securekey.services import SecureKeyService
from securekey.services.ports import Store
from securekey.store import SqlStore, make_engine, upgrade
from securekey.store.master_keys import check_master_key, has_data

__all__ = ["Runtime", "database_error", "open_database", "open_runtime", "settings_cipher"]


@dataclass(frozen=True)
class Runtime:
    """An open store and the service over it."""

    store: Store
    service: SecureKeyService

    def close(self) -> None:
        """Close the database connections."""
        self.store.close()


def database_error(url: str, exc: DBAPIError) -> ConfigurationError:
    """A one-line, actionable message for a database that cannot be opened or reached."""
    where = make_url(url).render_as_string(hide_password=True)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    if make_url(url).get_backend_name() == "sqlite":
        return ConfigurationError(
            f"Cannot open the SQLite database {where} ({reason}): check --data-dir, that the "
            "file is a securekey database, and that this user may read and write it."
        )
    return ConfigurationError(
        f"Cannot reach the database {where} ({reason}): check SECUREKEY_DATABASE_URL "
        "(--database-url) and that the database server is running and reachable."
    )


def open_database(settings: Settings) -> tuple[str, Engine]:
    """The configured database's URL and a migrated engine; unreachable is ConfigurationError."""
    url = settings.database()
    engine = make_engine(url)
    try:
        upgrade(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise database_error(url, exc) from None
    return url, engine


def settings_cipher(settings: Settings, engine: Engine) -> Cipher:
    """The cipher for ``settings``' master key, checked against the database's check value.

    The embedded default generates a key file only for an empty database: a database with data
    whose key file went missing is refused, never silently given a new key.
    """
    try:
        master = settings.find_master_key()
        if master is None:
            with engine.connect() as conn:
                populated = has_data(conn)
            if populated:
                path = settings.data_dir / KEY_FILE
                raise ConfigurationError(
                    f"The database holds data but its master key file {path} is missing: "
                    "restore it from your backup (or set SECUREKEY_MASTER_KEY); a new key "
                    "could not decrypt anything stored."
                )
            master = settings.master_key()
        cipher = Cipher(master, settings.old_master_keys())
        check_master_key(engine, cipher)
    except DBAPIError as exc:
        raise database_error(str(engine.url), exc) from None
    return cipher


def open_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    """Open (and migrate) the configured database with the configured master key."""
    _url, engine = open_database(settings)
    try:
        cipher = settings_cipher(settings, engine)
    except BaseException:
        engine.dispose()
        raise
    store = SqlStore(engine, cipher, migrate=False)
    return Runtime(store, SecureKeyService(store, cipher, clock))
