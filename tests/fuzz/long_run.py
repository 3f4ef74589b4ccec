"""The long fuzz campaign: each atheris harness run for a number of executions, one
process at a time, restarted after a crash (kept in ``OUT/crashes/``) so that one bug
does not end the campaign. Prints the executions and crashes of each harness.

    nice -n 19 python tests/fuzz/long_run.py --out /tmp/pcapcheck-fuzz \\
        --runs capture=600000 --runs rubric=200000 --runs config=200000

The corpus each harness grows is kept in ``OUT/<harness>/`` (the seeds of
``tests/fuzz/corpus/<harness>/`` are read, never written); a later campaign with the same
``--out`` starts from it. ``-max_len`` bounds an input (default 4096 bytes).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESSES = ("capture", "rubric", "config")
_PROGRESS = re.compile(rb"^#(\d+)\s", re.MULTILINE)
_DONE = re.compile(rb"^Done (\d+) runs", re.MULTILINE)
CHUNK = 50_000


def run(harness: str, runs: int, out: Path, max_len: int) -> tuple[int, list[str]]:
    """Run ``harness`` for ``runs`` executions in chunks; (executions, crash files)."""
    work = out / harness
    crashes = out / "crashes"
    work.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    done = 0
    found: list[str] = []
    while done < runs:
        chunk = min(CHUNK, runs - done)
        before = set(crashes.iterdir())
        proc = subprocess.run(
            [
                sys.executable,
                str(HERE / f"fuzz_{harness}.py"),
                str(work),
                str(HERE / "corpus" / harness),
                f"-runs={chunk}",
                f"-max_len={max_len}",
                f"-artifact_prefix={crashes}/{harness}-",
                "-print_final_stats=1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        finished = _DONE.findall(proc.stderr)
        progress = _PROGRESS.findall(proc.stderr)
        executed = int(finished[-1]) if finished else int(progress[-1]) if progress else 0
        done += max(executed, 1)
        new = sorted(str(p) for p in set(crashes.iterdir()) - before)
        if new or proc.returncode != 0:
            found += new
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-30:]
            (out / f"{harness}-crash-{len(found)}.log").write_text("\n".join(tail) + "\n")
        print(
            f"{time.strftime('%H:%M:%S')} {harness}: {done} executions, {len(found)} crashes",
            flush=True,
        )
    return done, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", action="append", default=[], metavar="HARNESS=N")
    parser.add_argument("--max-len", type=int, default=4096)
    args = parser.parse_args()
    plan = dict(item.split("=", 1) for item in args.runs) or {h: "100000" for h in HARNESSES}
    total = 0
    for harness, runs in plan.items():
        executed, found = run(harness, int(runs), args.out, args.max_len)
        total += executed
        print(f"{harness}: {executed} executions, crashes: {found or 'none'}", flush=True)
    print(f"total: {total} executions", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
