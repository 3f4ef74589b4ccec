"""pcapcheck against Wireshark: connections and per-frame TCP analysis flags.

``test_sample_agrees_with_wireshark`` runs :func:`pcapcheck.compare.wireshark.crosscheck` on
the sample captures and requires full agreement apart from the known differences
(:data:`pcapcheck.compare.wireshark.KNOWN_DIFFERENCES`): on every capture under sample_pcaps/
with PCAPCHECK_FULL=1, else on every 4th one plus the captures named here (one showing
each known difference, ``KNOWN_EXAMPLES``, and those of ``ENGINE_ISSUES``).

``ENGINE_ISSUES`` lists the disagreements that are pcapcheck's fault, by capture, frame
and kind, with the reason and the proposed fix: the test is an expected failure (xfail)
while they are there, and fails when one is fixed without being removed from the list,
or when any other disagreement appears.

tshark runs once per capture, started in the background when the module is imported and
shared with tests/test_tshark.py (``pcapcheck.capture.tshark.prefetch``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ALL_CAPTURES, HAVE_TSHARK, ROOT, SAMPLES, needs_tshark
from conftest import selected_captures as _selected
from typer.testing import CliRunner

from pcapcheck.capture import tshark
from pcapcheck.compare import wireshark as cc
from pcapcheck.model import Event, Segment

_KEEPALIVE_ACK = (
    "engine (detectors.Checker._wireshark_marks): keep_alive_ack is set on any pure ACK "
    "that follows the peer's keep-alive; Wireshark's definition (User's Guide 'TCP "
    "Keep-Alive ACK') also requires a non-zero window equal to the sender's previous one, "
    "SEG.SEQ = the next expected sequence number and SEG.ACK = the last acknowledgment "
    "sent (the duplicate-ACK tests). Proposed: in _wireshark_marks, set keep_alive_ack "
    "only when those duplicate-ACK conditions hold and fr.keepalive_frame == fr.last_frame "
    "(it then replaces duplicate_ack, as in Wireshark). Here: "
)
#: pcapcheck's own disagreements with Wireshark: {capture: {(frame, kind): reason}}.
ENGINE_ISSUES: dict[str, dict[tuple[int, str], str]] = {}


def rel(path: Path) -> str:
    return path.relative_to(SAMPLES).as_posix()


#: A sample capture showing each known difference (None: no sample has it; a unit test
#: below covers it).
KNOWN_EXAMPLES = {
    "capture-duplicate": "crafted/cp008_capture-duplicates.pcap",
    "simultaneous-open-synack": "crafted/hs010_simultaneous-open.pcap",
    "acked-before-seen": "crafted/sq001_ack-unsent-data.pcap",
    "after-out-of-window-rst": "crafted/rs003_reset-out-of-window.pcap",
    "after-ignored-invalid-flags": "crafted/fl001_invalid-flags_xmas.pcap",
    "peer-direction-unseen": "crafted/cp007_one-sided.pcap",
    "stale-next-expected-ack": "crafted/cp002_capture-loss.pcap",
    "ack-unseen-marked-late": "loopback/bpf_loss.pcap",
    "ack-unseen-repeated": "crafted/hs004_handshake-ack-bad_data.pcap",
    "accepted-zero-window-probe": "crafted/clean_zero_window_probe_accepted.pcap",
    "after-stray-segment": "crafted/clean_stray_ack_after_reuse.pcap",
    "synack-reused-ports": "crafted/rs005_reset-unacceptable-ack.pcap",
    "synack-new-isn": "crafted/hs002_synack-bad-ack_recovered.pcap",
    "syn-isn-changed": "crafted/hs009_syn-isn-changed.pcap",
    "syn-with-invalid-flags": "crafted/fl001_invalid-flags.pcap",
    "formats-differ": "encap/bad/absurd_caplen.pcap",
    "malformed-for-pcapcheck": "encap/bad/tcp_doff3.pcap",
    "malformed-for-wireshark": None,
    "after-close": None,
    "tunnel-identity": "encap/vxlan.pcap",
    "after-connection-difference": "crafted/cp005_malformed-packet.pcap",
}
CAPTURES = _selected(ALL_CAPTURES, set(ENGINE_ISSUES) | set(filter(None, KNOWN_EXAMPLES.values())))
if HAVE_TSHARK:
    # tshark once per capture, in the background from now on (shared with test_tshark.py)
    tshark.prefetch(CAPTURES, analysis=True, wait=False)


@needs_tshark
@pytest.mark.parametrize("path", CAPTURES, ids=rel)
def test_sample_agrees_with_wireshark(path):
    from pcapcheck.capture.reader import CaptureError

    try:
        report = cc.crosscheck(path)
    except CaptureError:
        # neither tool can read it (the tshark tests check that they agree on that)
        return
    expected = ENGINE_ISSUES.get(rel(path), {})
    found = {(d.frame, d.kind): d for d in report.unexplained}
    unexpected = {k: d for k, d in found.items() if k not in expected}
    assert not unexpected, cc.render_crosscheck(report)
    fixed = sorted(k for k in expected if k not in found)
    assert not fixed, (
        f"ENGINE_ISSUES lists {fixed} for {rel(path)} but pcapcheck now "
        "agrees with Wireshark there: remove the entries"
    )
    if expected:
        pytest.xfail(
            "; ".join(f"frame {f} {kind}: {why}" for (f, kind), why in sorted(expected.items()))
        )


@needs_tshark
@pytest.mark.parametrize("name", [n for n, c in KNOWN_EXAMPLES.items() if c])
def test_known_difference_is_seen_in_its_sample(name):
    report = cc.crosscheck(SAMPLES / KNOWN_EXAMPLES[name])
    assert name in {d.known for d in report.disagreements}, cc.render_crosscheck(report)


def test_every_known_difference_has_an_example():
    assert set(KNOWN_EXAMPLES) == {k.name for k in cc.KNOWN_DIFFERENCES}
    for capture in filter(None, KNOWN_EXAMPLES.values()):
        assert (SAMPLES / capture).exists(), capture


def test_engine_issues_name_existing_captures():
    for name in ENGINE_ISSUES:
        assert (SAMPLES / name).exists(), name
        for (_frame, kind), _why in ENGINE_ISSUES[name].items():
            assert kind in cc.KINDS + (cc.CONNECTION,)


def test_known_differences_are_documented():
    names = [k.name for k in cc.KNOWN_DIFFERENCES]
    assert len(names) == len(set(names))
    doc = (ROOT / "README.md").read_text(encoding="utf-8")
    for k in cc.KNOWN_DIFFERENCES:
        assert k.verdict in ("wireshark-wrong", "definition", "input")
        assert set(k.kinds) <= set(cc.KINDS + (cc.CONNECTION,))
        assert k.side in ("wireshark", "pcapcheck", "either")
        assert len(k.explanation) > 80
        assert f"`{k.name}`" in doc, f"{k.name} missing from README.md"


# ------------------------------------------------------------------ unit tests of compare
FIELDS = tshark.DECODE_FIELDS + tshark.ANALYSIS_FIELDS
C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)


def seg(frame, sender, seq, ack, flags=0x10, length=0):
    src, dst = (C, S) if sender == "c" else (S, C)
    return Segment(
        frame,
        1767225600 + frame / 1000,
        src[0],
        dst[0],
        src[1],
        dst[1],
        seq,
        ack,
        flags,
        500,
        length,
    )


def ws_line(s: Segment, stream: int, *flags: str, number: int | None = None) -> str:
    row = dict.fromkeys(FIELDS, "")
    row.update(
        {
            "frame.number": str(number or s.frame),
            "frame.time_epoch": f"{s.ts:.9f}",
            "tcp.stream": str(stream),
            "tcp.srcport": str(s.sport),
            "tcp.dstport": str(s.dport),
            "tcp.seq_raw": str(s.seq),
            "tcp.ack_raw": str(s.ack),
        }
    )
    for f in flags:
        row[f"tcp.analysis.{f}"] = "1"
    return "\t".join(row[n] for n in FIELDS)


def fake(segments, conns, marks=None, events=(), streams=None, ws_flags=None, extra=()):
    """A pcapcheck result and a tshark run for the segments (frame -> Segment); ``extra``:
    frame numbers of Wireshark rows without a packet (pcapng custom blocks: no field but
    the number), which pcapcheck numbers too but does not count among its packets."""
    result = SimpleNamespace(
        path="x.pcap",
        packets=len(segments),
        marks=marks or {},
        frame_conn=conns,
        events=list(events),
        truncated=None,
        format="pcap",
    )
    lines = []
    for f in sorted(set(segments) | set(extra)):
        if f in extra:
            lines.append("\t".join([str(f)] + [""] * (len(FIELDS) - 1)))
            continue
        s = segments[f]
        lines.append(ws_line(s, (streams or {}).get(f, 0), *(ws_flags or {}).get(f, ()), number=f))
    run = tshark.TsharkRun("x.pcap", FIELDS, lines, "", 0, "File type: pcap", True)
    return result, run


HANDSHAKE = {
    1: seg(1, "c", 1000, 0, 0x02),
    2: seg(2, "s", 5000, 1001, 0x12),
    3: seg(3, "c", 1001, 5001),
    4: seg(4, "c", 1001, 5001, 0x18, 100),
    5: seg(5, "s", 5001, 1101),
}


def test_full_agreement_counts_every_kind():
    result, run = fake(HANDSHAKE, dict.fromkeys(HANDSHAKE, 1))
    report = cc.compare(result, run, HANDSHAKE)
    assert report.agrees and report.disagreements == []
    assert report.tcp_frames == 5 and report.connections == report.streams == 1
    for kind in cc.KINDS:
        assert report.counts[kind].neither == 5
    assert report.counts[cc.CONNECTION].both == 5
    assert "full agreement" in cc.render_crosscheck(report)


def test_flag_disagreements_are_listed_with_both_verdicts():
    segs = {**HANDSHAKE, 6: seg(6, "c", 1001, 5001, 0x18, 100)}
    marks = {6: {"retransmission"}, 5: {"duplicate_ack"}}
    result, run = fake(
        segs,
        dict.fromkeys(segs, 1),
        marks=marks,
        ws_flags={6: ("retransmission", "spurious_retransmission")},
    )
    report = cc.compare(result, run, segs)
    assert report.counts["retransmission"].both == 1
    assert [(d.frame, d.kind, d.pcapcheck, d.wireshark) for d in report.disagreements] == [
        (5, "duplicate_ack", "set", "not set")
    ]
    assert not report.agrees
    text = cc.render_crosscheck(report)
    assert "UNEXPLAINED" in text and "duplicate_ack" in text and "1 unexplained" in text


def test_known_difference_capture_duplicate():
    segs = {**HANDSHAKE, 6: seg(6, "c", 1001, 5001, 0x18, 100)}
    ev = Event("CP008", 1, 6, {"original_frame": 4})
    result, run = fake(segs, dict.fromkeys(segs, 1), events=[ev], ws_flags={6: ("retransmission",)})
    report = cc.compare(result, run, segs)
    (d,) = report.disagreements
    assert (d.frame, d.kind, d.known) == (6, "retransmission", "capture-duplicate")
    assert report.agrees and report.counts["retransmission"].explained == 1
    assert "capture-duplicate [definition]" in cc.render_crosscheck(report)


def test_connections_compared_as_partitions():
    # Wireshark numbers streams from 0, pcapcheck connections from 1: same partition
    result, run = fake(HANDSHAKE, dict.fromkeys(HANDSHAKE, 1), streams=dict.fromkeys(HANDSHAKE, 7))
    assert cc.compare(result, run, HANDSHAKE).agrees
    # Wireshark splits at frame 3
    streams = {1: 0, 2: 0, 3: 1, 4: 1, 5: 1}
    result, run = fake(HANDSHAKE, dict.fromkeys(HANDSHAKE, 1), streams=streams)
    report = cc.compare(result, run, HANDSHAKE)
    (d,) = report.disagreements
    assert (d.frame, d.kind) == (3, cc.CONNECTION)
    assert d.pcapcheck == "connection 1 (frames 1-5)" and d.wireshark == "tcp.stream 1 (frames 3-5)"
    assert report.counts[cc.CONNECTION].differ == 5
    # pcapcheck splits at frame 4
    result, run = fake(HANDSHAKE, {1: 1, 2: 1, 3: 1, 4: 2, 5: 2})
    (d,) = cc.compare(result, run, HANDSHAKE).disagreements
    assert (d.frame, d.pcapcheck, d.wireshark) == (
        4,
        "connection 2 (frames 4-5)",
        "tcp.stream 0 (frames 1-5)",
    )


def test_flags_after_a_grouping_difference_are_consequences():
    streams = {1: 0, 2: 0, 3: 1, 4: 1, 5: 1}
    result, run = fake(
        HANDSHAKE, dict.fromkeys(HANDSHAKE, 1), streams=streams, marks={5: {"duplicate_ack"}}
    )
    report = cc.compare(result, run, HANDSHAKE)
    flag = next(d for d in report.disagreements if d.kind == "duplicate_ack")
    assert flag.known == "after-connection-difference" and flag.note == "after frame 3"
    assert [d.explained for d in report.disagreements] == [False, True]


def test_frame_only_one_tool_decoded():
    segs = dict(HANDSHAKE)
    del segs[4]
    ev = Event("CP005", None, 4, {"reason": "TCP data offset 3 < 5"})
    result, run = fake(segs, dict.fromkeys(segs, 1), events=[ev])
    run.lines.insert(3, ws_line(HANDSHAKE[4], 0))
    result.packets = 5
    report = cc.compare(result, run, segs)
    (d,) = report.disagreements
    assert (d.frame, d.kind, d.pcapcheck, d.wireshark) == (
        4,
        cc.CONNECTION,
        "not decoded as TCP",
        "tcp.stream 0",
    )
    assert d.known == "malformed-for-pcapcheck" and "data offset" in d.note
    assert report.counts[cc.CONNECTION].wireshark_only == 1


def test_records_without_a_packet_are_frames_for_both_tools():
    # a pcapng custom block is frame 3 for Wireshark and for pcapcheck's reader: the
    # packets are frames 1, 2, 4, 5, 6 for both, and frame 3 is TCP for neither
    segs = {f + (f >= 3): replace(s, frame=f + (f >= 3)) for f, s in HANDSHAKE.items()}
    assert sorted(segs) == [1, 2, 4, 5, 6]
    result, run = fake(segs, dict.fromkeys(segs, 1), extra=(3,))
    report = cc.compare(result, run, segs, frames=6)
    assert report.agrees and report.disagreements == []
    assert report.tcp_frames == 5 and report.frames == 6
    assert report.counts[cc.CONNECTION].both == 5
    # Wireshark decodes a 7th frame as TCP, pcapcheck read 6: no such frame for pcapcheck
    more = {**segs, 7: replace(HANDSHAKE[5], frame=7)}
    _result, run = fake(more, dict.fromkeys(more, 1), extra=(3,))
    (d,) = cc.compare(result, run, segs, frames=6).disagreements
    assert (d.frame, d.kind, d.pcapcheck, d.wireshark, d.known) == (
        7,
        cc.CONNECTION,
        "no such frame",
        "tcp.stream 0",
        None,
    )


def test_known_difference_malformed_for_wireshark():
    result, run = fake(HANDSHAKE, dict.fromkeys(HANDSHAKE, 1))
    cols = run.lines[3].split("\t")
    names = list(FIELDS)
    for n in ("tcp.stream", "tcp.seq_raw", "tcp.srcport", "tcp.dstport", "tcp.ack_raw"):
        cols[names.index(n)] = ""
    cols[names.index("_ws.malformed")] = "[Malformed Packet: TCP]"
    cols[names.index("_ws.expert.message")] = "Malformed Packet (Exception occurred)"
    run.lines[3] = "\t".join(cols)
    (d,) = cc.compare(result, run, HANDSHAKE).disagreements
    assert (d.frame, d.kind, d.pcapcheck, d.wireshark) == (
        4,
        cc.CONNECTION,
        "connection 1",
        "not a TCP segment",
    )
    assert d.known == "malformed-for-wireshark" and "Malformed" in d.note


def test_known_difference_after_close():
    # the connection closed; a data segment sent again after it is CL009 for pcapcheck
    segs = {
        **HANDSHAKE,
        6: seg(6, "c", 1001, 5001, 0x18, 100),
        7: seg(7, "c", 1001, 5001, 0x18, 100),
    }
    result, run = fake(
        segs,
        dict.fromkeys(segs, 1),
        events=[Event("CL009", 1, 6, {"closed_frame": 5})],
        ws_flags={6: ("retransmission",), 7: ("retransmission",)},
    )
    report = cc.compare(result, run, segs)
    assert [(d.frame, d.known) for d in report.disagreements] == [
        (6, "after-close"),
        (7, "after-close"),
    ]


def test_ack_of_captured_data_after_a_gap():
    # server data 5001-6001 lost, 6001-7001 captured; the ACK of 6001 and 7001
    segs = dict(HANDSHAKE)
    segs[5] = seg(5, "s", 5001, 1101, 0x18, 1000)
    segs[6] = seg(6, "c", 1101, 6001)
    segs[7] = seg(7, "s", 6001, 1101, 0x18, 1000)
    segs[8] = seg(8, "c", 1101, 7001)
    segs[5] = seg(5, "s", 5001, 1101)  # the 1000 bytes of 5001 never captured
    result, run = fake(
        segs,
        dict.fromkeys(segs, 1),
        marks={6: {"ack_lost_segment"}, 7: {"lost_segment"}},
        ws_flags={6: ("ack_lost_segment",), 7: ("lost_segment",), 8: ("ack_lost_segment",)},
    )
    report = cc.compare(result, run, segs)
    (d,) = report.disagreements
    assert (d.frame, d.kind, d.known) == (8, "ack_lost_segment", "stale-next-expected-ack")


# ------------------------------------------------------------------ the command
@needs_tshark
def test_command_exit_0_on_agreement_apart_from_known_differences():
    from pcapcheck.cli import app

    res = CliRunner().invoke(
        app,
        [
            "crosscheck",
            str(SAMPLES / "crafted/cp008_capture-duplicates.pcap"),
            str(SAMPLES / "crafted/clean_handshake_close.pcap"),
        ],
    )
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout.count("== ") == 2
    assert "known: capture-duplicate" in res.stdout and "retransmission" in res.stdout
    assert "full agreement" in res.stdout


@needs_tshark
def test_command_exit_1_on_an_unexplained_disagreement(monkeypatch):
    from pcapcheck.cli import app

    monkeypatch.setattr(cc, "KNOWN_DIFFERENCES", ())
    res = CliRunner().invoke(
        app, ["crosscheck", str(SAMPLES / "crafted/cp008_capture-duplicates.pcap")]
    )
    assert res.exit_code == 1
    assert "UNEXPLAINED" in res.stdout


@needs_tshark
def test_command_exit_2_on_an_unreadable_file_still_reports_the_others():
    from pcapcheck.cli import app

    res = CliRunner().invoke(
        app,
        [
            "crosscheck",
            str(SAMPLES / "encap/bad/text.pcap"),
            str(SAMPLES / "crafted/clean_handshake_close.pcap"),
        ],
    )
    assert res.exit_code == 2
    assert res.stderr.startswith("pcapcheck: error: ") and len(res.stderr.splitlines()) == 1
    assert "clean_handshake_close.pcap ==" in res.stdout


def test_command_exit_2_without_tshark(monkeypatch):
    from pyshark.tshark import tshark as pyshark_tshark

    from pcapcheck.cli import app

    def missing(*args, **kwargs):
        raise pyshark_tshark.TSharkNotFoundException("TShark not found")

    monkeypatch.setattr(pyshark_tshark, "get_process_path", missing)
    monkeypatch.setattr(tshark, "_version_cache", [])
    res = CliRunner().invoke(
        app, ["crosscheck", str(SAMPLES / "crafted/clean_handshake_close.pcap")]
    )
    assert res.exit_code == 2
    assert res.stderr.startswith("pcapcheck: error: tshark not found")
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr
