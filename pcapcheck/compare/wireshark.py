"""Cross-check pcapcheck's TCP analysis against Wireshark's, frame by frame.

:func:`crosscheck` runs pcapcheck (:func:`pcapcheck.pipeline.analyze_file` with
``marks=True``, the default decoder) and Wireshark (one ``tshark`` run through pyshark,
:func:`pcapcheck.capture.tshark.run_tshark` with its TCP analysis on) over the same capture and
compares:

* the **grouping of frames into connections**: pcapcheck's connection ids (1-based) and
  Wireshark's ``tcp.stream`` (0-based) compared as partitions of the frames both tools
  decoded as TCP; a frame only one of them decoded as TCP is a ``connection``
  disagreement as well;
* per frame, the **analysis flags** of :data:`KINDS` (pcapcheck's ``result.marks``,
  see :data:`pcapcheck.tcp.detectors.MARK_OF_RULE`, against Wireshark's
  ``tcp.analysis.*`` fields, :data:`WIRESHARK_FIELDS`).

Every disagreement is checked against :data:`KNOWN_DIFFERENCES`: documented, explained
differences of definition, or cases where Wireshark is wrong (each entry says which and
why). A disagreement no entry explains is a real one: a bug in pcapcheck's engine or in
this comparison, to be looked at.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcapcheck.model import ACK, FIN, LISTEN, RST, SYN, Event, Segment
from pcapcheck.tcp.connection import seq_diff

__all__ = [
    "CONNECTION",
    "KINDS",
    "KNOWN_DIFFERENCES",
    "WIRESHARK_FIELDS",
    "CrossReport",
    "Disagreement",
    "KindCount",
    "KnownDifference",
    "compare",
    "crosscheck",
    "render_crosscheck",
]

#: The per-frame flags compared, named after Wireshark's ``tcp.analysis.*`` fields.
KINDS = (
    "retransmission",
    "out_of_order",
    "duplicate_ack",
    "zero_window",
    "lost_segment",
    "ack_lost_segment",
    "keep_alive",
    "keep_alive_ack",
    "reused_ports",
    "zero_window_probe",
)

#: The kind of a disagreement about which connection a frame belongs to.
CONNECTION = "connection"

#: Wireshark's fields for each kind (any of them set means the kind is set).
WIRESHARK_FIELDS: dict[str, tuple[str, ...]] = {
    "retransmission": (
        "tcp.analysis.retransmission",
        "tcp.analysis.fast_retransmission",
        "tcp.analysis.spurious_retransmission",
    ),
    "out_of_order": ("tcp.analysis.out_of_order",),
    "duplicate_ack": ("tcp.analysis.duplicate_ack",),
    "zero_window": ("tcp.analysis.zero_window",),
    "lost_segment": ("tcp.analysis.lost_segment",),
    "ack_lost_segment": ("tcp.analysis.ack_lost_segment",),
    "keep_alive": ("tcp.analysis.keep_alive",),
    "keep_alive_ack": ("tcp.analysis.keep_alive_ack",),
    "reused_ports": ("tcp.analysis.reused_ports",),
    "zero_window_probe": ("tcp.analysis.zero_window_probe",),
}

_AGG = "\x1f"


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Disagreement:
    """One frame where the two tools disagree.

    ``frame``: 1-based, the frame number both tools give it (pcapcheck's reader numbers
    frames as Wireshark does, records without a packet included);
    ``kind``: one of :data:`KINDS` or :data:`CONNECTION`;
    ``pcapcheck`` / ``wireshark``: each tool's verdict in words (``"set"``, ``"not
    set"``, ``"connection 2 (frames 11-20)"``, ``"tcp.stream 1"``...); ``known``: the
    name of the :class:`KnownDifference` that explains it (None: unexplained);
    ``note``: what the explanation found (e.g. the frame of the earlier cause).
    """

    frame: int
    kind: str
    pcapcheck: str
    wireshark: str
    known: str | None = None
    note: str = ""

    @property
    def explained(self) -> bool:
        return self.known is not None


@dataclass
class KindCount:
    """Frames compared for one kind: ``both`` flagged by both tools, ``neither``,
    ``pcapcheck_only``, ``wireshark_only``; ``explained``: how many of the disagreements
    a known difference explains.

    For :data:`CONNECTION`: ``both`` counts frames grouped alike, ``differ`` frames both
    decoded but grouped differently, ``pcapcheck_only`` / ``wireshark_only`` frames only
    one tool decoded as TCP (``neither`` stays 0)."""

    both: int = 0
    neither: int = 0
    pcapcheck_only: int = 0
    wireshark_only: int = 0
    explained: int = 0
    differ: int = 0

    @property
    def agree(self) -> int:
        return self.both + self.neither

    @property
    def frames(self) -> int:
        return self.both + self.neither + self.pcapcheck_only + self.wireshark_only


@dataclass
class CrossReport:
    """The comparison of one capture.

    ``frames``: frames in the file as pcapcheck's reader numbers them (as Wireshark
    does, records without a packet included; up to the damage in a cut file);
    ``tcp_frames``: frames both tools decoded as the same TCP segment (the ones whose
    flags are compared);
    ``connections`` / ``streams``: how many connections pcapcheck and Wireshark made;
    ``counts``: a :class:`KindCount` per kind of :data:`KINDS` and for
    :data:`CONNECTION` (frames compared for grouping: ``both`` = grouped alike);
    ``disagreements``: in frame order; ``wireshark_version``: when known.
    """

    path: str
    frames: int = 0
    tcp_frames: int = 0
    connections: int = 0
    streams: int = 0
    counts: dict[str, KindCount] = field(default_factory=dict)
    disagreements: list[Disagreement] = field(default_factory=list)
    wireshark_version: str | None = None

    @property
    def unexplained(self) -> list[Disagreement]:
        """The disagreements no known difference explains."""
        return [d for d in self.disagreements if not d.explained]

    @property
    def agrees(self) -> bool:
        """True when every disagreement is a known, explained difference."""
        return not self.unexplained


# ----------------------------------------------------------------------------- context
@dataclass
class FrameView:
    """What both tools say about one frame (numbered as both tools number it).

    ``seg``: pcapcheck's decoded segment (None: not TCP for pcapcheck); ``conn``:
    pcapcheck's connection id; ``stream``: Wireshark's ``tcp.stream`` (None: not TCP for
    Wireshark); ``ws_id``: Wireshark's (src port, dst port, seq, ack) for the frame;
    ``ws``: the :data:`KINDS` Wireshark set; ``ws_all``: every ``tcp.analysis`` flag
    Wireshark set (short names, e.g. ``"window_update"``); ``pc``: pcapcheck's marks;
    ``events``: pcapcheck's events at the frame; ``ws_row``: Wireshark's fields (raw
    text, see :data:`pcapcheck.capture.tshark.DECODE_FIELDS`) of a frame pcapcheck decoded as TCP
    and Wireshark did not, else empty.
    """

    frame: int
    seg: Segment | None = None
    conn: int | None = None
    stream: int | None = None
    ws_id: tuple[int | None, ...] | None = None
    ws: set[str] = field(default_factory=set)
    ws_all: set[str] = field(default_factory=set)
    pc: set[str] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    ws_row: dict[str, str] = field(default_factory=dict)

    def rules(self) -> set[str]:
        return {e.rule for e in self.events}


@dataclass
class Context:
    """Everything a :class:`KnownDifference` predicate may look at.

    ``frames``: frame → :class:`FrameView`; ``conn_frames``: pcapcheck connection id →
    its frames in order; ``result``: pcapcheck's :class:`~pcapcheck.results.FileResult`
    (``format``, ``truncated``, ``packets``, ``events``); ``ws_format``: the container
    format Wireshark recognised; ``ws_records``: how many frames Wireshark read;
    ``roots_by_conn`` / ``roots_by_stream``: frames of ``connection`` disagreements
    (decoding or grouping), by pcapcheck connection and by Wireshark stream.
    """

    path: str
    frames: dict[int, FrameView]
    conn_frames: dict[int, list[int]]
    result: Any
    ws_format: str | None = None
    ws_records: int = 0
    roots_by_conn: dict[int, list[int]] = field(default_factory=dict)
    roots_by_stream: dict[int, list[int]] = field(default_factory=dict)
    _conn_rules: dict[int | None, set[str]] | None = None

    # -- helpers for predicates ---------------------------------------------------
    def earlier(self, view: FrameView, same_sender: bool) -> list[tuple[FrameView, Segment]]:
        """The frames of ``view``'s pcapcheck connection before it, sent by the same
        endpoint (``same_sender``) or by its peer, each with its segment."""
        seg = view.seg
        if seg is None or view.conn is None:
            return []
        me = (seg.src, seg.sport)
        out = []
        for f in self.conn_frames.get(view.conn, []):
            if f >= view.frame:
                break
            other = self.frames[f].seg
            if other is None:
                continue
            if ((other.src, other.sport) == me) == same_sender:
                out.append((self.frames[f], other))
        return out

    def connection_events(self, view: FrameView) -> set[str]:
        """The rules of every pcapcheck event of ``view``'s connection."""
        if self._conn_rules is None:
            self._conn_rules = defaultdict(set)
            for e in self.result.events:
                self._conn_rules[e.connection].add(e.rule)
        return self._conn_rules.get(view.conn, set())


def _seq_len(seg: Segment) -> int:
    """Sequence space the segment occupies (SYN and FIN count one each)."""
    return seg.payload_len + (1 if seg.flags & SYN else 0) + (1 if seg.flags & FIN else 0)


def _covered(start: int, end: int, ranges: list[tuple[int, int]]) -> bool:
    """True when every sequence number in [start, end) (absolute, mod 2^32) lies in
    one of ``ranges`` (absolute ``(seq, seq+len)`` pairs)."""
    size = seq_diff(end, start)
    if size <= 0:
        return True
    spans = []
    for a, b in ranges:
        lo, hi = seq_diff(a, start), seq_diff(b, start)
        lo, hi = max(lo, 0), min(hi, size)
        if hi > lo:
            spans.append((lo, hi))
    spans.sort()
    at = 0
    for lo, hi in spans:
        if lo > at:
            return False
        at = max(at, hi)
    return at >= size


# ----------------------------------------------------------------------------- known
@dataclass(frozen=True)
class KnownDifference:
    """An explained difference between pcapcheck and Wireshark.

    ``name``: short id; ``kinds``: the kinds it applies to; ``side``: which tool sets
    the flag the other does not (``"wireshark"``, ``"pcapcheck"``, ``"either"``);
    ``applies(ctx, view, kind)``: the predicate, given the :class:`Context`, the
    :class:`FrameView` and the kind (it may return a short note string instead of
    True); ``verdict``: ``"wireshark-wrong"`` (Wireshark contradicts RFC 9293 or its
    own documented definition), ``"definition"`` (both are consistent, with different
    definitions or knowledge) or ``"input"`` (the tools read different packets);
    ``explanation``: the reason, for people.
    """

    name: str
    kinds: tuple[str, ...]
    side: str
    applies: Callable[[Context, FrameView, str], Any]
    verdict: str
    explanation: str


def _is_capture_duplicate(ctx: Context, v: FrameView, kind: str) -> Any:
    return "CP008" in v.rules()


def _simultaneous_open_synack(ctx: Context, v: FrameView, kind: str) -> Any:
    seg = v.seg
    if seg is None or seg.flags & (SYN | ACK) != SYN | ACK:
        return False
    if "HS010" not in ctx.connection_events(v):
        return False
    return any(
        ps.flags & SYN and not ps.flags & ACK and ps.seq == seg.seq
        for _p, ps in ctx.earlier(v, same_sender=True)
    )


def _first_seen_but_acked(ctx: Context, v: FrameView, kind: str) -> Any:
    """Bytes captured for the first time, already acknowledged by the peer."""
    seg = v.seg
    if seg is None or not seg.payload_len:
        return False
    end = (seg.seq + seg.payload_len) & 0xFFFFFFFF
    for _p, ps in ctx.earlier(v, same_sender=True):
        a, b = ps.seq, (ps.seq + _seq_len(ps)) & 0xFFFFFFFF
        if seq_diff(b, seg.seq) > 0 and seq_diff(end, a) > 0:
            return False  # overlaps bytes captured before: a real retransmission
    for p, ps in ctx.earlier(v, same_sender=False):
        if ps.flags & ACK and seq_diff(ps.ack, end) >= 0:
            gap = round(seg.ts - ps.ts, 6)
            why = "SQ001" if "SQ001" in p.rules() else f"{gap} s earlier"
            return f"acknowledged by frame {p.frame} ({why})"
    return False


def _after_out_of_window_rst(ctx: Context, v: FrameView, kind: str) -> Any:
    seg = v.seg
    if seg is None:
        return False
    for p, ps in ctx.earlier(v, same_sender=True):
        if not ps.flags & RST or seq_diff(ps.seq, seg.seq) <= 0:
            continue
        if "RS003" in p.rules():
            return f"RST of frame {p.frame} (RS003)"
        if _is_dropped_answer(ctx, p, ps):
            return f"RST of frame {p.frame}, dropped by its receiver"
    return False


def _is_dropped_answer(ctx: Context, p: FrameView, ps: Segment) -> bool:
    """The RST ``ps`` (frame ``p``) has the form of the RFC's answer to an unacceptable
    segment of its receiver (no ACK, its seq that segment's SEG.ACK: RFC 9293
    §3.10.7.3-4) and pcapcheck records no state change at it (the receiver went on)."""
    if ps.flags & ACK or not any(
        qs.flags & ACK and qs.ack == ps.seq for _q, qs in ctx.earlier(p, same_sender=False)
    ):
        return False
    return not any(t["frame"] == p.frame for t in _transitions(ctx, p.conn))


def _transitions(ctx: Context, conn: int | None) -> list[dict[str, Any]]:
    """Both endpoints' state transitions of pcapcheck's connection ``conn`` (looked up
    by its id), as its summary has them."""
    for summary in ctx.result.connections:
        if summary["id"] == conn:
            return [t for side in summary["transitions"].values() for t in side]
    return []


def _repeats_marked_unseen_ack(ctx: Context, v: FrameView, kind: str) -> Any:
    """The sender's earlier segment with the same acknowledgment number was marked
    'ACKed unseen segment' by Wireshark, and the bytes it acknowledges are still not in
    the capture."""
    seg = v.seg
    if seg is None or not seg.flags & ACK:
        return False
    if any(
        seq_diff((qs.seq + _seq_len(qs)) & 0xFFFFFFFF, seg.ack) >= 0
        for _q, qs in ctx.earlier(v, same_sender=False)
    ):
        return False  # the peer's bytes up to the acknowledgment are in the capture now
    for p, ps in ctx.earlier(v, same_sender=True):
        if "ack_lost_segment" in p.ws and ps.flags & ACK and ps.ack == seg.ack:
            return f"the same acknowledgment as frame {p.frame}"
    return False


def _after_ignored_invalid_flags(ctx: Context, v: FrameView, kind: str) -> Any:
    seg = v.seg
    if seg is None:
        return False
    for p, ps in ctx.earlier(v, same_sender=True):
        if "FL001" in p.rules() and ps.flags & (SYN | FIN):
            a = ps.seq
            b = (a + _seq_len(ps)) & 0xFFFFFFFF
            if seq_diff(seg.seq, a) >= 0 and seq_diff(b, seg.seq) > 0:
                return f"frame {p.frame} (FL001)"
    return False


def _peer_never_seen(ctx: Context, v: FrameView, kind: str) -> Any:
    return v.seg is not None and not list(ctx.earlier(v, same_sender=False))


def _acked_bytes_all_captured(ctx: Context, v: FrameView, kind: str) -> Any:
    """Every sequence number this ACK newly acknowledges was carried by a captured
    segment of the peer, or it acknowledges nothing new."""
    seg = v.seg
    if seg is None or not seg.flags & ACK:
        return False
    prev = None
    for p, ps in ctx.earlier(v, same_sender=True):
        if ps.flags & ACK and (prev is None or seq_diff(ps.ack, prev) > 0):
            prev, at = ps.ack, p.frame
    if prev is None:
        return False
    if seq_diff(seg.ack, prev) <= 0:
        return f"nothing beyond frame {at}'s acknowledgment"
    ranges = [
        (ps.seq, (ps.seq + _seq_len(ps)) & 0xFFFFFFFF)
        for _p, ps in ctx.earlier(v, same_sender=False)
    ]
    if seq_diff(seg.ack, prev) > 0 and _covered(prev, seg.ack, ranges):
        return f"bytes {prev}..{seg.ack} were captured"
    return False


def _wireshark_marks_next_ack(ctx: Context, v: FrameView, kind: str) -> Any:
    """This ACK is the first to acknowledge bytes the capture never showed (pcapcheck's
    CP002 is at this frame), and Wireshark marks the sender's next ACK instead."""
    seg = v.seg
    if seg is None or v.conn is None or not seg.flags & ACK or "CP002" not in v.rules():
        return False
    me = (seg.src, seg.sport)
    for f in ctx.conn_frames.get(v.conn, []):
        nxt = ctx.frames[f]
        if f <= v.frame or nxt.seg is None or (nxt.seg.src, nxt.seg.sport) != me:
            continue
        if not nxt.seg.flags & ACK:
            continue
        if "ack_lost_segment" in nxt.ws and "ack_lost_segment" not in nxt.pc:
            return f"Wireshark marks frame {f}"
        return False
    return False


def _after_accepted_probe(ctx: Context, v: FrameView, kind: str) -> Any:
    """The segment starts one past an earlier one-byte zero-window probe of its sender
    (pcapcheck's mark) that the peer acknowledged before it."""
    seg = v.seg
    if seg is None:
        return False
    for p, ps in ctx.earlier(v, same_sender=True):
        if (
            "zero_window_probe" in p.pc
            and ps.payload_len == 1
            and (ps.seq + 1) & 0xFFFFFFFF == seg.seq
        ):
            return f"probe of frame {p.frame}"
    return False


def _after_stray_segment(ctx: Context, v: FrameView, kind: str) -> Any:
    """An earlier segment of the sender without data, SYN, FIN or RST whose sequence
    number is beyond this one's was marked 'previous segment not captured' by pcapcheck,
    while the connection has no capture loss (CP002)."""
    seg = v.seg
    if seg is None or "CP002" in ctx.connection_events(v):
        return False
    for p, ps in ctx.earlier(v, same_sender=True):
        if (
            not ps.payload_len
            and not ps.flags & (SYN | FIN | RST)
            and "lost_segment" in p.pc
            and seq_diff(ps.seq, seg.seq) > 0
        ):
            return f"frame {p.frame}"
    return False


def _synack(ctx: Context, v: FrameView, kind: str) -> Any:
    return v.seg is not None and v.seg.flags & (SYN | ACK) == SYN | ACK


def _new_synack_isn(ctx: Context, v: FrameView, kind: str) -> Any:
    """A SYN-ACK with another ISN than an earlier SYN-ACK of its sender (lost_segment),
    or a segment of the peer acknowledging into that new sequence space
    (ack_lost_segment): the listener went back to LISTEN and answered again."""
    seg = v.seg
    if seg is None:
        return False
    synacks = [
        (p, ps)
        for p, ps in ctx.earlier(v, same_sender=kind == "lost_segment")
        if ps.flags & (SYN | ACK) == SYN | ACK
    ]
    if kind == "lost_segment":
        if seg.flags & (SYN | ACK) != SYN | ACK:
            return False
        other = [p.frame for p, ps in synacks if ps.seq != seg.seq]
        back = [
            t["frame"]
            for t in _transitions(ctx, v.conn)
            if other and t["to"] == LISTEN and other[-1] < t["frame"] < v.frame
        ]  # pcapcheck saw the sender return to LISTEN in between
        if not back:
            return False
        return f"ISN of frame {other[-1]}'s SYN-ACK replaced after frame {back[0]}"
    if len({ps.seq for _p, ps in synacks}) < 2 or not seg.flags & ACK:
        return False
    p, last = synacks[-1]
    # the acknowledgment of the new SYN-ACK itself, ISN+1 (a later one is judged alone)
    return f"new ISN of frame {p.frame}" if seg.ack == (last.seq + 1) & 0xFFFFFFFF else False


def _new_conversation_at(rule: str) -> Callable[[Context, FrameView, str], Any]:
    def applies(ctx: Context, v: FrameView, kind: str) -> Any:
        return v.seg is not None and v.seg.flags & (SYN | ACK) == SYN and rule in v.rules()

    return applies


def _pcapcheck_rejected(ctx: Context, v: FrameView, kind: str) -> Any:
    if v.seg is None and v.stream is not None:
        reasons = [
            e.data.get("reason")
            for e in ctx.result.events
            if e.rule == "CP005" and e.frame == v.frame
        ]
        if reasons:
            return f"CP005: {reasons[0]}"
    return False


def _wireshark_rejected(ctx: Context, v: FrameView, kind: str) -> Any:
    row = v.ws_row
    if v.seg is None or v.stream is not None or not row:
        return False
    flagged = [
        n
        for n in (
            "_ws.malformed",
            "_ws.short",
            "ip.bogus_header_length",
            "ip.bogus_ip_length",
            "tcp.bogus_header_length",
        )
        if row.get(n)
    ]
    if flagged or (row.get("frame.protocols", "").split(":")[0] in ("data", "user_dlt")):
        msgs = [m for m in row.get("_ws.expert.message", "").split(_AGG) if m]
        return "; ".join(msgs[:2]) or ", ".join(flagged) or row.get("frame.protocols", "")
    return False


def _formats_differ(ctx: Context, v: FrameView, kind: str) -> Any:
    if ctx.ws_format and ctx.result.format and ctx.ws_format != ctx.result.format:
        return f"pcapcheck reads {ctx.result.format}, Wireshark {ctx.ws_format}"
    return False


def _after_close(ctx: Context, v: FrameView, kind: str) -> Any:
    if v.conn is None:
        return False
    for f in ctx.conn_frames.get(v.conn, []):
        if f > v.frame:
            break
        if "CL009" in ctx.frames[f].rules():
            return f"CL009 at frame {f}"
    return False


def _tunnel_identity(ctx: Context, v: FrameView, kind: str) -> Any:
    """A tunnelled segment that starts a pcapcheck connection Wireshark merged with
    another one: the same inner 4-tuple in another tunnel (issue 24). Its flags too, at
    a grouping difference's root or at the first frame of the connection when
    Wireshark's stream of that frame holds another pcapcheck connection's frames (two
    tunnels interleaved: Wireshark takes the second tunnel's SYN as a reuse of the
    4-tuple, and its stream from there on holds both tunnels)."""
    seg = v.seg
    if seg is None or not seg.encapsulation or v.conn is None:
        return False
    # the grouping itself (roots are known only after it), then the flags at its root
    if kind != CONNECTION and v.frame not in ctx.roots_by_conn.get(v.conn, []):
        first = ctx.conn_frames.get(v.conn, [None])[0]
        if v.frame != first or v.stream is None:
            return False
        if not any(
            w.stream == v.stream and w.conn is not None and w.conn != v.conn
            for w in ctx.frames.values()
        ):
            return False
    return "the same inner 4-tuple in another tunnel"


def _after_root(ctx: Context, v: FrameView, kind: str) -> Any:
    roots = []
    if v.conn is not None:
        roots += [f for f in ctx.roots_by_conn.get(v.conn, []) if f < v.frame]
    if v.stream is not None:
        roots += [f for f in ctx.roots_by_stream.get(v.stream, []) if f < v.frame]
    return f"after frame {min(roots)}" if roots else False


#: The explained differences, most specific first. Kinds named here are compared only
#: on frames both tools decoded as the same TCP segment, except CONNECTION.
KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    KnownDifference(
        "capture-duplicate",
        KINDS,
        "wireshark",
        _is_capture_duplicate,
        "definition",
        "The capture holds the same packet twice (two interfaces, merged captures): "
        "pcapcheck recognises the copy (same IP ID or TCP timestamps, seq, ack, flags, "
        "length, window) and reports CP008 instead of analysing it. Wireshark has no "
        "notion of a capture duplicate: the copy's sequence number is below the next "
        "expected one, so it is a (suspected) retransmission, or a duplicate ACK.",
    ),
    KnownDifference(
        "simultaneous-open-synack",
        ("retransmission",),
        "wireshark",
        _simultaneous_open_synack,
        "wireshark-wrong",
        "Simultaneous open (RFC 9293 §3.5, figure 7): each side answers the other's SYN "
        "with a SYN,ACK that carries its own ISN again. Wireshark sees a SYN whose "
        "sequence number is below the next expected one and calls it a retransmission; "
        "nothing was sent twice (pcapcheck: HS010).",
    ),
    KnownDifference(
        "acked-before-seen",
        ("retransmission",),
        "wireshark",
        _first_seen_but_acked,
        "wireshark-wrong",
        "Bytes captured for the first time that the peer had already acknowledged: "
        "either the capture stored the ACK a few microseconds before the data "
        "(reordering by the capture, within pcapcheck's reorder window) or the peer "
        "acknowledged data not yet sent (SQ001). Wireshark's spurious-retransmission "
        "test is 'already acknowledged', so it flags a retransmission of bytes never "
        "seen before.",
    ),
    KnownDifference(
        "after-out-of-window-rst",
        ("retransmission", "out_of_order"),
        "wireshark",
        _after_out_of_window_rst,
        "wireshark-wrong",
        "Wireshark moves the sender's next expected sequence number to the sequence "
        "number of an RST even when the RST is outside the receive window and must be "
        "ignored (RFC 9293 §3.10.7.4, RFC 5961 §3; pcapcheck: RS003), or when its "
        "receiver went on as if it had not arrived (an RST of the form of the RFC's "
        "answer to an unacceptable segment, no ACK and seq = its SEG.ACK, at which "
        "pcapcheck records no state change: the HS004 answer a client dropped); every "
        "later segment below it looks like a retransmission.",
    ),
    KnownDifference(
        "after-ignored-invalid-flags",
        ("retransmission", "out_of_order"),
        "wireshark",
        _after_ignored_invalid_flags,
        "definition",
        "A segment with an impossible flag combination (FL001, e.g. FIN+PSH+URG "
        "without ACK, SYN+FIN) changes no state in pcapcheck; Wireshark's sequence "
        "analysis counts its SYN/FIN, so the sender's real FIN that follows looks like "
        "a retransmission.",
    ),
    KnownDifference(
        "peer-direction-unseen",
        ("ack_lost_segment",),
        "pcapcheck",
        _peer_never_seen,
        "definition",
        "No segment of the peer was captured yet (one-sided capture, CP007): Wireshark "
        "has no 'next expected acknowledgement number' for that direction (User's "
        "Guide, TCP ACKed unseen segment: 'set when the expected next acknowledgement "
        "number is set for the reverse direction'). pcapcheck knows the peer's ISN "
        "from the SYN/SYN-ACK this side answered and flags the acknowledgment of bytes "
        "the capture never showed.",
    ),
    KnownDifference(
        "stale-next-expected-ack",
        ("ack_lost_segment",),
        "wireshark",
        _acked_bytes_all_captured,
        "wireshark-wrong",
        "Every byte this ACK newly acknowledges was captured, or it acknowledges "
        "nothing new. Wireshark only advances its 'next expected acknowledgement "
        "number' with segments that carry no analysis flag, so after a gap ('previous "
        "segment not captured') it lags behind and the next ACK of captured data, or "
        "the same acknowledgment again, is flagged as ACKing an unseen segment a "
        "second time.",
    ),
    KnownDifference(
        "ack-unseen-marked-late",
        ("ack_lost_segment",),
        "pcapcheck",
        _wireshark_marks_next_ack,
        "wireshark-wrong",
        "This ACK is the first to acknowledge bytes that are not in the capture: a "
        "receiver acknowledges only what it received (RFC 9293 §3.10.7.4), so the "
        "capture lost them here (pcapcheck: CP002 at this frame), and it meets the User's "
        "Guide definition of 'ACKed unseen segment' (the acknowledgement number is above "
        "the next expected one of the reverse direction). Wireshark leaves this ACK "
        "unflagged and flags the receiver's next ACK instead (seen with Wireshark 4.0 on a "
        "one-way bulk transfer, sample loopback/bpf_loss.pcap): its test compares with a "
        "'max seq to be acked' that lags after an earlier gap and is guarded by a counter "
        "meant to avoid repeating the indication for one lost segment, so it reports the "
        "hole one ACK late (that next ACK is then stale-next-expected-ack).",
    ),
    KnownDifference(
        "ack-unseen-repeated",
        ("ack_lost_segment",),
        "pcapcheck",
        _repeats_marked_unseen_ack,
        "wireshark-wrong",
        "The sender acknowledges the same unseen bytes again, still not captured (e.g. "
        "an unacceptable handshake ACK followed by data with the same ACK field, HS004): "
        "it meets the User's "
        "Guide definition of 'ACKed unseen segment' as the first did, and pcapcheck "
        "marks every such segment. Wireshark marks the first only (a counter meant to "
        "indicate one lost segment once).",
    ),
    KnownDifference(
        "accepted-zero-window-probe",
        ("lost_segment",),
        "wireshark",
        _after_accepted_probe,
        "wireshark-wrong",
        "The byte of a one-byte zero-window probe was accepted: the receiver "
        "acknowledged it, or the sender went on past it. Wireshark never counts a "
        "probe's byte in the sender's next expected sequence number, so the sender's "
        "next segment, one past the probe, follows a 'segment not captured'. pcapcheck "
        "counts the byte once accepted (RFC 9293 §3.8.6.1: a probe that finds the "
        "window open is data like any other).",
    ),
    KnownDifference(
        "after-stray-segment",
        ("retransmission",),
        "wireshark",
        _after_stray_segment,
        "definition",
        "An earlier segment without data of this sender was far ahead of its next "
        "sequence number, and nothing the peer acknowledged covers the space it skips "
        "(a late segment of an earlier connection on the 4-tuple, a scan): pcapcheck "
        "does not take its sequence number as the sender's (no capture loss, CP002, is "
        "inferred from it). Wireshark moves its next expected sequence number there, "
        "so every later segment below it looks like a retransmission.",
    ),
    KnownDifference(
        "synack-reused-ports",
        ("reused_ports",),
        "wireshark",
        _synack,
        "definition",
        "Wireshark's code also flags a SYN-ACK whose sequence number differs from the "
        "first one it saw from that side (e.g. an RST that had to be ignored, RS005) as "
        "'ports reused'. The User's Guide definition, which pcapcheck follows, is a SYN "
        "without ACK on a 4-tuple that already had a connection.",
    ),
    KnownDifference(
        "synack-new-isn",
        ("lost_segment", "ack_lost_segment"),
        "wireshark",
        _new_synack_isn,
        "wireshark-wrong",
        "A listener that returned to LISTEN (the client's RST answered an unacceptable "
        "SYN-ACK, RFC 9293 §3.10.7.3 and figure 8) answers the SYN again with a new "
        "ISN: a new sequence space, which pcapcheck starts afresh. Wireshark marks the "
        "new SYN-ACK 'ports reused' but keeps the first SYN-ACK's next expected "
        "sequence number, so the new SYN-ACK follows a 'segment not captured' and the "
        "client's acknowledgment of it ACKs an 'unseen segment'.",
    ),
    KnownDifference(
        "syn-isn-changed",
        (CONNECTION, "reused_ports"),
        "wireshark",
        _new_conversation_at("HS009"),
        "definition",
        "A SYN repeating a pending SYN (no handshake completed since) with a different "
        "ISN: pcapcheck keeps it in the same connection and reports the changed ISN "
        "(HS009); Wireshark starts a new conversation (tcp.stream) with 'ports reused' "
        "at any SYN without ACK whose sequence number differs from the conversation's "
        "first SYN. Both are consistent; pcapcheck's view lets HS009 point at the "
        "conflict.",
    ),
    KnownDifference(
        "syn-with-invalid-flags",
        (CONNECTION, "reused_ports"),
        "wireshark",
        _new_conversation_at("FL001"),
        "definition",
        "A SYN with an impossible flag combination (SYN+FIN, FL001) is ignored by "
        "pcapcheck; Wireshark starts a new conversation (tcp.stream, 'ports reused') at "
        "any SYN without ACK whose sequence number differs from the first SYN's.",
    ),
    KnownDifference(
        "formats-differ",
        (CONNECTION,),
        "either",
        _formats_differ,
        "input",
        "The two readers identify the container format differently (Wireshark's "
        "libpcap reader tries the 'modified' pcap variants when the first records' "
        "headers look implausible) and so read different packets.",
    ),
    KnownDifference(
        "malformed-for-pcapcheck",
        (CONNECTION,),
        "wireshark",
        _pcapcheck_rejected,
        "input",
        "pcapcheck does not analyse a packet whose headers contradict each other or "
        "the captured bytes (CP005); Wireshark flags the problem as expert info but "
        "still analyses the TCP header it could read.",
    ),
    KnownDifference(
        "malformed-for-wireshark",
        (CONNECTION,),
        "pcapcheck",
        _wireshark_rejected,
        "input",
        "Wireshark did not dissect this packet as TCP (it marked it malformed or "
        "could not dissect the link layer) while pcapcheck decoded it.",
    ),
    KnownDifference(
        "after-close",
        KINDS,
        "either",
        _after_close,
        "definition",
        "pcapcheck stops the sequence analysis of a connection once it has closed (both "
        "FINs acknowledged, or an RST): the first later segment is reported once (CL009) "
        "and no later segment changes its state, so their retransmissions are not "
        "marked; Wireshark's analysis of the 4-tuple goes on.",
    ),
    KnownDifference(
        "tunnel-identity",
        (*KINDS, CONNECTION),
        "either",
        _tunnel_identity,
        "definition",
        "pcapcheck keys a connection by its tunnel too (outer addresses, VXLAN VNI, "
        "GTP-U TEIDs paired across the two directions, ...), as Zeek does: the same "
        "inner 4-tuple in two tunnels is two connections. Wireshark's tcp.stream keys on "
        "the inner addresses and ports only, so it merges them and marks the second "
        "connection's SYN as a retransmission (the same ISN) or as a reuse of the ports "
        "(another ISN: its new stream then takes both tunnels' later frames).",
    ),
    KnownDifference(
        "after-connection-difference",
        KINDS,
        "either",
        _after_root,
        "input",
        "An earlier frame of this connection was decoded or grouped differently by the "
        "two tools (see the connection disagreement at that frame): from there on "
        "their sequence analyses of the connection rest on different segments.",
    ),
)

_KNOWN_BY_NAME = {k.name: k for k in KNOWN_DIFFERENCES}


def _explain(
    ctx: Context, v: FrameView, kind: str, pc_set: bool, ws_set: bool
) -> tuple[str | None, str]:
    side = "pcapcheck" if pc_set else "wireshark"
    for known in KNOWN_DIFFERENCES:
        if kind not in known.kinds or known.side not in (side, "either"):
            continue
        hit = known.applies(ctx, v, kind)
        if hit:
            return known.name, hit if isinstance(hit, str) else ""
    return None, ""


# ----------------------------------------------------------------------------- compare
def _ws_rows(run) -> dict[int, dict[str, str]]:
    """Wireshark's rows by frame number (the same numbers as pcapcheck's: a record
    without a packet, such as a pcapng custom block, is a frame for both; it has no
    TCP fields, so it is compared as a frame neither tool decoded as TCP)."""
    return {int(row["frame.number"]): row for row in run.rows()}


def _first(text: str) -> str:
    return text.split(_AGG, 1)[0]


def _num(text: str) -> int | None:
    text = _first(text)
    return int(text, 0) if text else None


def _span(frames: list[int]) -> str:
    return f"frame {frames[0]}" if len(frames) == 1 else f"frames {frames[0]}-{frames[-1]}"


def compare(
    result,
    run,
    segments: dict[int, Segment],
    path: str = "",
    ws_format: str | None = None,
    frames: int | None = None,
) -> CrossReport:
    """Compare pcapcheck's ``result`` (a FileResult made with ``marks=True``) with a
    tshark ``run`` (:class:`pcapcheck.capture.tshark.TsharkRun` with ``analysis=True``).

    ``segments``: pcapcheck's decoded segments by frame (what the predicates look at);
    ``ws_format``: the container format Wireshark recognised; ``frames``: how many
    frames pcapcheck's reader numbered (``CaptureReader.records``: records without a
    packet included; default ``result.packets``). Returns the :class:`CrossReport` (the
    pure comparison behind :func:`crosscheck`)."""
    read = result.packets if frames is None else frames
    report = CrossReport(path=path or result.path, frames=read)
    rows = _ws_rows(run)
    views: dict[int, FrameView] = {}

    def view(f: int) -> FrameView:
        if f not in views:
            views[f] = FrameView(f)
        return views[f]

    marks = result.marks or {}
    for f, conn in (result.frame_conn or {}).items():
        v = view(f)
        v.conn = conn
        v.seg = segments.get(f)
        v.pc = set(marks.get(f, ())) & set(KINDS)
    for ev in result.events:
        if ev.frame is not None:
            view(ev.frame).events.append(ev)
    for f, row in rows.items():
        stream = row.get("tcp.stream", "")
        seq = row.get("tcp.seq_raw", "")
        if not stream or not seq:
            if f in views:
                views[f].ws_row = row  # why Wireshark has no TCP segment here
            continue
        v = view(f)
        v.stream = int(_first(stream))
        v.ws_id = tuple(
            _num(row.get(n, ""))
            for n in ("tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw")
        )
        v.ws = {k for k, names in WIRESHARK_FIELDS.items() if any(row.get(n) for n in names)}
        v.ws_all = {
            n.rsplit(".", 1)[1] for n in row if n.startswith("tcp.analysis.") and row.get(n)
        }
    conn_frames: dict[int, list[int]] = defaultdict(list)
    for f in sorted(views):
        conn = views[f].conn
        if conn is not None:
            conn_frames[conn].append(f)
    ctx = Context(report.path, views, dict(conn_frames), result, ws_format, ws_records=len(rows))
    report.connections = len(conn_frames)
    report.streams = len({v.stream for v in views.values() if v.stream is not None})
    disagreements: list[Disagreement] = []
    counts = {k: KindCount() for k in (CONNECTION,) + KINDS}

    # -- which frames are TCP, and the same segment, for both -----------------------
    common: list[tuple[int, int, int]] = []  # (frame, connection, tcp.stream)
    roots: list[int] = []
    for f in sorted(views):
        v = views[f]
        conn, ws_stream = v.conn, v.stream
        pc_tcp, ws_tcp = conn is not None, ws_stream is not None
        if not pc_tcp and not ws_tcp:
            continue
        if conn is not None and ws_stream is not None:
            seg = v.seg
            mine = (seg.sport, seg.dport, seg.seq, seg.ack) if seg is not None else None
            if mine == v.ws_id:
                common.append((f, conn, ws_stream))
                continue
            verdicts = (f"connection {v.conn}: {mine}", f"tcp.stream {v.stream}: {v.ws_id}")
        elif pc_tcp:
            verdicts = (
                f"connection {v.conn}",
                "not a TCP segment" if f <= len(rows) else "no such frame",
            )
        else:
            verdicts = (
                "not decoded as TCP" if f <= read else "no such frame",
                f"tcp.stream {v.stream}",
            )
        roots.append(f)
        counts[CONNECTION].pcapcheck_only += pc_tcp and not ws_tcp
        counts[CONNECTION].wireshark_only += ws_tcp and not pc_tcp
        name, note = _explain(ctx, v, CONNECTION, pc_tcp and not ws_tcp, ws_tcp)
        disagreements.append(Disagreement(f, CONNECTION, *verdicts, name, note))

    # -- grouping: partitions of the common frames ---------------------------------
    by_conn: dict[int, list[int]] = defaultdict(list)
    by_stream: dict[int, list[int]] = defaultdict(list)
    pairs: dict[tuple[int, int], list[int]] = defaultdict(list)
    for f, c, st in common:
        by_conn[c].append(f)
        by_stream[st].append(f)
        pairs[(c, st)].append(f)
    streams_of: dict[int, set[int]] = defaultdict(set)
    conns_of: dict[int, set[int]] = defaultdict(set)
    for c, st in pairs:
        streams_of[c].add(st)
        conns_of[st].add(c)
    for (c, st), group in sorted(pairs.items(), key=lambda item: item[1][0]):
        if len(streams_of[c]) == 1 and len(conns_of[st]) == 1:
            counts[CONNECTION].both += len(group)  # the same set of frames
            continue
        counts[CONNECTION].differ += len(group)
        # one disagreement per (connection, stream) pair, at its first frame, unless that
        # frame starts both groups (the split is then reported at a later pair)
        f = group[0]
        a, b = by_conn[c], by_stream[st]
        if f == a[0] and f == b[0]:
            continue
        roots.append(f)
        pc_splits = f == a[0]  # pcapcheck starts a new connection here
        name, note = _explain(ctx, views[f], CONNECTION, pc_splits, not pc_splits)
        disagreements.append(
            Disagreement(
                f,
                CONNECTION,
                f"connection {c} ({_span(a)})",
                f"tcp.stream {st} ({_span(b)})",
                name,
                note,
            )
        )

    for f in roots:
        v = views[f]
        if v.conn is not None:
            ctx.roots_by_conn.setdefault(v.conn, []).append(f)
        if v.stream is not None:
            ctx.roots_by_stream.setdefault(v.stream, []).append(f)

    # -- flags on the common frames ------------------------------------------------
    for f, _conn, _stream in common:
        v = views[f]
        for kind in KINDS:
            pc_set, ws_set = kind in v.pc, kind in v.ws
            count = counts[kind]
            if pc_set and ws_set:
                count.both += 1
            elif not pc_set and not ws_set:
                count.neither += 1
            else:
                if pc_set:
                    count.pcapcheck_only += 1
                else:
                    count.wireshark_only += 1
                name, note = _explain(ctx, v, kind, pc_set, ws_set)
                count.explained += name is not None
                disagreements.append(
                    Disagreement(
                        f,
                        kind,
                        "set" if pc_set else "not set",
                        "set" if ws_set else "not set",
                        name,
                        note,
                    )
                )
    counts[CONNECTION].explained = sum(
        1 for d in disagreements if d.kind == CONNECTION and d.explained
    )
    disagreements.sort(key=lambda d: (d.frame, d.kind != CONNECTION, d.kind))
    report.tcp_frames = len(common)
    report.counts = counts
    report.disagreements = disagreements
    return report


def crosscheck(
    path: str | Path,
    *,
    catalog=None,
    params=None,
    wireshark_version: str | None = None,
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> CrossReport:
    """Run pcapcheck and Wireshark on ``path`` and compare them.

    ``catalog``: a :class:`pcapcheck.catalog.rules.Catalog` (default: the shipped rules);
    ``params``: rule parameter overrides (e.g. ``{"SQ006": {"reorder_window": 0.01}}``);
    ``wireshark_version``: stored in the report as given (see
    :func:`pcapcheck.capture.tshark.wireshark_version`); ``tunnel_ports``: the UDP
    ports of the tunnels (:func:`pcapcheck.capture.layers.tunnel_tables`; None: IANA's),
    decoded on the same ports by both tools (:func:`pcapcheck.capture.tshark.decode_as`).

    :raises pcapcheck.capture.tshark.TsharkMissing: tshark is not installed.
    :raises pcapcheck.capture.reader.CaptureError: pcapcheck or Wireshark cannot read the file
        at all (one line, starting with the path).
    """
    from pcapcheck.capture.tshark import (
        _parse_capinfos,
        decode_as,
        run_error,
        run_tshark,
        tshark_path,
    )
    from pcapcheck.catalog.rules import load_catalog
    from pcapcheck.pipeline import NativeSource, analyze_file

    tshark_path()
    catalog = catalog or load_catalog()
    active = catalog.select(None, None)
    result = analyze_file(
        path, catalog, active, params=params, marks=True, tunnel_ports=tunnel_ports
    )
    run = run_tshark(path, analysis=True, decode_as=decode_as(tunnel_ports))
    error = run_error(run) if not run.lines else None
    if error is not None:
        raise error
    source = NativeSource(path, tunnel_ports=tunnel_ports)
    segments = {f: seg for f, _ts, seg in source if isinstance(seg, Segment)}
    ws_format, _snap = _parse_capinfos(run.capinfos)
    report = compare(result, run, segments, str(path), ws_format, frames=source.reader.records)
    report.wireshark_version = wireshark_version
    return report


# ----------------------------------------------------------------------------- render
def render_crosscheck(report: CrossReport) -> str:
    """The report as text: a header, the agreement table (frames per kind where both
    tools set the flag, neither, only pcapcheck, only Wireshark, and how many one-sided
    frames a known difference explains), every disagreement with its frame and both
    verdicts, and the explanations used. Ends with a newline."""
    from tabulate import tabulate

    who = f"Wireshark {report.wireshark_version}" if report.wireshark_version else "Wireshark"
    lines = [
        f"== {report.path} ==",
        f"pcapcheck vs {who}: {report.frames} frames, {report.tcp_frames} TCP frames "
        f"compared; {report.connections} connection(s) vs {report.streams} "
        "tcp.stream(s)",
        "",
    ]
    table = []
    for kind in KINDS:
        c = report.counts.get(kind, KindCount())
        table.append([kind, c.both, c.neither, c.pcapcheck_only, c.wireshark_only, c.explained])
    lines.append(
        tabulate(
            table,
            headers=["kind", "both", "neither", "pcapcheck only", "wireshark only", "explained"],
            colalign=("left", "right", "right", "right", "right", "right"),
        )
    )
    c = report.counts.get(CONNECTION, KindCount())
    lines.append(
        f"connections: {c.both} frames grouped alike, {c.differ} grouped "
        f"differently, {c.pcapcheck_only} TCP for pcapcheck only, "
        f"{c.wireshark_only} TCP for Wireshark only ({c.explained} of the "
        "disagreements explained)"
    )
    lines.append("")
    if report.disagreements:
        rows = [
            [
                d.frame,
                d.kind,
                d.pcapcheck,
                d.wireshark,
                (f"known: {d.known}" + (f" ({d.note})" if d.note else ""))
                if d.known
                else "UNEXPLAINED",
            ]
            for d in report.disagreements
        ]
        lines.append(
            tabulate(
                rows,
                headers=["frame", "kind", "pcapcheck", "wireshark", "explanation"],
                colalign=("right", "left", "left", "left", "left"),
            )
        )
        lines.append("")
        used = sorted({d.known for d in report.disagreements if d.known})
        for name in used:
            k = _KNOWN_BY_NAME[name]
            lines.append(f"{name} [{k.verdict}]: {k.explanation}")
        if used:
            lines.append("")
    n = len(report.unexplained)
    known = len(report.disagreements) - n
    if n:
        lines.append(f"{n} unexplained disagreement(s), {known} known difference(s)")
    else:
        lines.append(
            "full agreement" + (f" apart from {known} known difference(s)" if known else "")
        )
    return "\n".join(lines) + "\n"
