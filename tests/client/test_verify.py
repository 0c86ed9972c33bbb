"""Verifier: bearer keys and signatures, every refusal, and the refresh-once race rule."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from securekey.client import (
    Key,
    KeyPair,
    KeyRing,
    KeyValueReplayCache,
    Reason,
    Signature,
    StaticKeyRing,
    VerificationError,
    Verifier,
    sign_request,
)

NOW = 1_700_000_000.0


def _verifier(ring: KeyRing, **kwargs: object) -> Verifier:
    return Verifier(ring, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def _refused(verifier: Verifier, headers: dict[str, str], body: bytes = b"") -> Reason:
    with pytest.raises(VerificationError) as caught:
        verifier.verify("POST", "/orders?id=1", headers, body)
    assert caught.value.id == "unauthorized"
    return caught.value.reason


def _signed(key_pair: KeyPair, slot: str = "latest", ts: float = NOW, **kw: object) -> str:
    key = key_pair.latest if slot == "latest" else key_pair.previous
    method = str(kw.get("method", "POST"))
    target = str(kw.get("target", "/orders?id=1"))
    body = kw.get("body", b"{}")
    assert isinstance(body, bytes)
    return sign_request(key, method, target, body, timestamp=int(ts))


def test_bearer_latest_and_previous_are_accepted_and_told_apart() -> None:
    """A bearer LATEST is 'latest'; PREVIOUS is 'previous' and marked stale."""
    ring = StaticKeyRing()
    verifier = _verifier(ring)
    pair = ring.current
    ok = verifier.verify("GET", "/", {"Authorization": f"Bearer {pair.latest.hex}"})
    assert (ok.mode, ok.slot, ok.stale) == ("bearer", "latest", False)
    old = verifier.verify("GET", "/", {"authorization": f"bearer {pair.previous.hex.lower()}"})
    assert (old.slot, old.stale, old.keyid) == ("previous", True, pair.previous.fingerprint)
    assert old.latest == pair.latest


def test_a_custom_header_carries_the_bare_key() -> None:
    """With header='X-Securekey-Key' the key travels bare, and Authorization is ignored."""
    ring = StaticKeyRing()
    verifier = _verifier(ring, header="X-Securekey-Key")
    assert verifier.verify("GET", "/", {"x-securekey-key": ring.present()}).slot == "latest"
    assert _refused(verifier, {"Authorization": f"Bearer {ring.present()}"}) == "missing"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Basic abc"}, "malformed"),
        ({"Authorization": "Bearer short"}, "malformed"),
        ({"Authorization": "Bearer " + "G" * 64}, "malformed"),
        ({"Securekey-Signature": "keyid=nope"}, "malformed"),
    ],
)
def test_bad_credentials_are_refused_with_a_reason(headers: dict[str, str], reason: str) -> None:
    """Missing or ill-formed credentials are refused without any refresh."""
    ring = StaticKeyRing()
    assert _refused(_verifier(ring), headers) == reason
    assert ring.refreshes == 0


def test_an_unknown_key_is_refused_after_one_refresh() -> None:
    """A well-formed key nobody knows causes exactly one refresh, then 'unknown_key'."""
    ring = StaticKeyRing()
    stranger = KeyPair.fresh().latest.hex
    assert _refused(_verifier(ring), {"Authorization": f"Bearer {stranger}"}) == "unknown_key"
    assert ring.refreshes == 1


def test_a_client_that_learned_first_is_accepted_after_the_refresh() -> None:
    """The race: a key the server has not heard of yet is accepted once a refresh finds it."""
    ring = StaticKeyRing()
    rotated = ring.stage()
    result = _verifier(ring).verify("GET", "/", {"Authorization": f"Bearer {rotated.latest.hex}"})
    assert result.slot == "latest"
    assert ring.current == rotated


def test_messages_never_contain_the_presented_key() -> None:
    """A refused key does not come back in the error message."""
    ring = StaticKeyRing()
    stranger = KeyPair.fresh().latest.hex
    with pytest.raises(VerificationError) as caught:
        _verifier(ring).verify("GET", "/", {"Authorization": f"Bearer {stranger}"})
    assert stranger not in caught.value.message
    assert stranger.lower() not in caught.value.message


def test_signed_requests_with_either_key_are_accepted() -> None:
    """A signature by LATEST is 'latest'; one by PREVIOUS is 'previous'."""
    ring = StaticKeyRing()
    verifier = _verifier(ring)
    pair = ring.current
    for slot in ("latest", "previous"):
        headers = {"Securekey-Signature": _signed(pair, slot)}
        result = verifier.verify("POST", "/orders?id=1", headers, b"{}")
        assert (result.mode, result.slot) == ("signed", slot)


def test_a_tampered_request_is_refused() -> None:
    """Changing the body, target, method or signature after signing is 'bad_signature'."""
    ring = StaticKeyRing()
    verifier = _verifier(ring)
    header = _signed(ring.current)
    assert _refused(verifier, {"Securekey-Signature": header}, b"{ }") == "bad_signature"
    with pytest.raises(VerificationError, match="does not match"):
        verifier.verify("POST", "/orders?id=2", {"Securekey-Signature": header}, b"{}")
    with pytest.raises(VerificationError, match="does not match"):
        verifier.verify("PUT", "/orders?id=1", {"Securekey-Signature": header}, b"{}")
    flipped = header[:-1] + ("0" if header[-1] != "0" else "1")
    assert _refused(verifier, {"Securekey-Signature": flipped}, b"{}") == "bad_signature"
    assert ring.refreshes == 0


def test_a_replayed_request_is_refused() -> None:
    """The same signed request a second time is 'replayed'."""
    ring = StaticKeyRing()
    verifier = _verifier(ring)
    headers = {"Securekey-Signature": _signed(ring.current)}
    verifier.verify("POST", "/orders?id=1", headers, b"{}")
    assert _refused(verifier, headers, b"{}") == "replayed"


@pytest.mark.parametrize("skew", [-301, 301, 10_000])
def test_timestamps_beyond_the_window_are_stale(skew: int) -> None:
    """Signatures from more than the window in the past or future are 'stale'."""
    ring = StaticKeyRing()
    headers = {"Securekey-Signature": _signed(ring.current, ts=NOW + skew)}
    assert _refused(_verifier(ring), headers, b"{}") == "stale"


def test_the_window_is_configurable() -> None:
    """A 10 s window refuses 11 s of skew and accepts 9 s."""
    ring = StaticKeyRing()
    verifier = _verifier(ring, window=10)
    late = {"Securekey-Signature": _signed(ring.current, ts=NOW - 11)}
    assert _refused(verifier, late, b"{}") == "stale"
    ok = {"Securekey-Signature": _signed(ring.current, ts=NOW - 9)}
    assert verifier.verify("POST", "/orders?id=1", ok, b"{}").slot == "latest"


def test_an_unknown_fingerprint_refreshes_once_then_is_refused() -> None:
    """A signature naming a key nobody knows refreshes once, then is 'unknown_key'."""
    ring = StaticKeyRing()
    headers = {"Securekey-Signature": _signed(KeyPair.fresh())}
    assert _refused(_verifier(ring), headers, b"{}") == "unknown_key"
    assert ring.refreshes == 1


def test_a_signature_by_a_key_learned_by_refresh_is_accepted() -> None:
    """The race in signed mode: the fingerprint is found after the refresh."""
    ring = StaticKeyRing()
    rotated = ring.stage()
    headers = {"Securekey-Signature": _signed(rotated)}
    assert _verifier(ring).verify("POST", "/orders?id=1", headers, b"{}").slot == "latest"


def test_modes_limit_what_is_accepted() -> None:
    """A signed-only verifier refuses bearer keys; a bearer-only one ignores signatures."""
    ring = StaticKeyRing()
    signed_only = _verifier(ring, modes=("signed",))
    assert _refused(signed_only, {"Authorization": f"Bearer {ring.present()}"}) == "missing"
    bearer_only = _verifier(ring, modes=("bearer",))
    assert not bearer_only.wants_body({"Securekey-Signature": "x"})
    headers = {"Securekey-Signature": _signed(ring.current)}
    assert _refused(bearer_only, headers, b"{}") == "missing"
    with pytest.raises(ValueError, match="modes"):
        Verifier(ring, modes=())


@pytest.mark.anyio
async def test_async_verification_refreshes_without_blocking() -> None:
    """averify: one of many concurrent requests waits for the refresh, the rest are told when."""
    ring = StaticKeyRing()
    rotated = ring.stage()
    verifier = _verifier(ring)
    headers = {"Authorization": f"Bearer {rotated.latest.hex}"}
    results = await asyncio.gather(
        *(verifier.averify("GET", "/", headers) for _ in range(20)), return_exceptions=True
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, VerificationError)]
    assert [r.slot for r in accepted] == ["latest"]
    assert len(refused) == 19
    assert all(r.reason == "unknown_key" and r.retry_after is not None for r in refused)
    assert ring.refreshes == 1
    again = await verifier.averify("GET", "/", headers)  # what the client does after
    assert again.slot == "latest"
    assert ring.refreshes == 1


class _Gated:
    """A fetcher that finds nothing new, blocking each fetch until ``gate`` opens."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate, self.calls = gate, 0

    def fetch(self) -> KeyPair | None:
        self.calls += 1
        self.gate.wait(30)
        return None

    async def afetch(self) -> KeyPair | None:  # pragma: no cover - the sync path is tested
        return self.fetch()


def _verify_in_threads(verifier: Verifier, headers: dict[str, str], n: int) -> list[float]:
    """Run ``n`` refused verifications at once in real threads; each one's duration."""
    durations: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def one() -> None:
        start.wait(10)
        began = time.monotonic()
        with pytest.raises(VerificationError):
            verifier.verify("GET", "/", headers)
        with lock:
            durations.append(time.monotonic() - began)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert len(durations) == n
    return durations


def test_unknown_key_is_refused_at_once_when_a_refresh_is_not_allowed_yet() -> None:
    """Right after a refresh, 8 worker threads presenting unknown keys are all refused fast.

    They used to sit out ``min_refresh_interval`` (5 s here) waiting for the next allowed
    refresh, so a few such requests a second held every WSGI thread.
    """
    ring = KeyRing(KeyPair.fresh(), fetcher=_Gated(threading.Event()), min_refresh_interval=5)
    ring._fetcher.gate.set()  # type: ignore[union-attr]
    verifier = _verifier(ring)
    headers = {"Authorization": f"Bearer {KeyPair.fresh().latest.hex}"}
    assert _refused(verifier, headers) == "unknown_key"  # this one ran the refresh
    durations = _verify_in_threads(verifier, headers, 8)
    assert max(durations) < 2.0, durations  # generous: the machine is loaded
    with pytest.raises(VerificationError) as caught:
        verifier.verify("GET", "/", headers)
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 10


def test_at_most_one_request_waits_per_refresh_and_only_for_a_bounded_time() -> None:
    """While one request waits for a stuck fetch, the others are refused at once; its wait ends.

    8 real threads present an unknown key while the fetch hangs: exactly one waits, and only
    for ``refresh_timeout``; the other 7 return while the fetch is still stuck.
    """
    gate = threading.Event()
    fetcher = _Gated(gate)
    ring = KeyRing(KeyPair.fresh(), fetcher=fetcher, min_refresh_interval=0, refresh_timeout=3)
    verifier = _verifier(ring)
    headers = {"Authorization": f"Bearer {KeyPair.fresh().latest.hex}"}
    try:
        durations = sorted(_verify_in_threads(verifier, headers, 8))
    finally:
        gate.set()
    assert max(durations[:7]) < 2.0, durations
    assert 2.5 <= durations[7] < 10, durations  # the one that waited, for refresh_timeout
    assert fetcher.calls <= 2  # the stuck fetch, and at most the one queued behind it


def test_a_signature_for_one_host_is_refused_by_another_service_sharing_the_key() -> None:
    """Signed for host A, a request replayed to service B (same key) is refused there.

    Kept as is (Host: A) it is not for B; with its Host changed to B the signature breaks.
    """
    ring = StaticKeyRing()
    service_a = _verifier(ring, hosts=["a.internal:8001"])
    service_b = _verifier(ring, hosts=["b.internal:8001"])
    header = sign_request(
        ring.latest, "POST", "/pay", b"{}", host="a.internal:8001", timestamp=int(NOW)
    )
    sent = {"Host": "a.internal:8001", "Securekey-Signature": header}
    with pytest.raises(VerificationError) as caught:
        service_b.verify("POST", "/pay", sent, b"{}")
    assert caught.value.reason == "wrong_host"
    moved = {**sent, "Host": "b.internal:8001"}
    with pytest.raises(VerificationError) as caught:
        service_b.verify("POST", "/pay", moved, b"{}")
    assert caught.value.reason == "bad_signature"
    assert service_a.verify("POST", "/pay", sent, b"{}").slot == "latest"
    with pytest.raises(ValueError, match="hosts"):
        _verifier(ring, hosts="a.internal")


class RedisLike:
    """A dict with redis-py's ``set(name, value, nx=, px=)``, as a shared store would offer."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.data: dict[str, tuple[bytes, float]] = {}
        self.lock = threading.Lock()

    def set(self, name: str, value: bytes, *, nx: bool, px: int) -> bool | None:
        with self.lock:
            held = self.data.get(name)
            if nx and held is not None and held[1] > self.clock():
                return None
            self.data[name] = (value, self.clock() + px / 1000)
            return True


def test_two_verifiers_sharing_a_replay_cache_refuse_the_second_use() -> None:
    """Two processes (verifiers) sharing one store accept a signature once; alone, twice."""
    ring = StaticKeyRing()
    store = RedisLike(lambda: NOW)
    one = _verifier(ring, replay_cache=KeyValueReplayCache(store))
    two = _verifier(ring, replay_cache=KeyValueReplayCache(store))
    headers = {"Securekey-Signature": _signed(ring.current)}
    assert one.verify("POST", "/orders?id=1", headers, b"{}").slot == "latest"
    with pytest.raises(VerificationError) as caught:
        two.verify("POST", "/orders?id=1", headers, b"{}")
    assert caught.value.reason == "replayed"
    [(_, expires)] = store.data.values()
    assert expires == NOW + 300  # kept until the signature's timestamp leaves the window
    # The default cache is one process's memory: a second process accepts the same request.
    separate = [_verifier(ring), _verifier(ring)]
    assert all(v.verify("POST", "/orders?id=1", headers, b"{}") for v in separate)


@pytest.mark.anyio
async def test_averify_awaits_a_shared_cache_that_offers_aremember() -> None:
    """A cache with ``aremember`` is awaited by averify (no blocking call on the event loop)."""

    class AsyncOnly:
        def __init__(self) -> None:
            self.seen: set[str] = set()

        def remember(self, signature: Signature, *, now: float, window: float) -> bool:
            raise AssertionError("averify must use aremember")

        async def aremember(self, signature: Signature, *, now: float, window: float) -> bool:
            fresh = signature.sig not in self.seen
            self.seen.add(signature.sig)
            return fresh

    ring = StaticKeyRing()
    verifier = _verifier(ring, replay_cache=AsyncOnly())
    headers = {"Securekey-Signature": _signed(ring.current)}
    assert (await verifier.averify("POST", "/orders?id=1", headers, b"{}")).slot == "latest"
    with pytest.raises(VerificationError) as caught:
        await verifier.averify("POST", "/orders?id=1", headers, b"{}")
    assert caught.value.reason == "replayed"


def test_a_rotation_is_seen_by_the_next_request() -> None:
    """After the ring swaps its pair, the very next request is checked against the new pair."""
    ring = StaticKeyRing()
    verifier = _verifier(ring)
    first = ring.current
    assert verifier.verify("GET", "/", {"Authorization": f"Bearer {first.latest.hex}"})
    second = ring.rotate()
    ok = verifier.verify("GET", "/", {"Authorization": f"Bearer {second.latest.hex}"})
    assert (ok.slot, ok.keyid, ok.latest) == ("latest", second.latest.fingerprint, second.latest)
    old = verifier.verify("GET", "/", {"Authorization": f"Bearer {first.latest.hex}"})
    assert (old.slot, old.latest) == ("previous", second.latest)
    assert _refused(verifier, {"Authorization": f"Bearer {first.previous.hex}"}) == "unknown_key"
    signed = verifier.verify(
        "POST", "/orders?id=1", {"Securekey-Signature": _signed(second)}, b"{}"
    )
    assert (signed.mode, signed.keyid) == ("signed", second.latest.fingerprint)
    headers = {"Securekey-Signature": _signed(first, "previous", ts=NOW - 1)}
    assert _refused(verifier, headers, b"{}") == "unknown_key"


def test_a_key_spelled_with_lookalike_characters_is_malformed() -> None:
    """A non-ASCII spelling whose upper case is the key ('\\ufb00' is 'FF') is refused."""
    pair = KeyPair(Key("FF" + "0" * 62), Key("1" * 64))
    ring = StaticKeyRing(pair)
    lookalike = "\ufb00" + "0" * 62
    assert lookalike.upper() == pair.latest.hex
    assert _refused(_verifier(ring), {"Authorization": f"Bearer {lookalike}"}) == "malformed"
    assert ring.refreshes == 0


def test_header_names_match_in_any_case_and_the_last_spelling_wins() -> None:
    """Of two spellings of Authorization the later one counts; a signature in any case wins."""
    ring = StaticKeyRing()
    verifier = _verifier(ring)
    good, wrong = f"Bearer {ring.present()}", "Bearer short"
    assert verifier.verify("GET", "/", {"AUTHORIZATION": wrong, "authorization": good})
    assert _refused(verifier, {"authorization": good, "AUTHORIZATION": wrong}) == "malformed"
    tampered = _signed(ring.current, body=b"other")
    headers = {"Authorization": good, "SECUREKEY-SIGNATURE": tampered}
    assert _refused(verifier, headers, b"{}") == "bad_signature"


def test_nothing_a_verifier_holds_shows_key_material() -> None:
    """The repr of every attribute of a verifier that has checked requests names no key."""
    ring = StaticKeyRing()
    verifier = _verifier(ring)
    pair = ring.current
    verifier.verify("GET", "/", {"Authorization": f"Bearer {pair.latest.hex}"})
    verifier.verify("POST", "/orders?id=1", {"Securekey-Signature": _signed(pair)}, b"{}")
    shown = repr(verifier) + "".join(repr(value) for value in vars(verifier).values())
    for key in (pair.latest, pair.previous):
        assert key.hex not in shown.upper()
        assert key.bytes.hex() not in shown.lower()


def test_each_request_is_held_to_its_own_host() -> None:
    """Requests for allowed and other hosts, interleaved, each get their own answer."""
    ring = StaticKeyRing()
    verifier = _verifier(ring, hosts=["svc.internal", "svc.internal:8001"])
    answers = []
    for sent in ["svc.internal:443", "evil.internal", "SVC.internal:8001", "", "svc.internal"]:
        header = sign_request(ring.latest, "GET", "/", b"", host=sent, timestamp=int(NOW))
        headers = {"Securekey-Signature": header} | ({"Host": sent} if sent else {})
        try:
            answers.append(verifier.verify("GET", "/", headers).slot)
        except VerificationError as exc:
            answers.append(exc.reason)
    assert answers == ["latest", "wrong_host", "latest", "wrong_host", "latest"]
