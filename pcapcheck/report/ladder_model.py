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

from pcapcheck.model import ACK, FIN, RST, SYN, Segment, flags_text
from pcapcheck.report.common import finding_message

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
    "LadderError",
    "Lost",
    "Mark",
    "Step",
    "build_ladder",
    "endpoint_parts",
    "is_capture_rule",
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


def endpoint_parts(text: str) -> tuple[str, int]:
    """``"10.0.0.1:40000"`` → ``("10.0.0.1", 40000)``; ``"[2001:db8::1]:80"`` →
    ``("2001:db8::1", 80)`` (the summary's ``client`` / ``server`` text)."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


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

    ``segments``: that connection's segments in capture order
    (:func:`pcapcheck.report.ladder.connection_segments`); ``findings``: its findings as
    ``(index in result.findings, finding)`` (default: looked up in ``result``, one pass;
    :func:`connection_findings` gives them for every connection at once); ``conn``: its
    summary (default: looked up); ``max_steps``: entries at most (see :class:`Cut`);
    ``fold_steps``: steps the folds keep in all (default :data:`FOLD_STEPS`).
    Raises :class:`LadderError` for an unknown connection id.
    """
    if conn is None:
        conn = next((c for c in result.connections if c["id"] == connection_id), None)
    if conn is None:
        count = len(result.connections)
        have = f"connections 1-{count}" if count else "no TCP connection"
        raise LadderError(f"{result.path}: no connection {connection_id} (the capture has {have})")
    if findings is None:
        findings = connection_findings(result.findings, connection_id).get(connection_id, [])
    segs = list(segments)
    client = endpoint_parts(conn["client"])
    trans = conn.get("transitions") or {"client": [], "server": []}

    marks_at: dict[int | None, list[Mark]] = {}
    lost_at: dict[int, list[Lost]] = {}
    for index, f in findings:
        mark = Mark(index, f.rule, f.name, f.severity, finding_message(f), f.frame)
        marks_at.setdefault(f.frame, []).append(mark)
        lost = _lost(mark, f.data or {})
        if lost is not None:
            lost_at.setdefault(lost.frame, []).append(lost)

    # Relative-number bases: the ISN, else the first seq seen in that direction.
    bases: dict[bool, int | None] = {True: conn.get("client_isn"), False: conn.get("server_isn")}
    for seg in segs:
        from_client = (seg.src, seg.sport) == client
        if bases[from_client] is None:
            bases[from_client] = seg.seq

    # Per frame, the states each side enters there, in order.
    entered: dict[str, dict[int, list[str]]] = {"client": {}, "server": {}}
    for side in ("client", "server"):
        for t in trans.get(side, []):
            entered[side].setdefault(t["frame"], []).append(t["to"])

    def arrow(seg: Segment) -> Arrow:
        from_client = (seg.src, seg.sport) == client
        seq_base, ack_base = bases[from_client], bases[not from_client]
        seq = seg.seq if seq_base is None else (seg.seq - seq_base) % _M32
        ack = None
        if seg.flags & ACK:
            ack = seg.ack if ack_base is None else (seg.ack - ack_base) % _M32
        flags = flags_text(seg.flags).replace(", ", ",")
        return Arrow(from_client, flags, seq, ack, seg.payload_len)

    def step(frame: int, seg: Segment | None) -> Step:
        return Step(
            frame,
            arrow(seg) if seg is not None else None,
            tuple(entered["client"].get(frame, ())),
            tuple(entered["server"].get(frame, ())),
            tuple(marks_at.get(frame, ())),
            tuple(lost_at.get(frame, ())),
            seg.payload_len if seg is not None else 0,
        )

    # Steps: every segment, plus a step without arrow for a frame that changes a state or
    # has a finding but is not one of the segments given.
    seg_frames = {seg.frame for seg in segs}
    bare = (
        {fr for side in entered.values() for fr in side} | {fr for fr in marks_at if fr is not None}
    ) - seg_frames
    items: list[tuple[int, Segment | None]] = [(seg.frame, seg) for seg in segs]
    items.extend((fr, None) for fr in bare)
    items.sort(key=lambda it: it[0])

    def plain(frame: int, seg: Segment | None) -> bool:
        return (
            seg is not None
            and not seg.flags & (SYN | FIN | RST)
            and frame not in entered["client"]
            and frame not in entered["server"]
            and frame not in marks_at
        )

    entries: list[Step | Fold] = []
    cut: Cut | None = None
    fold_budget = FOLD_STEPS if fold_steps is None else fold_steps

    def add(entry: Step | Fold, rest_first: int) -> bool:
        """Append ``entry``; False (and ``cut`` set) once the ladder is full."""
        nonlocal cut
        if len(entries) >= max_steps:
            left = items[rest_first:]
            cut = Cut(len(left), left[0][0], left[-1][0])
            return False
        entries.append(entry)
        return True

    i = 0
    while i < len(items):
        j = i
        while j < len(items) and plain(*items[j]):
            j += 1
        if j == i:  # a segment that matters: always drawn
            if not add(step(*items[i]), i):
                break
            i += 1
            continue
        run = items[i:j]
        pos = i
        if len(run) > 2 * FOLD_KEEP + 1:
            for n, it in enumerate(run[:FOLD_KEEP]):
                if not add(step(*it), pos + n):
                    break
            if cut is not None:
                break
            folded = run[FOLD_KEEP:-FOLD_KEEP]
            fold = Fold(
                count=len(folded),
                data_segments=sum(1 for _, s in folded if s is not None and s.payload_len),
                bytes=sum(s.payload_len for _, s in folded if s is not None),
                first_frame=folded[0][0],
                last_frame=folded[-1][0],
                steps=[step(*it) for it in folded[:fold_budget]],
            )
            fold_budget -= len(fold.steps)
            if not add(fold, pos + FOLD_KEEP):
                break
            pos = j - FOLD_KEEP
            run = run[-FOLD_KEEP:]
        for n, it in enumerate(run):
            if not add(step(*it), pos + n):
                break
        if cut is not None:
            break
        i = j

    return Ladder(
        connection_id=connection_id,
        conn=conn,
        initial=(
            _initial_state(trans.get("client", []), conn.get("client_state")),
            _initial_state(trans.get("server", []), conn.get("server_state")),
        ),
        final=(conn.get("client_state") or "?", conn.get("server_state") or "?"),
        entries=entries,
        late=tuple(marks_at.get(None, ())),
        cut=cut,
    )
