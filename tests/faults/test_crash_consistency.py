"""SIGKILL the server at random moments under concurrent changes; every acknowledged change
survives and nothing is half-done (issue 11, point 1), on SQLite and on PostgreSQL.

Workers rotate, set config vars, create and destroy add-ons, attach and detach, and read keys
as a consumer would, while the server is killed ``KILLS`` times (3 in CI, 20 under
``make soak``) and restarted on the same database. Afterwards: releases gap-free and each app's
newest release equal to its current config; every acknowledged config var, add-on, destroy,
attach and detach present; every key handed out as LATEST still in its add-on's history, as
LATEST or PREVIOUS or retired by later rotations.
"""

from __future__ import annotations

import random
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from securekey.crypto import Cipher, MasterKey
from securekey.domain.keys import fingerprint
from tests import pg
from tests.conftest import drop_pg_database, new_pg_database
from tests.faults.invariants import check
from tests.servers import Server, running_server
from tests.soak import scaled

pytestmark = pytest.mark.slow

KILLS = scaled(3, 20)
ROTATIONS = scaled(24, 200)  # acknowledged rotations across all rounds, spread over the kills
WORKERS = 3
APPS = 3


@dataclass
class Ledger:
    """What the server acknowledged, and what it handed to consumers (thread-safe)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    rotations: int = 0
    requests: int = 0
    failed: int = 0  # requests cut off by a kill: their outcome is unknown, and either is fine
    config: dict[tuple[str, str], str] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    destroyed: set[str] = field(default_factory=set)
    attached: dict[str, str] = field(default_factory=dict)  # attachment id -> app
    detached: set[str] = field(default_factory=set)
    unsure: set[str] = field(default_factory=set)  # add-ons/attachments with a cut-off change
    handed: dict[str, set[str]] = field(default_factory=dict)  # add-on -> LATEST fingerprints


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL on each backend (the server stays up; only securekey is killed)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/crash.db"
        return
    server: pg.PgServer = request.getfixturevalue("pg_server")
    url = new_pg_database(server)
    yield url
    drop_pg_database(server, url)


def _worker(server: Server, apps: list[str], stable: dict[str, str], ledger: Ledger,
            stop: threading.Event, seed: int) -> None:  # fmt: skip
    rng = random.Random(seed)
    http = httpx.Client(base_url=server.url, headers=server.headers, timeout=10)
    try:
        while not stop.is_set():
            op = rng.choice(["rotate", "rotate", "config", "read", "create", "destroy", "attach"])
            app = rng.choice(apps)
            subject = ""
            try:
                with ledger.lock:
                    ledger.requests += 1
                if op == "rotate":
                    subject = rng.choice([stable[a] for a in apps])
                    got = http.post(f"/addons/{subject}/actions/rotate", json={})
                    if got.status_code == 200:
                        with ledger.lock:
                            ledger.rotations += 1
                            fp = got.json()["fingerprints"]["latest"]
                            ledger.handed.setdefault(subject, set()).add(fp)
                elif op == "config":
                    name, value = f"C_{secrets.token_hex(4).upper()}", secrets.token_hex(6)
                    got = http.patch(f"/apps/{app}/config-vars", json={name: value})
                    if got.status_code == 200:
                        with ledger.lock:
                            ledger.config[(app, name)] = value
                elif op == "read":
                    got = http.get(f"/apps/{app}/config-vars")
                    if got.status_code == 200:
                        latest = got.json()["SECURE_KEY"].split(",")[0]
                        with ledger.lock:
                            ledger.handed.setdefault(stable[app], set()).add(fingerprint(latest))
                elif op == "create":
                    got = http.post(
                        f"/apps/{app}/addons",
                        json={"plan": "securekey:fortnightly", "attachment": {"name": f"X{seed}"}},
                    )
                    if got.status_code == 201:
                        with ledger.lock:
                            ledger.created.add(got.json()["name"])
                elif op == "destroy":
                    with ledger.lock:
                        pool = sorted(ledger.created - ledger.destroyed - ledger.unsure)
                    if not pool:
                        continue
                    subject = rng.choice(pool)
                    owner = http.get(f"/addons/{subject}")
                    if owner.status_code != 200:
                        continue
                    got = http.delete(f"/apps/{owner.json()['app']['name']}/addons/{subject}")
                    if got.status_code == 200:
                        with ledger.lock:
                            ledger.destroyed.add(subject)
                elif op == "attach":
                    other = rng.choice([a for a in apps if a != app])
                    subject = stable[app]
                    got = http.post(
                        "/addon-attachments",
                        json={"addon": subject, "app": other, "name": f"A{secrets.token_hex(3)}"},
                    )
                    if got.status_code == 201:
                        ident = got.json()["id"]
                        with ledger.lock:
                            ledger.attached[ident] = other
                        subject = ident
                        gone = http.delete(f"/addon-attachments/{ident}")
                        if gone.status_code == 200:
                            with ledger.lock:
                                ledger.detached.add(ident)
            except httpx.HTTPError:
                with ledger.lock:
                    ledger.failed += 1
                    if subject:
                        ledger.unsure.add(subject)
                time.sleep(0.05)  # the server is down: wait for the next round
    finally:
        http.close()


def test_acknowledged_changes_survive_sigkill_at_random_moments(
    database: str, tmp_path: Path
) -> None:
    """After KILLS SIGKILLs under load, the database holds every acknowledged change, releases
    are gap-free, no rotation is half-done, and every key handed out as LATEST is still known."""
    key = MasterKey.generate()
    token = "sko_test_" + secrets.token_urlsafe(24)
    data = tmp_path / "data"
    options = {
        "database_url": None if database.startswith("sqlite") else database,
        "master_key": key.to_base64(),
        "token": token,
    }
    if database.startswith("sqlite"):
        data.mkdir()
        options["database_url"] = None
        database = f"sqlite:///{data}/securekey.db"
    rng = random.Random()
    ledger = Ledger()
    apps: list[str] = []
    stable: dict[str, str] = {}
    kills = 0
    started = time.monotonic()
    while kills < KILLS or ledger.rotations < ROTATIONS:
        with running_server(data, **options) as server:  # type: ignore[arg-type]
            if not apps:
                with server.client() as http:
                    for i in range(APPS):
                        name = f"crash-{i}"
                        assert http.post("/apps", json={"name": name}).status_code == 201
                        made = http.post(
                            f"/apps/{name}/addons", json={"plan": "securekey:fortnightly"}
                        )
                        assert made.status_code == 201, made.text
                        apps.append(name)
                        stable[name] = made.json()["name"]
            stop = threading.Event()
            threads = [
                threading.Thread(
                    target=_worker, args=(server, apps, stable, ledger, stop, kills * 10 + n)
                )
                for n in range(WORKERS)
            ]
            for thread in threads:
                thread.start()
            # Kill once this round's share of rotations is acknowledged, plus a random moment,
            # so the kill lands while the workers' next changes are in flight.
            target = ledger.rotations + -(-ROTATIONS // KILLS)
            deadline = time.monotonic() + 60
            while ledger.rotations < target and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.5))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)
            kills += 1
            stop.set()
            for thread in threads:
                thread.join(30)
            assert kills < KILLS * 3, "too few rotations were acknowledged between kills"

    # One last clean start: the database opens, and the API agrees with what was acknowledged.
    problems: list[str] = []
    with running_server(data, **options) as server, server.client() as http:  # type: ignore[arg-type]
        for (app, name), value in ledger.config.items():
            if http.get(f"/apps/{app}/config-vars").json().get(name) != value:
                problems.append(f"acknowledged {name} on {app} is lost")
        for addon in ledger.created - ledger.destroyed - ledger.unsure:
            if http.get(f"/addons/{addon}").status_code != 200:
                problems.append(f"acknowledged add-on {addon} is lost")
        for addon in ledger.destroyed - ledger.unsure:
            if http.get(f"/addons/{addon}").status_code != 404:
                problems.append(f"acknowledged destroy of {addon} is lost")
        for ident in set(ledger.attached) - ledger.unsure:
            status = http.get(f"/addon-attachments/{ident}").status_code
            if status != (404 if ident in ledger.detached else 200):
                problems.append(f"attachment {ident}: {status} contradicts what was acknowledged")
        checked_keys = 0
        for addon, handed in ledger.handed.items():
            history = {
                v["fingerprint"]: v for v in http.get(f"/addons/{addon}/key-versions").json()
            }
            newest = max(v["version"] for v in history.values())
            for fp in handed:
                checked_keys += 1
                version = history.get(fp)
                if version is None:
                    problems.append(f"{addon}: key {fp} handed out as LATEST is unknown now")
                elif (
                    version["state"] not in ("latest", "previous")
                    and newest < version["version"] + 2
                ):
                    problems.append(f"{addon}: key {fp} retired without a later rotation")
    found = check(database, Cipher(key))
    print(
        f"backend={database.split(':')[0]} kills={kills} requests={ledger.requests} "
        f"cut_off={ledger.failed} rotations={ledger.rotations} config_sets={len(ledger.config)} "
        f"created={len(ledger.created)} destroyed={len(ledger.destroyed)} "
        f"attached={len(ledger.attached)} detached={len(ledger.detached)} "
        f"keys_checked={checked_keys} apps={found.apps} releases={found.releases} "
        f"losses={len(problems) + len(found.problems)} took={time.monotonic() - started:.0f}s"
    )
    assert problems == []
    assert found.problems == []
