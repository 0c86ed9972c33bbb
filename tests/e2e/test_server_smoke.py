"""The real server process answers the seed's API calls over HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from tests.servers import running_server


def test_seed_flow_over_http(tmp_path: Path) -> None:
    """Create, attach, rotate and read config over real HTTP: both apps hold one pair."""
    with running_server(tmp_path / "data") as server, server.client() as http:
        for name in ("service-1", "service-2"):
            assert http.post("/apps", json={"name": name}).status_code == 201
        created = http.post(
            "/apps/service-1/addons",
            json={"attachment": {}, "config": {}, "plan": {"name": "securekey:fortnightly"}},
        )
        assert created.status_code == 201
        addon = created.json()
        assert addon["config_vars"] == ["SECURE_KEY"]
        attached = http.post(
            "/addon-attachments",
            json={
                "addon": {"name": addon["name"]},
                "app": {"name": "service-2"},
                "name": "SERVICE_ONE_SECURE",
            },
        )
        assert attached.status_code == 201
        one = http.get("/apps/service-1/config-vars").json()["SECURE_KEY"]
        two = http.get("/apps/service-2/config-vars").json()["SERVICE_ONE_SECURE_KEY"]
        assert one == two
        rotated = http.post(f"/addons/{addon['name']}/actions/rotate", json={})
        assert rotated.status_code == 200
        after = http.get("/apps/service-2/config-vars").json()["SERVICE_ONE_SECURE_KEY"]
        assert after.split(",")[1] == one.split(",")[0]
        releases = http.get(
            "/apps/service-2/releases", headers={"Range": "version ..; max=1, order=desc"}
        )
        assert releases.json()[0]["version"] == 3
    assert (tmp_path / "data" / "securekey.db").exists()
