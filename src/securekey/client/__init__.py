"""The securekey SDK: key rings, live refresh, the graceful-rotation handshake, ``run``.

Light on purpose: it needs only the standard library and httpx (never the server's stack).
Present and sign with LATEST; accept LATEST, then PREVIOUS. Everything public is listed in
``__all__`` below and pinned by a test.
"""

from securekey.client._api import ACCEPT, ConfigSnapshot
from securekey.client._auth import SecureKeyAuth, SecureKeyRequestsAuth
from securekey.client._envfile import read_env_file, write_env_file
from securekey.client._errors import Reason, ServerUnavailableError, VerificationError
from securekey.client._fake import FakeSecureKeyServer
from securekey.client._frameworks import django_settings, flask_config, itsdangerous_keys
from securekey.client._handshake import (
    LATEST_FINGERPRINT_HEADER,
    LATEST_KEY_HEADER,
    LATEST_KEYID_HEADER,
    RETRY_AFTER_HEADER,
    Handover,
    HandoverStats,
)
from securekey.client._middleware import SecureKeyMiddleware
from securekey.client._ring import ChangeCallback, Fetcher, KeyRing, StaticKeyRing
from securekey.client._signing import (
    SIGNATURE_HEADER,
    KeyValueReplayCache,
    ReplayCache,
    ReplayCacheProtocol,
    SetIfAbsent,
    Signature,
    canonical_host,
    canonical_request,
    sign_request,
)
from securekey.client._verify import DEFAULT_KEY_HEADER, Mode, Verified, Verifier
from securekey.client._watch import Backoff, ConfigWatcher, SnapshotCallback
from securekey.client._watched import AsyncWatchedKeyRing, WatchedKeyRing
from securekey.client._wsgi import SecureKeyWSGIMiddleware
from securekey.domain.keys import Key, KeyPair, Slot, fingerprint, parse_pair

__all__ = [
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
    "Slot",
    "SnapshotCallback",
    "StaticKeyRing",
    "VerificationError",
    "Verified",
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
]
