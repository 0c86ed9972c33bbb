"""Where the CLI finds its server and token: ``securekey login``'s file, or the environment.

``SECUREKEY_URL`` and ``SECUREKEY_TOKEN`` override the file, each on its own. The file lives in
``$XDG_CONFIG_HOME/securekey/credentials.json`` (``~/.config/...`` by default), mode 0600.
``SECUREKEY_CA_BUNDLE`` names the CA certificates (PEM) to trust for an ``https`` server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from securekey.cli.errors import CliError

__all__ = [
    "DEFAULT_URL",
    "Credentials",
    "credentials_path",
    "forget",
    "load",
    "resolve",
    "save",
]

#: Where ``securekey server`` listens unless told otherwise.
DEFAULT_URL = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class Credentials:
    """A server URL and a token, and where each came from (for error messages)."""

    url: str
    token: str | None
    url_source: str
    token_source: str
    #: A PEM file of the CA certificates to trust instead of the defaults (a private CA).
    ca_bundle: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, token=<redacted>, from={self.token_source!r})"


def credentials_path(env: Mapping[str, str]) -> Path:
    """The credentials file, under ``XDG_CONFIG_HOME`` when it is set (and absolute)."""
    base = env.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "securekey" / "credentials.json"


def load(path: Path) -> dict[str, str]:
    """What ``securekey login`` saved, or nothing."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(
            f"Cannot read {path} ({type(exc).__name__}); run `securekey login` again to rewrite it."
        ) from None
    if not isinstance(raw, dict):
        raise CliError(f"{path} is not a securekey credentials file; run `securekey login`.")
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}


def save(path: Path, url: str, token: str) -> None:
    """Write the file readable by its owner only (the directory too), replacing it whole."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # O_CREAT's mode is masked by the umask and ignored for an existing file: set it again.
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps({"url": url, "token": token}, indent=2).encode() + b"\n")
    finally:
        os.close(fd)
    os.replace(tmp, path)


def forget(path: Path) -> bool:
    """Remove the file; whether there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def resolve(env: Mapping[str, str]) -> Credentials:
    """The server and token to use: the environment first, then the saved login."""
    path = credentials_path(env)
    saved = load(path)

    def pick(variable: str, key: str) -> tuple[str | None, str]:
        """The environment's value, else the saved one; and where it came from."""
        if env.get(variable):
            return env[variable], variable
        if saved.get(key):
            return saved[key], str(path)
        return None, "nowhere"

    url, url_source = pick("SECUREKEY_URL", "url")
    if url is None:
        url, url_source = DEFAULT_URL, "the default"
    token, token_source = pick("SECUREKEY_TOKEN", "token")
    ca_bundle = env.get("SECUREKEY_CA_BUNDLE") or None
    return Credentials(url.rstrip("/"), token, url_source, token_source, ca_bundle)
