"""Rotate now (one add-on, or every add-on matching a filter; normal and emergency) and the key
history: fingerprints, never material."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import Api, Seed, dump_state


def _pair(api: Api, app: str, var: str) -> list[str]:
    value: str = api.client.get(f"/apps/{app}/config-vars").json()[var]
    return value.split(",")


def test_rotate_moves_latest_to_previous_on_every_attached_app(api: Api, seed: Seed) -> None:
    """A normal rotation: PREVIOUS := LATEST, a new LATEST, one release on each app."""
    latest, _previous = _pair(api, "service-1", "SECURE_KEY")
    rotated = api.client.post(f"/addons/{seed.addon['name']}/actions/rotate", json={})
    assert rotated.status_code == 200
    one = _pair(api, "service-1", "SECURE_KEY")
    two = _pair(api, "service-2", "SERVICE_ONE_SECURE_KEY")
    assert one == two
    assert one[1] == latest
    assert one[0] != latest
    body = rotated.json()
    assert body["emergency"] is False
    assert sorted((r["app"]["name"], r["version"]) for r in body["releases"]) == [
        ("service-1", 3),
        ("service-2", 3),
    ]
    assert body["addon"]["securekey"]["fingerprints"] == body["fingerprints"]


def test_rotate_answers_fingerprints_never_keys(api: Api, seed: Seed) -> None:
    """The rotation's answer has 12-hex fingerprints and no key material at all."""
    rotated = api.client.post(f"/addons/{seed.addon['id']}/actions/rotate")
    assert rotated.status_code == 200
    fingerprints = rotated.json()["fingerprints"]
    assert all(re.fullmatch(r"[0-9a-f]{12}", fp) for fp in fingerprints.values())
    for key in _pair(api, "service-1", "SECURE_KEY"):
        assert key not in rotated.text
        assert key.lower() not in rotated.text.lower()
    assert not re.search(r"[0-9A-Fa-f]{64}", rotated.text)


def test_emergency_replaces_both_keys(api: Api, seed: Seed) -> None:
    """An emergency rotation drops both old keys at once."""
    old = _pair(api, "service-1", "SECURE_KEY")
    rotated = api.client.post(
        f"/addons/{seed.addon['name']}/actions/rotate", json={"emergency": True}
    )
    assert rotated.status_code == 200
    assert rotated.json()["emergency"] is True
    new = _pair(api, "service-2", "SERVICE_ONE_SECURE_KEY")
    assert not set(old) & set(new)
    assert new == _pair(api, "service-1", "SECURE_KEY")


def test_rotate_unknown_addon_is_404(api: Api) -> None:
    """Rotating an add-on that does not exist is a 404 with resource add_on."""
    missing = api.client.post("/addons/nothing-here/actions/rotate", json={})
    assert missing.status_code == 404
    assert missing.json()["resource"] == "add_on"


def test_key_versions_newest_first_without_material(api: Api, seed: Seed) -> None:
    """The history lists each key's version, fingerprint, state and times, never the key."""
    api.client.post(f"/addons/{seed.addon['name']}/actions/rotate", json={})
    history = api.client.get(f"/addons/{seed.addon['name']}/key-versions")
    assert history.status_code == 200
    versions = history.json()
    assert [v["version"] for v in versions] == sorted(
        (v["version"] for v in versions), reverse=True
    )
    assert len(versions) == 3
    assert {v["state"] for v in versions[:2]} != {versions[2]["state"]}
    assert versions[2]["retired_at"] is not None
    for entry in versions:
        assert set(entry) == {"version", "fingerprint", "state", "created_at", "retired_at"}
    for key in _pair(api, "service-1", "SECURE_KEY"):
        assert key not in history.text
    assert not re.search(r"[0-9A-Fa-f]{64}", history.text)
    current = api.client.get(f"/addons/{seed.addon['name']}").json()["securekey"]["fingerprints"]
    assert current["latest"] == versions[0]["fingerprint"]
    assert current["previous"] == versions[1]["fingerprint"]


def test_key_versions_of_unknown_addon_is_404(api: Api) -> None:
    """Key history of an unknown add-on is a 404."""
    assert api.client.get("/addons/nothing-here/key-versions").status_code == 404


# ------------------------------------------------------------ rotate by filter


def _fleet(api: Api) -> dict[str, str]:
    """service-1 (daily + weekly add-ons), service-2 (weekly, and service-1's daily attached).

    Returns each add-on's name by a short label.
    """
    http = api.client
    for app in ("service-1", "service-2", "service-3"):
        assert http.post("/apps", json={"name": app}).status_code == 201
    made = {}
    for label, app, plan, att in (
        ("daily-1", "service-1", "daily", "DAILY"),
        ("weekly-1", "service-1", "weekly", "WEEKLY"),
        ("weekly-2", "service-2", "weekly", "SECURE"),
    ):
        answer = http.post(
            f"/apps/{app}/addons",
            json={"plan": {"name": f"securekey:{plan}"}, "attachment": {"name": att}},
        )
        assert answer.status_code == 201, answer.text
        made[label] = answer.json()["name"]
    attached = http.post(
        "/addon-attachments",
        json={"addon": made["daily-1"], "app": "service-2", "name": "FROM_ONE"},
    )
    assert attached.status_code == 201
    return made


def _versions(api: Api) -> dict[str, int]:
    return {a["name"]: a["securekey"]["key_version"] for a in api.client.get("/addons").json()}


def test_rotate_by_plan_app_and_all(api: Api) -> None:
    """Each filter rotates exactly the matching add-ons and answers the counts."""
    made = _fleet(api)
    by_plan = api.client.post("/actions/addons/rotate", json={"plan": "securekey:weekly"})
    assert by_plan.status_code == 200, by_plan.text
    body = by_plan.json()
    assert (body["matched"], body["rotated"], body["releases"], body["failed"]) == (2, 2, 2, [])
    assert body["next_after"] is None
    assert _versions(api) == {made["daily-1"]: 2, made["weekly-1"]: 3, made["weekly-2"]: 3}
    # service-2 holds weekly-2 and (attached) daily-1.
    by_app = api.client.post("/actions/addons/rotate", json={"app": "service-2"}).json()
    assert (by_app["matched"], by_app["rotated"], by_app["releases"]) == (2, 2, 3)
    assert _versions(api) == {made["daily-1"]: 3, made["weekly-1"]: 3, made["weekly-2"]: 4}
    nothing = api.client.post("/actions/addons/rotate", json={"app": "service-3"}).json()
    assert (nothing["matched"], nothing["rotated"]) == (0, 0)
    everything = api.client.post("/actions/addons/rotate", json={"all": True, "batch_size": 2})
    assert everything.json()["rotated"] == 3
    assert _versions(api) == {made["daily-1"]: 4, made["weekly-1"]: 4, made["weekly-2"]: 5}
    # Releases stayed gap-free: service-2 had v1, attach v2, FROM_ONE v3, then 2 + 1 + 2.
    releases = api.client.get("/apps/service-2/releases").json()
    assert [r["version"] for r in releases] == list(range(1, 9))


def test_rotate_by_filter_pages_with_limit_and_after(api: Api) -> None:
    """``limit`` answers a cursor; following it rotates every add-on exactly once."""
    _fleet(api)
    counted = api.client.post("/actions/addons/rotate", json={"all": True, "dry_run": True})
    assert (counted.json()["matched"], counted.json()["rotated"]) == (3, 0)
    assert set(_versions(api).values()) == {2}
    first = api.client.post("/actions/addons/rotate", json={"all": True, "limit": 2}).json()
    assert (first["matched"], first["rotated"]) == (3, 2)
    assert first["next_after"]
    rest = api.client.post(
        "/actions/addons/rotate", json={"all": True, "limit": 2, "after": first["next_after"]}
    ).json()
    assert (rest["matched"], rest["rotated"], rest["next_after"]) == (1, 1, None)
    assert set(_versions(api).values()) == {3}


def test_emergency_by_filter_replaces_both_keys_everywhere(api: Api) -> None:
    """An emergency by app replaces both keys of every add-on the app holds."""
    _fleet(api)
    before = api.client.get("/apps/service-2/config-vars").json()
    done = api.client.post("/actions/addons/rotate", json={"app": "service-2", "emergency": True})
    assert done.status_code == 200
    assert done.json()["emergency"] is True
    after = api.client.get("/apps/service-2/config-vars").json()
    for var in ("SECURE_KEY", "FROM_ONE_KEY"):
        assert not set(before[var].split(",")) & set(after[var].split(","))
    assert (
        after["FROM_ONE_KEY"] == api.client.get("/apps/service-1/config-vars").json()["DAILY_KEY"]
    )
    assert not re.search(r"[0-9A-Fa-f]{64}", done.text)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({}, 422, "exactly one filter"),
        ({"all": True, "plan": "securekey:daily"}, 422, "exactly one filter"),
        ({"plan": "securekey:hourly"}, 422, "plan"),
        ({"app": "no-such-app"}, 404, "app"),
        ({"all": False}, 422, "exactly one filter"),
        ({"all": "true"}, 422, "all"),
        ({"all": True, "emergency": "yes"}, 422, "emergency"),
        ({"all": True, "batch_size": 0}, 422, "batch_size"),
        ({"all": True, "batch_size": 5000}, 422, "batch_size"),
        ({"all": True, "limit": 0}, 422, "limit"),
        ({"plan": "x" * 300}, 422, "plan"),
    ],
)
def test_bad_filters_are_refused_and_change_nothing(
    api: Api, body: dict[str, object], status: int, says: str
) -> None:
    """A missing, doubled, unknown or ill-typed filter is a clear error and rotates nothing."""
    _fleet(api)
    before = dump_state(api.runtime.store.engine)
    answer = api.client.post("/actions/addons/rotate", json=body)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["message"].lower() or says in answer.text.lower()
    assert dump_state(api.runtime.store.engine) == before
