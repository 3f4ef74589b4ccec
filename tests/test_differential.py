"""The fast paths give the reference engine's reports: a differential test over random
connections (issue 22).

Captures (pcap or pcapng, microseconds or nanoseconds) of many random connections
overlapping in time (:mod:`traffic`: handshakes refused, unanswered or simultaneous,
data both ways, every kind of close, ISNs near 2^32, IPv4 and IPv6, 802.1Q and MPLS,
timestamps and window scaling; loss, reordering, duplicates, retransmissions, idle
gaps, bad checksums, cut records, clock steps, SACK blocks, port reuse; most
connections clean) are analysed with every rule (or every rule but CP004, whose
checksums change the decoding), under the default timers or short ones that finalise
connections mid-way:

* by the default path, ``analyze_file(path, catalog, active)``: batch decoding with
  numpy, the lookahead that finds clean connections over whole columns, the summary of
  clean connections without the replay, the established lane; a quarter of the
  analyses in small pieces (:class:`Analysis`) so that chunk and round boundaries fall
  inside connections;
* by the reference engine alone, ``analyze_file(..., fast=False)``: per-record
  decoding, every segment replayed through both endpoints' state machines;
* by the CLI with ``--jobs 2`` (``python -m pcapcheck analyze F -f json``), the file
  sharded over two processes (``PCAPCHECK_SHARD_MIN_BYTES=1``).

The JSON reports must be equal byte for byte, and the events (reported or not) equal
in order. The test also counts what it covered, so that it cannot pass vacuously: the
connections drawn (at least :data:`CONNECTIONS`), the connections the fast paths
summarised without the replay (more than a quarter of those drawn; of them, some with
retransmissions, whose SQ002 the summary makes), the findings by rule (at least 15
rules).

A bounded run is part of the normal suite (``derandomize``: the same examples for the
same tests before it; no example database is written): 2,000 connections or more in
67 captures and 8
sharded CLI runs, some 30 s. The long run (README.md)::

    PCAPCHECK_DIFF_CONNECTIONS=10000 python -m pytest tests/test_differential.py -s
    PCAPCHECK_DIFF_SEED=7 ...      # other examples than the derandomized ones

draws that many connections at least (a capture per 30, a sharded CLI run per 200)
and prints what it compared.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import traffic
from conftest import ROOT
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from pcapcheck import pipeline
from pcapcheck.capture import reader
from pcapcheck.fast import batch_decoder, lookahead
from pcapcheck.fast.clean_connections import CleanConnection
from pcapcheck.pipeline import FileResult, analyze_file
from pcapcheck.report.json_report import render
from pcapcheck.run.shards import shards_for
from pcapcheck.tcp import tracker
from pcapcheck.tcp.tracker import CLOSE_DELAY, IDLE_TIMEOUT

#: Connections the bounded run draws at least; the long run's from the environment.
CONNECTIONS = int(os.environ.get("PCAPCHECK_DIFF_CONNECTIONS", "0") or 0) or 2000
SEED = os.environ.get("PCAPCHECK_DIFF_SEED")
#: (idle_timeout, close_delay) of an analysis: the defaults, and shorter ones that
#: finalise connections in the middle of their segments (idle, or closed and then sent
#: to again), so a fast path must agree with the engine on when a connection ends.
DEFAULT_TIMERS = (IDLE_TIMEOUT, CLOSE_DELAY)
TIMERS = st.sampled_from((DEFAULT_TIMERS,) * 3 + ((30.0, 1.0), (2.0, 0.2), (0.05, 0.02)))
#: Lives a capture holds (the mean of the drawn ones is about 45 to 56: Hypothesis's
#: derandomized draws still differ with what ran before in the same process).
MIN_LIVES, MAX_LIVES = 10, 120
#: Captures drawn per CONNECTIONS: a floor under the mean, so that the run draws at
#: least CONNECTIONS whatever ran before it (a capture per 45 drew 1,991 after
#: tests/test_clean.py in one process, 2,546 alone).
LIVES_PER_CAPTURE = 30


def diff_settings(examples: int) -> Callable[[Any], Any]:
    """Hypothesis settings: ``examples`` examples, no deadline, no database; derandomized
    (the same examples every run) unless ``PCAPCHECK_DIFF_SEED`` is set."""

    def deco(fn: Any) -> Any:
        fn = settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=SEED is None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )(fn)
        return seed(int(SEED))(fn) if SEED is not None else fn

    return deco


@dataclass(frozen=True)
class Analysis:
    """How a capture is analysed, drawn per example: the timers, whether CP004 is on
    (only then are TCP checksums verified, and a segment with a wrong one kept off the
    fast paths), and ``pieces``: in this process, the capture read and decoded 3,000
    bytes at a time, the lookahead's rounds of 40 segments classified 25 at a time, its
    candidates given up 300 segments after their SYN, the connection table swept every
    3 ms (what a capture of millions of segments crosses, in one of a few thousand)."""

    idle_timeout: float
    close_delay: float
    checksums: bool
    pieces: bool = False

    def rules(self, catalog: Any) -> set[str]:
        return catalog.select(["ALL"], None if self.checksums else ["CP004"])

    def run(self, path: Path, catalog: Any, fast: bool = True) -> FileResult:
        """``analyze_file`` with every rule (but CP004 when ``checksums`` is off)."""
        with pytest.MonkeyPatch.context() as patch:
            if self.pieces:
                patch.setattr(batch_decoder, "CHUNK_BYTES", 3000)
                patch.setattr(reader, "_CHUNK", 3000)
                patch.setattr(lookahead, "ROUND_ROWS", 40)
                patch.setattr(lookahead, "CLASSIFY_ROWS", 25)
                patch.setattr(lookahead, "MAX_ROWS", 300)
                patch.setattr(tracker, "SWEEP_EVERY", 0.003)
            return analyze_file(
                path,
                catalog,
                self.rules(catalog),
                idle_timeout=self.idle_timeout,
                close_delay=self.close_delay,
                fast=fast,
            )

    def options(self) -> list[str]:
        """The same as CLI options."""
        timers = [
            "--idle-timeout",
            repr(self.idle_timeout),
            "--close-delay",
            repr(self.close_delay),
        ]
        return timers + ([] if self.checksums else ["--ignore", "CP004"])


ANALYSES = st.builds(
    lambda timers, checksums: Analysis(timers[0], timers[1], checksums), TIMERS, st.booleans()
)
#: pcap or pcapng, microseconds or nanoseconds (:data:`traffic.CONTAINERS`).
CONTAINERS = st.sampled_from(traffic.CONTAINERS)
#: :data:`ANALYSES` with or without small pieces (in this process only).
ANALYSES_IN_PROCESS = st.builds(
    lambda timers, checksums, pieces: Analysis(timers[0], timers[1], checksums, pieces),
    TIMERS,
    st.booleans(),
    st.integers(0, 3).map(lambda n: n == 3),
)


def text_diff(a: str, b: str, names: tuple[str, str]) -> str:
    """The first lines in which two reports differ (unified diff)."""
    lines = difflib.unified_diff(a.splitlines(), b.splitlines(), *names, lineterm="", n=1)
    return "\n".join(list(lines)[:60])


def same(default: FileResult, reference: FileResult) -> str:
    """The JSON report of ``default``, asserted equal to ``reference``'s (and the events)."""
    text, expected = render([default]), render([reference])
    assert text == expected, text_diff(expected, text, ("reference", "default"))
    assert list(default.events) == list(reference.events)
    return text


class Summarised:
    """Counts the connections the default path summarised without the replay
    (:class:`CleanConnection`, from :mod:`pcapcheck.fast.clean_connections` or
    :mod:`pcapcheck.fast.lookahead`) by watching ``pipeline.connection_summary``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.clean = 0
        self.resent = 0  # of them, with retransmissions (SQ002 made for the summary)
        self.on = False
        original = pipeline.connection_summary

        def spy(conn: Any) -> dict[str, Any]:
            if self.on and isinstance(conn, CleanConnection):
                self.clean += 1
                self.resent += bool(conn.retx)
            return original(conn)

        monkeypatch.setattr(pipeline, "connection_summary", spy)


def test_fast_paths_equal_the_reference_engine(tmp_path, catalog, monkeypatch):
    path = tmp_path / "random.pcap"
    watch = Summarised(monkeypatch)
    tally: Counter[str] = Counter()
    rules: Counter[str] = Counter()

    @diff_settings(-(-CONNECTIONS // LIVES_PER_CAPTURE))
    @given(traffic.captures(MIN_LIVES, MAX_LIVES), CONTAINERS, ANALYSES_IN_PROCESS)
    def one(lives: list[traffic.Life], container: str, analysis: Analysis) -> None:
        packets = traffic.write_pcap(path, lives, container)
        watch.on = True
        before, resent = watch.clean, watch.resent
        try:
            default = analysis.run(path, catalog)
        finally:
            watch.on = False
        same(default, analysis.run(path, catalog, fast=False))
        tally["captures"] += 1
        tally["lives"] += len(lives)
        tally["packets"] += packets
        tally["connections"] += len(default.connections)
        tally["summarised"] += watch.clean - before
        tally["resent"] += watch.resent - resent
        rules.update(f.rule for f in default.findings)

    one()
    print(
        f"\ndifferential: {tally['captures']} captures, {tally['lives']} connections drawn, "
        f"{tally['connections']} in the reports ({tally['summarised']} summarised by the fast "
        f"paths, {tally['resent']} of them with retransmissions), {tally['packets']} packets, "
        f"{rules.total()} findings: "
        + ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items()))
    )
    assert tally["lives"] >= CONNECTIONS
    assert tally["summarised"] > tally["lives"] // 4
    assert tally["resent"] > tally["lives"] // 100
    assert len(rules) >= 15


def cli_json(path: Path, *options: str) -> str:
    """The CLI's JSON report of ``path`` with every rule and ``options`` (in this
    process's environment)."""
    run = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "analyze", str(path), "-f", "json", "-q"]
        + ["--select", "ALL", "--isolated", "--exit-zero", *options],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_sharded_cli_equals_the_reference_engine(tmp_path, catalog, monkeypatch):
    path = tmp_path / "random.pcap"
    monkeypatch.setenv("PCAPCHECK_SHARD_MIN_BYTES", "1")
    rules: Counter[str] = Counter()
    lived: list[int] = []

    @diff_settings(max(8, CONNECTIONS // 200))
    @given(traffic.captures(MIN_LIVES, MAX_LIVES), CONTAINERS, ANALYSES)
    def one(lives: list[traffic.Life], container: str, analysis: Analysis) -> None:
        traffic.write_pcap(path, lives, container)
        assert shards_for(path, 2) == 2
        expected = render([analysis.run(path, catalog, fast=False)])
        sharded = cli_json(path, "--jobs", "2", *analysis.options())
        assert sharded == expected, text_diff(expected, sharded, ("reference", "--jobs 2"))
        rules.update(f["rule"] for f in json.loads(sharded)["files"][0]["findings"])
        lived.append(len(lives))

    one()
    print(
        f"\nsharded: {len(lived)} captures, {sum(lived)} connections drawn, "
        f"{rules.total()} findings of {len(rules)} rules"
    )
    assert rules.total() > 100 and len(rules) >= 10


def test_the_generator_writes_what_it_drew(tmp_path):
    """The pcap holds the drawn lives: every record decodes with dpkt to TCP with a
    correct checksum (but the ones drawn bad), the IP IDs count up per sender."""
    import dpkt

    lives = [
        traffic.Life(
            v6=v6,
            timestamps=v6,
            wscale=not v6,
            isn_c=traffic.M32 - 100,
            isn_s=12345,
            mss=536,
            opening="handshake",
            eager=False,
            messages=((True, 1000), (False, 3000)),
            close="fin",
            closer_client=v6,
            rtt=5000,
            pause=(0, 0, ""),
            faults=(("duplicate", 4, 0), ("badsum", 0, 0)),
            start=1000 * v6,
            reuse=None,
        )
        for v6 in (False, True)
    ]
    path = tmp_path / "two.pcap"
    records = traffic.write_pcap(path, lives)
    with open(path, "rb") as f:
        packets = list(dpkt.pcap.Reader(f))
    assert len(packets) == records == 2 * 20
    sums: Counter[bool] = Counter()
    ids: dict[bytes, list[int]] = {}
    for _ts, buf in packets:
        ip = dpkt.ethernet.Ethernet(buf).data
        tcp = ip.data
        assert isinstance(tcp, dpkt.tcp.TCP)
        written, header_sum = tcp.sum, getattr(ip, "sum", None)
        tcp.sum = 0
        if isinstance(ip, dpkt.ip.IP):
            ids.setdefault(ip.src, []).append(ip.id)
            ip.sum = 0
        bytes(ip)  # dpkt computes the checksums that are 0
        assert getattr(ip, "sum", None) == header_sum
        sums[tcp.sum == written] += 1
    assert sums == {True: 38, False: 2}
    assert len(ids) == 2 and all(b - a in (0, 1) for seq in ids.values() for a, b in pairwise(seq))


def test_regression_kept_rows_closed_by_the_ack_of_an_unseen_fin(tmp_path, catalog):
    """Found by the differential test (reduced): a connection closed by the client's ACK
    of the server's FIN that the capture stores later (frame 9, its timestamp stepped
    back), a refused connection in between, close_delay 0.02 s. The engine releases the
    first connection after the close delay and makes frame 9 a new, midstream one (CP001,
    CP002); the kept rows (clean_connections) keep it and attach frame 9 to it."""
    first = traffic.Life(
        v6=False, timestamps=False, wscale=False, isn_c=3913017, isn_s=172, mss=1220,
        opening="handshake", eager=False, messages=(), close="fin", closer_client=True,
        rtt=5000, pause=(0, 0, ""), faults=(("resend_lost", 173, 8), ("clockback", 132, 3)),
        start=187, reuse=None,
    )  # fmt: skip
    refused = replace(first, isn_c=49905, isn_s=20996, opening="refused", faults=(), start=55015)
    path = tmp_path / "regression.pcap"
    traffic.write_pcap(path, [first, refused])
    analysis = Analysis(0.05, 0.02, False)
    same(analysis.run(path, catalog), analysis.run(path, catalog, fast=False))
