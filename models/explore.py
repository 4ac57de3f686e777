"""The shared explorer: breadth-first over every interleaving of a protocol model, within bounds.

A model is a :class:`Spec`: one initial state, a ``step`` function that lists every enabled action
of every actor as ``(label, next state)``, and named invariants. States are immutable and
hashable (tuples, frozensets, NamedTuples), so a state reached by two interleavings is explored
once. Breadth-first order means the first violation found has the shortest trace; the trace is
rebuilt from parent links and printed as the actions that led there, one per line.

Bounds are the model's (actors, edits, faults) plus ``max_depth`` here: states deeper than it are
counted but not expanded, and the result says whether the bound cut anything off. ``safety``
invariants hold in every state; ``final`` invariants hold in every state with no enabled action
(a terminal state: every actor finished), which is where "prune did free the garbage" style
progress checks live, so that a model (or a mutant) that does nothing cannot pass vacuously.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

S = TypeVar("S", bound=Hashable)

Check = Callable[[S], str | None]
"""An invariant: ``None`` when it holds, else a one-line description of what is wrong."""


@dataclass(frozen=True)
class Spec(Generic[S]):
    """A protocol model ready to explore."""

    name: str
    initial: S
    step: Callable[[S], Iterable[tuple[str, S]]]
    safety: tuple[tuple[str, Check[S]], ...]
    final: tuple[tuple[str, Check[S]], ...] = ()
    max_depth: int = 60
    bounds: str = ""  # human description of the model's bounds, for the report
    show: Callable[[S], str] | None = None  # a short rendering of the violating state


@dataclass
class Violation:
    invariant: str
    message: str
    trace: list[str]
    state: str = ""


@dataclass
class Result:
    protocol: str
    bounds: str
    states: int = 0
    transitions: int = 0
    depth: int = 0
    truncated: bool = False
    seconds: float = 0.0
    violation: Violation | None = None
    terminal: int = 0
    labels: set[str] = field(default_factory=set)

    def summary(self) -> str:
        verdict = "VIOLATION" if self.violation else "ok"
        cut = ", depth bound reached" if self.truncated else ""
        return (f"{self.protocol}: {verdict} — {self.states} states, {self.transitions} transitions, "
                f"depth {self.depth}{cut}, {self.terminal} terminal, {self.seconds:.1f}s ({self.bounds})")

    def report(self) -> str:
        lines = [self.summary()]
        v = self.violation
        if v is not None:
            lines.append(f"  invariant {v.invariant!r} fails: {v.message}")
            lines.append(f"  shortest trace ({len(v.trace)} steps):")
            lines.extend(f"    {i:2}. {label}" for i, label in enumerate(v.trace, 1))
            if v.state:
                lines.append(f"  state: {v.state}")
        return "\n".join(lines)


def _trace(parents: dict[S, tuple[S, str] | None], s: S) -> list[str]:
    out: list[str] = []
    link = parents[s]
    while link is not None:
        s, label = link
        out.append(label)
        link = parents[s]
    out.reverse()
    return out


def _first_failure(checks: tuple[tuple[str, Check[S]], ...], s: S) -> tuple[str, str] | None:
    for name, check in checks:
        message = check(s)
        if message is not None:
            return name, message
    return None


def explore(spec: Spec[S], *, max_states: int | None = None,
            on_terminal: Callable[[list[str], S], None] | None = None) -> Result:
    """Explore every interleaving of ``spec`` breadth-first; stop at the first violation.

    ``on_terminal(trace, state)`` sees each terminal state with its shortest trace (for replays).
    """
    started = time.perf_counter()
    result = Result(spec.name, spec.bounds)
    parents: dict[S, tuple[S, str] | None] = {spec.initial: None}
    frontier: deque[tuple[S, int]] = deque([(spec.initial, 0)])

    def fail(s: S, failure: tuple[str, str]) -> Result:
        shown = spec.show(s) if spec.show is not None else ""
        result.violation = Violation(failure[0], failure[1], _trace(parents, s), shown)
        return finish()

    def finish() -> Result:
        result.states = len(parents)
        result.seconds = time.perf_counter() - started
        return result

    first = _first_failure(spec.safety, spec.initial)
    if first is not None:
        return fail(spec.initial, first)
    while frontier:
        s, depth = frontier.popleft()
        result.depth = max(result.depth, depth)
        if depth >= spec.max_depth:
            result.truncated = True
            continue
        moved = False
        for label, nxt in spec.step(s):
            moved = True
            result.transitions += 1
            result.labels.add(label.split(":", 1)[0])
            if nxt in parents:
                continue
            parents[nxt] = (s, label)
            bad = _first_failure(spec.safety, nxt)
            if bad is not None:
                return fail(nxt, bad)
            frontier.append((nxt, depth + 1))
            if max_states is not None and len(parents) >= max_states:
                result.truncated = True
                return finish()
        if not moved:
            result.terminal += 1
            bad = _first_failure(spec.final, s)
            if bad is not None:
                return fail(s, bad)
            if on_terminal is not None:
                on_terminal(_trace(parents, s), s)
    return finish()
