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

What the ladder says (rows, states, folds, findings, relative numbers, the cap on rows)
is decided once in :mod:`pcapcheck.report.ladder_model`; this module draws that model
as text, :mod:`pcapcheck.report.ladder_svg` as SVG.

Relative numbers follow Wireshark: each direction counts from its ISN (the summary's
``client_isn`` / ``server_isn``); when an ISN is unknown (``null``: the SYN of that
direction was not captured), from the first sequence number seen in that direction; an
``ack`` whose peer direction has neither an ISN nor a segment in the capture is shown
absolute.

:func:`render_ladder` draws from an analysed capture (:class:`FileResult`) and the
connection's segments; :func:`scan_segments` re-reads the capture once to pick
every connection's segments (by the tracker's connection key: 4-tuple and tunnels,
within the connection's first and last frame).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pcapcheck.i18n import DEFAULT_LANGUAGE, get_language, ngettext
from pcapcheck.i18n import gettext as _
from pcapcheck.model import Segment
from pcapcheck.report.common import value_text
from pcapcheck.report.ladder_model import (
    FOLD_KEEP,
    Fold,
    Ladder,
    LadderError,
    Mark,
    Step,
    build_ladder,
    endpoint_parts,
    fold_words,
)

if TYPE_CHECKING:
    from pcapcheck.results import FileResult

__all__ = [
    "DEFAULT_WIDTH",
    "FOLD_KEEP",
    "MIN_WIDTH",
    "LadderError",
    "connection_segments",
    "cut_text",
    "endpoint_parts",
    "fold_text",
    "render_ladder",
    "render_text",
    "scan_segments",
]

#: Default and smallest accepted total width of a ladder, in columns.
DEFAULT_WIDTH = 100
MIN_WIDTH = 60
_FRAME_COL = 5  # frame number, right-aligned
_STATE_COL = 13  # widest state: "SYN-RECEIVED" (12) + one space
_LEFT = _FRAME_COL + 1 + _STATE_COL + 1  # columns before the client's lane bar


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
    """``text`` for ``--ascii``: the symbols of :data:`_ASCII_MAP` spelled in ASCII, and
    any other non-ASCII character a ``?``, except in a language other than English,
    whose letters stay (a Korean message drawn with ASCII lines keeps its Hangul)."""
    text = text.translate(_ASCII_MAP)
    if get_language() != DEFAULT_LANGUAGE:
        return text
    return text.encode("ascii", "replace").decode("ascii")


def scan_segments(
    path: str | Path,
    connections: Sequence[Mapping[str, Any]],
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> Iterator[tuple[int, Segment]]:
    """Re-read the capture at ``path`` and yield ``(connection id, segment)`` for each
    segment of ``connections`` (summaries, ``FileResult.connections``), in capture order.

    A segment belongs to the connection with its identity (the tracker's
    :func:`~pcapcheck.tcp.tracker.connection_key`: the 4-tuple in either direction and
    the tunnels it came through, the summary's ``encapsulation``; two GTP-U tunnels of
    one key told apart by their TEIDs, as the tracker's
    :class:`~pcapcheck.tcp.tracker.TunnelPairing` does, from the TEIDs of both
    directions the summary names) whose ``[first_frame, last_frame]`` holds its frame.
    Undecodable and non-TCP records are skipped; the file is read only up to the last of
    the connections' ``last_frame``. ``tunnel_ports``: the UDP ports of the tunnels, as
    the analysis had them (:func:`pcapcheck.capture.layers.tunnel_tables`; None: IANA's).
    Holds nothing per segment. Raises
    :class:`pcapcheck.capture.reader.CaptureError` when the file is not a readable
    capture.
    """
    from pcapcheck.pipeline import open_source
    from pcapcheck.tcp.tracker import TunnelPairing, connection_key, tunnel_ends

    pairing = TunnelPairing()  # the tunnels the summaries name, then the segments'

    def key_of(key: tuple, path: tuple[str, ...] | None) -> tuple:
        ends = tunnel_ends(path)
        return TunnelPairing.key(key, pairing.place(key, ends)) if ends else key

    index: dict[tuple, list[tuple[int, int, int]]] = {}
    for conn in connections:
        (chost, cport), (shost, sport) = (
            endpoint_parts(conn["client"]),
            endpoint_parts(conn["server"]),
        )
        path_ = tuple(conn["encapsulation"]) if conn.get("encapsulation") else None
        key = key_of(connection_key(chost, cport, shost, sport, path_), path_)
        index.setdefault(key, []).append((conn["first_frame"], conn["last_frame"], conn["id"]))
    if not index:
        return
    end = max(conn["last_frame"] for conn in connections)
    for frame, _ts, seg in open_source(path, tunnel_ports=tunnel_ports):
        if frame > end:
            break
        if not isinstance(seg, Segment):
            continue
        enc = seg.encapsulation
        spans = index.get(key_of(connection_key(seg.src, seg.sport, seg.dst, seg.dport, enc), enc))
        if not spans:
            continue
        for first, last, cid in spans:
            if first <= frame <= last:
                yield cid, seg
                break


def connection_segments(
    path: str | Path,
    connections: Sequence[Mapping[str, Any]],
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> dict[int, list[Segment]]:
    """Each connection's segments, by id, as lists (:func:`scan_segments`: every segment
    of them in memory; a drawing of many or long connections feeds
    :class:`~pcapcheck.report.ladder_model.LadderBuilder` from :func:`scan_segments`
    instead). ``tunnel_ports``: as :func:`scan_segments`'. Raises as
    :func:`scan_segments`."""
    out: dict[int, list[Segment]] = {conn["id"]: [] for conn in connections}
    for cid, seg in scan_segments(path, connections, tunnel_ports):
        out[cid].append(seg)
    return out


def _short_message(message: str) -> str:
    """A finding's message without parenthesised details, up to its first ``; ``."""
    text = re.sub(r"\s*\([^()]*\)", "", message)
    return text.split("; ")[0].strip()


def _cols(text: str) -> int:
    """The columns ``text`` takes in a terminal: 2 for a wide character (Hangul, CJK:
    East Asian Width W or F), else 1."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _ljust(text: str, width: int) -> str:
    return text + " " * (width - _cols(text))


def _center(text: str, width: int) -> str:
    """``str.center`` in terminal columns (the odd space placed as CPython places it)."""
    room = max(0, width - _cols(text))
    left = room // 2 + (room & width & 1)
    return " " * left + text + " " * (room - left)


def _fit(text: str, room: int, g: _Glyphs) -> str:
    if _cols(text) <= room:
        return text
    room -= len(g.ellipsis)
    while text and _cols(text) > room:
        text = text[:-1]
    return text + g.ellipsis


class _Ladder:
    """Row builder for one ladder of a given width."""

    def __init__(self, width: int, g: _Glyphs):
        self.g = g
        self.inner = width - _LEFT - 2 - _STATE_COL  # between the two lane bars
        self.rows: list[str] = []

    def row(self, frame: int | None, cstate: str | None, lane: str, sstate: str | None) -> None:
        left = f"{frame if frame is not None else '':>{_FRAME_COL}} {cstate or '':<{_STATE_COL}} "
        line = f"{left}{self.g.bar}{_ljust(lane, self.inner)}{self.g.bar} {sstate or ''}"
        self.rows.append(line.rstrip())

    def arrow(self, label: str, rightward: bool) -> str:
        g, inner = self.g, self.inner
        body = f" {_fit(label, inner - 4, g)} "
        fill = g.line * (inner - 2 - _cols(body))
        if rightward:
            return g.line + body + fill + g.right
        return g.left + fill + body + g.line

    def note(self, text: str) -> str:
        return " " + _fit(text, self.inner - 2, self.g)


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
            _("--width {width} is too narrow: a ladder needs at least {min} columns").format(
                width=width, min=MIN_WIDTH
            )
        )
    return render_text(build_ladder(result, connection_id, segments), ascii=ascii, width=width)


def render_text(ladder: Ladder, ascii: bool = False, width: int = DEFAULT_WIDTH) -> str:
    """The text drawing of a :class:`~pcapcheck.report.ladder_model.Ladder` (see
    :func:`render_ladder` for ``ascii`` and ``width``)."""
    g = _ASCII if ascii else _UNICODE
    lad = _Ladder(width, g)
    conn = ladder.conn

    def finding_text(f: Mark) -> str:
        # Made ASCII before it is fitted, so that the width holds in --ascii too.
        text = f"{g.mark} {f.rule} {_short_message(f.message)}"
        return _asciify(text) if ascii else text

    # Header.
    title = _("connection {id}: client {client} {to} server {server}").format(
        id=ladder.connection_id, client=conn["client"], to=g.to, server=conn["server"]
    )
    verdict = _("handshake {handshake}, close {close}").format(
        handshake=value_text(conn["handshake"]), close=value_text(conn["close"])
    )
    if _cols(title) + 2 + _cols(verdict) <= width:
        head = [f"{title}, {verdict}"]
    else:
        head = [_fit(title, width, g), verdict]
    head.append(
        " " * max(0, _FRAME_COL - _cols(_("frame")))
        + f"{_('frame')} {_ljust(_('client'), _STATE_COL)} {'':<{lad.inner + 3}}"
        + _("server")
    )
    lad.row(None, ladder.initial[0], "", ladder.initial[1])

    def draw(step: Step) -> None:
        cs = list(step.client_states)
        ss = list(step.server_states)
        lane = lad.arrow(step.arrow.label, step.arrow.from_client) if step.arrow else ""
        lad.row(step.frame, cs.pop(0) if cs else None, lane, ss.pop(0) if ss else None)
        while cs or ss:
            lad.row(None, cs.pop(0) if cs else None, "", ss.pop(0) if ss else None)
        for f in step.marks:
            lad.row(None, None, lad.note(finding_text(f)), None)

    for entry in ladder.entries:
        if isinstance(entry, Fold):
            lad.row(None, None, _center(_fit(fold_text(entry, g), lad.inner, g), lad.inner), None)
        else:
            draw(entry)
    if ladder.cut is not None:
        lad.row(None, None, lad.note(cut_text(ladder, g.dash)), None)

    tail = [
        _("final: client {client}, server {server}").format(
            client=ladder.final[0], server=ladder.final[1]
        )
    ]
    for f in ladder.late:
        tail.append(_fit(finding_text(f), width, g))
    return "\n".join(head + lad.rows + tail) + "\n"


def fold_text(fold: Fold, g: _Glyphs = _UNICODE) -> str:
    """``"… 16 segments of data transfer (frames 7–22) …"`` (the words:
    :func:`~pcapcheck.report.ladder_model.fold_words`)."""
    return f"{g.ellipsis} {fold_words(fold, dash=g.dash)} {g.ellipsis}"


def cut_text(ladder: Ladder, dash: str = "–") -> str:
    """The note of a ladder cut at its row limit (``""`` when it was not cut)."""
    cut = ladder.cut
    if cut is None:
        return ""
    return ngettext(
        "{count} more segment not drawn (frames {first}{dash}{last})",
        "{count} more segments not drawn (frames {first}{dash}{last})",
        cut.segments,
    ).format(count=cut.segments, first=cut.first_frame, dash=dash, last=cut.last_frame)
