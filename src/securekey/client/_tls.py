"""How SDK (and CLI) clients trust a securekey server's certificate, and say when they do not.

One place for the CA bundle (``ca_bundle=`` or ``$SECUREKEY_CA_BUNDLE``) and its error text.
"""

from __future__ import annotations

import os
import ssl

from securekey.exceptions import ConfigurationError

__all__ = ["CA_BUNDLE_ENV", "tls_verify", "untrusted_certificate"]

#: Names a PEM file of the CA certificates to trust for the server (a private CA, say).
CA_BUNDLE_ENV = "SECUREKEY_CA_BUNDLE"


def tls_verify(ca_bundle: str | os.PathLike[str] | None = None) -> ssl.SSLContext | bool:
    """How to verify the server's certificate: against ``ca_bundle`` or the default CAs.

    ``ca_bundle`` (when None, the file ``SECUREKEY_CA_BUNDLE`` names, like ``requests``'
    ``REQUESTS_CA_BUNDLE``) replaces the default trust store: only its CAs are trusted.
    Certificates are always verified; there is no switch to turn that off.
    """
    path = ca_bundle if ca_bundle is not None else os.environ.get(CA_BUNDLE_ENV) or None
    if path is None:
        return True
    try:
        return ssl.create_default_context(cafile=os.fspath(path))
    except (OSError, ssl.SSLError) as exc:
        source = CA_BUNDLE_ENV if ca_bundle is None else "ca_bundle"
        raise ConfigurationError(
            f"{source}={os.fspath(path)!r} is not a readable PEM file of CA certificates "
            f"({type(exc).__name__})."
        ) from None


def untrusted_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate-verification failure behind a connection error, if that is the cause.

    httpx wraps the ``ssl`` error a few levels deep; this walks the chain (at most six links).
    """
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
