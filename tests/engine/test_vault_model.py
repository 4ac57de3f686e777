"""The catalog against a plain dict model: random operation sequences, with commits and reopens."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from vaulttools import new_vault, reopen

from sigmavault import VaultError

NAMES = st.sampled_from(["a", "b", "c", "d\xe9", "e e"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
CONTENT = st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=5000))


class CatalogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp())
        self.url = self.dir / "v"
        self.vault: Any = self.run(new_vault(self.url))
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {""}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def attempt(self, coro: Any) -> bool:
        try:
            self.run(coro)
            return True
        except VaultError:
            return False

    def parent_ok(self, path: str) -> bool:
        parent = path.rpartition("/")[0]
        return parent in self.dirs

    def teardown(self) -> None:
        self.run(self.vault.aclose())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(path=PATHS, content=CONTENT)
    def put(self, path: str, content: bytes) -> None:
        ok = self.attempt(self.vault.put(path, content))
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts))]
        expect = path not in self.dirs and not any(p in self.files for p in prefixes)
        assert ok == expect
        if ok:
            self.files[path] = content
            self.dirs.update(prefixes)

    @rule(path=PATHS)
    def mkdir(self, path: str) -> None:
        ok = self.attempt(self.vault.mkdir(path))
        assert ok == (self.parent_ok(path) and path not in self.dirs and path not in self.files)
        if ok:
            self.dirs.add(path)

    @rule(path=PATHS)
    def rm_recursive(self, path: str) -> None:
        ok = self.attempt(self.vault.rm(path, recursive=True))
        assert ok == (path in self.files or path in self.dirs)
        if ok:
            self.files = {p: c for p, c in self.files.items() if p != path and not p.startswith(path + "/")}
            self.dirs = {d for d in self.dirs if d != path and not d.startswith(path + "/")}

    @rule(src=PATHS, dst=PATHS)
    def mv_file(self, src: str, dst: str) -> None:
        if src not in self.files:
            return
        ok = self.attempt(self.vault.mv(src, dst))
        expect = self.parent_ok(dst) and dst not in self.dirs and not dst.startswith(src + "/")
        assert ok == expect
        if ok and src != dst:
            self.files[dst] = self.files.pop(src)

    @rule()
    def commit(self) -> None:
        self.run(self.vault.commit())

    @precondition(lambda self: True)
    @rule()
    def commit_and_reopen(self) -> None:
        self.run(self.vault.commit())
        self.run(self.vault.aclose())
        self.vault = self.run(reopen(self.url))

    @invariant()
    def same_tree(self) -> None:
        async def listing() -> tuple[dict[str, bytes], set[str]]:
            files, dirs = {}, {""}
            async for path, st_ in self.vault.walk("/"):
                p = path.lstrip("/")
                if st_.type == "dir":
                    dirs.add(p)
                else:
                    files[p] = await self.vault.read_bytes(p)
            return files, dirs

        files, dirs = self.run(listing())
        assert files == self.files
        assert dirs == self.dirs


CatalogModel.TestCase.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCatalogModel = CatalogModel.TestCase
