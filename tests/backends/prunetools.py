"""What the prune tests share: vaults with garbage, writers paused at named steps, the checks.

A writer is a separate :class:`sigmavault.Vault` instance (its own lease, dedup index and
connections) on the same storage; it pauses at a step of the protocol (W3's "rescued", "copied",
"checked") on an :class:`asyncio.Event` the test sets, never on a sleep. The pruner pauses at
its steps ("P2" … "P6") the same way, through ``Vault._pruner(hook=…)``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import sigmavault
from sigmavault.engine.repo import leases
from sigmavault.engine.vault import Vault

PASS = "prune test passphrase"
MiB = 1 << 20


def blob(seed: str, size: int = MiB) -> bytes:
    """``size`` deterministic bytes: a full chunk at the default size, so equal seeds dedup."""
    out = bytearray()
    n = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{n}".encode()).digest()
        n += 1
    return bytes(out[:size])


async def open_vault(url: str) -> Vault:
    return await sigmavault.open(url, passphrase=PASS)


async def listing(v: Vault) -> dict[str, list[str]]:
    return {p: sorted([n async for n in v.backend.list(p)]) for p in ("k/", "c/", "o/", "l/")}


async def aborted_writer(url: str, seed: str, size: int = MiB) -> None:
    """Garbage: a writer that uploads a file and closes without committing."""
    w = await open_vault(url)
    try:
        await w.put(f"/aborted-{seed}", blob(seed, size))
        await w._data_pack.flush()  # its small tail too, as an import's finished pack would be
    finally:
        await w.aclose()


class Gate:
    """A named step where a run waits until the test opens it; ``reached`` tells the test it got there."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self) -> None:
        self.reached.set()
        await self.go.wait()


def stepper(gates: dict[str, Gate]) -> Callable[[str], Awaitable[None]]:
    async def hook(step: str) -> None:
        gate = gates.get(step)
        if gate is not None:
            await gate()

    return hook


async def check_clean(url: str, files: dict[str, bytes]) -> None:
    """Every committed file reads back exactly and ``verify --full`` finds no problem."""
    v = await open_vault(url)
    try:
        report = await v.verify(full=True)
        assert report.ok, report.problems
        for path, data in files.items():
            got = b"".join([part async for part in v.open_read(path)])
            assert got == data, path
    finally:
        await v.aclose()


async def mutant_shows(url: str, mutant: str | None, refused: Exception | None = None) -> bool:
    """With a mutant patched in, its bug must show: a committed reference to nothing, or (``refused``)
    a writer whose own uploads were deleted under its live lease, caught only by its W3 check."""
    if mutant is None:
        assert refused is None, refused
        return False
    if refused is not None:
        assert "deleted" in str(refused), refused
        return True
    v = await open_vault(url)
    try:
        problems = (await v.verify(full=True)).problems
    finally:
        await v.aclose()
    assert any("missing" in p for p in problems), f"mutant {mutant}: no lost object ({problems})"
    return True


def settled(names: list[str]) -> bool:
    """No lease is left, and every deletion record under ``l/`` has its end mark (records stay
    until the next run; see engine/repo/leases.py)."""
    rids = {n[4:36] for n in names if n.startswith(leases.RECORD)}
    return (not any(n.startswith(leases.LEASE) for n in names)
            and all(leases.done_name(r) in names for r in rids))


def blind(records: leases.Records) -> None:
    """The writer-trusts-rescue-after-sweep mutant: these records never show a sweep or end mark."""
    state, exists = records.state, records.exists

    async def no_marks() -> dict[str, leases.RecordState]:
        out = await state()
        for st in out.values():
            st.swept = st.done = False
        return out

    async def no_mark(name: str) -> bool:
        return False if name.endswith(("-fffe", "-ffff")) else await exists(name)

    records.state = no_marks  # type: ignore[method-assign]
    records.exists = no_mark  # type: ignore[method-assign]


async def close(*vaults: Vault) -> None:
    for v in vaults:
        await v.aclose()


def prune_task(v: Vault, **options: Any) -> asyncio.Task[Any]:
    return asyncio.get_running_loop().create_task(v._pruner(poll=0.01, **options).run())
