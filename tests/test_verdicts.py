"""Verdicts that survive the capture (issue #24): each case is a crafted capture
(scripts/craft_captures.py) that the engine got wrong before, checked by rule,
connection and frame, with the default path (fast machinery) and the reference engine
(``fast=False``) alike.

* CP008 (a packet stored twice) needs the copy within ``max_interval`` (0.5 ms) of the
  original and nothing from the peer between them; an IPv4 ID of 0 is no evidence.
* SQ003 (data never acknowledged) when the sender resends it with a growing interval,
  even if the peer sends nothing more; not for data sent once at the very end.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
from conftest import ROOT, SAMPLES

from pcapcheck.pipeline import analyze_file
from pcapcheck.tcp.detectors import DEFAULT_PARAMS


def run(catalog, name: str, fast: bool = True, params=None):
    return analyze_file(
        SAMPLES / "crafted" / name, catalog, catalog.select(None, None), params=params, fast=fast
    )


def found(result) -> list[tuple]:
    return sorted((f.rule, f.connection, f.frame) for f in result.findings)


def test_the_engine_default_is_the_rule_file_default(catalog):
    assert DEFAULT_PARAMS["CP008"] == catalog.params("CP008") == {"max_interval": 0.0005}


@pytest.mark.parametrize("fast", [True, False])
def test_a_resend_after_a_retransmission_timeout_is_sq002_even_byte_for_byte(catalog, fast):
    # frame 5 repeats frame 4's bytes (IP ID 0, same TSval) 200 ms later: before the
    # fix, CP008 (within the old 0.5 s); now the resend it is.
    result = run(catalog, "clean_rto_resend_ipid0.pcap", fast)
    assert found(result) == [("SQ002", 1, 5)]
    (f,) = result.findings
    assert (f.data["seq"], f.data["payload_len"], f.data["first_frame"]) == (1, 100, 4)
    assert f.data["sender"] == "client"


@pytest.mark.parametrize("fast", [True, False])
def test_a_fast_retransmit_within_the_gap_is_sq002(catalog, fast):
    # frame 14 has frame 7's IP ID (0), TSval, seq, ack, window and length, 0.11 ms
    # later: within 0.5 ms, but the server's three duplicate ACKs (frames 11-13) were
    # stored between them: before the fix, CP008.
    result = run(catalog, "clean_fast_retransmit_ipid0.pcap", fast)
    assert found(result) == [("SQ002", 1, 14)]
    (f,) = result.findings
    assert (f.data["seq"], f.data["payload_len"], f.data["first_frame"]) == (101, 500, 7)


def test_a_segment_of_the_peer_between_them_rules_a_copy_out_whatever_the_gap(catalog):
    params = {"CP008": {"max_interval": 1.0}}
    result = run(catalog, "clean_fast_retransmit_ipid0.pcap", params=params)
    assert found(result) == [("SQ002", 1, 14)]


def test_the_gap_is_the_parameter(catalog):
    # with a limit above the 200 ms, the byte-for-byte resend is taken for a copy
    params = {"CP008": {"max_interval": 0.3}}
    result = run(catalog, "clean_rto_resend_ipid0.pcap", params=params)
    assert found(result) == [("CP008", 1, 5)]
    assert result.findings[0].data["original_frame"] == 4


@pytest.mark.parametrize("fast", [True, False])
def test_a_copy_20_us_later_with_ip_id_0_stays_cp008(catalog, fast):
    result = run(catalog, "cp008_capture-duplicates_ipid0.pcap", fast)
    assert found(result) == [("CP008", 1, 5)]
    assert result.findings[0].data["original_frame"] == 4
    # the copy is ignored by every other rule: the connection is clean
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("complete", "graceful")
    # a limit below the 20 us: the copy is analysed as a resend
    tight = run(
        catalog, "cp008_capture-duplicates_ipid0.pcap", fast, {"CP008": {"max_interval": 1e-5}}
    )
    assert found(tight) == [("SQ002", 1, 5)]


# --------------------------------------------------------------------------- SQ003


@pytest.mark.parametrize("fast", [True, False])
def test_data_resent_with_backoff_to_a_silent_peer_is_sq003(catalog, fast):
    # before the fix: no SQ003 (the server sent nothing after frame 7)
    result = run(catalog, "sq003_data-unacked_dead_peer.pcap", fast)
    assert found(result) == [
        ("CL008", 1, 10),
        ("SQ002", 1, 8),
        ("SQ002", 1, 9),
        ("SQ002", 1, 10),
        ("SQ003", 1, 7),
    ]
    (f,) = [f for f in result.findings if f.rule == "SQ003"]
    assert (f.severity, f.data["seq"], f.data["bytes"], f.data["highest_ack"]) == (
        "warning",
        101,
        200,
        101,
    )
    assert (f.data["sender"], f.data["receiver"]) == ("client", "server")


@pytest.mark.parametrize("fast", [True, False])
def test_data_in_flight_at_the_end_is_not_sq003(catalog, fast):
    result = run(catalog, "clean_data_in_flight_at_end.pcap", fast)
    assert found(result) == [("CL008", 1, 7)]


def _craft():
    """scripts/craft_captures.py as a module (its Capture and Conversation)."""
    name = "craft_captures_for_verdicts"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "craft_captures.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.mark.parametrize(
    "resends,sq003",
    [
        ((0.2, 0.4, 0.8), True),  # backoff: the crafted sample's timing
        ((0.2, 0.4), True),  # two resends suffice
        ((0.2,), False),  # one resend: no interval to compare
        ((0.2, 0.2, 0.2), False),  # a constant interval is no backoff
        ((0.4, 0.2), False),  # shrinking
    ],
)
def test_only_a_growing_interval_makes_a_silent_peer_sq003(catalog, tmp_path, resends, sq003):
    cc = _craft()
    cap = cc.Capture()
    c = cc.opened(cap)
    first = c.data("c", 200, dt=0.01, deliver=False)
    frames = [c.data("c", 200, seq=cc.CLIENT_ISN + 101, dt=dt, deliver=False) for dt in resends]
    path = tmp_path / "resends.pcap"
    cap.write(path)
    for fast in (True, False):
        result = analyze_file(path, catalog, catalog.select(None, None), fast=fast)
        expected = [("CL008", 1, frames[-1])] + [("SQ002", 1, f) for f in frames]
        if sq003:
            expected.append(("SQ003", 1, first))
        assert found(result) == sorted(expected)


def test_backoff_restarts_when_the_first_byte_is_acknowledged(catalog, tmp_path):
    # 100 bytes resent after 0.2 s, acknowledged; the next 100 bytes resent once after
    # 0.4 s: two resends with a growing interval, but of two different first bytes
    cc = _craft()
    cap = cc.Capture()
    c = cc.opened(cap)
    c.data("c", 100, dt=0.01, deliver=False)
    c.data("c", 100, seq=cc.CLIENT_ISN + 101, dt=0.2)
    c.ack("s")
    second = c.data("c", 100, dt=0.01, deliver=False)
    again = c.data("c", 100, seq=cc.CLIENT_ISN + 201, dt=0.4, deliver=False)
    path = tmp_path / "two.pcap"
    cap.write(path)
    result = analyze_file(path, catalog, catalog.select(None, None))
    assert ("SQ003", 1, second) not in found(result)
    assert ("SQ002", 1, again) in found(result)


# --------------------------------------------------------------------------- CP009
# Reordering is not loss and not a fault: a segment stored after the segment that
# depends on it is CP009 (info) at the later one; nothing is missing, nobody is at fault.


@pytest.mark.parametrize("fast", [True, False])
def test_an_ack_stored_before_the_data_it_acknowledges_is_cp009(catalog, fast):
    # frame 6: the client's ACK of 2001; frame 7, 5 us later: the server's second
    # segment (rel seq 1001-2001). Before the fix: no finding at all.
    result = run(catalog, "cp009_capture-reordered.pcap", fast)
    assert found(result) == [("CP009", 1, 7)]
    (f,) = result.findings
    assert (f.data["early_frame"], f.data["gap"], f.data["sender"]) == (6, 5e-06, "server")


def test_beyond_the_reorder_window_the_early_ack_is_sq001(catalog):
    # further apart than SQ006.reorder_window, the ACK acknowledged data not yet sent
    result = run(
        catalog, "cp009_capture-reordered.pcap", params={"SQ006": {"reorder_window": 1e-6}}
    )
    assert found(result) == [("SQ001", 1, 6)]


@pytest.mark.parametrize("fast", [True, False])
def test_a_fin_stored_before_the_last_data_is_cp009(catalog, fast):
    # frame 6: the server's FIN at rel seq 1501; frame 7, 5 us later: its last 500
    # bytes (rel seq 1001). Before the fix: SQ002 at frame 7 "first sent in frame -"
    # (the FIN had moved SND.NXT past bytes never seen).
    result = run(catalog, "cp009_capture-reordered_fin.pcap", fast)
    assert found(result) == [("CP009", 1, 7)]
    (f,) = result.findings
    assert (f.data["early_frame"], f.data["gap"], f.data["sender"]) == (6, 5e-06, "server")
    (conn,) = result.connections
    assert (conn["close"], conn["client_state"], conn["server_state"]) == (
        "graceful",
        "CLOSED",
        "TIME-WAIT",
    )


@pytest.mark.parametrize("fast", [True, False])
def test_a_synack_stored_after_the_ack_and_data_that_acknowledge_it_is_cp009(catalog, fast):
    # frames 2-3: the client's handshake ACK and request; frame 4: the SYN-ACK they
    # acknowledge. Before the fix: CP002 at frame 2 ("the server's SYN-ACK is not in the
    # capture") although frame 4 is that SYN-ACK.
    result = run(catalog, "cp009_capture-reordered_synack.pcap", fast)
    assert found(result) == [("CP009", 1, 4)]
    (f,) = result.findings
    assert (f.data["early_frame"], f.data["sender"]) == (2, "server")
    (conn,) = result.connections
    assert conn["handshake"] == "complete"
    server = [(t["frame"], t["from"], t["to"], t["cause"]) for t in conn["transitions"]["server"]]
    assert server[:2] == [
        (2, "LISTEN", "SYN-RECEIVED", "snd SYN,ACK (frame 4, stored after frame 2)"),
        (2, "SYN-RECEIVED", "ESTABLISHED", "rcv ACK"),
    ]


def test_a_synack_long_after_the_ack_of_it_leaves_the_capture_loss(catalog):
    # later than the window, the SYN-ACK is a resend; the original was lost (CP002)
    params = {"SQ006": {"reorder_window": 1e-5}}
    result = run(catalog, "cp009_capture-reordered_synack.pcap", params=params)
    assert found(result) == [("CP002", 1, 2)]


# --------------------------------------------------------------------------- withdrawn


@pytest.mark.parametrize("fast", [True, False])
def test_an_ack_the_later_synack_contradicts_implies_no_synack(catalog, fast):
    # frame 2: the client, in SYN-SENT, acknowledges server ISN+70001; frame 3: the
    # SYN-ACK with the server's ISN, which that ACK cannot acknowledge. Before the fix:
    # frame 2 implied a SYN-ACK (CP002 at 2) with the wrong ISN, so the server's data
    # (frame 6) was SQ002 at seq -69999: its sequence space measured from the wrong ISN.
    result = run(catalog, "clean_stale_ack_before_synack.pcap", fast)
    assert found(result) == []
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("complete", "graceful")
    states = {
        side: [(t["frame"], t["from"], t["to"]) for t in conn["transitions"][side]][:2]
        for side in ("client", "server")
    }
    assert states == {
        "client": [(1, "CLOSED", "SYN-SENT"), (3, "SYN-SENT", "ESTABLISHED")],
        "server": [(3, "LISTEN", "SYN-RECEIVED"), (4, "SYN-RECEIVED", "ESTABLISHED")],
    }


@pytest.mark.parametrize("fast", [True, False])
def test_the_clients_rst_answering_a_bad_synack_keeps_it_in_syn_sent(catalog, fast):
    # RFC 9293 §3.10.7.3: a SYN-ACK whose ack is =< ISS is answered <SEQ=SEG.ACK><CTL=RST>
    # and discarded; the client stays in SYN-SENT. The server's half-open connection
    # returns to LISTEN (§3.10.7.4). Before the fix: the client CLOSED at frame 3, RS004
    # blamed it for the RST, close "reset".
    result = run(catalog, "hs002_synack-bad-ack.pcap", fast)
    assert found(result) == [("HS002", 1, 2)]
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("incomplete", "none")
    assert (conn["client_state"], conn["server_state"]) == ("SYN-SENT", "LISTEN")
    assert [(t["frame"], t["to"]) for t in conn["transitions"]["client"]] == [(1, "SYN-SENT")]
    assert [(t["frame"], t["from"], t["to"]) for t in conn["transitions"]["server"]] == [
        (2, "LISTEN", "SYN-RECEIVED"),
        (3, "SYN-RECEIVED", "LISTEN"),
    ]
    assert (conn["conn_state"], conn["history"]) == ("RSTO", "ShR")  # Zeek's view


@pytest.mark.parametrize("fast", [True, False])
def test_a_good_synack_after_the_rst_completes_the_handshake(catalog, fast):
    # RFC 9293 §3.5 figure 8 (recovery from an old duplicate SYN) at the client: frame 2
    # acknowledges an old SYN (ack ISN-9), frame 3 the client's RST <SEQ=ISN-9>, frame 4
    # the server's new SYN-ACK (new ISN, ack ISN+1), then data and a graceful close.
    # Before the fix: RS004 at 3, CL009 at 4 (a segment "after the close"), handshake
    # incomplete, the client CLOSED.
    result = run(catalog, "hs002_synack-bad-ack_recovered.pcap", fast)
    assert found(result) == [("HS002", 1, 2)]
    (f,) = result.findings
    assert (f.data["ack"], f.data["expected"], f.data["receiver_state"]) == (-9, 1, "SYN-SENT")
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("complete", "graceful")
    assert (conn["client_state"], conn["server_state"]) == ("TIME-WAIT", "CLOSED")
    # the server's ISN is the one of the SYN-ACK that completed the handshake (the
    # script's SERVER_ISN + 100), relative numbers count from it
    assert (conn["client_isn"], conn["server_isn"]) == (0x3C8A1F27, 0x9E1B5D02 + 100)
    states = {
        side: [(t["frame"], t["from"], t["to"]) for t in conn["transitions"][side]][:4]
        for side in ("client", "server")
    }
    assert states == {
        "client": [
            (1, "CLOSED", "SYN-SENT"),
            (4, "SYN-SENT", "ESTABLISHED"),
            (9, "ESTABLISHED", "FIN-WAIT-1"),
            (10, "FIN-WAIT-1", "FIN-WAIT-2"),
        ],
        "server": [
            (2, "LISTEN", "SYN-RECEIVED"),
            (3, "SYN-RECEIVED", "LISTEN"),
            (4, "LISTEN", "SYN-RECEIVED"),
            (5, "SYN-RECEIVED", "ESTABLISHED"),
        ],
    }
    # Zeek: the originator's RST puts it in RESET for good (UpdateResetState changes
    # nothing), the later SYN-ACK is no reuse (the originator is not INACTIVE):
    # one connection, RSTO
    assert (conn["conn_state"], conn["history"]) == ("RSTO", "ShRADdFaf")


@pytest.mark.parametrize("fast", [True, False])
def test_the_servers_rst_answering_a_bad_handshake_ack_keeps_it_in_syn_received(catalog, fast):
    # RFC 9293 §3.10.7.4 SYN-RECEIVED, fifth (the ACK field): an unacceptable ACK is
    # answered <SEQ=SEG.ACK><CTL=RST> and the server stays in SYN-RECEIVED. The RST's
    # seq is the RCV.NXT the client's ACK announced: the client (ESTABLISHED) accepts it
    # and is CLOSED (exactly RCV.NXT: no RFC 5961 challenge ACK). Before the fix: the
    # server CLOSED at frame 4 and RS004 blamed it for the RST.
    result = run(catalog, "hs004_handshake-ack-bad.pcap", fast)
    assert found(result) == [("HS004", 1, 3)]
    (f,) = result.findings
    assert (f.data["field"], f.data["actual"], f.data["expected"]) == ("ack", 0, 1)
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("incomplete", "reset")
    assert (conn["client_state"], conn["server_state"]) == ("CLOSED", "SYN-RECEIVED")
    states = {
        side: [(t["frame"], t["from"], t["to"], t["cause"]) for t in conn["transitions"][side]]
        for side in ("client", "server")
    }
    assert states == {
        "client": [
            (1, "CLOSED", "SYN-SENT", "snd SYN"),
            (2, "SYN-SENT", "ESTABLISHED", "rcv SYN,ACK"),
            (4, "ESTABLISHED", "CLOSED", "rcv RST (the answer to the ACK of frame 3)"),
        ],
        "server": [(2, "LISTEN", "SYN-RECEIVED", "snd SYN,ACK")],
    }
    assert (conn["conn_state"], conn["history"]) == ("RSTR", "ShAr")  # Zeek's view


@pytest.mark.parametrize("fast", [True, False])
def test_no_handshake_recovers_from_a_bad_ack_the_closed_client_resets_the_synack(catalog, fast):
    # After the server's answer (frame 4) the client has no connection; the server's
    # SYN-ACK retransmission (frame 5, same ISN: HS006) reaches it in CLOSED and it
    # answers <SEQ=SEG.ACK><CTL=RST> (§3.10.7.1, frame 6, seq = client ISN+1), which
    # returns the listener to LISTEN. Neither RST is a finding. Before the fix: RS004 at
    # 4, the server CLOSED and the connection over at frame 4, CL009 at 5.
    result = run(catalog, "hs004_handshake-ack-bad_recovered.pcap", fast)
    assert found(result) == [("HS004", 1, 3), ("HS006", 1, 5)]
    hs006 = result.findings[1]
    assert (hs006.data["first_frame"], hs006.data["count"]) == (2, 2)
    assert (hs006.data["sender_state"], hs006.data["receiver_state"]) == (
        "SYN-RECEIVED",
        "CLOSED",
    )
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("incomplete", "reset")
    assert (conn["client_state"], conn["server_state"]) == ("CLOSED", "LISTEN")
    states = {
        side: [(t["frame"], t["from"], t["to"], t["cause"]) for t in conn["transitions"][side]]
        for side in ("client", "server")
    }
    assert states == {
        "client": [
            (1, "CLOSED", "SYN-SENT", "snd SYN"),
            (2, "SYN-SENT", "ESTABLISHED", "rcv SYN,ACK"),
            (4, "ESTABLISHED", "CLOSED", "rcv RST (the answer to the ACK of frame 3)"),
        ],
        "server": [
            (2, "LISTEN", "SYN-RECEIVED", "snd SYN,ACK"),
            (6, "SYN-RECEIVED", "LISTEN", "rcv RST (the answer to the SYN-ACK of frame 5)"),
        ],
    }
    # Zeek: both endpoints in RESET, no data: REJ (conn_state() in conn/main.zeek); the
    # SYN-ACK after the responder's RST is no reuse (IsReuse: a SYN-ACK only for a half
    # connection) and repeats the h already logged
    assert (conn["conn_state"], conn["history"]) == ("REJ", "ShArR")


def transitions(conn) -> dict[str, list[tuple]]:
    return {
        side: [(t["frame"], t["from"], t["to"], t["cause"]) for t in conn["transitions"][side]]
        for side in ("client", "server")
    }


#: the transitions of a connection whose handshake ACK (frame 3) the server answered with
#: the RST of ``frame`` (HS004 captures): the client reset, the server in SYN-RECEIVED
def answered(frame: int, ack_frame: int = 3) -> dict[str, list[tuple]]:
    return {
        "client": [
            (1, "CLOSED", "SYN-SENT", "snd SYN"),
            (2, "SYN-SENT", "ESTABLISHED", "rcv SYN,ACK"),
            (
                frame,
                "ESTABLISHED",
                "CLOSED",
                f"rcv RST (the answer to the ACK of frame {ack_frame})",
            ),
        ],
        "server": [(2, "LISTEN", "SYN-RECEIVED", "snd SYN,ACK")],
    }


@pytest.mark.parametrize("fast", [True, False])
def test_a_new_syn_from_the_client_reset_by_the_answer_starts_a_new_connection(catalog, fast):
    # Frame 4 answers the bad handshake ACK (HS004 at 3): the client is CLOSED, its TCB
    # gone, the server still in SYN-RECEIVED. The client's new SYN (frame 5, ISN+5000)
    # starts a new connection (RFC 9293 §3.10.7.4, fourth: it returns the listener to
    # LISTEN), answered with a new ISN (frame 6), then data and a graceful close. Before
    # the fix: one connection (the server not CLOSED, so not "closed"), HS009 at 5, HS006
    # at 6 ("same ISN"), CP002 at 7 and 11, HS007 at 8, HS013 at 10.
    result = run(catalog, "hs004_handshake-ack-bad_retry.pcap", fast)
    assert found(result) == [("HS004", 1, 3)]
    first, second = result.connections
    assert (first["id"], first["handshake"], first["close"]) == (1, "incomplete", "reset")
    # the new SYN reaches the old TCB first: the passive server returns to LISTEN at 5
    # (before: the first connection ended with the server in SYN-RECEIVED)
    assert (first["client_state"], first["server_state"]) == ("CLOSED", "LISTEN")
    assert transitions(first) == {
        "client": answered(4)["client"],
        "server": [*answered(4)["server"], (5, "SYN-RECEIVED", "LISTEN", "rcv SYN")],
    }
    assert (second["id"], second["handshake"], second["close"]) == (2, "complete", "graceful")
    assert (second["client_state"], second["server_state"]) == ("TIME-WAIT", "CLOSED")
    assert (second["client_isn"], second["server_isn"]) == (0x3C8A1F27 + 5000, 0x9E1B5D02 + 777)
    assert [(t["frame"], t["to"]) for t in second["transitions"]["client"]][:2] == [
        (5, "SYN-SENT"),
        (6, "ESTABLISHED"),
    ]
    assert [(t["frame"], t["to"]) for t in second["transitions"]["server"]][:2] == [
        (6, "SYN-RECEIVED"),
        (7, "ESTABLISHED"),
    ]


@pytest.mark.parametrize("fast", [True, False])
def test_every_unacceptable_handshake_ack_gets_its_answer(catalog, fast):
    # Two bad handshake ACKs (frames 3 and 4, ack 50 and 0): frame 5 (seq 0) answers
    # frame 4 and resets the client; frame 6 (seq 50) answers frame 3, the client,
    # CLOSED, discards it. HS004 once, no RS004. Before the fix: only frame 3's answer
    # was due, so frame 5 was RS004 and reset both endpoints (the server CLOSED).
    result = run(catalog, "hs004_handshake-ack-bad_twice.pcap", fast)
    assert found(result) == [("HS004", 1, 3), ("SQ001", 1, 3)]
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("incomplete", "reset")
    assert (conn["client_state"], conn["server_state"]) == ("CLOSED", "SYN-RECEIVED")
    assert transitions(conn) == answered(5, ack_frame=4)


@pytest.mark.parametrize("fast", [True, False])
def test_data_with_the_same_bad_ack_gets_its_answer_too(catalog, fast):
    # The handshake ACK (frame 3) and the client's data (frame 4) both ack 50: the
    # server answers each with RST seq=50 (frames 5 and 6); the first resets the client,
    # the second reaches it CLOSED. Before the fix: frame 6 was RS004 (and the server
    # CLOSED at 6).
    result = run(catalog, "hs004_handshake-ack-bad_data.pcap", fast)
    assert found(result) == [("HS004", 1, 3), ("SQ001", 1, 3)]
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("incomplete", "reset")
    assert (conn["client_state"], conn["server_state"]) == ("CLOSED", "SYN-RECEIVED")
    assert transitions(conn) == answered(5)


@pytest.mark.parametrize("fast", [True, False])
def test_a_synack_retransmission_leaves_the_servers_answer_due(catalog, fast):
    # The server's SYN-ACK retransmission (frame 4, HS006) between the bad handshake ACK
    # (frame 3) and the server's answer (frame 5): acceptable to the client, it drops
    # only an answer due from the client, not the server's. Before the fix: it cleared
    # the server's, frame 5 was RS004 and the server CLOSED.
    result = run(catalog, "hs004_handshake-ack-bad_synack-again.pcap", fast)
    assert found(result) == [("HS004", 1, 3), ("HS006", 1, 4), ("SQ001", 1, 3)]
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("incomplete", "reset")
    assert (conn["client_state"], conn["server_state"]) == ("CLOSED", "SYN-RECEIVED")
    assert transitions(conn) == answered(5)


@pytest.mark.parametrize("fast", [True, False])
def test_a_client_that_dropped_the_answer_completes_the_handshake(catalog, fast):
    # The engine takes the client's RCV.NXT to be what its bad ACK (frame 3, ack 50)
    # announced, so the answer (frame 4, seq 50) resets it. This client's real RCV.NXT
    # was the server's ISN+1: it dropped the RST and acknowledges the SYN-ACK
    # retransmission (frame 5) correctly at frame 6, which proves it has a connection:
    # its move to CLOSED is taken back. Before the fix: the client stayed CLOSED, HS007
    # at 7 (data while CLOSED), HS013 at 9, CP002 at 10, close "reset".
    result = run(catalog, "hs004_handshake-ack-bad_rst-dropped.pcap", fast)
    assert found(result) == [("HS004", 1, 3), ("HS006", 1, 5), ("SQ001", 1, 3)]
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("complete", "graceful")
    assert (conn["client_state"], conn["server_state"]) == ("TIME-WAIT", "CLOSED")
    states = transitions(conn)
    assert states["client"][:3] == [
        (1, "CLOSED", "SYN-SENT", "snd SYN"),
        (2, "SYN-SENT", "ESTABLISHED", "rcv SYN,ACK"),
        (9, "ESTABLISHED", "FIN-WAIT-1", "snd FIN"),
    ]
    assert states["server"][:2] == [
        (2, "LISTEN", "SYN-RECEIVED", "snd SYN,ACK"),
        (6, "SYN-RECEIVED", "ESTABLISHED", "rcv ACK"),
    ]


#: the client's transitions up to its second handshake (frames 5 and 6) in the
#: same-ISN captures: reset by the answer (4) to its handshake ACK (3), then a new OPEN
SAME_ISN_CLIENT = [
    (1, "CLOSED", "SYN-SENT", "snd SYN"),
    (2, "SYN-SENT", "ESTABLISHED", "rcv SYN,ACK"),
    (4, "ESTABLISHED", "CLOSED", "rcv RST (the answer to the ACK of frame 3)"),
    (5, "CLOSED", "SYN-SENT", "snd SYN"),
    (6, "SYN-SENT", "ESTABLISHED", "rcv SYN,ACK"),
    (10, "ESTABLISHED", "FIN-WAIT-1", "snd FIN"),
    (11, "FIN-WAIT-1", "FIN-WAIT-2", "rcv ACK of FIN"),
    (12, "FIN-WAIT-2", "TIME-WAIT", "rcv FIN"),
]
#: the server's transitions from its handshake ACK (frame 7) on in those captures
SAME_ISN_SERVER_END = [
    (7, "SYN-RECEIVED", "ESTABLISHED", "rcv ACK"),
    (10, "ESTABLISHED", "CLOSE-WAIT", "rcv FIN"),
    (12, "CLOSE-WAIT", "LAST-ACK", "snd FIN"),
    (13, "LAST-ACK", "CLOSED", "rcv ACK of FIN"),
]


@pytest.mark.parametrize("fast", [True, False])
def test_the_same_syn_after_the_answer_reopens_the_connection(catalog, fast):
    # Frame 4 answers the bad handshake ACK (frame 3) and resets the client; frame 5 is
    # its SYN again, same ISN: one connection (Tracker._starts_new, as Wireshark's
    # tcp.stream), the client CLOSED -> SYN-SENT (a new OPEN) and the server's SYN-ACK
    # retransmission (frame 6, HS006) completes the handshake. Before the fix: the
    # client's reset vanished (ESTABLISHED from 2 to 10: _answer_dropped took it back at
    # frame 7), HS005 said "the client is in CLOSED".
    result = run(catalog, "hs004_handshake-ack-bad_same-isn.pcap", fast)
    assert found(result) == [("HS004", 1, 3), ("HS005", 1, 5), ("HS006", 1, 6)]
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("complete", "graceful")
    assert (conn["client_state"], conn["server_state"]) == ("TIME-WAIT", "CLOSED")
    assert (conn["client_isn"], conn["server_isn"]) == (0x3C8A1F27, 0x9E1B5D02)
    assert transitions(conn) == {
        "client": SAME_ISN_CLIENT,
        "server": [(2, "LISTEN", "SYN-RECEIVED", "snd SYN,ACK"), *SAME_ISN_SERVER_END],
    }
    (hs005,) = [f for f in result.findings if f.rule == "HS005"]
    assert hs005.message.endswith("the client is in SYN-SENT")


@pytest.mark.parametrize("fast", [True, False])
def test_a_synack_of_a_new_isn_after_the_same_syn_is_a_new_sequence_space(catalog, fast):
    # As above, but the server answers the same SYN (frame 5) with a SYN-ACK of a new ISN
    # (ISN+1000, frame 6): that SYN returned it to LISTEN (RFC 9293 §3.10.7.4, fourth),
    # the SYN-ACK starts its sequence space anew (no HS006) and the handshake completes.
    # Before the fix: HS006 "same ISN" at 6, CP002 at 7 and 11, HS007 at 8, HS013 at 10,
    # the client CLOSED, close "reset".
    result = run(catalog, "hs004_handshake-ack-bad_same-isn-new-synack.pcap", fast)
    assert found(result) == [("HS004", 1, 3), ("HS005", 1, 5)]
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("complete", "graceful")
    assert (conn["client_state"], conn["server_state"]) == ("TIME-WAIT", "CLOSED")
    assert (conn["client_isn"], conn["server_isn"]) == (0x3C8A1F27, 0x9E1B5D02 + 1000)
    assert transitions(conn) == {
        "client": SAME_ISN_CLIENT,
        "server": [
            (2, "LISTEN", "SYN-RECEIVED", "snd SYN,ACK"),
            (5, "SYN-RECEIVED", "LISTEN", "rcv SYN"),
            (6, "LISTEN", "SYN-RECEIVED", "snd SYN,ACK"),
            *SAME_ISN_SERVER_END,
        ],
    }


@pytest.mark.parametrize("fast", [True, False])
def test_a_fin_with_an_unacceptable_handshake_ack_is_dropped(catalog, fast):
    # The handshake ACK (frame 3) and the client's FIN (frame 4) both ack 50: the server
    # in SYN-RECEIVED drops both (RFC 9293 §3.10.7.4: the FIN bit is checked only after
    # an acceptable ACK) and answers each (frames 5 and 6). The client sent its FIN
    # (FIN-WAIT-1) and is reset at 5. Before the fix: the server took the FIN
    # (CLOSE-WAIT at 4), frame 5 was RS002 and reset it (CLOSED).
    result = run(catalog, "hs004_handshake-ack-bad_fin.pcap", fast)
    assert found(result) == [("HS004", 1, 3), ("SQ001", 1, 3)]
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("incomplete", "reset")
    assert (conn["client_state"], conn["server_state"]) == ("CLOSED", "SYN-RECEIVED")
    assert transitions(conn) == {
        "client": [
            (1, "CLOSED", "SYN-SENT", "snd SYN"),
            (2, "SYN-SENT", "ESTABLISHED", "rcv SYN,ACK"),
            (4, "ESTABLISHED", "FIN-WAIT-1", "snd FIN"),
            (5, "FIN-WAIT-1", "CLOSED", "rcv RST (the answer to the ACK of frame 3)"),
        ],
        "server": [(2, "LISTEN", "SYN-RECEIVED", "snd SYN,ACK")],
    }


@pytest.mark.parametrize("fast", [True, False])
def test_eighteen_identical_unacceptable_acks_get_their_eighteen_answers(catalog, fast):
    # 18 handshake ACKs (frames 3-20) all ack 50, then 18 RSTs seq=50 (frames 21-38):
    # counted in one entry of conn.answers_due, every RST is an answer. Before the fix:
    # 16 entries kept, the newest, so the 17th and 18th answers found none: RS004 at 37.
    result = run(catalog, "hs004_handshake-ack-bad_many.pcap", fast)
    assert found(result) == [("HS004", 1, 3), ("SQ001", 1, 3)]
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("incomplete", "reset")
    assert (conn["client_state"], conn["server_state"]) == ("CLOSED", "SYN-RECEIVED")
    assert transitions(conn) == answered(21)


def test_answers_due_are_counted_and_bounded():
    # Identical unacceptable segments share an entry (a count); distinct ones beyond
    # ANSWERS_KEPT are left out, the newest (the answers come oldest first).
    from types import SimpleNamespace

    from pcapcheck.tcp.connection import ANSWERS_KEPT
    from pcapcheck.tcp.detectors import Checker

    conn = SimpleNamespace(answers_due=())
    server = SimpleNamespace(role="server", state="SYN-RECEIVED")
    for frame in range(3, 21):
        Checker._answer_due(conn, SimpleNamespace(ack=1050, frame=frame), server, "ACK")
    assert conn.answers_due == ((1050, 3, "server", "SYN-RECEIVED", "ACK", 18),)
    for i in range(ANSWERS_KEPT + 1):
        Checker._answer_due(conn, SimpleNamespace(ack=2000 + i, frame=30 + i), server, "ACK")
    assert len(conn.answers_due) == ANSWERS_KEPT == 16
    assert [d[0] for d in conn.answers_due] == [1050, *range(2000, 2000 + ANSWERS_KEPT - 1)]
