"""Rotate due add-ons in batches, one transaction each, safe with many processes on one database.

A tick first asks the ``next_rotation_at`` index whether anything is due (cheap at any table
size), then claims due add-ons ``batch_size`` at a time, soonest first, with ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL (on SQLite, ``BEGIN IMMEDIATE`` makes each batch the only writer), so
several processes share the work and none rotates an add-on another already holds. A rotation
that fails rolls back alone: that add-on stays as it was, the rest of its batch rotates, and
the next tick tries it again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from securekey.domain.clock import Clock, SystemClock
from securekey.exceptions import UnavailableError
from securekey.services import ROTATION_BATCH, Rotated, SecureKeyService

__all__ = ["DEFAULT_BATCH", "Scheduler", "TickResult"]

#: Add-ons rotated per transaction (see ``bench/rotate_due.py`` for how the rate depends on it).
DEFAULT_BATCH = ROTATION_BATCH

log = logging.getLogger("securekey.scheduler")


@dataclass
class TickResult:
    """What one tick did."""

    rotated: list[Rotated] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Scheduler:
    """Runs ticks every ``interval`` seconds until stopped."""

    def __init__(
        self,
        service: SecureKeyService,
        clock: Clock | None = None,
        *,
        interval: float = 1.0,
        max_per_tick: int = 10_000,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self.service = service
        self.clock: Clock = clock or SystemClock()
        self.interval = interval
        self.max_per_tick = max_per_tick
        self.batch_size = max(1, batch_size)
        self.rotations = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> TickResult:
        """Rotate every add-on due now (at most ``max_per_tick``)."""
        result = TickResult()
        now = self.clock.now()
        if not self.service.has_due(now):
            return result
        while (room := self.max_per_tick - len(result.rotated) - len(result.failed)) > 0:
            if self._stop.is_set():
                break  # stopping: the last batch committed; leave the rest to a replica
            limit = min(self.batch_size, room)
            batch = self.service.rotate_due(now, limit=limit, exclude=result.failed)
            result.rotated += batch.rotated
            result.failed += [f.addon_id for f in batch.failed]
            self.rotations += len(batch.rotated)
            self.failures += len(batch.failed)
            if batch.claimed < limit or not (batch.rotated or batch.failed):
                # Nothing more is due, or the rest is being rotated by another process (its
                # add-ons or their apps are held): the next tick takes what is left.
                break
        return result

    def run(self) -> None:
        """Tick until ``stop()``; errors are logged, never fatal."""
        while not self._stop.is_set():
            try:
                result = self.tick()
                if result.rotated or result.failed:
                    log.info("tick: %d rotated, %d failed", len(result.rotated), len(result.failed))
            except UnavailableError:
                pass  # the store logs the outage once; due add-ons wait for the next tick
            except Exception:
                log.exception("scheduler tick failed")
            self._stop.wait(self.interval)

    @property
    def running(self) -> bool:
        """Whether the thread started by ``start()`` is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Run in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="securekey-scheduler", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after its current rotation (each is one transaction)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread started by ``start()``, waiting up to ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the scheduler did not stop within %g s", timeout)
            else:
                log.info("scheduler stopped (%d rotations in this process)", self.rotations)
            self._thread = None
