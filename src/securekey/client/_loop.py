"""A daemon thread running an asyncio loop, for the SDK's blocking fronts.

``WatchedKeyRing`` and ``securekey run`` hand their watcher's coroutines to one of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """A daemon thread running an event loop that other threads hand coroutines to."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop; its result arrives in the returned future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task on the loop; returns the task."""

        async def create() -> asyncio.Task[None]:
            return asyncio.ensure_future(coro)

        return self.submit(create()).result()

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task on the loop, stop it, and close it once the thread has ended."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.submit(cancel_all()).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()

    def close(self, last: Coroutine[Any, Any, None], timeout: float = 5.0) -> None:
        """Run ``last`` on the loop (say, closing a watcher; errors ignored), then ``stop``."""
        with contextlib.suppress(Exception):
            self.submit(last).result(timeout)
        self.stop(timeout)
