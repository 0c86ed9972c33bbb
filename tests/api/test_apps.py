"""Apps: create, read by id and name, list, rename, delete (and its refusal while shared)."""

from __future__ import annotations

import re

from tests.api.conftest import Api, Seed


def test_create_with_name_makes_release_v1(api: Api) -> None:
    """POST /apps with a name answers 201 with the app, which starts at release v1."""
    created = api.client.post("/apps", json={"name": "service-1"})
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "service-1"
    assert body["web_url"].endswith("/apps/service-1/")
    releases = api.client.get(f"/apps/{body['id']}/releases").json()
    assert [r["version"] for r in releases] == [1]


def test_create_without_name_makes_one_up(api: Api) -> None:
    """POST /apps with no body (or an empty one) gets a generated, valid name."""
    bare = api.client.post("/apps")
    empty = api.client.post("/apps", json={})
    assert bare.status_code == empty.status_code == 201
    for answer in (bare, empty):
        assert re.fullmatch(r"[a-z]+-keys-\d{4}", answer.json()["name"])
    assert bare.json()["name"] != empty.json()["name"]


def test_create_refuses_a_taken_name(api: Api) -> None:
    """A second app with the same name is a 422 naming the field."""
    api.client.post("/apps", json={"name": "service-1"})
    again = api.client.post("/apps", json={"name": "service-1"})
    assert again.status_code == 422
    assert again.json()["field"] == "name"


def test_get_by_id_and_by_name(api: Api) -> None:
    """GET /apps/{app} finds the same app by its UUID and by its name."""
    created = api.client.post("/apps", json={"name": "service-1"}).json()
    by_id = api.client.get(f"/apps/{created['id']}")
    by_name = api.client.get("/apps/service-1")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json()["id"] == by_name.json()["id"] == created["id"]


def test_list_every_app_by_name(api: Api) -> None:
    """GET /apps lists every app, sorted by name."""
    for name in ("zeta-app", "alpha-app", "mid-app"):
        api.client.post("/apps", json={"name": name})
    listed = api.client.get("/apps")
    assert listed.status_code == 200
    assert [a["name"] for a in listed.json()] == ["alpha-app", "mid-app", "zeta-app"]


def test_rename_keeps_id_vars_and_releases(api: Api, seed: Seed) -> None:
    """PATCH /apps/{app} with a name renames it; its id, config and releases stay."""
    before = api.client.get("/apps/service-2/config-vars").json()
    renamed = api.client.patch("/apps/service-2", json={"name": "service-two"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "service-two"
    assert renamed.json()["id"] == seed.two["id"]
    assert api.client.get("/apps/service-2").status_code == 404
    assert api.client.get("/apps/service-two/config-vars").json() == before
    assert len(api.client.get("/apps/service-two/releases").json()) == 2


def test_patch_without_name_changes_nothing(api: Api, seed: Seed) -> None:
    """PATCH /apps/{app} without a name answers the app unchanged."""
    same = api.client.patch("/apps/service-1", json={"maintenance": False})
    assert same.status_code == 200
    assert same.json()["name"] == "service-1"


def test_rename_to_a_taken_name_is_refused(api: Api, seed: Seed) -> None:
    """Renaming onto another app's name is a 422."""
    clash = api.client.patch("/apps/service-2", json={"name": "service-1"})
    assert clash.status_code == 422
    assert api.client.get("/apps/service-2").status_code == 200


def test_delete_an_app_without_shared_addons(api: Api) -> None:
    """DELETE /apps/{app} answers the deleted app; it is gone afterwards."""
    api.client.post("/apps", json={"name": "service-1"})
    gone = api.client.delete("/apps/service-1")
    assert gone.status_code == 200
    assert gone.json()["name"] == "service-1"
    missing = api.client.get("/apps/service-1")
    assert missing.status_code == 404
    assert missing.json()["resource"] == "app"


def test_delete_refused_while_its_addon_is_attached_elsewhere(api: Api, seed: Seed) -> None:
    """Deleting the billing app of a shared add-on is refused and names the other attachment."""
    refused = api.client.delete("/apps/service-1")
    assert refused.status_code == 422
    body = refused.json()
    assert body["id"] == "attached_elsewhere"
    assert body["attachments"] == [{"app": "service-2", "name": "SERVICE_ONE_SECURE"}]
    assert api.client.get("/apps/service-1").status_code == 200
    assert "SERVICE_ONE_SECURE_KEY" in api.client.get("/apps/service-2/config-vars").json()


def test_delete_with_force_detaches_everywhere(api: Api, seed: Seed) -> None:
    """DELETE with {"force": true} removes the app, its add-on, and the var on service-2."""
    gone = api.client.request("DELETE", "/apps/service-1", json={"force": True})
    assert gone.status_code == 200
    assert api.client.get("/apps/service-2/config-vars").json() == {}
    assert api.client.get("/addons").json() == []
    latest = api.client.get(
        "/apps/service-2/releases", headers={"Range": "version ..; max=1, order=desc"}
    ).json()[0]
    assert latest["version"] == 3
    assert "Detach" in latest["description"]


def test_delete_an_app_that_only_attaches_keeps_the_addon(api: Api, seed: Seed) -> None:
    """Deleting service-2 drops its attachment; the add-on stays on service-1."""
    assert api.client.delete("/apps/service-2").status_code == 200
    assert [a["app"]["name"] for a in api.client.get("/addon-attachments").json()] == ["service-1"]
    assert "SECURE_KEY" in api.client.get("/apps/service-1/config-vars").json()
