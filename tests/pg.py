"""A real PostgreSQL server for tests, started from the binaries under /usr/lib/postgresql.

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres`` user
in a directory it owns. The server listens on 127.0.0.1 on a free port and is stopped at exit.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def find_bindir() -> Path | None:
    """The newest PostgreSQL server bin directory on this machine, if any."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for cand in reversed(candidates):
        if Path(cand, "initdb").exists() and Path(cand, "pg_ctl").exists():
            return Path(cand)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and Path(found).with_name("initdb").exists() else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody is listening on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    """A running server; ``url(db)`` gives a SQLAlchemy URL for one of its databases."""

    bindir: Path
    root: Path
    port: int
    as_user: str | None

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*args]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def halt(self) -> None:
        """Stop the server (fast shutdown: sessions are cut off) but keep its data and port."""
        self.run(
            str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop"
        )

    def resume(self) -> None:
        """Start a server stopped by ``halt()`` again, on the same port with the same data."""
        self.run(
            str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-o", _options(self),
            "-l", str(self.root / "log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        _wait_listening(self.port)

    def stop(self) -> None:
        self.run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.root / "data"),
            "-m",
            "immediate",
            "stop",
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start(bindir: Path) -> PgServer:
    """initdb + pg_ctl start on a free port in a fresh temporary directory."""
    as_user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="securekey-pg-"))
    if as_user:
        pw = pwd.getpwnam(as_user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    port = free_port()
    server = PgServer(bindir, root, port, as_user)
    data = root / "data"
    server.run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--no-sync",
    )
    server.run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        _options(server),
        "-l",
        str(root / "log"),
        "-w",
        "-t",
        "60",
        "start",
    )
    try:
        _wait_listening(port)
    except RuntimeError:
        server.stop()
        raise
    return server


def _options(server: PgServer) -> str:
    return (
        f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("PostgreSQL did not start listening")
