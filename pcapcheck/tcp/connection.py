"""Per-connection bookkeeping: the two directions' sequence spaces and counters.

A :class:`Flow` is one direction of a connection (the segments one endpoint sends).
Sequence numbers inside a Flow are kept **unwrapped and relative**: 0 is the ISN (or the
first sequence number seen when the SYN was not captured), and values grow past 2^32
instead of wrapping, so ordinary integer comparison is correct. :meth:`Flow.u` converts
an absolute 32-bit SEG.SEQ or SEG.ACK into that space using modular arithmetic
(RFC 9293 §3.4: comparisons are modulo 2^32, valid within 2^31 of the reference).

This module holds state only; the decisions are made in :mod:`pcapcheck.tcp.detectors`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from pcapcheck.model import Event, Segment
from pcapcheck.tcp.state_machine import Endpoint

MOD = 1 << 32
#: How many of a flow's last segments are remembered to recognise a capture duplicate.
RECENT = 4
#: The most entries a flow's list of unacknowledged data segments (:attr:`Flow.unacked`)
#: holds (issue #23: memory bounded whatever one connection's length). A direction with
#: more segments unacknowledged at once (a capture of one direction, a peer that never
#: acknowledges) keeps the first :data:`UNACKED_HEAD` exact (the oldest data, the one a
#: retransmission timeout or a fast retransmit resends) and at least the latest
#: :data:`UNACKED_TAIL`; the segments between are merged into one range whose frames are
#: forgotten (:meth:`Flow.add_unacked`). At least
#: :data:`~pcapcheck.fast.clean_connections.MAX_CLEAN_ROWS`, so that a connection the
#: fast paths summarise never reaches it (about 150 bytes an entry: 600 kB a flow).
UNACKED_LIMIT = 4096
#: Entries at the head of :attr:`Flow.unacked` never merged (:data:`UNACKED_LIMIT`).
UNACKED_HEAD = 2048
#: Entries at the tail of :attr:`Flow.unacked` left exact by a merge (:data:`UNACKED_LIMIT`).
UNACKED_TAIL = 1024
#: The most distinct unacceptable segments a connection keeps awaiting their RFC answer
#: (:attr:`Connection.answers_due`; identical ones are counted in one entry, and a peer
#: sending bad handshake ACKs of ever new values keeps the oldest ones: the answers
#: come oldest first).
ANSWERS_KEPT = 16
_START = itemgetter(0)
_MASK = MOD - 1
_HALF = 1 << 31


def seq_diff(a: int, b: int) -> int:
    """Return ``a - b`` for 32-bit sequence numbers as a signed value in [-2^31, 2^31).

    RFC 9293 §3.4: sequence space is finite (0 .. 2^32-1) and all arithmetic is modulo
    2^32; ``seq_diff(a, b) > 0`` means ``a`` is "after" ``b``.
    """
    d = (a - b) & _MASK
    return d - MOD if d >= _HALF else d


class Flow:
    """One direction of a connection: what one endpoint has sent, as seen in the capture.

    Positions are unwrapped relative sequence numbers (int, ISN = 0). Attributes:

    * ``isn`` – absolute ISN (int) when the SYN or SYN-ACK was seen, else None;
      ``base`` – the absolute sequence number that is relative 0.
    * ``nxt`` – highest sequence number sent + 1 (the sender's SND.NXT as far as the
      capture shows; SYN and FIN each occupy one number), None before any segment.
    * ``acked`` – highest acknowledgment the peer sent for this flow (the sender's
      SND.UNA as the capture shows it; the peer's RCV.NXT as it last announced it).
    * ``fin`` – position of the FIN, ``fin_frame`` its frame (None when only implied).
    * ``holes`` – ``[start, end, frame, ts]`` ranges below ``nxt`` never seen.
    * ``unacked`` – ``(start, end, frame)`` of data segments not yet acknowledged, in
      order (a list: ``del unacked[:i]`` drops the acknowledged head), at most
      :data:`UNACKED_LIMIT` of them; a ``(start, end, frame, count)`` entry is a range
      of ``count`` segments merged there (:meth:`add_unacked`), ``frame`` the first
      one's. ``forgotten`` counts the segments merged so; ``unordered`` is True once a
      segment started below the end of the previous entry (a new ISN, data before the
      SYN): the list is then searched in order rather than bisected.
    * ``pending`` – ``[ack, frame, nxt_then, ts]``: the peer acknowledged beyond ``nxt``.
    * ``win`` – the last window advertised by this flow's sender, scaled, in bytes.
    * ``recent`` – the last :data:`RECENT` segments' ``(key, frame, ts)``, to recognise
      a packet stored twice (CP008).
    * ``backoff`` – the retransmissions of the first unacknowledged byte (SQ003):
      ``(start, ts, interval, count, growing)``: that byte's position (unwrapped
      relative), the time of the latest one and the seconds since the one before (the
      first one: since the latest new data), how many, and whether each interval was
      longer than the one before (exponential backoff, RFC 6298 §5.5); None before any.
    * ``probe`` – the end (``nxt + 1``) of the last zero-window probe at ``nxt``, whose
      byte ``nxt`` does not count until the peer or the sender shows it was accepted;
      None when there is none.
    """

    __slots__ = (
        "_ref_abs",
        "_ref_u",
        "acked",
        "backoff",
        "base",
        "bytes",
        "fin",
        "fin_acked_frame",
        "fin_ahead",
        "fin_count",
        "fin_frame",
        "fin_implied_frame",
        "fin_implied_ts",
        "fin_reply_frame",
        "first_frame",
        "forgotten",
        "high_ts",
        "holes",
        "isn",
        "keepalive_frame",
        "last_frame",
        "last_ts",
        "last_window_raw",
        "max_ack_abs",
        "nxt",
        "packets",
        "pending",
        "probe",
        "recent",
        "seen_end",
        "syn_count",
        "syn_frame",
        "syn_len",
        "synack_count",
        "synack_frame",
        "unacked",
        "unordered",
        "win",
        "wscale",
        "zero",
    )

    def __init__(self) -> None:
        self.isn: int | None = None
        self.base: int | None = None
        self._ref_abs = 0
        self._ref_u = 0
        self.nxt: int | None = None
        self.acked: int | None = None
        self.packets = 0
        self.bytes = 0
        self.syn_frame: int | None = None
        self.syn_count = 0
        self.syn_len = 0
        self.synack_frame: int | None = None
        self.synack_count = 0
        self.fin: int | None = None
        self.fin_frame: int | None = None
        self.fin_count = 0
        self.fin_acked_frame: int | None = None
        self.fin_reply_frame: int | None = None
        self.fin_implied_frame: int | None = None
        self.fin_implied_ts = 0.0
        self.holes: list[list] = []
        self.unacked: list[tuple] = []
        self.forgotten = 0
        self.unordered = False
        self.pending: list[list] = []
        self.high_ts = 0.0
        self.win: int | None = None
        self.wscale: int | None = None
        self.zero = False
        self.recent: list[tuple] = []
        self.first_frame: int | None = None
        self.last_frame: int | None = None
        self.last_ts = 0.0
        self.max_ack_abs: int | None = None
        self.last_window_raw: int | None = None
        self.keepalive_frame: int | None = None
        self.probe: int | None = None
        self.backoff: tuple | None = None
        self.seen_end: int | None = None  # highest seq + len of any segment seen
        #: a FIN stored beyond SND.NXT that no ACK confirmed: (SND.NXT then, FIN's
        #: sequence number, its frame, its time), relative, until data fills the space
        #: (the capture stored the FIN before the last data: CP009) or none comes
        self.fin_ahead: tuple | None = None

    def set_base(self, seq: int, isn: bool) -> None:
        """Make absolute ``seq`` relative 0; ``isn`` says it is a real ISN (SYN seen)."""
        self.base = seq
        self.isn = seq if isn else None
        self._ref_abs = seq
        self._ref_u = 0
        self.nxt = 0

    def u(self, seq: int) -> int:
        """Absolute 32-bit ``seq`` → unwrapped relative position (base must be set)."""
        return self._ref_u + seq_diff(seq, self._ref_abs)

    def advance(self, end: int) -> None:
        """Raise ``nxt`` to ``end`` (unwrapped) when it is beyond it; moves the wrap reference."""
        if self.nxt is None or end > self.nxt:
            self.nxt = end
            self._ref_u = end
            self._ref_abs = (self.base + end) & _MASK  # type: ignore[operator]  # base is set

    def add_unacked(self, start: int, end: int, frame: int) -> None:
        """Data ``[start, end)`` (unwrapped relative) sent at ``frame``, not yet
        acknowledged: appended to :attr:`unacked`. Past :data:`UNACKED_LIMIT` entries,
        those after the first :data:`UNACKED_HEAD` but the latest :data:`UNACKED_TAIL`
        become one ``(start, end, frame, count)`` range (with a range already there):
        their frames are forgotten (:attr:`forgotten` counts them), their sequence space
        is still unacknowledged (SQ003 counts its bytes). A merge every
        ``UNACKED_LIMIT - UNACKED_HEAD - UNACKED_TAIL`` segments: constant time a
        segment, amortised."""
        q = self.unacked
        if q and start < q[-1][1]:
            self.unordered = True
        q.append((start, end, frame))
        if len(q) > UNACKED_LIMIT:
            lo, hi = UNACKED_HEAD, len(q) - UNACKED_TAIL
            first = q[lo]
            count = 0
            for entry in q[lo:hi]:
                count += entry[3] if len(entry) == 4 else 1
            self.forgotten += count - (first[3] if len(first) == 4 else 0)
            q[lo:hi] = [(first[0], q[hi - 1][1], first[2], count)]

    def unacked_frame(self, seq: int) -> int | None:
        """The frame of the unacknowledged data segment (:attr:`unacked`) that holds
        ``seq`` (unwrapped relative), the first one in order; None when none holds it or
        it lies in a merged range (its frame forgotten, :meth:`add_unacked`)."""
        q = self.unacked
        if self.unordered:
            entry = next((e for e in q if e[0] <= seq < e[1]), None)
        else:
            i = bisect_right(q, seq, key=_START) - 1
            entry = q[i] if i >= 0 and seq < q[i][1] else None
        return entry[2] if entry is not None and len(entry) == 3 else None

    def absolute(self, pos: int) -> int:
        """Unwrapped relative position → absolute 32-bit sequence number."""
        return (self.base + pos) & _MASK  # type: ignore[operator]  # base is set


@dataclass(slots=True)
class Connection:
    """One TCP connection (one 4-tuple, one incarnation) and everything learned about it.

    ``client``/``server`` are ``(ip, port)``; ``c``/``s`` are the client's and the
    server's :class:`Flow`; ``ec``/``es`` their :class:`~pcapcheck.tcp.state_machine.Endpoint`.
    Times are seconds since the epoch; frames are 1-based.
    """

    id: int
    client: tuple[str, int]
    server: tuple[str, int]
    roles_inferred: bool
    first_frame: int
    first_ts: float
    ec: Endpoint
    es: Endpoint
    c: Flow = field(default_factory=Flow)
    s: Flow = field(default_factory=Flow)
    last_frame: int = 0
    last_ts: float = 0.0
    min_ts: float = float("inf")
    max_ts: float = float("-inf")
    midstream: bool = False
    flipped: bool = False
    events: list[Event] = field(default_factory=list)
    zeek: Any = None
    refused: bool = False
    reset_frame: int | None = None
    reset_by: str | None = None
    closed: bool = False
    closed_frame: int | None = None
    close_ts: float | None = None
    hs_bad_reported: bool = False
    #: the segments their receiver could not accept and answers with a reset
    #: <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.5.2 reset generation), oldest first, at most
    #: :data:`ANSWERS_KEPT` entries: each ``(SEG.ACK, frame, receiver role, receiver
    #: state, what, count)``, SEG.ACK absolute 32-bit, ``what`` the segment's name
    #: ("SYN-ACK", "ACK"), ``count`` the segments alike awaiting an answer, ``frame``
    #: the first of them. Recorded for a SYN-ACK in SYN-SENT (HS002, §3.10.7.3), every
    #: handshake ACK in SYN-RECEIVED whose SEG.ACK is not acceptable (HS004, §3.10.7.4)
    #: and a SYN-ACK reaching an endpoint that has deleted its TCB (CLOSED, §3.10.7.1);
    #: each answer takes one, the receiver's are dropped by an acceptable SYN-ACK
    answers_due: tuple[tuple[int, int, str, str, str, int], ...] = ()
    tfo_accepted: bool = False
    implied_synack_frame: int | None = None
    #: the time of :attr:`implied_synack_frame` (seconds since the epoch)
    implied_synack_ts: float = 0.0
    after_close_reported: bool = False
    segments: int = 0
    #: id of the connection this one is the tail of: its first segment came on a 4-tuple
    #: whose connection had closed and been released (after the close delay) less than
    #: 2·MSL before; nothing is concluded from what such a tail lacks.
    tail_of: int | None = None
    #: the tunnels of its first segment (``Segment.encapsulation``), None: none
    encapsulation: tuple[str, ...] | None = None
    #: events given to the checker's sink before the connection was finalised, for
    #: which the sink returned true (:meth:`~pcapcheck.tcp.detectors.Checker.release`;
    #: the pipeline: findings reported); they are no longer in ``events``
    released: int = 0

    @staticmethod
    def endpoint_text(addr: tuple[str, int]) -> str:
        """``ip:port``, with IPv6 addresses in brackets: ``[2001:db8::1]:443``."""
        ip, port = addr
        return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    @property
    def client_text(self) -> str:
        return self.endpoint_text(self.client)

    @property
    def server_text(self) -> str:
        return self.endpoint_text(self.server)

    def role_of(self, seg: Segment) -> str:
        """``"client"`` when ``seg`` was sent by the client, else ``"server"``."""
        return "client" if (seg.src, seg.sport) == self.client else "server"
