"""Benchmark: rotation → every SSE watcher holding the new pair, at 1,000 and 10,000 watchers.

Opens ``--watchers`` raw asyncio connections (no HTTP client library: one socket, one reader
each) to `securekey server`'s config stream, waits until each holds the first pair, rotates, and
times, per watcher, request sent → the event with the new pair parsed. The anchor is a naive
Starlette fan-out on the same stack (bench/anchor_fanout.py: one queue per watcher). Prints
p50/p99 and the watchers still lacking the pair after ``--timeout``. Raises the open-file limit
within the hard limit. Run: ``python bench/propagation.py --watchers 1000,10000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Report,
    free_port,
    json_arg,
    percentile,
    python_server,
    raise_open_files,
    securekey_server,
    stop,
    wait_ready,
)

CONNECT_AT_ONCE = 200


class Watcher:
    """One SSE connection: the bytes it got, and when the first event after the first arrived."""

    def __init__(self) -> None:
        self.buffer = b""
        self.first_id: bytes | None = None
        self.changed_at: float | None = None
        self.ready = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int, path: str, token: str) -> None:
        """Connect, ask for the stream, read until closed."""
        reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
        request += f"Authorization: Bearer {token}\r\n\r\n"
        self.writer.write(request.encode())
        while chunk := await reader.read(65536):
            self.buffer += chunk
            if self.first_id is None:
                start = self.buffer.find(b"\nid: ")
                if start >= 0 and b"\n\n" in self.buffer[start:]:
                    self.first_id = self.buffer[start : self.buffer.index(b"\n", start + 1)]
                    self.ready.set()
            elif self.changed_at is None and self.buffer.count(b"\nid: ") > 1:
                tail = self.buffer[self.buffer.rindex(b"\nid: ") :]
                if b"\n\n" in tail[1:]:
                    self.changed_at = time.perf_counter()

    def holds(self, pair: str) -> bool:
        """Whether the event after the first carries ``pair``."""
        parts = self.buffer.split(b"\nid: ")
        return len(parts) > 2 and pair.encode() in parts[-1]

    def close(self) -> None:
        """Drop the connection."""
        if self.writer is not None:
            self.writer.close()


async def one_round(
    port: int, path: str, token: str, count: int, rotate: Callable[[], Awaitable[str]],
    timeout: float,
) -> tuple[list[float], int]:  # fmt: skip
    """``count`` watchers, one rotation: (latencies in ms of those that got it, how many not)."""
    watchers = [Watcher() for _ in range(count)]
    tasks = []
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def start(w: Watcher) -> None:
        async with gate:
            tasks.append(asyncio.create_task(w.run(port, path, token)))
            await asyncio.wait_for(w.ready.wait(), 120)

    try:
        await asyncio.gather(*(start(w) for w in watchers))
        await asyncio.sleep(0.5)
        sent = time.perf_counter()
        pair = await rotate()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(w.changed_at is None for w in watchers):
            await asyncio.sleep(0.01)
        got = [w for w in watchers if w.changed_at is not None and w.holds(pair)]
        return [((w.changed_at or sent) - sent) * 1000 for w in got], count - len(got)
    finally:
        for w in watchers:
            w.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def measure_securekey(sizes: list[int], timeout: float) -> dict[int, tuple[list[float], int]]:
    """Each size against one `securekey server`."""
    most = str(max(sizes) + 100)
    flags = ("--max-streams", most, "--max-streams-per-token", most)
    with securekey_server(*flags) as sk:
        port = int(sk.url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(
            base_url=sk.url, headers={"Authorization": f"Bearer {sk.operator}"}, timeout=60
        ) as http:

            async def rotate() -> str:
                (await http.post(f"/addons/{sk.addon}/actions/rotate")).raise_for_status()
                config = await http.get("/apps/service-1/config-vars")
                return str(config.json()["SECURE_KEY"])

            path = "/apps/service-1/config-vars/stream"
            return {n: await one_round(port, path, sk.app_token, n, rotate, timeout) for n in sizes}


async def measure_anchor(sizes: list[int], timeout: float) -> dict[int, tuple[list[float], int]]:
    """Each size against the naive fan-out on uvloop + httptools."""
    port = free_port()
    proc = python_server("anchor_fanout:app", port, loop="auto", http="auto")
    try:
        wait_ready(f"http://127.0.0.1:{port}/rotate", proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:

            async def rotate() -> str:
                return str((await http.post("/rotate")).json()["pair"])

            path = "/apps/service-1/config-vars/stream"
            return {n: await one_round(port, path, "x", n, rotate, timeout) for n in sizes}
    finally:
        stop(proc)


def main() -> int:
    """Measure both, print p50/p99 with ratios, write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", default="1000,10000", help="sizes (1000,10000)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per round")
    parser.add_argument("--smoke", action="store_true", help="20 watchers, 10 s timeout")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    if args.smoke:
        args.watchers, args.timeout = "20", 10.0
    sizes = [int(n) for n in args.watchers.split(",") if n.strip()]
    limit = raise_open_files(2 * max(sizes) + 512)
    report = Report("propagation", json_arg(args.json))
    print(f"open-file limit {limit}; watchers: {', '.join(map(str, sizes))}", flush=True)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()  # the clients on the fastest loop too, so they are not the bottleneck
    ours = asyncio.run(measure_securekey(sizes, args.timeout))
    theirs = asyncio.run(measure_anchor(sizes, args.timeout))
    goals = {1000: 25.0, 10000: 200.0}
    for n in sizes:
        (lat, missing), (alat, amissing) = ours[n], theirs[n]
        print(f"@{n}: securekey {len(lat)} got it, {missing} missing; anchor {amissing} missing")
        for p in (50, 99):
            goal = goals.get(n) if p == 99 else None
            value = percentile(lat, p) if not missing else float("inf")
            report.figure(
                f"propagation p{p} @{n}", value, "ms", anchor=percentile(alat, p),
                anchor_label="naive fan-out", goal=f"<= {goal:g} ms" if goal else "",
                met=value <= goal if goal else None, target=goal,
            )  # fmt: skip
        report.data["extra"][str(n)] = {
            "securekey": lat, "securekey_missing": missing, "anchor": alat,
            "anchor_missing": amissing,
        }  # fmt: skip
    report.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
