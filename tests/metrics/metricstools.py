"""Helpers for the metrics tests: a fast real vault on disk, the bytes of its objects, scraping and parsing."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import sigmavault

PASS = "metrics test passphrase"
MIB = 1 << 20
#: names stored by the tests; none may appear in a scrape
SECRET_NAMES = ("quarterly-salaries.xlsx", "diary-entry-0042.txt", "holiday-photos", "unique-marker-file.bin")


async def new_vault(url: str | Path) -> sigmavault.Vault:
    return await sigmavault.create(str(url), passphrase=PASS, kdf="minimum", chunk_size=MIB)


async def reopen(url: str | Path) -> sigmavault.Vault:
    return await sigmavault.open(str(url), passphrase=PASS)


def stored(root: Path) -> tuple[int, int]:
    """(number, total bytes) of the objects in a local vault folder (temporary dot-files left out)."""
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return len(files), sum(p.stat().st_size for p in files)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200
        return r.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]
