"""A smoke run of bench/read_path.py, the command docs/benchmarks.md shows, at one second.

It checks that the script still runs against a real server and prints every line the doc
shows, in the same shape; the figures themselves belong to the doc, not to a test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _documented_run() -> tuple[list[str], list[str]]:
    """The ``$ python bench/read_path.py …`` command in docs/benchmarks.md and its output."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    block = re.search(r"^```\n\$ (python bench/read_path\.py[^\n]*)\n(.*?)^```", text, re.M | re.S)
    assert block is not None, "docs/benchmarks.md shows no bench/read_path.py run"
    return block.group(1).split(), block.group(2).splitlines()


def _shape(line: str) -> re.Pattern[str]:
    """A documented output line as a pattern: its words literal, its figures any number."""
    parts = [re.escape(p) for p in _NUMBER.split(line)]
    pattern = r"\d+(?:\.\d+)?".join(parts)
    pattern = re.sub(r"(\\ )+", r"\\s+", pattern)  # column padding varies with the figures
    return re.compile(pattern)


def test_the_documented_read_path_benchmark_runs_and_prints_every_line() -> None:
    """``python bench/read_path.py`` (as docs/benchmarks.md shows it, for one second) starts
    securekey and its anchor, drives both with wrk and prints each documented line."""
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is missing: .ci/run installs Debian's wrk")
        pytest.skip("wrk is not installed (apt-get install wrk)")
    command, shown = _documented_run()
    args = [a for a in command[2:]]
    if "--seconds" in args:
        args[args.index("--seconds") + 1] = "1"
    done = subprocess.run(
        [sys.executable, "bench/read_path.py", *args, "--connections", "4"],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    printed = done.stdout.splitlines()
    print("\n".join(printed))
    assert len(printed) == len(shown), (printed, shown)
    for doc_line, line in zip(shown, printed, strict=True):
        if doc_line.startswith(("machine:", "command:")):
            assert line.split(":")[0] == doc_line.split(":")[0], line
            continue
        assert _shape(doc_line).fullmatch(line), (doc_line, line)
