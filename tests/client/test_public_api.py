"""The SDK's public surface and its promise to stay light."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import securekey.client

EXPECTED = {
    "ACCEPT",
    "DEFAULT_KEY_HEADER",
    "LATEST_FINGERPRINT_HEADER",
    "LATEST_KEYID_HEADER",
    "LATEST_KEY_HEADER",
    "RETRY_AFTER_HEADER",
    "SIGNATURE_HEADER",
    "AsyncWatchedKeyRing",
    "Backoff",
    "ChangeCallback",
    "ConfigSnapshot",
    "ConfigWatcher",
    "FakeSecureKeyServer",
    "Fetcher",
    "Handover",
    "HandoverStats",
    "Key",
    "KeyPair",
    "KeyRing",
    "KeyValueReplayCache",
    "Mode",
    "Reason",
    "ReplayCache",
    "ReplayCacheProtocol",
    "SecureKeyAuth",
    "SecureKeyMiddleware",
    "SecureKeyRequestsAuth",
    "SecureKeyWSGIMiddleware",
    "ServerUnavailableError",
    "SetIfAbsent",
    "Signature",
    "SnapshotCallback",
    "Slot",
    "StaticKeyRing",
    "Verified",
    "VerificationError",
    "Verifier",
    "WatchedKeyRing",
    "canonical_host",
    "canonical_request",
    "django_settings",
    "fingerprint",
    "flask_config",
    "itsdangerous_keys",
    "parse_pair",
    "read_env_file",
    "sign_request",
    "write_env_file",
}


def test_public_names_are_pinned() -> None:
    """``__all__`` lists exactly the public names, and each one exists."""
    assert set(securekey.client.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(securekey.client, name), name


def test_public_names_come_from_private_modules_or_the_domain() -> None:
    """Each public class and function lives in a private ``_x`` module or the pure domain."""
    for name in EXPECTED:
        obj = getattr(securekey.client, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue  # constants and type aliases
        module = obj.__module__
        assert module.startswith(("securekey.client._", "securekey.domain.")), (name, module)


def test_header_names_are_the_documented_ones() -> None:
    """The wire names are part of the protocol and must not drift."""
    assert securekey.client.DEFAULT_KEY_HEADER == "Authorization"
    assert securekey.client.LATEST_KEY_HEADER == "Securekey-Latest-Key"
    assert securekey.client.LATEST_KEYID_HEADER == "Securekey-Latest-Keyid"
    assert securekey.client.LATEST_FINGERPRINT_HEADER == "Securekey-Latest-Fingerprint"
    assert securekey.client.RETRY_AFTER_HEADER == "Securekey-Retry-After"
    assert securekey.client.SIGNATURE_HEADER == "Securekey-Signature"


def test_importing_the_sdk_pulls_in_no_server_dependency() -> None:
    """A fresh interpreter importing securekey.client loads neither SQLAlchemy, cryptography,
    Starlette, uvicorn nor requests, nor any other securekey package than domain/exceptions."""
    code = (
        "import json, sys, securekey.client, securekey.client._run;"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(json.loads(done.stdout))
    for heavy in ("sqlalchemy", "cryptography", "starlette", "uvicorn", "alembic", "requests"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in modules), heavy
    ours = {m for m in modules if m.startswith("securekey.")}
    allowed = ("securekey.client", "securekey.domain", "securekey.exceptions")
    assert all(m.startswith(allowed) for m in ours), sorted(ours)
