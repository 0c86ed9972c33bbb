"""What every benchmark script shares: the machine line, free ports, a seeded securekey server,
wrk, percentiles, and the JSON result file `bench/report.py` turns into docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what platform says)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine() -> dict[str, Any]:
    """Cores, CPU model, load and Python: what the figures were measured on."""
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def machine_line(m: dict[str, Any]) -> str:
    """The machine as one printed line."""
    load = " ".join(f"{x:.2f}" for x in m["load"])
    return (
        f"{m['cores']} cores, {m['cpu']}, load average {load}, Python {m['python']}, {m['system']}"
    )


def command_line() -> str:
    """The command that is running, as one could type it again."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(ROOT)
    return shlex.join(["python", str(script), *sys.argv[1:]])


class Report:
    """Printed lines and figures of one script's run, written as JSON at the end.

    ``figure`` records a measured value with its anchor and goal; ``extra`` holds raw
    series (latencies for a CDF, rates by batch) for the plots.
    """

    def __init__(self, name: str, out: Path | None) -> None:
        self.name = name
        self.out = out
        self.data: dict[str, Any] = {
            "script": name,
            "command": command_line(),
            "machine": machine(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "figures": [],
            "extra": {},
        }
        print(f"command: {self.data['command']}", flush=True)
        print(f"machine: {machine_line(self.data['machine'])}", flush=True)

    def figure(
        self,
        label: str,
        value: float,
        unit: str,
        *,
        anchor: float | None = None,
        anchor_label: str = "",
        goal: str = "",
        met: bool | None = None,
        target: float | None = None,
    ) -> None:
        """Print and record one figure, with its ratio to the anchor when there is one.

        ``target`` is the goal's bound in the figure's unit: a missed goal is also stated as
        the measured value over it.
        """
        ratio = value / anchor if anchor else None
        line = f"{label}: {fmt(value)} {unit}"
        if anchor is not None:
            line += f" | {anchor_label}: {fmt(anchor)} {unit} | ratio {ratio:.3g}"
        if goal:
            line += f" | goal {goal}: " + ("met" if met else "MISSED" if met is False else "-")
            if met is False and target:
                line += f" ({value / target:.3g}x the bound)"
        print(line, flush=True)
        self.data["figures"].append(
            {"label": label, "value": value, "unit": unit, "anchor": anchor}
            | {"anchor_label": anchor_label, "ratio": ratio, "goal": goal, "met": met}
            | {"target": target}
        )

    def save(self) -> None:
        """Write the JSON result (when ``--json`` was given)."""
        self.data["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(json.dumps(self.data, indent=1))


def fmt(value: float) -> str:
    """A figure with the precision it deserves: 12,345 / 123.4 / 1.234 / 0.0123."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3g}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[Any], seconds: float = 120) -> None:
    """Wait until ``url`` answers anything (bounded); fail if ``proc`` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited early ({proc.returncode})")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {seconds:g} s")


def raise_open_files(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted`` within the hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass
class SecureKey:
    """A running `securekey server` with service-1, its add-on and an app token."""

    url: str
    operator: str
    app_token: str
    addon: str
    proc: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        """An operator client."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.operator}"}, timeout=30
        )


@contextlib.contextmanager
def securekey_server(*args: str) -> Iterator[SecureKey]:
    """`securekey server` on SQLite in a temporary directory, seeded, stopped afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="securekey-bench-"))
    token = "sko_bench_" + secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREKEY_")}
    env |= {"SECUREKEY_OPERATOR_TOKEN": token, "PYTHONPATH": str(ROOT / "src")}
    port = free_port()
    command = [sys.executable, "-m", "securekey", "server", "--port", str(port)]
    command += ["--data-dir", str(tmp / "data"), "--log-level", "warning", *args]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/healthz", proc)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            http.post("/apps", json={"name": "service-1"}).raise_for_status()
            addon = http.post("/apps/service-1/addons", json={"plan": "securekey:fortnightly"})
            addon.raise_for_status()
            app_token = http.post("/apps/service-1/tokens", json={}).json()["token"]
        yield SecureKey(base, token, app_token, addon.json()["name"], proc)
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def stop(proc: subprocess.Popen[Any] | None) -> None:
    """Terminate ``proc`` and wait for it (kill after 10 s)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def python_server(
    module: str, port: int, *, loop: str, http: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """An anchor ASGI app (``bench/<module>``) on uvicorn with the given loop and parser."""
    command = [sys.executable, "-m", "uvicorn", module, "--port", str(port)]
    command += ["--loop", loop, "--http", http, "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(
        command,
        cwd=BENCH,
        env=os.environ | (env or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str, seconds: float, connections: int, headers: Sequence[str] = ()
) -> dict[str, float]:
    """wrk with one thread: requests/s, p50/p90/p99 (ms), non-2xx responses and errors."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    out = subprocess.run(
        [*command, url], check=True, capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise SystemExit(f"wrk printed no rate:\n{out}")
    result = {"rps": float(rps.group(1))}
    for p in ("50", "75", "90", "99"):
        m = re.search(rf"\s{p}(?:\.000)?%\s+([\d.]+)(us|ms|s)\b", out)
        result[f"p{p}"] = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["non2xx"] = float(bad.group(1)) if bad else 0.0
    result["errors"] = float(sum(int(x) for x in errors.groups())) if errors else 0.0
    return result


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def json_arg(value: str | None) -> Path | None:
    """``--json PATH`` as a Path (None when not given)."""
    return Path(value) if value else None
