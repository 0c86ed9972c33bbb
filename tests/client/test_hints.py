"""The SDK's refusals a newcomer meets first say what is wrong and what to do (issue 12)."""

from __future__ import annotations

import pytest

from securekey.client import KeyRing, StaticKeyRing, VerificationError, Verifier, sign_request
from securekey.exceptions import NotFoundError


def test_from_environ_names_the_unset_variable_and_securekey_run() -> None:
    """An unset variable says it is the environment that lacks it, and suggests securekey run."""
    with pytest.raises(NotFoundError) as caught:
        KeyRing.from_environ("SECURE_KEY", environ={})
    message = caught.value.message
    assert "environment variable SECURE_KEY is not set" in message
    assert "securekey run" in message
    assert "Couldn't find" not in message


def test_signed_request_to_a_bearer_only_verifier_says_signatures_are_not_accepted() -> None:
    """A signed request where only bearer keys are accepted is told so, not 'missing'."""
    ring = StaticKeyRing()
    verifier = Verifier(ring, modes=("bearer",))
    header = sign_request(ring.current.latest, "GET", "/x", b"")
    with pytest.raises(VerificationError) as caught:
        verifier.verify("GET", "/x", {"Securekey-Signature": header})
    assert "Signed requests" in str(caught.value)
    assert "not accepted here" in str(caught.value)
    assert "Authorization: Bearer" in str(caught.value)
