"""``securekey`` command entry point (``python -m securekey``); the commands are in ``cli``."""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    # `securekey config -a APP`, the hottest command, answers before typer is even imported.
    from securekey.cli.fast import answer

    code = answer(args, os.environ)
    if code is not None:
        return code
    try:
        from securekey.cli.entry import main as run
    except ModuleNotFoundError as exc:
        if exc.name not in ("typer", "rich", "httpx"):
            raise
        # A bare SDK install (httpx only) has no command line dependencies: they are an extra.
        print(
            f"securekey: the command line needs {exc.name}, which is not installed (the plain "
            "`pip install securekey` is the SDK only). Install the CLI with "
            "pip install 'securekey[cli]' (or 'securekey[server]' to run a server too).",
            file=sys.stderr,
        )
        return 1
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
