"""``securekey`` command entry point."""

from __future__ import annotations

import sys

from securekey import __version__


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["version"], ["--version"]):
        print(f"securekey {__version__}")
        return 0
    print("usage: securekey version", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
