"""Settings, read once from the environment at an entry point and passed down from there.

``SECUREKEY_DATA_DIR``, ``SECUREKEY_DATABASE_URL``, ``SECUREKEY_MASTER_KEY`` (base64 of 32
bytes) and ``SECUREKEY_MASTER_KEY_FILE``; ``SECUREKEY_OLD_MASTER_KEY`` / ``…_FILE`` name a
previous master key that still decrypts (never encrypts). With none set, the embedded default
is a SQLite file and a generated key file under the data directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from securekey.crypto import MasterKey, ensure_private_dir
from securekey.exceptions import ConfigurationError
from securekey.store.engine import normalise_url, sqlite_url

__all__ = ["DEFAULT_DATA_DIR", "Settings"]

DEFAULT_DATA_DIR = Path("./data")
DB_FILE = "securekey.db"
KEY_FILE = "master.key"


@dataclass(frozen=True)
class Settings:
    """Where data lives and how it is protected."""

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    master_key_b64: str | None = field(default=None, repr=False)
    master_key_file: Path | None = None
    old_master_key_b64: str | None = field(default=None, repr=False)
    old_master_key_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``SECUREKEY_*`` variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        key_file = env.get("SECUREKEY_MASTER_KEY_FILE")
        old_file = env.get("SECUREKEY_OLD_MASTER_KEY_FILE")
        return cls(
            data_dir=Path(env.get("SECUREKEY_DATA_DIR") or DEFAULT_DATA_DIR),
            database_url=env.get("SECUREKEY_DATABASE_URL") or None,
            master_key_b64=env.get("SECUREKEY_MASTER_KEY") or None,
            master_key_file=Path(key_file) if key_file else None,
            old_master_key_b64=env.get("SECUREKEY_OLD_MASTER_KEY") or None,
            old_master_key_file=Path(old_file) if old_file else None,
        )

    def with_overrides(
        self, *, data_dir: Path | None = None, database_url: str | None = None
    ) -> Settings:
        """A copy with command-line options applied over the environment."""
        out = self
        if data_dir is not None:
            out = replace(out, data_dir=data_dir)
        if database_url is not None:
            out = replace(out, database_url=database_url)
        return out

    @property
    def embedded(self) -> bool:
        """True when using the SQLite file in the data directory."""
        return self.database_url is None

    def database(self) -> str:
        """The database URL: the configured one, or the embedded SQLite file."""
        if self.database_url is not None:
            normalise_url(self.database_url)  # refuse bad URLs before anything starts
            return self.database_url
        ensure_private_dir(self.data_dir)
        path = self.data_dir / DB_FILE
        try:
            # SQLite gives its -wal and -shm files the database file's mode: create it 0600.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            for suffix in ("", "-wal", "-shm"):
                existing = path.with_name(DB_FILE + suffix)
                if existing.exists() and existing.stat().st_mode & 0o077:
                    existing.chmod(0o600)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot open the database file {path}: {exc.strerror}. Check --data-dir and "
                "that this user may read and write it."
            ) from None
        return sqlite_url(path.resolve())

    @property
    def default_key_file(self) -> Path | None:
        """The generated key file in the data directory, when no key is configured."""
        if self.master_key_b64 or self.master_key_file is not None:
            return None
        default = self.data_dir / KEY_FILE
        return default if self.embedded or default.exists() else None

    def find_master_key(self) -> MasterKey | None:
        """The configured master key, or None when the embedded default's file does not exist."""
        default = self.default_key_file
        if default is not None and not default.exists():
            return None
        return self.master_key()

    def master_key(self) -> MasterKey:
        """The master key: from the variable, the key file, or generated for the embedded default.

        A shared database needs the same key on every replica, so only the embedded default
        generates one.
        """
        if self.master_key_b64:
            return MasterKey.from_base64(self.master_key_b64)
        if self.master_key_file is not None:
            return MasterKey.from_file(self.master_key_file)
        default = self.data_dir / KEY_FILE
        if self.embedded or default.exists():
            return MasterKey.load_or_create(default)
        raise ConfigurationError(
            "A shared database needs a master key: set SECUREKEY_MASTER_KEY (base64 of 32 "
            "bytes) or SECUREKEY_MASTER_KEY_FILE, the same on every replica."
        )

    def old_master_keys(self) -> list[MasterKey]:
        """Previous master keys that may still decrypt (``SECUREKEY_OLD_MASTER_KEY[_FILE]``)."""
        keys = []
        if self.old_master_key_b64:
            keys.append(MasterKey.from_base64(self.old_master_key_b64))
        if self.old_master_key_file is not None:
            keys.append(MasterKey.from_file(self.old_master_key_file))
        return keys
