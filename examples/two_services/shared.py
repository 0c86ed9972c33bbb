"""What both example services share: settings from the environment and the key ring.

Settings (environment variables):

``SECUREKEY_URL``, ``SECUREKEY_TOKEN``
    The securekey server and this service's *app* token (``POST /apps/{app}/tokens``).
``SECUREKEY_APP``, ``SECUREKEY_VAR``
    The app whose config vars hold the key pair, and the var (defaults per service).
``SECUREKEY_MODE``
    ``bearer`` (default): the key travels as ``Authorization: Bearer <LATEST>``;
    ``signed``: requests are signed with LATEST and no key travels;
    ``naive``: the baseline *not* to copy: one key, no handshake, no refresh.
``SECUREKEY_KEY_SOURCE``
    ``watch`` (default): fetch once, then follow the server's push stream (``WatchedKeyRing``);
    ``fetch``: fetch once at start, afterwards only when an unknown key asks for it
    (``KeyRing.from_server``), the natural choice under ``securekey run`` restarts;
    ``env-file``: read ``SECUREKEY_ENV_FILE`` as written by ``securekey run --no-restart``.
``SECUREKEY_APPLY_DELAY_MAX``
    Drills only: apply each pushed rotation after a random 0..S seconds (default 0), so two
    services learn of a rotation at independent moments.
``SECUREKEY_MIN_REFRESH_INTERVAL``
    At most one on-demand refresh per this many seconds (default 1.0).
``SECUREKEY_HANDOVER``, ``SECUREKEY_HANDOVER_WINDOW``
    service-1 only: what a caller that used PREVIOUS is told. ``hint`` (default): LATEST's
    fingerprint, and the caller refreshes with its own token; ``key``: the seed's handover of
    LATEST itself, only within ``SECUREKEY_HANDOVER_WINDOW`` seconds (default 600) after the
    pair changed, each one counted in ``/stats`` and logged with the caller's address.
``SECUREKEY_HOSTS``
    service-1 only: the names it answers to, comma-separated (e.g. ``127.0.0.1:8001``); a
    request signed for any other host is refused (no replays from services sharing the key).
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

from securekey.client import KeyRing, WatchedKeyRing

Mode = Literal["bearer", "signed", "naive"]
Source = Literal["watch", "fetch", "env-file"]
Handover = Literal["hint", "key"]
MODES: tuple[Mode, ...] = ("bearer", "signed", "naive")
SOURCES: tuple[Source, ...] = ("watch", "fetch", "env-file")
HANDOVERS: tuple[Handover, ...] = ("hint", "key")


class SettingsError(RuntimeError):
    """A setting is missing or wrong; the message says which and what to do."""


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is not set.")
    return value


def _choice(name: str, allowed: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name, default).strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}.") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative.")
    return value


@dataclass(frozen=True)
class Settings:
    """One service's settings, read from the environment by ``Settings.from_env``."""

    url: str
    token: str
    app: str
    var: str
    mode: Mode
    source: Source
    env_file: str | None
    apply_delay_max: float
    min_refresh_interval: float
    handover: Handover
    handover_window: float
    hosts: tuple[str, ...] | None

    @classmethod
    def from_env(cls, *, app: str, var: str) -> Settings:
        """Settings for a service whose defaults are ``app`` and ``var``."""
        source = cast(Source, _choice("SECUREKEY_KEY_SOURCE", SOURCES, "watch"))
        env_file = os.environ.get("SECUREKEY_ENV_FILE") or None
        if source == "env-file" and env_file is None:
            raise SettingsError("SECUREKEY_KEY_SOURCE=env-file needs SECUREKEY_ENV_FILE.")
        needs_server = source != "env-file"
        hosts = os.environ.get("SECUREKEY_HOSTS", "")
        return cls(
            url=_required("SECUREKEY_URL") if needs_server else "",
            token=_required("SECUREKEY_TOKEN") if needs_server else "",
            app=os.environ.get("SECUREKEY_APP") or app,
            var=os.environ.get("SECUREKEY_VAR") or var,
            mode=cast(Mode, _choice("SECUREKEY_MODE", MODES, "bearer")),
            source=source,
            env_file=env_file,
            apply_delay_max=_seconds("SECUREKEY_APPLY_DELAY_MAX", 0.0),
            min_refresh_interval=_seconds("SECUREKEY_MIN_REFRESH_INTERVAL", 1.0),
            handover=cast(Handover, _choice("SECUREKEY_HANDOVER", HANDOVERS, "hint")),
            handover_window=_seconds("SECUREKEY_HANDOVER_WINDOW", 600.0),
            hosts=tuple(h.strip() for h in hosts.split(",") if h.strip()) or None,
        )

    def apply_delay(self) -> Callable[[], float] | None:
        """The random delay before each pushed change is applied, or None for none."""
        if self.apply_delay_max <= 0:
            return None
        rng = random.Random()  # noqa: S311 - simulating propagation delay, not cryptography
        bound = self.apply_delay_max
        return lambda: rng.uniform(0.0, bound)

    def open_ring(self) -> KeyRing:
        """The key ring this service uses; close it with ``close_ring``."""
        if self.source == "env-file":
            assert self.env_file is not None
            return KeyRing.from_env_file(
                self.env_file, self.var, min_refresh_interval=self.min_refresh_interval
            )
        if self.source == "fetch":
            return KeyRing.from_server(
                self.url,
                self.app,
                self.token,
                var=self.var,
                min_refresh_interval=self.min_refresh_interval,
            )
        return WatchedKeyRing.connect(
            self.url,
            self.app,
            self.token,
            var=self.var,
            apply_delay=self.apply_delay(),
            min_refresh_interval=self.min_refresh_interval,
        )


def close_ring(ring: KeyRing) -> None:
    """Stop a watched ring's background thread; other rings hold nothing to close."""
    if isinstance(ring, WatchedKeyRing):
        ring.close()


def ring_stats(ring: KeyRing) -> dict[str, object]:
    """What a ring may say about itself in public: fingerprints and counters, never keys."""
    latest, previous = ring.current.fingerprints
    watcher = ring.watcher if isinstance(ring, WatchedKeyRing) else None
    return {
        "latest": latest,
        "previous": previous,
        "refreshes": ring.refreshes,
        "release": watcher.release if watcher else None,
        # How many times the push stream was (re)opened, and whether it is open now.
        "streams_opened": watcher.streams_opened if watcher else None,
        "streaming": watcher.streaming if watcher else None,
        "pid": os.getpid(),
    }


#: Each service prints one line starting with this when it stops: its counters as JSON.
EXIT_STATS = "two-services-stats "
#: And this line once it serves (its server handles SIGTERM from then on, so it will print the
#: stats line when stopped; a process stopped while still importing just ends).
STARTED = "two-services-started "


def print_started(service: str) -> None:
    """Say this process serves now."""
    print(STARTED + service, file=sys.stderr, flush=True)


def print_exit_stats(service: str, counts: object, ring: KeyRing) -> None:
    """Say what this process did before it goes (a restart would lose it otherwise)."""
    line = json.dumps({"service": service, "counts": counts, "ring": ring_stats(ring)})
    print(EXIT_STATS + line, file=sys.stderr, flush=True)
