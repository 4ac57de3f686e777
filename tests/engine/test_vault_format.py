"""What the provider sees of a vault the engine wrote: opaque objects of one size, no plaintext."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from vaulttools import MIB, new_vault, object_files

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format.envelope import object_len
from sigmavault.engine.format.framing import FRAME_HEADER
from sigmavault.engine.keys import keystore
from sigmavault.engine.keys.schedule import KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK

MARKER = b"SIGMAVAULT-PLAINTEXT-MARKER-7f3a"


async def test_every_object_opens_and_full_objects_share_one_size(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("big", os.urandom(3 * MIB + 5))
        for i in range(300):  # enough small files to fill more than one data pack
            await v.put(f"small/{i:03}", os.urandom(3000 + i * 37))
        await v.commit()
        await v.put("second", os.urandom(2 * MIB))
        await v.commit()
        sealer = v._store.sealer
        full = object_len(MIB, MIB, 4096)
        sizes: Counter[int] = Counter()
        kinds: Counter[int] = Counter()
        for path in object_files(url):
            data = path.read_bytes()
            name = f"o/{path.name}"
            opened = []
            for kind in (KIND_CHUNK, KIND_DATA_PACK, KIND_PAGE_PACK):
                try:
                    stored = sealer.open(kind, name, data)
                except IntegrityError:
                    continue
                opened.append(kind)
                assert len(stored) <= MIB
            assert len(opened) == 1, (name, opened)  # the kind is bound: exactly one opens it
            kinds[opened[0]] += 1
            sizes[len(data)] += 1
        assert kinds[KIND_CHUNK] == 5 and kinds[KIND_DATA_PACK] >= 2 and kinds[KIND_PAGE_PACK] >= 2
        odd = {s: n for s, n in sizes.items() if s != full}
        # all but the last data pack and the last page pack of each commit have the full size
        assert sum(odd.values()) <= 2 * 2, odd
        assert full == 6 + 56 + (FRAME_HEADER + MIB) + 16 * 65


async def test_keystore_and_commits_parse_with_the_format_codecs(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        await v.put("x", b"y" * 2000)
        await v.commit()
        ks = sorted((url / "k").iterdir())
        assert [p.name for p in ks] == ["0000000000000001"]
        parsed = keystore.parse(ks[0].read_bytes(), "k/0000000000000001")
        assert parsed.generation == 1
        for gen in range(v.generation + 1):
            c = await v._history.commit_at(gen)
            assert c.gen == gen and (c.parent is None) == (gen == 0)


async def test_marker_written_into_many_files_appears_nowhere_in_the_vault(tmp_path: Path) -> None:
    url = tmp_path / "v"
    async with await new_vault(url) as v:
        for i in range(50):
            await v.put(f"{MARKER.decode()}-{i}.txt", MARKER * (i * 40 + 1))  # names and content
        await v.put("big", MARKER * (2 * MIB // len(MARKER) + 3))
        await v.mkdir(MARKER.decode())
    everything = b"".join(p.read_bytes() for p in url.rglob("*") if p.is_file())
    assert len(everything) > 2 * MIB
    for probe in (MARKER, MARKER[:12], MARKER.hex().encode()):
        assert probe not in everything
