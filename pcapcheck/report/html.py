"""The HTML report: one self-contained page (``--format html``).

Per capture: a summary (packets, TCP segments, connections, findings by severity, records
skipped and malformed, the time span of its connections); the connection table (the
columns of the ``table`` format plus the encapsulation, sortable and filterable in the
page, each row linking to its connection); the findings by rule, each rule's explanation
(its Markdown rendered) one click away; and per connection with findings (then the
others, up to :data:`MAX_LADDERS` in all) its findings (message, frame, both endpoints'
states, a Wireshark display filter to copy) and its ladder as SVG
(:mod:`pcapcheck.report.ladder_svg`), each fold of a long data phase an expandable
``<details>``.

The page loads nothing: its style and its small script are inline, allowed by a
Content-Security-Policy (``default-src 'none'``) that names their SHA-256 hashes, so no
other script or style can run, even one a capture's text would smuggle in. Everything
from a capture or a file name is untrusted text: the page is a Jinja2 template with
autoescaping, the SVG an element tree. Printable (``@media print``: the ladders' folds
open, the filter and buttons hidden).

Bounds, so that the page of a capture of a million packets stays usable: the table lists
the first :data:`MAX_TABLE_ROWS` connections, the findings the first
:data:`MAX_FINDINGS` (the counts by severity and by rule are complete), ladders are drawn
for :data:`MAX_LADDERS` connections of at most :data:`LADDER_STEPS` rows each and
:data:`LADDER_ROWS` rows in all; the page says what it left out. Drawing the ladders re-reads the capture (``FileResult.path``) up
to the last frame of the connections drawn; a capture that cannot be re-read (standard
input, a name that is not valid UTF-8) gets no ladders, and the page says so. Memory
does not grow with the capture's length: the drawn connections are chosen first and
only their findings kept (those of the first :data:`LADDER_STEPS` frames with one), and
each ladder is built while the capture is re-read
(:class:`~pcapcheck.report.ladder_model.LadderBuilder`: a bounded number of segments
held).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import cache
from typing import TYPE_CHECKING, Any

from pcapcheck.__about__ import __version__
from pcapcheck.i18n import get_language, ngettext
from pcapcheck.i18n import gettext as _
from pcapcheck.report import lookup_rule
from pcapcheck.report.common import (
    NUMERIC_COLUMNS,
    column_title,
    connection_columns,
    connection_filter,
    connection_row,
    severity_count_parts,
    state_text,
    value_text,
)
from pcapcheck.report.ladder_model import is_capture_rule
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup

    from pcapcheck.model import Finding
    from pcapcheck.report import ReportContext
    from pcapcheck.report.ladder_model import Ladder, Step

__all__ = [
    "LADDER_ROWS",
    "LADDER_STEPS",
    "MAX_FINDINGS",
    "MAX_LADDERS",
    "MAX_TABLE_ROWS",
    "connection_filter",
    "environment",
    "frame_filter",
    "page_assets",
    "render",
    "render_ladder_page",
    "render_markdown",
]

#: Connections drawn as ladders at most per capture (those with findings first).
MAX_LADDERS = 25
#: Rows (steps and folds) of one ladder at most in the page.
LADDER_STEPS = 400
#: Rows of all the ladders of one capture at most, folded segments kept included (about
#: 600 bytes each: the ladders of a capture stay under about 3 MB).
LADDER_ROWS = 5000
#: Connections listed in the table at most per capture (in id order).
MAX_TABLE_ROWS = 1000
#: Findings listed one by one at most per capture (in connection, then frame order).
MAX_FINDINGS = 1000


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of pcapcheck's pages (templates in
    ``pcapcheck/report/templates``): autoescaping on, the ``i18n`` extension with
    :mod:`pcapcheck.i18n`'s ``gettext``/``ngettext`` (new style: ``{{ _("...") }}``)."""
    import jinja2

    from pcapcheck.i18n import gettext, ngettext

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pcapcheck.report", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,  # a page ends with a newline, as every report does
        undefined=jinja2.StrictUndefined,
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    # a severity, handshake or close outcome in the current language (identity in English)
    env.filters["value_text"] = value_text
    return env


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


@cache
def page_assets() -> dict[str, Any]:
    """The page's inline style sheet (``css``, with the ladders' style) and script (``js``)
    as markup, and the Content-Security-Policy (``csp``) allowing exactly those two."""
    from markupsafe import Markup

    from pcapcheck.report.ladder_svg import LADDER_CSS

    env = environment()
    loader = env.loader
    assert loader is not None
    css = loader.get_source(env, "report.css")[0] + LADDER_CSS
    js = loader.get_source(env, "report.js")[0]
    csp = (
        f"default-src 'none'; style-src {_hash(css)}; script-src {_hash(js)}; "
        "base-uri 'none'; form-action 'none'"
    )
    return {"css": Markup(css), "js": Markup(js), "csp": csp}


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False})


def render_markdown(text: str) -> Markup:
    """``text`` (Markdown: a rule's explanation) as HTML; raw HTML in it is escaped
    (markdown-it-py, CommonMark, ``html: False``)."""
    from markupsafe import Markup

    return Markup(_markdown().render(text))


def frame_filter(frame: int) -> str:
    """``frame.number == 7``."""
    return f"frame.number == {frame}"


def _time(ts: float | None) -> str:
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    except (OverflowError, OSError, ValueError):  # a clock far off the calendar's range
        return _("{seconds:.6f} s since the epoch").format(seconds=ts)


#: The HTML table's columns (every one: the tunnel's too) and the class of their cells.
_COLUMNS = connection_columns(tunnel=True)
_CELL_CLASS = {"client": "mono", "server": "mono", "tunnel": "mono"}


def _columns() -> list[dict[str, Any]]:
    """The connection table's headings, in the current language."""
    return [{"title": column_title(c), "numeric": c in NUMERIC_COLUMNS} for c in _COLUMNS]


def _row(conn: Mapping[str, Any]) -> dict[str, Any]:
    """A connection as the page shows it: ``cells`` (report.common's row, by column
    name), the table's ``values`` in column order with their class, and the bare
    endpoints for headings."""
    cells = connection_row(conn)
    return {
        "id": conn["id"],
        "client": conn["client"],
        "server": conn["server"],
        "inferred": conn["roles_inferred"],
        "cells": cells,
        "values": [
            ("num" if c in NUMERIC_COLUMNS else _CELL_CLASS.get(c, ""), cells[c]) for c in _COLUMNS
        ],
    }


def _finding(f: Finding, index: int, anchor: str) -> dict[str, Any]:
    data = f.data or {}
    return {
        "anchor": f"{anchor}-f{index}",
        "rule": f.rule,
        "name": f.name,
        "severity": f.severity,
        "frame": f.frame,
        "message": f.message,
        "states": (
            (state_text(data.get("client_state")), state_text(data.get("server_state")))
            if data.get("client_state") or data.get("server_state")
            else None
        ),
        "filter": frame_filter(f.frame) if f.frame is not None else "",
        "capture": is_capture_rule(f.rule),
    }


class _LadderFindings:
    """The findings of one drawn connection that its ladder can show: every one without
    a frame, and those at the ``limit`` first frames that have one (a ladder of
    ``limit`` rows draws no later frame: each frame with a finding is a row of its own).
    Holds at most ``limit`` frames' findings however many the connection has."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.at: dict[int | None, list[tuple[int, Finding]]] = {}
        self._frames: list[int] = []  # a max-heap (negated) of the frames kept

    def add(self, index: int, f: Finding) -> None:
        frame = f.frame
        if frame is not None and frame not in self.at:
            if len(self._frames) >= self.limit:
                if frame > -self._frames[0]:
                    return
                del self.at[-heapq.heappop(self._frames)]
            heapq.heappush(self._frames, -frame)
        self.at.setdefault(frame, []).append((index, f))

    def pairs(self) -> list[tuple[int, Finding]]:
        """The ``(index, finding)`` pairs kept, in index order."""
        return sorted((p for ps in self.at.values() for p in ps), key=lambda p: p[0])


def _capture(
    res: FileResult,
    number: int,
    ctx: ReportContext | None,
    max_ladders: int,
    ladder_steps: int,
) -> dict[str, Any]:
    """What the template shows of one capture."""
    anchor = f"c{number}"
    out: dict[str, Any] = {"path": res.path, "anchor": anchor, "error": res.error}
    if res.error is not None:
        return out

    # Connections first: the table's rows, the ones to draw (with findings first), the
    # span; then only the drawn connections' findings are kept for their ladders.
    rows: list[dict[str, Any]] = []
    with_findings: list[Mapping[str, Any]] = []
    without: list[Mapping[str, Any]] = []
    first_ts: float | None = None
    last_ts: float | None = None
    count = 0
    tunnels = False
    for conn in res.connections:
        count += 1
        if len(rows) < MAX_TABLE_ROWS:
            rows.append(_row(conn))
            tunnels = tunnels or bool(rows[-1]["cells"]["tunnel"])
        if conn["findings"] and len(with_findings) < max_ladders:
            with_findings.append(conn)
        elif not conn["findings"] and len(without) < max_ladders:
            without.append(conn)
        start = conn.get("start_ts")
        if start is not None:
            end = start + (conn.get("duration") or 0.0)
            first_ts = start if first_ts is None else min(first_ts, start)
            last_ts = end if last_ts is None else max(last_ts, end)
    drawn = (with_findings + without)[:max_ladders]
    drawn_ids = {c["id"] for c in drawn}

    # Findings: complete counts, the first MAX_FINDINGS one by one, and those of the
    # drawn connections that a ladder of ``ladder_steps`` rows can show.
    by_severity: Counter = Counter()
    by_rule: dict[str, dict[str, Any]] = {}
    listed: dict[int | None, list[dict[str, Any]]] = {}
    pairs = {cid: _LadderFindings(ladder_steps) for cid in drawn_ids}
    shown = 0
    for index, f in enumerate(res.findings):
        by_severity[f.severity] += 1
        rule = by_rule.get(f.rule)
        if rule is None:
            rule = by_rule[f.rule] = {
                "rule": f.rule,
                "name": f.name,
                "severity": f.severity,
                "count": 0,
                "anchor": f"{anchor}-rule-{f.rule}",
                "findings": [],
            }
        rule["count"] += 1
        if shown < MAX_FINDINGS:
            item = _finding(f, index, anchor)
            item["connection"] = f.connection
            listed.setdefault(f.connection, []).append(item)
            rule["findings"].append(item)
            shown += 1
        if f.connection in pairs:
            pairs[f.connection].add(index, f)
    for rule in by_rule.values():
        found = lookup_rule(ctx, rule["rule"], rule["name"])
        rule["summary"] = found.text("summary") if found is not None else ""
        rule["explanation"] = (
            render_markdown(found.text("explanation")) if found is not None else None
        )
        rule["capture"] = is_capture_rule(rule["rule"])

    from pcapcheck.report.ladder_model import (
        FOLD_KEEP,
        FOLD_STEPS,
        Fold,
        LadderBuilder,
        trim_ladder,
    )
    from pcapcheck.report.ladder_svg import svg_parts

    ladder_note = ""
    builders: dict[int, LadderBuilder] = {}
    if drawn:
        from pcapcheck.capture.reader import CaptureError
        from pcapcheck.report.ladder import scan_segments

        builders = {
            c["id"]: LadderBuilder(
                res,
                c["id"],
                findings=pairs[c["id"]].pairs(),
                conn=c,
                max_steps=ladder_steps,
                fold_steps=min(FOLD_STEPS, LADDER_ROWS),
            )
            for c in drawn
        }
        try:
            if not os.path.isfile(res.path):
                raise OSError(res.path)
            ports = ctx.tunnel_ports if ctx is not None else None
            for cid, seg in scan_segments(res.path, drawn, ports):
                builders[cid].add(seg)
        except (CaptureError, OSError, ValueError):
            ladder_note = _("The capture could not be read again: no ladders are drawn.")
            drawn, drawn_ids = [], set()

    def href(mark: Any) -> str:
        return f"#{anchor}-f{mark.index}"

    sections = []
    rows_left = LADDER_ROWS
    kept_ids: set[int] = set()
    for drawn_conn in sorted(drawn, key=lambda c: c["id"]):
        if rows_left < 2 * FOLD_KEEP + 4:  # the page's budget of rows is spent
            break
        steps = min(ladder_steps, rows_left)
        ladder = trim_ladder(
            builders[drawn_conn["id"]].ladder(), steps, min(FOLD_STEPS, rows_left - steps)
        )
        rows_left -= len(ladder.entries) + sum(
            len(e.steps) for e in ladder.entries if isinstance(e, Fold)
        )
        kept_ids.add(drawn_conn["id"])
        sections.append(_section(drawn_conn, anchor, listed, svg_parts(ladder, href)))
    if len(kept_ids) < len(drawn):
        drawn = [c for c in drawn if c["id"] in kept_ids]
        drawn_ids = kept_ids
    # Connections with findings listed but not drawn: their findings without a ladder.
    undrawn = sorted(cid for cid in listed if cid is not None and cid not in drawn_ids)
    kept: dict[int, Mapping[str, Any]] = {}
    if undrawn:
        wanted = set(undrawn)
        kept = {c["id"]: c for c in res.connections if c["id"] in wanted}
    for cid in undrawn:
        sections.append(_section(kept.get(cid), anchor, listed, None, cid))

    sections.sort(key=lambda s: s["id"])
    linked = {s["id"] for s in sections}
    for r in rows:
        r["anchor"] = f"{anchor}-conn{r['id']}" if r["id"] in linked else None
    skipped_kinds = ", ".join(f"{v} {k}" for k, v in sorted(res.skipped.items()))
    out.update(
        {
            "format": res.format,
            "packets": res.packets,
            "tcp_packets": res.tcp_packets,
            "connection_count": count,
            "finding_count": len(res.findings),
            "severities": severity_count_parts(by_severity),
            "skipped": sum(res.skipped.values()),
            "skipped_kinds": skipped_kinds,
            "malformed": res.malformed,
            "truncated": res.truncated,
            "first": _time(first_ts),
            "last": _time(last_ts),
            "span": None if first_ts is None or last_ts is None else last_ts - first_ts,
            "rows": rows,
            "columns": _columns(),
            "tunnels": tunnels,
            "inferred": any(r["inferred"] for r in rows),
            "rows_left_out": count - len(rows),
            "rules": sorted(by_rule.values(), key=lambda r: (-r["count"], r["rule"])),
            "file_findings": listed.get(None, []),
            "findings_left_out": len(res.findings) - shown,
            "sections": sections,
            "ladders": len(drawn),
            "ladders_left_out": max(0, count - len(drawn)),
            "ladder_note": ladder_note,
        }
    )
    return out


def _section(
    conn: Mapping[str, Any] | None,
    anchor: str,
    listed: Mapping[int | None, list[dict[str, Any]]],
    parts: Any,
    cid: int | None = None,
) -> dict[str, Any]:
    cid = conn["id"] if conn is not None else cid
    return {
        "id": cid,
        "anchor": f"{anchor}-conn{cid}",
        "conn": None if conn is None else _row(conn),
        "filter": None if conn is None else connection_filter(conn),
        "findings": listed.get(cid, []),
        "parts": parts,
    }


def render(
    results: Sequence[FileResult],
    ctx: ReportContext | None = None,
    *,
    max_ladders: int = MAX_LADDERS,
    ladder_steps: int = LADDER_STEPS,
) -> str:
    """The HTML page of ``results`` (one section per capture, in order). ``ctx`` gives
    the rule catalogue for the explanations (default: the shipped rules);
    ``max_ladders``: connections drawn per capture; ``ladder_steps``: rows per ladder."""
    captures = [
        _capture(res, n, ctx, max_ladders, ladder_steps) for n, res in enumerate(results, 1)
    ]
    template = environment().get_template("report.html.j2")
    total = sum(c.get("finding_count", 0) for c in captures)
    title = ngettext(
        "pcapcheck report: {n} capture", "pcapcheck report: {n} captures", len(captures)
    ).format(n=len(captures))
    return template.render(
        lang=get_language(),
        title=title,
        version=__version__,
        captures=captures,
        total_findings=total,
        assets=page_assets(),
        words=_words(),
    )


def _words() -> dict[str, str]:
    """The words of each listed finding, translated once per page."""
    return {
        "frame": _("frame"),
        "states": _("states: client {client}, server {server}"),
        "wireshark": _("Wireshark:"),
        "copy": _("Copy"),
        "copy_title": _("Copy the display filter"),
        "means": _("What {rule} means"),
    }


def render_ladder_page(ladder: Ladder, result: FileResult, ctx: ReportContext | None = None) -> str:
    """One connection's ladder as a self-contained page (``pcapcheck ladder --format
    html``): the connection, its findings (each with its explanation one click away)
    and the SVG ladder, whose finding markers link to them."""
    from pcapcheck.report.ladder_svg import svg_parts

    anchor = "c1"
    findings = []
    for mark in [m for step in _all_steps(ladder) for m in step.marks] + list(ladder.late):
        f = result.findings[mark.index]
        item = _finding(f, mark.index, anchor)
        rule = lookup_rule(ctx, f.rule, f.name)
        item["explanation"] = (
            render_markdown(rule.text("explanation")) if rule is not None else None
        )
        findings.append(item)
    conn = ladder.conn
    title = _("Ladder of connection {id}: client {client}, server {server}").format(
        id=ladder.connection_id, client=conn["client"], server=conn["server"]
    )
    return (
        environment()
        .get_template("ladder.html.j2")
        .render(
            lang=get_language(),
            title=title,
            version=__version__,
            path=result.path,
            anchor=anchor,
            conn=_row(conn),
            filter=connection_filter(conn),
            findings=findings,
            parts=svg_parts(ladder, lambda m: f"#{anchor}-f{m.index}"),
            assets=page_assets(),
        )
    )


def _all_steps(ladder: Ladder) -> list[Step]:
    """Every step of ``ladder``, the folded ones too (a fold holds no finding: a safety)."""
    from pcapcheck.report.ladder_model import Fold

    out: list[Step] = []
    for entry in ladder.entries:
        if isinstance(entry, Fold):
            out.extend(entry.steps)
        else:
            out.append(entry)
    return out
