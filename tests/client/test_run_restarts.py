"""``securekey run`` and a failing command: exponential back-off, a reason, and a limit."""

from __future__ import annotations

import io
import itertools
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from securekey.client import FakeSecureKeyServer
from securekey.client._run import run_main
from tests.client.conftest import Served, wait_until

# Logs "<monotonic time> <SECURE_KEY>" on start, stays up for argv[2] seconds, then exits 3.
FAILING = (
    "import os, sys, time\n"
    "open(sys.argv[1], 'a').write(f\"{time.monotonic()} {os.environ['SECURE_KEY']}\\n\")\n"
    "time.sleep(float(sys.argv[2]))\n"
    "sys.exit(3)\n"
)


def _starts(log: Path) -> list[tuple[float, str]]:
    if not log.exists():
        return []
    return [
        (float(t), key)
        for t, key in (line.split(" ", 1) for line in log.read_text().split("\n") if line)
    ]


def _run(live: Served, fake: FakeSecureKeyServer, log: Path, up: float, *options: str) -> list[str]:
    return [
        sys.executable, "-m", "securekey.client._run", "-a", fake.app,
        "--url", live.url, "--token", fake.token, *options,
        "--", sys.executable, "-c", FAILING, str(log), str(up),
    ]  # fmt: skip


def test_a_command_failing_at_start_backs_off_exponentially_then_gives_up(
    live: Served, fake: FakeSecureKeyServer, tmp_path: Path
) -> None:
    """A command that dies at once is restarted after 1, 2, 4 s, then run gives up with its code."""
    log = tmp_path / "starts.log"
    began = time.monotonic()
    done = subprocess.run(
        _run(live, fake, log, 0, "--max-restarts", "3"),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    took = time.monotonic() - began
    starts = _starts(log)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(starts)]
    print(f"starts={len(starts)} gaps={[round(g, 2) for g in gaps]} took={took:.1f}s")
    print(done.stderr)
    assert done.returncode == 3
    assert len(starts) == 4  # the first start and 3 restarts, not a tight loop
    for gap, wanted in zip(gaps, (1, 2, 4), strict=True):
        assert gap >= wanted - 0.05, f"restarted after {gap:.2f} s, wanted a {wanted} s back-off"
    for n, wanted in enumerate((1, 2, 4), start=1):
        assert f"restarting in {wanted:g} s (restart {n} of 3)" in done.stderr
    assert "exited with status 3 after" in done.stderr
    assert "giving up: it failed 4 times in a row" in done.stderr
    assert fake.pair().latest.hex not in done.stderr


def test_a_command_that_ran_long_enough_resets_the_count(
    live: Served, fake: FakeSecureKeyServer, tmp_path: Path
) -> None:
    """A start that lasted --min-uptime counts as healthy: the count and the back-off start over."""
    log = tmp_path / "starts.log"
    err = tmp_path / "run.err"
    with err.open("wb") as stderr:
        argv = _run(live, fake, log, 0.5, "--max-restarts", "1", "--min-uptime", "0.3")
        process = subprocess.Popen(argv, stderr=stderr)
    try:
        # With one restart allowed, a fourth start proves the count was reset each time.
        wait_until(lambda: len(_starts(log)) >= 4, 30, "four starts")
        assert "giving up" not in err.read_text()
        assert err.read_text().count("restarting in 1 s (restart 1 of 1)") >= 3
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(10)
    print(f"starts={len(_starts(log))} status={status}")
    assert status in (3, 128 + signal.SIGTERM)


def test_a_restart_after_a_failure_uses_the_newest_release(
    live: Served, fake: FakeSecureKeyServer, tmp_path: Path
) -> None:
    """A release that arrives during the back-off is what the next start gets."""
    log = tmp_path / "starts.log"
    err = tmp_path / "run.err"
    old = fake.pair().value
    with err.open("wb") as stderr:
        argv = _run(live, fake, log, 0, "--max-restarts", "2", "--max-backoff", "4")
        process = subprocess.Popen(argv, stderr=stderr)
    try:
        wait_until(lambda: "restarting in 1 s" in err.read_text(), 15, "the first back-off")
        new = fake.rotate()
        assert process.wait(30) == 3
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    keys = [key for _, key in _starts(log)]
    print(f"starts={len(keys)} rotated during the back-off")
    assert keys[0] == old
    assert keys[-1] == new.value


def test_sigterm_during_the_back_off_stops_run(
    live: Served, fake: FakeSecureKeyServer, tmp_path: Path
) -> None:
    """run told to stop while it waits to restart the command exits then, without a new start."""
    log = tmp_path / "starts.log"
    err = tmp_path / "run.err"
    with err.open("wb") as stderr:
        argv = _run(live, fake, log, 0, "--max-restarts", "5", "--max-backoff", "30")
        process = subprocess.Popen(argv, stderr=stderr)
    try:
        wait_until(lambda: "restarting in 1 s" in err.read_text(), 15, "the first back-off")
        wait_until(lambda: "restarting in 2 s" in err.read_text(), 15, "the second back-off")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 3
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert len(_starts(log)) == 2
    assert "stopped while waiting to restart" in err.read_text()


def test_restart_options_must_not_be_negative() -> None:
    """Negative --max-restarts, --min-uptime or --max-backoff is a usage error (status 2)."""
    for option in ("--max-restarts", "--min-uptime", "--max-backoff"):
        out = io.StringIO()
        argv = ["-a", "x", "--url", "u", "--token", "t", option, "-1", "--", "cmd"]
        assert run_main(argv, out=out) == 2
        assert re.search(r"must not be negative", out.getvalue())
