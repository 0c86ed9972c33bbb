"""Bad input: oversized bodies, malformed JSON, wrong types, NUL bytes, over-long names and
unknown resources are refused with a 4xx that names the problem, and change nothing.

Most cases run in process on SQLite; the ones that reach the database with strings PostgreSQL
refuses (NUL bytes) run again against a real server on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from securekey.store import make_engine
from tests.api.conftest import Api, Seed, dump_state, make_seed
from tests.api.routes import api_routes
from tests.conftest import new_pg_database
from tests.pg import PgServer
from tests.servers import running_server

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
NUL = "a\x00b"
LONG = "a" * 5000


def refused(
    client: httpx.Client, engine: sa.Engine, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """Send one bad request: it must be a 4xx with a JSON error, and change nothing."""
    before = dump_state(engine)
    answer = client.request(method, path, **kwargs)
    assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text)
    body = answer.json()
    assert {"id", "message"} <= set(body), body
    assert dump_state(engine) == before
    return answer


@pytest.fixture
def engine(api: Api, seed: Seed) -> sa.Engine:
    """The database under the in-process API, with the seed state in it."""
    return api.runtime.store.engine


# ------------------------------------------------------------------- too large


def test_body_over_64_kib_is_413(api: Api, engine: sa.Engine) -> None:
    """A body over 64 KiB is refused with 413 before it is read, whatever the route."""
    big = {"name": "x" * (65 * 1024)}
    for method, path in (("POST", "/apps"), ("PATCH", "/apps/service-1/config-vars")):
        answer = refused(api.client, engine, method, path, json=big)
        assert answer.status_code == 413
        assert answer.json()["id"] == "request_too_large"


def test_chunked_body_over_64_kib_is_413(api: Api, engine: sa.Engine) -> None:
    """Without Content-Length (chunked), the limit holds as the body is read."""

    def chunks() -> Iterator[bytes]:
        yield b'{"A": "'
        for _ in range(20):
            yield b"x" * 4096
        yield b'"}'

    answer = refused(
        api.client,
        engine,
        "PATCH",
        "/apps/service-1/config-vars",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in answer.request.headers


def test_a_false_content_length_is_413(api: Api, engine: sa.Engine) -> None:
    """A Content-Length that is not a number, or says more than 64 KiB, is refused early."""
    for length in ("abc", str(10**9), "-1"):
        answer = refused(
            api.client,
            engine,
            "POST",
            "/apps",
            content=b"{}",
            headers={"Content-Type": "application/json", "Content-Length": length},
        )
        assert answer.status_code == 413


def test_a_body_just_under_the_limit_is_accepted(api: Api, engine: sa.Engine) -> None:
    """A 30 KiB value fits: the limit is on size, not on ordinary use."""
    answer = api.client.patch("/apps/service-1/config-vars", json={"CERT": "x" * (30 * 1024)})
    assert answer.status_code == 200


# -------------------------------------------------------------- malformed JSON

BODY_ROUTES = [
    ("POST", "/apps"),
    ("PATCH", "/apps/service-1"),
    ("DELETE", "/apps/service-1"),
    ("POST", "/apps/service-1/addons"),
    ("DELETE", "/apps/service-1/addons/{addon}"),
    ("POST", "/actions/addons/resolve"),
    ("POST", "/addon-attachments"),
    ("POST", "/addons/{addon}/actions/rotate"),
    ("PATCH", "/apps/service-1/config-vars"),
    ("POST", "/apps/service-1/tokens"),
    ("POST", "/apps/service-1/webhooks"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize("raw", [b"{", b'{"name": }', b"\xff\xfe", b"{'single': 1}", b"nul\x00"])
def test_malformed_json_is_400(
    api: Api, seed: Seed, engine: sa.Engine, method: str, path: str, raw: bytes
) -> None:
    """A body that is not JSON is a 400 bad_request on every route that takes one."""
    answer = refused(
        api.client,
        engine,
        method,
        path.format(addon=seed.addon["name"]),
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["id"] == "bad_request"


# -------------------------------------------------- wrong types, NULs, lengths

_HOOK = {"url": "http://127.0.0.1:9/hook", "include": ["api:release"]}

# (method, path, body, the field the answer must name)
INVALID: list[tuple[str, str, Any, str]] = [
    # wrong types
    ("POST", "/apps", {"name": 5}, "name"),
    ("POST", "/apps", ["service-3"], "body"),
    ("PATCH", "/apps/service-1", {"name": ["x"]}, "name"),
    ("DELETE", "/apps/service-1", {"force": [1]}, "force"),
    ("POST", "/apps/service-1/addons", {"plan": 5}, "plan"),
    ("POST", "/apps/service-1/addons", {"plan": {"name": 5}}, "plan"),
    ("POST", "/apps/service-1/addons", {"plan": "daily", "attachment": "X"}, "attachment"),
    ("POST", "/apps/service-1/addons", {"plan": "daily", "config": []}, "config"),
    (
        "POST",
        "/apps/service-1/addons",
        {"plan": "daily", "config": {"period": [1]}},
        "config.period",
    ),
    ("POST", "/apps/service-1/addons", {"plan": "daily", "name": 5}, "name"),
    ("DELETE", "/apps/service-1/addons/{addon}", {"force": {}}, "force"),
    ("POST", "/actions/addons/resolve", {"addon": 5}, "addon"),
    ("POST", "/actions/addons/resolve", {}, "addon"),
    ("POST", "/addon-attachments", {"addon": 5, "app": "service-2"}, "addon"),
    ("POST", "/addon-attachments", {"addon": "{addon}"}, "app"),
    ("POST", "/addons/{addon}/actions/rotate", {"emergency": "maybe"}, "emergency"),
    ("PATCH", "/apps/service-1/config-vars", {"A": [1]}, "A"),
    ("PATCH", "/apps/service-1/config-vars", {"A": True}, "A"),
    ("PATCH", "/apps/service-1/config-vars", {"A": {"b": "c"}}, "A"),
    ("PATCH", "/apps/service-1/config-vars", [["A", "1"]], "body"),
    ("POST", "/apps/service-1/tokens", {"description": 5}, "description"),
    ("POST", "/apps/service-1/webhooks", {**_HOOK, "url": 5}, "url"),
    ("POST", "/apps/service-1/webhooks", {**_HOOK, "include": "api:release"}, "include"),
    ("POST", "/apps/service-1/webhooks", {**_HOOK, "level": 5}, "level"),
    # NUL bytes in names and values
    ("POST", "/apps", {"name": NUL}, "name"),
    ("PATCH", "/apps/service-1", {"name": NUL}, "name"),
    ("POST", "/apps/service-1/addons", {"plan": "daily\x00"}, "plan"),
    ("POST", "/apps/service-1/addons", {"plan": {"name": NUL}}, "plan"),
    ("POST", "/apps/service-1/addons", {"plan": "daily", "name": NUL}, "name"),
    ("POST", "/apps/service-1/addons", {"plan": "daily", "attachment": {"name": NUL}}, "X"),
    ("POST", "/apps/service-1/addons", {"plan": "daily", "config": {"period": "1s\x00"}}, "X"),
    ("POST", "/apps/service-1/addons", {"plan": "daily", "confirm": NUL}, "confirm"),
    ("POST", "/actions/addons/resolve", {"addon": NUL}, "addon"),
    ("POST", "/actions/addons/resolve", {"addon": "{addon}", "app": NUL}, "app"),
    ("POST", "/addon-attachments", {"addon": NUL, "app": "service-2"}, "addon"),
    ("POST", "/addon-attachments", {"addon": {"name": NUL}, "app": "service-2"}, "addon"),
    ("POST", "/addon-attachments", {"addon": "{addon}", "app": {"id": NUL}}, "app"),
    ("POST", "/addon-attachments", {"addon": "{addon}", "app": "service-2", "name": NUL}, "X"),
    ("PATCH", "/apps/service-1/config-vars", {"A\x00": "1"}, "config_var"),
    ("PATCH", "/apps/service-1/config-vars", {"A": NUL}, "A"),
    ("POST", "/apps/service-1/tokens", {"description": NUL}, "description"),
    ("POST", "/apps/service-1/webhooks", {**_HOOK, "url": "http://127.0.0.1/\x00"}, "url"),
    ("POST", "/apps/service-1/webhooks", {**_HOOK, "secret": NUL}, "secret"),
    ("POST", "/apps/service-1/webhooks", {**_HOOK, "include": [NUL]}, "include.0"),
    # over-long and ill-formed names and values
    ("POST", "/apps", {"name": "a" * 31}, "name"),
    ("POST", "/apps", {"name": LONG}, "name"),
    ("POST", "/apps", {"name": "Service One"}, "name"),
    ("PATCH", "/apps/service-1", {"name": LONG}, "name"),
    ("POST", "/apps/service-1/addons", {"plan": "daily", "name": "a" * 64}, "name"),
    ("POST", "/apps/service-1/addons", {"plan": "daily", "attachment": {"name": "A" * 61}}, "X"),
    ("POST", "/apps/service-1/addons", {"plan": LONG}, "plan"),
    ("POST", "/actions/addons/resolve", {"addon": LONG}, "addon"),
    ("POST", "/addon-attachments", {"addon": LONG, "app": "service-2"}, "addon"),
    ("PATCH", "/apps/service-1/config-vars", {"A" * 129: "1"}, "config_var"),
    ("PATCH", "/apps/service-1/config-vars", {"A": "x" * (33 * 1024)}, "A"),
    ("POST", "/apps/service-1/tokens", {"description": LONG}, "description"),
    ("POST", "/apps/service-1/webhooks", {**_HOOK, "url": "http://h/" + LONG}, "url"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    INVALID,
    ids=[f"{m} {p} {f} {i}" for i, (m, p, _b, f) in enumerate(INVALID)],
)
def test_invalid_input_is_422_naming_the_field(
    api: Api, seed: Seed, engine: sa.Engine, method: str, path: str, body: Any, field: str
) -> None:
    """Wrong types, NUL bytes and over-long or ill-formed names are 422s naming the field."""
    filled = _fill(body, seed.addon["name"])
    answer = refused(api.client, engine, method, path.format(addon=seed.addon["name"]), json=filled)
    assert answer.status_code == 422, answer.text
    named = answer.json().get("field")
    if field == "X":  # a domain field: attachment.name or period
        assert named in ("attachment.name", "name", "period"), answer.text
    else:
        assert named == field, answer.text
    said = answer.json()["message"].lower().replace("_", " ")
    assert named == "body" or str(named).split(".")[0].replace("_", " ").lower() in said, said


def _fill(body: Any, addon: str) -> Any:
    if isinstance(body, str):
        return addon if body == "{addon}" else body
    if isinstance(body, dict):
        return {k: _fill(v, addon) for k, v in body.items()}
    return body


def test_lone_surrogates_and_non_finite_numbers_are_422(api: Api, engine: sa.Engine) -> None:
    """Values that cannot be stored as UTF-8 text (lone surrogates, NaN) are 422 by name."""
    for raw in (b'{"A": "\\ud800"}', b'{"A": NaN}', b'{"A": Infinity}', b'{"A": 1e999}'):
        answer = refused(
            api.client,
            engine,
            "PATCH",
            "/apps/service-1/config-vars",
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 422, (raw, answer.text)
        assert answer.json()["field"] == "A"
    answer = refused(
        api.client,
        engine,
        "POST",
        "/apps",
        content=b'{"name": "\\udfff"}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 422


# -------------------------------------------------------------- path parameters


def _param_cases(api: Api) -> list[tuple[str, str, str]]:
    """Every route with path parameters, as (method, template, parameter) triples."""
    out = []
    for method, template in api_routes(api.app):
        for name in re.findall(r"{(\w+)}", template):
            out.append((method, template, name))
    return out


def _path(template: str, values: dict[str, str]) -> str:
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], template)


def _values(seed: Seed) -> dict[str, str]:
    return {
        "app": "service-1",
        "addon": seed.addon["name"],
        "attachment": seed.attachment["id"],
        "release": "1",
        "token": "00000000-0000-4000-8000-000000000000",
        "webhook": "00000000-0000-4000-8000-000000000000",
        "delivery": "00000000-0000-4000-8000-000000000000",
        "user": "~",
    }


_BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/apps/{app}"): {"name": "service-9"},
    ("POST", "/apps/{app}/addons"): {"plan": "daily", "attachment": {"name": "B"}},
    ("PATCH", "/apps/{app}/config-vars"): {"A": "1"},
    ("POST", "/apps/{app}/tokens"): {},
    ("POST", "/apps/{app}/webhooks"): _HOOK,
}


@pytest.mark.parametrize("bad", ["%00", "a%00b", "a" * 300])
def test_bad_path_parameters_are_422_naming_them(
    api: Api, seed: Seed, engine: sa.Engine, bad: str
) -> None:
    """A NUL byte or an absurd length in any path parameter is a 422 naming the parameter."""
    values = _values(seed)
    for method, template, name in _param_cases(api):
        if template.endswith("/stream"):
            status, _headers = api.head_only(_path(template, {**values, name: bad}))
            assert status == 422, template
            continue
        path = _path(template, {**values, name: bad})
        answer = refused(api.client, engine, method, path, json=_BODIES.get((method, template)))
        assert answer.status_code == 422, (method, path, answer.text)
        assert answer.json()["field"] == name


@pytest.mark.parametrize(
    ("param", "resource"),
    [("app", "app"), ("addon", "add_on")],
)
def test_unknown_app_or_addon_is_404_with_resource(
    api: Api, seed: Seed, engine: sa.Engine, param: str, resource: str
) -> None:
    """Every route naming an unknown app or add-on is a 404 that says which resource."""
    values = {**_values(seed), param: "nothing-here"}
    for method, template, name in _param_cases(api):
        if name != param or template.endswith("/stream"):
            continue
        path = _path(template, values)
        answer = refused(api.client, engine, method, path, json=_BODIES.get((method, template)))
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["resource"] == resource, (method, path)


def test_unknown_references_in_bodies_are_404(api: Api, seed: Seed, engine: sa.Engine) -> None:
    """An add-on or app named in a body that does not exist is a 404 with its resource."""
    cases = [
        ("/addon-attachments", {"addon": "nothing-here", "app": "service-2"}, "add_on"),
        ("/addon-attachments", {"addon": seed.addon["name"], "app": "nothing-here"}, "app"),
        ("/actions/addons/resolve", {"addon": "nothing-here"}, "add_on"),
        ("/actions/addons/resolve", {"addon": "SECURE", "app": "nothing-here"}, "app"),
    ]
    for path, body, resource in cases:
        answer = refused(api.client, engine, "POST", path, json=body)
        assert answer.status_code == 404
        assert answer.json()["resource"] == resource


def test_odd_headers_are_4xx(api: Api, seed: Seed, engine: sa.Engine) -> None:
    """Unicode digits (latin-1 ``\xb2``) and over-long values in Range, If-None-Match and
    Last-Event-ID, and in release references, are 4xx answers."""
    before = dump_state(engine)
    superscript = b"\xb2"
    for path, header in (
        ("/apps/service-1/releases", b"version ..; max=" + superscript),
        ("/apps/service-1/releases", b"version " + superscript + b".."),
        ("/apps/service-1/releases", b"version ..[" + superscript),
        ("/apps/service-1/releases", b"version " + b"x" * 600 + b".."),
        ("/apps", b"name ..; max=" + superscript),
        ("/addons", b"name ..; max=1" + superscript),
    ):
        answer = api.raw("GET", path, headers={"Range": header})
        assert answer.status == 400, (header, answer.body)
        assert json.loads(answer.body)["id"] == "invalid_range"
    for ref in ("%C2%B2", "v%C2%B2", "v" + "9" * 30, "-1"):
        answer = api.raw("GET", f"/apps/service-1/releases/{ref}")
        assert answer.status == 404, (ref, answer.body)
    long_etag = api.raw("GET", "/apps/service-1/config-vars", headers={"If-None-Match": "x" * 300})
    assert 400 <= long_etag.status < 500
    resume = api.raw(
        "GET", "/apps/service-1/config-vars/stream", headers={"Last-Event-ID": superscript}
    )
    assert resume.status == 200
    assert dump_state(engine) == before


# ------------------------------------------------------- PostgreSQL, for real


@pytest.fixture
def pg_server_api(tmp_path: Path, pg_server: PgServer) -> Iterator[tuple[httpx.Client, sa.Engine]]:
    """A real server on a fresh PostgreSQL database with the seed state, and an engine on it."""
    url = new_pg_database(pg_server)
    engine = make_engine(url)
    try:
        with (
            running_server(tmp_path / "data", database_url=url, master_key=MASTER_KEY) as server,
            server.client() as http,
        ):
            make_seed(_Seeder(http))
            yield http, engine
    finally:
        engine.dispose()


class _Seeder:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client


@pytest.mark.postgres
def test_postgres_refuses_nul_bytes_cleanly(
    pg_server_api: tuple[httpx.Client, sa.Engine],
) -> None:
    """On PostgreSQL, NUL bytes in path parameters and bodies are 4xx, never a 5xx."""
    http, engine = pg_server_api
    addon = http.get("/apps/service-1/addons").json()[0]["name"]
    paths = [
        ("GET", "/apps/a%00b"),
        ("GET", "/apps/service-1/releases/a%00b"),
        ("GET", "/apps/service-1/webhooks/a%00b"),
        ("DELETE", "/apps/service-1/webhooks/a%00b"),
        ("GET", "/apps/service-1/webhook-deliveries/a%00b"),
        ("DELETE", "/apps/service-1/tokens/a%00b"),
        ("GET", "/addon-attachments/a%00b"),
        ("DELETE", "/addon-attachments/a%00b"),
        ("GET", f"/apps/service-1/addon-attachments/a%00b{addon}"),
        ("GET", "/addons/a%00b/key-versions"),
        ("POST", "/addons/a%00b/actions/rotate"),
        ("GET", "/users/a%00b/apps"),
    ]
    for method, path in paths:
        answer = refused(http, engine, method, path)
        assert answer.status_code == 422, (path, answer.text)
    bodies = [
        ("POST", "/apps", {"name": NUL}),
        ("POST", "/actions/addons/resolve", {"addon": NUL}),
        ("POST", "/addon-attachments", {"addon": {"name": NUL}, "app": "service-2"}),
        ("PATCH", "/apps/service-1/config-vars", {"A": NUL}),
        ("POST", "/apps/service-1/tokens", {"description": NUL}),
        ("POST", "/apps/service-1/webhooks", {**_HOOK, "secret": NUL}),
    ]
    for method, path, body in bodies:
        assert refused(http, engine, method, path, json=body).status_code == 422
    long_refs = [("GET", "/apps/" + "a" * 150), ("GET", f"/apps/service-1/releases/{'1' * 60}")]
    for method, path in long_refs:
        assert refused(http, engine, method, path).status_code == 404


def test_raw_socket_chunked_upload_is_413(tmp_path: Path) -> None:
    """Through a real uvicorn server, a chunked body past 64 KiB is cut off with 413."""
    with running_server(tmp_path / "data") as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            head = (
                "PATCH /apps/x/config-vars HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {server.token}\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            sock.sendall(head.encode())
            chunk = b"x" * 8192
            try:
                for _ in range(10):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server may answer and close before the whole body is sent
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
