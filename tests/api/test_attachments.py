"""Add-on attachments: attach, list (all, per app, per add-on), get, detach and its refusals."""

from __future__ import annotations

from tests.api.conftest import Api, Seed


def _latest_version(api: Api, app: str) -> int:
    answer = api.client.get(
        f"/apps/{app}/releases", headers={"Range": "version ..; max=1, order=desc"}
    )
    version: int = answer.json()[0]["version"]
    return version


def test_attach_shares_the_pair_under_the_given_name(api: Api, seed: Seed) -> None:
    """The attachment is named as asked, and service-2 holds service-1's pair, at v2."""
    assert seed.attachment["name"] == "SERVICE_ONE_SECURE"
    assert seed.attachment["app"]["name"] == "service-2"
    assert seed.attachment["addon"]["name"] == seed.addon["name"]
    assert seed.attachment["addon"]["app"]["name"] == "service-1"
    one = api.client.get("/apps/service-1/config-vars").json()
    two = api.client.get("/apps/service-2/config-vars").json()
    assert two == {"SERVICE_ONE_SECURE_KEY": one["SECURE_KEY"]}
    assert _latest_version(api, "service-2") == 2


def test_attach_with_plain_string_references_and_default_name(api: Api, seed: Seed) -> None:
    """addon and app may be plain strings; the default attachment name is SECURE."""
    api.client.post("/apps", json={"name": "service-3"})
    attached = api.client.post(
        "/addon-attachments", json={"addon": seed.addon["id"], "app": "service-3"}
    )
    assert attached.status_code == 201
    assert attached.json()["name"] == "SECURE"
    assert list(api.client.get("/apps/service-3/config-vars").json()) == ["SECURE_KEY"]


def test_attach_name_clash_is_refused(api: Api, seed: Seed) -> None:
    """Attaching under a name the app already uses is a 422 naming the field."""
    clash = api.client.post(
        "/addon-attachments",
        json={"addon": seed.addon["name"], "app": "service-2", "name": "SERVICE_ONE_SECURE"},
    )
    assert clash.status_code == 422
    assert clash.json()["field"] == "attachment.name"
    assert _latest_version(api, "service-2") == 2


def test_attach_over_a_plain_var_is_refused(api: Api, seed: Seed) -> None:
    """Attaching where a plain var of the same name exists is a 422."""
    api.client.patch("/apps/service-2/config-vars", json={"OTHER_KEY": "x"})
    clash = api.client.post(
        "/addon-attachments",
        json={"addon": seed.addon["name"], "app": "service-2", "name": "OTHER"},
    )
    assert clash.status_code == 422
    assert api.client.get("/apps/service-2/config-vars").json()["OTHER_KEY"] == "x"


def test_attach_needs_addon_and_app(api: Api, seed: Seed) -> None:
    """Missing or unknown add-on and app references are a 422 or a 404 naming which."""
    empty_ref = api.client.post("/addon-attachments", json={"addon": {}, "app": "service-2"})
    assert empty_ref.status_code == 422
    assert empty_ref.json()["field"] == "addon"
    no_app = api.client.post("/addon-attachments", json={"addon": seed.addon["id"], "app": {}})
    assert no_app.json()["field"] == "app"
    unknown = api.client.post(
        "/addon-attachments", json={"addon": "no-such-addon", "app": "service-2"}
    )
    assert unknown.status_code == 404
    assert unknown.json()["resource"] == "add_on"


def test_list_all_per_app_and_per_addon(api: Api, seed: Seed) -> None:
    """Attachments list everywhere, per app, and per add-on."""
    everything = api.client.get("/addon-attachments")
    assert everything.status_code == 200
    assert sorted(a["name"] for a in everything.json()) == ["SECURE", "SERVICE_ONE_SECURE"]
    on_two = api.client.get("/apps/service-2/addon-attachments").json()
    assert [a["id"] for a in on_two] == [seed.attachment["id"]]
    per_addon = api.client.get(f"/addons/{seed.addon['name']}/addon-attachments").json()
    assert sorted(a["app"]["name"] for a in per_addon) == ["service-1", "service-2"]


def test_get_by_id_and_by_name_on_an_app(api: Api, seed: Seed) -> None:
    """An attachment is found by id, and by name or id under its app."""
    by_id = api.client.get(f"/addon-attachments/{seed.attachment['id']}")
    by_name = api.client.get("/apps/service-2/addon-attachments/SERVICE_ONE_SECURE")
    under_app_by_id = api.client.get(f"/apps/service-2/addon-attachments/{seed.attachment['id']}")
    assert by_id.status_code == by_name.status_code == under_app_by_id.status_code == 200
    assert by_id.json()["id"] == by_name.json()["id"] == under_app_by_id.json()["id"]
    missing = api.client.get("/apps/service-1/addon-attachments/SERVICE_ONE_SECURE")
    assert missing.status_code == 404
    assert missing.json()["resource"] == "add_on_attachment"


def test_detach_removes_the_var_with_one_release(api: Api, seed: Seed) -> None:
    """DELETE /addon-attachments/{id} answers the attachment; service-2 loses the var at v3."""
    gone = api.client.delete(f"/addon-attachments/{seed.attachment['id']}")
    assert gone.status_code == 200
    assert gone.json()["name"] == "SERVICE_ONE_SECURE"
    assert api.client.get("/apps/service-2/config-vars").json() == {}
    assert _latest_version(api, "service-2") == 3
    assert api.client.get(f"/addon-attachments/{seed.attachment['id']}").status_code == 404


def test_detaching_the_last_attachment_is_refused(api: Api, seed: Seed) -> None:
    """The add-on's last attachment cannot be detached: 422, destroy instead."""
    api.client.delete(f"/addon-attachments/{seed.attachment['id']}")
    last = api.client.get("/apps/service-1/addon-attachments").json()[0]
    refused = api.client.delete(f"/addon-attachments/{last['id']}")
    assert refused.status_code == 422
    assert refused.json()["id"] == "last_attachment"
    assert "SECURE_KEY" in api.client.get("/apps/service-1/config-vars").json()


def test_detach_unknown_is_404(api: Api, seed: Seed) -> None:
    """Detaching an attachment that does not exist is a 404."""
    missing = api.client.delete("/addon-attachments/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.json()["resource"] == "add_on_attachment"
