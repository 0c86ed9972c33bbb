"""Dashboard sessions, kept server-side: the cookie holds a random id, never the token.

Only the SHA-256 of a session id is kept as the key, so a memory dump or a log line naming a
key cannot be replayed as a cookie. A session ends on sign-out, after ``idle`` without a
request, ``absolute`` after sign-in, or as soon as its operator token is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Session", "SessionStore"]


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class Session:
    """One signed-in browser: whose token (by hash), its CSRF token, and its clock."""

    key: str = field(repr=False)
    token_hash: str = field(repr=False)
    token_id: str
    csrf: str = field(repr=False)
    created: float
    seen: float
    checked: float
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def flash(self, kind: str, message: str) -> None:
        """Queue a message for the next page (``ok`` or ``error``); at most a few are kept."""
        self.flashes = [*self.flashes[-4:], (kind, message)]

    def take_flashes(self) -> list[tuple[str, str]]:
        """The queued messages, once."""
        out, self.flashes = self.flashes, []
        return out


class SessionStore:
    """Sessions in this process's memory, bounded in number and in time.

    Several replicas behind one address need sticky sessions (or one replica serving the
    dashboard); a session on a restarted server is gone and its operator signs in again.
    """

    def __init__(
        self,
        *,
        idle: float = 2 * 3600.0,
        absolute: float = 12 * 3600.0,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle = idle
        self.absolute = absolute
        self.max_sessions = max_sessions
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, token_hash: str, token_id: str) -> tuple[str, Session]:
        """A new session for a verified operator token; returns the cookie value and the session."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        key = _key(session_id)
        session = Session(key, token_hash, token_id, secrets.token_urlsafe(32), now, now, now)
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                self._expire(now)
                if len(self._sessions) >= self.max_sessions:
                    oldest = min(self._sessions, key=lambda k: self._sessions[k].seen)
                    del self._sessions[oldest]
            self._sessions[key] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session for a cookie value, touched; None if unknown or expired."""
        if not session_id or len(session_id) > 100:
            return None
        key = _key(session_id)
        now = self.clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.seen > self.idle or now - session.created > self.absolute:
                del self._sessions[key]
                return None
            session.seen = now
            return session

    def alive(self, session: Session) -> bool:
        """Whether ``session`` is still in the store (for long-lived streams)."""
        now = self.clock()
        with self._lock:
            if self._sessions.get(session.key) is not session:
                return False
            return now - session.created <= self.absolute

    def end(self, session_id: str | None) -> None:
        """Sign out: forget the session."""
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def end_token(self, token_hash: str) -> None:
        """Forget every session of one token (it was revoked)."""
        with self._lock:
            for key, session in list(self._sessions.items()):
                if secrets.compare_digest(session.token_hash, token_hash):
                    del self._sessions[key]

    def _expire(self, now: float) -> None:
        for key, session in list(self._sessions.items()):
            if now - session.seen > self.idle or now - session.created > self.absolute:
                del self._sessions[key]
