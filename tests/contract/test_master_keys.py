"""The master-key check and rotation rules, on SQLite and PostgreSQL.

A database records its key's check value at first open and refuses any other key; during a
rotation, a replica that holds only the old key adopts the new one from the database and
reads both; afterwards the old key is retired everywhere.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from securekey.crypto import Cipher, MasterKey
from securekey.domain.clock import FixedClock
from securekey.exceptions import ConfigurationError
from securekey.services import SecureKeyService
from securekey.store import SqlStore, make_engine
from securekey.store import tables as t
from securekey.store.master_keys import (
    begin_rotation,
    census,
    check_master_key,
    finish_rotation,
    key_records,
    reencrypt,
)


def _service(
    db_url: str, key: MasterKey, key_refresh: float = 2.0
) -> tuple[SqlStore, SecureKeyService]:
    cipher = Cipher(key)
    store = SqlStore(make_engine(db_url), cipher, key_refresh=key_refresh)
    return store, SecureKeyService(store, cipher, FixedClock())


def test_first_open_records_the_check_value_and_refuses_other_keys(db_url: str) -> None:
    """The first key is recorded; it opens again; any other key is refused with what to do."""
    key = MasterKey.generate()
    store, service = _service(db_url, key)
    try:
        check_master_key(store.engine, Cipher(key))
        service.create_app("service-1")
        check_master_key(store.engine, Cipher(key))
        with store.engine.connect() as conn:
            records = key_records(conn)
        assert list(records) == [key.key_id]
        assert records[key.key_id].state == "active"
        with pytest.raises(ConfigurationError, match="is not this database's"):
            check_master_key(store.engine, Cipher(MasterKey.generate()))
    finally:
        store.close()


def test_a_database_from_before_check_values_is_checked_by_its_data(db_url: str) -> None:
    """Without a recorded check value, a key that cannot open stored data is refused."""
    key = MasterKey.generate()
    store, service = _service(db_url, key)
    try:
        service.create_app("service-1")
        service.create_addon("service-1", "securekey:daily")
        with pytest.raises(ConfigurationError, match="does not open the data"):
            check_master_key(store.engine, Cipher(MasterKey.generate()))
        with store.engine.connect() as conn:
            assert key_records(conn) == {}
        check_master_key(store.engine, Cipher(key))
        with store.engine.connect() as conn:
            assert list(key_records(conn)) == [key.key_id]
    finally:
        store.close()


def test_a_replica_with_only_the_old_key_joins_a_rotation(db_url: str) -> None:
    """A running store adopts the wrapped new key, writes under it, and reads every value."""
    old, new = MasterKey.generate(), MasterKey.generate()
    replica, service = _service(db_url, old, key_refresh=0.0)
    engine = make_engine(db_url)
    try:
        check_master_key(replica.engine, Cipher(old))
        service.create_app("service-1")
        first = service.create_addon("service-1", "securekey:daily").addon
        pair = service.config_vars("service-1")
        rotator = Cipher(new, [old])
        with engine.begin() as conn:
            begin_rotation(conn, rotator, key_records(conn))
        # The replica's next transaction switches it to the new key; the old one still reads.
        second = service.create_addon("service-1", "securekey:daily", attachment_name="OTHER")
        assert replica.cipher.key_id == new.key_id
        assert set(census(engine)) == {old.key_id, new.key_id}
        done = reencrypt(engine, rotator, batch_size=1)
        assert done.complete
        assert done.rewritten > 0
        finish_rotation(engine, rotator)
        assert set(census(engine)) == {new.key_id}
        after = service.config_vars("service-1")
        assert after["SECURE_KEY"] == pair["SECURE_KEY"]
        assert "OTHER_KEY" in after
        assert first.id != second.addon.id
        with pytest.raises(ConfigurationError, match="retired"):
            check_master_key(engine, Cipher(old))
        check_master_key(engine, Cipher(new))
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(t.master_keys).where(t.master_keys.c.key_id == old.key_id)
            ).one()
        assert row.state == "retired"
        assert row.check_enc is None
        assert row.wrapped_enc is None
    finally:
        replica.close()
        engine.dispose()


def test_a_second_rotation_while_one_is_under_way_is_refused(db_url: str) -> None:
    """Only one rotation at a time: another new key is refused until the first finishes."""
    old = MasterKey.generate()
    store, service = _service(db_url, old)
    try:
        check_master_key(store.engine, Cipher(old))
        service.create_app("service-1")
        with store.engine.begin() as conn:
            begin_rotation(conn, Cipher(MasterKey.generate(), [old]), key_records(conn))
        with (
            pytest.raises(ConfigurationError, match="under way"),
            store.engine.begin() as conn,
        ):
            begin_rotation(conn, Cipher(MasterKey.generate(), [old]), key_records(conn))
    finally:
        store.close()


def test_starting_with_only_the_new_key_mid_rotation_is_refused(db_url: str) -> None:
    """Mid-rotation, the new key alone cannot read what is left: start needs the old one too."""
    old, new = MasterKey.generate(), MasterKey.generate()
    store, service = _service(db_url, old)
    try:
        check_master_key(store.engine, Cipher(old))
        service.create_app("service-1")
        service.create_addon("service-1", "securekey:daily")
        with store.engine.begin() as conn:
            begin_rotation(conn, Cipher(new, [old]), key_records(conn))
        with pytest.raises(ConfigurationError, match="SECUREKEY_OLD_MASTER_KEY"):
            check_master_key(store.engine, Cipher(new))
        check_master_key(store.engine, Cipher(new, [old]))
    finally:
        store.close()
