"""Fixtures for the fault tests: a PostgreSQL server of their own, which they may stop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import pg
from tests.conftest import _require_postgres


@pytest.fixture
def own_pg() -> Iterator[pg.PgServer]:
    """A PostgreSQL server for one test alone: stopping it disturbs no other test."""
    bindir = pg.find_bindir()
    if bindir is None:
        if _require_postgres():
            pytest.fail("PostgreSQL server binaries are missing; .ci/run must install them.")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    server = pg.start(bindir)
    yield server
    server.stop()
