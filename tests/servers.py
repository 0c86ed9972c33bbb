"""Real securekey servers for end-to-end tests: `securekey server` as a subprocess."""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.pg import free_port
from tests.support import wait_ready


@dataclass
class Server:
    """A running server: its URL, operator token, data directory and process."""

    url: str
    token: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    #: The CA that signed the server's certificate, when it serves HTTPS.
    ca_bundle: Path | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Operator credentials and Heroku's Accept header."""
        return {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.heroku+json; version=3",
        }

    def client(self) -> httpx.Client:
        """An HTTP client with operator credentials."""
        verify = ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=10, verify=verify)

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
    tls: tuple[Path, Path, Path] | None = None,
    args: tuple[str, ...] = (),
    separate_stdout: bool = False,
    extra_args: list[str] | None = None,
    port: int | None = None,
) -> Iterator[Server]:
    """Start ``securekey server`` on ``port`` (default: a free one) and stop it afterwards.

    ``tls`` is (certificate, key, CA certificate): the server serves HTTPS with the first two,
    and the test's clients trust the third. ``args`` are added to the command line; with
    ``separate_stdout`` the log file holds stderr (the log stream) only, and stdout goes to
    ``server-PORT.out`` beside it.
    """
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
    if tls is not None:
        cmd += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    cmd += list(args)
    cmd += extra_args or []
    out_path = data_dir.parent / f"server-{port}.out"
    with log_path.open("wb") as log, out_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out if separate_stdout else log,
            stderr=log if separate_stdout else subprocess.STDOUT,
            env=env,
        )
    scheme = "https" if tls else "http"
    ca = tls[2] if tls else None
    server = Server(f"{scheme}://127.0.0.1:{port}", token, data_dir, proc, log_path, ca)
    verify = ssl.create_default_context(cafile=ca) if ca else True
    try:
        wait_ready(server.url, proc, server.log, verify=verify)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
