"""Ending a lease never eats its caller's cancellation (Ctrl-C during an import must stop it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from vaulttools import new_vault

from sigmavault.engine.repo import leases as leases_mod


async def test_a_caller_cancelled_while_the_heartbeat_stops_is_still_cancelled_and_the_lease_is_gone(
        tmp_path: Path) -> None:
    async with await new_vault(tmp_path / "v") as v:
        records = v._guard.records
        lease = leases_mod.Lease(records, 10.0)
        await lease.begin()
        assert await records.names(leases_mod.LEASE)
        assert lease._task is not None
        lease._task.cancel()
        gate = asyncio.Event()
        stopping = asyncio.Event()

        async def stubborn() -> None:  # a heartbeat that takes its time to stop: the caller waits on it
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                stopping.set()
                await gate.wait()
                raise

        lease._task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        ending = asyncio.create_task(lease.end())
        await stopping.wait()  # end() cancelled the heartbeat and now waits for it
        ending.cancel()  # the caller's own cancellation (the CLI's Ctrl-C) lands right then
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await ending
        assert await records.names(leases_mod.LEASE) == []  # the lease was still ended
