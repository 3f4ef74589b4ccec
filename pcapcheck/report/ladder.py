"""Ladder (sequence) diagrams of one TCP connection, as text.

The client is on the left, the server on the right; time runs down. Each captured
segment of the connection is one arrow labelled with its flags, relative ``seq`` and
``ack`` (``ack`` only when the ACK flag is set) and payload length ``len`` (bytes), with
its frame number (Wireshark's, 1-based) in the first column. Each endpoint's RFC 9293
state is written beside its side of the ladder on the row of the frame that changed it
(the connection summary's ``transitions``, attributed to frames as
``docs/semantics.md`` says); a frame that changes one side twice (a FIN piggy-backed on
the ACK of the peer's FIN, the second SYN of a simultaneous open) gets one row per
state. A finding is printed under the arrow of its frame (rule id and the message
without its parenthesised details). Long data phases are folded: a run of more than
``2 * FOLD_KEEP + 1`` segments that change no state, carry no SYN/FIN/RST and have no
finding keeps its first and last :data:`FOLD_KEEP` arrows around one
``… N data segments (frames a–b) …`` row. Crossing segments (simultaneous open or
close) are drawn in capture order.

Relative numbers follow Wireshark: each direction counts from its ISN (the summary's
``client_isn`` / ``server_isn``); when an ISN is unknown (``null``: the SYN of that
direction was not captured), from the first sequence number seen in that direction; an
``ack`` whose peer direction has neither an ISN nor a segment in the capture is shown
absolute.

:func:`render_ladder` draws from an analysed capture (:class:`FileResult`) and the
connection's segments; :func:`connection_segments` re-reads the capture once to pick
every connection's segments (by 4-tuple, within the connection's first and last frame).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pcapcheck.model import ACK, FIN, RST, SYN, Segment, flags_text

if TYPE_CHECKING:
    from pcapcheck.results import FileResult

__all__ = [
    "DEFAULT_WIDTH",
    "FOLD_KEEP",
    "MIN_WIDTH",
    "LadderError",
    "connection_segments",
    "endpoint_parts",
    "render_ladder",
]

#: Default and smallest accepted total width of a ladder, in columns.
DEFAULT_WIDTH = 100
MIN_WIDTH = 60
#: Arrows kept at each end of a folded data phase.
FOLD_KEEP = 3

_M32 = 1 << 32
_FRAME_COL = 5  # frame number, right-aligned
_STATE_COL = 13  # widest state: "SYN-RECEIVED" (12) + one space
_LEFT = _FRAME_COL + 1 + _STATE_COL + 1  # columns before the client's lane bar


class LadderError(ValueError):
    """A ladder cannot be drawn: unknown connection id or a width below :data:`MIN_WIDTH`.
    The message is one user-facing line."""


@dataclass(frozen=True)
class _Glyphs:
    bar: str
    line: str
    right: str
    left: str
    mark: str
    ellipsis: str
    dash: str
    to: str


_UNICODE = _Glyphs("│", "─", "▶", "◀", "▲", "…", "–", "→")
_ASCII = _Glyphs("|", "-", ">", "<", "^", "...", "-", "->")

# Non-ASCII characters that finding messages and addresses may carry, for --ascii.
_ASCII_MAP = str.maketrans(
    {
        "·": "*",
        "→": "->",
        "←": "<-",
        "≥": ">=",
        "≤": "<=",
        "…": "...",
        "–": "-",
        "—": "-",
        "×": "x",
        "\u00a0": " ",
    }
)


def _asciify(text: str) -> str:
    return text.translate(_ASCII_MAP).encode("ascii", "replace").decode("ascii")


def endpoint_parts(text: str) -> tuple[str, int]:
    """``"10.0.0.1:40000"`` → ``("10.0.0.1", 40000)``; ``"[2001:db8::1]:80"`` →
    ``("2001:db8::1", 80)`` (the summary's ``client`` / ``server`` text)."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def connection_segments(
    path: str | Path, connections: Sequence[Mapping[str, Any]]
) -> dict[int, list[Segment]]:
    """Re-read the capture at ``path`` and return each connection's segments, by id.

    ``connections`` are summaries (``FileResult.connections``); a segment belongs to the
    connection with its 4-tuple (either direction) whose ``[first_frame, last_frame]``
    holds its frame. Undecodable and non-TCP records are skipped. Raises
    :class:`pcapcheck.capture.reader.CaptureError` when the file is not a readable capture.
    """
    from pcapcheck.pipeline import open_source

    index: dict[frozenset, list[tuple[int, int, int]]] = {}
    out: dict[int, list[Segment]] = {}
    for conn in connections:
        key = frozenset((endpoint_parts(conn["client"]), endpoint_parts(conn["server"])))
        index.setdefault(key, []).append((conn["first_frame"], conn["last_frame"], conn["id"]))
        out[conn["id"]] = []
    if not index:
        return out
    for frame, _ts, seg in open_source(path):
        if not isinstance(seg, Segment):
            continue
        spans = index.get(frozenset(((seg.src, seg.sport), (seg.dst, seg.dport))))
        if not spans:
            continue
        for first, last, cid in spans:
            if first <= frame <= last:
                out[cid].append(seg)
                break
    return out


def _short_message(message: str) -> str:
    """A finding's message without parenthesised details, up to its first ``; ``."""
    text = re.sub(r"\s*\([^()]*\)", "", message)
    return text.split("; ")[0].strip()


def _fit(text: str, room: int, g: _Glyphs) -> str:
    if len(text) <= room:
        return text
    return text[: max(0, room - len(g.ellipsis))] + g.ellipsis


class _Ladder:
    """Row builder for one ladder of a given width."""

    def __init__(self, width: int, g: _Glyphs):
        self.g = g
        self.inner = width - _LEFT - 2 - _STATE_COL  # between the two lane bars
        self.rows: list[str] = []

    def row(self, frame: int | None, cstate: str | None, lane: str, sstate: str | None) -> None:
        left = f"{frame if frame is not None else '':>{_FRAME_COL}} {cstate or '':<{_STATE_COL}} "
        line = f"{left}{self.g.bar}{lane:<{self.inner}}{self.g.bar} {sstate or ''}"
        self.rows.append(line.rstrip())

    def arrow(self, label: str, rightward: bool) -> str:
        g, inner = self.g, self.inner
        body = f" {_fit(label, inner - 4, g)} "
        fill = g.line * (inner - 2 - len(body))
        if rightward:
            return g.line + body + fill + g.right
        return g.left + fill + body + g.line

    def note(self, text: str) -> str:
        return " " + _fit(text, self.inner - 2, self.g)


def _label(seg: Segment, seq_base: int | None, ack_base: int | None) -> str:
    flags = flags_text(seg.flags).replace(", ", ",")
    seq = seg.seq if seq_base is None else (seg.seq - seq_base) % _M32
    parts = [flags, f"seq={seq}"]
    if seg.flags & ACK:
        ack = seg.ack if ack_base is None else (seg.ack - ack_base) % _M32
        parts.append(f"ack={ack}")
    parts.append(f"len={seg.payload_len}")
    return " ".join(parts)


def _initial_state(transitions: list[Mapping[str, Any]], final: str | None) -> str:
    if transitions:
        return transitions[0]["from"]
    return final or "?"


def render_ladder(
    result: FileResult,
    connection_id: int,
    segments: Iterable[Segment],
    ascii: bool = False,
    width: int = DEFAULT_WIDTH,
) -> str:
    """The ladder diagram of connection ``connection_id`` of ``result``, as text.

    ``segments``: that connection's segments in capture order (see
    :func:`connection_segments`); ``ascii``: only ASCII characters (``|``, ``-``, ``>``,
    ``<``, ``^``, ``...``) instead of box-drawing arrows; ``width``: the maximum line length
    in columns (every line fits). Returns the lines joined with ``\\n``, ending with one.
    Raises :class:`LadderError` for an unknown connection id or ``width < MIN_WIDTH``.
    """
    if width < MIN_WIDTH:
        raise LadderError(
            f"--width {width} is too narrow: a ladder needs at least {MIN_WIDTH} columns"
        )
    conn = next((c for c in result.connections if c["id"] == connection_id), None)
    if conn is None:
        count = len(result.connections)
        have = f"connections 1-{count}" if count else "no TCP connection"
        raise LadderError(f"{result.path}: no connection {connection_id} (the capture has {have})")
    g = _ASCII if ascii else _UNICODE
    lad = _Ladder(width, g)
    segs = list(segments)
    client = endpoint_parts(conn["client"])
    trans = conn.get("transitions") or {"client": [], "server": []}
    findings_at: dict[int | None, list[Any]] = {}
    for f in result.findings:
        if f.connection == connection_id:
            findings_at.setdefault(f.frame, []).append(f)

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

    # Rows: every segment, plus a state-only row for a frame that changes a state or has
    # a finding but is not one of the segments given.
    seg_frames = {seg.frame for seg in segs}
    bare = (
        {fr for side in entered.values() for fr in side}
        | {fr for fr in findings_at if fr is not None}
    ) - seg_frames
    items: list[tuple[int, Segment | None]] = [(seg.frame, seg) for seg in segs]
    items.extend((fr, None) for fr in bare)
    items.sort(key=lambda it: it[0])

    def finding_text(f: Any) -> str:
        # Made ASCII before it is fitted, so that the width holds in --ascii too.
        text = f"{g.mark} {f.rule} {_short_message(f.message)}"
        return _asciify(text) if ascii else text

    def plain(frame: int, seg: Segment | None) -> bool:
        return (
            seg is not None
            and not seg.flags & (SYN | FIN | RST)
            and frame not in entered["client"]
            and frame not in entered["server"]
            and frame not in findings_at
        )

    # Header.
    title = f"connection {connection_id}: client {conn['client']} {g.to} server {conn['server']}"
    verdict = f"handshake {conn['handshake']}, close {conn['close']}"
    if len(title) + 2 + len(verdict) <= width:
        head = [f"{title}, {verdict}"]
    else:
        head = [_fit(title, width, g), verdict]
    head.append(f"{'frame':>{_FRAME_COL}} {'client':<{_STATE_COL}} {'':<{lad.inner + 3}}server")
    lad.row(
        None,
        _initial_state(trans.get("client", []), conn.get("client_state")),
        "",
        _initial_state(trans.get("server", []), conn.get("server_state")),
    )

    def draw(frame: int, seg: Segment | None) -> None:
        cs = list(entered["client"].get(frame, []))
        ss = list(entered["server"].get(frame, []))
        if seg is not None:
            from_client = (seg.src, seg.sport) == client
            label = _label(seg, bases[from_client], bases[not from_client])
            lane = lad.arrow(label, rightward=from_client)
        else:
            lane = ""
        lad.row(frame, cs.pop(0) if cs else None, lane, ss.pop(0) if ss else None)
        while cs or ss:
            lad.row(None, cs.pop(0) if cs else None, "", ss.pop(0) if ss else None)
        for f in findings_at.get(frame, []):
            lad.row(None, None, lad.note(finding_text(f)), None)

    i = 0
    while i < len(items):
        j = i
        while j < len(items) and plain(*items[j]):
            j += 1
        if j == i:  # a segment that matters: always drawn
            draw(*items[i])
            i += 1
            continue
        run = items[i:j]
        if len(run) > 2 * FOLD_KEEP + 1:
            folded = run[FOLD_KEEP:-FOLD_KEEP]
            with_data = sum(1 for _, s in folded if s is not None and s.payload_len)
            what = "data segments" if with_data == len(folded) else "segments of data transfer"
            text = (
                f"{g.ellipsis} {len(folded)} {what} (frames {folded[0][0]}{g.dash}"
                f"{folded[-1][0]}) {g.ellipsis}"
            )
            for it in run[:FOLD_KEEP]:
                draw(*it)
            lad.row(None, None, _fit(text, lad.inner, g).center(lad.inner), None)
            run = run[-FOLD_KEEP:]
        for it in run:
            draw(*it)
        i = j

    tail = [
        f"final: client {conn.get('client_state') or '?'}, server {conn.get('server_state') or '?'}"
    ]
    for f in findings_at.get(None, []):
        tail.append(_fit(finding_text(f), width, g))
    return "\n".join(head + lad.rows + tail) + "\n"
