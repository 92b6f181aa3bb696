"""The workers' listening sockets (cais.server.workers)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cais.server.workers import _listening_sockets


@pytest.mark.parametrize("count", [1, 2])
def test_connections_on_the_workers_sockets_turn_nagle_off_under_asyncio(count):
    """asyncio sets TCP_NODELAY only on sockets that say IPPROTO_TCP; without it every
    keep-alive answer waits for the client's delayed ACK (~40 ms)."""
    sockets = _listening_sockets("127.0.0.1", 0, 1)  # port 0: one free port for this test
    port = sockets[0].getsockname()[1]
    for sock in sockets:
        sock.close()
    sockets = _listening_sockets("127.0.0.1", port, count)
    seen: list[int] = []

    class Note(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        loop = asyncio.get_running_loop()
        # The kernel hands the connection to any of the SO_REUSEPORT sockets: serve them all.
        servers = [await loop.create_server(Note, sock=sock) for sock in set(sockets)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.read()  # the server closes it once it has looked
        writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()

    try:
        asyncio.run(asyncio.wait_for(accept_one(), timeout=30))
    finally:
        for sock in sockets:
            sock.close()
    assert len(seen) == 1 and seen[0] != 0


@pytest.mark.parametrize("count", [1, 2, 3])
def test_port_0_gives_every_worker_the_same_port(count):
    sockets = _listening_sockets("127.0.0.1", 0, count)
    try:
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(sockets) == count and len(ports) == 1 and ports != {0}
    finally:
        for sock in set(sockets):
            sock.close()
