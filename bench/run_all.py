"""`make bench`: every benchmark script in turn, then docs/benchmarks.md and its plots.

Each script runs as its own process with ``--json`` into ``--results`` (its printed lines kept
beside as ``NAME.out`` and echoed), then ``bench/report.py`` writes the document. ``--smoke``
passes ``--smoke`` to every script (tiny sizes: seconds each), as CI does.
Run: ``python bench/run_all.py`` (about 15 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCRIPTS = ["propagation", "read_path", "rotate_due", "idle_tick", "cli_config", "verify"]


def main() -> int:
    """Run the scripts, then the report; non-zero if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds per script")
    parser.add_argument("--only", help="comma-separated scripts to run (default: all)")
    parser.add_argument("--results", default=str(BENCH / "results"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--images", help="directory for the plots (docs/img beside --out)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); bench/read_path.py needs it")
        return 2
    results = Path(args.results)
    chosen = args.only.split(",") if args.only else SCRIPTS
    if not args.only:  # a whole run starts afresh; --only re-runs some and keeps the others
        shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    failed = []
    for name in chosen:
        command = [
            sys.executable,
            f"bench/{name}.py",
            "--json",
            os.path.relpath(results / f"{name}.json", ROOT),  # the printed command stays short
        ]
        command += ["--smoke"] if args.smoke else []
        print(f"\n=== {name}", flush=True)
        started = time.monotonic()
        with (results / f"{name}.out").open("w") as out:
            proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                out.write(line)
        if proc.wait() != 0:
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - started:.0f} s", flush=True)
    note = "smoke sizes (--smoke): the plumbing, not figures to quote" if args.smoke else ""
    report = [sys.executable, str(BENCH / "report.py"), "--results", str(results)]
    report += ["--out", args.out, "--note", note]
    report += ["--images", args.images] if args.images else []
    if subprocess.run(report, cwd=ROOT, check=False).returncode != 0:
        failed.append("report")
    print(f"\nwhole run: {time.monotonic() - began:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
