"""The permission matrix: every endpoint by {no token, bad token, other app's token, own app's
token, operator} answers the expected status.

The endpoint list comes from the app's own routes, so a new endpoint without an entry here
fails ``test_every_route_has_a_matrix_entry``. App tokens may read and watch their own app's
config vars and nothing else; operators get each endpoint's normal success status.

The web dashboard (``GET /`` and everything mounted under ``/ui``) is not token API: it takes
an operator token once at sign-in, then its own session cookie. Here we check that no token
opens it; tests/web covers its sign-in, sessions and CSRF.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import NO_AUTH, Api, dump_state, make_seed, running_api
from tests.api.routes import api_routes
from tests.pg import free_port

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json")}
STREAM = ("GET", "/apps/{app}/config-vars/stream")
#: What an app token (of service-2, the "own" app in every path below) may do.
APP_READABLE = {("GET", "/apps/{app}/config-vars"), STREAM}


@dataclass(frozen=True)
class Case:
    """A concrete request for one route and the operator's success status."""

    path: str
    status: int = 200
    body: Any = field(default=None)


_HOOK = {"include": ["api:release"], "level": "notify"}

MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/account"): Case("/account"),
    ("GET", "/account/rate-limits"): Case("/account/rate-limits"),
    ("GET", "/apps"): Case("/apps"),
    ("POST", "/apps"): Case("/apps", 201, {"name": "service-3"}),
    ("GET", "/users/{user}/apps"): Case("/users/~/apps"),
    ("GET", "/apps/{app}"): Case("/apps/service-2"),
    ("PATCH", "/apps/{app}"): Case("/apps/service-2", 200, {"name": "service-9"}),
    ("DELETE", "/apps/{app}"): Case("/apps/service-2", 200, {"force": False}),
    ("GET", "/addons"): Case("/addons"),
    ("GET", "/addons/{addon}"): Case("/addons/{addon}"),
    ("GET", "/apps/{app}/addons"): Case("/apps/service-2/addons"),
    ("POST", "/apps/{app}/addons"): Case(
        "/apps/service-2/addons", 201, {"plan": "securekey:daily", "attachment": {"name": "B"}}
    ),
    ("GET", "/apps/{app}/addons/{addon}"): Case("/apps/service-2/addons/{addon}"),
    ("DELETE", "/apps/{app}/addons/{addon}"): Case(
        "/apps/service-1/addons/{addon}", 200, {"force": True}
    ),
    ("POST", "/actions/addons/resolve"): Case(
        "/actions/addons/resolve", 200, {"addon": "{addon}", "app": "service-2"}
    ),
    ("POST", "/addons/{addon}/actions/rotate"): Case(
        "/addons/{addon}/actions/rotate", 200, {"emergency": False}
    ),
    ("POST", "/actions/addons/rotate"): Case(
        "/actions/addons/rotate", 200, {"app": "service-2", "emergency": False}
    ),
    ("GET", "/addons/{addon}/key-versions"): Case("/addons/{addon}/key-versions"),
    ("GET", "/addon-attachments"): Case("/addon-attachments"),
    ("POST", "/addon-attachments"): Case(
        "/addon-attachments", 201, {"addon": "{addon}", "app": "service-2", "name": "THIRD"}
    ),
    ("GET", "/addon-attachments/{attachment}"): Case("/addon-attachments/{attachment}"),
    ("DELETE", "/addon-attachments/{attachment}"): Case("/addon-attachments/{attachment}"),
    ("GET", "/apps/{app}/addon-attachments"): Case("/apps/service-2/addon-attachments"),
    ("GET", "/apps/{app}/addon-attachments/{attachment}"): Case(
        "/apps/service-2/addon-attachments/SERVICE_ONE_SECURE"
    ),
    ("GET", "/addons/{addon}/addon-attachments"): Case("/addons/{addon}/addon-attachments"),
    ("GET", "/apps/{app}/config-vars"): Case("/apps/service-2/config-vars"),
    ("PATCH", "/apps/{app}/config-vars"): Case("/apps/service-2/config-vars", 200, {"A": "1"}),
    STREAM: Case("/apps/service-2/config-vars/stream"),
    ("GET", "/apps/{app}/releases"): Case("/apps/service-2/releases"),
    ("GET", "/apps/{app}/releases/{release}"): Case("/apps/service-2/releases/1"),
    ("GET", "/apps/{app}/tokens"): Case("/apps/service-2/tokens"),
    ("POST", "/apps/{app}/tokens"): Case("/apps/service-2/tokens", 201, {"description": "x"}),
    ("DELETE", "/apps/{app}/tokens/{token}"): Case("/apps/service-2/tokens/{token}"),
    ("GET", "/operator-tokens"): Case("/operator-tokens"),
    ("POST", "/operator-tokens"): Case("/operator-tokens", 201, {"description": "x"}),
    ("DELETE", "/operator-tokens/{token}"): Case("/operator-tokens/{operator_token}"),
    ("GET", "/apps/{app}/webhooks"): Case("/apps/service-2/webhooks"),
    ("POST", "/apps/{app}/webhooks"): Case(
        "/apps/service-2/webhooks", 201, {"url": "{hook_url}", **_HOOK}
    ),
    ("GET", "/apps/{app}/webhooks/{webhook}"): Case("/apps/service-2/webhooks/{webhook}"),
    ("DELETE", "/apps/{app}/webhooks/{webhook}"): Case("/apps/service-2/webhooks/{webhook}"),
    ("GET", "/apps/{app}/webhook-deliveries"): Case("/apps/service-2/webhook-deliveries"),
    ("GET", "/apps/{app}/webhook-deliveries/{delivery}"): Case(
        "/apps/service-2/webhook-deliveries/{delivery}"
    ),
    ("GET", "/audit-events"): Case("/audit-events?app=service-2"),
    ("GET", "/status"): Case("/status"),
    ("GET", "/healthz"): Case("/healthz"),
    ("GET", "/readyz"): Case("/readyz"),
    ("GET", "/metrics"): Case("/metrics"),
    ("GET", "/openapi.json"): Case("/openapi.json"),
}

PRINCIPALS = ["none", "bad", "other-app", "own-app", "operator"]


@dataclass
class World:
    """An API with the seed state, app tokens for both apps, a webhook and a delivery."""

    api: Api
    values: dict[str, str]
    tokens: dict[str, str]

    def fill(self, value: Any) -> Any:
        """``value`` with every ``{placeholder}`` replaced by this world's ids and names."""
        if isinstance(value, str):
            return value.format(**self.values)
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value

    def request(self, route: tuple[str, str], principal: str) -> int:
        """The status of ``route``'s case sent as ``principal``."""
        case = MATRIX[route]
        token = self.tokens[principal]
        path = self.fill(case.path)
        if route == STREAM:
            return self.api.head_only(path, token=token)[0]
        kwargs: dict[str, Any] = {}
        if case.body is not None:
            kwargs["json"] = self.fill(case.body)
        return self.api.call(route[0], path, token=token, **kwargs).status_code


def _build_world(api: Api) -> World:
    seed = make_seed(api)
    own = api.app_token("service-2")
    other = api.app_token("service-1")
    hook_url = f"http://127.0.0.1:{free_port()}/hook"
    hook = api.client.post("/apps/service-2/webhooks", json={"url": hook_url, **_HOOK}).json()
    api.client.patch("/apps/service-2/config-vars", json={"SEEDED": "1"})
    delivery = api.client.get("/apps/service-2/webhook-deliveries").json()[0]
    token_id = api.client.get("/apps/service-2/tokens").json()[0]["id"]
    spare = api.client.post("/operator-tokens", json={"description": "spare"}).json()
    values = {
        "addon": seed.addon["name"],
        "attachment": seed.attachment["id"],
        "token": token_id,
        "operator_token": spare["id"],
        "webhook": hook["id"],
        "delivery": delivery["id"],
        "hook_url": hook_url,
    }
    tokens = {
        "none": NO_AUTH,
        "bad": "sko_" + "0" * 43,
        "other-app": other,
        "own-app": own,
        "operator": api.token,
    }
    return World(api, values, tokens)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[World]:
    """One world for every request that must not change anything."""
    data = tmp_path_factory.mktemp("matrix") / "data"
    # No webhook sender: the queued delivery stays as it is and state dumps compare equal.
    with running_api(data, template_dir, webhook_concurrency=0) as api:
        yield _build_world(api)


@pytest.fixture
def fresh_world(tmp_path: Path, template_dir: Path) -> Iterator[World]:
    """A world of its own, for requests that succeed in changing things."""
    with running_api(tmp_path / "data", template_dir, webhook_concurrency=0) as api:
        yield _build_world(api)


def expected(route: tuple[str, str], principal: str) -> int:
    """The status the matrix demands."""
    if route in PUBLIC:
        return 200
    if principal in ("none", "bad"):
        return 401
    if principal == "own-app":
        return 200 if route in APP_READABLE else 403
    if principal == "other-app":
        return 403
    return MATRIX[route].status


def test_every_route_has_a_matrix_entry(world: World) -> None:
    """The matrix covers exactly the routes the app serves: no more, no fewer."""
    served = set(api_routes(world.api.app))
    assert served - set(MATRIX) == set(), "new endpoints need a permission matrix entry"
    assert set(MATRIX) - served == set(), "stale matrix entries"


@pytest.mark.parametrize("principal", PRINCIPALS[:4])
@pytest.mark.parametrize("route", sorted(MATRIX), ids="{0[0]} {0[1]}".format)
def test_non_operators(world: World, route: tuple[str, str], principal: str) -> None:
    """Without an operator token only public routes and one's own config vars answer; any
    refused request changes nothing."""
    before = dump_state(world.api.runtime.store.engine)
    assert world.request(route, principal) == expected(route, principal)
    assert dump_state(world.api.runtime.store.engine) == before


@pytest.mark.parametrize("route", sorted(MATRIX), ids="{0[0]} {0[1]}".format)
def test_operator(world: World, request: pytest.FixtureRequest, route: tuple[str, str]) -> None:
    """The operator gets each endpoint's success status (writes on a world of their own)."""
    target = world if route[0] == "GET" else request.getfixturevalue("fresh_world")
    assert target.request(route, "operator") == expected(route, "operator")


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_dashboard_needs_its_own_sign_in(world: World, principal: str) -> None:
    """No API token, not even the operator's, opens a dashboard page: they all lead to sign-in."""
    token = world.tokens[principal]
    for path in ("/", "/ui/", "/ui/apps/service-2", "/ui/audit"):
        answer = world.api.raw("GET", path, token=token)
        assert answer.status == 303, path
        assert answer.headers["location"] in ("/ui/", "/ui/sign-in"), path
    assert world.api.raw("GET", "/ui/live/app/service-2", token=token).status == 401
    before = dump_state(world.api.runtime.store.engine)
    form = {"content-type": "application/x-www-form-urlencoded"}
    answer = world.api.raw("POST", "/ui/apps", token=token, headers=form, body=b"name=via-token")
    assert answer.status == 401
    assert dump_state(world.api.runtime.store.engine) == before


@pytest.mark.parametrize("principal", ["other-app", "own-app"])
def test_app_tokens_cannot_probe_app_names(world: World, principal: str) -> None:
    """For an app token, an app that does not exist is a 403 like any other app's, not a 404."""
    token = world.tokens[principal]
    answer = world.api.call("GET", "/apps/no-such-app/config-vars", token=token)
    assert answer.status_code == 403
    assert world.api.head_only("/apps/no-such-app/config-vars/stream", token=token)[0] == 403
    assert world.api.call("GET", "/apps/no-such-app", token=token).status_code == 403
    assert world.api.call("GET", "/apps/no-such-app/config-vars").status_code == 404
