"""Bounded memory: connections are released once closed and past TIME-WAIT, or idle past
the timeout, so the tracker's table follows the number of concurrent connections, not the
length of the capture; an idle connection that resumes is reported as a new midstream one."""

from __future__ import annotations

import sys

from conftest import ROOT
from pcapcheck.analyze import analyze_file
from pcapcheck.detectors import Checker
from pcapcheck.model import ACK, FIN, PSH, SYN, Segment
from pcapcheck.tracker import Tracker

sys.path.insert(0, str(ROOT / "scripts"))
from craft_captures import Capture, Conversation  # noqa: E402


def _idle_then_resumed(path, gap: float) -> None:
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.exchange()
    c.data("c", 100, dt=gap)          # resumes after `gap` seconds of silence
    c.data("s", 200)
    c.ack("c")
    c.close("c")
    cap.write(path)


def test_idle_connection_resumed_after_timeout_is_a_new_midstream_connection(tmp_path, catalog):
    path = tmp_path / "idle.pcap"
    _idle_then_resumed(path, gap=400.0)
    res = analyze_file(path, catalog, catalog.select(None, None), idle_timeout=300.0)
    first, second = res.connections
    assert (first["handshake"], first["close"], first["last_frame"]) == ("complete", "open", 6)
    assert (first["client_state"], first["server_state"]) == ("ESTABLISHED", "ESTABLISHED")
    assert (second["first_frame"], second["handshake"], second["roles_inferred"]) == (7, "none", True)
    assert (second["client"], second["server"]) == (first["client"], first["server"])
    assert (second["close"], second["client_state"], second["server_state"]) == \
        ("graceful", "TIME-WAIT", "CLOSED")
    assert [(f.rule, f.connection, f.frame) for f in res.findings] == [
        ("CL008", 1, 6), ("CP001", 2, 7)]
    assert res.findings[0].data["idle"] == 300.0
    # Below the timeout it is one connection, and nothing is reported.
    _idle_then_resumed(path, gap=200.0)
    res = analyze_file(path, catalog, catalog.select(None, None), idle_timeout=300.0)
    assert len(res.connections) == 1 and res.findings == []


def _segments(n_conns: int, concurrency: int, spacing: float):
    """Many short connections, ``concurrency`` open at once, one every ``spacing`` s."""
    frame = 0
    for i in range(n_conns):
        t0 = i * spacing
        cport = 20000 + i % 30000
        cip, sip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", "10.255.0.1"
        steps = [(0, "c", SYN, 1000, 0, 0), (0.001, "s", SYN | ACK, 5000, 1001, 0),
                 (0.002, "c", ACK, 1001, 5001, 0), (0.003, "c", PSH | ACK, 1001, 5001, 10),
                 (0.004, "s", ACK, 5001, 1011, 0),
                 (spacing * concurrency, "c", FIN | ACK, 1011, 5001, 0),
                 (spacing * concurrency + 0.001, "s", FIN | ACK, 5001, 1012, 0),
                 (spacing * concurrency + 0.002, "c", ACK, 1012, 5002, 0)]
        for dt, side, flags, seq, ack, n in steps:
            frame += 1
            src, dst, sp, dp = (cip, sip, cport, 80) if side == "c" else (sip, cip, 80, cport)
            yield Segment(frame, t0 + dt, src, dst, sp, dp, seq, ack, flags, 1000, n)


def test_table_size_follows_concurrency_not_capture_length():
    def peak(n_conns: int) -> int:
        checker = Checker({"CL010": {"msl": 1.0}})   # TIME-WAIT (2·MSL) of 2 s
        tracker = Tracker(checker, idle_timeout=30.0)
        segs = sorted(_segments(n_conns, concurrency=8, spacing=0.5), key=lambda s: s.ts)
        most = 0
        for seg in segs:
            tracker.feed(seg)
            most = max(most, len(tracker.table))
            tracker.pop_finished()
        done = list(tracker.finish(segs[-1].ts))
        assert len(done) == 0 or all(c.id > 0 for c in done)
        return most

    short, long = peak(500), peak(2000)
    assert short == long            # 4x the capture, the same peak
    assert short <= 8 + 10 / 0.5 + 4 + 2   # concurrency + the 10 s sweep period + 2·MSL
