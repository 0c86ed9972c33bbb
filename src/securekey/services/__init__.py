"""Use cases over a ``Store``: one transaction each, releases and audit events included."""

from securekey.services.core import (
    DEFAULT_ATTACHMENT,
    AddonCreated,
    Fingerprinter,
    Rotated,
    SecureKeyService,
)
from securekey.services.ports import IDENTITY_CHANGED, ReleaseNotice, Repository, Store

__all__ = [
    "DEFAULT_ATTACHMENT",
    "IDENTITY_CHANGED",
    "AddonCreated",
    "Fingerprinter",
    "ReleaseNotice",
    "Repository",
    "Rotated",
    "SecureKeyService",
    "Store",
]
