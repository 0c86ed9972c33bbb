"""Operator flows in a real browser: create, attach, rotate (watched live), reveal, destroy."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.servers import Server
from tests.web.conftest import shot, sign_in


def _create_app(page: Any, name: str) -> None:
    page.get_by_label("New app name").fill(name)
    page.get_by_role("button", name="Create app").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)


def _attach(page: Any, app: str, as_: str) -> None:
    page.get_by_label("App", exact=True).select_option(app)
    page.get_by_label("As (attachment name)").fill(as_)
    page.get_by_role("button", name="Attach", exact=True).click()


def _countdown_target(page: Any) -> str:
    return str(page.locator("#region-rotation [data-countdown]").get_attribute("datetime"))


def test_the_operator_flow(page: Any, server: Server, api: httpx.Client) -> None:
    """Sign in, make two apps and an add-on, share it, rotate while watching the page update
    live, reveal a value (audited), and destroy it only with the typed confirmation."""
    sign_in(page, server)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    shot(page, "overview-empty")

    page.goto(server.url + "/ui/")
    _create_app(page, "svc-one")
    page.goto(server.url + "/ui/")
    _create_app(page, "svc-two")

    # An add-on on svc-one, with an hour's period so the countdown is easy to read.
    page.goto(server.url + "/ui/apps/svc-one")
    page.get_by_label("Custom period").fill("1h")
    page.get_by_role("button", name="Create add-on").click()
    expect(page.locator(".flash-ok")).to_contain_text("as SECURE_KEY on svc-one")
    addon = page.get_by_role("heading", level=1).inner_text().strip()
    assert re.fullmatch(r"securekey-[a-z]+-\d+", addon), addon

    _attach(page, "svc-two", "SERVICE_ONE_SECURE")
    expect(page.locator(".flash-ok")).to_contain_text("Attached as SERVICE_ONE_SECURE to svc-two")
    expect(page.locator("#region-attachments")).to_contain_text("SERVICE_ONE_SECURE_KEY")

    # The overview draws the shared add-on between both apps.
    page.goto(server.url + "/ui/")
    graph = page.locator("svg.graph")
    expect(graph.locator(".edge")).to_have_count(2)
    expect(graph.locator(".node.addon.shared")).to_have_count(1)

    # Live: the add-on page updates when a rotation happens elsewhere, without reloading.
    page.goto(server.url + f"/ui/addons/{addon}")
    expect(page.locator(".live-status")).to_have_text(re.compile("^Live"))
    page.evaluate("window.__notReloaded = true")
    before = _countdown_target(page)
    expect(page.locator("#region-releases")).not_to_contain_text("svc-two v3")
    time.sleep(1.1)  # the countdown is to the second: let one pass so the reset is visible
    answer = api.post(f"/addons/{addon}/actions/rotate", json={"emergency": False})
    assert answer.status_code == 200, answer.text
    expect(page.locator("#region-releases")).to_contain_text("svc-two v3")
    expect(page.locator("#region-releases")).to_contain_text("svc-one v3")
    after = _countdown_target(page)
    assert after > before, (before, after)
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator("#region-keys .badge-latest")).to_have_count(1)
    expect(page.locator("#region-keys .badge-previous")).to_have_count(1)
    expect(page.locator("#region-keys .badge-retired")).to_have_count(1)
    countdown = page.locator("#region-rotation [data-countdown]").inner_text()
    assert re.fullmatch(r"in (59m \d+s|1h 0m 0s|1h)", countdown), countdown
    shot(page, "addon")

    # A wrong confirmation rotates nothing.
    version = api.get(f"/addons/{addon}/key-versions").json()
    page.get_by_label(re.compile("Type .* to confirm")).first.fill("not-the-name")
    page.get_by_role("button", name="Rotate now").click()
    expect(page.locator(".flash-error")).to_contain_text("Confirmation did not match")
    assert api.get(f"/addons/{addon}/key-versions").json() == version

    # The right one rotates, and the page shows the new release.
    page.locator("#rotate-confirm").fill(addon)
    page.get_by_role("button", name="Rotate now").click()
    expect(page.locator(".flash-ok")).to_contain_text(f"Rotated {addon}: 2 app(s)")
    expect(page.locator("#region-releases")).to_contain_text("svc-two v4")

    # Emergency: both keys replaced, the old two shown as revoked.
    page.locator("#emergency-confirm").fill(addon)
    page.get_by_role("button", name="Emergency rotate").click()
    expect(page.locator(".flash-ok")).to_contain_text(f"Emergency rotation of {addon}")
    expect(page.locator("#region-keys .badge-revoked")).to_have_count(2)
    expect(page.locator("#region-releases")).to_contain_text("svc-two v5")

    # Reveal one value on svc-two: shown once, recorded in the audit log without the value.
    config = api.get("/apps/svc-two/config-vars").json()
    secret = config["SERVICE_ONE_SECURE_KEY"]
    page.goto(server.url + "/ui/apps/svc-two")
    assert secret not in page.content()
    page.get_by_role("button", name="Reveal SERVICE_ONE_SECURE_KEY").click()
    expect(page.locator("[data-revealed=SERVICE_ONE_SECURE_KEY]")).to_have_text(secret)
    shot(page, "app")
    page.goto(server.url + "/ui/apps/svc-two")
    assert secret not in page.content()

    page.goto(server.url + "/ui/audit?action=config.reveal")
    rows = page.locator("tr[data-action='config.reveal']")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("var=SERVICE_ONE_SECURE_KEY")
    expect(rows.first).to_contain_text("svc-two")
    for part in secret.split(","):
        assert part not in page.content()
    shot(page, "audit")

    # The overview's chart counts today's rotations: ours were two by hand and one emergency
    # (other tests on this server may add more by hand, none in an emergency).
    page.goto(server.url + "/ui/")
    today = page.locator("svg.bars g.day").last.locator("title")
    expect(today).to_contain_text(re.compile(r"\d+ scheduled, ([2-9]|\d\d+) by hand, 1 emergency"))
    shot(page, "overview")

    # Destroy: a wrong confirmation changes nothing; the right one is still refused while
    # svc-two uses the key, unless forced.
    page.goto(server.url + f"/ui/addons/{addon}")
    page.locator("#destroy-confirm").fill("svc-two")
    page.get_by_role("button", name="Destroy add-on").click()
    expect(page.locator(".flash-error")).to_contain_text("Confirmation did not match svc-one")
    assert api.get(f"/addons/{addon}").status_code == 200

    page.locator("#destroy-confirm").fill("svc-one")
    page.get_by_role("button", name="Destroy add-on").click()
    expect(page.locator(".flash-error")).to_contain_text("still attached to other apps")
    assert api.get(f"/addons/{addon}").status_code == 200
    assert "SERVICE_ONE_SECURE_KEY" in api.get("/apps/svc-two/config-vars").json()

    page.locator("#destroy-confirm").fill("svc-one")
    page.get_by_label(re.compile("Force")).check()
    page.get_by_role("button", name="Destroy add-on").click()
    expect(page.locator(".flash-ok")).to_contain_text(f"Destroyed {addon}")
    assert api.get(f"/addons/{addon}").status_code == 404
    assert "SERVICE_ONE_SECURE_KEY" not in api.get("/apps/svc-two/config-vars").json()
