"""The ``KEY=value`` env file ``securekey run --no-restart`` writes and ``KeyRing`` can read.

Written atomically (temporary file, fsync, rename) with mode 0600; values that are not plain
words are double-quoted with backslash escapes, a form both shells and dotenv readers accept.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from securekey.exceptions import ValidationError

__all__ = ["format_env", "parse_env", "read_env_file", "write_env_file"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE = re.compile(r"[A-Za-z0-9_,.:/@+=%-]*")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "`": "\\`", "\n": "\\n"}
_UNESCAPES = {"\\": "\\", '"': '"', "$": "$", "`": "`", "n": "\n"}


def format_env(values: Mapping[str, str]) -> str:
    """The file's text: one ``NAME=value`` line per var, sorted by name."""
    lines = []
    for name in sorted(values):
        if not _NAME.fullmatch(name):
            raise ValidationError("name", f"{name!r} cannot be written as an environment variable.")
        value = values[name]
        if not _BARE.fullmatch(value):
            value = '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'
        lines.append(f"{name}={value}\n")
    return "".join(lines)


def _unquote(raw: str, lineno: int) -> str:
    """A double-quoted value without its quotes and escapes."""
    out: list[str] = []
    chars = iter(raw[1:])
    for c in chars:
        if c == '"':
            return "".join(out)
        if c == "\\":
            nxt = next(chars, "")
            out.append(_UNESCAPES.get(nxt, "\\" + nxt))
        else:
            out.append(c)
    raise ValidationError("env_file", f"Line {lineno}: unterminated quoted value.")


def parse_env(text: str) -> dict[str, str]:
    """Parse what ``format_env`` writes (plus blank lines, ``#`` comments and ``export``)."""
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = stripped.removeprefix("export ").lstrip()
        name, sep, raw = stripped.partition("=")
        if not sep or not _NAME.fullmatch(name):
            raise ValidationError("env_file", f"Line {lineno} is not NAME=value.")
        values[name] = _unquote(raw, lineno) if raw.startswith('"') else raw
    return values


def write_env_file(path: str | os.PathLike[str], values: Mapping[str, str]) -> None:
    """Replace ``path`` atomically with ``values``; the file is readable by its owner only."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(format_env(values))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The vars in an env file written by ``write_env_file``."""
    return parse_env(Path(path).read_text(encoding="utf-8"))
