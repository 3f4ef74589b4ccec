"""Shared fixtures: the rule catalogue and a one-call analyse helper."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any

import pytest

from pcapcheck.catalog.rules import load_catalog
from pcapcheck.pipeline import FileResult, analyze_file

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"


@pytest.fixture(autouse=True)
def _english():
    """Every test starts in English: the language is process-wide (``pcapcheck.i18n``), and
    a test that sets another (``pcapcheck.analyze(lang="ko")`` keeps it for the report it
    renders later) must not leak it into the next one."""
    from pcapcheck import i18n

    i18n.set_language("en")
    yield
    i18n.set_language("en")


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


# --------------------------------------------------------------------------- components
#: CI (PCAPCHECK_FULL=1) installs every component a test needs: none is skipped there.
FULL = os.environ.get("PCAPCHECK_FULL") == "1"


def need(condition: object, reason: str, *, module: bool = False) -> None:
    """Skip the test (``module``: the whole module) unless ``condition`` holds (a
    component it needs is there: a library, a browser, tshark, root); with
    ``PCAPCHECK_FULL=1`` (CI) fail instead, naming ``reason``."""
    if condition:
        return
    if FULL:
        pytest.fail(f"PCAPCHECK_FULL=1 but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def need_module(name: str) -> Any:
    """The module ``name`` imported, else :func:`need` (the whole module skipped)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        need(False, f"{name} is not installed (pip install -e '.[test]')", module=True)


def same_report(a: FileResult, b: FileResult) -> None:
    """Assert that two analyses of one capture agree: the JSON report's text and every
    event (reported or not), in order."""
    from pcapcheck.report.json_report import document

    assert document([a]) == document([b])
    assert list(a.events) == list(b.events)


def triples(result: FileResult) -> list[tuple[str, int | None, int | None]]:
    """The findings as sorted (rule, connection, frame) triples."""
    return sorted((f.rule, f.connection, f.frame) for f in result.findings)


# --------------------------------------------------------------------------- tshark tests
CAPTURE = re.compile(r"\.(pcap|pcapng|cap)(\.gz)?$")
ALL_CAPTURES = sorted(p for p in SAMPLES.rglob("*") if p.is_file() and CAPTURE.search(p.name))


def selected_captures(paths: list[Path], keep) -> list[Path]:
    """The captures the tshark tests check: all of them with PCAPCHECK_FULL=1 (CI), else
    every 4th plus the ones named in ``keep`` (tshark costs ~0.2 s of CPU per file whatever
    its size, ~40 s for every sample capture)."""
    if os.environ.get("PCAPCHECK_FULL") == "1":
        return paths
    return [
        p for i, p in enumerate(paths) if i % 4 == 0 or p.relative_to(SAMPLES).as_posix() in keep
    ]


def _have_tshark() -> bool:
    from pcapcheck.capture import tshark

    try:
        tshark.tshark_path()
        return True
    except tshark.TsharkMissing:
        return False


HAVE_TSHARK = _have_tshark()


@pytest.fixture
def tshark_installed() -> None:
    need(HAVE_TSHARK, "tshark is not installed (CI installs it: apt-get install tshark)")


#: Marks a test that runs tshark: skipped without it, failed with PCAPCHECK_FULL=1.
needs_tshark = pytest.mark.usefixtures("tshark_installed")
