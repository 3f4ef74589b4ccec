#!/usr/bin/env python3
"""Write the crafted rule-trigger and clean captures into sample_pcaps/crafted/.

One trigger capture per catalogue rule (``<id>_<name>.pcap``, variants
``<id>_<name>_<variant>.pcap``), clean counterparts (``clean_<what>.pcap``) and
``manifest.yaml``: for every capture the exact results the engine must produce
(every finding with rule, connection, frame and key numbers; every connection's
handshake/close outcome and final RFC 9293 states; for the clean and the
simultaneous captures each endpoint's state transitions with their frames) and
``README.md`` (how to regenerate, conventions, decisions, the table of files).

The expected results are written by hand in each case below (frame numbers come
from the builder so that adding a packet cannot silently shift them; the numbers
-- relative sequence/ack values, states -- are literals). They follow RFC 9293 and
docs/semantics.md; see sample_pcaps/crafted/README.md for the decisions taken
where the rule definitions leave room.

Deterministic: fixed ISNs, addresses, ports, IP ids (one counter per sending host),
TCP timestamp clocks, capture timestamps (every file starts at
2026-01-01T00:00:00Z, integer microseconds) -- no randomness, no current time.
Running the script twice gives byte-identical files.

Packets are built with dpkt (Ethernet, IPv4/IPv6, TCP; dpkt computes the IP and TCP
checksums when packed with sum=0 and every packet is re-verified here with an
independent checksum routine). The pcap container is written with struct so that
the snaplen cut (CP003), the cut-off last record (CP006) and exact microsecond
timestamps are under control.

Usage: python scripts/craft_captures.py [OUTDIR]   (default sample_pcaps/crafted)
"""

from __future__ import annotations

import json
import re
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dpkt

# --------------------------------------------------------------------------- constants

BASE_SEC = 1767225600  # 2026-01-01T00:00:00Z
M32 = 1 << 32

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

CLIENT_IP, SERVER_IP = "10.0.0.1", "10.0.0.2"
CLIENT_IP6, SERVER_IP6 = "2001:db8::1", "2001:db8::2"
CLIENT_PORT, SERVER_PORT = 40000, 80
CLIENT_ISN = 0x3C8A1F27  # 1015684903
SERVER_ISN = 0x9E1B5D02  # 2652593410

MACS = {
    CLIENT_IP: b"\x02\x00\x00\x00\x00\x01",
    SERVER_IP: b"\x02\x00\x00\x00\x00\x02",
    CLIENT_IP6: b"\x02\x00\x00\x00\x00\x01",
    SERVER_IP6: b"\x02\x00\x00\x00\x00\x02",
}
# First IPv4 identification per sending host; incremented by one per packet sent.
IPID_START = {CLIENT_IP: 0x1000, SERVER_IP: 0x8000}
# TCP timestamp clock (RFC 7323) per host: TSval = base + milliseconds since capture start.
TSCLOCK_BASE = {
    CLIENT_IP: 3_000_000,
    SERVER_IP: 7_000_000,
    CLIENT_IP6: 3_000_000,
    SERVER_IP6: 7_000_000,
}

WIN_SYN = {"c": 64240, "s": 65160}  # window in SYN / SYN-ACK (never scaled)
WIN = {"c": 502, "s": 509}  # raw window after the handshake, scaled by 2^7
WSCALE = 7

RTT_HALF_US = 500  # default gap when the direction changes (1 ms RTT)
BACK_TO_BACK_US = 30  # default gap between two packets of the same sender

PATTERN = {
    "c": b"GET /index.html HTTP/1.1\r\nHost: server.example\r\n\r\n",
    "s": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nlorem ipsum dolor sit amet ",
}


def s_after(a: int, b: int) -> bool:
    """Serial-number comparison (RFC 9293 section 3.4): a is after b."""
    return 0 < ((a - b) % M32) < (1 << 31)


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


# --------------------------------------------------------------------------- capture


class Capture:
    """The records of one pcap file (Ethernet link type), with a clock in microseconds."""

    def __init__(self, snaplen: int = 262144):
        self.snaplen = snaplen
        self.records: list[list[Any]] = []  # [t_us, frame bytes]
        self.t = 0  # µs since BASE_SEC
        self.last_sender: str | None = None
        self.ipid = dict(IPID_START)

    @property
    def frames(self) -> int:
        return len(self.records)

    def clock(self, sender: str, dt: float | None, at: float | None) -> int:
        if at is not None:
            t = round(at * 1_000_000)
        elif dt is not None:
            t = self.t + round(dt * 1_000_000)
        elif self.last_sender is None:
            t = 0  # the first packet is at 2026-01-01T00:00:00Z
        else:
            t = self.t + (BACK_TO_BACK_US if sender == self.last_sender else RTT_HALF_US)
        if self.records and t < self.t:
            raise ValueError("time goes backwards")
        return t

    def add(self, t: int, data: bytes, sender: str) -> int:
        assert t >= 0, "captured packets start at 2026-01-01T00:00:00Z"
        self.t = t
        self.last_sender = sender
        self.records.append([t, data])
        return len(self.records)

    def next_ipid(self, ip: str) -> int:
        v = self.ipid[ip]
        self.ipid[ip] = (v + 1) & 0xFFFF
        return v

    def duplicate_last(self) -> int:
        """Store the last packet a second time: identical bytes, identical timestamp."""
        t, data = self.records[-1]
        self.records.append([t, data])
        return len(self.records)

    def swap_last_two(self, gap_us: int) -> None:
        """The last two packets overtook each other: the later-sent one is stored first
        (at the first one's time), the earlier-sent one gap_us later."""
        (t1, d1), (_t2, d2) = self.records[-2], self.records[-1]
        self.records[-2] = [t1, d2]
        self.records[-1] = [t1 + gap_us, d1]
        self.t = t1 + gap_us

    def write(self, path: Path, cut_last: int | None = None) -> None:
        """Write a little-endian microsecond pcap. cut_last: keep only that many body
        bytes of the last record (its header still announces the full length)."""
        out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, self.snaplen, 1))
        for i, (t, data) in enumerate(self.records):
            sec, usec = divmod(t, 1_000_000)
            incl = min(len(data), self.snaplen)
            out += struct.pack("<IIII", BASE_SEC + sec, usec, incl, len(data))
            body = data[:incl]
            if cut_last is not None and i == len(self.records) - 1:
                body = body[:cut_last]
            out += body
        path.write_bytes(bytes(out))


# --------------------------------------------------------------------------- conversation


def tcp_options_syn(mss: int, tsval: int, tsecr: int, cookie: bytes | None) -> bytes:
    o = (
        struct.pack("!BBH", 2, 4, mss)
        + b"\x04\x02"
        + struct.pack("!BBII", 8, 10, tsval, tsecr)
        + b"\x01"
        + struct.pack("!BBB", 3, 3, WSCALE)
    )
    if cookie is not None:
        o += b"\x01\x01" + struct.pack("!BB", 34, 2 + len(cookie)) + cookie
    assert len(o) % 4 == 0
    return o


def tcp_options_ts(tsval: int, tsecr: int) -> bytes:
    return b"\x01\x01" + struct.pack("!BBII", 8, 10, tsval, tsecr)


class Conversation:
    """One TCP connection between a client ('c') and a server ('s').

    Tracks each side's next sequence number (SND.NXT), what it has received in order
    (RCV.NXT, the default ack of its segments) and the TCP timestamp it echoes, so
    that a normal segment needs no numbers; every deviation is an explicit override
    (seq=, ack=, window=, flags=, deliver=False ...).
    """

    def __init__(
        self,
        cap: Capture,
        *,
        client: str = CLIENT_IP,
        server: str = SERVER_IP,
        cport: int = CLIENT_PORT,
        sport: int = SERVER_PORT,
        cisn: int = CLIENT_ISN,
        sisn: int = SERVER_ISN,
        ipv6: bool = False,
    ):
        self.cap = cap
        self.ip = {"c": client, "s": server}
        self.port = {"c": cport, "s": sport}
        self.isn = {"c": cisn, "s": sisn}
        self.nxt = {"c": cisn, "s": sisn}
        self.rcv: dict[str, int | None] = {"c": None, "s": None}
        self.ts_recent = {"c": 0, "s": 0}
        self.ipv6 = ipv6
        self.mss = 1440 if ipv6 else 1460

    # -- names for the manifest
    def endpoint(self, side: str) -> str:
        ip = self.ip[side]
        return f"[{ip}]:{self.port[side]}" if self.ipv6 else f"{ip}:{self.port[side]}"

    def rel(self, side: str, value: int) -> int:
        return (value - self.isn[side]) % M32

    # -- the one primitive
    def send(
        self,
        side: str,
        flags: int,
        *,
        n: int = 0,
        payload: bytes | None = None,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        ts: bool = True,
        syn_opts: bool | None = None,
        cookie: bytes | None = None,
        dt: float | None = None,
        at: float | None = None,
        capture: bool = True,
        deliver: bool = True,
        advance: bool = True,
        urp: int = 0,
        raw_off: int | None = None,
    ) -> int:
        peer = "s" if side == "c" else "c"
        if seq is None:
            seq = self.nxt[side]
        seq %= M32
        if payload is None:
            start = (seq - self.isn[side] - (0 if flags & SYN else 1)) % M32
            pat = PATTERN[side]
            payload = bytes(pat[(start + i) % len(pat)] for i in range(n))
        if ack is None:
            ack = self.rcv[side] if (flags & ACK and self.rcv[side] is not None) else 0
        ack %= M32
        if window is None:
            window = WIN_SYN[side] if flags & SYN else WIN[side]
        t = self.cap.clock(self.ip[side], dt, at)
        tsval = TSCLOCK_BASE[self.ip[side]] + t // 1000
        if syn_opts is None:
            syn_opts = bool(flags & SYN)
        if syn_opts:
            tsecr = self.ts_recent[side] if flags & ACK else 0
            opts = tcp_options_syn(self.mss, tsval, tsecr, cookie)
        elif ts:
            opts = tcp_options_ts(tsval, self.ts_recent[side])
        else:
            opts = b""
        tcp = dpkt.tcp.TCP(
            sport=self.port[side],
            dport=self.port[peer],
            seq=seq,
            ack=ack,
            flags=flags,
            win=window,
            urp=urp,
            opts=opts,
            data=payload,
        )
        tcp.off = raw_off if raw_off is not None else (20 + len(opts)) // 4
        tcp.sum = 0
        src, dst = self.ip[side], self.ip[peer]
        if self.ipv6:
            ip = dpkt.ip6.IP6(
                src=socket.inet_pton(socket.AF_INET6, src),
                dst=socket.inet_pton(socket.AF_INET6, dst),
                nxt=dpkt.ip.IP_PROTO_TCP,
                hlim=64,
                data=tcp,
            )
            ip.plen = len(bytes(tcp))
            ethtype = dpkt.ethernet.ETH_TYPE_IP6
        else:
            ip = dpkt.ip.IP(
                src=socket.inet_aton(src),
                dst=socket.inet_aton(dst),
                p=dpkt.ip.IP_PROTO_TCP,
                ttl=64,
                id=self.cap.next_ipid(src),
                df=1,
                data=tcp,
            )
            ethtype = dpkt.ethernet.ETH_TYPE_IP
        eth = dpkt.ethernet.Ethernet(src=MACS[src], dst=MACS[dst], type=ethtype, data=ip)
        frame_bytes = bytes(eth)
        check_frame(frame_bytes)

        # sender state
        seglen = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        end = (seq + seglen) % M32
        if not advance:
            pass  # e.g. an invalid segment: no effect on the sender
        elif flags & SYN:
            self.isn[side] = seq
            self.nxt[side] = end
        elif flags & RST:
            pass  # an RST occupies no sequence space
        elif s_after(end, self.nxt[side]):
            self.nxt[side] = end
        # receiver state (a segment seen is a segment delivered, unless told otherwise)
        if deliver and not flags & RST:
            if flags & SYN or (
                self.rcv[peer] is not None
                and not s_after(seq, self.rcv[peer])
                and s_after(end, self.rcv[peer])
            ):
                self.rcv[peer] = end
            if opts:
                self.ts_recent[peer] = tsval
        if not capture:
            self.cap.t = t
            self.cap.last_sender = self.ip[side]
            return 0
        return self.cap.add(t, frame_bytes, self.ip[side])

    # -- readable helpers
    def syn(self, side: str = "c", *, isn: int | None = None, n: int = 0, **kw) -> int:
        if isn is not None:
            self.isn[side] = isn
        return self.send(side, SYN, seq=self.isn[side], n=n, **kw)

    def synack(self, side: str = "s", **kw) -> int:
        kw.setdefault("seq", self.isn[side])
        return self.send(side, SYN | ACK, **kw)

    def ack(self, side: str, **kw) -> int:
        return self.send(side, ACK, **kw)

    def data(self, side: str, n: int, *, flags: int = PSH | ACK, **kw) -> int:
        return self.send(side, flags, n=n, **kw)

    def fin(self, side: str, n: int = 0, **kw) -> int:
        return self.send(side, FIN | ACK, n=n, **kw)

    def rst(self, side: str, *, with_ack: bool = False, **kw) -> int:
        kw.setdefault("ts", False)
        kw.setdefault("window", 0)
        return self.send(side, RST | (ACK if with_ack else 0), **kw)

    # -- common sequences
    def handshake(self, **kw) -> tuple[int, int, int]:
        return self.syn("c", **kw), self.synack("s"), self.ack("c")

    def exchange(self, req: int = 100, resp: int = 1000) -> tuple[int, int, int]:
        return self.data("c", req), self.data("s", resp), self.ack("c")

    def close(self, first: str = "c", dt: float = 0.005) -> tuple[int, int, int, int]:
        other = "s" if first == "c" else "c"
        return (
            self.fin(first, dt=dt),
            self.ack(other),
            self.fin(other, dt=0.0002),
            self.ack(first),
        )


def check_frame(frame: bytes) -> None:
    """Independent verification of the IPv4 header and TCP checksums of one frame."""
    ethtype = struct.unpack("!H", frame[12:14])[0]
    if ethtype == 0x0800:
        ihl = (frame[14] & 0x0F) * 4
        iph = frame[14 : 14 + ihl]
        assert ones_sum(iph) == 0xFFFF, "bad IPv4 header checksum"
        total = struct.unpack("!H", iph[2:4])[0]
        seg = frame[14 + ihl : 14 + total]
        pseudo = iph[12:20] + struct.pack("!BBH", 0, 6, len(seg))
    else:
        plen = struct.unpack("!H", frame[18:20])[0]
        seg = frame[54 : 54 + plen]
        pseudo = frame[22:54] + struct.pack("!IxxxB", len(seg), 6)
    assert ones_sum(pseudo + seg) == 0xFFFF, "bad TCP checksum"


# --------------------------------------------------------------------------- manifest model


@dataclass
class Case:
    file: str
    description: str
    cap: Capture
    findings: list[dict[str, Any]]
    connections: list[dict[str, Any]]
    transitions: dict[Any, Any] | None = None
    cut_last: int | None = None
    packets: int | None = None  # readable frames (default: all records)
    rules: str = ""  # README table: rule(s)
    shows: str = ""  # README table: what the capture shows
    findings_when_enabled: list[dict[str, Any]] = field(default_factory=list)


def F(rule: str, connection: int | None, frame: int | None, **keys: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"rule": rule, "connection": connection, "frame": frame}
    d.update(keys)
    return d


def C(
    cid: int, c: Conversation, handshake: str, close: str, cstate: str, sstate: str, **extra: Any
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": cid,
        "client": c.endpoint("c"),
        "server": c.endpoint("s"),
        "handshake": handshake,
        "close": close,
        "client_final_state": cstate,
        "server_final_state": sstate,
    }
    d.update(extra)
    return d


CASES: list[Case] = []


def case(fn):
    CASES.append(fn())
    return fn


# State names (RFC 9293 section 3.3.2).
CLOSED, LISTEN, SYN_SENT, SYN_RCVD, EST = (
    "CLOSED",
    "LISTEN",
    "SYN-SENT",
    "SYN-RECEIVED",
    "ESTABLISHED",
)
FW1, FW2, CW, CLOSING, LA, TW = (
    "FIN-WAIT-1",
    "FIN-WAIT-2",
    "CLOSE-WAIT",
    "CLOSING",
    "LAST-ACK",
    "TIME-WAIT",
)


def std_transitions(
    syn: int, synack: int, hs_ack: int, fin1: int, ack1: int, fin2: int, ack2: int, first: str = "c"
) -> dict[str, list]:
    """Transitions of a normal open and a 4-way close begun by `first`."""
    active = [[fin1, EST, FW1], [ack1, FW1, FW2], [fin2, FW2, TW]]
    passive = [[fin1, EST, CW], [fin2, CW, LA], [ack2, LA, CLOSED]]
    client = [[syn, CLOSED, SYN_SENT], [synack, SYN_SENT, EST]]
    server = [[synack, LISTEN, SYN_RCVD], [hs_ack, SYN_RCVD, EST]]
    if first == "c":
        return {"client": client + active, "server": server + passive}
    return {"client": client + passive, "server": server + active}


def per_connection(trans: dict[str, list]) -> dict[str, list]:
    """Transitions stored in the connection entry (captures with several connections)."""
    return {"client_transitions": trans["client"], "server_transitions": trans["server"]}


# =========================================================================== clean captures


def build_clean_handshake_close(cap: Capture, **conv) -> tuple[Conversation, list[int]]:
    c = Conversation(cap, **conv)
    f = list(c.handshake()) + list(c.exchange()) + list(c.close("c"))
    return c, f


@case
def clean_handshake_close():
    cap = Capture()
    c, f = build_clean_handshake_close(cap)
    return Case(
        "clean_handshake_close.pcap",
        "Clean 3-way handshake, 100-byte request, 1000-byte response, client-first 4-way close (separate FIN and ACK).",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        std_transitions(f[0], f[1], f[2], f[6], f[7], f[8], f[9]),
        rules="-",
        shows="3WHS, request/response, client-first 4-way close",
    )


@case
def clean_server_close_first():
    cap = Capture()
    c = Conversation(cap)
    f = list(c.handshake()) + list(c.exchange()) + list(c.close("s"))
    return Case(
        "clean_server_close_first.pcap",
        "Clean connection; the server closes first (server FIN-WAIT-1/2, TIME-WAIT; client CLOSE-WAIT, LAST-ACK).",
        cap,
        [],
        [C(1, c, "complete", "graceful", CLOSED, TW)],
        std_transitions(f[0], f[1], f[2], f[6], f[7], f[8], f[9], first="s"),
        rules="-",
        shows="server-first 4-way close",
    )


@case
def clean_fin_piggyback():
    cap = Capture()
    c = Conversation(cap)
    f1, f2, f3 = c.handshake()
    c.exchange()
    f7 = c.fin("c", dt=0.005)
    f8 = c.fin("s")  # FIN,ACK acking the client's FIN: 3-packet close
    f9 = c.ack("c")
    return Case(
        "clean_fin_piggyback.pcap",
        "Clean connection, 3-packet close: the server's FIN rides on the ACK of the client's FIN (ACK processed first, then FIN: client FIN-WAIT-1 -> FIN-WAIT-2 -> TIME-WAIT on one frame).",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        {
            "client": [
                [f1, CLOSED, SYN_SENT],
                [f2, SYN_SENT, EST],
                [f7, EST, FW1],
                [f8, FW1, FW2],
                [f8, FW2, TW],
            ],
            "server": [
                [f2, LISTEN, SYN_RCVD],
                [f3, SYN_RCVD, EST],
                [f7, EST, CW],
                [f8, CW, LA],
                [f9, LA, CLOSED],
            ],
        },
        rules="-",
        shows="FIN piggy-backed on the ACK of the peer's FIN",
    )


@case
def clean_half_close():
    cap = Capture()
    c = Conversation(cap)
    f1, f2, f3 = c.handshake()
    c.data("c", 100)
    f5 = c.fin("c", dt=0.0001)  # shutdown(SHUT_WR) right after the request
    f6 = c.ack("s")
    c.data("s", 1000, flags=ACK, dt=0.05)
    c.ack("c")
    c.data("s", 1000, dt=0.05)
    c.ack("c")
    f11 = c.fin("s", dt=0.001)
    f12 = c.ack("c")
    return Case(
        "clean_half_close.pcap",
        "Half-close: the client sends its request and FIN, the server keeps sending 2000 bytes (client in FIN-WAIT-2 ACKs them), then the server's FIN.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        {
            "client": [
                [f1, CLOSED, SYN_SENT],
                [f2, SYN_SENT, EST],
                [f5, EST, FW1],
                [f6, FW1, FW2],
                [f11, FW2, TW],
            ],
            "server": [
                [f2, LISTEN, SYN_RCVD],
                [f3, SYN_RCVD, EST],
                [f5, EST, CW],
                [f11, CW, LA],
                [f12, LA, CLOSED],
            ],
        },
        rules="-",
        shows="client half-close, server sends data in CLOSE-WAIT, then closes",
    )


def build_simultaneous_open(cap: Capture):
    c = Conversation(cap, sport=50000)
    f1 = c.syn("c")
    f2 = c.send("s", SYN, seq=c.isn["s"], dt=0.00005)  # crosses the client's SYN
    f3 = c.synack("c", syn_opts=True)  # SYN,ACK <SEQ=ISS><ACK=RCV.NXT>
    f4 = c.synack("s", syn_opts=True, dt=0.00005)
    c.exchange()
    f8, f9, f10, f11 = c.close("c")
    trans = {
        "client": [
            [f1, CLOSED, SYN_SENT],
            [f2, SYN_SENT, SYN_RCVD],
            [f4, SYN_RCVD, EST],
            [f8, EST, FW1],
            [f9, FW1, FW2],
            [f10, FW2, TW],
        ],
        "server": [
            [f2, CLOSED, SYN_SENT],
            [f2, SYN_SENT, SYN_RCVD],
            [f3, SYN_RCVD, EST],
            [f8, EST, CW],
            [f10, CW, LA],
            [f11, LA, CLOSED],
        ],
    }
    return c, f1, f2, trans


@case
def clean_simultaneous_open():
    cap = Capture()
    c, f1, f2, trans = build_simultaneous_open(cap)
    return Case(
        "clean_simultaneous_open.pcap",
        "Simultaneous open (RFC 9293 section 3.5 figure 7): both SYNs cross, each side answers with SYN,ACK <SEQ=ISN><ACK=peer ISN+1>; then data and a normal close.",
        cap,
        [F("HS010", 1, f2, other_frame=f1)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans,
        rules="HS010 (info)",
        shows="SYNs cross, then SYN-ACKs cross",
    )


def build_simultaneous_close(cap: Capture):
    c = Conversation(cap)
    f1, f2, f3 = c.handshake()
    c.exchange()
    f7 = c.fin("c", dt=0.005)
    fin_c = c.nxt["c"]
    f8 = c.fin("s", ack=fin_c - 1, dt=0.00005)  # sent before the client's FIN arrived
    f9 = c.ack("c")  # acks the server's FIN
    f10 = c.ack("s", dt=0.00005)  # acks the client's FIN
    trans = {
        "client": [
            [f1, CLOSED, SYN_SENT],
            [f2, SYN_SENT, EST],
            [f7, EST, FW1],
            [f8, FW1, CLOSING],
            [f10, CLOSING, TW],
        ],
        "server": [
            [f2, LISTEN, SYN_RCVD],
            [f3, SYN_RCVD, EST],
            [f8, EST, FW1],
            [f8, FW1, CLOSING],
            [f9, CLOSING, TW],
        ],
    }
    return c, f7, f8, trans


@case
def clean_simultaneous_close():
    cap = Capture()
    c, f7, f8, trans = build_simultaneous_close(cap)
    return Case(
        "clean_simultaneous_close.pcap",
        "Simultaneous close: the FINs cross (neither acks the other's FIN), both go FIN-WAIT-1 -> CLOSING -> TIME-WAIT when their FIN is acked.",
        cap,
        [F("CL007", 1, f8, other_frame=f7)],
        [C(1, c, "complete", "graceful", TW, TW)],
        trans,
        rules="CL007 (info)",
        shows="FINs cross, both CLOSING then TIME-WAIT",
    )


def build_tfo(cap: Capture, accepted: bool):
    c = Conversation(cap)
    f1 = c.syn("c", n=100, cookie=bytes.fromhex("5a1b2c3d4e5f6071"))
    if accepted:
        f2 = c.synack("s")  # acks ISN+1+100
        f3 = c.data("s", 1000, dt=0.00003)  # TFO server may answer in SYN-RECEIVED
        f4 = c.ack("c")
        return c, [f1, f2, f3, f4] + list(c.close("c"))
    f2 = c.synack("s", ack=c.isn["c"] + 1)  # data not accepted
    c.rcv["s"] = c.isn["c"] + 1
    f3 = c.data("c", 100, seq=c.isn["c"] + 1)  # data re-sent with the handshake ACK
    f4 = c.data("s", 1000)
    f5 = c.ack("c")
    return c, [f1, f2, f3, f4, f5] + list(c.close("c"))


@case
def clean_tfo():
    cap = Capture()
    c, f = build_tfo(cap, accepted=True)
    return Case(
        "clean_tfo.pcap",
        "TCP Fast Open: SYN with a TFO cookie and 100 bytes, SYN-ACK acks ISN+1+100, the server answers in SYN-RECEIVED (allowed with TFO, RFC 7413), the client's ACK completes the handshake.",
        cap,
        [F("HS012", 1, f[0], payload_len=100, accepted=True)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        {
            "client": [
                [f[0], CLOSED, SYN_SENT],
                [f[1], SYN_SENT, EST],
                [f[4], EST, FW1],
                [f[5], FW1, FW2],
                [f[6], FW2, TW],
            ],
            "server": [
                [f[1], LISTEN, SYN_RCVD],
                [f[3], SYN_RCVD, EST],
                [f[4], EST, CW],
                [f[6], CW, LA],
                [f[7], LA, CLOSED],
            ],
        },
        rules="HS012 (info)",
        shows="TFO: data in SYN accepted",
    )


@case
def clean_port_reuse():
    cap = Capture()
    c1, f = build_clean_handshake_close(cap)
    close_t = cap.t / 1e6
    c2 = Conversation(cap, cisn=CLIENT_ISN + 0x00100000, sisn=SERVER_ISN + 0x00200000)
    g = [c2.syn("c", at=close_t + 300.0), c2.synack("s"), c2.ack("c")]
    g += list(c2.exchange()) + list(c2.close("c"))
    return Case(
        "clean_port_reuse.pcap",
        "Two connections on the same 4-tuple: the second SYN (higher ISN) comes 300 s after the first connection's graceful close, beyond 2*MSL = 240 s.",
        cap,
        [],
        [
            C(
                1,
                c1,
                "complete",
                "graceful",
                TW,
                CLOSED,
                **per_connection(std_transitions(f[0], f[1], f[2], f[6], f[7], f[8], f[9])),
            ),
            C(
                2,
                c2,
                "complete",
                "graceful",
                TW,
                CLOSED,
                **per_connection(std_transitions(g[0], g[1], g[2], g[6], g[7], g[8], g[9])),
            ),
        ],
        rules="-",
        shows="4-tuple reused after 300 s (> 2*MSL): no CL010",
    )


@case
def clean_ipv6():
    cap = Capture()
    c, f = build_clean_handshake_close(cap, client=CLIENT_IP6, server=SERVER_IP6, ipv6=True)
    return Case(
        "clean_ipv6.pcap",
        "clean_handshake_close over IPv6 (2001:db8::1 -> 2001:db8::2, MSS 1440).",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        std_transitions(f[0], f[1], f[2], f[6], f[7], f[8], f[9]),
        rules="-",
        shows="IPv6 clean connection",
    )


def build_retransmitted_syn(cap: Capture, retries: tuple[float, ...]):
    c = Conversation(cap)
    syns = [c.syn("c")]
    for d in retries:
        syns.append(c.syn("c", dt=d))
    f = [c.synack("s"), c.ack("c")] + list(c.exchange()) + list(c.close("c"))
    return c, syns, f


@case
def clean_retransmitted_syn():
    cap = Capture()
    c, syns, f = build_retransmitted_syn(cap, (1.0,))
    t = std_transitions(syns[0], f[0], f[1], f[5], f[6], f[7], f[8])
    return Case(
        "clean_retransmitted_syn.pcap",
        "The SYN is retransmitted after 1 s (same ISN), then a normal connection and close.",
        cap,
        [F("HS005", 1, syns[1], isn_abs=CLIENT_ISN, first_frame=syns[0])],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        t,
        rules="HS005 (info)",
        shows="SYN retransmitted once",
    )


@case
def clean_stale_ack_before_synack():
    cap = Capture()
    c = Conversation(cap)
    f = [c.syn("c")]
    stale = c.send("c", ACK, ack=(SERVER_ISN + 70001) % M32, dt=0.0002)
    f += [c.synack("s", dt=0.0003), c.ack("c")]
    f += list(c.exchange())
    f += list(c.close("c"))
    t = std_transitions(f[0], f[1], f[2], f[6], f[7], f[8], f[9])
    return Case(
        "clean_stale_ack_before_synack.pcap",
        f"While in SYN-SENT the client sends an ACK (frame {stale}) acknowledging server ISN+70001, a number the SYN-ACK that follows (frame {f[1]}, ISN {SERVER_ISN}) contradicts; then a normal connection.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        t,
        rules="-",
        shows="an ACK that no SYN-ACK explains, then the real SYN-ACK",
    )


@case
def clean_seq_wrap():
    cap = Capture()
    c = Conversation(cap, cisn=0xFFFFFFA0, sisn=0xFFFFF830)
    f1, f2, f3 = c.handshake()
    c.data("c", 100)  # client sequence numbers wrap inside this segment
    c.data("s", 1000, flags=ACK)
    c.data("s", 1000, flags=ACK)  # server sequence numbers wrap inside this one
    c.ack("c")
    c.data("s", 1000)
    c.ack("c")
    f10, f11, f12, f13 = c.close("c")
    return Case(
        "clean_seq_wrap.pcap",
        "Clean connection with ISNs just below 2^32 (client 0xFFFFFFA0, server 0xFFFFF830): both directions' sequence numbers wrap through 0 during the transfer.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        std_transitions(f1, f2, f3, f10, f11, f12, f13),
        rules="-",
        shows="sequence-number wrap in both directions",
    )


@case
def clean_keepalive():
    cap = Capture()
    c = Conversation(cap)
    f1, f2, f3 = c.handshake()
    c.exchange()
    c.ack("c", seq=c.nxt["c"] - 1, dt=45.0)  # Linux keep-alive: len 0 at SND.NXT-1
    c.ack("s")
    c.data(
        "c", 1, flags=ACK, seq=c.nxt["c"] - 1, dt=45.0
    )  # BSD keep-alive: 1 old byte at SND.NXT-1
    c.ack("s")
    f11, f12, f13, f14 = c.close("c", dt=10.0)
    return Case(
        "clean_keepalive.pcap",
        "Idle connection kept alive: after 45 s a keep-alive with len 0 at SND.NXT-1, after 90 s one with 1 byte at SND.NXT-1; each ACKed (ack unchanged). Not retransmissions, not data after FIN.",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        std_transitions(f1, f2, f3, f11, f12, f13, f14),
        rules="-",
        shows="keep-alives (len 0 and len 1 at seq-1), ACKed",
    )


@case
def clean_zero_window_probe():
    cap = Capture()
    c = Conversation(cap)
    f1, f2, f3 = c.handshake()
    c.data("c", 100)
    c.data("s", 1448, flags=ACK)
    c.data("s", 1448)
    zw = c.ack("c", window=0)  # receive buffer full
    c.ack("s", seq=c.nxt["s"] - 1, dt=0.2)  # zero-window probe at SND.UNA-1
    c.ack("c", window=0)
    c.ack("s", seq=c.nxt["s"] - 1, dt=0.4)  # backed-off probe
    c.ack("c", window=0)
    c.ack("c", dt=0.2)  # window update: reopens
    c.data("s", 1000)
    c.ack("c")
    g = list(c.close("c"))
    return Case(
        "clean_zero_window_probe.pcap",
        "The client advertises a zero window, the server sends two zero-window probes (len 0 at SND.UNA-1) answered with window 0, then a window update reopens and the transfer ends normally.",
        cap,
        [F("SQ005", 1, zw)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        std_transitions(f1, f2, f3, *g),
        rules="SQ005 (info)",
        shows="zero window, probes, window update",
    )


@case
def clean_zero_window_probe_accepted():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    zw = c.ack("s", window=0)  # receive buffer full
    c.data("c", 1, dt=0.2)  # one-byte probe (BSD, Windows)
    c.data("s", 50)  # acknowledges the probe's byte
    c.ack("c")  # at SEG.SEQ 102
    c.data("c", 20)
    c.ack("s")
    c.close("c")
    return Case(
        "clean_zero_window_probe_accepted.pcap",
        "The server advertises a zero window; the client probes it with one byte (rel seq 101), which the server accepts: its next segment acknowledges 102 and the client goes on from 102. Nothing is missing and nothing is acknowledged unsent: the probe's byte counts once accepted.",
        cap,
        [F("SQ005", 1, zw)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="SQ005 (info)",
        shows="one-byte zero-window probe, accepted",
    )


@case
def clean_stray_ack_after_reuse():
    cap = Capture()
    old = Conversation(cap, cisn=0x70000000, sisn=0x20000000)
    old.handshake()
    old.exchange()
    old.close("c")
    new = Conversation(cap, cisn=0x50000000, sisn=0x60000000)
    g1 = new.syn("c", dt=1.0)
    new.synack("s")
    new.ack("c")
    old.ack("c", dt=0.0005)  # a late ACK of the first one
    for _ in range(3):
        new.data("c", 100, dt=0.01)
        new.ack("s")
    new.close("c")
    return Case(
        "clean_stray_ack_after_reuse.pcap",
        "The 4-tuple is used again 1 s after a graceful close (CL010); a late pure ACK of the first connection, far ahead in the second one's sequence space, arrives after the new handshake. Nothing acknowledges the space it skips: it is no sign of capture loss, and the second connection's data is not taken for retransmissions.",
        cap,
        [F("CL010", 2, g1, previous_connection=1, gap=1.0, limit=240.0)],
        [
            C(1, old, "complete", "graceful", TW, CLOSED),
            C(2, new, "complete", "graceful", TW, CLOSED),
        ],
        rules="CL010",
        shows="a stray ACK of an earlier connection",
    )


# =========================================================================== HS rules


@case
def hs001():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.syn("c", dt=1.0)
    f3 = c.syn("c", dt=2.0)
    return Case(
        "hs001_syn-unanswered.pcap",
        "A SYN sent three times (0 s, 1 s, 3 s) never gets a SYN-ACK or RST; the client stays in SYN-SENT.",
        cap,
        [
            F("HS001", 1, f1, attempts=3, isn_abs=CLIENT_ISN, first_frame=f1),
            F("HS005", 1, f2, isn_abs=CLIENT_ISN, first_frame=f1),
            F("HS005", 1, f3, isn_abs=CLIENT_ISN, first_frame=f1),
        ],
        [C(1, c, "incomplete", "none", SYN_SENT, None)],
        rules="HS001 (+HS005 info)",
        shows="SYN and 2 retransmissions, no answer",
    )


@case
def hs002():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    f2 = c.synack("s", ack=CLIENT_ISN)  # acks the ISN itself, not ISN+1
    c.rst("c", seq=CLIENT_ISN)  # section 3.10.7.3: <SEQ=SEG.ACK><CTL=RST>
    return Case(
        "hs002_synack-bad-ack.pcap",
        "The SYN-ACK acknowledges the client's ISN itself (relative ack 0) instead of ISN+1; RFC 9293 section 3.10.7.3: unacceptable in SYN-SENT, the client answers RST <SEQ=SEG.ACK> and stays in SYN-SENT; the server returns to LISTEN (section 3.10.7.4).",
        cap,
        [
            F(
                "HS002",
                1,
                f2,
                ack=0,
                expected=1,
                ack_abs=CLIENT_ISN,
                expected_abs=CLIENT_ISN + 1,
                syn_data_len=0,
            ),
        ],
        [C(1, c, "incomplete", "none", SYN_SENT, LISTEN)],
        rules="HS002",
        shows="SYN-ACK acks the ISN; client answers RST seq=SEG.ACK, stays SYN-SENT",
    )


#: The recovered attempt's SYN-ACKs: the server's ISN for the old duplicate SYN, and
#: the new one it chooses for the client's SYN (RFC 9293 figure 8: 300, then 400).
HS002_OLD_SERVER_ISN = SERVER_ISN
HS002_NEW_SERVER_ISN = SERVER_ISN + 100


@case
def hs002_recovered():
    cap = Capture()
    c = Conversation(cap, sisn=HS002_OLD_SERVER_ISN)
    f1 = c.syn("c")
    # An old duplicate SYN (ISN-10) reached the listener before this one: its SYN-ACK
    # acknowledges ISN-9, not ISN+1 (not captured here: the capture is at the client).
    f2 = c.synack("s", ack=CLIENT_ISN - 9, deliver=False)
    f3 = c.rst("c", seq=CLIENT_ISN - 9)  # section 3.10.7.3: <SEQ=SEG.ACK><CTL=RST>
    # The client's SYN reaches the listener (back in LISTEN): a SYN-ACK, new ISN.
    f4 = c.synack("s", seq=HS002_NEW_SERVER_ISN, dt=0.02)
    f5 = c.ack("c")
    c.exchange()
    f9, f10, f11, f12 = c.close("c")
    return Case(
        "hs002_synack-bad-ack_recovered.pcap",
        "RFC 9293 figure 8 (recovery from an old duplicate SYN) at the client: the SYN-ACK acknowledges an old duplicate SYN (ack ISN-9, relative -9); the client answers RST <SEQ=SEG.ACK> (section 3.10.7.3) and stays in SYN-SENT, the server returns to LISTEN; then the server answers the client's SYN with a new ISN (+100) and ack ISN+1, and the connection completes and closes normally.",
        cap,
        [
            F(
                "HS002",
                1,
                f2,
                ack=-9,
                expected=1,
                ack_abs=CLIENT_ISN - 9,
                expected_abs=CLIENT_ISN + 1,
                syn_data_len=0,
            ),
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        transitions={
            "client": [
                [f1, CLOSED, SYN_SENT],
                [f4, SYN_SENT, EST],
                [f9, EST, FW1],
                [f10, FW1, FW2],
                [f11, FW2, TW],
            ],
            "server": [
                [f2, LISTEN, SYN_RCVD],
                [f3, SYN_RCVD, LISTEN],
                [f4, LISTEN, SYN_RCVD],
                [f5, SYN_RCVD, EST],
                [f9, EST, CW],
                [f11, CW, LA],
                [f12, LA, CLOSED],
            ],
        },
        rules="HS002",
        shows="the client's RST answers a bad SYN-ACK; a new SYN-ACK completes the handshake",
    )


@case
def hs003():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    f2 = c.synack("s")
    return Case(
        "hs003_handshake-ack-missing.pcap",
        "SYN, SYN-ACK, then nothing from the client: the SYN-ACK is never acknowledged, the server is left in SYN-RECEIVED.",
        cap,
        [F("HS003", 1, f2, synack_frame=f2)],
        [C(1, c, "incomplete", "none", EST, SYN_RCVD)],
        rules="HS003",
        shows="SYN-ACK never ACKed",
    )


@case
def hs003_retransmitted():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    f2 = c.synack("s")
    f3 = c.synack("s", dt=1.0)
    f4 = c.synack("s", dt=2.0)
    return Case(
        "hs003_handshake-ack-missing_retransmitted.pcap",
        "As hs003, with the server retransmitting its SYN-ACK after 1 s and 3 s; still never acknowledged.",
        cap,
        [
            F("HS003", 1, f2, synack_frame=f2),
            F("HS006", 1, f3, isn_abs=SERVER_ISN, first_frame=f2),
            F("HS006", 1, f4, isn_abs=SERVER_ISN, first_frame=f2),
        ],
        [C(1, c, "incomplete", "none", EST, SYN_RCVD)],
        rules="HS003 (+HS006 info)",
        shows="SYN-ACK retransmitted, never ACKed",
    )


@case
def hs004():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN)  # should be ISN+1
    f4 = c.rst("s", seq=SERVER_ISN)  # section 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
    return Case(
        "hs004_handshake-ack-bad.pcap",
        "The client's handshake-completing ACK acknowledges the server's ISN (relative 0) instead of ISN+1; the server in SYN-RECEIVED answers RST <SEQ=SEG.ACK> and stays in SYN-RECEIVED (RFC 9293 section 3.10.7.4); the RST's seq is the client's RCV.NXT as its ACK announced it, so the client (ESTABLISHED) is reset to CLOSED.",
        cap,
        [
            F(
                "HS004",
                1,
                f3,
                field="ack",
                actual=0,
                expected=1,
                actual_abs=SERVER_ISN,
                expected_abs=SERVER_ISN + 1,
            ),
        ],
        [C(1, c, "incomplete", "reset", CLOSED, SYN_RCVD)],
        transitions={
            "client": [[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST], [f4, EST, CLOSED]],
            "server": [[f2, LISTEN, SYN_RCVD]],
        },
        rules="HS004",
        shows="handshake ACK acks server ISN; server RST, stays SYN-RECEIVED",
    )


@case
def hs004_recovered():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN)  # should be ISN+1
    f4 = c.rst("s", seq=SERVER_ISN)  # section 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
    # The server, still in SYN-RECEIVED, retransmits its SYN-ACK after its RTO; the
    # client, reset to CLOSED by frame 4, has no TCB and answers it <SEQ=SEG.ACK><CTL=RST>
    # (section 3.10.7.1); that RST returns the listener to LISTEN (section 3.10.7.4).
    f5 = c.synack("s", dt=1.0)
    f6 = c.rst("c", seq=CLIENT_ISN + 1)
    return Case(
        "hs004_handshake-ack-bad_recovered.pcap",
        "The recovery RFC 9293 allows after a bad handshake ACK: none. The client's ACK acknowledges the server's ISN (relative 0); the server answers RST <SEQ=SEG.ACK> and stays in SYN-RECEIVED (section 3.10.7.4), the client, ESTABLISHED, is reset (the RST's seq is the RCV.NXT its ACK announced) to CLOSED; the server's SYN-ACK retransmission 1 s later reaches a client without TCB, which answers RST <SEQ=SEG.ACK> (section 3.10.7.1), and the listener returns to LISTEN.",
        cap,
        [
            F(
                "HS004",
                1,
                f3,
                field="ack",
                actual=0,
                expected=1,
                actual_abs=SERVER_ISN,
                expected_abs=SERVER_ISN + 1,
            ),
            F("HS006", 1, f5, isn_abs=SERVER_ISN, first_frame=f2),
        ],
        [C(1, c, "incomplete", "reset", CLOSED, LISTEN)],
        transitions={
            "client": [[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST], [f4, EST, CLOSED]],
            "server": [[f2, LISTEN, SYN_RCVD], [f6, SYN_RCVD, LISTEN]],
        },
        rules="HS004 (+HS006 info)",
        shows="after the server's RST the closed client resets the SYN-ACK retransmission",
    )


@case
def hs004_retry():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN)  # should be ISN+1
    f4 = c.rst("s", seq=SERVER_ISN)  # section 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
    # The client, reset to CLOSED, opens again on the same port (a new ISN); the SYN
    # returns the listener, still in SYN-RECEIVED, to LISTEN (section 3.10.7.4, fourth)
    # and it answers with a new ISN: a second connection.
    g = [c.syn("c", isn=CLIENT_ISN + 5000, dt=1.0), c.synack("s", seq=SERVER_ISN + 777)]
    g += [c.ack("c"), c.data("c", 10), c.ack("s")]
    g += list(c.close("c"))
    return Case(
        "hs004_handshake-ack-bad_retry.pcap",
        "The client's handshake ACK acknowledges the server's ISN (relative 0); the server answers RST <SEQ=SEG.ACK> and stays in SYN-RECEIVED, the client is reset to CLOSED (section 3.10.7.4). 1 s later the client opens again on the same 4-tuple (a new SYN, ISN+5000): the SYN returns the server, still in SYN-RECEIVED, to LISTEN (section 3.10.7.4, fourth check; the first connection ends there), and it answers with a new ISN (ISN+777): a second connection, complete and closed normally.",
        cap,
        [
            F(
                "HS004",
                1,
                f3,
                field="ack",
                actual=0,
                expected=1,
                actual_abs=SERVER_ISN,
                expected_abs=SERVER_ISN + 1,
            ),
        ],
        [
            C(
                1,
                c,
                "incomplete",
                "reset",
                CLOSED,
                LISTEN,
                client_transitions=[[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST], [f4, EST, CLOSED]],
                server_transitions=[[f2, LISTEN, SYN_RCVD], [g[0], SYN_RCVD, LISTEN]],
            ),
            C(
                2,
                c,
                "complete",
                "graceful",
                TW,
                CLOSED,
                **per_connection(std_transitions(g[0], g[1], g[2], g[5], g[6], g[7], g[8])),
            ),
        ],
        rules="HS004",
        shows="after the server's RST the closed client opens a new connection on the same port",
    )


@case
def hs004_twice():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN + 50)  # acknowledges 49 bytes never sent
    c.ack("c", ack=SERVER_ISN)  # then the server's ISN: =< SND.UNA
    f5 = c.rst("s", seq=SERVER_ISN)  # the answer to frame 4 (section 3.10.7.4)
    c.rst("s", seq=SERVER_ISN + 50)  # the answer to frame 3: the client is CLOSED already
    return Case(
        "hs004_handshake-ack-bad_twice.pcap",
        "Two unacceptable handshake ACKs: the first acknowledges data the server never sent (relative 50), the second the server's ISN (relative 0); the server in SYN-RECEIVED answers each with RST <SEQ=SEG.ACK> (section 3.10.7.4), the later one first. The first RST (seq 0) resets the client, ESTABLISHED, to CLOSED; the second (seq 50) reaches a client without connection, which discards it (section 3.10.7.1). HS004 once; no RS004.",
        cap,
        [
            F(
                "HS004",
                1,
                f3,
                field="ack",
                actual=50,
                expected=1,
                actual_abs=SERVER_ISN + 50,
                expected_abs=SERVER_ISN + 1,
            ),
            F("SQ001", 1, f3, ack=50, sent_max=1),
        ],
        [C(1, c, "incomplete", "reset", CLOSED, SYN_RCVD)],
        transitions={
            "client": [[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST], [f5, EST, CLOSED]],
            "server": [[f2, LISTEN, SYN_RCVD]],
        },
        rules="HS004 (+SQ001)",
        shows="two bad handshake ACKs, each answered by the server's RST",
    )


@case
def hs004_data():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN + 50)  # acknowledges 49 bytes never sent
    c.data("c", 10, ack=SERVER_ISN + 50)  # data with the same unacceptable ACK
    f5 = c.rst("s", seq=SERVER_ISN + 50)  # the answer to frame 3 (section 3.10.7.4)
    c.rst("s", seq=SERVER_ISN + 50)  # the answer to frame 4: the client is CLOSED already
    return Case(
        "hs004_handshake-ack-bad_data.pcap",
        "The handshake ACK and the client's first data segment both acknowledge data the server never sent (relative 50); the server in SYN-RECEIVED answers each with RST <SEQ=SEG.ACK> (section 3.10.7.4). The first RST resets the client, ESTABLISHED, to CLOSED; the second reaches a client without connection, which discards it (section 3.10.7.1). HS004 once; no RS004.",
        cap,
        [
            F(
                "HS004",
                1,
                f3,
                field="ack",
                actual=50,
                expected=1,
                actual_abs=SERVER_ISN + 50,
                expected_abs=SERVER_ISN + 1,
            ),
            F("SQ001", 1, f3, ack=50, sent_max=1),
        ],
        [C(1, c, "incomplete", "reset", CLOSED, SYN_RCVD)],
        transitions={
            "client": [[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST], [f5, EST, CLOSED]],
            "server": [[f2, LISTEN, SYN_RCVD]],
        },
        rules="HS004 (+SQ001)",
        shows="a bad handshake ACK and data with the same ACK, each answered by an RST",
    )


@case
def hs004_synack_again():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN + 50)  # acknowledges 49 bytes never sent
    f4 = c.synack("s", dt=0.001)  # a retransmission (its timer ran) before the answer
    f5 = c.rst("s", seq=SERVER_ISN + 50)  # the answer to frame 3 (section 3.10.7.4)
    return Case(
        "hs004_handshake-ack-bad_synack-again.pcap",
        "The handshake ACK acknowledges data the server never sent (relative 50); the server retransmits its SYN-ACK (the client, ESTABLISHED, takes it as a duplicate) and then answers the ACK with RST <SEQ=SEG.ACK>, staying in SYN-RECEIVED (section 3.10.7.4); the client is reset to CLOSED. No RS004.",
        cap,
        [
            F(
                "HS004",
                1,
                f3,
                field="ack",
                actual=50,
                expected=1,
                actual_abs=SERVER_ISN + 50,
                expected_abs=SERVER_ISN + 1,
            ),
            F("SQ001", 1, f3, ack=50, sent_max=1),
            F("HS006", 1, f4, isn_abs=SERVER_ISN, first_frame=f2),
        ],
        [C(1, c, "incomplete", "reset", CLOSED, SYN_RCVD)],
        transitions={
            "client": [[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST], [f5, EST, CLOSED]],
            "server": [[f2, LISTEN, SYN_RCVD]],
        },
        rules="HS004 (+SQ001, HS006 info)",
        shows="a SYN-ACK retransmission between a bad handshake ACK and its RST",
    )


@case
def hs004_rst_dropped():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN + 50)  # e.g. a middlebox's doing: RCV.NXT is ISN+1
    c.rst("s", seq=SERVER_ISN + 50)  # section 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
    # The client's real RCV.NXT is the server's ISN+1: the RST is outside its window and
    # dropped; the server's SYN-ACK retransmission is acknowledged as it should be.
    f5 = c.synack("s", dt=1.0)
    g = [c.ack("c"), c.data("c", 10), c.ack("s")]
    g += list(c.close("c"))
    trans = std_transitions(f1, f2, g[0], g[3], g[4], g[5], g[6])
    return Case(
        "hs004_handshake-ack-bad_rst-dropped.pcap",
        "The client's handshake ACK acknowledges data the server never sent (relative 50); the server answers RST <SEQ=SEG.ACK> and stays in SYN-RECEIVED (section 3.10.7.4). The client's real RCV.NXT is the server's ISN+1, so the RST is outside its window and dropped: it acknowledges the server's SYN-ACK retransmission correctly, which completes the handshake; data and a normal close.",
        cap,
        [
            F(
                "HS004",
                1,
                f3,
                field="ack",
                actual=50,
                expected=1,
                actual_abs=SERVER_ISN + 50,
                expected_abs=SERVER_ISN + 1,
            ),
            F("SQ001", 1, f3, ack=50, sent_max=1),
            F("HS006", 1, f5, isn_abs=SERVER_ISN, first_frame=f2),
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        transitions=trans,
        rules="HS004 (+SQ001, HS006 info)",
        shows="the client drops the server's RST and completes the handshake on the SYN-ACK retransmission",
    )


def _hs004_finding(frame: int, actual: int) -> dict[str, Any]:
    """HS004 at ``frame``: the handshake ACK acknowledges ``actual`` (relative)."""
    return F(
        "HS004",
        1,
        frame,
        field="ack",
        actual=actual,
        expected=1,
        actual_abs=SERVER_ISN + actual,
        expected_abs=SERVER_ISN + 1,
    )


@case
def hs004_same_isn():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN)  # should be ISN+1
    f4 = c.rst("s", seq=SERVER_ISN)  # section 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
    # The client, reset to CLOSED, opens again with the same ISN; the server, still in
    # SYN-RECEIVED, retransmits its SYN-ACK (same ISN) and the handshake completes.
    f5 = c.syn("c", isn=CLIENT_ISN, dt=1.0)
    f6 = c.synack("s")
    g = [c.ack("c"), c.data("c", 10), c.ack("s")]
    g += list(c.close("c"))
    trans = std_transitions(f5, f6, g[0], g[3], g[4], g[5], g[6])
    trans["client"][:0] = [[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST], [f4, EST, CLOSED]]
    trans["client"][3][1] = CLOSED
    trans["server"][0] = [f2, LISTEN, SYN_RCVD]
    return Case(
        "hs004_handshake-ack-bad_same-isn.pcap",
        "The client's handshake ACK acknowledges the server's ISN (relative 0); the server answers RST <SEQ=SEG.ACK> and stays in SYN-RECEIVED, the client is reset to CLOSED (section 3.10.7.4). 1 s later the client sends its SYN again with the same ISN (CLOSED -> SYN-SENT, a new OPEN on the same connection: the same ISN is the same attempt), the server retransmits its SYN-ACK (same ISN) and the handshake completes; data and a normal close.",
        cap,
        [
            _hs004_finding(f3, 0),
            F("HS005", 1, f5, isn_abs=CLIENT_ISN, first_frame=f1),
            F("HS006", 1, f6, isn_abs=SERVER_ISN, first_frame=f2),
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        transitions=trans,
        rules="HS004 (+HS005, HS006 info)",
        shows="the client reset by the server's RST sends the same SYN again and completes the handshake",
    )


@case
def hs004_same_isn_new_synack():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN)  # should be ISN+1
    f4 = c.rst("s", seq=SERVER_ISN)  # section 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
    # The same SYN again returns the server, in SYN-RECEIVED, to LISTEN (section
    # 3.10.7.4, fourth): it answers with a SYN-ACK of a new ISN.
    f5 = c.syn("c", isn=CLIENT_ISN, dt=1.0)
    f6 = c.synack("s", seq=SERVER_ISN + 1000)
    g = [c.ack("c"), c.data("c", 10), c.ack("s")]
    g += list(c.close("c"))
    trans = std_transitions(f5, f6, g[0], g[3], g[4], g[5], g[6])
    trans["client"][:0] = [[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST], [f4, EST, CLOSED]]
    trans["client"][3][1] = CLOSED
    trans["server"][:0] = [[f2, LISTEN, SYN_RCVD], [f5, SYN_RCVD, LISTEN]]
    return Case(
        "hs004_handshake-ack-bad_same-isn-new-synack.pcap",
        "The client's handshake ACK acknowledges the server's ISN (relative 0); the server answers RST <SEQ=SEG.ACK> and stays in SYN-RECEIVED, the client is reset to CLOSED (section 3.10.7.4). 1 s later the client sends its SYN again with the same ISN; it returns the server to LISTEN (section 3.10.7.4, fourth), which answers with a SYN-ACK of a new ISN (ISN+1000): a new sequence space for the server, not a repetition. The handshake completes; data and a normal close.",
        cap,
        [
            _hs004_finding(f3, 0),
            F("HS005", 1, f5, isn_abs=CLIENT_ISN, first_frame=f1),
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        transitions=trans,
        rules="HS004 (+HS005 info)",
        shows="the same SYN again after the server's RST, answered with a new server ISN",
    )


@case
def hs004_fin():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    f3 = c.ack("c", ack=SERVER_ISN + 50)  # acknowledges 49 bytes never sent
    f4 = c.fin("c", ack=SERVER_ISN + 50)  # the client closes, with the same bad ACK
    f5 = c.rst("s", seq=SERVER_ISN + 50)  # the answer to frame 3 (section 3.10.7.4)
    c.rst("s", seq=SERVER_ISN + 50)  # the answer to frame 4: the client is CLOSED already
    return Case(
        "hs004_handshake-ack-bad_fin.pcap",
        "The handshake ACK acknowledges data the server never sent (relative 50), and so does the client's FIN that follows. The server in SYN-RECEIVED answers each with RST <SEQ=SEG.ACK> and drops the segment (section 3.10.7.4: the FIN bit is not looked at after an unacceptable ACK), so it stays in SYN-RECEIVED; the first RST resets the client (FIN-WAIT-1) to CLOSED, the second reaches it CLOSED. No RS002.",
        cap,
        [_hs004_finding(f3, 50), F("SQ001", 1, f3, ack=50, sent_max=1)],
        [C(1, c, "incomplete", "reset", CLOSED, SYN_RCVD)],
        transitions={
            "client": [
                [f1, CLOSED, SYN_SENT],
                [f2, SYN_SENT, EST],
                [f4, EST, FW1],
                [f5, FW1, CLOSED],
            ],
            "server": [[f2, LISTEN, SYN_RCVD]],
        },
        rules="HS004 (+SQ001)",
        shows="a FIN with the same bad ACK: the server drops it and answers it",
    )


@case
def hs004_many():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.synack("s")
    acks = [c.ack("c", ack=SERVER_ISN + 50, dt=0.2) for _ in range(18)]  # all unacceptable
    rsts = [c.rst("s", seq=SERVER_ISN + 50) for _ in range(18)]  # their answers
    return Case(
        "hs004_handshake-ack-bad_many.pcap",
        "18 handshake ACKs acknowledge data the server never sent (relative 50, every one); the server in SYN-RECEIVED answers each with RST <SEQ=SEG.ACK> (section 3.10.7.4), oldest first. The first RST resets the client to CLOSED, the other 17 reach it CLOSED. HS004 once; no RS004: the answers due are counted, not capped at 16.",
        cap,
        [_hs004_finding(acks[0], 50), F("SQ001", 1, acks[0], ack=50, sent_max=1)],
        [C(1, c, "incomplete", "reset", CLOSED, SYN_RCVD)],
        transitions={
            "client": [[f1, CLOSED, SYN_SENT], [f2, SYN_SENT, EST], [rsts[0], EST, CLOSED]],
            "server": [[f2, LISTEN, SYN_RCVD]],
        },
        rules="HS004 (+SQ001)",
        shows="18 identical bad handshake ACKs, then their 18 RSTs",
    )


@case
def hs005():
    cap = Capture()
    c, syns, _f = build_retransmitted_syn(cap, (1.0, 2.0))
    return Case(
        "hs005_syn-retransmitted.pcap",
        "The SYN is retransmitted after 1 s and 3 s (same ISN), then answered; normal connection and close.",
        cap,
        [
            F("HS005", 1, syns[1], isn_abs=CLIENT_ISN, first_frame=syns[0]),
            F("HS005", 1, syns[2], isn_abs=CLIENT_ISN, first_frame=syns[0]),
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="HS005",
        shows="SYN retransmitted twice, then normal",
    )


@case
def hs006():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    f2 = c.synack("s")
    f3 = c.synack("s", dt=1.0)
    c.ack("c")
    c.exchange()
    c.close("c")
    return Case(
        "hs006_synack-retransmitted.pcap",
        "The server retransmits its SYN-ACK after 1 s (same ISN), then the client's ACK completes the handshake; normal connection and close.",
        cap,
        [F("HS006", 1, f3, isn_abs=SERVER_ISN, first_frame=f2)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="HS006",
        shows="SYN-ACK retransmitted once",
    )


@case
def hs007():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    c.synack("s")
    f3 = c.data("s", 100, dt=0.00003)  # server in SYN-RECEIVED, no TFO
    c.ack("c", ack=SERVER_ISN + 1)  # handshake ACK, sent before f3 arrived
    c.exchange()  # the request acks the 100 bytes
    c.close("c")
    return Case(
        "hs007_data-before-established.pcap",
        "The server sends 100 bytes right after its SYN-ACK, while still in SYN-RECEIVED (no TFO): RFC 9293 section 3.10.2 queues data until ESTABLISHED. The client's handshake ACK (ack 1, it crossed the data) completes the handshake, its request then acks the 100 bytes.",
        cap,
        [F("HS007", 1, f3, payload_len=100, seq=1)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="HS007",
        shows="server data in SYN-RECEIVED",
    )


@case
def hs007_client():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    f2 = c.data("c", 50, flags=PSH, dt=0.0001, deliver=False)  # no ACK bit, still SYN-SENT
    c.synack("s")  # acks ISN+1: data dropped
    f4 = c.data("c", 50, seq=CLIENT_ISN + 1)  # handshake ACK carrying the data again
    c.data("s", 1000)
    c.ack("c")
    c.close("c")
    return Case(
        "hs007_data-before-established_client.pcap",
        "The client sends 50 bytes in a non-SYN segment (PSH, no ACK) while still in SYN-SENT; the server drops it (no ACK bit) and the client sends the data again with its handshake ACK.",
        cap,
        [
            F("HS007", 1, f2, payload_len=50, seq=1),
            F("SQ002", 1, f4, seq=1, payload_len=50, first_frame=f2),
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="HS007 (+SQ002 info)",
        shows="client data in SYN-SENT",
    )


@case
def hs008():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c", capture=False, at=-0.0005)
    f1 = c.synack("s", at=0.0)
    c.ack("c")
    c.exchange()
    c.close("c")
    return Case(
        "hs008_synack-without-syn.pcap",
        "The capture starts with the SYN-ACK (the SYN was not captured); the connection is otherwise normal.",
        cap,
        [F("HS008", 1, f1, isn_abs=SERVER_ISN)],
        [C(1, c, "complete", "graceful", TW, CLOSED, roles_inferred=True)],
        rules="HS008",
        shows="first packet is the SYN-ACK",
    )


@case
def hs009():
    cap = Capture()
    new_isn = 0x5E6F7081
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.syn("c", isn=new_isn, dt=1.0)
    c.synack("s")
    c.ack("c")
    c.exchange()
    c.close("c")
    return Case(
        "hs009_syn-isn-changed.pcap",
        "The unanswered SYN is repeated after 1 s with a different ISN; the SYN-ACK acknowledges the new ISN+1 and the connection is normal.",
        cap,
        [F("HS009", 1, f2, isn_abs=new_isn, previous_isn_abs=CLIENT_ISN, first_frame=f1)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="HS009",
        shows="SYN repeated with another ISN",
    )


@case
def hs010():
    cap = Capture()
    c, f1, f2, trans = build_simultaneous_open(cap)
    return Case(
        "hs010_simultaneous-open.pcap",
        "Simultaneous open (RFC 9293 figure 7): both SYNs cross, then both SYN,ACKs; data and a normal close (same packets as clean_simultaneous_open).",
        cap,
        [F("HS010", 1, f2, other_frame=f1)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        trans,
        rules="HS010",
        shows="simultaneous open",
    )


@case
def hs011():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.rst("s", with_ack=True, seq=0)  # section 3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
    return Case(
        "hs011_connection-refused.pcap",
        "The SYN is answered by RST,ACK <SEQ=0><ACK=ISN+1> (no listener, RFC 9293 section 3.10.7.1): connection refused.",
        cap,
        [F("HS011", 1, f2, syn_frame=f1)],
        [C(1, c, "refused", "reset", CLOSED, CLOSED)],
        rules="HS011",
        shows="SYN answered by RST,ACK",
    )


@case
def hs005_after_rst():
    cap = Capture()
    c = Conversation(cap)
    f1 = c.syn("c")
    f2 = c.rst("s", with_ack=True, seq=0)
    f3 = c.syn("c", isn=CLIENT_ISN, dt=1.0)  # the application retries: same ISN
    c.rst("s", with_ack=True, seq=0, dt=0.0005)
    return Case(
        "hs005_syn-retransmitted_after_rst.pcap",
        "The SYN is refused (RST,ACK), and 1 s later the client sends a SYN with the same ISN, refused again. One connection for pcapcheck (and Wireshark: a retransmission); two for Zeek, whose IsReuse() splits on any SYN once a side has sent an RST (docs/semantics.md).",
        cap,
        [
            F("HS011", 1, f2, syn_frame=f1),
            F("HS005", 1, f3, isn_abs=CLIENT_ISN, first_frame=f1),
        ],
        [C(1, c, "refused", "reset", CLOSED, CLOSED)],
        rules="HS011, HS005 (info)",
        shows="a refused SYN sent again with the same ISN",
    )


@case
def hs012():
    cap = Capture()
    c, f = build_tfo(cap, accepted=True)
    return Case(
        "hs012_syn-with-data.pcap",
        "TFO SYN with cookie and 100 bytes; the SYN-ACK acknowledges ISN+1+100 (data accepted). Same packets as clean_tfo.",
        cap,
        [F("HS012", 1, f[0], payload_len=100, accepted=True)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="HS012",
        shows="data in SYN, accepted",
    )


@case
def hs012_rejected():
    cap = Capture()
    c, f = build_tfo(cap, accepted=False)
    return Case(
        "hs012_syn-with-data_rejected.pcap",
        "TFO SYN with cookie and 100 bytes; the SYN-ACK acknowledges only ISN+1 (data not accepted, still a valid SYN-ACK), the client sends the 100 bytes again with its handshake ACK.",
        cap,
        [
            F("HS012", 1, f[0], payload_len=100, accepted=False),
            F("SQ002", 1, f[2], seq=1, payload_len=100, first_frame=f[0]),
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="HS012 (+SQ002 info)",
        shows="data in SYN, not accepted, re-sent",
    )


@case
def hs013():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    f2 = c.send("c", FIN, ts=False, dt=0.0001, deliver=False)  # FIN (no ACK) in SYN-SENT
    c.synack("s")  # ack ISN+1: FIN dropped
    f4 = c.rst("c", seq=CLIENT_ISN + 1)  # closed client: <SEQ=SEG.ACK><CTL=RST>
    return Case(
        "hs013_fin-before-established.pcap",
        "The client sends a FIN (no ACK) right after its SYN, before any SYN-ACK (RFC 9293: CLOSE in SYN-SENT deletes the TCB, no FIN); the server drops it and answers the SYN, the closed client resets the SYN-ACK.",
        cap,
        [F("HS013", 1, f2, seq=1), F("RS004", 1, f4)],
        [C(1, c, "incomplete", "reset", CLOSED, LISTEN)],
        rules="HS013 (+RS004)",
        shows="FIN in SYN-SENT",
    )


# =========================================================================== CL rules


def opened(cap: Capture) -> Conversation:
    """Handshake, 100-byte request, 1000-byte response, ACK: frames 1-6."""
    c = Conversation(cap)
    c.handshake()
    c.exchange()
    return c


@case
def cl001():
    cap = Capture()
    c = opened(cap)
    f7 = c.fin("c", dt=0.005)
    fin_seq = c.nxt["c"] - 1
    c.data("s", 1000, ack=fin_seq)
    c.ack("c")
    f10 = c.fin("c", seq=fin_seq, dt=0.3)
    c.data("s", 1000, ack=fin_seq, dt=0.2)
    c.ack("c")
    c.data("s", 1000, ack=fin_seq, dt=0.7)
    c.ack("c")
    return Case(
        "cl001_fin-unacked.pcap",
        "The client's FIN (rel seq 101) is never acknowledged: the server keeps sending data with ack 101 (never 102) for 1.2 s, even after a FIN retransmission.",
        cap,
        [
            F("CL001", 1, f7, fin_seq=101, expected_ack=102, highest_ack=101),
            F("CL006", 1, f10, fin_seq=101, first_frame=f7),
        ],
        [C(1, c, "complete", "half", FW1, CW)],
        rules="CL001 (+CL006 info)",
        shows="FIN never ACKed, peer keeps talking",
    )


@case
def cl002():
    cap = Capture()
    c = opened(cap)
    f7 = c.fin("c", dt=0.005)
    f8 = c.ack("s", ack=c.nxt["c"] - 1)  # acks the FIN's seq, not seq+1
    c.fin("s", dt=0.001)
    c.ack("c")
    return Case(
        "cl002_fin-ack-bad.pcap",
        "The server's reply to the client's FIN (rel seq 101) acknowledges 101, the FIN's own sequence number, instead of 102; its own FIN then acks 102 correctly.",
        cap,
        [F("CL002", 1, f8, ack=101, expected=102, fin_frame=f7, fin_seq=101)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CL002",
        shows="reply to FIN acks FIN seq",
    )


@case
def cl002_over():
    cap = Capture()
    c = opened(cap)
    f7 = c.fin("c", dt=0.005)
    f8 = c.ack("s", ack=c.nxt["c"] + 1, deliver=False)  # acks 103: more than was sent
    c.ack("c")  # SEG.ACK > SND.NXT: send ACK, drop
    c.fin("s", ack=c.nxt["c"], dt=0.001)
    c.ack("c")
    return Case(
        "cl002_fin-ack-bad_over.pcap",
        "The server's reply to the client's FIN (rel seq 101) acknowledges 103, more than was sent (expected 102); the client answers with an ACK and ignores it (RFC 9293 section 3.10.7.4), the server's FIN then acks 102.",
        cap,
        [F("CL002", 1, f8, ack=103, expected=102, fin_frame=f7, fin_seq=101)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CL002",
        shows="reply to FIN acks beyond the FIN",
    )


@case
def cl003():
    cap = Capture()
    c = opened(cap)
    f7 = c.fin("c", dt=0.005)
    c.ack("s")
    c.data("s", 200, dt=5.0)
    c.ack("c")
    return Case(
        "cl003_close-incomplete.pcap",
        "The client's FIN is acked, the server never sends its FIN (it sends data 5 s later, which the client acks): client FIN-WAIT-2, server CLOSE-WAIT at the end.",
        cap,
        [
            F(
                "CL003",
                1,
                f7,
                closer="client",
                closer_state=FW2,
                other="server",
                other_state=CW,
                fin_frame=f7,
            )
        ],
        [C(1, c, "complete", "half", FW2, CW)],
        rules="CL003",
        shows="only one side closed",
    )


@case
def cl004():
    cap = Capture()
    c = opened(cap)
    c.fin("c", dt=0.005)
    c.ack("s")
    f9 = c.fin("s", dt=0.0002)
    seq = c.nxt["s"] - 1
    f10 = c.fin("s", seq=seq, dt=0.2)
    f11 = c.fin("s", seq=seq, dt=0.4)
    return Case(
        "cl004_last-ack-missing.pcap",
        "Client FIN acked, then the server's FIN (rel seq 1001) is never acknowledged, even when retransmitted twice: the server stays in LAST-ACK.",
        cap,
        [
            F("CL004", 1, f9, fin_frame=f9, fin_seq=1001, expected_ack=1002),
            F("CL006", 1, f10, fin_seq=1001, first_frame=f9),
            F("CL006", 1, f11, fin_seq=1001, first_frame=f9),
        ],
        [C(1, c, "complete", "graceful", TW, LA)],
        rules="CL004 (+CL006 info)",
        shows="last ACK missing",
    )


@case
def cl005():
    cap = Capture()
    c = opened(cap)
    f7 = c.fin("c", dt=0.005)
    f8 = c.data("c", 50, dt=0.0001, deliver=False)  # new data beyond the FIN
    c.ack("s")  # acks the FIN only (102)
    c.fin("s", dt=0.0002)
    c.ack("c")  # seq 152: the sender counts its 50 bytes
    return Case(
        "cl005_data-after-fin.pcap",
        "After its FIN (rel seq 101) the client sends 50 new bytes at seq 102; the server (CLOSE-WAIT) ignores them (RFC 9293 section 3.10.7.4, seventh step) and closes normally.",
        cap,
        [F("CL005", 1, f8, seq=102, payload_len=50, fin_seq=101, fin_frame=f7)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CL005",
        shows="data after own FIN",
    )


@case
def cl006():
    cap = Capture()
    c = opened(cap)
    f7 = c.fin("c", dt=0.005)
    f8 = c.fin("c", seq=c.nxt["c"] - 1, dt=0.2)
    c.ack("s")
    c.fin("s", dt=0.0002)
    c.ack("c")
    return Case(
        "cl006_fin-retransmitted.pcap",
        "The client's FIN is retransmitted after 200 ms (same seq), then acked; normal close.",
        cap,
        [F("CL006", 1, f8, fin_seq=101, first_frame=f7)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CL006",
        shows="FIN retransmitted",
    )


@case
def cl007():
    cap = Capture()
    c, f7, f8, trans = build_simultaneous_close(cap)
    return Case(
        "cl007_simultaneous-close.pcap",
        "Simultaneous close: the FINs cross; both FIN-WAIT-1 -> CLOSING -> TIME-WAIT (same packets as clean_simultaneous_close).",
        cap,
        [F("CL007", 1, f8, other_frame=f7)],
        [C(1, c, "complete", "graceful", TW, TW)],
        trans,
        rules="CL007",
        shows="simultaneous close",
    )


@case
def cl008():
    cap = Capture()
    c = opened(cap)
    return Case(
        "cl008_open-at-end.pcap",
        "Handshake, request and response, no FIN or RST: the connection is still open when the capture ends.",
        cap,
        [F("CL008", 1, cap.frames, idle=0.0)],
        [C(1, c, "complete", "open", EST, EST)],
        rules="CL008",
        shows="connection open at capture end",
    )


@case
def cl009():
    cap = Capture()
    c = opened(cap)
    g = c.close("c")
    f11 = c.ack("s", dt=1.0)  # from a CLOSED endpoint
    return Case(
        "cl009_segment-after-close.pcap",
        "After a complete graceful close (server CLOSED at frame 10) the server sends a pure ACK 1 s later; not a retransmitted FIN nor its ACK.",
        cap,
        [F("CL009", 1, f11, closed_frame=g[3])],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CL009",
        shows="ACK after the connection closed",
    )


@case
def cl010():
    cap = Capture()
    c1, _f = build_clean_handshake_close(cap)
    close_t = cap.t / 1e6
    c2 = Conversation(cap, cisn=CLIENT_ISN + 0x00100000, sisn=SERVER_ISN + 0x00200000)
    g1 = c2.syn("c", at=close_t + 10.0)
    c2.synack("s")
    c2.ack("c")
    c2.exchange()
    c2.close("c")
    return Case(
        "cl010_time-wait-reuse.pcap",
        "A new SYN (higher ISN) on the same 4-tuple 10 s after the first connection's graceful close, while the client's TIME-WAIT (2*MSL = 240 s) still runs; the second connection is normal.",
        cap,
        [F("CL010", 2, g1, previous_connection=1, gap=10.0, limit=240.0)],
        [
            C(1, c1, "complete", "graceful", TW, CLOSED),
            C(2, c2, "complete", "graceful", TW, CLOSED),
        ],
        rules="CL010",
        shows="4-tuple reused 10 s after close",
    )


# =========================================================================== RS rules


@case
def rs001():
    cap = Capture()
    c = opened(cap)
    f7 = c.rst("c", with_ack=True, dt=0.002)
    return Case(
        "rs001_reset-established.pcap",
        "The client aborts the established connection with RST,ACK (seq = RCV.NXT of the server).",
        cap,
        [F("RS001", 1, f7)],
        [C(1, c, "complete", "reset", CLOSED, CLOSED)],
        rules="RS001",
        shows="RST in ESTABLISHED",
    )


@case
def rs002():
    cap = Capture()
    c = opened(cap)
    f7 = c.fin("c", dt=0.005)
    c.ack("s")
    f9 = c.rst("s", with_ack=True, dt=0.01)
    return Case(
        "rs002_reset-during-close.pcap",
        "The client's FIN is acked, then the server (CLOSE-WAIT) aborts with RST,ACK instead of a FIN.",
        cap,
        [F("RS002", 1, f9, fin_frame=f7)],
        [C(1, c, "complete", "reset", CLOSED, CLOSED)],
        rules="RS002",
        shows="RST after one side's FIN",
    )


@case
def rs003():
    cap = Capture()
    c = opened(cap)
    bogus = c.nxt["s"] + (1 << 30)
    f7 = c.rst("s", seq=bogus, dt=0.01)
    c.data("c", 100, dt=0.01)
    c.data("s", 1000)
    c.ack("c")
    c.close("c")
    return Case(
        "rs003_reset-out-of-window.pcap",
        "An RST (server address, seq RCV.NXT+2^30) far outside the client's receive window [1001, 65257) must be ignored; the connection goes on (second request/response) and closes normally.",
        cap,
        [
            F(
                "RS003",
                1,
                f7,
                seq=1001 + (1 << 30),
                rcv_nxt=1001,
                rcv_wnd=WIN["c"] << WSCALE,
                window_end=1001 + (WIN["c"] << WSCALE),
            )
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="RS003",
        shows="out-of-window RST ignored",
    )


@case
def rs004():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    c.synack("s")
    f3 = c.rst("c", seq=CLIENT_ISN + 1)
    return Case(
        "rs004_reset-in-handshake.pcap",
        "After the SYN-ACK the client resets (RST <SEQ=ISN+1>, no ACK, as a SYN scanner's kernel does) instead of completing the handshake.",
        cap,
        [F("RS004", 1, f3)],
        [C(1, c, "incomplete", "reset", CLOSED, LISTEN)],
        rules="RS004",
        shows="client RST after SYN-ACK",
    )


@case
def rs004_server():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    c.synack("s")
    f3 = c.rst("s", with_ack=True, seq=SERVER_ISN + 1, dt=0.0001)
    return Case(
        "rs004_reset-in-handshake_server.pcap",
        "The server, in SYN-RECEIVED, resets the connection (RST,ACK <SEQ=ISN+1>) before the client's handshake ACK.",
        cap,
        [F("RS004", 1, f3)],
        [C(1, c, "incomplete", "reset", CLOSED, CLOSED)],
        rules="RS004",
        shows="server RST in SYN-RECEIVED",
    )


@case
def rs005():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c")
    f2 = c.rst("s", with_ack=True, seq=0, ack=CLIENT_ISN + 5001, dt=0.0002)
    c.synack("s", dt=0.0003)
    c.ack("c")
    c.exchange()
    c.close("c")
    return Case(
        "rs005_reset-unacceptable-ack.pcap",
        "The SYN is answered by an RST,ACK whose ack (rel 5001) is not ISN+1: unacceptable in SYN-SENT, ignored (RFC 9293 section 3.10.7.3); the real SYN-ACK follows and the connection completes normally.",
        cap,
        [
            F(
                "RS005",
                1,
                f2,
                ack=5001,
                expected=1,
                ack_abs=CLIENT_ISN + 5001,
                expected_abs=CLIENT_ISN + 1,
            )
        ],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="RS005",
        shows="RST,ACK with wrong ack ignored",
    )


# =========================================================================== SQ rules


@case
def sq001():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    c.data("s", 1000)
    f6 = c.ack("c", ack=c.nxt["s"] + 5000)  # acks 5000 bytes never sent
    c.ack("s")  # SEG.ACK > SND.NXT: send ACK, drop
    c.data("s", 1000, dt=0.001)  # goes on from 1001: no hole
    c.ack("c")
    c.close("c")
    return Case(
        "sq001_ack-unsent-data.pcap",
        "The client acknowledges rel 6001 while the server has sent only up to 1001; the server answers with an ACK, ignores it and goes on from 1001 (no hole), so it is not capture loss.",
        cap,
        [F("SQ001", 1, f6, ack=6001, sent_max=1001)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="SQ001",
        shows="ACK beyond sent data",
    )


@case
def sq002():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    f4 = c.data("c", 100)
    f5 = c.data("c", 100, seq=CLIENT_ISN + 1, dt=0.21)
    c.data("s", 1000, dt=0.04)
    c.ack("c")
    c.close("c")
    return Case(
        "sq002_retransmission.pcap",
        "The client's 100-byte request is sent again after 210 ms with the same seq (RTO), then answered; normal close.",
        cap,
        [F("SQ002", 1, f5, seq=1, payload_len=100, first_frame=f4)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="SQ002",
        shows="data retransmission",
    )


@case
def sq003():
    cap = Capture()
    c = opened(cap)
    f7 = c.data("c", 200, dt=0.01, deliver=False)
    c.ack("s")
    f9 = c.data("c", 200, seq=CLIENT_ISN + 101, dt=0.2, deliver=False)
    c.ack("s")
    f11 = c.data("c", 200, seq=CLIENT_ISN + 101, dt=0.4, deliver=False)
    f12 = c.ack("s")
    return Case(
        "sq003_data-unacked.pcap",
        "The client's 200 bytes at rel seq 101 are never acknowledged: the server keeps answering with pure ACKs ack 101, also to the two retransmissions; the capture ends with the connection open.",
        cap,
        [
            F("SQ003", 1, f7, seq=101, bytes=200, highest_ack=101),
            F("SQ002", 1, f9, seq=101, payload_len=200, first_frame=f7),
            F("SQ002", 1, f11, seq=101, payload_len=200, first_frame=f7),
            F("CL008", 1, f12, idle=0.0),
        ],
        [C(1, c, "complete", "open", EST, EST)],
        rules="SQ003 (+SQ002, CL008 info)",
        shows="data never ACKed",
    )


@case
def sq003_dead_peer():
    cap = Capture()
    c = opened(cap)
    f7 = c.data("c", 200, dt=0.01, deliver=False)
    f8 = c.data("c", 200, seq=CLIENT_ISN + 101, dt=0.2, deliver=False)
    f9 = c.data("c", 200, seq=CLIENT_ISN + 101, dt=0.4, deliver=False)
    f10 = c.data("c", 200, seq=CLIENT_ISN + 101, dt=0.8, deliver=False)
    return Case(
        "sq003_data-unacked_dead_peer.pcap",
        "After the first exchange the server goes silent: the client's next 200 bytes (rel seq 101) are resent after 0.2, 0.4 and 0.8 s (exponential backoff, RFC 6298 section 5.5) and never acknowledged; the server sends nothing after them. A dead peer or a broken path: SQ003 at the data, although the peer sent nothing after it.",
        cap,
        [
            F("SQ003", 1, f7, seq=101, bytes=200, highest_ack=101),
            F("SQ002", 1, f8, seq=101, payload_len=200, first_frame=f7),
            F("SQ002", 1, f9, seq=101, payload_len=200, first_frame=f7),
            F("SQ002", 1, f10, seq=101, payload_len=200, first_frame=f7),
            F("CL008", 1, f10, idle=0.0),
        ],
        [C(1, c, "complete", "open", EST, EST)],
        rules="SQ003 (+SQ002, CL008 info)",
        shows="data resent with backoff, peer silent",
    )


@case
def clean_data_in_flight_at_end():
    cap = Capture()
    c = opened(cap)
    f7 = c.data("c", 200, dt=0.01, deliver=False)
    return Case(
        "clean_data_in_flight_at_end.pcap",
        "The capture stops right after the client's second request (200 bytes, rel seq 101), sent once and not yet acknowledged: data still in flight, not a deviation (no SQ003). Open at the end: CL008 (info).",
        cap,
        [F("CL008", 1, f7, idle=0.0)],
        [C(1, c, "complete", "open", EST, EST)],
        rules="- (CL008 info)",
        shows="data in flight at the end of the capture",
    )


@case
def sq004():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    f4 = c.data("c", 100, flags=PSH, deliver=False)  # no ACK bit
    f5 = c.data("c", 100, seq=CLIENT_ISN + 1, dt=0.2)  # sent again, with ACK
    c.data("s", 1000)
    c.ack("c")
    c.close("c")
    return Case(
        "sq004_ack-flag-missing.pcap",
        "After the handshake the client sends its request without the ACK flag (RFC 9293: ACK is always set in synchronized states; the server drops it), then again with ACK after 200 ms.",
        cap,
        [F("SQ004", 1, f4, seq=1), F("SQ002", 1, f5, seq=1, payload_len=100, first_frame=f4)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="SQ004 (+SQ002 info)",
        shows="data segment without ACK",
    )


@case
def sq005():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    c.data("s", 1448, flags=ACK)
    c.data("s", 1448)
    f7 = c.ack("c", window=0)
    c.ack("c", dt=0.05)  # window update
    c.data("s", 1000)
    c.ack("c")
    c.close("c")
    return Case(
        "sq005_zero-window.pcap",
        "The client advertises a zero window after 2896 bytes, reopens it 50 ms later with a window update; the transfer completes normally.",
        cap,
        [F("SQ005", 1, f7)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="SQ005",
        shows="zero window, then reopened",
    )


@case
def sq006():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    c.data("s", 1000, flags=ACK)
    c.data("s", 1000)
    cap.swap_last_two(100)  # seq 1001 arrives before seq 1
    f6 = cap.frames
    c.ack("c")
    c.close("c")
    return Case(
        "sq006_out-of-order.pcap",
        "Two server segments (rel seq 1 and 1001) arrive swapped, 0.1 ms apart (IP ids show the send order); no retransmission, one ACK covers both.",
        cap,
        [F("SQ006", 1, f6, seq=1, expected=2001)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="SQ006",
        shows="two segments swapped",
    )


# =========================================================================== CP009


@case
def cp009():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    c.data("s", 1000, flags=ACK)
    c.data("s", 1000)
    c.ack("c")
    cap.swap_last_two(5)  # the ACK of 2001 stored 5 us before the second segment
    f7 = cap.frames
    c.close("c")
    return Case(
        "cp009_capture-reordered.pcap",
        "The server answers with two 1000-byte segments; the client's ACK of both (ack 2001, frame 6) is stored 5 us before the second one (rel seq 1001, frame 7).",
        cap,
        [F("CP009", 1, f7, early_frame=f7 - 1, gap=5e-06)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP009 (info)",
        shows="ACK stored before the data it acknowledges",
    )


@case
def cp009_fin():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    c.data("s", 1000, flags=ACK)
    c.data("s", 500)
    c.fin("s", dt=0.0001)
    cap.swap_last_two(5)  # the FIN stored 5 us before the last data
    f7 = cap.frames
    c.ack("c")
    c.fin("c")
    c.ack("s")
    return Case(
        "cp009_capture-reordered_fin.pcap",
        "The server closes after its response (1000 + 500 bytes); its FIN (rel seq 1501, frame 6) is stored 5 us before the last 500 bytes (rel seq 1001, frame 7).",
        cap,
        [F("CP009", 1, f7, early_frame=f7 - 1, gap=5e-06)],
        [C(1, c, "complete", "graceful", CLOSED, TW)],
        rules="CP009 (info)",
        shows="FIN stored before the last data",
    )


def move_record(cap: Capture, src: int, dst: int, gap_us: int) -> None:
    """Store record ``src`` (0-based) at position ``dst`` > ``src`` instead, gap_us
    after the record now before it (the records between move up one place, keeping
    their times)."""
    rec = cap.records.pop(src)
    prev_t = cap.records[dst - 1][0]
    rec[0] = prev_t + gap_us
    cap.records.insert(dst, rec)
    cap.t = max(cap.t, rec[0])


@case
def cp009_synack():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    move_record(cap, 1, 3, 5)  # the SYN-ACK stored after the ACK and the request
    c.data("s", 1000)
    c.ack("c")
    c.close("c")
    return Case(
        "cp009_capture-reordered_synack.pcap",
        "The client's handshake ACK (frame 2) and request (frame 3) are stored before the server's SYN-ACK (frame 4, 5 us after the request, 35 us after the ACK) that they acknowledge.",
        cap,
        [F("CP009", 1, 4, early_frame=2, gap=3.5e-05)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP009 (info)",
        shows="SYN-ACK stored after the ACK of it",
    )


# =========================================================================== FL001


def fl001_case(name: str, flags: int, desc: str, problem: str) -> Case:
    cap = Capture()
    c = opened(cap)
    f7 = c.send(
        "c", flags, ts=False, syn_opts=False, window=WIN["c"], dt=0.01, deliver=False, advance=False
    )
    if flags & SYN:
        c.ack("s")  # RFC 9293 section 3.10.7.4: challenge ACK, drop
    c.close("c")
    suffix = "" if not name else "_" + name
    return Case(
        f"fl001_invalid-flags{suffix}.pcap",
        desc,
        cap,
        [F("FL001", 1, f7)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="FL001",
        shows=problem,
    )


CASES.append(
    fl001_case(
        "",
        SYN | FIN,
        "In an established connection the client sends a segment with SYN and FIN set (rel seq 101, no ACK); the server answers with a challenge ACK (RFC 9293 section 3.10.7.4) and drops it; normal close.",
        "SYN+FIN segment",
    )
)
CASES.append(
    fl001_case(
        "null",
        0,
        "In an established connection the client sends a segment with no flags at all (rel seq 101); the server drops it silently (ACK bit off); normal close.",
        "segment without any flag",
    )
)
CASES.append(
    fl001_case(
        "xmas",
        FIN | PSH | URG,
        "In an established connection the client sends FIN+PSH+URG without ACK (rel seq 101); the server drops it silently (ACK bit off); normal close.",
        "FIN+PSH+URG without ACK",
    )
)


# =========================================================================== CP rules


@case
def cp001():
    cap = Capture()
    c = Conversation(cap)
    c.syn("c", capture=False, at=-60.0)  # the handshake, a minute before
    c.synack("s", capture=False)
    c.ack("c", capture=False)
    f1 = c.data("c", 100, at=0.0)
    c.data("s", 1000)
    c.ack("c")
    c.close("c")
    return Case(
        "cp001_midstream.pcap",
        "The capture starts with the request of an already established connection (no handshake); roles inferred from the ports (80 is the server); normal close.",
        cap,
        [F("CP001", 1, f1)],
        [C(1, c, "none", "graceful", TW, CLOSED, roles_inferred=True)],
        rules="CP001",
        shows="no handshake in capture",
    )


@case
def cp002():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    c.data("s", 1000, flags=ACK)
    c.data("s", 1000, flags=ACK, capture=False)  # on the wire, not in the capture
    f6 = c.ack("c", dt=0.0005)
    c.data("s", 1000)
    c.ack("c")
    c.close("c")
    return Case(
        "cp002_capture-loss.pcap",
        "The server's segment rel seq 1001-2000 is missing from the capture; the client acks 2001 and the server's next segment starts at 2001, confirming the hole.",
        cap,
        [F("CP002", 1, f6, ack=2001, seen_max=1001)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP002",
        shows="data segment not captured",
    )


@case
def cp002_fin():
    cap = Capture()
    c = opened(cap)
    c.fin("c", dt=0.005, capture=False)
    f7 = c.ack("s", dt=0.0005)
    c.fin("s", dt=0.0002)
    c.ack("c")
    return Case(
        "cp002_capture-loss_fin.pcap",
        "The client's FIN (rel seq 101) is missing from the capture; the server acks 102, closes, and the client's last ACK (seq 102) confirms the FIN was sent.",
        cap,
        [F("CP002", 1, f7, ack=102, seen_max=101)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP002",
        shows="FIN not captured",
    )


@case
def cp002_pure_ack():
    cap = Capture()
    c = opened(cap)
    c.data("s", 500, capture=False)  # on the wire, not in the capture
    f7 = c.data("c", 50, dt=0.0005)  # acknowledges 1501
    c.ack("s")  # seq 1501: the hole shows
    c.close("c")
    return Case(
        "cp002_capture-loss_pure_ack.pcap",
        "The server's last data segment (rel seq 1001-1500) is missing from the capture; the client's next request acks 1501, and the server's pure ACK of it, at seq 1501, confirms the hole (Wireshark: previous segment not captured).",
        cap,
        [F("CP002", 1, f7, ack=1501, seen_max=1001)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP002",
        shows="data not captured, shown by a pure ACK",
    )


@case
def cp002_before_fin():
    cap = Capture()
    c = opened(cap)
    c.data("s", 500, capture=False)  # on the wire, not in the capture
    f7 = c.ack("c", dt=0.0005)
    c.fin("s", dt=0.005)  # seq 1501: the hole shows
    c.ack("c")
    c.fin("c", dt=0.0002)
    c.ack("s")
    return Case(
        "cp002_capture-loss_before_fin.pcap",
        "The server's last data segment (rel seq 1001-1500) is missing from the capture; the client acks 1501, and the server's FIN at seq 1501 confirms the hole.",
        cap,
        [F("CP002", 1, f7, ack=1501, seen_max=1001)],
        [C(1, c, "complete", "graceful", CLOSED, TW)],
        rules="CP002",
        shows="data not captured, shown by the FIN",
    )


@case
def cp003():
    cap = Capture(snaplen=64)
    c, _f = build_clean_handshake_close(cap)
    return Case(
        "cp003_truncated-packets.pcap",
        "clean_handshake_close captured with snaplen 64: every packet is cut (SYN options and payloads partly missing); the analysis uses the IP lengths and is otherwise clean.",
        cap,
        [F("CP003", None, 1, count=10, snaplen=64)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP003",
        shows="snaplen 64",
    )


@case
def cp004():
    cap = Capture()
    c, _f = build_clean_handshake_close(cap)
    t, data = cap.records[5]  # frame 6: client's pure ACK
    data = bytearray(data)
    csum = struct.unpack("!H", data[50:52])[0] ^ 0x1234
    data[50:52] = struct.pack("!H", csum)
    cap.records[5] = [t, bytes(data)]
    return Case(
        "cp004_bad-checksum.pcap",
        "clean_handshake_close with a wrong TCP checksum in frame 6 (the client's pure ACK of the response; its loss would change nothing, the FIN carries the same ack).",
        cap,
        [],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        findings_when_enabled=[F("CP004", None, 6, count=1, first_frame=6)],
        rules="CP004 (disabled by default)",
        shows="one bad TCP checksum",
    )


@case
def cp005():
    cap = Capture()
    c = opened(cap)
    f7 = c.send("c", ACK, raw_off=3, ts=False, deliver=False, advance=False)  # data offset 3 (< 5)
    c.close("c")
    return Case(
        "cp005_malformed-packet.pcap",
        "An extra packet (client -> server, frame 7) whose TCP data offset is 3 words (< 5) cannot be decoded; the conversation around it is a clean one.",
        cap,
        [F("CP005", None, f7)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP005",
        shows="TCP data offset 3",
    )


@case
def cp006():
    cap = Capture()
    c, _f = build_clean_handshake_close(cap)
    c2 = Conversation(cap, cport=CLIENT_PORT + 1, cisn=0x4A5B6C7D)
    c2.syn("c", dt=1.0)
    return Case(
        "cp006_capture-truncated.pcap",
        "clean_handshake_close followed by an 11th record (a new SYN) whose body is cut after 30 of 74 bytes: the file ends in the middle of a record.",
        cap,
        [F("CP006", None, None)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        cut_last=30,
        packets=10,
        rules="CP006",
        shows="last record cut short",
    )


@case
def cp007():
    cap = Capture()
    c, _f = build_clean_handshake_close(cap)
    keep = [0, 2, 3, 5, 6, 9]  # client -> server frames only
    cap.records = [cap.records[i] for i in keep]
    return Case(
        "cp007_one-sided.pcap",
        "Only the client -> server packets of clean_handshake_close (SYN, ACK, request, ACK, FIN, last ACK); the server's side is inferred from the acks.",
        cap,
        [F("CP007", 1, 1)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP007",
        shows="one direction only",
    )


@case
def cp008():
    cap = Capture()
    c = Conversation(cap)
    c.handshake()
    c.data("c", 100)
    f5 = c.data("s", 1000)
    f6 = cap.duplicate_last()
    c.ack("c")
    c.close("c")
    return Case(
        "cp008_capture-duplicates.pcap",
        "The server's response (frame 5) is stored twice: identical bytes, same timestamp (a capture duplicate, not a retransmission).",
        cap,
        [F("CP008", 1, f6, original_frame=f5)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP008",
        shows="packet stored twice",
    )


def ipid_zero(cap: Capture, ip: str) -> None:
    """``ip`` sends every datagram with IPv4 ID 0 (RFC 6864 §4 allows it for atomic
    datagrams): the ID tells no two of its packets apart."""
    counter = cap.next_ipid
    cap.next_ipid = lambda src: 0 if src == ip else counter(src)  # type: ignore[method-assign]


def resend_record(cap: Capture, frame: int, dt: float, sender: str) -> int:
    """Store the bytes of ``frame`` (1-based), sent by ``sender``, again ``dt`` seconds
    after the last record: a copy, or what a stack whose IPv4 ID is 0 and whose TCP
    timestamp clock has not ticked (RFC 7323 §5.4 allows 1 ms to 1 s per tick) sends
    when it resends that segment."""
    t = cap.t + round(dt * 1_000_000)
    return cap.add(t, cap.records[frame - 1][1], sender)


@case
def cp008_rto_resend_ipid0():
    cap = Capture()
    c = Conversation(cap)
    ipid_zero(cap, CLIENT_IP)
    c.handshake()
    f4 = c.data("c", 100)
    f5 = resend_record(cap, f4, 0.2, CLIENT_IP)
    c.data("s", 1000)
    c.ack("c")
    c.close("c")
    return Case(
        "clean_rto_resend_ipid0.pcap",
        "The client (IPv4 ID always 0, a TCP timestamp clock that did not tick) sends its 100-byte request again 200 ms later, byte for byte: a resend after a retransmission timeout (Linux's minimum RTO is 200 ms, RFC 6298's 1 s), not a packet stored twice (CP008 needs the copy within 0.5 ms). SQ002, not CP008.",
        cap,
        [F("SQ002", 1, f5, seq=1, payload_len=100, first_frame=f4)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="SQ002 (not CP008)",
        shows="RTO resend, same bytes, IP ID 0",
    )


@case
def cp008_fast_retransmit_ipid0():
    cap = Capture()
    c = Conversation(cap)
    ipid_zero(cap, CLIENT_IP)
    c.handshake()
    c.data("c", 100)
    c.data("s", 1000)
    c.ack("c", at=0.003)
    f7 = c.data("c", 500, dt=0.000010, deliver=False)
    c.data("c", 500, dt=0.000010, deliver=False)
    c.data("c", 500, dt=0.000010, deliver=False)
    c.data("c", 500, dt=0.000010, deliver=False)
    for _ in range(3):
        c.ack("s", dt=0.000020)
    f14 = c.data("c", 500, seq=CLIENT_ISN + 101, dt=0.000020)
    c.rcv["s"] = c.nxt["c"]  # with the first segment, the server has all 2,000 bytes
    c.ack("s", dt=0.000020)
    c.close("c")
    return Case(
        "clean_fast_retransmit_ipid0.pcap",
        "On a fast link (10 us between segments) the client (IPv4 ID always 0, same TCP timestamp within the millisecond) sends 4 segments of 500 bytes; the first is lost after the capture point, the server answers with three duplicate ACKs, and the client resends the first segment at once, 0.1 ms after the original, with the same IP ID, TSval, ack and window (only TSecr differs, which the duplicate key does not compare): a fast retransmit (RFC 5681 section 3.2), triggered by the duplicate ACKs stored between the two. SQ002, not CP008.",
        cap,
        [F("SQ002", 1, f14, seq=101, payload_len=500, first_frame=f7)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="SQ002 (not CP008)",
        shows="fast retransmit within 0.2 ms, same bytes, IP ID 0",
    )


@case
def cp008_duplicate_ipid0():
    cap = Capture()
    c = Conversation(cap)
    ipid_zero(cap, CLIENT_IP)
    c.handshake()
    f4 = c.data("c", 100)
    f5 = resend_record(cap, f4, 0.000020, CLIENT_IP)
    c.data("s", 1000)
    c.ack("c")
    c.close("c")
    return Case(
        "cp008_capture-duplicates_ipid0.pcap",
        "The client's request (IPv4 ID 0, as every datagram of the client) is stored a second time 20 us later, the server silent in between (a mirror port copying ingress and egress): the ID tells nothing, the same TCP timestamp and the 20 us do: CP008, not SQ002.",
        cap,
        [F("CP008", 1, f5, original_frame=f4)],
        [C(1, c, "complete", "graceful", TW, CLOSED)],
        rules="CP008",
        shows="packet stored twice 20 us apart, IP ID 0",
    )


# =========================================================================== output

PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
YAML11_SPECIAL = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def yval(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        plain = PLAIN.match(v) and v.lower() not in YAML11_SPECIAL
        return v if plain else json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(yval(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {yval(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


MANIFEST_HEADER = """\
# Expected results for the crafted captures -- generated by scripts/craft_captures.py,
# do not edit by hand (edit the script and rerun it).
#
# Per capture:
#   description  what is wrong (or shown) and what RFC 9293 expects
#   packets      number of readable frames (records) in the file
#   findings     EVERY finding the engine must report, info included, in frame order
#                (file-level findings with frame null last): rule, connection (null for
#                file-level findings), frame (1-based, null when there is none) and the
#                rule's key numbers, named as in pcapcheck.model.EVENT_FIELDS; sequence
#                numbers are relative (ISN = 0) unless the key ends in _abs; times in s.
#                The findings are those of a run with the default rule set.
#   findings_when_enabled  findings of rules that are off by default (CP004), expected
#                in addition when that rule is selected (--select CP004 or ALL).
#   connections  per connection: endpoints, handshake (complete/incomplete/refused/none),
#                close (graceful = both directions sent FIN / half = one direction sent
#                FIN / reset / open / none), final RFC 9293 state of each endpoint,
#                roles_inferred: true when no SYN (without ACK) was captured.
#   transitions  (clean and simultaneous captures) [frame, from, to] per endpoint, in
#                order, attributed as docs/semantics.md says. A capture with several
#                connections lists them in each connection entry instead, as
#                client_transitions / server_transitions.
"""


def write_manifest(path: Path, cases: list[Case]) -> None:
    out = [MANIFEST_HEADER]
    for cs in cases:
        out.extend(manifest_entry(cs))
    path.write_text("".join(out))


def manifest_entry(cs: Case) -> list[str]:
    """The manifest lines of one case (also used by scripts/craft_artefacts.py)."""
    out = [f"\n{cs.file}:\n"]
    out.append(f"  description: {json.dumps(cs.description)}\n")
    out.append(f"  packets: {cs.packets if cs.packets is not None else cs.cap.frames}\n")
    if cs.findings:
        out.append("  findings:\n")
        for fd in cs.findings:
            out.append(f"    - {yval(fd)}\n")
    else:
        out.append("  findings: []\n")
    if cs.findings_when_enabled:
        out.append("  findings_when_enabled:\n")
        for fd in cs.findings_when_enabled:
            out.append(f"    - {yval(fd)}\n")
    out.append("  connections:\n")
    for cn in cs.connections:
        out.append(f"    - {yval(cn)}\n")
    if cs.transitions:
        out.append("  transitions:\n")
        for side in ("client", "server"):
            out.append(f"    {side}: {yval(cs.transitions[side])}\n")
    return out


README_HEAD = """\
# Crafted captures: one trigger per rule, clean counterparts, expected results

Generated by `scripts/craft_captures.py` -- do not edit these files by hand.

    python scripts/craft_captures.py            # rewrites sample_pcaps/crafted/
    python scripts/craft_captures.py OUTDIR     # somewhere else

The script is deterministic: rerunning it reproduces byte-identical files (fixed
ISNs, ports, IP ids, TCP timestamp clocks and capture timestamps; no randomness, no
current time). `manifest.yaml` holds the exact expected result of every capture: all
findings (info included) with rule, connection, frame and key numbers, each
connection's handshake/close outcome and final RFC 9293 states and, for the clean and
simultaneous captures, every state transition with its frame. It was written by hand
(in the script) from RFC 9293 and `docs/semantics.md`, independently of the engine:
it is the oracle the engine's tests check against.

## How the packets look

* Ethernet + IPv4 (clean_ipv6: IPv6), classic little-endian microsecond pcap, snaplen
  262144 (cp003: 64). Every file starts at 2026-01-01T00:00:00Z; 0.5 ms between
  packets of opposite direction (1 ms RTT), 30 us between back-to-back packets.
* Client 10.0.0.1:40000 (MAC 02:00:00:00:00:01), server 10.0.0.2:80
  (02:00:00:00:00:02); simultaneous open uses 10.0.0.2:50000. Client ISN 0x3C8A1F27,
  server ISN 0x9E1B5D02 unless a case needs others (seq wrap, reuse, HS009).
* IPv4 DF, TTL 64, IP id one counter per sending host (client from 0x1000, server
  from 0x8000, +1 per packet sent, also for packets kept out of the capture).
* SYN and SYN-ACK: MSS 1460 (1440 on IPv6), SACK-permitted, timestamps, NOP,
  window scale 7 (Linux order); all later segments NOP NOP TS (TSval = host clock in
  ms, TSecr = the peer's last TSval); RSTs and crafted invalid segments carry no
  options. Windows: 64240/65160 in SYN/SYN-ACK, then 502/509 scaled by 2^7.
* Usual conversation: 3WHS, 100-byte request (client), 1000-byte response (server),
  client ACK (frames 1-6), 5 ms later a client-first 4-way close (FIN, ACK, FIN, ACK).
* TCP checksums are computed by dpkt and re-verified; `tcpdump -vv -nr F` reports no
  "incorrect" checksum except frame 6 of cp004. cp006 ends in a cut record on purpose
  (tcpdump: "truncated dump file").

## Manifest conventions

* `packets`: readable frames. Frames are 1-based over all records.
* `findings` are in frame order; file-level findings (`connection: null`) have the
  frame they point at, or `frame: null` (CP006), which sorts last. Key numbers use the
  names of `pcapcheck.model.EVENT_FIELDS`; sequence numbers are relative (ISN = 0)
  unless the key ends in `_abs`; times are seconds. Only keys whose value is
  unambiguous are given (no message texts such as FL001 `problem`, CP005 `reason`).
  `findings` are those of the default rule set; `findings_when_enabled` (cp004)
  lists what a rule that is off by default adds when selected (`--select CP004`).
* `close`: graceful = both directions sent a FIN; half = exactly one did; reset =
  ended by an accepted RST (refused and reset handshakes included); open = handshake
  done, no FIN/RST; none = never established and no RST ended it (the client's RST
  answering an unacceptable SYN-ACK does not: hs002; the server's answering an
  unacceptable handshake ACK resets the client: hs004, reset).
* `transitions`: `[frame, from, to]` per endpoint in order; the server's first state
  is LISTEN (CLOSED for a simultaneous open, where both are active openers). With
  several connections (clean_port_reuse) each connection entry carries its own
  `client_transitions` / `server_transitions` instead.

## Decisions where the rule definitions leave room

1. Unanswered SYN (HS001): nothing in the capture shows the server's state (a
   listener that dropped the SYN, or no host at all), so it is unknown (`null`); only
   a refusing RST shows it CLOSED throughout. `close: none`.
2. Crossing segments (simultaneous open/close, HS010/CL007): the first SYN/FIN
   cannot have reached its peer before the peer sent its own (the peer would have
   answered it), so it is delivered right after. Both endpoints' SYN-SENT ->
   SYN-RECEIVED (FIN-WAIT-1 -> CLOSING) are attributed to the second SYN (FIN) frame;
   ESTABLISHED (TIME-WAIT) at the reception of the peer's SYN,ACK (ACK of the FIN).
   No final ACK after the crossing SYN,ACKs (RFC 9293 figure 7).
3. The RSTs that RFC 9293 prescribes as the answer to an unacceptable segment are
   included: hs002 (client in SYN-SENT, section 3.10.7.3, `<SEQ=SEG.ACK><CTL=RST>`),
   hs004 (server in SYN-RECEIVED, section 3.10.7.4), hs013 (the client that deleted
   its TCB resets the SYN-ACK, section 3.10.7.1). Their seq equals the ack the
   receiving endpoint itself sent, i.e. its RCV.NXT as it announced it, so they are
   acceptable (exactly RCV.NXT: no challenge ACK under RFC 5961 section 3.2 either).
   The sender of such an answer keeps its state and the RST is no finding (the fault
   is the unacceptable segment's): the client answering an unacceptable SYN-ACK
   (hs002) discards it and stays in SYN-SENT (section 3.10.7.3, figure 8), the server
   has returned to LISTEN and the connection goes on (hs002_synack-bad-ack_recovered:
   a new SYN-ACK completes it; `close: none` when nothing follows). The server
   answering an unacceptable handshake ACK (hs004) stays in SYN-RECEIVED; the client,
   ESTABLISHED, is reset to CLOSED (`close: reset`), so no handshake can recover: the
   server's SYN-ACK retransmission reaches a client without TCB, which answers it
   `<SEQ=SEG.ACK><CTL=RST>` (section 3.10.7.1), the same kind of answer, and the
   listener returns to LISTEN (hs004_handshake-ack-bad_recovered). hs013's client deleted its
   TCB by a CLOSE in SYN-SENT, which the engine does not follow (it keeps the client
   in SYN-SENT, then ESTABLISHED at the SYN-ACK): its RST is reported as RS004
   (warning), a reset before the handshake completed. Not RS003 (in the window), not
   HS003 (the SYN-ACK got an answer).
4. An acceptable handshake-completing ACK is any SND.UNA < ack =< SND.NXT (section
   3.10.7.4), and its seq is the client's SND.NXT: in clean_tfo the client's first
   ACK has seq 101 (after its 100 SYN bytes) and ack 1001 (the SYN-ACK and the
   server's 1000 early bytes) -- no HS004, although HS004's summary says "ack !=
   server ISN+1 or seq != client ISN+1". The server answering in SYN-RECEIVED after it
   accepted a TFO SYN is allowed (RFC 7413), so no HS007 there either. hs007 avoids
   the question: its handshake ACK (ack 1) crossed the server's early data.
5. A repeated SYN with a different ISN (HS009) is not also HS005, and the first SYN
   is not HS001 (the attempt was answered); the relative numbering of the client
   direction uses the ISN the SYN-ACK acknowledged.
6. HS008: no SYN without ACK was captured, so `roles_inferred: true`; the SYN-ACK's
   sender and the well-known port agree on the server.
7. A FIN without ACK in SYN-SENT is HS013, not FL001. FL001 covers flag combinations
   that are never valid: no flags, SYN+FIN, SYN+RST, FIN+PSH+URG without ACK. A
   segment with invalid flags is reported only as FL001 and otherwise ignored (no
   SYN, FIN, data or state change; the later real FIN at the same seq is not CL006).
   The receiver's challenge ACK to the SYN+FIN (section 3.10.7.4) is a plain ACK.
8. CL002 vs CL001: CL002 is the peer's reply to a FIN -- its first segment after the
   FIN that carries no data (pure ACK or its own FIN) -- acking something other than
   FIN seq+1: the FIN's own seq (cl002) or more than was sent (cl002_over; reported
   as CL002, not SQ001; the client answers it with an ACK and ignores it). CL001 is a
   FIN that stays unacknowledged to the end although the capture goes on (cl001:
   the peer keeps sending data with ack = FIN seq); the peer is nevertheless in
   CLOSE-WAIT (the FIN was delivered), the FIN sender in FIN-WAIT-1, `close: half`.
9. CL005: the bytes beyond the FIN are ignored by the receiver (CLOSE-WAIT) and are
   not also SQ003; the sender's last ACK has seq 152 (it counts its 50 bytes).
10. CL009 `closed_frame` is the ACK of the second FIN; CL010 `gap` is measured from
    the previous connection's last frame to the new SYN (limit 2*MSL = 240 s); the
    previous connection keeps its final TIME-WAIT.
11. RS003: the window is the receiver's last announced ack and scaled window
    ([1001, 1001 + 502*128)). RS005: an RST,ACK in SYN-SENT with a wrong ack changes
    nothing (no HS011).
12. Retransmission (SQ002, info) is any data segment whose bytes were sent before,
    including data first sent in a segment that the receiver had to drop (hs007
    client variant, sq004) and TFO data re-sent after a SYN-ACK that did not accept
    it (hs012_rejected). Not: capture duplicates (CP008), keep-alives (len 0 or 1 at
    SND.NXT-1 after idle), zero-window probes (len 0 at SND.UNA-1).
13. SQ003 points at the first unacknowledged data segment; the connection is open at
    the end, so CL008 (info) is reported too. SQ005: one finding per zero-window
    episode (the first segment advertising 0), not for the repeats answering probes.
14. SQ006 points at the late segment (lower seq, arriving < 3 ms after the higher
    one) with `expected` = the next sequence number expected at that moment (2001);
    the earlier-arriving higher segment is not CP002 (the gap is filled at once).
15. CP002 points at the ACK that first covers bytes never seen (`seen_max` = highest
    sequence end seen from the sender); the sender's later segments confirm the hole.
    The FIN variant: the server acks a FIN that is not in the capture.
16. CP003 and CP004 are file-level (`connection: null`) counts pointing at the first
    affected frame. Options cut by the snaplen are truncation, not malformation. The
    segment with the bad checksum is analysed normally (offload); it is a redundant
    pure ACK, so the result is the same either way.
17. CP005: the undecodable packet is an extra one (a copy of the client's ACK with
    data offset 3) and belongs to no connection. CP006: the cut record (a SYN of
    another connection) is not a frame and creates no connection.
18. CP007: the server side is inferred from the client's acks: handshake complete,
    graceful close, server CLOSED after the client's last ACK.

## Files

| file | rule(s) | what the capture shows |
|------|---------|------------------------|
"""


def write_readme(path: Path, cases: list[Case]) -> None:
    rows = [f"| {cs.file} | {cs.rules} | {cs.shows} |\n" for cs in cases]
    path.write_text(README_HEAD + "".join(rows))


def sort_key(cs: Case) -> tuple:
    return (cs.file.startswith("clean_"), cs.file)


def main() -> None:
    outdir = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parent.parent / "sample_pcaps" / "crafted"
    )
    outdir.mkdir(parents=True, exist_ok=True)
    cases = sorted(CASES, key=sort_key)
    names = [cs.file for cs in cases]
    assert len(names) == len(set(names)), "duplicate file name"
    for cs in cases:
        # findings in frame order, file-level ones without a frame last
        frames = [(fd["frame"] is None, fd["frame"] or 0) for fd in cs.findings]
        assert frames == sorted(frames), cs.file
        cs.cap.write(outdir / cs.file, cut_last=cs.cut_last)
    write_manifest(outdir / "manifest.yaml", cases)
    write_readme(outdir / "README.md", cases)
    print(f"wrote {len(cases)} captures, manifest.yaml and README.md to {outdir}")


if __name__ == "__main__":
    main()
