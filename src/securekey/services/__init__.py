"""Use cases over a ``Store``: one transaction each, releases and audit events included."""

from securekey.services.core import (
    DEFAULT_ATTACHMENT,
    AddonCreated,
    Fingerprinter,
    Rotated,
    SecureKeyService,
)
from securekey.services.ports import ReleaseNotice, Repository, Store

__all__ = [
    "DEFAULT_ATTACHMENT",
    "AddonCreated",
    "Fingerprinter",
    "ReleaseNotice",
    "Repository",
    "Rotated",
    "SecureKeyService",
    "Store",
]
