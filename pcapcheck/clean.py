"""Clean connections: the common life cycle summarised without the replay (issue #4).

Most connections of a capture follow one pattern: the three-way handshake (RFC 9293
§3.5, figure 6), data in order in both directions, and the four-way close (§3.6,
figure 12). Replayed through :class:`~pcapcheck.detectors.Checker` and
:class:`~pcapcheck.zeek.ZeekState`, such a connection makes no event, and its summary
follows from a handful of its frames. The tracker therefore keeps a connection that
starts with a SYN on a fresh 4-tuple as a :class:`Pending`: its segments are only
appended, as ``(frame, ts, from_client, seq, ack, flags, window, payload_len, ip_id,
ts_val, segment)`` rows. When the connection is finalised, :func:`check` tests the rows
against the pattern:

* row 0: the client's SYN (flags exactly SYN, no data); row 1: the server's SYN-ACK
  (flags exactly SYN+ACK, no data, SEG.ACK = client ISN + 1); row 2: the client's ACK
  of it (SEG.SEQ = ISN + 1, SEG.ACK = server ISN + 1);
* every later row: flags ACK or ACK+PSH, with or without FIN; SEG.SEQ = the sender's
  SND.NXT (in order: no retransmission, no hole, no keep-alive); the sender's SEG.ACK
  never decreasing and never beyond the peer's SND.NXT; a window other than 0; nothing
  sent after the sender's own FIN but ACKs; no FIN with data; not a packet stored twice
  (no two rows of a direction with the same CP008 key); no cut and no wrong checksum;
  the sequence numbers of neither direction crossing 2^32;
* the close: one side's FIN (row f1); the other side's first segment after it
  acknowledges it (row a1, SEG.ACK = FIN + 1); the other side's FIN (row f2, the FIN
  acknowledged by then); the first side's ACK of that FIN (SEG.ACK = FIN + 1) is the
  last row.

A connection that fits is a :class:`CleanConnection` (what its summary needs;
:func:`pcapcheck.analyze.connection_summary` writes it); anything else is replayed
from its rows through the full path (:meth:`pcapcheck.tracker.Tracker.feed` does it
the moment the rows no longer suffice). ``tests/test_clean.py`` compares the reports
with and without this shortcut (:data:`ENABLED`) on every sample capture and on
generated ones.
"""

from __future__ import annotations

from pcapcheck.model import (ACK, CLOSE_WAIT, CLOSED, ESTABLISHED, FIN, FIN_WAIT_1,
                             FIN_WAIT_2, LAST_ACK, LISTEN, PSH, SYN, SYN_RECEIVED,
                             SYN_SENT, TIME_WAIT)

#: Summarise clean connections from their rows; False replays every connection (the
#: tests compare both).
ENABLED = True

_M32 = 0xFFFFFFFF
_SYNACK = SYN | ACK
_FINACK = FIN | ACK


class Pending:
    """A connection that began with a SYN on a fresh 4-tuple, its segments kept as rows
    (see the module docstring) until it is finalised or must be replayed.

    ``id``: the connection id reserved for it; ``client``/``server``: ``(ip, port)``;
    ``last_ts``: seconds since the epoch of its latest row; ``dirty``: a row that the
    pattern excludes at once (cut, wrong checksum) was seen; ``fins``, ``closing``: see
    :meth:`pcapcheck.tracker.Tracker.feed`."""

    __slots__ = ("id", "client", "server", "rows", "last_ts", "dirty", "fins", "closing")

    def __init__(self, cid: int, client: tuple[str, int], server: tuple[str, int]):
        self.id = cid
        self.client = client
        self.server = server
        self.rows: list[tuple] = []
        self.last_ts = 0.0
        self.dirty = False
        self.fins = 0            # FIN seen from the client: 1, from the server: 2
        self.closing = False     # in the tracker's queue of closed connections


class CleanConnection:
    """A finalised connection that fits the pattern: what its summary needs.

    Frames are 1-based, times seconds since the epoch, ISNs absolute. ``closer`` is the
    role that sent the first FIN; ``f1``, ``a1``, ``f2``, ``last``: the frames of that
    FIN, of the other side's ACK of it, of the other side's FIN and of the last ACK;
    ``syn``, ``synack``, ``ack``: the handshake's frames; ``history``: Zeek's."""

    __slots__ = ("id", "client", "server", "first_frame", "last_frame", "first_ts",
                 "close_ts", "duration", "packets", "bytes", "client_isn", "server_isn",
                 "closer", "syn", "synack", "ack", "f1", "a1", "f2", "last", "history",
                 "events", "zeek")

    def __init__(self) -> None:
        self.events: list = []
        self.zeek = None


def check(p: Pending) -> CleanConnection | None:
    """The :class:`CleanConnection` of ``p``'s rows when they fit the pattern of the
    module docstring, else None (replay them). Sequence numbers are compared relative to
    each direction's ISN (modulo 2^32, RFC 9293 §3.4)."""
    rows = p.rows
    n = len(rows)
    if n < 7 or p.dirty:
        return None
    r0, r1, r2 = rows[0], rows[1], rows[2]
    # (frame, ts, from_client, seq, ack, flags, window, payload_len, ip_id, ts_val, seg)
    if not r0[2] or r0[5] != SYN or r0[7] or not r0[6]:
        return None
    isn_c = r0[3]
    if (r1[2] or r1[5] != _SYNACK or r1[7] or not r1[6]
            or r1[4] != (isn_c + 1) & _M32):
        return None
    isn_s = r1[3]
    if not r2[2] or r2[5] & FIN:
        return None
    isn = (isn_c, isn_s)
    nxt = [1, 1]                 # SND.NXT of each side, relative to its ISN
    last_ack = [0, 0]            # the latest SEG.ACK each side sent (relative)
    fin = [-1, -1]               # relative position of each side's FIN
    fin_acked = [0, 0]           # the frame that acknowledged it
    seen: tuple[set, set] = (set(), set())
    packets = [1, 1]
    sizes = [0, 0]
    hist = ["S", "h"]
    letters = 0                  # Zeek's history bits: A D F (client) a d f (server)
    min_ts = max_ts = r0[1]
    if r1[1] < min_ts:
        min_ts = r1[1]
    elif r1[1] > max_ts:
        max_ts = r1[1]
    for r in (r0, r1):
        if r[8] or r[9] is not None:
            seen[0 if r[2] else 1].add((r[8], r[3], r[4], r[5], r[7], r[6], r[9]))
    f1 = a1 = f2 = 0
    closer = -1
    for i in range(2, n):
        frame, ts, from_client, seq, ack, flags, window, length, ip_id, ts_val, _s = rows[i]
        d = 0 if from_client else 1
        o = 1 - d
        f = flags & ~PSH
        if (f != ACK and f != _FINACK) or not window:
            return None
        if (seq - isn[d]) & _M32 != nxt[d]:
            return None
        a = (ack - isn[o]) & _M32
        if a < last_ack[d] or a > nxt[o] or a < 1:
            return None
        if ip_id or ts_val is not None:
            key = (ip_id, seq, ack, flags, length, window, ts_val)
            if key in seen[d]:
                return None
            seen[d].add(key)
        if fin[o] >= 0 and not fin_acked[o]:
            if a != fin[o] + 1:               # the first segment after a FIN acks it
                return None
            fin_acked[o] = frame
            if o == closer:
                a1 = frame
        last_ack[d] = a
        if fin[d] >= 0 and (length or f == _FINACK):
            return None                       # data or a second FIN after the FIN
        if ts < min_ts:
            min_ts = ts
        elif ts > max_ts:
            max_ts = ts
        packets[d] += 1
        if f == _FINACK:
            if length or i == 2:
                return None
            fin[d] = nxt[d]
            nxt[d] += 1
            bit = 4 << (3 * d)
            if not letters & bit:
                letters |= bit
                hist.append("F" if d == 0 else "f")
            if closer < 0:
                closer, f1 = d, frame
            elif not fin_acked[o]:
                return None                   # FINs crossed: a simultaneous close
            else:
                f2 = frame
            continue
        if length:
            nxt[d] += length
            sizes[d] += length
            bit = 2 << (3 * d)
            code = "D" if d == 0 else "d"
        else:
            bit = 1 << (3 * d)
            code = "A" if d == 0 else "a"
        if not letters & bit:
            letters |= bit
            hist.append(code)
        if fin_acked[0] and fin_acked[1]:
            if i != n - 1 or d != closer:
                return None
            break
    else:
        return None                           # never closed
    if isn_c + nxt[0] > _M32 or isn_s + nxt[1] > _M32:
        return None                           # a sequence number wrapped
    last = rows[-1]
    c = CleanConnection()
    c.id = p.id
    c.client, c.server = p.client, p.server
    c.first_frame, c.first_ts = r0[0], r0[1]
    c.last_frame, c.close_ts = last[0], last[1]
    c.duration = round(max(max_ts - min_ts, 0.0), 6)
    c.packets, c.bytes = packets, sizes
    c.client_isn, c.server_isn = isn_c, isn_s
    c.closer = "client" if closer == 0 else "server"
    c.syn, c.synack, c.ack = r0[0], r1[0], r2[0]
    c.f1, c.a1, c.f2, c.last = f1, a1, f2, last[0]
    c.history = "".join(hist)
    return c


def transitions(c: CleanConnection) -> dict[str, list[dict]]:
    """The two endpoints' RFC 9293 transitions of a clean connection, as
    :func:`pcapcheck.analyze.connection_summary` writes them: the active open (§3.5), then
    the closer through FIN-WAIT-1, FIN-WAIT-2 and TIME-WAIT, the other side through
    CLOSE-WAIT and LAST-ACK to CLOSED (§3.6)."""
    closer = [{"frame": c.f1, "from": ESTABLISHED, "to": FIN_WAIT_1, "cause": "snd FIN"},
              {"frame": c.a1, "from": FIN_WAIT_1, "to": FIN_WAIT_2,
               "cause": "rcv ACK of FIN"},
              {"frame": c.f2, "from": FIN_WAIT_2, "to": TIME_WAIT, "cause": "rcv FIN"}]
    other = [{"frame": c.f1, "from": ESTABLISHED, "to": CLOSE_WAIT, "cause": "rcv FIN"},
             {"frame": c.f2, "from": CLOSE_WAIT, "to": LAST_ACK, "cause": "snd FIN"},
             {"frame": c.last, "from": LAST_ACK, "to": CLOSED, "cause": "rcv ACK of FIN"}]
    client = [{"frame": c.syn, "from": CLOSED, "to": SYN_SENT, "cause": "snd SYN"},
              {"frame": c.synack, "from": SYN_SENT, "to": ESTABLISHED,
               "cause": "rcv SYN,ACK"}]
    server = [{"frame": c.synack, "from": LISTEN, "to": SYN_RECEIVED,
               "cause": "snd SYN,ACK"},
              {"frame": c.ack, "from": SYN_RECEIVED, "to": ESTABLISHED, "cause": "rcv ACK"}]
    if c.closer == "client":
        return {"client": client + closer, "server": server + other}
    return {"client": client + other, "server": server + closer}
