"""Connection tracker: groups TCP segments into connections.

A connection is keyed by its unordered 4-tuple. The client is the sender of the first SYN
(no ACK); when the capture starts with a SYN-ACK its sender is the server; with neither,
the roles are inferred from the ports (a well-known port < 1024, else the lower port, is
the server) and the connection says so (``roles_inferred``).

Port reuse: a SYN with a new ISN on a 4-tuple whose connection has closed (FINs or RST,
or a refused attempt), or whose connection is synchronized but sees a SYN with another
ISN (Wireshark's rule), starts a new connection; RFC 9293 §3.4 / RFC 6191 describe when a
stack may reuse a 4-tuple in TIME-WAIT. The previous connection stays linked for CL010.
"""

from __future__ import annotations

from typing import Iterator

from pcapcheck.connection import Connection
from pcapcheck.detectors import Checker
from pcapcheck.fsm import Endpoint
from pcapcheck.model import ACK, CLOSED, ESTABLISHED, FIN, RST, SYN, SYNCHRONIZED, Segment

from pcapcheck.zeek import ZeekState, zeek_flips_first_packet

#: Ports Zeek's ``likely_server_ports`` holds with its base protocol scripts loaded;
#: they decide when Zeek flips a connection whose first packet is not a SYN ('^').
LIKELY_SERVER_PORTS = frozenset({21, 22, 25, 53, 80, 88, 110, 143, 389, 443, 502, 587,
                                 993, 995, 1080, 1194, 1812, 3128, 3306, 3389, 5060,
                                 5432, 6379, 6666, 6667, 6668, 6669, 8000, 8080, 8888})


class Tracker:
    """Feeds segments to per-connection state and yields finished connections.

    ``checker`` replays the segments (:class:`~pcapcheck.detectors.Checker`).
    """

    def __init__(self, checker: Checker):
        self.checker = checker
        self.table: dict[tuple, Connection] = {}
        self.connections: list[Connection] = []
        self._next_id = 1

    def feed(self, seg: Segment) -> None:
        """Route one segment (capture order) to its connection, creating it if needed."""
        a, b = (seg.src, seg.sport), (seg.dst, seg.dport)
        key = (a, b) if a <= b else (b, a)
        conn = self.table.get(key)
        if conn is None:
            conn = self._new(seg, key, None)
        elif seg.flags & (SYN | ACK | FIN | RST) == SYN and self._starts_new(conn, seg):
            conn = self._new(seg, key, conn)
        self.checker.process(conn, seg)

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
            client, server = dst, src
            flipped = True
        else:
            midstream = True
            inferred = True
            client, server = (src, dst) if _server_port_rank(dst[1]) < _server_port_rank(src[1]) \
                else (dst, src)
            flipped = client != src
        if midstream:
            ec, es = Endpoint("client", ESTABLISHED), Endpoint("server", ESTABLISHED)
        else:
            ec = Endpoint("client", CLOSED if not flipped else None)
            es = Endpoint("server", None)
        conn = Connection(id=self._next_id, client=client, server=server,
                          roles_inferred=inferred, first_frame=seg.frame, first_ts=seg.ts,
                          ec=ec, es=es, midstream=midstream, flipped=flipped,
                          previous=previous)
        # Zeek flips a connection that starts with a SYN-ACK (Zeek >= 5.1) or whose first
        # packet comes from a likely server port (TCPAnalyzer::WantConnection).
        zeek_flip = bool(flags & SYN and flags & ACK) or zeek_flips_first_packet(
            flags, seg.sport, seg.dport, LIKELY_SERVER_PORTS)
        conn.zeek = ZeekState(flipped=zeek_flip)
        self._next_id += 1
        self.table[key] = conn
        self.connections.append(conn)
        if previous is not None:
            self._reuse(conn, previous, seg)
        return conn

    def _reuse(self, conn: Connection, previous: Connection, seg: Segment) -> None:
        """CL010: a new connection on the 4-tuple within 2·MSL of a graceful close."""
        if previous.close_ts is None or previous.reset_frame is not None:
            return
        gap = seg.ts - previous.close_ts
        limit = 2 * self.checker.msl
        if gap < limit:
            ev = self.checker._emit(conn, "CL010", seg.frame, conn.role_of(seg),
                                    previous_connection=previous.id, gap=round(gap, 6),
                                    limit=limit)
            ev.data.setdefault("client", conn.client_text)

    def finish(self, capture_end: float) -> Iterator[Connection]:
        """Finalise every connection (end-of-capture checks); yield them in id order."""
        for conn in self.connections:
            self.checker.finish(conn, capture_end)
            yield conn


def _server_port_rank(port: int) -> tuple[int, int]:
    """Sort key: well-known ports first, then lower ports (the likelier server)."""
    return (0 if port < 1024 else 1, port)
