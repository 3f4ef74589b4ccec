"""The table of link layers (:mod:`pcapcheck.capture.layers`) and MPLS, the encapsulation
added as one entry of it: the MPLS sample captures give exact segments and findings on
every decoding path (the per-record Decoder, the batch decoder, dpkt's objects), the
batch decoder decodes them in batches (no record handed to the Decoder but those it never
takes in batches: IPv6, malformed), and a layer registered in the table is decoded by
both native decoders with no other change."""

from __future__ import annotations

import io
import re
import struct
import tokenize
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, triples
from test_batch import assert_same, eth, ip4, ip6, mpls, tcp, write_pcap
from test_decoder import EXPECTED, without

from pcapcheck.capture import layers
from pcapcheck.capture.decoder import DecodeError, Decoder
from pcapcheck.capture.dpkt_decoder import decode_with_dpkt
from pcapcheck.capture.layers import ETHERTYPE, IPV4, IPV6, MPLS, Dispatch, Field, Layer
from pcapcheck.capture.reader import open_capture
from pcapcheck.fast.batch_decoder import BatchSource
from pcapcheck.model import ACK, RST, SYN, Segment, SegmentBlock
from pcapcheck.pipeline import analyze_file
from pcapcheck.report.json_report import document

ENCAP = SAMPLES / "encap"
MPLS_IPV4 = ENCAP / "mpls_ipv4.pcap"
MPLS_IPV6 = ENCAP / "vlan_mpls2_ipv6_hs002.pcap"
MPLS_CUT = ENCAP / "bad" / "mpls_cut_stack.pcap"
ISN_C, ISN_S = 3_000_000_000, 123_456_789


def per_record(path: Path, dpkt: bool = False) -> list:
    """Each record's item: a Segment, None or the DecodeError's text."""
    dec = Decoder(verify_checksums=True)
    out = []
    for r in open_capture(path):
        try:
            out.append(decode_with_dpkt(r, verify_checksums=True) if dpkt else dec.decode(r))
        except DecodeError as exc:
            out.append(type(exc) if dpkt else str(exc))
    return out


def batched(path: Path, blocks: bool = False) -> tuple[list, BatchSource]:
    """The Segments (and None / DecodeError text) of the batch decoder, and the source."""
    src = BatchSource(path, True, blocks=blocks)
    out: list = []
    for _f, _t, x in src:
        if type(x) is SegmentBlock:
            out += [x.segment(i) for i in range(len(x))]
        else:
            out.append(str(x) if isinstance(x, DecodeError) else x)
    return out, src


def checked(seg: Segment) -> Segment:
    """``seg`` with its checksum verified (EXPECTED has checksums not verified)."""
    return Segment(**{**without(seg), "checksum_ok": True})


# ---- the MPLS sample captures ------------------------------------------------------------


def test_mpls_ipv4_exact_segments_on_every_path():
    want = [checked(s) for s in EXPECTED]
    assert per_record(MPLS_IPV4) == want
    assert per_record(MPLS_IPV4, dpkt=True) == want
    for blocks in (False, True):
        got, src = batched(MPLS_IPV4, blocks)
        assert got == want
        assert src.one_by_one == 0  # every record decoded in a batch
        assert src.skipped == {}


@pytest.fixture
def analysis(catalog):
    """``analysis(path, **options)``: the FileResult of ``path`` with every rule."""
    active = catalog.select(["ALL"], None)
    return lambda path, **kw: analyze_file(path, catalog, active, **kw)


def test_mpls_ipv4_report_is_the_ethernet_one(analysis):
    """One label more changes nothing in the analysis: the report of mpls_ipv4.pcap is
    eth_ipv4.pcap's, a clean connection with no finding."""

    def doc(path: Path, **kw) -> dict:
        d = document([analysis(path, **kw)])["files"][0]
        d.pop("path")
        return d

    mpls_doc = doc(MPLS_IPV4)
    assert mpls_doc == doc(ENCAP / "eth_ipv4.pcap")
    assert mpls_doc["findings"] == [] and mpls_doc["malformed"] == 0
    (conn,) = mpls_doc["connections"]
    assert (conn["handshake"], conn["close"]) == ("complete", "graceful")
    assert doc(MPLS_IPV4, decoder="dpkt") == mpls_doc


def test_vlan_mpls2_ipv6_segments_and_hs002(analysis):
    c6, s6 = "2001:db8::1", "2001:db8::2"
    key = [
        (s.frame, s.src, s.dst, s.sport, s.dport, s.seq, s.ack, s.flags, s.ip_version)
        for s in per_record(MPLS_IPV6)
    ]
    assert key == [
        (1, c6, s6, 40000, 80, ISN_C, 0, SYN, 6),
        (2, s6, c6, 80, 40000, ISN_S, ISN_C, SYN | ACK, 6),  # acknowledges the ISN itself
        (3, c6, s6, 40000, 80, ISN_C, 0, RST, 6),
    ]
    assert all(s.checksum_ok for s in per_record(MPLS_IPV6))
    assert per_record(MPLS_IPV6, dpkt=True) == per_record(MPLS_IPV6)
    got, src = batched(MPLS_IPV6)
    assert got == per_record(MPLS_IPV6)
    # 802.1Q and both labels are walked in the batch; IPv6 is the network layer the
    # arrays do not decode (as in eth_ipv6.pcap): those records go to the Decoder
    assert src.one_by_one == 3
    result = analysis(MPLS_IPV6)
    assert triples(result) == [("HS002", 1, 2)]  # the client's RST: the RFC's answer
    (hs002,) = [f for f in result.findings if f.rule == "HS002"]
    assert (hs002.data["ack_abs"], hs002.data["expected_abs"]) == (ISN_C, ISN_C + 1)
    slow = analysis(MPLS_IPV6, decoder="dpkt")
    assert document([slow]) == document([result])


def test_mpls_cut_stack_is_malformed_and_the_rest_clean(analysis):
    reason = "truncated MPLS label stack entry (2 of 4 bytes captured)"
    items = per_record(MPLS_CUT)
    assert items[6] == reason
    shifted = [Segment(**{**without(s), "frame": s.frame + (s.frame > 6)}) for s in EXPECTED]
    assert [s for s in items if isinstance(s, Segment)] == [checked(s) for s in shifted]
    assert per_record(MPLS_CUT, dpkt=True)[6] is DecodeError
    got, src = batched(MPLS_CUT)
    assert got == items and src.one_by_one == 1  # only the cut frame
    result = analysis(MPLS_CUT)
    assert triples(result) == [("CP005", None, 7)]
    assert result.findings[0].data["reason"] == reason
    assert result.malformed == 1 and len(result.connections) == 1


MPLS_PW = ENCAP / "mpls_pw_eth.pcap"
MPLS_PW_CUT = ENCAP / "bad" / "mpls_pw_cut_cw.pcap"


def test_mpls_pw_control_word_ethernet_on_every_path(analysis):
    """An Ethernet pseudowire with its control word (RFC 4385, RFC 4448): a first nibble
    0 beneath the stack is the control word, then the customer's Ethernet frame; the
    segments are eth_ipv4.pcap's on every path, all walked in batches, and the report is
    eth_ipv4.pcap's (a link layer: no encapsulation path)."""
    want = [checked(s) for s in EXPECTED]
    assert per_record(MPLS_PW) == want
    assert per_record(MPLS_PW, dpkt=True) == want
    for blocks in (False, True):
        got, src = batched(MPLS_PW, blocks)
        assert got == want
        assert src.one_by_one == 0 and src.skipped == {}
    pw, plain = (document([analysis(p)])["files"][0] for p in (MPLS_PW, ENCAP / "eth_ipv4.pcap"))
    assert pw["path"] != plain["path"]
    assert {**pw, "path": None} == {**plain, "path": None}
    assert [
        ("encapsulation" in c, c["first_frame"], c["last_frame"]) for c in pw["connections"]
    ] == [(False, 1, 10)]


def test_mpls_pw_cut_control_word_is_malformed(analysis):
    reason = "truncated MPLS pseudowire control word (2 of 4 bytes captured)"
    items = per_record(MPLS_PW_CUT)
    assert items[6] == reason
    shifted = [Segment(**{**without(s), "frame": s.frame + (s.frame > 6)}) for s in EXPECTED]
    assert [s for s in items if isinstance(s, Segment)] == [checked(s) for s in shifted]
    assert per_record(MPLS_PW_CUT, dpkt=True)[6] is DecodeError
    got, src = batched(MPLS_PW_CUT)
    assert got == items and src.one_by_one == 1  # only the cut frame
    result = analysis(MPLS_PW_CUT)
    assert triples(result) == [("CP005", None, 7)]
    assert result.findings[0].data["reason"] == reason
    assert result.malformed == 1 and len(result.connections) == 1


def test_mpls_other_nibbles_are_not_a_pseudowire():
    """Beneath the stack, 4 and 6 stay IPv4 and IPv6 and 1 (an associated channel,
    RFC 4385 §5) is skipped; only 0 is a control word."""
    frame = eth(mpls(b"\x10\x00\x00\x00" + bytes(60), 100), et=0x8847)
    dec = Decoder()
    assert dec.decode(_record(frame)) is None and dec.skipped == {"other-mpls-payload": 1}


# ---- stacks of every depth, over every layer that carries an ethertype --------------------


def _carriers(payload: bytes, et: int) -> list[tuple[int, bytes]]:
    """(link type, frame) carrying ``payload`` with ethertype ``et``: Ethernet, 802.1Q,
    QinQ, Linux SLL, SLL2."""
    return [
        (1, eth(payload, et=et)),
        (1, eth(payload, et=et, vlans=(0x8100,))),
        (1, eth(payload, et=et, vlans=(0x88A8, 0x8100))),
        (113, struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, et) + payload),
        (276, struct.pack("!HHIHBB8s", et, 0, 1, 1, 0, 6, b"\x02" * 8) + payload),
    ]


@pytest.mark.parametrize("depth", [1, 2, 3, 8])
def test_label_stacks_of_any_depth(tmp_path, depth):
    seg = tcp(payload=b"m" * 33, opts=b"\x01\x01\x08\x0a" + struct.pack("!II", 9, 8))
    labels = tuple(range(16, 16 + depth))
    for version, packet in ((4, ip4(seg)), (6, ip6(seg))):
        plain = Decoder(verify_checksums=True).decode(
            _record(eth(packet, et=0x0800 if version == 4 else 0x86DD))
        )
        assert isinstance(plain, Segment) and plain.ip_version == version
        for et in (0x8847, 0x8848):
            for lt, frame in _carriers(mpls(packet, *labels), et):
                r = _record(frame, lt)
                assert Decoder(verify_checksums=True).decode(r) == plain, (lt, et)
                assert decode_with_dpkt(r, verify_checksums=True) == plain, (lt, et)
    # in batches: the IPv4 ones never reach the Decoder; the same items as NativeSource
    for lt in (1, 113, 276):
        frames = [
            f
            for et in (0x8847, 0x8848)
            for t, f in _carriers(mpls(ip4(seg), *labels), et)
            if t == lt
        ]
        path = write_pcap(tmp_path / f"mpls{depth}_{lt}.pcap", frames * 3, linktype=lt)
        items = assert_same(path, True)
        assert all(type(x) is Segment for _f, _t, x in items)
        src = BatchSource(path, True)
        assert len(list(src)) == len(frames) * 3 and src.one_by_one == 0


def _record(data: bytes, lt: int = 1):
    from pcapcheck.model import Record

    return Record(1, 1.0, lt, data, len(data))


def test_mixed_layouts_in_one_batch(tmp_path):
    """Records of many layouts interleaved (plain, tagged, labelled, both; skipped kinds of
    several tables): the batch decoder groups them by layout, decodes the IPv4 ones in
    the batch, counts the skipped ones as the Decoder does, and hands only the IPv6 and
    the malformed ones to the Decoder."""
    seg = tcp(payload=b"q" * 7)
    frames = [
        eth(ip4(seg)),
        eth(mpls(ip4(seg), 1), et=0x8847),
        eth(ip4(seg), vlans=(0x8100,)),
        eth(mpls(ip4(seg), 1, 2), et=0x8847, vlans=(0x9100, 0x8100)),
        eth(b"a" * 28, et=0x0806),  # arp
        eth(mpls(b"a" * 28, 1), et=0x0806, vlans=(0x8100,)),  # arp
        eth(b"l" * 46, et=0x88CC),  # other-ethertype
        eth(mpls(b"\x10" + b"\x00" * 39, 3), et=0x8847),  # other-mpls-payload (nibble 1)
        eth(mpls(ip6(seg), 3), et=0x8847),  # IPv6: the Decoder
        eth(mpls(ip4(seg), 3, bottom=False), et=0x8847)[:20],  # cut: the Decoder
    ]
    path = write_pcap(tmp_path / "mixed.pcap", frames * 50)
    items = assert_same(path, True, small_chunks=True)
    src = BatchSource(path, True)
    assert len(list(src)) == len(items) == 500
    assert src.one_by_one == 2 * 50
    assert src.skipped == {"arp": 100, "other-ethertype": 50, "other-mpls-payload": 50}
    assert sum(type(x) is Segment for _f, _t, x in items) == 4 * 50 + 50  # + the IPv6 ones


# ---- the table ----------------------------------------------------------------------------


def test_no_decoder_names_a_link_layer():
    """Ethertypes, link types and link-layer offsets are in the table only."""
    ethertypes = {v for layer in layers.layers() for v in layer.dispatch.layers} - {0, 1, 2, 4, 6}
    literal = re.compile(r"\b0x([0-9a-fA-F]{4})\b")
    for rel in ("pcapcheck/capture/decoder.py", "pcapcheck/fast/batch_decoder.py"):
        text = (ROOT / rel).read_text()
        found = {int(h, 16) for h in literal.findall(text)} & ethertypes
        assert not found, (rel, sorted(hex(v) for v in found))
        assert not re.search(r"\b(lt|linktype) (==|in) \(?\d", text), rel
        # nor the UDP ports of tunnels (issue 24: the batch decoder walks tunnels too)
        ports = {p for _layer, default in layers.UDP_TUNNELS.values() for p in default}
        numbers = {
            int(tok.string, 0)
            for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type == tokenize.NUMBER and tok.string.isalnum()
        }
        assert not ports & numbers, rel


def test_table_contents():
    lts = layers.LINKTYPE.layers
    assert sorted(lts) == [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]
    assert [lts[v].name for v in (1, 113, 276, 0, 108)] == [
        "Ethernet",
        "Linux SLL",
        "Linux SLL2",
        "BSD NULL",
        "BSD LOOP",
    ]
    et = ETHERTYPE.layers
    assert et[0x0800] is IPV4 and et[0x86DD] is IPV6
    assert {et[v].name for v in (0x8100, 0x88A8, 0x9100, 0x9200)} == {"802.1Q"}
    assert et[0x8847] is et[0x8848] is MPLS
    assert MPLS.dispatch.layers[0] is MPLS  # stacks of any depth
    beneath = MPLS.dispatch.layers[1].dispatch.layers
    assert beneath == {4: IPV4, 6: IPV6, 0: layers.PW_ETH}  # 0: a PW control word
    assert layers.PW_ETH.dispatch.layers == {0: layers.ETHERNET}
    assert ETHERTYPE.skip_kind(0x0806) == "arp" and ETHERTYPE.skip_kind(0x88CC) == (
        "other-ethertype"
    )
    with pytest.raises(ValueError, match="already names IPv4"):
        layers.register(ETHERTYPE, 0x0800, MPLS)


def test_udp_tunnels_are_registered_from_their_one_table(monkeypatch):
    """The default UDP ports come from UDP_TUNNELS alone: the table of ports is exactly
    its entries, and a tunnel added there is decoded by default (no second list)."""
    assert layers.UDP_PORT.layers == {
        port: layer for layer, ports in layers.UDP_TUNNELS.values() for port in ports
    }
    assert layers.UDP6_PORT.layers is layers.UDP_PORT.layers
    assert sorted(layers.UDP_PORT.layers) == [2152, 3544, 4789, 6081]
    # another tunnel in UDP_TUNNELS: any table made from it (the defaults' own maker)
    # has it on its default port, and keeps the others
    extra = layers.Dispatch("UDP port", skip="ipv4-udp")
    monkeypatch.setitem(layers.UDP_TUNNELS, "vxlan-gpe", (layers.VXLAN, (4790,)))
    layers._register_udp_tunnels(extra, {})
    assert sorted(extra.layers) == [2152, 3544, 4789, 4790, 6081]
    proto4, _proto6 = layers.tunnel_tables({"geneve": []})
    assert sorted(proto4[17].dispatch.layers) == [2152, 3544, 4789, 4790]


def test_field_reads_both_loopback_byte_orders():
    null = layers.LINKTYPE.layers[0].next
    assert null is not None
    assert null.read(struct.pack("<I", 30), 0) == null.read(struct.pack(">I", 30), 0) == 30
    assert Field(0, 1, shift=4).read(b"\x45", 0) == 4
    assert Field(2, 1, mask=1).read(b"\x00\x01\x01\x40", 0) == 1


def test_pppoe_is_one_entry(tmp_path):
    """PPPoE session frames (RFC 2516: 6 bytes, then the 2-byte PPP protocol) are one
    entry of the table (layers.PPPOE on ethertype 0x8864), walked in batches."""
    assert ETHERTYPE.layers[0x8864] is layers.PPPOE
    seg = tcp(payload=b"p" * 12)

    def session(payload: bytes, proto: int) -> bytes:
        return struct.pack("!BBHHH", 0x11, 0, 7, len(payload) + 2, proto) + payload

    frames = [
        eth(session(ip4(seg), 0x0021), et=0x8864),
        eth(session(ip4(seg), 0x0021), et=0x8864, vlans=(0x8100,)),
        eth(session(b"c" * 20, 0xC021), et=0x8864),  # LCP: skipped
        eth(session(ip4(seg), 0x0021), et=0x8864)[:19],  # cut
    ]
    plain = Decoder().decode(_record(eth(ip4(seg))))
    dec = Decoder()
    assert [dec.decode(_record(f)) for f in frames[:3]] == [plain, plain, None]
    assert dec.skipped == {"other-ppp-protocol": 1}
    with pytest.raises(DecodeError, match=r"^truncated PPPoE session header \(5 of 8 bytes"):
        dec.decode(_record(frames[3]))
    path = write_pcap(tmp_path / "pppoe.pcap", frames[:3] * 20 + frames[3:])
    assert_same(path, False)
    src = BatchSource(path)
    list(src)
    assert src.one_by_one == 1 and src.skipped == {"other-ppp-protocol": 20}


@pytest.fixture
def nsh():
    """The Network Service Header (RFC 8300 §2: ethertype 0x894F, its length in 4-byte
    words in the low 6 bits of its first 16, at least 8 bytes; next protocol 1 IPv4,
    2 IPv6, 3 Ethernet), for the test only: a layer whose header length is written in
    its bytes, and one that carries a link layer again."""
    protocols = Dispatch("NSH next protocol", skip="other-nsh")
    layer = Layer(
        "NSH",
        "NSH header",
        8,
        next=Field(3, 1),
        dispatch=protocols,
        length_from=Field(0, 2, mask=0x3F),
        length_unit=4,
    )
    layers.register(protocols, 1, IPV4)
    layers.register(protocols, 2, IPV6)
    layers.register(protocols, 3, layers.ETHERNET)
    layers.register(ETHERTYPE, 0x894F, layer)
    yield layer
    del ETHERTYPE.layers[0x894F]


def _nsh(payload: bytes, words: int, proto: int) -> bytes:
    md = b"\x00" * (4 * words - 8) if words >= 2 else b""
    return struct.pack("!HBBI", 63 << 6 | words, 2, proto, 0x000123FF) + md + payload


def test_a_header_whose_length_is_in_its_bytes(tmp_path, nsh):
    seg = tcp(payload=b"n" * 5)
    plain = Decoder().decode(_record(eth(ip4(seg))))
    good = [
        eth(_nsh(ip4(seg), 2, 1), et=0x894F),
        eth(_nsh(ip4(seg), 5, 1), et=0x894F),  # 12 bytes of metadata
        eth(_nsh(eth(ip4(seg)), 3, 3), et=0x894F, vlans=(0x8100,)),  # Ethernet inside
        eth(_nsh(eth(mpls(ip4(seg), 9), et=0x8847), 2, 3), et=0x894F),
    ]
    dec = Decoder()
    for frame in good:
        assert dec.decode(_record(frame)) == plain
    assert dec.decode(_record(eth(_nsh(b"x" * 30, 2, 0x7F), et=0x894F))) is None
    assert dec.skipped == {"other-nsh": 1}
    bad = {
        "bad NSH header length 4 < 8": eth(_nsh(ip4(seg), 1, 1), et=0x894F),
        "truncated NSH header (20 of 24 bytes captured)": eth(
            _nsh(b"", 6, 1) + b"\x00" * 20, et=0x894F
        )[: 14 + 20],
        "truncated NSH header (6 of 8 bytes captured)": eth(_nsh(b"", 2, 1), et=0x894F)[:20],
    }
    for reason, frame in bad.items():
        with pytest.raises(DecodeError) as info:
            dec.decode(_record(frame))
        assert str(info.value) == reason
    # in batches: the offsets differ from record to record; only the bad ones go to the
    # Decoder
    frames = (good + [eth(_nsh(b"x" * 30, 2, 0x7F), et=0x894F)]) * 25 + list(bad.values())
    path = write_pcap(tmp_path / "nsh.pcap", frames)
    assert_same(path, True, small_chunks=True)
    src = BatchSource(path, True)
    items = [x for _f, _t, x in src]

    def key(x):
        return without(x, "frame", "ts", "checksum_ok") if isinstance(x, Segment) else x

    assert [key(x) for x in items[:-3]] == ([key(plain)] * 4 + [None]) * 25
    assert [str(x) for x in items[-3:]] == list(bad)
    assert src.one_by_one == len(bad) and src.skipped == {"other-nsh": 25}
