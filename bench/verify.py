"""Benchmark: the SDK's bearer and signed verify against itsdangerous unsign with a fallback key.

Times, in one process: ``KeyRing.verify`` of LATEST, ``Verifier.verify`` of a bearer LATEST
and of a bearer PREVIOUS (the fallback), ``Verifier.verify`` of a signed request (one request
verified again and again, the replay cache off, as the anchor checks one value again and
again), and of fresh signed requests (each one new, the replay cache on: what a server does);
the anchor is itsdangerous ``Signer.unsign`` with the key list ``[PREVIOUS, LATEST]`` of a
value signed with PREVIOUS (its fallback path). Each figure is the best of ``--repeats`` (5)
repeats of ``--number`` calls, the repeats interleaved. Goals: bearer ≤ 1 µs, signed ≤ 10 µs.
Run: ``python bench/verify.py``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench")]

from _common import Report  # noqa: E402
from itsdangerous import Signer  # noqa: E402

from securekey.client import (  # noqa: E402
    KeyRing,
    ReplayCache,
    StaticKeyRing,
    Verifier,
    sign_request,
)

METHOD, TARGET, BODY, HOST = "POST", "/orders?x=1", b'{"n":1}', "svc:8001"
REPEATS = 5


def calls(fn: Callable[[], object], number: int) -> Callable[[], float]:
    """One repeat: seconds for ``number`` calls of ``fn``."""
    return lambda: timeit.Timer(fn).timeit(number)


def fresh_signed(ring: KeyRing, number: int) -> Callable[[], float]:
    """One repeat: seconds to verify ``number`` fresh signed requests, the replay cache on.

    Each repeat makes a new verifier (default window, in-memory replay cache) and signs its
    ``number`` requests beforehand (signing is not timed), then verifies each one once, the
    garbage collector off as ``timeit`` has it for the other figures.
    """

    def run() -> float:
        cache = ReplayCache()
        verifier = Verifier(ring, modes=("signed",), hosts=[HOST], replay_cache=cache)
        requests = [
            {"Securekey-Signature": sign_request(ring.latest, METHOD, TARGET, BODY, host=HOST)}
            | {"Host": HOST}
            for _ in range(number)
        ]
        verify = verifier.verify
        # As timeit does for the other figures: the collector off while timing (else the
        # ``number`` request dicts held here, a bench artifact, are walked again and again).
        collecting = gc.isenabled()
        gc.disable()
        try:
            began = time.perf_counter()
            for headers in requests:
                verify(METHOD, TARGET, headers, BODY)
            took = time.perf_counter() - began
        finally:
            if collecting:
                gc.enable()
        if len(cache) != number:
            raise SystemExit("the replay cache did not record every request")
        return took

    return run


def main() -> int:
    """Time each verify, print them with the ratio to itsdangerous."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=100_000, help="calls per repeat")
    parser.add_argument(
        "--repeats", type=int, default=REPEATS, help="repeats (best kept; more on a busy machine)"
    )
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
    signed = Verifier(ring, modes=("signed",), window=1e9, hosts=[HOST])
    # One request verified again and again must not be refused as a replay: that figure
    # turns the replay cache off; the fresh-requests figure below keeps it on.
    signed.replays.remember = lambda *a, **k: True  # type: ignore[method-assign]
    header = sign_request(pair.latest, METHOD, TARGET, BODY, host=HOST)
    sig_headers = {"Securekey-Signature": header, "Host": HOST}
    signer = Signer([pair.previous.hex, pair.latest.hex])
    old = Signer(pair.previous.hex).sign(b"service-2")
    if signer.unsign(old) != b"service-2" or bearer.verify("GET", "/", previous).slot != (
        "previous"
    ):
        raise SystemExit("the anchor or the verifier does not accept its input")
    print(
        f"{number:,} calls x best of {args.repeats}; bearer: 'Authorization: Bearer <64 hex>' "
        f"(one header); signed: {METHOD} {TARGET}, {len(BODY)}-byte body, Host {HOST}, "
        "hosts allow-list on; anchor: itsdangerous Signer([PREVIOUS, LATEST]).unsign of a "
        "value signed with PREVIOUS",
        flush=True,
    )
    anchor_run = calls(lambda: signer.unsign(old), number)
    figures: list[tuple[str, Callable[[], float], str, float]] = [
        ("bearer KeyRing.verify, LATEST", calls(lambda: ring.verify(pair.latest.hex), number),
         "<= 1 us", 1.0),
        ("bearer verify, LATEST", calls(lambda: bearer.verify("GET", "/", latest), number),
         "<= 1 us", 1.0),
        ("bearer verify, PREVIOUS", calls(lambda: bearer.verify("GET", "/", previous), number),
         "<= 1 us", 1.0),
        ("signed verify",
         calls(lambda: signed.verify(METHOD, TARGET, sig_headers, BODY), number), "<= 10 us",
         10.0),
        ("signed verify, fresh requests (replay cache on)", fresh_signed(ring, number),
         "<= 10 us", 10.0),
    ]  # fmt: skip
    # Repeats interleave the anchor and every figure, so a busy moment of a shared machine
    # slows all of them alike; each keeps its best repeat.
    best = [float("inf")] * (len(figures) + 1)
    for _ in range(args.repeats):
        for i, run in enumerate([anchor_run, *(f[1] for f in figures)]):
            best[i] = min(best[i], run() / number * 1e6)
    anchor = best[0]
    for (label, _, goal, bound), value in zip(figures, best[1:], strict=True):
        report.figure(label, value, "us", anchor=anchor, anchor_label="itsdangerous unsign "
                      "(fallback key)", goal=goal, met=value <= bound, target=bound)  # fmt: skip
    report.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
