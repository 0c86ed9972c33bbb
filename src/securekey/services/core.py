"""The use cases as one service: each public method is one unit of work in one transaction.

``SecureKeyService`` gathers the use cases of apps (``apps``), add-ons (``addons``) and
rotation (``rotate``) and reads the audit log; ``unit_of_work`` holds what they share.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from securekey.domain.models import AuditEvent, AuditQuery
from securekey.services.addons import DEFAULT_ATTACHMENT, AddonCreated, AddonUseCases
from securekey.services.apps import AppUseCases
from securekey.services.rotate import MAX_ROTATION_BATCH, ROTATION_BATCH, RotationUseCases
from securekey.services.rotation import (
    BulkRotation,
    Rotated,
    RotationBatch,
    RotationFailure,
)
from securekey.services.unit_of_work import Fingerprinter

__all__ = [
    "DEFAULT_ATTACHMENT",
    "MAX_ROTATION_BATCH",
    "ROTATION_BATCH",
    "AddonCreated",
    "BulkRotation",
    "Fingerprinter",
    "Rotated",
    "RotationBatch",
    "RotationFailure",
    "SecureKeyService",
]


class SecureKeyService(AppUseCases, AddonUseCases, RotationUseCases):
    """Apps, add-ons, attachments, config vars, releases and rotations over one ``Store``."""

    def audit_events(self, query: AuditQuery | None = None, /, **filters: Any) -> list[AuditEvent]:
        """Audit events matching ``query`` (``AuditQuery``'s fields may be given as keywords).

        The one way to read the audit log (API, CLI and dashboard): oldest first unless
        ``newest_first``, every given field narrows the answer (see ``AuditQuery``).
        """
        wanted = replace(query or AuditQuery(), **filters)
        with self._uow(write=False) as uow:
            return uow.tx.list_events(wanted)
