"""The SDK's own errors, under the project's one root ``SecureKeyError``.

    SecureKeyError
    ├── ServerUnavailableError          the server cannot be reached, or answered 5xx
    └── AuthenticationError
        └── VerificationError           a presented key or signature was refused (``reason``)

Messages name things (a var, a fingerprint, a host), never key material.
"""

from __future__ import annotations

from typing import Literal

from securekey.exceptions import AuthenticationError, SecureKeyError

__all__ = ["Reason", "ServerUnavailableError", "VerificationError"]

#: Why a request was refused, one stable word each.
Reason = Literal[
    "missing", "malformed", "unknown_key", "bad_signature", "stale", "replayed", "wrong_host"
]


class ServerUnavailableError(SecureKeyError):
    """The securekey server could not be reached, or it answered with a server error."""

    id = "unavailable"


class VerificationError(AuthenticationError):
    """A request's key or signature was refused; ``reason`` says why in one stable word."""

    def __init__(self, reason: Reason, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        #: Set when the key was unknown but the ring could not refresh yet: seconds after
        #: which the same request may succeed (a refresh is on its way).
        self.retry_after = retry_after
