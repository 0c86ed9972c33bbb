"""Where the CLI connects, with which token, and what it says when that goes wrong."""

from __future__ import annotations

import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli, make_app, one_clear_line
from tests.pg import free_port
from tests.servers import Server


def test_server_down_is_one_line(cli: Cli) -> None:
    """Nobody listening: a line naming the URL and how to start the server, exit status 1."""
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("apps", env=cli.env(SECUREKEY_URL=url))
    one_clear_line(result, "Cannot reach the securekey server", url, "securekey server")


def test_wrong_token_is_one_line(cli: Cli) -> None:
    """A token the server does not know: a 401 line saying to log in again."""
    result = cli("apps", env=cli.env(SECUREKEY_TOKEN="sko_wrong_token_0123456789"))
    one_clear_line(result, "rejected the token from SECUREKEY_TOKEN", "securekey login")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_timeout_is_one_line(cli: Cli, silent_port: int) -> None:
    """A server that never answers: a line saying how long we waited and what to check."""
    env = cli.env(SECUREKEY_URL=f"http://127.0.0.1:{silent_port}", SECUREKEY_TIMEOUT="0.5")
    one_clear_line(cli("apps", env=env), "did not answer within 0.5 s", "SECUREKEY_TIMEOUT")


class _Html(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_not_a_securekey_server_is_one_line(cli: Cli) -> None:
    """A URL that serves something else: a line saying so, not a JSON error."""
    httpd = HTTPServer(("127.0.0.1", 0), _Html)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}"
        result = cli("apps", env=cli.env(SECUREKEY_URL=url))
    finally:
        httpd.shutdown()
        httpd.server_close()
    one_clear_line(result, "did not answer like a securekey server", "text/html")


def test_bad_settings(cli: Cli) -> None:
    """No token, a URL that is not one, a timeout that is not a number: a line saying so."""
    one_clear_line(cli("apps", env=cli.env(SECUREKEY_TOKEN=None)), "Not logged in")
    one_clear_line(cli("apps", env=cli.env(SECUREKEY_URL="127.0.0.1:1")), "not a server URL")
    one_clear_line(cli("apps", env=cli.env(SECUREKEY_TIMEOUT="soon")), "SECUREKEY_TIMEOUT")


def app_token(http: httpx.Client, app: str) -> str:
    """A new app with a token scoped to it."""
    make_app(http, app)
    return str(http.post(f"/apps/{app}/tokens", json={}).json()["token"])


def test_app_token_for_an_operator_command(cli: Cli, http: httpx.Client) -> None:
    """An app token reads its own app's config, and an operator command says it needs more."""
    token = app_token(http, "scoped-app")
    as_app = cli.env(SECUREKEY_TOKEN=token)
    assert cli("config", "-a", "scoped-app", env=as_app).code == 0
    one_clear_line(cli("apps", env=as_app), "operator token")
    one_clear_line(cli("auth:whoami", env=as_app), "operator token")
    one_clear_line(cli("apps:create", "sneaky", env=as_app), "operator token")


def test_login_saves_a_private_file_and_env_overrides_it(server: Server, bare_cli: Cli) -> None:
    """``login`` checks the token, saves URL and token 0600 under XDG_CONFIG_HOME; env wins."""
    result = bare_cli("login", "--url", server.url, "--token", server.token)
    assert result.code == 0, result.err
    assert result.out == f"Logged in to {server.url} as operator@securekey.local\n"
    saved = bare_cli.home / "config" / "securekey" / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    assert server.token in saved.read_text()
    assert bare_cli("auth:whoami").out == f"operator@securekey.local on {server.url}\n"
    assert bare_cli("apps").code == 0
    wrong = bare_cli("apps", env=bare_cli.env(SECUREKEY_TOKEN="sko_wrong_token_0123456789"))
    one_clear_line(wrong, "SECUREKEY_TOKEN")
    down = bare_cli("apps", env=bare_cli.env(SECUREKEY_URL=f"http://127.0.0.1:{free_port()}"))
    one_clear_line(down, "Cannot reach")
    assert bare_cli("logout").code == 0
    assert not saved.exists()
    one_clear_line(bare_cli("apps"), "Not logged in")


def test_login_refuses_bad_and_app_tokens(
    server: Server, http: httpx.Client, tmp_path: Path
) -> None:
    """A wrong token or an app token is refused by ``login`` and nothing is saved."""
    scoped = app_token(http, "login-app")
    fresh = Cli(tmp_path / "fresh")
    one_clear_line(
        fresh("login", "--url", server.url, "--token", "sko_nope_0123456789"), "does not know"
    )
    one_clear_line(fresh("login", "--url", server.url, "--token", scoped), "app token")
    assert not (tmp_path / "fresh" / "config").exists()


def test_login_reads_the_token_from_stdin(server: Server, bare_cli: Cli) -> None:
    """Piped into ``login``, the token never shows in the process list or shell history."""
    result = bare_cli("login", "--url", server.url, stdin=server.token + "\n")
    assert result.code == 0, result.err
    assert bare_cli("apps").code == 0


def test_login_takes_the_token_from_stdin_or_a_file_never_argv(
    server: Server, bare_cli: Cli, tmp_path: Path
) -> None:
    """``--token -`` and ``--token-file`` log in without the token in argv; help says so."""
    piped = bare_cli("login", "--url", server.url, "--token", "-", stdin=server.token + "\n")
    assert piped.code == 0, piped.err
    assert bare_cli("apps").code == 0
    assert bare_cli("logout").code == 0
    token_file = tmp_path / "operator-token"
    token_file.write_text(server.token + "\n")
    from_file = bare_cli("login", "--url", server.url, "--token-file", str(token_file))
    assert from_file.code == 0, from_file.err
    assert bare_cli("apps").code == 0
    missing = bare_cli("login", "--url", server.url, "--token-file", str(tmp_path / "nope"))
    one_clear_line(missing, "Cannot read the token file")
    both = bare_cli("login", "--url", server.url, "--token", "-", "--token-file", str(token_file))
    one_clear_line(both, "not both")
    helps = " ".join((bare_cli("login", "--help").out + bare_cli("run", "--help").out).split())
    assert "--token-file" in helps
    assert "shows in `ps`" in helps
