"""A smoke run of bench/rotate_due.py at tiny sizes on both backends, so the script cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pg
from tests.conftest import drop_pg_database, new_pg_database

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_rotate_due_bench_prints_every_figure(pg_server: pg.PgServer) -> None:
    """At N=20 it rotates everything exactly once and prints command, machine, rates and ticks."""
    url = new_pg_database(pg_server)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "bench/rotate_due.py",
                "--n",
                "20",
                "--batch",
                "1,10",
                "--workers",
                "2",
                "--idle-total",
                "300",
                "--idle-ticks",
                "3",
                "--database-url",
                url,
            ],
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        drop_pg_database(pg_server, url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("command: ")
    assert "--n 20" in lines[0]
    assert re.match(r"machine: \d+ cores, .+, load average ", lines[1]), lines[1]
    assert lines[2].startswith("due add-ons: 20, each attached to 2 apps")
    rows = {
        (m["backend"], int(m["batch"]), int(m["procs"])): (float(m["rate"]), m["ratio"])
        for m in (
            re.match(
                r"(?P<backend>sqlite|postgres)\s+(?P<batch>\d+)\s+(?P<procs>\d+)\s+[\d.]+\s+"
                r"(?P<rate>\d+)\s*(?P<ratio>[\d.]+x)?$",
                line,
            )
            for line in lines
        )
        if m
    }
    expected = {("sqlite", 1, 1), ("sqlite", 10, 1), ("postgres", 1, 1), ("postgres", 1, 2)}
    expected |= {("postgres", 10, 1), ("postgres", 10, 2)}
    assert set(rows) == expected, done.stdout
    assert all(rate > 0 for rate, _ in rows.values())
    assert rows[("postgres", 10, 2)][1] is not None
    idle = [line for line in lines if line.startswith("idle tick, 300 add-ons none due")]
    assert [line.split(",")[2].split(":")[0].strip() for line in idle] == ["sqlite", "postgres"]
