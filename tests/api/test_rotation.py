"""Rotate now (normal and emergency) and the key history: fingerprints, never material."""

from __future__ import annotations

import re

from tests.api.conftest import Api, Seed


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
