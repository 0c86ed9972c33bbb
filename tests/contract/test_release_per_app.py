"""One change makes exactly one release on each affected app, even with several attachments there.

Regression tests for what the state machine found: an app holding one add-on under two names got
two releases per rotation or destroy, and one per destroyed add-on when its billing app went.
"""

from __future__ import annotations

from securekey.services import SecureKeyService


def _versions(service: SecureKeyService, app: str) -> list[int]:
    return [r.version for r in service.releases(app)]


def test_rotation_makes_one_release_per_app_not_per_attachment(service: SecureKeyService) -> None:
    """An app holding the add-on as SECURE and TWO gets one release naming both per rotation."""
    service.create_app("service-1")
    service.create_app("service-2")
    name = service.create_addon("service-1", "securekey:daily", name="keys-1").addon.name
    service.attach(name, "service-1", as_="TWO")
    service.attach(name, "service-2", as_="OTHER")
    rotated = service.rotate(name)
    assert len(rotated.releases) == 2
    assert _versions(service, "service-1") == [1, 2, 3, 4]
    assert _versions(service, "service-2") == [1, 2, 3]
    last = service.releases("service-1", descending=True, limit=1)[0]
    assert last.description == "Update SECURE, TWO by keys-1"
    event = service.audit_events(action="addon.rotate")[0]
    assert event.details["apps"] == "2"


def test_destroying_an_addon_makes_one_release_per_app(service: SecureKeyService) -> None:
    """Destroying an add-on held twice by its app detaches both in one release."""
    service.create_app("service-1")
    name = service.create_addon("service-1", "securekey:daily", name="keys-1").addon.name
    service.attach(name, "service-1", as_="TWO")
    service.destroy_addon(name)
    assert _versions(service, "service-1") == [1, 2, 3, 4]
    last = service.releases("service-1", descending=True, limit=1)[0]
    assert last.description == "Detach SECURE, TWO (@ref:keys-1)"
    assert service.config_vars("service-1") == {}


def test_destroying_an_app_makes_one_release_on_each_other_app(service: SecureKeyService) -> None:
    """Force-destroying an app whose two add-ons both sit on service-2 makes one release there."""
    service.create_app("service-1")
    service.create_app("service-2")
    one = service.create_addon("service-1", "securekey:daily", name="keys-1").addon.name
    two = service.create_addon(
        "service-1", "securekey:daily", name="keys-2", attachment_name="TWO"
    ).addon.name
    service.attach(one, "service-2", as_="A")
    service.attach(two, "service-2", as_="B")
    service.set_config("service-2", {"PLAIN": "stays"})
    service.destroy_app("service-1", force=True)
    assert _versions(service, "service-2") == [1, 2, 3, 4, 5]
    last = service.releases("service-2", descending=True, limit=1)[0]
    assert last.description == "Detach A (@ref:keys-1) and Detach B (@ref:keys-2)"
    assert service.config_vars("service-2") == {"PLAIN": "stays"}
    assert service.list_addons() == []
