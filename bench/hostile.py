"""Hostile and unlucky captures (issue #23, items 1-4): build them, analyse each, report
the time and the peak RSS.

Each input is built in ``--dir`` (default /tmp/hostile) by a function of this module
(``tests/test_hostile.py`` builds smaller ones with the same functions):

- ``zeros_gz``: a valid 10-packet capture followed by 16 MB of zeros (a million
  zero-length records), gzipped;
- ``header_zeros_gz``: a pcap header and 256 MB, then 2 GB, of zeros (16.7 and 134
  million zero-length records), gzipped (``--huge``; skipped otherwise: 3 minutes of
  CPU and about half an hour);
- ``ihl3``: 400,000 records whose IPv4 header length is 3 (malformed, CP005);
- ``idbs``: a pcapng of 100,000 interface description blocks, then a valid connection;
- ``long_N``: one connection of N segments (250k and 1M: a handshake, data one way and
  its ACKs, a close);
- ``oneway_1m``: the client's half of ``long_1m`` (a capture of one direction);
- ``oneway_2m``: the same, 2M segments;
- ``retx_N``: one connection whose data segment is sent N + 1 times (an SQ002 each:
  250k, 1M, 2M);
- ``noflags_1m``: one connection with a million segments without flags (FL001 each).

The one-direction and per-segment-finding inputs were what was left of item 4: the engine
kept every unacknowledged data segment (SQ002's first frame, SQ003: 110 bytes each) and
every event of a connection until it was finalised (870 bytes each). Both are bounded now
(``UNACKED_LIMIT`` ranges a direction; events past ``EVENTS_HELD`` spooled as decided:
docs/semantics.md, "One long connection: bounded state").

``pcapcheck analyze F -f json -q -o /dev/null`` runs on each (its exit status, wall time,
CPU time of the child and its workers, and the peak RSS: :data:`PEAK`).
The target: O(N) time, peak RSS under 300 MB whatever the content.

Usage: python bench/hostile.py [--dir /tmp/hostile] [--huge] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import gzip
import resource
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ETH = bytes.fromhex("0200000000020200000000010800")
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
CLIENT, SERVER = 0x0A000001, 0x0A000002


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(
    src: int,
    dst: int,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: int = 0,
    ipid: int = 0,
    ihl: int = 5,
) -> bytes:
    """An Ethernet/IPv4/TCP frame with correct checksums (``ihl``: the IPv4 header
    length field, in 32-bit words; the header is 20 bytes whatever it says)."""
    body = bytes(payload)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & M32, ack & M32, 5 << 4, flags, 65535, 0, 0)
    pseudo = struct.pack("!IIBBH", src, dst, 0, 6, len(tcp) + payload)
    c = _csum(pseudo + tcp + body)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    total = 20 + len(tcp) + payload
    ip = struct.pack("!BBHHHBBHII", 0x40 | ihl, 0, total, ipid & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ETH + ip + tcp + body


def record(t_us: int, data: bytes) -> bytes:
    """A pcap record (microseconds) holding ``data`` whole."""
    return struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(data), len(data)) + data


def connection(n_data: int, t0_us: int = 1_000_000, step_us: int = 100) -> Iterator[bytes]:
    """The frames of one connection: a handshake, ``n_data`` data segments of 100 bytes
    from the client, each acknowledged by the server, a 4-way close (2*n_data + 7
    segments), as pcap records ``step_us`` apart."""
    c, s = 1000, 5000
    t = t0_us
    cp, sp = 40000, 80

    def rec(src_is_client: bool, seq: int, ack: int, flags: int, n: int = 0) -> bytes:
        nonlocal t
        t += step_us
        if src_is_client:
            f = frame(CLIENT, SERVER, cp, sp, seq, ack, flags, n)
        else:
            f = frame(SERVER, CLIENT, sp, cp, seq, ack, flags, n)
        return record(t, f)

    yield rec(True, c, 0, SYN)
    yield rec(False, s, c + 1, SYN | ACK)
    c += 1
    s += 1
    yield rec(True, c, s, ACK)
    # The segments repeat every 2^32 / 100 bytes only past 42 million; the frames differ
    # in seq/ack only, so each is built once per value (fast enough: ~10 us each).
    for _ in range(n_data):
        yield rec(True, c, s, PSH | ACK, 100)
        c += 100
        yield rec(False, s, c, ACK)
    yield rec(True, c, s, FIN | ACK)
    yield rec(False, s, c + 1, ACK)
    yield rec(False, s, c + 1, FIN | ACK)
    yield rec(True, c + 1, s + 1, ACK)


def write_long(path: Path, n_segments: int, one_way: bool = False) -> None:
    """One connection of about ``n_segments`` segments (:func:`connection`);
    ``one_way``: only the client's segments after the handshake (a capture of one
    direction: nothing it sends is seen acknowledged)."""
    with open(path, "wb") as f:
        f.write(PCAP_HEADER)
        buf: list[bytes] = []
        for i, r in enumerate(connection(max(0, (n_segments - 7) // (1 if one_way else 2)))):
            if one_way and i > 2 and r[16 + 26 : 16 + 30] == struct.pack("!I", SERVER):
                continue
            buf.append(r)
            if len(buf) >= 8192:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))


def write_retransmissions(path: Path, n: int) -> None:
    """One connection whose client sends its data segment ``n`` + 1 times (an SQ002
    finding each), then closes."""
    recs = list(connection(1))
    data = recs[3]  # the client's data segment
    sec, usec = struct.unpack("<II", data[:8])
    t = sec * 1_000_000 + usec
    with open(path, "wb") as f:
        f.write(PCAP_HEADER + b"".join(recs[:4]))
        buf = []
        for _ in range(n):
            t += 10
            buf.append(record(t, data[16:]))
            if len(buf) >= 8192:
                f.write(b"".join(buf))
                buf.clear()
        for r in recs[4:]:
            t += 10
            buf.append(record(t, r[16:]))
        f.write(b"".join(buf))


def write_bad_flags(path: Path, n: int) -> None:
    """One connection (:func:`connection` of one exchange) whose client sends ``n``
    segments without any flag (FL001 each) after its data, then closes."""
    recs = list(connection(1))
    sec, usec = struct.unpack("<II", recs[4][:8])
    t = sec * 1_000_000 + usec
    bad = frame(CLIENT, SERVER, 40000, 80, 1101, 5001, 0)
    with open(path, "wb") as f:
        f.write(PCAP_HEADER + b"".join(recs[:5]))
        buf = []
        for _ in range(n):
            t += 10
            buf.append(record(t, bad))
            if len(buf) >= 8192:
                f.write(b"".join(buf))
                buf.clear()
        for r in recs[5:]:
            t += 10
            buf.append(record(t, r[16:]))
        f.write(b"".join(buf))


def valid_ten() -> bytes:
    """A valid 10-packet capture (one connection: handshake, one exchange... close)."""
    records = list(connection(1))  # 2 + 7 = 9 segments
    first = records[0]
    return PCAP_HEADER + first + b"".join(records)  # the SYN twice (a retransmission)


def write_zeros_gz(path: Path, zeros: int = 16 << 20, header_only: bool = False) -> None:
    """The valid 10-packet capture (or only the pcap header) followed by ``zeros`` zero
    bytes (``zeros // 16`` zero-length records), gzipped."""
    chunk = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(PCAP_HEADER if header_only else valid_ten())
        left = zeros
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def write_ihl3(path: Path, n: int = 400_000) -> None:
    """``n`` records whose IPv4 header length field is 3 (below the minimum of 5)."""
    with open(path, "wb") as f:
        f.write(PCAP_HEADER)
        buf = []
        for i in range(n):
            buf.append(
                record(
                    1_000_000 + i, frame(CLIENT, SERVER, 40000 + i % 20000, 80, i, 0, ACK, ihl=3)
                )
            )
            if len(buf) >= 8192:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))


def _block(kind: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)


def write_idbs(path: Path, n: int = 100_000) -> None:
    """A pcapng: a section header, ``n`` interface description blocks (Ethernet), then
    the 9 segments of a valid connection on interface 0 (enhanced packet blocks)."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    idb = _block(1, struct.pack("<HHI", 1, 0, 262144))
    out.append(idb * n)
    for r in connection(1):
        sec, usec, incl, orig = struct.unpack("<IIII", r[:16])
        data = r[16:]
        pad = bytes(-len(data) % 4)
        t = sec * 1_000_000 + usec
        out.append(_block(6, struct.pack("<IIIII", 0, t >> 32, t & M32, incl, orig) + data + pad))
    path.write_bytes(b"".join(out))


def write_corrupt_gz(path: Path) -> tuple[bytes, int]:
    """A gzipped 9-record capture (:func:`connection` of 1 exchange) with one bit
    flipped late in its deflate stream; returns the uncompressed capture and the offset
    of the flipped byte in the file."""
    raw = PCAP_HEADER + b"".join(connection(1))
    data = bytearray(gzip.compress(raw, compresslevel=9, mtime=0))
    at = len(data) - 8 - 6  # in the last bytes of the deflate stream, before the trailer
    data[at] ^= 0x10
    path.write_bytes(bytes(data))
    return raw, at


#: ``python -c PEAK FILE ARGS...`` runs the command line with ARGS and writes at exit its
#: peak RSS in kB to FILE: the larger of its own (VmHWM) and its worker processes'
#: (``--jobs``: ``ru_maxrss`` of the children it waited for), the largest process's.
#: Not ``wait4``'s ``ru_maxrss`` of the command: Linux carries into it the RSS of the
#: process before ``exec`` (the forked copy of the caller, e.g. a large pytest process).
PEAK = (
    "import atexit, resource, sys\n"
    "def peak(path=sys.argv[1]):\n"
    "    with open('/proc/self/status') as f:\n"
    "        kb = int([l.split()[1] for l in f if l.startswith('VmHWM')][0])\n"
    "    kb = max(kb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "    with open(path, 'w') as f:\n"
    "        f.write(str(kb))\n"
    "atexit.register(peak)\n"
    "sys.argv = ['pcapcheck', *sys.argv[2:]]\n"
    "from pcapcheck.cli import main\n"
    "main()\n"
)


def measure(path: Path, *extra: str) -> tuple[int, float, float, int]:
    """Analyse ``path`` (``pcapcheck analyze PATH -f json -q -o /dev/null``, then
    ``extra`` options) in a child process: (exit status, wall seconds, CPU seconds of
    the process and its workers (user + system: on a loaded machine the wall time
    includes the time others took), peak RSS of the process in MB, or of its largest
    worker: :data:`PEAK`)."""
    peak = path.parent / (path.name + ".peak")
    argv = [sys.executable, "-c", PEAK, str(peak), "analyze", str(path), "-f", "json", "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [*argv, "-o", "/dev/null", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode not in (0, 1):
        text = proc.stderr.decode(errors="replace").strip()[-300:]
        print(f"  {path.name}: exit {proc.returncode}: {text}", file=sys.stderr)
    return proc.returncode, wall, cpu, int(peak.read_text()) // 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/hostile"))
    ap.add_argument("--huge", action="store_true", help="also the 2 GB of zeros (minutes)")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    inputs = {
        "zeros.pcap.gz": (
            lambda p: write_zeros_gz(p),
            "10 packets + 16 MB of zeros, gzipped",
            10 + (1 << 20),
        ),
        "ihl3.pcap": (lambda p: write_ihl3(p), "400,000 records with IHL 3", 400_000),
        "idbs.pcapng": (lambda p: write_idbs(p), "100,000 interface blocks + 9 packets", 100_009),
        "long_250k.pcap": (
            lambda p: write_long(p, 250_000),
            "one connection, 250k segments",
            249_999,
        ),
        "long_1m.pcap": (
            lambda p: write_long(p, 1_000_000),
            "one connection, 1M segments",
            999_999,
        ),
        "oneway_1m.pcap": (
            lambda p: write_long(p, 1_000_000, one_way=True),
            "one connection, 1M segments of one direction",
            999_998,
        ),
        "oneway_2m.pcap": (
            lambda p: write_long(p, 2_000_000, one_way=True),
            "one connection, 2M segments of one direction",
            1_999_998,
        ),
        "retx_250k.pcap": (
            lambda p: write_retransmissions(p, 250_000),
            "one connection, a segment sent 250,001 times",
            250_009,
        ),
        "retx_1m.pcap": (
            lambda p: write_retransmissions(p, 1_000_000),
            "one connection, a segment sent 1,000,001 times",
            1_000_009,
        ),
        "retx_2m.pcap": (
            lambda p: write_retransmissions(p, 2_000_000),
            "one connection, a segment sent 2,000,001 times",
            2_000_009,
        ),
        "noflags_1m.pcap": (
            lambda p: write_bad_flags(p, 1_000_000),
            "one connection, 1M segments without flags",
            1_000_009,
        ),
    }
    if args.huge:
        inputs["header_zeros_256m.pcap.gz"] = (
            lambda p: write_zeros_gz(p, 256 << 20, header_only=True),
            "pcap header + 256 MB of zeros, gzipped",
            (256 << 20) // 16,
        )
        inputs["header_zeros.pcap.gz"] = (
            lambda p: write_zeros_gz(p, 2 << 30, header_only=True),
            "pcap header + 2 GB of zeros, gzipped",
            (2 << 30) // 16,
        )
    print("| input | records | exit | time (s) | CPU (s) | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (build, what, records) in inputs.items():
        if args.only and name not in args.only:
            continue
        path = args.dir / name
        if not path.exists():
            build(path)
        code, wall, cpu, rss = measure(path)
        print(f"| {what} | {records:,} | {code} | {wall:.1f} | {cpu:.1f} | {rss} |", flush=True)


if __name__ == "__main__":
    main()
