"""pcapcheck.fast.batch_decoder.BatchSource yields exactly what analyze.NativeSource yields (same items,
same order, same skipped counts, truncation note, format and snaplen), on every sample
capture, on a generated capture and on crafted edge cases; and ``shard=(k, n)`` splits
the Segments between the shards without touching anything else."""

from __future__ import annotations

import gzip
import importlib.util
import struct
from argparse import Namespace
from pathlib import Path

import dpkt
import pytest
from conftest import ROOT, SAMPLES
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz import SEEDS, fuzz_settings, mutation
from test_fuzz import mutated as fuzz_mutated
from test_fuzz import write as fuzz_write

import pcapcheck.capture.reader as reader_mod
from pcapcheck.capture.decoder import DecodeError, Decoder
from pcapcheck.capture.reader import CaptureError
from pcapcheck.fast.batch_decoder import BatchSource
from pcapcheck.model import OTHER_SHARD, Segment, SegmentBlock, TcpOptions
from pcapcheck.pipeline import NativeSource

#: The reader's read size (tests make it tiny to have records straddle its reads).
READ_CHUNK = reader_mod._CHUNK

CAPTURES = sorted(
    p for p in SAMPLES.rglob("*") if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".gz"))
)


def _items(source) -> list[tuple]:
    """The items of ``source``, DecodeErrors as (type, text) (exceptions compare by
    identity); a SegmentBlock (``blocks=True``) as the items of its records."""
    out = []
    for f, ts, x in source:
        if type(x) is SegmentBlock:
            # the block's records: its rows and the other shards' segments, in order
            records = [(x.frame[i], x.ts[i], x.segment(i)) for i in range(len(x))]
            records += [(fr, t, OTHER_SHARD) for fr, t in zip(x.other_frame, x.other_ts)]
            records.sort(key=lambda r: r[0])
            assert (f, ts) == records[0][:2] and x.records == len(records) > 0
            if x.other_end is not None:
                assert len(x.other_end) == len(x.other_max) == len(x) + 1
                start = 0
                for i, end in enumerate(x.other_end):
                    before = x.other_ts[start:end]
                    assert x.other_max[i] == max(before, default=float("-inf"))
                    assert (
                        all(fr < x.frame[i] for fr in x.other_frame[start:end])
                        if i < len(x)
                        else end == len(x.other_ts)
                    )
                    if i < len(x) and i + 1 < len(x):
                        assert all(fr > x.frame[i] for fr in x.other_frame[end : end + 1])
                    start = end
            else:
                assert not x.other_frame
            for i in range(len(x)):
                seg = x.segment(i)
                if x.plain[i]:  # what the lane may take: an ordinary ACK
                    assert seg.flags & 0x37 == 0x10 and seg.window > 0
                    assert not seg.truncated and seg.checksum_ok is not False
                    assert seg.options is None or seg.options == TcpOptions(
                        ts_val=seg.options.ts_val, ts_ecr=seg.options.ts_ecr
                    )
            out += records
        else:
            out.append((f, ts, (type(x), str(x)) if isinstance(x, DecodeError) else x))
    return out


def assert_same(
    path: Path,
    verify: bool,
    *,
    small_chunks: bool = False,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> list[tuple]:
    """BatchSource(path, verify) == NativeSource(path, verify), items and attributes;
    ``small_chunks``: also with tiny reads and batches, so that records straddle every
    chunk boundary. Returns the items."""
    try:
        native = NativeSource(path, verify)
    except CaptureError as exc:
        with pytest.raises(CaptureError) as caught:
            BatchSource(path, verify)
        assert str(caught.value) == str(exc)
        return []
    expected = _items(native)
    variants = [{}]
    if small_chunks:
        variants += [{"chunk_bytes": 1}, {"chunk_bytes": 300}, {"chunk_bytes": 5000}]
    for kw in variants:
        if kw and monkeypatch is not None:
            # the reader's reads small as well; they change what is salvaged from a
            # corrupt gzip stream, so NativeSource reads with the same reads
            monkeypatch.setattr(reader_mod, "_CHUNK", 97)
            native = NativeSource(path, verify)
            want = _items(native)
        else:
            want = expected
        for blocks in (False, True):
            batch = BatchSource(path, verify, **kw, blocks=blocks)
            got = _items(batch)
            assert got == want, (path, verify, kw, blocks)
            assert repr(got) == repr(want)  # the same types too (int, not numpy's...)
            assert batch.skipped == native.skipped, (path, kw)
            assert batch.truncated == native.truncated, (path, kw)
            assert batch.format == native.format
            assert batch.snaplen == native.snaplen
        if monkeypatch is not None:
            monkeypatch.setattr(reader_mod, "_CHUNK", READ_CHUNK)
    return expected


@pytest.mark.parametrize("path", CAPTURES, ids=[str(p.relative_to(SAMPLES)) for p in CAPTURES])
def test_samples(path):
    for verify in (False, True):
        assert_same(path, verify)


def test_capture_errors(tmp_path):
    (tmp_path / "empty.pcap").write_bytes(b"")
    (tmp_path / "text.pcap").write_text("hello\n")
    (tmp_path / "short.pcap").write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00")
    for name in ("missing.pcap", "empty.pcap", "text.pcap", "short.pcap"):
        assert_same(tmp_path / name, False)
        with pytest.raises(CaptureError):
            BatchSource(tmp_path / name)


def test_bad_shard(tmp_path):
    path = write_pcap(tmp_path / "x.pcap", [eth(ip4(tcp()))])
    for shard in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError):
            BatchSource(path, shard=shard)


# ---- generated capture ------------------------------------------------------------------


def _generate(path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.generate(
        Namespace(
            out=str(path),
            connections=300,
            concurrency=24,
            exchanges=3,
            refused=0.05,
            retrans=0.05,
            resets=0.05,
            loss=0.02,
            seed=4,
        )
    )
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return _generate(tmp_path_factory.mktemp("gen") / "gen.pcap")


def test_generated(generated, monkeypatch):
    items = assert_same(generated, False)
    assert len(items) > 3000 and all(type(x) is Segment for _, _, x in items)
    assert_same(generated, True)
    for size in (3000, 50000):
        monkeypatch.setattr(reader_mod, "_CHUNK", 97)
        small = _items(BatchSource(generated, chunk_bytes=size))
        monkeypatch.setattr(reader_mod, "_CHUNK", READ_CHUNK)
        assert small == items


def test_generated_is_decoded_by_the_arrays(generated, monkeypatch):
    """No record of the generated capture (Ethernet, IPv4, TCP with timestamps) needs
    the per-record decoder."""
    expected = [_items(BatchSource(generated, verify)) for verify in (False, True)]

    def boom(self, record):
        raise AssertionError(f"record {record.frame} went to Decoder.decode")

    monkeypatch.setattr(Decoder, "decode", boom)
    assert [_items(BatchSource(generated, verify)) for verify in (False, True)] == expected


def test_generated_gzip(generated, tmp_path):
    gz = tmp_path / "gen.pcap.gz"
    gz.write_bytes(gzip.compress(generated.read_bytes(), 1))
    assert_same(gz, False)
    assert _items(BatchSource(gz, chunk_bytes=5000)) == _items(BatchSource(generated))


def test_generated_cut(generated, tmp_path, monkeypatch):
    """The file cut inside a record, inside a record header, and at a record boundary."""
    data = generated.read_bytes()
    offsets = [r.offset for r in reader_mod.open_capture(generated)][:300]
    for cut in (offsets[-1] - 7, offsets[-1] + 5, offsets[-1], offsets[150] + 40):
        path = tmp_path / f"cut{cut}.pcap"
        path.write_bytes(data[:cut])
        assert_same(path, False, small_chunks=True, monkeypatch=monkeypatch)
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[: len(data) - 7])
    assert_same(path, False)


# ---- sharding ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_shards_split_the_segments(generated, tmp_path, n):
    crafted = write_pcap(tmp_path / "crafted.pcap", crafted_records())
    ng = write_pcapng(tmp_path / "crafted.pcapng", pcapng_packets())
    for path in (generated, crafted, ng):
        whole = _items(BatchSource(path))
        owners = [(x.sport + x.dport) % n if type(x) is Segment else None for _, _, x in whole]
        assert len(set(owners) - {None}) > 1  # the shards have segments to split
        for k in range(n):
            part = _items(BatchSource(path, shard=(k, n)))
            assert part == _items(NativeSource(path, shard=(k, n)))
            assert part == _items(BatchSource(path, shard=(k, n), blocks=True))
            # the same records, frames and times; another shard's Segment is OTHER_SHARD
            assert [(f, t) for f, t, _ in part] == [(f, t) for f, t, _ in whole]
            for (_f, _t, item), (_wf, _wt, witem), owner in zip(part, whole, owners):
                if owner is None or owner == k:
                    assert item == witem
                else:
                    assert item is OTHER_SHARD


def test_shard_of_small_chunks(generated, monkeypatch):
    monkeypatch.setattr(reader_mod, "_CHUNK", 97)
    small = _items(BatchSource(generated, shard=(1, 3), chunk_bytes=5000))
    monkeypatch.setattr(reader_mod, "_CHUNK", READ_CHUNK)
    assert small == _items(BatchSource(generated, shard=(1, 3)))


# ---- crafted edge cases -----------------------------------------------------------------

SRC, DST = 0x0A000001, 0x0A000002
SRC6 = bytes.fromhex("20010db8" + "00" * 11 + "01")
DST6 = bytes.fromhex("20010db8" + "00" * 11 + "02")
TS_OPT = b"\x01\x01\x08\x0a" + struct.pack("!II", 1111, 2222)


def tcp(
    sport=40000, dport=80, seq=1000, ack=2000, flags=0x18, win=502, opts=b"", payload=b"", doff=None
) -> bytes:
    doff = (20 + len(opts)) // 4 if doff is None else doff
    return (
        struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, win, 0, 0)
        + opts
        + payload
    )


def ip4(
    payload: bytes,
    proto=6,
    total=None,
    frag=0x4000,
    opts=b"",
    vihl=None,
    ident=77,
    good_sum=True,
    src=SRC,
    dst=DST,
) -> bytes:
    """An IPv4 packet; a TCP payload gets its right checksum unless ``good_sum`` is
    false (then a wrong one)."""
    hlen = 20 + len(opts)
    if total is None:
        total = hlen + len(payload)
    if proto == 6 and len(payload) >= 20:
        pseudo = struct.pack("!IIBBH", src, dst, 0, 6, len(payload))
        csum = dpkt.in_cksum(pseudo + payload)
        if not good_sum:
            csum ^= 0x5A5A
        payload = payload[:16] + struct.pack("!H", csum) + payload[18:]
    return (
        struct.pack(
            "!BBHHHBBHII",
            0x40 | hlen // 4 if vihl is None else vihl,
            0,
            total,
            ident,
            frag,
            64,
            proto,
            0,
            src,
            dst,
        )
        + opts
        + payload
    )


def ip6(payload: bytes, nxt=6, plen=None) -> bytes:
    return (
        struct.pack(
            "!IHBB16s16s", 0x60000000, len(payload) if plen is None else plen, nxt, 64, SRC6, DST6
        )
        + payload
    )


def eth(payload: bytes, et=0x0800, vlans=()) -> bytes:
    tags = b"".join(struct.pack("!HH", tpid, 5) for tpid in vlans)
    return b"\x02" * 6 + b"\x04" * 6 + tags + struct.pack("!H", et) + payload


def mpls(payload: bytes, *labels: int, bottom: bool = True) -> bytes:
    """An MPLS label stack (RFC 3032) in front of ``payload``; the bottom-of-stack bit on
    the last entry unless ``bottom`` is false."""
    stack = b"".join(
        struct.pack("!I", label << 12 | (bottom and k == len(labels) - 1) << 8 | 64)
        for k, label in enumerate(labels)
    )
    return stack + payload


def crafted_records() -> list:
    """Ethernet records of every kind the batch path decodes, skips or hands to the
    decoder: (data, wire length) or data."""
    syn_opts = (
        b"\x02\x04\x05\xb4\x04\x02" + b"\x08\x0a" + struct.pack("!II", 5, 0) + b"\x01\x03\x03\x07"
    )
    sack_opts = b"\x01\x01\x05\x0a" + struct.pack("!II", 10, 20) + b"\x01\x01" + TS_OPT[2:]
    seg = tcp(payload=b"x" * 100, opts=TS_OPT)
    full = eth(ip4(tcp(payload=b"y" * 300, opts=TS_OPT)))
    recs = [
        eth(ip4(tcp())),  # no options
        eth(ip4(tcp(payload=b"abc"))),  # odd payload
        eth(ip4(seg)),  # NOP NOP TS
        eth(ip4(seg, good_sum=False)),  # bad checksum
        eth(ip4(tcp(flags=0x02, opts=syn_opts))),  # SYN options
        eth(ip4(tcp(opts=sack_opts, payload=b"z" * 10))),  # SACK + TS
        eth(ip4(tcp(opts=TS_OPT[2:] + b"\x01\x01"))),  # TS NOP NOP (hl 32)
        eth(ip4(tcp(opts=b"\x22\x0a" + b"c" * 8 + b"\x00\x00"))),  # TFO cookie
        eth(ip4(tcp(opts=b"\xfe\x06\xf9\x89ab\x00\x00"))),  # experimental TFO
        eth(ip4(tcp(opts=b"\x02\x00\x00\x00"))),  # option length 0
        eth(ip4(tcp(opts=b"\x01\x01\x08\x0c" + b"\x00" * 8))),  # option past the end
        eth(ip4(tcp(opts=b"\x01\x01\x01\x08"))),  # no length byte
        eth(ip4(seg), vlans=(0x8100,)),  # 802.1Q
        eth(ip4(seg), vlans=(0x88A8, 0x8100)),  # QinQ
        eth(ip4(seg), vlans=(0x8100,))[:16],  # cut VLAN tag
        eth(mpls(ip4(seg), 100), et=0x8847),  # MPLS
        eth(mpls(ip4(tcp()), 1, 2, 3), et=0x8848),  # MPLS multicast, 3 labels
        eth(mpls(ip4(seg), 16, 1000), et=0x8847, vlans=(0x8100,)),  # 802.1Q + MPLS
        eth(mpls(ip4(seg), 7), et=0x8847, vlans=(0x88A8, 0x8100)),  # QinQ + MPLS
        eth(mpls(ip4(seg, opts=b"\x01\x01\x01\x00"), 7), et=0x8847),  # MPLS, IHL 6
        eth(mpls(ip4(b"u" * 30, proto=17), 9), et=0x8847),  # MPLS UDP
        eth(mpls(ip6(seg), 100, 200), et=0x8847),  # MPLS IPv6
        eth(mpls(b"\x00\x00\x00\x00" + b"e" * 60, 100), et=0x8847),  # pseudowire
        eth(mpls(ip4(seg), 100, 200, bottom=False), et=0x8847)[:20],  # stack cut short
        eth(mpls(b"", 100), et=0x8847),  # nothing beneath the stack
        eth(mpls(ip4(seg), 100), et=0x8847)[:30],  # IPv4 cut beneath MPLS
        eth(ip6(seg), et=0x86DD),  # IPv6
        eth(ip6(b"u" * 16, nxt=17), et=0x86DD),  # IPv6 UDP
        eth(ip6(b"\x06\x00" + b"\x00" * 6 + seg, nxt=0), et=0x86DD),  # hop-by-hop
        eth(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, et=0x0806),  # ARP
        eth(b"\x00" * 46, et=0x88CC),  # LLDP
        eth(b"\x00" * 10, et=0x88CC),  # short other ethertype
        eth(ip4(b"u" * 30, proto=17)),  # UDP
        eth(ip4(b"i" * 30, proto=1)),  # ICMP
        eth(ip4(b"i" * 30, proto=58)),  # ICMPv6 number in IPv4
        eth(ip4(b"g" * 30, proto=47)),  # GRE
        eth(ip4(b"u" * 8, proto=17)),  # short UDP (< 40 bytes)
        eth(ip4(seg, frag=0x2000)),  # MF
        eth(ip4(seg, frag=0x0010)),  # offset
        eth(ip4(b"u" * 30, proto=17, frag=0x2000)),  # UDP fragment
        eth(ip4(seg, opts=b"\x01\x01\x01\x00")),  # IHL 6
        eth(ip4(seg, vihl=0x44)),  # IHL 4
        eth(ip4(seg, vihl=0x65)),  # version 6 in IPv4
        eth(ip4(seg, total=0)),  # TSO
        eth(ip4(b"u" * 30, proto=17, total=0)),  # TSO, UDP
        eth(ip4(seg, total=10)),  # total < 20
        eth(ip4(b"u" * 30, proto=17, total=10)),  # total < 20, UDP
        eth(ip4(seg, frag=0x2000, total=12)),  # total < 20, fragment
        (eth(ip4(seg, total=0)), 40),  # TSO, wire < caplen
        eth(ip4(seg, total=30)),  # TCP length < 20
        eth(ip4(seg, total=45)),  # TCP length < hl
        eth(ip4(seg, total=1000)),  # beyond the packet
        eth(ip4(tcp(doff=4, payload=b"q" * 20))),  # data offset 4
        eth(ip4(tcp())) + b"\x00" * 6,  # Ethernet padding
        eth(ip4(seg)) + b"\x00" * 6,  # trailer after TS
        (full[:200], len(full)),  # snaplen cut payload
        (full[:60], len(full)),  # cut inside options
        (full[:44], len(full)),  # cut inside TCP header
        (full[:30], len(full)),  # cut inside IPv4
        (full[:60], 60),  # cut, but wire = caplen
        b"",  # empty record
        b"\x02" * 5,  # short Ethernet
        b"\x02" * 13,
        eth(b""),  # header only
        eth(b"\x45" + b"\x00" * 10),  # short IPv4
        eth(ip4(tcp(sport=1, dport=2))),
        eth(
            ip4(
                tcp(
                    sport=65535, dport=65535, seq=0xFFFFFFFF, ack=0xFFFFFFFF, flags=0xFF, win=65535
                ),
                src=0xFFFFFFFF,
                dst=0,
                ident=65535,
            )
        ),
    ]
    # more ordinary segments of several connections (for the shard tests)
    for i in range(60):
        recs.append(
            eth(
                ip4(tcp(sport=41000 + i % 7, dport=443, seq=i, opts=TS_OPT, payload=b"p" * (i % 5)))
            )
        )
        if i % 9 == 0:
            recs.append(eth(ip4(b"u" * 30, proto=17)))
        if i % 11 == 0:
            recs.append(eth(ip6(tcp(sport=42000 + i, opts=TS_OPT)), et=0x86DD))
    return recs


def write_pcap(
    path: Path, records, linktype: int = 1, endian: str = "<", nsec: bool = False, tail: bytes = b""
) -> Path:
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for i, rec in enumerate(records):
        data, wire = rec if isinstance(rec, tuple) else (rec, len(rec))
        frac = (123456789 + i * 1000) if nsec else 123456 + i
        out.append(struct.pack(endian + "IIII", 1_700_000_000 + i, frac, len(data), wire) + data)
    path.write_bytes(b"".join(out) + tail)
    return path


def _variants(tmp_path: Path) -> list[Path]:
    recs = crafted_records()
    paths = [
        write_pcap(tmp_path / "le.pcap", recs),
        write_pcap(tmp_path / "be.pcap", recs, endian=">"),
        write_pcap(tmp_path / "nsec.pcap", recs, nsec=True),
        write_pcap(tmp_path / "nsec_be.pcap", recs, endian=">", nsec=True),
        write_pcap(
            tmp_path / "cut_record.pcap", recs, tail=struct.pack("<IIII", 1, 2, 80, 80) + b"x" * 30
        ),
        write_pcap(tmp_path / "cut_header.pcap", recs, tail=b"\x01\x02\x03\x04\x05"),
        write_pcap(
            tmp_path / "absurd.pcap",
            recs,
            tail=struct.pack("<IIII", 1, 2, 300000, 300000) + b"x" * 40,
        ),
        write_pcap(
            tmp_path / "absurd_cut_header.pcap",
            recs,
            tail=struct.pack("<IIII", 1, 2, 300000, 300000)[:12],
        ),
    ]
    gz = tmp_path / "le.pcap.gz"
    gz.write_bytes(gzip.compress(paths[0].read_bytes()))
    return paths + [gz]


def test_crafted_pcap(tmp_path, monkeypatch):
    for path in _variants(tmp_path):
        for verify in (False, True):
            assert_same(path, verify, small_chunks=True, monkeypatch=monkeypatch)


def test_crafted_covers_the_vectorised_and_the_decoder_paths(tmp_path):
    """The crafted records give Segments, None and DecodeErrors."""
    items = assert_same(write_pcap(tmp_path / "x.pcap", crafted_records()), True)
    kinds = {
        type(x[2])
        if x[2] is not None and not isinstance(x[2], tuple)
        else "error"
        if x[2] is not None
        else None
        for x in items
    }
    assert kinds == {Segment, None, "error"}
    segs = [x for _, _, x in items if type(x) is Segment]
    assert {s.checksum_ok for s in segs} == {True, False, None}
    assert any(s.truncated for s in segs) and any(s.ip_version == 6 for s in segs)


def _link_packets() -> list[bytes]:
    """IP packets (no link layer) for the other link types."""
    seg = tcp(payload=b"x" * 100, opts=TS_OPT)
    return [
        ip4(seg),
        ip4(tcp()),
        ip4(b"u" * 30, proto=17),
        ip4(seg, frag=0x2000),
        ip4(seg, opts=b"\x01\x01\x01\x00"),
        ip4(seg, total=0),
        ip4(seg, total=30),
        ip6(seg),
        ip4(tcp(opts=b"\x02\x04\x05\xb4")),
        ip4(seg)[:30],
        b"\x45",
        b"",
    ]


@pytest.mark.parametrize("linktype", [0, 108, 113, 276, 101, 12, 14, 228, 229, 147])
def test_link_types(tmp_path, linktype, monkeypatch):
    recs = []
    for p in _link_packets():
        v6 = p[:1] == b"\x60"
        if linktype == 0:  # BSD loopback, both byte orders, other families
            recs += [
                struct.pack("<I", 30 if v6 else 2) + p,
                struct.pack(">I", 24 if v6 else 2) + p,
                struct.pack("<I", 7) + p,
                b"\x02\x00\x00\x01" + p,
                b"\x02\x01\x00\x00" + p,
            ]
        elif linktype == 108:
            recs += [
                struct.pack(">I", 30 if v6 else 2) + p,
                struct.pack("<I", 2) + p,
                b"\x01\x00\x00\x02" + p,
            ]
        elif linktype == 113:
            recs += [
                struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x86DD if v6 else 0x0800) + p,
                struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0806) + b"a" * 28,
                struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x8847) + mpls(p, 5, 6),
            ]
        elif linktype == 276:
            recs += [
                struct.pack("!HHIHBB8s", 0x86DD if v6 else 0x0800, 0, 1, 1, 0, 6, b"\x02" * 8) + p,
                struct.pack("!HHIHBB8s", 0x0806, 0, 1, 1, 0, 6, b"\x02" * 8) + b"a" * 28,
                struct.pack("!HHIH", 0x0806, 0, 1, 1),
            ]
        else:
            recs.append(p)
    path = write_pcap(tmp_path / f"lt{linktype}.pcap", recs, linktype=linktype)
    for verify in (False, True):
        assert_same(path, verify, small_chunks=True, monkeypatch=monkeypatch)


# ---- pcapng -----------------------------------------------------------------------------


def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def write_pcapng(path: Path, packets) -> Path:
    """Interfaces 0 (Ethernet), 1 (raw IP), 2 (SLL), 3 (raw IPv6); ``packets``: (ifid,
    data) or bytes (a custom block, which holds no packet)."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for lt in (1, 101, 113, 229):
        out.append(_block(1, struct.pack("<HHI", lt, 0, 65535)))
    for i, p in enumerate(packets):
        if isinstance(p, bytes):
            out.append(_block(0x00000BAD, struct.pack("<I", 32473) + p))
            continue
        ifid, data = p
        ts = 1_700_000_000_000_000 + i
        out.append(
            _block(
                6,
                struct.pack("<IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data,
            )
        )
    path.write_bytes(b"".join(out))
    return path


def pcapng_packets() -> list:
    packets = [(0, r if isinstance(r, bytes) else r[0]) for r in crafted_records()]
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800)
    for i, p in enumerate(_link_packets()):
        packets.insert(3 * i, (1, p))
        packets.insert(3 * i + 1, (2, sll + p))
        if i % 4 == 0:
            packets.insert(3 * i + 2, b"custom data")
    for i in range(20):
        packets.insert(5 * i, (3, ip6(tcp(sport=43000 + i, opts=TS_OPT))))
    return packets


def test_pcapng(tmp_path, monkeypatch):
    path = write_pcapng(tmp_path / "x.pcapng", pcapng_packets())
    for verify in (False, True):
        assert_same(path, verify, small_chunks=True, monkeypatch=monkeypatch)
    gz = tmp_path / "x.pcapng.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert_same(gz, False)


def _blk(e: str, btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    size = len(body) + 12
    return struct.pack(e + "II", btype, size) + body + struct.pack(e + "I", size)


def _idb(e: str, lt: int, *opts: tuple[int, bytes]) -> bytes:
    raw = b"".join(
        struct.pack(e + "HH", code, len(v)) + v + b"\x00" * (-len(v) % 4) for code, v in opts
    )
    return _blk(e, 1, struct.pack(e + "HHI", lt, 0, 65535) + raw)


def _epb(e: str, ifid: int, ticks: int, data: bytes, caplen: int | None = None) -> bytes:
    return _blk(
        e,
        6,
        struct.pack(
            e + "IIIII",
            ifid,
            ticks >> 32,
            ticks & 0xFFFFFFFF,
            len(data) if caplen is None else caplen,
            len(data),
        )
        + data,
    )


def _sections() -> bytes:
    """Two sections (little- and big-endian), interfaces with microsecond, nanosecond
    (+ if_tsoffset) and binary timestamps, every block type between the packets."""
    recs = [r if isinstance(r, bytes) else r[0] for r in crafted_records()]
    links = _link_packets()
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800)
    out = []
    for e in ("<", ">"):
        out += [
            _blk(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)),
            _idb(e, 1),
            _idb(e, 101, (14, struct.pack(e + "q", 100))),
            _idb(e, 113, (9, b"\x94")),
            _idb(e, 1, (9, b"\x09")),
        ]
        t = 1_700_000_000_000_000
        for i, r in enumerate(recs):
            out.append(_epb(e, 0, t + i, r))
            if i % 10 == 3:
                out.append(_epb(e, 1, t + i, links[i % len(links)]))
                out.append(
                    _epb(e, 2, (1_700_000_000 << 20) + 999 * i, sll + links[(i + 3) % len(links)])
                )
            if i % 10 == 5:
                out.append(_epb(e, 3, (t + i) * 1000 + 7, r))
            if i == 20:
                out += [
                    _blk(e, 3, struct.pack(e + "I", len(r)) + r),  # SPB
                    _blk(e, 2, struct.pack(e + "HHIIII", 0, 0, 0, 5, len(r), len(r)) + r),
                    _blk(e, 0xBAD, struct.pack(e + "I", 1) + b"custom"),
                    _blk(e, 4, b"\x00" * 4),
                    _blk(e, 5, b"\x00" * 8),
                    _blk(e, 0x99, b"unknown"),
                ]
            if i == 30:
                out.append(_epb(e, 0, 0xFFFFFFFF_00000000 + i, r))  # far future
    return b"".join(out)


@pytest.mark.parametrize("damage", ["none", "trailing", "ifid", "caplen", "short", "cut"])
def test_pcapng_sections_and_damage(tmp_path, damage, monkeypatch):
    e = ">"
    seg = eth(ip4(tcp(opts=TS_OPT)))
    tail = {
        "none": b"",
        "trailing": _epb(e, 0, 5, seg)[:-4] + struct.pack(e + "I", 999),
        "ifid": _epb(e, 9, 5, seg),
        "caplen": _epb(e, 0, 5, seg, caplen=len(seg) + 8),
        "short": _blk(e, 6, struct.pack(e + "IIII", 0, 0, 5, 0)),
        "cut": _epb(e, 0, 5, seg)[:-10],
    }[damage]
    path = tmp_path / f"{damage}.pcapng"
    path.write_bytes(_sections() + tail + (_epb(e, 0, 6, seg) if damage != "cut" else b""))
    if damage == "none":
        for verify in (False, True):
            assert_same(path, verify, small_chunks=True, monkeypatch=monkeypatch)
    else:
        assert_same(path, False)
        assert _items(BatchSource(path, chunk_bytes=3000)) == _items(NativeSource(path))


# ---- fuzzing: mutated sample captures (tests/test_fuzz.py's mutations) -------------------


@pytest.fixture(scope="module")
def fuzzdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@fuzz_settings(200)
@given(
    name=st.sampled_from(SEEDS),
    mode=st.integers(0, 1),
    muts=st.lists(mutation(), min_size=1, max_size=4),
    verify=st.booleans(),
)
def test_fuzz_same_as_native(fuzzdir, name, mode, muts, verify):
    """Mutated captures (header fields, packet header fields, TCP options, truncation,
    bit flips): the same items as NativeSource, also in tiny batches."""
    path = fuzz_write(fuzzdir, name, fuzz_mutated(name, muts, mode))
    expected = assert_same(path, verify)
    if expected:  # again with small reads: records straddle the buffers
        reader_mod._CHUNK = 97  # (NativeSource too: they change what a corrupt gzip gives)
        try:
            assert _items(BatchSource(path, verify, chunk_bytes=200)) == _items(
                NativeSource(path, verify)
            )
        finally:
            reader_mod._CHUNK = READ_CHUNK


# ---- issue #23: an interface description block before every packet -----------------------


def write_idb_per_packet(path: Path, n: int) -> Path:
    """A pcapng whose every packet (an Ethernet/IPv4/TCP ACK, ``n`` of them) comes after
    its own interface description block (Ethernet; microseconds and nanoseconds in
    turn), on that new interface."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for i in range(n):
        resol = 6 if i % 2 == 0 else 9  # if_tsresol
        out.append(_block(1, struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HHB3x", 9, 1, resol)))
        data = eth(ip4(tcp(sport=40000 + i % 1000, seq=1000 + i, flags=0x10)))
        ts = (1_700_000_000 + i) * 10**resol + i
        out.append(
            _block(
                6, struct.pack("<IIIII", i, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data
            )
        )
    path.write_bytes(b"".join(out))
    return path


class _CountingInterfaces:
    """A read-only view of an EpbRun's interfaces that counts the entries read."""

    touched = 0

    def __init__(self, items):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        got = self.items[i]
        _CountingInterfaces.touched += len(got) if isinstance(i, slice) else 1
        return got

    def __iter__(self):
        for item in self.items:
            _CountingInterfaces.touched += 1
            yield item


def _interface_work(path: Path, monkeypatch) -> tuple[int, int, list]:
    """(interface entries the batch decoder read, EpbRuns read, items) on ``path``."""
    from pcapcheck.capture import reader as reader_mod

    runs = []
    original = reader_mod.CaptureReader.pcapng_batches

    def spy(self, size=4 << 20):
        for item in original(self, size):
            if isinstance(item, reader_mod.EpbRun):
                runs.append(len(item.positions))
                item = item._replace(interfaces=_CountingInterfaces(item.interfaces))
            yield item

    monkeypatch.setattr(reader_mod.CaptureReader, "pcapng_batches", spy)
    _CountingInterfaces.touched = 0
    items = list(BatchSource(path))
    monkeypatch.setattr(reader_mod.CaptureReader, "pcapng_batches", original)
    return _CountingInterfaces.touched, len(runs), items


def test_interface_before_every_packet_is_linear(tmp_path, monkeypatch):
    """Issue #23: a pcapng with an interface description block before each packet block.
    The reader takes the interface blocks inside its runs of packet blocks (a few runs,
    not one per packet) and hands over its own list of interfaces (no copy per run); the
    batch decoder reads only the interfaces a run's blocks name: the work grows with the
    number of packets (it was quadratic: every run copied and read every interface).
    The items are those of reading record by record."""
    small = write_idb_per_packet(tmp_path / "small.pcapng", 2_000)
    big = write_idb_per_packet(tmp_path / "big.pcapng", 8_000)
    work_small, runs_small, items = _interface_work(small, monkeypatch)
    work_big, runs_big, _ = _interface_work(big, monkeypatch)
    assert work_small <= 2 * 2_000 and work_big <= 2 * 8_000, (work_small, work_big)
    assert runs_small <= 2 and runs_big <= 4, (runs_small, runs_big)
    dec = Decoder()
    assert items == [(r.frame, r.ts, dec.decode(r)) for r in reader_mod.open_capture(small)]
    assert all(type(s) is Segment for _f, _t, s in items) and len(items) == 2_000


def test_ipv4_header_checks_are_the_decoders_outer_and_inner(tmp_path):
    """One set of IPv4 header checks (batch_decoder._plain_ipv4, from the decoder's
    IPV4_NO_OPTIONS and IPV4_FRAGMENT_BITS) for the header before TCP and for the outer
    header of a tunnel (IP-in-IP): over every combination of first byte, total length and
    flags/offset, the batches give the decoder's items and skipped counts, and the
    headers the check passes are decoded from the arrays (none one by one)."""
    import numpy as np

    from pcapcheck.capture.decoder import IPV4_FRAGMENT_BITS, IPV4_NO_OPTIONS
    from pcapcheck.fast.batch_decoder import _plain_ipv4

    inner = ip4(tcp(payload=b"x" * 8))
    grid = [
        (vihl, total, frag)
        for vihl in (0x45, 0x46, 0x44, 0x55)
        for total in (0, 19, 20, None)
        for frag in (0, 0x4000, 0x2000, 0x0001, 0x1FFF)
    ]
    records = []
    for vihl, total, frag in grid:
        records.append(eth(ip4(tcp(payload=b"x" * 8), vihl=vihl, total=total, frag=frag)))
        records.append(eth(ip4(inner, proto=4, vihl=vihl, total=total, frag=frag)))
    path = write_pcap(tmp_path / "ipv4_grid.pcap", records)
    items = assert_same(path, False)
    assert len(items) == 2 * len(grid)
    batch = BatchSource(path)
    assert _items(batch) == items
    plain, fragment = _plain_ipv4(
        *(np.array([g[k] if g[k] is not None else 36 for g in grid]) for k in range(3))
    )
    expect = [bool(v == IPV4_NO_OPTIONS and (t == 0 or t is None or t >= 20)) for v, t, _f in grid]
    assert plain.tolist() == expect
    assert fragment.tolist() == [bool(f & IPV4_FRAGMENT_BITS) for _v, _t, f in grid]
    # a plain header that is no fragment: the outer one walked from the arrays to the
    # inner Segment; the inner one a Segment from the arrays unless its length leaves no
    # room for TCP (20: the decoder's error, one by one)
    one_by_one = 0
    for k, (ok, frag) in enumerate(zip(plain.tolist(), fragment.tolist())):
        seg_inner, seg_outer = items[2 * k][2], items[2 * k + 1][2]
        if ok and not frag:
            assert type(seg_outer) is Segment and seg_outer.encapsulation is not None, grid[k]
            assert (type(seg_inner) is Segment) == (grid[k][1] != 20), grid[k]
            one_by_one += grid[k][1] == 20
        elif ok:
            assert seg_inner is None and seg_outer is None  # fragments: skipped
        else:
            one_by_one += 2
    walked = sum(a and not b for a, b in zip(plain.tolist(), fragment.tolist()))
    assert batch.tunnelled == walked
    assert batch.one_by_one == one_by_one
