"""Headless Chromium (Debian's ``chromium``, driven by Playwright) against a real server.

No browser is downloaded: Playwright launches the system's ``chromium``. Without it (or
without the ``playwright`` package) the browser tests skip on a developer's machine and fail
under ``CI=true``, where ``.ci/run`` installs chromium first.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import WEBHOOK_BACKOFF
from tests.servers import Server, running_server

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required for the browser tests in CI", pytrace=False)
    pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session."""
    executable = shutil.which("chromium")
    if executable is None:
        _missing("the chromium package (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``securekey server`` on SQLite; each test makes apps of its own names on it."""
    with running_server(
        tmp_path_factory.mktemp("web") / "data",
        # Its webhook test aims at a closed port on 127.0.0.1 (deliveries fail and retry).
        extra_env={
            "SECUREKEY_WEBHOOK_BACKOFF": str(WEBHOOK_BACKOFF),
            "SECUREKEY_ALLOW_PRIVATE_WEBHOOKS": "1",
        },
    ) as running:
        yield running


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    """The server's HTTP API with the operator token (to set up and to check state)."""
    with server.client() as client:
        yield client


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies) per test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    """A tab in that profile."""
    return context.new_page()


def sign_in(page: Any, server: Server, token: str | None = None) -> None:
    """Sign in through the form, as an operator would."""
    page.goto(server.url + "/")
    page.get_by_label("Operator token").fill(token or server.token)
    page.get_by_role("button", name="Sign in").click()


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot to ``test-results/screenshots/NAME.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
