"""Zeek ``conn.log`` ``conn_state`` and ``history`` for one TCP connection.

This module re-implements, packet by packet, the parts of Zeek's TCP analysis that
determine the two conn.log columns, so that pcapcheck can print exactly what Zeek
would write for the same packets.

Zeek sources followed (public ``zeek/zeek`` repository, current master-era code as
of Zeek 7.x/8.x: TCPSessionAdapter.cc and TCP_Endpoint.h at commit 040d7583,
TCP_Reassembler.cc d9e0ee83, TCP_Endpoint.cc 18c6aaaa, Session.cc 020dd1a8,
Session.h 032e14d8, IPBasedAnalyzer.cc 022486e1, conn/main.zeek 056f9b7a; all
cross-checked against an 8.x ``zeek-master`` mirror, commit 1a672a5c, for TCP.cc,
TCPSessionAdapter.cc, IPBasedAnalyzer.cc and Conn.cc):

* ``scripts/base/protocols/conn/main.zeek`` -- ``function conn_state()`` (ported
  verbatim in :meth:`ZeekState.conn_state`) and the ``history`` field documentation.
* ``src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc`` -- ``Process()``,
  ``update_history()``, ``update_window()``, ``update_last_seq()``,
  ``update_ack_seq()``, ``init_endpoint()``, ``init_peer()``, ``get_relative_seq()``,
  ``SetPartialStatus()``, ``CheckPIA_FirstPacket()``, ``UpdateStateMachine()`` and the
  ``Update{Inactive,SYN_Sent,Established,Closed,Reset}State()`` handlers (endpoint
  states), ``FlipRoles()``.
* ``src/packet_analysis/protocol/tcp/TCP.cc`` -- ``WantConnection()`` (the
  first-packet flip heuristic, see :func:`zeek_flips_first_packet`),
  ``DeliverPacket()`` / ``ValidateChecksum()`` (a bad checksum records ``c``/``C`` and
  the packet is dropped before any other processing).
* ``src/packet_analysis/protocol/ip/IPBasedAnalyzer.cc`` -- ``NewConn()`` calls
  ``Connection::FlipRoles()`` before the first packet is processed.
* ``src/Conn.cc`` -- ``Connection::FlipRoles()`` appends ``'^'`` to the history.
* ``src/session/Session.h`` / ``Session.cc`` -- ``CheckHistory()`` (a letter is
  logged once per direction, tracked in one ``hist_seen`` bit mask, responder bits
  shifted by 16), ``AddHistory()``, ``ScaledHistoryEntry()`` (``c g t w`` logged at
  the 1st, 10th, 100th, ... occurrence: threshold ``*= 10`` in uint32).
* ``src/analyzer/protocol/tcp/TCP_Endpoint.h`` / ``.cc`` -- endpoint states,
  ``HistoryMasks``, ``CheckHistory``/``AddHistory`` (lower case for the responder),
  ``DidRxmit`` (t), ``ZeroWindow`` (w), ``Gap`` (g), ``ChecksumError`` (c),
  ``Size()``, ``NoDataAcked()``, ``UpdateLastSeq``/``UpdateAckSeq`` (wrap counting).
* ``src/analyzer/protocol/tcp/TCP_Reassembler.cc`` and ``src/Reassembler.cc`` --
  ``DataSent()``, ``AckReceived()``, ``Undelivered()``, ``Gap()``,
  ``BlockInserted()``, ``DataBlockList::Trim()`` (where ``g``/``G`` come from).
* ``scripts/base/init-bare.zeek`` defaults used: ``partial_connection_ok = T``,
  ``tcp_SYN_ack_ok = T``, ``dpd_reassemble_first_packets = T`` (so every TCP
  connection is reassembled from its first packet), ``report_gaps_for_partial = F``,
  ``detect_filtered_trace = F``, ``tcp_max_initial_window = 16384``,
  ``tcp_max_above_hole_without_any_acks = 16384``,
  ``tcp_excessive_data_without_further_acks = 10 MiB``, ``ignore_checksums = F``.
* Zeek btest baselines used as test vectors:
  ``scripts.base.protocols.conn.conn_state-RST-behavior`` (``R OTH``, ``SR RSTOS0``,
  ``SaR RSTOS0``, ``SaFR OTH``), ``core.tcp.flip-without-syn`` (``^hADadFf SF``),
  and the "Connection Handling" developer docs (a lone bad-checksum SYN gives
  ``C``/``OTH``).

What the letters mean (verified in the code above, upper case = originator):

* ``S``/``H`` -- a packet whose only control bit among SYN/FIN/RST is SYN, without
  / with ACK.  ``F`` -- only FIN (payload may be present; no ``D`` then).
  ``R`` -- only RST.  Each is logged once, and again only when a later packet of that
  kind has a different relative sequence number (FIN: seq + payload length).
* ``D`` -- no SYN/FIN/RST and payload > 0 (a data segment with ACK gives ``D``, not
  ``A``); ``A`` -- no SYN/FIN/RST, no payload, ACK set.  Both logged once per side.
* ``Q`` -- SYN+FIN or SYN+RST; ``I`` -- FIN+RST (also with SYN).  Once per side.
* ``T`` -- ``update_last_seq``: payload > 0 and the segment's end does not advance
  the sender's highest sequence number (this includes keep-alives with one byte and,
  as Zeek does, a SYN carrying data).  Not for an endpoint already in RESET.
* ``W`` -- the raw window field is 0, the packet has no RST, the sender is not in
  RESET and its peer is not CLOSED (SYN and FIN packets *do* count).
* ``G`` -- an ACK from the peer covers sequence space this side's reassembler never
  received (content gap), reported only while both endpoints are ESTABLISHED or
  CLOSED-after-ESTABLISHED.  Zeek has no gap check at connection end.
* ``C`` -- ``seg.checksum_ok is False``: the letter is recorded and the packet is
  otherwise ignored (no other letter, no state change).
* ``c g t w`` repeat at the 10th, 100th, 1000th ... occurrence (per side).
* ``^`` -- ``Connection::FlipRoles()``; see ``flipped`` in :class:`ZeekState`.
* ``x`` (analysis limits / tunnel depth) is never produced here.

Simplifications (everything else is a line-by-line port):

* Connection splitting is the caller's job: Zeek's ``IsReuse()`` (a new SYN on a
  closed 4-tuple starts a new connection) and its timers (``tcp_attempt_delay``,
  inactivity, ``tcp_close_delay``) are not modelled; all packets passed to one
  :class:`ZeekState` are assumed to belong to one Zeek connection.
* The reassembler keeps only out-of-order blocks (merged intervals); delivered but
  unacknowledged data is represented by the pair (trim point, delivered-up-to).  This
  is equivalent for gap detection; the ``tcp_excessive_data_without_further_acks``
  give-up uses that approximation of the buffered volume (retained bytes are counted
  from the trim point, so a block straddling it is undercounted by < 1 segment).
* A segment whose payload was cut by the snaplen (``seg.truncated``) is not given to
  the reassembler, exactly like Zeek (``truncated_tcp_payload``); if the peer later
  acknowledges that data Zeek reports a gap, and so do we.
* Flips done by application analyzers (DNS, NTP, Spicy ``flip_roles()``) are outside
  TCP analysis and not modelled.  Zeek >= 5.1 (PR #2191) also flips a connection
  that starts with a SYN-ACK once an ACK or data follows; its code was not present in
  the source copies available to us, but its observable result (btest
  ``flip-without-syn``: ``^hADadFf``) is reproduced by passing ``flipped=True``.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from pcapcheck.model import ACK, FIN, RST, SYN, Segment

__all__ = [
    "TCP_CLOSED",
    "TCP_ESTABLISHED",
    "TCP_INACTIVE",
    "TCP_PARTIAL",
    "TCP_RESET",
    "TCP_SYN_ACK_SENT",
    "TCP_SYN_SENT",
    "ZeekState",
    "zeek_flips_first_packet",
]

# Zeek endpoint states (TCP_Endpoint.h EndpointState; same numbers as the script-level
# TCP_INACTIVE .. TCP_RESET constants in init-bare.zeek).
TCP_INACTIVE = 0  # nothing seen from this side
TCP_SYN_SENT = 1  # SYN seen, no ack
TCP_SYN_ACK_SENT = 2  # SYN-ACK seen from the originator, no initial SYN
TCP_PARTIAL = 3  # data seen, but no SYN
TCP_ESTABLISHED = 4
TCP_CLOSED = 5  # FIN seen
TCP_RESET = 6  # RST seen

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_MOD = 1 << 32
_HALF = 1 << 31
_TOO_LARGE_SEQ_DELTA = 1048576  # TCPSessionAdapter.cc
_TCP_MAX_INITIAL_WINDOW = 16384  # init-bare.zeek defaults
_TCP_MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS = 16384
_TCP_EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS = 10 * 1024 * 1024

#: Session::ScaledHistoryEntry's scaling base: a scaled history letter (``C G T W``,
#: lower case for the responder) is written at its 1st, 10th, 100th, ... occurrence.
HISTORY_SCALE = 10
#: The most occurrences of a scaled letter (e.g. retransmissions, ``T``) that write it
#: only once: one more writes it again.
SCALED_ONCE = HISTORY_SCALE - 1

# TCP_Endpoint::HistoryMasks; the responder's bits are shifted left by 16.
_HIST_SYN_PKT = 0x1
_HIST_FIN_PKT = 0x2
_HIST_RST_PKT = 0x4
_HIST_FIN_RST_PKT = 0x8
_HIST_DATA_PKT = 0x10
_HIST_ACK_PKT = 0x20
_HIST_MULTI_FLAG_PKT = 0x40

# TCPSessionAdapter first_packet_seen bits.
_ORIG = 1
_RESP = 2

# conn_state(): `if ( /\^?S[^HAFGIQ]*R.*/ == c$history ) return "RSTOS0";`
# Zeek's `pattern == string` is an exact (anchored) match.
_RSTOS0_RE = re.compile(r"\^?S[^HAFGIQ]*R.*", re.DOTALL)


def _seq_delta(a: int, b: int) -> int:
    """Zeek's ``seq_delta()``: ``a - b`` as a signed 32-bit integer."""
    d = (a - b) & _M32
    return d - 0x100000000 if d & 0x80000000 else d


def zeek_flips_first_packet(
    flags: int, sport: int, dport: int, likely_server_ports: Collection[int]
) -> bool:
    """Return True when Zeek flips a new connection before processing its first packet.

    Port of ``TCPAnalyzer::WantConnection()`` (packet_analysis/protocol/tcp/TCP.cc),
    whose ``flip_roles`` result ``IPBasedAnalyzer::NewConn()`` applies with
    ``Connection::FlipRoles()`` (history ``'^'``).  ``flags`` are the first packet's TCP
    flags, ``sport``/``dport`` its source/destination ports, ``likely_server_ports``
    the TCP port numbers in Zeek's ``likely_server_ports`` set (the union of the ports
    the loaded protocol scripts ``redef``; it depends on the Zeek installation, so the
    caller supplies it, e.g. ``{80, 443, 22, 21, 25, 53, 6666, 6667, 6668, 6669}``).

    A pure SYN (SYN without ACK) is never flipped.  Otherwise the connection is
    flipped when the source port is a likely server port and the destination port is
    not; when both are, only a non-SYN packet with ``sport < dport`` is flipped.
    (Zeek also never flips when the destination address is broadcast.)
    """
    if flags & SYN and not flags & ACK:
        return False
    if sport in likely_server_ports:
        if dport in likely_server_ports:
            return not flags & SYN and sport < dport
        return True
    return False


class _Endpoint:
    """One side of the connection: TCP_Endpoint state plus its TCP_Reassembler."""

    __slots__ = (
        "ack_seq",
        "ack_wraps",
        "chk_cnt",
        "chk_thresh",
        "fin_cnt",
        "fin_seq",
        "gap_cnt",
        "gap_thresh",
        "hist_last_fin",
        "hist_last_rst",
        "hist_last_syn",
        "is_orig",
        "last_seq",
        "peer",
        "prev_state",
        "r_last",  # r_*: TCP_Reassembler's (relative sequence numbers, data starts at 1)
        "r_ooo",
        "r_skip",
        "r_trim",
        "rxmt_cnt",
        "rxmt_thresh",
        "seq_wraps",
        "start_seq",
        "state",
        "win0_cnt",
        "win0_thresh",
    )

    def __init__(self) -> None:
        self.peer: _Endpoint = self
        self.is_orig = True
        self.state = self.prev_state = TCP_INACTIVE
        self.start_seq = self.last_seq = self.ack_seq = 0
        self.seq_wraps = self.ack_wraps = 0
        self.fin_cnt = 0
        self.fin_seq = 0
        self.hist_last_syn = self.hist_last_fin = self.hist_last_rst = 0
        self.chk_cnt = self.rxmt_cnt = self.win0_cnt = self.gap_cnt = 0
        self.chk_thresh = self.rxmt_thresh = self.win0_thresh = self.gap_thresh = 1
        self.r_last = 1  # last_reassem_seq: delivered up to here
        self.r_trim = 1  # trim_seq: acked/trimmed up to here
        self.r_ooo: list[list[int]] | None = None  # out-of-order blocks [seq, upper)
        self.r_skip = False  # skip_deliveries

    def set_state(self, new_state: int) -> None:
        if new_state != self.state:
            self.prev_state = self.state
            self.state = new_state

    def reinit_seqs(self, start: int, last: int) -> None:
        self.start_seq = self.ack_seq = start
        self.last_seq = last

    def no_data_acked(self) -> bool:
        ack = (self.ack_wraps << 32) + self.ack_seq
        return ack == self.start_seq or ack == self.start_seq + 1

    def size(self) -> int:
        """TCP_Endpoint::Size(): payload bytes judged from sequence numbers."""
        if (
            self.prev_state == TCP_SYN_SENT
            and self.state == TCP_RESET
            and self.peer.state == TCP_INACTIVE
            and not self.no_data_acked()
        ):
            return 0
        last64 = (self.seq_wraps << 32) + self.last_seq
        ack64 = (self.ack_wraps << 32) + self.ack_seq
        size = ((last64 if last64 > ack64 else ack64) - self.start_seq) & _M64
        if size:
            size -= 1  # SYN octet
        if self.fin_cnt > 0 and size:
            size -= 1  # FIN octet
        return size


def _relative(start: int, cur: int, last: int, wraps: int) -> tuple[int, bool]:
    """get_relative_seq(): (uint64 relative sequence number, underflow); the common
    case (no wrap counted and none to count: ``cur`` is not past ``last`` across 2**32)
    without a call, as the signed 32-bit distance from the start."""
    if not wraps and (cur >= last or last - cur <= _HALF):
        d = (cur - start) & _M32
        if d >= _HALF:
            return (d - _MOD) & _M64, True
        return d, False
    return _get_relative_seq(start, cur, last, wraps)


def _get_relative_seq(start: int, cur: int, last: int, wraps: int) -> tuple[int, bool]:
    """get_relative_seq() as Zeek writes it (TCP_Endpoint): every case."""
    delta = _seq_delta(cur, last)
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0 and cur < last:
        wraps += 1
    if wraps == 0:
        d = _seq_delta(cur, start)
        return d & _M64, d < 0
    return ((wraps << 32) + cur - start) & _M64, False


def _is_clean(ep: _Endpoint) -> bool:
    return ep.state == TCP_ESTABLISHED or (
        ep.state == TCP_CLOSED and ep.prev_state == TCP_ESTABLISHED
    )


class ZeekState:
    """Accumulates one connection's packets; originator = pcapcheck's client.

    ``flipped`` is Zeek's first-packet flip decision: True when Zeek made the
    *receiver* of the connection's first packet the originator, i.e. called
    ``Connection::FlipRoles()`` in ``NewConn()`` before processing that packet, so the
    history starts with ``'^'``.  Compute it with :func:`zeek_flips_first_packet`
    from the first segment (typical case: the first packet is a SYN-ACK or mid-stream
    data sent by the server from a well-known port).  To mirror Zeek >= 5.1 on a
    connection whose first packet is a server SYN-ACK followed by an ACK or data
    (PR #2191), also pass True.

    Zeek's orientation is derived from the first :meth:`add`: the originator is the
    first packet's sender, or its receiver when ``flipped``.  If that makes the
    server Zeek's originator (first packet from the server and not flipped), the
    results are in Zeek's orientation (upper-case letters for the server), exactly as
    Zeek's conn.log would show them; :attr:`orig_is_client` tells which side Zeek's
    originator is.  A SYN/SYN-ACK reversal (Zeek's originator sent a SYN-ACK first,
    then the other side a SYN) flips the roles again mid-connection and appends
    ``'^'``, as Zeek does.

    ``ignore_checksums`` mirrors ``zeek -C``: bad checksums are then not special.
    """

    __slots__ = (
        "_client",
        "_flipped",
        "_fps",
        "_hist",
        "_hist_seen",
        "_ignore_checksums",
        "_is_partial",
        "_orig_is_client",
        "_server",
    )

    def __init__(self, flipped: bool = False, *, ignore_checksums: bool = False):
        self._client = _Endpoint()
        self._server = _Endpoint()
        self._client.peer = self._server
        self._server.peer = self._client
        self._flipped = flipped
        self._hist: list[str] = ["^"] if flipped else []
        self._hist_seen = 0
        self._orig_is_client: bool | None = None
        self._is_partial = False
        self._fps = 0  # first_packet_seen
        self._ignore_checksums = ignore_checksums

    # ------------------------------------------------------------------ results

    @property
    def orig_is_client(self) -> bool | None:
        """True if Zeek's originator is pcapcheck's client (None before any packet)."""
        return self._orig_is_client

    def release(self) -> None:
        """Unlink the two endpoints (each names the other as its ``peer``: a reference
        cycle), so that the state is freed as soon as the connection is dropped, not at
        the garbage collector's next full pass (memory bounded by concurrent connections,
        issue #4). Call it once the connection's summary is made: nothing may be added
        or asked afterwards."""
        self._client.peer = self._server.peer = None  # type: ignore[assignment]

    def history(self) -> str:
        """Zeek's ``history`` string ("" when Zeek would log ``-``)."""
        return "".join(self._hist)

    def conn_state(self) -> str:
        """Zeek's ``conn_state``; port of ``conn_state()`` in conn/main.zeek."""
        if self._client.is_orig:
            o, r = self._client, self._server
        else:
            o, r = self._server, self._client
        os_, rs = o.state, r.state
        o_inactive = os_ in (TCP_INACTIVE, TCP_PARTIAL)
        r_inactive = rs in (TCP_INACTIVE, TCP_PARTIAL)
        if rs == TCP_RESET:
            if os_ in (TCP_SYN_SENT, TCP_SYN_ACK_SENT) or (
                os_ == TCP_RESET and o.size() == 0 and r.size() == 0
            ):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == TCP_RESET:
            if r_inactive:
                return "RSTOS0" if _RSTOS0_RE.fullmatch(self.history()) else "OTH"
            return "RSTO"
        if rs == TCP_CLOSED and os_ == TCP_CLOSED:
            return "SF"
        if os_ == TCP_CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == TCP_CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == TCP_SYN_SENT and rs == TCP_INACTIVE:
            return "S0"
        if os_ == TCP_ESTABLISHED and rs == TCP_ESTABLISHED:
            return "S1"
        return "OTH"

    def endpoint_states(self) -> tuple[int, int]:
        """(originator, responder) Zeek endpoint states, TCP_INACTIVE .. TCP_RESET."""
        if self._client.is_orig:
            return self._client.state, self._server.state
        return self._server.state, self._client.state

    # ------------------------------------------------------------------ history

    def _check(self, ep: _Endpoint, mask: int, code: str) -> bool:
        """TCP_Endpoint::CheckHistory -> Session::CheckHistory."""
        if not ep.is_orig:
            mask <<= 16
            code = code.lower()
        if self._hist_seen & mask:
            return True
        self._hist_seen |= mask
        self._hist.append(code)
        return False

    def _add(self, ep: _Endpoint, code: str) -> None:
        self._hist.append(code if ep.is_orig else code.lower())

    def _scaled(self, ep: _Endpoint, code: str, counter: int, thresh: int) -> tuple[int, int]:
        """Session::ScaledHistoryEntry (scaling base 10, uint32 arithmetic)."""
        counter = (counter + 1) & _M32
        if counter == thresh:
            self._add(ep, code)
            new_thresh = (thresh * HISTORY_SCALE) & _M32
            if new_thresh <= thresh:
                counter = 0
            else:
                thresh = new_thresh
        return counter, thresh

    def _gap(self, ep: _Endpoint) -> None:
        """TCP_Reassembler::Gap -> TCP_Endpoint::Gap, only when cleanly established."""
        if _is_clean(ep) and _is_clean(ep.peer):
            ep.gap_cnt, ep.gap_thresh = self._scaled(ep, "G", ep.gap_cnt, ep.gap_thresh)

    def _flip_roles(self) -> None:
        """Connection::FlipRoles + TCPSessionAdapter::FlipRoles (hist_seen not swapped)."""
        self._hist.append("^")
        self._client.is_orig = not self._client.is_orig
        self._server.is_orig = not self._server.is_orig
        self._orig_is_client = not self._orig_is_client
        fps = self._fps
        self._fps = (_RESP if fps & _ORIG else 0) | (_ORIG if fps & _RESP else 0)
        self._is_partial = False

    # ------------------------------------------------------------------ packets

    def add(self, seg: Segment, from_orig: bool) -> None:
        """Process one segment, in capture order.

        ``seg`` fields used: ``flags``, absolute ``seq``/``ack`` (32-bit),
        ``payload_len`` (bytes, from the IP length), raw ``window``, ``checksum_ok``
        (False -> 'c'/'C' and the packet is dropped, like Zeek) and ``truncated``
        (payload not given to the reassembler).  ``from_orig`` is True when pcapcheck's
        client sent it.  Cost: a few dozen attribute operations; no containers are
        allocated unless data arrives out of order.
        """
        ep = self.endpoint(from_orig)
        if self._orig_is_client is None:
            oic = from_orig != self._flipped
            self._orig_is_client = oic
            self._client.is_orig = oic
            self._server.is_orig = not oic
        if seg.checksum_ok is False and not self._ignore_checksums:
            # TCPAnalyzer::ValidateChecksum: ChecksumError() and drop the packet.
            ep.chk_cnt, ep.chk_thresh = self._scaled(ep, "C", ep.chk_cnt, ep.chk_thresh)
            return
        if seg.flags & 0x17 == ACK and self.both_established(ep):
            self.established_segment(
                ep, seg.seq, seg.ack, seg.payload_len, seg.window, seg.truncated
            )
        else:
            self._process(ep, seg)

    def endpoint(self, from_client: bool) -> _Endpoint:
        """The endpoint (Zeek's TCP_Endpoint) that sends a segment of pcapcheck's client
        (``from_client``) or server."""
        return self._client if from_client else self._server

    #: Take :meth:`established_segment` for ACK segments between two established
    #: endpoints; False sends every packet through :meth:`_process` (the tests compare).
    fast_lane = True

    def both_established(self, ep: _Endpoint) -> bool:
        """Whether an ACK without SYN, FIN or RST sent by ``ep`` (``_client`` or
        ``_server``) goes to :meth:`established_segment`: both endpoints
        TCP_ESTABLISHED, both have sent a packet (and :attr:`fast_lane`)."""
        return (
            ep.state == TCP_ESTABLISHED
            and ep.peer.state == TCP_ESTABLISHED
            and self._fps == _ORIG | _RESP
            and self.fast_lane
        )

    def established_segment(
        self, ep: _Endpoint, seq: int, ack: int, length: int, window: int, truncated: bool
    ) -> None:
        """:meth:`_process` for an ACK without SYN, FIN or RST when
        :meth:`both_established` (the caller checks it, and that the
        checksum is not wrong): the same steps, each the one :meth:`_process` calls
        (:meth:`_plain_history`, :meth:`_update_window`, :meth:`_update_ack_seq`,
        :meth:`_update_last_seq`, :meth:`_ack_received`, :meth:`_data_sent`), without
        the branches such a packet cannot take (partial status, endpoint init,
        control-flag history, state machine). ``ep`` sent the segment; absolute ``seq``
        and ``ack``, ``length`` (payload bytes), raw ``window`` and ``truncated`` are its
        fields (:class:`model.Segment`); :mod:`pcapcheck.fast.established_lane` calls it
        with them read from the decoder's columns."""
        peer = ep.peer
        base_seq = seq & _M32
        ack_seq = ack & _M32
        rel_seq, seq_underflow = _relative(ep.start_seq, base_seq, ep.last_seq, ep.seq_wraps)
        self._plain_history(ep, length, True)
        self._update_window(ep, window, False)
        rel_ack, ack_underflow = _relative(peer.start_seq, ack_seq, peer.ack_seq, peer.ack_wraps)
        if ack_underflow:
            rel_ack = 0
        else:
            self._update_ack_seq(peer, ack_seq)
        self._update_last_seq(ep, (base_seq + length) & _M32, length, False, False, False)
        # UpdateEstablishedState(): no SYN, FIN or RST, no change
        self._ack_received(peer, rel_ack)
        if length > 0 and not seq_underflow and not truncated:
            self._data_sent(ep, rel_seq, length)

    def _plain_history(self, ep: _Endpoint, length: int, ack: int | bool) -> None:
        """update_history() for a packet without SYN, FIN or RST: 'D' with data, else
        'A' with ACK (each the first time only)."""
        if length:
            if not self._hist_seen & (_HIST_DATA_PKT if ep.is_orig else _HIST_DATA_PKT << 16):
                self._check(ep, _HIST_DATA_PKT, "D")
        elif ack:
            self._check(ep, _HIST_ACK_PKT, "A")

    def _update_window(self, ep: _Endpoint, window: int, rst: int | bool) -> None:
        """update_window(): a zero window ('W', scaled) when the packet is no RST, the
        peer not closed and ``ep`` not reset (scaling cannot turn a non-zero field
        into 0)."""
        if window == 0 and not rst and ep.peer.state != TCP_CLOSED and ep.state != TCP_RESET:
            ep.win0_cnt, ep.win0_thresh = self._scaled(ep, "W", ep.win0_cnt, ep.win0_thresh)

    @staticmethod
    def _update_ack_seq(peer: _Endpoint, ack_seq: int) -> None:
        """update_ack_seq(): the peer's highest acknowledged sequence number moves to
        ``ack_seq`` (32-bit) when it is ahead (seq_delta > 0), counting a wrap; an ACK
        of 0 far ahead is ignored."""
        peer_ack = peer.ack_seq
        delta_ack = (ack_seq - peer_ack) & _M32  # > 0 as a signed value:
        if 0 < delta_ack < _HALF and not (ack_seq == 0 and delta_ack > _TOO_LARGE_SEQ_DELTA):
            if ack_seq < peer_ack:
                peer.ack_wraps += 1
            peer.ack_seq = ack_seq

    def _update_last_seq(
        self,
        ep: _Endpoint,
        seq_one_past: int,
        length: int,
        syn: int | bool,
        fin: int | bool,
        rst: int | bool,
    ) -> None:
        """update_last_seq(): ``ep``'s last sequence number moves to ``seq_one_past``
        (32-bit) when it is ahead (counting a wrap); a packet with data that does not
        move it is a retransmission ('T', scaled). ``ep.state`` is the pre-packet one."""
        delta_last = _seq_delta(seq_one_past, ep.last_seq)
        if (syn or rst) and (
            delta_last > _TOO_LARGE_SEQ_DELTA or delta_last < -_TOO_LARGE_SEQ_DELTA
        ):
            pass
        elif (fin and ep.last_seq == (ep.start_seq + 1) & _M32) or (
            delta_last > 0 and ep.state != TCP_RESET
        ):
            if seq_one_past < ep.last_seq:
                ep.seq_wraps += 1
            ep.last_seq = seq_one_past
        elif ep.state != TCP_RESET and length > 0:
            ep.rxmt_cnt, ep.rxmt_thresh = self._scaled(ep, "T", ep.rxmt_cnt, ep.rxmt_thresh)

    def _process(self, ep: _Endpoint, seg: Segment) -> None:
        """TCPSessionAdapter::Process for the parts that affect states and history."""
        peer = ep.peer
        is_orig = ep.is_orig
        flags = seg.flags
        syn = flags & SYN
        fin = flags & FIN
        rst = flags & RST
        ack = flags & ACK
        length = seg.payload_len
        base_seq = seg.seq & _M32
        ack_seq = seg.ack & _M32

        # SetPartialStatus(flags, endpoint->IsOrig())
        if is_orig:
            if not self._fps & _ORIG:
                self._is_partial = not syn or bool(ack)
        elif not self._fps & _RESP and not self._is_partial:
            self._is_partial = not syn

        seg_len = length
        if syn:
            seg_len += 1
        if fin:
            seg_len += 1
        if rst:
            seg_len -= length
        seq_one_past = (base_seq + seg_len) & _M32

        # init_endpoint()
        state = ep.state
        if state == TCP_INACTIVE:
            if syn:
                ep.reinit_seqs(base_seq, seq_one_past)
            else:
                ep.reinit_seqs((base_seq - 1) & _M32, base_seq)
        elif state in (TCP_ESTABLISHED, TCP_PARTIAL):
            if syn:
                ep.reinit_seqs(base_seq, seq_one_past)
        elif state in (TCP_SYN_SENT, TCP_SYN_ACK_SENT):
            if syn and base_seq != ep.start_seq:
                ep.reinit_seqs(base_seq, seq_one_past)
        elif state == TCP_RESET and syn and ep.prev_state == TCP_INACTIVE:
            ep.reinit_seqs(base_seq, seq_one_past)

        rel_seq, seq_underflow = _relative(ep.start_seq, base_seq, ep.last_seq, ep.seq_wraps)

        # update_history()
        nbits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        if nbits == 0:
            self._plain_history(ep, length, ack)
        elif nbits == 1:
            if syn:
                code = "H" if ack else "S"
                if self._check(ep, _HIST_SYN_PKT, code) and rel_seq != ep.hist_last_syn:
                    self._add(ep, code)
                ep.hist_last_syn = rel_seq
            elif fin:
                fin_pos = (rel_seq + length) & _M64
                if self._check(ep, _HIST_FIN_PKT, "F") and fin_pos != ep.hist_last_fin:
                    self._add(ep, "F")
                ep.hist_last_fin = fin_pos
            else:
                if self._check(ep, _HIST_RST_PKT, "R") and rel_seq != ep.hist_last_rst:
                    self._add(ep, "R")
                ep.hist_last_rst = rel_seq
        elif fin and rst:
            self._check(ep, _HIST_FIN_RST_PKT, "I")
        else:
            self._check(ep, _HIST_MULTI_FLAG_PKT, "Q")

        self._update_window(ep, seg.window, rst)

        if fin:
            ep.fin_cnt += 1
            ep.fin_seq = (rel_seq + seg_len) & _M64

        rel_ack = 0
        if ack:
            if peer.state == TCP_INACTIVE:
                rel_ack = 1
                peer.reinit_seqs((ack_seq - 1) & _M32, (ack_seq - 1) & _M32)  # init_peer
            else:
                peer_ack = peer.ack_seq
                rel_ack, ack_underflow = _relative(
                    peer.start_seq, ack_seq, peer_ack, peer.ack_wraps
                )
                if ack_underflow:
                    rel_ack = 0
                elif not rst:
                    self._update_ack_seq(peer, ack_seq)

        self._update_last_seq(ep, seq_one_past, length, syn, fin, rst)

        # UpdateStateMachine() (ep.state is still the pre-packet state here)
        if state == TCP_INACTIVE:
            self._update_inactive(ep, peer, base_seq, length, is_orig, syn, fin, rst, ack)
        elif state in (TCP_ESTABLISHED, TCP_PARTIAL):  # UpdateEstablishedState
            if syn and state == TCP_PARTIAL and peer.state == TCP_INACTIVE and not ack:
                ep.set_state(TCP_SYN_SENT)
            if fin and not rst:
                ep.set_state(TCP_CLOSED)
                if peer.state == TCP_RESET and peer.prev_state == TCP_CLOSED:
                    peer.set_state(TCP_CLOSED)  # FIN after the peer's FIN+RST: normal close
            if rst:
                ep.set_state(TCP_RESET)
        elif state in (TCP_SYN_SENT, TCP_SYN_ACK_SENT):  # UpdateSYN_SentState
            if fin:
                ep.set_state(TCP_CLOSED)
            if rst:
                ep.set_state(TCP_RESET)
        elif state == TCP_CLOSED and rst and peer.state != TCP_CLOSED:  # UpdateClosedState
            ep.set_state(TCP_RESET)
        # TCP_RESET: UpdateResetState only reports weirds.

        if ack:
            self._ack_received(peer, rel_ack)

        # CheckPIA_FirstPacket(is_orig) -- uses the pre-flip is_orig
        self._fps |= _ORIG if is_orig else _RESP

        if length > 0 and not rst and not seq_underflow and not seg.truncated:
            self._data_sent(ep, (rel_seq + 1) & _M64 if syn else rel_seq, length)

    def _update_inactive(
        self,
        ep: _Endpoint,
        peer: _Endpoint,
        base_seq: int,
        length: int,
        is_orig: bool,
        syn: int,
        fin: int,
        rst: int,
        ack: int,
    ) -> None:
        """TCPSessionAdapter::UpdateInactiveState."""
        if syn:
            if is_orig:
                ep.set_state(TCP_SYN_ACK_SENT if ack else TCP_SYN_SENT)
            else:
                if not ack and peer.state == TCP_SYN_ACK_SENT and base_seq == ep.start_seq:
                    # SYN/SYN-ACK reversal: flip the endpoints and establish.
                    self._is_partial = False
                    self._flip_roles()
                    peer.set_state(TCP_ESTABLISHED)
                    self._fps |= _ORIG  # SetFirstPacketSeen(true)
                if peer.state == TCP_SYN_SENT:
                    peer.set_state(TCP_ESTABLISHED)
                ep.set_state(TCP_ESTABLISHED)
        if fin:
            ep.set_state(TCP_CLOSED)
        if rst:
            ep.set_state(TCP_RESET)
        if ep.state == TCP_INACTIVE:  # no control flags changed the state
            orig = self._client if self._client.is_orig else self._server
            if not is_orig and length == 0 and orig.state == TCP_SYN_SENT:
                pass  # an ACK of the initial SYN before the SYN-ACK
            elif ack and peer.state == TCP_ESTABLISHED:
                ep.set_state(TCP_ESTABLISHED)
                self._is_partial = False
                self._fps |= _ORIG if is_orig else _RESP
            else:
                ep.set_state(TCP_PARTIAL)

    # ------------------------------------------------------------------ reassembly

    def _data_sent(self, ep: _Endpoint, seq: int, length: int) -> None:
        """TCP_Reassembler::DataSent + Reassembler::NewBlock/BlockInserted."""
        if ep.r_skip:
            return
        upper = seq + length
        ack = ((ep.ack_wraps << 32) + ep.ack_seq - ep.start_seq) & _M64
        if seq < ack:
            if upper <= ack:
                return
            seq = ack
        trim = ep.r_trim
        if upper <= trim:
            return
        if seq < trim:
            seq = trim
        last = ep.r_last
        if seq <= last:
            if upper > last:
                ep.r_last = upper
                if ep.r_ooo:
                    self._drain(ep)
                # _after_delivery(), whose no_data_acked() test is written out
                acked = (ep.ack_wraps << 32) + ep.ack_seq - ep.start_seq
                if acked == 0 or acked == 1:
                    self._after_delivery(ep)
        else:
            self._insert_ooo(ep, seq, upper)
        ooo = ep.r_ooo
        if (
            ooo
            and ep.no_data_acked()
            and ooo[-1][1] - ep.r_last > _TCP_MAX_ABOVE_HOLE_WITHOUT_ANY_ACKS
        ):
            ep.r_ooo = None  # above_hole_data_without_any_acks
            ep.r_skip = True
            return
        buffered = ep.r_last - ep.r_trim
        if ooo:
            buffered += sum(u - s for s, u in ooo)
        if buffered > _TCP_EXCESSIVE_DATA_WITHOUT_FURTHER_ACKS:
            ep.r_ooo = None  # excessive_data_without_further_acks
            ep.r_skip = True

    @staticmethod
    def _insert_ooo(ep: _Endpoint, seq: int, upper: int) -> None:
        ooo = ep.r_ooo
        if ooo is None:
            ep.r_ooo = [[seq, upper]]
            return
        i = 0
        n = len(ooo)
        while i < n and ooo[i][1] < seq:
            i += 1
        j = i
        while j < n and ooo[j][0] <= upper:
            if ooo[j][0] < seq:
                seq = ooo[j][0]
            if ooo[j][1] > upper:
                upper = ooo[j][1]
            j += 1
        ooo[i:j] = [[seq, upper]]

    @staticmethod
    def _drain(ep: _Endpoint) -> None:
        """Deliver out-of-order blocks made contiguous (BlockInserted loop)."""
        ooo = ep.r_ooo
        last = ep.r_last
        while ooo and ooo[0][0] <= last:
            u = ooo.pop(0)[1]
            if u > last:
                last = u
        ep.r_last = last
        if not ooo:
            ep.r_ooo = None

    @staticmethod
    def _after_delivery(ep: _Endpoint) -> None:
        """BlockInserted's trim when nothing of a large send has been acked."""
        if ep.no_data_acked() and ep.size() > _TCP_MAX_INITIAL_WINDOW and ep.r_last > ep.r_trim:
            ep.r_trim = ep.r_last

    def _ack_received(self, ep: _Endpoint, seq: int) -> None:
        """TCP_Reassembler::AckReceived(seq) on the endpoint whose data is acked."""
        if ep.fin_cnt > 0 and seq >= ep.fin_seq:
            seq = (ep.fin_seq - 1) & _M64
        if seq <= ep.r_trim:
            return
        # TrimToSeq(seq) -> DataBlockList::Trim
        if seq > ep.r_last:
            self._undelivered(ep, seq)
        ooo = ep.r_ooo
        if ooo:
            while ooo and ooo[0][1] <= seq:
                ooo.pop(0)
            if ooo and ooo[0][0] == ep.r_last:
                self._drain(ep)
                self._after_delivery(ep)
            elif not ooo:
                ep.r_ooo = None
        ep.r_trim = seq  # SetTrimSeq (seq > trim here)

    def _undelivered(self, ep: _Endpoint, up_to: int) -> None:
        """TCP_Reassembler::Undelivered: report the holes below ``up_to``."""
        if up_to <= 2 and self._is_partial:
            return  # faked ISN of a partial connection
        last = ep.r_last
        if not ep.r_skip:
            ooo = ep.r_ooo
            while ooo and ooo[0][0] < up_to:
                self._gap(ep)  # Gap(last_reassem_seq, b.seq - last_reassem_seq)
                last = ooo[0][0]
                while ooo and ooo[0][0] <= last:
                    u = ooo.pop(0)[1]
                    if u > last:
                        last = u
            if ooo is not None and not ooo:
                ep.r_ooo = None
            if up_to > last:
                self._gap(ep)
        ep.r_last = up_to if up_to > last else last
