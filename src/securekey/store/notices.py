"""Store notices: releases, identity changes and token revocations, told to listeners.

Committed here and, on PostgreSQL, by every other replica (``NOTIFY``, heard by one ``LISTEN``
connection per store); listeners see one stream of ``ReleaseNotice`` whichever process wrote.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy import Connection

from securekey.services.ports import NOTICES_LOST, ReleaseNotice

__all__ = [
    "RELEASE_CHANNEL",
    "Listener",
    "NoticeBus",
    "PgNoticeListener",
    "announce",
    "decode",
    "encode",
]

log = logging.getLogger("securekey.store")

#: PostgreSQL NOTIFY channel on which every notice is announced as ``id:version`` (ids only).
RELEASE_CHANNEL = "securekey_release"

Listener = Callable[[Sequence[ReleaseNotice]], None]

#: Told to listeners when notices may have been missed (the LISTEN connection was lost).
LOST = (ReleaseNotice("", NOTICES_LOST),)


class Health(Protocol):
    """Where a lasting outage is reported once (``store.sql.DatabaseHealth``)."""

    def failed(self, error: BaseException) -> None: ...


def encode(notice: ReleaseNotice) -> str:
    """The NOTIFY payload of ``notice``: ``id:version``."""
    return f"{notice.app_id}:{notice.version}"


def decode(payload: str) -> ReleaseNotice | None:
    """The notice in a NOTIFY payload; None for anything else."""
    ref, _, version = payload.rpartition(":")
    digits = version.removeprefix("-")
    if not ref or not digits.isascii() or not digits.isdigit():
        return None
    return ReleaseNotice(ref, int(version))


def announce(conn: Connection, into: list[ReleaseNotice], notices: Sequence[ReleaseNotice]) -> None:
    """Queue ``notices`` for this process's listeners (told after the commit, in ``into``) and,
    on PostgreSQL, for other replicas: one NOTIFY statement, delivered in order on commit."""
    if not notices:
        return
    into.extend(notices)
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) p"),
            {"channel": RELEASE_CHANNEL, "payloads": [encode(n) for n in notices]},
        )


class NoticeBus:
    """A store's listeners, told of its own commits and (``listen``) of other processes'."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._pg: PgNoticeListener | None = None

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every batch of notices, from any thread."""
        with self._lock:
            self._listeners.append(listener)

    def publish(self, notices: Sequence[ReleaseNotice]) -> None:
        """Tell every listener of ``notices``."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(notices)

    def listen(self, dsn: str | None, health: Health | None, timeout: float) -> bool:
        """Hear other processes' notices (PostgreSQL ``dsn``; None: this process only).

        One connection per store, however often it is called; waits up to ``timeout`` for it
        and says whether it is up.
        """
        if dsn is None:
            return True
        with self._lock:
            if self._pg is None:
                self._pg = PgNoticeListener(dsn, self.publish, health)
                self._pg.start()
            pg = self._pg
        return pg.connected.wait(timeout)

    def close(self) -> None:
        """Stop listening to other processes."""
        with self._lock:
            pg, self._pg = self._pg, None
        if pg is not None:
            pg.stop()


class PgNoticeListener:
    """A thread holding ``LISTEN securekey_release``, forwarding notices to ``sink``.

    It reconnects with back-off; after a loss it tells ``sink`` that notices may have been
    missed (``LOST``), so caches drop what they hold and watchers look again.
    """

    def __init__(self, dsn: str, sink: Listener, health: Health | None = None) -> None:
        self.dsn = dsn
        self.sink = sink
        self.health = health
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self._lost_at: float | None = None  # when the connection was lost, None while up
        self._cause = ""
        self._warned = False

    def start(self) -> None:
        """Start listening in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="securekey-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._listen_once()
                backoff = 0.1
            except Exception as error:
                self.connected.clear()
                self._lost(error)
                self.sink(LOST)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _listen_once(self) -> None:
        import psycopg  # only the PostgreSQL backend needs it

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {RELEASE_CHANNEL}")
            self.connected.set()
            if self._lost_at is not None:
                # Notices committed while we were away were never heard here.
                self.sink(LOST)
                self._restored()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=0.5):  # each at once, not per batch
                    notice = decode(note.payload)
                    if notice is not None:
                        self.sink((notice,))

    def _lost(self, error: Exception) -> None:
        if self._lost_at is None:
            self._lost_at, self._cause = time.monotonic(), type(error).__name__
        elif not self._warned:
            # Reconnecting failed too: the database itself is away. Reported once per
            # outage, together with the requests that fail meanwhile.
            self._warned = True
            if self.health is not None:
                self.health.failed(error)
            else:
                log.warning("release notifications lost (%s); reconnecting", self._cause)

    def _restored(self) -> None:
        if self._warned:
            log.info("release notifications restored")
        elif self._lost_at is not None:
            log.warning(
                "release notifications lost (%s) for %.1f s; reconnected",
                self._cause,
                time.monotonic() - self._lost_at,
            )
        self._lost_at, self._warned = None, False
