"""Clean connections: the common life cycle summarised without the replay (issue #4).

Most connections of a capture follow one pattern: the three-way handshake (RFC 9293
§3.5, figure 6), data in order in both directions, and the four-way close (§3.6,
figure 12). Replayed through :class:`~pcapcheck.tcp.detectors.Checker` and
:class:`~pcapcheck.tcp.zeek.ZeekState`, such a connection makes no event, and its summary
follows from a handful of its frames. The tracker of the fast path
(:class:`~pcapcheck.fast.summarising_tracker.SummarisingTracker`) therefore keeps a
connection that starts with a SYN on a fresh 4-tuple as a :class:`Pending`: its
segments are only appended, as ``(frame, ts, from_client, seq, ack, flags, window,
payload_len, ip_id, ts_val, segment)`` rows (:data:`ROW_FIELDS`). When the connection is finalised, :func:`check` tests the rows
against the pattern:

* row 0: the client's SYN (flags exactly SYN, no data); row 1: the server's SYN-ACK
  (flags exactly SYN+ACK, no data, SEG.ACK = client ISN + 1); row 2: the client's ACK
  of it (SEG.SEQ = ISN + 1, SEG.ACK = server ISN + 1);
* every later row: flags ACK or ACK+PSH, with or without FIN; SEG.SEQ = the sender's
  SND.NXT (in order: no hole, no keep-alive), or a **retransmission** (below); the
  sender's SEG.ACK never decreasing and never beyond the peer's SND.NXT; a window other
  than 0; nothing sent after the sender's own FIN but ACKs; no FIN with data; no pure
  ACK that repeats its direction's previous acknowledgment unless that segment carried
  new data (duplicate ACKs, packets stored twice: see :func:`check`); no cut and no
  wrong checksum;
  the sequence numbers of neither direction crossing 2^32;
* the close: one side's FIN (row f1); the other side's first segment after it
  acknowledges it (row a1, SEG.ACK = FIN + 1); the other side's FIN (row f2, the FIN
  acknowledged by then); the first side's ACK of that FIN (SEG.ACK = FIN + 1) is the
  last row.

A retransmission is a row that sends again, whole, data of its direction already sent
(SEG.SEQ >= ISN + 1, SEG.SEQ + SEG.LEN =< SND.NXT), at least 2 bytes (one old byte is a
keep-alive), flags ACK or ACK+PSH, before the connection's first FIN (both endpoints
ESTABLISHED), and whose CP008 duplicate key
(:func:`pcapcheck.tcp.detectors.duplicate_key_of`) is no earlier segment's of its
direction, however long before (such a pair may be one packet stored twice, which the
replay tells apart; it is replayed).
The replay reports it as SQ002 (:func:`retransmission_events`), and Zeek's history
gets ``T`` (client) or ``t`` (server) at the first one of each direction (Zeek adds the
letter again at the 10th: a direction with 10 or more is replayed).

A connection that fits is a :class:`CleanConnection` (what its summary needs;
:func:`pcapcheck.pipeline.connection_summary` writes it); anything else is replayed
from its rows through the reference engine
(:class:`pcapcheck.fast.summarising_tracker.SummarisingTracker` does it the moment the
rows no longer suffice). ``tests/test_clean.py`` compares the reports
with and without this shortcut (:data:`ENABLED`) on every sample capture and on
generated ones.
"""

from __future__ import annotations

from pcapcheck.model import (
    ACK,
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    PSH,
    SYN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    Event,
)
from pcapcheck.tcp.connection import UNACKED_LIMIT, Connection
from pcapcheck.tcp.detectors import (
    DUPLICATE_KEY_FIELDS,
    duplicate_key_of,
    fill_common,
    retransmission_data,
)
from pcapcheck.tcp.zeek import SCALED_ONCE

#: Summarise clean connections from their rows; False replays every connection (the
#: tests compare both).
ENABLED = True

_M32 = 0xFFFFFFFF
_SYNACK = SYN | ACK
_FINACK = FIN | ACK
#: The most retransmissions of one direction in a clean connection: Zeek writes its
#: ``T``/``t`` once for these (:data:`pcapcheck.tcp.zeek.SCALED_ONCE`), again for one more.
RETX_MAX = SCALED_ONCE
#: The most segments of a connection summarised from its rows: a longer one is replayed
#: through the reference tracker when its rows pass this many (the
#: :class:`~pcapcheck.fast.summarising_tracker.SummarisingTracker`), and is never a
#: candidate of :mod:`pcapcheck.fast.lookahead`: the rows held for a connection are
#: bounded whatever its length (issue #23: one connection of a million segments held
#: them all). The replay gives the same report as the summary; only time differs.
#: At most the engine's :data:`~pcapcheck.tcp.connection.UNACKED_LIMIT`: a summarised
#: connection's retransmissions name the first frames the replay names (the engine
#: forgets some only past that many unacknowledged segments of a direction).
MAX_CLEAN_ROWS = 1 << 12
assert MAX_CLEAN_ROWS <= UNACKED_LIMIT

#: Position in a row (:class:`Pending`) of each field of a segment it holds.
ROW_FIELDS = {
    "frame": 0,
    "ts": 1,
    "from_client": 2,
    "seq": 3,
    "ack": 4,
    "flags": 5,
    "window": 6,
    "payload_len": 7,
    "ip_id": 8,
    "ts_val": 9,
}
_KEY_AT = {name: ROW_FIELDS[name] for name in DUPLICATE_KEY_FIELDS}


def row_duplicate_key(row: tuple) -> tuple | None:
    """CP008's duplicate key (:func:`pcapcheck.tcp.detectors.duplicate_key_of`) of the
    segment of ``row``."""
    return duplicate_key_of(**{name: row[at] for name, at in _KEY_AT.items()})


class FastPathMismatch(Exception):
    """The tracker's state is not what :mod:`pcapcheck.fast.lookahead` inferred for a
    connection it found clean ahead of the tracker (not expected: its conditions are
    built to exclude it); :func:`pcapcheck.pipeline.analyze_part` then analyses the
    capture again without the lookahead."""


class Pending:
    """A connection that began with a SYN on a fresh 4-tuple, its segments kept as rows
    (see the module docstring) until it is finalised or must be replayed.

    ``id``: the connection id reserved for it; ``client``/``server``: ``(ip, port)``;
    ``last_ts``: seconds since the epoch of its latest row; ``dirty``: a row that the
    pattern excludes at once (cut, wrong checksum) was seen; ``closing``: in the queue of
    :meth:`pcapcheck.fast.summarising_tracker.SummarisingTracker.keep`."""

    __slots__ = ("client", "closing", "dirty", "id", "last_ts", "rows", "server")

    def __init__(self, cid: int, client: tuple[str, int], server: tuple[str, int]):
        self.id = cid
        self.client = client
        self.server = server
        self.rows: list[tuple] = []
        self.last_ts = 0.0
        self.dirty = False
        self.closing = False  # in the tracker's queue of closed connections


class CleanConnection:
    """A finalised connection that fits the pattern: what its summary needs.

    Frames are 1-based, times seconds since the epoch, ISNs absolute. ``closer`` is the
    role that sent the first FIN; ``f1``, ``a1``, ``f2``, ``last``: the frames of that
    FIN, of the other side's ACK of it, of the other side's FIN and of the last ACK;
    ``syn``, ``synack``, ``ack``: the handshake's frames; ``history``: Zeek's.
    ``retx``: its retransmissions (module docstring) in capture order, each ``(frame,
    from_client, seq, payload_len, first_frame, flags)`` with SEG.SEQ relative to the
    sender's ISN and ``first_frame`` the frame that first sent that byte while it is
    still unacknowledged, else None (as the replay's SQ002 gives it); empty for most.
    ``events``: the replay's events, made from ``retx`` by
    :func:`retransmission_events` when the connection is finalised; ``zeek`` (None) is
    there for the code that finishes any connection
    (:func:`pcapcheck.pipeline.analyze_part`'s ``absorb``)."""

    __slots__ = (
        "a1",
        "ack",
        "bytes",
        "client",
        "client_isn",
        "close_ts",
        "closer",
        "duration",
        "encapsulation",
        "events",
        "f1",
        "f2",
        "first_frame",
        "first_ts",
        "history",
        "id",
        "last",
        "last_frame",
        "packets",
        "retx",
        "server",
        "server_isn",
        "syn",
        "synack",
        "zeek",
    )

    id: int
    client: tuple[str, int]
    server: tuple[str, int]
    first_frame: int
    first_ts: float
    last_frame: int
    close_ts: float
    duration: float
    packets: tuple[int, int]
    bytes: tuple[int, int]
    client_isn: int
    server_isn: int
    closer: str
    syn: int
    synack: int
    ack: int
    f1: int
    a1: int
    f2: int
    last: int
    history: str
    retx: list
    events: list
    zeek: None
    #: events released before it was finalised (:attr:`Connection.released
    #: <pcapcheck.tcp.connection.Connection.released>`): none, a summarised connection
    #: holds at most :data:`RETX_MAX` a direction
    released = 0

    def __init__(self) -> None:
        self.retx: list = []
        self.events: list = []
        self.zeek = None
        #: the tunnels of its SYN (:attr:`Segment.encapsulation`), None: none
        self.encapsulation: tuple[str, ...] | None = None


def retransmission_events(c: CleanConnection) -> list[Event]:
    """The SQ002 events the replay makes for the retransmissions of ``c`` (``c.retx``;
    ``c.id``, ``c.client`` and ``c.server`` set), in capture order, with the same data
    in the same key order as :meth:`Checker.emit <pcapcheck.tcp.detectors.Checker.emit>` and
    its common fields give them: both endpoints ESTABLISHED (a retransmission comes
    before any FIN)."""
    text = Connection.endpoint_text
    client, server = text(c.client), text(c.server)
    out = []
    for frame, from_client, seq, length, first, flags in c.retx:
        data = retransmission_data(seq, length, first)
        sender = "client" if from_client else "server"
        fill_common(data, client, server, ESTABLISHED, ESTABLISHED, sender, flags)
        out.append(Event("SQ002", c.id, frame, data))
    return out


def check(p: Pending) -> CleanConnection | None:
    """The :class:`CleanConnection` of ``p``'s rows when they fit the pattern of the
    module docstring, else None (replay them). Sequence numbers are compared relative to
    each direction's ISN (modulo 2^32, RFC 9293 §3.4).

    A packet stored twice (CP008) is excluded without comparing keys: in order, a
    segment with data or a FIN cannot repeat an earlier one of its direction (its
    SEG.SEQ is new), and a pure ACK must acknowledge more than the direction's previous
    segment or follow new data of its own (a repeated pure ACK, or any duplicate ACK,
    is replayed); a retransmission is compared with the earlier segments of its
    direction (``_resent``)."""
    rows = p.rows
    n = len(rows)
    if n < 7 or p.dirty:
        return None
    r0, r1, r2 = rows[0], rows[1], rows[2]
    # (frame, ts, from_client, seq, ack, flags, window, payload_len, ip_id, ts_val, seg)
    if not r0[2] or r0[5] != SYN or r0[7] or not r0[6]:
        return None
    isn_c = r0[3]
    if r1[2] or r1[5] != _SYNACK or r1[7] or not r1[6] or r1[4] != (isn_c + 1) & _M32:
        return None
    isn_s = r1[3]
    if not r2[2] or r2[5] & FIN:
        return None
    # The two sides' branches below mirror each other on purpose: local variables per
    # side take half the time of lists indexed by side (this loop runs for most rows).
    # Per side (c: client, s: server): SND.NXT relative to its ISN, the latest SEG.ACK
    # it sent (relative to the peer's ISN), its FIN's position (-1: none), whether its
    # previous segment carried data, packets and payload bytes.
    c_nxt = s_nxt = 1
    c_ack = s_ack = 0
    c_fin = s_fin = -1
    c_data = s_data = False
    c_pkts = s_pkts = 1
    c_bytes = s_bytes = 0
    c_fin_acked = s_fin_acked = 0  # the frame that acknowledged the FIN
    c_retx = s_retx = 0  # retransmissions
    retx: list[tuple] = []  # CleanConnection.retx
    hist = ["S", "h"]
    letters = 0  # Zeek's history letters seen: A D F (client) a d f
    min_ts = max_ts = r0[1]
    if r1[1] < min_ts:
        min_ts = r1[1]
    elif r1[1] > max_ts:
        max_ts = r1[1]
    closer = f1 = a1 = f2 = 0
    for i in range(2, n):
        frame, ts, from_client, seq, ack, flags, window, length, _i, _t, _s = rows[i]
        f = flags & ~PSH
        if (f != ACK and f != _FINACK) or not window:
            return None
        if ts < min_ts:
            min_ts = ts
        elif ts > max_ts:
            max_ts = ts
        if from_client:
            a = (ack - isn_s) & _M32
            if (
                a < c_ack
                or a > s_nxt
                or a < 1
                or (a == c_ack and not c_data and not length and f == ACK)
            ):
                return None
            if (seq - isn_c) & _M32 != c_nxt:
                c_retx += 1
                if (
                    c_retx > RETX_MAX
                    or c_fin >= 0
                    or s_fin >= 0
                    or not _resent(rows, i, isn_c, c_nxt, s_ack, retx)
                ):
                    return None
                if c_retx == 1:
                    hist.append("T")
                c_ack = a
                c_pkts += 1
                c_bytes += length
                c_data = False
                continue
            if s_fin >= 0 and not s_fin_acked:
                if a != s_fin + 1:  # the first segment after a FIN acks it
                    return None
                s_fin_acked = frame
                if closer == 2:
                    a1 = frame
            c_ack = a
            c_pkts += 1
            if c_fin >= 0 and (length or f == _FINACK):
                return None  # data or a second FIN after the FIN
            if f == _FINACK:
                if length or i == 2:
                    return None
                c_fin = c_nxt
                c_nxt += 1
                letters |= 4
                hist.append("F")
                if not closer:
                    closer, f1 = 1, frame
                else:
                    f2 = frame
                c_data = False
                continue
            if length:
                c_nxt += length
                c_bytes += length
                c_data = True
                if not letters & 2:
                    letters |= 2
                    hist.append("D")
            else:
                c_data = False
                if not letters & 1:
                    letters |= 1
                    hist.append("A")
        else:
            a = (ack - isn_c) & _M32
            if (
                a < s_ack
                or a > c_nxt
                or a < 1
                or (a == s_ack and not s_data and not length and f == ACK)
            ):
                return None
            if (seq - isn_s) & _M32 != s_nxt:
                s_retx += 1
                if (
                    s_retx > RETX_MAX
                    or c_fin >= 0
                    or s_fin >= 0
                    or not _resent(rows, i, isn_s, s_nxt, c_ack, retx)
                ):
                    return None
                if s_retx == 1:
                    hist.append("t")
                s_ack = a
                s_pkts += 1
                s_bytes += length
                s_data = False
                continue
            if c_fin >= 0 and not c_fin_acked:
                if a != c_fin + 1:
                    return None
                c_fin_acked = frame
                if closer == 1:
                    a1 = frame
            s_ack = a
            s_pkts += 1
            if s_fin >= 0 and (length or f == _FINACK):
                return None
            if f == _FINACK:
                if length:
                    return None
                s_fin = s_nxt
                s_nxt += 1
                letters |= 32
                hist.append("f")
                if not closer:
                    closer, f1 = 2, frame
                else:
                    f2 = frame
                s_data = False
                continue
            if length:
                s_nxt += length
                s_bytes += length
                s_data = True
                if not letters & 16:
                    letters |= 16
                    hist.append("d")
            else:
                s_data = False
                if not letters & 8:
                    letters |= 8
                    hist.append("a")
        if c_fin_acked and s_fin_acked:
            if i != n - 1 or from_client != (closer == 1):
                return None
            break
    else:
        return None  # never closed
    if isn_c + c_nxt > _M32 or isn_s + s_nxt > _M32:
        return None  # a sequence number wrapped
    last = rows[-1]
    c = CleanConnection()
    c.id = p.id
    c.client, c.server = p.client, p.server
    c.first_frame, c.first_ts = r0[0], r0[1]
    c.last_frame, c.close_ts = last[0], last[1]
    c.duration = round(max(max_ts - min_ts, 0.0), 6)
    c.packets, c.bytes = (c_pkts, s_pkts), (c_bytes, s_bytes)
    c.client_isn, c.server_isn = isn_c, isn_s
    c.closer = "client" if closer == 1 else "server"
    c.syn, c.synack, c.ack = r0[0], r1[0], r2[0]
    c.f1, c.a1, c.f2, c.last = f1, a1, f2, last[0]
    c.history = "".join(hist)
    c.retx = retx
    return c


def _resent(
    rows: list[tuple], i: int, isn: int, nxt: int, peer_ack: int, retx: list[tuple]
) -> bool:
    """Whether ``rows[i]``, a segment that is not at its sender's SND.NXT (``nxt``,
    relative to its sender's ISN ``isn``), is a retransmission (module docstring; the
    caller has checked SEG.ACK, that no FIN came before it and how many came from its
    direction); if so it is appended to ``retx``, the connection's retransmissions so
    far (:attr:`CleanConnection.retx`), with the frame that first sent its first byte
    while that data is not wholly acknowledged (``peer_ack``: the peer's latest SEG.ACK,
    relative), else None."""
    row = rows[i]
    frame, _ts, side, seq, _ack, flags, _window, length = row[:8]
    rel = (seq - isn) & _M32
    if length < 2 or flags & ~PSH != ACK or rel < 1 or rel + length > nxt:
        return False
    key = row_duplicate_key(row)
    resent = {r[0] for r in retx}
    first = None
    for j in range(i - 1, 1, -1):
        r = rows[j]
        if r[2] != side:
            continue
        if key is not None and row_duplicate_key(r) == key:
            return False  # maybe one packet stored twice: CP008's call
        if r[7] and r[0] not in resent:
            start = (r[3] - isn) & _M32
            if start <= rel < start + r[7] and start + r[7] > peer_ack:
                first = r[0]
    retx.append((frame, side, rel, length, first, flags))
    return True


def transitions(c: CleanConnection) -> dict[str, list[dict]]:
    """The two endpoints' RFC 9293 transitions of a clean connection, as
    :func:`pcapcheck.pipeline.connection_summary` writes them: the active open (§3.5), then
    the closer through FIN-WAIT-1, FIN-WAIT-2 and TIME-WAIT, the other side through
    CLOSE-WAIT and LAST-ACK to CLOSED (§3.6)."""
    closer = [
        {"frame": c.f1, "from": ESTABLISHED, "to": FIN_WAIT_1, "cause": "snd FIN"},
        {"frame": c.a1, "from": FIN_WAIT_1, "to": FIN_WAIT_2, "cause": "rcv ACK of FIN"},
        {"frame": c.f2, "from": FIN_WAIT_2, "to": TIME_WAIT, "cause": "rcv FIN"},
    ]
    other = [
        {"frame": c.f1, "from": ESTABLISHED, "to": CLOSE_WAIT, "cause": "rcv FIN"},
        {"frame": c.f2, "from": CLOSE_WAIT, "to": LAST_ACK, "cause": "snd FIN"},
        {"frame": c.last, "from": LAST_ACK, "to": CLOSED, "cause": "rcv ACK of FIN"},
    ]
    client = [
        {"frame": c.syn, "from": CLOSED, "to": SYN_SENT, "cause": "snd SYN"},
        {"frame": c.synack, "from": SYN_SENT, "to": ESTABLISHED, "cause": "rcv SYN,ACK"},
    ]
    server = [
        {"frame": c.synack, "from": LISTEN, "to": SYN_RECEIVED, "cause": "snd SYN,ACK"},
        {"frame": c.ack, "from": SYN_RECEIVED, "to": ESTABLISHED, "cause": "rcv ACK"},
    ]
    if c.closer == "client":
        return {"client": client + closer, "server": server + other}
    return {"client": client + other, "server": server + closer}
