"""``securekey server --workers N``: processes sharing one port on PostgreSQL, refused on SQLite."""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests import pg
from tests.conftest import drop_pg_database, new_pg_database
from tests.servers import Server, running_server
from tests.support import wait_until

pytestmark = pytest.mark.slow


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may hold spaces, so split after its closing paren.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _holder(server_port: int, client_port: int, workers: set[int]) -> int | None:
    """The worker whose file table holds the server end of the connection from ``client_port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            inode = fields[9]
    if inode is None:
        return None
    for pid in workers:
        with_fds = Path(f"/proc/{pid}/fd")
        try:
            links = [os.readlink(fd) for fd in with_fds.iterdir()]
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            return pid
    return None


def _open_stream(server: Server, app_token: str) -> socket.socket:
    """A raw SSE request for service-1's config, its first event already read."""
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"GET /apps/service-1/config-vars/stream HTTP/1.1\r\nHost: x\r\n"
        b"Accept: text/event-stream\r\nAuthorization: Bearer " + app_token.encode() + b"\r\n\r\n"
    )
    _read_until(sock, re.compile(rb"\nid: 2\n"))
    return sock


def _read_until(sock: socket.socket, pattern: re.Pattern[bytes]) -> bytes:
    """Bytes from ``sock`` until ``pattern`` appears (30 s at most)."""
    seen = b""
    deadline = time.monotonic() + 30
    while not pattern.search(seen):
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, f"stream closed before {pattern.pattern!r}: {seen[-500:]!r}"
        seen += chunk
    return seen


@contextmanager
def _two_workers(
    pg_server: pg.PgServer, tmp_path: Path
) -> Iterator[tuple[Server, httpx.Client, set[int]]]:
    """``securekey server --workers 2`` on a fresh PostgreSQL database: the server, an operator
    client, and the two worker pids (checked to be two)."""
    url = new_pg_database(pg_server)
    try:
        with (
            running_server(
                tmp_path / "data",
                database_url=url,
                master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
                args=("--workers", "2"),
            ) as server,
            server.client() as http,
        ):
            workers = _children(server.process.pid)
            assert len(workers) == 2, workers
            yield server, http, workers
    finally:
        drop_pg_database(pg_server, url)


def test_two_workers_on_postgres_serve_and_both_push_a_release(
    pg_server: pg.PgServer, tmp_path: Path
) -> None:
    """With --workers 2 on PostgreSQL two processes serve one port, and watch streams held by
    each of them receive the rotated pair (each worker hears the release through LISTEN)."""
    with _two_workers(pg_server, tmp_path) as (server, http, workers):
        http.post("/apps", json={"name": "service-1"}).raise_for_status()
        http.post("/apps/service-1/addons", json={"plan": "securekey:fortnightly"})
        app_token = http.post("/apps/service-1/tokens", json={}).json()["token"]
        port = int(server.url.rsplit(":", 1)[1])
        streams: dict[int, list[socket.socket]] = {}
        for _ in range(60):  # the kernel picks the accepting worker: open until both hold one
            sock = _open_stream(server, app_token)
            holder = _holder(port, sock.getsockname()[1], workers)
            assert holder is not None
            streams.setdefault(holder, []).append(sock)
            if len(streams) == 2:
                break
        assert set(streams) == workers, "the streams all landed on one worker"
        addon = http.get("/apps/service-1/addons").json()[0]["name"]
        http.post(f"/addons/{addon}/actions/rotate").raise_for_status()
        pair = http.get("/apps/service-1/config-vars").json()["SECURE_KEY"]
        for socks in streams.values():
            for sock in socks:
                got = _read_until(sock, re.compile(rb"\nid: 3\n.*\n\n", re.S))
                assert pair.encode() in got.split(b"\nid: 3\n", 1)[1]
                sock.close()


def test_workers_on_sqlite_are_refused_with_the_reason(tmp_path: Path) -> None:
    """--workers 2 on the embedded SQLite database exits non-zero naming PostgreSQL and why."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREKEY_")}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "securekey", "server", "--port", str(pg.free_port())),
            *("--data-dir", str(tmp_path / "data"), "--workers", "2"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "--workers 2 needs PostgreSQL" in done.stderr
    assert "LISTEN/NOTIFY" in done.stderr


def test_a_killed_worker_is_replaced_and_the_port_keeps_serving(
    pg_server: pg.PgServer, tmp_path: Path
) -> None:
    """SIGKILL of one of two workers: the supervisor starts a new one within seconds, the
    survivor answers meanwhile, and afterwards every request on the shared port succeeds."""
    with _two_workers(pg_server, tmp_path) as (server, http, workers):
        http.post("/apps", json={"name": "service-1"}).raise_for_status()
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        served_meanwhile = http.get("/apps/service-1")
        assert served_meanwhile.status_code == 200, served_meanwhile.text
        replaced = wait_until(
            lambda: (now := _children(server.process.pid)) - workers and len(now) == 2 and now,
            timeout=30,
            what="a new worker in place of the killed one",
        )
        assert victim not in replaced
        print(f"killed worker {victim}; workers now {sorted(replaced)}")
        answers = [http.get("/apps/service-1").status_code for _ in range(40)]
        assert answers == [200] * 40, answers
        assert server.process.poll() is None, "the supervisor exited with a worker"
