"""The fast path for the hottest read, ``securekey config -a APP`` (and ``config:get``): the
standard library alone answers it, before typer, rich or httpx are imported (issue 10 point 4).

It takes only the plain forms of these commands over plain HTTP and prints what the full
command prints, byte for byte; anything else (help, completion, another option, HTTPS, a
proxy) returns None and the full command line runs instead. A failed request is not sent
again: the answer (or the network error) is replayed through ``ApiClient``, so every error
reads exactly as it does from the full command line.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from urllib.parse import quote, urlsplit

from securekey import __version__
from securekey.cli.errors import CliError
from securekey.cli.session import Credentials, resolve
from securekey.cli.text import MARK, mask_keys, robust, safe, wants_color

# Not ``typing.TYPE_CHECKING``: importing typing is a tenth of this path's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Request", "answer", "parse", "render_config"]

_ACCEPT = "application/vnd.heroku+json; version=3"
#: Options of ``config`` and ``config:get`` that take no value.
_FLAGS = {"-j": "json", "--json": "json", "-s": "shell", "--shell": "shell"}
_PROXIES = ("http_proxy", "all_proxy")


@dataclass(frozen=True)
class Request:
    """A ``config`` (``name`` None) or ``config:get NAME`` command line, parsed."""

    app: str
    name: str | None = None
    json: bool = False
    shell: bool = False
    reveal: bool = False


def parse(argv: list[str]) -> Request | None:
    """The command when ``argv`` is a plain ``config`` or ``config:get``; else None."""
    if not argv or argv[0] not in ("config", "config:get"):
        return None
    seen: dict[str, Any] = {}
    rest = argv[1:]
    while rest:
        arg = rest.pop(0)
        value: str | bool
        if arg.startswith("--app="):
            key, value = "app", arg[len("--app=") :]
        elif arg in ("-a", "--app") and rest:
            key, value = "app", rest.pop(0)
        elif arg in _FLAGS:
            key, value = _FLAGS[arg], True
        elif arg == "--reveal" and argv[0] == "config":
            key, value = "reveal", True
        elif argv[0] == "config:get" and arg and not arg.startswith("-"):
            key, value = "name", arg
        else:
            return None
        if key in seen or (isinstance(value, str) and (not value or value.startswith("-"))):
            return None  # repeated, empty or option-like: the full parser says what it means
        seen[key] = value
    if "app" not in seen or (argv[0] == "config:get") != ("name" in seen):
        return None
    return Request(**seen)


def answer(argv: list[str], env: Mapping[str, str]) -> int | None:
    """Run ``argv`` on the fast path: its exit status, or None to run the full command line."""
    request = parse(argv)
    if request is None or "_SECUREKEY_COMPLETE" in env or not _cli_installed():
        return None
    if any(key.lower() in _PROXIES for key in env):
        return None  # httpx would go through the proxy
    target = _target(env)
    if target is None:
        return None
    credentials, timeout = target
    robust(sys.stdout)
    robust(sys.stderr)
    path = f"/apps/{quote(request.app, safe='')}/config-vars"
    try:
        config = _fetch(credentials, timeout, path)
        return None if config is None else _show(request, config, env)
    except CliError as error:
        _error(env, error.message)
        return error.exit_code
    except KeyboardInterrupt:
        _error(env, "Interrupted.")
        return 130
    except BrokenPipeError:
        # The reader went away (`securekey config -a x | head`): not an error worth a word.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _cli_installed() -> bool:
    """Whether typer and rich are there: without them the full path says how to install them."""
    try:
        return all(find_spec(name) is not None for name in ("typer", "rich"))
    except (ImportError, ValueError):
        return False


def _target(env: Mapping[str, str]) -> tuple[Credentials, float] | None:
    """The credentials and timeout when the fast path can use them (plain HTTP, a token)."""
    try:
        credentials = resolve(env)
    except CliError:
        return None
    raw = env.get("SECUREKEY_TIMEOUT", "")
    try:
        timeout = float(raw) if raw else 30.0
    except ValueError:
        return None
    if not credentials.token or not timeout > 0:
        return None
    try:
        parts = urlsplit(credentials.url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme.lower() != "http" or not parts.hostname or parts.username is not None:
        return None
    if parts.query or parts.fragment or parts.password is not None:
        return None
    if not all(_plain(text) for text in (credentials.token, parts.hostname, parts.path)):
        return None  # what cannot go in a request line or header as is: the full path decides
    return credentials, timeout


def _plain(text: str) -> bool:
    """Printable ASCII without spaces: safe in a request line or a header value as it is."""
    return text.isascii() and text.isprintable() and " " not in text


def _fetch(credentials: Credentials, timeout: float, path: str) -> dict[str, str] | None:
    """The app's config vars; a failure raises the ``CliError`` the full path would."""
    parts = urlsplit(credentials.url)
    host, port = str(parts.hostname), parts.port or 80
    request = (
        f"GET {parts.path.rstrip('/') + path} HTTP/1.1\r\n"
        f"Host: {f'[{host}]' if ':' in host else host}{'' if port == 80 else f':{port}'}\r\n"
        f"Accept: {_ACCEPT}\r\nUser-Agent: securekey-cli/{__version__}\r\n"
        f"Authorization: Bearer {credentials.token}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    status, body = 0, b""
    answer_headers: list[tuple[str, str]] = []
    failure: tuple[str, BaseException] | None = None
    try:
        sock = socket.create_connection((host, port), timeout=min(timeout, 10.0))
    except OSError as exc:
        failure = ("connect", exc)
    else:
        try:
            with sock:
                sock.settimeout(timeout)
                status, answer_headers, body = _exchange(sock, request)
        except (OSError, BadAnswer) as exc:
            failure = ("read", exc)
    if failure is None and 200 <= status < 300:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
            return data
    _replay(credentials, timeout, path, status, answer_headers, body, failure)
    return None


class BadAnswer(Exception):
    """The server's answer is not an HTTP/1.x response this reader can take apart."""


#: The largest answer the fast path reads (a config is a few KB; the limit is the server's too).
_MAX_ANSWER = 16 * 1024 * 1024


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send ``request`` (``Connection: close``) and read the whole answer: status, headers, body.

    The standard library's ``http.client`` would do it, but importing it (with ``email`` and
    ``ssl``) was over a third of this path's start-up (bench/notes.md), for one GET on a
    connection the server closes after answering.
    """
    sock.sendall(request)
    chunks, size = [], 0
    while chunk := sock.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > _MAX_ANSWER:
            raise BadAnswer(f"the answer is over {_MAX_ANSWER} bytes")
    return parse_answer(b"".join(chunks))


def parse_answer(data: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of one whole HTTP/1.x answer (``Content-Length``, chunked, or
    up to the end of the connection); ``BadAnswer`` if it is malformed or cut short."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        raise BadAnswer("the server closed the connection before the end of its headers")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise BadAnswer(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadAnswer(f"malformed header line: {line[:80]!r}")
        headers.append((name, value.strip()))
    fields = {name.lower(): value for name, value in headers}
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return int(code), headers, _dechunk(body)
    if "content-length" in fields:
        length = fields["content-length"]
        if not length.isdigit():
            raise BadAnswer(f"bad Content-Length: {length[:40]!r}")
        if len(body) < int(length):
            raise BadAnswer("the server closed the connection before the end of its answer")
        body = body[: int(length)]
    return int(code), headers, body


def _dechunk(body: bytes) -> bytes:
    """A chunked body's payload (trailers ignored); ``BadAnswer`` if malformed or cut short."""
    out, pos = bytearray(), 0
    while True:
        end = body.find(b"\r\n", pos)
        size_field = body[pos:end].split(b";", 1)[0].strip() if end >= 0 else b""
        try:
            size = int(size_field, 16)
        except ValueError:
            raise BadAnswer("malformed chunked body") from None
        if size == 0:
            return bytes(out)
        start = end + 2
        if size < 0 or len(body) < start + size + 2:
            raise BadAnswer("the server closed the connection before the end of its answer")
        out += body[start : start + size]
        pos = start + size + 2


def _replay(
    credentials: Credentials,
    timeout: float,
    path: str,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
    failure: tuple[str, BaseException] | None,
) -> None:
    """Give the answer (or the failure) to ``ApiClient`` and raise the ``CliError`` it makes."""
    import httpx

    from securekey.cli.api import ApiClient

    def replay(request: httpx.Request) -> httpx.Response:
        if failure is not None:
            stage, exc = failure
            raise _httpx_error(httpx, stage, exc, request)
        return httpx.Response(status, headers=headers, content=body, request=request)

    client = ApiClient(credentials, timeout=timeout, transport=httpx.MockTransport(replay))
    try:
        client.get(path)  # an answer it accepts is not a dict of strings: the full path decides
    finally:
        client.close()


def _httpx_error(httpx: Any, stage: str, exc: BaseException, request: Any) -> Exception:
    """The httpx error httpx itself raises for ``exc`` at ``stage`` (connect or read)."""
    text = str(exc)
    if isinstance(exc, TimeoutError):
        kind = httpx.ConnectTimeout if stage == "connect" else httpx.ReadTimeout
    elif stage == "connect":
        kind = httpx.ConnectError
    elif isinstance(exc, BadAnswer):
        kind = httpx.RemoteProtocolError
    else:
        kind = httpx.ReadError
    error: Exception = kind(text, request=request)
    return error


def _error(env: Mapping[str, str], message: str) -> None:
    """One error line on stderr, as ``Renderer.error`` writes it."""
    mark = f"\x1b[31m{MARK}\x1b[0m" if wants_color(sys.stderr, env) else MARK
    sys.stderr.write(f"{mark}{safe(message)}\n")
    sys.stderr.flush()


def _show(request: Request, config: dict[str, str], env: Mapping[str, str]) -> int:
    """Print as ``config`` / ``config:get`` do; the exit status."""
    out = sys.stdout
    if request.name is not None:
        if request.name not in config:
            _error(
                env,
                f"{request.name} is not set on {request.app}; see its vars with "
                f"`securekey config -a {request.app}`.",
            )
            return 1
        config = {request.name: config[request.name]}
        if not request.json and not request.shell:
            out.write(config[request.name] + "\n")
    if request.json:
        out.write(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    elif request.shell:
        out.write("".join(f"{k}={shlex.quote(v)}\n" for k, v in config.items()))
    elif request.name is None:
        terminal = out.isatty()
        if terminal and not request.reveal:
            config = {name: mask_keys(value) for name, value in config.items()}
        text = render_config(request.app, config, color=wants_color(out, env))
        if text is None:
            _rich_config(request.app, config, env)
        else:
            out.write(text)
    out.flush()
    return 0


def render_config(app: str, config: dict[str, str], *, color: bool) -> str | None:
    """``config``'s view as ``Renderer`` prints it; None when rich must (tabs, odd characters)."""
    texts = [app, *config, *config.values()]
    if not all(text.isprintable() for text in texts):
        return None
    dim, bold, green, end = ("\x1b[2m", "\x1b[1m", "\x1b[32m", "\x1b[0m") if color else ("",) * 4
    lines = [f"{dim}=== {end}{bold}{app} Config Vars{end}"]
    pad = max((len(name) for name in config), default=0)
    for name, value in config.items():
        lines.append(f"{green}{name}:{end}" + " " * (pad - len(name) + 1) + value)
    return "\n".join(lines) + "\n"


def _rich_config(app: str, config: dict[str, str], env: Mapping[str, str]) -> None:
    from securekey.cli.render import Renderer

    out = Renderer.for_terminal(env)
    out.header(f"{app} Config Vars")
    out.config(config)
