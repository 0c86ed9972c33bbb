"""API tokens, stored as keyed digests only (the value itself is never written)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from securekey.domain.models import Token
from securekey.services.ports import TOKEN_REVOKED, ReleaseNotice
from securekey.store import rows
from securekey.store import tables as t
from securekey.store.repository.base import RepositoryBase, where_given

__all__ = ["TokensPart"]


class TokensPart(RepositoryBase):
    """App and operator tokens: found by digest, listed, revoked, touched on use."""

    def add_token(self, token: Token) -> None:
        self.conn.execute(t.tokens.insert().values(**rows.token_row(token)))

    def find_token(self, token_hash: str) -> Token | None:
        return self._one(sa.select(t.tokens).where(t.tokens.c.token_hash == token_hash), rows.token)

    def list_tokens(
        self,
        *,
        app_id: str | None = None,
        kind: str | None = None,
        source: str | None = None,
        lock: bool = False,
    ) -> list[Token]:
        c = t.tokens.c
        query = sa.select(t.tokens).where(c.revoked_at.is_(None)).order_by(c.created_at, c.id)
        query = where_given(query, (c.app_id, app_id), (c.kind, kind), (c.source, source))
        return self._all(self._locking(query) if lock else query, rows.token)

    def delete_token(self, token_id: str) -> None:
        self.conn.execute(t.tokens.delete().where(t.tokens.c.id == token_id))
        self._announce(ReleaseNotice(token_id, TOKEN_REVOKED))

    def revoke_token(self, token_id: str, at: datetime) -> None:
        self.conn.execute(
            t.tokens.update()
            .where(t.tokens.c.id == token_id, t.tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        self._announce(ReleaseNotice(token_id, TOKEN_REVOKED))

    def touch_token(self, token_id: str, at: datetime, since: datetime) -> None:
        self.conn.execute(
            t.tokens.update()
            .where(
                t.tokens.c.id == token_id,
                sa.or_(t.tokens.c.last_used_at.is_(None), t.tokens.c.last_used_at < since),
            )
            .values(last_used_at=at)
        )
