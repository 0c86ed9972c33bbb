"""Fixtures for the SDK tests: the in-process fake server, and the same fake on a real uvicorn."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from securekey.client import FakeSecureKeyServer
from securekey.client._middleware import ASGIApp
from tests.support import wait_until as wait_until  # re-exported: the SDK tests import it here


@dataclass
class Served:
    """An ASGI app running on uvicorn at ``url`` (127.0.0.1, a free port)."""

    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive(), "uvicorn did not stop"


def serve(app: ASGIApp, port: int = 0) -> Served:
    """Start ``app`` on uvicorn in a thread and return once it accepts connections."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn failed to start"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return Served(f"http://127.0.0.1:{bound}", bound, server, thread)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, as the SDK's watchers do."""
    return "asyncio"


@pytest.fixture
def fake() -> FakeSecureKeyServer:
    """A fresh fake server: app service-1, token test-token, SECURE_KEY at release 1."""
    return FakeSecureKeyServer()


@pytest.fixture
def live(fake: FakeSecureKeyServer) -> Iterator[Served]:
    """The ``fake`` fixture served by a real uvicorn on 127.0.0.1."""
    served = serve(fake)
    yield served
    fake.shutdown()
    served.stop()


@pytest.fixture(autouse=True)
def _quiet_client_logs() -> Iterator[None]:
    """Keep the SDK's logger as each test found it (tests may attach capture handlers)."""
    logger = logging.getLogger("securekey.client")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    with contextlib.suppress(Exception):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
