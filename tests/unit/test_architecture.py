"""The layers of docs/architecture.md hold in the code, and every path that page names exists."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "securekey"
DOC = ROOT / "docs" / "architecture.md"

#: What each layer may import of ours (its own package always); ``securekey`` alone is the
#: package root (``__version__``).
ALLOWED: dict[str, set[str]] = {
    "exceptions": set(),
    "domain": {"exceptions"},
    "client": {"domain", "exceptions", "securekey"},
    "services": {"domain", "exceptions", "crypto"},
    "store": {"services", "domain", "exceptions", "crypto"},
    "scheduler": {"services", "domain", "exceptions"},
}
#: Packages nobody else imports (the CLI starts the server by module name).
PRIVATE = {"api": {"api", "web"}, "cli": {"cli", "__main__"}}


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "securekey":
                yield node.lineno, parts[1] if len(parts) > 1 else "securekey"


def _sources() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if "migrations" not in p.parts]


def test_each_layer_imports_only_the_layers_below_it() -> None:
    """Domain, client, services, store and scheduler import only what the picture allows."""
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports securekey.{target}"
        for path in _sources()
        if (layer := _layer(path)) in ALLOWED
        for line, target in _imports(path)
        if target != layer and target not in ALLOWED[layer]
    ]
    assert wrong == []


@pytest.mark.parametrize("private", sorted(PRIVATE))
def test_nothing_outside_reaches_into_the_api_or_the_cli(private: str) -> None:
    """Only the API (and the dashboard it mounts) imports ``api``; only the CLI imports ``cli``."""
    wrong = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _sources()
        if _layer(path) not in PRIVATE[private]
        for line, target in _imports(path)
        if target == private
    ]
    assert wrong == []


def test_every_path_the_page_names_exists() -> None:
    """A module or folder named in docs/architecture.md is there (the page matches the code)."""
    text = DOC.read_text()
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+(?:\.py|/))`", text))
    assert len(named) > 40
    every = [
        p.as_posix()
        for p in ROOT.rglob("*")
        if not {".venv", ".git", ".cache", "node_modules"} & set(p.parts)
    ]
    missing = [n for n in sorted(named) if not any(f.endswith("/" + n.rstrip("/")) for f in every)]
    assert missing == []


def test_every_package_is_on_the_page() -> None:
    """Each package under ``src/securekey`` has its place in docs/architecture.md."""
    text = DOC.read_text()
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert [name for name in packages if f"`{name}/" not in text] == []
