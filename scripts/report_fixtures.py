"""Write (or check) the report fixtures: the JSON report of every sample capture.

The fixtures in ``tests/data/reports/`` hold the answers pcapcheck gives today; a refactoring
must leave them byte-identical (``tests/test_report_fixtures.py`` compares), and a change of
answers made on purpose rewrites them with this script and says so in its commit.

    python scripts/report_fixtures.py            # rewrite the fixtures
    python scripts/report_fixtures.py --check    # exit 1 and list the captures that differ

Generated captures (the benchmark's) are too large to keep; their reports' SHA-256 digests
are kept in ``tests/data/reports/generated.json`` with the generator's arguments.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "reports"
SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz", ".cap")


def captures() -> list[Path]:
    """Every capture under sample_pcaps/ (sorted, relative to the repository root)."""
    return sorted(
        p.relative_to(ROOT)
        for p in (ROOT / "sample_pcaps").rglob("*")
        if p.is_file() and p.name.endswith(SUFFIXES)
    )


def report(path: Path | str, *extra: str) -> bytes:
    """The JSON report of one capture, as the CLI writes it (exit status ignored)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcapcheck",
            "analyze",
            str(path),
            "-f",
            "json",
            "--isolated",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    return proc.stdout


def fixture_path(capture: Path) -> Path:
    return OUT / (str(capture).replace("/", "__") + ".json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    differ = []
    for capture in captures():
        got = report(capture)
        target = fixture_path(capture)
        if args.check:
            if not target.exists() or target.read_bytes() != got:
                differ.append(str(capture))
        else:
            target.write_bytes(got)
    if args.check:
        print("\n".join(differ) or "all fixtures equal")
        return 1 if differ else 0
    print(f"{len(captures())} fixtures written to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
