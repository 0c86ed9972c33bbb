"""One scheduler process for the exactly-once tests: tick until nothing is due, print its counts.

Run as ``python -m tests.contract.scheduler_worker DATABASE_URL NOW_ISO`` with the master key in
``SECUREKEY_MASTER_KEY``. It prints ``ready``, waits for a line on stdin so that every worker
starts rotating at the same moment, then prints one JSON line of counts.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime

from securekey.crypto import Cipher, MasterKey
from securekey.domain.clock import FixedClock
from securekey.scheduler import Scheduler
from securekey.services import SecureKeyService
from securekey.store import SqlStore


def main(argv: list[str]) -> int:
    """Build store, service and scheduler on a frozen clock; rotate whatever is due."""
    url, now_iso = argv
    cipher = Cipher(MasterKey.from_base64(os.environ["SECUREKEY_MASTER_KEY"]))
    store = SqlStore.open(url, cipher, migrate=False)
    clock = FixedClock(datetime.fromisoformat(now_iso))
    service = SecureKeyService(store, cipher, clock)
    scheduler = Scheduler(service, clock)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    ticks = rotated = failed = 0
    # Due rows another worker holds are skipped, not waited for: loop until none is left at all.
    while service.has_due(clock.now()):
        result = scheduler.tick()
        ticks += 1
        rotated += len(result.rotated)
        failed += len(result.failed)
    store.close()
    counts = {"pid": os.getpid(), "rotated": rotated, "failed": failed, "ticks": ticks}
    print(json.dumps(counts | {"seconds": round(time.perf_counter() - started, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
