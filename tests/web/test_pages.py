"""Every page: landmarks, labels, keyboard use, contrast, a phone's width; webhooks shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.pg import free_port
from tests.servers import Server
from tests.web.conftest import shot, sign_in

_HERE = Path(__file__).parent
#: Unlabelled form fields, nameless buttons and links, as the accessibility tree names them.
_UNLABELLED = (_HERE / "unlabelled.js").read_text()
#: Text whose contrast with its background is under WCAG AA's 4.5:1 (bold/large: 3:1).
_LOW_CONTRAST = (_HERE / "contrast.js").read_text()


@pytest.fixture(scope="module")
def world(server: Server) -> dict[str, str]:
    """Two apps sharing an add-on, a rotation, and a webhook that cannot be reached."""
    with server.client() as api:
        api.post("/apps", json={"name": "pages-one"})
        api.post("/apps", json={"name": "pages-two"})
        created = api.post("/apps/pages-one/addons", json={"plan": "securekey:weekly"})
        addon = created.json()["name"]
        api.post(
            "/addon-attachments",
            json={"addon": addon, "app": "pages-two", "name": "PAGES_ONE_SECURE"},
        )
        url = f"http://127.0.0.1:{free_port()}/hook"  # nobody listens: deliveries retry
        hook = api.post("/apps/pages-two/webhooks", json={"url": url, "include": ["api:release"]})
        assert hook.status_code == 201, hook.text
        api.post(f"/addons/{addon}/actions/rotate", json={})
    return {"addon": addon}


def _pages(world: dict[str, str]) -> dict[str, str]:
    return {
        "overview": "/ui/",
        "app": "/ui/apps/pages-two",
        "addon": f"/ui/addons/{world['addon']}",
        "audit": "/ui/audit",
        "webhooks": "/ui/webhooks",
    }


def test_every_page_has_landmarks_labels_and_contrast(
    page: Any, server: Server, world: dict[str, str]
) -> None:
    """Each page has a header, a main landmark, navigation and one h1; every field has a label,
    every button and link a name, and text meets WCAG AA contrast."""
    page.goto(server.url + "/ui/sign-in")
    assert page.evaluate(_UNLABELLED) == []
    assert page.evaluate(_LOW_CONTRAST) == []
    shot(page, "sign-in")
    sign_in(page, server)
    for name, path in _pages(world).items():
        page.goto(server.url + path)
        expect(page.get_by_role("main")).to_have_count(1)
        expect(page.get_by_role("banner")).to_have_count(1)
        expect(page.get_by_role("navigation", name="Main")).to_have_count(1)
        expect(page.get_by_role("heading", level=1)).to_have_count(1)
        assert page.evaluate(_UNLABELLED) == [], name
        assert page.evaluate(_LOW_CONTRAST) == [], name
        assert page.locator("html").get_attribute("lang") == "en"


def test_keyboard_only_sign_in(page: Any, server: Server) -> None:
    """Tab reaches the skip link first, then the token field; Enter signs in."""
    page.goto(server.url + "/ui/sign-in")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(server.token)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_readable_on_a_phone(browser: Any, server: Server, world: dict[str, str]) -> None:
    """At a phone's width (390 px) no page scrolls sideways."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
    )
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        sign_in(page, server)
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        for name, path in _pages(world).items():
            page.goto(server.url + path)
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= 390, (name, wide)
            if name in ("addon", "overview"):
                shot(page, f"phone-{name}", full_page=False)
    finally:
        context.close()


def test_webhook_deliveries_show_status_attempts_and_next_retry(
    page: Any, server: Server, world: dict[str, str], api: httpx.Client
) -> None:
    """The webhooks page lists each delivery's status, attempts and next retry, and no secret."""
    del world
    sign_in(page, server)
    hook = api.get("/apps/pages-two/webhooks").json()[0]
    deliveries = api.get("/apps/pages-two/webhook-deliveries").json()
    assert deliveries
    page.goto(server.url + "/ui/webhooks")
    section = page.locator("section", has=page.get_by_role("link", name="pages-two"))
    expect(section).to_contain_text(hook["url"])
    rows = section.locator("tbody tr:has(.badge)")
    expect(rows).to_have_count(len(deliveries))
    expect(rows.first.locator(".badge")).to_have_text(re.compile("pending|retrying|failed"))
    expect(section.locator("[data-countdown]").first).to_be_attached()
    expect(rows.first).to_contain_text(re.compile(r"ConnectError|HTTP \d+|^$"))
    shot(page, "webhooks")


def test_audit_filters(page: Any, server: Server, world: dict[str, str]) -> None:
    """The audit log narrows by action prefix, target, actor and time, and says so when
    nothing matches or a time cannot be read."""
    sign_in(page, server)
    page.goto(server.url + "/ui/audit?action=addon.&target=" + world["addon"])
    actions = page.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.action)")
    assert set(actions) == {"addon.create", "addon.attach", "addon.rotate"}, actions
    page.goto(server.url + "/ui/audit?target=pages-two&action=webhook.create")
    expect(page.locator("tbody tr")).to_have_count(1)
    page.goto(server.url + "/ui/audit?actor=scheduler&target=" + world["addon"])
    expect(page.get_by_text("No events match.")).to_be_visible()
    page.goto(server.url + "/ui/audit?since=2999-01-01")
    expect(page.get_by_text("No events match.")).to_be_visible()
    page.goto(server.url + "/ui/audit?until=2000-01-01T00:00&target=pages-one")
    expect(page.get_by_text("No events match.")).to_be_visible()
    page.goto(server.url + "/ui/audit?since=yesterday")
    expect(page.get_by_role("alert")).to_contain_text("Times must look like")
    # The form itself fills the query string.
    page.goto(server.url + "/ui/audit")
    page.get_by_label("Action").fill("app.create")
    page.get_by_label("Target").fill("pages-one")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("pages-one")


def test_detach_and_its_refusal(page: Any, server: Server, api: httpx.Client) -> None:
    """Detach removes one attachment's var with a release; the add-on's last attachment
    cannot be detached, and that refusal changes nothing."""
    api.post("/apps", json={"name": "detach-one"})
    api.post("/apps", json={"name": "detach-two"})
    addon = api.post("/apps/detach-one/addons", json={"plan": "securekey:daily"}).json()["name"]
    api.post("/addon-attachments", json={"addon": addon, "app": "detach-two", "name": "SHARED"})
    sign_in(page, server)
    page.goto(server.url + f"/ui/addons/{addon}")
    page.get_by_role("button", name="Detach SHARED from detach-two").click()
    expect(page.get_by_role("status").locator(".flash-ok")).to_contain_text("Detached SHARED: v3")
    assert "SHARED_KEY" not in api.get("/apps/detach-two/config-vars").json()
    page.get_by_role("button", name="Detach SECURE from detach-one").click()
    expect(page.locator(".flash-error")).to_contain_text("no other attachment")
    assert "SECURE_KEY" in api.get("/apps/detach-one/config-vars").json()
