"""Rotate due add-ons, one transaction each, safe with many processes on one database.

A tick first asks the ``next_rotation_at`` index whether anything is due (cheap at any table
size), then claims due add-ons one at a time with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
several processes share the work and none rotates an add-on another already holds. A rotation
that fails rolls back alone: that add-on stays as it was, the others go on, and the next tick
tries it again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from securekey.domain.clock import Clock, SystemClock
from securekey.exceptions import RotationFailedError, UnavailableError
from securekey.services import Rotated, SecureKeyService

__all__ = ["Scheduler", "TickResult"]

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
    ) -> None:
        self.service = service
        self.clock: Clock = clock or SystemClock()
        self.interval = interval
        self.max_per_tick = max_per_tick
        self.rotations = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> TickResult:
        """Rotate every add-on due now (at most ``max_per_tick``)."""
        result = TickResult()
        now = self.clock.now()
        if not self.service.next_due(now):
            return result
        while len(result.rotated) + len(result.failed) < self.max_per_tick:
            if self._stop.is_set():
                break  # stopping: the last rotation committed; leave the rest to a replica
            try:
                rotated = self.service.rotate_next_due(now, exclude=result.failed)
            except RotationFailedError as exc:
                result.failed.append(exc.addon_id)
                self.failures += 1
                log.error("rotation of %s failed, left unchanged: %s", exc.addon_name, exc.reason)
                try:
                    self.service.record_failure(exc.addon_id, exc.reason)
                except UnavailableError:
                    raise
                except Exception:
                    log.exception("cannot record the failed rotation of %s", exc.addon_name)
                continue
            if rotated is None:
                break
            result.rotated.append(rotated)
            self.rotations += 1
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
