"""A Unix socket under a folder too long for ``sun_path`` is still bound and reached (the agent's
and a mount's stats socket live under the user's state folder, which may be deep)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from sigmavault.cli.unixpath import reachable


async def test_a_socket_under_a_long_folder_is_bound_and_reached(tmp_path: Path) -> None:
    folder = tmp_path / ("x" * 60) / ("y" * 60)
    folder.mkdir(parents=True)
    path = folder / "agent.sock"
    with pytest.raises(OSError), socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # what a plain bind does with it

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    with reachable(path) as name:
        server = await asyncio.start_unix_server(answer, path=name)
    try:
        assert path.is_socket()  # the file is where it belongs
        with reachable(path) as name:
            reader, writer = await asyncio.open_unix_connection(name)
        assert await reader.readline() == b"hello\n"
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_a_short_path_is_used_as_it_is(tmp_path: Path) -> None:
    with reachable(Path("/tmp/s.sock")) as name:
        assert name == "/tmp/s.sock"
