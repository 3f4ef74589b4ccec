"""Generate a large, realistic TCP capture for benchmarking pcapcheck.

Ethernet / IPv4 / TCP with timestamp options, ``--connections`` connections of which
``--concurrency`` are open at any time (interleaved round-robin), each a handshake, a few
request/response exchanges with ACKs (payloads up to the MSS), and a 4-way close.
Rates (fractions of connections) of refused connections (SYN answered by RST,ACK),
retransmitted data segments, aborts with RST, and segments lost by the capture.

Each connection has its own 4-tuple (up to 60,000 clients per /16 of 10.2.0.0 and up),
so a longer capture is more of the same traffic, not 4-tuples reopened within 2·MSL.
Deterministic for a given ``--seed``. Packets are packed with :mod:`struct` (no dpkt
objects), so a million packets take seconds. TCP/IP checksums are left 0, as on a
capture of a host with checksum offload.

``--wrap vxlan|geneve|gre|mpls`` writes the same traffic inside a tunnel (the same
frames, timestamps and TCP segments; issue 24's benchmark of tunnelled traffic): each
frame in VXLAN (RFC 7348: outer Ethernet / IPv4 192.0.2.1 <-> 192.0.2.2 / UDP to 4789,
the source port a hash of the inner 4-tuple as RFC 7348 §5 suggests / VNI 42 / the
frame) or Geneve (RFC 8926, UDP 6081, VNI 42, protocol 0x6558, no options), its IP
packet in GRE (RFC 2784, outer IPv4, protocol type 0x0800), or its IP packet beneath an
MPLS label (RFC 3032: ethertype 0x8847, label 100, bottom of stack, TTL 64).

Usage: python bench/generate.py OUT.pcap [--connections 40000] [--concurrency 64] ...
"""

from __future__ import annotations

import argparse
import random
import struct
from pathlib import Path

ETH = bytes.fromhex("0200000000020200000000010800")
MSS = 1448
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF


#: The tunnel endpoints of ``--wrap`` (outer addresses, TEST-NET-1) and the outer MACs.
VTEP_A, VTEP_B = 0xC0000201, 0xC0000202
OUTER_ETH = bytes.fromhex("0200000000120200000000110800")
MPLS_ETH = bytes.fromhex("0200000000020200000000018847")
MPLS_LABEL = struct.pack("!I", 100 << 12 | 1 << 8 | 64)  # label 100, S=1, TTL 64
WRAPS = ("vxlan", "geneve", "gre", "mpls")


def wrap(kind: str, frame: bytes, up: bool, sport: int, dport: int) -> bytes:
    """``frame`` (Ethernet / IPv4 / TCP) inside the tunnel ``kind`` (see the module
    docstring); ``up``: from the client (the outer addresses' direction); ``sport``,
    ``dport``: the inner ports (the UDP source port's hash)."""
    if kind == "mpls":
        return MPLS_ETH + MPLS_LABEL + frame[14:]
    src, dst = (VTEP_A, VTEP_B) if up else (VTEP_B, VTEP_A)
    if kind == "gre":
        inner, proto = struct.pack("!HH", 0, 0x0800) + frame[14:], 47
    else:
        if kind == "vxlan":
            head, port = struct.pack("!II", 0x08000000, 42 << 8), 4789
        else:
            head, port = struct.pack("!BBHI", 0, 0, 0x6558, 42 << 8), 6081
        udp_src = 49152 + (sport ^ dport) % 16384  # the same in both directions
        inner = struct.pack("!HHHH", udp_src, port, 8 + len(head) + len(frame), 0) + head + frame
        proto = 17
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(inner), 0, 0x4000, 64, proto, 0, src, dst)
    return OUTER_ETH + ip + inner


def wrap_capture(src: Path, dst: Path, kind: str) -> int:
    """Write a copy of the pcap ``src`` (LINKTYPE_ETHERNET, either byte order, micro- or
    nanosecond) to ``dst`` with every frame inside the tunnel ``kind`` (:func:`wrap`; the
    direction and the UDP source port's hash from the inner TCP ports when the frame is
    Ethernet / IPv4 without options / TCP, else from nothing); the record headers and
    times unchanged but the lengths. Returns the number of records (``bench/run.py
    --wrap``)."""
    count = 0
    with open(src, "rb") as f, open(dst, "wb") as out:
        head = f.read(24)
        order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        if struct.unpack(order + "I", head[20:24])[0] != 1:
            raise SystemExit(f"{src}: not an Ethernet pcap")
        out.write(head)
        rec = struct.Struct(order + "IIII")
        buf = []
        while len(hdr := f.read(16)) == 16:
            sec, frac, caplen, wire = rec.unpack(hdr)
            frame = f.read(caplen)
            sport = dport = 0
            if len(frame) >= 38 and frame[12:14] == b"\x08\x00" and frame[14] == 0x45:
                sport, dport = struct.unpack_from("!HH", frame, 34)
            wrapped = wrap(kind, frame, sport > dport, sport, dport)
            extra = len(wrapped) - len(frame)
            buf.append(rec.pack(sec, frac, len(wrapped), wire + extra) + wrapped)
            count += 1
            if len(buf) >= 8192:
                out.write(b"".join(buf))
                buf.clear()
        out.write(b"".join(buf))
    return count


class Writer:
    """A pcap file (microsecond, little-endian, LINKTYPE_ETHERNET) written in big chunks;
    ``wrap``: the frames inside that tunnel (:func:`wrap`), None: as they are."""

    def __init__(self, path: Path, wrap: str | None = None):
        self.wrap = wrap
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.buf: list[bytes] = []
        self.packets = 0

    def packet(
        self,
        t_us: int,
        src: int,
        dst: int,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        payload: int,
        ipid: int,
        tsval: int,
    ) -> None:
        tcp = struct.pack(
            "!HHIIBBHHH", sport, dport, seq & M32, ack & M32, 8 << 4, flags, 502, 0, 0
        ) + struct.pack("!BBBBII", 1, 1, 8, 10, tsval & M32, 0)
        total = 20 + len(tcp) + payload
        ip = struct.pack("!BBHHHBBHII", 0x45, 0, total, ipid & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
        frame = ETH + ip + tcp + bytes(payload)
        if self.wrap is not None:
            frame = wrap(self.wrap, frame, sport > dport, sport, dport)
        self.buf.append(
            struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame))
            + frame
        )
        self.packets += 1
        if len(self.buf) >= 8192:
            self.flush()

    def flush(self) -> None:
        self.f.write(b"".join(self.buf))
        self.buf.clear()

    def close(self) -> None:
        self.flush()
        self.f.close()


def connection_script(rng: random.Random, args) -> list[tuple]:
    """One connection as a list of (side, flags, payload, kind) steps; kind marks the
    artefacts ("lost": not written to the capture; "retx": written twice)."""
    if rng.random() < args.refused:
        return [("c", SYN, 0, None), ("s", RST | ACK, 0, None)]
    steps = [("c", SYN, 0, None), ("s", SYN | ACK, 0, None), ("c", ACK, 0, None)]
    for _ in range(rng.randint(1, args.exchanges)):
        steps.append(("c", PSH | ACK, rng.randint(50, 400), None))
        size = rng.choice((MSS, MSS, 600, 3000, 20000))
        while size > 0:
            n = min(size, MSS)
            kind = None
            r = rng.random()
            if r < args.retrans:
                kind = "retx"
            elif r < args.retrans + args.loss:
                kind = "lost"
            steps.append(("s", PSH | ACK, n, kind))
            size -= n
            if size <= 0 or rng.random() < 0.5:
                steps.append(("c", ACK, 0, None))
    if rng.random() < args.resets:
        steps.append(("c", RST | ACK, 0, None))
    else:
        steps += [
            ("c", FIN | ACK, 0, None),
            ("s", ACK, 0, None),
            ("s", FIN | ACK, 0, None),
            ("c", ACK, 0, None),
        ]
    return steps


def client_of(n: int) -> tuple[int, int]:
    """The client address (IPv4 as an int) and port of connection ``n`` (1-based): a
    fresh 4-tuple for each connection, 60,000 clients of 10.2.0.0/16 (one port each),
    then the next /16 (10.3.0.0/16...), and so on. A client that came back on its
    4-tuple within 2*MSL would reopen it from TIME-WAIT (CL010): a longer capture would
    not be the same traffic as a shorter one, only more of it."""
    return (10 << 24) | ((2 + n // 60000) << 16) | (n % 60000), 1024 + (n * 7919) % 60000


def generate(args) -> int:
    rng = random.Random(args.seed)
    out = Writer(Path(args.out), getattr(args, "wrap", None))
    server = (10 << 24) | (1 << 16) | 1
    t_us = 1_767_225_600 * 1_000_000
    slots: list[dict | None] = [None] * args.concurrency
    started = 0
    ipid = 1
    while True:
        active = False
        for i in range(args.concurrency):
            conn = slots[i]
            if conn is None or conn["pos"] >= len(conn["steps"]):
                if started >= args.connections:
                    slots[i] = None
                    continue
                started += 1
                client, cport = client_of(started)
                conn = {
                    "steps": connection_script(rng, args),
                    "pos": 0,
                    "cip": client,
                    "cport": cport,
                    "seq": {"c": rng.getrandbits(32), "s": rng.getrandbits(32)},
                    "nxt": {},
                }
                conn["nxt"] = {"c": conn["seq"]["c"], "s": conn["seq"]["s"]}
                slots[i] = conn
            active = True
            side, flags, n, kind = conn["steps"][conn["pos"]]
            conn["pos"] += 1
            other = "s" if side == "c" else "c"
            seq = conn["nxt"][side]
            ack = conn["nxt"][other] if flags & ACK else 0
            if flags & SYN and flags & ACK:
                ack = conn["seq"]["c"] + 1
            if flags & RST and not conn["nxt"].get("s_started") and conn["pos"] == 2:
                seq, ack = 0, conn["seq"]["c"] + 1
            src, dst, sp, dp = (
                (conn["cip"], server, conn["cport"], 80)
                if side == "c"
                else (server, conn["cip"], 80, conn["cport"])
            )
            t_us += rng.randint(5, 60)
            if kind != "lost":
                out.packet(t_us, src, dst, sp, dp, seq, ack, flags, n, ipid, t_us // 1000)
                ipid += 1
            if kind == "retx":
                t_us += 200
                out.packet(t_us, src, dst, sp, dp, seq, ack, flags, n, ipid, t_us // 1000)
                ipid += 1
            conn["nxt"][side] = seq + n + (1 if flags & (SYN | FIN) else 0)
        if not active:
            break
    out.close()
    return out.packets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--connections", type=int, default=40_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--exchanges", type=int, default=6, help="max request/response pairs")
    ap.add_argument("--refused", type=float, default=0.02)
    ap.add_argument("--retrans", type=float, default=0.005)
    ap.add_argument("--resets", type=float, default=0.01)
    ap.add_argument("--loss", type=float, default=0.001)
    ap.add_argument("--seed", type=int, default=9293)
    ap.add_argument("--wrap", choices=WRAPS, help="the frames inside this tunnel")
    args = ap.parse_args()
    n = generate(args)
    size = Path(args.out).stat().st_size
    print(f"{args.out}: {n} packets, {args.connections} connections, {size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
