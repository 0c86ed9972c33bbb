"""What many tests share: bounded polling, and factories for apps, add-ons, tokens and the seed.

The factories speak HTTP to any ``httpx.Client`` (a TestClient in process, or a real server's
client); each asserts its request succeeded, so a test reads as the behaviour it checks.
"""

from __future__ import annotations

import contextlib
import secrets
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

__all__ = [
    "DEFAULT_PLAN",
    "Seed",
    "app_with_addon",
    "new_addon",
    "new_app",
    "new_app_token",
    "rotate",
    "seed_apps",
    "unique",
    "wait_ready",
    "wait_until",
]

T = TypeVar("T")

#: The plan a factory bills when a test does not care which.
DEFAULT_PLAN = "securekey:fortnightly"


def wait_until(
    condition: Callable[[], T], timeout: float = 5.0, what: str = "", *, interval: float = 0.02
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that; fail at ``timeout``.

    For what a test cannot await (other processes, files, sockets, threads): bounded, so a
    regression fails with ``what`` instead of hanging until pytest's global timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(interval)


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log: Callable[[], str],
    timeout: float = 120.0,
    *,
    path: str = "/readyz",
    verify: ssl.SSLContext | bool = True,
) -> httpx.Response:
    """Wait until ``process`` answers ``url + path`` with 200, and return that answer.

    Raises RuntimeError at once, showing ``log()``, if the process exits; generous by default,
    because on a loaded machine importing the server stack alone can take 30 s.
    """

    def answer() -> httpx.Response | None:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early ({process.returncode}):\n{log()}")
        with contextlib.suppress(httpx.HTTPError):
            got = httpx.get(url + path, timeout=5, verify=verify)
            if got.status_code == 200:
                return got
        return None

    try:
        return wait_until(answer, timeout, f"{url}{path} to answer 200", interval=0.05)
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{log()}") from None


def unique(prefix: str) -> str:
    """A fresh name such as ``hook-3fa2c1d0``: tests sharing a server never collide."""
    return f"{prefix}-{secrets.token_hex(4)}"


def new_app(http: httpx.Client, name: str | None = None, *, prefix: str = "app") -> str:
    """Create an app (``name``, or a unique one starting with ``prefix``); its name."""
    name = name or unique(prefix)
    made = http.post("/apps", json={"name": name})
    assert made.status_code == 201, made.text
    return name


def new_addon(http: httpx.Client, app: str, plan: str = DEFAULT_PLAN, **body: Any) -> str:
    """Bill an add-on to ``app`` (``body`` merged into the create request); its name."""
    made = http.post(f"/apps/{app}/addons", json={"plan": plan, **body})
    assert made.status_code == 201, made.text
    name: str = made.json()["name"]
    return name


def new_app_token(http: httpx.Client, app: str, description: str = "test") -> str:
    """A fresh app-scoped token for ``app``."""
    made = http.post(f"/apps/{app}/tokens", json={"description": description})
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


def app_with_addon(http: httpx.Client, prefix: str = "app", **addon: Any) -> tuple[str, str]:
    """A fresh app with an add-on billed to it (``addon`` merged into the create body)."""
    app = new_app(http, prefix=prefix)
    return app, new_addon(http, app, **addon)


def rotate(http: httpx.Client, addon: str, **body: Any) -> dict[str, Any]:
    """Rotate ``addon`` now; the API's answer (releases, fingerprints)."""
    answer = http.post(f"/addons/{addon}/actions/rotate", json=body)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


@dataclass(frozen=True)
class Seed:
    """The walkthrough's state: two apps, one add-on attached to both (the API's answers)."""

    one: dict[str, Any]
    two: dict[str, Any]
    addon: dict[str, Any]
    attachment: dict[str, Any]


def seed_apps(http: httpx.Client) -> Seed:
    """service-1 bills an add-on (SECURE_KEY); service-2 attaches it as SERVICE_ONE_SECURE."""
    one = http.post("/apps", json={"name": "service-1"})
    two = http.post("/apps", json={"name": "service-2"})
    assert one.status_code == two.status_code == 201, (one.text, two.text)
    addon = http.post(
        "/apps/service-1/addons",
        json={"attachment": {}, "config": {}, "plan": {"name": DEFAULT_PLAN}},
    )
    assert addon.status_code == 201, addon.text
    attached = http.post(
        "/addon-attachments",
        json={
            "addon": {"name": addon.json()["name"]},
            "app": {"name": "service-2"},
            "name": "SERVICE_ONE_SECURE",
        },
    )
    assert attached.status_code == 201, attached.text
    return Seed(one.json(), two.json(), addon.json(), attached.json())
