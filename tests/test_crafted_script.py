"""The crafted captures are exactly what scripts/craft_captures.py writes (byte for byte),
so the sample files and their manifest can never drift from the script."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, SAMPLES


def test_craft_script_reproduces_the_shipped_captures(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "craft_captures.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    shipped = sorted(p.name for p in (SAMPLES / "crafted").iterdir())
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == shipped
    for name in made:
        assert (tmp_path / name).read_bytes() == (SAMPLES / "crafted" / name).read_bytes(), name
