"""bench/: the generator and the side-by-side script run (issue #4). Never a timing:
what is checked is that they work and report what they say, not how fast anything is."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pcapcheck.capture.reader import open_capture

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "small.pcap"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "generate.py"),
            str(path),
            "--connections",
            "40",
            "--concurrency",
            "8",
            "--exchanges",
            "2",
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    return path


def _run(capture: Path, path_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": str(path_dir)}
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), str(capture), "--repeat", "1", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_skips_the_tools_not_installed_and_says_so(capture, tmp_path):
    packets = sum(1 for _ in open_capture(capture))
    done = _run(capture, tmp_path, "--markdown")  # PATH: an empty directory
    assert done.returncode == 0, done.stderr
    assert "tcptrace: not installed, skipped" in done.stderr
    assert "tshark: not installed, skipped" in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"_small.pcap: {packets} packets, ")
    assert "median of 1" in lines[0]
    assert lines[2] == ("| tool | wall time (s) | packets/s | peak RSS (MB) | time vs pcapcheck |")
    rows = [ln for ln in lines if ln.startswith("| pcapcheck |")]
    assert len(rows) == 1 and rows[0].endswith("| 1.00 |")
    assert not any(ln.startswith(("| tcptrace", "| tshark")) for ln in lines)


def test_run_measures_each_installed_tool_on_the_same_file(capture, tmp_path):
    # A stand-in tcptrace that records its arguments and takes a known 1.5 s (several
    # times pcapcheck's time on this file, so that an inverted ratio shows).
    log = tmp_path / "args.txt"
    fake = tmp_path / "tcptrace"
    fake.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\nexec {sys.executable} -c "
        "'import time; time.sleep(1.5)'\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    done = _run(capture, tmp_path, "--tools", "pcapcheck,tcptrace")
    assert done.returncode == 0, done.stderr
    assert log.read_text().split() == ["-n", "-l", str(capture)]
    rows = {
        m.group(1): (float(m.group(2)), float(m.group(3)))
        for m in re.finditer(r"^(\w+)\s+([\d.]+) s .* x([\d.]+)$", done.stdout, re.M)
    }
    assert set(rows) == {"pcapcheck", "tcptrace"}
    wall, ratio = rows["tcptrace"]
    assert wall >= 1.5
    # the ratio to pcapcheck's time (the printed figures are rounded to 2 decimals)
    assert ratio == pytest.approx(wall / rows["pcapcheck"][0], rel=0.05)


def test_run_interleaves_the_tools(capture, tmp_path, monkeypatch):
    """Each round runs pcapcheck and tcptrace once (a slow spell of the machine falls on
    both), tshark's runs come after theirs: stand-ins log their turns, and in this
    process the commands measured are recorded."""
    log = tmp_path / "turns.txt"
    for name in ("tcptrace", "tshark"):
        fake = tmp_path / name
        fake.write_text(f"#!/bin/sh\necho {name} >> {log}\n")
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            str(capture),
            "--repeat",
            "3",
            "--tools",
            "tshark,tcptrace",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert log.read_text().split() == ["tcptrace"] * 3 + ["tshark"] * 3
    assert "median of 3" in done.stdout
    # in this process, every tool "installed": pcapcheck and tcptrace take turns
    sys.path.insert(0, str(ROOT / "bench"))
    import run

    turns = []
    monkeypatch.setattr(run, "measure", lambda cmd: turns.append(cmd[0]) or (1.0, 1024))
    monkeypatch.setattr(run, "count_packets", lambda path: 10)
    monkeypatch.setattr(run, "byte_compile", lambda: None)
    monkeypatch.setattr(run.shutil, "which", lambda name: name)
    monkeypatch.setattr(sys, "argv", ["run.py", str(capture), "--repeat", "2"])
    run.main()
    assert turns == [sys.executable, "tcptrace"] * 2 + ["tshark"] * 2


def test_phases_times_each_stage_of_one_shard(capture):
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "phases.py"), str(capture), "--shard", "1/2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    lines = out.splitlines()
    assert re.fullmatch(r".*small\.pcap shard 1/2: total \d+\.\d\d s, cpu \d+\.\d\d s", lines[0])
    stages = [line.split()[0] for line in lines[1:]]
    # every stage ran (a stage whose function was renamed would be missing)
    assert sorted(stages) == ["blocks", "decode", "feed", "lookahead", "summaries", "walk"]
    # fed by another process, as analyze runs a shard: the reading is not the shard's
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "phases.py"),
            str(capture),
            "--shard",
            "1/2",
            "--fed",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    lines = out.splitlines()
    assert re.fullmatch(r".*small\.pcap shard 1/2 fed: total .* s, cpu .* s", lines[0])
    assert sorted(line.split()[0] for line in lines[1:]) == [
        "blocks",
        "feed",
        "lookahead",
        "receive",
        "summaries",
    ]


def test_the_rss_of_a_process_tree_is_summed_over_every_descendant():
    """The peak RSS sampled cheaply (each process's children files) counts the same
    processes as the scan of all of /proc, grandchildren included."""
    sys.path.insert(0, str(ROOT / "bench"))
    import run

    shell = subprocess.Popen(["sh", "-c", "sleep 5 & sleep 5 & wait"])
    try:
        for _ in range(100):  # until the two sleeps have started
            kids = run._children_of(shell.pid)
            if kids is not None and len(kids) == 2:
                break
            subprocess.run(["sleep", "0.05"])
        tree = run._children()
        assert kids is not None and sorted(kids) == sorted(tree[shell.pid])
        whole = sum(run._rss_kib(p) for p in [shell.pid, *tree[shell.pid]])
        assert run.tree_rss_kib(shell.pid) == pytest.approx(whole, rel=0.2)
        assert run.tree_rss_kib(os.getpid()) > run._rss_kib(os.getpid())
    finally:
        for pid in run._children_of(shell.pid) or []:
            os.kill(pid, 9)
        shell.kill()
        shell.wait()


def test_generated_connections_never_share_a_4_tuple():
    # the 4x benchmark capture (160,000 connections) once reopened every 60,000th
    # connection's 4-tuple (CL010, the full replay): not the same traffic, only longer
    sys.path.insert(0, str(ROOT / "bench"))
    import generate

    seen = {generate.client_of(n) for n in range(1, 200_001)}
    assert len(seen) == 200_000
    # the first 60,000 are what bench.pcap has always had (its figures stay comparable)
    assert generate.client_of(59_999) == (
        (10 << 24) | (2 << 16) | 59_999,
        1024 + (59_999 * 7919) % 60000,
    )
