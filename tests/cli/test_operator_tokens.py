"""Issue 8, point 2 through the CLI: ``tokens … --operator`` and the offline
``securekey server operator-token create``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.cli.conftest import Cli, one_clear_line
from tests.servers import running_server


def test_point2_cli_lists_creates_and_revokes_operator_tokens(cli: Cli) -> None:
    """``tokens:create --operator`` prints the token alone; ``tokens --operator`` lists it
    (never its value); ``tokens:revoke ID --operator`` makes it fail at once."""
    made = cli("tokens:create", "--operator", "-d", "ci job")
    assert made.code == 0, made.err
    raw = made.out.strip()
    assert raw.startswith("sko_")
    assert made.lines == [raw]
    listed = cli("tokens", "--operator", "--json")
    assert listed.code == 0, listed.err
    rows = json.loads(listed.out)
    assert raw not in listed.out
    mine = [r for r in rows if r["current"]]
    assert len(mine) == 1
    assert mine[0]["source"] == "env"
    [new] = [r for r in rows if r["description"] == "ci job"]
    assert new["source"] == "api"
    table = cli("tokens", "--operator")
    assert "Source" in table.out
    assert "* " + mine[0]["id"] in table.out
    as_new = cli("apps", env=cli.env(SECUREKEY_TOKEN=raw))
    assert as_new.code == 0, as_new.err
    revoked = cli("tokens:revoke", new["id"], "--operator", "--json")
    assert revoked.code == 0, revoked.err
    assert json.loads(revoked.out)["id"] == new["id"]
    refused = cli("apps", env=cli.env(SECUREKEY_TOKEN=raw))
    one_clear_line(refused, "Invalid credentials")


def test_point2_cli_needs_an_app_or_operator_but_not_both(cli: Cli) -> None:
    """Without -a or --operator, or with both, the token commands explain what to give."""
    one_clear_line(cli("tokens"), "-a APP", "--operator")
    one_clear_line(cli("tokens:create", "-a", "x", "--operator"), "not both")


def test_point2_operator_token_minted_offline_works(tmp_path: Path, cli: Cli) -> None:
    """``securekey server operator-token create --data-dir`` writes a working operator token
    into the database with no server running, and prints it once."""
    data = tmp_path / "offline" / "data"
    bare = Cli(tmp_path / "home")
    first = bare("server", "operator-token", "create", "--data-dir", str(data), "-d", "glass")
    assert first.code == 0, first.err
    raw = first.out.strip()
    assert first.lines == [raw]
    assert raw.startswith("sko_")
    assert "only time it is shown" in first.err
    as_json = bare("server", "operator-token", "create", "--data-dir", str(data), "--json")
    assert json.loads(as_json.out)["token"].startswith("sko_")
    with running_server(data) as server:
        auth = {"Authorization": f"Bearer {raw}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=10) as client:
            assert client.get("/apps").status_code == 200
            sources = sorted(t["source"] for t in client.get("/operator-tokens").json())
            assert sources == ["env", "offline", "offline"]
