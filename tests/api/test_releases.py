"""Releases: order, Heroku's Range header (max, order, bounds, Next-Range), one by version."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api


@pytest.fixture(scope="module")
def many(shared_api: Api) -> Api:
    """service-1 with 20 releases (v1 create, then 19 config changes); tests only read it."""
    api = shared_api
    api.client.post("/apps", json={"name": "service-1"})
    for n in range(19):
        assert api.client.patch("/apps/service-1/config-vars", json={"N": str(n)}).status_code
    return api


def _versions(answer: object) -> list[int]:
    return [r["version"] for r in answer.json()]  # type: ignore[attr-defined]


def test_default_is_oldest_first(many: Api) -> None:
    """Without Range, every release, oldest first; v20 is the only current one."""
    answer = many.client.get("/apps/service-1/releases")
    assert answer.status_code == 200
    assert _versions(answer) == list(range(1, 21))
    assert answer.headers["content-range"] == "version 1..20"
    assert "next-range" not in answer.headers
    body = answer.json()
    assert [r["current"] for r in body].count(True) == 1
    assert body[-1]["current"] is True
    first = body[0]
    assert first["description"] == "Initial release"
    assert first["status"] == "succeeded"
    assert first["user"]["email"]
    assert first["created_at"].endswith("Z")


def test_the_heroku_cli_range(many: Api) -> None:
    """`version ..; max=15, order=desc` gives the 15 newest, newest first, as 206."""
    answer = many.client.get(
        "/apps/service-1/releases", headers={"Range": "version ..; max=15, order=desc"}
    )
    assert answer.status_code == 206
    assert _versions(answer) == list(range(20, 5, -1))
    assert answer.headers["content-range"] == "version 20..6"
    assert answer.headers["next-range"] == "version ..[6; max=15, order=desc"


def test_max_one_newest(many: Api) -> None:
    """`max=1, order=desc` gives the current release alone."""
    answer = many.client.get(
        "/apps/service-1/releases", headers={"Range": "version ..; max=1, order=desc"}
    )
    assert _versions(answer) == [20]


def test_following_next_range_gives_the_rest(many: Api) -> None:
    """Following Next-Range pages through every release exactly once, both orders."""
    for order, expected in (("asc", list(range(1, 21))), ("desc", list(range(20, 0, -1)))):
        seen: list[int] = []
        header: str | None = f"version ..; max=7, order={order}"
        pages = 0
        while header is not None:
            answer = many.client.get("/apps/service-1/releases", headers={"Range": header})
            assert answer.status_code in (200, 206)
            seen += _versions(answer)
            header = answer.headers.get("next-range")
            assert (answer.status_code == 206) == (header is not None)
            pages += 1
        assert seen == expected
        assert pages == 3


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("version ]2..; max=2", [3, 4]),
        ("version 2..4", [2, 3, 4]),
        ("version 2..[4", [2, 3]),
        ("version ..3", [1, 2, 3]),
        ("version  ..  ;  max = 3 ,  order = desc ", [20, 19, 18]),
        ("version ..; order=desc; max=2", [20, 19]),
        ("version ..; ORDER=DESC, MAX=2", [20, 19]),
        ("id ..; max=2", [1, 2]),
        ("version ..; max=2, foo=bar", [1, 2]),
        ("version 18..", [18, 19, 20]),
        ("version 25..", []),
    ],
)
def test_odd_but_valid_ranges(many: Api, header: str, expected: list[int]) -> None:
    """Lenient forms of Range (spacing, option order, case, bounds) are honoured."""
    answer = many.client.get("/apps/service-1/releases", headers={"Range": header})
    assert answer.status_code in (200, 206)
    assert _versions(answer) == expected


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "name ..",
        "version ..; max=0",
        "version ..; max=-1",
        "version ..; max=lots",
        "version ..; max=100000",
        "version ..; order=sideways",
        "version a..b",
        "version 1...2",
        "version " + "9" * 30 + "..",
    ],
)
def test_garbage_range_is_400(many: Api, header: str) -> None:
    """A Range that cannot be understood is a 400 invalid_range, never a 5xx."""
    answer = many.client.get("/apps/service-1/releases", headers={"Range": header})
    assert answer.status_code == 400
    assert answer.json()["id"] == "invalid_range"


def test_one_release_by_version_v_version_and_id(many: Api) -> None:
    """GET /apps/{app}/releases/{release} takes 3, v3 or the release's id."""
    third = many.client.get("/apps/service-1/releases/3")
    assert third.status_code == 200
    assert third.json()["version"] == 3
    assert third.json()["current"] is False
    assert many.client.get("/apps/service-1/releases/v3").json()["id"] == third.json()["id"]
    by_id = many.client.get(f"/apps/service-1/releases/{third.json()['id']}")
    assert by_id.json()["version"] == 3


def test_unknown_release_is_404(many: Api) -> None:
    """A release that does not exist is a 404 with resource release."""
    for ref in ("99", "v0", "not-a-release"):
        missing = many.client.get(f"/apps/service-1/releases/{ref}")
        assert missing.status_code == 404
        assert missing.json()["resource"] == "release"


def test_ranges_on_other_lists(api: Api) -> None:
    """Lists of apps honour Range by name with Next-Range, as releases do by version."""
    for name in ("app-a", "app-b", "app-c"):
        api.client.post("/apps", json={"name": name})
    first = api.client.get("/apps", headers={"Range": "name ..; max=2"})
    assert first.status_code == 206
    assert [a["name"] for a in first.json()] == ["app-a", "app-b"]
    assert first.headers["next-range"] == "name ]app-b..; max=2, order=asc"
    rest = api.client.get("/apps", headers={"Range": first.headers["next-range"]})
    assert rest.status_code == 200
    assert [a["name"] for a in rest.json()] == ["app-c"]
    assert api.client.get("/apps", headers={"Range": "colour .."}).status_code == 400
