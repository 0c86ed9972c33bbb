"""The SQL repository (``services.ports.Repository``), assembled from one part per aggregate.

Each part is a module here; ``base`` holds what they share (connection, cipher, query helpers).
"""

from securekey.store.repository.addons import AddonsPart
from securekey.store.repository.apps import AppsPart
from securekey.store.repository.audit import AuditPart
from securekey.store.repository.releases import RELEASE_CHANNEL, ReleasesPart
from securekey.store.repository.scheduling import SchedulingPart
from securekey.store.repository.tokens import TokensPart
from securekey.store.repository.webhooks import WebhooksPart

__all__ = ["RELEASE_CHANNEL", "SqlRepository"]


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
