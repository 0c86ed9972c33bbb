"""One use case's transaction and the helpers every use case needs inside it: find an app or
add-on (else 404), read an app's config, make a release, and collect audit events for the commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from securekey.domain.clock import Clock, SystemClock
from securekey.domain.models import Addon, App, AuditEvent, Release, new_id
from securekey.exceptions import NotFoundError
from securekey.services.outbox import enqueue_release
from securekey.services.ports import Repository, Store

__all__ = [
    "Fingerprinter",
    "UnitOfWork",
    "UseCases",
    "find_addon",
    "find_app",
    "plausible",
]


class Fingerprinter(Protocol):
    """Keyed fingerprints of config snapshots (``securekey.crypto.Cipher`` is one)."""

    def fingerprint(self, data: bytes) -> str: ...


def plausible(ref: object) -> bool:
    """Whether a reference could name anything: a string, no NUL bytes, not absurdly long."""
    return isinstance(ref, str) and 0 < len(ref) <= 200 and "\x00" not in ref


def find_app(tx: Repository, ref: str, *, lock: bool = False) -> App:
    """The app ``ref`` names (id or name), or ``NotFoundError``: every service finds apps so."""
    app = tx.get_app(ref, lock=lock) if plausible(ref) else None
    if app is None:
        raise NotFoundError("app", ref)
    return app


def find_addon(tx: Repository, ref: str, *, lock: bool = False) -> Addon:
    """The add-on ``ref`` names (id or name), or ``NotFoundError``."""
    addon = tx.get_addon(ref, lock=lock) if plausible(ref) else None
    if addon is None:
        raise NotFoundError("add_on", ref)
    return addon


class UnitOfWork:
    """A context manager owning one transaction: commits when its block ends without an error,
    rolls back otherwise. It knows who acts and when (``actor``, ``now``, one instant for the
    whole use case) and collects the audit events, written together just before the commit.
    """

    tx: Repository
    #: The use case's one instant: given, or read from the clock as the block starts.
    now: datetime

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        *,
        actor: str = "operator",
        write: bool = True,
        now: datetime | None = None,
        fingerprinter: Fingerprinter | None = None,
    ) -> None:
        self._store = store
        self._clock: Clock = clock or SystemClock()
        self._write = write
        self._fp = fingerprinter
        self._given_now = now
        self._transaction: AbstractContextManager[Repository] | None = None
        self.actor = actor
        #: Audit events of this use case, in order; written at the end of a successful block.
        self.events: list[AuditEvent] = []

    def __enter__(self) -> Self:
        self.now = self._clock.now() if self._given_now is None else self._given_now
        self._transaction = self._store.transaction(write=self._write)
        self.tx = self._transaction.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._transaction is not None
        transaction, self._transaction = self._transaction, None
        if exc is None and self.events:
            try:
                self.tx.add_events(self.events)
            except BaseException as error:
                if not transaction.__exit__(type(error), error, error.__traceback__):
                    raise
                return None
        return transaction.__exit__(exc_type, exc, tb)

    def app(self, ref: str, *, lock: bool = False) -> App:
        """The app ``ref`` names, or ``NotFoundError``; ``lock`` holds it until commit."""
        return find_app(self.tx, ref, lock=lock)

    def addon(self, ref: str, *, lock: bool = False) -> Addon:
        """The add-on ``ref`` names, or ``NotFoundError``; ``lock`` holds it until commit."""
        return find_addon(self.tx, ref, lock=lock)

    def config(self, app_id: str) -> dict[str, str]:
        """The app's config: its plain vars plus ``NAME_KEY`` for every attachment, by name."""
        config = self.tx.get_plain_vars(app_id)
        attachments = self.tx.list_attachments(app_id=app_id)
        pairs = self.tx.get_pairs({a.addon_id for a in attachments})
        for att in attachments:
            config[att.var_name] = pairs[att.addon_id].value
        return dict(sorted(config.items()))

    def new_release(self, app: App, description: str) -> Release:
        """Make the app's next release (its config as it stands now) and queue its webhooks."""
        if self._fp is None:  # pragma: no cover - a wiring mistake, not a user's
            raise RuntimeError("this unit of work was opened without a fingerprinter")
        version = self.tx.bump_release(app.id, self.now)
        snapshot = json.dumps(self.config(app.id), sort_keys=True).encode()
        release = Release(
            id=new_id(),
            app_id=app.id,
            version=version,
            description=description,
            config_fingerprint=self._fp.fingerprint(snapshot),
            actor=self.actor,
            created_at=self.now,
        )
        self.tx.add_release(release)
        enqueue_release(self.tx, app, release, self.now)
        return release

    def audit(
        self, action: str, target: App | Addon, details: Mapping[str, str] | None = None
    ) -> None:
        """Record that ``actor`` did ``action`` to ``target`` (names and fingerprints only)."""
        kind = "app" if isinstance(target, App) else "addon"
        self.events.append(
            AuditEvent(
                new_id(),
                self.now,
                self.actor,
                action,
                kind,
                target.id,
                target.name,
                dict(details or {}),
            )
        )


class UseCases:
    """What each group of use cases holds: the store, the fingerprinter and the clock."""

    def __init__(
        self,
        store: Store,
        fingerprinter: Fingerprinter,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self._fp = fingerprinter
        self.clock: Clock = clock or SystemClock()

    def _uow(
        self, *, actor: str = "operator", write: bool = True, now: datetime | None = None
    ) -> UnitOfWork:
        """A unit of work on this service's store, for one use case."""
        return UnitOfWork(
            self.store, self.clock, actor=actor, write=write, now=now, fingerprinter=self._fp
        )
