"""Real securekey servers for end-to-end tests: `securekey server` as a subprocess."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.pg import free_port


@dataclass
class Server:
    """A running server: its URL, operator token, data directory and process."""

    url: str
    token: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def headers(self) -> dict[str, str]:
        """Operator credentials and Heroku's Accept header."""
        return {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.heroku+json; version=3",
        }

    def client(self) -> httpx.Client:
        """An HTTP client with operator credentials."""
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=10)

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_server(
    data_dir: Path,
    *,
    database_url: str | None = None,
    master_key: str | None = None,
    token: str | None = None,
    extra_env: dict[str, str] | None = None,
    scheduler_interval: float = 0.2,
    extra_args: list[str] | None = None,
    port: int | None = None,
) -> Iterator[Server]:
    """Start ``securekey server`` on ``port`` (default: a free one) and stop it afterwards."""
    port = port or free_port()
    token = token or "sko_test_" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREKEY_")}
    env["SECUREKEY_OPERATOR_TOKEN"] = token
    if master_key:
        env["SECUREKEY_MASTER_KEY"] = master_key
    env.update(extra_env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"server-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "securekey",
        "server",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--scheduler-interval",
        str(scheduler_interval),
    ]
    if database_url:
        cmd += ["--database-url", database_url]
    cmd += extra_args or []
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", token, data_dir, proc, log_path)
    try:
        deadline = time.monotonic() + 60  # a cold start on a loaded 2-core machine is slow
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not become ready:\n{server.log()}")
            time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
