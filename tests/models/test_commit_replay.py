"""The commit model's traces, replayed step by step against the real engine.

Two :class:`Vault` instances on one ``mem://`` vault play the model's writers. Each one's backend
is the faulty wrapper under the retrying one, extended so that every commit put stops at a gate:
the replay decides, as the model's trace says, whether that put goes through, loses its response
or fails, and whether the retries give up. At the end the real head must hold exactly the model's
head (same names, same contents, conflict copies included), at the same generation, and
``verify --full`` must be clean — so the model's invariants hold on the real vault too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import sigmavault
from models import commit
from models.explore import Spec, explore
from sigmavault.backends.base import layers
from sigmavault.backends.faulty import FaultyBackend
from sigmavault.backends.memory import STORES
from sigmavault.backends.retrying import RetryingBackend
from sigmavault.engine.keys.secret import Secret

PASS = "correct horse battery staple"


async def _no_sleep(_seconds: float) -> None:
    return None


class Gate(FaultyBackend):
    """The faulty wrapper; each commit put waits for the replay's verdict on it."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.arrived = asyncio.Event()
        self.verdict: asyncio.Future[str] | None = None
        self.give_up = False

    async def put_if_absent(self, name: str, data: bytes | bytearray | memoryview) -> bool:
        if name.startswith("c/"):
            nth = self.calls["put_if_absent"] + 1
            if self.give_up:  # the retrying wrapper is running out of attempts: every retry fails
                self.fail("put_if_absent", nth=nth)
            else:
                self.verdict = asyncio.get_running_loop().create_future()
                self.arrived.set()
                verdict = await self.verdict
                self.give_up = verdict.endswith("give up")
                if verdict.startswith("lose"):
                    self.lose_response("put_if_absent", nth=nth)
                elif verdict.startswith("fail"):
                    self.fail("put_if_absent", nth=nth)
        return await super().put_if_absent(name, data)


VERDICTS = {
    "created": "ok", "exists; fetch: our bytes": "ok", "exists; catch up": "ok",
    "response lost; retried": "lose", "response lost; error to caller": "lose, give up",
    "failed; retried": "fail", "failed; error to caller": "fail, give up",
}


class Replay:
    def __init__(self, url: str, vaults: list[sigmavault.Vault]) -> None:
        self.url = url
        self.vaults = vaults
        self.gates: list[Gate] = []
        self.tasks: dict[int, asyncio.Task[int]] = {}
        self.counters: dict[int, int] = {}
        for v in vaults:
            retrying = next(b for b in layers(v.backend) if isinstance(b, RetryingBackend))
            gate = Gate(retrying.inner)
            retrying.inner = gate  # the store, history and index share this one wrapper
            retrying._sleep = _no_sleep  # no backoff pauses in a replay
            self.gates.append(gate)

    async def settle(self, i: int) -> None:
        """Run writer ``i``'s commit until it waits at the gate again or ends."""
        arrived = asyncio.ensure_future(self.gates[i].arrived.wait())
        done, _ = await asyncio.wait({arrived, self.tasks[i]}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        arrived.cancel()
        assert done, "the engine neither reached its next commit put nor finished (it left the model)"
        if self.tasks[i].done():
            self.gates[i].give_up = False
            if self.tasks[i].exception() is not None:
                assert isinstance(self.tasks[i].exception(), sigmavault.BackendUnavailable)

    async def step(self, label: str) -> None:
        action, rest = label.rsplit(": W", 1)
        i = int(rest.split()[0])
        v, gate = self.vaults[i], self.gates[i]
        if not action.startswith("put c/"):
            assert i not in self.tasks or self.tasks[i].done(), f"W{i} is still committing where the model is done"
        if action.startswith("edit "):
            path = action.split()[1]
            await v.put(path, self.token(i))
        elif action == "refresh":
            await v.refresh()
        elif action.startswith("commit: seal"):
            gate.arrived.clear()
            self.tasks[i] = asyncio.create_task(v.commit())
            await self.settle(i)
        else:
            outcome = action.split(" ", 2)[2]  # "put c/N <outcome>"
            verdict = next(VERDICTS[k] for k in VERDICTS if outcome.startswith(k))
            assert gate.verdict is not None and not gate.verdict.done(), label
            gate.arrived.clear()
            gate.verdict.set_result(verdict)
            await self.settle(i)

    def token(self, i: int) -> bytes:
        """The content of writer ``i``'s next edit: the model's token ``w<i>.<n>``."""
        n = self.counters.get(i, 0)
        self.counters[i] = n + 1
        return f"w{i}.{n}".encode()

    async def finish(self) -> None:
        for t in self.tasks.values():
            if not t.done():
                t.cancel()  # a writer the trace left waiting at its put: killed before the answer
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)


class Template:
    """One vault made (and unlocked with Argon2) once; each replay runs on a fresh copy of its objects,
    opened with the keystore key captured at the first unlock, so a replay costs no key derivation."""

    ksk: Secret | None = None
    fingerprint = ""
    objects: dict[str, bytes]
    copies = 0

    @classmethod
    async def fresh(cls) -> str:
        if cls.ksk is None:
            url = "mem://replay-template"
            first = await sigmavault.create(url, passphrase=PASS, kdf="minimum", chunk_size=1 << 20)
            await first.aclose()

            async with await sigmavault.open(url, passphrase=PASS) as v:
                fingerprint, cls.ksk, _slot = v.keys.agent_key()
                cls.fingerprint = fingerprint.hex()
            store = STORES.open("replay-template")
            cls.objects = {n: await store.get(n) async for n in store.list()}
        cls.copies += 1
        name = f"replay-{cls.copies}"
        STORES.drop(name)
        store = STORES.open(name)
        for n, data in cls.objects.items():
            await store.put_if_absent(n, data)
        return f"mem://{name}"

    @classmethod
    async def open(cls, url: str) -> sigmavault.Vault:
        return await sigmavault.open(url, ksk=cls.ksk, fingerprint=cls.fingerprint)


async def real_head(url: str) -> tuple[int, list[tuple[str, str]]]:
    async with await Template.open(url) as v:
        files = []
        async for path, _st in v.walk("/"):
            files.append((path.lstrip("/").split(" (conflict ")[0], (await v.read_bytes(path)).decode()))
        report = await v.verify(full=True)
        assert report.ok, report.problems
        return v.generation, sorted(files)


def model_head(s: commit.State) -> tuple[int, list[tuple[str, str]]]:
    head = s.store[-1].tree
    return len(s.store) - 1, sorted((name.split("~")[0], f"w{t[0]}.{t[1]}") for name, t in head)


async def replay(trace: list[str], final: commit.State, n_writers: int) -> None:
    url = await Template.fresh()
    vaults = [await Template.open(url) for _ in range(n_writers)]
    r = Replay(url, vaults)
    try:
        for label in trace:
            await r.step(label)
        await r.finish()
    finally:
        for v in vaults:
            await v.aclose()
    assert await real_head(url) == model_head(final), "\n".join(trace)


def terminal_traces(level: str) -> list[tuple[list[str], commit.State]]:
    found: list[tuple[list[str], commit.State]] = []
    explore(commit.spec(level), on_terminal=lambda trace, s: found.append((trace, s)))
    return found


def complete(spec: Spec[commit.State], prefix: list[str]) -> tuple[list[str], commit.State]:
    """Follow ``prefix`` in the model, then take the first fault-free step until no step is left."""
    s, trace = spec.initial, list(prefix)
    for label in prefix:
        s = dict(spec.step(s))[label]
    while True:
        steps = [(label, n) for label, n in spec.step(s) if "lost" not in label and "failed" not in label]
        if not steps:
            return trace, s
        trace.append(steps[0][0])
        s = steps[0][1]


def kinds(trace: list[str]) -> tuple[str, ...]:
    """The kinds of step in a trace, without generations and writers ("put exists; catch up, seal")."""
    out = set()
    for label in trace:
        action = label.rsplit(": W", 1)[0]
        head, _, tail = action.partition(" c/")
        out.add(head + " " + tail.partition(" ")[2].split(",")[0])
    return tuple(sorted(out))


def chosen(level: str) -> list[tuple[list[str], commit.State]]:
    """One terminal trace per distinct set of step kinds (every fault and race combination)."""
    seen: dict[tuple[str, ...], tuple[list[str], commit.State]] = {}
    for trace, s in terminal_traces(level):
        seen.setdefault(kinds(trace), (trace, s))
    return list(seen.values())


async def test_own_commit_with_a_lost_response_is_ours_not_a_conflict() -> None:
    """Regression: W0's commit landed but its answer was lost; W1 saw it and replaced p; W0's retry
    used to merge its own commit as theirs, making a conflict copy of its replaced edit and an extra
    generation (the model's "own-commit-is-a-race" trace)."""
    result = explore(commit.spec("small", "own-commit-is-a-race"))
    assert result.violation is not None
    trace = result.violation.trace
    assert [t.split(":")[0] for t in trace][2] == "put c/1"
    # up to W0's retry, where the old engine went wrong; then the fixed protocol to its end
    await replay(*complete(commit.spec("small"), trace[:-2]), n_writers=2)


async def test_every_kind_of_interleaving_of_the_small_model_on_the_real_engine() -> None:
    traces = chosen("small")
    assert len(traces) >= 8
    for trace, s in traces:
        await replay(trace, s, n_writers=2)


@pytest.mark.slow
async def test_every_terminal_trace_of_the_small_model_on_the_real_engine() -> None:
    for trace, s in terminal_traces("small"):
        await replay(trace, s, n_writers=2)
