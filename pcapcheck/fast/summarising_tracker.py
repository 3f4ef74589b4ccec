"""The tracker with clean connections summarised (issue #4, performance).

:class:`SummarisingTracker` extends the reference :class:`~pcapcheck.tcp.tracker.Tracker`:
a connection that starts with a pure SYN on a fresh 4-tuple (none in the table, none
closed within 2·MSL) is kept as a :class:`~pcapcheck.fast.clean_connections.Pending`, its
segments only appended as rows, until it is finalised (then
:func:`~pcapcheck.fast.clean_connections.check` summarises it when it fits the clean
pattern) or a segment shows that it must be replayed (a SYN again within the close
delay); a connection that does not fit is replayed from its rows through the
reference tracker (:meth:`Tracker.open_connection <pcapcheck.tcp.tracker.Tracker.open_connection>`,
:meth:`Tracker.process <pcapcheck.tcp.tracker.Tracker.process>`) with the id reserved for
it, exactly as :meth:`Tracker.feed <pcapcheck.tcp.tracker.Tracker.feed>` would have
replayed it, so the report is the same. The kept connections live in :attr:`pending`
(never in the table: a 4-tuple is in at most one of the two) and in
:attr:`pending_closing`, taken up ``close_delay`` after their last segment as the table's
closed connections are (the engine may close a connection at any segment, even one whose
FIN the capture missed).

It also takes the verdicts of :mod:`pcapcheck.fast.lookahead` (:meth:`start_fast`,
:meth:`end_fast`, :meth:`feed_direct`). ``tests/test_clean.py`` and
``tests/test_lookahead.py`` compare the reports with the reference tracker's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pcapcheck.fast import clean_connections as clean
from pcapcheck.fast.clean_connections import CleanConnection, FastPathMismatch, Pending
from pcapcheck.model import ACK, FIN, RST, SYN, Segment, TcpOptions
from pcapcheck.tcp.connection import Connection
from pcapcheck.tcp.detectors import Checker
from pcapcheck.tcp.tracker import CLOSE_DELAY, IDLE_TIMEOUT, Tracker, connection_key

if TYPE_CHECKING:
    from pcapcheck.fast.lookahead import FastConn


class SummarisingTracker(Tracker):
    """A :class:`~pcapcheck.tcp.tracker.Tracker` that keeps the connections starting with a
    SYN on a fresh 4-tuple as rows and summarises the clean ones (module docstring).
    Same arguments; the finished connections are :class:`~pcapcheck.tcp.connection.Connection`
    or :class:`~pcapcheck.fast.clean_connections.CleanConnection` objects."""

    def __init__(
        self, checker: Checker, idle_timeout: float = IDLE_TIMEOUT, close_delay: float = CLOSE_DELAY
    ):
        super().__init__(checker, idle_timeout, close_delay)
        #: 4-tuple (:meth:`key_of`) -> the connection kept as rows
        self.pending: dict[tuple, Pending] = {}
        #: (close time, key, Pending) of the kept connections that closed, in order
        self.pending_closing: deque[tuple[float, tuple, Pending]] = deque()
        self._direct = False  # see feed_direct

    def feed(self, seg: Segment) -> None:
        """:meth:`Tracker.feed <pcapcheck.tcp.tracker.Tracker.feed>`, the segments of a
        kept connection appended as rows (module docstring)."""
        ts = seg.ts
        if ts >= self.next_sweep:
            self.sweep(ts)
        key = (
            connection_key(seg.src, seg.sport, seg.dst, seg.dport)
            if seg.encapsulation is None  # (key_of, without its calls: most segments)
            else self.key_of(seg)
        )
        p = self.pending.get(key)
        flags = seg.flags
        if p is not None:
            if ts - p.last_ts <= self.close_delay and flags & (SYN | ACK | FIN | RST) != SYN:
                self.keep(key, p, _row(p, seg), seg.truncated or seg.checksum_ok is False)
                return
            if ts - p.last_ts > self.close_delay:
                self._settle(key, p)  # summarised, or replayed into the table
            else:
                self._replay(key, p)  # a SYN again
        if (
            flags & (SYN | ACK | FIN | RST) == SYN
            and key not in self.table
            and key not in self.pending
            and seg.encapsulation is None  # a tunnelled one is replayed: its summary says so
            and self._keeps_rows(key)
        ):
            # A SYN on a fresh 4-tuple: kept as rows until it is finalised or must be
            # replayed (pcapcheck.fast.clean_connections).
            p = self.pending[key] = Pending(
                self.new_id(), (seg.src, seg.sport), (seg.dst, seg.dport)
            )
            self.keep(key, p, _row(p, seg), seg.truncated or seg.checksum_ok is False)
            return
        self.route(seg, key)

    def _keeps_rows(self, key: tuple) -> bool:
        """Whether a pure SYN on ``key``, a 4-tuple not in the table, starts a
        :class:`Pending`: the shortcut on (:data:`clean.ENABLED`), no per-frame marks,
        the 4-tuple not closed within 2·MSL, not fed by :meth:`feed_direct`."""
        return (
            clean.ENABLED
            and self.checker.marks is None
            and key not in self.recently_closed
            and not self._direct
        )

    def feed_direct(self, seg: Segment) -> None:
        """:meth:`feed` a SYN that :mod:`pcapcheck.fast.lookahead` found to start a
        connection that is not clean: its connection is replayed segment by segment from
        the start rather than kept as rows for :func:`clean.check` (which would fail, and
        replay them): the same report, sooner."""
        self._direct = True
        try:
            self.feed(seg)
        finally:
            self._direct = False

    def start_fast(self, fast: FastConn, ts: float) -> None:
        """The SYN of a connection :mod:`pcapcheck.fast.lookahead` found clean arrives at
        ``ts`` (seconds since the epoch): do what :meth:`feed` does for it (the sweep,
        the id reserved for a new :class:`Pending`, the releases), without keeping it.
        Raises :class:`~pcapcheck.fast.clean_connections.FastPathMismatch` when :meth:`feed`
        would not make it a Pending (its 4-tuple held or recently closed)."""
        if ts >= self.next_sweep:
            self.sweep(ts)
        key = fast.key
        if key in self.table or key in self.pending or not self._keeps_rows(key):
            raise FastPathMismatch(f"the SYN of {key} does not start a fresh connection")
        fast.clean.id = self.new_id()
        self.release_due(ts)

    def end_fast(self, fast: FastConn, ts: float) -> None:
        """The last segment of a connection :mod:`pcapcheck.fast.lookahead` found clean
        arrives at ``ts`` (its other segments came as :meth:`tick`): finalise it at once,
        as :meth:`_settle` finalises a clean Pending (its 4-tuple among the recently
        closed ones, its :class:`~pcapcheck.fast.clean_connections.CleanConnection`
        finished), where :meth:`feed` would keep its Pending until the close delay has
        run out. Nothing can tell the two apart: no segment of the 4-tuple comes within
        the close delay (the lookahead would have seen it in the connection's group), and
        with the capture's clock never going back (the lookahead's condition) the
        Pending's turn in the queue of closed connections would come at the first
        segment past the close delay, which the lookahead saw before it decided (so
        before the end, cut short or not). Spared: the Pending, its turn in the queue
        and the ticks that turn called for (issue #4).
        Raises :class:`~pcapcheck.fast.clean_connections.FastPathMismatch` when the 4-tuple
        is held."""
        if ts >= self.next_sweep:
            self.sweep(ts)
        key = fast.key
        if key in self.table or key in self.pending:
            raise FastPathMismatch(f"{key} is in the table at its last segment")
        self._clean_done(key, fast.clean)
        self.release_due(ts)

    def release_due(self, now: float) -> None:
        """:meth:`Tracker.release_due <pcapcheck.tcp.tracker.Tracker.release_due>`, the
        closed kept connections too."""
        closing = self.closing
        if closing and now - closing[0][0] > self.close_delay:
            self._release(now)
        kept = self.pending_closing
        if kept and now - kept[0][0] > self.close_delay:
            self._release_pending(now)

    def _release_pending(self, now: float) -> None:
        """Take up the closed kept connections whose close delay has run out at ``now``:
        summarised, or replayed (and finalised when the replay closed them)."""
        closing = self.pending_closing
        delay = self.close_delay
        while closing and now - closing[0][0] > delay:
            _t, key, p = closing.popleft()
            if self.pending.get(key) is not p:
                continue  # replayed or summarised already
            if now - p.last_ts > delay:
                conn = self._settle(key, p)
                if conn is not None and conn.closed:
                    self.finalize(key, conn, conn.last_ts + delay)
            else:  # segments after the close: wait for them
                closing.append((p.last_ts, key, p))

    def sweep(self, now: float) -> None:
        """:meth:`Tracker.sweep <pcapcheck.tcp.tracker.Tracker.sweep>`, after taking up
        the kept connections without a segment for longer than the close delay."""
        delay = self.close_delay
        for key, p in list(self.pending.items()):
            if now - p.last_ts > delay:
                self._settle(key, p)
        super().sweep(now)

    def finish(self, capture_end: float, cut: bool = False) -> Iterator[Any]:
        """:meth:`Tracker.finish <pcapcheck.tcp.tracker.Tracker.finish>`, the kept
        connections summarised (or, cut short or not clean, replayed) first."""
        for key, p in list(self.pending.items()):
            self._settle(key, p, cut)
        return super().finish(capture_end, cut)

    def keep(self, key: tuple, p: Pending, row: tuple, dirty: bool | None = False) -> None:
        """Append ``row`` (a segment, :data:`~pcapcheck.fast.clean_connections.ROW_FIELDS`)
        to the rows of ``p``, kept under ``key``; ``dirty``: the segment is cut or its
        checksum wrong (``p`` is then not clean). Like a closed connection, a kept one is
        taken up again close_delay after its last segment (:meth:`_release_pending`),
        not at the next sweep: the engine may have closed it at any of its segments. Then
        the releases due, as :meth:`feed` does after every segment. A connection whose
        rows pass :data:`~pcapcheck.fast.clean_connections.MAX_CLEAN_ROWS` is replayed
        into the table there and then (the same report; memory bounded whatever its
        length, issue #23)."""
        rows = p.rows
        rows.append(row)
        if len(rows) > clean.MAX_CLEAN_ROWS:  # too long to keep: the engine takes it on
            self._replay(key, p)
            self.release_due(row[1])
            return
        ts = row[1]
        p.last_ts = ts
        if dirty:
            p.dirty = True
        if not p.closing:
            # Taken up close_delay after its last segment whatever the rows hold: the
            # engine may have closed it (an RST, both FINs, or a FIN the capture missed
            # that the peer's ACK implies), and only the replay can tell.
            p.closing = True
            self.pending_closing.append((ts, key, p))
        self.release_due(ts)

    def _replay(self, key: tuple, p: Pending) -> Connection:
        """Turn the kept connection ``p`` into a :class:`Connection` (its id, in the table
        under ``key``) by replaying its rows through the reference tracker, as
        :meth:`Tracker.feed <pcapcheck.tcp.tracker.Tracker.feed>` would have; return it."""
        segments = [row[10] or _segment(p, row) for row in p.rows]
        del self.pending[key]
        conn = self.open_connection(segments[0], key, cid=p.id)
        process = self.process
        for seg in segments:
            process(key, conn, seg)
        return conn

    def _settle(self, key: tuple, p: Pending, cut: bool = False) -> Connection | None:
        """Finalise the kept connection ``p`` when its rows fit :func:`clean.check`
        (None then); else replay it and return the :class:`Connection` (in the table)."""
        done = None if cut else clean.check(p)
        if done is None:
            return self._replay(key, p)
        del self.pending[key]
        self._clean_done(key, done)
        return None

    def _clean_done(self, key: tuple, done: CleanConnection) -> None:
        """A clean connection finalised: its events (the SQ002 of its retransmissions,
        made by the engine), it among the finished connections."""
        if done.retx:
            done.events = clean.retransmission_events(done)
        self.add_finished(done, key, done.close_ts)


def _row(p: Pending, seg: Segment) -> tuple:
    """The row of ``seg``, a segment of ``p`` (:data:`~pcapcheck.fast.clean_connections.ROW_FIELDS`,
    then the Segment itself)."""
    options = seg.options
    return (
        seg.frame,
        seg.ts,
        seg.sport == p.client[1] and seg.src == p.client[0],
        seg.seq,
        seg.ack,
        seg.flags,
        seg.window,
        seg.payload_len,
        seg.ip_id,
        options.ts_val if options is not None else None,
        seg,
    )


def _segment(p: Pending, row: tuple) -> Segment:
    """The Segment of a row that :func:`pcapcheck.fast.established_lane.feed_block` kept
    (an ordinary ACK: not cut, checksum not wrong, no option but timestamps)."""
    frame, ts, from_client, seq, ack, flags, window, length, ip_id, ts_val, _s = row
    (src, sport), (dst, dport) = (p.client, p.server) if from_client else (p.server, p.client)
    options = None if ts_val is None else TcpOptions(None, None, False, (), ts_val, None)
    return Segment(
        frame,
        ts,
        src,
        dst,
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        length,
        options,
        ip_id,
        6 if ":" in src else 4,
    )
