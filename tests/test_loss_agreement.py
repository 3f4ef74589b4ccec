"""Capture loss: pcapcheck's CP002 against Wireshark's lost-segment flags (issue 24).

``loopback/bpf_loss.pcap`` is a real 300 KiB transfer over 127.0.0.1 recorded by
``scripts/record_loopback.py bpf_loss``: the capture filter dropped every data segment
whose SEG.SEQ mod 16384 is below 1448 (``LOSS_BPF``), 18 of the 213, while the endpoints
exchanged all of them. The holes are read here from the file itself (dpkt, independent
of pcapcheck), then compared frame by frame with

- Wireshark's ``tcp.analysis.lost_segment`` ("previous segment not captured") and
  pcapcheck's ``lost_segment`` mark: the first captured data segment after each hole;
- Wireshark's ``tcp.analysis.ack_lost_segment`` ("ACKed segment that wasn't captured")
  and pcapcheck's CP002 frames: the ACKs of the bytes the capture never showed.

The two tools differ only by the known differences ``ack-unseen-marked-late`` and
``stale-next-expected-ack`` (:data:`pcapcheck.compare.wireshark.KNOWN_DIFFERENCES`):
Wireshark marks a hole on the receiver's ACK after the one that first acknowledged it.
"""

from __future__ import annotations

import subprocess
import sys

import dpkt
from conftest import ROOT, SAMPLES, needs_tshark

from pcapcheck.catalog.rules import load_catalog
from pcapcheck.compare import wireshark as cc
from pcapcheck.pipeline import analyze_file

PATH = SAMPLES / "loopback/bpf_loss.pcap"
SEGMENT = 1448  # every data segment but the last carries 1448 bytes (TCP_MAXSEG 1460)

#: The first captured data segment after each hole (read from the file, see below).
AFTER_HOLE = [25, 45, 56, 70, 91, 114, 135, 156, 177, 200, 221, 242, 265, 286, 307, 330,
              351, 372]  # fmt: skip
#: The server's ACKs that first acknowledge bytes of a hole (frame 64 covers two).
FIRST_ACK_OF_HOLE = [24, 64, 69, 90, 113, 134, 155, 176, 199, 220, 241, 264, 285, 306, 329,
                     350, 371]  # fmt: skip
#: Wireshark marks these holes on the next ACK of the server instead (two frames later).
MARKED_LATE = [f for f in FIRST_ACK_OF_HOLE if f not in (24, 64)]


def _record_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import record_loopback
    finally:
        sys.path.pop(0)
    return record_loopback


def _segments():
    """(frame, from_client, seq, ack, payload length, flags) for every frame."""
    out = []
    with open(PATH, "rb") as f:
        for frame, (_ts, buf) in enumerate(dpkt.pcap.Reader(f), 1):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = ip.data
            plen = ip.len - ip.hl * 4 - tcp.off * 4
            out.append((frame, tcp.dport == 47115, tcp.seq, tcp.ack, plen, tcp.flags))
    return out


def _oracle():
    """Holes in the client's sequence numbers, the frames after them, and the server
    ACKs that newly acknowledge bytes absent from the whole file."""
    segs = _segments()
    isn = segs[0][2]  # the client's SYN
    captured = sorted((s, s + n) for _f, c, s, _a, n, _fl in segs if c and n)
    holes, after, nxt = [], [], None
    for frame, client, seq, _ack, plen, _fl in segs:
        if not client or not plen:
            continue
        if nxt is not None and seq > nxt:
            holes.append((nxt, seq))
            after.append(frame)
        nxt = max(nxt or 0, seq + plen)

    def unseen(lo: int, hi: int) -> bool:
        return any(h0 < hi and lo < h1 for h0, h1 in holes)

    first_acks, prev = [], None
    for frame, client, _seq, ack, _plen, flags in segs:
        if client or not flags & dpkt.tcp.TH_ACK:
            continue
        if prev is not None and ack > prev and unseen(prev, ack):
            first_acks.append(frame)
        prev = ack if prev is None else max(prev, ack)
    return isn, captured, holes, after, first_acks


def test_oracle_reads_the_holes_the_filter_made():
    """The file shows exactly the loss the BPF filter was written to cause."""
    rl = _record_script()
    _isn, captured, holes, after, first_acks = _oracle()
    assert rl.LOSS_SEQ_MASK == 0x3FFF and rl.LOSS_SEQ_BELOW == SEGMENT
    assert len(holes) == 18 and all(hi - lo == SEGMENT for lo, hi in holes)
    assert all(lo & rl.LOSS_SEQ_MASK < rl.LOSS_SEQ_BELOW for lo, _hi in holes)
    assert not any(s & rl.LOSS_SEQ_MASK < rl.LOSS_SEQ_BELOW for s, _e in captured)
    total = sum(e - s for s, e in captured) + sum(hi - lo for lo, hi in holes)
    assert total == rl.LOSS_SIZE  # nothing else is missing
    assert after == AFTER_HOLE
    assert first_acks == FIRST_ACK_OF_HOLE


def test_pcapcheck_cp002_names_every_hole():
    """One CP002 per hole, at the ACK that first acknowledges it, with its 1448 bytes."""
    catalog = load_catalog()
    result = analyze_file(PATH, catalog, catalog.select(None, None), marks=True)
    isn, _captured, holes, _after, _first = _oracle()
    cp002 = [e for e in result.events if e.rule == "CP002"]
    assert sorted({e.frame for e in cp002}) == FIRST_ACK_OF_HOLE
    assert len(cp002) == 18
    # seen_max (relative to the ISN) is where each hole starts; the details give its size
    starts = sorted((isn + e.data["seen_max"]) & 0xFFFFFFFF for e in cp002)
    assert starts == [lo for lo, _hi in holes]
    assert all(f"{SEGMENT} bytes" in e.data["detail"] for e in cp002)
    marks = result.marks or {}
    assert sorted(f for f, m in marks.items() if "lost_segment" in m) == AFTER_HOLE
    assert sorted(f for f, m in marks.items() if "ack_lost_segment" in m) == FIRST_ACK_OF_HOLE
    assert {e.rule for e in result.events} == {"CP002", "CP003"}  # CP003: snaplen 96


def _tshark_frames(field: str) -> list[int]:
    out = subprocess.run(
        ["tshark", "-r", str(PATH), "-Y", field, "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(x) for x in out.split()]


@needs_tshark
def test_wireshark_flags_the_same_losses():
    """Previous segment not captured: the same 18 frames. ACKed unseen segment: the
    first two holes on the same frames, the 15 later ones one ACK late."""
    assert _tshark_frames("tcp.analysis.lost_segment") == AFTER_HOLE
    late = [f + 2 for f in MARKED_LATE]
    assert _tshark_frames("tcp.analysis.ack_lost_segment") == sorted([24, 64, 26, *late])


@needs_tshark
def test_crosscheck_differs_only_by_the_documented_differences():
    report = cc.crosscheck(PATH)
    assert report.agrees, cc.render_crosscheck(report)
    got = sorted((d.frame, d.kind, d.known) for d in report.disagreements)
    expected = sorted(
        [(f, "ack_lost_segment", "ack-unseen-marked-late") for f in MARKED_LATE]
        + [(f + 2, "ack_lost_segment", "stale-next-expected-ack") for f in MARKED_LATE]
        + [(26, "ack_lost_segment", "stale-next-expected-ack")]
    )
    assert got == expected
    assert report.counts["lost_segment"].both == 18
    assert report.counts["ack_lost_segment"].both == 2
