"""Ladder diagrams: states beside the arrows, frame numbers, relative numbers, findings on
their arrow, folding, crossing segments, the width limit, --ascii, and the command."""

from __future__ import annotations

import pytest
from conftest import SAMPLES
from typer.testing import CliRunner

from pcapcheck.cli import app
from pcapcheck.report.ladder import (
    MIN_WIDTH,
    LadderError,
    connection_segments,
    endpoint_parts,
    render_ladder,
)

runner = CliRunner()
ALICE = "grading/submissions/alice/http.pcap"


@pytest.fixture(scope="module")
def ladder(analyze):
    """``ladder(name, connection=1, **kw)`` → the ladder's lines."""

    def draw(name: str, connection: int = 1, **kw) -> list[str]:
        result = analyze(name)
        segs = connection_segments(SAMPLES / name, result.connections)
        return render_ladder(result, connection, segs[connection], **kw).splitlines()

    return draw


def row(lines: list[str], frame: int) -> str:
    """The arrow row of ``frame``."""
    return next(line for line in lines if line[:5].strip() == str(frame))


def after(lines: list[str], frame: int, n: int = 1) -> list[str]:
    """The ``n`` rows following the arrow row of ``frame``."""
    i = lines.index(row(lines, frame))
    return lines[i + 1 : i + 1 + n]


def test_clean_connection_states_beside_arrows(ladder):
    lines = ladder("crafted/clean_handshake_close.pcap")
    assert lines[0] == (
        "connection 1: client 10.0.0.1:40000 → server 10.0.0.2:80, "
        "handshake complete, close graceful"
    )
    assert lines[2].split() == ["CLOSED", "│", "│", "LISTEN"]
    assert row(lines, 1).startswith("    1 SYN-SENT      │─ SYN seq=0 len=0 ──")
    assert row(lines, 1).endswith("─▶│")
    r2 = row(lines, 2)
    assert r2.startswith("    2 ESTABLISHED   │◀──")
    assert r2.endswith("─ SYN,ACK seq=0 ack=1 len=0 ─│ SYN-RECEIVED")
    assert row(lines, 3).endswith("─▶│ ESTABLISHED")
    assert "ACK seq=1 ack=1 len=0" in row(lines, 3)
    assert "PSH,ACK seq=1 ack=1 len=100" in row(lines, 4)
    assert "PSH,ACK seq=1 ack=101 len=1000" in row(lines, 5)
    assert row(lines, 7).startswith("    7 FIN-WAIT-1    │─ FIN,ACK seq=101 ack=1001 len=0")
    assert row(lines, 7).endswith("│ CLOSE-WAIT")
    assert row(lines, 8).startswith("    8 FIN-WAIT-2    │◀")
    assert row(lines, 9).startswith("    9 TIME-WAIT     │◀")
    assert row(lines, 9).endswith("│ LAST-ACK")
    assert row(lines, 10).endswith("│ CLOSED")
    assert lines[-1] == "final: client TIME-WAIT, server CLOSED"
    # one arrow per segment: 10 frames, no findings
    assert sum(1 for line in lines if "▶│" in line or "│◀" in line) == 10
    assert "▲" not in "\n".join(lines)


def test_simultaneous_open_draws_crossing_syns_in_capture_order(ladder):
    lines = ladder("crafted/clean_simultaneous_open.pcap")
    assert lines[2].split() == ["CLOSED", "│", "│", "CLOSED"]
    assert row(lines, 1).startswith("    1 SYN-SENT      │─ SYN seq=0 len=0")
    r2 = row(lines, 2)
    assert r2.startswith("    2 SYN-RECEIVED  │◀") and "SYN seq=0 len=0 ─│ SYN-SENT" in r2
    # the server changes twice at frame 2: a second row carries its second state
    second, finding = after(lines, 2, 2)
    assert second.split() == ["│", "│", "SYN-RECEIVED"]
    assert finding.split()[1:4] == ["▲", "HS010", "simultaneous"]
    assert row(lines, 3).endswith("│ ESTABLISHED") and "SYN,ACK seq=0 ack=1" in row(lines, 3)
    assert row(lines, 4).startswith("    4 ESTABLISHED   │◀")


def test_simultaneous_close_both_sides_closing(ladder):
    lines = ladder("crafted/clean_simultaneous_close.pcap")
    r8 = row(lines, 8)
    assert r8.startswith("    8 CLOSING       │◀")
    assert r8.endswith("FIN,ACK seq=1001 ack=101 len=0 ─│ FIN-WAIT-1")
    second, finding = after(lines, 8, 2)
    assert second.split() == ["│", "│", "CLOSING"]
    assert "▲ CL007 simultaneous close: the FINs crossed" in finding
    assert row(lines, 9).endswith("│ TIME-WAIT")
    assert row(lines, 10).startswith("   10 TIME-WAIT     │◀")
    assert lines[-1] == "final: client TIME-WAIT, server TIME-WAIT"


def test_piggybacked_fin_gives_the_client_two_states_on_one_frame(ladder):
    lines = ladder("crafted/clean_fin_piggyback.pcap")
    assert row(lines, 8).startswith("    8 FIN-WAIT-2    │◀")
    assert row(lines, 8).endswith("│ LAST-ACK")
    assert after(lines, 8)[0].split() == ["TIME-WAIT", "│", "│"]


def test_rst_and_its_finding_on_the_arrow(ladder):
    lines = ladder("crafted/rs001_reset-established.pcap")
    r7 = row(lines, 7)
    assert r7.startswith("    7 CLOSED        │─ RST,ACK seq=101 ack=1001 len=0")
    assert r7.endswith("▶│ CLOSED")
    assert after(lines, 7)[0].split()[1:3] == ["▲", "RS001"]
    assert "the client aborted the established connection" in after(lines, 7)[0]


def test_finding_marked_under_the_frame_that_caused_it(ladder):
    lines = ladder("crafted/hs002_synack-bad-ack.pcap")
    assert "SYN,ACK seq=0 ack=0 len=0" in row(lines, 2)
    assert after(lines, 2)[0] == (
        "                    │ ▲ HS002 SYN-ACK acknowledges 0, expected client ISN+1 = 1       │"
    )
    # the client's RST answers the unacceptable SYN-ACK (RFC 9293 §3.10.7.3): no state
    # change for the client (it stays in SYN-SENT), no finding; the server: LISTEN
    assert row(lines, 3).startswith("    3               │─ RST seq=0 len=0")
    assert row(lines, 3).endswith("│ LISTEN")
    assert after(lines, 3)[0] == "final: client SYN-SENT, server LISTEN"


def test_a_bad_synack_answered_by_rst_then_a_good_one_completes_the_handshake(ladder):
    # RFC 9293 figure 8 at the client (recovery from an old duplicate SYN)
    lines = ladder("crafted/hs002_synack-bad-ack_recovered.pcap")
    assert lines[0].endswith("handshake complete, close graceful")
    assert row(lines, 1).startswith("    1 SYN-SENT      │─ SYN seq=0 len=0")
    assert row(lines, 2).endswith("─│ SYN-RECEIVED")
    assert after(lines, 2)[0].split()[1:3] == ["▲", "HS002"]
    assert row(lines, 3).startswith("    3               │─ RST seq=")
    assert row(lines, 3).endswith("▶│ LISTEN")
    assert row(lines, 4).startswith("    4 ESTABLISHED   │◀")
    assert row(lines, 4).endswith("SYN,ACK seq=0 ack=1 len=0 ─│ SYN-RECEIVED")
    assert row(lines, 5).startswith("    5               │─ ACK seq=1 ack=1 len=0")
    assert row(lines, 5).endswith("▶│ ESTABLISHED")
    markers = [line.split()[2] for line in lines if "▲" in line]
    assert markers == ["HS002"]  # nothing after the bad SYN-ACK
    assert lines[-1] == "final: client TIME-WAIT, server CLOSED"


def test_midstream_numbers_count_from_the_first_segment_seen(ladder, analyze):
    assert analyze("crafted/cp001_midstream.pcap").connections[0]["client_isn"] is None
    lines = ladder("crafted/cp001_midstream.pcap")
    first = next(line for line in lines if line[:5].strip().isdigit())
    assert "seq=0 ack=0" in first


def test_long_data_phase_is_folded(ladder):
    lines = ladder(ALICE)
    fold = [line for line in lines if "…" in line and "segments" in line]
    assert len(fold) == 1
    assert "… 16 segments of data transfer (frames 7–22) …" in fold[0]
    drawn = {int(line[:5]) for line in lines if line[:5].strip().isdigit()}
    assert drawn == set(range(1, 7)) | set(range(23, 30))
    assert row(lines, 24).endswith("PSH,ACK seq=18825 ack=121 len=1448 ─│")


def test_bulk_transfer_folds_to_a_short_ladder(ladder):
    lines = ladder("loopback/bulk_transfer.pcap")
    assert len(lines) < 25
    assert any("data transfer (frames 7–63)" in line for line in lines)


@pytest.mark.parametrize(
    "name",
    [
        "crafted/clean_handshake_close.pcap",
        "crafted/clean_ipv6.pcap",
        "crafted/hs001_syn-unanswered.pcap",
        "crafted/cl001_fin-unacked.pcap",
        "crafted/clean_seq_wrap.pcap",
        "loopback/bulk_transfer.pcap",
        ALICE,
    ],
)
@pytest.mark.parametrize("width", [100, 80, MIN_WIDTH])
def test_every_line_fits_the_width(ladder, name, width):
    for ascii_only in (False, True):
        lines = ladder(name, width=width, ascii=ascii_only)
        assert max(len(line) for line in lines) <= width


def test_narrow_ladder_puts_the_verdict_on_its_own_line(ladder):
    lines = ladder("crafted/hs002_synack-bad-ack.pcap", width=80, ascii=True)
    assert lines[:2] == [
        "connection 1: client 10.0.0.1:40000 -> server 10.0.0.2:80",
        "handshake incomplete, close none",
    ]


def test_ascii_has_only_ascii(ladder):
    lines = ladder("crafted/clean_simultaneous_close.pcap", ascii=True)
    text = "\n".join(lines)
    assert text.isascii()
    assert lines[0].startswith("connection 1: client 10.0.0.1:40000 -> server 10.0.0.2:80")
    assert row(lines, 1).startswith("    1 SYN-SENT      |- SYN seq=0 len=0 ---")
    assert row(lines, 1).endswith("->|")
    assert row(lines, 2).startswith("    2 ESTABLISHED   |<---")
    assert "| ^ CL007 simultaneous close" in text
    folded = "\n".join(ladder(ALICE, ascii=True))
    assert folded.isascii() and "... 16 segments of data transfer (frames 7-22) ..." in folded


def test_unknown_connection_and_narrow_width(analyze):
    result = analyze("crafted/clean_handshake_close.pcap")
    with pytest.raises(LadderError, match=r"no connection 2 .*connections 1-1"):
        render_ladder(result, 2, [])
    with pytest.raises(LadderError, match="at least 60 columns"):
        render_ladder(result, 1, [], width=59)


def test_segments_picked_by_four_tuple_and_frame_range(analyze):
    result = analyze("crafted/clean_port_reuse.pcap")
    segs = connection_segments(SAMPLES / "crafted/clean_port_reuse.pcap", result.connections)
    for conn in result.connections:
        frames = [s.frame for s in segs[conn["id"]]]
        assert frames and frames[0] == conn["first_frame"] and frames[-1] == conn["last_frame"]
        assert len(frames) == conn["packets"]["client"] + conn["packets"]["server"]


def test_endpoint_parts():
    assert endpoint_parts("10.0.0.1:40000") == ("10.0.0.1", 40000)
    assert endpoint_parts("[2001:db8::1]:80") == ("2001:db8::1", 80)


# ---- the command ------------------------------------------------------------------------


def test_command_default_connection_and_hint():
    res = runner.invoke(app, ["ladder", str(SAMPLES / "grading/submissions/ivan.pcap")])
    assert res.exit_code == 0
    assert res.stdout.startswith("connection 1: client 10.0.0.1:55100")
    assert "3 more connections in this capture" in res.stderr
    res = runner.invoke(
        app,
        [
            "ladder",
            "--connection",
            "3",
            "--ascii",
            "--width",
            "80",
            str(SAMPLES / "grading/submissions/ivan.pcap"),
        ],
    )
    assert res.exit_code == 0 and res.stdout.startswith("connection 3: client 10.0.0.1:55102")
    assert res.stdout.isascii() and max(map(len, res.stdout.splitlines())) <= 80


@pytest.mark.parametrize(
    "args,message",
    [
        (["grading/submissions/frank.pcap"], "not a capture file"),
        (["grading/submissions/heidi.pcap"], "no TCP connection in the capture"),
        (["--connection", "9", "grading/submissions/ivan.pcap"], "no connection 9"),
        (["--width", "40", "crafted/clean_handshake_close.pcap"], "too narrow"),
    ],
)
def test_command_errors_are_one_line_exit_2(args, message):
    args = [
        a if not a.startswith("grading/") and not a.startswith("crafted/") else str(SAMPLES / a)
        for a in args
    ]
    res = runner.invoke(app, ["ladder", *args])
    assert res.exit_code == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def _two_vxlan_networks(path) -> None:
    """The clean conversation of sample_pcaps/encap/vxlan.pcap (its VNI 42 frames), each
    frame followed 1 µs later by the same frame under VNI 43: the same inner 4-tuple in
    two VXLAN networks, interleaved."""
    import dpkt

    with open(SAMPLES / "encap/vxlan.pcap", "rb") as f:
        reader = dpkt.pcap.Reader(f)
        records = list(reader)
        linktype = reader.datalink()
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=linktype)
        for ts, buf in records:
            eth = dpkt.ethernet.Ethernet(buf)
            udp = eth.data.data
            assert udp.dport == 4789
            if udp.data[4:7] != (42).to_bytes(3, "big"):
                continue
            writer.writepkt(buf, ts)
            udp.data = udp.data[:4] + (43).to_bytes(3, "big") + udp.data[7:]
            udp.sum = 0
            writer.writepkt(bytes(eth), ts + 1e-6)


def test_segments_of_two_tunnels_with_one_inner_four_tuple(tmp_path, catalog):
    from pcapcheck.pipeline import analyze_file

    path = tmp_path / "two.pcap"
    _two_vxlan_networks(path)
    result = analyze_file(path, catalog, catalog.select(None, None))
    one, two = result.connections
    assert (one["client"], one["server"]) == (two["client"], two["server"])
    segs = connection_segments(path, result.connections)
    for conn, vni, parity in ((one, "vxlan 42", 1), (two, "vxlan 43", 0)):
        got = segs[conn["id"]]
        assert len(got) == conn["packets"]["client"] + conn["packets"]["server"]
        assert {s.frame % 2 for s in got} == {parity}
        assert all(vni in s.encapsulation for s in got)


def test_a_bad_handshake_ack_the_servers_rst_then_the_closed_clients(ladder):
    # RFC 9293 §3.10.7.4: the server answers the bad ACK <SEQ=SEG.ACK><CTL=RST> and stays
    # in SYN-RECEIVED; the client is CLOSED; its answer to the retransmitted SYN-ACK
    # (§3.10.7.1) returns the listener to LISTEN
    lines = ladder("crafted/hs004_handshake-ack-bad_recovered.pcap")
    assert lines[0].endswith("handshake incomplete, close reset")
    assert row(lines, 2).startswith("    2 ESTABLISHED   │◀")
    assert row(lines, 2).endswith("SYN,ACK seq=0 ack=1 len=0 ─│ SYN-RECEIVED")
    assert row(lines, 3).startswith("    3               │─ ACK seq=1 ack=0 len=0")
    assert row(lines, 3).endswith("▶│")
    assert after(lines, 3)[0].split()[1:3] == ["▲", "HS004"]
    assert row(lines, 4).startswith("    4 CLOSED        │◀")
    assert row(lines, 4).endswith("RST seq=0 len=0 ─│")  # the server stays SYN-RECEIVED
    assert row(lines, 5).endswith("SYN,ACK seq=0 ack=1 len=0 ─│")
    assert after(lines, 5)[0].split()[1:3] == ["▲", "HS006"]
    assert row(lines, 6).startswith("    6               │─ RST seq=1 len=0")
    assert row(lines, 6).endswith("▶│ LISTEN")
    markers = [line.split()[2] for line in lines if "▲" in line]
    assert markers == ["HS004", "HS006"]  # no RS004 for either RST
    assert lines[-1] == "final: client CLOSED, server LISTEN"
