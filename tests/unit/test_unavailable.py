"""Which database errors are an outage (503 unavailable) and which stay bugs (500)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from securekey.api.errors import status_for
from securekey.crypto import Cipher, MasterKey
from securekey.exceptions import UnavailableError
from securekey.store import SqlStore, make_engine
from securekey.store.sql import is_disconnect


def _error(engine: sa.Engine, sql: str) -> OperationalError:
    with pytest.raises(OperationalError) as caught, engine.connect() as conn:
        conn.execute(sa.text(sql))
    return caught.value


def test_a_database_file_that_cannot_be_opened_is_an_outage(tmp_path: Path) -> None:
    """SQLite refusing to open its file is unavailability, not a bug."""
    engine = make_engine(f"sqlite:///{tmp_path}/missing-dir/x.db")
    assert is_disconnect(_error(engine, "SELECT 1"))
    engine.dispose()


def test_a_bad_query_is_not_an_outage(tmp_path: Path) -> None:
    """A missing table is a bug: it must not hide behind a 503."""
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    assert not is_disconnect(_error(engine, "SELECT * FROM no_such_table"))
    engine.dispose()


def test_the_store_raises_unavailable_and_the_api_answers_503(tmp_path: Path) -> None:
    """A transaction on a database that cannot be reached raises UnavailableError (503)."""
    store = SqlStore(
        make_engine(f"sqlite:///{tmp_path}/gone/x.db"), Cipher(MasterKey.generate()), migrate=False
    )
    with pytest.raises(UnavailableError) as caught, store.transaction() as tx:
        tx.list_apps()
    assert store.health.down
    assert status_for(caught.value) == 503
    assert caught.value.id == "unavailable"
    assert caught.value.retry_after > 0
    store.close()
