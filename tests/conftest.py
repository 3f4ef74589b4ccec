"""Shared fixtures: the rule catalogue and a one-call analyse helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapcheck.analyze import FileResult, analyze_file
from pcapcheck.catalog import load_catalog

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture(scope="session")
def analyze(catalog):
    """``analyze("crafted/x.pcap", select=None)`` → FileResult with the default rules
    (or the given selection)."""
    cache: dict = {}

    def run(name: str, select=None, ignore=None) -> FileResult:
        key = (name, tuple(select or ()), tuple(ignore or ()))
        if key not in cache:
            active = catalog.select(select, ignore)
            cache[key] = analyze_file(SAMPLES / name, catalog, active)
        return cache[key]

    return run


def triples(result: FileResult) -> list[tuple[str, int | None, int | None]]:
    """The findings as sorted (rule, connection, frame) triples."""
    return sorted((f.rule, f.connection, f.frame) for f in result.findings)
