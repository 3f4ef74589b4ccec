#!/usr/bin/env python3
"""Write the capture-artefact samples into sample_pcaps/artefacts/.

Issue 3: what the *capture* gets wrong (loss in the capture, duplicates, reordering by
the capture point, snaplen, checksum offload, TSO/GRO, one-sided and midstream captures,
sequence wrap, a clock going backwards) must be recognised as such and never blamed on
the endpoints; malformed input must give a one-line error or a CP005/CP006 finding.

Three kinds of files:

* ``artefact_*.pcap``: crafted packet by packet with the Conversation builder of
  ``scripts/craft_captures.py`` (imported, not copied): deterministic, byte-identical
  on every run. Their expected results -- every finding (rule, connection, frame, key
  numbers), the handshake/close verdicts, both final RFC 9293 states and, where
  docs/semantics.md fixes them, the transitions -- are written by hand below from the
  packets, RFC 9293 and docs/semantics.md, never from pcapcheck's output.
* ``artefact_lo_*``: the real Linux stack on loopback (127.0.0.1 only), recorded with
  tcpdump by ``--record`` (needs root). Not reproducible byte for byte (ISNs, ports,
  timing); their manifest entries (``RECORDED_MANIFEST`` below) were written by reading
  the shipped files with ``tcpdump -nr F -S -vv``. Re-recording means re-reading them.
* ``bad/``: malformed inputs for tests/test_malformed.py (not in the manifest).

Usage::

    python scripts/craft_artefacts.py [OUTDIR]          # crafted + bad/ + manifest + README
    sudo python scripts/craft_artefacts.py --record [NAME ...]   # re-record loopback ones
    python scripts/craft_artefacts.py --list            # list the loopback scenarios
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import craft_captures as cc
from craft_captures import (
    ACK,
    BASE_SEC,
    CLIENT_IP6,
    CLOSED,
    CW,
    EST,
    FW1,
    FW2,
    LA,
    LISTEN,
    SERVER_IP6,
    SYN_RCVD,
    SYN_SENT,
    TW,
    C,
    Capture,
    Case,
    Conversation,
    F,
    ones_sum,
    yval,
)

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "sample_pcaps" / "artefacts"


# --------------------------------------------------------------------------- cases


@dataclass
class ACase(Case):
    """A crafted artefact capture and its expected results (see Case).

    ``notes``: how the expectation follows from the packets (also where the capture
    leaves a verdict uncertain); ``wording``: rule -> what its message should say about
    that uncertainty (the lead owns the texts; informational, not tested);
    ``xfail``: test name (findings / connections / endpoints) -> the precise engine
    problem, while the engine gets this capture wrong (tests/test_samples.py turns it
    into ``pytest.mark.xfail(strict=True)``; remove the entry once fixed).
    """

    notes: str = ""
    wording: dict[str, str] = field(default_factory=dict)
    xfail: dict[str, str] = field(default_factory=dict)


CASES: list[ACase] = []


def case(fn):
    CASES.append(fn())
    return fn


def dup_last(cap: Capture, dt_us: int = 0) -> int:
    """Store the last packet again (identical bytes: same IP ID, seq, TCP timestamps),
    dt_us later: the capture point saw it twice."""
    t, data = cap.records[-1]
    cap.records.append([t + dt_us, data])
    cap.t = t + dt_us
    return len(cap.records)


def trans(client: list, server: list) -> dict[str, list]:
    return {"client": client, "server": server}


def std_close_trans(f_c_fin: int, f_s_ack: int, f_s_fin: int, f_c_ack: int) -> tuple[list, list]:
    """A client-first 4-way close: (client, server) transitions."""
    return (
        [[f_c_fin, EST, FW1], [f_s_ack, FW1, FW2], [f_s_fin, FW2, TW]],
        [[f_c_fin, EST, CW], [f_s_fin, CW, LA], [f_c_ack, LA, CLOSED]],
    )


def open_trans(f_syn: int, f_synack: int, f_ack: int) -> tuple[list, list]:
    return (
        [[f_syn, CLOSED, SYN_SENT], [f_synack, SYN_SENT, EST]],
        [[f_synack, LISTEN, SYN_RCVD], [f_ack, SYN_RCVD, EST]],
    )


# =========================================================================== loss in the capture


@case
def loss_acked_hole():
    cap = Capture()
    c = Conversation(cap)
    f = list(c.handshake())
    c.data("c", 100)
    c.data("s", 1448, flags=ACK)  # rel 1..1449
    c.data("s", 1448, flags=ACK, capture=False)  # 1449..2897: on the wire only
    f6 = c.data("s", 1448)  # 2897..4345: starts after the hole
    f7 = c.ack("c")  # ack 4345 covers the hole
    g = list(c.close("c"))
    oc, os_ = open_trans(*f)
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_loss_acked_hole.pcap",
        "The server's middle segment (rel seq 1449-2896) is not in the capture; the server's next segment (frame 6, seq 2897) starts after the hole, and the client's ACK (frame 7) acknowledges 4345, i.e. the missing bytes too: the capture lost them, the endpoints did not.",
        cap,
        [F("CP002", 1, f7, ack=4345)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="CP002",
        shows="hole in the server's data, later segment first, then the ACK covering it",
        notes=f"docs/semantics.md decision 15: CP002 points at the ACK that first covers bytes never seen (frame {f7}); the hole is visible from frame {f6} on, but only the ACK proves the bytes were sent and received. Not SQ001 (the hole explains the ACK), not SQ002/SQ006.",
    )


@case
def loss_burst_ack_first():
    cap = Capture()
    c = Conversation(cap)
    f = list(c.handshake())
    c.data("c", 100)
    c.data("s", 1448, flags=ACK)  # 1..1449
    for _ in range(3):  # 1449..5793 not captured
        c.data("s", 1448, flags=ACK, capture=False)
    f6 = c.ack("c", dt=0.0005)  # acks 5793
    f7 = c.data("s", 1000)  # 5793..6793: confirms the hole
    c.ack("c")
    g = list(c.close("c"))
    oc, os_ = open_trans(*f)
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_loss_burst_ack_first.pcap",
        "Three consecutive server segments (rel seq 1449-5792) are missing from the capture; the client's ACK of 5793 (frame 6) comes first, the server's next segment (frame 7, seq 5793) then confirms they were sent.",
        cap,
        [F("CP002", 1, f6, ack=5793, seen_max=1449)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="CP002",
        shows="burst of 3 segments lost by the capture, ACK before the confirming segment",
        notes=f"At frame {f6} the ACK is beyond anything the server was seen sending (SQ001 would be the verdict if the server went on from 1449); frame {f7} continuing at 5793 settles it as capture loss: one CP002 at the ACK, no SQ001.",
    )


@case
def loss_hole_unacked():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 500, flags=ACK)  # 1..501
    c.data("c", 500, flags=ACK, capture=False)  # 501..1001 not captured
    f5 = c.data("c", 500)  # 1001..1501: after the hole
    return ACase(
        "artefact_loss_hole_unacked.pcap",
        "The client uploads three 500-byte segments back to back; the middle one (rel seq 501-1000) is not in the capture, and the capture stops before the server acknowledges anything: a hole in one direction's sequence space that nothing else explains.",
        cap,
        [F("CP002", 1, f5, seen_max=501), F("CL008", 1, f5, idle=0.0)],
        [C(1, c, "complete", "open", EST, EST)],
        rules="CP002 (+CL008 info)",
        shows="hole in the client's sequence space, never acknowledged",
        notes=f"Frame {f5} starts 500 bytes after the last byte seen: the sender numbered them, so it sent them, but whether they were lost before the capture point (network loss, the server will ask for them again) or only by the capture cannot be told: CP002 at the frame after the hole. The data is still in flight at the end (the server sent nothing after it): no SQ003 (docs/semantics.md). Open at the end: CL008 (info).",
        wording={
            "CP002": "must say the verdict is uncertain: the 500 bytes were never acknowledged, so they may have been lost on the network before the capture point or by the capture itself"
        },
    )


@case
def loss_fin_implied():
    cap = Capture()
    c = cc.opened(cap)
    f7 = c.fin("c", dt=0.005)
    f8 = c.ack("s")
    c.fin("s", dt=0.0002, capture=False)  # the server's FIN: not captured
    f9 = c.ack("c")  # ack 1002 proves it
    oc, os_ = open_trans(1, 2, 3)
    note = f"(the server's FIN, implied by frame {f9})"
    return ACase(
        "artefact_loss_fin_implied.pcap",
        "The server's FIN (rel seq 1001) is missing from the capture; the client's last ACK (frame 9) acknowledges 1002, which only the FIN can explain. The state machines carry on from what that ACK proves.",
        cap,
        [F("CP002", 1, f9, ack=1002, seen_max=1001)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(
            oc + [[f7, EST, FW1], [f8, FW1, FW2], [f9, FW2, TW]],
            os_ + [[f7, EST, CW], [f9, CW, LA], [f9, LA, CLOSED]],
        ),
        rules="CP002",
        shows="second FIN implied by the peer's ACK",
        notes=f"docs/semantics.md: a segment missing from the capture but proven by the peer's acknowledgment is replayed at the frame that proves it {note}: server CLOSE-WAIT -> LAST-ACK (snd FIN, not captured) and client FIN-WAIT-2 -> TIME-WAIT at frame {f9}, then the same ACK takes the server LAST-ACK -> CLOSED. close: graceful (both FINs were sent). No CL001/CL003/CL004.",
    )


@case
def loss_synack_implied():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    c.synack("s", capture=False)  # not captured
    f2 = c.ack("c")  # proves it (ack = server ISN+1)
    c.exchange()
    g = list(c.close("c"))
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_loss_synack_implied.pcap",
        "The server's SYN-ACK is missing from the capture; the client's ACK (frame 2, ack = server ISN+1) proves it was sent and received. Otherwise a clean connection.",
        cap,
        [F("CP002", 1, f2, ack=1)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(
            [[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST]] + cc_,
            [[f2, LISTEN, SYN_RCVD], [f2, SYN_RCVD, EST]] + cs,
        ),
        rules="CP002",
        shows="SYN-ACK implied by the client's ACK",
        notes=f"The SYN-ACK is replayed at frame {f2} (docs/semantics.md): server LISTEN -> SYN-RECEIVED (snd SYN,ACK, not captured), client SYN-SENT -> ESTABLISHED (rcv SYN,ACK, not captured), then the ACK itself completes the server's handshake on the same frame. Not HS001 (the SYN was answered), not HS003, not HS008 (no SYN-ACK is in the capture at all). The server's relative numbers start at its ISN = ACK-1.",
    )


# =========================================================================== duplicates


@case
def dup_twice():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    d2 = dup_last(cap, 2)  # SYN twice (2 us apart)
    f3 = c.synack("s")
    f4 = c.ack("c")
    f5 = c.data("c", 100)
    d6 = dup_last(cap, 0)  # request twice (same timestamp)
    c.data("s", 1000)
    f8 = c.ack("c")
    d9 = dup_last(cap, 3)  # pure ACK twice
    f10 = c.fin("c", dt=0.005)
    d11 = dup_last(cap, 1)  # FIN twice
    f12 = c.ack("s")
    f13 = c.fin("s", dt=0.0002)
    f14 = c.ack("c")
    d15 = dup_last(cap, 4)  # last ACK twice, after the close
    return ACase(
        "artefact_dup_twice.pcap",
        "Five packets are each stored twice by the capture point (identical bytes: same IP ID, seq, ack, window, TCP timestamps; 0-4 us apart, as a mirror port or 'any' device over a bridge does): the SYN, the request, a pure ACK, the client's FIN and the final ACK (after the close).",
        cap,
        [
            F("CP008", 1, d2, original_frame=f1),
            F("CP008", 1, d6, original_frame=f5),
            F("CP008", 1, d9, original_frame=f8),
            F("CP008", 1, d11, original_frame=f10),
            F("CP008", 1, d15, original_frame=f14),
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(
            [
                [f1, CLOSED, SYN_SENT],
                [f3, SYN_SENT, EST],
                [f10, EST, FW1],
                [f12, FW1, FW2],
                [f13, FW2, TW],
            ],
            [
                [f3, LISTEN, SYN_RCVD],
                [f4, SYN_RCVD, EST],
                [f10, EST, CW],
                [f13, CW, LA],
                [f14, LA, CLOSED],
            ],
        ),
        rules="CP008",
        shows="SYN, data, ACK, FIN and last ACK each captured twice",
        notes="A copy is the same IP datagram (same IPv4 ID and TCP timestamps): CP008 at the copy, which every other rule ignores: not HS005 (SYN), not SQ002 (data), not CL006 (FIN), not CL009 (the copy of the last ACK after the close). Transitions as without the copies.",
    )


@case
def dup_four():
    cap = Capture()
    c = Conversation(cap)
    f = list(c.handshake())
    c.data("c", 100)
    f5 = c.data("s", 1448, flags=ACK)
    d = [dup_last(cap, 1), dup_last(cap, 1), dup_last(cap, 1)]  # 4 copies in all
    c.data("s", 552)
    c.ack("c")
    g = list(c.close("c"))
    oc, os_ = open_trans(*f)
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_dup_four.pcap",
        "The server's first response segment (frame 5, rel seq 1-1448) is in the capture four times (identical bytes, 1 us apart: e.g. two merged captures of a mirrored link).",
        cap,
        [F("CP008", 1, x, original_frame=f5) for x in d],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="CP008",
        shows="one segment captured four times",
        notes="Three CP008, each naming frame 5 as the original; never SQ002 (no retransmission happened: one IP datagram).",
    )


@case
def dup_ipv6():
    cap = Capture()
    c = Conversation(cap, client=CLIENT_IP6, server=SERVER_IP6, ipv6=True)
    f = list(c.handshake())
    f4 = c.data("c", 100)
    d5 = dup_last(cap, 2)
    c.data("s", 1000)
    c.ack("c")
    g = list(c.close("c"))
    oc, os_ = open_trans(*f)
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_dup_ipv6.pcap",
        "IPv6 (no IP ID): the client's request is stored twice, 2 us apart; the TCP timestamps are identical, so it is the same segment seen twice.",
        cap,
        [F("CP008", 1, d5, original_frame=f4)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="CP008",
        shows="IPv6 duplicate recognised by its TCP timestamps",
        notes="CP008's rule text: without an IP ID (IPv6) the TCP timestamp does the job. Not SQ002.",
    )


# =========================================================================== capture reordering


def reorder_synack(name: str, gap_us: int, desc: str) -> ACase:
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    c.synack("s")
    # The capture point stored the SYN-ACK first, gap_us before the SYN (per-queue
    # timestamps of a multi-queue NIC, or merged captures with unsynchronised clocks).
    (t1, syn), (_t2, synack) = cap.records
    cap.records = [[t1, synack], [t1 + gap_us, syn]]
    c.ack("c")
    c.exchange()
    c.close("c")
    return ACase(
        name,
        desc,
        cap,
        [F("CP009", 1, 2, early_frame=1, gap=gap_us * 1e-6)],
        [C(1, c, "complete", "graceful", TW, CLOSED, roles_inferred=False)],
        rules="CP009",
        shows=f"SYN-ACK stored before its SYN ({gap_us} us)",
        notes="CP009 (info) at frame 2: the capture reordered the two. The SYN (frame 2) is in the capture, so there is no HS008 and the client is the sender of the SYN (roles_inferred: false). A SYN with the ISN the SYN-ACK acknowledges, right after it, is the SYN that SYN-ACK answers, not a retransmission (no HS005) and not a new attempt. Transitions are not fixed by docs/semantics.md for a reordered capture; the natural reading (the one it uses for crossing segments) attributes what the capture shows late to the later frame: client CLOSED -> SYN-SENT -> ESTABLISHED and server LISTEN -> SYN-RECEIVED all at frame 2, server ESTABLISHED at frame 3.",
    )


CASES.append(
    reorder_synack(
        "artefact_reorder_synack_first.pcap",
        3,
        "The capture stored the SYN-ACK (frame 1) 3 us before the SYN it answers (frame 2); the rest is a clean connection.",
    )
)
CASES.append(
    reorder_synack(
        "artefact_reorder_synack_same_ts.pcap",
        0,
        "The capture stored the SYN-ACK (frame 1) before the SYN it answers (frame 2), both with the same timestamp; the rest is a clean connection.",
    )
)


@case
def reorder_ack_before_data():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    c.data("s", 1000)
    c.ack("c")
    cap.swap_last_two(5)  # ACK stored 5 us before the data
    c.close("c")
    return ACase(
        "artefact_reorder_ack_before_data.pcap",
        "The client's ACK of the server's 1000-byte response (ack 1001) is stored 5 us before the response itself (frames 5 and 6 swapped by the capture point).",
        cap,
        [F("CP009", 1, 6, early_frame=5, gap=5e-06)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP009",
        shows="ACK stored just before the data it acknowledges",
        notes="The data follows the ACK within microseconds with no hole: the capture reordered them (CP009, info, at the data); not SQ001 (nothing unsent was acknowledged), not CP002 (nothing is missing).",
    )


@case
def reorder_ack_before_fin():
    cap = Capture()
    c = cc.opened(cap)
    c.fin("c", dt=0.005)
    c.ack("s")
    c.fin("s", dt=0.0002)
    c.ack("c")
    cap.swap_last_two(5)  # the ACK of the FIN stored first
    return ACase(
        "artefact_reorder_ack_before_fin.pcap",
        "Client-first close; the client's ACK of the server's FIN (ack 1002, frame 9) is stored 5 us before that FIN (frame 10).",
        cap,
        [F("CP009", 1, 10, early_frame=9, gap=5e-06)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP009",
        shows="ACK stored just before the FIN it acknowledges",
        notes="The FIN arrives 5 us after its ACK (CP009, info, at the FIN): a FIN the capture only shows late, not a missing FIN (no CP002, no FIN implied by the ACK) and not a retransmitted FIN (no CL006). Final states as for the unswapped capture.",
    )


# =========================================================================== snaplen


def snap_conversation(cap: Capture) -> Conversation:
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    c.data("s", 1448, flags=ACK)
    c.data("s", 1448, flags=ACK)
    c.data("s", 104)
    c.ack("c")
    c.data("c", 200, dt=0.01)
    c.data("s", 500)
    c.ack("c")
    c.close("c")
    return c


def snap_case(name: str, snaplen: int, desc: str, shows: str) -> ACase:
    cap = Capture(snaplen=snaplen)
    c = snap_conversation(cap)
    cut = [i + 1 for i, (_t, d) in enumerate(cap.records) if len(d) > snaplen]
    findings = [F("CP003", None, cut[0], count=len(cut), snaplen=snaplen)] if cut else []
    return ACase(
        name,
        desc,
        cap,
        findings,
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(
            [
                [1, CLOSED, SYN_SENT],
                [2, SYN_SENT, EST],
                [12, EST, FW1],
                [13, FW1, FW2],
                [14, FW2, TW],
            ],
            [
                [2, LISTEN, SYN_RCVD],
                [3, SYN_RCVD, EST],
                [12, EST, CW],
                [14, CW, LA],
                [15, LA, CLOSED],
            ],
        ),
        rules="CP003" if cut else "-",
        shows=shows,
        notes="Same packets as artefact_snaplen_reference.pcap: the verdicts, states and transitions must be identical; payload lengths come from the IP total length. The only extra finding is the file-level CP003 (count = packets longer than the snaplen).",
    )


CASES.append(
    snap_case(
        "artefact_snaplen_reference.pcap",
        262144,
        "Reference for the snaplen artefacts: handshake, 100-byte request, 3000-byte response in three segments, a 200-byte second request, 500-byte response, client-first close; nothing cut.",
        "uncut reference of the snaplen captures",
    )
)
CASES.append(
    snap_case(
        "artefact_snaplen_in_options.pcap",
        60,
        "artefact_snaplen_reference captured with snaplen 60 (Ethernet 14 + IPv4 20 + 26 bytes of TCP): every packet is cut inside its TCP options (SYNs keep MSS and SACK-permitted, lose timestamps and window scale; other segments keep NOP NOP and half the timestamp option) and all payload is cut.",
        "headers cut inside the TCP options",
    )
)
CASES.append(
    snap_case(
        "artefact_snaplen_in_payload.pcap",
        96,
        "artefact_snaplen_reference captured with snaplen 96: headers complete, every data segment's payload cut after 30 bytes.",
        "payload cut, headers complete",
    )
)


# =========================================================================== checksum offload


@case
def checksum_offload():
    cap = Capture()
    c, f = cc.build_clean_handshake_close(cap)
    bad = []
    for i, (t, data) in enumerate(cap.records):
        if data[26:30] != bytes(map(int, c.ip["c"].split("."))):
            continue  # only the client's segments
        ihl = (data[14] & 0x0F) * 4
        total = struct.unpack("!H", data[16:18])[0]
        seg = data[14 + ihl : 14 + total]
        pseudo = data[26:34] + struct.pack("!BBH", 0, 6, len(seg))
        partial = ones_sum(pseudo)  # CHECKSUM_PARTIAL: pseudo-header sum only
        b = bytearray(data)
        b[14 + ihl + 16 : 14 + ihl + 18] = struct.pack("!H", partial)
        cap.records[i] = [t, bytes(b)]
        bad.append(i + 1)
    oc, os_ = open_trans(f[0], f[1], f[2])
    cc_, cs = std_close_trans(f[6], f[7], f[8], f[9])
    return ACase(
        "artefact_checksum_offload.pcap",
        "clean_handshake_close captured on the client with checksum offload: every client segment carries only the pseudo-header sum in its TCP checksum field (Linux CHECKSUM_PARTIAL), the server's are correct.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        findings_when_enabled=[F("CP004", None, bad[0], count=len(bad), first_frame=bad[0])],
        rules="CP004 (disabled by default)",
        shows="client checksums left to the NIC",
        notes=f"Wrong checksums on one side only mean offload at the capture host, not corruption: the segments are analysed normally and nothing is reported unless CP004 is selected (then one file-level CP004, count {len(bad)}, first frame {bad[0]}).",
    )


# =========================================================================== TSO / GRO


@case
def tso_gro():
    cap = Capture()
    c = Conversation(cap)
    f = list(c.handshake())  # MSS 1460 both ways
    c.data("c", 100, window=4000)  # client window 4000 << 7 = 512000
    big = 65535 - 20 - 32  # largest IPv4 TSO/GRO segment: 65483
    c.data("s", big, flags=ACK)
    c.ack("c", window=4000)
    c.data("s", big, flags=ACK)
    c.data("s", big, flags=ACK)
    c.ack("c", window=4000)
    c.data("s", 1448)
    c.ack("c", window=4000)
    g = [
        c.fin("c", dt=0.005, window=4000),
        c.ack("s"),
        c.fin("s", dt=0.0002),
        c.ack("c", window=4000),
    ]
    oc, os_ = open_trans(*f)
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_tso_gro.pcap",
        "Both SYNs announce MSS 1460, but the server's segments in the capture are 65483 bytes long (IPv4 total length 65535), as captured before TSO on the sender or after GRO on the receiver; the client (window 512000) acknowledges each aggregate.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="-",
        shows="64 KB segments with MSS 1460",
        notes="Segments larger than the MSS are what the capture host's offloads (TSO/GSO on the sender, GRO/LRO on the receiver) show; the wire carried MSS-sized segments. Nothing to report: no retransmission, no loss.",
    )


# =========================================================================== keep-alives and probes


@case
def keepalive_half_close():
    cap = Capture()
    c = Conversation(cap)
    f = list(c.handshake())
    c.exchange()
    c.ack("c", seq=c.nxt["c"] - 1, dt=45.0)  # Linux keep-alive: len 0 at SND.NXT-1
    c.ack("s")
    c.data(
        "s", 1, flags=ACK, seq=c.nxt["s"] - 1, dt=45.0
    )  # BSD keep-alive: 1 old byte at SND.NXT-1
    c.ack("c")
    f11 = c.fin("c", dt=1.0)  # half-close
    f12 = c.ack("s")
    c.ack("c", seq=c.nxt["c"] - 1, dt=45.0)  # keep-alive in FIN-WAIT-2: seq = FIN's seq
    c.ack("s")
    c.data("s", 1, flags=ACK, seq=c.nxt["s"] - 1, dt=45.0)  # keep-alive from CLOSE-WAIT, 1 byte
    c.ack("c")
    f17 = c.fin("s", dt=1.0)
    f18 = c.ack("c")
    oc, os_ = open_trans(*f)
    return ACase(
        "artefact_keepalive_half_close.pcap",
        "Idle connection with keep-alives: a len-0 keep-alive at SND.NXT-1 (client) and a 1-byte one (server), both ACKed; then the client half-closes, and keep-alives go on: the client's in FIN-WAIT-2 carries its FIN's sequence number (SND.NXT-1 after the FIN), the server's 1-byte one comes from CLOSE-WAIT; then the server closes.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(
            oc + [[f11, EST, FW1], [f12, FW1, FW2], [f17, FW2, TW]],
            os_ + [[f11, EST, CW], [f17, CW, LA], [f18, LA, CLOSED]],
        ),
        rules="-",
        shows="keep-alives len 0/1 before and after a half-close",
        notes="RFC 9293 section 3.8.4: a keep-alive has SEG.SEQ = SND.NXT-1 and 0 or 1 garbage octet. The client's keep-alive after its FIN has the FIN's seq and no data: not a retransmitted FIN (no FIN flag, no CL006), not data after FIN (no CL005). The 1-byte ones are not retransmissions (no SQ002).",
    )


@case
def zero_window_probe():
    cap = Capture()
    c = Conversation(cap)
    f = list(c.handshake())
    c.data("c", 100)
    c.data("s", 1448, flags=ACK)
    c.data("s", 1448)
    f7 = c.ack("c", window=0)  # receive buffer full
    c.data("s", 1, flags=ACK, dt=0.2, deliver=False, advance=False)  # probe: 1 new byte at SND.NXT
    c.ack("c", window=0)  # dropped, window still 0
    c.data("s", 1, flags=ACK, dt=0.4, deliver=False, advance=False)  # backed-off probe, same byte
    c.ack("c", window=0)
    c.ack("c", dt=0.3)  # window update
    c.data("s", 1000)  # from SND.NXT: the probe byte and more
    c.ack("c")
    g = list(c.close("c"))
    oc, os_ = open_trans(*f)
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_zero_window_probe.pcap",
        "The client advertises a zero window (frame 7); the server probes it twice with 1 new byte at SND.NXT (rel seq 2897, RFC 9293 section 3.8.6.1 persist timer), the client drops each and answers ack 2897 window 0; after the window update the server sends 1000 bytes from 2897.",
        cap,
        [F("SQ005", 1, f7)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="SQ005 (info)",
        shows="1-byte zero-window probes at SND.NXT",
        notes="A zero-window probe does not advance the sender's sequence space (the receiver drops it; Wireshark: 'ZeroWindowProbes are special and don't really advance the nextseq'): the repeated probe is not a retransmission, and the 1000 bytes from 2897 after the window update are new data, not a retransmission of the probe byte (no SQ002). One zero-window episode: one SQ005.",
    )


# =========================================================================== one-sided


def one_sided_base(cap: Capture) -> tuple[Conversation, list[str]]:
    c = Conversation(cap)
    senders = []
    for side, fn in (
        ("c", lambda: c.syn("c")),
        ("s", lambda: c.synack("s")),
        ("c", lambda: c.ack("c")),
        ("c", lambda: c.data("c", 100)),
        ("s", lambda: c.data("s", 1448, flags=ACK)),
        ("s", lambda: c.data("s", 552)),
        ("c", lambda: c.ack("c")),
        ("c", lambda: c.fin("c", dt=0.005)),
        ("s", lambda: c.ack("s")),
        ("s", lambda: c.fin("s", dt=0.0002)),
        ("c", lambda: c.ack("c")),
    ):
        fn()
        senders.append(side)
    return c, senders


@case
def one_sided_client():
    cap = Capture()
    c, senders = one_sided_base(cap)
    cap.records = [r for r, s in zip(cap.records, senders) if s == "c"]
    return ACase(
        "artefact_one_sided_client.pcap",
        "Only the client -> server direction of a clean connection (SYN, ACK, request, ACK of a 2000-byte response, FIN, last ACK): the server's side is proven by the client's acknowledgments.",
        cap,
        [F("CP007", 1, 1, seen="client to server")],
        [C(1, c, "complete", "graceful", TW, CLOSED, roles_inferred=False)],
        rules="CP007",
        shows="client direction only",
        notes="As crafted/cp007: the server's SYN-ACK, data and FIN are implied by the client's acks; the client's last ACK acknowledges the server's FIN, so the server ends CLOSED. Nothing the silent side 'failed' to send is reported (no HS003, CL001, CL004, SQ001).",
    )


@case
def one_sided_server():
    cap = Capture()
    c, senders = one_sided_base(cap)
    cap.records = [r for r, s in zip(cap.records, senders) if s == "s"]
    return ACase(
        "artefact_one_sided_server.pcap",
        "Only the server -> client direction of the same connection (SYN-ACK, 2000-byte response in two segments, ACK of the client's FIN, the server's FIN): the client's side is proven by the server's acknowledgments.",
        cap,
        [F("CP007", 1, 1, seen="server to client")],
        [C(1, c, "complete", "graceful", TW, LA, roles_inferred=True)],
        rules="CP007",
        shows="server direction only",
        notes="The SYN-ACK acknowledges the client's ISN+1 (its SYN), the response acks 101 (the client completed the handshake and sent 100 bytes), frame 4 acks 102 (the client's FIN): handshake complete, both FINs sent (graceful), client TIME-WAIT after the server's FIN. Nothing shows the client's ACK of the server's FIN, so the server stays in LAST-ACK -- but that ACK would travel in the direction the capture does not have: no CL004 (nor CL001/HS003/SQ003), and no HS008 (the SYN is missing because the whole direction is; CP007 says so). No SYN without ACK was captured: roles_inferred true (the SYN-ACK's sender is the server).",
        wording={
            "CP007": "should say the client's segments (its SYN, handshake ACK, data, FIN and last ACK) are inferred from the server's acknowledgments, and that the server's LAST-ACK at the end only reflects that the client's direction is missing"
        },
    )


# =========================================================================== midstream


@case
def midstream_inflight():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c", capture=False, at=-10.0)
    c.synack("s", capture=False)
    c.ack("c", capture=False)
    c.data("c", 100, capture=False)
    c.data("s", 1448, flags=ACK, capture=False, deliver=False)  # in flight at capture start
    c.data("s", 1448, flags=ACK, capture=False, deliver=False)
    f1 = c.data("s", 1448, at=0.0, deliver=False)  # first captured: rel 2897 from ISN
    c.rcv["c"] = c.isn["s"] + 1 + 1448  # the first of the three arrives
    f2 = c.ack("c")  # acks bytes sent before the capture
    c.rcv["c"] = c.isn["s"] + 1 + 2 * 1448
    c.ack("c")
    c.rcv["c"] = c.isn["s"] + 1 + 3 * 1448
    c.ack("c")
    c.data("c", 200, dt=0.01)
    c.data("s", 500)
    c.ack("c")
    g = list(c.close("c"))
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_midstream_inflight.pcap",
        "The capture starts during a transfer: the first frame is the server's third 1448-byte segment; the client's next ACKs (frames 2-3) acknowledge the two segments sent before the capture started (below the first sequence number seen), frame 4 the captured one; then a request, a response and a client-first close.",
        cap,
        [F("CP001", 1, f1)],
        [C(1, c, "none", "graceful", TW, CLOSED, roles_inferred=True)],
        trans(cc_, cs),
        rules="CP001",
        shows="capture starts with data in flight",
        notes=f"Midstream (docs/semantics.md): both endpoints start ESTABLISHED, relative numbers count from the first segment seen (the server's first seq seen is 0, so the ACKs of frames {f2} and {f2 + 1} acknowledge -1448 and 0: bytes sent before the capture): acknowledging bytes sent before the capture is not an error (no SQ001, no CP002: nothing inside the capture is missing). Roles from the ports (80 is the server).",
        wording={
            "CP001": "should say the acknowledgments of bytes before the first sequence number seen are data sent before the capture started"
        },
    )


@case
def midstream_fin_first():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c", capture=False, at=-30.0)
    c.synack("s", capture=False)
    c.ack("c", capture=False)
    c.data("c", 100, capture=False)
    c.data("s", 1000, capture=False)
    c.ack("c", capture=False)
    f1 = c.fin("c", at=0.0)
    f2 = c.ack("s")
    f3 = c.fin("s", dt=0.0002)
    f4 = c.ack("c")
    return ACase(
        "artefact_midstream_fin_first.pcap",
        "The capture starts with the client's FIN of an established connection (no handshake, no data captured), then the server's ACK, the server's FIN and the client's last ACK.",
        cap,
        [F("CP001", 1, f1)],
        [C(1, c, "none", "graceful", TW, CLOSED, roles_inferred=True)],
        trans(
            [[f1, EST, FW1], [f2, FW1, FW2], [f3, FW2, TW]],
            [[f1, EST, CW], [f3, CW, LA], [f4, LA, CLOSED]],
        ),
        rules="CP001",
        shows="first packet is a FIN",
        notes="Both start ESTABLISHED (midstream); the FIN's seq is relative 0 in the client's space, the server's ACK acknowledges 1. Not HS013 (the FIN's sender is synchronized, only its handshake is not in the capture), not HS008.",
    )


# =========================================================================== sequence wrap


def wrap_conversation(cap: Capture, lose: bool) -> tuple[Conversation, dict[str, int]]:
    """Both ISNs a few KB below 2^32: the wrap happens in the middle of each transfer."""
    c = Conversation(cap, cisn=0xFFFFF000, sisn=0xFFFFE000)
    fr: dict[str, int] = {}
    c.handshake()
    for _ in range(5):  # client upload: wraps at rel 4096
        c.data("c", 1448, flags=ACK)
    c.ack("s")
    for i in range(8):  # server download: wraps at rel 8192
        missing = lose and i == 5  # rel 7241..8689 straddles the wrap
        c.data("s", 1448, flags=ACK, capture=not missing)
        if i == 6:
            fr["after_hole"] = cap.frames
        if i % 2 == 1:
            fr[f"ack{i}"] = c.ack("c")
    g = list(c.close("c"))
    fr.update(fin_c=g[0], ack_s=g[1], fin_s=g[2], ack_c=g[3])
    return c, fr


@case
def seq_wrap_midtransfer():
    cap = Capture()
    c, fr = wrap_conversation(cap, lose=False)
    cc_, cs = std_close_trans(fr["fin_c"], fr["ack_s"], fr["fin_s"], fr["ack_c"])
    oc, os_ = open_trans(1, 2, 3)
    return ACase(
        "artefact_seq_wrap_midtransfer.pcap",
        "ISNs 0xFFFFF000 (client) and 0xFFFFE000 (server): the client's 5 x 1448-byte upload wraps through 0 inside its third segment, the server's 8 x 1448-byte download inside its sixth; clean close.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="-",
        shows="sequence numbers wrap mid-transfer in both directions",
        notes="RFC 9293 section 3.4: sequence arithmetic is modulo 2^32; segments and ACKs across the wrap are ordinary.",
    )


@case
def seq_wrap_loss():
    cap = Capture()
    c, fr = wrap_conversation(cap, lose=True)
    cc_, cs = std_close_trans(fr["fin_c"], fr["ack_s"], fr["fin_s"], fr["ack_c"])
    oc, os_ = open_trans(1, 2, 3)
    return ACase(
        "artefact_seq_wrap_loss.pcap",
        "As artefact_seq_wrap_midtransfer, but the server's sixth segment (rel seq 7241-8688, absolute 0xFFFFFC48-0x000001F0: across the wrap) is not in the capture; the client's ACK of 8689 (rel) comes first, the server's seventh segment (seq 8689) then confirms the hole.",
        cap,
        [F("CP002", 1, fr["ack5"], ack=8689, seen_max=7241)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="CP002",
        shows="capture loss across the sequence wrap",
        notes=f"The hole straddles 2^32; the ACK covering it (frame {fr['ack5']}) is the CP002 (decision 15), frame {fr['after_hole']} (the next server segment) confirms it. Nothing else: the wrap must not turn the hole into an ACK of unsent data (SQ001) or the next segment into a retransmission.",
    )


# =========================================================================== clock going backwards


@case
def time_backwards():
    cap = Capture()
    c = Conversation(cap)
    f = list(c.handshake())
    c.data("c", 100)
    f5 = c.data("s", 1000)
    f6 = c.ack("c")
    c.data("c", 100, dt=0.05)
    c.data("s", 1000)
    c.ack("c")
    g = list(c.close("c"))
    t5 = cap.records[f5 - 1][0]
    cap.records[f6 - 1][0] = t5 - 1_500_000  # 1.5 s before its predecessor
    oc, os_ = open_trans(*f)
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_time_backwards.pcap",
        "Frame 6 (the client's ACK of the response) carries a capture timestamp 1.5 s earlier than frame 5 (its predecessor); the following records continue from frame 5's time. The packets themselves (TCP timestamps, seq/ack) are those of a clean connection.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="-",
        shows="one record 1.5 s earlier than its predecessor",
        notes="Frame order is the capture order; a timestamp going backwards is the capture host's clock (or a merge), not TCP: no finding about the endpoints, and time-based decisions (SQ006 reorder window, idle times) must not turn it into one.",
        wording={
            "-": "no rule covers it today; if one is added (a CP rule) it should say the capture's clock went backwards at frame 6, not the endpoints"
        },
    )


@case
def time_backwards_step():
    cap = Capture()
    c = Conversation(cap)
    f = list(c.handshake())
    c.exchange()
    c.data("c", 100, dt=0.05)
    c.data("s", 1000)
    c.ack("c")
    g = list(c.close("c"))
    step = 3600 * 1_000_000
    for r in cap.records[6:]:  # clock stepped back 1 h after frame 6
        r[0] -= step
    base = cap.records[0][0]
    assert all(r[0] < base for r in cap.records[6:])
    oc, os_ = open_trans(*f)
    cc_, cs = std_close_trans(*g)
    return ACase(
        "artefact_time_backwards_step.pcap",
        "The capture host's clock is stepped back by one hour after frame 6 (an NTP step): frames 7-13 carry timestamps about 3600 s earlier than the first frame; the packets are those of a clean connection with two request/response exchanges.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans(oc + cc_, os_ + cs),
        rules="-",
        shows="clock stepped back 1 h mid-connection",
        notes="As artefact_time_backwards: not TCP's doing, nothing to report about the endpoints. The connection's start is its first frame; a negative duration would be an artefact of the report (the duration spans the smallest to the largest timestamp).",
        wording={
            "-": "no rule covers it today; if one is added it should name the frame where the clock stepped back"
        },
    )


# =========================================================================== recorded on loopback

#: Manifest entries of the loopback recordings (written by reading the shipped files with
#: tcpdump -nr F -S -vv and dpkt, not from pcapcheck; see RECORDED below for how each was
#: made). Re-recording a file means re-reading it and rewriting its entry here.
RECORDED_MANIFEST = """
# ---- recorded on loopback by `scripts/craft_artefacts.py --record` (Linux 6.18.44,
# 127.0.0.1 only), entries written by reading the files (tcpdump -nr F -S -vv; tshark for
# the pcapng). Loopback: Ethernet with zero MACs (-i lo) or Linux cooked v2 (-i any),
# checksums left to the (absent) NIC: every segment of a full socket has only the
# pseudo-header sum (CP004 is off by default), SYN options mss 65495, sackOK, TS, wscale.

artefact_lo_merged_duplicates.pcapng:
  description: >-
    One request/response connection (client 127.0.0.1:56668 closes first, the server's
    FIN rides on the ACK of the client's FIN) recorded by two tcpdump processes at once,
    -i lo (Ethernet, interface 0) and -i any (Linux cooked v2, interface 1), and merged by
    timestamp as mergecap does: 20 frames, every packet twice, the copies 0-2 us apart and
    in either order (frame 1 is the any-copy of the SYN, frame 2 its lo-copy).
  packets: 20
  findings:
    - {rule: CP008, connection: 1, frame: 2, original_frame: 1}
    - {rule: CP008, connection: 1, frame: 4, original_frame: 3}
    - {rule: CP008, connection: 1, frame: 6, original_frame: 5}
    - {rule: CP008, connection: 1, frame: 8, original_frame: 7}
    - {rule: CP008, connection: 1, frame: 10, original_frame: 9}
    - {rule: CP008, connection: 1, frame: 12, original_frame: 11}
    - {rule: CP008, connection: 1, frame: 14, original_frame: 13}
    - {rule: CP008, connection: 1, frame: 16, original_frame: 15}
    - {rule: CP008, connection: 1, frame: 18, original_frame: 17}
    - {rule: CP008, connection: 1, frame: 20, original_frame: 19}
  connections:
    - {id: 1, client: "127.0.0.1:56668", server: "127.0.0.1:47301", handshake: complete, close: graceful, client_final_state: TIME-WAIT, server_final_state: CLOSED}
  transitions:
    client: [[1, CLOSED, SYN-SENT], [3, SYN-SENT, ESTABLISHED], [15, ESTABLISHED, FIN-WAIT-1], [17, FIN-WAIT-1, FIN-WAIT-2], [17, FIN-WAIT-2, TIME-WAIT]]
    server: [[3, LISTEN, SYN-RECEIVED], [5, SYN-RECEIVED, ESTABLISHED], [15, ESTABLISHED, CLOSE-WAIT], [17, CLOSE-WAIT, LAST-ACK], [19, LAST-ACK, CLOSED]]
  notes: >-
    Each even frame repeats the odd frame before it (same IP ID -- 0 for the SYN-ACK,
    which has TCP timestamps --, seq, ack, window, TS val/ecr): the same datagram seen by
    two capture processes, on interfaces of different link types. Wireshark calls the
    copies "suspected retransmission" / "Duplicate ACK"; pcapcheck must say CP008 and
    nothing else (no HS005/HS006 for the SYN and SYN-ACK copies, no SQ002, no CL006 for
    the FIN copies, no CL009 for the copy of the last ACK).

artefact_lo_one_sided_server.pcap:
  description: >-
    Request/response, client 127.0.0.1:50614 closes first; the capture filter
    ("src port 47302") keeps only the server -> client direction: SYN-ACK (frame 1), ACK
    of the 18-byte request (2), 78-byte response (3), FIN,ACK acknowledging the client's
    FIN (4).
  packets: 4
  findings:
    - {rule: CP007, connection: 1, frame: 1, seen: server to client}
  connections:
    - {id: 1, client: "127.0.0.1:50614", server: "127.0.0.1:47302", handshake: complete, close: graceful, client_final_state: TIME-WAIT, server_final_state: LAST-ACK, roles_inferred: true}
  notes: >-
    The server's acks prove the client's SYN (frame 1 acks ISN+1), its handshake ACK and
    request (frame 2 acks 19) and its FIN (frame 4 acks 20): handshake complete, both FINs
    (graceful); the client receives the server's FIN: TIME-WAIT. The client's last ACK
    would be in the missing direction: the server stays LAST-ACK, which is not CL004. No
    HS008 (the SYN is missing with its whole direction), no HS007 (the server's data
    follows the implied handshake ACK).
  wording: {CP007: "should say the client's segments are inferred from the server's acknowledgments"}

artefact_lo_fin_filtered.pcap:
  description: >-
    Request/response, the server (127.0.0.1:47303) closes first; the capture filter drops
    the server's FIN. Frame 8 is the client's ACK of that FIN (ack rel 80, one beyond the
    78-byte response), frame 9 the client's FIN, frame 10 the server's ACK of it from
    TIME-WAIT (correct checksum: a TIME-WAIT mini-socket).
  packets: 10
  findings:
    - {rule: CP002, connection: 1, frame: 8, ack: 80, seen_max: 79}
  connections:
    - {id: 1, client: "127.0.0.1:49216", server: "127.0.0.1:47303", handshake: complete, close: graceful, client_final_state: CLOSED, server_final_state: TIME-WAIT}
  transitions:
    client: [[1, CLOSED, SYN-SENT], [2, SYN-SENT, ESTABLISHED], [8, ESTABLISHED, CLOSE-WAIT], [9, CLOSE-WAIT, LAST-ACK], [10, LAST-ACK, CLOSED]]
    server: [[2, LISTEN, SYN-RECEIVED], [3, SYN-RECEIVED, ESTABLISHED], [8, ESTABLISHED, FIN-WAIT-1], [8, FIN-WAIT-1, FIN-WAIT-2], [9, FIN-WAIT-2, TIME-WAIT]]
  notes: >-
    The server's FIN (rel seq 79) is implied by frame 8 and replayed there
    (docs/semantics.md): server ESTABLISHED -> FIN-WAIT-1 (snd FIN, not captured), client
    ESTABLISHED -> CLOSE-WAIT (rcv FIN, not captured), then frame 8 itself acknowledges the
    FIN: server FIN-WAIT-1 -> FIN-WAIT-2. No CL001/CL003.

artefact_lo_synack_filtered.pcap:
  description: >-
    Request/response, the client (127.0.0.1:56068) closes first and the server's FIN
    rides on the ACK of the client's FIN; the capture filter drops the SYN-ACK: frame 2 is
    the client's handshake ACK (ack = server ISN+1).
  packets: 9
  findings:
    - {rule: CP002, connection: 1, frame: 2, ack: 1}
  connections:
    - {id: 1, client: "127.0.0.1:56068", server: "127.0.0.1:47304", handshake: complete, close: graceful, client_final_state: TIME-WAIT, server_final_state: CLOSED}
  transitions:
    client: [[1, CLOSED, SYN-SENT], [2, SYN-SENT, ESTABLISHED], [7, ESTABLISHED, FIN-WAIT-1], [8, FIN-WAIT-1, FIN-WAIT-2], [8, FIN-WAIT-2, TIME-WAIT]]
    server: [[2, LISTEN, SYN-RECEIVED], [2, SYN-RECEIVED, ESTABLISHED], [7, ESTABLISHED, CLOSE-WAIT], [8, CLOSE-WAIT, LAST-ACK], [9, LAST-ACK, CLOSED]]
  notes: >-
    As artefact_loss_synack_implied: the SYN-ACK is replayed at frame 2, which also
    completes the server's handshake. Not HS001, HS003 or HS008.

artefact_lo_midstream.pcap:
  description: >-
    The server (127.0.0.1:47305) trickles 30 x 1000 bytes to the client (127.0.0.1:58650)
    20 ms apart; tcpdump starts 0.3 s after the connection opened: frame 1 is a 1000-byte
    server segment, GRO merges some pairs into 2000-byte segments (frames 5, 9, 11); the
    client closes first (frame 23), the server's FIN,ACK (24) acknowledges it.
  packets: 25
  findings:
    - {rule: CP001, connection: 1, frame: 1}
  connections:
    - {id: 1, client: "127.0.0.1:58650", server: "127.0.0.1:47305", handshake: none, close: graceful, client_final_state: TIME-WAIT, server_final_state: CLOSED, roles_inferred: true}
  transitions:
    client: [[23, ESTABLISHED, FIN-WAIT-1], [24, FIN-WAIT-1, FIN-WAIT-2], [24, FIN-WAIT-2, TIME-WAIT]]
    server: [[23, ESTABLISHED, CLOSE-WAIT], [24, CLOSE-WAIT, LAST-ACK], [25, LAST-ACK, CLOSED]]
  notes: >-
    No handshake in the capture: both endpoints ESTABLISHED from frame 1, roles from the
    ports (neither is below 1024; the lower one, 47305, is the server -- it is the
    listener). Nothing else.

artefact_lo_zero_window.pcap:
  description: >-
    The server (127.0.0.1:47306, SO_RCVBUF 4096: window 4096, wscale 0) does not read for
    1.5 s while the client sends 64 KiB: after 4096 bytes the server advertises a zero
    window (frame 7); the client's kernel probes it with Linux zero-window probes (len 0 at
    SND.UNA-1, frames 8 and 10), the first answered with window 0 (frame 9); the window
    update (frame 11) reopens it, the rest flows in 4096-byte segments, the last one with
    FIN (frame 40), and the server closes.
  packets: 43
  findings:
    - {rule: SQ005, connection: 1, frame: 7}
  connections:
    - {id: 1, client: "127.0.0.1:47918", server: "127.0.0.1:47306", handshake: complete, close: graceful, client_final_state: TIME-WAIT, server_final_state: CLOSED}
  transitions:
    client: [[1, CLOSED, SYN-SENT], [2, SYN-SENT, ESTABLISHED], [40, ESTABLISHED, FIN-WAIT-1], [41, FIN-WAIT-1, FIN-WAIT-2], [42, FIN-WAIT-2, TIME-WAIT]]
    server: [[2, LISTEN, SYN-RECEIVED], [3, SYN-RECEIVED, ESTABLISHED], [40, ESTABLISHED, CLOSE-WAIT], [42, CLOSE-WAIT, LAST-ACK], [43, LAST-ACK, CLOSED]]
  notes: >-
    One zero-window episode (frames 7-10): one SQ005 (info). The probes are not
    retransmissions (no data) nor keep-alive problems; no SQ002, no SQ003 (everything is
    acknowledged by frame 41).
"""

#: README rows of the recordings: (file, rule(s), what it shows).
RECORDED_ROWS: list[tuple[str, str, str]] = [
    ("artefact_lo_fin_filtered.pcap", "CP002", "loopback; capture filter drops the server's FIN"),
    (
        "artefact_lo_merged_duplicates.pcapng",
        "CP008",
        "loopback; two captures (lo, any) merged: every packet twice, two link types",
    ),
    ("artefact_lo_midstream.pcap", "CP001", "loopback; capture started mid-transfer"),
    (
        "artefact_lo_one_sided_server.pcap",
        "CP007",
        "loopback; capture filter keeps the server's direction only",
    ),
    ("artefact_lo_synack_filtered.pcap", "CP002", "loopback; capture filter drops the SYN-ACK"),
    (
        "artefact_lo_zero_window.pcap",
        "SQ005 (info)",
        "loopback; receiver stops reading: zero window, Linux probes",
    ),
]


# =========================================================================== malformed files (bad/)


def pcap_bytes(
    records: list[tuple[int, bytes, int]], *, linktype: int = 1, snaplen: int = 262144
) -> bytes:
    """A little-endian microsecond pcap; records are (t_us, captured bytes, wire length)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
    for t, data, wire in records:
        sec, usec = divmod(t, 1_000_000)
        out += struct.pack("<IIII", BASE_SEC + sec, usec, len(data), wire) + data
    return bytes(out)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def pcapng_shb() -> bytes:
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def pcapng_idb(linktype: int, snaplen: int = 262144) -> bytes:
    # if_tsresol 6 (microseconds, the default, written out), end of options
    opts = struct.pack("<HHB3x", 9, 1, 6) + struct.pack("<HH", 0, 0)
    return _block(0x00000001, struct.pack("<HHI", linktype, 0, snaplen) + opts)


def pcapng_epb(ifid: int, t_us: int, data: bytes, wire: int | None = None) -> bytes:
    ts = (BASE_SEC * 1_000_000) + t_us
    return _block(
        0x00000006,
        struct.pack(
            "<IIIII",
            ifid,
            ts >> 32,
            ts & 0xFFFFFFFF,
            len(data),
            len(data) if wire is None else wire,
        )
        + data,
    )


def eth_to_raw(frame: bytes) -> bytes:
    return frame[14:]


def eth_to_sll2(frame: bytes) -> bytes:
    """Linux cooked v2 header (RFC-less, tcpdump.org LINKTYPE_LINUX_SLL2): protocol,
    reserved, ifindex, ARPHRD_ETHER, packet type (outgoing = 4), address length, address."""
    return (
        frame[12:14]
        + b"\0\0"
        + struct.pack("!IHBB", 2, 1, 4, 6)
        + frame[6:12]
        + b"\0\0"
        + frame[14:]
    )


def clean_records() -> list[tuple[int, bytes, int]]:
    cap = Capture()
    cc.build_clean_handshake_close(cap)
    return [(t, d, len(d)) for t, d in cap.records]


def extra_after(records, index: int, data: bytes, wire: int | None = None):
    """records with an extra packet inserted after records[index] (same timestamp + 10 us)."""
    t = records[index][0] + 10
    return (
        records[: index + 1]
        + [(t, data, len(data) if wire is None else wire)]
        + records[index + 1 :]
    )


def _set16(b: bytearray, off: int, v: int) -> None:
    b[off : off + 2] = struct.pack("!H", v)


@dataclass
class BadFile:
    name: str
    data: bytes
    what: str


def bad_files() -> list[BadFile]:
    """Malformed inputs for tests/test_malformed.py, each built from clean_handshake_close
    (10 frames: 1-3 handshake, 4 request, 5 response, 6 client ACK, 7-10 close). Where a
    single packet is malformed it is an *extra* copy of frame 6 (the client's pure ACK of
    the response, with a new IP ID) inserted as frame 7, so that the conversation around
    it stays clean and the frames before and after it must be analysed normally."""
    recs = clean_records()
    ack = recs[5][1]  # Ethernet+IPv4(20)+TCP(32), 66 bytes

    def variant(fn: Callable[[bytearray], bytes | bytearray]) -> bytes:
        b = bytearray(ack)
        _set16(b, 18, 0x2000)  # its own IP ID: never a CP008 copy
        return bytes(fn(b))

    out = []

    def add(name: str, records, what: str, **kw) -> None:
        out.append(BadFile(name, pcap_bytes(records, **kw), what))

    def ihl15(b):
        b[14] = 0x4F  # IHL 15 = 60 bytes > total length 52
        return b

    add(
        "ipv4_ihl_beyond.pcap",
        extra_after(recs, 5, variant(ihl15)),
        "frame 7: IPv4 IHL 15 (60 bytes), but the total length is 52",
    )

    def total_short(b):
        _set16(b, 16, 30)  # < 20 (IP) + 32 (TCP header)
        return b

    add(
        "ipv4_total_len_short.pcap",
        extra_after(recs, 5, variant(total_short)),
        "frame 7: IPv4 total length 30, shorter than the IP + TCP headers (52)",
    )

    def total_long(b):
        _set16(b, 16, 1500)  # more than the 52 bytes present
        return b

    add(
        "ipv4_total_len_long.pcap",
        extra_after(recs, 5, variant(total_long)),
        "frame 7: IPv4 total length 1500 but the packet has 52 bytes of IP and the record "
        "is not cut (captured length = wire length = 66)",
    )

    add(
        "ipv4_header_cut.pcap",
        extra_after(recs, 5, variant(lambda b: b[: 14 + 12])),
        "frame 7: only 12 bytes of IPv4 header (record not cut by a snaplen: 26 of 26)",
    )
    add(
        "ipv4_header_snapped.pcap",
        extra_after(recs, 5, variant(lambda b: b[: 14 + 12]), wire=66),
        "frame 7: only 12 bytes of IPv4 header captured (wire length 66: cut by the capture)",
    )

    def tcp_cut(b):
        _set16(b, 16, 30)  # IP says 10 bytes of TCP
        return b[: 14 + 30]

    add(
        "tcp_header_cut.pcap",
        extra_after(recs, 5, variant(tcp_cut)),
        "frame 7: IPv4 total length 30 and 10 bytes of TCP header (the record is complete)",
    )
    add(
        "tcp_header_snapped.pcap",
        extra_after(recs, 5, variant(lambda b: b[: 14 + 20 + 10]), wire=66),
        "frame 7: 10 bytes of TCP header captured of a 66-byte packet (cut by the capture)",
    )

    def doff15(b):
        b[14 + 20 + 12] = 0xF0  # 60-byte TCP header in a 32-byte segment
        return b

    add(
        "tcp_doff_beyond.pcap",
        extra_after(recs, 5, variant(doff15)),
        "frame 7: TCP data offset 15 (60 bytes) but the IP length leaves 32 bytes for TCP",
    )

    def opt(bytes12: bytes):
        def fn(b):
            b[14 + 20 + 20 : 14 + 20 + 32] = bytes12
            return b

        return fn

    recs_opt = recs[:6]
    recs_opt = recs_opt + [(recs[5][0] + 10, variant(opt(b"\x08\x01" + b"\x01" * 10)), 66)]
    recs_opt = recs_opt + [(recs[5][0] + 20, variant(opt(b"\x01\x01\x08\x0c" + b"\0" * 8)), 66)]
    recs_opt = recs_opt + [(recs[5][0] + 30, variant(opt(b"\x01" * 11 + b"\x08")), 66)]
    recs_opt = recs_opt + recs[6:]
    add(
        "tcp_options_bad_len.pcap",
        recs_opt,
        "frames 7-9: TCP options with a bad length: timestamp option of length 1 (frame 7), "
        "timestamp option of length 12 running 2 bytes past the header (frame 8), the last "
        "option byte is a kind with no length byte (frame 9)",
    )

    add(
        "zero_length_record.pcap",
        recs[:6] + [(recs[5][0] + 10, b"", 66), (recs[5][0] + 20, b"", 0)] + recs[6:],
        "frames 7 and 8: records with 0 captured bytes (wire length 66, then 0)",
    )

    # snaplen 1024 in the file header; the response (record 5) has 1066 captured bytes:
    # a record longer than the snaplen, which libpcap and Wireshark read like any other
    add(
        "record_over_snaplen.pcap",
        recs,
        "snaplen 1024 in the file header, record 5 holds "
        "1066 bytes (the response: more than the snaplen); read like any other record, "
        "as libpcap and Wireshark do",
        snaplen=1024,
    )

    whole = pcap_bytes(recs)
    # record 6's header announces 66 bytes but only 30 are in the file
    cut = whole[: 24 + sum(16 + len(d) for _t, d, _w in recs[:5]) + 16 + 30]
    out.append(
        BadFile(
            "record_past_eof.pcap",
            cut,
            "record 6's header announces 66 captured bytes, the file ends 30 bytes "
            "into it (5 complete records)",
        )
    )

    add(
        "unknown_linktype.pcap",
        recs,
        "the Ethernet frames of clean_handshake_close under "
        "link type 162 (LINKTYPE_USER15), which pcapcheck does not decode",
        linktype=162,
    )

    # pcapng: unknown blocks everywhere a block may be, and blocks that Wireshark numbers
    # as frames though they hold no packet (custom, systemd journal export)
    journal = (
        f"__CURSOR=s=0;i=1\n__REALTIME_TIMESTAMP={BASE_SEC * 10**6 + recs[7][0] + 100}"
        "\n_HOSTNAME=client\nMESSAGE=closing the connection\n"
    ).encode()
    blocks = [
        pcapng_shb(),
        _block(0x0BADBEEF, b"unknown block before any interface"),
        pcapng_idb(1),
    ]
    for i, (t, d, _w) in enumerate(recs):
        blocks.append(pcapng_epb(0, t, d))
        if i == 2:
            blocks.append(_block(0x00000BAD, struct.pack("<I", 32473) + b"custom, copyable"))
        if i == 5:
            blocks.append(_block(0x40000BAD, struct.pack("<I", 32473) + b"custom, not copyable"))
            blocks.append(_block(0x7FFFFFF0, b"\xff" * 37))
        if i == 7:
            blocks.append(_block(0x00000009, journal))  # systemd journal export
    blocks.append(_block(0x00000005, struct.pack("<III", 0, 0, 0)))  # interface statistics
    out.append(
        BadFile(
            "pcapng_unknown_blocks.pcapng",
            b"".join(blocks),
            "clean_handshake_close in pcapng with unknown blocks (type 0x0BADBEEF "
            "before the interface, 0x7FFFFFF0 after the 6th packet), an ISB, and "
            "blocks Wireshark numbers as frames without a packet: custom blocks "
            "(frames 4 and 8) and a systemd journal export block (frame 11); the "
            "10 packets (frames 1-3, 5-7, 9-10, 12-13) must be analysed as in the "
            "pcap",
        )
    )

    # pcapng: three interfaces of different link types carrying one conversation
    conv = {1: lambda d: d, 228: eth_to_raw, 276: eth_to_sll2}
    order = [1, 228, 276]
    blocks = [pcapng_shb()] + [pcapng_idb(lt) for lt in order]
    for i, (t, d, _w) in enumerate(recs):
        ifid = i % 3
        blocks.append(pcapng_epb(ifid, t, conv[order[ifid]](d)))
    out.append(
        BadFile(
            "pcapng_mixed_linktypes.pcapng",
            b"".join(blocks),
            "clean_handshake_close spread over three interfaces: Ethernet (1), raw "
            "IPv4 (228) and Linux cooked v2 (276), frame i on interface (i-1) mod 3: "
            "one clean connection",
        )
    )

    # pcapng: an interface of an unknown link type among good ones
    blocks = [pcapng_shb(), pcapng_idb(1), pcapng_idb(162)]
    for i, (t, d, _w) in enumerate(recs):
        blocks.append(pcapng_epb(0, t, d))
        if i == 5:
            blocks.append(pcapng_epb(1, t + 10, b"\x55" * 40))
    out.append(
        BadFile(
            "pcapng_unknown_linktype.pcapng",
            b"".join(blocks),
            "clean_handshake_close on an Ethernet interface plus one record (frame 7) "
            "on a second interface of link type 162 (unknown)",
        )
    )

    # pcapng: 64-bit timestamps beyond what a calendar date can hold (about year 586000)
    far = (1 << 64) - 1 - 60 * 1_000_000 - BASE_SEC * 1_000_000
    blocks = [pcapng_shb(), pcapng_idb(1)]
    blocks += [pcapng_epb(0, far + t, d) for t, d, _w in recs]
    out.append(
        BadFile(
            "pcapng_far_future.pcapng",
            b"".join(blocks),
            "clean_handshake_close in pcapng with timestamps near 2^64 microseconds "
            "(year ~586000, beyond any calendar date)",
        )
    )

    # gzip: corrupt from the first byte after the header, and corrupt midway
    import gzip
    import zlib

    good = pcap_bytes(recs)
    gz = gzip.compress(good, mtime=0)
    out.append(
        BadFile(
            "gzip_corrupt_start.pcap.gz",
            gz[:10] + b"\xff" * 40,
            "a gzip header followed by garbage: nothing can be decompressed",
        )
    )
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = comp.compress(good[: 24 + sum(16 + len(d) for _t, d, _w in recs[:6])]) + comp.flush(
        zlib.Z_FULL_FLUSH
    )
    out.append(
        BadFile(
            "gzip_corrupt_midway.pcap.gz",
            head + b"\xff" * 64,
            "gzip: the first 6 records compress cleanly (full flush), then garbage",
        )
    )

    out.append(
        BadFile(
            "not_a_capture.pcap",
            b"<html><body>404 Not Found</body></html>\n",
            "an HTML page saved as .pcap",
        )
    )
    return out


# =========================================================================== output

MANIFEST_HEADER = """\
# Expected results for the capture-artefact samples -- generated by
# scripts/craft_artefacts.py, do not edit by hand (edit the script and rerun it).
#
# Issue 3: capture artefacts are recognised (CP rules) and never blamed on the
# endpoints. Same format as sample_pcaps/crafted/manifest.yaml:
#   description  what the capture shows and what RFC 9293 expects
#   packets      readable frames (records) in the file
#   findings     EVERY finding the engine must report with the default rules, in frame
#                order: rule, connection (null: file level), frame, key numbers
#                (relative sequence numbers unless the key ends in _abs)
#   findings_when_enabled  added when a default-off rule (CP004) is selected
#   connections  endpoints, handshake, close, final RFC 9293 state of each endpoint,
#                roles_inferred when it matters
#   transitions  [frame, from, to] per endpoint where docs/semantics.md fixes them
#   notes        how the expectation follows from the packets
#   wording      rule -> what its message should say where the capture leaves the
#                verdict uncertain (the lead owns the texts; not tested)
#   xfail        test -> the engine problem, while the engine gets this capture wrong
#                (tests/test_samples.py marks those tests xfail(strict=True))
# Every capture here is named artefact_*: tests/test_samples.py also asserts that none
# of them gets an HS/CL/RS/SQ/FL finding above info.
"""


def write_manifest(path: Path, cases: list[ACase]) -> None:
    out = [MANIFEST_HEADER]
    for cs in cases:
        out.extend(cc.manifest_entry(cs))
        if cs.notes:
            out.append(f"  notes: {json.dumps(cs.notes)}\n")
        if cs.wording:
            out.append(f"  wording: {yval(cs.wording)}\n")
        if cs.xfail:
            out.append(f"  xfail: {yval(cs.xfail)}\n")
    if RECORDED_MANIFEST:
        out.append("\n" + RECORDED_MANIFEST.strip("\n") + "\n")
    path.write_text("".join(out))


README_HEAD = """\
# Capture-artefact samples (issue 3)

What the *capture* gets wrong must be recognised as such and never blamed on the
endpoints. Every `artefact_*` capture here shows one artefact; `manifest.yaml` holds the
exact expected result of each (findings with rule, connection, frame; verdicts; final
states; transitions where docs/semantics.md fixes them), written from the packets and
RFC 9293, not from pcapcheck's output. `tests/test_samples.py` checks them like the
crafted and loopback captures, and also asserts that none of them gets an HS/CL/RS/SQ/FL
finding above info. `bad/` holds malformed inputs for `tests/test_malformed.py`.

    python scripts/craft_artefacts.py                    # rewrites the crafted files, bad/, manifest, README
    sudo python scripts/craft_artefacts.py --record      # re-records the artefact_lo_* files (tcpdump, root)

The crafted files are byte-identical on every run (tests/test_malformed.py checks it):
they reuse the Conversation builder of `scripts/craft_captures.py` (Ethernet + IPv4,
client 10.0.0.1:40000, server 10.0.0.2:80, ISNs 0x3C8A1F27 / 0x9E1B5D02 unless a case
needs others, microsecond pcap starting 2026-01-01T00:00:00Z; see
sample_pcaps/crafted/README.md). The `artefact_lo_*` files are recordings of the Linux
stack on 127.0.0.1 and are not reproducible byte for byte.

## Decisions

1. Loss in the capture (CP002) points at the frame that proves it: the ACK that first
   covers bytes never seen (crafted decision 15), the ACK that implies a missing FIN or
   SYN-ACK, or -- when nothing acknowledges the hole -- the segment that starts after it
   (then the message must say the bytes may also have been lost before the capture
   point). The implied segment is replayed at the proving frame, so the state machines
   carry on ("not captured; implied by frame N").
2. Capture duplicates (same IPv4 ID, or same TCP timestamps on IPv6, same seq, ack,
   flags, window, length) are CP008 at each copy, pointing at the first one; the copies
   are ignored by every other rule (no HS005, SQ002, CL006, CL009).
3. Capture reordering (a segment stored a few microseconds before the one that caused
   it) is not an endpoint event: no HS008/HS005 for a SYN-ACK stored before its SYN, no
   SQ001/CP002 for an ACK stored before its data, no implied FIN/CL006 for an ACK stored
   before its FIN. docs/semantics.md does not fix the transitions' frames here; the
   manifest gives verdicts and final states only (notes propose the crossing-segments
   convention: attribute to the later frame).
4. Snaplen: the same packets cut inside the TCP options, cut in the payload and uncut
   have identical verdicts, states and transitions; only CP003 is added.
5. Checksum offload: wrong checksums on one side are reported only when CP004 is
   selected (`findings_when_enabled`).
6. TSO/GRO aggregates larger than the MSS are normal captures.
7. Keep-alives (SEG.SEQ = SND.NXT-1, 0 or 1 byte, also after the sender's FIN) and
   zero-window probes (1 new byte at SND.NXT while the peer advertises 0) are neither
   retransmissions nor data after FIN; a probe does not advance the sender's sequence
   space (as in Wireshark), so the data sent from the same seq after the window opens
   is not a retransmission either.
8. One-sided captures (CP007) in either direction: the silent side is inferred from the
   acknowledgments; nothing it did not visibly send is its fault (no HS003, HS008,
   CL001, CL004, SQ001, SQ003). The server-only capture leaves the server in LAST-ACK
   (the client's last ACK would travel in the missing direction).
9. Midstream captures (CP001): both endpoints ESTABLISHED from the first frame, also
   when that frame is a FIN; ACKs of bytes sent before the capture started are not
   errors.
10. A capture clock going backwards is not reported about the endpoints (no rule
    covers it today).

## Files

| file | rule(s) | what the capture shows |
|------|---------|------------------------|
"""


def write_readme(path: Path, cases: list[ACase], bad: list[BadFile]) -> None:
    rows = [f"| {cs.file} | {cs.rules} | {cs.shows} |\n" for cs in cases]
    rows += [f"| {f} | {r} | {s} |\n" for f, r, s in RECORDED_ROWS]
    bad_rows = [f"| bad/{b.name} | {b.what} |\n" for b in bad]
    text = (
        README_HEAD
        + "".join(rows)
        + "\n## bad/\n\nMalformed inputs (tests/test_malformed.py says what each must give; "
        "more are in sample_pcaps/encap/bad/).\n\n| file | content |\n|------|---------|\n"
        + "".join(bad_rows)
    )
    path.write_text(text)


def write_all(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    cases = sorted(CASES, key=lambda cs: cs.file)
    names = [cs.file for cs in cases]
    assert len(names) == len(set(names)), "duplicate file name"
    for cs in cases:
        frames = [(fd["frame"] is None, fd["frame"] or 0) for fd in cs.findings]
        assert frames == sorted(frames), cs.file
        cs.cap.write(outdir / cs.file, cut_last=cs.cut_last)
    bad = bad_files()
    (outdir / "bad").mkdir(exist_ok=True)
    for b in bad:
        (outdir / "bad" / b.name).write_bytes(b.data)
    write_manifest(outdir / "manifest.yaml", cases)
    write_readme(outdir / "README.md", cases, bad)
    print(
        f"wrote {len(cases)} captures, {len(bad)} malformed files, manifest.yaml and "
        f"README.md to {outdir}"
    )


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("--record", "--list"):
        return record_main(argv)
    outdir = Path(argv[0]) if argv else OUT_DIR
    write_all(outdir)
    return 0


# =========================================================================== loopback recordings
#
# The real Linux stack on 127.0.0.1 produces some artefacts naturally or through the
# capture setup: two capture processes whose files are merged (every packet twice, on
# interfaces of different link types), a capture filter that keeps one direction or
# drops some segments (the capture misses them: loss in the capture), a capture started
# in the middle of a transfer, a receiver that stops reading (zero window and the
# kernel's probes). Checksum offload (CHECKSUM_PARTIAL) and GRO/TSO aggregates are in
# every loopback recording (see sample_pcaps/loopback/). `tcpdump -i any` does NOT
# record loopback packets twice: libpcap drops the outgoing copy on lo (the recording
# script checked: tcpdump reported "22 packets received by filter", "11 packets
# captured" for an 11-packet connection).


def _lo():
    import record_loopback as rl  # helpers only (sockets, threads); only 127.0.0.1 is used

    return rl


class Tcpdump:
    """tcpdump on ``iface`` writing ``path``; ``stop()`` returns the packets captured."""

    def __init__(self, iface: str, bpf: str, path: Path, snaplen: int = 262144):
        self.cmd = [
            shutil.which("tcpdump") or "/usr/bin/tcpdump",
            "-i",
            iface,
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-B",
            "65536",
            "-s",
            str(snaplen),
            "-w",
            str(path),
            bpf,
        ]
        self.path = path
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self._ready = threading.Event()

    def start(self) -> Tcpdump:
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(10) or self.proc.poll() is not None:
            self.kill()
            raise RuntimeError("tcpdump did not start: " + " | ".join(self.lines))
        time.sleep(0.2)
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if "listening on" in line:
                self._ready.set()
        self._ready.set()

    def stop(self, settle: float = 0.5) -> int:
        assert self.proc is not None
        time.sleep(settle)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(10)
        time.sleep(0.1)
        captured = dropped = None
        for line in self.lines:
            w = line.split()
            if line.endswith(("packets captured", "packet captured")):
                captured = int(w[0])
            elif "dropped by kernel" in line:
                dropped = int(w[0])
        if captured is None or dropped:
            raise RuntimeError(f"tcpdump: {' | '.join(self.lines)}")
        return captured

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def read_pcap_records(path: Path) -> tuple[int, list[tuple[int, bytes, int]]]:
    """(linktype, [(timestamp in us since the epoch, data, wire length)]) of a usec pcap."""
    raw = path.read_bytes()
    magic = raw[:4]
    e = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
    linktype = struct.unpack_from(e + "I", raw, 20)[0]
    out, pos = [], 24
    while pos + 16 <= len(raw):
        sec, usec, incl, wire = struct.unpack_from(e + "IIII", raw, pos)
        out.append((sec * 1_000_000 + usec, raw[pos + 16 : pos + 16 + incl], wire))
        pos += 16 + incl
    return linktype, out


@dataclass
class LoScenario:
    name: str
    port: int
    summary: str
    run: Callable[[LoScenario, Path], Path]


def _capture_around(
    sc: LoScenario, tmp: Path, bpf: str, body: Callable[[], None], iface: str = "lo"
) -> Path:
    path = tmp / f"{sc.name}.pcap"
    td = Tcpdump(iface, bpf, path).start()
    try:
        body()
    except BaseException:
        td.kill()
        raise
    n = td.stop()
    print(f"  {sc.name}: {n} packets")
    return path


def lo_merged_duplicates(sc: LoScenario, tmp: Path) -> Path:
    """Two capture processes at once (tcpdump -i lo: Ethernet; tcpdump -i any: Linux
    cooked v2), their files merged by timestamp as mergecap does: every packet twice,
    on two interfaces of different link types."""
    rl = _lo()
    a = Tcpdump("lo", f"tcp port {sc.port}", tmp / "lo.pcap").start()
    b = Tcpdump("any", f"tcp port {sc.port}", tmp / "any.pcap").start()
    try:
        rl._request_response(socket.AF_INET, sc.port, server_closes_first=False)
    except BaseException:
        a.kill()
        b.kill()
        raise
    print(f"  {sc.name}: {a.stop()} + {b.stop(settle=0)} packets")
    lt_a, ra = read_pcap_records(tmp / "lo.pcap")
    lt_b, rb = read_pcap_records(tmp / "any.pcap")
    merged = sorted(
        [(t, 0, d, w) for t, d, w in ra] + [(t, 1, d, w) for t, d, w in rb],
        key=lambda x: (x[0], x[1]),
    )
    blocks = [pcapng_shb(), pcapng_idb(lt_a), pcapng_idb(lt_b)]
    blocks += [pcapng_epb(ifid, t - BASE_SEC * 1_000_000, d, w) for t, ifid, d, w in merged]
    out = tmp / f"{sc.name}.pcapng"
    out.write_bytes(b"".join(blocks))
    return out


def lo_one_sided_server(sc: LoScenario, tmp: Path) -> Path:
    rl = _lo()
    return _capture_around(
        sc,
        tmp,
        f"tcp and src host 127.0.0.1 and src port {sc.port}",
        lambda: rl._request_response(socket.AF_INET, sc.port, False),
    )


def lo_fin_filtered(sc: LoScenario, tmp: Path) -> Path:
    rl = _lo()
    return _capture_around(
        sc,
        tmp,
        f"tcp port {sc.port} and not (src port {sc.port} and tcp[tcpflags] & tcp-fin != 0)",
        lambda: rl._request_response(socket.AF_INET, sc.port, True),
    )


def lo_synack_filtered(sc: LoScenario, tmp: Path) -> Path:
    rl = _lo()
    return _capture_around(
        sc,
        tmp,
        f"tcp port {sc.port} and not (tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack))",
        lambda: rl._request_response(socket.AF_INET, sc.port, False),
    )


def lo_midstream(sc: LoScenario, tmp: Path) -> Path:
    """A server trickles 30 x 1000 bytes (20 ms apart); the capture starts after 0.3 s."""
    rl = _lo()
    lst = rl.listener(socket.AF_INET, sc.port)
    chunk = bytes(range(200)) * 5
    started = threading.Event()

    def server() -> None:
        conn, _ = lst.accept()
        with conn:
            for _ in range(30):
                conn.sendall(chunk)
                time.sleep(0.02)
            if rl.recv_to_eof(conn):
                raise RuntimeError("unexpected data")
        lst.close()

    def client() -> None:
        c = rl.client_socket()
        with c:
            c.connect((rl.V4, sc.port))
            if not started.wait(10):
                raise RuntimeError("capture did not start")
            rl.recv_exactly(c, 30 * len(chunk))
            time.sleep(rl.STEP)

    path = tmp / f"{sc.name}.pcap"
    st, ct = rl.Worker("server", server), rl.Worker("client", client)
    st.start()
    ct.start()
    time.sleep(0.3)
    td = Tcpdump("lo", f"tcp port {sc.port}", path).start()
    started.set()
    try:
        ct.join_checked()
        st.join_checked()
    except BaseException:
        td.kill()
        raise
    print(f"  {sc.name}: {td.stop()} packets")
    return path


def lo_zero_window(sc: LoScenario, tmp: Path) -> Path:
    """The server's application does not read for 1.5 s with a small receive buffer: the
    window closes and the client's kernel probes it; then it reads everything."""
    rl = _lo()
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accept()
    lst.bind((rl.V4, sc.port))
    lst.listen(1)
    lst.settimeout(rl.IO_TIMEOUT)
    size = 64 * 1024

    def server() -> None:
        conn, _ = lst.accept()
        with conn:
            conn.settimeout(rl.IO_TIMEOUT)
            time.sleep(1.5)
            got = rl.recv_exactly(conn, size)
            if len(got) != size:
                raise RuntimeError("short read")
            if rl.recv_to_eof(conn):
                raise RuntimeError("unexpected data")
        lst.close()

    def client() -> None:
        c = rl.client_socket()
        with c:
            c.connect((rl.V4, sc.port))
            c.sendall(bytes(size))
            time.sleep(rl.STEP)

    return _capture_around(sc, tmp, f"tcp port {sc.port}", lambda: rl.run_pair(server, client))


LO_SCENARIOS = [
    LoScenario(
        "artefact_lo_merged_duplicates",
        47301,
        "two captures (lo + any) merged: every packet twice, two link types",
        lo_merged_duplicates,
    ),
    LoScenario(
        "artefact_lo_one_sided_server",
        47302,
        "capture filter keeps the server -> client direction only",
        lo_one_sided_server,
    ),
    LoScenario(
        "artefact_lo_fin_filtered",
        47303,
        "server closes first; the filter drops the server's FIN",
        lo_fin_filtered,
    ),
    LoScenario(
        "artefact_lo_synack_filtered", 47304, "the filter drops the SYN-ACK", lo_synack_filtered
    ),
    LoScenario(
        "artefact_lo_midstream",
        47305,
        "capture started in the middle of a trickled transfer",
        lo_midstream,
    ),
    LoScenario(
        "artefact_lo_zero_window",
        47306,
        "receiver stops reading: zero window and the kernel's probes",
        lo_zero_window,
    ),
]


def record_main(argv: list[str]) -> int:
    by_name = {sc.name: sc for sc in LO_SCENARIOS}
    if argv[0] == "--list":
        for sc in LO_SCENARIOS:
            print(f"{sc.name:32} port {sc.port}  {sc.summary}")
        return 0
    names = argv[1:] or list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name in names:
        sc = by_name[name]
        with tempfile.TemporaryDirectory(prefix="pcapcheck-artefact-") as tmp:
            os.chmod(tmp, 0o755)
            try:
                path = sc.run(sc, Path(tmp))
            except Exception as exc:
                failures += 1
                print(f"FAILED {name}: {exc}", file=sys.stderr)
                continue
            final = OUT_DIR / path.name
            shutil.copyfile(path, final)
            os.chmod(final, 0o644)
            print(f"{name} -> {final.relative_to(REPO)} (rewrite its RECORDED_MANIFEST entry)")
    print(f"kernel: {os.uname().release}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
