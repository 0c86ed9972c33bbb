"""The listening socket the server binds itself keeps asyncio's TCP_NODELAY on connections."""

from __future__ import annotations

import asyncio
import socket

import anyio
import pytest

from securekey.api.serve import bind_socket


@pytest.mark.anyio
async def test_connections_on_the_bound_socket_get_tcp_nodelay() -> None:
    """asyncio sets TCP_NODELAY only on sockets created as IPPROTO_TCP; without it each
    keep-alive answer (headers, then body) waits ~40 ms for a delayed ACK (Nagle), which
    took the config read path from ~2,500 to ~90 requests/s."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    seen: list[int] = []
    arrived = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("socket")
        seen.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        arrived.set()
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with anyio.fail_after(5):  # a connection that never arrives fails, not hangs
            await arrived.wait()
        writer.close()
    assert seen[0] != 0, seen
