"""Single-flight, rate-limited refreshes for a key ring: callers share one fetch at a time.

A client's refresh waits for the next slot; a verifier's ``try_run`` never waits for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["Coalescer"]

log = logging.getLogger("securekey.client")


def _done(result: bool) -> Future[bool]:
    """A future already holding ``result``."""
    fut: Future[bool] = Future()
    fut.set_running_or_notify_cancel()
    fut.set_result(result)
    return fut


class Coalescer:
    """One refresh at a time, at most one start per ``interval``; callers join the next start.

    A caller joins the refresh that has not started yet, never one already running: a running
    fetch may have been answered before the caller's new key existed.
    """

    def __init__(
        self,
        run: Callable[[], bool],
        arun: Callable[[], Any],
        interval: float,
        timeout: float,
        monotonic: Callable[[], float],
    ) -> None:
        self._run, self._arun = run, arun
        self._interval, self._timeout, self._monotonic = interval, timeout, monotonic
        self._lock = threading.Lock()
        self._pending: Future[bool] | None = None
        self._running: Future[bool] = _done(False)
        self._last_start = -math.inf
        self._last_duration = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = 0

    def _join(self) -> tuple[Future[bool], bool]:
        with self._lock:
            if self._pending is None:
                fut: Future[bool] = Future()
                # Running futures cannot be cancelled: no waiter can spoil one for the others.
                fut.set_running_or_notify_cancel()
                self._pending = fut
                return fut, True
            return self._pending, False

    def _join_if_idle(self) -> Future[bool] | None:
        """A new refresh for this caller to lead, if one may start right now; else None."""
        with self._lock:
            idle = (
                self._pending is None
                and self._running.done()
                and self._monotonic() >= self._last_start + self._interval
            )
            if not idle:
                return None
            fut: Future[bool] = Future()
            fut.set_running_or_notify_cancel()
            self._pending = fut
            return fut

    def retry_after(self) -> float:
        """Seconds until a refresh asked for now has probably finished (a hint for clients).

        The next refresh starts when the running one ends (estimated by the last fetch's
        duration) and the rate limit allows; it then takes about as long again.
        """
        with self._lock:
            now, took = self._monotonic(), self._last_duration
            running = 0.0 if self._running.done() else self._last_start + took - now
            slot = self._last_start + self._interval - now
            return min(self._timeout, max(0.0, running, slot) + took + 0.05)

    def _delay(self) -> float:
        with self._lock:
            return max(0.0, self._last_start + self._interval - self._monotonic())

    def _start(self, fut: Future[bool]) -> None:
        with self._lock:
            self._pending = None
            self._running = fut
            self._last_start = self._monotonic()
            self.started += 1

    def _settle(self, fut: Future[bool], result: bool) -> None:
        with self._lock:
            if self._pending is fut:  # failed before it started: let the next caller lead
                self._pending = None
        fut.set_result(result)

    def _lead_sync(self, fut: Future[bool]) -> None:
        result = False
        try:
            with contextlib.suppress(TimeoutError):  # a stuck fetch must not block us forever
                self._running.exception(timeout=self._timeout)
            delay = self._delay()
            if delay:
                time.sleep(delay)
            self._start(fut)
            began = self._monotonic()
            result = self._run()
            self._last_duration = self._monotonic() - began
        finally:
            self._settle(fut, result)

    def _spawn(self, fut: Future[bool]) -> None:
        thread = threading.Thread(
            target=self._lead_sync, args=(fut,), name="securekey-refresh", daemon=True
        )
        try:
            thread.start()
        except BaseException:
            self._settle(fut, False)  # nobody will lead it: let the next caller
            raise

    def try_run_sync(self) -> float | None:
        """Refresh now if a refresh may start now, waiting for it at most ``timeout``: None.

        Otherwise make sure one is on its way and return at once the seconds after which it
        has probably finished: the caller refuses now rather than holding its thread.
        """
        fut = self._join_if_idle()
        if fut is None:
            self.run_background()
            return self.retry_after()
        # Led from its own thread, so the wait is bounded even if the fetch is stuck.
        self._spawn(fut)
        with contextlib.suppress(TimeoutError):
            fut.result(timeout=self._timeout)
        return None

    async def try_run_async(self) -> float | None:
        """``try_run_sync`` for coroutines."""
        fut = self._join_if_idle()
        if fut is None:
            self.run_background()
            return self.retry_after()
        task = asyncio.ensure_future(self._lead(fut))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.wait({asyncio.wrap_future(fut)}, timeout=self._timeout)
        return None

    def run_sync(self) -> bool:
        """Join the next refresh (leading it if first), wait for it, return whether it changed."""
        fut, leader = self._join()
        if leader:
            self._lead_sync(fut)
        try:
            return fut.result(timeout=self._timeout)
        except TimeoutError:
            return False

    def run_background(self) -> None:
        """Make sure a refresh that has not started yet is on its way, and return at once.

        Only the caller that creates that refresh starts a thread to lead it; the others
        need nothing more, since it starts after they asked. However many hints arrive, at
        most one thread waits for the next refresh.
        """
        fut, leader = self._join()
        if leader:
            self._spawn(fut)

    async def _lead(self, fut: Future[bool]) -> None:
        result = False
        try:
            await asyncio.wait([asyncio.wrap_future(self._running)], timeout=self._timeout)
            delay = self._delay()
            if delay:
                await asyncio.sleep(delay)
            self._start(fut)
            began = self._monotonic()
            result = bool(await self._arun())
            self._last_duration = self._monotonic() - began
        except Exception:  # nobody awaits this task: say it here or never
            log.exception("A key ring refresh failed unexpectedly.")
        finally:
            self._settle(fut, result)

    async def run_async(self) -> bool:
        """The same as ``run_sync`` for coroutines; a cancelled caller never cancels the fetch."""
        fut, leader = self._join()
        if leader:
            task = asyncio.ensure_future(self._lead(fut))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # asyncio.wait, not wait_for: it never cancels what it waits on, and on Python 3.11
        # wait_for can swallow the caller's own cancellation.
        shared = asyncio.wrap_future(fut)
        done, _ = await asyncio.wait({shared}, timeout=self._timeout)
        return shared.result() if done else False
