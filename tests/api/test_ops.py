"""Operations: liveness, readiness, Prometheus metrics and the OpenAPI description."""

from __future__ import annotations

from tests.api.conftest import NO_AUTH, Api, Seed
from tests.api.routes import api_routes


def test_healthz_and_readyz_without_credentials(api: Api) -> None:
    """/healthz and /readyz answer 200 with no token."""
    health = api.call("GET", "/healthz", token=NO_AUTH)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    ready = api.call("GET", "/readyz", token=NO_AUTH)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok"}


def test_metrics_name_the_documented_series(api: Api, seed: Seed) -> None:
    """/metrics is Prometheus text with latency by route, watchers and rotation counters."""
    api.client.post(f"/addons/{seed.addon['name']}/actions/rotate", json={})
    answer = api.call("GET", "/metrics", token=NO_AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    for name in (
        "securekey_request_duration_seconds",
        "securekey_watchers",
        "securekey_scheduled_rotations",
        "securekey_rotation_failures",
        "securekey_manual_rotations",
    ):
        assert f"# TYPE {name}" in text, name
    assert 'route="/apps/{app}/addons"' in text
    assert 'securekey_manual_rotations_total{emergency="false"} 1.0' in text


def test_openapi_lists_every_route(api: Api) -> None:
    """/openapi.json describes every route the app serves, with its methods."""
    answer = api.call("GET", "/openapi.json", token=NO_AUTH)
    assert answer.status_code == 200
    paths = answer.json()["paths"]
    documented = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    served = set(api_routes(api.app)) - {("GET", "/openapi.json")}
    assert served <= documented
    assert documented <= served


def test_openapi_declares_both_auth_schemes(api: Api) -> None:
    """Bearer and Basic are declared; operations other than operations endpoints need one."""
    spec = api.client.get("/openapi.json").json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "basic"}
    assert "security" in spec["paths"]["/apps"]["get"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def _series(api: Api) -> set[str]:
    """Every sample line of /metrics (name and labels), without its value."""
    text = api.call("GET", "/metrics", token=NO_AUTH).text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}


def test_issue8_point7_made_up_methods_add_no_metric_series(api: Api) -> None:
    """50 made-up methods and a 15 KB method, unauthenticated, add no series to /metrics."""
    _series(api)  # reading /metrics is itself a series
    api.raw("BREW", "/apps", token=NO_AUTH)  # the first unknown method starts "other"
    before = _series(api)
    huge = "X" * 15_000
    for method in [f"M{i:02d}" for i in range(50)] + [huge]:
        assert api.raw(method, "/apps", token=NO_AUTH).status in (401, 405)
    after = _series(api)
    assert after == before
    assert 'method="other"' in "".join(after)
    assert len(api.call("GET", "/metrics", token=NO_AUTH).content) < 100_000
