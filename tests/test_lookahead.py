"""Clean connections found ahead of the tracker (pcapcheck.fast.lookahead) give the same
reports as the tracker's own path (the rows kept and tested by clean.check, the others
replayed): on every sample capture, on generated captures full of artefacts (tiny
timers, many small chunks and rounds, shards), and on crafted cases where the lookahead
must step aside: a 4-tuple seen shortly before, a segment decoded one by one on the
4-tuple, a capture cut short, the clock going back. The tracker's state is never found
to contradict the lookahead (no second analysis) except where a test forces it."""

from __future__ import annotations

import struct
import sys

import pytest
from conftest import ALL_CAPTURES, ROOT, SAMPLES, same_report

from pcapcheck import pipeline as analyze
from pcapcheck.capture import reader
from pcapcheck.fast import batch_decoder as batch
from pcapcheck.fast import clean_connections as clean
from pcapcheck.fast import lookahead
from pcapcheck.fast.clean_connections import FastPathMismatch, Pending
from pcapcheck.fast.summarising_tracker import SummarisingTracker as Tracker
from pcapcheck.pipeline import analyze_file
from pcapcheck.run.shards import analyze_shard, merge_shards
from pcapcheck.tcp import tracker as tracker_module

sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))
from craft_captures import Capture, Conversation
from test_clean import (
    CLEAN,
    REPLAYED,
    _clean_client_close,
    _crafted,
    _generated,
    _port_reused_at_once,
    _port_reused_later,
    _random_retransmissions,
    same_on_sample,
    same_under_tiny_timers,
)

#: The ids of the connections the tracker took from the lookahead (end_fast), in order.
fast: list[int] = []
#: One entry per analysis with the lookahead: True when it was abandoned (a mismatch).
attempts: list[bool] = []


@pytest.fixture(autouse=True)
def spies(monkeypatch):
    fast.clear()
    attempts.clear()
    end_fast = Tracker.end_fast

    def spy_end(self, f, ts):
        end_fast(self, f, ts)
        fast.append(f.clean.id)

    monkeypatch.setattr(Tracker, "end_fast", spy_end)
    run = analyze._analyze_part

    def spy_run(*args, ahead, **options):
        if not ahead:
            return run(*args, ahead=ahead, **options)
        try:
            got = run(*args, ahead=ahead, **options)
        except FastPathMismatch:
            attempts.append(True)
            raise
        attempts.append(False)
        return got

    monkeypatch.setattr(analyze, "_analyze_part", spy_run)


def _small_pieces(monkeypatch, size):
    """Read and decode the capture ``size`` bytes at a time (many plans and rounds)."""
    monkeypatch.setattr(batch, "CHUNK_BYTES", size)
    monkeypatch.setattr(reader, "_CHUNK", size)


def _both(path, catalog, monkeypatch, checksums=False, mismatch_ok=False, **kw):
    """(lookahead on, lookahead off) analyses with every rule; the first's ``fast``: the
    ids of the connections it took from the lookahead (sorted)."""
    active = catalog.select(["ALL"], None if checksums else ["CP004"])
    monkeypatch.setattr(clean, "ENABLED", True)
    monkeypatch.setattr(lookahead, "ENABLED", True)
    fast.clear()
    on = analyze_file(path, catalog, active, **kw)
    on.fast = sorted(fast)
    if not mismatch_ok:
        assert True not in attempts, "the tracker contradicted the lookahead"
    monkeypatch.setattr(lookahead, "ENABLED", False)
    fast.clear()
    off = analyze_file(path, catalog, active, **kw)
    assert not fast
    return on, off


@pytest.mark.parametrize(
    "path", ALL_CAPTURES, ids=[str(p.relative_to(SAMPLES)) for p in ALL_CAPTURES]
)
def test_lookahead_equals_tracker_on_samples(path, catalog, monkeypatch):
    same_on_sample(_both, path, catalog, monkeypatch)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lookahead_equals_tracker_on_generated_captures(seed, tmp_path, catalog, monkeypatch):
    path, n = _generated(tmp_path, seed)
    on, off = _both(path, catalog, monkeypatch)
    assert on.tcp_packets == n and len(on.findings) > 10
    assert len(on.connections) * 0.3 < len(on.fast) < len(on.connections) * 0.9
    same_report(on, off)
    everything = len(on.fast)
    # many chunks and rounds: verdicts carried from round to round, plans held back;
    # the complete candidates of a round classified a few connections at a time
    _small_pieces(monkeypatch, 3000)
    monkeypatch.setattr(lookahead, "ROUND_ROWS", 40)
    monkeypatch.setattr(lookahead, "CLASSIFY_ROWS", 25)
    on, off = _both(path, catalog, monkeypatch)
    assert len(on.fast) == everything
    same_report(on, off)
    # candidates whose SYN is more than MAX_ROWS segments old are given up (here those
    # of the first half of the capture, which all wait for its end: fewer, never wrong)
    monkeypatch.setattr(lookahead, "MAX_ROWS", n // 2)
    on, off = _both(path, catalog, monkeypatch)
    assert 0 < len(on.fast) < everything
    same_report(on, off)
    # the tracker's timers: sweeps every 3 ms, connections finalised in the middle of
    # their segments (idle or closed), a close delay longer than the capture
    same_under_tiny_timers(_both, path, catalog, monkeypatch)


@pytest.mark.parametrize("seed", range(6))
def test_lookahead_equals_tracker_on_random_retransmissions(seed, tmp_path, catalog, monkeypatch):
    """Segments sent again in every shape (test_clean's): the connections the
    lookahead takes, some with retransmissions, give the tracker's report."""
    cap = Capture()
    _random_retransmissions(cap, seed)
    path = tmp_path / f"resent{seed}.pcap"
    cap.write(path)
    spied: list[list] = []
    clean_connections = lookahead.clean_connections

    def spy(*args):
        got = clean_connections(*args)
        spied.extend(c.retx for c in got)
        return got

    monkeypatch.setattr(lookahead, "clean_connections", spy)
    on, off = _both(path, catalog, monkeypatch)
    assert 0 < len(on.fast) < 40 and sum(bool(r) for r in spied) >= 2
    same_report(on, off)
    same_under_tiny_timers(_both, path, catalog, monkeypatch)


def test_lookahead_takes_every_connection_of_an_ordinary_capture(tmp_path, catalog, monkeypatch):
    path, _n = _generated(tmp_path, 7, refused=0, retrans=0, resets=0, loss=0)
    on, off = _both(path, catalog, monkeypatch)
    assert on.fast == list(range(1, 151)) and not on.findings
    same_report(on, off)


def test_lookahead_equals_tracker_in_shards(tmp_path, catalog, monkeypatch):
    path, _n = _generated(tmp_path, 4, connections=200, concurrency=16)
    active = catalog.select(["ALL"], ["CP004"])
    _small_pieces(monkeypatch, 5000)
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(lookahead, "ENABLED", enabled)
        fast.clear()
        parts = [analyze_shard(path, catalog, active, shard=(k, 2), encode=True) for k in range(2)]
        results.append(merge_shards(parts, path, catalog, active))
        assert (len(fast) > 50) == enabled
    assert attempts == [False, False]
    same_report(results[0], results[1])


# ------------------------------------------------------------------ crafted connections


@pytest.mark.parametrize("build", CLEAN, ids=[b.__name__ for b in CLEAN])
def test_clean_shapes_are_taken(build, tmp_path, catalog, monkeypatch):
    on, off = _both(_crafted(tmp_path, build), catalog, monkeypatch)
    # IPv6 segments are decoded one by one: the tracker keeps that one as rows
    assert on.fast == ([] if build.__name__ == "_clean_ipv6" else [1])
    same_report(on, off)


@pytest.mark.parametrize("build", REPLAYED, ids=[b.__name__ for b in REPLAYED])
def test_near_misses_are_left_to_the_tracker(build, tmp_path, catalog, monkeypatch):
    on, off = _both(_crafted(tmp_path, build), catalog, monkeypatch)
    assert on.fast == []
    same_report(on, off)


def _reuse_with_traffic_between(cap):
    """A 4-tuple used at 0 s and again at 30 s, another connection at 10 s."""
    for cport, cisn, dt in (
        (40000, 0x11111111, None),
        (40001, 0x22222222, 10.0),
        (40000, 0x33333333, 20.0),
    ):
        c = Conversation(cap, cport=cport, cisn=cisn)
        c.handshake(dt=dt)
        c.exchange()
        c.close("c")


def test_a_4_tuple_seen_within_the_horizon_is_left_to_the_tracker(tmp_path, catalog, monkeypatch):
    """A 4-tuple used again 30 s later: the tracker still remembers the first use (2·MSL
    = 240 s, CL010), so the lookahead leaves the second to it; with a horizon shorter
    than 30 s (MSL 1 s, idle timeout 1 s, sweeps every 3 ms) it is taken as well. Read
    in small pieces, so that the first use is decided before the second is read (in one
    round, both are one group of the 4-tuple: left to the tracker)."""
    path = tmp_path / "reuse.pcap"
    cap = Capture()
    _reuse_with_traffic_between(cap)
    cap.write(path)
    on, off = _both(path, catalog, monkeypatch)
    assert on.fast == [2] and [f.rule for f in on.findings] == ["CL010"]
    same_report(on, off)
    _small_pieces(monkeypatch, 1500)
    monkeypatch.setattr(lookahead, "ROUND_ROWS", 1)
    on, off = _both(path, catalog, monkeypatch)
    assert on.fast == [1, 2] and [f.rule for f in on.findings] == ["CL010"]
    same_report(on, off)
    monkeypatch.setattr(tracker_module, "SWEEP_EVERY", 0.003)
    on, off = _both(path, catalog, monkeypatch, idle_timeout=1.0, params={"CL010": {"msl": 1.0}})
    assert on.fast == [1, 2, 3] and not on.findings
    same_report(on, off)
    on, off = _both(_crafted(tmp_path, _port_reused_at_once), catalog, monkeypatch)
    assert on.fast == [] and [f.rule for f in on.findings] == ["CL010"]
    same_report(on, off)
    on, off = _both(_crafted(tmp_path, _port_reused_later), catalog, monkeypatch)
    assert on.fast == [] and [f.rule for f in on.findings] == ["CL010"]
    same_report(on, off)


def _vlan(frame: bytes) -> bytes:
    """An Ethernet frame with an 802.1Q tag (VLAN 7) after its MAC addresses."""
    return frame[:12] + struct.pack(">HH", 0x8100, 7) + frame[12:]


def _clean_then_tagged_ack(cap, dt):
    c = Conversation(cap)
    c.handshake()
    c.exchange()
    c.close("c")
    c.ack("c", dt=dt)  # the last ACK again, VLAN-tagged
    cap.records[-1][1] = _vlan(cap.records[-1][1])
    other = Conversation(cap, cport=40001)  # later traffic: the clock moves on
    other.handshake(dt=10.0)
    other.exchange()
    other.close("c")


def test_a_segment_decoded_one_by_one_joins_its_connection(tmp_path, catalog, monkeypatch):
    """The last ACK again 1 s after the close, VLAN-tagged (so not one of the decoded
    columns): the tracker adds it to the connection's rows; the lookahead must not take
    the connection. 8 s after the close (past the close delay) it starts a new
    connection (2); the lookahead leaves the first to the tracker as well (a segment
    decoded one by one on its 4-tuple after its SYN: it does not look further)."""
    for dt, taken in ((1.0, [2]), (8.0, [3])):
        cap = Capture()
        _clean_then_tagged_ack(cap, dt)
        path = tmp_path / f"tagged{dt}.pcap"
        cap.write(path)
        on, off = _both(path, catalog, monkeypatch)
        assert on.fast == taken
        same_report(on, off)


def _three_connections(cap, cut_gap):
    """Three clean connections on three client ports, 10 s apart; the third starts
    ``cut_gap`` seconds after the second."""
    for i, gap in enumerate((0.0, 10.0, cut_gap)):
        c = Conversation(cap, cport=40000 + i)
        c.handshake(dt=gap if i else None)
        c.exchange()
        c.close("c")


def test_capture_cut_short(tmp_path, catalog, monkeypatch):
    """The file ends inside the last record. The tracker replays what it still holds at
    the end of a cut capture: a connection closed less than the close delay before the
    last record is left to it; the ones followed by a segment past their close delay
    are taken."""
    for cut_gap, taken in ((10.0, [1, 2]), (1.0, [1])):
        cap = Capture()
        _three_connections(cap, cut_gap)
        path = tmp_path / f"cut{cut_gap}.pcap"
        cap.write(path, cut_last=10)
        on, off = _both(path, catalog, monkeypatch)
        assert on.truncated and on.fast == taken
        same_report(on, off)
    path = _crafted(tmp_path, _clean_client_close, cut_last=10)
    on, off = _both(path, catalog, monkeypatch)
    assert on.fast == []
    same_report(on, off)


def test_clock_going_back_stops_the_lookahead(tmp_path, catalog, monkeypatch):
    """A record stored with a time 2 s before the one before it, near the end of the
    third connection: the first two, decided (by the third's first segments) before
    that record is read, are taken; the third is not."""
    cap = Capture()
    _three_connections(cap, 10.0)
    at = cap.records[-3]
    at[0] -= 2_000_000
    path = tmp_path / "back.pcap"
    cap.write(path)
    _small_pieces(monkeypatch, 1500)
    monkeypatch.setattr(lookahead, "ROUND_ROWS", 1)
    on, off = _both(path, catalog, monkeypatch)
    assert on.fast == [1, 2]
    same_report(on, off)


def test_a_contradiction_analyses_again_without_the_lookahead(tmp_path, catalog, monkeypatch):
    """Forced: the tracker refuses the second connection found clean. The analysis is
    run again without the lookahead; the report is the tracker's."""
    path, _n = _generated(tmp_path, 5)
    calls = []
    start_fast = Tracker.start_fast

    def refuse(self, f, ts):
        calls.append(f.key)
        if len(calls) == 2:
            raise FastPathMismatch("forced")
        start_fast(self, f, ts)

    monkeypatch.setattr(Tracker, "start_fast", refuse)
    on, off = _both(path, catalog, monkeypatch, mismatch_ok=True)
    assert attempts == [True] and len(calls) == 2
    same_report(on, off)


def test_end_fast_finalises_the_connection_at_once():
    """A fast connection's last segment finalises it as the tracker finalises a clean
    Pending: its 4-tuple among the recently closed ones (for CL010), the connection
    finished; nothing is left in the table or the queue of closed connections (the
    Pending, its turn and its ticks spared). A 4-tuple held (kept as rows, or in the
    table), at its SYN or its last segment, is a contradiction."""
    from pcapcheck.tcp.detectors import Checker

    tracker = Tracker(Checker())
    c = clean.CleanConnection()
    c.client, c.server, c.close_ts = ("10.0.0.1", 40000), ("10.0.0.2", 80), 12.5
    fast = lookahead.FastConn(("10.0.0.1", 40000, "10.0.0.2", 80), c)
    tracker.start_fast(fast, 10.0)
    assert c.id == 1 and not tracker.table
    tracker.end_fast(fast, 12.5)
    assert not tracker.table and not tracker.pending
    assert not tracker.closing and not tracker.pending_closing
    assert tracker.recently_closed[fast.key] == (1, 12.5)
    assert tracker.pop_finished() == [c]
    held = lookahead.FastConn(("10.0.0.3", 1, "10.0.0.4", 2), clean.CleanConnection())
    tracker.pending[held.key] = Pending(9, ("10.0.0.3", 1), ("10.0.0.4", 2))
    with pytest.raises(FastPathMismatch):
        tracker.end_fast(held, 13.0)
    with pytest.raises(FastPathMismatch):
        tracker.start_fast(held, 13.0)
    del tracker.pending[held.key]
    tracker.table[held.key] = object()  # type: ignore[assignment]
    with pytest.raises(FastPathMismatch):
        tracker.end_fast(held, 13.0)
    with pytest.raises(FastPathMismatch):
        tracker.start_fast(held, 13.0)


def test_clean_connections_sets_every_slot():
    """clean_connections makes its CleanConnections without __init__: every slot must
    still be set (a slot added to the class and forgotten there would fail here)."""
    import numpy as np

    n = 3
    starts, sizes = np.arange(0, 7 * n, 7), np.full(n, 7)
    cols = {"frame": np.arange(1, 7 * n + 1), "ts": np.arange(7 * n) * 0.5}
    out = {
        key: np.arange(n)
        for key in (
            "isn_c",
            "isn_s",
            "synack",
            "ack",
            "f1",
            "a1",
            "f2",
            "last",
            "c_pkts",
            "s_pkts",
            "c_bytes",
            "s_bytes",
        )
    }
    out.update(
        clean=np.array([True, False, True]),
        closer=np.array([1, 2, 2]),
        min_ts=np.zeros(n),
        max_ts=np.array([3.0, 0.0, -1.0]),
        letters=np.tile(np.arange(8), (n, 1)),
        # retransmissions: (row, frame, from client, seq, length, first frame, flags)
        retx=np.array(
            [[4, 5, 1, 1, 100, 4, 0x18], [10, 11, 0, 1, 50, -1, 0x10], [15, 16, 0, 7, 30, -1, 0x10]]
        ),
    )
    conns = lookahead.clean_connections(cols, np.arange(7 * n), starts, sizes, out)
    assert len(conns) == 2
    for c in conns:
        assert all(hasattr(c, slot) for slot in clean.CleanConnection.__slots__)
    assert [c.first_frame for c in conns] == [1, 15]
    assert [c.duration for c in conns] == [3.0, 0.0]  # never negative
    assert [c.closer for c in conns] == ["client", "server"]
    assert conns[0].events == [] and conns[0].zeek is None and conns[0].id == 0
    # the second connection's retransmission is dropped with it
    assert [c.retx for c in conns] == [
        [(5, True, 1, 100, 4, 0x18)],
        [(16, False, 7, 30, None, 0x10)],
    ]
