"""The webhook sender: posts due deliveries a few at a time, each bounded in total time.

Woken as soon as a release commits (its deliveries are written in the same transaction) and
when a retry falls due; a slow fallback poll finds deliveries other replicas wrote or left.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx
from fastapi.concurrency import run_in_threadpool

from securekey import __version__
from securekey.domain.models import Delivery, Webhook
from securekey.exceptions import UnavailableError
from securekey.services.webhooks import WebhookService, is_public_address, sign_body

__all__ = ["TargetRefusedError", "WebhookSender"]

log = logging.getLogger("securekey.webhooks")


class TargetRefusedError(Exception):
    """A delivery's host resolved to an address the target policy forbids; nothing was sent."""


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve the host once, check every address, and connect to a checked one.

    Checking and connecting use the same resolution, so a name that answers a public address
    to a check and a private one to the connection (DNS rebinding) cannot slip through.
    """

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not self._allow_private:
            for text in addresses:
                address = ipaddress.ip_address(text.split("%", 1)[0])
                if not is_public_address(address):
                    raise TargetRefusedError(
                        f"refused: {host} resolves to {address}, a loopback, link-local or "
                        "private address (the server allows those only with "
                        "--allow-private-webhooks)"
                    )
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for text in addresses:
            try:
                return await self._inner.connect_tcp(
                    text, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - the transport never asks for one
        raise TargetRefusedError("refused: webhooks are never sent to a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a guarded network backend; no proxies, no kept-alive sockets."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        # httpx has no network-backend option; its pool is httpcore's, which has one. No
        # keep-alive: every delivery resolves and checks its host afresh.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_keepalive_connections=0,
            network_backend=_GuardedBackend(allow_private),
        )


class WebhookSender:
    """Send due deliveries until ``close()``: at-least-once, retried with backoff.

    At most ``concurrency`` deliveries are in flight, at most one per webhook (so one slow
    receiver holds one slot, and each receiver gets its events in order), and each attempt
    ends after ``timeout`` seconds in total, however slowly the receiver trickles its answer.
    """

    def __init__(
        self,
        webhooks: WebhookService,
        *,
        concurrency: int = 8,
        timeout: float = 15.0,
        interval: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.webhooks = webhooks
        self.concurrency = concurrency
        self.timeout = timeout
        self.interval = interval
        self._transport = transport
        self._wake = asyncio.Event()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Look for due deliveries now; safe from any thread (a store listener calls it)."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to wake
            loop.call_soon_threadsafe(self._wake.set)

    def on_releases(self, _notices: Sequence[object]) -> None:
        """Store listener: a release committed, so deliveries may have been queued."""
        self.wake()

    def close(self) -> None:
        """Stop taking deliveries; ``run`` returns once those in flight are settled."""
        self._closing = True
        self.wake()

    async def run(self) -> None:
        """The sending loop; returns after ``close()``."""
        self._loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        busy_hooks: set[str] = set()
        in_flight: set[str] = set()
        transport = self._transport or _GuardedTransport(self.webhooks.allow_private)
        timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0))
        async with httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
        ) as client:
            while not self._closing:
                await slots.acquire()
                # Cleared before looking, so a wake-up during the look is not lost.
                self._wake.clear()
                leased = None
                if not self._closing:
                    try:
                        leased = await run_in_threadpool(
                            self.webhooks.lease_next, list(in_flight), busy_hooks=set(busy_hooks)
                        )
                    except UnavailableError:
                        pass  # the store logs the outage once; leased deliveries are retried
                    except Exception as error:
                        # Never let one bad moment (a busy database, say) end the sender: a
                        # leased delivery whose outcome was not recorded comes back after its
                        # lease.
                        log.warning("webhook lease failed: %s", type(error).__name__)
                if leased is None:
                    slots.release()
                    if self._closing:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.interval)
                    continue
                delivery, hook, body = leased
                busy_hooks.add(hook.id)
                in_flight.add(delivery.id)
                task = asyncio.create_task(self._send(client, delivery, hook, body))
                tasks.add(task)

                def done(
                    finished: asyncio.Task[None], hook_id: str = hook.id, one: str = delivery.id
                ) -> None:
                    tasks.discard(finished)
                    busy_hooks.discard(hook_id)
                    in_flight.discard(one)
                    slots.release()
                    self._wake.set()

                task.add_done_callback(done)
            if tasks:
                # Each attempt ends within ``timeout``; a lease left unsettled is retried later.
                await asyncio.wait(set(tasks), timeout=self.timeout + 5)
                for task in list(tasks):
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _send(
        self, client: httpx.AsyncClient, delivery: Delivery, hook: Webhook, body: bytes
    ) -> None:
        code: int | None = None
        error: str | None = None
        detail = ""
        headers = {
            "Content-Type": "application/json",
            "Heroku-Webhook-Hmac-SHA256": sign_body(hook.secret, body),
            "Heroku-Webhook-Id": delivery.id,
            "User-Agent": f"securekey-webhooks/{__version__}",
        }
        if hook.authorization is not None:
            headers["Authorization"] = hook.authorization
        try:
            if "@" in urlsplit(hook.url).netloc:
                # Stored before URLs with credentials were refused: never send them.
                raise TargetRefusedError("refused: the URL carries credentials; recreate it")
            async with asyncio.timeout(self.timeout):
                # Only the status matters; the body is never read, so it cannot hold us.
                async with client.stream("POST", hook.url, content=body, headers=headers) as r:
                    code = r.status_code
        except TimeoutError:
            # Heroku's ``error_class`` is a class name; the log line says more.
            error, detail = "Timeout", f"no complete answer within {self.timeout:g} s"
        except Exception as failure:  # any failure to post is this attempt's outcome
            refused = _refusal(failure)
            if refused is not None:
                error, detail = "TargetRefused", str(refused)
            else:
                error, detail = type(failure).__name__, ""
        try:
            settled = await run_in_threadpool(self.webhooks.settle, delivery, code, error)
        except Exception as failure:
            log.warning("webhook delivery %s not recorded: %s", delivery.id, type(failure))
            return
        log.info(
            "webhook delivery %s: %s (attempt %d, code %s%s)%s",
            delivery.id,
            settled.status,
            settled.num_attempts,
            code,
            f", {error}" if error else "",
            f": {detail}" if detail else "",
        )
        if settled.next_attempt_at is not None and self._loop is not None:
            delay = (settled.next_attempt_at - self.webhooks.clock.now()).total_seconds()
            self._loop.call_later(max(delay, 0.0), self._wake.set)


def _refusal(error: BaseException) -> TargetRefusedError | None:
    """The target-policy refusal behind ``error``, if any (httpx may wrap it)."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, TargetRefusedError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
