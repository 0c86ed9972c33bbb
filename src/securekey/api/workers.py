"""Worker processes for ``securekey server --workers N``: fork, replace the ones that die, stop all.

Each worker is a fork of the process that bound the listening socket, so all accept on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["supervise"]

log = logging.getLogger("securekey")


def _start(target: Callable[[], None]) -> int:
    """Fork one worker running ``target``; its pid (the child never returns)."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        target()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker %d failed", os.getpid())
    finally:
        os._exit(code)


def supervise(count: int, target: Callable[[], None]) -> bool:
    """Run ``count`` workers; restart one that dies; on SIGTERM/SIGINT stop all.

    A worker that exits by itself (a crash) is replaced, at most once a second, so one bad
    request cannot take the service down; the signal handlers only pass a SIGTERM on, so each
    worker drains its requests as a single server would. True when stopped by a signal.
    """
    stopping: list[int] = []
    children: set[int] = set()

    def stop(sig: int, _frame: FrameType | None) -> None:
        stopping.append(sig)
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(count):
            children.add(_start(target))
        while children:
            pid, status = os.wait()
            children.discard(pid)
            if not stopping:
                log.warning("worker %d exited (status %d); starting another", pid, status)
                time.sleep(1.0)
                children.add(_start(target))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return bool(stopping)
