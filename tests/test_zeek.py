"""Tests for pcapcheck.tcp.zeek: Zeek conn.log ``conn_state`` and ``history``.

Expected values are derived from Zeek's source (see the module docstring of
pcapcheck/zeek.py) and, where marked, copied from Zeek's own btest baselines:

* testing/btest/Baseline/scripts.base.protocols.conn.conn_state-RST-behavior/out:
  ``R, OTH`` / ``SR, RSTOS0`` / ``SaR, RSTOS0`` / ``SaFR, OTH``
* testing/btest/Baseline/core.tcp.flip-without-syn/conn.log: ``^hADadFf`` ``SF``
* docs "Connection Handling" (Zeek 8.2): a lone bad-checksum SYN -> ``C`` ``OTH``
"""

from __future__ import annotations

import pytest

from pcapcheck.model import ACK, FIN, PSH, RST, SYN, Segment
from pcapcheck.tcp.zeek import TCP_ESTABLISHED, TCP_SYN_SENT, ZeekState, zeek_flips_first_packet

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 80)
CISN = 1000
SISN = 5000
M32 = 0xFFFFFFFF


class Flow:
    """Builds a packet sequence by hand; tracks each side's next sequence number.

    ``c(...)`` sends from the client, ``s(...)`` from the server.  By default a
    segment starts at the sender's next sequence number and acknowledges the peer's
    next sequence number.
    """

    def __init__(self, cisn: int = CISN, sisn: int = SISN):
        self.nxt = {True: cisn, False: sisn}
        self.pkts: list[tuple[Segment, bool]] = []

    def _send(
        self,
        client: bool,
        flags: int,
        length: int = 0,
        seq: int | None = None,
        ack: int | None = None,
        window: int = 65535,
        checksum_ok: bool | None = None,
        truncated: bool = False,
    ) -> Flow:
        src, dst = (CLIENT, SERVER) if client else (SERVER, CLIENT)
        s = self.nxt[client] if seq is None else seq
        a = (self.nxt[not client] if ack is None else ack) if flags & ACK else 0
        self.pkts.append(
            (
                Segment(
                    frame=len(self.pkts) + 1,
                    ts=float(len(self.pkts)),
                    src=src[0],
                    dst=dst[0],
                    sport=src[1],
                    dport=dst[1],
                    seq=s & M32,
                    ack=a & M32,
                    flags=flags,
                    window=window,
                    payload_len=length,
                    truncated=truncated,
                    checksum_ok=checksum_ok,
                ),
                client,
            )
        )
        end = s + length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if not flags & RST and end > self.nxt[client]:
            self.nxt[client] = end
        return self

    def c(self, flags: int, length: int = 0, **kw) -> Flow:
        return self._send(True, flags, length, **kw)

    def s(self, flags: int, length: int = 0, **kw) -> Flow:
        return self._send(False, flags, length, **kw)

    def handshake(self) -> Flow:
        return self.c(SYN).s(SYN | ACK).c(ACK)

    def zeek(self, flipped: bool = False, **kw) -> ZeekState:
        z = ZeekState(flipped, **kw)
        for seg, from_client in self.pkts:
            z.add(seg, from_client)
        return z


def result(flow: Flow, flipped: bool = False, **kw) -> tuple[str, str]:
    z = flow.zeek(flipped, **kw)
    return z.conn_state(), z.history()


# ----------------------------------------------------------------------------------
# One test per conn_state (conn/main.zeek `function conn_state`).
# ----------------------------------------------------------------------------------


def test_s0_syn_only():
    # os == TCP_SYN_SENT && rs == TCP_INACTIVE -> S0
    assert result(Flow().c(SYN)) == ("S0", "S")


def test_s0_syn_retransmissions_are_logged_once():
    # update_history: a SYN is logged again only if rel_seq != hist_last_SYN;
    # a retransmitted SYN has the same relative seq (0).
    assert result(Flow().c(SYN).c(SYN, seq=CISN).c(SYN, seq=CISN)) == ("S0", "S")
    # A SYN with a new ISN re-initialises the endpoint (init_endpoint, SYN_SENT case:
    # InitStartSeq(first_seg_seq)), so its relative seq is 0 again: still one 'S'.
    assert result(Flow().c(SYN).c(SYN, seq=CISN + 777)) == ("S0", "S")


def test_rej_syn_then_rst_ack():
    # Linux answers a SYN to a closed port with RST|ACK, seq 0.
    # rs == TCP_RESET && os == TCP_SYN_SENT -> REJ
    assert result(Flow().c(SYN).s(RST | ACK, seq=0)) == ("REJ", "Sr")


def test_s1_handshake_only():
    assert result(Flow().handshake()) == ("S1", "ShA")


def test_sf_short_http_exchange():
    # Data packets carry ACK but have payload -> 'D'/'d', never 'A' (update_history:
    # bits_set == 0 && len -> HIST_DATA_PKT; pure ACK only when len == 0).
    f = (
        Flow()
        .handshake()
        .c(ACK | PSH, 100)  # request
        .s(ACK)  # server acks the request
        .s(ACK | PSH, 200)  # response
        .c(ACK)
        .c(FIN | ACK)
        .s(FIN | ACK)
        .c(ACK)
    )
    z = f.zeek()
    assert (z.conn_state(), z.history()) == ("SF", "ShADadFf")
    assert z.endpoint_states() == (5, 5)  # TCP_CLOSED, TCP_CLOSED


def test_s2_originator_fin_only():
    # os == TCP_CLOSED, responder ESTABLISHED -> S2
    assert result(Flow().handshake().c(FIN | ACK)) == ("S2", "ShAF")


def test_s2_fin_retransmission_logged_once():
    f = Flow().handshake().c(FIN | ACK)
    f.c(FIN | ACK, seq=CISN + 1)  # same FIN again (rel_seq + len equal)
    assert result(f) == ("S2", "ShAF")


def test_s3_responder_fin_only():
    assert result(Flow().handshake().s(FIN | ACK)) == ("S3", "ShAf")


def test_rsto_originator_abort():
    assert result(Flow().handshake().c(RST | ACK)) == ("RSTO", "ShAR")


def test_rsto_second_rst_with_other_seq_logged_again():
    f = Flow().handshake().c(RST | ACK).c(RST, seq=CISN + 1 + 10)
    assert result(f) == ("RSTO", "ShARR")


def test_rstr_responder_abort():
    assert result(Flow().handshake().s(RST | ACK)) == ("RSTR", "ShAr")


def test_rstos0_syn_then_rst():
    # Zeek btest conn_state-RST-behavior: "SR, RSTOS0"
    assert result(Flow().c(SYN).c(RST, seq=CISN + 1)) == ("RSTOS0", "SR")


def test_rstos0_syn_ack_then_rst_baseline():
    # Zeek btest: "SaR, RSTOS0".  The responder's pure ACK of the SYN leaves it
    # INACTIVE (UpdateInactiveState: !is_orig && len == 0 && orig SYN_SENT).
    f = Flow().c(SYN).s(ACK).c(RST, seq=CISN + 1)
    assert result(f) == ("RSTOS0", "SaR")


def test_oth_syn_ack_fin_rst_baseline():
    # Zeek btest: "SaFR, OTH" (the F excludes the RSTOS0 pattern ^?S[^HAFGIQ]*R.*)
    f = Flow().c(SYN).s(ACK).c(FIN, seq=CISN + 1).c(RST, seq=CISN + 2)
    assert result(f) == ("OTH", "SaFR")


def test_oth_single_rst_baseline():
    # Zeek btest: "R, OTH"
    assert result(Flow().c(RST | ACK)) == ("OTH", "R")


def test_rstrh_flipped_synack_then_rst():
    # First packet is the server's SYN-ACK from a likely server port: Zeek flips
    # (history '^'); the responder sent SYN-ACK then RST, the originator nothing.
    f = Flow().s(SYN | ACK, ack=CISN + 1).s(RST, seq=SISN + 1)
    assert zeek_flips_first_packet(SYN | ACK, 80, 40000, {80}) is True
    assert result(f, flipped=True) == ("RSTRH", "^hr")


def test_not_flipped_synack_then_rst_is_seen_from_the_server():
    # Without the flip Zeek's originator is the server: SYN_ACK_SENT then RESET,
    # responder inactive, history "HR" does not match RSTOS0 -> OTH.
    f = Flow().s(SYN | ACK, ack=CISN + 1).s(RST, seq=SISN + 1)
    z = f.zeek()
    assert (z.conn_state(), z.history()) == ("OTH", "HR")
    assert z.orig_is_client is False


def test_sh_syn_then_fin():
    # os == TCP_CLOSED (SYN_SENT + FIN), responder inactive -> SH
    assert result(Flow().c(SYN).c(FIN, seq=CISN + 1)) == ("SH", "SF")


def test_shr_flipped_synack_then_fin():
    f = Flow().s(SYN | ACK, ack=CISN + 1).s(FIN | ACK, seq=SISN + 1, ack=CISN + 1)
    assert result(f, flipped=True) == ("SHR", "^hf")


def test_oth_midstream_data_only():
    f = Flow().c(ACK | PSH, 100).s(ACK | PSH, 50).c(ACK)
    z = f.zeek()
    assert (z.conn_state(), z.history()) == ("OTH", "DdA")
    assert z.endpoint_states() == (3, 3)  # TCP_PARTIAL, TCP_PARTIAL


# ----------------------------------------------------------------------------------
# Direction flips ('^').
# ----------------------------------------------------------------------------------


def test_flip_without_syn_baseline():
    # Zeek btest core.tcp.flip-without-syn: first packet is the server's SYN-ACK,
    # then ACK, data both ways, FINs -> "^hADadFf", SF.
    f = (
        Flow()
        .s(SYN | ACK, ack=CISN + 1)
        .c(ACK, seq=CISN + 1)
        .c(ACK | PSH, 136)
        .s(ACK)
        .s(ACK | PSH, 5007)
        .c(FIN | ACK)
        .s(FIN | ACK)
        .c(ACK)
    )
    z = f.zeek(flipped=True)
    assert (z.conn_state(), z.history()) == ("SF", "^hADadFf")
    assert z.orig_is_client is True


def test_syn_synack_reversal_flips_mid_connection():
    # UpdateInactiveState: the responder sends a SYN while the originator is in
    # SYN_ACK_SENT -> Conn()->FlipRoles() after the 's' was recorded; '^' is appended.
    f = (
        Flow()
        .s(SYN | ACK, ack=CISN + 1)
        .c(SYN, seq=CISN)
        .c(ACK, seq=CISN + 1)
        .c(ACK | PSH, 10)
        .s(ACK)
        .s(ACK | PSH, 20)
        .c(FIN | ACK)
        .s(FIN | ACK)
        .c(ACK)
    )
    z = f.zeek()
    assert (z.conn_state(), z.history()) == ("SF", "Hs^ADadFf")
    assert z.orig_is_client is True


def test_zeek_flips_first_packet_heuristic():
    # TCPAnalyzer::WantConnection
    ports = {80, 6669}
    assert zeek_flips_first_packet(SYN, 80, 40000, ports) is False  # pure SYN
    assert zeek_flips_first_packet(SYN | ACK, 80, 40000, ports) is True
    assert zeek_flips_first_packet(ACK, 80, 40000, ports) is True
    assert zeek_flips_first_packet(ACK, 40000, 80, ports) is False
    assert zeek_flips_first_packet(SYN | ACK, 40000, 50000, ports) is False
    # both ports likely: flip only non-SYN packets with sport < dport
    assert zeek_flips_first_packet(SYN | ACK, 80, 6669, ports) is False
    assert zeek_flips_first_packet(ACK, 80, 6669, ports) is True
    assert zeek_flips_first_packet(ACK, 6669, 80, ports) is False


# ----------------------------------------------------------------------------------
# Scaled letters: t/T, w/W, g/G, c/C (Session::ScaledHistoryEntry: 1, 10, 100, ...).
# ----------------------------------------------------------------------------------


def _retransmissions(n: int) -> Flow:
    f = Flow().handshake().c(ACK | PSH, 100)
    for _ in range(n):
        f.c(ACK | PSH, 100, seq=CISN + 1)  # same segment again
    return f.s(ACK).c(FIN | ACK).s(FIN | ACK).c(ACK)


@pytest.mark.parametrize(
    "n, history",
    [
        (1, "ShADTaFf"),
        (9, "ShADTaFf"),
        (10, "ShADTTaFf"),  # "logged again at 10 ..."
        (99, "ShADTTaFf"),
        (100, "ShADTTTaFf"),  # "... 100 ..."
    ],
)
def test_retransmissions_logged_exponentially(n, history):
    # update_last_seq: delta_last <= 0 && len > 0 -> DidRxmit()
    assert result(_retransmissions(n)) == ("SF", history)


def test_responder_retransmission_is_lower_case():
    f = Flow().handshake().c(ACK | PSH, 10).s(ACK | PSH, 20).s(ACK | PSH, 20, seq=SISN + 1)
    assert result(f) == ("S1", "ShADdt")


def test_keepalive_one_byte_counts_as_retransmission():
    f = Flow().handshake().c(ACK | PSH, 10).s(ACK).c(ACK, 1, seq=CISN + 10)
    assert result(f) == ("S1", "ShADaT")


def test_syn_with_data_is_marked_retransmitted():
    # init_endpoint sets last_seq past the SYN's payload, so update_last_seq sees
    # delta_last == 0 with len > 0 -> 'T' (what Zeek does for TFO-style SYNs).
    assert result(Flow().c(SYN, 20)) == ("S0", "ST")


def test_zero_window_from_responder():
    f = (
        Flow()
        .handshake()
        .c(ACK | PSH, 100)
        .s(ACK, window=0)  # 'a' (update_history) then 'w' (update_window)
        .s(ACK, window=0)  # second zero window: counter 2, no letter
        .s(ACK, window=8192)
        .c(FIN | ACK)
        .s(FIN | ACK)
        .c(ACK)
    )
    assert result(f) == ("SF", "ShADawFf")


def test_zero_window_on_syn_counts():
    # Only RST packets are excluded; a SYN advertising window 0 is logged.
    assert result(Flow().c(SYN, window=0)) == ("S0", "SW")


def test_zero_window_with_rst_or_after_peer_fin_not_logged():
    assert result(Flow().handshake().c(RST | ACK, window=0)) == ("RSTO", "ShAR")
    # The responder's zero window after the originator's FIN (peer CLOSED) is boring.
    f = Flow().handshake().c(ACK | PSH, 10).c(FIN | ACK).s(ACK, window=0).s(FIN | ACK)
    assert result(f) == ("SF", "ShADFaf")


def test_zero_window_repeats_at_ten():
    f = Flow().handshake()
    for _ in range(10):
        f.c(ACK, window=0)
    assert result(f) == ("S1", "ShAWW")


def test_content_gap_acked_but_unseen_data():
    # Client data [1,101) and [201,301); the server acks 301 -> the reassembler's
    # Undelivered() reports the hole [101,201) -> endpoint Gap() -> 'G' (client side).
    f = (
        Flow()
        .handshake()
        .c(ACK | PSH, 100)
        .c(ACK | PSH, 100, seq=CISN + 201)
        .s(ACK)  # acks CISN + 301
        .c(FIN | ACK)
        .s(FIN | ACK)
        .c(ACK)
    )
    assert result(f) == ("SF", "ShADaGFf")


def test_content_gap_on_responder_side_is_lower_case():
    f = (
        Flow()
        .handshake()
        .c(ACK | PSH, 10)
        .s(ACK | PSH, 50, seq=SISN + 1 + 100)  # server bytes [1,101) never seen
        .c(ACK)
    )  # client acks SISN + 151
    assert result(f) == ("S1", "ShADdg")


def test_gaps_logged_exponentially():
    f = Flow().handshake()
    for i in range(10):
        base = CISN + 1 + 20 * i
        f.c(ACK | PSH, 10, seq=base + 10)  # skip 10 bytes each time
        f.s(ACK)  # ack reveals one hole per round
    assert result(f) == ("S1", "ShADaGG")


def test_no_gap_reported_for_rst_ack():
    # The ack in a RST packet still trims, but the sender is in RESET, so the
    # connection is not "established or cleanly closing": no 'g'.
    f = Flow().handshake().c(ACK | PSH, 10).s(RST | ACK, ack=CISN + 1 + 500)
    assert result(f) == ("RSTR", "ShADr")


def test_snaplen_truncated_payload_becomes_a_gap():
    # TCP_Endpoint::DataSent: caplen < len -> not given to the reassembler
    # ("truncated_tcp_payload"), so the peer's ack reveals a content gap.
    f = Flow().handshake().c(ACK | PSH, 100, truncated=True).s(ACK).c(FIN | ACK).s(FIN | ACK).c(ACK)
    assert result(f) == ("SF", "ShADaGFf")


def test_bad_checksum_only_packet():
    # Zeek docs (Connection Handling, 8.2): syn-bad.pcap -> history "C", OTH;
    # the packet is not processed further.
    z = Flow().c(SYN, checksum_ok=False).zeek()
    assert (z.conn_state(), z.history()) == ("OTH", "C")


def test_bad_checksum_ignored_with_ignore_checksums():
    assert result(Flow().c(SYN, checksum_ok=False), ignore_checksums=True) == ("S0", "S")


def test_bad_checksums_repeat_at_ten_and_unverifiable_is_fine():
    f = Flow().handshake()
    for _ in range(10):
        f.s(ACK | PSH, 10, seq=SISN + 1, checksum_ok=False)
    f.c(ACK, ack=SISN + 1, checksum_ok=None)  # not verifiable: processed normally
    assert result(f) == ("S1", "ShAcc")
    # Acknowledging the dropped bytes reveals a content gap: Zeek never saw them.
    f.c(ACK)  # acks SISN + 11
    assert result(f) == ("S1", "ShAccg")


# ----------------------------------------------------------------------------------
# Other letters and details.
# ----------------------------------------------------------------------------------


def test_multi_flag_syn_fin_is_q():
    # bits_set > 1 without FIN+RST -> 'Q'; the state machine still sees SYN then FIN.
    assert result(Flow().c(SYN | FIN)) == ("SH", "Q")


def test_fin_rst_is_i():
    assert result(Flow().handshake().c(FIN | RST | ACK)) == ("RSTO", "ShAI")


def test_fin_with_data_logs_only_f():
    f = Flow().handshake().c(FIN | ACK | PSH, 50).s(FIN | ACK).c(ACK)
    assert result(f) == ("SF", "ShAFf")


def test_states_exposed_and_no_packets():
    z = ZeekState()
    assert (z.conn_state(), z.history(), z.orig_is_client) == ("OTH", "", None)
    z = Flow().c(SYN).zeek()
    assert z.endpoint_states() == (TCP_SYN_SENT, 0)
    z = Flow().handshake().zeek()
    assert z.endpoint_states() == (TCP_ESTABLISHED, TCP_ESTABLISHED)


def test_sequence_wraparound_no_spurious_letters():
    # Client ISN just below 2**32: data crosses the wrap; no 't' or 'g' appear.
    f = Flow(cisn=M32 - 50).handshake()
    for _ in range(5):
        f.c(ACK | PSH, 30)
        f.s(ACK)
    f.c(FIN | ACK).s(FIN | ACK).c(ACK)
    assert result(f) == ("SF", "ShADaFf")


def test_relative_sequence_numbers_are_get_relative_seq():
    """The shortcut of ``_relative`` (no wrap counted, none to count) gives what Zeek's
    get_relative_seq() gives (``_get_relative_seq``, written as Zeek writes it), around
    every edge: below the start (underflow), across 2**31 and 2**32, with and without
    wraps counted."""
    import random

    from pcapcheck.tcp.zeek import _get_relative_seq, _relative

    rng = random.Random(9293)
    edges = [0, 1, 2, (1 << 31) - 1, 1 << 31, (1 << 31) + 1, (1 << 32) - 2, (1 << 32) - 1]

    def near(x: int) -> int:
        return (
            x + rng.choice([0, 0, 1, -1, 100, -100, 1 << 31, rng.randrange(1 << 32)])
        ) & 0xFFFFFFFF

    underflows = 0
    for _ in range(30000):
        start = rng.choice(edges + [rng.randrange(1 << 32)])
        last = near(start)
        cur = near(rng.choice([start, last]))
        wraps = rng.choice([0, 0, 0, 1, 2])
        expected = _get_relative_seq(start, cur, last, wraps)
        assert _relative(start, cur, last, wraps) == expected, (start, cur, last, wraps)
        underflows += expected[1]
    assert underflows > 1000


# --------------------------------------------------------------------------- tunnels
# docs/semantics.md "Zeek's view of the same traffic": the conn_state and history of a
# tunnelled connection are those of its inner TCP connection, as for an untunnelled one.

TUNNELS = [
    "geneve.pcap",
    "gre_ipv4.pcap",
    "gretap_ipv6.pcap",
    "gtpu.pcap",
    "ip6tnl_ipv4.pcap",
    "ip6tnl_ipv6.pcap",
    "ipip.pcap",
    "sit_6in4.pcap",
    "teredo.pcap",
    "vxlan.pcap",
]


def _zeek_columns(name: str, fast: bool) -> list[tuple]:
    from conftest import SAMPLES

    from pcapcheck.catalog.rules import load_catalog
    from pcapcheck.pipeline import analyze_file

    catalog = load_catalog()
    result = analyze_file(SAMPLES / "encap" / name, catalog, catalog.select(None, None), fast=fast)
    return [
        (c["id"], c["conn_state"], c["history"], c.get("encapsulation") is not None)
        for c in result.connections
    ]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("name", TUNNELS)
def test_inner_connections_of_tunnels_have_zeeks_conn_state(name, fast):
    # connection 1: the clean conversation (frames 1-10), as in eth_ipv4.pcap; connection
    # 2: SYN, a SYN-ACK acknowledging the client's ISN (HS002), the client's RST (frame
    # 13): Zeek's conn_state() gives RSTO (the responder is not INACTIVE after its
    # SYN-ACK), history S h R
    assert _zeek_columns("eth_ipv4.pcap", fast) == [(1, "SF", "ShADdFaf", False)]
    assert _zeek_columns(name, fast) == [
        (1, "SF", "ShADdFaf", True),
        (2, "RSTO", "ShR", True),
    ]


def test_the_same_4_tuple_in_one_link_layer_session_is_merged_as_pcapcheck_reads_it():
    # PPPoE sessions are no tunnel identity: the failed handshake reuses the closed
    # connection's ISN, so pcapcheck merges it (HS005, CL009) where Zeek's IsReuse()
    # would split it (docs/semantics.md); the columns are Zeek's for all its packets
    assert _zeek_columns("pppoe_ipv4.pcap", True) == [(1, "SF", "ShADdFafR", False)]


@pytest.mark.parametrize("fast", [True, False])
def test_a_refused_syn_retried_with_the_same_isn_is_one_connection(fast):
    # frames 1-2: SYN, RST,ACK; frames 3-4, 1 s later: the same ISN, refused again.
    # Zeek's IsReuse() would log two "REJ Sr" lines (a side has sent an RST); pcapcheck
    # reads one attempt sent twice (HS005 at frame 3) and gives Zeek's columns for all
    # four packets: the SYN and the RST at an unchanged relative seq are logged once
    from conftest import SAMPLES

    from pcapcheck.catalog.rules import load_catalog
    from pcapcheck.pipeline import analyze_file

    catalog = load_catalog()
    name = SAMPLES / "crafted" / "hs005_syn-retransmitted_after_rst.pcap"
    result = analyze_file(name, catalog, catalog.select(None, None), fast=fast)
    assert [(c["id"], c["conn_state"], c["history"]) for c in result.connections] == [
        (1, "REJ", "Sr")
    ]
    assert sorted((f.rule, f.frame) for f in result.findings) == [("HS005", 3), ("HS011", 2)]
