"""``GET /audit-events``: filters, Range paging, fingerprints only; and ``GET /status``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from securekey.domain.clock import FixedClock
from securekey.scheduler import Scheduler
from tests.api.conftest import Api, Seed


def _events(api: Api, query: str = "", **headers: str) -> list[dict[str, object]]:
    answer = api.client.get(f"/audit-events{query}", headers=headers)
    assert answer.status_code in (200, 206), answer.text
    events: list[dict[str, object]] = answer.json()
    return events


def test_audit_events_filter_by_action_target_app_and_actor(api: Api, seed: Seed) -> None:
    """Each filter narrows the log; app= also finds attachments made to that app."""
    api.client.post(f"/addons/{seed.addon['name']}/actions/rotate", json={})
    everything = _events(api)
    actions = [e["action"] for e in everything]
    assert actions.count("app.create") == 2
    assert "addon.rotate" in actions
    rotations = _events(api, "?action=addon.rotate")
    assert [e["target"]["name"] for e in rotations] == [seed.addon["name"]]  # type: ignore[index]
    assert set(rotations[0]["details"]) >= {"latest", "previous", "retired"}  # type: ignore[arg-type]
    by_name = _events(api, f"?target={seed.addon['name']}")
    by_id = _events(api, f"?target={seed.addon['id']}")
    assert by_name == by_id
    assert by_name
    two = [e["action"] for e in _events(api, "?app=service-2")]
    assert two == ["app.create", "addon.attach"]
    assert _events(api, "?actor=scheduler") == []
    by_operator = _events(api, "?actor=operator")
    assert by_operator == [e for e in everything if e["actor"] == "operator"]
    assert "addon.rotate" in [e["action"] for e in by_operator]


def test_audit_events_since_until_and_bad_times(api: Api, seed: Seed) -> None:
    """since is inclusive, until exclusive; a time that is not ISO 8601 is a 422 naming it."""
    assert _events(api, "?since=2999-01-01T00:00:00Z") == []
    assert _events(api, "?until=2000-01-01T00:00:00Z") == []
    assert len(_events(api, "?since=2000-01-01T00:00:00Z")) == len(_events(api))
    bad = api.client.get("/audit-events?since=yesterday")
    assert bad.status_code == 422
    assert bad.json()["id"] == "invalid_params"
    assert "since" in bad.json()["message"]


def test_audit_events_page_with_range(api: Api, seed: Seed) -> None:
    """Range: seq ..; max=2 pages through every event exactly once, in both orders."""
    everything = [e["seq"] for e in _events(api)]
    assert len(everything) >= 4
    seen: list[object] = []
    header = "seq ..; max=2"
    while True:
        answer = api.client.get("/audit-events", headers={"Range": header})
        seen += [e["seq"] for e in answer.json()]
        if answer.status_code == 200:
            break
        assert answer.status_code == 206
        header = answer.headers["Next-Range"]
    assert seen == everything
    newest = api.client.get("/audit-events", headers={"Range": "seq ..; max=1, order=desc"})
    assert newest.status_code == 206
    assert [e["seq"] for e in newest.json()] == [everything[-1]]
    assert api.client.get("/audit-events", headers={"Range": "seq x..; max=2"}).status_code == 400


def test_audit_events_hold_no_key_material(api: Api, seed: Seed) -> None:
    """No key of any app appears anywhere in the audit log's answer."""
    api.client.post(f"/addons/{seed.addon['name']}/actions/rotate", json={"emergency": True})
    text = api.client.get("/audit-events").text
    for app in ("service-1", "service-2"):
        for value in api.client.get(f"/apps/{app}/config-vars").json().values():
            for key in value.split(","):
                assert key not in text
                assert key.lower() not in text


def test_scheduled_rotations_are_credited_to_the_scheduler(api: Api, seed: Seed) -> None:
    """A rotation the scheduler makes names actor 'scheduler' in the log and on the release."""
    later = FixedClock(datetime.now(UTC) + timedelta(days=15))
    result = Scheduler(api.runtime.service, later).tick()
    assert len(result.rotated) == 1
    events = _events(api, "?actor=scheduler")
    assert [e["action"] for e in events] == ["addon.rotate"]
    release = api.client.get("/apps/service-2/releases/3").json()
    assert release["user"]["email"] == "scheduler@securekey.local"
    assert release["securekey"]["actor"] == "scheduler"
    first = api.client.get("/apps/service-2/releases/2").json()
    assert first["user"]["email"] == "operator@securekey.local"


def test_status_reports_database_scheduler_and_next_rotation(api: Api, seed: Seed) -> None:
    """GET /status: version, sqlite ready, no scheduler here, the seed's add-on due next."""
    body = api.client.get("/status").json()
    assert body["database"] == {"backend": "sqlite", "ready": True}
    assert body["token"] == {"kind": "operator"}
    assert body["tls"] is False
    assert body["scheduler"]["running"] is False
    assert body["next_rotation"]["addon"] == seed.addon["name"]
    assert body["next_rotation"]["overdue"] is False
    assert body["webhooks"] == {"failing": []}


def test_audit_events_refuse_bad_filters_and_change_nothing(api: Api, seed: Seed) -> None:
    """NUL bytes, out-of-range times and app tokens are refused with 4xx, never a 500."""
    for query in (
        "?action=a%00b",
        "?app=service-1%00",
        "?since=0001-01-01T00:00:00%2B14:00",
        "?until=9999-12-31T23:59:59-14:00",
        "?since=2026-13-01",
    ):
        answer = api.client.get(f"/audit-events{query}")
        assert answer.status_code == 422, (query, answer.text)
    token = api.app_token("service-2")
    denied = api.client.get("/audit-events", headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
