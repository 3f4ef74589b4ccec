"""Random TCP traffic for tests: hypothesis strategies for connections and captures.

:func:`lives` draws one TCP connection's life as its two endpoints would send it
(:class:`Life`): the opening (the three-way handshake of RFC 9293 §3.5, refused by a
RST, unanswered, or a simultaneous open), data both ways cut by the MSS and
acknowledged every second segment, sometimes an idle spell with a keep-alive or a
zero window, and the close (the four-way close of §3.6 begun by either side, a
simultaneous close, a half-close with data after the FIN, an abort by RST, or none).
ISNs are anywhere, a tenth of them within a few kilobytes of 2^32 so that the sequence
numbers wrap; IPv4 or IPv6; with or without the timestamps and window scale options.
Then the faults of the capture (:data:`FAULTS`): a segment missing, two adjacent
segments swapped, a packet stored twice (same IP ID; at once, or 0.2 to 0.8 s later),
a segment resent later (new IP ID; a data segment before the close, as a fifth of
the lives have and nothing else), the same segment resent 8 to 15 times, an idle gap
(some exactly the timers of an analysis), a wrong TCP checksum, a record cut by the
snaplen (in the payload, the options, the TCP or the IP header), a record whose
timestamp goes back (the capture's clock stepped), a SACK block, extra flags (ECE, CWR,
URG, PSH). Most lives have none: clean connections are most of real traffic, and the
ones the fast paths of pcapcheck summarise.

:func:`captures` draws many lives overlapping in time, some of them on the 4-tuple of
an earlier one (port reuse, quickly or after a while), and :func:`write_pcap` writes
them as a pcap file (Ethernet, sometimes with 802.1Q tags or an MPLS label stack, IPv4 or IPv6, TCP with
correct checksums, the IP ID
counting up per sender, integer microseconds). Everything is a pure function of the
drawn values: the same draw gives the same bytes.
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass, replace
from pathlib import Path

from hypothesis import strategies as st

M32 = 0xFFFFFFFF
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

#: Capture time of the first record: 2026-01-01T00:00:00Z (seconds since the epoch).
EPOCH = 1_767_225_600

#: How a life opens: the three-way handshake, a SYN refused by RST, a SYN nobody
#: answers (retransmitted with backoff), both ends sending SYN (RFC 9293 §3.5, figure 7).
OPENINGS = ("handshake", "refused", "unanswered", "simultaneous")
#: How a life closes: the four-way close, the same with the FIN acknowledged by the
#: peer's FIN (three segments), or with the first FIN on a data segment, both FINs
#: crossing, a half-close (the peer sends data
#: after the first FIN), an abort by RST (with ACK or without), or not at all.
CLOSES = ("fin", "fin3", "fin_data", "simultaneous", "half", "rst", "rst_bare", "open")
#: Faults of the capture: (kind, position, amount) applied to a life's packets.
FAULTS = (
    "loss",
    "reorder",
    "duplicate",
    "retransmit",
    "resend_lost",
    "idle",
    "badsum",
    "cut",
    "clockback",
    "resend_many",
    "sack",
    "flags",
    "resend_data",
)
#: Flags the "flags" fault adds to a segment (ECN's, URG, PSH).
EXTRA_FLAGS = (ECE, CWR, ECE | CWR, URG, PSH)
#: Gaps of the idle fault in µs: some exactly the timers of an analysis (the default
#: close delay 5 s and idle timeout 300 s, the tests' shorter 1 s, 0.2 s, 50 ms, 20 ms),
#: where a fast path and the engine must compare times the same way.
IDLE_GAPS = (1_000_000, 5_000_000, 6_000_000, 300_000_000, 310_000_000, 200_000, 50_000, 20_000)
#: Delays of a port reuse after the previous life's last packet, in µs: quick (within
#: the close delay), exactly the close delay or 2·MSL (240 s), after a while.
REUSE_DELAYS = (1_000, 300_000, 2_000_000, 5_000_000, 7_000_000, 60_000_000, 240_000_000)
#: Round-trip times in µs (2: many segments of a life in the same microsecond).
RTTS = (2, 200, 5_000, 40_000, 250_000)
#: What a life's frames carry between the Ethernet header and IP: nothing, an 802.1Q
#: tag, 802.1ad + 802.1Q tags (QinQ), an MPLS label stack of two entries.
ENCAPS = ("", "vlan", "qinq", "mpls")
#: Server ports (the engine guesses roles from well-known ports midstream).
SERVER_PORTS = (80, 443, 22, 8080, 5201, 3306)

#: Payload bytes: a segment's are the pattern from its sequence number's low byte.
_PATTERN = bytes(range(256)) * 260


@dataclass(frozen=True)
class Life:
    """One connection's life as drawn: see the module docstring. Times in µs."""

    v6: bool
    timestamps: bool
    wscale: bool
    isn_c: int
    isn_s: int
    mss: int
    opening: str
    eager: bool  # the client's first data on the handshake's ACK
    messages: tuple[tuple[bool, int], ...]  # (sent by the client, bytes)
    close: str
    closer_client: bool
    rtt: int
    pause: tuple[int, int, str]  # (after message, µs, "" | "keepalive" | "zerowin")
    faults: tuple[tuple[str, int, int], ...]
    start: int
    reuse: tuple[int, int] | None  # (an earlier life, delay after its end in µs)
    encap: str = ""  # beneath Ethernet: "" (IP), "vlan", "qinq", "mpls" (ENCAPS)


@dataclass
class Pkt:
    """One TCP segment of a life, in capture order. ``ident``: packets stored twice
    share it (and so their IP ID); ``ts`` in µs from the capture's start."""

    ts: int
    client: bool
    seq: int
    ack: int
    flags: int
    length: int
    window: int
    ident: int
    syn_options: bool = False
    bad_sum: bool = False
    cut: int = 0  # the record cut by the snaplen: in the payload (1), the TCP options
    # (2), the TCP header (3) or the IP header (4, the last two malformed)
    back: int = 0  # µs the record's timestamp is written before ``ts`` (the clock went back)
    sack: bool = False  # a SACK block (RFC 2018) beyond SEG.ACK


@st.composite
def _isn(draw: st.DrawFn) -> int:
    """An ISN: anywhere (nine in ten), else within 60 kB of 2^32 (the sequence
    numbers of a life that sends that much wrap)."""
    if draw(st.integers(0, 9)) < 9:
        return draw(st.integers(0, M32))
    return M32 - draw(st.sampled_from((0, 1, 1500, 6000, 60000)))


@st.composite
def lives(draw: st.DrawFn, index: int = 0, span: int = 2_000_000) -> Life:
    """One connection's life (:class:`Life`) starting within ``span`` µs; ``index``: its
    place in the capture (a life may reuse the 4-tuple of an earlier one)."""
    kind = draw(st.integers(0, 99))
    opening = (
        "handshake"
        if kind < 82
        else "refused"
        if kind < 88
        else "unanswered"
        if kind < 94
        else "simultaneous"
    )
    sizes = st.one_of(st.integers(1, 3000), st.integers(1, 40000), st.just(0))
    messages = tuple(draw(st.lists(st.tuples(st.booleans(), sizes), max_size=5)))
    close_kind = draw(st.integers(0, 99))
    close = (
        "fin"
        if close_kind < 66
        else "fin3"
        if close_kind < 71
        else "fin_data"
        if close_kind < 76
        else "simultaneous"
        if close_kind < 81
        else "half"
        if close_kind < 87
        else "rst"
        if close_kind < 92
        else "rst_bare"
        if close_kind < 94
        else "open"
    )
    pause = (0, 0, "")
    if draw(st.integers(0, 9)) == 9:
        pause = (
            draw(st.integers(0, 5)),
            draw(st.sampled_from((500_000, 3_000_000, 5_000_000, 30_000_000, 300_000_000))),
            draw(st.sampled_from(("", "keepalive", "zerowin"))),
        )
    faults: tuple[tuple[str, int, int], ...] = ()
    with_faults = draw(st.integers(0, 9))
    if with_faults in (6, 7):  # data sent again, nothing else: still summarised
        faults = tuple(
            draw(
                st.lists(
                    st.tuples(st.just("resend_data"), st.integers(0, 255), st.integers(0, 15)),
                    min_size=1,
                    max_size=3,
                )
            )
        )
    elif with_faults >= 8:  # a fifth or so with capture faults
        faults = tuple(
            draw(
                st.lists(
                    st.tuples(st.sampled_from(FAULTS), st.integers(0, 255), st.integers(0, 15)),
                    min_size=1,
                    max_size=3,
                )
            )
        )
    reuse = None
    if index and draw(st.integers(0, 9)) == 9:
        delay = draw(st.sampled_from(REUSE_DELAYS))
        reuse = (draw(st.integers(0, index - 1)), delay)
    return Life(
        v6=draw(st.integers(0, 3)) == 3,
        timestamps=draw(st.booleans()),
        wscale=draw(st.booleans()),
        isn_c=draw(_isn()),
        isn_s=draw(_isn()),
        mss=draw(st.sampled_from((1460, 536, 1220, 8960))),
        opening=opening,
        eager=draw(st.integers(0, 4)) == 4,
        messages=messages,
        close=close,
        closer_client=draw(st.booleans()),
        rtt=draw(st.sampled_from(RTTS)),
        pause=pause,
        faults=faults,
        start=draw(st.integers(0, span)),
        reuse=reuse,
        encap=ENCAPS[max(draw(st.integers(0, 9)) - 6, 0)],
    )


@st.composite
def captures(draw: st.DrawFn, min_size: int = 10, max_size: int = 120) -> list[Life]:
    """Between ``min_size`` and ``max_size`` lives overlapping in time (about 30 ms of
    starts a life), some on the 4-tuple of an earlier one."""
    n = draw(st.integers(min_size, max_size))
    return [draw(lives(i, span=30_000 * n)) for i in range(n)]


class _Sim:
    """The two endpoints of one life sending in turn: packets in capture order."""

    def __init__(self, life: Life):
        self.life = life
        self.t = 0
        self.pkts: list[Pkt] = []
        self.nxt = {True: life.isn_c, False: life.isn_s}
        self.last: bool | None = None
        self.win = {True: 502 if life.wscale else 64240, False: 502 if life.wscale else 65160}
        self.ident = 0

    def send(
        self,
        client: bool,
        flags: int,
        length: int = 0,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        after: int | None = None,
    ) -> Pkt:
        """Append one segment of ``client``'s side (seq: its SND.NXT, ack: the peer's)."""
        if after is not None:
            self.t += after
        elif self.pkts:
            self.t += self.life.rtt // 2 if client != self.last else 15
        self.last = client
        if seq is None:
            seq = self.nxt[client]
            self.nxt[client] = (seq + length + (flags & SYN and 1) + (flags & FIN and 1)) & M32
        if ack is None:
            ack = self.nxt[not client] if flags & ACK else 0
        if window is None:
            window = self.win[client]
        if flags & SYN:
            window = 64240 if client else 65160
        elif window:
            window -= 8 * (self.ident % 5)  # the receive buffer fills and drains
        self.ident += 1
        pkt = Pkt(self.t, client, seq, ack, flags, length, window, self.ident, bool(flags & SYN))
        self.pkts.append(pkt)
        return pkt

    def message(self, client: bool, size: int) -> None:
        """``size`` bytes from ``client``'s side in MSS segments, the peer's ACK after
        every second one and after the last."""
        mss = self.life.mss - (12 if self.life.timestamps else 0)
        sent = 0
        count = 0
        while sent < size:
            n = min(mss, size - sent)
            sent += n
            count += 1
            self.send(client, ACK | (PSH if sent == size else 0), n)
            if count % 2 == 0 or sent == size:
                self.send(not client, ACK)


def _open(sim: _Sim) -> bool:
    """The opening; True when the connection was established."""
    life = sim.life
    if life.opening == "simultaneous":
        sim.send(True, SYN)
        sim.send(False, SYN, after=20)
        isn_c, isn_s = life.isn_c, life.isn_s
        sim.send(True, SYN | ACK, seq=isn_c, ack=(isn_s + 1) & M32)
        sim.send(False, SYN | ACK, seq=isn_s, ack=(isn_c + 1) & M32, after=20)
        return True
    sim.send(True, SYN)
    if life.opening == "unanswered":
        for backoff in (1_000_000, 2_000_000, 4_000_000)[: 1 + life.isn_s % 3]:
            sim.send(True, SYN, seq=life.isn_c, after=backoff)
        return False
    if life.opening == "refused":
        sim.send(False, RST | ACK, seq=0, ack=(life.isn_c + 1) & M32)
        if life.isn_s % 2:  # the client tries again
            sim.send(True, SYN, seq=life.isn_c, after=1_000_000)
            sim.send(False, RST | ACK, seq=0, ack=(life.isn_c + 1) & M32)
        return False
    sim.send(False, SYN | ACK)
    messages = life.messages
    if not (life.eager and messages and messages[0][0] and messages[0][1]):
        sim.send(True, ACK)
    return True


def _pause(sim: _Sim, kind: str, gap: int) -> None:
    """An idle spell of ``gap`` µs: nothing, a keep-alive (RFC 9293 §3.8.4: SEG.SEQ =
    SND.NXT - 1, no data or one byte) and its ACK, or a zero window and its update."""
    if kind == "keepalive":
        side = gap % 3 != 0
        one = (gap // 1000) % 2
        sim.send(side, ACK, one, seq=(sim.nxt[side] - 1) & M32, after=gap)
        sim.send(not side, ACK)
    elif kind == "zerowin":
        side = gap % 3 == 0
        sim.send(side, ACK, window=0)
        sim.send(side, ACK, after=gap)
    else:
        sim.t += gap


def _close(sim: _Sim) -> None:
    life = sim.life
    a = life.closer_client
    b = not a
    if life.close in ("fin", "half"):
        sim.send(a, FIN | ACK)
        sim.send(b, ACK)
        if life.close == "half":
            sim.message(b, 1 + life.isn_c % 3000)
        sim.send(b, FIN | ACK, after=life.rtt)
        sim.send(a, ACK)
    elif life.close == "fin_data":
        sim.send(a, FIN | PSH | ACK, 1 + life.isn_s % 1000)
        sim.send(b, ACK)
        sim.send(b, FIN | ACK, after=life.rtt)
        sim.send(a, ACK)
    elif life.close == "fin3":
        sim.send(a, FIN | ACK)
        sim.send(b, FIN | ACK)
        sim.send(a, ACK)
    elif life.close == "simultaneous":
        ack_a, ack_b = sim.nxt[b], sim.nxt[a]
        sim.send(a, FIN | ACK, ack=ack_a)
        sim.send(b, FIN | ACK, ack=ack_b, after=10)
        sim.send(a, ACK)
        sim.send(b, ACK, after=10)
    elif life.close == "rst":
        sim.send(a, RST | ACK)
    elif life.close == "rst_bare":
        sim.send(a, RST, ack=0)


def simulate(life: Life) -> list[Pkt]:
    """The packets of ``life`` as both endpoints send them, then the capture's faults
    applied in order (times in µs from the life's first packet)."""
    sim = _Sim(life)
    if _open(sim):
        after, gap, kind = life.pause
        for i, (client, size) in enumerate(life.messages):
            if i == after and gap:
                _pause(sim, kind, gap)
            if size:
                sim.message(client, size)
        if gap and after >= len(life.messages):
            _pause(sim, kind, gap)
        _close(sim)
    pkts = sim.pkts
    ident = sim.ident
    for kind, where, amount in life.faults:
        if not pkts:
            break
        i = where % len(pkts)
        if kind == "loss":
            del pkts[i]
        elif kind == "reorder" and i + 1 < len(pkts):
            first, second = pkts[i], pkts[i + 1]
            pkts[i] = replace(second, ts=first.ts)
            pkts[i + 1] = replace(first, ts=second.ts)
        elif kind == "duplicate":
            if amount < 12:  # stored twice at once
                pkts.insert(i + 1, replace(pkts[i]))
            else:  # the copy stored 0.2 to 0.8 s later (CP008's max_interval is 0.5 s)
                copy = replace(
                    pkts[i], ts=pkts[i].ts + (200_000, 500_000, 500_001, 800_000)[amount - 12]
                )
                j = i + 1
                while j < len(pkts) and pkts[j].ts <= copy.ts:
                    j += 1
                pkts.insert(j, copy)
        elif kind in ("retransmit", "resend_lost"):
            ident += 1
            copy = replace(pkts[i], ident=ident)
            if kind == "resend_lost":
                del pkts[i]
            j = min(i + 1 + amount, len(pkts))
            before = pkts[j - 1].ts if j else copy.ts
            rto = 200_000 + amount * 100_000
            copy.ts = (before + pkts[j].ts) // 2 if j < len(pkts) else before + rto
            pkts.insert(j, copy)
        elif kind == "resend_data":  # a data segment sent again before the first FIN
            data = [k for k, p in enumerate(pkts) if p.length >= 2 and not p.flags & (SYN | FIN)]
            fins = [k for k, p in enumerate(pkts) if p.flags & (FIN | RST)]
            if data:
                i = data[where % len(data)]
                ident += 1
                j = min(i + 1 + amount, fins[0] if fins else len(pkts))
                at = (pkts[j - 1].ts + pkts[j].ts) // 2 if j < len(pkts) else pkts[-1].ts + 1
                pkts.insert(j, _resent(pkts, i, j, ident, at))
        elif kind == "resend_many":  # up to Zeek's 10th retransmission and past it
            resent = pkts[i]
            for k in range(8 + amount):
                ident += 1
                j = min(i + 1 + 2 * k, len(pkts))
                at = pkts[j - 1].ts + 1 if j == len(pkts) else pkts[j].ts
                pkts.insert(j, _resent(pkts, pkts.index(resent), j, ident, at))
        elif kind == "idle":
            gap = IDLE_GAPS[amount % len(IDLE_GAPS)]  # exactly, after the previous packet
            shift = gap - (pkts[i].ts - pkts[i - 1].ts) if i else gap
            for p in pkts[i:]:
                p.ts += shift
        elif kind == "badsum":
            pkts[i] = replace(pkts[i], bad_sum=True)
        elif kind == "cut":
            pkts[i] = replace(pkts[i], cut=1 + amount % 4 if amount < 8 else 1)
        elif kind == "sack":
            pkts[i] = replace(pkts[i], sack=True)
        elif kind == "flags":
            pkts[i] = replace(pkts[i], flags=pkts[i].flags | EXTRA_FLAGS[amount % len(EXTRA_FLAGS)])
        elif kind == "clockback":
            pkts[i] = replace(pkts[i], back=(1, 50, 20_000, 2_000_000, 9_000_000)[amount % 5])
    return pkts


def _resent(pkts: list[Pkt], i: int, j: int, ident: int, ts: int) -> Pkt:
    """Packet ``i`` sent again (``ident``, at ``ts``) to go before position ``j``, with
    the acknowledgment its sender sends by then (its latest)."""
    old = pkts[i]
    ack = old.ack
    for p in pkts[i:j]:
        if p.client == old.client and p.flags & ACK:
            ack = p.ack
    return replace(old, ident=ident, ts=ts, ack=ack)


@dataclass
class Placed:
    """A life placed in the capture: its 4-tuple (client first) and packets with
    absolute times."""

    life: Life
    client: tuple[bytes, int]
    server: tuple[bytes, int]
    pkts: list[Pkt]
    tag: int  # the VLAN ID and MPLS labels derive from it (the first life's on a 4-tuple)


def _address(v6: bool, net: int, host: int) -> bytes:
    if v6:
        return bytes.fromhex("fd00000000000000000000000000") + bytes((net, host))
    return bytes((10, net, host >> 8 & 0xFF, host & 0xFF))


def place(drawn: list[Life]) -> list[Placed]:
    """Give every life its 4-tuple and start: a fresh one (client port 20000 + its
    index) or, for a reuse, the earlier life's, starting ``delay`` µs after the latest
    life on that 4-tuple ended."""
    placed: list[Placed] = []
    end_of: dict[tuple, int] = {}
    for i, life in enumerate(drawn):
        if life.reuse is not None:
            earlier, delay = life.reuse
            first = placed[earlier]
            client, server = first.client, first.server
            life = replace(life, v6=first.life.v6, encap=first.life.encap)
            tag = first.tag
            start = max(life.start, end_of[(client, server)] + delay)
        else:
            client = (_address(life.v6, 1, 1 + i % 5), 20000 + i)
            server = (_address(life.v6, 2, 1 + i % 3), SERVER_PORTS[i % len(SERVER_PORTS)])
            start = life.start
            tag = i
        pkts = simulate(life)
        for p in pkts:
            p.ts += start
        end_of[(client, server)] = pkts[-1].ts if pkts else start
        placed.append(Placed(life, client, server, pkts, tag))
    return placed


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(array("H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    total = ~total & 0xFFFF
    # the one's complement sum of native words is the byte swap of the big-endian one's
    return total if sys.byteorder == "big" else (total >> 8 | total << 8) & 0xFFFF


def _tcp_options(life: Life, pkt: Pkt, tsval: int, tsecr: int) -> bytes:
    ts = struct.pack("!BBII", 8, 10, tsval, tsecr) if life.timestamps else b""
    if pkt.syn_options:
        opts = struct.pack("!BBH", 2, 4, life.mss)
        opts += b"\x04\x02" + ts if ts else b"\x04\x02\x01\x01"
        if life.wscale:
            opts += b"\x01\x03\x03\x07"
        return opts
    opts = b"\x01\x01" + ts if ts and not pkt.flags & RST else b""
    if pkt.sack:
        opts += struct.pack("!BBBBII", 1, 1, 5, 10, pkt.ack + 1000 & M32, pkt.ack + 2000 & M32)
    return opts


def _link(encap: str, n: int, ethertype: int) -> bytes:
    """The bytes after the MAC addresses of a frame (``encap``, see :data:`ENCAPS`;
    VLAN IDs and labels from ``n``) whose IP header has ``ethertype``."""
    vid = 1 + n % 4000
    if encap == "vlan":
        return struct.pack("!HHH", 0x8100, vid, ethertype)
    if encap == "qinq":
        return struct.pack("!HHHHH", 0x88A8, 100 + n % 7, 0x8100, vid, ethertype)
    if encap == "mpls":  # two label stack entries, the second the bottom of the stack
        return struct.pack("!HII", 0x8847, 16 + n << 12 | 64, 1000 + n << 12 | 1 << 8 | 64)
    return struct.pack("!H", ethertype)


def frames(placed: list[Placed]) -> list[tuple[int, bytes, int]]:
    """Every packet of ``placed`` as ``(time µs, Ethernet frame, bytes captured)`` in
    capture order (by time; a life's own order kept). IP IDs count up per sender in
    capture order (a packet stored twice keeps its first copy's); TSval is the
    sender's clock in ms, TSecr the last TSval seen from the peer."""
    order = sorted(
        ((p.ts, n, k) for n, pl in enumerate(placed) for k, p in enumerate(pl.pkts)),
    )
    ip_ids: dict[bytes, int] = {}
    ids_of: dict[tuple[int, int], int] = {}
    last_tsval: dict[tuple[int, bool], int] = {}
    out = []
    for ts, n, k in order:
        pl = placed[n]
        life, pkt = pl.life, pl.pkts[k]
        src, dst = (pl.client, pl.server) if pkt.client else (pl.server, pl.client)
        ip_id = ids_of.get((n, pkt.ident))
        if ip_id is None:
            ip_id = ip_ids.get(src[0], (life.isn_c if pkt.client else life.isn_s) & 0xFFFF)
            ip_ids[src[0]] = (ip_id + 1) & 0xFFFF
            ids_of[(n, pkt.ident)] = ip_id
        tsval = ((life.isn_s if pkt.client else life.isn_c) + ts // 1000) & M32
        tsecr = last_tsval.get((n, not pkt.client), 0) if pkt.flags & ACK else 0
        last_tsval[(n, pkt.client)] = tsval
        options = _tcp_options(life, pkt, tsval, tsecr)
        off = 5 + len(options) // 4
        payload = _PATTERN[pkt.seq & 0xFF : (pkt.seq & 0xFF) + pkt.length]
        header = struct.pack(
            "!HHIIHHHH",
            src[1],
            dst[1],
            pkt.seq,
            pkt.ack,
            off << 12 | pkt.flags,
            pkt.window,
            0,
            0,
        )
        segment = header + options + payload
        if life.v6:
            pseudo = src[0] + dst[0] + struct.pack("!IxxxB", len(segment), 6)
        else:
            pseudo = src[0] + dst[0] + struct.pack("!xBH", 6, len(segment))
        checksum = _checksum(pseudo + segment)
        if pkt.bad_sum:
            checksum ^= 0x5A5A
        segment = segment[:16] + struct.pack("!H", checksum) + segment[18:]
        if life.v6:
            ip = struct.pack("!IHBB", 6 << 28, len(segment), 6, 64) + src[0] + dst[0]
            ethertype = 0x86DD
        else:
            ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(segment), ip_id, 0x4000, 64, 6, 0)
            ip += src[0] + dst[0]
            ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
            ethertype = 0x0800
        macs = (b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02")
        eth = (macs[1] + macs[0] if pkt.client else macs[0] + macs[1]) + _link(
            life.encap, pl.tag, ethertype
        )
        frame = eth + ip + segment
        ip_end = len(eth) + len(ip)
        captured = (
            len(frame),
            len(frame) - len(payload) + min(len(payload), 4),
            ip_end + 20 + min(len(options), 3),
            ip_end + 11,
            len(eth) + 9,
        )[pkt.cut]
        out.append((max(ts - pkt.back, 0), frame, captured))
    return out


#: The containers :func:`write_pcap` writes: pcap with microseconds or nanoseconds,
#: pcapng with the default resolution (µs) or ``if_tsresol`` 9 (ns). With nanoseconds,
#: each time gets 333 ns more (digits below the microsecond).
CONTAINERS = ("pcap", "pcap-ns", "pcapng", "pcapng-ns")


def write_pcap(path: str | Path, drawn: list[Life], container: str = "pcap") -> int:
    """Write the lives ``drawn`` (see :func:`place`) to ``path`` in ``container`` (see
    :data:`CONTAINERS`; Ethernet, snaplen 65535, little-endian); returns the number of
    records."""
    records = frames(place(drawn))
    nano = container.endswith("-ns")
    with open(path, "wb") as out:
        if container.startswith("pcapng"):
            out.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
            options = struct.pack("<HHB3x", 9, 1, 9) if nano else b""
            out.write(_block(1, struct.pack("<HHI", 1, 0, 65535) + options + b"\0" * 4))
            for ts, frame, captured in records:
                stamp = EPOCH * 1_000_000 + ts
                if nano:
                    stamp = stamp * 1000 + 333
                data = frame[:captured] + b"\0" * (-captured % 4)
                head = struct.pack("<IIIII", 0, stamp >> 32, stamp & M32, captured, len(frame))
                out.write(_block(6, head + data))
            return len(records)
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        out.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1))
        for ts, frame, captured in records:
            sec, usec = divmod(ts, 1_000_000)
            frac = usec * 1000 + 333 if nano else usec
            out.write(struct.pack("<IIII", EPOCH + sec, frac, captured, len(frame)))
            out.write(frame[:captured])
    return len(records)


def _block(kind: int, body: bytes) -> bytes:
    """A pcapng block: type, total length, ``body``, total length."""
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
