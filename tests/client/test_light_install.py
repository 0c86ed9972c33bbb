"""``pip install securekey`` is the SDK alone: it imports without typer or rich (issue 12)."""

from __future__ import annotations

import subprocess
import sys

#: Makes typer, rich and click unimportable, as on an install without the ``cli`` extra.
_BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"typer", "rich", "click"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Block())
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCK + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_sdk_imports_and_works_without_cli_packages() -> None:
    """securekey.client imports, verifies a key and loads no typer, rich or click module."""
    done = _python(
        "import securekey.client as c\n"
        "ring = c.StaticKeyRing()\n"
        "assert ring.verify(ring.present()) == 'latest'\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click')]\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"


def test_the_command_without_the_cli_extra_says_how_to_install_it() -> None:
    """The securekey entry point without typer/rich exits 1 naming pip install 'securekey[cli]'."""
    done = _python("from securekey.__main__ import main\nraise SystemExit(main(['apps']))\n")
    assert done.returncode == 1, done.stderr
    assert "pip install 'securekey[cli]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_packaging_keeps_the_cli_an_extra() -> None:
    """pyproject: the base dependencies are httpx only; cli has typer and rich; server has cli."""
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0] for d in meta["dependencies"]] == ["httpx"]
    extras = meta["optional-dependencies"]
    assert {d.split(">")[0] for d in extras["cli"]} == {"typer", "rich"}
    assert "securekey[cli]" in extras["server"]
