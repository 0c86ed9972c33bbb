"""Use cases over a ``Store``: one transaction each, releases and audit events included."""

from securekey.services.core import (
    DEFAULT_ATTACHMENT,
    MAX_ROTATION_BATCH,
    ROTATION_BATCH,
    AddonCreated,
    BulkRotation,
    Fingerprinter,
    Rotated,
    RotationBatch,
    RotationFailure,
    SecureKeyService,
)
from securekey.services.ports import IDENTITY_CHANGED, ReleaseNotice, Repository, Store

__all__ = [
    "DEFAULT_ATTACHMENT",
    "IDENTITY_CHANGED",
    "MAX_ROTATION_BATCH",
    "ROTATION_BATCH",
    "AddonCreated",
    "BulkRotation",
    "Fingerprinter",
    "ReleaseNotice",
    "Repository",
    "Rotated",
    "RotationBatch",
    "RotationFailure",
    "SecureKeyService",
    "Store",
]
