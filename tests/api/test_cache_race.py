"""Issue 8, point 13: a rename or destroy racing a config read never leaves the old name
answering from the read cache (where a new app taking the name would get the other's keys)."""

from __future__ import annotations

import threading
import time

from securekey.api.live import CachedConfig, ConfigCache
from securekey.services import IDENTITY_CHANGED, ReleaseNotice
from tests.api.conftest import Api


def _entry(app_id: str, name: str, release: int = 1) -> CachedConfig:
    return CachedConfig(app_id, name, release, b'{"MARK": "old"}', time.monotonic())


def test_point13_a_fill_begun_before_a_rename_is_not_stored() -> None:
    """A snapshot read before a rename (its generation taken first) is refused when it comes to
    be stored after the rename, so the old name finds nothing."""
    cache = ConfigCache()
    generation = cache.generation
    cache.invalidate([ReleaseNotice("app-1", IDENTITY_CHANGED)])  # the rename commits
    cache.store(_entry("app-1", "old-name"), generation)  # the slow reader arrives
    assert cache.lookup("old-name") is None
    assert cache.lookup("app-1") is None
    fresh = cache.generation
    cache.store(_entry("app-1", "new-name"), fresh)
    hit = cache.lookup("new-name")
    assert hit is not None
    assert hit.app_id == "app-1"


def test_point13_forget_drops_by_name_as_well_as_id() -> None:
    """Forgetting an app drops every name that points at it and the names given."""
    cache = ConfigCache()
    cache.store(_entry("app-1", "shared-name"))
    cache.store(_entry("app-2", "other"))
    cache.forget("app-9", "shared-name")
    assert cache.lookup("shared-name") is None
    assert cache.lookup("app-1") is None
    assert cache.lookup("other") is not None


def test_point13_rename_and_take_over_race_loop(api: Api) -> None:
    """Readers hammer an app's config while it is renamed and a new app takes its name: right
    after each rename the old name is 404 and, once taken, serves the new app's vars only."""
    http = api.client
    stop = threading.Event()
    errors: list[str] = []

    def hammer(name: str) -> None:
        while not stop.is_set():
            answer = http.get(f"/apps/{name}/config-vars")
            if answer.status_code not in (200, 404):
                errors.append(f"{answer.status_code} {answer.text}")

    deadline = time.monotonic() + 60
    rounds = 0
    for round_ in range(40):
        if time.monotonic() > deadline:
            break
        name = f"race-{round_}"
        assert http.post("/apps", json={"name": name}).status_code == 201
        http.patch(f"/apps/{name}/config-vars", json={"MARK": "old"})
        readers = [threading.Thread(target=hammer, args=(name,), daemon=True) for _ in range(3)]
        stop.clear()
        for reader in readers:
            reader.start()
        try:
            time.sleep(0.02)
            renamed = http.patch(f"/apps/{name}", json={"name": f"moved-{round_}"})
            assert renamed.status_code == 200
            gone = http.get(f"/apps/{name}/config-vars")
            assert gone.status_code == 404, f"round {round_}: old name still answers {gone.text}"
            assert http.post("/apps", json={"name": name}).status_code == 201
            http.patch(f"/apps/{name}/config-vars", json={"MARK": "new"})
            for _ in range(5):
                seen = http.get(f"/apps/{name}/config-vars").json()
                assert seen == {"MARK": "new"}, f"round {round_}: {seen}"
        finally:
            stop.set()
            for reader in readers:
                reader.join(10)
        destroyed = http.request("DELETE", f"/apps/moved-{round_}", json={})
        assert destroyed.status_code == 200
        assert http.get(f"/apps/moved-{round_}/config-vars").status_code == 404
        rounds += 1
    assert rounds >= 5
    assert errors == []
