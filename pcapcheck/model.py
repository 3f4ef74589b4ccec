"""Model types shared by every stage of pcapcheck.

Data flows one way::

    reader ─► decoder ─► tracker ─► fsm ─► detectors ─► catalog ─► report
  (Record)  (Segment)  (Connection)       (Event)     (Finding)

Only the types in this module cross stage boundaries.

Conventions used everywhere:

* ``frame`` numbers are 1-based and count every record in the capture file, exactly
  as Wireshark numbers frames (non-TCP and undecodable records included).
* ``ts`` timestamps are float **seconds** since the Unix epoch.
* ``seq``/``ack`` in a :class:`Segment` are **absolute** 32-bit TCP sequence numbers
  (SEG.SEQ, SEG.ACK); relative numbers (ISN = 0, as Wireshark shows them) are
  computed by the tracker and only appear in event data and messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# TCP flag bits (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

_FLAG_NAMES = (
    (SYN, "SYN"),
    (FIN, "FIN"),
    (RST, "RST"),
    (PSH, "PSH"),
    (ACK, "ACK"),
    (URG, "URG"),
    (ECE, "ECE"),
    (CWR, "CWR"),
)


def flags_text(flags: int) -> str:
    """Return the flags as Wireshark writes them, e.g. ``"SYN, ACK"``; ``"<none>"`` for 0."""
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    return ", ".join(names) if names else "<none>"


# RFC 9293 §3.3.2 connection states.
CLOSED = "CLOSED"
LISTEN = "LISTEN"
SYN_SENT = "SYN-SENT"
SYN_RECEIVED = "SYN-RECEIVED"
ESTABLISHED = "ESTABLISHED"
FIN_WAIT_1 = "FIN-WAIT-1"
FIN_WAIT_2 = "FIN-WAIT-2"
CLOSE_WAIT = "CLOSE-WAIT"
CLOSING = "CLOSING"
LAST_ACK = "LAST-ACK"
TIME_WAIT = "TIME-WAIT"

STATES = (
    CLOSED,
    LISTEN,
    SYN_SENT,
    SYN_RECEIVED,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    CLOSE_WAIT,
    CLOSING,
    LAST_ACK,
    TIME_WAIT,
)
#: RFC 9293 §3.3.2: the states after the handshake ("synchronized states").
SYNCHRONIZED = frozenset(
    {ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT}
)


@dataclass(slots=True)
class Record:
    """One record of a capture file, as the reader yields it.

    ``frame``: 1-based frame number. ``ts``: seconds since the epoch (float).
    ``linktype``: the LINKTYPE_* value of the record's interface (tcpdump.org numbering).
    ``data``: the captured bytes (``caplen`` of them). ``wire_len``: the original length
    on the wire (pcap "orig_len"); ``wire_len > len(data)`` means the snaplen cut it.
    ``offset``: byte offset in the file of the record's header (pcap record header,
    pcapng block), ``None`` when unknown (gzip-compressed files); where a record is stored,
    not what it is, so it takes no part in ``==``.
    """

    frame: int
    ts: float
    linktype: int
    data: bytes
    wire_len: int
    offset: int | None = field(default=None, compare=False)


@dataclass(slots=True)
class TcpOptions:
    """Decoded TCP options (RFC 9293 §3.2, RFC 7323, RFC 2018, RFC 7413).

    Every field is ``None`` when the option is absent. ``sack_blocks`` is a tuple of
    ``(left, right)`` absolute sequence-number pairs. ``tfo_cookie`` is the Fast Open
    cookie bytes (``b""`` for a cookie request).
    """

    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    ts_val: int | None = None
    ts_ecr: int | None = None
    tfo_cookie: bytes | None = None


@dataclass(slots=True)
class Segment:
    """One decoded TCP segment.

    Addresses are text (``"10.0.0.1"``, ``"2001:db8::1"``); ports, ``seq`` and ``ack`` are
    absolute integers as on the wire. ``payload_len`` is the TCP payload length in bytes
    computed from the IP length fields (IPv4 total length / IPv6 payload length), never
    from the number of captured bytes, so a snaplen-cut capture is analysed like a full
    one. ``window`` is the raw 16-bit window field (unscaled). ``truncated`` is true when
    the snaplen cut the packet. ``checksum_ok`` is ``None`` when it could not be verified
    (payload not fully captured). ``ip_id`` is the IPv4 identification (``None`` for IPv6).
    """

    frame: int
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload_len: int
    options: TcpOptions | None = None
    ip_id: int | None = None
    ip_version: int = 4
    truncated: bool = False
    checksum_ok: bool | None = None
    #: the tunnels the segment came through, outermost first (``("eth", "ipv4
    #: 192.0.2.1>192.0.2.2", "udp 4789", "vxlan 42", "eth", "ipv4")``), None when it came
    #: through none (link layers, VLAN tags, MPLS and PPPoE alone are not tunnels)
    encapsulation: tuple[str, ...] | None = None


class SegmentBlock:
    """Consecutive records of a capture that are all plain IPv4 TCP segments, decoded
    into columns by :mod:`pcapcheck.fast.batch_decoder` (issue #4, performance): the tracker replays
    the ordinary ones straight from the columns (:func:`pcapcheck.fast.established_lane.feed_block`)
    and builds a :class:`Segment` (:meth:`segment`) only for the others.

    The segments of this shard (all of them without sharding) are the block's rows.
    Every row attribute is a list with one entry per row, in capture order, holding
    what the row's Segment would: ``frame`` (1-based), ``ts`` (seconds since the epoch),
    ``src``/``dst`` (dotted text), ``sport``, ``dport``, absolute ``seq``/``ack``,
    ``flags``, raw ``window``, ``payload_len`` (bytes), ``ip_id``, ``truncated``,
    ``checksum_ok``, and ``ts_val`` (the TCP timestamp, None without one); ``plain`` is
    True for a segment the lane may take: flags ACK or ACK+PSH (ECE, CWR allowed), a
    window other than 0, no TCP option but timestamps, not cut by the snaplen, checksum
    not wrong.

    The segments of other shards (:data:`OTHER_SHARD`; only their time counts) are
    ``other_frame``/``other_ts`` (numpy int64 and float64 arrays, capture order; empty
    lists without sharding): the ones before row ``i`` are
    ``other_*[other_end[i-1]:other_end[i]]`` (from 0 for ``i = 0``), those after the
    last row end at ``other_end[-1]``; ``other_max[i]`` is
    the latest time among the ones before row ``i`` (``-inf`` when none), and
    ``other_max[-1]`` among those after the last row. Without sharding ``other_end``
    and ``other_max`` are None.
    """

    __slots__ = (
        "_okind",
        "_parsed",
        "_ts_ecr",
        "ack",
        "checksum_ok",
        "dport",
        "dst",
        "encapsulation",
        "fast",
        "fast_ticks",
        "flags",
        "frame",
        "ip_id",
        "other_end",
        "other_frame",
        "other_max",
        "other_ts",
        "payload_len",
        "plain",
        "seq",
        "sport",
        "src",
        "truncated",
        "ts",
        "ts_val",
        "window",
    )

    def __init__(
        self,
        frame: list,
        ts: list,
        src: list,
        dst: list,
        sport: list,
        dport: list,
        seq: list,
        ack: list,
        flags: list,
        window: list,
        payload_len: list,
        ip_id: list,
        truncated: list,
        checksum_ok: list,
        ts_val: list,
        plain: list,
        okind: list,
        ts_ecr: list,
        parsed: dict[int, TcpOptions],
        other_frame: list,
        other_ts: list,
        other_end: list | None,
        other_max: list | None,
    ):
        self.frame, self.ts, self.src, self.dst = frame, ts, src, dst
        self.sport, self.dport, self.seq, self.ack = sport, dport, seq, ack
        self.flags, self.window, self.payload_len, self.ip_id = flags, window, payload_len, ip_id
        self.truncated, self.checksum_ok, self.ts_val = truncated, checksum_ok, ts_val
        self.plain = plain
        self.other_frame, self.other_ts = other_frame, other_ts
        self.other_end, self.other_max = other_end, other_max
        #: None, or per row None or ``(mark, FastConn | None)``: the SYN
        #: (:data:`MARK_START`) or the last segment (:data:`MARK_END`) of a connection
        #: :mod:`pcapcheck.fast.lookahead` found clean, or the SYN of one it found not clean
        #: (:data:`MARK_DIRECT`: replayed as it comes, not kept as rows)
        self.fast: list | None = None
        #: the segments of this shard given as ticks (``other_*``): the other segments
        #: of those connections
        self.fast_ticks = 0
        #: None when no row came through a tunnel, else per row its
        #: :attr:`Segment.encapsulation` (issue 24: tunnelled segments in blocks)
        self.encapsulation: list[tuple[str, ...] | None] | None = None
        #: per row 0 (no options), 1 (timestamps only: ts_val, _ts_ecr) or 2 (the
        #: options in _parsed, by row)
        self._okind, self._ts_ecr, self._parsed = okind, ts_ecr, parsed

    def __len__(self) -> int:
        """The number of rows (the shard's own segments)."""
        return len(self.frame)

    @property
    def records(self) -> int:
        """The number of records in the block (rows and other shards' segments)."""
        return len(self.frame) + len(self.other_frame)

    def segment(self, i: int) -> Segment:
        """The :class:`Segment` of row ``i`` (0-based within the block)."""
        kind = self._okind[i]
        options = (
            None
            if kind == 0
            else self._parsed[i]
            if kind == 2
            else TcpOptions(None, None, False, (), self.ts_val[i], self._ts_ecr[i])
        )
        return Segment(
            self.frame[i],
            self.ts[i],
            self.src[i],
            self.dst[i],
            self.sport[i],
            self.dport[i],
            self.seq[i],
            self.ack[i],
            self.flags[i],
            self.window[i],
            self.payload_len[i],
            options,
            self.ip_id[i],
            4,
            self.truncated[i],
            self.checksum_ok[i],
            None if self.encapsulation is None else self.encapsulation[i],
        )


#: The marks of :attr:`SegmentBlock.fast`.
MARK_END, MARK_START, MARK_DIRECT = 0, 1, 2


class _OtherShard:
    """The type of :data:`OTHER_SHARD` (one instance)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OTHER_SHARD"

    def __reduce__(self) -> str:
        return "OTHER_SHARD"


#: The item a source analysing one shard of a capture (``shard=(k, n)``, see
#: :mod:`pcapcheck.run.shards`) yields in place of a TCP segment of another shard: the
#: Segment is not built, but its frame and timestamp still move the capture's clock
#: (:meth:`pcapcheck.tcp.tracker.Tracker.tick`).
OTHER_SHARD = _OtherShard()


@dataclass(slots=True)
class Transition:
    """One RFC 9293 state change of one endpoint.

    ``frame`` is the frame whose sending (SYN, FIN, RST, SYN-ACK) or reception
    (the peer's SYN-ACK, ACK, FIN, RST) caused it; ``cause`` says which, e.g.
    ``"rcv SYN,ACK; snd ACK"``.
    """

    frame: int
    from_state: str
    to_state: str
    cause: str


@dataclass(slots=True)
class Event:
    """A deviation (or notable fact) detected by the engine.

    ``rule`` is the catalogue ID (``"HS002"``) whose detector produced it; ``connection``
    the 1-based connection id (``None`` for file-level events such as CP006); ``frame``
    the 1-based frame it points at (``None`` when there is no single frame). ``data``
    holds the values the rule's message template may use: the common keys listed in
    :data:`COMMON_EVENT_FIELDS` plus the rule's own keys in :data:`EVENT_FIELDS`.
    Sequence numbers in ``data`` are relative (ISN = 0) unless the key ends in ``_abs``.
    """

    rule: str
    connection: int | None
    frame: int | None
    data: dict[str, Any] = field(default_factory=dict)


#: Keys present in every connection-level event's data.
COMMON_EVENT_FIELDS = (
    "client",
    "server",  # "ip:port" ("[v6]:port")
    "client_state",
    "server_state",  # RFC 9293 states just after the frame was processed
    "sender",
    "receiver",  # "client" / "server" (None when not applicable)
    "sender_state",
    "receiver_state",
    "flags",  # flags of the frame, Wireshark style ("SYN, ACK")
)

#: The keys each rule's event adds to the common ones (the contract between the
#: detectors and the message templates in rules/*.yaml).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "HS001": ("attempts", "isn_abs", "first_frame"),
    "HS002": ("ack", "expected", "ack_abs", "expected_abs", "syn_data_len"),
    "HS003": ("synack_frame",),
    "HS004": ("field", "actual", "expected", "actual_abs", "expected_abs"),
    "HS005": ("isn_abs", "first_frame", "count"),
    "HS006": ("isn_abs", "first_frame", "count"),
    "HS007": ("payload_len", "seq"),
    "HS008": ("isn_abs",),
    "HS009": ("isn_abs", "previous_isn_abs", "first_frame"),
    "HS010": ("other_frame",),
    "HS011": ("syn_frame",),
    "HS012": ("payload_len", "accepted", "verdict"),
    "HS013": ("seq",),
    "CL001": ("fin_seq", "expected_ack", "highest_ack"),
    "CL002": ("ack", "expected", "fin_frame", "fin_seq"),
    "CL003": ("closer", "closer_state", "other", "other_state", "fin_frame"),
    "CL004": ("fin_frame", "fin_seq", "expected_ack"),
    "CL005": ("seq", "payload_len", "fin_seq", "fin_frame"),
    "CL006": ("fin_seq", "first_frame", "count"),
    "CL007": ("other_frame",),
    "CL008": ("idle",),
    "CL009": ("closed_frame",),
    "CL010": ("previous_connection", "gap", "limit"),
    "RS001": (),
    "RS002": ("fin_frame",),
    "RS003": ("seq", "rcv_nxt", "rcv_wnd", "window_end"),
    "RS004": (),
    "RS005": ("ack", "expected", "ack_abs", "expected_abs"),
    "SQ001": ("ack", "sent_max"),
    "SQ002": ("seq", "payload_len", "first_frame"),
    "SQ003": ("seq", "bytes", "highest_ack"),
    "SQ004": ("seq",),
    "SQ005": (),
    "SQ006": ("seq", "expected"),
    "FL001": ("problem",),
    "CP001": ("previous_connection",),
    "CP002": ("detail", "ack", "seen_max"),
    "CP003": ("count", "snaplen"),
    "CP004": ("count", "first_frame"),
    "CP005": ("reason",),
    "CP006": ("detail",),
    "CP007": ("seen",),
    "CP008": ("original_frame",),
    "CP009": ("early_frame", "gap"),
}


@dataclass(slots=True)
class Finding:
    """An event the rule catalogue decided to report.

    ``severity`` is ``"error"``, ``"warning"`` or ``"info"``; ``message`` is the rule's
    template filled from the event data. ``data`` is the event data, kept for JSON.
    """

    rule: str
    name: str
    severity: str
    connection: int | None
    frame: int | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)
