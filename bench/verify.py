"""Benchmark: the SDK's bearer and signed verify against itsdangerous unsign with a fallback key.

Times, in one process with ``timeit``: ``Verifier.verify`` of a bearer LATEST and of a bearer
PREVIOUS (the fallback), ``Verifier.verify`` of a signed request, and the anchor, itsdangerous
``Signer.unsign`` with the key list ``[PREVIOUS, LATEST]`` of a value signed with PREVIOUS.
Goals: bearer ≤ 1 µs, signed ≤ 10 µs. Run: ``python bench/verify.py``.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench")]

from _common import Report  # noqa: E402
from itsdangerous import Signer  # noqa: E402

from securekey.client import StaticKeyRing, Verifier, sign_request  # noqa: E402


def per_call(fn: object, number: int) -> float:
    """Microseconds per call: the best of 5 repeats of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def main() -> int:
    """Time each verify, print them with the ratio to itsdangerous."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000, help="calls per repeat")
    parser.add_argument("--smoke", action="store_true", help="1,000 calls per repeat")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    number = 1000 if args.smoke else args.number
    report = Report("verify", Path(args.json) if args.json else None)
    ring = StaticKeyRing()
    pair = ring.current
    bearer = Verifier(ring, modes=("bearer",))
    latest = {"Authorization": f"Bearer {pair.latest.hex}"}
    previous = {"Authorization": f"Bearer {pair.previous.hex}"}
    signed = Verifier(ring, modes=("signed",), window=1e9)
    # A fresh nonce per call would measure the replay cache filling up; the anchor signs once
    # too. So the signed figure re-verifies one request with the replay cache turned off.
    signed.replays.remember = lambda *a, **k: True  # type: ignore[method-assign]
    header = sign_request(pair.latest, "POST", "/orders?x=1", b'{"n":1}', host="svc:8001")
    sig_headers = {"Securekey-Signature": header, "Host": "svc:8001"}
    signer = Signer([pair.previous.hex, pair.latest.hex])
    old = Signer(pair.previous.hex).sign(b"service-2")
    anchor = per_call(lambda: signer.unsign(old), number)
    figures = [
        ("bearer KeyRing.verify, LATEST", lambda: ring.verify(pair.latest.hex), "<= 1 us", 1.0),
        ("bearer verify, LATEST", lambda: bearer.verify("GET", "/", latest), "<= 1 us", 1.0),
        ("bearer verify, PREVIOUS", lambda: bearer.verify("GET", "/", previous), "<= 1 us", 1.0),
        (
            "signed verify",
            lambda: signed.verify("POST", "/orders?x=1", sig_headers, b'{"n":1}'),
            "<= 10 us",
            10.0,
        ),
    ]
    for label, fn, goal, bound in figures:
        value = per_call(fn, number)
        report.figure(label, value, "us", anchor=anchor, anchor_label="itsdangerous unsign "
                      "(fallback key)", goal=goal, met=value <= bound, target=bound)  # fmt: skip
    report.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
