"""``securekey`` command entry point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from securekey import __version__


def main(argv: list[str] | None = None) -> int:
    """Run the command line."""
    parser = argparse.ArgumentParser(prog="securekey", description="Automatic key rotation.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("version", help="print the version")
    server = sub.add_parser("server", help="run the API server (SQLite in ./data by default)")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--data-dir", type=Path, default=None)
    server.add_argument("--database-url", default=None)
    server.add_argument("--scheduler-interval", type=float, default=1.0)
    server.add_argument("--log-level", default="info")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "version":
        print(f"securekey {__version__}")
        return 0
    if args.command == "server":
        from securekey.api.serve import serve

        serve(
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            database_url=args.database_url,
            scheduler_interval=args.scheduler_interval,
            log_level=args.log_level,
        )
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
