"""The SQL repository (``services.ports.Repository``), assembled from one part per aggregate.

Values are encrypted on the way in and decrypted on the way out (``store.rows``, ``store.aad``):
nothing above the store sees ciphertext and nothing below it sees plaintext.
"""

from securekey.store.repository.addons import AddonsPart
from securekey.store.repository.apps import AppsPart
from securekey.store.repository.audit import AuditPart
from securekey.store.repository.releases import ReleasesPart
from securekey.store.repository.scheduling import SchedulingPart
from securekey.store.repository.tokens import TokensPart
from securekey.store.repository.webhooks import WebhooksPart

__all__ = ["SqlRepository"]


class SqlRepository(
    AppsPart,
    ReleasesPart,
    AddonsPart,
    SchedulingPart,
    TokensPart,
    WebhooksPart,
    AuditPart,
):
    """``services.ports.Repository`` over one open connection and transaction."""
