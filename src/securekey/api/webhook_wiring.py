"""The webhook service and its sender for one server: woken by releases, run by the lifespan.

Built by the API factory; the lifespan starts the sender after start-up and stops it, letting
attempts in flight finish within their deadline, before the scheduler stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from securekey.api.webhook_sender import WebhookSender
from securekey.domain.clock import Clock
from securekey.services.ports import Store
from securekey.services.webhooks import WebhookService

__all__ = ["WebhookWiring"]


class WebhookWiring:
    """A ``WebhookService`` over ``store`` and the ``WebhookSender`` that delivers its hooks.

    ``interval`` is the fallback poll (new releases wake the sender at once), ``timeout``
    bounds each attempt in total, ``concurrency`` the attempts in flight (0: send nothing).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        backoff: timedelta,
        timeout: float,
        concurrency: int,
        interval: float,
        allow_private: bool,
    ) -> None:
        self.service = WebhookService(
            store,
            clock,
            backoff=backoff,
            # A lease outlives any attempt, so no other replica takes a delivery being sent.
            lease=timedelta(seconds=max(60.0, 2 * timeout)),
            allow_private=allow_private,
        )
        self.sender = WebhookSender(
            self.service, concurrency=concurrency, timeout=timeout, interval=interval
        )
        self._store = store
        self._timeout = timeout
        self._concurrency = concurrency
        self._task: asyncio.Task[None] | None = None

    def listen(self) -> None:
        """Wake the sender on every release this store announces."""
        self._store.add_listener(self.sender.on_releases)

    def start(self) -> None:
        """Start sending, on the running loop."""
        work = self.sender.run() if self._concurrency > 0 else asyncio.sleep(0)
        self._task = asyncio.create_task(work)

    async def stop(self) -> None:
        """Stop taking deliveries; wait for the attempts in flight (each has a deadline)."""
        self.sender.close()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, self._timeout + 10)
