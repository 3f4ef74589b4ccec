"""Bounded memory: connections are released once closed and past TIME-WAIT, or idle past
the timeout, so the tracker's table follows the number of concurrent connections, not the
length of the capture; an idle connection that resumes is reported as a new midstream one."""

from __future__ import annotations

import json
import sys

from conftest import ROOT

from pcapcheck.model import ACK, FIN, PSH, SYN, Segment
from pcapcheck.pipeline import analyze_file
from pcapcheck.tcp.detectors import Checker
from pcapcheck.tcp.tracker import Tracker

sys.path.insert(0, str(ROOT / "scripts"))
from craft_captures import Capture, Conversation


def _idle_then_resumed(path, gap: float) -> None:
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.exchange()
    c.data("c", 100, dt=gap)  # resumes after `gap` seconds of silence
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
    assert (second["first_frame"], second["handshake"], second["roles_inferred"]) == (
        7,
        "none",
        True,
    )
    assert (second["client"], second["server"]) == (first["client"], first["server"])
    assert (second["close"], second["client_state"], second["server_state"]) == (
        "graceful",
        "TIME-WAIT",
        "CLOSED",
    )
    assert [(f.rule, f.connection, f.frame) for f in res.findings] == [
        ("CL008", 1, 6),
        ("CP001", 2, 7),
    ]
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
        steps = [
            (0, "c", SYN, 1000, 0, 0),
            (0.001, "s", SYN | ACK, 5000, 1001, 0),
            (0.002, "c", ACK, 1001, 5001, 0),
            (0.003, "c", PSH | ACK, 1001, 5001, 10),
            (0.004, "s", ACK, 5001, 1011, 0),
            (spacing * concurrency, "c", FIN | ACK, 1011, 5001, 0),
            (spacing * concurrency + 0.001, "s", FIN | ACK, 5001, 1012, 0),
            (spacing * concurrency + 0.002, "c", ACK, 1012, 5002, 0),
        ]
        for dt, side, flags, seq, ack, n in steps:
            frame += 1
            src, dst, sp, dp = (cip, sip, cport, 80) if side == "c" else (sip, cip, 80, cport)
            yield Segment(frame, t0 + dt, src, dst, sp, dp, seq, ack, flags, 1000, n)


def test_table_size_follows_concurrency_not_capture_length():
    def peak(n_conns: int) -> int:
        checker = Checker({"CL010": {"msl": 1.0}})  # TIME-WAIT (2·MSL) of 2 s
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
    assert short == long  # 4x the capture, the same peak
    assert short <= 8 + 10 / 0.5 + 4 + 2  # concurrency + the 10 s sweep period + 2·MSL


def test_closed_connections_are_released_after_the_close_delay_not_2msl():
    """With the default MSL (TIME-WAIT of 240 s) the table still follows the concurrency:
    a closed connection keeps its state for the close delay (5 s), then only its 4-tuple
    is remembered for 2·MSL (CL010)."""

    def peak(n_conns: int) -> tuple[int, int]:
        tracker = Tracker(Checker(), idle_timeout=300.0, close_delay=5.0)
        segs = sorted(_segments(n_conns, concurrency=8, spacing=0.5), key=lambda s: s.ts)
        most = 0
        for seg in segs:
            tracker.feed(seg)
            most = max(most, len(tracker.table))
            tracker.pop_finished()
        return most, len(tracker.recently_closed)

    (short, remembered_short), (long, remembered_long) = peak(500), peak(2000)
    assert short == long <= 8 + 5 / 0.5 + 2  # concurrency + the close delay
    # the 4-tuples of the last 240 s are remembered (not the connections)
    assert remembered_short == remembered_long and 460 <= remembered_short <= 500


def _late_fin(path, delay: float) -> None:
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.exchange()
    c.close("c")  # FIN, ACK, FIN, ACK: the client in TIME-WAIT
    c.send("s", FIN | ACK, seq=c.nxt["s"] - 1, dt=delay)  # the server's FIN again
    c.ack("c", dt=0.0001)  # and the client's ACK from TIME-WAIT
    cap.write(path)


def test_fin_retransmitted_within_the_close_delay_stays_in_its_connection(tmp_path, catalog):
    path = tmp_path / "late_fin.pcap"
    _late_fin(path, delay=2.0)
    res = analyze_file(path, catalog, catalog.select(None, None))
    assert len(res.connections) == 1
    assert [(f.rule, f.connection) for f in res.findings] == [("CL006", 1)]
    _late_fin(path, delay=2.0)
    res = analyze_file(path, catalog, catalog.select(None, None), close_delay=1.0)
    # after the close delay the state is gone: a new connection, the tail of the first
    # (CP001 names it); its missing close is not held against the endpoints
    assert len(res.connections) == 2 and res.connections[1]["handshake"] == "none"
    assert [(f.rule, f.connection, f.frame) for f in res.findings] == [("CP001", 2, 11)]
    assert res.findings[0].data["previous_connection"] == 1


def test_close_delay_and_idle_timeout_options(tmp_path):
    """The CLI passes --close-delay and --idle-timeout to the tracker."""
    from typer.testing import CliRunner

    from pcapcheck.cli import app

    def report(path, *opts):
        res = CliRunner().invoke(app, ["analyze", str(path), "-f", "json", "-q", *opts])
        assert res.exit_code in (0, 1), res.output
        doc = json.loads(res.stdout)["files"][0]
        return len(doc["connections"]), [(f["rule"], f["connection"]) for f in doc["findings"]]

    late = tmp_path / "late_fin.pcap"
    _late_fin(late, delay=2.0)
    assert report(late) == (1, [("CL006", 1)])
    assert report(late, "--close-delay", "1") == (2, [("CP001", 2)])
    idle = tmp_path / "idle.pcap"
    _idle_then_resumed(idle, gap=200.0)
    assert report(idle) == (1, [])
    assert report(idle, "--idle-timeout", "100") == (2, [("CL008", 1), ("CP001", 2)])


def test_analysed_connections_leave_no_reference_cycle(tmp_path, catalog):
    """Once summarised, a connection is freed by its reference count: its Zeek state's
    two endpoints (each the other's ``peer``) are unlinked, so nothing waits for the
    garbage collector's full pass (which the CLI makes rare)."""
    import gc

    path = tmp_path / "conns.pcap"
    cap = Capture()
    for i in range(5):
        c = Conversation(cap, cport=40000 + i)
        c.handshake()
        c.exchange()
        c.close("c")
    cap.write(path)
    gc.collect()
    gc.disable()
    try:
        res = analyze_file(path, catalog, catalog.select(None, None))
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert len(res.connections) == 5
    assert "_Endpoint" not in left and "ZeekState" not in left and "Connection" not in left


# -- one long connection: the engine's structures stay bounded (issue #23, item 4) ------


def _one_way(n_data: int, resend: tuple[int, ...] = ()):
    """A handshake, then ``n_data`` segments of 100 bytes from the client that the
    server never acknowledges (a capture of one direction after the handshake), then the
    client's data segments numbered ``resend`` (0-based) sent again."""
    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    frame = 0

    def seg(side, flags, seq, ack, n=0):
        nonlocal frame
        frame += 1
        (src, sp), (dst, dp) = (c, s) if side == "c" else (s, c)
        return Segment(frame, 1.0 + frame * 1e-4, src, dst, sp, dp, seq, ack, flags, 1000, n)

    yield seg("c", SYN, 1000, 0)
    yield seg("s", SYN | ACK, 5000, 1001)
    yield seg("c", ACK, 1001, 5001)
    for i in range(n_data):
        yield seg("c", PSH | ACK, 1001 + 100 * i, 5001, 100)
    for i in resend:
        yield seg("c", PSH | ACK, 1001 + 100 * i, 5001, 100)


def test_unacknowledged_data_of_one_long_connection_is_bounded():
    """A direction whose data is never acknowledged: the engine's list of its
    unacknowledged segments (SQ002's first frame, SQ003) holds at most UNACKED_LIMIT
    entries however long the connection (it held one per segment: 20,000 here); the
    first UNACKED_HEAD and the latest segments keep their frames, those between are
    merged into one range whose frames are forgotten (and counted), so a retransmission
    of their data names no first frame."""
    n = 20_000
    resend = (0, 1, 9_000, n - 1)
    tracker = Tracker(Checker())
    segs = list(_one_way(n, resend))
    most = 0
    for seg in segs:
        tracker.feed(seg)
        (conn,) = tracker.table.values()
        most = max(most, len(conn.c.unacked))
    assert most <= 4096, most
    from pcapcheck.fast.clean_connections import MAX_CLEAN_ROWS
    from pcapcheck.tcp.connection import UNACKED_HEAD, UNACKED_LIMIT

    assert most == UNACKED_LIMIT
    # a connection the fast paths summarise (at most MAX_CLEAN_ROWS segments) is never
    # merged: their first frames are the replay's
    assert MAX_CLEAN_ROWS <= UNACKED_LIMIT
    flow = conn.c
    # the head kept whole, then one merged range, then the latest segments
    assert [e[:3] for e in flow.unacked[:2]] == [(1, 101, 4), (101, 201, 5)]
    merged = flow.unacked[UNACKED_HEAD]
    assert merged[0] == 1 + 100 * UNACKED_HEAD and merged[2] == 4 + UNACKED_HEAD
    assert flow.unacked[-1][:3] == (1 + 100 * (n - 1), 1 + 100 * n, 3 + n)
    assert flow.forgotten == merged[3] == merged[1] // 100 - UNACKED_HEAD
    assert flow.forgotten + len(flow.unacked) - 1 == n
    (done,) = tracker.finish(segs[-1].ts)
    sq002 = [
        (e.frame, e.data["seq"], e.data["first_frame"]) for e in done.events if e.rule == "SQ002"
    ]
    assert sq002 == [
        (3 + n + 1, 1, 4),  # the head: its frame kept
        (3 + n + 2, 101, 5),
        (3 + n + 3, 1 + 100 * 9_000, None),  # merged: its frame forgotten
        (3 + n + 4, 1 + 100 * (n - 1), 3 + n),  # the latest: kept
    ]


def _resent(n: int):
    """A handshake, one data segment from the client sent ``n`` + 1 times (an SQ002
    each), acknowledged, then a close."""
    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)
    frame = 0

    def seg(side, flags, seq, ack, n=0):
        nonlocal frame
        frame += 1
        (src, sp), (dst, dp) = (c, s) if side == "c" else (s, c)
        return Segment(frame, 1.0 + frame * 1e-4, src, dst, sp, dp, seq, ack, flags, 1000, n)

    yield seg("c", SYN, 1000, 0)
    yield seg("s", SYN | ACK, 5000, 1001)
    yield seg("c", ACK, 1001, 5001)
    for _ in range(n + 1):
        yield seg("c", PSH | ACK, 1001, 5001, 100)
    yield seg("s", ACK, 5001, 1101)
    yield seg("c", FIN | ACK, 1101, 5001)
    yield seg("s", FIN | ACK, 5001, 1102)
    yield seg("c", ACK, 1102, 5002)


def _replay(segs, sink=None):
    checker = Checker()
    if sink is not None:
        checker.sink = sink
    tracker = Tracker(checker)
    most = 0
    for seg in segs:
        tracker.feed(seg)
        for conn in tracker.table.values():
            most = max(most, len(conn.events))
    return most, list(tracker.finish(segs[-1].ts))


def test_findings_of_one_long_connection_stream_out_as_decided():
    """A connection with a finding on every segment (a segment resent 5,000 times):
    with a sink (the pipeline's spools), the events no later segment can withdraw
    leave the connection as they are decided, so it holds a bounded number of them (it
    held all 5,000 until its end); the sink gets the same events, in the same order,
    as the connection's list gets without one."""
    n = 5_000
    segs = list(_resent(n))
    most_kept, (whole,) = _replay(segs)
    assert most_kept == n and len(whole.events) == n
    out: list = []
    most, (done,) = _replay(segs, lambda ev: out.append(ev) or ev.rule == "SQ002")
    assert most <= 512, most
    assert len(out) == n - len(done.events)
    assert done.released == len(out)  # the sink said each was a finding
    key = [(e.rule, e.frame, e.data) for e in whole.events]
    assert [(e.rule, e.frame, e.data) for e in out + done.events] == key
    assert [e.data["first_frame"] for e in out[:2]] == [4, 4]


def test_findings_streamed_give_the_same_report(tmp_path, catalog):
    """Through the pipeline: the resent segment's 3,000 SQ002 findings, counted in
    the connection's summary, as many events."""
    sys.path.insert(0, str(ROOT / "bench"))
    import hostile

    path = tmp_path / "retx.pcap"
    hostile.write_retransmissions(path, 3_000)
    for fast in (True, False):
        res = analyze_file(path, catalog, catalog.select(None, None), fast=fast)
        (conn,) = res.connections
        sq002 = [f for f in res.findings if f.rule == "SQ002"]
        assert len(sq002) == 3_000 and conn["findings"] == len(res.findings)
        assert [f.frame for f in sq002] == list(range(5, 3_005))
        assert {f.data["first_frame"] for f in sq002} == {4}


def test_spool_rewrites_each_item_a_logarithmic_number_of_times(monkeypatch):
    """The spools take every event and finding (2 GB of zero-length records: 134 million
    CP005 of each): spilling N items writes each one O(log N) times (a tiered merge), not
    the whole spool again every MAX_RUNS runs (that was O(N²): 16 writes an item here,
    about 500 for 134 million), and ties keep the order of appending."""
    import random

    from pcapcheck import spool as spool_module

    written = []
    write_run = spool_module.Spool._write_run

    def counting(self, items, count):
        written.append(count)
        return write_run(self, items, count)

    monkeypatch.setattr(spool_module.Spool, "_write_run", counting)
    rng = random.Random(5)
    items = [(i // 7 + rng.randrange(3), i) for i in range(20_000)]
    sp = spool_module.Spool(items, key=lambda x: x[0], limit=10)
    assert sum(written) <= 4 * len(items), sum(written) / len(items)
    assert len(sp._runs) < spool_module.MAX_RUNS
    assert list(sp) == sorted(items, key=lambda x: x[0])
    sp.close()


def test_spooled_events_and_findings_come_back_equal_through_their_codec():
    """Events and findings go to run files as tuples of their fields (FieldsCodec): read
    back, merged and pickled to another process, they are the items appended."""
    import pickle

    from pcapcheck.model import Event, Finding
    from pcapcheck.pipeline import event_order
    from pcapcheck.spool import FieldsCodec, Spool

    events = [Event("CP005", None, 30 - i % 7, {"reason": f"r{i}"}) for i in range(40)]
    findings = [
        Finding("SQ002", "retransmission", "info", 1, i // 3, f"m{i}", {}) for i in range(40)
    ]
    for items, cls in ((events, Event), (findings, Finding)):
        plain = Spool(items, key=event_order, limit=3)
        packed = Spool(items, key=event_order, limit=3, codec=FieldsCodec(cls))
        assert packed.spilled and list(packed) == list(plain) == sorted(items, key=event_order)
        copy = pickle.loads(pickle.dumps(packed))
        assert list(copy) == list(plain) and copy.codec.cls is cls
        for sp in (plain, packed, copy):
            sp.close()
