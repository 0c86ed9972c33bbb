"""The dashboard's front door: who may sign in, what the cookie holds, CSRF, sign-out, limits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.servers import Server, running_server
from tests.web.conftest import shot, sign_in


def _session_cookie(context: Any) -> dict[str, Any]:
    found = [c for c in context.cookies() if c["name"].endswith("securekey_session")]
    assert len(found) == 1, context.cookies()
    cookie: dict[str, Any] = found[0]
    return cookie


def _sign_in_http(client: httpx.Client, token: str) -> httpx.Response:
    """Sign in with a plain HTTP client: fetch the form's CSRF token, then post."""
    form = client.get("/ui/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return client.post("/ui/sign-in", data={"csrf": csrf.group(1), "token": token})


def test_operator_session_cookie(page: Any, context: Any, server: Server) -> None:
    """Signing in sets one HttpOnly, SameSite=Strict cookie holding a random id, not the token,
    and scripts cannot read it."""
    sign_in(page, server)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    cookie = _session_cookie(context)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert server.token not in cookie["value"]
    assert len(cookie["value"]) >= 40
    assert "securekey_session" not in page.evaluate("document.cookie")


def test_app_token_cannot_sign_in(page: Any, context: Any, server: Server) -> None:
    """An app token is refused at sign-in with a clear message, and no session is made."""
    with server.client() as api:
        assert api.post("/apps", json={"name": "app-token-app"}).status_code == 201
        answer = api.post("/apps/app-token-app/tokens", json={"description": "web test"})
        app_token = answer.json()["token"]
    sign_in(page, server, app_token)
    expect(page.get_by_role("alert")).to_have_text(
        "App tokens cannot sign in: use an operator token."
    )
    shot(page, "sign-in-refused")
    assert not [c for c in context.cookies() if c["name"].endswith("securekey_session")]
    page.goto(server.url + "/ui/apps/app-token-app")
    expect(page).to_have_url(server.url + "/ui/sign-in")


def test_wrong_token_cannot_sign_in(page: Any, server: Server) -> None:
    """A wrong token is refused without saying more than that."""
    sign_in(page, server, "sko_" + "x" * 43)
    expect(page.get_by_role("alert")).to_have_text("That token is not valid.")
    page.goto(server.url + "/ui/")
    expect(page).to_have_url(server.url + "/ui/sign-in")


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_post_without_the_csrf_token_is_refused(
    page: Any, context: Any, server: Server, api: httpx.Client, csrf: str | None
) -> None:
    """A signed-in browser's POST without the page's CSRF token (or with a wrong one) is a 403
    and changes nothing."""
    sign_in(page, server)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    name = f"csrf-{len(csrf or 'x')}-{'none' if csrf is None else 'given'}"
    form = {"name": name} if csrf is None else {"name": name, "csrf": csrf}
    answer = context.request.post(server.url + "/ui/apps", form=form)
    assert answer.status == 403
    assert "CSRF" in answer.text()
    assert api.get(f"/apps/{name}").status_code == 404


def test_cross_origin_post_is_refused(page: Any, context: Any, server: Server) -> None:
    """Even with the right CSRF token, a POST whose Origin is another site is a 403."""
    sign_in(page, server)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = context.request.post(
        server.url + "/ui/apps",
        form={"name": "cross-origin", "csrf": str(csrf)},
        headers={"Origin": "http://evil.example"},
    )
    assert answer.status == 403
    with server.client() as api:
        assert api.get("/apps/cross-origin").status_code == 404


def test_sign_out_ends_the_session_on_the_server(page: Any, context: Any, server: Server) -> None:
    """After sign-out the old cookie value opens nothing, even if it was copied before."""
    sign_in(page, server)
    stolen = _session_cookie(context)["value"]
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(server.url + "/ui/sign-in")
    with httpx.Client(base_url=server.url, cookies={"securekey_session": stolen}) as client:
        answer = client.get("/ui/")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/sign-in"


def test_live_view_needs_a_session_and_carries_no_keys(server: Server, api: httpx.Client) -> None:
    """The live stream answers 401 without a session; with one it sends fingerprints and
    releases, never the keys themselves."""
    api.post("/apps", json={"name": "live-app"})
    addon = api.post("/apps/live-app/addons", json={"plan": "securekey:daily"}).json()["name"]
    value = api.get("/apps/live-app/config-vars").json()["SECURE_KEY"]
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        assert anonymous.get(f"/ui/live/addon/{addon}").status_code == 401
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert _sign_in_http(client, server.token).status_code == 303
        with client.stream("GET", f"/ui/live/addon/{addon}") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = ""
            for line in stream.iter_lines():
                first += line + "\n"
                if line == "" and "event: update" in first:
                    break
    assert "live-app v2" in first
    for key in value.split(","):
        assert key not in first


def test_failed_sign_ins_are_rate_limited(tmp_path: Path) -> None:
    """Past the failed-authentication limit a wrong token is turned away with 429, while the
    right token still signs in: the limiter slows guessing, it never locks operators out."""
    with (
        running_server(tmp_path / "data") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        statuses = [_sign_in_http(client, f"sko_wrong_{i:040d}").status_code for i in range(30)]
        assert set(statuses) == {401}
        refused = _sign_in_http(client, f"sko_wrong_{31:040d}")
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers
        assert "try again later" in refused.text
        answer = _sign_in_http(client, server.token)
        assert answer.status_code == 303, answer.text
