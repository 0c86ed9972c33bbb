"""``securekey server --log-format json``: one JSON object per line, ours and uvicorn's alike,
an info line per state change, and never a key (issue 12, point 11)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from securekey.api.logs import logging_config
from tests.servers import running_server


def _walk(client: object) -> list[str]:
    """The seed's changes through the API; every key the apps held along the way."""
    import httpx

    assert isinstance(client, httpx.Client)
    keys: list[str] = []

    def remember(app: str) -> None:
        for value in client.get(f"/apps/{app}/config-vars").json().values():
            keys.extend(value.split(","))

    assert client.post("/apps", json={"name": "log-1"}).status_code == 201
    assert client.post("/apps", json={"name": "log-2"}).status_code == 201
    addon = client.post("/apps/log-1/addons", json={"plan": "securekey:weekly"}).json()["name"]
    remember("log-1")
    attached = client.post(
        "/addon-attachments", json={"addon": addon, "app": "log-2", "name": "OTHER"}
    )
    assert attached.status_code == 201
    assert client.post(f"/addons/{addon}/actions/rotate", json={}).status_code == 200
    remember("log-1")
    assert client.patch("/apps/log-2/config-vars", json={"LEVEL": "debug"}).status_code == 200
    assert client.delete(f"/addon-attachments/{attached.json()['id']}").status_code == 200
    gone = client.request("DELETE", f"/apps/log-1/addons/{addon}", json={"force": True})
    assert gone.status_code == 200
    return keys


def test_json_logs_parse_line_by_line_and_hold_no_keys(tmp_path: Path) -> None:
    """Every stderr line is a JSON object; each change has an info line; no key appears."""
    data = tmp_path / "data"
    with (
        running_server(data, args=("--log-format", "json"), separate_stdout=True) as server,
        server.client() as client,
    ):
        keys = _walk(client)
    server.process.wait(15)
    text = server.log()
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    loggers = {r["logger"] for r in records}
    assert any(name.startswith("uvicorn") for name in loggers), loggers
    assert "securekey.audit" in loggers
    actions = [r["event"]["action"] for r in records if r["logger"] == "securekey.audit"]
    for wanted in (
        "app.create",
        "addon.create",
        "addon.attach",
        "addon.rotate",
        "config.set",
        "addon.detach",
        "addon.destroy",
    ):
        assert wanted in actions, (wanted, actions)
    rotate = next(r for r in records if r.get("event", {}).get("action") == "addon.rotate")
    assert re.fullmatch(r"[0-9a-f]{12}", rotate["event"]["details"]["latest"])
    assert keys
    for key in keys:
        assert key not in text
        assert key.lower() not in text
    assert server.token not in text


def test_text_logs_are_one_format_for_ours_and_uvicorns(tmp_path: Path) -> None:
    """In text mode uvicorn's lines use our format too: time, level, logger name, message."""
    with (
        running_server(tmp_path / "data", separate_stdout=True) as server,
        server.client() as client,
    ):
        assert client.post("/apps", json={"name": "txt-1"}).status_code == 201
    server.process.wait(15)
    lines = [line for line in server.log().splitlines() if line.strip()]
    shape = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [a-z_.]+: .+$")
    odd = [line for line in lines if not shape.match(line)]
    assert not odd, odd
    assert any(" uvicorn.error: " in line for line in lines)
    assert any(" securekey.audit: app.create txt-1 by operator" in line for line in lines)


def test_log_format_is_checked(tmp_path: Path) -> None:
    """--log-format xml is a usage error naming the choices; logging_config refuses it too."""
    done = subprocess.run(
        [sys.executable, "-m", "securekey", "server", "--log-format", "xml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "text or json" in done.stderr
    with pytest.raises(ValueError, match="text, json"):
        logging_config("info", "xml")  # type: ignore[arg-type]
