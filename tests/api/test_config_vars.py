"""Config vars: read with an ETag, conditional reads, set and unset in one release."""

from __future__ import annotations

import json

from tests.api.conftest import Api, Seed


def _versions(api: Api, app: str) -> list[int]:
    return [r["version"] for r in api.client.get(f"/apps/{app}/releases").json()]


def test_get_is_flat_with_the_release_as_etag(api: Api, seed: Seed) -> None:
    """GET answers a flat {"K": "v"} object, ETag "<release>", never cached by proxies."""
    answer = api.client.get("/apps/service-2/config-vars")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["etag"] == '"2"'
    assert answer.headers["cache-control"] == "no-store"
    assert list(answer.json()) == ["SERVICE_ONE_SECURE_KEY"]


def test_if_none_match_gives_304_until_the_next_release(api: Api, seed: Seed) -> None:
    """The current ETag gives 304 with no body; after a release the same tag gives 200."""
    same = api.client.get("/apps/service-2/config-vars", headers={"If-None-Match": '"2"'})
    assert same.status_code == 304
    assert same.content == b""
    assert same.headers["etag"] == '"2"'
    listed = api.client.get("/apps/service-2/config-vars", headers={"If-None-Match": '"1", "2"'})
    assert listed.status_code == 304
    api.client.patch("/apps/service-2/config-vars", json={"A": "1"})
    changed = api.client.get("/apps/service-2/config-vars", headers={"If-None-Match": '"2"'})
    assert changed.status_code == 200
    assert changed.headers["etag"] == '"3"'


def test_get_by_app_id(api: Api, seed: Seed) -> None:
    """Config vars are addressable by the app's id too."""
    by_id = api.client.get(f"/apps/{seed.two['id']}/config-vars")
    assert by_id.json() == api.client.get("/apps/service-2/config-vars").json()


def test_patch_sets_and_unsets_in_one_release(api: Api, seed: Seed) -> None:
    """PATCH sets strings and unsets nulls, answers the whole config, one release each time."""
    set_two = api.client.patch("/apps/service-1/config-vars", json={"A": "1", "B": "two"})
    assert set_two.status_code == 200
    assert set_two.json()["A"] == "1"
    assert set_two.json()["B"] == "two"
    assert "SECURE_KEY" in set_two.json()
    assert set_two.headers["etag"] == '"3"'
    mixed = api.client.patch("/apps/service-1/config-vars", json={"A": None, "C": "3"})
    assert mixed.status_code == 200
    assert sorted(mixed.json()) == ["B", "C", "SECURE_KEY"]
    assert _versions(api, "service-1") == [1, 2, 3, 4]
    described = api.client.get("/apps/service-1/releases/4").json()["description"]
    assert "C" in described
    assert "A" in described


def test_numbers_become_strings(api: Api, seed: Seed) -> None:
    """A number value is stored as its string, as Heroku does."""
    answer = api.client.patch("/apps/service-1/config-vars", json={"PORT": 5000})
    assert answer.json()["PORT"] == "5000"


def test_noop_patch_makes_no_release(api: Api, seed: Seed) -> None:
    """Setting a var to its current value or unsetting an absent one makes no release."""
    api.client.patch("/apps/service-1/config-vars", json={"A": "1"})
    again = api.client.patch("/apps/service-1/config-vars", json={"A": "1", "NOPE": None})
    assert again.status_code == 200
    assert again.headers["etag"] == '"3"'
    assert _versions(api, "service-1") == [1, 2, 3]


def test_setting_an_addon_var_is_a_clear_422(api: Api, seed: Seed) -> None:
    """SECURE_KEY belongs to the attachment: changing or unsetting it is refused by name."""
    before = api.client.get("/apps/service-1/config-vars").json()
    for value in ("mine", None):
        refused = api.client.patch("/apps/service-1/config-vars", json={"SECURE_KEY": value})
        assert refused.status_code == 422
        body = refused.json()
        assert body["field"] == "SECURE_KEY"
        assert "SECURE" in body["message"]
        assert "attachment" in body["message"]
    assert api.client.get("/apps/service-1/config-vars").json() == before
    assert _versions(api, "service-1") == [1, 2]


def test_bad_names_and_empty_bodies_are_refused(api: Api, seed: Seed) -> None:
    """An ill-formed var name or an empty change set is a 422; nothing is released."""
    bad = api.client.patch("/apps/service-1/config-vars", json={"lower": "x"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "config_var"
    empty = api.client.patch("/apps/service-1/config-vars", json={})
    assert empty.status_code == 422
    assert _versions(api, "service-1") == [1, 2]


def test_unknown_app_is_404(api: Api) -> None:
    """Config vars of an unknown app: 404 with resource app, for reads and writes."""
    for answer in (
        api.client.get("/apps/nope-app/config-vars"),
        api.client.patch("/apps/nope-app/config-vars", json={"A": "1"}),
    ):
        assert answer.status_code == 404
        assert answer.json()["resource"] == "app"


def test_stream_sends_the_current_config_first(api: Api, seed: Seed) -> None:
    """The SSE stream opens with the app's config at its release: id = release, data = vars."""
    token = api.app_token("service-2")
    answer = api.raw("GET", "/apps/service-2/config-vars/stream", token=token, first_chunk=True)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    event = answer.body.decode()
    assert event.startswith("id: 2\nevent: config\ndata: ")
    data = json.loads(event.split("data: ", 1)[1].split("\n", 1)[0])
    assert data == api.client.get("/apps/service-2/config-vars").json()


def test_stream_resumes_without_repeating_the_current_release(api: Api, seed: Seed) -> None:
    """With Last-Event-ID equal to the current release, the stream says so and sends no data."""
    answer = api.raw(
        "GET",
        "/apps/service-2/config-vars/stream",
        headers={"Last-Event-ID": "2"},
        first_chunk=True,
    )
    assert answer.status == 200
    assert b"data:" not in answer.body
    assert answer.body.startswith(b":")
