"""Add-ons: provision (plan forms, attachment name, config, name), list, get, resolve, destroy."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import Api, Seed


@pytest.fixture
def apps(api: Api) -> Api:
    """service-1 and service-2, with nothing attached."""
    for name in ("service-1", "service-2"):
        assert api.client.post("/apps", json={"name": name}).status_code == 201
    return api


def test_create_with_plan_object_as_the_heroku_cli_sends_it(apps: Api) -> None:
    """The CLI's body gives a provisioned, free add-on attached as SECURE_KEY."""
    created = apps.client.post(
        "/apps/service-1/addons",
        json={"attachment": {}, "config": {}, "plan": {"name": "securekey:fortnightly"}},
        headers={"Accept-Expansion": "plan"},
    )
    assert created.status_code == 201
    body = created.json()
    assert re.fullmatch(r"securekey-[a-z]+-\d{5}", body["name"])
    assert body["plan"]["name"] == "securekey:fortnightly"
    assert body["plan"]["price"] == {"cents": 0, "unit": "month"}
    assert body["billed_price"]["cents"] == 0
    assert body["state"] == "provisioned"
    assert body["config_vars"] == ["SECURE_KEY"]
    assert body["addon_service"]["name"] == "securekey"
    assert body["app"]["name"] == "service-1"
    assert body["securekey"]["period_seconds"] == 14 * 86400
    value = apps.client.get("/apps/service-1/config-vars").json()["SECURE_KEY"]
    assert re.fullmatch(r"[0-9A-F]{64},[0-9A-F]{64}", value)


def test_create_with_plan_as_a_string(apps: Api) -> None:
    """A plain-string plan works too, with or without the service prefix."""
    full = apps.client.post("/apps/service-1/addons", json={"plan": "securekey:daily"})
    bare = apps.client.post(
        "/apps/service-2/addons", json={"plan": "weekly", "attachment": {"name": "W"}}
    )
    assert full.status_code == bare.status_code == 201
    assert full.json()["plan"]["name"] == "securekey:daily"
    assert bare.json()["plan"]["name"] == "securekey:weekly"


def test_create_with_attachment_name_and_addon_name(apps: Api) -> None:
    """attachment.name sets the var prefix; name sets the add-on's name."""
    created = apps.client.post(
        "/apps/service-1/addons",
        json={
            "plan": {"name": "securekey:monthly"},
            "attachment": {"name": "PAYMENTS"},
            "name": "payments-key",
        },
    )
    assert created.status_code == 201
    assert created.json()["name"] == "payments-key"
    assert created.json()["config_vars"] == ["PAYMENTS_KEY"]
    assert list(apps.client.get("/apps/service-1/config-vars").json()) == ["PAYMENTS_KEY"]


def test_create_with_a_custom_period(apps: Api) -> None:
    """config {"period": "10s"} overrides the plan's period."""
    created = apps.client.post(
        "/apps/service-1/addons",
        json={"plan": "securekey:fortnightly", "config": {"period": "10s"}},
    )
    assert created.status_code == 201
    assert created.json()["securekey"]["period_seconds"] == 10


def test_create_with_an_unknown_config_key_is_refused(apps: Api) -> None:
    """An unknown config key is a 422 naming config, and nothing is provisioned."""
    refused = apps.client.post(
        "/apps/service-1/addons", json={"plan": "securekey:daily", "config": {"colour": "red"}}
    )
    assert refused.status_code == 422
    assert refused.json()["field"] == "config"
    assert "colour" in refused.json()["message"]
    assert apps.client.get("/addons").json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan": "securekey:hourly"}, "plan"),
        ({"plan": "other:daily"}, "plan"),
        ({"plan": "daily", "config": {"period": "soon"}}, "period"),
        ({"plan": "daily", "attachment": {"name": "lower"}}, "attachment.name"),
        ({"plan": "daily", "name": "Bad Name"}, "name"),
    ],
)
def test_create_refuses_bad_plans_periods_and_names(
    apps: Api, body: dict[str, object], field: str
) -> None:
    """Unknown plans, bad periods and ill-formed names are 422s naming the field."""
    refused = apps.client.post("/apps/service-1/addons", json=body)
    assert refused.status_code == 422
    assert refused.json()["field"] == field
    assert apps.client.get("/addons").json() == []


def test_create_on_an_unknown_app_is_404(apps: Api) -> None:
    """Provisioning on an app that does not exist is a 404 naming the app resource."""
    missing = apps.client.post("/apps/nope-app/addons", json={"plan": "daily"})
    assert missing.status_code == 404
    assert missing.json()["resource"] == "app"


def test_create_checks_confirm(apps: Api) -> None:
    """A confirm that is not the app's name is refused; the right one is accepted."""
    wrong = apps.client.post(
        "/apps/service-1/addons", json={"plan": "daily", "confirm": "service-2"}
    )
    assert wrong.status_code == 422
    assert wrong.json()["field"] == "confirm"
    right = apps.client.post(
        "/apps/service-1/addons", json={"plan": "daily", "confirm": "service-1"}
    )
    assert right.status_code == 201


def test_list_all_addons(api: Api, seed: Seed) -> None:
    """GET /addons lists every add-on once, with its billing app."""
    api.client.post("/apps/service-2/addons", json={"plan": "daily", "attachment": {"name": "B"}})
    listed = api.client.get("/addons")
    assert listed.status_code == 200
    assert sorted((a["app"]["name"], a["config_vars"]) for a in listed.json()) == [
        ("service-1", ["SECURE_KEY"]),
        ("service-2", ["B_KEY"]),
    ]


def test_list_per_app_includes_addons_attached_from_other_apps(api: Api, seed: Seed) -> None:
    """GET /apps/service-2/addons lists service-1's add-on, which service-2 attaches."""
    listed = api.client.get("/apps/service-2/addons")
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()] == [seed.addon["id"]]
    assert listed.json()[0]["app"]["name"] == "service-1"
    assert [a["id"] for a in api.client.get("/apps/service-1/addons").json()] == [seed.addon["id"]]


def test_get_by_id_and_by_name(api: Api, seed: Seed) -> None:
    """GET /addons/{addon} finds it by id and by name, with fingerprints and no keys."""
    by_id = api.client.get(f"/addons/{seed.addon['id']}")
    by_name = api.client.get(f"/addons/{seed.addon['name']}")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json()["id"] == by_name.json()["id"]
    fingerprints = by_id.json()["securekey"]["fingerprints"]
    assert set(fingerprints) == {"latest", "previous"}
    keys = api.client.get("/apps/service-1/config-vars").json()["SECURE_KEY"].split(",")
    assert not any(key in by_id.text for key in keys)


def test_get_unknown_addon_is_404(api: Api) -> None:
    """An unknown add-on is a 404 with resource add_on."""
    missing = api.client.get("/addons/securekey-none-00000")
    assert missing.status_code == 404
    assert missing.json()["resource"] == "add_on"


def test_get_via_app_by_name_id_and_attachment_name(api: Api, seed: Seed) -> None:
    """GET /apps/{app}/addons/{addon} resolves an id, a name, or an attachment name there."""
    for ref in (seed.addon["id"], seed.addon["name"]):
        assert api.client.get(f"/apps/service-2/addons/{ref}").json()["id"] == seed.addon["id"]
    by_attachment = api.client.get("/apps/service-2/addons/SERVICE_ONE_SECURE")
    assert by_attachment.status_code == 200
    assert by_attachment.json()["id"] == seed.addon["id"]
    assert api.client.get("/apps/service-1/addons/SERVICE_ONE_SECURE").status_code == 404


def test_resolve_returns_an_array(api: Api, seed: Seed) -> None:
    """POST /actions/addons/resolve answers a list, by name, or attachment name on an app."""
    by_name = api.client.post(
        "/actions/addons/resolve", json={"addon": seed.addon["name"], "app": None}
    )
    assert by_name.status_code == 200
    assert [a["id"] for a in by_name.json()] == [seed.addon["id"]]
    by_attachment = api.client.post(
        "/actions/addons/resolve", json={"addon": "SERVICE_ONE_SECURE", "app": "service-2"}
    )
    assert [a["app"]["name"] for a in by_attachment.json()] == ["service-1"]
    other_service = api.client.post(
        "/actions/addons/resolve", json={"addon": seed.addon["name"], "addon_service": "redis"}
    )
    assert other_service.json() == []
    missing = api.client.post("/actions/addons/resolve", json={"addon": "nothing-here"})
    assert missing.status_code == 404


def test_delete_refused_while_attached_elsewhere(api: Api, seed: Seed) -> None:
    """Destroy without force, while service-2 attaches the add-on, is a 422 naming it."""
    refused = api.client.request(
        "DELETE",
        f"/apps/{seed.one['id']}/addons/{seed.addon['id']}",
        json={"force": False},
    )
    assert refused.status_code == 422
    assert refused.json()["id"] == "attached_elsewhere"
    assert api.client.get(f"/addons/{seed.addon['id']}").status_code == 200


def test_delete_after_detaching_others(api: Api, seed: Seed) -> None:
    """Once only the billing app holds it, destroy answers state deprovisioned."""
    api.client.delete(f"/addon-attachments/{seed.attachment['id']}")
    gone = api.client.request(
        "DELETE",
        f"/apps/{seed.one['id']}/addons/{seed.addon['id']}",
        json={"force": False},
    )
    assert gone.status_code == 200
    assert gone.json()["state"] == "deprovisioned"
    assert gone.json()["name"] == seed.addon["name"]
    assert api.client.get("/apps/service-1/config-vars").json() == {}
    assert api.client.get(f"/addons/{seed.addon['id']}").status_code == 404


def test_delete_with_force_detaches_everywhere(api: Api, seed: Seed) -> None:
    """Destroy with force removes the var from both apps, each with one release."""
    gone = api.client.request(
        "DELETE", f"/apps/service-1/addons/{seed.addon['name']}", json={"force": True}
    )
    assert gone.status_code == 200
    assert gone.json()["state"] == "deprovisioned"
    for app in ("service-1", "service-2"):
        assert api.client.get(f"/apps/{app}/config-vars").json() == {}
        latest = api.client.get(
            f"/apps/{app}/releases", headers={"Range": "version ..; max=1, order=desc"}
        ).json()
        assert latest[0]["version"] == 3


def test_delete_through_a_non_billing_app_is_404(api: Api, seed: Seed) -> None:
    """An add-on is destroyed through the app that bills it, not one that attaches it."""
    wrong = api.client.request(
        "DELETE", f"/apps/service-2/addons/{seed.addon['name']}", json={"force": True}
    )
    assert wrong.status_code == 404
    assert api.client.get(f"/addons/{seed.addon['id']}").status_code == 200
