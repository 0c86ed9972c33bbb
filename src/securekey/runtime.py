"""The composition root: turns ``Settings`` into a store and a service. Entry points call it."""

from __future__ import annotations

from dataclasses import dataclass

from securekey.config import Settings
from securekey.crypto import Cipher
from securekey.domain.clock import Clock
from securekey.services import SecureKeyService
from securekey.store import SqlStore

__all__ = ["Runtime", "open_runtime"]


@dataclass(frozen=True)
class Runtime:
    """An open store and the service over it."""

    store: SqlStore
    service: SecureKeyService

    def close(self) -> None:
        """Close the database connections."""
        self.store.close()


def open_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    """Open (and migrate) the configured database with the configured master key."""
    cipher = Cipher(settings.master_key())
    store = SqlStore.open(settings.database(), cipher)
    return Runtime(store, SecureKeyService(store, cipher, clock))
