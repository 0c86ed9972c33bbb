"""The rotation engine's rules, run against every store backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from securekey.domain.clock import FixedClock
from securekey.domain.keys import parse_pair
from securekey.domain.models import AuditQuery
from securekey.exceptions import (
    AttachedElsewhereError,
    ConflictError,
    LastAttachmentError,
    NotFoundError,
    ValidationError,
)
from securekey.services import SecureKeyService


def _seed(service: SecureKeyService) -> str:
    service.create_app("service-1")
    service.create_app("service-2")
    created = service.create_addon("service-1", "securekey:fortnightly")
    return created.addon.name


def test_walkthrough_shares_one_pair(service: SecureKeyService) -> None:
    """The seed's flow: create, attach --as, both apps hold the same pair under their own names."""
    name = _seed(service)
    assert name.startswith("securekey-")
    one = service.config_vars("service-1")
    assert list(one) == ["SECURE_KEY"]
    pair = parse_pair(one["SECURE_KEY"])
    assert len(one["SECURE_KEY"]) == 129
    att, release = service.attach(name, "service-2", as_="SERVICE_ONE_SECURE")
    assert att.var_name == "SERVICE_ONE_SECURE_KEY"
    assert release.version == 2
    assert release.description == f"Attach SERVICE_ONE_SECURE (@ref:{name})"
    two = service.config_vars("service-2")
    assert two == {"SERVICE_ONE_SECURE_KEY": pair.value}


def test_rotation_moves_latest_to_previous_everywhere(service: SecureKeyService) -> None:
    """A rotation makes the old LATEST the PREVIOUS on every attached app, one release each."""
    name = _seed(service)
    service.attach(name, "service-2", as_="SERVICE_ONE_SECURE")
    before = parse_pair(service.config_vars("service-1")["SECURE_KEY"])
    rotated = service.rotate(name)
    after1 = parse_pair(service.config_vars("service-1")["SECURE_KEY"])
    after2 = parse_pair(service.config_vars("service-2")["SERVICE_ONE_SECURE_KEY"])
    assert after1 == after2
    assert after1.previous == before.latest
    assert after1.latest not in (before.latest, before.previous)
    assert sorted(r.version for r in rotated.releases) == [3, 3]
    assert {r.description for r in rotated.releases} == {
        f"Update SECURE by {name}",
        f"Update SERVICE_ONE_SECURE by {name}",
    }


def test_emergency_rotation_replaces_both_keys(service: SecureKeyService) -> None:
    """An emergency rotation leaves neither old key in the pair and revokes both in history."""
    name = _seed(service)
    before = parse_pair(service.config_vars("service-1")["SECURE_KEY"])
    service.rotate(name, emergency=True)
    after = parse_pair(service.config_vars("service-1")["SECURE_KEY"])
    old = {before.latest.hex, before.previous.hex}
    assert after.latest.hex not in old
    assert after.previous.hex not in old
    states = {k.fingerprint: k.state.value for k in service.key_versions(name)}
    assert states[before.latest.fingerprint] == "revoked"
    assert states[before.previous.fingerprint] == "revoked"
    assert states[after.latest.fingerprint] == "latest"
    assert states[after.previous.fingerprint] == "previous"


def test_key_history_keeps_fingerprints_not_material(service: SecureKeyService) -> None:
    """Retired keys stay in history with fingerprint and times, and the current ones stay usable."""
    name = _seed(service)
    first = parse_pair(service.config_vars("service-1")["SECURE_KEY"])
    service.rotate(name)
    service.rotate(name)
    history = service.key_versions(name)
    assert [k.version for k in history] == [4, 3, 2, 1]
    assert [k.state.value for k in history] == ["latest", "previous", "retired", "retired"]
    retired = {k.fingerprint for k in history if k.state.value == "retired"}
    assert retired == {first.latest.fingerprint, first.previous.fingerprint}
    assert all(k.retired_at is not None for k in history if k.state.value == "retired")


def test_releases_are_gap_free_per_app(service: SecureKeyService) -> None:
    """Each app counts its own releases v1, v2, … with one per change, as the seed shows."""
    name = _seed(service)
    service.attach(name, "service-2", as_="SERVICE_ONE_SECURE")
    service.rotate(name)
    service.detach("SERVICE_ONE_SECURE", app_ref="service-2")
    two = service.releases("service-2")
    assert [r.version for r in two] == [1, 2, 3, 4]
    assert two[0].description == "Initial release"
    assert two[3].description == f"Detach SERVICE_ONE_SECURE (@ref:{name})"
    assert "SERVICE_ONE_SECURE_KEY" not in service.config_vars("service-2")
    assert [r.version for r in service.releases("service-1", descending=True, limit=2)] == [3, 2]
    assert service.release("service-2", "v2").description.startswith("Attach")


def test_config_set_and_unset_make_one_release_each(service: SecureKeyService) -> None:
    """config:set of several vars is one release; unset another; a no-op makes none."""
    service.create_app("service-1")
    release = service.set_config("service-1", {"FOO": "1", "BAR": "two"})
    assert release is not None
    assert release.version == 2
    assert release.description == "Set BAR, FOO config vars"
    assert service.set_config("service-1", {"FOO": "1"}) is None
    unset = service.set_config("service-1", {"FOO": None})
    assert unset is not None
    assert unset.description == "Remove FOO config vars"
    assert service.config_vars("service-1") == {"BAR": "two"}


def test_addon_vars_cannot_be_set_directly(service: SecureKeyService) -> None:
    """Setting or unsetting an attachment's var is refused and changes nothing."""
    _seed(service)
    before = service.config_vars("service-1")
    for value in ("x", None):
        with pytest.raises(ConflictError, match="SECURE_KEY"):
            service.set_config("service-1", {"SECURE_KEY": value})
    assert service.config_vars("service-1") == before
    assert len(service.releases("service-1")) == 2


def test_attachment_name_clashes_are_refused(service: SecureKeyService) -> None:
    """Attaching under a taken name or over a plain var is an error that changes nothing."""
    name = _seed(service)
    service.set_config("service-2", {"TAKEN_KEY": "plain"})
    with pytest.raises(ConflictError, match="already has an attachment named SECURE"):
        service.attach(name, "service-1")
    with pytest.raises(ConflictError, match="TAKEN_KEY"):
        service.attach(name, "service-2", as_="TAKEN")
    assert service.config_vars("service-2") == {"TAKEN_KEY": "plain"}
    assert len(service.releases("service-2")) == 2
    assert len(service.list_attachments(addon_ref=name)) == 1


def test_detaching_the_last_attachment_is_refused(service: SecureKeyService) -> None:
    """An add-on keeps at least one attachment; destroy it instead."""
    _seed(service)
    with pytest.raises(LastAttachmentError):
        service.detach("SECURE", app_ref="service-1")
    assert "SECURE_KEY" in service.config_vars("service-1")


def test_destroy_refuses_while_attached_elsewhere(service: SecureKeyService) -> None:
    """Destroy names the other apps still using the key, and only force detaches everywhere."""
    name = _seed(service)
    service.attach(name, "service-2", as_="SERVICE_ONE_SECURE")
    with pytest.raises(AttachedElsewhereError, match="SERVICE_ONE_SECURE on service-2"):
        service.destroy_addon(name)
    assert "SERVICE_ONE_SECURE_KEY" in service.config_vars("service-2")
    service.destroy_addon(name, force=True)
    assert service.config_vars("service-1") == {}
    assert service.config_vars("service-2") == {}
    assert service.releases("service-2", descending=True)[0].description.startswith("Detach")
    with pytest.raises(NotFoundError):
        service.get_addon(name)


def test_destroy_after_detach_succeeds(service: SecureKeyService) -> None:
    """The seed's clean-up order: detach from service-2, then destroy on service-1."""
    name = _seed(service)
    service.attach(name, "service-2", as_="SERVICE_ONE_SECURE")
    service.detach("SERVICE_ONE_SECURE", app_ref="service-2")
    service.destroy_addon(name, app_ref="service-1")
    assert service.list_addons() == []
    assert [r.version for r in service.releases("service-1")] == [1, 2, 3]


def test_destroy_app_follows_the_same_rule(service: SecureKeyService) -> None:
    """Destroying an app whose add-on is attached elsewhere is refused unless forced."""
    name = _seed(service)
    service.attach(name, "service-2", as_="SERVICE_ONE_SECURE")
    with pytest.raises(AttachedElsewhereError, match="service-2"):
        service.destroy_app("service-1")
    assert service.get_app("service-1").name == "service-1"
    service.destroy_app("service-1", force=True)
    assert service.config_vars("service-2") == {}
    assert [a.name for a in service.list_apps()] == ["service-2"]


def test_destroy_app_removes_its_foreign_attachments(service: SecureKeyService) -> None:
    """An app that only consumes another app's add-on can be destroyed; the add-on stays."""
    name = _seed(service)
    service.attach(name, "service-2", as_="SERVICE_ONE_SECURE")
    service.destroy_app("service-2")
    assert [a.app_id for a in service.list_attachments(addon_ref=name)] == [
        service.get_app("service-1").id
    ]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.create_app("Bad_Name"), ValidationError),
        (lambda s: s.create_app("ab"), ValidationError),
        (lambda s: s.create_app("a" * 31), ValidationError),
        (lambda s: s.create_app("1app"), ValidationError),
        (lambda s: s.create_app("app\x00x"), ValidationError),
        (lambda s: s.create_app(42), ValidationError),
        (lambda s: s.create_app("service-1"), ConflictError),
        (lambda s: s.create_addon("service-1", "securekey:hourly"), ValidationError),
        (lambda s: s.create_addon("service-1", "redis:fortnightly"), ValidationError),
        (lambda s: s.create_addon("nope-app", "securekey:daily"), NotFoundError),
        (lambda s: s.create_addon("service-1", "securekey:daily", period="0s"), ValidationError),
        (lambda s: s.create_addon("service-1", "securekey:daily", period="soon"), ValidationError),
        (lambda s: s.create_addon("service-1", "daily", name="Bad Name"), ValidationError),
        (lambda s: s.create_addon("service-2", "daily", attachment_name="lower"), ValidationError),
        (lambda s: s.attach("securekey-none-1", "service-2"), NotFoundError),
        (lambda s: s.detach("NOPE", app_ref="service-2"), NotFoundError),
        (lambda s: s.rotate("securekey-none-1"), NotFoundError),
        (lambda s: s.destroy_addon("securekey-none-1"), NotFoundError),
        (lambda s: s.set_config("service-1", {"lower": "x"}), ValidationError),
        (lambda s: s.set_config("service-1", {"OK": {"nested": 1}}), ValidationError),
        (lambda s: s.set_config("service-1", {"OK": "a\x00b"}), ValidationError),
        (lambda s: s.set_config("service-1", {}), ValidationError),
        (lambda s: s.release("service-1", "v99"), NotFoundError),
        (lambda s: s.destroy_app("nope-app"), NotFoundError),
    ],
)
def test_bad_input_is_a_clear_error_that_changes_nothing(
    service: SecureKeyService, call: object, error: type[Exception]
) -> None:
    """Every bad input raises its own error and leaves apps, add-ons and releases as they were."""
    _seed(service)

    def state() -> object:
        return (
            [(a.name, a.release) for a in service.list_apps()],
            [a.name for a in service.list_addons()],
            [service.config_vars(a.name) for a in service.list_apps()],
            len(service.audit_events()),
        )

    before = state()
    with pytest.raises(error) as info:
        call(service)  # type: ignore[operator]
    assert info.value.args
    assert str(info.value)
    assert state() == before


def test_custom_period_and_given_name(service: SecureKeyService, clock: FixedClock) -> None:
    """An operator's custom period sets the next rotation; a given name is kept."""
    service.create_app("service-1")
    created = service.create_addon("service-1", "securekey:daily", name="my-keys", period="10s")
    assert created.addon.name == "my-keys"
    assert created.addon.period == timedelta(seconds=10)
    assert created.addon.next_rotation_at == clock.now() + timedelta(seconds=10)
    with pytest.raises(ConflictError):
        service.create_addon("service-1", "securekey:daily", name="my-keys", attachment_name="B")


def test_audit_log_names_fingerprints_only(service: SecureKeyService) -> None:
    """Every mutation is an audit event; rotation events carry fingerprints, never keys."""
    name = _seed(service)
    service.attach(name, "service-2", as_="SERVICE_ONE_SECURE")
    service.rotate(name)
    actions = [e.action for e in service.audit_events()]
    assert actions == ["app.create", "app.create", "addon.create", "addon.attach", "addon.rotate"]
    pair = parse_pair(service.config_vars("service-1")["SECURE_KEY"])
    event = service.audit_events(action="addon.rotate")[0]
    assert event.details["latest"] == pair.latest.fingerprint
    assert event.details["previous"] == pair.previous.fingerprint
    blob = repr(service.audit_events())
    assert pair.latest.hex not in blob
    assert pair.previous.hex not in blob


def test_audit_events_filter_and_page_in_the_store(
    service: SecureKeyService, clock: FixedClock
) -> None:
    """actor, target, app, since/until and seq bounds filter in the database, on every backend."""
    name = _seed(service)
    start = clock.now()
    clock.advance(timedelta(minutes=5))
    service.attach(name, "service-2", as_="SERVICE_ONE_SECURE")
    service.rotate(name, actor="scheduler")
    everything = service.audit_events()
    assert [e.seq for e in everything] == sorted(e.seq for e in everything)
    assert [e.action for e in service.audit_events(actor="scheduler")] == ["addon.rotate"]
    assert {e.target_name for e in service.audit_events(target=name)} == {name}
    assert [e.action for e in service.audit_events(app="service-2")] == [
        "app.create",
        "addon.attach",
    ]
    later = [e.action for e in service.audit_events(since=start + timedelta(minutes=1))]
    assert later == ["addon.attach", "addon.rotate"]
    assert len(service.audit_events(until=start + timedelta(minutes=1))) == 3
    newest = service.audit_events(newest_first=True, limit=1)
    assert newest[0].seq == everything[-1].seq
    middle = service.audit_events(after_seq=everything[0].seq, before_seq=everything[-1].seq)
    assert middle == everything[1:-1]


def test_audit_query_reads_several_actions_newest_first_in_a_bounded_page(
    service: SecureKeyService, clock: FixedClock
) -> None:
    """An ``AuditQuery`` of several actions, ``since`` and a limit reads those, newest first."""
    name = _seed(service)
    service.rotate(name)
    clock.advance(timedelta(days=2))
    start = clock.now()
    service.rotate(name, emergency=True)
    service.rotate(name, actor="scheduler")
    service.set_config("service-1", {"OTHER": "x"})
    rotations = ("addon.rotate", "addon.rotate_emergency")
    wanted = AuditQuery(action=rotations, since=start, newest_first=True, limit=10)
    found = service.audit_events(wanted)
    assert [(e.action, e.actor) for e in found] == [
        ("addon.rotate", "scheduler"),
        ("addon.rotate_emergency", "operator"),
    ]
    assert service.audit_events(wanted, limit=1) == found[:1]
    assert len(service.audit_events(AuditQuery(action=rotations))) == 3
