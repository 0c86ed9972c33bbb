"""Benchmark: the config read path (GET config-vars with an app token) against its anchor.

Starts a real `securekey server` (SQLite) and the anchor (bench/anchor_app.py: the same ASGI
stack serving fixed bytes) on 127.0.0.1, drives each with wrk for the same time and
connections, and prints requests/s, latency and the ratio. Run: `python bench/read_path.py`.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until ``url`` answers (bounded)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


def wrk(url: str, token: str, seconds: int, connections: int) -> dict[str, float]:
    """Run wrk and parse requests/s and latency percentiles (ms)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-H", f"Authorization: Bearer {token}", url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if m is None:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "p50": pct("50"), "p99": pct("99"),
            "errors": float(errors.group(1)) if errors else 0.0}  # fmt: skip


def main() -> int:
    """Run both servers, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="securekey-bench-"))
    token = "sko_bench_" + secrets.token_urlsafe(16)
    env = {**os.environ, "SECUREKEY_OPERATOR_TOKEN": token}
    sk_port, anchor_port = free_port(), free_port()
    sk = subprocess.Popen(
        [sys.executable, "-m", "securekey", "server", "--port", str(sk_port),
         "--data-dir", str(tmp / "data"), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    anchor = None
    try:
        base = f"http://127.0.0.1:{sk_port}"
        wait_ready(f"{base}/healthz", sk)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            http.post("/apps", json={"name": "service-1"}).raise_for_status()
            http.post(
                "/apps/service-1/addons", json={"plan": "securekey:fortnightly"}
            ).raise_for_status()
            app_token = http.post("/apps/service-1/tokens", json={}).json()["token"]
            body = http.get("/apps/service-1/config-vars").text
        anchor = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "anchor_app:app", "--port", str(anchor_port),
             "--log-level", "warning", "--no-access-log"],
            cwd=Path(__file__).parent, env={**os.environ, "ANCHOR_BODY": body},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        anchor_url = f"http://127.0.0.1:{anchor_port}/apps/service-1/config-vars"
        wait_ready(anchor_url, anchor)
        sk_url = f"{base}/apps/service-1/config-vars"
        wrk(sk_url, app_token, 2, args.connections)  # warm-up
        wrk(anchor_url, app_token, 2, args.connections)
        ours = wrk(sk_url, app_token, args.seconds, args.connections)
        theirs = wrk(anchor_url, app_token, args.seconds, args.connections)
    finally:
        for proc in (sk, anchor):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    cmd = f"python bench/read_path.py --seconds {args.seconds} --connections {args.connections}"
    print(f"command: {cmd}")
    print(f"{'target':<42} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in (("securekey GET config-vars (app token)", ours),
                    ("anchor: Starlette fixed bytes", theirs)):  # fmt: skip
        print(f"{name:<42} {r['rps']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['errors']:>8.0f}")
    print(f"ratio securekey/anchor (req/s): {ours['rps'] / theirs['rps']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
