"""Tokens outlive a master-key rotation: their digest key is stored, not derived per master key.

Token digests are HMACs under a key kept (encrypted) in the database. Were that key derived from
the master key, rotating the master key would silently revoke every app and operator token.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from securekey.crypto import Cipher, MasterKey
from securekey.exceptions import DecryptionError
from securekey.store import make_engine, sqlite_url
from securekey.store import tables as t
from securekey.store.aad import TOKEN_DIGEST_SECRET, secret_aad
from tests.e2e._ops import cli, populate
from tests.servers import running_server

pytestmark = pytest.mark.slow


def test_app_and_operator_tokens_work_after_master_key_rotation(tmp_path: Path) -> None:
    """An app token and an operator token made before a master-key rotation still authenticate
    on a server started with only the new master key, and the old key opens the digest key no
    more."""
    data = tmp_path / "data"
    with running_server(data) as server, server.client() as http:
        made = populate(http)
        minted = http.post("/operator-tokens", json={"description": "second operator"})
        assert minted.status_code == 201, minted.text
        operator_token = minted.json()["token"]
    old = MasterKey.from_file(data / "master.key")
    rotated = cli("master-key", "rotate", "--data-dir", data)
    assert rotated.returncode == 0, rotated.stderr
    new = MasterKey.from_file(data / "master.key")
    assert new.key_id != old.key_id
    engine = make_engine(sqlite_url(data / "securekey.db"))
    try:
        with engine.connect() as conn:
            blob = conn.execute(
                sa.select(t.server_secrets.c.value_enc).where(
                    t.server_secrets.c.name == TOKEN_DIGEST_SECRET
                )
            ).scalar_one()
    finally:
        engine.dispose()
    with pytest.raises(DecryptionError):
        Cipher(old).decrypt(blob, secret_aad(TOKEN_DIGEST_SECRET))
    with running_server(data) as server, server.client() as http:
        consumer = http.get(
            "/apps/service-2/config-vars", headers={"Authorization": f"Bearer {made.app_token}"}
        )
        assert consumer.status_code == 200, consumer.text
        operator = http.get("/apps", headers={"Authorization": f"Bearer {operator_token}"})
        assert operator.status_code == 200, operator.text
