"""What the operator dashboard needs beyond the API's use cases: a recorded reveal of one var,
and a check that a signed-in session's operator token still exists.
"""

from __future__ import annotations

from securekey.domain import names
from securekey.domain.clock import Clock, SystemClock
from securekey.domain.models import Principal, TokenKind
from securekey.exceptions import NotFoundError
from securekey.services.ports import Store
from securekey.services.unit_of_work import UnitOfWork

__all__ = ["DashboardService"]


class DashboardService:
    """Reveals one config var at a time (audited) and re-checks sessions' tokens by hash."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()

    def reveal_config_var(self, app_ref: str, var: object, *, actor: str) -> str:
        """The value of one config var; the audit log records who saw which var, never the value.

        The read and the audit event share one transaction, so a value is never shown
        without its ``config.reveal`` entry.
        """
        name = names.check_config_var_name(var)
        with UnitOfWork(self.store, self.clock, actor=actor) as uow:
            tx = uow.tx
            app = uow.app(app_ref)
            value = tx.get_plain_vars(app.id).get(name)
            if value is None:
                for att in tx.list_attachments(app_id=app.id):
                    if att.var_name == name:
                        value = tx.get_pairs([att.addon_id])[att.addon_id].value
                        break
            if value is None:
                raise NotFoundError("config_var", name)
            uow.audit("config.reveal", app, {"var": name})
            return value

    def operator_by_hash(self, token_hash: str) -> Principal | None:
        """The operator holding the token with this stored digest, if it is still valid."""
        with self.store.transaction(write=False) as tx:
            token = tx.find_token(token_hash)
        if token is None or token.kind is not TokenKind.OPERATOR or token.revoked_at is not None:
            return None
        return Principal(token.kind, token.id, token.app_id)
