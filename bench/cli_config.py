"""Benchmark: `securekey config -a APP` wall time against the real Heroku CLI on the same server.

Starts `securekey server` (SQLite, seeded with service-1 and its add-on), then runs each
command ``--runs`` times as a fresh process and prints the median and the ratio. The Heroku
CLI is `scripts/install-heroku-cli.sh`'s (.cache/heroku-cli) or `heroku` on PATH; without it,
only securekey is measured. Goal: ≤ 150 ms. Run: ``python bench/cli_config.py --runs 20``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Report, json_arg, securekey_server


def heroku_binary() -> str | None:
    """The pinned Heroku CLI, or one on PATH."""
    pinned = ROOT / ".cache" / "heroku-cli" / "node_modules" / ".bin" / "heroku"
    return str(pinned) if pinned.exists() else shutil.which("heroku")


def wall(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    """Milliseconds of each of ``runs`` runs of ``command`` (each must succeed)."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        times.append((time.perf_counter() - began) * 1000)
        if done.returncode != 0 or "SECURE_KEY" not in done.stdout:
            raise SystemExit(f"{command[0]} failed ({done.returncode}):\n{done.stderr[-1000:]}")
    return times


def main() -> int:
    """Measure both CLIs, print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="2 runs each")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    runs = 2 if args.smoke else args.runs
    report = Report("cli_config", json_arg(args.json))
    securekey = str(Path(sys.executable).parent / "securekey")
    heroku = heroku_binary()
    with securekey_server() as sk, tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SECUREKEY_", "HEROKU_"))}
        env |= {"HOME": home, "SECUREKEY_URL": sk.url, "SECUREKEY_TOKEN": sk.operator}
        env |= {"HEROKU_HOST": sk.url, "HEROKU_API_KEY": sk.operator}
        ours = wall([securekey, "config", "-a", "service-1"], env, runs)
        theirs = wall([heroku, "config", "-a", "service-1"], env, runs) if heroku else []
    median = statistics.median(ours)
    anchor = statistics.median(theirs) if theirs else None
    if anchor is None:
        print("heroku CLI not installed (scripts/install-heroku-cli.sh): no anchor")
    report.figure("securekey config -a APP, median", median, "ms", anchor=anchor,
                  anchor_label="heroku config -a APP", goal="<= 150 ms",
                  met=median <= 150, target=150)  # fmt: skip
    report.data["extra"] = {"securekey": ours, "heroku": theirs}
    report.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
