"""Issue 8, point 2: operator tokens are listed, created and revoked like app tokens; the
environment token replaces the previous one; digests are keyed with the master key."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from securekey.crypto import Cipher, MasterKey
from securekey.exceptions import AuthenticationError, ConfigurationError
from securekey.services.tokens import TokenService
from securekey.store import tables
from tests.api.conftest import Api, Seed, dump_state


def _tokens(api: Api) -> TokenService:
    return TokenService(api.runtime.store, api.runtime.store.cipher)


def test_point2_operator_tokens_are_listed_created_and_revoked(api: Api) -> None:
    """An operator lists operator tokens (never values), creates one shown once, and revokes
    another, which is refused with 401 at once."""
    first = api.client.get("/operator-tokens")
    assert first.status_code == 200
    [mine] = first.json()
    assert mine["kind"] == "operator"
    assert mine["current"] is True
    assert mine["source"] == "generated"
    assert api.token not in first.text
    created = api.client.post("/operator-tokens", json={"description": "ci"})
    assert created.status_code == 201
    made = created.json()
    assert made["token"].startswith("sko_")
    assert made["description"] == "ci"
    assert made["source"] == "api"
    second = made["token"]
    assert api.call("GET", "/apps", token=second).status_code == 200
    listed = api.client.get("/operator-tokens").json()
    assert sorted(t["id"] for t in listed) == sorted([mine["id"], made["id"]])
    assert second not in str(listed)
    assert "hash" not in str(listed)
    revoked = api.call("DELETE", f"/operator-tokens/{mine['id']}", token=second)
    assert revoked.status_code == 200
    assert revoked.json()["id"] == mine["id"]
    refused = api.call("GET", "/apps")
    assert refused.status_code == 401
    assert [t["id"] for t in api.call("GET", "/operator-tokens", token=second).json()] == [
        made["id"]
    ]


def test_point2_the_last_operator_token_cannot_be_revoked(api: Api) -> None:
    """Revoking the only operator token is refused (422, saying what to do) and changes nothing."""
    [mine] = api.client.get("/operator-tokens").json()
    before = dump_state(api.runtime.store.engine)
    refused = api.client.delete(f"/operator-tokens/{mine['id']}")
    assert refused.status_code == 422
    assert refused.json()["id"] == "refused"
    assert "last operator token" in refused.json()["message"]
    assert "tokens:create --operator" in refused.json()["message"]
    assert dump_state(api.runtime.store.engine) == before
    assert api.client.get("/apps").status_code == 200


def test_point2_a_token_may_revoke_itself_while_others_remain(api: Api) -> None:
    """An operator token can revoke itself when another remains; its next request is 401."""
    [mine] = api.client.get("/operator-tokens").json()
    api.client.post("/operator-tokens", json={})
    gone = api.client.delete(f"/operator-tokens/{mine['id']}")
    assert gone.status_code == 200
    assert gone.json()["current"] is True
    assert api.client.get("/apps").status_code == 401


def test_point2_app_tokens_are_not_operator_tokens(api: Api, seed: Seed) -> None:
    """An app token's id is unknown under /operator-tokens (404), and stays valid."""
    raw = api.app_token("service-2")
    token_id = api.client.get("/apps/service-2/tokens").json()[0]["id"]
    assert api.client.delete(f"/operator-tokens/{token_id}").status_code == 404
    assert api.client.delete("/operator-tokens/no-such-token").status_code == 404
    assert api.call("GET", "/apps/service-2/config-vars", token=raw).status_code == 200
    assert token_id not in str(api.client.get("/operator-tokens").json())


def test_point2_an_operator_token_description_is_checked(api: Api) -> None:
    """A description over 200 characters or of the wrong type is 422 and creates nothing."""
    before = dump_state(api.runtime.store.engine)
    assert api.client.post("/operator-tokens", json={"description": "x" * 201}).status_code == 422
    assert api.client.post("/operator-tokens", json={"description": 5}).status_code == 422
    assert dump_state(api.runtime.store.engine) == before


def test_point2_the_environment_token_replaces_the_previous_one(api: Api) -> None:
    """A new SECUREKEY_OPERATOR_TOKEN revokes the previous environment token (not the others),
    and a revoked value is refused at start rather than accepted again."""
    tokens = _tokens(api)
    old, new = "env-token-number-one", "env-token-number-two"
    assert tokens.ensure_operator_token(old) is None
    assert tokens.authenticate(old).kind.value == "operator"
    assert tokens.ensure_operator_token(old) is None  # a restart with the same value
    assert tokens.ensure_operator_token(new) is None
    with pytest.raises(AuthenticationError):
        tokens.authenticate(old)
    assert tokens.authenticate(new).kind.value == "operator"
    assert tokens.authenticate(api.token).kind.value == "operator"  # the generated one stays
    with pytest.raises(ConfigurationError, match="revoked"):
        tokens.ensure_operator_token(old)
    sources = sorted(t.source for t in tokens.list_operator_tokens())
    assert sources == ["env", "generated"]


def test_point2_a_revoked_environment_token_cannot_come_back(api: Api) -> None:
    """An environment token revoked through the API is refused if the server restarts with it."""
    tokens = _tokens(api)
    value = "env-token-leaked-0001"
    tokens.ensure_operator_token(value)
    env_id = next(t.id for t in tokens.list_operator_tokens() if t.source == "env")
    assert api.client.delete(f"/operator-tokens/{env_id}").status_code == 200
    with pytest.raises(ConfigurationError, match="SECUREKEY_OPERATOR_TOKEN"):
        tokens.ensure_operator_token(value)


def test_point2_digests_are_keyed_with_the_master_key(api: Api) -> None:
    """The stored digest is not the token's SHA-256, and without the master key a dumped
    digest does not confirm a guess: another key's service refuses the right token."""
    with api.runtime.store.engine.connect() as conn:
        stored = conn.execute(sa.select(tables.tokens.c.token_hash)).scalar_one()
    assert stored != hashlib.sha256(api.token.encode()).hexdigest()
    assert _tokens(api).digest(api.token) == stored
    stranger = TokenService(api.runtime.store, Cipher(MasterKey.generate()))
    assert stranger.digest(api.token) != stored
    with pytest.raises(AuthenticationError):
        stranger.authenticate(api.token)
