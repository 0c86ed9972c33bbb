"""A child process for ``securekey run`` tests: logs its start, its key, and signals it gets.

Usage: child.py LOG [normal|stubborn]. A stubborn child ignores SIGTERM (but not SIGINT).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType


def main() -> None:
    """Log START with SECURE_KEY and TOKEN with SECUREKEY_TOKEN ("-" if unset), then wait.

    TERM exits 0, INT exits 7, HUP is logged.
    """
    log = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "normal"

    def write(what: str) -> None:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {what}\n")

    def on_term(signum: int, frame: FrameType | None) -> None:
        if mode == "stubborn":
            write("TERM-ignored")
            return
        write("TERM")
        sys.exit(0)

    def on_int(signum: int, frame: FrameType | None) -> None:
        write("INT")
        sys.exit(7)

    def on_hup(signum: int, frame: FrameType | None) -> None:
        write("HUP")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGHUP, on_hup)
    write("START " + os.environ.get("SECURE_KEY", "-"))
    write("TOKEN " + os.environ.get("SECUREKEY_TOKEN", "-"))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
