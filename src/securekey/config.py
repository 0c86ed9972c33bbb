"""Settings, read once from the environment at an entry point and passed down from there.

``SECUREKEY_DATA_DIR``, ``SECUREKEY_DATABASE_URL``, ``SECUREKEY_MASTER_KEY`` (base64 of 32
bytes) and ``SECUREKEY_MASTER_KEY_FILE``. With none set, the embedded default is a SQLite file
and a generated key file under the data directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from securekey.crypto import MasterKey
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``SECUREKEY_*`` variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        key_file = env.get("SECUREKEY_MASTER_KEY_FILE")
        return cls(
            data_dir=Path(env.get("SECUREKEY_DATA_DIR") or DEFAULT_DATA_DIR),
            database_url=env.get("SECUREKEY_DATABASE_URL") or None,
            master_key_b64=env.get("SECUREKEY_MASTER_KEY") or None,
            master_key_file=Path(key_file) if key_file else None,
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
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return sqlite_url((self.data_dir / DB_FILE).resolve())

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
