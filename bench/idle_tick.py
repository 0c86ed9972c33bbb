"""Benchmark: one idle scheduler tick (nothing due) at 1,000,000 add-ons, SQLite and PostgreSQL.

Seeds ``--total`` apps and add-ons none of which is due with one ``INSERT … SELECT`` per table
(a recursive CTE on SQLite, ``generate_series`` on PostgreSQL), then times ``--ticks`` ticks of
the real scheduler. Goal: ≤ 1 ms. Run: ``python bench/idle_tick.py --total 1000000``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

from _common import Report, percentile  # noqa: E402
from rotate_due import START, Backend, postgres_backend, sqlite_backend  # noqa: E402

from securekey.crypto import Cipher, MasterKey  # noqa: E402
from securekey.domain.clock import FixedClock  # noqa: E402
from securekey.scheduler import Scheduler  # noqa: E402
from securekey.services import SecureKeyService  # noqa: E402
from securekey.store import SqlStore, make_engine  # noqa: E402

_ROWS = {
    # (series, id expression, timestamp literal, due expression) per dialect
    "sqlite": (
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) ",
        "printf('00000000-0000-4000-8000-%012d', i)",
        "'2026-01-01 00:00:00.000000'",
        "strftime('%Y-%m-%d %H:%M:%f', '2027-01-01', '+' || (i % 86400) || ' seconds')",
    ),
    "postgresql": (
        "",
        "('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))",
        "TIMESTAMPTZ '2026-01-01 00:00:00+00'",
        "TIMESTAMPTZ '2027-01-01 00:00:00+00' + mod(i, 86400) * INTERVAL '1 second'",
    ),
}


def seed(url: str, total: int) -> float:
    """``total`` apps and add-ons, due in a year; seconds it took."""
    started = time.perf_counter()
    engine = make_engine(url)
    dialect = engine.dialect.name
    head, ident, now, due = _ROWS[dialect]
    source = "FROM s" if dialect == "sqlite" else f"FROM generate_series(1, {total}) AS s(i)"
    head = head.format(n=total)
    aid = ident.replace("4000-8000", "4000-9000")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO apps (id, name, release_version, created_at, updated_at) {head}"
            f"SELECT {ident}, 'idle-' || i, 1, {now}, {now} {source}"
        )
        conn.exec_driver_sql(
            "INSERT INTO addons (id, name, app_id, plan, period_seconds, key_version, "
            f"created_at, updated_at, last_rotated_at, next_rotation_at) {head}"
            f"SELECT {aid}, 'idle-keys-' || i, {ident}, 'daily', 86400.0, 2, {now}, {now}, "
            f"{now}, {due} {source}"
        )
    with engine.begin() as conn:  # committed: statistics made in a rolled-back
        conn.exec_driver_sql("ANALYZE")  # transaction are thrown away
    engine.dispose()
    return time.perf_counter() - started


def ticks(backend: Backend, total: int, count: int) -> tuple[list[float], float]:
    """(milliseconds per tick, seeding seconds) on a fresh database of ``backend``."""
    url = backend.fresh()
    cipher = Cipher(MasterKey.generate())
    store = SqlStore.open(url, cipher)
    try:
        seeded = seed(url, total)
        clock = FixedClock(START)
        scheduler = Scheduler(SecureKeyService(store, cipher, clock), clock)
        scheduler.tick()  # warm the pool and the statement cache
        times = []
        for _ in range(count):
            began = time.perf_counter()
            result = scheduler.tick()
            times.append((time.perf_counter() - began) * 1000)
            assert not result.rotated
        return times, seeded
    finally:
        store.close()


def main() -> int:
    """Seed, tick, print median/p99 per backend against the 1 ms goal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database to use")
    parser.add_argument("--smoke", action="store_true", help="1,000 add-ons, 20 ticks")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    if args.smoke:
        args.total, args.ticks = 1000, 20
    report = Report("idle_tick", Path(args.json) if args.json else None)
    with tempfile.TemporaryDirectory(prefix="securekey-bench-") as tmp:
        for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
            context = (
                sqlite_backend(Path(tmp))
                if name == "sqlite"
                else postgres_backend(args.database_url)
            )
            with context as backend:
                if backend is None:
                    continue
                times, seeded = ticks(backend, args.total, args.ticks)
            print(f"{name}: seeded {args.total} add-ons in {seeded:.1f} s", flush=True)
            median, p99 = statistics.median(times), percentile(times, 99)
            report.figure(f"idle tick median, {name}, {args.total} add-ons", median, "ms",
                          goal="<= 1 ms", met=median <= 1.0, target=1.0)  # fmt: skip
            report.figure(f"idle tick p99, {name}, {args.total} add-ons", p99, "ms")
            report.data["extra"][name] = times
    report.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
