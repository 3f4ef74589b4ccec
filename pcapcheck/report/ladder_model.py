"""What a ladder (sequence) diagram of one TCP connection says, decided once for every
drawing of it: the text ladder (:mod:`pcapcheck.report.ladder`) and the SVG ladder
(:mod:`pcapcheck.report.ladder_svg`) draw the same :class:`Ladder`.

A ladder is a list of entries in capture order, each a :class:`Step` or a :class:`Fold`:

* a :class:`Step` is one frame: the segment's :class:`Arrow` (client → server or back,
  with its flags, relative ``seq``/``ack`` and payload length ``len``), or no arrow for a
  frame that changes a state or has a finding but is not one of the connection's
  segments; the RFC 9293 states each side **enters** at that frame, in order (the
  connection summary's ``transitions``: a frame may change one side twice, a FIN
  piggy-backed on the ACK of the peer's FIN); the findings about that frame
  (:class:`Mark`); and the segments the capture missed that the frame proves were sent
  (:class:`Lost`, from a CP002 capture-loss finding at that frame: drawn before it);
* a :class:`Fold` stands for a long data phase: a run of more than ``2 * FOLD_KEEP + 1``
  steps that change no state, carry no SYN/FIN/RST and have no finding keeps its first
  and last :data:`FOLD_KEEP` steps as they are, and the ones between become one fold
  (count, payload bytes, frame range; the steps themselves for a drawing that can expand
  it, at most :data:`FOLD_STEPS` over all the folds of a ladder).

A connection of thousands of segments that cannot be folded (each with a finding, say)
is cut after ``max_steps`` entries (:data:`MAX_STEPS` by default): :attr:`Ladder.cut`
then says how many segments and which frames were left out.

Relative numbers follow Wireshark: each direction counts from its ISN (the summary's
``client_isn`` / ``server_isn``); when an ISN is unknown (the SYN of that direction was
not captured), from the first sequence number seen in that direction; an ``ack`` whose
peer direction has neither is shown absolute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pcapcheck.i18n import ngettext
from pcapcheck.model import ACK, FIN, RST, SYN, Segment, flags_text
from pcapcheck.report.common import endpoint_parts, finding_message

if TYPE_CHECKING:
    from pcapcheck.model import Finding
    from pcapcheck.results import FileResult

__all__ = [
    "FOLD_KEEP",
    "FOLD_STEPS",
    "MAX_STEPS",
    "Arrow",
    "Cut",
    "Fold",
    "Ladder",
    "LadderBuilder",
    "LadderError",
    "Lost",
    "Mark",
    "Step",
    "build_ladder",
    "endpoint_parts",
    "fold_words",
    "is_capture_rule",
    "trim_ladder",
]

#: Steps kept at each end of a folded data phase.
FOLD_KEEP = 3
#: Steps the folds of one ladder keep in all, for a drawing that expands them (the
#: others are counted only): a page's size stays bounded however many folds there are.
FOLD_STEPS = 500
#: Entries (steps and folds) of a ladder at most; the rest is cut with a note.
MAX_STEPS = 2000

_M32 = 1 << 32


class LadderError(ValueError):
    """A ladder cannot be drawn: unknown connection id or a width below the minimum.
    The message is one user-facing line."""


def is_capture_rule(rule: str) -> bool:
    """Whether ``rule`` reports an artefact of the capture (the ``CP`` rules: loss,
    midstream start, snaplen, duplicates...) rather than a fault of an endpoint."""
    return rule.startswith("CP")


@dataclass(frozen=True)
class Arrow:
    """One captured segment: ``from_client`` (the direction), ``flags`` as Wireshark
    names them joined by commas (``"SYN,ACK"``), relative ``seq``, relative ``ack``
    (None without the ACK flag), ``length`` (payload bytes)."""

    from_client: bool
    flags: str
    seq: int
    ack: int | None
    length: int

    @property
    def label(self) -> str:
        """``"SYN,ACK seq=0 ack=1 len=0"`` (field names as in Wireshark)."""
        parts = [self.flags, f"seq={self.seq}"]
        if self.ack is not None:
            parts.append(f"ack={self.ack}")
        parts.append(f"len={self.length}")
        return " ".join(parts)


@dataclass(frozen=True)
class Mark:
    """A finding on the ladder: ``index`` (its position in ``FileResult.findings``, the
    anchor a drawing links to), ``rule``, ``name``, ``severity``, ``message``, ``frame``
    (None for a connection-level finding) and ``capture`` (a CP rule: an artefact of
    the capture, drawn apart from the endpoints' faults)."""

    index: int
    rule: str
    name: str
    severity: str
    message: str
    frame: int | None

    @property
    def capture(self) -> bool:
        return is_capture_rule(self.rule)


@dataclass(frozen=True)
class Lost:
    """A segment the capture missed that a later frame proves was sent (CP002):
    ``from_client`` (its direction), relative sequence range ``[start, end)`` (None when
    unknown: a SYN-ACK implied by the ACK of it), ``frame`` (the frame that proves it)."""

    from_client: bool
    start: int | None
    end: int | None
    frame: int


@dataclass
class Step:
    """One frame of the ladder (see the module docstring)."""

    frame: int
    arrow: Arrow | None
    client_states: tuple[str, ...] = ()
    server_states: tuple[str, ...] = ()
    marks: tuple[Mark, ...] = ()
    lost: tuple[Lost, ...] = ()
    payload: int = 0


@dataclass
class Fold:
    """A folded data phase: ``count`` steps (frames ``first_frame``..``last_frame``),
    ``data_segments`` of them with payload, ``bytes`` of payload in all; ``steps``: the
    first of them, within the ladder's :data:`FOLD_STEPS` (``hidden`` = ``count -
    len(steps)`` not kept)."""

    count: int
    data_segments: int
    bytes: int
    first_frame: int
    last_frame: int
    steps: list[Step] = field(default_factory=list)

    @property
    def hidden(self) -> int:
        return self.count - len(self.steps)


@dataclass(frozen=True)
class Cut:
    """The part of a ladder left out past ``max_steps``: ``segments`` steps, frames
    ``first_frame``..``last_frame``."""

    segments: int
    first_frame: int
    last_frame: int


@dataclass
class Ladder:
    """The ladder of one connection (see the module docstring). ``conn``: the summary
    dict; ``initial``/``final``: each side's state before the first and after the last
    frame, as ``(client, server)``; ``entries``: steps and folds in capture order;
    ``late``: findings without a frame; ``cut``: what was left out, or None."""

    connection_id: int
    conn: Mapping[str, Any]
    initial: tuple[str, str]
    final: tuple[str, str]
    entries: list[Step | Fold]
    late: tuple[Mark, ...] = ()
    cut: Cut | None = None

    @property
    def steps(self) -> list[Step]:
        """The steps drawn unfolded, in order."""
        return [e for e in self.entries if isinstance(e, Step)]


def _initial_state(transitions: Sequence[Mapping[str, Any]], final: str | None) -> str:
    if transitions:
        return str(transitions[0]["from"])
    return final or "?"


def _lost(mark: Mark, data: Mapping[str, Any]) -> Lost | None:
    """The missed segment a CP002 finding describes: sent by its ``receiver`` (the peer of
    the endpoint whose acknowledgment proves it), ``seen_max`` to ``ack``."""
    receiver = data.get("receiver")
    if mark.rule != "CP002" or mark.frame is None or receiver not in ("client", "server"):
        return None
    start, end = data.get("seen_max"), data.get("ack")
    if not isinstance(start, int) or not isinstance(end, int) or end <= start:
        start = end = None
    return Lost(receiver == "client", start, end, mark.frame)


def connection_findings(
    findings: Iterable[Finding], connection_id: int | None = None
) -> dict[int, list[tuple[int, Finding]]]:
    """``(index, finding)`` pairs by connection id, ``index`` the finding's position in
    ``findings`` (one pass; only ``connection_id``'s when given)."""
    out: dict[int, list[tuple[int, Finding]]] = {}
    for i, f in enumerate(findings):
        if f.connection is None or (connection_id is not None and f.connection != connection_id):
            continue
        out.setdefault(f.connection, []).append((i, f))
    return out


def build_ladder(
    result: FileResult,
    connection_id: int,
    segments: Iterable[Segment],
    *,
    findings: Sequence[tuple[int, Finding]] | None = None,
    conn: Mapping[str, Any] | None = None,
    max_steps: int = MAX_STEPS,
    fold_steps: int | None = None,
) -> Ladder:
    """The :class:`Ladder` of connection ``connection_id`` of ``result``.

    ``segments``: that connection's segments in capture order, read as a stream
    (:func:`pcapcheck.report.ladder.scan_segments`); the other arguments as
    :class:`LadderBuilder`'s. Raises :class:`LadderError` for an unknown connection id.
    """
    builder = LadderBuilder(
        result,
        connection_id,
        findings=findings,
        conn=conn,
        max_steps=max_steps,
        fold_steps=fold_steps,
    )
    for seg in segments:
        builder.add(seg)
    return builder.ladder()


_Item = tuple[int, "Segment | None"]


@dataclass
class _Run:
    """A run of plain items being read: its first :data:`FOLD_KEEP` (``head``), its last
    ones (``tail``), and what is between, counted (and its first items kept for a fold's
    steps, up to the fold budget)."""

    head: list[_Item] = field(default_factory=list)
    tail: list[_Item] = field(default_factory=list)
    count: int = 0
    data_segments: int = 0
    bytes: int = 0
    first: _Item | None = None
    last_frame: int = 0
    kept: list[_Item] = field(default_factory=list)


@dataclass
class _RawFold:
    count: int
    data_segments: int
    bytes: int
    first_frame: int
    last_frame: int
    items: list[_Item]


class LadderBuilder:
    """The :class:`Ladder` of one connection built from its segments one at a time
    (:meth:`add`, in capture order), holding a bounded number of them: the entries drawn
    (at most ``max_steps``), the steps the folds keep (at most ``fold_steps``, default
    :data:`FOLD_STEPS`) and ``2 * FOLD_KEEP + 1`` of the data phase being read; a fold
    or a cut keeps only counts, bytes and frames. :meth:`ladder` gives the same ladder
    as the whole list of segments would.

    ``findings``: the connection's findings as ``(index in result.findings, finding)``
    (default: looked up in ``result``, one pass); ``conn``: its summary (default: looked
    up). Raises :class:`LadderError` for an unknown connection id.
    """

    def __init__(
        self,
        result: FileResult,
        connection_id: int,
        *,
        findings: Sequence[tuple[int, Finding]] | None = None,
        conn: Mapping[str, Any] | None = None,
        max_steps: int = MAX_STEPS,
        fold_steps: int | None = None,
    ) -> None:
        if conn is None:
            conn = next((c for c in result.connections if c["id"] == connection_id), None)
        if conn is None:
            count = len(result.connections)
            have = f"connections 1-{count}" if count else "no TCP connection"
            raise LadderError(
                f"{result.path}: no connection {connection_id} (the capture has {have})"
            )
        if findings is None:
            findings = connection_findings(result.findings, connection_id).get(connection_id, [])
        self.connection_id = connection_id
        self.conn = conn
        self._client = endpoint_parts(conn["client"])
        self._trans = conn.get("transitions") or {"client": [], "server": []}
        self._marks_at: dict[int | None, list[Mark]] = {}
        self._lost_at: dict[int, list[Lost]] = {}
        for index, f in findings:
            mark = Mark(index, f.rule, f.name, f.severity, finding_message(f), f.frame)
            self._marks_at.setdefault(f.frame, []).append(mark)
            lost = _lost(mark, f.data or {})
            if lost is not None:
                self._lost_at.setdefault(lost.frame, []).append(lost)
        # Relative-number bases: the ISN, else the first seq seen in that direction.
        self._bases: dict[bool, int | None] = {
            True: conn.get("client_isn"),
            False: conn.get("server_isn"),
        }
        # Per frame, the states each side enters there, in order.
        self._entered: dict[str, dict[int, list[str]]] = {"client": {}, "server": {}}
        for side in ("client", "server"):
            for t in self._trans.get(side, []):
                self._entered[side].setdefault(t["frame"], []).append(t["to"])
        # Frames drawn even without a segment: a state change or a finding there.
        self._special = sorted(
            {fr for side in self._entered.values() for fr in side}
            | {fr for fr in self._marks_at if fr is not None}
        )
        self._next_special = 0
        self._max_steps = max_steps
        self._budget = FOLD_STEPS if fold_steps is None else fold_steps
        self._entries: list[_Item | _RawFold] = []
        self._run = _Run()
        self._cut: list[int] | None = None  # [segments, first_frame, last_frame]

    @property
    def held(self) -> int:
        """Segments held now (the bound: ``max_steps + fold_steps + 2 * FOLD_KEEP + 1``)."""
        run = self._run
        items = len(run.head) + len(run.tail) + len(run.kept) + (run.first is not None)
        for e in self._entries:
            items += len(e.items) if isinstance(e, _RawFold) else e[1] is not None
        return items

    def add(self, seg: Segment) -> None:
        """Read the connection's next segment (capture order: increasing frames)."""
        from_client = (seg.src, seg.sport) == self._client
        if self._bases[from_client] is None:
            self._bases[from_client] = seg.seq
        special = self._special
        while self._next_special < len(special) and special[self._next_special] < seg.frame:
            self._item((special[self._next_special], None))
            self._next_special += 1
        if self._next_special < len(special) and special[self._next_special] == seg.frame:
            self._next_special += 1
        self._item((seg.frame, seg))

    def _plain(self, item: _Item) -> bool:
        frame, seg = item
        return (
            seg is not None
            and not seg.flags & (SYN | FIN | RST)
            and frame not in self._entered["client"]
            and frame not in self._entered["server"]
            and frame not in self._marks_at
        )

    def _item(self, item: _Item) -> None:
        if self._cut is not None:
            self._cut[0] += 1
            self._cut[2] = item[0]
            return
        if not self._plain(item):
            self._end_run()
            if self._cut is not None:
                self._item(item)
            else:
                self._emit([(item, 1, item[0], item[0])])
            return
        run = self._run
        if len(run.head) < FOLD_KEEP:
            run.head.append(item)
            return
        run.tail.append(item)
        if len(run.tail) > FOLD_KEEP:  # the oldest of the tail goes to the middle
            frame, seg = old = run.tail.pop(0)
            assert seg is not None
            if run.count == 0:
                run.first = old
            elif len(run.kept) < self._budget:
                run.kept.append(old)
            run.count += 1
            run.data_segments += 1 if seg.payload_len else 0
            run.bytes += seg.payload_len
            run.last_frame = frame

    def _end_run(self) -> None:
        run, self._run = self._run, _Run()
        if not run.head:
            return
        units: list[tuple[_Item | _RawFold, int, int, int]] = [
            (it, 1, it[0], it[0]) for it in run.head
        ]
        if run.count >= 2:  # more than 2 * FOLD_KEEP + 1: folded
            assert run.first is not None
            items = ([run.first] + run.kept)[: self._budget]
            self._budget -= len(items)
            fold = _RawFold(
                run.count,
                run.data_segments,
                run.bytes,
                run.first[0],
                run.last_frame,
                items,
            )
            units.append((fold, run.count, fold.first_frame, fold.last_frame))
        elif run.first is not None:
            units.append((run.first, 1, run.first[0], run.first[0]))
        units.extend((it, 1, it[0], it[0]) for it in run.tail)
        self._emit(units)

    def _emit(self, units: list[tuple[_Item | _RawFold, int, int, int]]) -> None:
        """Append ``units`` (entry, items, first frame, last frame); past ``max_steps``
        the rest goes to the cut."""
        for n, (entry, _count, _first, _last) in enumerate(units):
            if len(self._entries) >= self._max_steps:
                rest = units[n:]
                self._cut = [sum(u[1] for u in rest), rest[0][2], rest[-1][3]]
                return
            self._entries.append(entry)

    def _step(self, frame: int, seg: Segment | None) -> Step:
        return Step(
            frame,
            self._arrow(seg) if seg is not None else None,
            tuple(self._entered["client"].get(frame, ())),
            tuple(self._entered["server"].get(frame, ())),
            tuple(self._marks_at.get(frame, ())),
            tuple(self._lost_at.get(frame, ())),
            seg.payload_len if seg is not None else 0,
        )

    def _arrow(self, seg: Segment) -> Arrow:
        from_client = (seg.src, seg.sport) == self._client
        seq_base, ack_base = self._bases[from_client], self._bases[not from_client]
        seq = seg.seq if seq_base is None else (seg.seq - seq_base) % _M32
        ack = None
        if seg.flags & ACK:
            ack = seg.ack if ack_base is None else (seg.ack - ack_base) % _M32
        flags = flags_text(seg.flags).replace(", ", ",")
        return Arrow(from_client, flags, seq, ack, seg.payload_len)

    def ladder(self) -> Ladder:
        """The ladder of the segments read (call once, after the last :meth:`add`)."""
        special = self._special
        while self._next_special < len(special):
            self._item((special[self._next_special], None))
            self._next_special += 1
        self._end_run()
        entries: list[Step | Fold] = []
        for e in self._entries:
            if isinstance(e, _RawFold):
                steps = [self._step(*it) for it in e.items]
                entries.append(
                    Fold(e.count, e.data_segments, e.bytes, e.first_frame, e.last_frame, steps)
                )
            else:
                entries.append(self._step(*e))
        trans, conn = self._trans, self.conn
        return Ladder(
            connection_id=self.connection_id,
            conn=conn,
            initial=(
                _initial_state(trans.get("client", []), conn.get("client_state")),
                _initial_state(trans.get("server", []), conn.get("server_state")),
            ),
            final=(conn.get("client_state") or "?", conn.get("server_state") or "?"),
            entries=entries,
            late=tuple(self._marks_at.get(None, ())),
            cut=None if self._cut is None else Cut(*self._cut),
        )


def fold_words(fold: Fold, size: str | None = None, dash: str = "–") -> str:
    """What a fold says, in the current language: ``"16 data segments (frames 7–22)"``
    (``"segments of data transfer"`` when some carry no payload), with the payload's
    ``size`` when given (``"120 data segments, 170 kB (frames 7–126)"``); ``dash``: the
    range's dash (``"-"`` in ASCII). Every drawing of a fold (text, SVG) says this."""
    if size is None:
        if fold.data_segments == fold.count:
            text = ngettext(
                "{count} data segment (frames {first}{dash}{last})",
                "{count} data segments (frames {first}{dash}{last})",
                fold.count,
            )
        else:
            text = ngettext(
                "{count} segment of data transfer (frames {first}{dash}{last})",
                "{count} segments of data transfer (frames {first}{dash}{last})",
                fold.count,
            )
    elif fold.data_segments == fold.count:
        text = ngettext(
            "{count} data segment, {size} (frames {first}{dash}{last})",
            "{count} data segments, {size} (frames {first}{dash}{last})",
            fold.count,
        )
    else:
        text = ngettext(
            "{count} segment of data transfer, {size} (frames {first}{dash}{last})",
            "{count} segments of data transfer, {size} (frames {first}{dash}{last})",
            fold.count,
        )
    return text.format(
        count=fold.count, size=size, first=fold.first_frame, dash=dash, last=fold.last_frame
    )


def trim_ladder(ladder: Ladder, max_steps: int, fold_steps: int) -> Ladder:
    """``ladder`` with at most ``max_steps`` entries and ``fold_steps`` folded steps kept
    in all: the ladder that :func:`build_ladder` draws with these smaller bounds (the
    entries past ``max_steps`` join the cut)."""
    entries = list(ladder.entries[:max_steps])
    rest = ladder.entries[max_steps:]
    cut = ladder.cut
    if rest:
        count = sum(e.count if isinstance(e, Fold) else 1 for e in rest)
        first = rest[0].first_frame if isinstance(rest[0], Fold) else rest[0].frame
        last_entry = rest[-1]
        last = last_entry.last_frame if isinstance(last_entry, Fold) else last_entry.frame
        if cut is not None:
            count, last = count + cut.segments, cut.last_frame
        cut = Cut(count, first, last)
    budget = fold_steps
    for n, e in enumerate(entries):
        if isinstance(e, Fold):
            kept = e.steps[: max(0, budget)]
            budget -= len(kept)
            if len(kept) != len(e.steps):
                entries[n] = Fold(
                    e.count, e.data_segments, e.bytes, e.first_frame, e.last_frame, kept
                )
    return Ladder(
        ladder.connection_id, ladder.conn, ladder.initial, ladder.final, entries, ladder.late, cut
    )
