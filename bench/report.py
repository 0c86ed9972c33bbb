"""Write docs/benchmarks.md and its plots (docs/img/bench-*.png) from one run's JSON results.

Reads every ``*.json`` the bench scripts wrote into ``--results`` (``bench/run_all.py`` puts
them there) and writes the table of figures with anchors, ratios and goals (a missed goal says
so with the measured ratio), the date, the machine, the commands, and three plots.
Run: ``python bench/report.py --results bench/results``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, fmt, machine_line

ORDER = ["propagation", "read_path", "rotate_due", "idle_tick", "cli_config", "verify"]
TITLES = {
    "propagation": "Rotation → every SSE watcher holding the new pair",
    "read_path": "Config read, app token (wrk, 1 thread)",
    "rotate_due": "Due add-ons rotated per second (2 attachments each)",
    "idle_tick": "Idle scheduler tick",
    "cli_config": "`securekey config -a APP` wall time",
    "verify": "Verify a presented key or signature (SDK)",
}


def load(results: Path) -> dict[str, dict[str, Any]]:
    """The scripts' results by name, in the table's order."""
    found = {}
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        printed = path.with_suffix(".out")
        data["printed"] = printed.read_text() if printed.exists() else ""
        found[data["script"]] = data
    return {name: found[name] for name in ORDER if name in found}


def _status(figure: dict[str, Any]) -> str:
    if not figure["goal"]:
        return ""
    if figure["met"]:
        return f"{figure['goal']}: **met**"
    ratio, target = figure["ratio"], figure.get("target")
    shown = f" (ratio {ratio:.3g})" if ratio is not None and math.isfinite(ratio) else ""
    if target and math.isfinite(figure["value"]):
        shown += f" ({figure['value'] / target:.3g}× the bound)"
    return f"{figure['goal']}: **missed**{shown}"


def _value(x: float | None, unit: str) -> str:
    if x is None:
        return "—"
    if not math.isfinite(x):
        return "not all received"
    return f"{fmt(x)} {unit}"


def table(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The figures table: figure, securekey, anchor, ratio, goal."""
    lines = ["| figure | securekey | anchor in the same run | ratio | goal |", "| --- " * 5 + "|"]
    for name, data in runs.items():
        for f in data["figures"]:
            anchor = (
                f"{f['anchor_label']}: {_value(f['anchor'], f['unit'])}"
                if f["anchor"] is not None
                else "—"
            )
            ratio = f"{f['ratio']:.3g}" if f["ratio"] is not None else "—"
            if f["ratio"] is not None and not math.isfinite(f["ratio"]):
                ratio = "—"
            lines.append(
                f"| {f['label']} ({name}) | {_value(f['value'], f['unit'])} | {anchor} | "
                f"{ratio} | {_status(f)} |"
            )
    return lines


def plot_propagation(data: dict[str, Any], out: Path) -> bool:
    """CDF of watcher latency per size, securekey against the naive fan-out."""
    import matplotlib.pyplot as plt

    sizes = [k for k in data["extra"] if k.isdigit()]
    if not sizes:
        return False
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 3.6), squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        for key, label in (("securekey", "securekey"), ("anchor", "naive fan-out")):
            values = sorted(data["extra"][size][key])
            total = len(values) + data["extra"][size][f"{key}_missing"]
            if values:
                ax.step(values, [(i + 1) / total for i in range(len(values))], label=label)
        ax.set_title(f"{size} watchers")
        ax.set_xlabel("rotation request sent → event parsed (ms)")
        ax.set_ylabel("share of watchers holding the new pair")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def plot_read(data: dict[str, Any], out: Path) -> bool:
    """Latency percentiles of each read target (securekey, OpenBao, the ceilings)."""
    import matplotlib.pyplot as plt

    rows = data["extra"].get("rows", {})
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(8, 3.8))
    points = ["p50", "p75", "p90", "p99"]
    for name, r in rows.items():
        ax.plot(points, [r[p] for p in points], marker="o", label=f"{name} ({r['rps']:,.0f} req/s)")
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title("config read latency percentiles (wrk, 1 thread)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def plot_rotations(data: dict[str, Any], out: Path) -> bool:
    """Rotations per second by batch size, per backend and number of schedulers."""
    import matplotlib.pyplot as plt

    rates = data["extra"].get("rates", [])
    if not rates:
        return False
    fig, ax = plt.subplots(figsize=(7, 3.8))
    series = sorted({(r["backend"], r["schedulers"]) for r in rates})
    for backend, procs in series:
        mine = sorted(
            (r["batch"], r["rate"])
            for r in rates
            if (r["backend"], r["schedulers"]) == (backend, procs)
        )
        ax.plot([b for b, _ in mine], [v for _, v in mine], marker="o",
                label=f"{backend}, {procs} scheduler{'s' if procs > 1 else ''}")  # fmt: skip
    ax.axhline(5000, color="grey", linestyle="--", linewidth=1, label="goal 5,000/s")
    ax.set_xscale("log")
    ax.set_xlabel("batch size (add-ons per transaction)")
    ax.set_ylabel("rotations/s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


PLOTS = {
    "propagation": ("bench-propagation-cdf.png", plot_propagation, "Propagation CDF"),
    "read_path": ("bench-read-latency.png", plot_read, "Read latency percentiles"),
    "rotate_due": ("bench-rotations-by-batch.png", plot_rotations, "Rotations/s by batch size"),
}


def write(runs: dict[str, dict[str, Any]], doc: Path, images: Path, note: str) -> list[Path]:
    """Write the document and plots; the files written."""
    import matplotlib

    matplotlib.use("Agg")
    images.mkdir(parents=True, exist_ok=True)
    first = next(iter(runs.values()))
    started = min(d["started"] for d in runs.values())
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/report.py` from one `make bench` run: every script starts what it",
        "measures and its anchors on 127.0.0.1 in the same run and prints the command, the machine",
        "and each figure with its ratio to the anchor. Re-run with `make bench` (about 15 minutes",
        "on 2 cores); `make bench BENCH_ARGS=--smoke` is the seconds-long run CI makes.",
        "",
        f"- date: {started[:10]} (started {started} UTC)",
        f"- machine: {machine_line(first['machine'])}",
    ]
    if note:
        lines += [f"- note: {note}"]
    lines += ["", "## Figures", "", *table(runs), ""]
    written = []
    for name, data in runs.items():
        lines += [f"## {TITLES.get(name, name)} (`bench/{name}.py`)", ""]
        shown = data["printed"].rstrip().splitlines() or [
            f"command: {data['command']}",
            f"machine: {machine_line(data['machine'])}",
        ]
        lines += ["```", f"$ {data['command']}", *shown, "```", ""]
        if name in PLOTS:
            filename, draw, title = PLOTS[name]
            if draw(data, images / filename):
                rel = (images / filename).relative_to(doc.parent)
                lines += [f"![{title}]({rel.as_posix()})", ""]
                written.append(images / filename)
    notes = Path(__file__).with_name("notes.md")
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    doc.write_text("\n".join(lines))
    return [doc, *written]


def main() -> int:
    """Parse the flags and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--images", help="directory for the PNGs (docs/img beside --out)")
    parser.add_argument("--note", default="", help="a line about the run (e.g. smoke sizes)")
    args = parser.parse_args()
    runs = load(Path(args.results))
    if not runs:
        print(f"no results in {args.results}", file=sys.stderr)
        return 2
    doc = Path(args.out)
    images = Path(args.images) if args.images else doc.parent / "img"
    for path in write(runs, doc, images, args.note):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
