"""Benchmark: due add-ons rotated per second by the scheduler, by backend and batch size.

Seeds N due add-ons (each attached to two apps) on SQLite (a temporary file) and PostgreSQL
(a throwaway server started like tests/pg.py does, or ``--database-url`` to an EMPTY database),
then times scheduler processes rotating them all: one process per batch size, and on PostgreSQL
also ``--workers`` processes at once, reported as a ratio to one. Last, the idle tick (nothing
due) at ``--idle-total`` add-ons. Prints the command and the machine first.

Each run stops after ``--max-seconds`` (the rate counts what it rotated); the seeded database
is copied for each run (a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL).

Run: ``python bench/rotate_due.py --n 100000 --batch 1,100,1000``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT), str(ROOT / "bench")]

from _common import Report  # noqa: E402

from securekey.crypto import Cipher, MasterKey  # noqa: E402
from securekey.domain.clock import FixedClock  # noqa: E402
from securekey.domain.keys import KeyPair  # noqa: E402
from securekey.domain.models import new_id  # noqa: E402
from securekey.scheduler import Scheduler  # noqa: E402
from securekey.services import SecureKeyService  # noqa: E402
from securekey.store import SqlStore, make_engine  # noqa: E402
from securekey.store import tables as t  # noqa: E402
from securekey.store.aad import key_aad  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)
PERIOD = timedelta(days=1)
CHUNK = 5000


# ------------------------------------------------------------------- seeding


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def seed_due(url: str, cipher: Cipher, n: int) -> None:
    """``n`` add-ons due at START + 1 period, add-on i billed to app i and attached to app i+1.

    Written with bulk inserts (the same encryption and AAD as the store) so seeding stays a
    small part of the run; due times rise with i, so batches take neighbouring add-ons.
    """
    now = START
    apps, addons, keys, atts, releases = [], [], [], [], []
    app_ids = [new_id() for _ in range(n)]
    for i, app_id in enumerate(app_ids):
        apps.append(
            {"id": app_id, "name": f"bench-{i}", "release_version": 1}
            | {"created_at": now, "updated_at": now}
        )
        releases.append(
            {"id": new_id(), "app_id": app_id, "version": 1, "description": "Initial release"}
            | {"config_fingerprint": "0" * 16, "actor": "bench", "created_at": now}
        )
    for i in range(n):
        addon_id = new_id()
        due = now + PERIOD + timedelta(microseconds=i)
        addons.append(
            {"id": addon_id, "name": f"bench-keys-{i}", "app_id": app_ids[i], "plan": "daily"}
            | {"period_seconds": PERIOD.total_seconds(), "key_version": 2, "created_at": now}
            | {"updated_at": now, "last_rotated_at": now, "next_rotation_at": due}
        )
        pair = KeyPair.fresh()
        for version, state, key in ((1, "previous", pair.previous), (2, "latest", pair.latest)):
            blob = cipher.encrypt(key.hex.encode(), key_aad(addon_id, version))
            keys.append(
                {"addon_id": addon_id, "version": version, "fingerprint": key.fingerprint}
                | {"state": state, "material_enc": blob, "created_at": now, "retired_at": None}
            )
        for app_id, name in ((app_ids[i], "SECURE"), (app_ids[(i + 1) % n], "NEIGHBOUR")):
            if n == 1 and name == "NEIGHBOUR":
                continue
            atts.append(
                {"id": new_id(), "addon_id": addon_id, "app_id": app_id, "name": name}
                | {"created_at": now, "updated_at": now}
            )
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table, rows in (
                (t.apps, apps),
                (t.releases, releases),
                (t.addons, addons),
                (t.key_versions, keys),
                (t.attachments, atts),
            ):
                for chunk in _chunks(rows):
                    conn.execute(table.insert(), chunk)
        with engine.begin() as conn:  # committed: statistics made in a rolled-back
            conn.exec_driver_sql("ANALYZE")  # transaction are thrown away
    finally:
        engine.dispose()


# -------------------------------------------------------------------- workers


def worker(url: str, master_b64: str, now_iso: str, batch: int, limit: float) -> int:
    """One scheduler process: ``ready``, wait for a line, tick until nothing is due (or
    ``limit`` seconds passed), print the counts."""
    cipher = Cipher(MasterKey.from_base64(master_b64))
    store = SqlStore.open(url, cipher, migrate=False)
    clock = FixedClock(datetime.fromisoformat(now_iso))
    service = SecureKeyService(store, cipher, clock)
    # One batch a tick, so the time limit is looked at between batches.
    scheduler = Scheduler(service, clock, batch_size=batch, max_per_tick=batch)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    rotated = failed = 0
    # Rows another worker holds are skipped, not waited for: loop until none is due at all.
    while service.has_due(clock.now()) and time.perf_counter() - started < limit:
        result = scheduler.tick()
        rotated += len(result.rotated)
        failed += len(result.failed)
        if not (result.rotated or result.failed):
            # What is still due is held by another worker: wait a little, as a real scheduler
            # waits its interval, instead of spinning on the cores that worker needs.
            time.sleep(0.01)
    seconds = time.perf_counter() - started
    store.close()
    print(json.dumps({"rotated": rotated, "failed": failed, "seconds": seconds}), flush=True)
    return 0


def run_workers(
    url: str, master: MasterKey, count: int, batch: int, limit: float
) -> tuple[int, float]:
    """Start ``count`` workers, release them together; (rotated, seconds until the last ends)."""
    now = (START + PERIOD + timedelta(hours=1)).isoformat()
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", url, now, str(batch)]
    command.append(str(limit))
    env = os.environ | {"SECUREKEY_BENCH_MASTER_KEY": master.to_base64()}
    procs = [
        subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                _, err = proc.communicate(timeout=60)
                raise SystemExit(f"a scheduler worker did not start:\n{err}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=3600)
            if proc.returncode != 0:
                raise SystemExit(f"a scheduler worker failed:\n{err}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if any(r["failed"] for r in results):
        raise SystemExit(f"rotations failed: {results}")
    return sum(r["rotated"] for r in results), max(r["seconds"] for r in results)


# ------------------------------------------------------------------- backends


@dataclass
class Backend:
    """A backend to measure: a fresh empty database URL on each ``fresh()``."""

    name: str
    fresh: Callable[[], str]
    #: A copy of a seeded database (None: seed each run afresh).
    clone: Callable[[str], str] | None = None


@contextmanager
def sqlite_backend(tmp: Path) -> Iterator[Backend]:
    """Each run on a new SQLite file in ``tmp``."""
    counter = iter(range(1_000_000))

    def fresh() -> str:
        return f"sqlite:///{tmp}/bench-{next(counter)}.db"

    def clone(url: str) -> str:
        copy = fresh()
        shutil.copyfile(url.removeprefix("sqlite:///"), copy.removeprefix("sqlite:///"))
        return copy

    yield Backend("sqlite", fresh, clone)


@contextmanager
def postgres_backend(database_url: str | None) -> Iterator[Backend | None]:
    """A throwaway server (tests/pg.py) with a new database per run, or the given EMPTY one."""
    if database_url:
        runs = iter(range(1_000_000))

        def reuse() -> str:
            engine = make_engine(database_url)
            try:
                # Refuse a database holding data before the first run; empty it between runs.
                if next(runs) == 0 and sa.inspect(engine).has_table("apps"):
                    with engine.connect() as conn:
                        if conn.execute(sa.select(sa.func.count()).select_from(t.apps)).scalar():
                            raise SystemExit(
                                "--database-url must name an empty database: the benchmark "
                                "empties it between runs."
                            )
                t.metadata.drop_all(engine)
                with engine.begin() as conn:
                    conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            finally:
                engine.dispose()
            return database_url

        yield Backend("postgres", reuse)
        return
    from tests import pg

    bindir = pg.find_bindir()
    if bindir is None:
        print(
            "postgres: skipped (no server binaries under /usr/lib/postgresql; give --database-url)"
        )
        yield None
        return
    server = pg.start(bindir)
    counter = iter(range(1_000_000))
    try:

        def fresh() -> str:
            name = f"bench_{next(counter)}"
            admin = make_engine(server.url(), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            admin.dispose()
            return server.url(name)

        def clone(url: str) -> str:
            name = f"bench_{next(counter)}"
            admin = make_engine(server.url(), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                template = url.rsplit("/", 1)[1]
                conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            admin.dispose()
            return server.url(name)

        yield Backend("postgres", fresh, clone)
    finally:
        server.stop()


# ---------------------------------------------------------------------- runs


@dataclass
class Seeded:
    """A database holding ``n`` due add-ons, copied for each run when the backend can."""

    backend: Backend
    n: int
    master: MasterKey
    url: str | None = None

    def database(self) -> str:
        """A database with the ``n`` due add-ons, none rotated yet."""
        if self.url is not None and self.backend.clone is not None:
            return self.backend.clone(self.url)
        url = self.backend.fresh()
        cipher = Cipher(self.master)
        SqlStore.open(url, cipher).close()  # migrate
        seed_due(url, cipher, self.n)
        if self.backend.clone is not None:
            self.url = url  # the template: never rotated itself
            return self.backend.clone(url)
        return url


def measure(seeded: Seeded, batch: int, workers: int, limit: float) -> tuple[float, float]:
    """(seconds, rotations/s) of ``workers`` schedulers on a copy of the seeded database."""
    url = seeded.database()
    rotated, seconds = run_workers(url, seeded.master, workers, batch, limit)
    if rotated == 0:
        raise SystemExit(f"{seeded.backend.name}: nothing rotated")
    if rotated != seeded.n and seconds < limit:
        raise SystemExit(f"{seeded.backend.name}: rotated {rotated} of {seeded.n}")
    check_once(url, rotated)
    return seconds, rotated / seconds


def check_once(url: str, n: int) -> None:
    """Each add-on rotated at most once, ``n`` in all: versions 2 or 3, n rotation events."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(sa.select(t.addons.c.key_version).distinct()).scalars().all()
            events = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.audit_events)
                .where(t.audit_events.c.action == "addon.rotate")
            ).scalar()
    finally:
        engine.dispose()
    if not set(versions) <= {2, 3} or events != n:
        raise SystemExit(f"not exactly once: versions {versions}, {events} events for {n}")


def idle_tick(backend: Backend, total: int, ticks: int) -> list[float]:
    """Milliseconds per idle tick: ``bench/idle_tick.py`` measures it (seeded by bulk SQL)."""
    from idle_tick import ticks as idle_ticks  # here: idle_tick imports this module

    return idle_ticks(backend, total, ticks)[0]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="due add-ons per run (100000)")
    parser.add_argument("--batch", default="1,100,1000", help="batch sizes (1,100,1000)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database to use")
    parser.add_argument("--workers", type=int, default=3, help="schedulers at once on PostgreSQL")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="stop a run after (30)")
    parser.add_argument("--idle-total", type=int, default=100_000, help="add-ons for the idle tick")
    parser.add_argument("--idle-ticks", type=int, default=0, help="idle ticks to time (0: none)")
    parser.add_argument("--smoke", action="store_true", help="20 add-ons, batch 10")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.batch, args.workers, args.max_seconds = 20, "10", 2, 20.0
    args.batches = [int(b) for b in args.batch.split(",") if b.strip()]
    args.backend_names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.n < 1 or not args.batches or min(args.batches) < 1 or args.workers < 1:
        parser.error("--n, every --batch and --workers must be at least 1")
    if set(args.backend_names) - {"sqlite", "postgres"}:
        parser.error("--backends takes sqlite and/or postgres")
    return args


def _rates(backend: Backend, args: argparse.Namespace, report: Report) -> None:
    """Every batch size on ``backend`` (and ``--workers`` schedulers on PostgreSQL)."""
    seeded = Seeded(backend, args.n, MasterKey.generate())
    rates = report.data["extra"].setdefault("rates", [])
    name = backend.name
    for batch in args.batches:
        seconds, rate = measure(seeded, batch, 1, args.max_seconds)
        print(f"{name:<9} {batch:>6} {1:>10} {seconds:>9.2f} {rate:>12.0f} {'':>7}", flush=True)
        rates.append({"backend": name, "batch": batch, "schedulers": 1, "rate": rate})
        if name == "postgres" and args.workers > 1:
            many, many_rate = measure(seeded, batch, args.workers, args.max_seconds)
            print(
                f"{name:<9} {batch:>6} {args.workers:>10} {many:>9.2f} "
                f"{many_rate:>12.0f} {many_rate / rate:>6.2f}x",
                flush=True,
            )
            rates.append(
                {"backend": name, "batch": batch, "schedulers": args.workers, "rate": many_rate}
            )


def _figures(report: Report, args: argparse.Namespace) -> None:
    """The best rate per backend against the goal, and many schedulers against one."""
    rates = report.data["extra"].get("rates", [])
    for name in args.backend_names:
        ones = [r for r in rates if r["backend"] == name and r["schedulers"] == 1]
        if not ones:
            continue
        best = max(ones, key=lambda r: r["rate"])
        report.figure(
            f"rotations/s, {name}, one scheduler (batch {best['batch']})", best["rate"], "/s",
            goal=">= 5,000/s", met=best["rate"] >= 5000, target=5000,
        )  # fmt: skip
        if name == "postgres" and args.workers > 1:
            many = [r for r in rates if r["backend"] == name and r["schedulers"] == args.workers]
            top = max(many, key=lambda r: r["rate"])
            one = next(r for r in ones if r["batch"] == top["batch"])
            report.figure(
                f"rotations/s, postgres, {args.workers} schedulers (batch {top['batch']})",
                top["rate"], "/s", anchor=one["rate"], anchor_label="one scheduler",
                goal=">= 2.5x one", met=top["rate"] >= 2.5 * one["rate"],
            )  # fmt: skip


def main(argv: list[str]) -> int:
    """Parse the flags, run every measurement, print the table."""
    if argv[:1] == ["--worker"]:
        master = os.environ["SECUREKEY_BENCH_MASTER_KEY"]
        return worker(argv[1], master, argv[2], int(argv[3]), float(argv[4]))
    args = _parse(argv)
    report = Report("rotate_due", Path(args.json) if args.json else None)
    print(f"due add-ons: {args.n}, each attached to 2 apps ({args.n} apps)")
    print(f"each run stops after {args.max_seconds:g} s (the rate counts what it rotated)")
    head = ("backend", "batch", "schedulers", "seconds", "rotations/s", "vs one")
    print("{:<9} {:>6} {:>10} {:>9} {:>12} {:>7}".format(*head))
    idle: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="securekey-bench-") as tmp:
        for name in args.backend_names:
            context = (
                sqlite_backend(Path(tmp))
                if name == "sqlite"
                else postgres_backend(args.database_url)
            )
            with context as backend:
                if backend is None:
                    continue
                _rates(backend, args, report)
                if args.idle_ticks > 0:
                    idle[name] = idle_tick(backend, args.idle_total, args.idle_ticks)
    for name, times in idle.items():
        ordered = sorted(times)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"idle tick, {args.idle_total} add-ons none due, {name}: "
            f"median {statistics.median(times):.3f} ms, p99 {p99:.3f} ms ({len(times)} ticks)"
        )
    _figures(report, args)
    report.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
