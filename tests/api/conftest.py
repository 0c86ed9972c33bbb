"""The HTTP API in process: a fresh SQLite runtime, a TestClient with lifespan, the seed state.

``api`` is the app under test with an operator token; ``seed`` creates the walkthrough's state
(service-1 bills an add-on attached as SECURE, service-2 attaches it as SERVICE_ONE_SECURE).
``dump_state`` reads every table so a test can prove a refused request changed nothing.
"""

from __future__ import annotations

import asyncio
import shutil
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from securekey.api.app import create_api
from securekey.config import Settings
from securekey.runtime import Runtime, open_runtime
from securekey.services.tokens import TokenService
from securekey.store import tables
from tests.support import Seed, new_app_token, seed_apps

HEROKU_ACCEPT = "application/vnd.heroku+json; version=3"
#: Sentinel for "send no Authorization header at all".
NO_AUTH = ""


@dataclass
class Api:
    """The app under test, its runtime, a client and the operator's token."""

    app: FastAPI
    runtime: Runtime
    client: TestClient
    token: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        """Authorization for ``token`` (the operator's by default)."""
        return {"Authorization": f"Bearer {token or self.token}"}

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request as ``token`` (operator when None; ``NO_AUTH`` sends no credentials)."""
        request = self.client.build_request(method, path, headers=headers, **kwargs)
        if token == NO_AUTH:
            del request.headers["authorization"]
        elif token is not None:
            request.headers["authorization"] = f"Bearer {token}"
        response: httpx.Response = self.client.send(request)
        return response

    def app_token(self, app: str) -> str:
        """A fresh app-scoped token for ``app``."""
        return new_app_token(self.client, app)

    def head_only(
        self, path: str, token: str | None = None, headers: dict[str, str | bytes] | None = None
    ) -> tuple[int, dict[str, str]]:
        """Status and headers of a GET, disconnecting right after the response starts.

        TestClient reads a body to its end, which an event stream never has.
        """
        answer = self.raw("GET", path, token=token, headers=headers)
        return answer.status, answer.headers

    def raw(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str | bytes] | None = None,
        body: bytes = b"",
        first_chunk: bool = False,
    ) -> RawAnswer:
        """One request straight to the ASGI app, header bytes exactly as given.

        TestClient re-encodes header values; this sends latin-1 bytes such as ``\xb2``
        as a server would receive them. Streams are cut off once their response starts.
        """
        sent: dict[str, str | bytes] = {"authorization": f"Bearer {token or self.token}"}
        if token == NO_AUTH:
            del sent["authorization"]
        sent.update({k.lower(): v for k, v in (headers or {}).items()})
        portal = self.client.portal
        assert portal is not None, "use the client as a context manager"
        return portal.call(_asgi_call, self.app, method, path, sent, body, first_chunk)


@dataclass
class RawAnswer:
    """What the app sent: status, headers and as much body as it sent before we left."""

    status: int
    headers: dict[str, str]
    body: bytes


async def _asgi_call(
    app: FastAPI,
    method: str,
    path: str,
    headers: dict[str, str | bytes],
    body: bytes,
    first_chunk: bool = False,
) -> RawAnswer:
    started = asyncio.Event()
    chunk = asyncio.Event()
    result: dict[str, Any] = {"body": b""}
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": body, "more_body": False}
        await (chunk if first_chunk else started).wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result["status"] = message["status"]
            result["headers"] = {k.decode(): v.decode("latin-1") for k, v in message["headers"]}
            started.set()
        elif message["type"] == "http.response.body":
            result["body"] += message.get("body", b"")
            if result["body"] or not message.get("more_body", False):
                chunk.set()

    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": urllib.parse.unquote(raw_path),
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [
            (k.encode(), v if isinstance(v, bytes) else v.encode("latin-1"))
            for k, v in headers.items()
        ],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    try:
        await asyncio.wait_for(app(scope, receive, send), 10)  # type: ignore[arg-type]
    except Exception:
        # Starlette re-raises an unexpected error after answering 500; the answer is the point.
        if "status" not in result:
            raise
    return RawAnswer(int(result["status"]), result["headers"], result["body"])


@contextmanager
def running_api(data_dir: Path, template: Path | None = None, **options: Any) -> Iterator[Api]:
    """The API over a fresh SQLite store in ``data_dir``, lifespan running, no scheduler.

    ``template`` is a data directory with a migrated database to start from (a copy is
    much faster than running the migrations again).
    """
    if template is not None:
        shutil.copytree(template, data_dir)
    runtime = open_runtime(Settings(data_dir=data_dir))
    token = TokenService(runtime.store, runtime.store.cipher).ensure_operator_token()
    assert token is not None
    # Webhooks may target 127.0.0.1: the tests' receivers (and unused ports) live there.
    settings: dict[str, Any] = {
        "run_scheduler": False,
        "auth_failure_limit": 10_000,
        "allow_private_webhooks": True,
    }
    settings.update(options)
    app = create_api(runtime, **settings)
    headers = {"Authorization": f"Bearer {token}", "Accept": HEROKU_ACCEPT}
    try:
        with TestClient(app, headers=headers, raise_server_exceptions=False) as client:
            yield Api(app, runtime, client, token)
    finally:
        runtime.close()


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with a migrated, empty database and a master key, copied per test."""
    path = tmp_path_factory.mktemp("template") / "data"
    open_runtime(Settings(data_dir=path)).close()
    return path


@pytest.fixture
def api(tmp_path: Path, template_dir: Path) -> Iterator[Api]:
    """The API in process on a fresh SQLite database, with an operator token."""
    with running_api(tmp_path / "data", template_dir) as found:
        yield found


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[Api]:
    """One API for a module whose tests only read (faster than a fresh one per test)."""
    with running_api(tmp_path_factory.mktemp("shared") / "data", template_dir) as found:
        yield found


class HasClient(Protocol):
    """Anything with an HTTP client: ``Api``, or a wrapper around a real server's client."""

    @property
    def client(self) -> httpx.Client: ...


def make_seed(api: HasClient) -> Seed:
    """service-1 bills an add-on (SECURE_KEY); service-2 attaches it as SERVICE_ONE_SECURE."""
    return seed_apps(api.client)


@pytest.fixture
def seed(api: Api) -> Seed:
    """The walkthrough's two apps and shared add-on, created through the API."""
    return make_seed(api)


def dump_state(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: equal dumps mean nothing changed.

    A token's ``last_used_at`` is left out: it is bookkeeping that any authenticated request
    may move (coarsely), refused or not.
    """
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            columns = [c for c in table.c if (table.name, c.name) != ("tokens", "last_used_at")]
            rows = conn.execute(sa.select(*columns)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out
