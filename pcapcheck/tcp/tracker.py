"""Connection tracker: groups TCP segments into connections and releases them when done.

A connection is keyed by its unordered 4-tuple. The client is the sender of the first SYN
(no ACK). Without it the roles are inferred, and the connection says so
(``roles_inferred``): the sender of a SYN-ACK is the server; with neither, the endpoint
with the well-known port (< 1024), else the lower port, is the server.

Port reuse: a SYN with a new ISN on a 4-tuple whose connection has closed (FINs or RST,
or a refused attempt), or whose connection is synchronized but sees a SYN with another
ISN (Wireshark's rule), starts a new connection; RFC 9293 §3.4 / RFC 6191 describe when a
stack may reuse a 4-tuple in TIME-WAIT.

Bounded memory: a connection is finalised (its end-of-capture checks run, its state is
released) ``close_delay`` seconds after it closed (5 s, Zeek's tcp_close_delay: time for
the retransmitted FINs and ACKs that follow a lost final ACK), or once it has been idle
for longer than ``idle_timeout`` seconds; a segment arriving later on the same 4-tuple
starts a new connection (midstream, CP001, unless it is a SYN). Only the 4-tuple, the id
and the close time of a closed connection are kept for 2·MSL, the length of TIME-WAIT,
to recognise an early reuse of the 4-tuple (CL010), much as Linux keeps a small
``inet_timewait_sock`` instead of the socket. Memory therefore depends on the number of
concurrent connections, not on the length of the capture.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pcapcheck.fast import clean_connections as clean
from pcapcheck.fast.clean_connections import CleanConnection, FastPathMismatch, Pending
from pcapcheck.model import (
    ACK,
    CLOSED,
    ESTABLISHED,
    FIN,
    RST,
    SYN,
    SYNCHRONIZED,
    Segment,
    TcpOptions,
)
from pcapcheck.tcp.connection import Connection
from pcapcheck.tcp.detectors import Checker
from pcapcheck.tcp.state_machine import Endpoint
from pcapcheck.tcp.zeek import ZeekState, zeek_flips_first_packet

if TYPE_CHECKING:
    from pcapcheck.fast.lookahead import FastConn

#: Ports Zeek's ``likely_server_ports`` holds with its base protocol scripts loaded;
#: they decide when Zeek flips a connection whose first packet is not a SYN ('^').
LIKELY_SERVER_PORTS = frozenset(
    {
        21,
        22,
        25,
        53,
        80,
        88,
        110,
        143,
        389,
        443,
        502,
        587,
        993,
        995,
        1080,
        1194,
        1812,
        3128,
        3306,
        3389,
        5060,
        5432,
        6379,
        6666,
        6667,
        6668,
        6669,
        8000,
        8080,
        8888,
    }
)

#: Default seconds of inactivity after which a connection is finalised (Zeek's
#: tcp_inactivity_timeout is 5 minutes as well).
IDLE_TIMEOUT = 300.0

#: Default seconds a closed connection keeps its full state after its close (the last
#: FIN acknowledged, or an RST): Zeek's tcp_close_delay / tcp_reset_delay are 5 s too.
#: Long enough for the retransmissions that follow a lost final ACK; the 4-tuple itself
#: is remembered for 2·MSL (port reuse, CL010).
CLOSE_DELAY = 5.0

#: Seconds of capture time between two sweeps of the connection table.
SWEEP_EVERY = 10.0


class Tracker:
    """Feeds segments to per-connection state and hands back finished connections.

    ``checker`` replays the segments (:class:`~pcapcheck.tcp.detectors.Checker`);
    ``idle_timeout``: seconds without a segment after which a connection is finalised;
    ``close_delay``: seconds after its last segment after which a closed connection is
    finalised (at most 2·MSL).
    Finished connections (their checks done) accumulate in order of finalisation;
    :meth:`pop_finished` takes them, :meth:`finish` finalises the rest at the end.
    """

    def __init__(
        self, checker: Checker, idle_timeout: float = IDLE_TIMEOUT, close_delay: float = CLOSE_DELAY
    ):
        self.checker = checker
        self.idle_timeout = float(idle_timeout)
        self.linger = 2 * checker.msl
        self.close_delay = min(float(close_delay), self.linger)
        self.table: dict[tuple, Connection] = {}
        #: 4-tuple → (connection id, close time) of gracefully closed, finalised
        #: connections, kept for 2·MSL so that CL010 can still see a quick reuse.
        self.recently_closed: dict[tuple, tuple[int, float]] = {}
        self._finished: list[Connection] = []
        #: (close time, key, connection) of closed connections, in order of closing:
        #: released ``close_delay`` after their last segment, without waiting for a sweep.
        self._closing: deque[tuple[float, tuple, Connection]] = deque()
        self._next_id = 1
        self._next_sweep = float("-inf")  # the first segment sweeps (nothing yet)
        #: every 4-tuple seen, only while recording per-frame marks (Wireshark's "ports
        #: reused" has no time limit); empty otherwise, so memory stays bounded.
        self._used: set[tuple] = set()
        self._direct = False  # see feed_direct

    def feed(self, seg: Segment) -> None:
        """Route one segment (capture order) to its connection, creating it if needed."""
        ts = seg.ts
        if ts >= self._next_sweep:
            self._sweep(ts)
        src, dst = seg.src, seg.dst
        if src < dst or (src == dst and seg.sport <= seg.dport):
            key = (src, seg.sport, dst, seg.dport)
        else:
            key = (dst, seg.dport, src, seg.sport)
        conn = self.table.get(key)
        if conn.__class__ is Pending:
            flags = seg.flags
            if ts - conn.last_ts <= self.close_delay and flags & (SYN | ACK | FIN | RST) != SYN:
                self._keep(conn, seg)
                if not conn.closing:
                    # An RST, or a segment after both FINs: it may be closed. Like a
                    # closed connection, it is taken up again close_delay after its last
                    # segment (_release), not at the next sweep.
                    if flags & RST or conn.fins == 3:
                        conn.closing = True
                        self._closing.append((ts, key, conn))
                    elif flags & FIN:
                        conn.fins |= 1 if conn.rows[-1][2] else 2
                self._release_due(ts)
                return
            conn = (
                self._settle(key, conn)
                if ts - conn.last_ts > self.close_delay
                else self._replay(key, conn)
            )
        if conn is None:
            if seg.flags & (SYN | ACK | FIN | RST) == SYN and self._keeps_rows(key):
                # A SYN on a fresh 4-tuple: kept as rows until it is finalised or must
                # be replayed (pcapcheck.fast.clean_connections).
                p = self.table[key] = Pending(
                    self._next_id, (seg.src, seg.sport), (seg.dst, seg.dport)
                )
                self._next_id += 1
                self._keep(p, seg)
                self._release_due(ts)
                return
            conn = self._new(seg, key, None)
        else:
            limit = self.close_delay if conn.closed else self.idle_timeout
            if ts - conn.last_ts > limit:
                self._finalize(key, conn, conn.last_ts + limit)
                conn = self._new(seg, key, None)
            elif seg.flags & (SYN | ACK | FIN | RST) == SYN and self._starts_new(conn, seg):
                self._finalize(key, conn, ts)
                conn = self._new(seg, key, conn)
        was_closed = conn.closed
        self.checker.process(conn, seg)
        if conn.closed and not was_closed:
            self._closing.append((ts, key, conn))
        self._release_due(ts)

    def _keeps_rows(self, key: tuple) -> bool:
        """Whether a pure SYN on ``key``, a 4-tuple not in the table, starts a
        :class:`Pending` (:mod:`pcapcheck.fast.clean_connections`): the shortcut on, no per-frame marks,
        the 4-tuple not closed within 2·MSL, not fed by :meth:`feed_direct`."""
        return (
            clean.ENABLED
            and self.checker.marks is None
            and key not in self.recently_closed
            and not self._direct
        )

    def feed_direct(self, seg: Segment) -> None:
        """:meth:`feed` a SYN that :mod:`pcapcheck.fast.lookahead` found to start a connection
        that is not clean: its connection is replayed segment by segment from the start
        rather than kept as rows for :func:`clean.check` (which would fail, and replay
        them): the same report, sooner."""
        self._direct = True
        try:
            self.feed(seg)
        finally:
            self._direct = False

    def start_fast(self, fast: FastConn, ts: float) -> None:
        """The SYN of a connection :mod:`pcapcheck.fast.lookahead` found clean arrives at
        ``ts`` (seconds since the epoch): do what :meth:`feed` does for it (the sweep,
        the id reserved for a new :class:`Pending`, the releases), without keeping it.
        Raises :class:`~pcapcheck.fast.clean_connections.FastPathMismatch` when :meth:`feed` would not
        make it a Pending (its 4-tuple held in the table or recently closed)."""
        if ts >= self._next_sweep:
            self._sweep(ts)
        key = fast.key
        if key in self.table or not self._keeps_rows(key):
            raise FastPathMismatch(f"the SYN of {key} does not start a fresh connection")
        fast.clean.id = self._next_id
        self._next_id += 1
        self._release_due(ts)

    def end_fast(self, fast: FastConn, ts: float) -> None:
        """The last segment of a connection :mod:`pcapcheck.fast.lookahead` found clean
        arrives at ``ts`` (its other segments came as :meth:`tick`): finalise it at once,
        as :meth:`_settle` finalises a clean Pending (its 4-tuple among the recently
        closed ones, its :class:`~pcapcheck.fast.clean_connections.CleanConnection` finished), where
        :meth:`feed` would keep its Pending in the table until the close delay has run
        out. Nothing can tell the two apart: no segment of the 4-tuple comes within the
        close delay (the lookahead would have seen it in the connection's group), and
        with the capture's clock never going back (the lookahead's condition) the
        Pending's turn in the queue of closed connections would come at the first
        segment past the close delay, which the lookahead saw before it decided (so
        before the end, cut short or not). Spared: the Pending, its turn in the queue
        and the table, and the ticks that turn called for (issue #4).
        Raises :class:`~pcapcheck.fast.clean_connections.FastPathMismatch` when the 4-tuple is in the
        table."""
        if ts >= self._next_sweep:
            self._sweep(ts)
        key = fast.key
        if key in self.table:
            raise FastPathMismatch(f"{key} is in the table at its last segment")
        self._clean_done(key, fast.clean)
        self._release_due(ts)

    def tick(self, ts: float) -> None:
        """The capture's clock reads ``ts`` (seconds since the epoch) at a TCP segment
        this tracker does not analyse (one of another shard, :mod:`pcapcheck.run.shards`): do
        the sweep and the releases :meth:`feed` would do for it, so that a shard releases
        its connections exactly when the analysis of the whole capture does."""
        if ts >= self._next_sweep:
            self._sweep(ts)
        self._release_due(ts)

    def _release_due(self, now: float) -> None:
        """Call :meth:`_release` when the oldest closed connection's delay has run out."""
        closing = self._closing
        if closing and now - closing[0][0] > self.close_delay:
            self._release(now)

    def _release(self, now: float) -> None:
        """Finalise the closed connections whose close delay has run out at ``now``."""
        closing = self._closing
        while closing and now - closing[0][0] > self.close_delay:
            _t, old_key, old = closing.popleft()
            if self.table.get(old_key) is not old:
                continue  # already finalised (a new SYN took the key)
            if now - old.last_ts > self.close_delay:
                if old.__class__ is Pending:
                    old = self._settle(old_key, old)
                    if old is None or not old.closed:
                        continue
                self._finalize(old_key, old, old.last_ts + self.close_delay)
            else:  # segments after the close: wait for them
                closing.append((old.last_ts, old_key, old))

    @staticmethod
    def _keep(p: Pending, seg: Segment) -> None:
        """Append ``seg`` to the rows of ``p`` (:mod:`pcapcheck.fast.clean_connections`)."""
        options = seg.options
        p.rows.append(
            (
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
        )
        p.last_ts = seg.ts
        if seg.truncated or seg.checksum_ok is False:
            p.dirty = True

    def _replay(self, key: tuple, p: Pending) -> Connection:
        """Turn the kept connection ``p`` into a :class:`Connection` (its id, in the table
        under ``key``) by replaying its rows through the full path, as :meth:`feed` would
        have; return it."""
        segments = [row[10] or self._segment(p, row) for row in p.rows]
        next_id, self._next_id = self._next_id, p.id
        del self.table[key]
        conn = self._new(segments[0], key, None)
        self._next_id = next_id
        process = self.checker.process
        for seg in segments:
            was_closed = conn.closed
            process(conn, seg)
            if conn.closed and not was_closed:
                self._closing.append((seg.ts, key, conn))
        return conn

    @staticmethod
    def _segment(p: Pending, row: tuple) -> Segment:
        """The Segment of a row that :func:`pcapcheck.fast.established_lane.feed_block` kept (an ordinary
        ACK: not cut, checksum not wrong, no option but timestamps)."""
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

    def _settle(self, key: tuple, p: Pending, cut: bool = False) -> Connection | None:
        """Finalise the kept connection ``p`` when its rows fit :func:`clean.check`
        (None then); else replay it and return the :class:`Connection` (in the table)."""
        done = None if cut else clean.check(p)
        if done is None:
            return self._replay(key, p)
        del self.table[key]
        self._clean_done(key, done)
        return None

    def _clean_done(self, key: tuple, done: CleanConnection) -> None:
        """A clean connection finalised: its 4-tuple among the recently closed ones, it
        among the finished connections."""
        self.recently_closed[key] = (done.id, done.close_ts)
        if done.retx:
            done.events = clean.retransmission_events(done)
        self._finished.append(done)

    def _limit(self, conn: Connection) -> float:
        """Seconds a connection is kept after its last segment."""
        return self.close_delay if conn.closed else self.idle_timeout

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_EVERY
        for key, conn in list(self.table.items()):
            if conn.__class__ is Pending:
                if now - conn.last_ts <= self.close_delay:
                    continue
                conn = self._settle(key, conn)
                if conn is None:
                    continue
            if now - conn.last_ts > self._limit(conn):
                self._finalize(key, conn, conn.last_ts + self._limit(conn))
        horizon = now - self.linger
        for key, (_cid, closed_at) in list(self.recently_closed.items()):
            if closed_at < horizon:
                del self.recently_closed[key]

    def _finalize(self, key: tuple, conn: Connection, end: float, cut: bool = False) -> None:
        del self.table[key]
        self.checker.finish(conn, end, cut)
        if conn.close_ts is not None and conn.reset_frame is None:
            self.recently_closed[key] = (conn.id, conn.close_ts)
        self._finished.append(conn)

    @staticmethod
    def _starts_new(conn: Connection, seg: Segment) -> bool:
        role = conn.role_of(seg)
        flow = conn.c if role == "client" else conn.s
        ep = conn.ec if role == "client" else conn.es
        if flow.isn is not None and seg.seq == flow.isn:
            return False  # the same SYN again
        if conn.closed or conn.refused:
            return True
        return ep.state in SYNCHRONIZED

    def _new(self, seg: Segment, key: tuple, previous: Connection | None) -> Connection:
        src, dst = (seg.src, seg.sport), (seg.dst, seg.dport)
        flags = seg.flags
        inferred = flipped = midstream = False
        if flags & SYN and not flags & ACK:
            client, server = src, dst
        elif flags & SYN:
            client, server = dst, src  # the SYN-ACK's sender is the server
            flipped = inferred = True
        else:
            midstream = True
            inferred = True
            client, server = (
                (src, dst) if _server_port_rank(dst[1]) < _server_port_rank(src[1]) else (dst, src)
            )
            flipped = client != src
        if midstream:
            ec, es = Endpoint("client", ESTABLISHED), Endpoint("server", ESTABLISHED)
        else:
            ec = Endpoint("client", CLOSED if not flipped else None)
            es = Endpoint("server", None)
        conn = Connection(
            id=self._next_id,
            client=client,
            server=server,
            roles_inferred=inferred,
            first_frame=seg.frame,
            first_ts=seg.ts,
            ec=ec,
            es=es,
            midstream=midstream,
            flipped=flipped,
        )
        # Zeek flips a connection that starts with a SYN-ACK (Zeek >= 5.1) or whose first
        # packet comes from a likely server port (TCPAnalyzer::WantConnection).
        zeek_flip = bool(flags & SYN and flags & ACK) or zeek_flips_first_packet(
            flags, seg.sport, seg.dport, LIKELY_SERVER_PORTS
        )
        conn.zeek = ZeekState(flipped=zeek_flip)
        if midstream and key in self.recently_closed:
            prev_id, closed_at = self.recently_closed[key]
            if seg.ts - closed_at < self.linger:
                conn.tail_of = prev_id
        self._next_id += 1
        self.table[key] = conn
        if flags & (SYN | ACK | FIN | RST) == SYN:
            if previous is not None or key in self._used:
                self.checker.mark(seg.frame, "reused_ports")
            self._reuse(conn, key, previous, seg)
        if self.checker.marks is not None:
            self._used.add(key)
        return conn

    def _reuse(
        self, conn: Connection, key: tuple, previous: Connection | None, seg: Segment
    ) -> None:
        """CL010: a new connection on the 4-tuple within 2·MSL of a graceful close."""
        if previous is not None:
            if previous.close_ts is None or previous.reset_frame is not None:
                return
            prev_id, closed_at = previous.id, previous.close_ts
        elif key in self.recently_closed:
            prev_id, closed_at = self.recently_closed[key]
        else:
            return
        gap = seg.ts - closed_at
        if gap < self.linger:
            self.checker.emit(
                conn,
                "CL010",
                seg.frame,
                conn.role_of(seg),
                previous_connection=prev_id,
                gap=round(gap, 6),
                limit=self.linger,
            )

    @property
    def connections(self) -> int:
        """How many connections have been created (their ids are 1 .. this)."""
        return self._next_id - 1

    @property
    def has_finished(self) -> bool:
        """True when finalised connections are waiting to be taken."""
        return bool(self._finished)

    def pop_finished(self) -> list[Connection]:
        """Take the connections finalised so far (their events and states are final)."""
        done, self._finished = self._finished, []
        return done

    def finish(self, capture_end: float, cut: bool = False) -> Iterator[Connection]:
        """Finalise every connection still open at the end of the capture (end-of-capture
        checks with ``capture_end``, seconds since the epoch; ``cut``: the file ends
        inside a record, see :meth:`Checker.finish`); yield all finished connections not
        yet taken, in id order."""
        for key, conn in list(self.table.items()):
            if conn.__class__ is Pending:
                conn = self._settle(key, conn, cut)
                if conn is None:
                    continue
            self._finalize(key, conn, capture_end, cut)
        yield from sorted(self.pop_finished(), key=lambda c: c.id)


def _server_port_rank(port: int) -> tuple[int, int]:
    """Sort key: well-known ports first, then lower ports (the likelier server)."""
    return (0 if port < 1024 else 1, port)
