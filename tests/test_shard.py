"""Intra-file parallelism (pcapcheck.run.shards): a capture analysed in shards of its
connections, merged, gives exactly the serial result (the JSON document, and the events),
on every sample capture (time going back included) and on generated ones (port reuse,
idle and closed connections released on the clock, files cut short, spools spilled); in
worker processes and through ``analyze --jobs``; and a shard's failure gives the serial
outcome. Shards that encode their summaries (``encode``, for a JSON report) give the
same JSON text and, decoded, the same summaries."""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

import pytest
from conftest import ROOT, SAMPLES
from typer.testing import CliRunner

from pcapcheck import spool as spool_module
from pcapcheck.capture.reader import CaptureError
from pcapcheck.cli import app
from pcapcheck.pipeline import analyze_file
from pcapcheck.report.json_report import document, render, write
from pcapcheck.run import shards as shard_module
from pcapcheck.run.shards import analyze_shard, analyze_sharded, merge_shards

sys.path.insert(0, str(ROOT / "bench"))
from generate import Writer, generate

CAPTURES = sorted(
    p for p in SAMPLES.rglob("*") if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".gz"))
)
IDS = [str(p.relative_to(SAMPLES)) for p in CAPTURES]


def in_shards(path, catalog, active, n, encode=False, **timers):
    """The shards analysed one after the other here, merged."""
    parts = [
        analyze_shard(path, catalog, active, shard=(k, n), encode=encode, **timers)
        for k in range(n)
    ]
    merged = merge_shards(parts, path, catalog, active)
    assert (merged.connection_lines is not None) == encode
    return merged


def same(serial, merged) -> None:
    assert document([merged]) == document([serial])
    text = render([serial])
    assert render([merged]) == text  # a StringIO: the merged lines decoded
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        write([merged], out)  # a file: the merged lines' bytes to its buffer
        out.seek(0)
        assert out.read() == text
    assert list(merged.events) == list(serial.events)
    assert len(merged.connections) == len(serial.connections)
    assert len(merged.findings) == len(serial.findings)


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_sample_capture_in_shards_equals_serial(catalog, path):
    active = catalog.select(["ALL"], None)
    try:
        serial = analyze_file(path, catalog, active)
    except CaptureError:
        with pytest.raises(CaptureError):
            analyze_shard(path, catalog, active, shard=(1, 2))
        return
    for n in (2, 3):
        same(serial, in_shards(path, catalog, active, n, encode=n == 2))


# --------------------------------------------------------------------------- generated


def scenario(
    path,
    seed: int,
    conns: int = 60,
    duration: float = 40.0,
    ports: int = 30,
    gap: float = 3.0,
    cut: bool = False,
) -> None:
    """A capture of ``conns`` connections on few 4-tuples (port reuse, connections picked
    up midstream on a released 4-tuple) spread over ``duration`` seconds with long
    silences (idle connections released by the sweeps, closed ones by the close delay),
    ending in every way (graceful, retransmitted FIN after the close, half, RST, open),
    with lost and duplicated segments; ``cut``: the last record cut short."""
    rng = random.Random(seed)
    server = (10 << 24) | (1 << 16) | 1
    syn, fin, rst, psh, ack = 0x02, 0x01, 0x04, 0x08, 0x10
    packets = []
    for _ in range(conns):
        cip = (10 << 24) | (2 << 16) | rng.randint(1, 2)
        cport, sport = 40000 + rng.randrange(ports), rng.choice((80, 443))
        t = rng.uniform(0, duration)
        isn = {"c": rng.getrandbits(32), "s": rng.getrandbits(32)}
        nxt = dict(isn)
        steps = []
        if rng.random() >= 0.1:
            steps += [("c", syn, 0), ("s", syn | ack, 0), ("c", ack, 0)]
        for _ in range(rng.randint(0, 4)):
            steps += [("c", psh | ack, rng.randint(1, 300)), ("s", psh | ack, rng.randint(1, 1400))]
            if rng.random() < 0.5:
                steps.append(("c", ack, 0))
        end = rng.random()
        if end < 0.15:
            steps.append((rng.choice("cs"), rst | ack, 0))
        elif end < 0.3:
            pass
        elif end < 0.4:
            steps.append(("c", fin | ack, 0))
        else:
            steps += [("c", fin | ack, 0), ("s", ack, 0), ("s", fin | ack, 0), ("c", ack, 0)]
            if rng.random() < 0.3:
                steps += [("s", fin | ack, -1), ("c", ack, 0)]  # the FIN again
        for side, flags, n in steps:
            other = "s" if side == "c" else "c"
            again = n < 0
            n = max(n, 0)
            seq = nxt[side] - (1 if again else 0)
            value = nxt[other] if flags & ack else 0
            if flags & syn and flags & ack:
                value = isn["c"] + 1
            r = rng.random()
            t += (
                rng.expovariate(1 / gap)
                if r < 0.3
                else rng.uniform(0, 0.01)
                if r < 0.9
                else rng.uniform(5, 40)
            )
            src, dst, sp, dp = (
                (cip, server, cport, sport) if side == "c" else (server, cip, sport, cport)
            )
            if rng.random() >= 0.02:
                packets.append((t, src, dst, sp, dp, seq, value, flags, n))
                if rng.random() < 0.02:
                    packets.append((t + 0.2, src, dst, sp, dp, seq, value, flags, n))
            if not again:
                nxt[side] = seq + n + (1 if flags & (syn | fin) else 0)
    packets.sort(key=lambda p: p[0])
    out = Writer(path)
    base = 1_767_225_600 * 1_000_000
    for i, (t, src, dst, sp, dp, seq, value, flags, n) in enumerate(packets):
        t_us = base + int(t * 1e6)
        out.packet(t_us, src, dst, sp, dp, seq, value, flags, n, i + 1, t_us // 1000)
    out.close()
    if cut:
        with open(path, "r+b") as fh:
            fh.seek(0, 2)
            fh.truncate(fh.tell() - 7)


#: (seed, cut, timers): with seeds 0 and 34 a shard that followed only its own segments'
#: clock would check at the end of the capture connections the serial run releases (or the
#: reverse); the others with the default timers and with tiny ones.
SCENARIOS = [
    (0, True, {"idle_timeout": 8, "close_delay": 2}),
    (34, False, {"idle_timeout": 3.0, "close_delay": 1.0}),
    (37, True, {"idle_timeout": 1, "close_delay": 3}),
    (1, False, {}),
    (2, True, {}),
    (3, False, {"idle_timeout": 0.5, "close_delay": 0.0}),
]


@pytest.mark.parametrize("seed, cut, timers", SCENARIOS)
def test_generated_scenario_in_shards_equals_serial(tmp_path, catalog, seed, cut, timers):
    path = tmp_path / "s.pcap"
    scenario(path, seed, cut=cut, gap=[1, 3, 8][seed % 3])
    active = catalog.select(["ALL"], None)
    serial = analyze_file(path, catalog, active, **timers)
    assert bool(serial.truncated) == cut
    for n in (2, 3):
        same(serial, in_shards(path, catalog, active, n, encode=n == 3, **timers))


def test_merged_lines_go_as_text_where_bytes_would_differ(tmp_path, catalog, monkeypatch):
    """The merged shards' lines are written to a text stream's buffer as bytes only where
    that gives the text: not through an encoding that is not ASCII's (UTF-16), nor where
    the text layer turns newlines into CRLF (Windows)."""
    from pcapcheck.report import json_report

    path = SAMPLES / "loopback" / "time_wait_reuse.pcap"
    active = catalog.select(["ALL"], None)
    text = render([analyze_file(path, catalog, active)])
    merged = in_shards(path, catalog, active, 2, encode=True)
    assert len(merged.connection_lines) == 2
    with open(tmp_path / "a.json", "w", encoding="utf-16") as out:
        write([merged], out)
    assert (tmp_path / "a.json").read_text("utf-16") == text
    monkeypatch.setattr(json_report.os, "linesep", "\r\n")
    with open(tmp_path / "b.json", "w", encoding="utf-8", newline="\r\n") as out:
        write([merged], out)
    assert (tmp_path / "b.json").read_bytes() == text.replace("\n", "\r\n").encode()


def test_port_reuse_ids_are_renumbered_in_data_and_messages(tmp_path, catalog):
    """CL010 and CP001 name another connection: the merged findings name its global id,
    in their data and their message."""
    path = tmp_path / "s.pcap"
    scenario(path, 5, conns=200, duration=100, ports=4)
    active = catalog.select(["ALL"], None)
    timers = {"idle_timeout": 5.0, "close_delay": 1.0}
    serial = analyze_file(path, catalog, active, **timers)
    merged = in_shards(path, catalog, active, 2, encode=True, **timers)
    refs = [f for f in merged.findings if f.data.get("previous_connection") is not None]
    assert {f.rule for f in refs} == {"CL010", "CP001"}
    assert any(str(f.data["previous_connection"]) in f.message for f in refs)
    same(serial, merged)


def test_bench_capture_in_shards_equals_serial(tmp_path, catalog):
    path = tmp_path / "gen.pcap"
    generate(
        argparse.Namespace(
            out=str(path),
            connections=300,
            concurrency=16,
            exchanges=3,
            refused=0.05,
            retrans=0.05,
            resets=0.05,
            loss=0.01,
            seed=1,
        )
    )
    active = catalog.select(None, None)
    serial = analyze_file(path, catalog, active)
    for n in (2, 3):
        for encode in (False, True):
            same(serial, in_shards(path, catalog, active, n, encode))


def test_spilled_spools(tmp_path, catalog, monkeypatch):
    """Spools spilled to disk: the same result."""
    path = tmp_path / "gen.pcap"
    generate(
        argparse.Namespace(
            out=str(path),
            connections=300,
            concurrency=16,
            exchanges=3,
            refused=0.05,
            retrans=0.05,
            resets=0.05,
            loss=0.01,
            seed=2,
        )
    )
    active = catalog.select(None, None)
    timers = {"idle_timeout": 0.05, "close_delay": 0.0}  # connections released early
    serial = analyze_file(path, catalog, active, **timers)
    for encode in (False, True):
        # an encoding shard's LineSpool: lines that come after their place was written
        monkeypatch.setattr(spool_module, "DEFAULT_LIMIT", 16)
        monkeypatch.setattr(spool_module, "LINE_LIMIT", 1)
        parts = [
            analyze_shard(path, catalog, active, shard=(k, 3), encode=encode, **timers)
            for k in range(3)
        ]
        assert all(p.result.connections.spilled for p in parts)
        same(serial, merge_shards(parts, path, catalog, active))


def test_clock_of_the_other_shards_is_followed(tmp_path, catalog, monkeypatch):
    """Without Tracker.tick (a shard following only its own segments' clock) the
    scenarios above differ from the serial result: the tests can fail."""
    from pcapcheck.tcp.tracker import Tracker

    path = tmp_path / "s.pcap"
    scenario(path, 0, cut=True, gap=1)
    active = catalog.select(["ALL"], None)
    timers = {"idle_timeout": 8, "close_delay": 2}
    serial = analyze_file(path, catalog, active, **timers)
    monkeypatch.setattr(Tracker, "tick", lambda self, ts: None)
    merged = in_shards(path, catalog, active, 2, **timers)
    assert document([merged]) != document([serial])


# --------------------------------------------------------------------------- processes


def test_shards_in_processes_merge(tmp_path, catalog):
    """Shards analysed in worker processes (their spools pickled back) merge into the
    serial result; so does analyze_sharded(shards=2)."""
    path = tmp_path / "s.pcap"
    scenario(path, 0, cut=True)
    active = catalog.select(["ALL"], None)
    timers = {"idle_timeout": 8, "close_delay": 2}
    serial = analyze_file(path, catalog, active, **timers)
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(
                analyze_shard, path, catalog, active, None, None, "native", (k, 2), **timers
            )
            for k in range(2)
        ]
        parts = [f.result() for f in futures]
    same(serial, merge_shards(parts, path, catalog, active))
    same(serial, analyze_sharded(path, catalog, active, shards=2, **timers))


def test_errors_are_the_serial_ones(tmp_path, catalog, monkeypatch):
    active = catalog.select(None, None)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all" * 10)
    with pytest.raises(CaptureError) as serial_error:
        analyze_file(bad, catalog, active)
    with pytest.raises(CaptureError) as sharded_error:
        analyze_sharded(bad, catalog, active, shards=2)
    assert str(sharded_error.value) == str(serial_error.value)
    # A shard failing (here on purpose, in the shards only): the serial analysis.
    path = tmp_path / "s.pcap"
    scenario(path, 0)

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(shard_module, "analyze_part", boom)
    same(analyze_file(path, catalog, active), analyze_sharded(path, catalog, active, shards=2))


def test_cli_jobs_shards_a_file_with_the_serial_report(tmp_path, monkeypatch):
    path = tmp_path / "gen.pcap"
    generate(
        argparse.Namespace(
            out=str(path),
            connections=300,
            concurrency=16,
            exchanges=3,
            refused=0.05,
            retrans=0.05,
            resets=0.05,
            loss=0.01,
            seed=3,
        )
    )
    monkeypatch.setenv("PCAPCHECK_SHARD_MIN_BYTES", "0")
    runner = CliRunner()
    one = runner.invoke(app, ["analyze", str(path), "-f", "json", "--jobs", "1"])
    two = runner.invoke(app, ["analyze", str(path), "-f", "json", "--jobs", "2"])
    assert one.exit_code == two.exit_code and one.exit_code in (0, 1)
    assert two.stdout == one.stdout and json.loads(one.stdout)["files"][0]["connections"]
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"x" * 100)
    one = runner.invoke(app, ["analyze", str(bad), "-f", "json", "--jobs", "1"])
    two = runner.invoke(app, ["analyze", str(bad), "-f", "json", "--jobs", "2"])
    assert one.exit_code == two.exit_code == 2 and two.stdout == one.stdout


def test_cli_jobs_with_a_baseline_counts_the_findings_left(tmp_path, monkeypatch):
    """The shards write their summaries' JSON lines; a baseline changes each summary's
    ``findings``, so the report is written from the summaries, as the serial run's."""
    path = tmp_path / "gen.pcap"
    generate(
        argparse.Namespace(
            out=str(path),
            connections=200,
            concurrency=16,
            exchanges=2,
            refused=0.1,
            retrans=0.05,
            resets=0.1,
            loss=0.0,
            seed=4,
        )
    )
    monkeypatch.setenv("PCAPCHECK_SHARD_MIN_BYTES", "0")
    runner = CliRunner()
    base = tmp_path / "baseline.json"
    assert (
        runner.invoke(app, ["analyze", str(path), "-q", "--write-baseline", str(base)]).exit_code
        == 0
    )
    one, two = (
        runner.invoke(
            app, ["analyze", str(path), "-f", "json", "--jobs", jobs, "--baseline", str(base)]
        )
        for jobs in ("1", "2")
    )
    assert one.exit_code == two.exit_code == 0
    assert two.stdout == one.stdout
    conns = json.loads(one.stdout)["files"][0]["connections"]
    assert conns and not any(c["findings"] for c in conns)


def test_plan_shards_only_when_there_are_fewer_files_than_jobs(tmp_path, monkeypatch):
    from pcapcheck.run.executors import plan_shards as _plan
    from pcapcheck.run.tasks import Job

    big, small = tmp_path / "big.pcap", tmp_path / "small.pcap"
    big.write_bytes(b"\0" * 1000)
    small.write_bytes(b"\0" * 10)
    monkeypatch.setenv("PCAPCHECK_SHARD_MIN_BYTES", "500")
    job = lambda p: Job(str(p), str(p), frozenset())  # noqa: E731
    assert _plan([job(big)], 2, "native") == [2]
    assert _plan([job(big), job(small)], 4, "native") == [2, 1]
    assert _plan([job(big)] * 3, 2, "native") == [1, 1, 1]
    assert _plan([job(small)], 2, "native") == [1]
    assert _plan([job(big)], 2, "tshark") == [1]


def test_global_ids_with_and_without_numpy(monkeypatch):
    """The merge ranks the shards' first frames with numpy when the process has it (it
    read the capture for the shards), else in plain Python: the same ids."""
    import random
    from array import array

    from pcapcheck.run.shards import _global_ids_numpy, global_ids

    rng = random.Random(4)
    frames = rng.sample(range(1, 10**6), 3000)
    cases = [
        [array("q", sorted(frames[:1000])), array("q", sorted(frames[1000:]))],
        [array("q", frames[:10]), array("q"), array("q", frames[10:2999])],
        [array("q"), array("q")],
    ]
    for first_frames in cases:
        by_numpy = _global_ids_numpy(first_frames)
        monkeypatch.delitem(sys.modules, "numpy")
        by_python = global_ids(first_frames)
        monkeypatch.undo()
        assert by_numpy == by_python
        maps, owner = by_python
        assert sorted(g for m in maps for g in m[1:]) == list(range(1, len(owner) + 1))
