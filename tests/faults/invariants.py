"""What must hold in a securekey database after any fault, checked straight from the store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from securekey.crypto import Cipher
from securekey.services import SecureKeyService
from securekey.store import SqlStore


@dataclass
class Findings:
    """Counts of what was checked, and every violation found (empty when all holds)."""

    apps: int = 0
    addons: int = 0
    attachments: int = 0
    releases: int = 0
    rotations: dict[str, int] = field(default_factory=dict)  # add-on name -> rotations
    problems: list[str] = field(default_factory=list)


def check(url: str, cipher: Cipher) -> Findings:
    """Releases 1..N with no gap or repeat, each app at its newest; the newest release records
    exactly the config the add-ons' pairs give now (so no rotation committed half-way)."""
    found = Findings()
    store = SqlStore.open(url, cipher, migrate=False)
    service = SecureKeyService(store, cipher)
    try:
        with store.transaction(write=False) as tx:
            apps = tx.list_apps()
            addons = tx.list_addons()
            found.attachments = len(tx.list_attachments())
            for addon in addons:
                # A pair is born as versions 1 and 2; each rotation adds one.
                found.rotations[addon.name] = len(tx.list_key_versions(addon.id)) - 2
            releases = {app.id: tx.list_releases(app.id) for app in apps}
        found.apps, found.addons = len(apps), len(addons)
        for app in apps:
            versions = sorted(r.version for r in releases[app.id])
            found.releases += len(versions)
            if versions != list(range(1, len(versions) + 1)):
                found.problems.append(f"{app.name}: releases {versions} have a gap or repeat")
                continue
            if app.release != len(versions):
                found.problems.append(f"{app.name}: at v{app.release} of {len(versions)}")
            newest = max(releases[app.id], key=lambda r: r.version)
            config = json.dumps(service.config_vars(app.id), sort_keys=True).encode()
            if service._fp.fingerprint(config) != newest.config_fingerprint:
                found.problems.append(f"{app.name}: v{newest.version} is not the current config")
    finally:
        store.close()
    return found
