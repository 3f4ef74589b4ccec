"""Detectors: replay each segment of a connection through both endpoints' RFC 9293 state
machines and turn what they see into :class:`~pcapcheck.model.Event` objects.

The detectors know nothing about severity or wording: each event carries a rule ID, the
frame, the connection, the states of both sides after the frame, and the expected and
actual values (relative sequence numbers, ISN = 0). The rule catalogue
(:mod:`pcapcheck.catalog.rules`) decides what is reported and how.

Processing order inside one segment follows RFC 9293 §3.10.7.4 (first check sequence
number, second RST, fourth SYN, fifth ACK, seventh segment text, eighth FIN); the capture
is assumed to sit on the path, so a segment seen is a segment delivered. Decisions that
need the future (was this ACK of unseen data capture loss or a bug? was this FIN ever
acknowledged?) are taken in :meth:`Checker.finish`. See docs/semantics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pcapcheck.model import (
    ACK,
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN,
    FIN_WAIT_1,
    LISTEN,
    PSH,
    RST,
    SYN,
    SYN_RECEIVED,
    SYN_SENT,
    SYNCHRONIZED,
    TIME_WAIT,
    URG,
    Event,
    Segment,
    Transition,
    flags_text,
)
from pcapcheck.tcp import state_machine as fsm
from pcapcheck.tcp.connection import ANSWERS_KEPT, RECENT, Connection, Flow
from pcapcheck.tcp.state_machine import Endpoint

#: Defaults of the rule parameters the detectors use (the rule files carry the same).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "CL010": {"msl": 120.0},
    "CP008": {"max_interval": 0.0005},
    "SQ006": {"reorder_window": 0.003},
}

_ENDED = (CLOSED, TIME_WAIT, LISTEN, None)

#: Events a connection holds (:attr:`Connection.events`) before the final ones among
#: them go to the checker's sink (:attr:`Checker.sink`, :meth:`Checker.release`): a
#: connection with a finding on every segment holds a bounded number of them, not all
#: of them until its end (issue #23). Few connections have as many; theirs are
#: released in the order they were decided.
EVENTS_HELD = 256

#: Per-frame analysis marks (recorded only when asked, for the Wireshark cross-check),
#: named after Wireshark's tcp.analysis.* flags; the rules that imply them.
MARK_OF_RULE = {
    "SQ002": "retransmission",
    "HS005": "retransmission",
    "HS006": "retransmission",
    "CL006": "retransmission",
    "SQ006": "out_of_order",
    "CL010": "reused_ports",
}


def _drop_acked(unacked: list, ack: int) -> None:
    """Drop the head of ``unacked`` (``(start, end, frame)`` in order) that ``ack``
    (unwrapped relative) acknowledges wholly."""
    i = 1
    n = len(unacked)
    while i < n and unacked[i][1] <= ack:
        i += 1
    del unacked[:i]


#: CP008's duplicate key: the fields of a segment that two packets must share to be one
#: packet stored twice, in the order of :func:`duplicate_key_of`'s tuple. Names of
#: :class:`~pcapcheck.model.Segment` attributes (and of the decoder's columns);
#: ``ts_val`` is the TCP timestamp option's TSval (None without one). A fast path that
#: must rule a duplicate out compares these fields (or fewer: a coarser comparison
#: finds more pairs, never fewer) of a direction's segments.
DUPLICATE_KEY_FIELDS = ("ip_id", "seq", "ack", "flags", "payload_len", "window", "ts_val")


def duplicate_key_of(
    ip_id: int | None,
    seq: int,
    ack: int,
    flags: int,
    payload_len: int,
    window: int,
    ts_val: int | None,
) -> tuple | None:
    """CP008's duplicate key (:data:`DUPLICATE_KEY_FIELDS`) of a segment with these
    fields (absolute 32-bit ``seq``/``ack``, raw 16-bit ``window``, ``payload_len``
    bytes); None when the segment has neither an IP ID other than 0 nor a TCP timestamp
    (nothing tells two such packets apart: never a duplicate)."""
    if ts_val is None and not ip_id:
        return None
    return (ip_id, seq, ack, flags, payload_len, window, ts_val)


def duplicate_key(seg: Segment) -> tuple | None:
    """:func:`duplicate_key_of` the fields of ``seg``."""
    options = seg.options
    return duplicate_key_of(
        seg.ip_id,
        seg.seq,
        seg.ack,
        seg.flags,
        seg.payload_len,
        seg.window,
        options.ts_val if options is not None else None,
    )


def retransmission_data(seq: int, payload_len: int, first_frame: int | None) -> dict[str, Any]:
    """The data of an SQ002 event (a retransmission, RFC 9293 §3.8.1), before the
    common fields (:func:`fill_common`): ``seq`` (SEG.SEQ relative to the sender's ISN),
    ``payload_len`` (bytes) and ``first_frame`` (the frame that first sent its first
    byte while that data is still unacknowledged, else None)."""
    return {"seq": seq, "payload_len": payload_len, "first_frame": first_frame}


def fill_common(
    data: dict[str, Any],
    client: str,
    server: str,
    client_state: str | None,
    server_state: str | None,
    sender: str | None,
    flags: int | None,
) -> None:
    """Give an event's ``data`` the fields every event carries, after its own: the
    endpoints' text (``ip:port``), both RFC 9293 states after the frame, the sender's
    and receiver's roles and states (None when ``sender``, ``"client"`` or
    ``"server"``, is None) and the segment's ``flags`` as text (None: no segment)."""
    d = data
    d.setdefault("client", client)
    d.setdefault("server", server)
    d["client_state"] = client_state
    d["server_state"] = server_state
    if sender is None:
        d.setdefault("sender", None)
        d.setdefault("receiver", None)
        d.setdefault("sender_state", None)
        d.setdefault("receiver_state", None)
    else:
        client_sent = sender == "client"
        d["sender"], d["receiver"] = sender, "server" if client_sent else "client"
        d["sender_state"] = client_state if client_sent else server_state
        d["receiver_state"] = server_state if client_sent else client_state
    d.setdefault("flags", flags_text(flags) if flags is not None else None)


def invalid_flags(flags: int) -> str | None:
    """Return why a flag combination is impossible, or None (RFC 9293 §3.1, §3.10.7)."""
    if flags & 0x3F == 0:
        return "no flags set"
    if flags & SYN and flags & FIN:
        return "SYN and FIN together"
    if flags & SYN and flags & RST:
        return "SYN and RST together"
    if flags & (FIN | PSH | URG) == FIN | PSH | URG and not flags & ACK:
        return "FIN, PSH and URG without ACK (an 'Xmas tree' scan)"
    return None


class Checker:
    """Replays segments of :class:`~pcapcheck.tcp.connection.Connection` objects.

    ``params`` maps rule IDs to parameter dicts (defaults: :data:`DEFAULT_PARAMS`).
    Call :meth:`process` for every segment in capture order, then :meth:`finish` once per
    connection with the timestamp of the capture's last record.
    """

    def __init__(
        self, params: Mapping[str, Mapping[str, Any]] | None = None, record_marks: bool = False
    ):
        p = {k: dict(v) for k, v in DEFAULT_PARAMS.items()}
        for rule, values in (params or {}).items():
            p.setdefault(rule, {}).update(values)
        self.msl = float(p["CL010"]["msl"])
        self.reorder_window = float(p["SQ006"]["reorder_window"])
        #: CP008's max_interval: seconds within which two equal packets are one stored twice
        self.duplicate_interval = float(p["CP008"]["max_interval"])
        self._frame_events: list[tuple[Event, str | None]] = []
        #: frame → set of marks (``retransmission``, ``out_of_order``, ``keep_alive``,
        #: ``keep_alive_ack``, ``duplicate_ack``, ``zero_window``, ``lost_segment``, ``ack_lost_segment``,
        #: ``reused_ports``), and frame → connection id; None unless ``record_marks``.
        self.marks: dict[int, set[str]] | None = {} if record_marks else None
        self.frame_conn: dict[int, int] | None = {} if record_marks else None
        #: Where a connection's final events go before the connection is finalised,
        #: when it holds more than :data:`EVENTS_HELD` (:meth:`release`): called with
        #: each event, in the order they were made; what it returns true for is counted
        #: in :attr:`Connection.released` (the pipeline: the event spooled, True when
        #: it is reported as a finding). None: every event stays in the connection
        #: until :meth:`finish`.
        self.sink: Callable[[Event], Any] | None = None

    def mark(self, frame: int, kind: str) -> None:
        """Add a Wireshark-style analysis mark to ``frame`` (only when recording marks)."""
        if self.marks is not None:
            self.marks.setdefault(frame, set()).add(kind)

    # ------------------------------------------------------------------ events
    def emit(
        self, conn: Connection, rule: str, frame: int | None, sender: str | None, **data: Any
    ) -> Event:
        """Record an event of ``rule`` at ``frame`` on ``conn``; ``sender`` is the role
        ("client"/"server") whose segment it concerns, or None. The common fields (states
        after the frame) are filled when the frame is done."""
        ev = Event(rule, conn.id, frame, data)
        conn.events.append(ev)
        self._frame_events.append((ev, sender))
        if self.marks is not None and rule in MARK_OF_RULE and frame is not None:
            self.mark(frame, MARK_OF_RULE[rule])
        return ev

    def _fill_states(self, conn: Connection, seg: Segment | None) -> None:
        """Give the events of the current frame the common fields (states after it)."""
        flags = seg.flags if seg is not None else None
        for ev, sender in self._frame_events:
            fill_common(
                ev.data,
                conn.client_text,
                conn.server_text,
                conn.ec.state,
                conn.es.state,
                sender,
                flags,
            )
        self._frame_events.clear()

    # ------------------------------------------------------------------ per segment
    #: Take :meth:`established_segment` for the ordinary segments of an established
    #: connection; False replays every segment through the full path (the tests compare).
    fast_lane = True

    def process(self, conn: Connection, seg: Segment) -> None:
        """Replay one segment of ``conn`` (capture order). Appends events to ``conn.events``."""
        if seg.sport == conn.client[1] and seg.src == conn.client[0]:
            role, fs, fr, es, er = "client", conn.c, conn.s, conn.ec, conn.es
        else:
            role, fs, fr, es, er = "server", conn.s, conn.c, conn.es, conn.ec
        options = seg.options
        if self.established_segment(
            conn,
            fs,
            fr,
            es,
            er,
            seg.flags,
            seg.frame,
            seg.ts,
            seg.seq,
            seg.ack,
            seg.window,
            seg.payload_len,
            seg.ip_id,
            options.ts_val if options is not None else None,
        ):
            if conn.zeek is not None:
                conn.zeek.add(seg, role == "client")
            return
        prev_frame = fs.last_frame
        if self.frame_conn is not None:
            self.frame_conn[seg.frame] = conn.id
            self._wireshark_marks(seg, fs, fr)
        self._count(conn, fs, seg.frame, seg.ts, seg.payload_len)
        if conn.zeek is not None:
            conn.zeek.add(seg, role == "client")
        try:
            self._segment(conn, seg, role, fs, fr, es, er, prev_frame)
        finally:
            fs.last_frame, fs.last_ts = seg.frame, seg.ts
            if self._frame_events:  # most segments make no event
                self._fill_states(conn, seg)
                if len(conn.events) > EVENTS_HELD and self.sink is not None:
                    self.release(conn)

    def release(self, conn: Connection) -> None:
        """Give the checker's :attr:`sink` the events of ``conn`` that are final (after
        a frame is done: their common fields are filled) and drop them from
        ``conn.events``, in the order they were made; the others stay there until
        :meth:`finish`. Final is every event no later segment or :meth:`finish` can
        withdraw: not an HS008 (a SYN stored late withdraws it, :meth:`_late_syn`, and
        so does a capture of one direction), nor a CP002 while one direction has no
        segment (a capture of one direction withdraws them) or at the frame of an
        implied FIN not yet seen (:meth:`_late_fin`). The report is the same: the
        spools sort events by frame, connection and rule, and the events of a
        connection that tie on those (one rule) keep the order they were made in,
        released first or not (a withdrawable one is held with every event of its rule
        and frame)."""
        sink = self.sink
        assert sink is not None
        c, s = conn.c, conn.s
        one_way = not (c.packets and s.packets)
        implied = [
            f.fin_implied_frame
            for f in (c, s)
            if f.fin_frame is None and f.fin_implied_frame is not None
        ]
        held = []
        count = 0
        for ev in conn.events:
            rule = ev.rule
            if rule == "HS008" or (rule == "CP002" and (one_way or ev.frame in implied)):
                held.append(ev)
            elif sink(ev):
                count += 1
        conn.events[:] = held
        conn.released += count

    def established_segment(
        self,
        conn: Connection,
        fs: Flow,
        fr: Flow,
        es: Endpoint,
        er: Endpoint,
        flags: int,
        frame: int,
        ts: float,
        seq: int,
        ack: int,
        window: int,
        length: int,
        ip_id: int | None,
        ts_val: int | None,
    ) -> bool:
        """The replay of an ordinary segment of an established connection, the one place
        it is written: :meth:`process` takes it for such a segment before the full path
        (:meth:`_segment`), and :mod:`pcapcheck.fast.established_lane` calls it with a
        segment's fields read from the decoder's columns.

        An ordinary segment: an ACK (with or without PSH; no SYN, FIN, RST or URG) with a
        window other than 0, between two ESTABLISHED endpoints (``es``, its sender's, and
        ``er``), sent by the owner of ``fs`` to the owner of ``fr``, carrying no
        data or the next data in order (SEG.SEQ = SND.NXT), acknowledging nothing beyond
        what the peer sent (SEG.ACK =< the peer's SND.NXT), on a connection without
        holes, pending ACKs, FINs, zero windows or mark recording, and not a capture
        duplicate (CP008, :meth:`duplicate_of`). Such a segment cannot change a state or
        make an event: it updates the counters (:meth:`_count`), the acknowledgment
        (:meth:`_ack_value`, :meth:`_note_ack`), SND.NXT (:meth:`_sent`) and the window
        (:meth:`_window_value`) as the full path does; the caller then gives it to the
        connection's Zeek state. Returns False, having changed nothing, when the segment
        is not ordinary (the full path takes it).

        ``flags``, ``frame`` (1-based), ``ts`` (seconds since the epoch), absolute 32-bit
        ``seq`` and ``ack``, raw 16-bit ``window``, ``length`` (payload bytes), ``ip_id``
        and ``ts_val`` (the TCP timestamp's TSval, None without one) are the
        segment's."""
        if (
            flags & 0x37 != ACK
            or not window
            or es.state != ESTABLISHED
            or er.state != ESTABLISHED
            or not self.fast_lane
            or fr.fin is not None
            or fs.fin is not None
            or fr.holes
            or fs.pending
            or fr.zero
            or conn.closed
            or self.frame_conn is not None
            or fs.base is None
            or fr.base is None
        ):
            return False
        ack_u = fr.u(ack)
        if fr.nxt is None or ack_u > fr.nxt:
            return False
        nxt = fs.nxt
        if nxt is None or fs.u(seq) != nxt:
            return False  # (a hole, a keep-alive: the full path)
        # CP008: a capture duplicate goes to the full path, which reports it. New data
        # in order (SEG.SEQ = SND.NXT), longer than a keep-alive's or a probe's byte.
        key = duplicate_key_of(ip_id, seq, ack, flags, length, window, ts_val)
        if key is not None and self.duplicate_of(fs, fr, key, frame, ts, length > 1) is not None:
            return False
        self._count(conn, fs, frame, ts, length)
        # fifth, the ACK field
        self._ack_value(fr, ack_u)
        self._note_ack(fs, ACK, ack)
        # seventh, the segment text: new data in order
        if length:
            self._sent(fs, nxt, nxt + length, frame, ts)
        # the window (_window: not 0 here)
        self._window_value(fs, fr, window)
        fs.zero = False
        fs.last_frame, fs.last_ts = frame, ts
        return True

    @staticmethod
    def _count(conn: Connection, fs: Flow, frame: int, ts: float, length: int) -> None:
        """Count a segment of ``length`` payload bytes at ``frame`` and ``ts`` (seconds
        since the epoch), sent by the owner of ``fs``, in the flow's and the
        connection's counters (packets, bytes, first and last frames, times)."""
        fs.packets += 1
        fs.bytes += length
        if fs.first_frame is None:
            fs.first_frame = frame
        conn.last_frame, conn.last_ts = frame, ts
        if ts < conn.min_ts:
            conn.min_ts = ts
        if ts > conn.max_ts:
            conn.max_ts = ts
        conn.segments += 1

    @staticmethod
    def _sent(fs: Flow, start: int, end: int, frame: int, ts: float) -> None:
        """New data ``[start, end)`` (unwrapped relative, ``end`` beyond SND.NXT) sent at
        ``frame`` and ``ts``: unacknowledged until the peer's ACK covers it, the flow's
        latest new data, SND.NXT moved to ``end``."""
        fs.add_unacked(start, end, frame)
        fs.high_ts = ts
        fs.advance(end)

    def _segment(
        self,
        conn: Connection,
        seg: Segment,
        role: str,
        fs: Flow,
        fr: Flow,
        es: Endpoint,
        er: Endpoint,
        prev_frame: int | None,
    ) -> None:
        flags = seg.flags
        frame = seg.frame
        problem = invalid_flags(flags)
        if problem is not None:
            self.emit(conn, "FL001", frame, role, problem=problem)
            return
        if self._capture_duplicate(conn, seg, fs, fr, role):
            return
        if (
            flags & FIN
            and fs.fin_frame is None
            and fs.fin_implied_frame is not None
            and self._late_fin(conn, seg, fs, es, er)
        ):
            return
        if conn.closed:
            self._after_close(conn, seg, role, fs, fr)
            return
        if flags & RST:
            self._rst(conn, seg, role, fs, fr, es, er)
            return
        if fs.base is None and not flags & SYN:
            fs.set_base(seg.seq, isn=False)
        if es.state in SYNCHRONIZED and not flags & (ACK | SYN):
            self.emit(conn, "SQ004", frame, role, seq=fs.u(seg.seq))
        refused = False
        if flags & SYN:
            if flags & ACK:
                self._synack(conn, seg, role, fs, fr, es, er)
            else:
                self._syn(conn, seg, role, fs, fr, es, er)
        elif flags & ACK:
            refused = self._ack(conn, seg, role, fs, fr, es, er, prev_frame)
        if seg.payload_len and not flags & SYN:
            self._data(conn, seg, role, fs, fr, es)
        elif not flags & (SYN | FIN) and fs.nxt is not None:
            self._jump(conn, seg, fs, fs.u(seg.seq))
        if flags & FIN:
            self._fin(conn, seg, role, fs, fr, es, er, prev_frame, refused)
        self._window(conn, seg, role, fs, fr)
        self._check_closed(conn, seg)

    def _wireshark_marks(self, seg: Segment, fs: Flow, fr: Flow) -> None:
        """The per-frame flags Wireshark's TCP analysis would set (User's Guide, "TCP
        Analysis"), as far as this engine defines them: keep-alive and its ACK, duplicate
        ACK, zero window, previous segment not captured, ACKed unseen segment; computed
        before the segment updates the flows."""
        flags, frame = seg.flags, seg.frame
        if flags & SYN:
            return
        if flags & ACK and fr.base is not None and fr.nxt is not None:
            ack = fr.u(seg.ack)
            if ack > fr.nxt or any(h[0] < ack and not h[4] for h in fr.holes):
                self.mark(frame, "ack_lost_segment")
        else:
            ack = None
        if flags & RST or fs.base is None:
            return
        seq = fs.u(seg.seq)
        length = seg.payload_len
        if seg.window == 0 and not flags & FIN:
            self.mark(frame, "zero_window")
        if fs.nxt is not None and length <= 1 and seq == fs.nxt - 1 and not flags & FIN:
            self.mark(frame, "keep_alive")
            fs.keepalive_frame = frame
        else:
            seen = fs.seen_end if fs.seen_end is not None else fs.nxt
            if seen is not None and seq > seen:
                self.mark(frame, "lost_segment")
        end = seq + length + (1 if flags & FIN else 0)
        if fs.seen_end is None or end > fs.seen_end:
            fs.seen_end = max(end, fs.nxt or 0)
        if ack is None or length or flags & FIN:
            return
        duplicate = (
            fs.max_ack_abs == seg.ack
            and seg.window != 0
            and fs.last_window_raw == seg.window
            and fs.nxt is not None
            and seq == fs.nxt
        )
        if duplicate and fr.keepalive_frame is not None and fr.keepalive_frame == fr.last_frame:
            self.mark(frame, "keep_alive_ack")  # replaces duplicate_ack, as in Wireshark
        elif duplicate:
            self.mark(frame, "duplicate_ack")

    # --------------------------------------------------------------- capture artefacts
    def _capture_duplicate(
        self, conn: Connection, seg: Segment, fs: Flow, fr: Flow, role: str
    ) -> bool:
        """CP008 for ``seg`` (:meth:`duplicate_of`): emitted, True, when it is one."""
        key = duplicate_key(seg)
        if key is None:
            return False
        original = self.duplicate_of(fs, fr, key, seg.frame, seg.ts)
        if original is None:
            return False
        self.emit(conn, "CP008", seg.frame, role, original_frame=original)
        return True

    def duplicate_of(
        self, fs: Flow, fr: Flow, key: tuple, frame: int, ts: float, new_data: bool = False
    ) -> int | None:
        """CP008, the one test: the frame of the segment of which a segment of ``fs``'s
        sender, with duplicate key ``key`` (:func:`duplicate_key_of`, not None), at
        ``frame`` and ``ts`` (seconds since the epoch), is a copy stored twice in the
        capture; else None, and the segment is remembered among the recent ones.

        A copy needs all of: an equal key in one of the flow's last
        :data:`~pcapcheck.tcp.connection.RECENT` segments (the original); at most
        ``max_interval`` seconds between them (the parameter of rules/CP008.yaml,
        :attr:`duplicate_interval`, 0.5 ms by default: shorter than any retransmission
        timer, RFC 6298 §2.4, RFC 8985 §7); and no segment of the peer (``fr``) stored
        between them (a duplicate ACK, a SACK, a window update can make the sender
        resend at once: a fast retransmit, RFC 5681 §3.2). The key holds the IPv4 ID and
        the TSval, which a resend normally changes (RFC 791 §3.2, RFC 7323 §3); an ID
        that is constant or 0 (RFC 6864 §4) or absent (IPv6) tells nothing, and then
        the TSval and the timing decide (a key needs one of them:
        :func:`duplicate_key_of`). A resend that fails these is analysed as a segment of
        its own (SQ002, HS005, CL006...).

        ``new_data``: the caller knows the segment carries new data in order (SEG.SEQ =
        SND.NXT) of more than one byte; then no earlier segment can have its key (that
        one would have moved SND.NXT past SEG.SEQ; a keep-alive's or a zero-window
        probe's byte leaves it), and none is searched."""
        recent = fs.recent
        if not new_data:
            limit = self.duplicate_interval
            peer = fr.last_frame or 0
            for k, original, t in recent:
                if k == key and abs(ts - t) <= limit and peer < original:
                    return original
        recent.append((key, frame, ts))
        if len(recent) > RECENT:
            del recent[0]
        return None

    # ------------------------------------------------------------------ handshake
    def _syn(self, conn, seg, role, fs, fr, es, er) -> None:
        frame = seg.frame
        if fs.isn is None:
            if es.state is None:
                es.assume(CLOSED)  # an active open (simultaneous open, RFC 9293 §3.5)
            fs.set_base(seg.seq, isn=True)
            fs.syn_frame, fs.syn_count, fs.syn_len = frame, 1, seg.payload_len
            fs.advance(1 + seg.payload_len)
            fs.high_ts = seg.ts
            es.step(fsm.SND_SYN, frame)
            if er.state == SYN_SENT and fr.isn is not None:
                # Both SYNs crossed (RFC 9293 §3.5 figure 7): each side receives the other's
                # SYN in SYN-SENT and moves to SYN-RECEIVED.
                self.emit(conn, "HS010", frame, role, other_frame=fr.syn_frame)
                es.step(fsm.RCV_SYN, frame, f"frame {fr.syn_frame}, which crossed ours")
                er.step(fsm.RCV_SYN, frame)
        elif (
            seg.seq == fs.isn
            and fs.syn_frame is None
            and seg.ts - conn.first_ts <= self.reorder_window
        ):
            self._late_syn(conn, seg, fs, es, er)
        elif seg.seq == fs.isn:
            fs.syn_count += 1
            self.emit(
                conn,
                "HS005",
                frame,
                role,
                isn_abs=seg.seq,
                first_frame=fs.syn_frame,
                count=fs.syn_count,
            )
            if es.state == CLOSED and es.transitions:
                self._reopen(conn, es, frame)
        else:
            self.emit(
                conn,
                "HS009",
                frame,
                role,
                isn_abs=seg.seq,
                previous_isn_abs=fs.isn,
                first_frame=fs.syn_frame,
            )
            fs.set_base(seg.seq, isn=True)
            fs.syn_frame, fs.syn_count, fs.syn_len = frame, 1, seg.payload_len
            fs.advance(1 + seg.payload_len)

    def _late_syn(self, conn, seg, fs: Flow, es: Endpoint, er: Endpoint) -> None:
        """The SYN that the connection's first SYN-ACK answers, stored a moment after it:
        the capture reordered them (nothing is missing, nothing was sent twice). What the
        capture shows late is attributed to the later frame."""
        frame = seg.frame
        fs.syn_frame, fs.syn_count = frame, 1
        conn.roles_inferred = False
        synack = (conn.s if fs is conn.c else conn.c).synack_frame
        if synack is not None:
            self._reordered(
                conn, frame, conn.role_of(seg), synack, max(0.0, seg.ts - conn.first_ts)
            )
        conn.events[:] = [e for e in conn.events if e.rule != "HS008"]
        late = [Transition(frame, CLOSED, SYN_SENT, fsm.SND_SYN)]
        for t in es.transitions:
            late.append(Transition(frame, t.from_state, t.to_state, t.cause))
        es.transitions[:] = late
        es.initial = CLOSED
        for t in er.transitions:
            if t.frame < frame:
                t.frame = frame

    def _synack(self, conn, seg, role, fs, fr, es, er) -> None:
        frame = seg.frame
        if (
            fs.synack_frame is None
            and conn.implied_synack_frame is not None
            and self._late_synack(conn, seg, role, fs, fr, es, er)
        ):
            return
        if (
            es.state == SYN_RECEIVED
            and fs.synack_frame is not None
            and seg.seq != fs.isn
            and er.state == SYN_SENT
            and er.transitions
            and er.transitions[-1].frame > fs.synack_frame
        ):
            # The peer opened again after our SYN-ACK (its same SYN, _reopen): a SYN-ACK
            # with a new ISN shows that SYN returned this passive endpoint to LISTEN
            # (RFC 9293 §3.10.7.4, fourth, check the SYN bit; Endpoint.step decides: a
            # passive open only).
            es.step(fsm.RCV_SYN, er.transitions[-1].frame)
        if es.state == LISTEN and fs.synack_frame is not None and seg.seq != fs.isn:
            # The sender returned to LISTEN (an acceptable RST in SYN-RECEIVED, RFC 9293
            # §3.10.7.4) and answers a SYN anew with a new ISN: a new SYN-ACK, not a
            # repetition (RFC 9293 §3.5 figure 8, recovery from an old duplicate SYN).
            fs.isn = fs.synack_frame = None
        if fs.isn is None:
            fs.set_base(seg.seq, isn=True)
            fs.advance(1 + seg.payload_len)
            fs.syn_len = seg.payload_len
        if fs.synack_frame is None:
            fs.synack_frame, fs.synack_count = frame, 1
        else:
            fs.synack_count += 1
            self.emit(
                conn,
                "HS006",
                frame,
                role,
                isn_abs=seg.seq,
                first_frame=fs.synack_frame,
                count=fs.synack_count,
            )
        if fr.isn is None:
            # The peer's SYN is not in the capture: its ISN is what this SYN-ACK acknowledges.
            self.emit(conn, "HS008", frame, role, isn_abs=seg.seq)
            fr.set_base((seg.ack - 1) & 0xFFFFFFFF, isn=True)
            fr.advance(1)
            er.assume(SYN_SENT)
        ack = fr.u(seg.ack)
        syn_len = fr.syn_len
        acceptable = ack == 1 + syn_len or (syn_len and ack == 1)
        if fr.syn_frame is not None and syn_len and fs.synack_count == 1:
            accepted = ack == 1 + syn_len
            conn.tfo_accepted = accepted
            verdict = (
                f"the SYN-ACK accepted the {syn_len} bytes"
                if accepted
                else "the SYN-ACK did not accept the data; the client sends it again "
                "after the handshake"
            )
            self.emit(
                conn,
                "HS012",
                fr.syn_frame,
                "server" if role == "client" else "client",
                payload_len=syn_len,
                accepted=accepted,
                verdict=verdict,
            )
        if not acceptable:
            expected = 1 + syn_len
            if er.state == SYN_SENT:
                self._answer_due(conn, seg, er, "SYN-ACK")
            self.emit(
                conn,
                "HS002",
                frame,
                role,
                ack=ack,
                expected=expected,
                ack_abs=seg.ack,
                expected_abs=fr.absolute(expected),
                syn_data_len=syn_len,
            )
        if es.state is None:
            es.assume(LISTEN)
        es.step(fsm.SND_SYNACK, frame)
        if acceptable:
            # the SYN-ACK's receiver accepts it: no answer of its own is due any more
            # (the SYN-ACK's sender may still answer the peer's handshake ACK: HS004)
            conn.answers_due = tuple(d for d in conn.answers_due if d[2] != er.role)
            self._ack_value(fr, ack)
            er.step(fsm.RCV_SYNACK, frame)
        if er.state == CLOSED:
            # the peer has deleted its TCB (it accepted a reset, e.g. the answer to its
            # refused handshake ACK): it answers any segment but a reset with one (RFC
            # 9293 §3.10.7.1)
            self._answer_due(conn, seg, er, "SYN-ACK")
        self._note_ack(fs, seg.flags, seg.ack)

    def _late_synack(self, conn, seg, role, fs, fr, es, er) -> bool:
        """The first SYN-ACK captured after a client's ACK implied one
        (``conn.implied_synack_frame``); True when it is done with.

        * Its ISN is not the one the ACK implied (SEG.SEQ != ISN the implication gave):
          the ACK could not acknowledge it, so the implication is withdrawn (its
          transitions taken back, no CP002) and the SYN-ACK is judged on its own by
          the caller (False).
        * The implied ISN, acknowledging the SYN, within ``reorder_window`` of the
          ACK: the capture stored the ACK first. Nothing is missing (no CP002), nothing
          was sent twice; CP009 at this frame, and the transitions the ACK implied say
          which frame it was (True).
        * Later than that: a SYN-ACK resent after the original was lost to the capture
          (CP002 stands); the caller goes on (False)."""
        implied = conn.implied_synack_frame
        note = f" (not captured; implied by frame {implied})"
        if seg.seq != fs.isn:
            conn.implied_synack_frame = None
            for ep in (es, er):
                while ep.transitions and ep.transitions[-1].frame >= implied:
                    ep.undo_last()
            # the sequence space the ACK gave this side is forgotten: the SYN-ACK
            # starts it again (what the ACK acknowledged is nothing it sent)
            fs.base = fs.isn = fs.nxt = fs.acked = None
            fr.max_ack_abs = None
            return False
        gap = seg.ts - conn.implied_synack_ts
        if fr.syn_len or fr.u(seg.ack) != 1 or gap > self.reorder_window:
            return False
        frame = seg.frame
        conn.implied_synack_frame = None
        fs.synack_frame, fs.synack_count = frame, 1
        fs.syn_len = seg.payload_len
        self._reordered(conn, frame, role, implied, gap)
        for ep in (es, er):
            for t in ep.transitions:
                if t.cause.endswith(note):
                    t.cause = (
                        t.cause[: -len(note)] + f" (frame {frame}, stored after frame {implied})"
                    )
        self._note_ack(fs, seg.flags, seg.ack)
        return True

    def _implied_synack(self, conn, seg, role, fs, fr, es, er) -> None:
        """The client ACKs in SYN-SENT with no SYN-ACK captured: the SYN-ACK is implied."""
        frame = seg.frame
        note = f"not captured; implied by frame {frame}"
        if fr.base is None:
            fr.set_base((seg.ack - 1) & 0xFFFFFFFF, isn=True)
            fr.advance(1)
        conn.implied_synack_frame, conn.implied_synack_ts = frame, seg.ts
        if er.state is None:
            er.assume(LISTEN)
        er.step(fsm.SND_SYNACK, frame, note)
        es.step(fsm.RCV_SYNACK, frame, note)

    # ------------------------------------------------------------------ ACK field
    def _ack(self, conn, seg, role, fs, fr, es, er, prev_frame) -> bool:
        """The ACK field of ``seg`` (no SYN), sent by ``es``; True when its receiver
        ``er``, in SYN-RECEIVED, cannot accept it (not SND.UNA < SEG.ACK =< SND.NXT):
        it answers with a reset and drops the segment (RFC 9293 §3.10.7.4, fifth, check
        the ACK field), so the caller does not give it the segment's FIN."""
        frame = seg.frame
        refused = False
        if es.state == SYN_SENT and fr.synack_frame is None and fs.isn is not None:
            self._implied_synack(conn, seg, role, fs, fr, es, er)
        if fr.base is None:
            self._note_ack(fs, seg.flags, seg.ack)
            return False  # nothing seen from the peer yet: its sequence space is unknown
        ack = fr.u(seg.ack)
        if fr.probe is not None:
            self._probe_taken(fr, ack)
        if es.state == SYN_RECEIVED and fr.packets == 0 and ack > 1 + fr.syn_len:
            # Only this direction is captured: acknowledging the peer's data proves the
            # peer's handshake ACK reached this endpoint.
            es.step(fsm.RCV_ACK_OF_SYN, frame, f"not captured; implied by frame {frame}")
        if er.state == SYN_RECEIVED and (fr.synack_frame is not None or conn.implied_synack_frame):
            # RFC 9293 §3.10.7.4 SYN-RECEIVED: the ACK is acceptable when
            # SND.UNA < SEG.ACK =< SND.NXT; a server that accepted TFO data may have sent
            # data already, so SND.NXT can be beyond ISN+1.
            exp_ack = 1 + fr.syn_len
            exp_seq = 1 + (fs.syn_len if conn.tfo_accepted else 0)
            seq = fs.u(seg.seq)
            ack_ok = 0 < ack <= max(fr.nxt or 0, exp_ack)
            if ack_ok and seq == exp_seq:
                if es.state == CLOSED and not conn.closed:
                    self._answer_dropped(conn, es)
                er.step(fsm.RCV_ACK_OF_SYN, frame)
            else:
                if not ack_ok:  # each one is answered (§3.10.7.4); HS004 is reported once
                    self._answer_due(conn, seg, er, "ACK")
                    refused = True
                if not conn.hs_bad_reported:
                    conn.hs_bad_reported = True
                    # the field found wrong: the ACK field when it is, else the seq
                    name, actual, expected, actual_abs, expected_abs = (
                        ("ack", ack, exp_ack, seg.ack, fr.absolute(exp_ack))
                        if not ack_ok
                        else ("seq", seq, exp_seq, seg.seq, fs.absolute(exp_seq))
                    )
                    self.emit(
                        conn,
                        "HS004",
                        frame,
                        role,
                        field=name,
                        actual=actual,
                        expected=expected,
                        actual_abs=actual_abs,
                        expected_abs=expected_abs,
                    )
        if fr.fin is not None and fr.fin_acked_frame is None:
            if ack >= fr.fin + 1:
                fr.fin_acked_frame = frame
                er.step(fsm.RCV_ACK_OF_FIN, frame)
                if ack > fr.nxt:
                    self.emit(
                        conn,
                        "CL002",
                        frame,
                        role,
                        ack=ack,
                        expected=fr.fin + 1,
                        fin_frame=fr.fin_frame,
                        fin_seq=fr.fin,
                    )
            elif (
                ack == fr.fin
                and fr.fin_reply_frame is None
                and fr.fin_frame is not None
                and (prev_frame is None or prev_frame < fr.fin_frame)
                and not seg.payload_len
                and not seg.flags & FIN
            ):
                # The peer's first segment after the FIN is a pure ACK of the FIN's own
                # sequence number: the reply to the FIN, acknowledging seq instead of seq+1.
                fr.fin_reply_frame = frame
                self.emit(
                    conn,
                    "CL002",
                    frame,
                    role,
                    ack=ack,
                    expected=fr.fin + 1,
                    fin_frame=fr.fin_frame,
                    fin_seq=fr.fin,
                )
        elif fr.nxt is not None and ack > fr.nxt:
            if fr.packets == 0 and ack > fr.nxt + 1:
                fr.advance(ack - 1 if seg.flags & FIN else ack)  # one-sided capture: implied data
            elif (
                ack == fr.nxt + 1
                and fr.fin is None
                and er.state in SYNCHRONIZED
                and es.state in SYNCHRONIZED
            ):
                self._implied_fin(conn, seg, role, fs, fr, es, er)
            elif (
                ack > fr.nxt
                and (not fr.pending or ack > fr.pending[-1][0])
                and len(fr.pending) < 16
            ):
                fr.pending.append([ack, frame, fr.nxt, seg.ts])
        if fr.holes:
            self._holes_acked(conn, seg, role, fr, ack)
        self._ack_value(fr, ack)
        self._note_ack(fs, seg.flags, seg.ack)
        return refused

    def _implied_fin(self, conn, seg, role, fs, fr, es, er) -> None:
        """The peer's FIN is missing from the capture; this ACK (= its seq + 1) proves it."""
        frame = seg.frame
        other = "server" if role == "client" else "client"
        note = f"not captured; implied by frame {frame}"
        fr.fin = fr.nxt
        fr.fin_implied_frame, fr.fin_implied_ts = frame, seg.ts
        fr.advance(fr.fin + 1)
        er.step(fsm.SND_FIN, frame, note)
        if fr.packets == 0 and fs.fin is not None and fs.fin_acked_frame is None:
            # One-sided capture: the implied FIN also acknowledged ours (else this ACK
            # could not have been the last word of the close).
            fs.fin_acked_frame = frame
            es.step(fsm.RCV_ACK_OF_FIN, frame, note)
        es.step(fsm.RCV_FIN, frame, note)
        fr.fin_acked_frame = frame
        er.step(fsm.RCV_ACK_OF_FIN, frame)
        self.emit(
            conn,
            "CP002",
            frame,
            role,
            ack=fr.fin + 1,
            seen_max=fr.fin,
            detail=f"the {other}'s FIN is not in the capture; the {role}'s ACK "
            f"({fr.fin + 1}) proves it was sent",
        )

    def _late_fin(self, conn, seg, fs: Flow, es: Endpoint, er: Endpoint) -> bool:
        """True when ``seg`` is the FIN a peer's ACK implied a moment before: the capture
        stored the ACK first (reordering); the implication is withdrawn, nothing is
        missing, and the FIN is not a retransmission."""
        fin = fs.u(seg.seq) + seg.payload_len
        if fin != fs.fin or seg.ts - fs.fin_implied_ts > self.reorder_window:
            return False
        frame, implied = seg.frame, fs.fin_implied_frame
        fs.fin_frame, fs.fin_count = frame, 1
        self._reordered(conn, frame, conn.role_of(seg), implied, seg.ts - fs.fin_implied_ts)
        conn.events[:] = [e for e in conn.events if not (e.rule == "CP002" and e.frame == implied)]
        note = f" (not captured; implied by frame {implied})"
        for ep in (es, er):
            for t in ep.transitions:
                if t.cause.endswith(note):
                    t.cause = t.cause[: -len(note)] + f" (frame {frame}, stored after its ACK)"
        return True

    def _holes_acked(self, conn, seg, role, fr: Flow, ack: int) -> None:
        keep = []
        other = "server" if role == "client" else "client"
        for hole in fr.holes:
            start, end, hframe, _ts, reported = hole
            if ack > start and not reported:
                self.emit(
                    conn,
                    "CP002",
                    seg.frame,
                    role,
                    ack=ack,
                    seen_max=start,
                    detail=f"the {role} acknowledged {min(ack, end) - start} bytes "
                    f"from seq {start} that the capture never saw from the "
                    f"{other} (hole before frame {hframe})",
                )
                hole[4] = True
            if ack < end:
                keep.append(hole)
        fr.holes = keep

    @staticmethod
    def _ack_value(fr: Flow, ack: int) -> None:
        if fr.acked is None or ack > fr.acked:
            fr.acked = ack
        q = fr.unacked
        if q and q[0][1] <= ack:
            _drop_acked(q, ack)

    @staticmethod
    def _note_ack(fs: Flow, flags: int, ack: int) -> None:
        """The latest SEG.ACK (absolute) the owner of ``fs`` sent, when ``flags`` has ACK."""
        if flags & ACK:
            fs.max_ack_abs = ack

    # ------------------------------------------------------------------ data
    def _data(self, conn, seg, role, fs: Flow, fr: Flow, es: Endpoint) -> None:
        frame, length = seg.frame, seg.payload_len
        seq = fs.u(seg.seq)
        end = seq + length
        if length <= 1 and fs.nxt is not None and seq == fs.nxt - 1 and not seg.flags & FIN:
            return  # a keep-alive (RFC 9293 §3.8.4): one old byte or none, not a retransmission
        if es.state == SYN_RECEIVED and fr.packets == 0 and not conn.tfo_accepted:
            # Only this direction is captured: a stack sends data after the handshake
            # ACK, which travelled in the direction the capture does not have.
            es.step(fsm.RCV_ACK_OF_SYN, frame, f"not captured; implied by frame {frame}")
        if fr.zero and length == 1 and fs.nxt is not None and seq == fs.nxt and not seg.flags & FIN:
            # A zero-window probe (RFC 9293 §3.8.6.1): one byte into a closed window,
            # dropped by the receiver; it does not advance SND.NXT (as in Wireshark)
            # unless it turns out to have been accepted (_probe_taken).
            self.mark(frame, "zero_window_probe")
            fs.probe = seq + 1
            return
        if fs.probe is not None:
            self._probe_taken(fs, seq)
        state = es.state
        if state in (SYN_SENT, LISTEN, CLOSED) or (
            state == SYN_RECEIVED and not (role == "server" and conn.tfo_accepted)
        ):
            self.emit(conn, "HS007", frame, role, payload_len=length, seq=seq)
        beyond_fin = fs.fin is not None and end > fs.fin and fs.fin_frame is not None
        if beyond_fin:
            self.emit(
                conn,
                "CL005",
                frame,
                role,
                seq=seq,
                payload_len=length,
                fin_seq=fs.fin,
                fin_frame=fs.fin_frame,
            )
        ahead = fs.fin_ahead
        if ahead is not None and not beyond_fin and ahead[0] <= seq and end <= ahead[1]:
            if seg.ts - ahead[3] <= self.reorder_window:
                # the capture stored the FIN before this data, which it comes after
                self._reordered(conn, frame, role, ahead[2], seg.ts - ahead[3])
                self.mark(frame, "out_of_order")
                fs.add_unacked(seq, end, frame)
                fs.high_ts = seg.ts
                if seq == ahead[0]:
                    fs.fin_ahead = (end, *ahead[1:]) if end < ahead[1] else None
                return
            fs.fin_ahead = None
        if fs.nxt is None or seq >= fs.nxt or beyond_fin:
            if fs.nxt is not None and seq > fs.nxt:
                self._new_hole(conn, fs, seg, fs.nxt, seq)
            if fs.pending:
                self._resolve_pending(conn, fs, end, seg.ts, role, frame)
            if beyond_fin:
                fs.high_ts = seg.ts
                fs.advance(end)
            else:
                self._sent(fs, seq, end, frame, seg.ts)
            return
        filled = self._fill_holes(fs, seq, end)
        if filled and seg.ts - fs.high_ts <= self.reorder_window:
            self.emit(conn, "SQ006", frame, role, seq=seq, expected=fs.nxt)
        else:
            first = fs.unacked_frame(seq)
            if first is None and seq < 1 + fs.syn_len:
                first = fs.syn_frame  # data first carried on the SYN (TFO)
            self.emit(conn, "SQ002", frame, role, **retransmission_data(seq, length, first))
            if fs.unacked and seq <= fs.unacked[0][0] < end:
                self._backoff(fs, fs.unacked[0][0], seg.ts)
        if end > fs.nxt:
            self._sent(fs, fs.nxt, end, frame, seg.ts)

    def _reordered(self, conn, frame: int, role: str, early_frame: int | None, gap: float) -> None:
        """CP009 at ``frame``: the capture stored ``early_frame`` (a segment that depends on
        this one) ``gap`` seconds before it; the gap reported in microsecond steps."""
        self.emit(conn, "CP009", frame, role, early_frame=early_frame, gap=round(gap, 6))

    @staticmethod
    def _backoff(fs: Flow, start: int, ts: float) -> None:
        """A retransmission at ``ts`` (seconds since the epoch) that resends the first
        unacknowledged byte, at ``start`` (unwrapped relative), of ``fs``'s sender:
        noted in :attr:`Flow.backoff` (constant size). The first interval is measured
        from the sender's latest new data (its retransmission timer runs from there,
        RFC 6298 §5); another first byte starts the count again."""
        b = fs.backoff
        if b is None or b[0] != start:
            interval = ts - fs.high_ts
            fs.backoff = (start, ts, interval, 1, interval > 0)
        else:
            interval = ts - b[1]
            fs.backoff = (start, ts, interval, b[3] + 1, b[4] and interval > b[2])

    @staticmethod
    def backing_off(fs: Flow) -> bool:
        """Whether ``fs``'s sender is retransmitting its first unacknowledged byte with a
        growing interval (at least twice, each interval longer than the one before: the
        exponential backoff of RFC 6298 §5.5, RFC 9293 §3.8.3): it gets no ACK. With
        data still unacknowledged at the end of the capture, SQ003 although the peer sent
        nothing after it (a dead peer, a broken path)."""
        b = fs.backoff
        return (
            b is not None and bool(fs.unacked) and b[0] == fs.unacked[0][0] and b[3] >= 2 and b[4]
        )

    def _jump(self, conn, seg: Segment, fs: Flow, seq: int) -> None:
        """``seg``, a segment without data (a pure ACK, or a FIN at ``seq``, relative),
        starts beyond the sender's SND.NXT: when :meth:`_confirmed`, the capture missed
        the sender's segments in between (Wireshark's "previous segment not captured"):
        a hole, as :meth:`_data` records one (CP002 at the peer's ACK), and SND.NXT
        moves to ``seq``."""
        if fs.probe is not None:
            self._probe_taken(fs, seq)
        nxt = fs.nxt
        assert nxt is not None  # (the caller checks it)
        if seq > nxt and self._confirmed(fs, seq):
            self._new_hole(conn, fs, seg, nxt, seq)
            fs.advance(seq)

    @staticmethod
    def _probe_taken(fs: Flow, pos: int) -> None:
        """The byte of the zero-window probe at SND.NXT (``fs.probe``, its end) was
        accepted when the sender goes on past it or the peer acknowledges it (``pos``,
        relative, is at or beyond its end): SND.NXT moves past it, so that neither a
        hole nor a FIN nor an acknowledgment of unsent data is inferred from it."""
        probe, nxt = fs.probe, fs.nxt
        assert probe is not None and nxt is not None  # (a probe is at SND.NXT)
        if probe == nxt + 1 and pos >= probe:
            fs.advance(probe)
        fs.probe = None if probe <= fs.nxt else probe  # type: ignore[operator]

    @staticmethod
    def _confirmed(fs: Flow, seq: int) -> bool:
        """Whether the peer has already acknowledged the sender's sequence space up to
        ``seq`` (relative) beyond SND.NXT (a pending ACK, see :meth:`_ack`): then a
        segment without data at ``seq`` (a pure ACK, a FIN) shows the capture lost data.
        Without that acknowledgment its SEG.SEQ alone is no proof: a stray segment (of an
        earlier connection on the 4-tuple, of a scan) or the byte of a zero-window probe
        the receiver accepted (which SND.NXT does not count, as in Wireshark) would
        open a false hole."""
        nxt = fs.nxt
        return any(nxt < p[0] and seq <= p[0] for p in fs.pending)

    def _new_hole(self, conn, fs: Flow, seg: Segment, start: int, end: int) -> None:
        reported = False
        if fs.pending:
            explained = [p for p in fs.pending if p[0] > start]
            if explained:
                ack, aframe, _nxt, _ts = explained[0]
                sender = "server" if conn.role_of(seg) == "client" else "client"
                owner = conn.role_of(seg)
                self.emit(
                    conn,
                    "CP002",
                    aframe,
                    sender,
                    ack=ack,
                    seen_max=start,
                    detail=f"the {sender} acknowledged up to {ack} before the capture "
                    f"showed the {owner} sending past {start}; frame "
                    f"{seg.frame} confirms the {owner} sent the missing "
                    f"{end - start} bytes",
                )
                fs.pending = [p for p in fs.pending if p[0] <= start]
                reported = True
        if len(fs.holes) < 64:
            fs.holes.append([start, end, seg.frame, seg.ts, reported])

    def _resolve_pending(self, conn, fs: Flow, end: int, ts: float, owner: str, frame: int) -> None:
        """The sender's data (``frame``, owner ``owner``) reached an ACK that came
        before it, with no hole between: within ``reorder_window`` the capture stored
        the ACK first (CP009 at ``frame``, once, naming the earliest such ACK); later,
        the peer acknowledged data not yet sent (SQ001 at the ACK)."""
        keep = []
        reordered = None
        sender = "server" if owner == "client" else "client"
        for p in fs.pending:
            ack, aframe, nxt_then, ats = p
            if end >= ack:
                if ts - ats > self.reorder_window:
                    ev = Event(
                        "SQ001",
                        conn.id,
                        aframe,
                        {
                            "ack": ack,
                            "sent_max": nxt_then,
                            "client": conn.client_text,
                            "server": conn.server_text,
                        },
                    )
                    conn.events.append(ev)
                    self._frame_events.append((ev, sender))
                elif reordered is None:
                    # the capture stored the ACK a moment before the data
                    reordered = (aframe, ts - ats)
            else:
                keep.append(p)
        fs.pending = keep
        if reordered is not None:
            self._reordered(conn, frame, owner, *reordered)

    @staticmethod
    def _fill_holes(fs: Flow, start: int, end: int) -> bool:
        filled = False
        new = []
        for hole in fs.holes:
            hs, he = hole[0], hole[1]
            if end <= hs or start >= he:
                new.append(hole)
                continue
            filled = True
            if start > hs:
                new.append([hs, start] + hole[2:])
            if end < he:
                new.append([end, he] + hole[2:])
        fs.holes = new
        return filled

    # ------------------------------------------------------------------ FIN
    def _fin(
        self,
        conn,
        seg,
        role,
        fs: Flow,
        fr: Flow,
        es: Endpoint,
        er: Endpoint,
        prev_frame,
        refused: bool = False,
    ) -> None:
        """The FIN of ``seg``, sent by ``es``. ``refused``: its receiver ``er`` drops the
        segment (an unacceptable ACK in SYN-RECEIVED, :meth:`_ack`): the sender has
        sent its FIN, the receiver has not received it (RFC 9293 §3.10.7.4: the FIN bit
        is checked only after an acceptable ACK)."""
        frame = seg.frame
        fin = fs.u(seg.seq) + seg.payload_len
        if es.state in (SYN_SENT, LISTEN, CLOSED):
            self.emit(conn, "HS013", frame, role, seq=fs.u(seg.seq))
            return
        if fs.fin is None:
            if fs.nxt is not None:
                self._jump(conn, seg, fs, fin)  # segments before it not captured?
                if fin > fs.nxt:  # not confirmed: the data before it may still come
                    fs.fin_ahead = (fs.nxt, fin, frame, seg.ts)
            fs.fin, fs.fin_frame, fs.fin_count = fin, frame, 1
            fs.advance(fin + 1)
            crossing = (
                es.state == CLOSE_WAIT
                and fr.fin is not None
                and fr.fin_frame is not None
                and fr.fin_acked_frame is None
                and (prev_frame is None or prev_frame < fr.fin_frame)
            )
            if crossing and es.transitions and es.transitions[-1].to_state == CLOSE_WAIT:
                # Both FINs crossed: this endpoint sent its FIN before the peer's arrived.
                es.undo_last()
                es.step(fsm.SND_FIN, frame)
                es.step(fsm.RCV_FIN, frame, f"frame {fr.fin_frame}, which crossed ours")
            else:
                es.step(fsm.SND_FIN, frame)
            if refused:
                return
            if er.state == FIN_WAIT_1:
                self.emit(conn, "CL007", frame, role, other_frame=fr.fin_frame)
            er.step(fsm.RCV_FIN, frame)
        elif fin == fs.fin:
            fs.fin_count += 1
            self.emit(
                conn,
                "CL006",
                frame,
                role,
                fin_seq=fin,
                first_frame=fs.fin_frame,
                count=fs.fin_count,
            )

    # ------------------------------------------------------------------ RST
    def _rst(self, conn, seg, role, fs: Flow, fr: Flow, es: Endpoint, er: Endpoint) -> None:
        frame = seg.frame
        due = self._answering(conn, seg, es)
        if due is not None:
            self._answer(conn, seg, role, es, er, due)
            return
        if er.state == SYN_SENT and fs.synack_frame is None:
            # An RST answering a SYN (RFC 9293 §3.10.7.3): acceptable only with ACK = ISN+1.
            ack = fr.u(seg.ack) if (seg.flags & ACK and fr.base is not None) else None
            expected = 1 + fr.syn_len
            if ack is not None and 0 < ack <= expected:
                if es.state is None:
                    es.assume(CLOSED)
                conn.refused = True
                self.emit(conn, "HS011", frame, role, syn_frame=fr.syn_frame)
                self._reset(conn, seg, role, es, er)
            else:
                self.emit(
                    conn,
                    "RS005",
                    frame,
                    role,
                    ack=ack,
                    expected=expected,
                    ack_abs=seg.ack if seg.flags & ACK else None,
                    expected_abs=fr.absolute(expected) if fr.base is not None else None,
                )
            return
        if fs.base is None:
            fs.set_base(seg.seq, isn=False)
        synced = es.state in SYNCHRONIZED and er.state in SYNCHRONIZED
        if not synced and (fs.synack_frame is not None or fr.synack_frame is not None):
            self.emit(conn, "RS004", frame, role)
            self._reset(conn, seg, role, es, er)
            return
        if not synced and es.state not in SYNCHRONIZED and er.state not in SYNCHRONIZED:
            self._reset(conn, seg, role, es, er)  # e.g. a client aborting its own SYN
            return
        seq = fs.u(seg.seq)
        lo = fs.nxt if fs.nxt is not None else seq
        if fs.acked is not None:
            lo = min(lo, fs.acked)
        hi = max(fs.nxt or lo, fs.acked or lo)
        wnd = fr.win
        if wnd is not None and not (lo <= seq <= hi + max(wnd - 1, 0)):
            self.emit(
                conn, "RS003", frame, role, seq=seq, rcv_nxt=hi, rcv_wnd=wnd, window_end=hi + wnd
            )
            return
        if fs.fin is not None or fr.fin is not None:
            fin_frame = fs.fin_frame if fs.fin is not None else fr.fin_frame
            self.emit(conn, "RS002", frame, role, fin_frame=fin_frame)
        else:
            self.emit(conn, "RS001", frame, role)
        self._reset(conn, seg, role, es, er)

    @staticmethod
    def _answer_due(conn, seg, receiver: Endpoint, what: str) -> None:
        """Note that ``receiver`` cannot accept ``seg`` (a ``what``: "SYN-ACK", "ACK")
        and answers it with a reset <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.5.2, reset
        generation: the receiver has no TCB, §3.10.7.1, or is not synchronized and
        the segment's ACK is not acceptable: in SYN-SENT SEG.ACK =< ISS or SEG.ACK >
        SND.NXT, §3.10.7.3, in SYN-RECEIVED not SND.UNA < SEG.ACK =< SND.NXT,
        §3.10.7.4). Counted in ``conn.answers_due`` (every such segment is answered,
        oldest first): one more of the entry with its SEG.ACK, receiver, state and
        ``what``, else a new entry; with
        :data:`~pcapcheck.tcp.connection.ANSWERS_KEPT` entries already, none (the
        answers to the oldest come first, so the newest are the ones left out)."""
        ack, role, state = seg.ack, receiver.role, receiver.state
        dues = conn.answers_due
        for i, d in enumerate(dues):
            if d[0] == ack and d[2] == role and d[3] == state and d[4] == what:
                conn.answers_due = (*dues[:i], (*d[:5], d[5] + 1), *dues[i + 1 :])
                return
        if len(dues) < ANSWERS_KEPT:
            conn.answers_due = (*dues, (ack, seg.frame, role, state, what, 1))

    @staticmethod
    def _answering(conn, seg, es: Endpoint) -> tuple[int, int, str, str, str, int] | None:
        """The one decision "this RST is the RFC's answer to the peer's unacceptable
        segment": the oldest of ``conn.answers_due`` (see :meth:`_answer_due`) that
        ``seg``, an RST sent by ``es``, answers, else None. The answer is <SEQ=SEG.ACK>
        <CTL=RST>: no ACK bit, the sequence number the unacceptable segment's SEG.ACK
        (absolute 32-bit), sent by its receiver while still in the state it received
        it in (RFC 9293 §3.10.7.1 CLOSED, §3.10.7.3 SYN-SENT, §3.10.7.4 SYN-RECEIVED:
        the sender keeps its state)."""
        if seg.flags & ACK:
            return None
        seq, sender, state = seg.seq, es.role, es.state
        for due in conn.answers_due:
            if due[0] == seq and due[2] == sender and due[3] == state:
                return due
        return None

    @staticmethod
    def _answer(conn, seg, role, es: Endpoint, er: Endpoint, due) -> None:
        """Apply the RFC's answer ``seg`` to the unacceptable segment ``due`` (found by
        :meth:`_answering`; it takes one of its count in ``conn.answers_due``). It is
        no finding: the
        fault is the unacceptable segment's (HS002, HS004). Its sender ``es`` keeps its
        state: in SYN-SENT it discards the SYN-ACK and waits for a correct one
        (§3.10.7.3, §3.5 figure 8), in SYN-RECEIVED it waits for a correct ACK and
        retransmits its SYN-ACK (§3.10.7.4), in CLOSED it has no TCB. For the segment's
        sender ``er`` the RST is acceptable: its sequence number is the RCV.NXT that
        sender announced in the segment's ACK field (§3.10.7.4 second, check the RST
        bit: with RFC 5961 §3.2 it exactly matches RCV.NXT, so no challenge ACK). From
        SYN-RECEIVED a passive open returns to LISTEN, an active one is closed; from
        ESTABLISHED it is CLOSED (the client whose handshake ACK was refused); already
        CLOSED (an earlier answer reset it) it discards the RST (§3.10.7.1). The
        connection is reset when that RST leaves ``er`` CLOSED, and over when neither
        endpoint has a connection left (both CLOSED or LISTEN); otherwise it goes on."""
        frame = seg.frame
        conn.answers_due = tuple(
            (*d[:5], d[5] - 1) if d is due else d
            for d in conn.answers_due
            if d is not due or d[5] > 1
        )
        changed = er.step(fsm.RCV_RST, frame, f"the answer to the {due[4]} of frame {due[1]}")
        ended = es.state in (CLOSED, LISTEN) and er.state in (CLOSED, LISTEN)
        if (changed and er.state == CLOSED) or ended:
            conn.reset_frame, conn.reset_by = frame, role
        if ended:
            conn.closed, conn.closed_frame, conn.close_ts = True, frame, seg.ts

    @staticmethod
    def _reopen(conn, es: Endpoint, frame: int) -> None:
        """``es``, CLOSED by a reset the connection survived (the RFC's answer to its
        unacceptable handshake ACK, the peer still in SYN-RECEIVED), sends its SYN again
        with the same ISN at ``frame``: a new OPEN (RFC 9293 §3.10.1, CLOSED ->
        SYN-SENT) on the same connection (:meth:`Tracker._starts_new
        <pcapcheck.tcp.tracker.Tracker._starts_new>`: the same ISN is the same attempt).
        The reset is kept in ``es``'s transitions (it proves the answer was accepted,
        not dropped: :meth:`_answer_dropped` no longer applies) but no longer ends the
        connection (``conn.reset_frame`` cleared)."""
        es.step(fsm.SND_SYN, frame)
        if conn.reset_by is not None and conn.reset_by != es.role:
            conn.reset_frame = conn.reset_by = None

    @staticmethod
    def _answer_dropped(conn, es: Endpoint) -> None:
        """``es``, held CLOSED since the RFC's answer to its unacceptable handshake ACK
        (:meth:`_answer`, at ``conn.reset_frame``), now acknowledges the peer's SYN as
        it should (the peer in SYN-RECEIVED accepts it): it still has its connection, so
        it dropped that RST. Its RCV.NXT was not the value its ACK announced, the RST
        was outside its window (RFC 9293 §3.10.7.4, first check) and it completes the
        handshake on the SYN-ACK retransmission. Its move to CLOSED is taken back, the
        connection is not reset and it answers nothing more (``conn.answers_due``)."""
        last = es.transitions[-1] if es.transitions else None
        if last is None or last.frame != conn.reset_frame or last.to_state != CLOSED:
            return
        es.undo_last()
        conn.reset_frame = conn.reset_by = None
        conn.answers_due = tuple(d for d in conn.answers_due if d[2] != es.role)

    def _reset(self, conn, seg, role, es: Endpoint, er: Endpoint) -> None:
        es.step(fsm.SND_RST, seg.frame)
        er.step(fsm.RCV_RST, seg.frame)
        if es.state is None:
            es.assume(CLOSED)
        conn.reset_frame, conn.reset_by = seg.frame, role
        conn.closed, conn.closed_frame, conn.close_ts = True, seg.frame, seg.ts

    # ------------------------------------------------------------------ after close
    def _after_close(self, conn, seg, role, fs: Flow, fr: Flow) -> None:
        flags = seg.flags
        if flags & RST:
            return
        if flags & SYN and not flags & ACK and fs.isn is not None and seg.seq == fs.isn:
            fs.syn_count += 1
            self.emit(
                conn,
                "HS005",
                seg.frame,
                role,
                isn_abs=seg.seq,
                first_frame=fs.syn_frame,
                count=fs.syn_count,
            )
            return
        if fs.base is not None:
            seq = fs.u(seg.seq)
            if flags & FIN and fs.fin is not None and seq + seg.payload_len == fs.fin:
                fs.fin_count += 1
                self.emit(
                    conn,
                    "CL006",
                    seg.frame,
                    role,
                    fin_seq=fs.fin,
                    first_frame=fs.fin_frame,
                    count=fs.fin_count,
                )
                return
            sender_state = conn.ec.state if role == "client" else conn.es.state
            if (
                flags & ACK
                and not seg.payload_len
                and not flags & (SYN | FIN)
                and sender_state == TIME_WAIT
                and fr.fin is not None
                and fr.base is not None
                and fr.u(seg.ack) == fr.fin + 1
            ):
                return  # the ACK of a (retransmitted) FIN, from TIME-WAIT
        if not conn.after_close_reported:
            conn.after_close_reported = True
            self.emit(conn, "CL009", seg.frame, role, closed_frame=conn.closed_frame)

    def _check_closed(self, conn: Connection, seg: Segment) -> None:
        if (
            conn.ec.state in _ENDED
            and conn.es.state in _ENDED
            and (conn.c.fin is not None or conn.s.fin is not None)
            and conn.c.fin_acked_frame is not None
            and conn.s.fin_acked_frame is not None
        ):
            conn.closed, conn.closed_frame, conn.close_ts = True, seg.frame, seg.ts

    # ------------------------------------------------------------------ window
    def _window(self, conn, seg, role, fs: Flow, fr: Flow) -> None:
        flags = seg.flags
        if flags & SYN:
            if seg.options is not None and seg.options.wscale is not None:
                fs.wscale = seg.options.wscale
            fs.win = seg.window
            return
        self._window_value(fs, fr, seg.window)
        if flags & (FIN | RST):
            return
        if seg.window == 0:
            if not fs.zero:
                fs.zero = True
                self.emit(conn, "SQ005", seg.frame, role)
        else:
            fs.zero = False

    @staticmethod
    def _window_value(fs: Flow, fr: Flow, window: int) -> None:
        """The window the owner of ``fs`` advertises in a segment without SYN: the raw
        16-bit ``window``, scaled when both sides offered window scaling (RFC 7323 §2)."""
        scale = fs.wscale if (fs.wscale is not None and fr.wscale is not None) else 0
        fs.win = window << scale
        fs.last_window_raw = window

    # ------------------------------------------------------------------ end of capture
    def finish(self, conn: Connection, capture_end: float, cut: bool = False) -> None:
        """Take the decisions that need the whole capture (HS001, HS003, CL001-CL004,
        CL008, SQ001, SQ003, CP001, CP002, CP007), "by the end of the capture".
        ``capture_end``: seconds since the epoch of the capture's last record. ``cut``:
        the file ends in the middle of a record (CP006): what never happened may have
        been cut off, so nothing is concluded from an absence (HS001, HS003, CL001,
        CL003, CL004, SQ001, SQ003 are not judged)."""
        c, s = conn.c, conn.s
        one_sided = (c.packets == 0) != (s.packets == 0) and self._one_sided(conn)
        sides = (("client", c, s, conn.ec, conn.es), ("server", s, c, conn.es, conn.ec))
        if conn.midstream:
            self.emit(conn, "CP001", conn.first_frame, None, previous_connection=conn.tail_of)
        if conn.tail_of is not None:
            # Late segments of a connection released after its close (retransmitted FINs
            # and ACKs, for instance): nothing it lacks is anyone's fault.
            one_sided, cut = False, True
        if one_sided:
            # Only one direction was captured: what the other side did is inferred from
            # the acknowledgments, and nothing it "failed" to send is its fault.
            seen = "client to server" if c.packets else "server to client"
            conn.events[:] = [e for e in conn.events if e.rule not in ("CP002", "HS008")]
            self.emit(conn, "CP007", conn.first_frame, None, seen=seen)
        elif not cut:
            if conn.implied_synack_frame is not None:
                self.emit(
                    conn,
                    "CP002",
                    conn.implied_synack_frame,
                    "client",
                    ack=1,
                    seen_max=None,
                    detail="the server's SYN-ACK is not in the capture; the client's "
                    "ACK proves it was sent",
                )
            if conn.ec.state == SYN_SENT and s.synack_frame is None and not s.packets:
                self.emit(
                    conn,
                    "HS001",
                    c.syn_frame,
                    "client",
                    attempts=c.syn_count,
                    isn_abs=c.isn,
                    first_frame=c.syn_frame,
                )
            for role, f, _peer, e, _pe in sides:
                if (
                    e.state == SYN_RECEIVED
                    and f.synack_frame is not None
                    and not conn.hs_bad_reported
                ):
                    self.emit(conn, "HS003", f.synack_frame, role, synack_frame=f.synack_frame)
            if conn.reset_frame is None:
                self._finish_close(conn, sides)
            for role, f, _peer, _e, _pe in sides:
                other = "server" if role == "client" else "client"
                for ack, aframe, nxt_then, _ts in f.pending:
                    if f.nxt is not None and ack > f.nxt:
                        self.emit(conn, "SQ001", aframe, other, ack=ack, sent_max=nxt_then)
                for start, end, hframe, _ts, reported in f.holes:
                    if not reported:
                        self.emit(
                            conn,
                            "CP002",
                            hframe,
                            role,
                            ack=None,
                            seen_max=start,
                            detail=f"{end - start} bytes from seq {start} were never "
                            f"seen in the capture (the {role}'s frame {hframe} "
                            "starts after them): lost before the capture "
                            "point or by the capture itself",
                        )
        c.pending, s.pending = [], []
        if (
            conn.ec.state == ESTABLISHED
            and conn.es.state == ESTABLISHED
            and conn.reset_frame is None
            and conn.tail_of is None
        ):
            self.emit(
                conn, "CL008", conn.last_frame, None, idle=round(capture_end - conn.last_ts, 6)
            )
        self._fill_states(conn, None)
        conn.events.sort(key=lambda e: (e.frame or 0, e.rule))

    def _finish_close(self, conn: Connection, sides) -> None:
        for role, f, peer, e, pe in sides:
            other = "server" if role == "client" else "client"
            if f.fin_frame is not None and f.fin_acked_frame is None:
                if f.fin_reply_frame is not None:
                    pass  # already reported as CL002 (the reply acknowledged the FIN's seq)
                elif peer.fin_frame is not None and peer.fin_frame < f.fin_frame:
                    self.emit(
                        conn,
                        "CL004",
                        f.fin_frame,
                        role,
                        fin_frame=f.fin_frame,
                        fin_seq=f.fin,
                        expected_ack=f.fin + 1,
                    )
                else:
                    self.emit(
                        conn,
                        "CL001",
                        f.fin_frame,
                        role,
                        fin_seq=f.fin,
                        expected_ack=f.fin + 1,
                        highest_ack=f.acked,
                    )
            fin_frame = f.fin_frame or f.fin_implied_frame
            if f.fin_acked_frame is not None and peer.fin is None and pe.state == CLOSE_WAIT:
                self.emit(
                    conn,
                    "CL003",
                    fin_frame,
                    role,
                    closer=role,
                    closer_state=e.state,
                    other=other,
                    other_state=pe.state,
                    fin_frame=fin_frame,
                )
            if f.unacked and ((peer.last_frame or 0) > f.unacked[0][2] or self.backing_off(f)):
                # Data the peer never acknowledged although it went on sending after it,
                # or that the sender resent with a growing interval (data still in flight
                # when the capture stopped is not reported).
                start, frame = f.unacked[0][0], f.unacked[0][2]
                self.emit(
                    conn,
                    "SQ003",
                    frame,
                    role,
                    seq=start,
                    bytes=f.unacked[-1][1] - max(start, f.acked or 0),
                    highest_ack=f.acked,
                )

    @staticmethod
    def _one_sided(conn: Connection) -> bool:
        """True when only one direction is in the capture but it shows the peer exists
        (segments acknowledging the peer), rather than an unanswered SYN."""
        f = conn.c if conn.c.packets else conn.s
        return f.max_ack_abs is not None


def _reached_established(endpoint: Endpoint) -> bool:
    """Whether one of ``endpoint``'s transitions went to ESTABLISHED."""
    return any(t.to_state == ESTABLISHED for t in endpoint.transitions)


def classify(conn: Connection) -> tuple[str, str]:
    """Return ``(handshake, close)`` for a finished connection.

    handshake: ``complete`` (both endpoints reached ESTABLISHED through the SYN
    exchange), ``refused`` (the SYN was answered by an RST), ``none`` (no SYN or SYN-ACK
    in the capture), else ``incomplete``. close: ``reset`` (an acceptable RST ended it),
    ``graceful`` (both sides sent a FIN, acknowledged or not: CL001/CL004 say what is
    missing), ``half`` (only one side sent a FIN), ``open`` (both endpoints synchronized,
    no FIN or RST), else ``none`` (never established).
    """
    if conn.refused:
        handshake = "refused"
    elif conn.midstream:
        handshake = "none"
    elif _reached_established(conn.ec) and _reached_established(conn.es):
        handshake = "complete"
    else:
        handshake = "incomplete"
    c, s = conn.c, conn.s
    if conn.reset_frame is not None:
        close = "reset"
    elif c.fin is not None and s.fin is not None:
        close = "graceful"
    elif c.fin is not None or s.fin is not None:
        close = "half"
    elif conn.ec.state in SYNCHRONIZED and conn.es.state in SYNCHRONIZED:
        close = "open"
    else:
        close = "none"
    return handshake, close
