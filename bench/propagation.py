"""Benchmark: rotation → every SSE watcher holding the new pair, at 1,000 and 10,000 watchers.

Opens ``--watchers`` raw connections (no HTTP client library, no task or stream reader: one
``asyncio.Protocol`` each, on uvloop, that only looks for the end of the next event) to
`securekey server`'s config stream, waits until each holds the first pair, rotates (a raw POST),
and times, per watcher, request sent → the event with the new pair parsed; the pair is checked
after the round. Also prints when the rotation request itself was answered. The anchor is a naive
Starlette fan-out on the same stack (bench/anchor_fanout.py: one queue per watcher). Prints
p50/p99 and the watchers still lacking the pair after ``--timeout``. Raises the open-file limit
within the hard limit. Run: ``python bench/propagation.py --watchers 1000,10000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
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


class Watcher(asyncio.Protocol):
    """One SSE connection as a bare protocol (no StreamReader, no task): it keeps the bytes
    after its first event and stamps the moment the next complete event arrives."""

    __slots__ = ("changed_at", "opened", "rest", "transport")

    def __init__(self, opened: asyncio.Future[None]) -> None:
        self.opened: asyncio.Future[None] | None = opened
        self.rest = b""
        self.changed_at: float | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.changed_at is not None:
            return
        self.rest += data
        if self.opened is not None:  # waiting for the first event: drop it once it is whole
            start = self.rest.find(b"id: ")
            end = self.rest.find(b"\n\n", start) if start >= 0 else -1
            if end >= 0:
                self.rest = self.rest[end + 2 :]
                if not self.opened.done():
                    self.opened.set_result(None)
                self.opened = None
            return
        start = self.rest.find(b"id: ")
        if start >= 0 and self.rest.find(b"\n\n", start) >= 0:
            self.changed_at = time.perf_counter()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.opened is not None and not self.opened.done():
            self.opened.set_exception(ConnectionError("the stream closed before its first event"))

    def holds(self, pair: str) -> bool:
        """Whether the event after the first carries ``pair``."""
        return pair.encode() in self.rest

    def close(self) -> None:
        """Drop the connection."""
        if self.transport is not None:
            self.transport.close()


async def _post(port: int, path: str, headers: str) -> float:
    """``POST path`` on a raw connection; the moment its response head arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n{headers}\r\n"
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        answered = time.perf_counter()
        if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
            raise RuntimeError(f"POST {path} failed: {head[:200]!r}")
        return answered
    finally:
        writer.close()


async def _open_watchers(port: int, path: str, token: str, count: int) -> list[Watcher]:
    """``count`` streams, each holding its first event."""
    loop = asyncio.get_running_loop()
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
    request = (request + f"Authorization: Bearer {token}\r\n\r\n").encode()
    watchers: list[Watcher] = []
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def start() -> None:
        async with gate:
            opened: asyncio.Future[None] = loop.create_future()
            transport, watcher = await loop.create_connection(
                lambda: Watcher(opened), "127.0.0.1", port
            )
            watchers.append(watcher)
            transport.write(request)
            await asyncio.wait_for(opened, 120)

    await asyncio.gather(*(start() for _ in range(count)))
    return watchers


async def _client_main(conn: Connection, port: int, path: str, token: str, count: int) -> None:
    watchers = await _open_watchers(port, path, token, count)
    conn.send("ready")
    try:
        told = False
        while not conn.poll():  # the parent's next message is the pair, after the round
            if not told and all(w.changed_at is not None for w in watchers):
                conn.send("done")
                told = True
            await asyncio.sleep(0.005)
        pair = conn.recv()
        got = [w.changed_at for w in watchers if w.changed_at is not None and w.holds(pair)]
        conn.send((got, count - len(got)))
    finally:
        for w in watchers:
            w.close()


def _client(conn: Connection, port: int, path: str, token: str, count: int) -> None:
    """A watcher process: ``count`` streams on its own event loop (uvloop when installed)."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_client_main(conn, port, path, token, count))


async def one_round(
    port: int, path: str, token: str, count: int, rotate: Callable[[], Awaitable[float]],
    pair: Callable[[], Awaitable[str]], timeout: float, clients: int,
) -> tuple[list[float], int, float]:  # fmt: skip
    """``count`` watchers in ``clients`` processes, one rotation: (latencies in ms of those
    that got it, how many not, ms until the rotation request itself was answered).

    The watchers live in their own processes so that reading thousands of sockets competes
    with the server only for the cores, not also with this process's rotation request; the
    moments are ``perf_counter`` (CLOCK_MONOTONIC: one clock for every process)."""
    spawn = multiprocessing.get_context("spawn")
    shares = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
    pipes, procs = [], []
    for share in filter(None, shares):
        mine, theirs = spawn.Pipe()
        proc = spawn.Process(target=_client, args=(theirs, port, path, token, share))
        proc.start()
        pipes.append(mine)
        procs.append(proc)

    async def hear(conn: Connection, seconds: float) -> object:
        if not await asyncio.to_thread(conn.poll, seconds):
            return None
        return conn.recv()

    try:
        for conn in pipes:
            if await hear(conn, 300) != "ready":
                raise RuntimeError("a watcher process did not open its streams")
        await asyncio.sleep(0.5)
        sent = time.perf_counter()
        answered = await rotate()
        deadline = time.monotonic() + timeout
        for conn in pipes:
            await hear(conn, max(0.0, deadline - time.monotonic()))  # "done", or late
        new = await pair()
        latencies: list[float] = []
        missing = 0
        for conn in pipes:
            conn.send(new)
            reply = await hear(conn, 60)
            while reply == "done":  # came after the deadline
                reply = await hear(conn, 60)
            assert isinstance(reply, tuple), reply
            got, lacking = reply
            latencies += [(at - sent) * 1000 for at in got]
            missing += lacking
        return latencies, missing, (answered - sent) * 1000
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


Result = dict[int, tuple[list[float], int, float]]


async def measure_securekey(sizes: list[int], timeout: float, clients: int) -> Result:
    """Each size against one `securekey server`."""
    most = str(max(sizes) + 100)
    flags = ("--max-streams", most, "--max-streams-per-token", most)
    with securekey_server(*flags) as sk:
        port = int(sk.url.rsplit(":", 1)[1])
        async with httpx.AsyncClient(
            base_url=sk.url, headers={"Authorization": f"Bearer {sk.operator}"}, timeout=60
        ) as http:

            async def rotate() -> float:
                auth = f"Authorization: Bearer {sk.operator}\r\n"
                return await _post(port, f"/addons/{sk.addon}/actions/rotate", auth)

            async def pair() -> str:
                config = await http.get("/apps/service-1/config-vars")
                return str(config.json()["SECURE_KEY"])

            path = "/apps/service-1/config-vars/stream"
            return {
                n: await one_round(port, path, sk.app_token, n, rotate, pair, timeout, clients)
                for n in sizes
            }


async def measure_anchor(sizes: list[int], timeout: float, clients: int) -> Result:
    """Each size against the naive fan-out on uvloop + httptools."""
    port = free_port()
    proc = python_server("anchor_fanout:app", port, loop="auto", http="auto")
    try:
        wait_ready(f"http://127.0.0.1:{port}/pair", proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:

            async def rotate() -> float:
                return await _post(port, "/rotate", "")

            async def pair() -> str:
                return str((await http.get("/pair")).json()["pair"])

            path = "/apps/service-1/config-vars/stream"
            return {
                n: await one_round(port, path, "x", n, rotate, pair, timeout, clients)
                for n in sizes
            }
    finally:
        stop(proc)


def main() -> int:
    """Measure both, print p50/p99 with ratios, write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", default="1000,10000", help="sizes (1000,10000)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per round")
    parser.add_argument("--smoke", action="store_true", help="20 watchers, 10 s timeout")
    parser.add_argument(
        "--clients", type=int, default=min(2, os.cpu_count() or 1),
        help="watcher processes (default: one per core, at most 2)",
    )  # fmt: skip
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
    clients = max(1, args.clients)
    print(f"watcher processes: {clients}", flush=True)
    ours = asyncio.run(measure_securekey(sizes, args.timeout, clients))
    theirs = asyncio.run(measure_anchor(sizes, args.timeout, clients))
    goals = {1000: 25.0, 10000: 200.0}
    for n in sizes:
        (lat, missing, asked), (alat, amissing, aasked) = ours[n], theirs[n]
        print(f"@{n}: securekey {len(lat)} got it, {missing} missing; anchor {amissing} missing")
        print(
            f"@{n}: rotation request answered after {asked:.1f} ms (anchor {aasked:.1f} ms); "
            f"first watcher {min(lat, default=0):.1f} ms (anchor {min(alat, default=0):.1f} ms)"
        )
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
            "anchor_missing": amissing, "securekey_request_ms": asked, "anchor_request_ms": aasked,
        }  # fmt: skip
    report.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
