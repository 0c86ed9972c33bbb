"""The Dockerfile and compose.yaml: validated as files, and their entrypoint run for real.

Docker cannot run here, so the compose file is parsed and checked (services, health checks,
environment, volumes, every referenced file), and the image's exact entrypoint and environment
start a real server on PostgreSQL (on 127.0.0.1 instead of 0.0.0.0) that must become ready.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from securekey.crypto import MasterKey
from securekey.store import make_engine
from tests import pg
from tests.conftest import drop_pg_database
from tests.support import wait_ready

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = ("securekey-1", "securekey-2")
REQUIRED_ENV = ("SECUREKEY_DATABASE_URL", "SECUREKEY_MASTER_KEY", "SECUREKEY_OPERATOR_TOKEN")


def compose() -> dict[str, Any]:
    """compose.yaml, parsed (anchors resolved)."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def dockerfile() -> dict[str, str]:
    """The Dockerfile's instructions, continuation lines joined (last one of each kind wins)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out[word.upper()] = rest.strip()
    return out


def test_dockerfile_runs_the_server_as_non_root_with_a_data_volume_and_health_check() -> None:
    """python:3.11-slim, a non-root USER, /data volume, HEALTHCHECK on /healthz, the entrypoint."""
    d = dockerfile()
    assert d["FROM"] == "python:3.11-slim"
    assert d["USER"] not in ("root", "0", "")
    assert json.loads(d["VOLUME"]) == ["/data"]
    assert "/healthz" in d["HEALTHCHECK"]
    assert json.loads(d["ENTRYPOINT"]) == [
        "securekey", "server", "--host", "0.0.0.0", "--data-dir", "/data",  # noqa: S104
    ]  # fmt: skip
    assert (ROOT / ".dockerignore").is_file()
    assert ".venv" in (ROOT / ".dockerignore").read_text().split()


def test_compose_runs_two_replicas_on_postgres_behind_a_tls_proxy() -> None:
    """Services, health checks, required secrets, volumes and every referenced file check out."""
    spec = compose()
    services = spec["services"]
    assert set(services) == {"postgres", *REPLICAS, "proxy"}
    assert "healthcheck" in services["postgres"]
    for name in REPLICAS:
        svc = services[name]
        assert (ROOT / svc["build"] / "Dockerfile").is_file()
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        env = svc["environment"]
        for var in REQUIRED_ENV:
            # Each secret must be given: `${VAR:?message}` makes compose refuse to start without.
            assert ":?" in env[var], var
        assert env["SECUREKEY_DATABASE_URL"].startswith("postgresql://")
        assert "@postgres:5432/" in env["SECUREKEY_DATABASE_URL"]
        assert any(v.endswith(":/data") for v in svc["volumes"])
        assert "ports" not in svc, "replicas are reached through the proxy only"
    proxy = services["proxy"]
    assert "443:443" in proxy["ports"]
    assert "healthcheck" in proxy
    for name in REPLICAS:
        assert proxy["depends_on"][name]["condition"] == "service_healthy"
    mounts = [v.split(":")[0] for v in proxy["volumes"] if v.startswith("./")]
    assert mounts
    for mount in mounts:
        assert (ROOT / mount).is_file(), mount
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    for name in REPLICAS:
        assert f"{name}:5000" in caddyfile
    assert "health_uri /readyz" in caddyfile
    assert "flush_interval -1" in caddyfile  # config streams pass through unbuffered
    # Every variable compose demands is in the example .env the README tells you to copy.
    demanded = set(re.findall(r"\$\{(\w+):\?", (ROOT / "compose.yaml").read_text()))
    example = (ROOT / "deploy" / "env.example").read_text()
    assert demanded
    for var in demanded:
        assert re.search(rf"^{var}=", example, re.MULTILINE), var
    named = set(spec["volumes"])
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in named, volume
    if _docker_compose():
        env = {**os.environ, "POSTGRES_PASSWORD": "x", "SECUREKEY_MASTER_KEY": "x",
               "SECUREKEY_OPERATOR_TOKEN": "x"}  # fmt: skip
        checked = subprocess.run(
            ["docker", "compose", "config", "-q"], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr


def _docker_compose() -> bool:
    """True if ``docker compose`` works here (then it validates the file too)."""
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


@pytest.fixture
def compose_database(pg_server: pg.PgServer) -> Iterator[str]:
    """A database owned by a password-protected role ``securekey``, as compose's postgres."""
    admin = make_engine(pg_server.url(), isolation_level="AUTOCOMMIT")
    name = f"compose_{os.getpid()}_{time.monotonic_ns()}"
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname='securekey'")).first()
        if not exists:
            conn.execute(sa.text("CREATE ROLE securekey LOGIN PASSWORD 'compose-pw'"))
        conn.execute(sa.text(f'CREATE DATABASE "{name}" OWNER securekey'))
    admin.dispose()
    url = pg_server.url(name)
    yield name
    drop_pg_database(pg_server, url)


def _interpolate(value: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)(?::[?-][^}]*)?\}", lambda m: values[m.group(1)], value)


@pytest.mark.postgres
@pytest.mark.slow
def test_the_image_entrypoint_serves_on_postgres(
    tmp_path: Path, pg_server: pg.PgServer, compose_database: str
) -> None:
    """The entrypoint's exact args and compose's environment start a server that gets ready."""
    args = json.loads(dockerfile()["ENTRYPOINT"])
    assert args[:2] == ["securekey", "server"]
    port = pg.free_port()
    data = tmp_path / "data"  # stands in for the /data volume
    argv = [str(Path(sys.executable).parent / "securekey")]
    argv += [{"0.0.0.0": "127.0.0.1", "/data": str(data)}.get(a, a) for a in args[1:]]  # noqa: S104
    argv += ["--port", str(port)]
    values = {
        "POSTGRES_PASSWORD": "compose-pw",
        "SECUREKEY_MASTER_KEY": MasterKey.generate().to_base64(),
        "SECUREKEY_OPERATOR_TOKEN": "sko_compose_0123456789abcdef",
    }
    service_env = compose()["services"]["securekey-1"]["environment"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREKEY_")}
    for key, template in service_env.items():
        env[key] = _interpolate(str(template), values)
    # compose's "postgres" host is the test server here.
    env["SECUREKEY_DATABASE_URL"] = env["SECUREKEY_DATABASE_URL"].replace(
        "@postgres:5432/securekey", f"@127.0.0.1:{pg_server.port}/{compose_database}"
    )
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}", proc, log.read_text, 90)
        assert ready.json() == {"status": "ok", "database": "ok"}
        apps = httpx.get(
            f"http://127.0.0.1:{port}/apps",
            headers={"Authorization": f"Bearer {values['SECUREKEY_OPERATOR_TOKEN']}"},
        )
        assert apps.status_code == 200
        # The health checks the image and compose declare pass against this server.
        compose_check = compose()["services"]["securekey-1"]["healthcheck"]["test"]
        docker_check = json.loads(dockerfile()["HEALTHCHECK"].split(" CMD ", 1)[1])
        for check in (compose_check[1:], docker_check):
            cmd = [sys.executable, *[part.replace(":5000/", f":{port}/") for part in check[1:]]]
            assert subprocess.run(cmd, timeout=30, check=False).returncode == 0, check
    finally:
        proc.terminate()
        proc.wait(20)
