"""Name rules for apps, add-ons, attachments and config vars, checked before anything is stored.

Each checker returns the canonical name or raises ``ValidationError`` naming the field.
"""

from __future__ import annotations

import re
import secrets

from securekey.exceptions import ValidationError

__all__ = [
    "ADJECTIVES",
    "attachment_var_name",
    "check_addon_name",
    "check_app_name",
    "check_attachment_name",
    "check_config_var_name",
    "generate_addon_name",
]

# Heroku: lower-case letters, digits and dashes, starting with a letter, 3 to 30 characters.
_APP_NAME = re.compile(r"[a-z][a-z0-9-]{2,29}")
# Add-on names follow the same alphabet; generated ones look like securekey-solid-14332.
_ADDON_NAME = re.compile(r"[a-z][a-z0-9-]{2,62}")
# Attachment names become config var prefixes: an upper-case letter, then A-Z, 0-9 and _.
_ATTACHMENT_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,59}")
_CONFIG_VAR_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")

#: Words for generated add-on names, in Heroku's style.
ADJECTIVES: tuple[str, ...] = (
    "solid",
    "amber",
    "brave",
    "calm",
    "clear",
    "cosmic",
    "crisp",
    "deep",
    "eager",
    "fair",
    "firm",
    "fresh",
    "gentle",
    "golden",
    "grand",
    "keen",
    "lively",
    "lunar",
    "mellow",
    "noble",
    "polar",
    "quiet",
    "rapid",
    "round",
    "sharp",
    "shiny",
    "silent",
    "sleek",
    "smooth",
    "snowy",
    "steady",
    "still",
    "sunny",
    "swift",
    "tidy",
    "vast",
    "vivid",
    "warm",
    "wise",
    "young",
)


def _check_text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"{field} must be a string.")
    if "\x00" in value:
        raise ValidationError(field, f"{field} must not contain NUL bytes.")
    return value


def _matching(field: str, value: object, pattern: re.Pattern[str], rule: str) -> str:
    """``value`` if it is a string ``pattern`` matches in full, not ending in a dash."""
    text = _check_text(field, value)
    if not pattern.fullmatch(text) or text.endswith("-"):
        raise ValidationError(field, rule)
    return text


def check_app_name(name: object) -> str:
    """Return ``name`` if it is a valid app name, else raise ``ValidationError``."""
    return _matching(
        "name",
        name,
        _APP_NAME,
        "Name must start with a letter, end with a letter or digit, and can only contain "
        "lowercase letters, digits, and dashes; it must be 3 to 30 characters long.",
    )


def check_addon_name(name: object) -> str:
    """Return ``name`` if it is a valid add-on name, else raise ``ValidationError``."""
    return _matching(
        "name",
        name,
        _ADDON_NAME,
        "Add-on name must start with a letter and can only contain lowercase letters, "
        "digits, and dashes; it must be 3 to 63 characters long.",
    )


def check_attachment_name(name: object) -> str:
    """Return ``name`` if it is a valid attachment name, else raise ``ValidationError``."""
    return _matching(
        "attachment.name",
        name,
        _ATTACHMENT_NAME,
        "Attachment name must start with an upper-case letter and can only contain "
        "upper-case letters, digits, and underscores (at most 60 characters).",
    )


def check_config_var_name(name: object) -> str:
    """Return ``name`` if it is a valid config var name, else raise ``ValidationError``."""
    text = _check_text("config_var", name)
    if not _CONFIG_VAR_NAME.fullmatch(text):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValidationError(
            "config_var",
            f"Invalid config var name {shown!r}: use upper-case letters, digits and "
            "underscores, not starting with a digit (at most 128 characters).",
        )
    return text


def attachment_var_name(attachment_name: str) -> str:
    """The config var an attachment sets: ``SECURE`` gives ``SECURE_KEY``."""
    return f"{attachment_name}_KEY"


def generate_addon_name(service: str = "securekey") -> str:
    """A fresh candidate name like ``securekey-solid-14332``; callers retry on a clash."""
    return f"{service}-{secrets.choice(ADJECTIVES)}-{secrets.randbelow(90000) + 10000}"
