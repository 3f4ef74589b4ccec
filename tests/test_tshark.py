"""Wireshark's dissectors as a segment source (``analyze --decoder tshark``).

The equality tests run both decoders on the sample captures and require identical JSON
documents (apart from the path, and the wording of CP005 reasons and CP006 details, which
are each tool's own words) and identical segments: on every capture under sample_pcaps/
with PCAPCHECK_FULL=1, else on every 4th one plus the captures listed here (one per link
type and container, and the ones where Wireshark reads something else than pcapcheck,
``WIRESHARK_READS_DIFFERENTLY``, with the reason).

tshark costs ~0.2 s of CPU per file whatever its size, so the runs are started in the
background when this module is imported (``pcapcheck.capture.tshark.prefetch(wait=False)``,
shared with tests/test_crosscheck.py) and overlap with the tests that come before.
"""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import pytest
from conftest import ALL_CAPTURES, HAVE_TSHARK, SAMPLES, needs_tshark
from conftest import selected_captures as _selected
from typer.testing import CliRunner

from pcapcheck.capture import tshark
from pcapcheck.capture.decoder import DecodeError
from pcapcheck.capture.reader import CaptureError, open_capture
from pcapcheck.model import Segment, TcpOptions
from pcapcheck.pipeline import NativeSource, analyze_file

#: Captures where Wireshark reads other packets than pcapcheck, and why. The equality
#: test is a strict xfail for them: fixing the cause makes it fail, remove the entry then.
WIRESHARK_READS_DIFFERENTLY = {
    "encap/bad/absurd_caplen.pcap": "Wireshark's libpcap reader, seeing an implausible record header (captured length "
    "2147483632) among the first records, tries the 'modified' pcap variants and takes "
    "the file for a Nokia pcap (captype: nokiapcap): it misreads every record; "
    "pcapcheck reads the two good records and stops at the corrupt one (CP006)",
    "encap/bad/mpls_pw_cut_cw.pcap": "Wireshark's pw_eth_heuristic hands a pseudowire "
    "control word cut at 2 of its 4 bytes to its data dissector, with no malformed mark "
    "(the tshark source counts the frame as other-ethertype); pcapcheck reports it (CP005)",
}


#: Tunnels whose header Wireshark reads where pcapcheck rejects it: the tshark source
#: follows Wireshark's dissection into the tunnel (frame.protocols, the layer table's
#: labels), so it sees the TCP segment inside, or no TCP, where pcapcheck reports CP005.
WIRESHARK_READS_DIFFERENTLY.update(
    {
        "encap/bad/geneve_v1.pcap": "Wireshark dissects a Geneve header of version 1 as "
        "version 0 (and the TCP segment inside it); pcapcheck reports the version it does "
        "not support (CP005)",
        "encap/bad/gre_v1_pptp.pcap": "Wireshark reads GRE version 1 as PPTP's enhanced GRE "
        "carrying PPP (no TCP: the tshark source counts the frame as other-ethertype); "
        "pcapcheck reports the GRE version it does not support (CP005)",
        "encap/bad/vxlan_no_i_flag.pcap": "Wireshark dissects a VXLAN header without the I "
        "flag (and the TCP segment inside it); pcapcheck reports it (RFC 7348 §5: no valid "
        "VNI, CP005)",
    }
)


def rel(path: Path) -> str:
    return path.relative_to(SAMPLES).as_posix()


#: Always checked: one capture per container and link type, IPv6 extension headers,
#: snaplen cuts, non-TCP packets, malformed packets.
DECODER_ESSENTIALS = {
    "encap/eth_ipv4.pcap.gz",
    "encap/eth_ipv4_nsec_bigendian.pcap",
    "encap/multi_if.pcapng",
    "encap/multi_section.pcapng",
    "encap/eth_ipv6_allext.pcap",
    "encap/qinq.pcap",
    "encap/sll.pcap",
    "encap/sll2.pcap",
    "encap/null_ipv6_bigendian.pcap",
    "encap/loop.pcap",
    "encap/raw_ipv4_228.pcap",
    "encap/raw_ipv6.pcap",
    "encap/ipv4_options.pcap",
    "encap/snaplen64.pcap",
    "encap/with_non_tcp.pcap",
    "loopback/snaplen_bulk.pcap",
    "crafted/cp003_truncated-packets.pcap",
    "crafted/clean_tfo.pcap",
    "artefacts/artefact_snaplen_in_options.pcap",
    "artefacts/artefact_tso_gro.pcap",
    "encap/bad/tcp_optlen0.pcap",
    "encap/bad/ipv4_ihl3.pcap",
    "encap/bad/tcp_doff3.pcap",
    "encap/bad/unsupported_linktype.pcap",
    "encap/bad/cut_record_body.pcap",
    "artefacts/bad/tcp_options_bad_len.pcap",
    "artefacts/bad/zero_length_record.pcap",
    "artefacts/bad/gzip_corrupt_midway.pcap.gz",
    "artefacts/bad/ipv4_total_len_long.pcap",
}
CAPTURES = _selected(ALL_CAPTURES, DECODER_ESSENTIALS | set(WIRESHARK_READS_DIFFERENTLY))
if HAVE_TSHARK:
    # One tshark run per capture for this module and tests/test_crosscheck.py, started now
    # in the background: it overlaps with the tests that run before.
    tshark.prefetch(CAPTURES, analysis=True, wait=False)


def params():
    out = []
    for p in CAPTURES:
        reason = WIRESHARK_READS_DIFFERENTLY.get(rel(p))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(p, id=rel(p), marks=marks))
    return out


@pytest.fixture(scope="module")
def catalog():
    from pcapcheck.catalog.rules import load_catalog

    return load_catalog()


def comparable(result) -> dict:
    """The JSON document of one file without its path; CP005 reasons, CP006 details and
    the ``truncated`` note are each tool's own words, compared as present/absent."""
    from pcapcheck.report.json_report import document

    doc = document([result])["files"][0]
    doc.pop("path")
    if "error" in doc:
        return {"error": True}
    doc["truncated"] = doc["truncated"] is not None
    for f in doc["findings"]:
        if f["rule"] in ("CP005", "CP006"):
            f["message"] = f["data"] = "<tool's own words>"
    return doc


def analyse(path, catalog, decoder):
    try:
        return comparable(analyze_file(path, catalog, catalog.select(None, None), decoder=decoder))
    except CaptureError:
        return {"error": True}


@needs_tshark
@pytest.mark.parametrize("path", params())
def test_tshark_decoder_gives_the_same_report(path, catalog):
    assert analyse(path, catalog, "tshark") == analyse(path, catalog, "native")


def items(source):
    """Every (frame, ts, item) with DecodeErrors reduced to their type, plus the
    source's skipped counter, format, snaplen and whether it was truncated."""
    out = [(f, ts, "DecodeError" if isinstance(it, DecodeError) else it) for f, ts, it in source]
    return out, Counter(source.skipped), source.format, source.truncated is not None


@needs_tshark
@pytest.mark.parametrize("path", params())
def test_tshark_source_gives_the_same_segments(path):
    """Segment by segment (options, IP ID, truncation included), not only the report."""
    try:
        native = items(NativeSource(path))
    except CaptureError:
        with pytest.raises(CaptureError):
            items(tshark.TsharkSource(path))
        return
    assert items(tshark.TsharkSource(path)) == native


@needs_tshark
@pytest.mark.parametrize(
    ("ports", "connections"),
    [(None, 0), ({"vxlan": [4789, 8472]}, 18), ({"vxlan": [8472], "geneve": [4789]}, 18)],
)
def test_tshark_source_follows_the_runs_tunnel_ports(ports, connections):
    """``[tunnel-ports]`` reaches the tshark source: Wireshark is told to decode VXLAN on
    8472 (kernel/vxlan_8472.pcap, Linux's historical port) and its segments are the
    native decoder's with the same ports, encapsulation paths included."""
    path = SAMPLES / "encap" / "kernel" / "vxlan_8472.pcap"
    native = items(NativeSource(path, tunnel_ports=ports))
    got = items(tshark.TsharkSource(path, tunnel_ports=ports))
    assert got == native
    segs = [item for _f, _ts, item in got[0] if isinstance(item, Segment)]
    assert len(segs) == connections
    assert {seg.encapsulation[2:4] for seg in segs} <= {("udp 8472", "vxlan 7")}


@needs_tshark
@pytest.mark.parametrize(
    "name",
    [
        "crafted/cp004_bad-checksum.pcap",
        "artefacts/artefact_checksum_offload.pcap",
        "encap/eth_ipv6_allext.pcap",
        "loopback/snaplen_bulk.pcap",
    ],
)
def test_checksums_verified_by_wireshark_agree(name):
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{name} is not in this checkout")

    def verdicts(source):
        return [(f, seg.checksum_ok) for f, _ts, seg in source if isinstance(seg, Segment)]

    native = verdicts(NativeSource(path, verify_checksums=True))
    assert verdicts(tshark.TsharkSource(path, verify_checksums=True)) == native
    if name.startswith(("crafted/cp004", "artefacts/artefact_checksum")):
        assert any(ok is False for _f, ok in native)


@needs_tshark
def test_snaplen_cut_keeps_ip_lengths():
    """tcp.len comes from the IP length, so a 96-byte snaplen leaves payload lengths
    right, and the cut packets are marked truncated."""
    path = SAMPLES / "loopback/snaplen_bulk.pcap"
    segs = [s for _f, _t, s in tshark.TsharkSource(path) if isinstance(s, Segment)]
    big = [s for s in segs if s.payload_len > 1000]
    assert big and all(s.truncated for s in big)
    assert all(not s.truncated for s in segs if s.payload_len == 0)


@needs_tshark
@pytest.mark.parametrize(
    "name",
    [
        "encap/bad/text.pcap",
        "encap/bad/short_header.pcap",
        "encap/bad/empty.pcap",
        "encap/bad/corrupt_start.pcap.gz",
        "no/such/file.pcap",
    ],
)
def test_unreadable_files_raise_capture_error_with_one_line(name):
    path = SAMPLES / name
    with pytest.raises(CaptureError) as info:
        list(tshark.TsharkSource(path))
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path))


@needs_tshark
def test_truncated_file_is_read_up_to_the_cut():
    source = tshark.TsharkSource(SAMPLES / "encap/bad/cut_record_body.pcap")
    frames = [f for f, _t, _i in source]
    assert frames == [1, 2, 3, 4, 5]
    assert source.truncated.startswith("file ends inside record 6")
    assert "\n" not in source.truncated


@needs_tshark
def test_analyze_command_with_the_tshark_decoder():
    from pcapcheck.cli import app

    path = str(SAMPLES / "crafted/hs002_synack-bad-ack.pcap")
    runner = CliRunner()
    native = runner.invoke(app, ["analyze", path])
    wireshark = runner.invoke(app, ["analyze", "--decoder", "tshark", path])
    assert wireshark.exit_code == native.exit_code == 1
    assert wireshark.stdout == native.stdout


def test_missing_tshark_is_a_one_line_error(monkeypatch):
    from pyshark.tshark import tshark as pyshark_tshark

    from pcapcheck.cli import app

    def missing(*args, **kwargs):
        raise pyshark_tshark.TSharkNotFoundException("TShark not found")

    monkeypatch.setattr(pyshark_tshark, "get_process_path", missing)
    with pytest.raises(tshark.TsharkMissing):
        tshark.TsharkSource(SAMPLES / "crafted/clean_handshake_close.pcap")
    res = CliRunner().invoke(
        app, ["analyze", "--decoder", "tshark", str(SAMPLES / "crafted/clean_handshake_close.pcap")]
    )
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert "tshark not found" in err and "\n" not in err and "Traceback" not in err


# ------------------------------------------------------------------ unit tests (no tshark)
def row(**fields) -> dict:
    base = {
        "frame.number": "1",
        "frame.time_epoch": "1700000000.123456000",
        "frame.len": "66",
        "frame.cap_len": "66",
        "frame.protocols": "eth:ethertype:ip:tcp",
        "ip.proto": "6",
        "ip.src": "10.0.0.1",
        "ip.dst": "10.0.0.2",
        "ip.id": "0x4e21",
        "ip.flags.mf": "0",
        "ip.frag_offset": "0",
        "tcp.srcport": "40000",
        "tcp.dstport": "80",
        "tcp.seq_raw": "3000000001",
        "tcp.ack_raw": "123456790",
        "tcp.flags": "0x0010",
        "tcp.window_size_value": "502",
        "tcp.hdr_len": "20",
        "tcp.len": "0",
    }
    base.update({k.replace("__", "."): v for k, v in fields.items()})
    return base


def test_row_to_segment():
    seg, kind = tshark.row_to_item(row())
    assert kind is None
    assert seg == Segment(
        1,
        1700000000.123456,
        "10.0.0.1",
        "10.0.0.2",
        40000,
        80,
        3000000001,
        123456790,
        0x10,
        502,
        0,
        None,
        0x4E21,
        4,
        False,
        None,
    )


def test_timestamps_equal_the_readers():
    # the reader computes integer ticks / ticks per second; so must the tshark source
    assert tshark._ts("1700000000.123456000") == 1700000000123456 / 10**6
    assert tshark._ts("1767225600.000500000") == 1767225600000500 / 10**6


@pytest.mark.parametrize(
    "fields, kind",
    [
        ({"frame.protocols": "eth:ethertype:arp"}, "arp"),
        ({"frame.protocols": "eth:ethertype:lldp"}, "other-ethertype"),
        ({"frame.protocols": "null:data"}, "other-af"),
        ({"frame.protocols": "eth:ethertype:ip:udp:dns", "ip.proto": "17"}, "ipv4-udp"),
        ({"frame.protocols": "eth:ethertype:ip:icmp", "ip.proto": "1"}, "icmp"),
        ({"frame.protocols": "eth:ethertype:ip:sctp", "ip.proto": "132"}, "other-ip-proto"),
        # an ICMP error quoting a TCP header is no tunnel
        ({"frame.protocols": "eth:ethertype:ip:icmp:ip:tcp", "ip.proto": "1\x1f6"}, "icmp"),
        ({"frame.protocols": "eth:ethertype:ip:data", "ip.frag_offset": "185"}, "ipv4-fragment"),
        ({"ip.flags.mf": "1"}, "ipv4-fragment"),
        (
            {"frame.protocols": "eth:ethertype:ipv6:ipv6.fraghdr:data", "ipv6.fraghdr.more": "1"},
            "ipv6-fragment",
        ),
        ({"frame.protocols": "eth:ethertype:ipv6:ipv6.hopopts:udp"}, "ipv6-udp"),
        ({"frame.protocols": "eth:ethertype:ipv6:icmpv6"}, "ipv6-icmp"),
    ],
)
def test_non_tcp_kinds_use_the_decoders_names(fields, kind):
    assert tshark.row_to_item(row(**fields)) == (None, kind)


def _tunnel_row(protocols: str, **fields) -> dict:
    """A TCP segment from 10.0.0.1 to 10.0.0.2 inside a tunnel between 192.0.2.1 and
    192.0.2.2 (each IP field has an occurrence per IP header, outer first)."""
    outer = {
        "frame.protocols": protocols,
        "ip.src": "192.0.2.1\x1f10.0.0.1",
        "ip.dst": "192.0.2.2\x1f10.0.0.2",
        "ip.proto": "17\x1f6",
        "ip.id": "0x0001\x1f0x4e21",
        "ip.flags.mf": "0\x1f0",
        "ip.frag_offset": "0\x1f0",
    }
    outer.update(fields)
    return row(**outer)


@pytest.mark.parametrize(
    "protocols, fields, path",
    [
        (
            "eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:tcp",
            {"udp.srcport": "51000", "udp.dstport": "4789", "vxlan.vni": "42"},
            ("eth", "ipv4 192.0.2.1>192.0.2.2", "udp 4789", "vxlan 42", "eth", "ipv4"),
        ),
        (  # the source port names the tunnel when the destination port does not
            "eth:ethertype:ip:udp:gtp:ip:tcp",
            {"udp.srcport": "2152", "udp.dstport": "40000", "gtp.message": "0xff",
             "gtp.teid": "0x00001001"},
            ("eth", "ipv4 192.0.2.1>192.0.2.2", "udp 2152", "gtpu 4097", "ipv4"),
        ),
        (
            "eth:ethertype:vlan:ethertype:mpls:ip:gre:ip:tcp",
            {"vlan.id": "100", "mpls.label": "16\x1f1000", "mpls.bottom": "0\x1f1",
             "ip.proto": "47\x1f6", "gre.flags.key": "1", "gre.key": "0x00000007",
             "gre.proto": "0x0800"},
            ("eth", "vlan 100", "mpls 16", "mpls 1000", "ipv4 192.0.2.1>192.0.2.2", "gre 7",
             "ipv4"),
        ),
        (  # ERSPAN type II: GRE with a sequence number, protocol type 0x88be
            "eth:ethertype:ip:gre:erspan:eth:ethertype:ip:tcp",
            {"ip.proto": "47\x1f6", "gre.flags.key": "0", "gre.flags.sequence_number": "1",
             "gre.proto": "0x88be", "erspan.spanid": "100"},
            ("eth", "ipv4 192.0.2.1>192.0.2.2", "gre", "erspan 2 100", "eth", "ipv4"),
        ),
        (
            "sll:ethertype:ip:ip:tcp",
            {"frame.encap_type": "210", "ip.proto": "4\x1f6"},
            ("sll2", "ipv4 192.0.2.1>192.0.2.2", "ipv4"),
        ),
    ],
)  # fmt: skip
def test_tunnelled_segment_has_the_decoders_encapsulation_path(protocols, fields, path):
    seg, kind = tshark.row_to_item(_tunnel_row(protocols, **fields))
    assert kind is None
    assert (seg.src, seg.dst, seg.ip_id, seg.encapsulation) == (
        "10.0.0.1",
        "10.0.0.2",
        0x4E21,
        path,
    )


@pytest.mark.parametrize(
    "protocols, fields, kind",
    [
        ("eth:ethertype:ip:udp:vxlan:eth:ethertype:arp", {"vxlan.vni": "42"}, "arp"),
        ("eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:udp:dns", {"ip.proto": "17\x1f17"},
         "ipv4-udp"),
        ("eth:ethertype:ip:udp:gtp", {"udp.dstport": "2152", "gtp.message": "0x01"},
         "gtpu-signalling"),
        ("eth:ethertype:ip:udp:teredo:data", {"udp.dstport": "3544"}, "other-teredo-payload"),
        ("eth:ethertype:ip:gre:data", {"ip.proto": "47"}, "other-ethertype"),
        ("eth:ethertype:ip:ip:data", {"ip.proto": "4\x1f6", "ip.frag_offset": "0\x1f185"},
         "ipv4-fragment"),
    ],
)  # fmt: skip
def test_what_a_tunnel_carries_that_is_not_tcp_has_the_decoders_kind(protocols, fields, kind):
    assert tshark.row_to_item(_tunnel_row(protocols, **fields)) == (None, kind)


def test_malformed_tunnel_header_is_a_decode_error():
    cut = _tunnel_row("eth:ethertype:ip:udp:vxlan", **{"_ws.malformed": "_ws.malformed"})
    with pytest.raises(DecodeError):
        tshark.row_to_item(cut)


@pytest.mark.parametrize(
    "fields",
    [
        {
            "frame.protocols": "user_dlt:data",
            "_ws.expert.message": "User encapsulation not handled: DLT=147",
        },
        {"frame.protocols": "eth", "_ws.short": "[Packet size limited during capture]"},
        {
            "frame.protocols": "eth:ethertype:ip",
            "ip.bogus_header_length": "1",
            "_ws.expert.message": "Bogus IP header length (12, must be at least 20)",
        },
        {"ip.bogus_ip_length": "1"},
        {"tcp.bogus_header_length": "1", "tcp.hdr_len": "12"},
        {"_ws.malformed": "[Malformed Packet: TCP]"},
        {"tcp.seq_raw": ""},
        {"tcp.hdr_len": "24", "tcp.options": "02000000", "tcp.option.len.invalid": "1"},
    ],
)
def test_what_wireshark_cannot_decode_is_a_decode_error(fields):
    with pytest.raises(DecodeError) as info:
        tshark.row_to_item(row(**fields))
    assert str(info.value).startswith("Wireshark: ")


def test_options_and_cut_options():
    full = row(
        **{
            "tcp.hdr_len": "40",
            "tcp.flags": "0x0002",
            "tcp.options": "020405b40402080a000003e80000000001030307",
            "tcp.options.mss_val": "1460",
            "tcp.options.sack_perm": "1",
            "tcp.options.timestamp.tsval": "1000",
            "tcp.options.timestamp.tsecr": "0",
            "tcp.options.wscale.shift": "7",
        }
    )
    seg, _ = tshark.row_to_item(full)
    assert seg.options == TcpOptions(1460, 7, True, (), 1000, 0, None)
    assert not seg.truncated
    # the snaplen cut the options after 10 bytes: MSS and SACK-permitted are whole, the
    # timestamps option (Wireshark decodes its first half) is left out, as the decoder does
    cut = dict(full, **{"tcp.options": "020405b40402080a0000", "tcp.options.timestamp.tsecr": ""})
    seg, _ = tshark.row_to_item(cut)
    assert seg.options == TcpOptions(1460, None, True, (), None, None, None)
    assert seg.truncated


def test_payload_cut_by_snaplen_is_truncated_with_ip_length():
    seg, _ = tshark.row_to_item(row(**{"tcp.len": "32741", "data.len": "30"}))
    assert seg.payload_len == 32741 and seg.truncated
    seg, _ = tshark.row_to_item(row(**{"tcp.len": "100", "data.len": "100"}))
    assert seg.payload_len == 100 and not seg.truncated


def test_sack_and_tfo():
    seg, _ = tshark.row_to_item(
        row(
            **{
                "tcp.hdr_len": "32",
                "tcp.options": "0101050a00000064000000c8",
                "tcp.options.sack_le": "100\x1f300",
                "tcp.options.sack_re": "200\x1f400",
            }
        )
    )
    assert seg.options.sack_blocks == ((100, 200), (300, 400))
    seg, _ = tshark.row_to_item(
        row(**{"tcp.hdr_len": "24", "tcp.options": "22020101", "tcp.options.tfo.request": "1"})
    )
    assert seg.options.tfo_cookie == b""


def test_checksum_status():
    assert tshark.row_to_item(row(**{"tcp.checksum.status": "0"}), True)[0].checksum_ok is False
    assert tshark.row_to_item(row(**{"tcp.checksum.status": "1"}), True)[0].checksum_ok is True
    assert tshark.row_to_item(row(**{"tcp.checksum.status": "0"}))[0].checksum_ok is None


def test_capinfos_parsing():
    pcap = "File type:           pcap (gzip compressed)\nPacket size limit:   file hdr: 64 bytes\n"
    assert tshark._parse_capinfos(pcap) == ("pcap", 64)
    ng = (
        "File type:           pcapng\nPacket size limit:   file hdr: (not set)\n"
        "  Capture length = 65535\n  Capture length = 1500\n"
    )
    assert tshark._parse_capinfos(ng) == ("pcapng", 65535)
    assert tshark._parse_capinfos(ng + "  Capture length = 0\n") == ("pcapng", None)
    assert tshark._parse_capinfos("File type: nsecpcap\n")[0] == "pcap-nsec"


def test_truncation_notes_are_one_line():
    cut = tshark._truncation_text("appears to have been cut short in the middle of a packet.", 5)
    assert cut.startswith("file ends inside record 6")
    bad = tshark._truncation_text(
        "appears to be damaged or corrupt. (pcap: File has "
        "2664957504-byte packet, bigger than maximum of 262144)",
        2,
    )
    assert bad == (
        "record 3 is damaged or corrupt (Wireshark: pcap: File has 2664957504-byte "
        "packet, bigger than maximum of 262144)"
    )
    gz = tshark._truncation_text(
        "cannot be decompressed; it may be damaged or corrupt. (invalid block type)", 5
    )
    assert gz == "corrupt compressed data after record 5 (Wireshark: invalid block type)"


def test_run_errors_tell_a_bad_file_from_a_bad_tshark():
    def run(stderr, rc=2):
        return tshark.TsharkRun("x.pcap", (), [], stderr, rc)

    assert tshark.run_error(run("", 0)) is None
    cut = 'tshark: The file "x.pcap" appears to have been cut short in the middle of a packet.'
    assert tshark.run_error(run(tshark._clean_stderr(cut))) is None
    text = tshark.run_error(
        run('tshark: The file "x.pcap" isn\'t a capture file in a format TShark understands.')
    )
    assert type(text) is CaptureError
    assert str(text) == (
        "x.pcap: tshark cannot read it: isn't a capture file in a format TShark understands."
    )
    pref = tshark.run_error(run('tshark: -o flag "tcp.x:TRUE" specifies unknown preference', 1))
    assert isinstance(pref, tshark.TsharkFailed) and str(pref).startswith("x.pcap: ")


def test_records_that_are_not_packets():
    """Wireshark 4.0 numbers pcapng Custom Blocks (no timestamp) and systemd Journal
    Export Blocks as frames (so does pcapcheck's reader: see
    test_reader_numbers_frames_as_wireshark)."""
    assert tshark.is_non_packet(row(**{"frame.time_epoch": "", "frame.protocols": "data"}))
    assert tshark.is_non_packet(row(**{"frame.protocols": "systemd_journal"}))
    assert not tshark.is_non_packet(row())


# ------------------------------------------------- the reader numbers frames as Wireshark


def _blk(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _pcapng(*blocks: bytes, before: bytes = b"", linktype: int = 1, snaplen: int = 0) -> bytes:
    """SHB, ``before``, one IDB, ``blocks`` (little-endian)."""
    return (
        _blk(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
        + before
        + _blk(1, struct.pack("<HHI", linktype, 0, snaplen))
        + b"".join(blocks)
    )


def _epb(i: int, data: bytes) -> bytes:
    t = (1_767_225_600 + i) * 1_000_000
    return _blk(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(data), len(data)) + data)


def _pcap(linktype: int, snaplen: int, *datas: bytes) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    for i, d in enumerate(datas):
        out += struct.pack("<IIII", 1_767_225_600 + i, 0, len(d), len(d)) + d
    return out


def _reader_limit_cases() -> dict[str, bytes]:
    pkts = [r.data for r in open_capture(SAMPLES / "encap/eth_ipv4.pcap")]
    big = pkts[3] + bytes(262145 - len(pkts[3]))
    journal = b"__CURSOR=s=1\n__REALTIME_TIMESTAMP=1767225600500000\nMESSAGE=hi\n"
    return {
        # records without a packet between packets; blocks that are no frames; a record
        # longer than the interface's snaplen (64)
        "frames.pcapng": _pcapng(
            _epb(0, pkts[0]),
            _blk(0xBAD, struct.pack("<I", 32473) + b"copyable"),
            _epb(1, pkts[1]),
            _blk(0x40000BAD, struct.pack("<I", 1)),
            _blk(9, journal),
            _blk(9, b"MESSAGE=no timestamp!!\n"),
            _blk(4, bytes(4)),
            _blk(5, bytes(12)),
            _blk(0xA, bytes(8)),
            _blk(0x7FFFFFF0, b"unknown"),
            _epb(2, pkts[2]),
            _blk(0x204, bytes(26)),
            _blk(0x216, bytes(28)),
            _blk(0x221, bytes(30)),
            _blk(0x208, bytes(28)),
            _epb(3, pkts[3]),
            snaplen=64,
        ),
        "custom_before_idb.pcapng": _pcapng(
            _epb(0, pkts[0]), before=_blk(0xBAD, struct.pack("<I", 1) + b"x")
        ),
        "epb_at_max.pcapng": _pcapng(_epb(0, pkts[0]), _epb(1, big[:-1]), _epb(2, pkts[2])),
        "epb_over_max.pcapng": _pcapng(_epb(0, pkts[0]), _epb(1, big), _epb(2, pkts[2])),
        "usbpcap_over_standard_max.pcapng": _pcapng(_epb(0, big), _epb(1, pkts[1]), linktype=249),
        "short_custom.pcapng": _pcapng(_epb(0, pkts[0]), _blk(0xBAD, b""), _epb(1, pkts[1])),
        "short_journal.pcapng": _pcapng(_epb(0, pkts[0]), _blk(9, b"x" * 20), _epb(1, pkts[1])),
        "short_journal_entry.pcapng": _pcapng(
            _epb(0, pkts[0]), _blk(9, b"MESSAGE=no timestamp\n\x00"), _epb(1, pkts[1])
        ),
        "short_sysdig.pcapng": _pcapng(_epb(0, pkts[0]), _blk(0x216, bytes(24)), _epb(1, pkts[1])),
        "over_snaplen.pcap": _pcap(1, 60, *pkts),
        "dbus_over_standard_max.pcap": _pcap(231, 65535, pkts[0], big, pkts[2]),
    }


@needs_tshark
def test_reader_numbers_frames_as_wireshark(tmp_path):
    """On synthetic files, pcapcheck's reader (every record yielded) gives exactly
    tshark's frame numbers, and stops where tshark reports the file damaged: records
    without a packet (pcapng custom, systemd journal export, Sysdig event blocks) are
    frames, other blocks are not; a record longer than the snaplen is read; a captured
    length above the link type's maximum, or a block too short for its type, is
    damage."""
    import subprocess

    cases = _reader_limit_cases()
    procs = {}
    for name, raw in cases.items():
        path = tmp_path / name
        path.write_bytes(raw)
        procs[name] = subprocess.Popen(
            [tshark.tshark_path(), "-n", "-r", str(path), "-T", "fields", "-e", "frame.number"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    stops = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        ws_frames = [int(x) for x in out.split()]
        reader = open_capture(tmp_path / name, with_non_packets=True)
        mine = [r.frame for r in reader]
        assert mine == ws_frames, (name, err)
        assert (reader.truncated is not None) == (proc.returncode != 0), (name, err)
        stops[name] = (len(mine), reader.truncated is not None)
    assert stops == {
        "frames.pcapng": (11, False),
        "custom_before_idb.pcapng": (2, False),
        "epb_at_max.pcapng": (3, False),
        "epb_over_max.pcapng": (1, True),
        "usbpcap_over_standard_max.pcapng": (2, False),
        "short_custom.pcapng": (1, True),
        "short_journal.pcapng": (1, True),
        "short_journal_entry.pcapng": (1, True),
        "short_sysdig.pcapng": (1, True),
        "over_snaplen.pcap": (10, False),
        "dbus_over_standard_max.pcap": (3, False),
    }
