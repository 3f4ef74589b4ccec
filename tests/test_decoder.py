"""Tests for pcapcheck.capture.decoder: the fast path, the dpkt reference path, the captures."""

from __future__ import annotations

import dataclasses
import socket
import struct
from collections import Counter
from pathlib import Path

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapcheck.capture.decoder import DecodeError, Decoder
from pcapcheck.capture.dpkt_decoder import decode_with_dpkt
from pcapcheck.capture.reader import CaptureError, open_capture
from pcapcheck.model import ACK, FIN, PSH, SYN, Record, Segment, TcpOptions

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_pcaps"
ENCAP = SAMPLES / "encap"
BAD = ENCAP / "bad"

C, S = "10.0.0.1", "10.0.0.2"
C6, S6 = "2001:db8::1", "2001:db8::2"
ISN_C, ISN_S = 3_000_000_000, 123_456_789
BASE_US = 1_700_000_000_123_456
OFFSETS_US = (0, 150, 300, 1000, 2500, 2700, 10000, 10200, 10400, 10600)


def TS(v, e):
    return TcpOptions(ts_val=v, ts_ecr=e)


SYN_OPTS = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts_val=1000, ts_ecr=0)
SYNACK_OPTS = TcpOptions(mss=1400, wscale=9, sack_permitted=True, ts_val=7000, ts_ecr=1000)

#: the reference conversation as Segments (eth_ipv4.pcap, checksums not verified)
EXPECTED = [
    Segment(
        f,
        (BASE_US + OFFSETS_US[f - 1]) / 10**6,
        src,
        dst,
        sp,
        dp,
        seq,
        ack,
        flags,
        win,
        plen,
        opts,
        ipid,
        4,
        False,
        None,
    )
    for f, src, dst, sp, dp, seq, ack, flags, win, plen, opts, ipid in [
        (1, C, S, 40000, 80, ISN_C, 0, SYN, 64240, 0, SYN_OPTS, 20001),
        (2, S, C, 80, 40000, ISN_S, ISN_C + 1, SYN | ACK, 65160, 0, SYNACK_OPTS, 30002),
        (3, C, S, 40000, 80, ISN_C + 1, ISN_S + 1, ACK, 502, 0, TS(1001, 7000), 20003),
        (4, C, S, 40000, 80, ISN_C + 1, ISN_S + 1, PSH | ACK, 502, 100, TS(1002, 7000), 20004),
        (5, S, C, 80, 40000, ISN_S + 1, ISN_C + 101, PSH | ACK, 509, 300, TS(7002, 1002), 30005),
        (6, C, S, 40000, 80, ISN_C + 101, ISN_S + 301, ACK, 501, 0, TS(1011, 7002), 20006),
        (7, C, S, 40000, 80, ISN_C + 101, ISN_S + 301, FIN | ACK, 501, 0, TS(1011, 7002), 20007),
        (8, S, C, 80, 40000, ISN_S + 301, ISN_C + 102, ACK, 509, 0, TS(7012, 1011), 30008),
        (9, S, C, 80, 40000, ISN_S + 301, ISN_C + 102, FIN | ACK, 509, 0, TS(7012, 1011), 30009),
        (10, C, S, 40000, 80, ISN_C + 102, ISN_S + 302, ACK, 501, 0, TS(1012, 7012), 20010),
    ]
]

IPV4_FILES = [
    "eth_ipv4.pcap",
    "eth_ipv4_bigendian.pcap",
    "eth_ipv4.pcap.gz",
    "eth_ipv4_gzip_no_suffix.pcap",
    "multi_if.pcapng",
    "multi_if.pcapng.gz",
    "multi_section.pcapng",
    "vlan.pcap",
    "qinq.pcap",
    "qinq_9100.pcap",
    "sll.pcap",
    "sll2.pcap",
    "null.pcap",
    "loop.pcap",
    "raw_ipv4.pcap",
    "raw_ipv4_228.pcap",
    "ipv4_options.pcap",
    "mpls_ipv4.pcap",
    "mpls_pw_eth.pcap",
]
IPV6_FILES = [
    "null_ipv6_bigendian.pcap",
    "raw_ipv6.pcap",
    "raw_ipv6_229.pcap",
    "eth_ipv6.pcap",
    "eth_ipv6_exthdr.pcap",
    "eth_ipv6_allext.pcap",
]
NSEC_FILES = ["eth_ipv4_nsec.pcap", "eth_ipv4_nsec_bigendian.pcap"]
SPECIAL = ["snaplen64.pcap", "with_non_tcp.pcap", "vlan_mpls2_ipv6_hs002.pcap"]
#: the tunnel captures (tests/test_tunnels.py)
TUNNEL_FILES = [
    "pppoe_ipv4.pcap",
    "ipip.pcap",
    "sit_6in4.pcap",
    "ip6tnl_ipv4.pcap",
    "ip6tnl_ipv6.pcap",
    "gre_ipv4.pcap",
    "gretap_ipv6.pcap",
    "vxlan.pcap",
    "geneve.pcap",
    "gtpu.pcap",
    "gtpu_uplink_downlink.pcap",
    "gtpu_two_tunnels_interleaved.pcap",
    "mpls_ipip_labels.pcap",
    "teredo.pcap",
    "erspan1.pcap",
    "erspan2.pcap",
    "erspan3.pcap",
]


def decode_file(path, verify=False):
    """[(record, Segment | None | DecodeError)], decoder."""
    dec = Decoder(verify_checksums=verify)
    out = []
    for rec in open_capture(path):
        try:
            out.append((rec, dec.decode(rec)))
        except DecodeError as exc:
            out.append((rec, exc))
    return out, dec


def segments(path, verify=False) -> list[Segment]:
    out, _ = decode_file(path, verify)
    return [s for _, s in out if isinstance(s, Segment)]


def without(seg: Segment, *names: str) -> dict:
    d = {f.name: getattr(seg, f.name) for f in dataclasses.fields(seg)}
    for n in names:
        del d[n]
    return d


def test_all_encap_files_are_covered():
    on_disk = {p.name for p in ENCAP.iterdir() if p.is_file() and p.name != "README.md"}
    assert on_disk == set(IPV4_FILES + IPV6_FILES + NSEC_FILES + SPECIAL + TUNNEL_FILES)


def test_reference_segments_exact():
    assert segments(ENCAP / "eth_ipv4.pcap") == EXPECTED


@pytest.mark.parametrize("name", IPV4_FILES)
def test_ipv4_encapsulations_identical(name):
    assert segments(ENCAP / name) == EXPECTED


@pytest.mark.parametrize("name", IPV6_FILES)
def test_ipv6_encapsulations_identical(name):
    got = segments(ENCAP / name)
    assert len(got) == 10
    v6 = {C: C6, S: S6}
    for seg, ref in zip(got, EXPECTED):
        assert (seg.src, seg.dst) == (v6[ref.src], v6[ref.dst])
        assert seg.ip_version == 6 and seg.ip_id is None
        assert without(seg, "src", "dst", "ip_version", "ip_id") == without(
            ref, "src", "dst", "ip_version", "ip_id"
        )


@pytest.mark.parametrize("name", NSEC_FILES)
def test_nsec_files_identical_but_ts(name):
    got = segments(ENCAP / name)
    assert [without(s, "ts") for s in got] == [without(s, "ts") for s in EXPECTED]
    assert [s.ts for s in got] == [((BASE_US + o) * 1000 + 789) / 10**9 for o in OFFSETS_US]


def test_snaplen64_same_segments_but_truncated():
    got = segments(ENCAP / "snaplen64.pcap", verify=True)
    assert len(got) == 10
    for seg, ref in zip(got, EXPECTED):
        assert seg.payload_len == ref.payload_len
        cut = ref.payload_len > 0  # only the two data segments exceed 64 bytes
        assert seg.truncated is cut
        assert seg.checksum_ok is (None if cut else True)
        assert without(seg, "truncated", "checksum_ok") == without(ref, "truncated", "checksum_ok")


def test_with_non_tcp_skipped_and_counted():
    out, dec = decode_file(ENCAP / "with_non_tcp.pcap")
    assert [rec.frame for rec, s in out if s is None] == [3, 6, 10]
    got = [s for _, s in out if isinstance(s, Segment)]
    assert [s.frame for s in got] == [1, 2, 4, 5, 7, 8, 9, 11, 12, 13]
    assert [without(s, "frame") for s in got] == [without(s, "frame") for s in EXPECTED]
    assert dec.skipped == Counter({"ipv4-udp": 1, "arp": 1, "ipv4-fragment": 1})


@pytest.mark.parametrize("name", IPV4_FILES + IPV6_FILES + NSEC_FILES + ["with_non_tcp.pcap"])
def test_checksums_verified(name):
    got = segments(ENCAP / name, verify=True)
    assert len(got) == 10 and all(s.checksum_ok is True for s in got)
    assert all(s.checksum_ok is None for s in segments(ENCAP / name, verify=False))


def test_bad_checksum_detected():
    rec = next(iter(open_capture(ENCAP / "eth_ipv4.pcap")))
    data = bytearray(rec.data)
    data[-1] ^= 0x01  # last option byte (wscale)
    seg = Decoder(verify_checksums=True).decode(Record(1, 0.0, 1, bytes(data), len(data)))
    assert seg.checksum_ok is False and seg.options.wscale == 6


# ---- bad captures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, frame, reason",
    [
        ("ipv4_ihl3.pcap", 4, "IPv4 header length 12 < 20"),
        ("tcp_doff3.pcap", 4, "TCP data offset 3 < 5"),
        (
            "tcp_optlen0.pcap",
            1,
            "bad TCP option length 0 (kind 2 at header offset 20, 20 bytes left)",
        ),
    ],
)
def test_malformed_packet_among_good_ones(name, frame, reason):
    out, _ = decode_file(BAD / name)
    assert len(out) == 10
    errors = [(rec.frame, str(s)) for rec, s in out if isinstance(s, DecodeError)]
    assert errors == [(frame, reason)]
    good = [s for _, s in out if isinstance(s, Segment)]
    assert good == [e for e in EXPECTED if e.frame != frame]


def test_snaplen_cutting_the_options_keeps_the_segment():
    """A snaplen that cuts inside the TCP options still yields the segment (flags, seq,
    ack, payload length from the IP lengths), with only the wholly captured options."""
    out, _ = decode_file(BAD / "snaplen_cuts_header.pcap")
    segs = [s for _, s in out]
    assert all(isinstance(s, Segment) and s.truncated for s in segs)
    key = lambda s: (s.frame, s.flags, s.seq, s.ack, s.payload_len, s.window)  # noqa: E731
    assert [key(s) for s in segs] == [key(e) for e in EXPECTED]
    # 26 bytes of TCP header captured: 6 bytes of options survive on the SYNs.
    syn = segs[0]
    assert syn.options.mss == EXPECTED[0].options.mss
    assert syn.options.ts_val is None and syn.options.wscale is None


def test_unsupported_link_type():
    out, _ = decode_file(BAD / "unsupported_linktype.pcap")
    assert [str(s) for _, s in out] == ["unsupported link type 147"] * 10


def test_zero_length_record():
    with pytest.raises(DecodeError, match=r"^empty packet \(0 bytes captured\)$"):
        Decoder().decode(Record(1, 0.0, 1, b"", 0))


# ---- synthetic packets -----------------------------------------------------------------


def a4(s):
    return socket.inet_pton(socket.AF_INET, s)


def a6(s):
    return socket.inet_pton(socket.AF_INET6, s)


def tcp(opts=b"", payload=b"", flags=ACK, doff=None, seq=1000, ack=2000, win=1000):
    off = doff if doff is not None else (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIBBHHH", 1234, 80, seq, ack, off << 4, flags, win, 0, 0)
    return hdr + opts + payload


def with_cksum(seg: bytes, pseudo: bytes) -> bytes:
    s = dpkt.in_cksum_done(dpkt.in_cksum_add(dpkt.in_cksum_add(0, pseudo), seg))
    return seg[:16] + struct.pack("!H", s) + seg[18:]


def ip4(
    seg, proto=6, src=C, dst=S, frag=0x4000, total=None, ihl=5, opts=b"", ident=7, fix_cksum=True
):
    if proto == 6 and fix_cksum:
        seg = with_cksum(seg, struct.pack("!4s4sxBH", a4(src), a4(dst), 6, len(seg)))
    tl = 4 * ihl + len(seg) if total is None else total
    return (
        struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, tl, ident, frag, 64, proto, 0, a4(src), a4(dst))
        + opts
        + seg
    )


def ip6(seg, nh=6, ext=b"", src=C6, dst=S6, plen=None):
    return (
        struct.pack(
            "!IHBB16s16s",
            6 << 28,
            len(ext) + len(seg) if plen is None else plen,
            nh,
            64,
            a6(src),
            a6(dst),
        )
        + ext
        + seg
    )


def ip6_tcp(seg, ext=b"", first=6, final_dst=S6, **kw):
    seg = with_cksum(seg, struct.pack("!16s16sIxxxB", a6(C6), a6(final_dst), len(seg), 6))
    return ip6(seg, nh=first, ext=ext, **kw)


def ether(payload, et=0x0800, tags=()):
    hdr = b"\x02" * 6 + b"\x04" * 6
    for tpid, vid in tags:
        hdr += struct.pack("!HH", tpid, vid)
    return hdr + struct.pack("!H", et) + payload


def mpls(*labels, bottom=True):
    """An MPLS label stack (RFC 3032 §2.1), the bottom-of-stack bit on the last entry
    unless ``bottom`` is false."""
    return b"".join(
        struct.pack("!I", label << 12 | (bottom and k == len(labels) - 1) << 8 | 64)
        for k, label in enumerate(labels)
    )


def rec(data, lt=1, wire=None):
    return Record(1, 1.5, lt, data, len(data) if wire is None else wire)


def decode(data, lt=1, wire=None, verify=True):
    return Decoder(verify_checksums=verify).decode(rec(data, lt, wire))


def test_options_none_for_doff5_and_empty_for_padding_only():
    assert decode(ether(ip4(tcp()))).options is None
    seg = decode(ether(ip4(tcp(b"\x01\x01\x01\x00"))))
    assert seg.options == TcpOptions() and seg.checksum_ok


def test_all_option_kinds():
    opts = (
        b"\x02\x04\x05\xb4"
        b"\x03\x03\x0e"
        b"\x04\x02"
        b"\x01"
        b"\x08\x0a" + struct.pack("!II", 0xFFFFFFFF, 1) + b"\x22\x0a" + b"COOKIE42" + b"\x00\x00"
    )
    assert len(opts) == 32
    seg = decode(ether(ip4(tcp(opts, flags=SYN))))
    assert seg.options == TcpOptions(
        mss=1460,
        wscale=14,
        sack_permitted=True,
        ts_val=0xFFFFFFFF,
        ts_ecr=1,
        tfo_cookie=b"COOKIE42",
    )
    opts = (
        b"\x01\x01\x08\x0a"
        + struct.pack("!II", 5, 6)
        + b"\x01\x01"
        + b"\x05\x12"
        + struct.pack("!IIII", 10, 20, 0xFFFFFFF0, 40)
    )
    assert len(opts) == 32
    seg = decode(ether(ip4(tcp(opts))))
    assert seg.options == TcpOptions(sack_blocks=((10, 20), (0xFFFFFFF0, 40)), ts_val=5, ts_ecr=6)


def test_experimental_fast_open_and_cookie_request():
    seg = decode(ether(ip4(tcp(b"\xfe\x0c\xf9\x89" + b"12345678"))))
    assert seg.options.tfo_cookie == b"12345678"
    seg = decode(ether(ip4(tcp(b"\x22\x02\x01\x01"))))
    assert seg.options.tfo_cookie == b""
    seg = decode(ether(ip4(tcp(b"\xfe\x06\x12\x34\x00\x00\x01\x01"))))  # other magic
    assert seg.options.tfo_cookie is None


def test_options_after_eol_and_wrong_length_known_option_ignored():
    seg = decode(ether(ip4(tcp(b"\x00\x02\x04\x05"))))  # EOL first: nothing after
    assert seg.options == TcpOptions()
    seg = decode(ether(ip4(tcp(b"\x02\x03\x05\x01"))))  # MSS with length 3: ignored
    assert seg.options == TcpOptions()


@pytest.mark.parametrize(
    "opts, reason",
    [
        (b"\x02\x00\x05\xb4", "bad TCP option length 0 (kind 2 at header offset 20, 4 bytes left)"),
        (b"\x08\x01\x00\x00", "bad TCP option length 1 (kind 8 at header offset 20, 4 bytes left)"),
        (
            b"\x01\x08\x0a\x00",
            "bad TCP option length 10 (kind 8 at header offset 21, 3 bytes left)",
        ),
        (
            b"\x01\x01\x01\x02",
            "bad TCP option length: kind 2 at header offset 23 has no length byte",
        ),
    ],
)
def test_bad_option_lengths(opts, reason):
    with pytest.raises(DecodeError) as info:
        decode(ether(ip4(tcp(opts))))
    assert info.value.reason == reason == str(info.value)


@pytest.mark.parametrize(
    "data, lt, reason",
    [
        (b"\x02" * 10, 1, "truncated Ethernet header (10 of 14 bytes captured)"),
        (ether(b"\x45\x00"), 1, "truncated IPv4 header (2 of 20 bytes captured)"),
        (ether(b"\x00\x05", 0x8100), 1, "truncated VLAN tag (2 of 4 bytes captured)"),
        (ether(ip4(tcp(), ihl=3)), 1, "IPv4 header length 12 < 20"),
        (
            ether(ip4(tcp(), ihl=7, opts=b"\x01" * 8))[:38],
            1,
            "truncated IPv4 header (24 of 28 bytes captured)",
        ),
        (ether(ip4(tcp(), total=16)), 1, "IPv4 total length 16 < header length 20"),
        (
            ether(ip4(tcp(), total=30)),
            1,
            "IP length leaves 10 bytes for TCP, less than the 20-byte TCP header",
        ),
        (
            ether(ip4(tcp(b"\x01" * 12), total=40)),
            1,
            "IP length leaves 20 bytes for TCP, less than the 32-byte TCP header",
        ),
        (ether(ip4(tcp()))[:48], 1, "truncated TCP header (14 of 20 bytes captured)"),
        (ether(ip4(tcp(doff=4))), 1, "TCP data offset 4 < 5"),
        (ether(b"\x65" + ip4(tcp())[1:]), 1, "IP version 6 in an IPv4 packet"),
        (ether(ip6(tcp()), 0x86DD)[:40], 1, "truncated IPv6 header (26 of 40 bytes captured)"),
        (ether(b"\x45" + ip6(tcp())[1:], 0x86DD), 1, "IP version 4 in an IPv6 packet"),
        (ip6(tcp()), 228, "IP version 6 in a link type 228 (raw IPv4) packet"),
        (ip4(tcp()), 229, "IP version 4 in a link type 229 (raw IPv6) packet"),
        (b"\x15" + ip4(tcp())[1:], 101, "raw IP packet with IP version 1"),
        (b"\x00\x00", 113, "truncated Linux cooked (SLL) header (2 of 16 bytes captured)"),
        (b"\x00\x00", 276, "truncated Linux cooked (SLL2) header (2 of 20 bytes captured)"),
        (b"\x02\x00", 0, "truncated loopback header (2 of 4 bytes captured)"),
        (ip4(tcp()), 147, "unsupported link type 147"),
        (
            ether(mpls(100, 200, bottom=False), 0x8847)[:20],
            1,
            "truncated MPLS label stack entry (2 of 4 bytes captured)",
        ),
        (
            ether(mpls(100, bottom=False), 0x8847),
            1,
            "truncated MPLS label stack entry (0 of 4 bytes captured)",
        ),
        (
            ether(mpls(100), 0x8848, tags=((0x8100, 7),)),
            1,
            "truncated IP header beneath the MPLS label stack (0 of 1 bytes captured)",
        ),
        (
            ether(mpls(1) + b"\x45" + b"\x00" * 10, 0x8847),
            1,
            "truncated IPv4 header (11 of 20 bytes captured)",
        ),
        (
            ip6(b"\x06\x00" + b"\x00" * 4, nh=0, plen=28),
            101,
            "truncated IPv6 extension header (6 of 8 bytes captured)",
        ),
        (
            ip6(b"\x06\x01" + b"\x00" * 6, nh=0),
            101,
            "truncated IPv6 extension header (8 of 16 bytes captured)",
        ),
        (
            ip6(b"\x06\x00" + b"\x00" * 6 + tcp(), nh=0, plen=4),
            101,
            "IPv6 payload length 4 ends inside the extension headers",
        ),
        (
            ip6(b"\x06\x01" + b"\x00" * 14 + tcp(), nh=0, plen=12),
            101,
            "IPv6 payload length 12 ends inside the extension headers (16 bytes)",
        ),
    ],
)
def test_decode_errors(data, lt, reason):
    with pytest.raises(DecodeError) as info:
        decode(data, lt)
    assert str(info.value) == reason
    with pytest.raises(DecodeError):
        decode_with_dpkt(rec(data, lt))


@pytest.mark.parametrize(
    "data, lt, kind",
    [
        (ether(b"\x00" * 28, 0x0806), 1, "arp"),
        (ether(b"\x00" * 28, 0x88CC), 1, "other-ethertype"),
        (ether(b"\x00" * 28, 0x0806, tags=((0x8100, 5),)), 1, "arp"),
        (ether(ip4(tcp(), frag=0x2000)), 1, "ipv4-fragment"),  # first, MF
        (ether(ip4(tcp(), frag=0x0010)), 1, "ipv4-fragment"),  # offset 16
        (ether(ip4(b"\x00" * 8, proto=17)), 1, "ipv4-udp"),
        (ether(ip4(b"\x08\x00" + b"\x00" * 6, proto=1)), 1, "icmp"),
        (ether(ip4(b"\x00" * 8, proto=132)), 1, "other-ip-proto"),  # SCTP (GRE is a tunnel)
        (ip6(b"\x80\x00" + b"\x00" * 6, nh=58), 101, "ipv6-icmp"),
        (ip6(b"\x00" * 8, nh=17), 101, "ipv6-udp"),
        (ip6(b"", nh=59), 101, "other-ip-proto"),
        (ip6(b"\x32\x00" + b"\x00" * 6 + b"\x00" * 8, nh=0), 101, "other-ip-proto"),  # HBH + ESP
        (ip6(b"\x06\x00\x00\x08\x00\x00\x00\x01" + tcp(), nh=44), 101, "ipv6-fragment"),  # off 1
        (ip6(b"\x06\x00\x00\x01\x00\x00\x00\x01" + tcp(), nh=44), 101, "ipv6-fragment"),  # MF
        (struct.pack("<I", 7) + ip4(tcp()), 0, "other-af"),
        (struct.pack(">I", 7) + ip4(tcp()), 108, "other-af"),
        # nibble 0: a pseudowire control word (RFC 4385), then Ethernet with ethertype 0x0202
        (ether(mpls(3, 4) + b"\x00\x00\x00\x00" + b"\x02" * 60, 0x8847), 1, "other-ethertype"),
        (ether(mpls(3) + b"\x15" + b"\x00" * 40, 0x8848), 1, "other-mpls-payload"),
        (ether(mpls(3) + b"\x10" * 28, 0x8847, tags=((0x8100, 5),)), 1, "other-mpls-payload"),
    ],
)
def test_skipped_kinds(data, lt, kind):
    dec = Decoder()
    assert dec.decode(rec(data, lt)) is None
    assert dec.skipped == Counter({kind: 1})
    ref = Counter()
    assert decode_with_dpkt(rec(data, lt), skipped=ref) is None
    assert ref == Counter({kind: 1})


def test_atomic_ipv6_fragment_is_decoded():
    ext = b"\x06\x00\x00\x00\x00\x00\x00\x01"
    seg = decode(ip6_tcp(tcp(payload=b"abc"), ext=ext, first=44), 101)
    assert seg.payload_len == 3 and seg.checksum_ok


def test_ah_length_counts_4_byte_units():
    # AH with payload length field 4: (4 + 2) * 4 = 24 bytes (8-byte units would give 40)
    ah = bytes((6, 4, 0, 0)) + struct.pack("!II", 0x100, 1) + b"\xaa" * 12
    seg = decode(ip6_tcp(tcp(payload=b"x" * 50), ext=ah, first=51), 101)
    assert seg.payload_len == 50 and seg.sport == 1234 and seg.checksum_ok


def test_routing_header_final_destination_used_for_checksum():
    final = "2001:db8::99"
    # type 0 routing header, 1 address, segments left 1: header dst is the next hop
    rh = bytes((6, 2, 0, 1)) + b"\x00" * 4 + a6(final)
    seg = decode(ip6_tcp(tcp(payload=b"hello"), ext=rh, first=43, final_dst=final), 101)
    assert seg.dst == S6 and seg.checksum_ok is True
    assert (
        decode_with_dpkt(
            rec(ip6_tcp(tcp(payload=b"hello"), ext=rh, first=43, final_dst=final), 101),
            verify_checksums=True,
        )
        == seg
    )
    # SRH (type 4): Segment List[0] is the final destination
    srh = bytes((6, 4, 4, 1, 1, 0, 0, 0)) + a6(final) + a6(S6)
    seg = decode(ip6_tcp(tcp(payload=b"hello"), ext=srh, first=43, final_dst=final), 101)
    assert seg.checksum_ok is True


def test_ethernet_padding_ignored():
    frame = ether(ip4(tcp())) + b"\x00" * 6  # 54 -> 60 bytes
    seg = decode(frame)
    assert seg.payload_len == 0 and seg.truncated is False and seg.checksum_ok is True


def test_snaplen_cut_payload():
    full = ether(ip4(tcp(payload=b"p" * 500)))
    seg = decode(full[:100], wire=len(full))
    assert seg.payload_len == 500 and seg.truncated is True and seg.checksum_ok is None
    assert decode(full) == dataclasses.replace(seg, truncated=False, checksum_ok=True)


def test_tso_total_length_zero_uses_frame_length():
    full = ether(ip4(tcp(payload=b"p" * 3000)))
    tso = bytearray(full)
    tso[16:18] = b"\x00\x00"
    seg = decode(bytes(tso), verify=False)
    assert seg.payload_len == 3000 and not seg.truncated
    cut = decode(bytes(tso[:200]), wire=len(tso), verify=False)
    assert cut.payload_len == 3000 and cut.truncated
    assert decode_with_dpkt(rec(bytes(tso[:200]), wire=len(tso))) == cut


def test_tso_rule_is_one_function_for_records_and_arrays():
    """The TSO / total-length rule (pcapcheck.capture.decoder.ipv4_length, frame_length)
    decides the same on ints (the decoder) and on numpy arrays (the batch decoder's
    columns), value by value: length 0 takes the frame's length (the larger of wire and
    captured lengths from the IP header on), 1-19 is malformed for a 20-byte header."""
    import numpy as np

    from pcapcheck.capture.decoder import frame_length, ipv4_length

    cases = [
        (total, wire, cap, off)
        for total in (0, 1, 19, 20, 40, 1500, 65535)
        for wire, cap in ((1514, 1514), (60, 1514), (3014, 200), (0, 64))
        for off in (14, 54)
    ]
    one = [ipv4_length(t, 20, frame_length(w, c, o)) for t, w, c, o in cases]
    assert one[0] == (1514 - 14, True) and one[8][1] is False  # TSO; 1 < 20
    assert all(type(ok) is bool and type(n) is int for n, ok in one)
    t, w, c, o = (np.array(col, np.int64) for col in zip(*cases))
    length, ok = ipv4_length(t, 20, frame_length(w, c, o))
    assert list(zip(length.tolist(), ok.tolist())) == one
    assert [n for n, _ in one[:8]] == [max(w, c) - o for _, w, c, o in cases[:8]]


def test_total_length_larger_than_the_captured_bytes():
    """Fine when the snaplen cut the packet (the wire was longer); malformed when the
    record is the whole packet and the IP length claims more."""
    data = ether(ip4(tcp(payload=b"abc"), total=1000))
    cut = Record(1, 0.0, 1, data, 14 + 1000)
    seg = Decoder(verify_checksums=True).decode(cut)
    assert seg.payload_len == 960 and seg.truncated is True and seg.checksum_ok is None
    assert decode_with_dpkt(cut) == Decoder().decode(cut)
    with pytest.raises(DecodeError) as info:
        decode(data, verify=True)
    assert str(info.value) == "IP length gives 980 bytes of TCP, the packet holds 23"
    with pytest.raises(DecodeError):
        decode_with_dpkt(rec(data))


def test_ipv4_options_and_three_vlan_tags():
    opts = b"\x94\x04\x00\x00"
    data = ether(
        ip4(tcp(payload=b"q"), ihl=6, opts=opts), tags=((0x88A8, 1), (0x8100, 2), (0x8100, 3))
    )
    seg = decode(data)
    assert seg.payload_len == 1 and seg.checksum_ok and seg.ip_id == 7
    assert decode_with_dpkt(rec(data), verify_checksums=True) == seg


def test_sll_with_vlan_and_sll2():
    payload = ip4(tcp())
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x8100) + struct.pack("!HH", 9, 0x0800)
    seg = decode(sll + payload, 113)
    assert seg.src == C and decode_with_dpkt(rec(sll + payload, 113), verify_checksums=True) == seg
    sll2 = struct.pack("!HHiHBB8s", 0x86DD, 0, 1, 1, 0, 6, b"\x02" * 8)
    seg6 = decode(sll2 + ip6_tcp(tcp()), 276)
    assert seg6.src == C6 and seg6.ip_version == 6


@pytest.mark.parametrize(
    "hdr, lt, version",
    [
        (struct.pack("<I", 2), 0, 4),
        (struct.pack(">I", 2), 0, 4),
        (struct.pack(">I", 2), 108, 4),
        (struct.pack("<I", 24), 0, 6),
        (struct.pack(">I", 28), 0, 6),
        (struct.pack("<I", 30), 0, 6),
        (struct.pack(">I", 30), 108, 6),
    ],
)
def test_loopback_families_both_orders(hdr, lt, version):
    payload = ip4(tcp()) if version == 4 else ip6_tcp(tcp())
    seg = decode(hdr + payload, lt)
    assert seg.ip_version == version and seg.checksum_ok
    assert decode_with_dpkt(rec(hdr + payload, lt), verify_checksums=True) == seg


def test_raw_12_and_14():
    for lt in (12, 14):
        assert decode(ip4(tcp()), lt).src == C
        assert decode(ip6_tcp(tcp()), lt).src == C6


def test_high_flags_and_unsigned_fields():
    seg = decode(ether(ip4(tcp(flags=0xFF, seq=0xFFFFFFFF, ack=0x80000000, win=0xFFFF))))
    assert (seg.flags, seg.seq, seg.ack, seg.window) == (0xFF, 0xFFFFFFFF, 0x80000000, 0xFFFF)


def test_address_cache_is_bounded(monkeypatch):
    import pcapcheck.capture.decoder as decoder_mod

    monkeypatch.setattr(decoder_mod, "_CACHE_MAX", 4)
    dec = Decoder()
    for i in range(20):
        src = f"10.1.0.{i}"
        assert dec.decode(rec(ether(ip4(tcp(), src=src)))).src == src
        src6 = f"2001:db8::{i + 1:x}"
        assert dec.decode(rec(ip6(tcp(), src=src6), 101)).src == src6
    assert len(dec._v4) <= 4 and len(dec._v6) <= 4


# ---- fast path == dpkt path -------------------------------------------------------------


def _all_captures() -> list[Path]:
    """Every .pcap/.pcapng (also .gz) under sample_pcaps/, present when the test runs."""
    pats = ("*.pcap", "*.pcapng", "*.pcap.gz", "*.pcapng.gz", "*.cap")
    return sorted({p for pat in pats for p in SAMPLES.rglob(pat) if p.is_file()})


def _compare_paths(records, verify):
    fast = Decoder(verify_checksums=verify)
    ref_skipped: Counter = Counter()
    n = 0
    for r in records:
        try:
            a = fast.decode(r)
        except DecodeError as exc:
            a = exc
        try:
            b = decode_with_dpkt(r, verify_checksums=verify, skipped=ref_skipped)
        except DecodeError as exc:
            b = exc
        if isinstance(a, DecodeError) or isinstance(b, DecodeError):
            assert type(a) is type(b), (r.frame, a, b)
        else:
            assert a == b, r.frame
        n += 1
    assert fast.skipped == ref_skipped
    return n


@pytest.mark.parametrize("path", _all_captures(), ids=lambda p: str(p.relative_to(SAMPLES)))
def test_fast_path_equals_dpkt_path(path):
    from test_decoder_paths import NOT_IN_ORACLE

    if str(path.relative_to(SAMPLES)) in NOT_IN_ORACLE:
        pytest.skip("a tunnel the dpkt oracle is not taught (tests/test_decoder_paths.py)")
    try:
        reader = open_capture(path)
    except CaptureError:
        return
    recs = []
    for r in reader:
        recs.append(r)
        if len(recs) >= 20000:  # keep the test quick on big captures
            break
    _compare_paths(recs, verify=False)
    _compare_paths(recs, verify=True)


def test_the_glob_sees_the_encap_captures():
    names = {p.name for p in _all_captures()}
    assert {"eth_ipv4.pcap", "multi_if.pcapng", "eth_ipv4.pcap.gz"} <= names


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_mutated_packets_never_raise_anything_else(data):
    """Random byte changes in the headers: only Segment / None / DecodeError, and both
    paths agree on which of the three it is."""
    base = [
        ether(ip4(tcp(b"\x02\x04\x05\xb4\x01\x03\x03\x07", payload=b"x" * 20))),
        ether(ip6_tcp(tcp(payload=b"y" * 8), ext=b"\x06\x00" + b"\x00" * 6, first=0), 0x86DD),
        struct.pack("<I", 2) + ip4(tcp(b"\x01\x01\x08\x0a" + b"\x00" * 8)),
    ]
    lts = [1, 1, 0]
    k = data.draw(st.integers(0, len(base) - 1))
    pkt = bytearray(base[k])
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, min(len(pkt) - 1, 80)))
        pkt[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(pkt)))
    r = Record(1, 0.0, lts[k], bytes(pkt[:cut]), len(pkt))
    try:
        a = Decoder(verify_checksums=True).decode(r)
    except DecodeError as exc:
        a = exc
    try:
        b = decode_with_dpkt(r, verify_checksums=True)
    except DecodeError as exc:
        b = exc
    assert a is None or isinstance(a, (Segment, DecodeError))
    if isinstance(a, Segment) and isinstance(b, Segment):
        assert a == b
    else:
        assert type(a) is type(b), (a, b)
