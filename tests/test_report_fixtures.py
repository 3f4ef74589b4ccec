"""The answers do not change by accident: the JSON report of every sample capture equals the
fixture recorded in ``tests/data/reports/`` (written by ``scripts/report_fixtures.py``).

One ``pcapcheck analyze`` run over all the captures (the report of a file does not depend on
the other files of the run), compared file by file with key order kept, so that a changed
value, a reordered key or a finding more or less fails and names the capture.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from report_fixtures import captures, fixture_path  # noqa: E402


@pytest.fixture(scope="module")
def reports() -> dict[str, str]:
    files = [str(p) for p in captures()]
    proc = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "analyze", *files, "-f", "json", "--isolated"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    doc = json.loads(proc.stdout)
    return {entry["path"]: json.dumps(entry) for entry in doc["files"]}


def test_every_capture_has_a_fixture():
    missing = [str(p) for p in captures() if not fixture_path(p).exists()]
    assert missing == []
    assert len(captures()) >= 150


@pytest.mark.parametrize("capture", [str(p) for p in captures()])
def test_report_equals_fixture(reports: dict[str, str], capture: str):
    expected = json.loads(fixture_path(Path(capture)).read_bytes())
    assert len(expected["files"]) == 1
    assert reports[capture] == json.dumps(expected["files"][0])
