"""The wheel carries the rule catalogue and the sample captures, so that `pip install .`
followed by `pcapcheck analyze` works outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

pytest.importorskip("hatchling")


def test_wheel_contains_rules_and_samples(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("pcapcheck-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    rules = {p.name for p in (ROOT / "rules").glob("*.yaml")}
    assert {f"pcapcheck/_data/rules/{r}" for r in rules} <= names
    assert "pcapcheck/_data/sample_pcaps/loopback/client_close_first.pcap" in names
    assert "pcapcheck/schemas/rule.schema.json" in names
    assert "pcapcheck/_data/rules/.validated" in names  # the stamp (catalog.STAMP_NAME)
    assert "pcapcheck/_data/rules/.parsed.json" in names  # catalog.PARSED_NAME
    assert "pcapcheck/locale/ko/LC_MESSAGES/pcapcheck.mo" in names  # the compiled catalog
    # The installed package finds its rules there (catalog.default_rules_dir).
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pcapcheck.catalog.rules as c; print(c.default_rules_dir()); "
            "print(len(c.load_catalog().rules)); "
            "print('jsonschema' in sys.modules or 'yaml' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
    )
    assert proc.returncode == 0, proc.stderr
    where, count, checked = proc.stdout.split()
    assert where == str(target / "pcapcheck" / "_data" / "rules") and int(count) == len(rules)
    assert checked == "False"  # stamped: no schema check, built from .parsed.json
