"""Fuzzing the whole pipeline with mutated sample captures (issue 3).

Valid captures from sample_pcaps/ (pcap in both byte orders and both resolutions,
pcapng with several interfaces and sections, gzip; Ethernet, VLAN, SLL, SLL2, NULL,
LOOP, raw IPv4/IPv6, IPv6 extension headers) are mutated -- bit flips and byte writes
anywhere, truncation at any byte, cut-outs, the length fields of the file and record
headers (pcap caplen/wire length, pcapng block lengths, captured lengths, snaplens,
link types, timestamps, if_tsresol/if_tsoffset),
IPv4/IPv6/TCP header fields (IHL, total/payload length, fragment bits, protocol, data
offset, flags, seq/ack, window) and TCP option bytes -- and run through
``pcapcheck.pipeline.analyze_file`` and the CLI (``analyze -f json``). Asserted: no
exception escapes (CaptureError, the one-line "not a readable capture", is fine), the
exit status is 0, 1 or 2 and never the CLI's "internal error", the JSON parses and has
the documented keys.

A bounded, reproducible run is part of the normal suite (derandomize=True: the same
examples every time). A long run (README.md, "Fuzzing")::

    PCAPCHECK_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py   # per test
    PCAPCHECK_FUZZ_SEED=12345 ...      # other examples than the derandomized ones
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SAMPLES
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from test_malformed import check_document, check_run
from typer.testing import CliRunner

from pcapcheck.capture.reader import CaptureError
from pcapcheck.cli import app
from pcapcheck.pipeline import analyze_file
from pcapcheck.report.json_report import document

#: Valid captures the mutations start from (small, so that each example is fast).
SEEDS = [
    "crafted/clean_handshake_close.pcap",
    "crafted/clean_ipv6.pcap",
    "crafted/clean_seq_wrap.pcap",
    "crafted/clean_simultaneous_open.pcap",
    "crafted/clean_tfo.pcap",
    "crafted/cp003_truncated-packets.pcap",
    "crafted/rs003_reset-out-of-window.pcap",
    "crafted/sq006_out-of-order.pcap",
    "loopback/client_close_first.pcap",
    "loopback/refused.pcap",
    "encap/eth_ipv4_nsec_bigendian.pcap",
    "encap/eth_ipv4.pcap.gz",
    "encap/multi_if.pcapng",
    "encap/multi_if.pcapng.gz",
    "encap/multi_section.pcapng",
    "encap/qinq.pcap",
    "encap/sll.pcap",
    "encap/sll2.pcap",
    "encap/null_ipv6_bigendian.pcap",
    "encap/loop.pcap",
    "encap/raw_ipv4.pcap",
    "encap/raw_ipv6_229.pcap",
    "encap/eth_ipv6_allext.pcap",
    "encap/ipv4_options.pcap",
    "encap/with_non_tcp.pcap",
    "artefacts/artefact_dup_twice.pcap",
    "artefacts/artefact_lo_merged_duplicates.pcapng",
    "artefacts/artefact_snaplen_in_options.pcap",
]

LONG_RUN = int(os.environ.get("PCAPCHECK_FUZZ_EXAMPLES", "0") or 0)
SEED = os.environ.get("PCAPCHECK_FUZZ_SEED")


def fuzz_settings(examples: int):
    """Bounded and reproducible by default; PCAPCHECK_FUZZ_EXAMPLES / _SEED for long runs."""

    def deco(fn):
        fn = settings(
            max_examples=LONG_RUN or examples,
            deadline=None,
            derandomize=SEED is None,
            database=None,
            print_blob=True,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
            ],
        )(fn)
        if SEED is not None:
            fn = seed(int(SEED))(fn)
        return fn

    return deco


# --------------------------------------------------------------------------- capture layout


@dataclass
class Layout:
    """Where the mutable fields of a (decompressed) capture are: ``fields`` are
    ``(offset, size, byte order)`` of the file, record and block header fields (lengths,
    captured lengths, snaplens, link types, timestamps, if_tsresol/if_tsoffset);
    ``packets`` are ``(offset of the packet data, captured length, link type)``."""

    fields: list[tuple[int, int, str]]
    packets: list[tuple[int, int, int]]


def layout(buf: bytes) -> Layout:
    fields: list[tuple[int, int, str]] = []
    packets: list[tuple[int, int, int]] = []
    magic = buf[:4]
    if len(buf) >= 24 and magic in (
        b"\xd4\xc3\xb2\xa1",
        b"\x4d\x3c\xb2\xa1",
        b"\xa1\xb2\xc3\xd4",
        b"\xa1\xb2\x3c\x4d",
    ):
        e = "<" if magic[0] in (0xD4, 0x4D) else ">"
        linktype = struct.unpack_from(e + "I", buf, 20)[0] & 0x03FFFFFF
        fields += [(4, 2, e), (16, 4, e), (20, 4, e)]  # version, snaplen, link type
        pos = 24
        while pos + 16 <= len(buf):
            caplen = struct.unpack_from(e + "I", buf, pos + 8)[0]
            fields += [(pos, 4, e), (pos + 4, 4, e), (pos + 8, 4, e), (pos + 12, 4, e)]
            packets.append((pos + 16, min(caplen, len(buf) - pos - 16), linktype))
            pos += 16 + caplen
    elif magic == b"\x0a\x0d\x0d\x0a":
        e = "<"
        ifaces: list[int] = []
        pos = 0
        while pos + 12 <= len(buf):
            if struct.unpack_from("<I", buf, pos)[0] == 0x0A0D0D0A:
                e = "<" if buf[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                ifaces = []
            btype, blen = struct.unpack_from(e + "II", buf, pos)
            if blen < 12 or pos + blen > len(buf):
                break
            fields += [(pos + 4, 4, e), (pos + blen - 4, 4, e)]  # both block lengths
            if btype == 1 and blen >= 20:
                ifaces.append(struct.unpack_from(e + "H", buf, pos + 8)[0])
                fields += [(pos + 8, 2, e), (pos + 12, 4, e)]  # link type, snaplen
                opt = pos + 16
                while opt + 4 <= pos + blen - 4:  # options
                    code, olen = struct.unpack_from(e + "HH", buf, opt)
                    if code == 0:
                        break
                    fields.append((opt + 2, 2, e))  # option length
                    if code in (9, 14) and opt + 4 + olen <= pos + blen - 4:
                        fields += [
                            (opt + 4 + i, 4 if olen >= 4 else 1, e)
                            for i in range(0, max(olen, 1), 4)
                        ]  # tsresol, tsoffset
                    opt += 4 + ((olen + 3) & ~3)
            elif btype in (2, 6) and blen >= 32:
                ifid = (
                    struct.unpack_from(e + "H", buf, pos + 8)[0]
                    if btype == 2
                    else struct.unpack_from(e + "I", buf, pos + 8)[0]
                )
                caplen = struct.unpack_from(e + "I", buf, pos + 20)[0]
                fields += [
                    (pos + 8, 4 if btype == 6 else 2, e),
                    (pos + 12, 4, e),
                    (pos + 16, 4, e),
                    (pos + 20, 4, e),
                    (pos + 24, 4, e),
                ]
                if ifid < len(ifaces):
                    packets.append((pos + 28, min(caplen, blen - 32), ifaces[ifid]))
            pos += blen
    return Layout(fields, packets)


_VLAN = (0x8100, 0x88A8, 0x9100, 0x9200)


def header_fields(buf: bytes, start: int, caplen: int, linktype: int) -> list[tuple[int, int]]:
    """``(offset, size)`` of the IP and TCP header fields of the packet at ``start``."""
    end = start + caplen
    if linktype == 1:
        off = start + 14
        if end < off:
            return []
        et = int.from_bytes(buf[off - 2 : off], "big")
        while et in _VLAN and off + 4 <= end:
            et = int.from_bytes(buf[off + 2 : off + 4], "big")
            off += 4
    else:
        off = start + {113: 16, 276: 20, 0: 4, 108: 4}.get(linktype, 0)
    if off + 20 > end:
        return []
    out: list[tuple[int, int]] = []
    version = buf[off] >> 4
    if version == 4:
        out += [(off, 1), (off + 2, 2), (off + 6, 2), (off + 9, 1)]
        tcp = off + (buf[off] & 15) * 4
        if buf[off + 9] != 6:
            return out
    elif version == 6 and off + 40 <= end:
        out += [(off + 4, 2), (off + 6, 1)]
        nh, tcp = buf[off + 6], off + 40
        while nh in (0, 43, 44, 51, 60) and tcp + 8 <= end:  # extension headers
            out.append((tcp + 1, 1))  # their length byte
            hlen = 8 if nh == 44 else (buf[tcp + 1] + 2) * 4 if nh == 51 else (buf[tcp + 1] + 1) * 8
            nh, tcp = buf[tcp], tcp + hlen
        if nh != 6:
            return out
    else:
        return out
    if tcp + 20 <= end:
        out += [(tcp + 12, 1), (tcp + 13, 1), (tcp + 4, 4), (tcp + 8, 4), (tcp + 14, 2)]
        for i in range(tcp + 20, min(tcp + (buf[tcp + 12] >> 4) * 4, end)):
            out.append((i, 1))  # option bytes
    return out


def pick(c: int, size: int, orig: int) -> int:
    """A value for a field of ``size`` bytes: boundary values, near the original, random."""
    top = (1 << (8 * size)) - 1
    choice = c % 9
    r = c >> 4
    return [
        0,
        1,
        (orig + 1) & top,
        (orig - 1) & top,
        top,
        (top >> 1) + 1,
        r % 64,
        r & top,
        (orig + r % 9 - 4) & top,
    ][choice]


#: One mutation: (kind, a, b, c); the integers are mapped onto the file at application.
KINDS = ("flip", "byte", "truncate", "cutout", "field", "header", "option")
U32 = st.integers(0, (1 << 32) - 1)


def mutation(kinds: tuple[str, ...] = KINDS):
    return st.tuples(st.sampled_from(kinds), U32, U32, U32)


def apply(buf: bytes, muts: list[tuple[str, int, int, int]]) -> bytes:
    b = bytearray(buf)
    for kind, x, y, z in muts:
        if not b:
            break
        if kind == "flip":
            b[x % len(b)] ^= 1 << (y % 8)
        elif kind == "byte":
            b[x % len(b)] = y & 0xFF
        elif kind == "truncate":
            del b[x % (len(b) + 1) :]
        elif kind == "cutout":
            i = x % len(b)
            del b[i : i + 1 + y % 64]
        elif kind == "field":
            fields = layout(bytes(b)).fields
            if fields:
                off, size, e = fields[x % len(fields)]
                if off + size <= len(b):
                    fmt = e + {1: "B", 2: "H", 4: "I"}[size]
                    orig = struct.unpack_from(fmt, b, off)[0]
                    struct.pack_into(fmt, b, off, pick(y, size, orig))
        else:
            packets = layout(bytes(b)).packets
            if not packets:
                continue
            start, caplen, lt = packets[x % len(packets)]
            fields = header_fields(bytes(b), start, caplen, lt)
            if kind == "option":
                fields = [f for f in fields if f[1] == 1 and f[0] >= start + 20] or fields
            if fields:
                off, size = fields[y % len(fields)]
                if off + size <= len(b):
                    orig = int.from_bytes(b[off : off + size], "big")
                    b[off : off + size] = pick(z, size, orig).to_bytes(size, "big")
    return bytes(b)


_ORIGINAL: dict[str, bytes] = {}


def original(name: str) -> bytes:
    if name not in _ORIGINAL:
        _ORIGINAL[name] = (SAMPLES / name).read_bytes()
    return _ORIGINAL[name]


def mutated(name: str, muts, mode: int) -> bytes:
    """The seed with ``muts`` applied. gzip seeds: mode 0 mutates the decompressed
    capture and compresses it again, mode 1 the compressed bytes themselves."""
    raw = original(name)
    if raw[:2] == b"\x1f\x8b" and mode == 0:
        return gzip.compress(apply(gzip.decompress(raw), muts), mtime=0)
    return apply(raw, muts)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def all_rules(catalog):
    return catalog.select(["ALL"], None)


def run_pipeline(path: Path, catalog, active, decoder: str) -> None:
    try:
        result = analyze_file(path, catalog, active, decoder=decoder)
    except CaptureError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    doc = json.loads(json.dumps(document([result]), default=str))
    check_document(doc)
    f = doc["files"][0]
    assert f["packets"] >= f["tcp_packets"] + f["malformed"]
    for finding in f["findings"]:
        assert finding["frame"] is None or 1 <= finding["frame"] <= f["packets"]


def write(workdir: Path, name: str, data: bytes) -> Path:
    suffix = ".pcap.gz" if data[:2] == b"\x1f\x8b" else Path(name).suffix or ".pcap"
    path = workdir / f"case{suffix}"
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- tests


@fuzz_settings(2000)
@given(
    name=st.sampled_from(SEEDS),
    mode=st.integers(0, 1),
    muts=st.lists(mutation(("field", "field", "truncate", "cutout")), min_size=1, max_size=3),
    decoder=st.sampled_from(["native", "native", "dpkt"]),
)
def test_fuzz_container_fields(workdir, catalog, all_rules, name, mode, muts, decoder):
    """File, record and block header fields (lengths, snaplens, link types, timestamps,
    timestamp resolution and offset); truncation at any byte, cut-outs."""
    run_pipeline(write(workdir, name, mutated(name, muts, mode)), catalog, all_rules, decoder)


@fuzz_settings(2500)
@given(
    name=st.sampled_from(SEEDS),
    mode=st.just(0),
    muts=st.lists(mutation(("header", "header", "option")), min_size=1, max_size=6),
    decoder=st.sampled_from(["native", "native", "dpkt"]),
)
def test_fuzz_packet_headers(workdir, catalog, all_rules, name, mode, muts, decoder):
    """IPv4/IPv6/TCP header fields and TCP option bytes of random packets."""
    run_pipeline(write(workdir, name, mutated(name, muts, mode)), catalog, all_rules, decoder)


@fuzz_settings(2000)
@given(
    name=st.sampled_from(SEEDS),
    mode=st.integers(0, 1),
    muts=st.lists(mutation(("flip", "byte")), min_size=1, max_size=8),
    decoder=st.sampled_from(["native", "native", "dpkt"]),
)
def test_fuzz_bit_flips(workdir, catalog, all_rules, name, mode, muts, decoder):
    """Bit flips and byte writes anywhere in the file (gzip data included)."""
    run_pipeline(write(workdir, name, mutated(name, muts, mode)), catalog, all_rules, decoder)


runner = CliRunner()


@fuzz_settings(200)
@given(
    batch=st.lists(
        st.tuples(
            st.sampled_from(SEEDS), st.integers(0, 1), st.lists(mutation(), min_size=1, max_size=4)
        ),
        min_size=1,
        max_size=5,
    ),
    select_all=st.booleans(),
)
def test_fuzz_cli_json(workdir, batch, select_all):
    """Several mutated files in one ``analyze -f json`` run: exit 0/1/2, never an
    internal error or a traceback, one JSON document with one entry per file."""
    paths = []
    for i, (name, mode, muts) in enumerate(batch):
        data = mutated(name, muts, mode)
        suffix = ".pcap.gz" if data[:2] == b"\x1f\x8b" else Path(name).suffix
        path = workdir / f"cli{i}{suffix}"
        path.write_bytes(data)
        paths.append(str(path))
    args = ["analyze", "-f", "json", *(["--select", "ALL"] if select_all else []), *paths]
    res = runner.invoke(app, args)
    check_run(res)
    doc = json.loads(res.stdout)
    check_document(doc)
    assert len(doc["files"]) == len(paths)
    errors = sum("error" in f for f in doc["files"])
    assert (res.exit_code == 2) == (errors > 0)


def test_mutations_reach_the_fields():
    """The layout parser finds every seed's records and their IP/TCP headers (so the
    targeted mutations hit real fields, not random bytes)."""
    for name in SEEDS:
        raw = original(name)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        lay = layout(raw)
        assert lay.fields and lay.packets, name
        with_tcp = [p for p in lay.packets if len(header_fields(raw, *p)) > 5]
        assert len(with_tcp) >= len(lay.packets) // 2, name


# --------------------------------------------------------------------------- atheris


def atheris_main() -> None:  # pragma: no cover - run by hand (README.md, "Fuzzing")
    """Coverage-guided fuzzing with atheris: ``python tests/test_fuzz.py CORPUS_DIR
    [libFuzzer options]``; every input is a whole capture file."""
    import sys
    import tempfile

    import atheris

    from pcapcheck.catalog.rules import load_catalog

    atheris.instrument_all()  # pcapcheck is imported already: instrument it
    catalog = load_catalog()
    active = catalog.select(["ALL"], None)
    path = Path(tempfile.mkdtemp(prefix="pcapcheck-atheris-")) / "input.pcap"

    def one(data: bytes) -> None:
        path.write_bytes(data)
        for decoder in ("native", "dpkt"):
            try:
                result = analyze_file(path, catalog, active, decoder=decoder)
            except CaptureError:
                return
            json.dumps(document([result]), default=str)

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    atheris_main()
