"""Benchmark pcapcheck against tcptrace and tshark on the same capture, in one run.

For each tool: the median wall time over ``--repeat`` runs, packets per second and the
peak resident set size, and the ratios to pcapcheck. A tool that is not installed is
skipped and said so. The runs are interleaved (pcapcheck, tcptrace, then again), so that
a slow spell of the machine falls on both alike; tshark's runs come last (:data:`LAST`).

Peak RSS is that of the whole process tree of the command (``analyze --jobs`` runs worker
processes): every ~20 ms the VmRSS of the command's process and of all its descendants
(found through the parent pid in ``/proc/*/stat``) is read from ``/proc/<pid>/status``
and summed; the peak of that sum is reported (conservative: pages shared between the
processes, such as those of forked workers, count once per process), and never less
than the command's own ``ru_maxrss`` (from ``os.wait4``), which catches a peak between
two samples of a single process.

    python bench/run.py CAPTURE [--repeat 3] [--markdown] [--jobs N] [--wrap vxlan,mpls]

``--wrap KINDS``: pcapcheck also on copies of CAPTURE with every frame inside each
tunnel of KINDS (``bench/generate.py``'s ``wrap_capture``: vxlan, geneve, gre, mpls;
made once as ``CAPTURE.<kind>.pcap`` beside it), in the same rounds; their "time vs
pcapcheck" is the tunnelled capture's wall time over the plain one's (issue 24's
target: 1.3 or less).

Commands measured (the same file for all):
  pcapcheck  pcapcheck analyze CAPTURE -f json -o /dev/null [--jobs N]
             (every default rule, JSON written; --jobs N when given)
  pcapcheck-html  pcapcheck analyze CAPTURE -f html -o /dev/null (not run by default:
             --tools pcapcheck,pcapcheck-html gives the HTML report's time against JSON's)
  tcptrace   tcptrace -n -l CAPTURE
  tshark     tshark -r CAPTURE -T fields -e tcp.stream -e tcp.analysis.flags
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: Tools whose runs come after the others' rather than among them: on the 2-CPU VM this
#: was measured on, a command started right after one of tshark's runs (17 s of one CPU
#: busy) took about 0.1 s longer than the same command after a short one.
LAST = frozenset({"tshark"})

TOOLS = {
    "pcapcheck": lambda f: [
        sys.executable,
        "-m",
        "pcapcheck",
        "analyze",
        f,
        "-f",
        "json",
        "-o",
        os.devnull,
    ],
    # the HTML report of the same analysis (issue #25: at most 2x the JSON report's time);
    # measured with --tools pcapcheck,pcapcheck-html
    "pcapcheck-html": lambda f: [
        sys.executable,
        "-m",
        "pcapcheck",
        "analyze",
        f,
        "-f",
        "html",
        "-o",
        os.devnull,
    ],
    "tcptrace": lambda f: ["tcptrace", "-n", "-l", f],
    "tshark": lambda f: [
        "tshark",
        "-r",
        f,
        "-T",
        "fields",
        "-e",
        "tcp.stream",
        "-e",
        "tcp.analysis.flags",
    ],
}


#: Seconds between two samples of the process tree's resident set size.
SAMPLE_EVERY = 0.02


def _children() -> dict[int, list[int]]:
    """Parent pid → child pids, for every process in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie (no VmRSS)


def _children_of(pid: int) -> list[int] | None:
    """The child pids of ``pid`` from ``/proc/PID/task/TID/children`` (a few small
    reads, where scanning all of /proc takes a millisecond or more: the sampling must
    not take a core's time from the tool measured); None where the kernel does not
    provide those files."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids  # gone meanwhile
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids.extend(int(k) for k in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended
            return None  # no such file in this kernel
        except OSError:
            continue
    return kids


def tree_rss_kib(root: int) -> int:
    """The summed VmRSS (KiB) of ``root`` and all its descendants."""
    tree = None
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss_kib(pid)
        kids = _children_of(pid) if tree is None else None
        if kids is None:
            if tree is None:
                tree = _children()
            kids = tree.get(pid, [])
        todo.extend(kids)
    return total


def measure(cmd: list[str]) -> tuple[float, int]:
    """Run ``cmd`` once (output discarded); return (wall seconds, peak RSS in KiB of its
    whole process tree, see the module docstring)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if os.path.isdir("/proc"):
            peak = max(peak, tree_rss_kib(proc.pid))
        time.sleep(SAMPLE_EVERY)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}")
    return wall, max(peak, usage.ru_maxrss)


def byte_compile() -> None:
    """Byte-compile the pcapcheck package that ``python -m pcapcheck`` imports here, as
    ``pip install`` does when it installs it: otherwise, with PYTHONDONTWRITEBYTECODE
    set (some CI images and containers set it), every measured run would compile the
    package's modules again (about 0.07 s)."""
    where = subprocess.run(
        [sys.executable, "-c", "import os, pcapcheck; print(os.path.dirname(pcapcheck.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    compileall.compile_dir(where, quiet=1)


def count_packets(path: str) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pcapcheck.capture.reader import open_capture

    return sum(1 for _ in open_capture(path))


def wrapped_copies(capture: str, kinds: list[str]) -> dict[str, str]:
    """``kind -> path`` of a copy of ``capture`` inside each tunnel of ``kinds``
    (``bench/generate.py``'s ``wrap_capture``), made beside it unless already there."""
    if not kinds:
        return {}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import generate  # bench/generate.py

    out = {}
    for kind in kinds:
        if kind not in generate.WRAPS:
            raise SystemExit(f"--wrap: unknown tunnel {kind!r} ({', '.join(generate.WRAPS)})")
        path = Path(capture).with_suffix(f".{kind}.pcap")
        if not path.exists() or path.stat().st_mtime < Path(capture).stat().st_mtime:
            generate.wrap_capture(Path(capture), path, kind)
        out[kind] = str(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", default="pcapcheck,tcptrace,tshark")
    ap.add_argument("--markdown", action="store_true", help="print a README table")
    ap.add_argument(
        "--jobs",
        type=int,
        help="pass --jobs N to pcapcheck analyze (default: its own, the number of CPUs)",
    )
    ap.add_argument(
        "--wrap",
        default="",
        help="also pcapcheck on copies of CAPTURE inside these tunnels (vxlan,geneve,gre,mpls)",
    )
    args = ap.parse_args()
    packets = count_packets(args.capture)
    wrapped = wrapped_copies(args.capture, [k for k in args.wrap.split(",") if k])
    if "pcapcheck" in args.tools.split(","):
        byte_compile()
    cmds = {}
    for name in args.tools.split(","):
        cmd = TOOLS[name](args.capture)
        if name.startswith("pcapcheck") and args.jobs:
            cmd += ["--jobs", str(args.jobs)]
        if name != "pcapcheck" and shutil.which(cmd[0]) is None:
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        cmds[name] = cmd
        if name == "pcapcheck":  # the tunnelled copies right after it in each round
            for kind, path in wrapped.items():
                cmds[f"pcapcheck {kind}"] = [path if a == args.capture else a for a in cmd]
    # interleaved: each round runs every tool once, so that a slow spell of the machine
    # falls on all of them alike, not on the tool measured during it; tshark's runs
    # (ten times longer) come after the others' (see LAST)
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in cmds}
    for group in ([n for n in cmds if n not in LAST], [n for n in cmds if n in LAST]):
        for _ in range(args.repeat):
            for name in group:
                runs[name].append(measure(cmds[name]))
    rows = []
    for name, got in runs.items():
        wall = statistics.median(w for w, _ in got)
        rss = max(r for _, r in got)
        rows.append((name, wall, packets / wall, rss / 1024))
    base = next((r for r in rows if r[0] == "pcapcheck"), None)
    size = Path(args.capture).stat().st_size / 1e6
    head = (
        f"{Path(args.capture).name}: {packets} packets, {size:.0f} MB; {os.cpu_count()} "
        f"CPUs, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}; median of {args.repeat}"
    )
    print(head if not args.markdown else f"_{head}_\n")
    if args.markdown:
        print("| tool | wall time (s) | packets/s | peak RSS (MB) | time vs pcapcheck |")
        print("|---|---:|---:|---:|---:|")
    for name, wall, pps, rss in rows:
        ratio = wall / base[1] if base else float("nan")
        if args.markdown:
            print(f"| {name} | {wall:.2f} | {pps:,.0f} | {rss:.0f} | {ratio:.2f} |")
        else:
            print(f"{name:16} {wall:8.2f} s {pps:12,.0f} pkt/s {rss:8.0f} MB  x{ratio:.2f}")


if __name__ == "__main__":
    main()
