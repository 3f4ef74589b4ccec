"""Connection tracker: groups TCP segments into connections and releases them when done.

A connection is keyed by its unordered 4-tuple. The client is the sender of the first SYN
(no ACK). Without it the roles are inferred, and the connection says so
(``roles_inferred``): the sender of a SYN-ACK is the server; with neither, the endpoint
with the well-known port (< 1024), else the lower port, is the server.

Port reuse: whether a SYN on the 4-tuple of a connection in the table starts a new
connection is decided in one place, :meth:`Tracker._starts_new` (its docstring states the
rule); RFC 9293 §3.4 / RFC 6191 describe when a stack may reuse a 4-tuple in TIME-WAIT.

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

import functools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pcapcheck.capture.layers import PER_DIRECTION_LABELS
from pcapcheck.model import (
    ACK,
    CLOSED,
    ESTABLISHED,
    FIN,
    RST,
    SYN,
    SYN_RECEIVED,
    SYNCHRONIZED,
    Segment,
)
from pcapcheck.tcp.connection import Connection
from pcapcheck.tcp.detectors import Checker
from pcapcheck.tcp.state_machine import RCV_SYN, Endpoint
from pcapcheck.tcp.zeek import ZeekState, zeek_flips_first_packet

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

    Besides :meth:`feed`, the operations a caller that routes some segments itself needs
    (the speed machinery of :mod:`pcapcheck.fast`): :meth:`key_of`, :meth:`new_id`,
    :meth:`open_connection`, :meth:`process`, :meth:`finalize`, :meth:`add_finished`,
    and the clock: :meth:`tick` (:meth:`sweep` when :attr:`next_sweep` is reached,
    :meth:`release_due` for the :attr:`closing` queue).
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
        self._finished: list[Any] = []
        #: the tunnels of the coarse keys whose idents are per direction (GTP-U), for
        #: the connections in the table (:meth:`table_key`)
        self.pairing = TunnelPairing()
        #: (close time, key, connection) of closed connections, in order of closing:
        #: released ``close_delay`` after their last segment, without waiting for a sweep
        #: (:meth:`release_due`).
        self.closing: deque[tuple[float, tuple, Connection]] = deque()
        self._next_id = 1
        #: capture time (seconds since the epoch) at or after which the next segment
        #: sweeps the table first (:meth:`sweep`); the first segment sweeps (nothing yet).
        self.next_sweep = float("-inf")
        #: every 4-tuple seen, only while recording per-frame marks (Wireshark's "ports
        #: reused" has no time limit); empty otherwise, so memory stays bounded.
        self._used: set[tuple] = set()

    def key_of(self, seg: Segment) -> tuple:
        """The table key of ``seg``'s connection (:meth:`table_key`)."""
        return self.table_key(seg.src, seg.sport, seg.dst, seg.dport, seg.encapsulation)

    def table_key(
        self,
        src: str,
        sport: int,
        dst: str,
        dport: int,
        encapsulation: tuple[str, ...] | None = None,
    ) -> tuple:
        """The table key of the connection of a segment with these fields: its
        :func:`connection_key`, refined to one tunnel by :attr:`pairing` when its path
        has idents per direction (GTP-U's TEID, :class:`TunnelPairing`; the segment's
        values are learned). The same segment gives the same key again."""
        key = connection_key(src, sport, dst, dport, encapsulation)
        if encapsulation is not None:
            ends = tunnel_ends(encapsulation)
            if ends:
                return TunnelPairing.key(key, self.pairing.place(key, ends))
        return key

    def feed(self, seg: Segment) -> None:
        """Route one segment (capture order) to its connection, creating it if needed."""
        ts = seg.ts
        if ts >= self.next_sweep:
            self.sweep(ts)
        if seg.encapsulation is None:  # (table_key, without its calls: most segments)
            self.route(seg, connection_key(seg.src, seg.sport, seg.dst, seg.dport))
        else:
            self.route(seg, self.key_of(seg))

    def route(self, seg: Segment, key: tuple) -> None:
        """:meth:`feed` once the sweep due at ``seg`` is done: ``seg`` to its connection
        in the table under ``key`` (:meth:`key_of`), a new one when there is none, the
        old one is finalised (idle or closed past its limit) or ``seg`` is a SYN that
        starts a new one; then the releases due."""
        ts = seg.ts
        conn = self.table.get(key)
        if conn is None:
            conn = self.open_connection(seg, key)
        else:
            if self.expired(conn, ts):
                self.finalize(key, conn, conn.last_ts + self._limit(conn))
                if seg.encapsulation is not None:  # its tunnels may be forgotten
                    key = self.key_of(seg)
                conn = self.open_connection(seg, key)
            elif seg.flags & (SYN | ACK | FIN | RST) == SYN and self._starts_new(conn, seg):
                self._deliver_to_old(conn, seg)
                self.finalize(key, conn, ts)
                if seg.encapsulation is not None:
                    key = self.key_of(seg)
                conn = self.open_connection(seg, key, conn)
        self.process(key, conn, seg)
        self.release_due(ts)

    def process(self, key: tuple, conn: Connection, seg: Segment) -> None:
        """Replay ``seg`` on ``conn`` (in the table under ``key``) with the checker; a
        connection it closes joins :attr:`closing`."""
        was_closed = conn.closed
        self.checker.process(conn, seg)
        if conn.closed and not was_closed:
            self.closing.append((seg.ts, key, conn))

    def new_id(self) -> int:
        """Allocate the next connection id (ids are 1, 2, ... in order of allocation)."""
        cid = self._next_id
        self._next_id += 1
        return cid

    def tick(self, ts: float) -> None:
        """The capture's clock reads ``ts`` (seconds since the epoch) at a TCP segment
        this tracker does not analyse (one of another shard, :mod:`pcapcheck.run.shards`): do
        the sweep and the releases :meth:`feed` would do for it, so that a shard releases
        its connections exactly when the analysis of the whole capture does."""
        if ts >= self.next_sweep:
            self.sweep(ts)
        self.release_due(ts)

    def release_due(self, now: float) -> None:
        """Finalise the closed connections whose close delay has run out at ``now``
        (seconds since the epoch), when the oldest one's has; :meth:`feed` calls it after
        every segment."""
        closing = self.closing
        if closing and now - closing[0][0] > self.close_delay:
            self._release(now)

    def _release(self, now: float) -> None:
        """Finalise the closed connections whose close delay has run out at ``now``."""
        closing = self.closing
        while closing and now - closing[0][0] > self.close_delay:
            _t, old_key, old = closing.popleft()
            if self.table.get(old_key) is not old:
                continue  # already finalised (a new SYN took the key)
            if now - old.last_ts > self.close_delay:
                self.finalize(old_key, old, old.last_ts + self.close_delay)
            else:  # segments after the close: wait for them
                closing.append((old.last_ts, old_key, old))

    def _limit(self, conn: Connection) -> float:
        """Seconds a connection is kept after its last segment."""
        return self.close_delay if conn.closed else self.idle_timeout

    def expired(self, conn: Connection, now: float) -> bool:
        """Whether ``conn`` is to be finalised at ``now`` (seconds since the epoch): its
        last segment longer ago than ``close_delay`` (closed) or ``idle_timeout``."""
        return now - conn.last_ts > self._limit(conn)

    def sweep(self, now: float) -> None:
        """Finalise the connections idle (or closed) for longer than their limit at
        ``now`` (seconds since the epoch); forget the closed 4-tuples older than 2·MSL.
        The next sweep is due :data:`SWEEP_EVERY` seconds later (:attr:`next_sweep`)."""
        self.next_sweep = now + SWEEP_EVERY
        for key, conn in list(self.table.items()):
            if self.expired(conn, now):
                self.finalize(key, conn, conn.last_ts + self._limit(conn))
        horizon = now - self.linger
        for key, (_cid, closed_at) in list(self.recently_closed.items()):
            if closed_at < horizon:
                del self.recently_closed[key]

    def finalize(self, key: tuple, conn: Connection, end: float, cut: bool = False) -> None:
        """Take ``conn`` out of the table (``key``), run its end checks
        (:meth:`Checker.finish` with ``end`` and ``cut``) and add it to the finished
        connections (its 4-tuple among the recently closed ones after a graceful close).
        A tunnelled connection's path becomes the one it reports (:func:`client_path`)."""
        del self.table[key]
        if len(key) > 4:  # tunnelled
            if conn.encapsulation is not None:
                conn.encapsulation = client_path(
                    conn.encapsulation, not conn.flipped, self.pairing.ends_of(key)
                )
            self.pairing.closed(key)
        self.checker.finish(conn, end, cut)
        if conn.close_ts is not None and conn.reset_frame is None:
            self.recently_closed[key] = (conn.id, conn.close_ts)
        self._finished.append(conn)

    def add_finished(self, conn: Any, key: tuple, closed_at: float) -> None:
        """Add ``conn``, a connection on the 4-tuple ``key`` that closed gracefully at
        ``closed_at`` (seconds since the epoch) and was finalised without the table (by
        a caller that summarised it), to the finished connections, as :meth:`finalize`
        adds one; its 4-tuple is remembered among the recently closed ones (CL010)."""
        self.recently_closed[key] = (conn.id, closed_at)
        self._finished.append(conn)

    @staticmethod
    def _deliver_to_old(conn: Connection, seg: Segment) -> None:
        """The SYN that starts a new connection on the 4-tuple of ``conn`` reaches the
        old connection's peer first when it is still in SYN-RECEIVED (its handshake
        never completed): a passive open returns to LISTEN, RFC 9293 §3.10.7.4, fourth
        check (:meth:`Endpoint.step <pcapcheck.tcp.state_machine.Endpoint.step>`
        decides), before the listener takes the SYN as a new connection's."""
        peer = conn.es if conn.role_of(seg) == "client" else conn.ec
        if peer.state == SYN_RECEIVED:
            peer.step(RCV_SYN, seg.frame)

    @staticmethod
    def _starts_new(conn: Connection, seg: Segment) -> bool:
        """The one decision on a connection's boundary: whether ``seg``, a pure SYN on
        the 4-tuple of ``conn`` (in the table), starts a new connection there (``conn``
        is then finalised) rather than belonging to ``conn``. Never the same SYN again
        (its ISN), whatever the state of ``conn`` or of its sender: a retransmitted SYN
        keeps its ISN (RFC 9293 §3.8.1), a new incarnation chooses a new one (§3.4.1);
        so a SYN retried with the same ISN after an RST (the connection refused, or its
        sender CLOSED by the RFC's answer to its refused handshake ACK) continues
        ``conn`` (HS005; in a connection not over, its sender steps CLOSED -> SYN-SENT,
        a new OPEN: ``Checker._reopen``), as Wireshark's
        tcp.stream does (a new stream only for a SYN whose sequence number is not the
        base one); Zeek splits a SYN on a closed 4-tuple (``IsReuse``): docs/semantics.md,
        "a SYN retried with the same ISN after an RST". Another ISN
        starts a new one when ``conn`` is closed or refused, or when its sender is
        synchronized (a new incarnation) or CLOSED (its TCB deleted, e.g. by the RFC's
        answer while the peer is still in SYN-RECEIVED: RFC 9293 §3.10.7.4; the SYN
        returns a passive peer to LISTEN, fourth check). A SYN with another ISN from a
        sender still in SYN-SENT belongs to ``conn`` (HS009)."""
        role = conn.role_of(seg)
        flow = conn.c if role == "client" else conn.s
        ep = conn.ec if role == "client" else conn.es
        if flow.isn is not None and seg.seq == flow.isn:
            return False  # the same SYN again
        if conn.closed or conn.refused:
            return True
        return ep.state in SYNCHRONIZED or ep.state == CLOSED

    def open_connection(
        self, seg: Segment, key: tuple, previous: Connection | None = None, cid: int | None = None
    ) -> Connection:
        """Open the connection that ``seg`` starts, in the table under ``key`` (which
        holds none): roles, RFC 9293 endpoints and Zeek state set from ``seg``, CL010
        checked when ``previous`` (the connection it replaces on ``key``) or a recent
        one closed on ``key``. ``cid``: its id, allocated earlier by :meth:`new_id`
        (default: a new one). ``seg`` itself is not replayed (:meth:`process`)."""
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
        if cid is None:
            cid = self.new_id()
        conn = Connection(
            id=cid,
            client=client,
            server=server,
            roles_inferred=inferred,
            first_frame=seg.frame,
            first_ts=seg.ts,
            ec=ec,
            es=es,
            midstream=midstream,
            flipped=flipped,
            encapsulation=seg.encapsulation,
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
        self.table[key] = conn
        if len(key) > 4:  # tunnelled
            self.pairing.opened(key)
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

    def pop_finished(self) -> list[Any]:
        """Take the connections finalised so far (their events and states are final)."""
        done, self._finished = self._finished, []
        return done

    def finish(self, capture_end: float, cut: bool = False) -> Iterator[Any]:
        """Finalise every connection still open at the end of the capture (end-of-capture
        checks with ``capture_end``, seconds since the epoch; ``cut``: the file ends
        inside a record, see :meth:`Checker.finish`); yield all finished connections not
        yet taken, in id order."""
        for key, conn in list(self.table.items()):
            self.finalize(key, conn, capture_end, cut)
        yield from sorted(self.pop_finished(), key=lambda c: c.id)


def connection_key(
    src: str, sport: int, dst: str, dport: int, encapsulation: tuple[str, ...] | None = None
) -> tuple:
    """The stateless key of the connection of a segment from ``src``:``sport`` to
    ``dst``:``dport``: its unordered 4-tuple, ``(addr, port, addr, port)`` with the
    lower ``(addr, port)`` first (both directions give the same key). A segment that
    came through tunnels (``Segment.encapsulation``) adds the tunnel's identity: the
    path with each outer IP header's addresses unordered (``"ipv4
    192.0.2.1|192.0.2.2"``) and without the idents that differ per direction (GTP-U's
    TEID: ``"gtpu"``, :data:`pcapcheck.capture.layers.PER_DIRECTION_LABELS`), so that
    the same 4-tuple in two VXLAN networks (VNI) or between two other tunnel endpoints
    is two connections, and both directions of a GTP-U tunnel have one key. Two GTP-U
    tunnels between the same endpoints share this key (the *coarse* key): the tracker
    tells them apart with :class:`TunnelPairing`. Sharding and the fast paths' grouping
    use this key as is."""
    if encapsulation is not None:
        return (*connection_key(src, sport, dst, dport), _tunnel_identity(encapsulation))
    if src < dst or (src == dst and sport <= dport):
        return (src, sport, dst, dport)
    return (dst, dport, src, sport)


@functools.lru_cache(maxsize=1 << 12)
def _tunnel_identity(path: tuple[str, ...]) -> tuple[str, ...]:
    """``path`` with the direction taken out: its outer IP headers' addresses unordered,
    its idents per direction left out (their labels stay)."""
    out = []
    for item in path:
        if item.startswith("ip") and ">" in item:
            name, addrs = item.split(" ", 1)
            a, b = addrs.split(">", 1)
            item = f"{name} {min(a, b)}|{max(a, b)}"
        else:
            label = item.rpartition(" ")[0]
            if label in PER_DIRECTION_LABELS:
                item = label
        out.append(item)
    return tuple(out)


@functools.lru_cache(maxsize=1 << 12)
def _per_direction(
    path: tuple[str, ...],
) -> tuple[str, str, tuple[str, ...], tuple[int, ...]] | None:
    """``(sender, receiver, values, positions)`` of ``path``'s idents per direction that
    follow an outer IP header: the addresses of the outer IP header before the first of
    them, their values (as written: a reported path's ``"257/40961"``) and their places
    in ``path``; None when there is none. (One before every outer IP header, an MPLS
    label stack under a tunnel, names no tunnel endpoint: it is not paired.)"""
    ip = None
    values: list[str] = []
    positions: list[int] = []
    for i, item in enumerate(path):
        if item.startswith("ip") and ">" in item:
            if not values:
                ip = item
            continue
        label, _sep, value = item.rpartition(" ")
        if label in PER_DIRECTION_LABELS and ip is not None:
            values.append(value)
            positions.append(i)
    if not values or ip is None:
        return None
    a, b = ip.split(" ", 1)[1].split(">", 1)
    return a, b, tuple(values), tuple(positions)


def unpaired_idents(path: tuple[str, ...]) -> frozenset[int]:
    """The places in ``path`` of its idents per direction that name no tunnel endpoint
    (before every outer IP header: an MPLS label stack under the tunnels), which are in
    no connection's identity and are the first segment's only (a filter on them would
    miss the other direction)."""
    if not any(item.startswith("ip") and ">" in item for item in path):
        return frozenset()  # no tunnel: no path is made (a test's path may be)
    found = _per_direction(path)
    paired = set(found[3]) if found is not None else set()
    return frozenset(
        i
        for i, item in enumerate(path)
        if i not in paired and item.rpartition(" ")[0] in PER_DIRECTION_LABELS
    )


@functools.lru_cache(maxsize=1 << 12)
def tunnel_ends(path: tuple[str, ...] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The idents per direction of an encapsulation ``path``
    (:data:`~pcapcheck.capture.layers.PER_DIRECTION_LABELS`) by the tunnel endpoint that
    receives them: ``((receiver, values),)``, the receiver being the destination address
    of the outer IP header before the first such ident (``("192.0.2.2", ("4097",))``
    for ``"ipv4 192.0.2.1>192.0.2.2"``, ``"gtpu 4097"``); ``()`` for a path without
    one. A connection's reported path (:func:`client_path`) may hold both directions'
    values, ``"gtpu 257/40961"`` (client to server, then server to client): then two
    pairs, the server's end first."""
    found = _per_direction(path) if path else None
    if found is None:
        return ()
    a, b, values, _at = found
    there = tuple(v.partition("/")[0] for v in values)
    if not any("/" in v for v in values):
        return ((b, there),)
    return ((b, there), (a, tuple(v.rpartition("/")[2] for v in values)))


class TunnelPairing:
    """The tunnels behind coarse keys (:func:`connection_key`) whose idents are per
    direction: GTP-U, whose TEID is the receiving endpoint's (3GPP TS 29.281 §5.1), so
    that one tunnel carries an uplink TEID to one endpoint and a downlink TEID to the
    other, and two tunnels between the same endpoints may carry the same inner 4-tuple
    (issue 24: two connections).

    Per coarse key, a list of tunnels, each the values it was seen with per receiving
    address (:func:`tunnel_ends`). :meth:`place` puts a segment (or a reported
    connection) in the tunnel that already has one of its values for that receiver;
    else in the first tunnel that has none for it (the first reply of a new tunnel pairs
    with the oldest tunnel still unanswered: two tunnels whose handshakes cross, the
    second answered first, are paired the wrong way round); else in a new tunnel. The
    tunnel's number makes the tracker's key (:meth:`key`: the coarse key for the first,
    so a coarse key with one tunnel is its own key, as the fast paths use it).

    Memory: :meth:`opened` / :meth:`closed` count the connections of each coarse key in
    the tracker's table; its tunnels are forgotten when the count drops to 0, so the
    pairing holds only what the concurrent connections need. (A later connection on
    that coarse key is then its first tunnel again, whatever its TEIDs.)
    """

    __slots__ = ("live", "tunnels")

    def __init__(self) -> None:
        #: coarse key -> its tunnels: receiving address -> values, in order of creation
        self.tunnels: dict[tuple, list[dict[str, tuple[str, ...]]]] = {}
        #: coarse key -> connections in the table under one of its keys
        self.live: dict[tuple, int] = {}

    def place(self, coarse: tuple, ends: tuple[tuple[str, tuple[str, ...]], ...]) -> int:
        """The number (0, 1, ...) of the tunnel of ``coarse`` that ``ends`` (receiver ->
        values, :func:`tunnel_ends`) belong to, learning what is new (class docstring)."""
        tunnels = self.tunnels.get(coarse)
        if tunnels is None:
            self.tunnels[coarse] = [dict(ends)]
            return 0
        first_open = None
        for n, tunnel in enumerate(tunnels):
            shared = False
            for receiver, values in ends:
                known = tunnel.get(receiver)
                if known is None:
                    continue
                if known != values:
                    break
                shared = True
            else:
                if shared:
                    if len(tunnel) < len(ends):
                        tunnel.update(ends)
                    return n
                if first_open is None:
                    first_open = n
        if first_open is None:
            tunnels.append(dict(ends))
            return len(tunnels) - 1
        tunnels[first_open].update(ends)
        return first_open

    @staticmethod
    def key(coarse: tuple, n: int) -> tuple:
        """The tracker's key of tunnel ``n`` of ``coarse``: ``coarse`` for the first
        one, ``(*coarse, n)`` for the others."""
        return coarse if n == 0 else (*coarse, n)

    @staticmethod
    def coarse_of(key: tuple) -> tuple:
        """The coarse key of a tracker's key (:meth:`key`)."""
        return key[:5] if len(key) == 6 else key

    def ends_of(self, key: tuple) -> dict[str, tuple[str, ...]]:
        """The values of the tunnel of ``key`` (:meth:`key`) by receiving address (empty:
        none known)."""
        tunnels = self.tunnels.get(self.coarse_of(key))
        n = key[5] if len(key) == 6 else 0
        return tunnels[n] if tunnels is not None and n < len(tunnels) else {}

    def opened(self, key: tuple) -> None:
        """A connection under ``key`` entered the tracker's table."""
        coarse = self.coarse_of(key)
        if coarse in self.tunnels:
            self.live[coarse] = self.live.get(coarse, 0) + 1

    def closed(self, key: tuple) -> None:
        """A connection under ``key`` left the tracker's table: the tunnels of its coarse
        key are forgotten with its last one."""
        coarse = self.coarse_of(key)
        count = self.live.get(coarse)
        if count is None:
            return
        if count > 1:
            self.live[coarse] = count - 1
        else:
            del self.live[coarse]
            self.tunnels.pop(coarse, None)


def tunnels_of(paths: Iterable[tuple[str, ...]]) -> list[dict[str, tuple[str, ...]]]:
    """The tunnels the segments of one coarse key with these encapsulation ``paths``
    (capture order; each distinct path once is enough) make, as :class:`TunnelPairing`
    pairs them: their values by receiving address (one tunnel, ``[{}]``, for paths
    without an ident per direction). The fast paths send a coarse key with more than
    one to the reference tracker."""
    pairing = TunnelPairing()
    for path in paths:
        pairing.place((), tunnel_ends(path))
    return pairing.tunnels.get((), [{}])


def client_path(
    path: tuple[str, ...], from_client: bool, ends: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...]:
    """The encapsulation path a connection reports, from ``path`` (its first segment's;
    ``from_client``: the client sent it) and its tunnel's values per receiving address
    ``ends`` (:meth:`TunnelPairing.ends_of`): the path as the client sends it (a path
    the server sent is reversed: outer addresses swapped and, for idents per direction,
    those the client's segments carry; kept as seen when those are unknown), each ident
    per direction followed by the server's, after a slash, when they differ (``"gtpu
    257/40961"``: uplink TEID 257, downlink TEID 40961)."""
    found = _per_direction(path)
    if not from_client:
        if found is not None and found[0] not in ends:
            return path  # the client's values are unknown: as seen
        path = tuple(
            f"{item.split(' ', 1)[0]} {'>'.join(item.split(' ', 1)[1].split('>', 1)[::-1])}"
            if item.startswith("ip") and ">" in item
            else item
            for item in path
        )
    if found is None:
        return path
    sender, receiver = (found[0], found[1]) if from_client else (found[1], found[0])
    there, back = ends.get(receiver, found[2]), ends.get(sender)
    out = list(path)
    for k, i in enumerate(found[3]):
        label, _sep, value = out[i].rpartition(" ")
        v = there[k] if k < len(there) else value
        w = back[k] if back is not None and k < len(back) else v
        out[i] = f"{label} {v}/{w}" if w != v else f"{label} {v}"
    return tuple(out)


def _server_port_rank(port: int) -> tuple[int, int]:
    """Sort key: well-known ports first, then lower ports (the likelier server)."""
    return (0 if port < 1024 else 1, port)
