"""The fast path (issue 10 point 4): ``securekey config`` answers before typer, rich or httpx
are imported, and prints byte for byte what the full command line prints, errors included."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securekey.cli.fast import BadAnswer, parse, parse_answer, render_config
from securekey.cli.render import Renderer
from tests.cli.conftest import Cli, make_app

#: The full command line, without the fast path in front of it.
FULL = [sys.executable, "-c", "import sys; from securekey.cli.entry import main; sys.exit(main())"]

#: Runs ``securekey ARGS`` as the console script does, then lists the modules it imported.
_IMPORTS = """
import json, sys
from securekey.__main__ import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump(sorted(sys.modules), f)
sys.exit(code)
"""

#: What a config read must never load: the server, the ORM, and the full command line's stack.
NEVER = ("securekey.api", "securekey.store", "sqlalchemy", "fastapi", "starlette", "uvicorn")
#: typing too: importing it was a tenth of the fast path's start-up (bench/notes.md).
NOT_ON_THE_FAST_PATH = (
    "typer",
    "click",
    "rich",
    "httpx",
    "httpcore",
    "securekey.cli.entry",
    "typing",
    "http.client",  # with email and ssl, over a third of the start-up: one GET needs none of it
    "email",
)


def _imports(cli: Cli, tmp_path: Path, *args: str) -> tuple[int, str, list[str]]:
    listing = tmp_path / "modules.json"
    runner = Cli(cli.home, cli.server, [sys.executable, "-c", _IMPORTS, str(listing)])
    done = runner(*args)
    return done.code, done.out, json.loads(listing.read_text())


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in names or m.startswith(names)]


def test_config_imports_neither_the_server_nor_typer_rich_or_httpx(
    cli: Cli, http: httpx.Client, tmp_path: Path
) -> None:
    """``config -a APP`` and ``config:get`` load no server, ORM, typer, rich, httpx or typing."""
    make_app(http, "fast-app", "securekey:fortnightly")
    for args in (("config", "-a", "fast-app"), ("config:get", "SECURE_KEY", "-a", "fast-app")):
        code, out, modules = _imports(cli, tmp_path, *args)
        assert code == 0
        assert "SECURE_KEY" in out or len(out.strip()) == 129
        assert _loaded(modules, NEVER) == []
        assert _loaded(modules, NOT_ON_THE_FAST_PATH) == []


def test_a_config_error_still_loads_no_server_module(cli: Cli, tmp_path: Path) -> None:
    """An unknown app is explained by the full client's words, without loading the server."""
    code, _out, modules = _imports(cli, tmp_path, "config", "-a", "no-such-app")
    assert code == 1
    assert _loaded(modules, NEVER) == []


def test_fast_and_full_print_the_same(cli: Cli, http: httpx.Client) -> None:
    """Every config view and failure prints the same bytes and status on both paths."""
    make_app(http, "same-app", "securekey:fortnightly")
    http.patch("/apps/same-app/config-vars", json={"Z": 'it\'s "quoted" ⬢ 東京', "E": ""})
    full = Cli(cli.home, cli.server, FULL)
    cases = [
        ("config", "-a", "same-app"),
        ("config", "--app=same-app", "--json"),
        ("config", "--app", "same-app", "-s", "--reveal"),
        ("config:get", "Z", "-a", "same-app"),
        ("config:get", "-a", "same-app", "E", "--shell"),
        ("config:get", "SECURE_KEY", "-a", "same-app", "-j"),
        ("config:get", "MISSING", "-a", "same-app"),
        ("config", "-a", "no-such-app"),
    ]
    fast_runs, full_runs = cli.many(cases), full.many(cases)
    for args, fast, slow in zip(cases, fast_runs, full_runs, strict=True):
        assert (fast.code, fast.out, fast.err) == (slow.code, slow.out, slow.err), args
    bad_token = cli.env(SECUREKEY_TOKEN="sko_not_a_known_token")
    down = cli.env(SECUREKEY_URL="http://127.0.0.1:9")  # discard port: nothing listens
    for env in (bad_token, down):
        fast, slow = (
            cli("config", "-a", "same-app", env=env),
            full("config", "-a", "same-app", env=env),
        )
        assert fast.code == slow.code == 1
        assert (fast.out, fast.err) == (slow.out, slow.err)


def test_fast_and_full_print_the_same_on_a_terminal(cli: Cli, http: httpx.Client) -> None:
    """On a terminal (colour, masked keys) and with NO_COLOR the two paths print the same."""
    make_app(http, "tty-app", "securekey:fortnightly")
    full = Cli(cli.home, cli.server, FULL)
    for env in (cli.env(), cli.env(NO_COLOR="1")):
        for args in (("config", "-a", "tty-app"), ("config", "-a", "tty-app", "--reveal")):
            fast, slow = cli.pty(*args, env=env), full.pty(*args, env=env)
            assert fast.code == slow.code == 0
            assert fast.out == slow.out, args
            assert "SECURE_KEY" in fast.out


def test_only_the_plain_forms_take_the_fast_path() -> None:
    """Help, other options, repeated or option-like values go to the full command line."""
    assert parse(["config", "-a", "x"]) is not None
    assert parse(["config:get", "K", "--app=x", "-j"]) is not None
    for argv in (
        ["config"],
        ["config", "-a", "x", "--help"],
        ["config", "-a", "x", "-h"],
        ["config", "-ax"],
        ["config", "-a", "--json"],
        ["config", "-a", "x", "-a", "y"],
        ["config", "-a", "x", "extra"],
        ["config:get", "-a", "x"],
        ["config:get", "K", "L", "-a", "x"],
        ["config:get", "K", "-a", "x", "--reveal"],
        ["config:set", "K=v", "-a", "x"],
        ["--version"],
        [],
    ):
        assert parse(argv) is None, argv


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(app=_TEXT, config=st.dictionaries(_TEXT, _TEXT, max_size=4), color=st.booleans())
def test_the_fast_view_is_the_renderers_view(app: str, config: dict[str, str], color: bool) -> None:
    """Where the fast path draws ``config`` itself, it draws exactly what ``Renderer`` draws."""
    drawn = render_config(app, config, color=color)
    if drawn is None:  # tabs, newlines, control characters: rich draws those
        return
    out = io.StringIO()
    renderer = Renderer(out, io.StringIO(), io.StringIO(), color_out=color, width=40)
    renderer.header(f"{app} Config Vars")
    renderer.config(config)
    assert drawn == out.getvalue()


def test_the_answer_reader_takes_length_chunked_and_closing_answers() -> None:
    """The fast path's HTTP reader: a Content-Length body is cut at its length, a chunked one
    is joined (extensions and trailers ignored), one without either runs to the close."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    assert parse_answer(head + b"Content-Length: 2\r\n\r\n{}xx") == (
        200,
        [("Content-Type", "application/json"), ("Content-Length", "2")],
        b"{}",
    )
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
    chunked += b'3;x=1\r\n{"a\r\na\r\n":"b"}\r\n0\r\nT: 1\r\n\r\n'
    chunked += b'3;x=1\r\n{"a\r\n6\r\n":"b"}\r\n0\r\nT: 1\r\n\r\n'
    assert parse_answer(b"HTTP/1.0 404 Not Found\r\n\r\nno app")[0:3:2] == (404, b"no app")


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed at once
        b"HTTP/1.1 200 OK\r\nContent-Length: 10",  # cut in the headers
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # cut in the body
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}",  # cut chunk
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",  # not HTTP at all
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n{}",
    ],
)
def test_a_malformed_or_cut_answer_is_refused_not_half_read(answer: bytes) -> None:
    """Abuse case: an answer cut short, malformed, or not HTTP raises ``BadAnswer`` (which the
    command line reports as the full path would), never a partial config."""
    with pytest.raises(BadAnswer):
        parse_answer(answer)
