"""Dashboard sessions on their own: ids, expiry, sign-out, revocation, bounds."""

from __future__ import annotations

from securekey.web.sessions import SessionStore


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_after_idle_time() -> None:
    """A session unused for longer than ``idle`` is gone; a used one stays."""
    clock = Clock()
    store = SessionStore(idle=60, absolute=3600, clock=clock)
    sid, session = store.create("h" * 64, "token-1")
    clock.now += 59
    assert store.get(sid) is session
    clock.now += 59
    assert store.get(sid) is session
    clock.now += 61
    assert store.get(sid) is None
    assert not store.alive(session)


def test_a_session_ends_at_its_absolute_limit_however_busy() -> None:
    """Even a session used every minute ends ``absolute`` seconds after sign-in."""
    clock = Clock()
    store = SessionStore(idle=120, absolute=600, clock=clock)
    sid, session = store.create("h" * 64, "token-1")
    for _ in range(10):
        clock.now += 59
        assert store.get(sid) is session
    clock.now += 11
    assert store.get(sid) is None


def test_ids_are_random_and_stored_only_hashed() -> None:
    """Two sign-ins get different ids, neither kept as a key, each with its own CSRF token."""
    store = SessionStore()
    sid1, one = store.create("a" * 64, "t1")
    sid2, two = store.create("a" * 64, "t1")
    assert sid1 != sid2
    assert one.csrf != two.csrf
    assert sid1 not in store._sessions
    assert sid2 not in store._sessions
    assert sid1 not in repr(one)
    assert one.csrf not in repr(one)


def test_sign_out_and_revocation_end_sessions() -> None:
    """``end`` forgets one session; ``end_token`` every session of a revoked token."""
    store = SessionStore()
    sid1, _ = store.create("a" * 64, "t1")
    sid2, _ = store.create("a" * 64, "t1")
    sid3, other = store.create("b" * 64, "t2")
    store.end(sid1)
    assert store.get(sid1) is None
    assert store.get(sid2) is not None
    store.end_token("a" * 64)
    assert store.get(sid2) is None
    assert store.get(sid3) is other


def test_unknown_and_absurd_cookies_find_nothing() -> None:
    """Empty, unknown and oversized cookie values match no session."""
    store = SessionStore()
    store.create("a" * 64, "t1")
    assert store.get(None) is None
    assert store.get("") is None
    assert store.get("x" * 43) is None
    assert store.get("x" * 10_000) is None


def test_the_number_of_sessions_is_bounded() -> None:
    """Past ``max_sessions`` the least recently used session makes room."""
    clock = Clock()
    store = SessionStore(max_sessions=3, clock=clock)
    ids = []
    for i in range(3):
        clock.now += 1
        ids.append(store.create("a" * 64, f"t{i}")[0])
    clock.now += 1
    assert store.get(ids[0]) is not None  # used: now the most recent
    clock.now += 1
    newest, _ = store.create("a" * 64, "t9")
    assert store.get(ids[1]) is None
    assert store.get(ids[0]) is not None
    assert store.get(newest) is not None
    assert len(store._sessions) == 3
