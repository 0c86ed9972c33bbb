"""A Hypothesis state machine drives random use-case sequences on SQLite and PostgreSQL.

A plain-Python model predicts every outcome (which call fails with which error, which apps get a
release); after each step the store must agree with the model and the rotation invariants hold.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from securekey.crypto import Cipher
from securekey.domain.clock import FixedClock
from securekey.domain.keys import parse_pair
from securekey.domain.models import KeyState
from securekey.exceptions import (
    AttachedElsewhereError,
    ConflictError,
    LastAttachmentError,
    NotFoundError,
    SecureKeyError,
)
from securekey.services import SecureKeyService
from securekey.store import SqlStore
from securekey.store.tables import metadata

# Small pools so that clashes, refusals and shared apps happen often.
APPS = ["app-a", "app-b", "app-c"]
ATTACHMENTS = ["SECURE", "ONE", "TWO"]
# ONE_KEY and SECURE_KEY collide with attachment vars on purpose.
VARS = ["FOO", "BAR", "ONE_KEY", "SECURE_KEY"]
PLANS = ["securekey:daily", "securekey:weekly", "securekey:fortnightly", "securekey:monthly"]
UNKNOWN_ADDON = "keys-never-made"

SETTINGS = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    # No "explain" phase: its line tracing multiplies the time of a failing run tenfold.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@dataclass
class ModelApp:
    """What an app should look like: its release count, plain vars and attachments."""

    releases: int = 1
    plain: dict[str, str] = field(default_factory=dict)
    attachments: dict[str, str] = field(default_factory=dict)  # attachment name -> add-on name


@dataclass
class ModelAddon:
    """What an add-on should look like: billing app and the pair value every app must see."""

    billing: str
    pair: str
    plan: str = "securekey:daily"


def reset(store: SqlStore) -> None:
    """Empty every table (schema and migrations stay) so each example starts from nothing."""
    tables = [t.name for t in metadata.sorted_tables]
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


class EngineMachine(RuleBasedStateMachine):
    """Random create/attach/detach/rotate/emergency/destroy/set/unset against a model."""

    def __init__(self, service: SecureKeyService) -> None:
        super().__init__()
        self.service = service
        self.apps: dict[str, ModelApp] = {}
        self.addons: dict[str, ModelAddon] = {}
        self.gone: list[str] = [UNKNOWN_ADDON]
        self._names = itertools.count(1)

    # -------------------------------------------------------------- helpers

    def _apps_holding(self, addon: str) -> set[str]:
        return {a for a, m in self.apps.items() if addon in m.attachments.values()}

    def _attachment_count(self, addon: str) -> int:
        return sum(list(m.attachments.values()).count(addon) for m in self.apps.values())

    def _release_on(self, apps: set[str]) -> None:
        for app in apps:
            self.apps[app].releases += 1

    def _snapshot(self) -> Any:
        """Everything a refused call must leave exactly as it was."""
        s = self.service
        apps = [
            (
                a.name,
                a.release,
                s.config_vars(a.name),
                [(r.version, r.description) for r in s.releases(a.name)],
            )
            for a in s.list_apps()
        ]
        addons = [
            (
                a.name,
                a.key_version,
                a.next_rotation_at,
                s.current_fingerprints(a.name),
                [(k.version, k.state, k.fingerprint) for k in s.key_versions(a.name)],
            )
            for a in s.list_addons()
        ]
        attachments = sorted((a.addon_id, a.app_id, a.name) for a in s.list_attachments())
        return apps, addons, attachments, len(s.audit_events())

    def _refused(self, error: type[SecureKeyError], call: Any) -> None:
        """``call`` must raise exactly ``error`` and change nothing at all."""
        before = self._snapshot()
        with pytest.raises(SecureKeyError) as info:
            call()
        assert type(info.value) is error, f"expected {error.__name__}, got {info.value!r}"
        assert self._snapshot() == before

    def _pair_on(self, addon: str) -> str:
        """The add-on's pair as one of the apps it is attached to sees it."""
        for app, model in sorted(self.apps.items()):
            for att, target in sorted(model.attachments.items()):
                if target == addon:
                    return self.service.config_vars(app)[f"{att}_KEY"]
        raise AssertionError(f"{addon} has no attachment left")

    def _draw_addon(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.addons)), label="addon")

    def _draw_app(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.apps)), label="app")

    # ---------------------------------------------------------------- rules

    @initialize(apps=st.lists(st.sampled_from(APPS), min_size=1, max_size=3, unique=True))
    def start_with_apps(self, apps: list[str]) -> None:
        for app in apps:
            self.create_app(app)

    @rule(app=st.sampled_from(APPS))
    def create_app(self, app: str) -> None:
        if app in self.apps:
            self._refused(ConflictError, lambda: self.service.create_app(app))
            return
        created = self.service.create_app(app)
        assert created.release == 1
        assert [r.description for r in self.service.releases(app)] == ["Initial release"]
        self.apps[app] = ModelApp()

    @precondition(lambda self: self.apps)
    @rule(
        data=st.data(),
        att=st.sampled_from(ATTACHMENTS),
        plan=st.sampled_from(PLANS),
        reuse_name=st.booleans(),
    )
    def create_addon(self, data: st.DataObject, att: str, plan: str, reuse_name: bool) -> None:
        app = self._draw_app(data)
        model = self.apps[app]
        name = sorted(self.addons)[0] if reuse_name and self.addons else f"keys-{next(self._names)}"

        def call() -> Any:
            return self.service.create_addon(app, plan, name=name, attachment_name=att)

        if att in model.attachments or f"{att}_KEY" in model.plain or name in self.addons:
            self._refused(ConflictError, call)
            return
        created = call()
        assert created.release.version == model.releases + 1
        assert created.attachment.var_name == f"{att}_KEY"
        pair = self.service.config_vars(app)[f"{att}_KEY"]
        self.addons[name] = ModelAddon(billing=app, pair=pair, plan=plan)
        model.attachments[att] = name
        model.releases += 1

    @precondition(lambda self: self.addons)
    @rule(data=st.data(), att=st.sampled_from(ATTACHMENTS))
    def attach(self, data: st.DataObject, att: str) -> None:
        addon = self._draw_addon(data)
        app = self._draw_app(data)
        model = self.apps[app]

        def call() -> Any:
            return self.service.attach(addon, app, as_=att)

        if att in model.attachments or f"{att}_KEY" in model.plain:
            self._refused(ConflictError, call)
            return
        _, release = call()
        assert release.version == model.releases + 1
        assert release.description == f"Attach {att} (@ref:{addon})"
        model.attachments[att] = addon
        model.releases += 1

    @precondition(lambda self: self.addons)
    @rule(data=st.data())
    def detach(self, data: st.DataObject) -> None:
        app, att = data.draw(
            st.sampled_from(sorted((a, n) for a, m in self.apps.items() for n in m.attachments)),
            label="attachment",
        )
        model = self.apps[app]

        def call() -> Any:
            return self.service.detach(att, app_ref=app)

        if self._attachment_count(model.attachments[att]) == 1:
            self._refused(LastAttachmentError, call)
            return
        detached, release = call()
        assert detached.name == att
        assert release.version == model.releases + 1
        del model.attachments[att]
        model.releases += 1

    @precondition(lambda self: self.addons)
    @rule(data=st.data(), emergency=st.booleans())
    def rotate(self, data: st.DataObject, emergency: bool) -> None:
        addon = self._draw_addon(data)
        old = parse_pair(self.addons[addon].pair)
        holders = self._apps_holding(addon)
        rotated = self.service.rotate(addon, emergency=emergency)
        new_value = self._pair_on(addon)
        new = parse_pair(new_value)
        if emergency:
            assert {new.latest.hex, new.previous.hex}.isdisjoint({old.latest.hex, old.previous.hex})
        else:
            assert new.previous == old.latest
            assert new.latest not in (old.latest, old.previous)
        assert rotated.fingerprints == new.fingerprints
        # One release on each app holding the add-on, however many attachments it has there.
        app_ids = sorted(r.app_id for r in rotated.releases)
        assert app_ids == sorted(self.service.get_app(a).id for a in holders)
        self.addons[addon].pair = new_value
        self._release_on(holders)

    @precondition(lambda self: self.apps)
    @rule(
        data=st.data(),
        kind=st.sampled_from(["all", "plan", "app"]),
        emergency=st.booleans(),
        batch_size=st.integers(1, 3),
    )
    def rotate_matching(
        self, data: st.DataObject, kind: str, emergency: bool, batch_size: int
    ) -> None:
        """The operator's bulk rotation, in small batches: exactly the matching add-ons rotate."""
        if kind == "all":
            chosen = set(self.addons)
            given: dict[str, Any] = {"all_": True}
        elif kind == "plan":
            plan = data.draw(st.sampled_from(PLANS), label="plan")
            chosen = {n for n, m in self.addons.items() if m.plan == plan}
            given = {"plan": plan}
        else:
            app = self._draw_app(data)
            held = set(self.apps[app].attachments.values())
            chosen = {n for n, m in self.addons.items() if m.billing == app or n in held}
            given = {"app": app}
        old = {n: parse_pair(self.addons[n].pair) for n in chosen}
        done = self.service.rotate_matching(**given, emergency=emergency, batch_size=batch_size)
        assert (done.matched, done.rotated, done.failed) == (len(chosen), len(chosen), [])
        assert done.next_after is None
        holders = [self._apps_holding(n) for n in chosen]
        assert done.releases == sum(len(h) for h in holders)
        for name in chosen:
            value = self._pair_on(name)
            new = parse_pair(value)
            if emergency:
                assert {new.latest, new.previous}.isdisjoint({old[name].latest, old[name].previous})
            else:
                assert new.previous == old[name].latest
            self.addons[name].pair = value
        for apps in holders:
            self._release_on(apps)

    @precondition(lambda self: self.addons)
    @rule(data=st.data(), force=st.booleans())
    def destroy_addon(self, data: st.DataObject, force: bool) -> None:
        addon = self._draw_addon(data)

        def call() -> Any:
            return self.service.destroy_addon(addon, force=force)

        holders = self._apps_holding(addon)
        if holders - {self.addons[addon].billing} and not force:
            self._refused(AttachedElsewhereError, call)
            return
        call()
        self._drop_addon(addon)
        self._release_on(holders)

    @precondition(lambda self: self.apps)
    @rule(data=st.data(), force=st.booleans())
    def destroy_app(self, data: st.DataObject, force: bool) -> None:
        app = self._draw_app(data)

        def call() -> Any:
            return self.service.destroy_app(app, force=force)

        billed = {n for n, a in self.addons.items() if a.billing == app}
        affected = set().union(*(self._apps_holding(n) for n in billed)) - {app}
        if affected and not force:
            self._refused(AttachedElsewhereError, call)
            return
        call()
        held = set(self.apps[app].attachments.values())
        del self.apps[app]
        for addon in billed:
            self._drop_addon(addon)
        # An add-on billed elsewhere whose last attachment was on this app goes with it.
        for addon in held - billed:
            if self._attachment_count(addon) == 0:
                self._drop_addon(addon)
        # One release per surviving app, however many of its attachments went.
        self._release_on(affected)

    @precondition(lambda self: self.apps)
    @rule(
        data=st.data(),
        changes=st.dictionaries(
            st.sampled_from(VARS), st.none() | st.sampled_from(["x", "y"]), min_size=1, max_size=3
        ),
    )
    def set_config(self, data: st.DataObject, changes: dict[str, str | None]) -> None:
        app = self._draw_app(data)
        model = self.apps[app]

        def call() -> Any:
            return self.service.set_config(app, changes)

        if any(f"{att}_KEY" in changes for att in model.attachments):
            self._refused(ConflictError, call)
            return
        effective = {
            n: v
            for n, v in changes.items()
            if (v is None and n in model.plain) or (v is not None and model.plain.get(n) != v)
        }
        release = call()
        if not effective:
            assert release is None
            return
        assert release is not None
        assert release.version == model.releases + 1
        for n, v in effective.items():
            if v is None:
                del model.plain[n]
            else:
                model.plain[n] = v
        model.releases += 1

    @rule(data=st.data(), kind=st.integers(0, 8))
    def refer_to_something_missing(self, data: st.DataObject, kind: int) -> None:
        """Unknown (or destroyed) apps, add-ons and attachments are NotFound and change nothing."""
        s = self.service
        app = data.draw(st.sampled_from([a for a in APPS if a not in self.apps] or ["app-z"]))
        addon = data.draw(st.sampled_from(self.gone))
        real_app = sorted(self.apps)[0] if self.apps else "app-z"
        real_addon = sorted(self.addons)[0] if self.addons else UNKNOWN_ADDON
        calls = [
            lambda: s.create_addon(app, "securekey:daily", name="keys-orphan"),
            lambda: s.attach(addon, real_app, as_="ZZZ"),
            lambda: s.attach(real_addon, app, as_="ZZZ"),
            lambda: s.detach("SECURE", app_ref=app),
            lambda: s.detach("ZZZ", app_ref=real_app),
            lambda: s.rotate(addon, emergency=kind % 2 == 0),
            lambda: s.destroy_addon(addon, force=True),
            lambda: s.destroy_app(app, force=True),
            lambda: s.set_config(app, {"FOO": "x"}),
        ]
        self._refused(NotFoundError, calls[kind])

    def _drop_addon(self, addon: str) -> None:
        del self.addons[addon]
        self.gone.append(addon)
        for model in self.apps.values():
            model.attachments = {k: v for k, v in model.attachments.items() if v != addon}

    # ----------------------------------------------------------- invariants

    @invariant()
    def store_agrees_with_model(self) -> None:
        """After every step the store matches the model and the rotation invariants hold.

        One invariant (not three) so each step lists apps and add-ons once: on PostgreSQL every
        extra transaction is a round trip, and this runs after every step.
        """
        s = self.service
        apps = s.list_apps()
        assert [a.name for a in apps] == sorted(self.apps)
        addons = {a.name: a for a in s.list_addons()}
        assert sorted(addons) == sorted(self.addons)
        for app in apps:
            model = self.apps[app.name]
            expected = dict(model.plain)
            for att, addon in model.attachments.items():
                # The same pair on every attached app, whatever its attachment name.
                expected[f"{att}_KEY"] = self.addons[addon].pair
            assert s.config_vars(app.name) == expected, f"config of {app.name}"
            # Releases are exactly v1..vn, n counting the changes of this app and no other's.
            versions = [r.version for r in s.releases(app.name)]
            assert versions == list(range(1, model.releases + 1)), f"releases of {app.name}"
            assert app.release == model.releases
        for name, addon in self.addons.items():
            pair = parse_pair(addon.pair)
            assert pair.latest != pair.previous, f"{name}: LATEST == PREVIOUS"
            # History holds exactly one LATEST and one PREVIOUS, and they are the served pair.
            history = s.key_versions(name)
            live = {k.state: k for k in history if k.state in (KeyState.LATEST, KeyState.PREVIOUS)}
            assert len([k for k in history if k.state in live]) == 2, f"{name}: history"
            assert live[KeyState.LATEST].fingerprint == pair.latest.fingerprint
            assert live[KeyState.PREVIOUS].fingerprint == pair.previous.fingerprint
            assert addons[name].key_version == live[KeyState.LATEST].version


def test_random_sequences_keep_every_invariant(db_url: str, cipher: Cipher) -> None:
    """Random sequences of every use case keep pairs shared, rotated right and releases gap-free."""
    store = SqlStore.open(db_url, cipher)
    try:

        def fresh_machine() -> EngineMachine:
            reset(store)
            return EngineMachine(SecureKeyService(store, cipher, FixedClock()))

        run_state_machine_as_test(fresh_machine, settings=SETTINGS)
    finally:
        store.close()
