"""Ladder (sequence) diagrams of one TCP connection, as SVG.

Draws a :class:`~pcapcheck.report.ladder_model.Ladder` (what the picture says is decided
there, the same for the text ladder): the client's line on the left, the server's on the
right, time flowing down; one arrow per captured segment labelled with its flags,
relative ``seq``/``ack`` and ``len``, its frame number (Wireshark's) in the left margin;
each side's RFC 9293 state written beside its line at the frame that changed it; the
findings of a frame as markers on its arrow (a link to the finding's anchor when the
caller gives one), coloured by severity, capture artefacts (the CP rules) apart from
endpoint faults; a segment the capture missed but a later frame proves (CP002) as a
dashed arrow; a folded data phase as one row.

The SVG is built as an element tree (:mod:`xml.etree.ElementTree`, which escapes every
text and attribute): nothing from a capture reaches the markup unescaped. Every element a
person or a test reads is a real ``<text>`` with a ``<title>``, and carries stable classes
and data attributes:

=======================  ==============================================================
element                  classes / attributes
=======================  ==============================================================
arrow (a segment)        ``g.arrow`` ``data-frame`` ``data-direction`` (``client-to-server``
                         or ``server-to-client``) ``data-flags`` ``data-seq`` ``data-ack``
                         ``data-len``
state label              ``text.state`` ``data-side`` (``client``/``server``)
                         ``data-state`` ``data-frame`` (empty for the initial state)
finding marker           ``.finding-marker`` ``data-rule`` ``data-frame`` ``data-finding``
                         (index in the capture's findings), ``severity-<severity>``,
                         ``kind-capture`` or ``kind-endpoint``
missed segment           ``g.lost`` ``data-frame`` (the frame proving it) ``data-direction``
fold                     ``g.fold`` ``data-count`` ``data-bytes`` ``data-first`` ``data-last``
cut note                 ``text.cut``
=======================  ==============================================================

:func:`render_svg` gives one picture (``pcapcheck ladder --format svg``);
:func:`svg_parts` the same picture cut at its folds, for a page that shows each fold as an
expandable ``<details>`` holding the folded segments (the HTML report).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pcapcheck.i18n import gettext as _
from pcapcheck.i18n import ngettext
from pcapcheck.report.common import value_text
from pcapcheck.report.ladder_model import Fold, Ladder, Lost, Mark, Step, fold_words

__all__ = ["LADDER_CSS", "MARKER", "SvgPart", "fold_summary", "render_svg", "svg_parts"]

WIDTH = 760
FRAME_X = 6
CLIENT_X = 200
SERVER_X = 580
ROW = 36  # one arrow
STATE_ROW = 14  # each further state entered at the same frame
MARK_ROW = 18  # the findings' markers under an arrow
HEAD = 58  # the endpoints' names and initial states

#: Colours, written on the elements as presentation attributes (so that a ladder keeps
#: its look where style sheets are stripped, as in Gradescope's HTML output).
ARROW = "#1f3a93"
RESET = "#b00020"
LOST = "#8a5a00"
STATE = "#0b6e4f"
MUTED = "#555"
#: A finding marker's (fill, stroke) by severity; capture artefacts (CP rules) apart.
MARKER = {
    "error": ("#fde7e9", "#b00020"),
    "warning": ("#fff4e0", "#8a4700"),
    "info": ("#e8f0fe", "#1a56b0"),
    "capture": ("#f1ecf7", "#6a3d9a"),
}

#: What a page adds to the ladders (interaction only: the look is on the elements).
LADDER_CSS = """
svg.ladder a.finding-marker { cursor: pointer; }
svg.ladder a.finding-marker:hover rect, svg.ladder a.finding-marker:focus rect { stroke-width: 3; }
"""

#: ``href(mark)``: the link of a finding's marker (None: a marker without link).
Href = Callable[[Mark], "str | None"]


@dataclass
class SvgPart:
    """A piece of a ladder cut at its folds: ``svg`` (the markup of a ``<svg>``), and for a
    fold the :class:`Fold`, its one-line ``summary`` and ``steps_svg`` (the folded
    segments drawn, or ``""`` when the fold kept none)."""

    svg: str
    fold: Fold | None = None
    summary: str = ""
    steps_svg: str = ""


def _size(n: int) -> str:
    if n < 10_000:
        return f"{n} B"
    if n < 10_000_000:
        return f"{n / 1000:.0f} kB"
    return f"{n / 1_000_000:.0f} MB"


def fold_summary(fold: Fold) -> str:
    """``"… 120 data segments, 170 kB (frames 7–126) …"`` (the words:
    :func:`~pcapcheck.report.ladder_model.fold_words`)."""
    return f"… {fold_words(fold, _size(fold.bytes))} …"


def _lost_text(lost: Lost) -> str:
    if lost.start is None or lost.end is None:
        return _("not captured: a segment implied by frame {frame}").format(frame=lost.frame)
    return _("not captured: seq={start} to {end} ({n} bytes of sequence space)").format(
        start=lost.start, end=lost.end, n=lost.end - lost.start
    )


class _Canvas:
    """Rows stacked down one ``<svg>``; :meth:`finish` sizes it and draws the lifelines."""

    def __init__(self, ladder: Ladder, href: Href | None, head: bool, css: bool):
        self.ladder = ladder
        self.href = href
        self.root = ET.Element(
            "svg",
            {
                "xmlns": "http://www.w3.org/2000/svg",
                "class": "ladder",
                "role": "img",
                "data-connection": str(ladder.connection_id),
                "width": str(WIDTH),
                "font-family": "ui-monospace, DejaVu Sans Mono, monospace",
                "font-size": "12",
            },
        )
        conn = ladder.conn
        ET.SubElement(self.root, "title").text = _(
            "Ladder of connection {id}: client {client}, server {server}"
        ).format(id=ladder.connection_id, client=conn["client"], server=conn["server"])
        ET.SubElement(self.root, "desc").text = _("handshake {handshake}, close {close}").format(
            handshake=value_text(conn["handshake"]), close=value_text(conn["close"])
        )
        if css:
            ET.SubElement(self.root, "style").text = LADDER_CSS
        self.lines = ET.SubElement(self.root, "g", {"class": "lifelines"})
        self.y = 0
        self.top = 36 if head else 0
        if head:
            self._head()

    def _text(self, parent: ET.Element, x: float, y: float, text: str, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, "text", {"x": f"{x:g}", "y": f"{y:g}", **attrs})
        el.text = text
        return el

    def _head(self) -> None:
        conn, g = self.ladder.conn, ET.SubElement(self.root, "g", {"class": "head"})
        for side, x, addr in (
            ("client", CLIENT_X, conn["client"]),
            ("server", SERVER_X, conn["server"]),
        ):
            label = _("client") if side == "client" else _("server")
            self._text(
                g,
                x,
                14,
                label,
                **{"class": f"side {side}", "text-anchor": "middle", "font-weight": "bold"},
            )
            self._text(
                g, x, 29, addr, **{"class": "endpoint", "text-anchor": "middle", "fill": MUTED}
            )
        self.y = 46
        self._states(("", self.ladder.initial[0]), ("", self.ladder.initial[1]), self.y)
        self.y = HEAD

    def _states(self, client: tuple[str, str], server: tuple[str, str], y: float) -> None:
        for side, (frame, state) in (("client", client), ("server", server)):
            if not state:
                continue
            x, anchor = (CLIENT_X - 8, "end") if side == "client" else (SERVER_X + 8, "start")
            self._text(
                self.root,
                x,
                y,
                state,
                **{
                    "class": f"state {side}",
                    "text-anchor": anchor,
                    "data-side": side,
                    "data-state": state,
                    "data-frame": frame,
                    "fill": STATE,
                    "font-weight": "bold",
                },
            )

    def _line(
        self, parent: ET.Element, from_client: bool, y: float, color: str, dashed: bool = False
    ) -> tuple[float, float]:
        x1, x2 = (CLIENT_X, SERVER_X) if from_client else (SERVER_X, CLIENT_X)
        y2 = y + 8
        tip = x2 - 9 if from_client else x2 + 9
        line = {"x1": f"{x1}", "y1": f"{y:g}", "x2": f"{tip}", "y2": f"{y2:g}"}
        line.update({"stroke": color, "stroke-width": "1.5"})
        head = {"points": f"{x2},{y2:g} {tip},{y2 - 4:g} {tip},{y2 + 4:g}"}
        if dashed:
            line["stroke-dasharray"] = "6 4"
            head.update({"fill": "none", "stroke": color})
        else:
            head["fill"] = color
        ET.SubElement(parent, "line", line)
        ET.SubElement(parent, "polygon", head)
        return (x1 + x2) / 2, y2

    def lost(self, lost: Lost) -> None:
        y = self.y + 18
        direction = "client-to-server" if lost.from_client else "server-to-client"
        g = ET.SubElement(
            self.root,
            "g",
            {"class": "lost", "data-frame": str(lost.frame), "data-direction": direction},
        )
        text = _lost_text(lost)
        ET.SubElement(g, "title").text = text
        mid, _y2 = self._line(g, lost.from_client, y, LOST, dashed=True)
        self._text(
            g, mid, y - 5, text, **{"text-anchor": "middle", "fill": LOST, "font-style": "italic"}
        )
        self.y += ROW

    def step(self, step: Step) -> None:
        for lost in step.lost:
            self.lost(lost)
        y = self.y + 18
        arrow = step.arrow
        if arrow is not None:
            direction = "client-to-server" if arrow.from_client else "server-to-client"
            flags = arrow.flags.split(",")
            g = ET.SubElement(
                self.root,
                "g",
                {
                    "class": "arrow " + " ".join(f"flag-{f.lower()}" for f in flags),
                    "data-frame": str(step.frame),
                    "data-direction": direction,
                    "data-flags": arrow.flags,
                    "data-seq": str(arrow.seq),
                    "data-ack": "" if arrow.ack is None else str(arrow.ack),
                    "data-len": str(arrow.length),
                },
            )
            ET.SubElement(g, "title").text = _("frame {frame}: {label}").format(
                frame=step.frame, label=arrow.label
            )
            self._text(
                g, FRAME_X, y + 4, str(step.frame), **{"class": "frame-number", "fill": MUTED}
            )
            color = RESET if "RST" in flags else ARROW
            mid, _y2 = self._line(g, arrow.from_client, y, color)
            self._text(g, mid, y - 5, arrow.label, **{"class": "label", "text-anchor": "middle"})
        else:
            self._text(
                self.root,
                FRAME_X,
                y + 4,
                str(step.frame),
                **{"class": "frame-number", "fill": MUTED},
            )
        frame = str(step.frame)
        cs, ss = list(step.client_states), list(step.server_states)
        sy = y + 4
        while cs or ss:
            self._states((frame, cs.pop(0) if cs else ""), (frame, ss.pop(0) if ss else ""), sy)
            sy += STATE_ROW
        extra = max(len(step.client_states), len(step.server_states), 1) - 1
        bottom = y + ROW - 18 + extra * STATE_ROW
        if step.marks:
            self.marks(step.marks, y + 14)
            bottom = max(bottom, y + 14 + MARK_ROW + 4)
        self.y = bottom

    def marks(self, marks: Sequence[Mark], y: float) -> None:
        x = (CLIENT_X + SERVER_X) / 2 - (len(marks) * 64 - 4) / 2
        for mark in marks:
            link = self.href(mark) if self.href is not None else None
            kind = "capture" if mark.capture else "endpoint"
            attrs = {
                "class": f"finding-marker severity-{mark.severity} kind-{kind}",
                "data-rule": mark.rule,
                "data-frame": "" if mark.frame is None else str(mark.frame),
                "data-finding": str(mark.index),
            }
            if link is not None:
                attrs["href"] = link
                el = ET.SubElement(self.root, "a", attrs)
            else:
                el = ET.SubElement(self.root, "g", attrs)
            ET.SubElement(el, "title").text = _("{rule} {name} ({severity}): {message}").format(
                rule=mark.rule,
                name=mark.name,
                severity=value_text(mark.severity),
                message=mark.message,
            )
            fill, stroke = MARKER["capture" if mark.capture else mark.severity]
            rect = {"x": f"{x:g}", "y": f"{y:g}", "width": "60", "height": "16", "rx": "3"}
            rect.update({"fill": fill, "stroke": stroke, "stroke-width": "1.5"})
            if mark.capture:
                rect["stroke-dasharray"] = "3 2"
            ET.SubElement(el, "rect", rect)
            self._text(
                el,
                x + 30,
                y + 12,
                f"▲ {mark.rule}",
                **{
                    "text-anchor": "middle",
                    "fill": stroke,
                    "font-size": "11",
                    "font-weight": "bold",
                },
            )
            x += 64

    def fold(self, fold: Fold) -> None:
        y = self.y + 18
        g = ET.SubElement(
            self.root,
            "g",
            {
                "class": "fold",
                "data-count": str(fold.count),
                "data-bytes": str(fold.bytes),
                "data-first": str(fold.first_frame),
                "data-last": str(fold.last_frame),
            },
        )
        text = fold_summary(fold)
        ET.SubElement(g, "title").text = text
        for x in (CLIENT_X, SERVER_X):  # a break mark on each lifeline
            ET.SubElement(
                g,
                "line",
                {
                    "x1": f"{x - 8}",
                    "y1": f"{y - 8:g}",
                    "x2": f"{x + 8}",
                    "y2": f"{y - 4:g}",
                    "stroke": "#999",
                },
            )
        self._text(
            g,
            (CLIENT_X + SERVER_X) / 2,
            y + 8,
            text,
            **{"text-anchor": "middle", "fill": MUTED, "font-style": "italic"},
        )
        self.y += ROW - 6

    def note(self, text: str, cls: str) -> None:
        self._text(
            self.root,
            (CLIENT_X + SERVER_X) / 2,
            self.y + 16,
            text,
            **{"class": cls, "text-anchor": "middle", "fill": MUTED, "font-style": "italic"},
        )
        self.y += ROW - 10

    def finish(self) -> str:
        height = self.y + 8
        self.root.set("height", f"{height:g}")
        self.root.set("viewBox", f"0 0 {WIDTH} {height:g}")
        top = self.top
        for x in (CLIENT_X, SERVER_X):
            ET.SubElement(
                self.lines,
                "line",
                {
                    "class": "lifeline",
                    "x1": f"{x}",
                    "y1": f"{min(top, height):g}",
                    "x2": f"{x}",
                    "y2": f"{height:g}",
                    "stroke": MUTED,
                    "stroke-width": "2",
                },
            )
        return ET.tostring(self.root, encoding="unicode")


def _tail(canvas: _Canvas, ladder: Ladder) -> None:
    if ladder.cut is not None:
        from pcapcheck.report.ladder import cut_text

        canvas.note(cut_text(ladder), "cut")
    if ladder.late:
        canvas.y += 4
        canvas.marks(ladder.late, canvas.y)
        canvas.y += MARK_ROW + 6


def render_svg(ladder: Ladder, href: Href | None = None, css: bool = True) -> str:
    """The whole ladder as one ``<svg>`` element (folds drawn as one row each).

    ``href(mark)``: the link of each finding marker (None, or a function returning None:
    markers without links); ``css``: include the style sheet (:data:`LADDER_CSS`) in a
    ``<style>`` element (a standalone file), else the page supplies it."""
    canvas = _Canvas(ladder, href, head=True, css=css)
    for entry in ladder.entries:
        if isinstance(entry, Fold):
            canvas.fold(entry)
        else:
            canvas.step(entry)
    _tail(canvas, ladder)
    return canvas.finish()


def svg_parts(ladder: Ladder, href: Href | None = None) -> list[SvgPart]:
    """The ladder cut at its folds: the rows between folds as ``<svg>`` pieces (the first
    with the endpoints' names and initial states) and each fold as an :class:`SvgPart`
    with its summary row and its folded segments drawn (``steps_svg``; a note says how
    many were not kept: :data:`~pcapcheck.report.ladder_model.FOLD_STEPS` in all).
    Stacked, the pieces are the picture of :func:`render_svg`. Without ``<style>``: the
    page supplies :data:`LADDER_CSS`."""
    parts: list[SvgPart] = []
    canvas = _Canvas(ladder, href, head=True, css=False)
    for entry in ladder.entries:
        if isinstance(entry, Fold):
            parts.append(SvgPart(canvas.finish()))
            row = _Canvas(ladder, href, head=False, css=False)
            row.fold(entry)
            body = _Canvas(ladder, href, head=False, css=False)
            for step in entry.steps:
                body.step(step)
            if entry.hidden:
                body.note(
                    ngettext(
                        "{n} more folded segment not drawn",
                        "{n} more folded segments not drawn",
                        entry.hidden,
                    ).format(n=entry.hidden),
                    "cut",
                )
            parts.append(SvgPart(row.finish(), entry, fold_summary(entry), body.finish()))
            canvas = _Canvas(ladder, href, head=False, css=False)
        else:
            canvas.step(entry)
    _tail(canvas, ladder)
    parts.append(SvgPart(canvas.finish()))
    return parts
