"""The clean-connection shortcut (pcapcheck.fast.clean_connections: a connection whose rows fit the
common life cycle is summarised without the replay) gives the same reports as
replaying every connection: on every sample capture, on generated captures full of
retransmissions, resets, refusals and capture loss (tiny timers, shards), and on
crafted near misses, each of which must be replayed; and it takes most connections of
an ordinary capture."""

from __future__ import annotations

import argparse
import sys

import pytest
from conftest import ALL_CAPTURES, ROOT, SAMPLES, same_report

from pcapcheck.capture.reader import CaptureError
from pcapcheck.fast import clean_connections as clean
from pcapcheck.fast import lookahead
from pcapcheck.model import ACK, CWR, ECE, FIN, PSH, SYN
from pcapcheck.pipeline import analyze_file
from pcapcheck.run.shards import analyze_shard, merge_shards
from pcapcheck.tcp import tracker as tracker_module

sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))
from craft_captures import (
    CLIENT_IP6,
    SERVER_IP6,
    Capture,
    Conversation,
)
from generate import generate

#: What clean.check decided, one entry per connection it was asked about: True (clean).
decided: list[bool] = []
#: The retransmissions of each connection clean.check found clean (CleanConnection.retx).
resent: list[list] = []


@pytest.fixture(autouse=True)
def spy_check(monkeypatch):
    # clean.check itself is under test: the connections found clean ahead of the tracker
    # never reach it (tests/test_lookahead.py compares that path with this one)
    monkeypatch.setattr(lookahead, "ENABLED", False)
    decided.clear()
    resent.clear()
    original = clean.check

    def spy(p):
        done = original(p)
        decided.append(done is not None)
        if done is not None:
            resent.append(done.retx)
        return done

    monkeypatch.setattr(clean, "check", spy)


def _both(path, catalog, monkeypatch, checksums=False, **kw):
    """(shortcut on, shortcut off) analyses with every rule; the first's ``clean``: how
    many connections the shortcut summarised."""
    active = catalog.select(["ALL"], None if checksums else ["CP004"])
    monkeypatch.setattr(clean, "ENABLED", True)
    decided.clear()
    on = analyze_file(path, catalog, active, **kw)
    on.clean = sum(decided)
    monkeypatch.setattr(clean, "ENABLED", False)
    off = analyze_file(path, catalog, active, **kw)
    return on, off


@pytest.mark.parametrize(
    "path", ALL_CAPTURES, ids=[str(p.relative_to(SAMPLES)) for p in ALL_CAPTURES]
)
def test_clean_equals_replay_on_samples(path, catalog, monkeypatch):
    same_on_sample(_both, path, catalog, monkeypatch)


def same_on_sample(both, path, catalog, monkeypatch):
    """``both(path, catalog, monkeypatch, checksums)`` gives the same two reports, CP004
    (bad checksums) off and on; nothing to compare for a file that is not a capture."""
    for checksums in (False, True):
        try:
            on, off = both(path, catalog, monkeypatch, checksums)
        except CaptureError:
            return
        same_report(on, off)


def _generated(tmp_path, seed, connections=150, concurrency=12, **rates):
    path = tmp_path / f"gen{seed}.pcap"
    args = dict(refused=0.05, retrans=0.08, resets=0.05, loss=0.02)
    args.update(rates)
    n = generate(
        argparse.Namespace(
            out=str(path),
            connections=connections,
            concurrency=concurrency,
            exchanges=4,
            seed=seed,
            **args,
        )
    )
    return path, n


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_equals_replay_on_generated_captures(seed, tmp_path, catalog, monkeypatch):
    path, n = _generated(tmp_path, seed)
    on, off = _both(path, catalog, monkeypatch)
    assert on.tcp_packets == n and len(on.findings) > 10
    assert len(on.connections) * 0.3 < on.clean < len(on.connections) * 0.9
    same_report(on, off)
    # kept connections settled by sweeps every 3 ms, by timers that finalise them in
    # the middle of their rows (idle or closed), and at the end of the capture
    same_under_tiny_timers(_both, path, catalog, monkeypatch)


def same_under_tiny_timers(both, path, catalog, monkeypatch):
    """``both(path, catalog, monkeypatch, **timers)`` gives the same two reports with
    sweeps every 3 ms and timers that finalise connections in the middle of their
    segments (idle or closed), or only at the end of the capture."""
    monkeypatch.setattr(tracker_module, "SWEEP_EVERY", 0.003)
    for kw in (
        {"idle_timeout": 0.0004, "close_delay": 0.0002},
        {"idle_timeout": 0.05, "close_delay": 0.02},
        {"close_delay": 100.0},
    ):
        on, off = both(path, catalog, monkeypatch, **kw)
        same_report(on, off)


def test_clean_takes_most_connections_of_an_ordinary_capture(tmp_path, catalog, monkeypatch):
    path, _n = _generated(tmp_path, 7, refused=0, retrans=0, resets=0, loss=0)
    on, off = _both(path, catalog, monkeypatch)
    assert on.clean == len(on.connections) == 150 and not on.findings
    same_report(on, off)


def test_clean_equals_replay_in_shards(tmp_path, catalog, monkeypatch):
    path, _n = _generated(tmp_path, 4, connections=200, concurrency=16)
    active = catalog.select(["ALL"], ["CP004"])
    results = []
    for enabled in (True, False):
        monkeypatch.setattr(clean, "ENABLED", enabled)
        parts = [
            analyze_shard(
                path,
                catalog,
                active,
                shard=(k, 2),
                idle_timeout=0.05,
                close_delay=0.02,
                encode=True,
            )
            for k in range(2)
        ]
        results.append(merge_shards(parts, path, catalog, active))
    assert sum(decided) > 50
    same_report(results[0], results[1])
    monkeypatch.setattr(clean, "ENABLED", True)
    same_report(
        results[0], analyze_file(path, catalog, active, idle_timeout=0.05, close_delay=0.02)
    )


# ------------------------------------------------------------------ crafted connections


def _conv(cap, **kw):
    return Conversation(cap, **kw)


def _clean_client_close(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange(120, 3000)
    c.close("c")


def _clean_server_close(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange(80, 900)
    c.close("s")


def _clean_fin_piggyback(cap):
    """The server's FIN acknowledges the client's: three segments close."""
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.fin("c")
    c.fin("s")
    c.ack("c")


def _clean_data_after_fin(cap):
    """Half-close: the server still sends data in CLOSE-WAIT."""
    c = _conv(cap)
    c.handshake()
    c.data("c", 50)
    c.fin("c")
    c.data("s", 700)
    c.ack("c")
    c.data("s", 300)
    c.fin("s")
    c.ack("c")


def _clean_ipv6(cap):
    c = _conv(cap, client=CLIENT_IP6, server=SERVER_IP6, ipv6=True)
    c.handshake()
    c.exchange()
    c.close("c")


def _data_on_handshake_ack(cap):
    c = _conv(cap)
    c.syn()
    c.synack()
    c.data("c", 100)
    c.data("s", 200)
    c.ack("c")
    c.close("s")


# Retransmissions (clean.check's module docstring): summarised, their SQ002 events and
# Zeek's T/t made without the replay. Each shape with the events it must give, as
# (frame, seq, payload_len, first_frame, sender), and Zeek's history.


def _retransmission(cap):
    c = _conv(cap)
    c.handshake()  # 1-3
    c.data("c", 100)  # 4
    c.data("c", 100, seq=c.isn["c"] + 1)  # 5: all of 4 again
    c.ack("s")
    c.close("c")


def _retransmitted_by_both_sides(cap):
    c = _conv(cap)
    c.handshake()  # 1-3
    c.data("c", 100)  # 4
    c.ack("s")  # 5: acknowledges 4
    c.data("c", 100, seq=c.isn["c"] + 1)  # 6: 4 again, acknowledged (spurious)
    c.data("s", 1000)  # 7: bytes 1-1000
    c.data("s", 1000)  # 8: bytes 1001-2000
    c.ack("c", ack=c.isn["s"] + 1001)  # 9: acknowledges 7
    c.data("s", 500, seq=c.isn["s"] + 1201)  # 10: part of 8
    c.data("s", 400, seq=c.isn["s"] + 1)  # 11: part of 7, acknowledged
    c.ack("c")
    c.close("s")


def _handshake_data_retransmitted(cap):
    c = _conv(cap)
    c.syn()
    c.synack()
    c.data("c", 100)  # 3: data on the handshake's ACK
    c.data("c", 100, seq=c.isn["c"] + 1)  # 4
    c.data("s", 200)
    c.ack("c")
    c.close("s")


def _retransmitted_times(cap, times):
    c = _conv(cap)
    c.handshake()  # 1-3
    c.data("c", 100)  # 4
    c.data("s", 1000)  # 5
    for _ in range(times):  # 6...
        c.data("s", 1000, seq=c.isn["s"] + 1)
    c.ack("c")
    c.close("c")


def _nine_retransmissions(cap):
    """Zeek writes its t once for 1 to 9 of them (again at the 10th)."""
    _retransmitted_times(cap, 9)


RESENT = {
    _retransmission: ([(5, 1, 100, 4, "client")], "ShADTaFf"),
    _retransmitted_by_both_sides: (
        [(6, 1, 100, None, "client"), (10, 1201, 500, 8, "server"), (11, 1, 400, None, "server")],
        "ShADaTdtfF",
    ),
    _handshake_data_retransmitted: ([(4, 1, 100, 3, "client")], "ShDTdAfFa"),
    _nine_retransmissions: ([(6 + i, 1, 1000, 5, "server") for i in range(9)], "ShADdtFaf"),
}

CLEAN = [
    _clean_client_close,
    _clean_server_close,
    _clean_fin_piggyback,
    _clean_data_after_fin,
    _clean_ipv6,
    _data_on_handshake_ack,
    *RESENT,
]


def _random_retransmissions(cap, seed, connections=40):
    """``connections`` connections, one after the other, each a random mix of data from
    both sides, ACKs and segments sent again: whole or partial, one byte or more, before
    or after their ACK, with new data after them, after a FIN; most close."""
    import random

    rng = random.Random(seed)
    for n in range(connections):
        c = _conv(cap, cport=20000 + n)
        c.handshake(dt=0.001)
        acked = {"c": c.rcv["c"], "s": c.rcv["s"]}  # the latest ACK of each side
        fin = None
        for _ in range(rng.randint(1, 14)):
            side = rng.choice("cs")
            peer = "s" if side == "c" else "c"
            sent = c.rel(side, c.nxt[side]) - 1  # data bytes sent so far
            op = rng.random()
            if op < 0.35:
                c.data(side, rng.choice((1, 2, 40, 700, 1448, 1448)))
            elif op < 0.55:
                if acked[peer] != c.rcv[peer] or rng.random() < 0.1:
                    c.ack(peer)
                    acked[peer] = c.rcv[peer]
            elif op < 0.6 and fin is None:
                fin = side
                c.fin(side)
                c.ack(peer)
            elif sent > 0:
                start = rng.choice((0, 0, rng.randint(0, sent - 1)))
                length = rng.choice(
                    (
                        sent - start,
                        sent - start,
                        2,
                        1,
                        rng.randint(1, sent - start),
                        sent - start + rng.randint(1, 50),
                    )
                )
                c.data(side, length, seq=c.isn[side] + 1 + start)
        if rng.random() < 0.85:
            if fin is None:
                c.close(rng.choice("cs"))
            else:
                other = "s" if fin == "c" else "c"
                c.fin(other)
                c.ack(fin)


def _ack_stored_twice_around_a_retransmission(cap):
    """A pure ACK, the sender's retransmission (the same SEG.ACK), then the ACK stored
    a second time (CP008): a pure ACK after a retransmission must acknowledge more."""
    c = _conv(cap)
    c.handshake()
    c.data("s", 500)
    c.data("c", 100)
    c.ack("c")
    _t, ack = cap.records[-1]
    c.data("c", 100, seq=c.isn["c"] + 1)
    cap.add(cap.t + 1, ack, c.ip["c"])
    c.ack("s")
    c.close("c")


def _ten_retransmissions(cap):
    """Zeek's t again at the 10th: replayed."""
    _retransmitted_times(cap, 10)


def _retransmitted_after_fin(cap):
    c = _conv(cap)
    c.handshake()
    c.data("s", 300)
    c.ack("c")
    c.fin("c")
    c.data("s", 300, seq=c.isn["s"] + 1)  # in CLOSE-WAIT: replayed
    c.ack("c")
    c.fin("s")
    c.ack("c")


def _one_old_byte(cap):
    """One byte of old data, not at SND.NXT - 1 (not a keep-alive): replayed."""
    c = _conv(cap)
    c.handshake()
    c.data("c", 100)
    c.data("c", 1, seq=c.isn["c"] + 1)
    c.ack("s")
    c.close("c")


def _old_and_new_data(cap):
    c = _conv(cap)
    c.handshake()
    c.data("c", 100)
    c.data("c", 200, seq=c.isn["c"] + 1)  # 100 bytes again and 100 new
    c.ack("s")
    c.close("c")


def _stored_twice(cap):
    c = _conv(cap)
    c.handshake()
    c.data("c", 100)
    cap.duplicate_last()
    c.ack("s")
    c.close("c")


def _ack_stored_twice(cap):
    c = _conv(cap)
    c.handshake()
    c.data("c", 100)
    c.ack("s")
    cap.duplicate_last()
    c.close("c")


def _duplicate_ack(cap):
    """The same acknowledgment twice (the second a new packet: not CP008, yet replayed)."""
    c = _conv(cap)
    c.handshake()
    c.data("c", 100)
    c.ack("s")
    c.ack("s")
    c.close("c")


def _keep_alive(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.ack("c", seq=c.nxt["c"] - 1)
    c.ack("s")
    c.close("c")


def _zero_window(cap):
    c = _conv(cap)
    c.handshake()
    c.data("c", 100)
    c.ack("s", window=0)
    c.data("s", 50)  # its window open again
    c.ack("c")
    c.close("c")


def _fin_with_data(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.fin("c", n=20)
    c.ack("s")
    c.fin("s")
    c.ack("c")


def _simultaneous_close(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    fin_s = c.nxt["s"]
    c.fin("c")
    c.fin("s", ack=c.nxt["c"] - 1)
    c.ack("c")
    c.ack("s", ack=c.nxt["c"])
    assert fin_s


def _ack_of_fin_seq(cap):
    """The reply to the FIN acknowledges its sequence number, not the FIN (CL002)."""
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.fin("c")
    c.ack("s", ack=c.nxt["c"] - 1)
    c.fin("s")
    c.ack("c")


def _server_data_in_syn_received(cap):
    c = _conv(cap)
    c.syn()
    c.synack()
    c.data("s", 100)
    c.ack("c")
    c.close("c")


def _ack_beyond_sent(cap):
    c = _conv(cap)
    c.handshake()
    c.data("c", 100)
    c.ack("s", ack=c.nxt["c"] + 500)
    c.data("c", 500)
    c.ack("s")
    c.close("c")


def _client_acks_beyond_sent(cap):
    c = _conv(cap)
    c.handshake()
    c.data("s", 100)
    c.ack("c", ack=c.nxt["s"] + 300)
    c.data("s", 300)
    c.data("c", 20)
    c.ack("s")
    c.close("s")


def _after_close(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.close("c")
    c.ack("c")  # the last ACK again


def _fin_retransmitted(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.close("c")
    c.fin("s", seq=c.nxt["s"] - 1, dt=0.2)
    c.ack("c")


def _wraps(cap):
    c = _conv(cap, cisn=(1 << 32) - 300)
    c.handshake()
    c.exchange(1000, 200)
    c.close("c")


def _ecn_syn(cap):
    c = _conv(cap)
    c.send("c", SYN | ECE | CWR, seq=c.isn["c"])
    c.synack()
    c.ack("c")
    c.exchange()
    c.close("c")


def _open_at_end(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()


def _reset_at_end(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.rst("c")


def _ack_goes_back(cap):
    c = _conv(cap)
    c.handshake()
    c.data("s", 100)
    c.data("s", 100)
    c.ack("c")
    c.ack("c", ack=c.nxt["s"] - 100)
    c.close("c")


def _first_reply_to_fin_does_not_ack_it(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.fin("c")
    c.data("s", 100, ack=c.nxt["c"] - 1, flags=PSH | ACK)
    c.ack("c")
    c.fin("s")
    c.ack("c")


def _port_reused_at_once(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.close("c")
    d = _conv(cap, cisn=0x11111111)
    d.handshake(dt=0.5)
    d.exchange()
    d.close("c")


def _port_reused_later(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.close("c")
    d = _conv(cap, cisn=0x22222222)
    d.handshake(dt=30.0)
    d.exchange()
    d.close("c")


def _syn_again(cap):
    c = _conv(cap)
    c.syn()
    c.syn(dt=1.0)
    c.synack()
    c.ack("c")
    c.exchange()
    c.close("c")


def _pause_past_close_delay(cap):
    c = _conv(cap)
    c.handshake()
    c.data("c", 100)
    c.ack("s", dt=8.0)
    c.close("c")


def _only_flags_fin(cap):
    c = _conv(cap)
    c.handshake()
    c.exchange()
    c.send("c", FIN, n=0)  # FIN without ACK
    c.ack("s")
    c.fin("s")
    c.ack("c")


REPLAYED = [
    _ten_retransmissions,
    _retransmitted_after_fin,
    _one_old_byte,
    _old_and_new_data,
    _ack_stored_twice_around_a_retransmission,
    _stored_twice,
    _ack_stored_twice,
    _duplicate_ack,
    _keep_alive,
    _zero_window,
    _fin_with_data,
    _simultaneous_close,
    _ack_of_fin_seq,
    _server_data_in_syn_received,
    _ack_beyond_sent,
    _client_acks_beyond_sent,
    _after_close,
    _fin_retransmitted,
    _wraps,
    _ecn_syn,
    _open_at_end,
    _reset_at_end,
    _ack_goes_back,
    _first_reply_to_fin_does_not_ack_it,
    _syn_again,
    _pause_past_close_delay,
    _only_flags_fin,
]


def _crafted(tmp_path, build, cut_last=None):
    cap = Capture()
    build(cap)
    path = tmp_path / f"{build.__name__}.pcap"
    cap.write(path, cut_last=cut_last)
    return path


@pytest.mark.parametrize("build", CLEAN, ids=[b.__name__ for b in CLEAN])
def test_clean_connections_are_summarised(build, tmp_path, catalog, monkeypatch):
    on, off = _both(_crafted(tmp_path, build), catalog, monkeypatch)
    assert decided == [True]
    events, history = RESENT.get(build, ([], None))
    assert [
        (
            e.rule,
            e.frame,
            e.data["seq"],
            e.data["payload_len"],
            e.data["first_frame"],
            e.data["sender"],
            e.data["client_state"],
            e.data["server_state"],
        )
        for e in on.events
    ] == [("SQ002", *e, "ESTABLISHED", "ESTABLISHED") for e in events]
    same_report(on, off)
    if history is not None:
        assert on.connections[0]["history"] == history
    summary = on.connections[0]
    assert (summary["handshake"], summary["close"], summary["conn_state"]) == (
        "complete",
        "graceful",
        "SF",
    )


@pytest.mark.parametrize("seed", range(6))
def test_random_retransmissions_equal_the_replay(seed, tmp_path, catalog, monkeypatch):
    """Connections with segments sent again in every shape: clean.check summarises some
    (never all: some shapes must be replayed) and the reports are the replay's."""
    cap = Capture()
    _random_retransmissions(cap, seed)
    path = tmp_path / f"resent{seed}.pcap"
    cap.write(path)
    on, off = _both(path, catalog, monkeypatch)
    assert 0 < on.clean < len(on.connections) == 40
    assert sum(bool(r) for r in resent) >= 2  # summarised with retransmissions
    same_report(on, off)
    same_under_tiny_timers(_both, path, catalog, monkeypatch)


@pytest.mark.parametrize("build", REPLAYED, ids=[b.__name__ for b in REPLAYED])
def test_near_misses_are_replayed(build, tmp_path, catalog, monkeypatch):
    on, off = _both(_crafted(tmp_path, build), catalog, monkeypatch)
    assert not any(decided)  # (a second SYN replays the rows before any check)
    same_report(on, off)


def test_port_reuse_after_a_clean_connection(tmp_path, catalog, monkeypatch):
    """A new SYN within the close delay replays the kept connection (the tracker needs
    its state); 30 s later the first was settled clean. Either way the second is
    replayed (CL010: its 4-tuple was closed less than 2·MSL before)."""
    on, off = _both(_crafted(tmp_path, _port_reused_at_once), catalog, monkeypatch)
    assert [f.rule for f in on.findings] == ["CL010"] and decided == []
    same_report(on, off)
    on, off = _both(_crafted(tmp_path, _port_reused_later), catalog, monkeypatch)
    assert [f.rule for f in on.findings] == ["CL010"] and decided == [True]
    same_report(on, off)


def test_capture_cut_short_replays_what_is_kept(tmp_path, catalog, monkeypatch):
    path = _crafted(tmp_path, _clean_client_close, cut_last=10)
    on, off = _both(path, catalog, monkeypatch)
    assert on.truncated and not decided
    same_report(on, off)


def test_marks_replay_every_connection(catalog, monkeypatch):
    path = SAMPLES / "loopback" / "bulk_transfer.pcap"
    active = catalog.select(["ALL"], ["CP004"])
    analyze_file(path, catalog, active, marks=True)
    assert not decided
    analyze_file(path, catalog, active)
    assert decided == [True]


# ----------------------------------------------------------- the vectorised experiment

# bench/floor.py writes clean.check's conditions as numpy operations over all the
# connections of a capture at once, to measure how fast a vectorised clean path could
# be (bench/README.md). Its verdicts and fields must be clean.check's, or its figures
# would be those of other work.
import floor  # noqa: E402  (bench/ is on sys.path above)


def _floor_verdicts(path):
    cols = floor.read(path)
    rows, starts, sizes, fc = floor.group(cols)
    out = floor.classify(cols, rows, starts, sizes, fc)
    floor.verify(cols, rows, starts, sizes, fc, out)  # asserts clean.check's answers
    return out["clean"].tolist()


@pytest.mark.parametrize("build", CLEAN + REPLAYED, ids=[b.__name__ for b in CLEAN + REPLAYED])
def test_vectorised_check_agrees_on_crafted_shapes(build, tmp_path):
    verdicts = _floor_verdicts(_crafted(tmp_path, build))
    if build is _clean_ipv6:
        assert verdicts == []  # the experiment reads IPv4 only
    elif build in CLEAN:
        assert verdicts == [True]
    elif build in (_syn_again, _pause_past_close_delay):
        assert verdicts == []  # not candidates: replayed in any case
    else:
        assert verdicts == [False]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_check_agrees_on_generated_captures(seed, tmp_path):
    path, _n = _generated(tmp_path, seed, connections=400, concurrency=32)
    verdicts = _floor_verdicts(path)
    assert 100 < sum(verdicts) < len(verdicts)  # both kinds were compared


def test_clean_line_is_the_encoded_summary(tmp_path, catalog, monkeypatch):
    """The template an encoding shard fills for a clean connection (``analyze.clean_line``)
    gives the bytes the JSON report writes for its summary, for both closers, IPv4 and
    IPv6, and every value in range; None (the summary is encoded) for a time or a
    duration Python writes with an exponent, not finite, or out of a date's range."""
    import copy

    from pcapcheck import pipeline as analyze
    from pcapcheck.report.json_report import dumps_bytes

    found = []
    original = clean.check
    monkeypatch.setattr(clean, "check", lambda p: found.append(original(p)) or found[-1])
    active = catalog.select(["ALL"], None)
    for build in CLEAN:
        analyze_file(_crafted(tmp_path, build), catalog, active)
    path, _n = _generated(tmp_path, 3, refused=0, retrans=0, resets=0, loss=0)
    analyze_file(path, catalog, catalog.select(["ALL"], ["CP004"]))  # no checksums made
    conns = [c for c in found if c is not None]
    assert len(conns) > 100 and len(analyze._clean_templates()) == 2

    def encoded(c):
        return dumps_bytes({**analyze.clean_summary(c), "findings": 0})

    variants = []
    for c in conns[:40]:
        for closer in ("client", "server"):
            for client in (c.client, ("2001:db8::1", 50000)):
                for duration in (c.duration, 0.0, 0.000125, 12345.678901):
                    v = copy.copy(c)
                    v.closer, v.client, v.duration = closer, client, duration
                    variants.append(v)
    for c in conns + variants:
        assert b'{"id":%d' % c.id + analyze.clean_line(c) == encoded(c)
    for field, value in (
        ("duration", 1e-05),
        ("duration", float("inf")),
        ("first_ts", 1e-05),
        ("first_ts", float("nan")),
        ("first_ts", 1e17),
        ("first_ts", 1e15),
    ):
        v = copy.copy(conns[0])
        setattr(v, field, value)
        assert analyze.clean_line(v) is None, (field, value)


def _copy_later(cap, gap_us):
    """The client's data segment stored a second time ``gap_us`` microseconds later."""
    c = _conv(cap)
    c.handshake()
    c.data("c", 100)
    t, data = cap.records[-1]
    cap.add(t + gap_us, data, c.ip["c"])
    c.ack("s")
    c.close("c")


@pytest.mark.parametrize("limit", [0.5, 0.1])
def test_cp008_max_interval_reaches_the_engine_and_the_fast_paths(
    limit, tmp_path, catalog, monkeypatch
):
    """CP008's max_interval (rules/CP008.yaml) is the engine's limit, and the fast paths
    agree with the engine under it: a copy 0.3 s after the packet is one packet stored
    twice with the default 0.5 s, a retransmission (SQ002) with 0.1 s; the shortcuts on
    or off (fast=False: the reference engine alone), the same report."""
    cap = Capture()
    _copy_later(cap, 300_000)
    path = tmp_path / "copy.pcap"
    cap.write(path)
    active = catalog.select(["ALL"], ["CP004"])
    params = {"CP008": {"max_interval": limit}}
    monkeypatch.setattr(lookahead, "ENABLED", True)
    on = analyze_file(path, catalog, active, params=params)
    off = analyze_file(path, catalog, active, params=params, fast=False)
    same_report(on, off)
    rules = {e.rule for e in off.events if e.frame == 5}
    assert rules == ({"CP008"} if limit == 0.5 else {"SQ002"})


def test_duplicate_key_fields_name_the_key():
    """DUPLICATE_KEY_FIELDS, the declaration, names duplicate_key_of's parameters in the
    order of its tuple, and the Segment attributes (and a clean row's fields) that
    duplicate_key reads."""
    import inspect

    from pcapcheck.model import Segment, TcpOptions
    from pcapcheck.tcp.detectors import DUPLICATE_KEY_FIELDS, duplicate_key, duplicate_key_of

    assert tuple(inspect.signature(duplicate_key_of).parameters) == DUPLICATE_KEY_FIELDS
    values = dict(zip(DUPLICATE_KEY_FIELDS, (7, 1001, 2002, 0x18, 100, 512, 33)))
    assert duplicate_key_of(**values) == tuple(values.values())
    options = TcpOptions(None, None, False, (), values["ts_val"], None)
    seg = Segment(
        9, 1.0, "10.0.0.1", "10.0.0.2", 1, 2, values["seq"], values["ack"], values["flags"],
        values["window"], values["payload_len"], options, values["ip_id"], 4,
    )  # fmt: skip
    assert duplicate_key(seg) == tuple(values.values())
    row = [None] * (max(clean.ROW_FIELDS.values()) + 1)
    for name, at in clean.ROW_FIELDS.items():
        row[at] = values.get(name)
    assert clean.row_duplicate_key(tuple(row)) == tuple(values.values())
    assert duplicate_key_of(**{**values, "ip_id": 0, "ts_val": None}) is None
