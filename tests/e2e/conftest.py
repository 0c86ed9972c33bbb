"""Shared end-to-end fixtures: one real SQLite-backed server for the modules that only add apps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.conftest import own_pg  # noqa: F401 - a PostgreSQL server a test may stop
from tests.servers import Server, running_server

#: The first webhook retry comes this many seconds after a failure (then doubles).
WEBHOOK_BACKOFF = 0.2


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``securekey server`` on SQLite; each test makes its own apps on it.

    Its webhooks may target private addresses: the test receivers listen on 127.0.0.1.
    """
    with running_server(
        tmp_path_factory.mktemp("shared") / "data",
        extra_env={
            "SECUREKEY_WEBHOOK_BACKOFF": str(WEBHOOK_BACKOFF),
            "SECUREKEY_ALLOW_PRIVATE_WEBHOOKS": "1",
        },
    ) as server:
        yield server
