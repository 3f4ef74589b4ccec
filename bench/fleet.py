"""The fleet benchmark: many captures analysed locally and on a Dask cluster.

``--files`` captures (default 100) of about 50,000 packets each (``bench/generate.py
--connections 2000 --exchanges 4``, one seed per file: about 31 MB each, 3.1 GB in
all), made once and kept in ``--dir`` (default ``/tmp/pcapcheck-fleet``; a manifest
records how they were made, so a second run reuses them), then analysed, the JSON
report written, by:

* ``local``: ``pcapcheck analyze DIR --jobs 2`` (local worker processes), the reference;
* ``local-cluster``: ``--scheduler local:2`` (an in-process ``distributed.LocalCluster``
  of 2 worker processes, started and closed by the command: its start is in the time);
* ``cluster``: ``--scheduler tcp://127.0.0.1:PORT``: a ``dask scheduler`` and 2 ``dask
  worker --nthreads 1`` processes started by this script beforehand (their start is
  not in the time; a running cluster is what ``--scheduler`` is for) and stopped after;
  the workers with the configuration the README recommends and ``local:N`` uses
  (:data:`pcapcheck.run.cluster.WORKER_CONFIG`: no statistical profiler, the event
  loop's tick and the memory monitor every second; ``--dask-defaults``: Dask's own).

Each command is run ``--repeat`` times in turn (local, local-cluster, cluster, then
again), so that a slow spell of the machine falls on all alike; the median wall time is
reported, with packets per second, the ratio to the local run and the overhead per
file (the difference to the local run's wall time divided by the number of files), and
the CPU time used (user + system: the command and its child processes, plus, for the
running cluster, its scheduler's and workers'), a steadier measure than the wall time
on a shared machine.
Every report is checked to be byte for byte the local one (the benchmark fails
otherwise).

    python bench/fleet.py [--files 100] [--repeat 3] [--markdown] [--small]

``--small``: 10 files of about 12,000 packets (a quick check that it all works).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dask_processes import DaskProcesses

HERE = Path(__file__).resolve().parent
GENERATE = HERE / "generate.py"

#: How each capture is made (bench/generate.py's options; the seed is the file's number).
FULL = {"connections": 2000, "concurrency": 64, "exchanges": 4}
SMALL = {"connections": 500, "concurrency": 64, "exchanges": 4}


def make_fleet(directory: Path, files: int, shape: dict[str, int]) -> int:
    """Make (or reuse) ``files`` captures in ``directory``; their packets in all."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "manifest.json"
    known = json.loads(manifest.read_text()) if manifest.exists() else {}
    if known.get("shape") != shape:
        known = {"shape": shape, "files": {}}
    packets = 0
    for i in range(files):
        name = f"fleet-{i:04d}.pcap"
        path = directory / name
        if name not in known["files"] or not path.exists():
            out = subprocess.run(
                [
                    sys.executable,
                    str(GENERATE),
                    str(path),
                    *(f"--{k}={v}" for k, v in shape.items()),
                    f"--seed={1000 + i}",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            known["files"][name] = int(out.split(": ", 1)[1].split(" packets")[0])
            manifest.write_text(json.dumps(known, indent=1))
        packets += known["files"][name]
    return packets


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds (user + system) used so far by the processes ``roots`` and all their
    descendants (from ``/proc/*/stat``): a running cluster's scheduler and workers."""
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, list(roots)
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0.0)
        todo.extend(child for child, ppid in parent.items() if ppid == pid)
    return total


def timed(command: list[str], out: Path, cluster: list[int]) -> tuple[float, float]:
    """Wall seconds of ``command`` (its JSON report to ``out``) and the CPU seconds it
    used with its child processes and, when ``cluster`` names its processes, the
    cluster's; exits on a failure."""
    before = os.times()
    cpu0 = tree_cpu(cluster) if cluster else 0.0
    start = time.perf_counter()
    done = subprocess.run([*command, "-o", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = after.children_user + after.children_system
    cpu -= before.children_user + before.children_system
    if cluster:
        cpu += tree_cpu(cluster) - cpu0
    if done.returncode not in (0, 1):
        raise SystemExit(f"fleet: {' '.join(command)} failed:\n{done.stderr}")
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "pcapcheck-fleet")
    ap.add_argument("--files", type=int, default=None, help="captures (100; --small: 10)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="10 captures of ~12k packets")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument(
        "--dask-defaults",
        action="store_true",
        help="start the dask workers with Dask's defaults, not pcapcheck's WORKER_CONFIG",
    )
    args = ap.parse_args()
    files = args.files or (10 if args.small else 100)
    shape = SMALL if args.small else FULL
    fleet = args.dir / ("small" if args.small else "full")
    t0 = time.perf_counter()
    packets = make_fleet(fleet, files, shape)
    inputs = [str(fleet / f"fleet-{i:04d}.pcap") for i in range(files)]
    print(
        f"fleet: {files} captures, {packets:,} packets in all "
        f"({time.perf_counter() - t0:.1f} s to make or find them in {fleet})",
        file=sys.stderr,
    )
    base = [sys.executable, "-m", "pcapcheck", "analyze", *inputs, "-f", "json", "-q"]
    base.append("--isolated")
    with tempfile.TemporaryDirectory(prefix="pcapcheck-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        env = dict(os.environ)
        if not args.dask_defaults:  # as the README recommends (and local:N does)
            from pcapcheck.run.cluster import worker_environment

            env.update(worker_environment())
        with DaskProcesses(tmp, workers=2, env=env) as cluster:
            commands = {
                "local --jobs 2": [*base, "--jobs", "2"],
                "--scheduler local:2": [*base, "--scheduler", "local:2"],
                "--scheduler tcp:// (2 workers)": [*base, "--scheduler", cluster.address],
            }
            walls: dict[str, list[float]] = {name: [] for name in commands}
            cpus: dict[str, list[float]] = {name: [] for name in commands}
            pids = cluster.pids()
            for round_ in range(args.repeat):
                for i, (name, command) in enumerate(commands.items()):
                    report = tmp / f"report-{i}.json"
                    wall, cpu = timed(command, report, pids if "tcp" in name else [])
                    walls[name].append(wall)
                    cpus[name].append(cpu)
                    if i and report.read_bytes() != (tmp / "report-0.json").read_bytes():
                        raise SystemExit(f"fleet: the report of {name} is not the local one")
                print(
                    f"round {round_ + 1}: "
                    + ", ".join(
                        f"{n} {w[-1]:.2f} s ({cpus[n][-1]:.1f} s CPU)" for n, w in walls.items()
                    ),
                    file=sys.stderr,
                )
    local = statistics.median(walls["local --jobs 2"])
    local_cpu = statistics.median(cpus["local --jobs 2"])
    rows = []
    for name, values in walls.items():
        wall = statistics.median(values)
        cpu = statistics.median(cpus[name])
        rows.append(
            (
                name,
                f"{wall:.2f}",
                f"{packets / wall:,.0f}",
                f"{wall / local:.2f}x",
                f"{(wall - local) / files * 1000:+.0f} ms",
                f"{cpu:.1f}",
                f"{cpu / local_cpu:.2f}x",
            )
        )
    head = (
        "run",
        "wall s (median)",
        "packets/s",
        "vs local",
        "overhead per file",
        "CPU s (median)",
        "CPU vs local",
    )
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        for row in [head, *rows]:
            print(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths))
                )
            )
    print(
        f"{files} captures, {packets:,} packets; {os.cpu_count()} CPUs; "
        f"{args.repeat} round(s); reports identical to the local one",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
