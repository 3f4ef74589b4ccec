#!/usr/bin/env python3
"""Write the encapsulation test captures into sample_pcaps/encap/ (and bad/).

Deterministic: fixed ISNs, addresses, IP ids, timestamps; no randomness, no current
time (gzip members get mtime 0). Running it twice gives byte-identical files.

Every good capture holds the same short, clean TCP conversation (10 packets)::

     1 C->S SYN            MSS 1460, SACK-perm, TS, NOP, WS 7
     2 S->C SYN, ACK       MSS 1400, SACK-perm, TS, NOP, WS 9
     3 C->S ACK            NOP NOP TS (all the rest too)
     4 C->S PSH, ACK       100 bytes
     5 S->C PSH, ACK       300 bytes
     6 C->S ACK
     7 C->S FIN, ACK
     8 S->C ACK
     9 S->C FIN, ACK
    10 C->S ACK

in a different container or encapsulation each (``vlan_mpls2_ipv6_hs002.pcap`` holds
a short failed handshake instead: SYN, a SYN-ACK acknowledging the client's ISN itself
(HS002), the client's RST). The packets are built with dpkt
(Ethernet, IPv4, TCP, UDP, ARP; checksums with dpkt.in_cksum) and struct (the link
headers dpkt cannot write, IPv6 extension headers); the containers are written with
struct, because dpkt's pcap writer only writes the host byte order and takes float
timestamps (which cannot carry nanoseconds) and its pcapng writer has a single
interface and microseconds only.

Usage: python scripts/make_encap_captures.py [OUTDIR]   (default sample_pcaps/encap)
"""

from __future__ import annotations

import gzip
import socket
import struct
import sys
import zlib
from pathlib import Path

import dpkt

# ---- the conversation ------------------------------------------------------------------

C4, S4 = "10.0.0.1", "10.0.0.2"
C6, S6 = "2001:db8::1", "2001:db8::2"
CPORT, SPORT = 40000, 80
ISN_C, ISN_S = 3_000_000_000, 123_456_789  # client ISN > 2**31 on purpose
MAC_C, MAC_S = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"
BASE_NS = 1_700_000_000_123_456_000  # 2023-11-14T22:13:20.123456Z
OFFSETS_US = (0, 150, 300, 1000, 2500, 2700, 10000, 10200, 10400, 10600)
NSEC_EXTRA = 789  # sub-microsecond part in the -nsec files

REQUEST = (
    b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nUser-Agent: pcapcheck-fixture\r\n\r\n"
).ljust(100, b"x")
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 219\r\n\r\n").ljust(
    300, b"y"
)

F, S, R, P, A = dpkt.tcp.TH_FIN, dpkt.tcp.TH_SYN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_ACK


def _syn_opts(mss: int, tsval: int, tsecr: int, ws: int) -> bytes:
    return (
        struct.pack("!BBH", 2, 4, mss)
        + b"\x04\x02"
        + struct.pack("!BBII", 8, 10, tsval, tsecr)
        + b"\x01"
        + bytes((3, 3, ws))
    )


def _ts_opts(tsval: int, tsecr: int) -> bytes:
    return b"\x01\x01" + struct.pack("!BBII", 8, 10, tsval, tsecr)


# (from_client, flags, seq, ack, window, options, payload)
CONVERSATION = (
    (True, S, ISN_C, 0, 64240, _syn_opts(1460, 1000, 0, 7), b""),
    (False, S | A, ISN_S, ISN_C + 1, 65160, _syn_opts(1400, 7000, 1000, 9), b""),
    (True, A, ISN_C + 1, ISN_S + 1, 502, _ts_opts(1001, 7000), b""),
    (True, P | A, ISN_C + 1, ISN_S + 1, 502, _ts_opts(1002, 7000), REQUEST),
    (False, P | A, ISN_S + 1, ISN_C + 101, 509, _ts_opts(7002, 1002), RESPONSE),
    (True, A, ISN_C + 101, ISN_S + 301, 501, _ts_opts(1011, 7002), b""),
    (True, F | A, ISN_C + 101, ISN_S + 301, 501, _ts_opts(1011, 7002), b""),
    (False, A, ISN_S + 301, ISN_C + 102, 509, _ts_opts(7012, 1011), b""),
    (False, F | A, ISN_S + 301, ISN_C + 102, 509, _ts_opts(7012, 1011), b""),
    (True, A, ISN_C + 102, ISN_S + 302, 501, _ts_opts(1012, 7012), b""),
)

TIMES_NS = tuple(BASE_NS + us * 1000 for us in OFFSETS_US)


def _a4(s: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, s)


def _a6(s: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, s)


def tcp_segment(pkt, src: bytes, dst: bytes) -> bytes:
    """TCP header + options + payload with the checksum for the given addresses."""
    from_client, flags, seq, ack, win, opts, payload = pkt
    t = dpkt.tcp.TCP(
        sport=CPORT if from_client else SPORT,
        dport=SPORT if from_client else CPORT,
        seq=seq,
        ack=ack,
        flags=flags,
        win=win,
        opts=opts,
        data=payload,
        sum=0,
    )
    t.off = (20 + len(opts)) // 4
    raw = bytes(t)
    if len(src) == 4:
        pseudo = struct.pack("!4s4sxBH", src, dst, 6, len(raw))
    else:
        pseudo = struct.pack("!16s16sIxxxB", src, dst, len(raw), 6)
    s = dpkt.in_cksum_done(dpkt.in_cksum_add(dpkt.in_cksum_add(0, pseudo), raw))
    return raw[:16] + struct.pack("!H", s) + raw[18:]


def ipv4_packet(i: int, ip_opts: bytes = b"") -> bytes:
    return ipv4_from(CONVERSATION[i], i, ip_opts)


def ipv4_from(pkt, i: int, ip_opts: bytes = b"", client: str = C4, server: str = S4) -> bytes:
    """IPv4 (ids 20001 + i from the client, 30001 + i from the server) + TCP of ``pkt``
    between ``client`` and ``server``."""
    src, dst = (_a4(client), _a4(server)) if pkt[0] else (_a4(server), _a4(client))
    seg = tcp_segment(pkt, src, dst)
    ip = dpkt.ip.IP(
        src=src,
        dst=dst,
        p=6,
        ttl=64,
        id=(20001 + i) if pkt[0] else (30001 + i),
        tos=0,
        data=seg,
        opts=ip_opts,
    )
    ip.hl = 5 + len(ip_opts) // 4
    ip.df = 1
    ip.len = 20 + len(ip_opts) + len(seg)
    ip.sum = 0
    return bytes(ip)


def ipv6_packet(i: int, ext: list[tuple[int, bytes]] | None = None) -> bytes:
    """IPv6 + extension headers ``[(type, body-after-the-2-or-4-byte-prefix)]`` + TCP."""
    return ipv6_from(CONVERSATION[i], ext)


def ipv6_from(pkt, ext: list[tuple[int, bytes]] | None = None) -> bytes:
    """IPv6 + extension headers + TCP of ``pkt`` (a CONVERSATION-like tuple)."""
    src, dst = (_a6(C6), _a6(S6)) if pkt[0] else (_a6(S6), _a6(C6))
    seg = tcp_segment(pkt, src, dst)
    chain = b""
    ext = ext or []
    types = [t for t, _ in ext] + [6]
    for k, (htype, body) in enumerate(ext):
        nxt = types[k + 1]
        if htype == 44:  # fragment: fixed 8 bytes
            hdr = bytes((nxt, 0)) + body
            assert len(hdr) == 8
        elif htype == 51:  # AH: length in 4-byte units minus 2
            hdr = bytes((nxt, (len(body) + 2) // 4 - 2)) + body
            assert (hdr[1] + 2) * 4 == len(hdr)
        else:  # 8-byte units minus 1
            hdr = bytes((nxt, (len(body) + 2) // 8 - 1)) + body
            assert (hdr[1] + 1) * 8 == len(hdr)
        chain += hdr
    first = types[0]
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(chain) + len(seg), first, 64, src, dst)
    return hdr + chain + seg


def eth(src: bytes, dst: bytes, ethertype: int, payload: bytes, tags: tuple = ()) -> bytes:
    """Ethernet II frame; ``tags`` = ((tpid, vid), ...) outermost first."""
    e = dpkt.ethernet.Ethernet(src=src, dst=dst, type=ethertype, data=payload)
    if not tags:
        return bytes(e)
    hdr = dst + src
    for tpid, vid in tags:
        hdr += struct.pack("!HH", tpid, vid)
    return hdr + struct.pack("!H", ethertype) + payload


def mpls(labels: tuple[int, ...], payload: bytes, ttl: int = 64) -> bytes:
    """An MPLS label stack (RFC 3032 §2.1: label 20 bits, TC 3, S 1, TTL 8; S set on the
    last entry, the bottom of the stack) in front of ``payload``."""
    entries = b"".join(
        struct.pack("!I", label << 12 | (k == len(labels) - 1) << 8 | ttl)
        for k, label in enumerate(labels)
    )
    return entries + payload


#: The failed handshake of vlan_mpls2_ipv6_hs002.pcap: the SYN-ACK acknowledges the
#: client's ISN itself (HS002); the client answers <SEQ=SEG.ACK><CTL=RST> (RFC 9293
#: §3.10.7.3).
BAD_SYNACK = (
    CONVERSATION[0],
    (False, S | A, ISN_S, ISN_C, 65160, _syn_opts(1400, 7000, 1000, 9), b""),
    (True, R, ISN_C, 0, 0, b"", b""),
)


def macs(i: int) -> tuple[bytes, bytes]:
    return (MAC_C, MAC_S) if CONVERSATION[i][0] else (MAC_S, MAC_C)


# ---- tunnels ----------------------------------------------------------------------------
#
# Every tunnel capture holds two connections on the same inner 4-tuple: the clean
# CONVERSATION (frames 1-10) in one tunnel (VNI, TEID, key or outer address pair "A")
# and the failed handshake BAD_SYNACK (frames 11-13, HS002 at frame 12) in another
# ("B"): two connections, because the tunnel is part of a connection's identity.

OUTER = {"A": ("192.0.2.1", "192.0.2.2"), "B": ("192.0.2.3", "192.0.2.4")}
OUTER6 = {
    "A": ("2001:db8:ffff::1", "2001:db8:ffff::2"),
    "B": ("2001:db8:ffff::3", "2001:db8:ffff::4"),
}
MAC_R1, MAC_R2 = b"\x02\x00\x00\x00\x01\x01", b"\x02\x00\x00\x00\x01\x02"


def outer4(which: str, up: bool, proto: int, payload: bytes, ipid: int = 1) -> bytes:
    """An outer IPv4 header (tunnel endpoints ``OUTER[which]``, reversed when not
    ``up``) around ``payload``."""
    a, b = OUTER[which] if up else OUTER[which][::-1]
    ip = dpkt.ip.IP(src=_a4(a), dst=_a4(b), p=proto, ttl=64, id=ipid, data=payload)
    ip.len = 20 + len(payload)
    return bytes(ip)


def outer6(which: str, up: bool, nh: int, payload: bytes) -> bytes:
    a, b = OUTER6[which] if up else OUTER6[which][::-1]
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, _a6(a), _a6(b)) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header (checksum 0: not computed, RFC 768, as tunnel endpoints send)."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def underlay(up: bool, ethertype: int, payload: bytes) -> bytes:
    """The underlay's Ethernet frame (written with struct: dpkt's Ethernet re-encodes a
    PPPoE payload, compressing its PPP protocol field to one byte)."""
    src, dst = (MAC_R1, MAC_R2) if up else (MAC_R2, MAC_R1)
    return dst + src + struct.pack("!H", ethertype) + payload


def inner_eth(pkt, ip: bytes, ethertype: int = 0x0800) -> bytes:
    s, d = (MAC_C, MAC_S) if pkt[0] else (MAC_S, MAC_C)
    return eth(s, d, ethertype, ip)


def tunnel_frames(wrap, v6: bool = False) -> list[tuple[int, bytes]]:
    """CONVERSATION in tunnel "A", then BAD_SYNACK in tunnel "B" (0.5 s later):
    ``wrap(which, pkt, k, inner_ip)`` gives the frame of the inner IP packet."""
    out = []
    for k, pkt in enumerate(CONVERSATION):
        ip = ipv6_from(pkt) if v6 else ipv4_from(pkt, k)
        out.append((TIMES_NS[k], wrap("A", pkt, k, ip)))
    for k, pkt in enumerate(BAD_SYNACK):
        ip = ipv6_from(pkt) if v6 else ipv4_from(pkt, 20 + k)
        out.append((TIMES_NS[k] + 500_000_000, wrap("B", pkt, 20 + k, ip)))
    return out


def w_ipip(which, pkt, k, ip):
    return underlay(pkt[0], 0x0800, outer4(which, pkt[0], 4, ip, 100 + k))


def w_sit(which, pkt, k, ip):
    return underlay(pkt[0], 0x0800, outer4(which, pkt[0], 41, ip, 100 + k))


def w_ip6tnl(which, pkt, k, ip):
    return underlay(pkt[0], 0x86DD, outer6(which, pkt[0], 4 if ip[0] >> 4 == 4 else 41, ip))


def gre(proto: int, payload: bytes, key: int | None = None, seq: int | None = None,
        csum: bool = False, version: int = 0) -> bytes:  # fmt: skip
    """A GRE header (RFC 2784, RFC 2890) in front of ``payload``."""
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0)
    flags |= (0x1000 if seq is not None else 0) | version
    opt = b""
    if csum:
        opt += b"\x00\x00\x00\x00"  # checksum filled below, reserved1
    if key is not None:
        opt += struct.pack("!I", key)
    if seq is not None:
        opt += struct.pack("!I", seq)
    raw = struct.pack("!HH", flags, proto) + opt + payload
    if csum:
        c = dpkt.in_cksum(raw)
        raw = raw[:4] + struct.pack("!H", c) + raw[6:]
    return raw


def w_gre(which, pkt, k, ip):
    """GRE with checksum, key (1 / 2 by tunnel) and sequence number, IPv4 inside."""
    g = gre(0x0800, ip, key=1 if which == "A" else 2, seq=k, csum=True)
    return underlay(pkt[0], 0x0800, outer4(which, pkt[0], 47, g, 100 + k))


def w_gretap(which, pkt, k, ip):
    """GRE (plain) carrying Ethernet (0x6558, transparent Ethernet bridging), IPv6 inside."""
    g = gre(0x6558, inner_eth(pkt, ip, 0x86DD))
    return underlay(pkt[0], 0x0800, outer4(which, pkt[0], 47, g, 100 + k))


def erspan2(session: int, index: int, payload: bytes, version: int = 1) -> bytes:
    """An ERSPAN type II header (draft-foschiano-erspan-03 §4.1: version 1, VLAN 0, COS 0,
    En 0, T 0, session id; reserved, index) in front of ``payload``."""
    return struct.pack("!HHI", version << 12, session & 0x3FF, index & 0xFFFFF) + payload


def erspan3(session: int, timestamp: int, payload: bytes, subheader: bool = False) -> bytes:
    """An ERSPAN type III header (§4.2: version 2, VLAN 0, COS 0, BSO 0, T 0, session id;
    timestamp; SGT 0, P 0, FT 0, hardware id 1, D 0, Gra 3 (IEEE 1588), O); with
    ``subheader`` the O bit and the 8-byte platform-specific subheader (platform id 3,
    port id 7, the timestamp's seconds)."""
    word = 1 << 4 | 3 << 1 | subheader  # hardware id, granularity, O
    head = struct.pack("!HHIHH", 2 << 12, session & 0x3FF, timestamp, 0, word)
    if subheader:
        head += struct.pack("!II", 3 << 26 | 7, 1_700_000_000)
    return head + payload


#: the mirroring sessions of erspan2.pcap / erspan3.pcap
SESSION = {"A": 100, "B": 101}


def w_erspan1(which, pkt, k, ip):
    """ERSPAN type I: GRE protocol 0x88BE without a sequence number (S bit clear) and no
    ERSPAN header, the mirrored Ethernet frame right after GRE (Linux's
    include/net/erspan.h); no session id, so the two sessions run between two address
    pairs."""
    return underlay(
        pkt[0], 0x0800, outer4(which, pkt[0], 47, gre(0x88BE, inner_eth(pkt, ip)), 100 + k)
    )


def w_erspan2(which, pkt, k, ip):
    """ERSPAN type II in GRE (protocol 0x88BE, with a sequence number, as switches and
    Linux's erspan device send it), sessions 100 and 101, between the same endpoints."""
    g = gre(0x88BE, erspan2(SESSION[which], 5, inner_eth(pkt, ip)), seq=k)
    return underlay(pkt[0], 0x0800, outer4("A", pkt[0], 47, g, 100 + k))


def w_erspan3(which, pkt, k, ip):
    """ERSPAN type III in GRE (0x22EB), sessions 100 and 101; the client's frames carry
    the platform-specific subheader (O bit), the server's do not."""
    e = erspan3(SESSION[which], 1000 * k, inner_eth(pkt, ip), subheader=pkt[0])
    g = gre(0x22EB, e, seq=k)
    return underlay(pkt[0], 0x0800, outer4("A", pkt[0], 47, g, 100 + k))


def vxlan(vni: int, payload: bytes, flags: int = 0x08) -> bytes:
    return struct.pack("!B3xI", flags, vni << 8) + payload


VNI = {"A": 42, "B": 43}
TEID = {"A": 0x1001, "B": 0x1002}


def w_vxlan(which, pkt, k, ip):
    """VXLAN over the same outer endpoints in both tunnels: VNI 42 and 43."""
    v = vxlan(VNI[which], inner_eth(pkt, ip))
    return underlay(pkt[0], 0x0800, outer4("A", pkt[0], 17, udp(49152 + k, 4789, v), 100 + k))


def geneve(vni: int, proto: int, payload: bytes, options: bytes = b"", version: int = 0) -> bytes:
    assert len(options) % 4 == 0
    return (
        struct.pack("!BBHI", version << 6 | len(options) // 4, 0, proto, vni << 8)
        + options
        + payload
    )


#: one Geneve option (RFC 8926 §3.5): class 0x0102, type 0x80, 4 bytes of data
GENEVE_OPTION = struct.pack("!HBB", 0x0102, 0x80, 1) + b"\xde\xad\xbe\xef"


def w_geneve(which, pkt, k, ip):
    """Geneve with one 8-byte option, Ethernet inside, VNI 42 and 43."""
    g = geneve(VNI[which], 0x6558, inner_eth(pkt, ip), GENEVE_OPTION)
    return underlay(pkt[0], 0x0800, outer4("A", pkt[0], 17, udp(49152 + k, 6081, g), 100 + k))


def gtpu(teid: int, payload: bytes, ext: bytes | None = None, flags: int | None = None,
         mtype: int = 0xFF) -> bytes:  # fmt: skip
    """A GTP-U header (TS 29.281 §5.1); with ``ext`` (a PDU session container
    extension header, type 0x85) the E flag, sequence number 0, N-PDU 0."""
    opt = b""
    f = 0x30
    if ext is not None:
        f |= 0x04
        opt = struct.pack("!HBB", 0, 0, 0x85) + ext
    if flags is not None:
        f = flags
    body = opt + payload
    return struct.pack("!BBHI", f, mtype, len(body), teid) + body


#: a PDU session container (TS 38.415), 4 bytes: length 1, content, next type 0
GTPU_EXT = bytes((1, 0x10, 0x09, 0))


def w_gtpu(which, pkt, k, ip):
    """GTP-U on port 2152, with an extension header in frames from the client, TEID
    0x1001 and 0x1002."""
    g = gtpu(TEID[which], ip, GTPU_EXT if pkt[0] else None)
    return underlay(pkt[0], 0x0800, outer4("A", pkt[0], 17, udp(2152, 2152, g), 100 + k))


# GTP-U as a mobile core carries it: the TEID is the receiver's (TS 29.281 §5.1), so
# the uplink (eNB -> SGW) carries the SGW's TEID and the downlink the eNB's.
ENB, SGW = "192.0.2.1", "192.0.2.2"
UE, WEB = "10.45.0.2", "198.51.100.10"
#: tunnel -> (uplink TEID, downlink TEID)
GTP_BEARERS = {1: (0x00000101, 0x0000A001), 2: (0x00000102, 0x0000A002)}


def gtpu_frame(pkt, k: int, ip: bytes, bearer: int) -> bytes:
    """The G-PDU of the inner ``ip`` between the eNB and the SGW: uplink (from the UE,
    the client) with the bearer's uplink TEID, downlink with its downlink TEID."""
    up, down = GTP_BEARERS[bearer]
    a, b = (ENB, SGW) if pkt[0] else (SGW, ENB)
    g = gtpu(up if pkt[0] else down, ip)
    o = dpkt.ip.IP(src=_a4(a), dst=_a4(b), p=17, ttl=64, id=500 + k, data=udp(2152, 2152, g))
    o.len = 20 + len(o.data)
    return underlay(pkt[0], 0x0800, bytes(o))


def shifted(pkt, dc: int, ds: int):
    """``pkt`` (a CONVERSATION tuple) with the client's sequence numbers moved by ``dc``
    and the server's by ``ds`` (another connection's ISNs)."""
    c, flags, seq, ack, win, opts, payload = pkt
    m = 0xFFFFFFFF
    seq = (seq + (dc if c else ds)) & m
    ack = (ack + (ds if c else dc)) & m if ack else 0
    return (c, flags, seq, ack, win, opts, payload)


def gtpu_uplink_downlink() -> list[tuple[int, bytes]]:
    """The clean CONVERSATION between UE 10.45.0.2:40000 and 198.51.100.10:80 through one
    GTP-U bearer: uplink TEID 0x101, downlink TEID 0xa001."""
    return [
        (TIMES_NS[k], gtpu_frame(pkt, k, ipv4_from(pkt, k, client=UE, server=WEB), 1))
        for k, pkt in enumerate(CONVERSATION)
    ]


#: The second connection of gtpu_two_tunnels_interleaved.pcap: other ISNs; after the
#: response, the client aborts with an RST (RS001).
ABORTED = [shifted(p, 1_000_000, 2_000_000) for p in CONVERSATION[:5]] + [
    shifted((True, R | A, ISN_C + 101, ISN_S + 301, 0, b"", b""), 1_000_000, 2_000_000)
]


def gtpu_two_tunnels_interleaved() -> list[tuple[int, bytes]]:
    """Two UEs with the same address (two PDN sessions from two address pools), the same
    inner 4-tuple, through two bearers between the same eNB and SGW (TEIDs 0x101 /
    0xa001 and 0x102 / 0xa002), their packets interleaved: the clean CONVERSATION in
    bearer 1 (frames 1 3 5 7 9 11 13-16) and ABORTED in bearer 2 (frames 2 4 6 8 10 12,
    each 50 µs after bearer 1's packet of the same step: RS001 at frame 12)."""
    out = []
    for k, pkt in enumerate(CONVERSATION):
        ip = ipv4_from(pkt, k, client=UE, server=WEB)
        out.append((TIMES_NS[k], gtpu_frame(pkt, k, ip, 1)))
        if k < len(ABORTED):
            other = ABORTED[k]
            ip = ipv4_from(other, 40 + k, client=UE, server=WEB)
            out.append((TIMES_NS[k] + 50_000, gtpu_frame(other, 40 + k, ip, 2)))
    return out


def teredo(payload: bytes, origin: bool = False, auth: bool = False) -> bytes:
    """Teredo (RFC 4380 §5.1.1): an authentication header (client id "c1", 4-byte
    value, nonce, confirmation 0) and/or an origin indication before ``payload``."""
    out = b""
    if auth:
        out += struct.pack("!HBB", 1, 2, 4) + b"c1" + b"\x01\x02\x03\x04" + b"N" * 8 + b"\x00"
    if origin:
        out += struct.pack("!HH4s", 0, 3544 ^ 0xFFFF, bytes(b ^ 0xFF for b in _a4("192.0.2.9")))
    return out + payload


def w_teredo(which, pkt, k, ip):
    """Teredo: the relay side (port 3544) sends with an origin indication, the client
    with an authentication header; the two connections through two relays."""
    t = teredo(ip, origin=not pkt[0], auth=pkt[0] and k == 0)
    u = udp(50000, 3544, t) if pkt[0] else udp(3544, 50000, t)
    return underlay(pkt[0], 0x0800, outer4(which, pkt[0], 17, u, 100 + k))


def w_pppoe(which, pkt, k, ip):
    """PPPoE session (ethertype 0x8864, sessions 0x11 / 0x12), PPP protocol IPv4."""
    sid = 0x11 if which == "A" else 0x12
    body = struct.pack("!H", 0x0021) + ip
    return underlay(pkt[0], 0x8864, struct.pack("!BBHH", 0x11, 0, sid, len(body)) + body)


#: The customer's MAC addresses in mpls_pw_eth.pcap: locally administered, and such that
#: the control word and the frame after it do not look like two known vendors' addresses
#: (Wireshark 4.0's pw_eth_heuristic then takes the control word, as we do).
MAC_PW_C, MAC_PW_S = b"\x02\x0c\xfe\xed\xfa\x01", b"\x02\x0c\xfe\xed\xfa\x02"


def w_mpls_pw(which, pkt, k, ip):
    """An Ethernet pseudowire (RFC 4448) over MPLS: transport label 16, PW label 1000
    (1001 in tunnel "B"), the control word (RFC 4385 §3: nibble 0, flags 0, length 0,
    sequence number k + 1), then the customer's Ethernet frame."""
    cw = struct.pack("!HH", 0, (k + 1) & 0xFFFF)
    src, dst = (MAC_PW_C, MAC_PW_S) if pkt[0] else (MAC_PW_S, MAC_PW_C)
    return underlay(
        pkt[0], 0x8847, mpls((16, 1000 if which == "A" else 1001), cw + eth(src, dst, 0x0800, ip))
    )


#: name -> (wrap, IPv6 inside, description)
TUNNELS = {
    "pppoe_ipv4.pcap": (w_pppoe, False, "Ethernet + PPPoE session (0x8864), PPP IPv4"),
    "ipip.pcap": (w_ipip, False, "IPv4 in IPv4 (protocol 4), two outer address pairs"),
    "sit_6in4.pcap": (w_sit, True, "IPv6 in IPv4 (protocol 41, 6in4 / sit)"),
    "ip6tnl_ipv4.pcap": (w_ip6tnl, False, "IPv4 in IPv6 (next header 4)"),
    "ip6tnl_ipv6.pcap": (w_ip6tnl, True, "IPv6 in IPv6 (next header 41)"),
    "gre_ipv4.pcap": (w_gre, False, "GRE with checksum, key 1 / 2, sequence numbers; IPv4"),
    "gretap_ipv6.pcap": (w_gretap, True, "GRE 0x6558 (Ethernet bridging), Ethernet, IPv6"),
    "erspan1.pcap": (
        w_erspan1,
        False,
        "ERSPAN type I in GRE (0x88BE, no sequence number, no ERSPAN header), two address pairs",
    ),
    "erspan2.pcap": (w_erspan2, False, "ERSPAN type II in GRE (0x88BE), sessions 100 / 101"),
    "erspan3.pcap": (
        w_erspan3,
        False,
        "ERSPAN type III in GRE (0x22EB), a subheader from the client",
    ),
    "vxlan.pcap": (w_vxlan, False, "VXLAN (UDP 4789) VNI 42 and 43, Ethernet, IPv4"),
    "geneve.pcap": (w_geneve, False, "Geneve (UDP 6081) with an option, VNI 42 / 43, Ethernet"),
    "gtpu.pcap": (
        w_gtpu,
        False,
        "GTP-U (UDP 2152), TEID 0x1001 / 0x1002 (crafted: each tunnel's TEID both ways),"
        " extension header",
    ),
    "teredo.pcap": (w_teredo, True, "Teredo (UDP 3544), origin indication, authentication"),
}


# ---- containers ------------------------------------------------------------------------


def pcap_file(
    frames, linktype: int, endian: str = "<", nsec: bool = False, snaplen: int = 65535
) -> bytes:
    """pcap file: ``frames`` = [(ts_ns, data)]; records cut to ``snaplen``."""
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts_ns, data in frames:
        sec, ns = divmod(ts_ns, 1_000_000_000)
        frac = ns if nsec else ns // 1000
        assert nsec or ns % 1000 == 0
        cap = data[:snaplen]
        out.append(struct.pack(endian + "IIII", sec, frac, len(cap), len(data)) + cap)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def ng_block(endian: str, btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    n = 12 + len(body)
    return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)


def ng_option(endian: str, code: int, value: bytes) -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + _pad4(value)


def ng_shb(endian: str) -> bytes:
    body = struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    body += ng_option(endian, 4, b"make_encap_captures.py") + ng_option(endian, 0, b"")
    return ng_block(endian, 0x0A0D0D0A, body)


def ng_idb(
    endian: str,
    linktype: int,
    snaplen: int,
    tsresol: int | None = None,
    tsoffset: int | None = None,
    name: str | None = None,
) -> bytes:
    body = struct.pack(endian + "HHI", linktype, 0, snaplen)
    if name:
        body += ng_option(endian, 2, name.encode())
    if tsresol is not None:
        body += ng_option(endian, 9, bytes((tsresol,)))
    if tsoffset is not None:
        body += ng_option(endian, 14, struct.pack(endian + "q", tsoffset))
    body += ng_option(endian, 0, b"")
    return ng_block(endian, 1, body)


def ng_epb(endian: str, ifid: int, ticks: int, data: bytes, wire: int | None = None) -> bytes:
    body = struct.pack(
        endian + "IIIII",
        ifid,
        ticks >> 32,
        ticks & 0xFFFFFFFF,
        len(data),
        len(data) if wire is None else wire,
    ) + _pad4(data)
    return ng_block(endian, 6, body)


def ng_pb(endian: str, ifid: int, ticks: int, data: bytes) -> bytes:
    body = struct.pack(
        endian + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)
    ) + _pad4(data)
    return ng_block(endian, 2, body)


def ng_isb(endian: str, ifid: int, ticks: int) -> bytes:
    return ng_block(endian, 5, struct.pack(endian + "III", ifid, ticks >> 32, ticks & 0xFFFFFFFF))


# ---- the captures ----------------------------------------------------------------------


def frames_eth_ipv4(tags: tuple = (), ip_opts: bytes = b"") -> list[tuple[int, bytes]]:
    out = []
    for i in range(len(CONVERSATION)):
        s, d = macs(i)
        out.append((TIMES_NS[i], eth(s, d, 0x0800, ipv4_packet(i, ip_opts), tags)))
    return out


def frames_ipv6(wrap, ext=None) -> list[tuple[int, bytes]]:
    return [(TIMES_NS[i], wrap(i, ipv6_packet(i, ext))) for i in range(len(CONVERSATION))]


def frames_ipv4(wrap) -> list[tuple[int, bytes]]:
    return [(TIMES_NS[i], wrap(i, ipv4_packet(i))) for i in range(len(CONVERSATION))]


def sll(i: int, proto: int, payload: bytes) -> bytes:
    mac = macs(i)[0]
    ptype = 4 if CONVERSATION[i][0] else 0  # outgoing / to us
    return struct.pack("!HHH8sH", ptype, 1, 6, mac, proto) + payload


def sll2(i: int, proto: int, payload: bytes) -> bytes:
    mac = macs(i)[0]
    ptype = 4 if CONVERSATION[i][0] else 0
    return struct.pack("!HHiHBB8s", proto, 0, 2, 1, ptype, 6, mac) + payload


def multi_if_pcapng() -> bytes:
    """Two interfaces: 0 = Ethernet (usec), 1 = raw IP (nsec); client packets on 0,
    server packets on 1; an unknown block (type 0x00000123) and an ISB in the middle."""
    e = "<"
    out = [ng_shb(e), ng_idb(e, 1, 65535, name="eth0"), ng_idb(e, 101, 0, tsresol=9, name="tun0")]
    for i, (from_client, *_rest) in enumerate(CONVERSATION):
        if from_client:
            s, d = macs(i)
            out.append(ng_epb(e, 0, TIMES_NS[i] // 1000, eth(s, d, 0x0800, ipv4_packet(i))))
        else:
            out.append(ng_epb(e, 1, TIMES_NS[i], ipv4_packet(i)))
        if i == 4:
            out.append(ng_block(e, 0x00000123, b"unknown block type, must be skipped"))
            out.append(ng_isb(e, 0, TIMES_NS[i] // 1000))
    return b"".join(out)


def multi_section_pcapng() -> bytes:
    """Two sections: a little-endian one (Ethernet, usec; packet 2 as an obsolete Packet
    Block) with packets 1-5, then a big-endian one (raw IPv4, nsec with if_tsoffset)
    with packets 6-10 and an unknown block before them."""
    out = [ng_shb("<"), ng_idb("<", 1, 65535)]
    for i in range(5):
        s, d = macs(i)
        frame = eth(s, d, 0x0800, ipv4_packet(i))
        if i == 1:
            out.append(ng_pb("<", 0, TIMES_NS[i] // 1000, frame))
        else:
            out.append(ng_epb("<", 0, TIMES_NS[i] // 1000, frame))
    off = 1_700_000_000
    out += [
        ng_shb(">"),
        ng_block(">", 0x00000777, b"\x01\x02\x03"),
        ng_idb(">", 101, 1500, tsresol=9, tsoffset=off),
    ]
    for i in range(5, 10):
        out.append(ng_epb(">", 0, TIMES_NS[i] - off * 1_000_000_000, ipv4_packet(i)))
    return b"".join(out)


def with_non_tcp() -> list[tuple[int, bytes]]:
    """The Ethernet conversation with a DNS query (UDP) after frame 2, an ARP request
    after frame 4 and a non-first IPv4 fragment after frame 7 (13 frames)."""
    frames = frames_eth_ipv4()
    udp = dpkt.udp.UDP(
        sport=53000,
        dport=53,
        data=b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x07example\x04test\x00\x00\x01\x00\x01",
    )
    udp.ulen = len(udp)
    ip_udp = dpkt.ip.IP(src=_a4(C4), dst=_a4("10.0.0.53"), p=17, ttl=64, id=40000, data=udp)
    ip_udp.sum = 0
    arp = dpkt.arp.ARP(
        sha=MAC_C, spa=_a4(C4), tha=b"\x00" * 6, tpa=_a4(S4), op=dpkt.arp.ARP_OP_REQUEST
    )
    frag = dpkt.ip.IP(src=_a4(S4), dst=_a4(C4), p=6, ttl=64, id=40001, data=b"z" * 48)
    frag.offset = 185  # in 8-byte units: a non-first fragment, MF clear
    frag.sum = 0
    extra = {
        2: eth(MAC_C, b"\x02\x00\x00\x00\x00\x35", 0x0800, bytes(ip_udp)),
        4: eth(MAC_C, b"\xff" * 6, 0x0806, bytes(arp)),
        7: eth(MAC_S, MAC_C, 0x0800, bytes(frag)),
    }
    out = []
    for k, (ts, data) in enumerate(frames, start=1):
        out.append((ts, data))
        if k in extra:
            out.append((ts + 50_000, extra[k]))
    return out


def corrupt_gzip(pcap: bytes, cut: int) -> bytes:
    """A gzip stream whose first ``cut`` bytes of content are valid (full flush), then
    garbage (0xff bytes: an invalid deflate block type)."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = co.compress(pcap[:cut]) + co.flush(zlib.Z_FULL_FLUSH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + deflated + b"\xff" * 64


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def record_offsets(pcap: bytes) -> list[int]:
    """Offsets of the record headers of a little-endian pcap."""
    offs, pos = [], 24
    while pos < len(pcap):
        offs.append(pos)
        pos += 16 + struct.unpack_from("<I", pcap, pos + 8)[0]
    return offs


def build(outdir: Path) -> dict[str, str]:
    """Write every capture; return {relative name: description}."""
    files: dict[str, tuple[bytes, str]] = {}

    def put(name: str, data: bytes, what: str) -> None:
        files[name] = (data, what)

    base = frames_eth_ipv4()
    eth_ipv4 = pcap_file(base, 1)
    put("eth_ipv4.pcap", eth_ipv4, "reference: pcap usec, little-endian, Ethernet, IPv4")
    put("eth_ipv4_bigendian.pcap", pcap_file(base, 1, ">"), "pcap usec, big-endian")
    nsec_frames = [(ts + NSEC_EXTRA, d) for ts, d in base]
    put(
        "eth_ipv4_nsec.pcap",
        pcap_file(nsec_frames, 1, nsec=True),
        f"pcap nsec, little-endian (timestamps +{NSEC_EXTRA} ns)",
    )
    put(
        "eth_ipv4_nsec_bigendian.pcap",
        pcap_file(nsec_frames, 1, ">", nsec=True),
        f"pcap nsec, big-endian (timestamps +{NSEC_EXTRA} ns)",
    )
    put("eth_ipv4.pcap.gz", gz(eth_ipv4), "gzip of eth_ipv4.pcap")
    put("eth_ipv4_gzip_no_suffix.pcap", gz(eth_ipv4), "gzip of eth_ipv4.pcap without .gz suffix")
    put(
        "multi_if.pcapng",
        multi_if_pcapng(),
        "pcapng, 2 interfaces: Ethernet/usec (client packets), raw IP/nsec (server"
        " packets); an unknown block (counted) and an ISB",
    )
    put(
        "multi_section.pcapng",
        multi_section_pcapng(),
        "pcapng, 2 sections: LE Ethernet (one obsolete Packet Block), BE raw IP with"
        " if_tsresol=9 and if_tsoffset; an unknown block (counted)",
    )
    put("multi_if.pcapng.gz", gz(multi_if_pcapng()), "gzip of multi_if.pcapng")
    put("vlan.pcap", pcap_file(frames_eth_ipv4(((0x8100, 100),)), 1), "Ethernet + 802.1Q tag")
    put(
        "qinq.pcap",
        pcap_file(frames_eth_ipv4(((0x88A8, 200), (0x8100, 100))), 1),
        "Ethernet + 802.1ad outer tag + 802.1Q inner tag",
    )
    put(
        "qinq_9100.pcap",
        pcap_file(frames_eth_ipv4(((0x9100, 300), (0x8100, 100))), 1),
        "Ethernet + legacy QinQ 0x9100 + 802.1Q",
    )
    put(
        "sll.pcap",
        pcap_file(frames_ipv4(lambda i, p: sll(i, 0x0800, p)), 113),
        "Linux cooked capture v1 (SLL, 113)",
    )
    put(
        "sll2.pcap",
        pcap_file(frames_ipv4(lambda i, p: sll2(i, 0x0800, p)), 276),
        "Linux cooked capture v2 (SLL2, 276)",
    )
    put(
        "null.pcap",
        pcap_file(frames_ipv4(lambda i, p: struct.pack("<I", 2) + p), 0),
        "BSD loopback NULL (0), family 2 little-endian",
    )
    put(
        "null_ipv6_bigendian.pcap",
        pcap_file(frames_ipv6(lambda i, p: struct.pack(">I", 30) + p), 0),
        "BSD loopback NULL (0), family 30 (IPv6) big-endian",
    )
    put(
        "loop.pcap",
        pcap_file(frames_ipv4(lambda i, p: struct.pack(">I", 2) + p), 108),
        "OpenBSD loopback LOOP (108), family 2 network order",
    )
    put("raw_ipv4.pcap", pcap_file(frames_ipv4(lambda i, p: p), 101), "raw IP (101), IPv4")
    put("raw_ipv4_228.pcap", pcap_file(frames_ipv4(lambda i, p: p), 228), "LINKTYPE_IPV4 (228)")
    put("raw_ipv6.pcap", pcap_file(frames_ipv6(lambda i, p: p), 101), "raw IP (101), IPv6")
    put("raw_ipv6_229.pcap", pcap_file(frames_ipv6(lambda i, p: p), 229), "LINKTYPE_IPV6 (229)")
    put(
        "eth_ipv6.pcap",
        pcap_file(frames_ipv6(lambda i, p: eth(*macs(i), 0x86DD, p)), 1),
        "Ethernet, IPv6",
    )
    hbh = (0, b"\x01\x04\x00\x00\x00\x00")  # PadN: 8 bytes
    dst = (60, b"\x01\x0c" + b"\x00" * 12)  # PadN: 16 bytes
    put(
        "eth_ipv6_exthdr.pcap",
        pcap_file(frames_ipv6(lambda i, p: eth(*macs(i), 0x86DD, p), [hbh, dst]), 1),
        "Ethernet, IPv6 + hop-by-hop (8 bytes) + destination options (16 bytes)",
    )
    srh = (43, bytes((4, 0, 0, 0, 0, 0)) + _a6(S6))  # SRH, segments left 0
    frag = (44, b"\x00\x00\x00\x00\x12\x34")  # atomic fragment
    ah = (51, b"\x00\x00" + struct.pack("!II", 0x1000, 1) + b"\xaa" * 12)  # 24 bytes
    put(
        "eth_ipv6_allext.pcap",
        pcap_file(frames_ipv6(lambda i, p: eth(*macs(i), 0x86DD, p), [hbh, srh, frag, ah, dst]), 1),
        "Ethernet, IPv6 + hop-by-hop + routing (SRH, 0 left) + atomic fragment + AH (24"
        " bytes) + destination options",
    )
    ip_opts = b"\x94\x04\x00\x00" + b"\x01\x01\x01\x00"  # router alert, NOPs, EOL
    put(
        "ipv4_options.pcap",
        pcap_file(frames_eth_ipv4(ip_opts=ip_opts), 1),
        "Ethernet, IPv4 with 8 bytes of options (IHL 7)",
    )
    put(
        "snaplen64.pcap",
        pcap_file(frames_ipv4(lambda i, p: p), 101, snaplen=64),
        "raw IPv4, snaplen 64: payloads cut, headers complete",
    )
    put(
        "with_non_tcp.pcap",
        pcap_file(with_non_tcp(), 1),
        "Ethernet conversation + UDP (frame 3), ARP (frame 6), IPv4 fragment (frame 10)",
    )
    mpls_ipv4 = [
        (TIMES_NS[i], eth(*macs(i), 0x8847, mpls((100,), ipv4_packet(i))))
        for i in range(len(CONVERSATION))
    ]
    put(
        "mpls_ipv4.pcap",
        pcap_file(mpls_ipv4, 1),
        "Ethernet + MPLS (ethertype 0x8847, one label: 100), IPv4",
    )
    pw = [
        (TIMES_NS[i], w_mpls_pw("A", pkt, i, ipv4_packet(i))) for i, pkt in enumerate(CONVERSATION)
    ]
    put(
        "mpls_pw_eth.pcap",
        pcap_file(pw, 1),
        "Ethernet + MPLS two-label stack (16, PW label 1000) + PW control word (RFC 4385,"
        " sequence numbers 1-10) + Ethernet (RFC 4448 pseudowire), IPv4",
    )
    put(
        "vlan_mpls2_ipv6_hs002.pcap",
        pcap_file(
            [
                (
                    TIMES_NS[i],
                    eth(
                        *macs(0 if pkt[0] else 1),
                        0x8847,
                        mpls((16, 1000), ipv6_from(pkt)),
                        ((0x8100, 100),),
                    ),
                )
                for i, pkt in enumerate(BAD_SYNACK)
            ],
            1,
        ),
        "Ethernet + 802.1Q + MPLS two-label stack (16, 1000), IPv6: SYN, a SYN-ACK"
        " acknowledging the client's ISN (HS002, frame 2), the client's RST (frame 3)",
    )

    # ---- tunnels ------------------------------------------------------------------------
    for name, (wrap, v6, what) in TUNNELS.items():
        put(
            name,
            pcap_file(tunnel_frames(wrap, v6), 1),
            what + ": the clean conversation (frames 1-10) in one tunnel, a failed"
            " handshake on the same inner 4-tuple (HS002 at frame 12) in another",
        )

    put(
        "mpls_ipip_labels.pcap",
        pcap_file(
            [
                (
                    TIMES_NS[k],
                    underlay(
                        pkt[0],
                        0x8847,
                        mpls((100 if pkt[0] else 200,), outer4("A", pkt[0], 4, ipv4_from(pkt, k))),
                    ),
                )
                for k, pkt in enumerate(CONVERSATION)
            ],
            1,
        ),
        "the clean conversation in IP-in-IP over MPLS, label 100 towards the server's"
        " side, 200 back (labels are the downstream router's, RFC 3031 §3.4): one"
        " connection",
    )
    put(
        "gtpu_uplink_downlink.pcap",
        pcap_file(gtpu_uplink_downlink(), 1),
        "GTP-U as a mobile core sends it: the clean conversation of UE 10.45.0.2 (behind"
        " eNB 192.0.2.1) with 198.51.100.10, uplink TEID 0x101 to the SGW 192.0.2.2,"
        " downlink TEID 0xa001 to the eNB: one connection",
    )
    put(
        "gtpu_two_tunnels_interleaved.pcap",
        pcap_file(gtpu_two_tunnels_interleaved(), 1),
        "two GTP-U bearers between the same eNB and SGW (TEIDs 0x101/0xa001,"
        " 0x102/0xa002) carrying the same inner 4-tuple, packets interleaved: the clean"
        " conversation in bearer 1, an aborted one in bearer 2 (RS001 at frame 12)",
    )

    def bad_tunnel(frame: bytes) -> bytes:
        """The clean conversation over plain Ethernet with ``frame`` as frame 4 (CP005)."""
        fr = list(base)
        fr.insert(3, (TIMES_NS[2] + 100_000, frame))
        return pcap_file(fr, 1)

    ip = ipv4_from(CONVERSATION[3], 3)
    vx = lambda payload: underlay(True, 0x0800, outer4("A", True, 17, udp(1, 4789, payload)))  # noqa: E731
    bad_tunnels = {
        "gre_v1_pptp.pcap": (
            underlay(True, 0x0800, outer4("A", True, 47, gre(0x880B, ip, version=1))),
            "GRE version 1 (PPTP)",
        ),
        "gre_cut.pcap": (
            underlay(True, 0x0800, outer4("A", True, 47, gre(0x0800, b"", key=1)))[:-2],
            "GRE header with a key cut 2 bytes short",
        ),
        "vxlan_no_i_flag.pcap": (
            vx(vxlan(42, inner_eth(CONVERSATION[3], ip), 0)),
            "VXLAN I flag 0",
        ),
        "vxlan_cut.pcap": (vx(b"\x08\x00\x00"), "VXLAN header of 3 bytes"),
        "geneve_v1.pcap": (
            underlay(
                True, 0x0800, outer4("A", True, 17, udp(1, 6081, geneve(1, 0x0800, ip, version=1)))
            ),
            "Geneve version 1",
        ),
        "geneve_cut_options.pcap": (
            underlay(
                True,
                0x0800,
                outer4("A", True, 17, udp(1, 6081, geneve(1, 0x0800, b"", GENEVE_OPTION)[:12])),
            ),
            "Geneve header whose 8 bytes of options are cut at 4",
        ),
        "gtpu_bad_flags.pcap": (
            underlay(True, 0x0800, outer4("A", True, 17, udp(2152, 2152, gtpu(1, ip, flags=0x50)))),
            "GTP-U flags 0x50 (version 2)",
        ),
        "gtpu_ext_len0.pcap": (
            underlay(
                True,
                0x0800,
                outer4("A", True, 17, udp(2152, 2152, gtpu(1, ip, bytes((0, 0, 0, 0))))),
            ),
            "GTP-U extension header of length 0",
        ),
        "teredo_bad_indicator.pcap": (
            underlay(
                True, 0x0800, outer4("A", True, 17, udp(50000, 3544, b"\x00\x07" + bytes(40)))
            ),
            "Teredo indicator 0x0007",
        ),
        "erspan2_bad_version.pcap": (
            underlay(
                True,
                0x0800,
                outer4(
                    "A",
                    True,
                    47,
                    gre(0x88BE, erspan2(100, 5, inner_eth(CONVERSATION[3], ip), 2), seq=3),
                ),
            ),
            "ERSPAN type II (GRE 0x88BE) header with version 2",
        ),
        "erspan3_cut_subheader.pcap": (
            underlay(
                True,
                0x0800,
                outer4(
                    "A", True, 47, gre(0x22EB, erspan3(100, 0, b"", subheader=True)[:16], seq=3)
                ),
            ),
            "ERSPAN type III header whose platform subheader (O bit) is cut at 4 of 8 bytes",
        ),
        "pppoe_cut.pcap": (
            underlay(True, 0x8864, b"\x11\x00\x00\x11\x00"),
            "PPPoE header of 5 bytes",
        ),
    }
    for name, (frame, what) in bad_tunnels.items():
        put(
            "bad/" + name, bad_tunnel(frame), f"eth_ipv4.pcap with an extra frame 4: {what} (CP005)"
        )

    # ---- bad/ -------------------------------------------------------------------------
    offs = record_offsets(eth_ipv4)
    put(
        "bad/cut_record_body.pcap",
        eth_ipv4[: offs[5] + 16 + 20],
        "cut 20 bytes into the body of record 6 (5 complete records)",
    )
    put(
        "bad/cut_record_header.pcap",
        eth_ipv4[: offs[5] + 7],
        "cut 7 bytes into the header of record 6 (5 complete records)",
    )
    ng = multi_if_pcapng()
    put(
        "bad/cut_block.pcapng",
        ng[: len(ng) - 30],
        "multi_if.pcapng cut 30 bytes before its end (inside the last EPB)",
    )
    bad_len = bytearray(ng)
    third_epb = _find_epb(ng, 3)
    struct.pack_into("<I", bad_len, third_epb + 4, 1001)
    put(
        "bad/bad_block_length.pcapng",
        bytes(bad_len),
        "multi_if.pcapng with the 3rd EPB's length set to 1001 (not a multiple of 4)",
    )

    def patched(i: int, fn) -> bytes:
        fr = list(base)
        fr[i] = (fr[i][0], fn(bytearray(fr[i][1])))
        return pcap_file(fr, 1)

    def ihl3(b: bytearray) -> bytes:
        b[14] = 0x43
        return bytes(b)

    def doff3(b: bytearray) -> bytes:
        b[14 + 20 + 12] = 0x30
        return bytes(b)

    def optlen0(b: bytearray) -> bytes:
        assert b[14 + 20 + 20] == 2
        b[14 + 20 + 21] = 0
        return bytes(b)

    put("bad/ipv4_ihl3.pcap", patched(3, ihl3), "frame 4 has IPv4 IHL 3")
    put("bad/tcp_doff3.pcap", patched(3, doff3), "frame 4 has TCP data offset 3")
    put("bad/tcp_optlen0.pcap", patched(0, optlen0), "frame 1 (SYN): MSS option length 0")
    put(
        "bad/corrupt.pcap.gz",
        corrupt_gzip(eth_ipv4, offs[5] + 16 + 20),
        "gzip: valid for the first 5 records and 20 bytes of record 6, then garbage",
    )
    put(
        "bad/cut_gzip.pcap.gz",
        gz(eth_ipv4)[:-100],
        "gzip of eth_ipv4.pcap with its last 100 bytes cut off",
    )
    put(
        "bad/corrupt_start.pcap.gz",
        b"\x1f\x8b\x08\x00" + b"\xff" * 60,
        "gzip magic followed by garbage: nothing can be decompressed",
    )
    put(
        "bad/text.pcap",
        b"This is not a capture file.\nJust some text.\n",
        "a text file named .pcap",
    )
    put("bad/text.pcap.gz", gz(b"hello, world\n"), "gzip-compressed text")
    put("bad/empty.pcap", b"", "0 bytes")
    put("bad/header_only.pcap", pcap_file([], 1), "valid pcap file header, no records (valid)")
    put("bad/short_header.pcap", eth_ipv4[:14], "pcap file header cut at 14 of 24 bytes")
    big = bytearray(eth_ipv4)
    struct.pack_into("<I", big, offs[2] + 8, 0x7FFFFFF0)
    put("bad/absurd_caplen.pcap", bytes(big), "record 3 claims a captured length of 0x7ffffff0")
    put(
        "bad/caplen_over_snaplen.pcap",
        pcap_file(base, 1)[:16] + struct.pack("<I", 70) + pcap_file(base, 1)[20:],
        "snaplen 70 in the file header; the 74-byte SYN (record 1) exceeds it (read "
        "anyway, as libpcap and Wireshark do)",
    )
    put(
        "bad/snaplen_cuts_header.pcap",
        pcap_file(base, 1, snaplen=60),
        "Ethernet with snaplen 60: every TCP header is cut (DecodeError for all)",
    )
    cut_stack = eth(MAC_C, MAC_S, 0x8847, mpls((100, 200), b""))[:20]
    put(
        "bad/mpls_cut_stack.pcap",
        pcap_file([*mpls_ipv4[:6], (TIMES_NS[5] + 50_000, cut_stack), *mpls_ipv4[6:]], 1),
        "mpls_ipv4.pcap with an extra frame 7 whose MPLS label stack is cut short: the"
        " frame ends 2 bytes into its second entry, the first has no bottom-of-stack bit",
    )
    cut_cw = eth(MAC_C, MAC_S, 0x8847, mpls((16, 1000), b"\x00\x00"))
    put(
        "bad/mpls_pw_cut_cw.pcap",
        pcap_file([*pw[:6], (TIMES_NS[5] + 50_000, cut_cw), *pw[6:]], 1),
        "mpls_pw_eth.pcap with an extra frame 7 whose pseudowire control word is cut at 2"
        " of its 4 bytes (CP005)",
    )
    put(
        "bad/unsupported_linktype.pcap",
        pcap_file(base, 147),
        "the Ethernet frames with link type 147 (USER0)",
    )

    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "bad").mkdir(exist_ok=True)
    for name, (data, _what) in files.items():
        (outdir / name).write_bytes(data)
    return {name: what for name, (_data, what) in files.items()}


def _find_epb(ng: bytes, nth: int) -> int:
    """File offset of the ``nth`` (1-based) EPB of a little-endian pcapng."""
    pos, seen = 0, 0
    while pos < len(ng):
        btype, blen = struct.unpack_from("<II", ng, pos)
        if btype == 6:
            seen += 1
            if seen == nth:
                return pos
        pos += blen
    raise ValueError("no such EPB")


def write_readme(outdir: Path, files: dict[str, str]) -> None:
    lines = [
        "# Encapsulation test captures",
        "",
        "Written by `scripts/make_encap_captures.py` (deterministic; re-run it to",
        "regenerate). Every good capture holds the same 10-packet TCP conversation",
        "(handshake with MSS/SACK-perm/timestamps/window-scale options, 100 bytes",
        "client to server, 300 bytes back, FIN/ACK from each side), client",
        f"{C4}:{CPORT} / [{C6}]:{CPORT}, server {S4}:{SPORT} / [{S6}]:{SPORT}.",
        "",
        "| file | content |",
        "|---|---|",
    ]
    for name, what in files.items():
        if not name.startswith("bad/"):
            lines.append(f"| `{name}` | {what} |")
    lines += [
        "",
        "## bad/",
        "",
        "Malformed, truncated or non-capture files (see tests/test_reader.py and",
        "tests/test_decoder.py for the exact expected behaviour).",
        "",
        "| file | content |",
        "|---|---|",
    ]
    for name, what in files.items():
        if name.startswith("bad/"):
            lines.append(f"| `{name[4:]}` | {what} |")
    lines += ["", *KERNEL_README.splitlines()]
    (outdir / "README.md").write_text("\n".join(lines) + "\n")


#: The README's section on kernel/, the captures of scripts/record_tunnels.py (not made here).
KERNEL_README = """\
## kernel/: recorded from the Linux kernel's own tunnel devices

`python scripts/record_tunnels.py` (root): two network namespaces joined by a veth pair
(the underlay, 192.0.2.1 <-> 192.0.2.2 or 2001:db8:ffff::1 <-> ::2), a kernel tunnel
device in each (`ip link add t0 type ...`, overlay 10.0.0.1 <-> 10.0.0.2 or
2001:db8::1 <-> ::2), `tcpdump -i veth` in the first namespace, Python sockets (the client
in the first namespace, the server in the second, port 8080): from port 40001 a request,
a response, the server closes first (clean: SF, the server in TIME-WAIT); from port 40002
a request, a response, the client aborts (SO_LINGER 0: RS001 at frame 18). Sequence
numbers, timestamps and IP IDs are the kernel's. The script also knows geneve, gre,
gretap, ipip, sit, ip6tnl and ip6gre; the VM these were recorded on (Linux 6.18, a
Firecracker kernel) has VXLAN only (`Unknown device type` for the others: skipped).

| file | content |
|---|---|
| `kernel/vxlan.pcap` | VXLAN (VNI 42, UDP 4789) over IPv4, IPv4 inside: 18 frames, 2 connections |
| `kernel/vxlan_inner6.pcap` | VXLAN over IPv4, IPv6 inside |
| `kernel/vxlan_under6.pcap` | VXLAN over IPv6, IPv4 inside |
| `kernel/vxlan_8472.pcap` | VXLAN (VNI 7) on UDP 8472, Linux's historical port: plain UDP unless `[tunnel-ports] vxlan = [4789, 8472]` |
"""


def main(argv: list[str]) -> int:
    default = Path(__file__).resolve().parent.parent / "sample_pcaps" / "encap"
    outdir = Path(argv[1]) if len(argv) > 1 else default
    files = build(outdir)
    write_readme(outdir, files)
    print(f"wrote {len(files)} files to {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
