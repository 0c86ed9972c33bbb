"""Every error securekey raises on purpose, under one root so callers can catch them all.

The tree (the API maps each leaf to an HTTP status and a stable ``id`` in one table)::

    SecureKeyError
    ├── ValidationError          bad input: a name, a plan, a value        (422 invalid_params)
    ├── NotFoundError            unknown app, add-on, attachment, release  (404 not_found)
    ├── ConflictError            a name already taken, a var clash         (422)
    │   └── BusyError                a concurrent change won; try again    (409)
    ├── RefusedError             the rules forbid it now                   (422)
    │   ├── AttachedElsewhereError   destroy while other apps use the key
    │   └── LastAttachmentError      detaching an add-on's last attachment
    ├── AuthenticationError      missing or unknown token                  (401)
    ├── ForbiddenError           a token used outside its scope            (403)
    ├── RateLimitedError         too many failed attempts                  (429)
    ├── DecryptionError           stored ciphertext does not decrypt
    ├── RotationFailedError      a scheduled rotation failed and was rolled back
    ├── UnavailableError         the database cannot be reached right now   (503 unavailable)
    └── ConfigurationError       settings that cannot work (master key, URL)

Messages never contain key material: they name things, never their secret values.
This module imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AttachedElsewhereError",
    "AuthenticationError",
    "BusyError",
    "ConfigurationError",
    "ConflictError",
    "DecryptionError",
    "ForbiddenError",
    "LastAttachmentError",
    "NotFoundError",
    "RateLimitedError",
    "RefusedError",
    "RotationFailedError",
    "SecureKeyError",
    "UnavailableError",
    "ValidationError",
]


class SecureKeyError(Exception):
    """Root of every deliberate securekey error; ``message`` is safe to show a user."""

    #: Stable machine-readable id, as in the Heroku Platform API's error bodies.
    id: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(SecureKeyError):
    """An input is ill-formed; ``field`` names which one."""

    id = "invalid_params"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(SecureKeyError):
    """A referenced resource does not exist; ``resource`` says which kind."""

    id = "not_found"

    def __init__(self, resource: str, ref: str, *, message: str | None = None) -> None:
        shown = ref if len(ref) <= 64 else ref[:61] + "..."
        super().__init__(message or f"Couldn't find that {resource.replace('_', '-')}: {shown!r}.")
        self.resource = resource
        self.ref = ref


class ConflictError(SecureKeyError):
    """A name is already taken, or a config var would clash with another one.

    Arguments in the same order as ``ValidationError``: the field (``None`` when no single
    input is at fault), then the message.
    """

    id = "conflict"

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


class BusyError(ConflictError):
    """A concurrent change took the same row or name first; the request can be retried."""

    id = "conflict"

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


class RefusedError(SecureKeyError):
    """The request is well-formed but the rules forbid it in the current state."""

    id = "refused"


class AttachedElsewhereError(RefusedError):
    """Destroying would silently break other apps that still use the key."""

    id = "attached_elsewhere"

    def __init__(self, addon: str, others: Sequence[tuple[str, str]]) -> None:
        listed = ", ".join(f"{name} on {app}" for app, name in others)
        super().__init__(
            f"{addon} is still attached to other apps ({listed}). "
            "Detach those first, or destroy with force to detach it everywhere."
        )
        self.addon = addon
        self.others = list(others)


class LastAttachmentError(RefusedError):
    """An add-on must keep at least one attachment; destroy it instead."""

    id = "last_attachment"

    def __init__(self, addon: str) -> None:
        super().__init__(
            f"{addon} has no other attachment: detaching it would orphan the add-on. "
            "Destroy the add-on instead."
        )
        self.addon = addon


class AuthenticationError(SecureKeyError):
    """No credentials, or credentials that match no token."""

    id = "unauthorized"


class ForbiddenError(SecureKeyError):
    """Valid credentials used for something outside their scope."""

    id = "forbidden"


class RateLimitedError(SecureKeyError):
    """Too many attempts; retry after ``retry_after`` seconds."""

    id = "rate_limit"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DecryptionError(SecureKeyError):
    """Stored ciphertext failed authentication: wrong master key or tampered data."""

    id = "integrity_error"


class ConfigurationError(SecureKeyError):
    """Settings that cannot work, found before anything starts."""

    id = "configuration_error"


class RotationFailedError(SecureKeyError):
    """A rotation failed and was rolled back: the add-on ``addon_id`` is unchanged."""

    id = "rotation_failed"

    def __init__(self, addon_id: str, addon_name: str, reason: str) -> None:
        super().__init__(f"Rotating {addon_name} failed and changed nothing: {reason}")
        self.addon_id = addon_id
        self.addon_name = addon_name
        self.reason = reason


class UnavailableError(SecureKeyError):
    """The database cannot be reached (stopped, restarting, network); try again later.

    Retrying after ``retry_after`` seconds is safe: a change that raised this either committed
    entirely or not at all, and a repeated request finds out which.
    """

    id = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after
