"""Tests for pcapcheck.capture.reader (pcap / pcap-nsec / pcapng / gzip container parsing)."""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapcheck.capture.reader import (
    LINKTYPE_PCAPNG_CUSTOM,
    LINKTYPE_SYSDIG_EVENT,
    LINKTYPE_SYSTEMD_JOURNAL,
    MAX_BLOCK_LEN,
    MAX_CAPLEN,
    NON_PACKET_KINDS,
    CaptureError,
    CaptureReader,
    max_caplen,
    open_capture,
)
from pcapcheck.model import Record

ROOT = Path(__file__).resolve().parent.parent
ENCAP = ROOT / "sample_pcaps" / "encap"
BAD = ENCAP / "bad"
ARTEFACTS_BAD = ROOT / "sample_pcaps" / "artefacts" / "bad"

BASE_US = 1_700_000_000_123_456
OFFSETS_US = (0, 150, 300, 1000, 2500, 2700, 10000, 10200, 10400, 10600)
#: exact timestamps of the reference conversation (nearest floats)
TIMES = [(BASE_US + o) / 10**6 for o in OFFSETS_US]
TIMES_NSEC = [((BASE_US + o) * 1000 + 789) / 10**9 for o in OFFSETS_US]
FROM_CLIENT = [True, False, True, True, False, True, True, False, False, True]
#: captured lengths of the 10 Ethernet frames of eth_ipv4.pcap
ETH_LENS = [74, 74, 66, 166, 366, 66, 66, 66, 66, 66]


def records(path) -> tuple[CaptureReader, list[Record]]:
    reader = open_capture(path)
    return reader, list(reader)


@pytest.fixture(scope="module")
def reference() -> list[Record]:
    return records(ENCAP / "eth_ipv4.pcap")[1]


# ---- good files: format, counts, link types ------------------------------------------

# name: (format, compressed, linktypes, snaplen, skipped_blocks, records)
GOOD = {
    "eth_ipv4.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "eth_ipv4_bigendian.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "eth_ipv4_nsec.pcap": ("pcap-nsec", False, {1}, 65535, 0, 10),
    "eth_ipv4_nsec_bigendian.pcap": ("pcap-nsec", False, {1}, 65535, 0, 10),
    "eth_ipv4.pcap.gz": ("pcap", True, {1}, 65535, 0, 10),
    "eth_ipv4_gzip_no_suffix.pcap": ("pcap", True, {1}, 65535, 0, 10),
    "multi_if.pcapng": ("pcapng", False, {1, 101}, None, 1, 10),
    "multi_if.pcapng.gz": ("pcapng", True, {1, 101}, None, 1, 10),
    "multi_section.pcapng": ("pcapng", False, {1, 101}, 65535, 1, 10),
    "vlan.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "qinq.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "qinq_9100.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "sll.pcap": ("pcap", False, {113}, 65535, 0, 10),
    "sll2.pcap": ("pcap", False, {276}, 65535, 0, 10),
    "null.pcap": ("pcap", False, {0}, 65535, 0, 10),
    "null_ipv6_bigendian.pcap": ("pcap", False, {0}, 65535, 0, 10),
    "loop.pcap": ("pcap", False, {108}, 65535, 0, 10),
    "raw_ipv4.pcap": ("pcap", False, {101}, 65535, 0, 10),
    "raw_ipv4_228.pcap": ("pcap", False, {228}, 65535, 0, 10),
    "raw_ipv6.pcap": ("pcap", False, {101}, 65535, 0, 10),
    "raw_ipv6_229.pcap": ("pcap", False, {229}, 65535, 0, 10),
    "eth_ipv6.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "eth_ipv6_exthdr.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "eth_ipv6_allext.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "ipv4_options.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "snaplen64.pcap": ("pcap", False, {101}, 64, 0, 10),
    "with_non_tcp.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "mpls_ipv4.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "vlan_mpls2_ipv6_hs002.pcap": ("pcap", False, {1}, 65535, 0, 3),
    "geneve.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "gre_ipv4.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "gretap_ipv6.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "gtpu.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "ip6tnl_ipv4.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "ip6tnl_ipv6.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "ipip.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "pppoe_ipv4.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "sit_6in4.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "teredo.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "vxlan.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "mpls_pw_eth.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "erspan2.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "erspan3.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "erspan1.pcap": ("pcap", False, {1}, 65535, 0, 13),
    "gtpu_uplink_downlink.pcap": ("pcap", False, {1}, 65535, 0, 10),
    "gtpu_two_tunnels_interleaved.pcap": ("pcap", False, {1}, 65535, 0, 16),
    "mpls_ipip_labels.pcap": ("pcap", False, {1}, 65535, 0, 10),
}


def test_every_encap_capture_is_listed():
    on_disk = {p.name for p in ENCAP.iterdir() if p.is_file() and p.name != "README.md"}
    assert on_disk == set(GOOD)
    readme = (ENCAP / "README.md").read_text()
    for name in on_disk | {p.name for p in BAD.iterdir()}:
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_capture_attributes(name):
    fmt, compressed, linktypes, snaplen, skipped, count = GOOD[name]
    reader, recs = records(ENCAP / name)
    assert reader.format == fmt
    assert reader.compressed is compressed
    assert reader.linktypes == linktypes
    assert reader.snaplen == snaplen
    assert reader.skipped_blocks == skipped
    assert reader.records == count == len(recs)
    assert reader.truncated is None
    assert [r.frame for r in recs] == list(range(1, count + 1))
    assert all(isinstance(r, Record) and isinstance(r.data, bytes) for r in recs)
    assert all(isinstance(r.ts, float) for r in recs)


def test_reference_records(reference):
    assert [r.frame for r in reference] == list(range(1, 11))
    assert [r.ts for r in reference] == TIMES
    assert [len(r.data) for r in reference] == ETH_LENS
    assert [r.wire_len for r in reference] == ETH_LENS
    assert {r.linktype for r in reference} == {1}


@pytest.mark.parametrize(
    "name", ["eth_ipv4_bigendian.pcap", "eth_ipv4.pcap.gz", "eth_ipv4_gzip_no_suffix.pcap"]
)
def test_same_records_as_reference(name, reference):
    assert records(ENCAP / name)[1] == reference


@pytest.mark.parametrize("name", ["eth_ipv4_nsec.pcap", "eth_ipv4_nsec_bigendian.pcap"])
def test_nsec_timestamps(name, reference):
    reader, recs = records(ENCAP / name)
    assert reader.format == "pcap-nsec"
    assert [r.ts for r in recs] == TIMES_NSEC
    # the 789 ns survive as far as a float at 1.7e9 s can carry them (ulp 2.4e-7 s)
    for r, ref in zip(recs, reference):
        assert 0 < r.ts - ref.ts < 789e-9 + 2.4e-7
        assert (r.data, r.wire_len, r.linktype) == (ref.data, ref.wire_len, ref.linktype)


def test_nsec_exact_with_small_epoch(tmp_path):
    p = tmp_path / "small.pcap"
    p.write_bytes(
        struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 101)
        + struct.pack("<IIII", 1, 789, 4, 4)
        + b"\x45\x00\x00\x14"
        + struct.pack("<IIII", 2, 999_999_999, 0, 0)
    )
    _reader, recs = records(p)
    assert [r.ts for r in recs] == [1.000000789, 2.999999999]
    assert recs[1].data == b"" and recs[1].wire_len == 0  # zero-length record yielded


def test_multi_interface_pcapng(reference):
    reader, recs = records(ENCAP / "multi_if.pcapng")
    assert [r.linktype for r in recs] == [1 if c else 101 for c in FROM_CLIENT]
    assert [r.ts for r in recs] == TIMES  # usec interface and nsec interface
    for r, ref in zip(recs, reference):
        assert r.data == (ref.data if r.linktype == 1 else ref.data[14:])
        assert r.wire_len == len(r.data)
    assert reader.interfaces == [(1, 65535), (101, 0)]
    assert reader.skipped_blocks == 1
    assert reader.snaplen is None  # interface 1 has no limit


def test_multi_section_pcapng(reference):
    reader, recs = records(ENCAP / "multi_section.pcapng")
    assert [r.linktype for r in recs] == [1] * 5 + [101] * 5
    assert [r.ts for r in recs] == TIMES  # incl. if_tsoffset and the old PB
    assert [r.data for r in recs] == [ref.data for ref in reference[:5]] + [
        ref.data[14:] for ref in reference[5:]
    ]
    assert reader.interfaces == [(101, 1500)]  # the current (second) section's
    assert reader.snaplen == 65535
    assert reader.skipped_blocks == 1


def test_iterating_again_rereads(reference):
    reader = open_capture(ENCAP / "multi_if.pcapng")
    first = list(reader)
    second = list(reader)
    assert first == second and len(first) == 10
    assert reader.records == 10 and reader.skipped_blocks == 1


def test_attributes_during_iteration():
    reader = open_capture(ENCAP / "eth_ipv4.pcap")
    assert reader.format == "pcap" and reader.snaplen == 65535 and reader.linktypes == {1}
    for i, rec in enumerate(reader, start=1):
        assert reader.records == i == rec.frame


def test_context_manager_closes():
    with open_capture(ENCAP / "eth_ipv4.pcap") as reader:
        assert next(iter(reader)).frame == 1
    assert reader._f is None


# ---- synthetic pcapng features ---------------------------------------------------------


def _blk(e, btype, body):
    body += b"\x00" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def _shb(e):
    return _blk(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(e, lt, snap, opts=b""):
    return _blk(e, 1, struct.pack(e + "HHI", lt, 0, snap) + opts)


def _opt(e, code, val):
    return struct.pack(e + "HH", code, len(val)) + val + b"\x00" * (-len(val) % 4)


def _epb(e, ifid, ticks, data, wire=None):
    return _blk(
        e,
        6,
        struct.pack(
            e + "IIIII",
            ifid,
            ticks >> 32,
            ticks & 0xFFFFFFFF,
            len(data),
            len(data) if wire is None else wire,
        )
        + data,
    )


@pytest.mark.parametrize("e", ["<", ">"])
def test_pcapng_spb_binary_tsresol_tsoffset(tmp_path, e):
    p = tmp_path / "x.pcapng"
    pkt = bytes(range(100))
    p.write_bytes(
        _shb(e)
        + _idb(
            e, 1, 64, _opt(e, 9, b"\x94") + _opt(e, 14, struct.pack(e + "q", 10)) + _opt(e, 0, b"")
        )  # 2^-20 s, +10 s
        + _epb(e, 0, 3 * 2**20 + 2**19, pkt[:60], 100)
        + _blk(e, 3, struct.pack(e + "I", 100) + pkt[:64])  # SPB: cut to snaplen 64
        + _blk(e, 4, b"\x00\x00\x00\x00")  # NRB: ignored, not counted
        + _blk(e, 0x12345678, b"??")  # unknown: counted
        + _blk(e, 2, struct.pack(e + "HHIIII", 0, 0, 0, 2**20, 4, 4) + pkt[:4])
    )  # PB
    reader, recs = records(p)
    assert (
        [(r.frame, r.ts, r.linktype, r.data, r.wire_len) for r in recs]
        == [
            (1, 13.5, 1, pkt[:60], 100),
            (2, 13.5, 1, pkt[:64], 100),  # SPB: previous record's timestamp
            (3, 11.0, 1, pkt[:4], 4),
        ]
    )
    assert reader.skipped_blocks == 1 and reader.truncated is None
    assert reader.snaplen == 64


def test_pcapng_record_for_undefined_interface(tmp_path):
    p = tmp_path / "x.pcapng"
    p.write_bytes(_shb("<") + _idb("<", 1, 0) + _epb("<", 0, 0, b"ab") + _epb("<", 3, 0, b"cd"))
    reader, recs = records(p)
    assert len(recs) == 1
    assert reader.truncated == "record 2 refers to interface 3, but only 1 are defined"


def test_pcapng_trailing_length_mismatch(tmp_path):
    blk = bytearray(_epb("<", 0, 0, b"abcd"))
    blk[-4:] = struct.pack("<I", 999)
    p = tmp_path / "x.pcapng"
    p.write_bytes(_shb("<") + _idb("<", 1, 0) + _epb("<", 0, 0, b"ab") + bytes(blk))
    reader, recs = records(p)
    assert len(recs) == 1
    assert reader.truncated == (
        "pcapng block at offset 84: trailing length 999 != leading length 36"
    )


def test_pcapng_caplen_over_snaplen_is_read(tmp_path):
    """The interface's snaplen is no limit: Wireshark (and libpcap) read a longer record."""
    p = tmp_path / "x.pcapng"
    p.write_bytes(
        _shb("<")
        + _idb("<", 1, 8)
        + _epb("<", 0, 0, b"12345678")
        + _epb("<", 0, 0, b"123456789")
        + _epb("<", 0, 0, b"ab")
    )
    reader, recs = records(p)
    assert [(r.frame, r.data, r.wire_len) for r in recs] == [
        (1, b"12345678", 8),
        (2, b"123456789", 9),
        (3, b"ab", 2),
    ]
    assert reader.truncated is None and reader.snaplen == 8


def _pcap(lt, snaplen, *datas):
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, lt)
    for i, d in enumerate(datas):
        out += struct.pack("<IIII", 1000 + i, 0, len(d), len(d)) + d
    return out


def test_max_caplen_is_wiresharks():
    """wtap_max_snaplen_for_encap (Wireshark 4.0): 256 KiB, more for D-Bus and USB."""
    assert MAX_CAPLEN == 262144
    assert [max_caplen(lt) for lt in (0, 1, 101, 113, 147, 276)] == [262144] * 6
    assert [max_caplen(lt) for lt in (220, 231, 249)] == [128 << 20] * 3
    assert max_caplen(279) == 8 << 20
    assert MAX_BLOCK_LEN == 134348832


def test_pcap_caplen_limit_is_the_link_types_maximum(tmp_path):
    p = tmp_path / "x.pcap"
    most = b"\x11" * MAX_CAPLEN
    # snaplen 64 is no limit; 256 KiB is accepted, one byte more is a corrupt header
    p.write_bytes(_pcap(1, 64, b"a" * 100, most, most + b"x", b"never read"))
    reader, recs = records(p)
    assert [len(r.data) for r in recs] == [100, MAX_CAPLEN]
    assert reader.truncated == (
        "record 3 has an absurd captured length 262145 (more than 262144: corrupt record header)"
    )
    # D-Bus (231) records may be longer
    p.write_bytes(_pcap(231, 65535, most + b"x", b"next"))
    reader, recs = records(p)
    assert [len(r.data) for r in recs] == [MAX_CAPLEN + 1, 4] and reader.truncated is None


@pytest.mark.parametrize("spb", [False, True])
def test_pcapng_caplen_limit_is_the_link_types_maximum(tmp_path, spb):
    def blk(data):
        if spb:
            return _blk("<", 3, struct.pack("<I", len(data)) + data)
        return _epb("<", 0, 0, data)

    most = b"\x11" * MAX_CAPLEN
    p = tmp_path / "x.pcapng"
    p.write_bytes(
        _shb("<") + _idb("<", 1, 0) + blk(b"ab") + blk(most) + blk(most + b"x") + blk(b"never read")
    )
    reader, recs = records(p)
    assert [len(r.data) for r in recs] == [2, MAX_CAPLEN]
    assert reader.truncated == (
        "record 3 has an absurd captured length 262145 (more than 262144: corrupt block)"
    )
    p.write_bytes(_shb("<") + _idb("<", 249, 0) + blk(most + b"x") + blk(b"ab"))  # USBPcap
    reader, recs = records(p)
    assert [len(r.data) for r in recs] == [MAX_CAPLEN + 1, 2] and reader.truncated is None


def test_pcapng_block_length_limit(tmp_path):
    """Blocks up to Wireshark's 134348832 bytes are read (here a 17 MiB unknown block,
    beyond the former 16 MiB limit); a longer length is a corrupt block."""
    p = tmp_path / "x.pcapng"
    head = _shb("<") + _idb("<", 1, 0) + _epb("<", 0, 0, b"ab")
    p.write_bytes(head + _blk("<", 0x7FFFFFF0, bytes(17 << 20)) + _epb("<", 0, 0, b"cd"))
    reader, recs = records(p)
    assert [r.data for r in recs] == [b"ab", b"cd"] and reader.truncated is None
    p.write_bytes(head + struct.pack("<II", 0x7FFFFFF0, MAX_BLOCK_LEN + 4) + bytes(64))
    reader, recs = records(p)
    assert [r.data for r in recs] == [b"ab"]
    assert reader.truncated == (
        "bad pcapng block length 134348836 at offset 84 (block type 0x7ffffff0)"
    )


# ---- records without a packet (custom, systemd journal, Sysdig event blocks) ------------

JOURNAL = b"__REALTIME_TIMESTAMP=1700000000500000\nMESSAGE=hello\n"


@pytest.mark.parametrize("e", ["<", ">"])
def test_pcapng_blocks_numbered_as_frames_without_a_packet(tmp_path, e):
    """Wireshark 4.0 numbers custom blocks (0xBAD, 0x40000BAD), systemd journal export
    blocks (9) and Sysdig event blocks (0x204, 0x216, 0x221) as frames; NRB, ISB,
    decryption secrets and unknown blocks are no frames. The packets keep Wireshark's
    frame numbers; the others are yielded only on request."""
    p = tmp_path / "x.pcapng"
    p.write_bytes(
        _shb(e)
        + _blk(e, 0xBAD, struct.pack(e + "I", 32473) + b"before")  # frame 1: no IDB needed
        + _idb(e, 1, 0)
        + _epb(e, 0, 5_000_000, b"pkt2")
        + _blk(e, 0x40000BAD, struct.pack(e + "I", 1) + b"")  # frame 3, no data
        + _blk(e, 9, JOURNAL)  # frame 4
        + _blk(e, 4, b"\x00" * 4)
        + _blk(e, 5, b"\x00" * 12)
        + _blk(e, 0xA, b"\x00" * 8)
        + _blk(e, 0x12345678, b"??")
        + _blk(e, 0x204, b"\x00" * 24 + b"pv1")  # frame 5
        + _blk(e, 0x216, b"\x00" * 28)  # frame 6
        + _blk(e, 0x221, b"\x00" * 28 + b"x")  # frame 7
        + _epb(e, 0, 6_000_000, b"pkt8")
    )
    reader, recs = records(p)
    assert [(r.frame, r.data) for r in recs] == [(2, b"pkt2"), (8, b"pkt8")]
    assert reader.records == 8 and reader.truncated is None
    assert reader.non_packets == {"pcapng-custom": 2, "systemd-journal": 1, "sysdig-event": 3}
    assert reader.skipped_blocks == 1

    reader = open_capture(p, with_non_packets=True)
    got = list(reader)
    assert [(r.frame, r.ts, r.linktype, r.data, r.wire_len) for r in got] == [
        (1, 0.0, LINKTYPE_PCAPNG_CUSTOM, b"before\x00\x00", 8),  # data after the PEN
        (2, 5.0, 1, b"pkt2", 4),
        (3, 5.0, LINKTYPE_PCAPNG_CUSTOM, b"", 0),
        (4, 5.0, LINKTYPE_SYSTEMD_JOURNAL, JOURNAL, len(JOURNAL)),  # without the padding
        (5, 5.0, LINKTYPE_SYSDIG_EVENT, b"pv1\x00", 4),  # the event's parameters
        (6, 5.0, LINKTYPE_SYSDIG_EVENT, b"", 0),
        (7, 5.0, LINKTYPE_SYSDIG_EVENT, b"x\x00\x00\x00", 4),
        (8, 6.0, 1, b"pkt8", 4),
    ]
    raw = p.read_bytes()
    for r in got:  # the offset is the block's
        btype = struct.unpack_from(e + "I", raw, r.offset)[0]
        assert btype in (6, 0xBAD, 0x40000BAD, 9, 0x204, 0x216, 0x221)
    assert reader.records == 8 and sum(reader.non_packets.values()) == 6
    assert set(NON_PACKET_KINDS) == {
        LINKTYPE_PCAPNG_CUSTOM,
        LINKTYPE_SYSTEMD_JOURNAL,
        LINKTYPE_SYSDIG_EVENT,
    }
    assert set(reader.non_packets) == set(NON_PACKET_KINDS.values())
    assert min(NON_PACKET_KINDS) < 0 and max(NON_PACKET_KINDS) < 0


@pytest.mark.parametrize(
    "block, message",
    [
        (_blk("<", 0xBAD, b""), "custom block too short (12 bytes) at offset 84"),
        (
            _blk("<", 9, b"__REALTIME_TIMESTAMP=0"),
            "systemd journal export block at offset 84:"
            " entry too short (22 bytes without the padding)",
        ),
        (_blk("<", 9, b"x" * 20), "systemd journal export block too short (32 bytes) at offset 84"),
        (_blk("<", 0x204, b"\x00" * 20), "sysdig event block too short (32 bytes) at offset 84"),
        (_blk("<", 0x216, b"\x00" * 24), "sysdig event block too short (36 bytes) at offset 84"),
        (_blk("<", 0x221, b"\x00" * 24), "sysdig event block too short (36 bytes) at offset 84"),
    ],
)
def test_short_non_packet_blocks_are_corrupt(tmp_path, block, message):
    """Too short for its type, Wireshark reports the file damaged there: so does the
    reader (CP006), after the records before it."""
    p = tmp_path / "x.pcapng"
    p.write_bytes(
        _shb("<") + _idb("<", 1, 0) + _epb("<", 0, 0, b"ab") + block + _epb("<", 0, 0, b"cd")
    )
    reader, recs = records(p)
    assert [r.frame for r in recs] == [1] and reader.records == 1
    assert reader.truncated == message


def test_journal_entry_of_23_bytes_without_timestamp_is_a_frame(tmp_path):
    p = tmp_path / "x.pcapng"
    p.write_bytes(
        _shb("<")
        + _idb("<", 1, 0)
        + _blk("<", 9, b"MESSAGE=abcdefghijklmn\n")
        + _epb("<", 0, 0, b"ab")
    )
    reader, recs = records(p)
    assert [r.frame for r in recs] == [2] and reader.non_packets == {"systemd-journal": 1}


def test_file_ending_inside_a_custom_block_names_its_frame(tmp_path):
    p = tmp_path / "x.pcapng"
    p.write_bytes(
        _shb("<")
        + _idb("<", 1, 0)
        + _epb("<", 0, 0, b"ab")
        + _blk("<", 0xBAD, struct.pack("<I", 1) + b"12345678")[:20]
    )
    reader, recs = records(p)
    assert len(recs) == 1
    assert reader.truncated == (
        "file ends inside the pcapng block at offset 84 (custom block, record 2): 20 of 24 bytes"
    )


def test_sample_with_blocks_that_are_no_packets():
    """pcapng_unknown_blocks: custom blocks are frames 4 and 8, the journal export block
    frame 11 (as tshark 4.0 numbers them); the ten packets keep Wireshark's numbers."""
    path = ARTEFACTS_BAD / "pcapng_unknown_blocks.pcapng"
    reader, recs = records(path)
    assert [r.frame for r in recs] == [1, 2, 3, 5, 6, 7, 9, 10, 12, 13]
    assert reader.records == 13 and reader.truncated is None and reader.skipped_blocks == 2
    assert reader.non_packets == {"pcapng-custom": 2, "systemd-journal": 1}
    pcap = records(ARTEFACTS_BAD / "record_over_snaplen.pcap")[1]  # the same packets
    assert [(r.ts, r.data) for r in recs] == [(r.ts, r.data) for r in pcap]
    every = list(open_capture(path, with_non_packets=True))
    assert [r.frame for r in every] == list(range(1, 14))
    assert [(r.frame, NON_PACKET_KINDS[r.linktype]) for r in every if r.linktype < 0] == [
        (4, "pcapng-custom"),
        (8, "pcapng-custom"),
        (11, "systemd-journal"),
    ]


def test_multi_member_gzip_and_trailing_garbage(tmp_path, reference):
    raw = (ENCAP / "eth_ipv4.pcap").read_bytes()
    p = tmp_path / "two.pcap.gz"
    p.write_bytes(
        gzip.compress(raw[:500], mtime=0)
        + gzip.compress(raw[500:], mtime=0)
        + b"\x00" * 8
        + b"trailing garbage"
    )
    reader, recs = records(p)
    assert recs == reference and reader.truncated is None and reader.compressed


# ---- bad files -------------------------------------------------------------------------


def test_cut_record_body(reference):
    reader, recs = records(BAD / "cut_record_body.pcap")
    assert recs == reference[:5]
    assert reader.truncated == "file ends inside record 6: 20 of 66 bytes"


def test_cut_record_header(reference):
    reader, recs = records(BAD / "cut_record_header.pcap")
    assert recs == reference[:5]
    assert reader.truncated == "file ends inside the header of record 6: 7 of 16 bytes"


def test_cut_pcapng_block():
    reader, recs = records(BAD / "cut_block.pcapng")
    assert recs == records(ENCAP / "multi_if.pcapng")[1][:9]
    assert reader.truncated == (
        "file ends inside the pcapng block at offset 1456 (enhanced"
        " packet block, record 10): 70 of 100 bytes"
    )
    assert reader.skipped_blocks == 1


def test_bad_pcapng_block_length():
    reader, recs = records(BAD / "bad_block_length.pcapng")
    assert recs == records(ENCAP / "multi_if.pcapng")[1][:2]
    assert reader.truncated == (
        "bad pcapng block length 1001 at offset 332 (block type 0x00000006)"
    )


def test_corrupt_gzip_midway(reference):
    reader, recs = records(BAD / "corrupt.pcap.gz")
    assert recs == reference[:5]
    assert reader.truncated.startswith(
        "file ends inside record 6: 20 of 66 bytes (corrupt gzip data ("
    )


def test_gzip_cut_short(reference):
    reader, recs = records(BAD / "cut_gzip.pcap.gz")
    assert recs == reference[:6]
    assert reader.truncated == (
        "file ends inside the header of record 7: 6 of 16 bytes"
        " (gzip data cut short (no end-of-stream marker))"
    )


def test_absurd_caplen(reference):
    reader, recs = records(BAD / "absurd_caplen.pcap")
    assert recs == reference[:2]
    assert reader.truncated == (
        "record 3 has an absurd captured length 2147483632"
        " (more than 262144: corrupt record header)"
    )


def test_caplen_over_snaplen(reference):
    """Records longer than the file header's snaplen (70) are read, as libpcap and
    Wireshark read them."""
    reader, recs = records(BAD / "caplen_over_snaplen.pcap")
    assert recs == reference and reader.snaplen == 70 and reader.truncated is None


def test_header_only_is_valid():
    reader, recs = records(BAD / "header_only.pcap")
    assert recs == [] and reader.truncated is None and reader.records == 0
    assert reader.format == "pcap" and reader.linktypes == {1}


@pytest.mark.parametrize(
    "name, message",
    [
        ("empty.pcap", "empty file, not a capture"),
        ("text.pcap", "not a capture file (looks like text: 'This is not a capture file.')"),
        (
            "text.pcap.gz",
            "not a capture file (gzip-compressed, content looks like text: 'hello, world')",
        ),
        ("short_header.pcap", "file ends inside the pcap file header (14 of 24 bytes)"),
    ],
)
def test_capture_errors(name, message):
    path = BAD / name
    with pytest.raises(CaptureError) as info:
        open_capture(path)
    assert str(info.value) == f"{path}: {message}"
    assert "\n" not in str(info.value)


def test_corrupt_gzip_from_the_start():
    path = BAD / "corrupt_start.pcap.gz"
    with pytest.raises(CaptureError) as info:
        open_capture(path)
    assert str(info.value).startswith(f"{path}: corrupt gzip data (")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pcap"
    with pytest.raises(CaptureError, match=r"nope\.pcap: no such file$"):
        open_capture(path)


def test_directory(tmp_path):
    with pytest.raises(CaptureError) as info:
        open_capture(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a capture file"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable(tmp_path):
    p = tmp_path / "secret.pcap"
    p.write_bytes((ENCAP / "eth_ipv4.pcap").read_bytes())
    p.chmod(0)
    with pytest.raises(CaptureError) as info:
        open_capture(p)
    assert str(info.value) == f"{p}: permission denied"


@pytest.mark.parametrize(
    "head, what",
    [
        (b"BZh91AY&SY", "looks like bzip2-compressed data (only gzip compression is supported)"),
        (
            b"\xa1\xb2\xcd\x34" + b"\x00" * 20,
            "looks like a modified (Kuznetzov) pcap file, which is not supported",
        ),
        (b"\x00\x01\x02\x03\xff", "unknown magic 00 01 02 03"),
        (b"<html>\n<body>", "looks like text: '<html>'"),
    ],
)
def test_not_a_capture_descriptions(tmp_path, head, what):
    p = tmp_path / "x.pcap"
    p.write_bytes(head)
    with pytest.raises(CaptureError) as info:
        open_capture(p)
    assert str(info.value) == f"{p}: not a capture file ({what})"


@pytest.mark.parametrize("path", sorted(p for p in BAD.iterdir()), ids=lambda p: p.name)
def test_bad_files_never_raise_anything_else(path):
    try:
        reader = open_capture(path)
    except CaptureError as exc:
        assert str(exc).startswith(str(path))
        return
    recs = list(reader)
    assert reader.records == len(recs)


# ---- every cut of a good file ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["eth_ipv4.pcap", "multi_if.pcapng", "multi_section.pcapng", "eth_ipv4.pcap.gz"]
)
def test_every_truncation_point(tmp_path, name):
    raw = (ENCAP / name).read_bytes()
    full = records(ENCAP / name)[1]
    p = tmp_path / name
    for cut in range(len(raw)):
        p.write_bytes(raw[:cut])
        try:
            reader = open_capture(p)
        except CaptureError as exc:
            assert str(exc).startswith(str(p))
            continue
        recs = list(reader)
        assert recs == full[: len(recs)], cut
        if reader.truncated is None:
            # only possible when the cut falls exactly between records/blocks
            assert not name.endswith(".gz")
        else:
            assert "\n" not in reader.truncated


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_random_corruption_never_raises(tmp_path, data):
    name = data.draw(
        st.sampled_from(
            ["eth_ipv4.pcap", "multi_if.pcapng", "multi_section.pcapng", "eth_ipv4.pcap.gz"]
        )
    )
    raw = bytearray((ENCAP / name).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    p = tmp_path / "fuzz.bin"
    p.write_bytes(bytes(raw))
    try:
        reader = open_capture(p, with_non_packets=True)
    except CaptureError:
        return
    recs = list(reader)
    assert [r.frame for r in recs] == list(range(1, len(recs) + 1))
    assert reader.records == len(recs)
    assert all(len(r.data) <= max_caplen(r.linktype) for r in recs)


# ---- the generator script ----------------------------------------------------------------


def test_generator_is_deterministic(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_encap_captures", ROOT / "scripts" / "make_encap_captures.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    files = mod.build(tmp_path)
    mod.write_readme(tmp_path, files)
    assert (tmp_path / "README.md").read_text() == (ENCAP / "README.md").read_text()
    for name in files:
        new, old = (tmp_path / name).read_bytes(), (ENCAP / name).read_bytes()
        if name.endswith(".gz") or new[:2] == b"\x1f\x8b":
            # compressed bytes depend on the zlib build; compare the content when whole
            try:
                new, old = gzip.decompress(new), gzip.decompress(old)
            except (OSError, EOFError, zlib.error):
                continue
        assert new == old, name


def test_permission_denied_simulated(monkeypatch, tmp_path):
    import pcapcheck.capture.reader as reader_mod

    def fake_open(path, mode="r", *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(reader_mod, "open", fake_open, raising=False)
    p = tmp_path / "x.pcap"
    with pytest.raises(CaptureError) as info:
        open_capture(p)
    assert str(info.value) == f"{p}: permission denied"


def test_read_error_during_iteration(monkeypatch, reference):
    import io

    import pcapcheck.capture.reader as reader_mod

    raw = (ENCAP / "eth_ipv4.pcap").read_bytes()

    class Flaky(io.BytesIO):
        calls = 0

        def read(self, n=-1):
            Flaky.calls += 1
            if Flaky.calls > 1:
                raise OSError(5, "Input/output error")
            return super().read(600)  # the header and a few records only

    monkeypatch.setattr(reader_mod, "open", lambda *a, **k: Flaky(raw), raising=False)
    reader = open_capture("flaky.pcap")
    got = []
    with pytest.raises(CaptureError) as info:
        for rec in reader:
            got.append(rec)
    assert str(info.value) == "flaky.pcap: read error: Input/output error"
    assert got == reference[: len(got)]
