"""The Markdown report: GitHub-flavoured Markdown (tables by tabulate, ``tablefmt="github"``).

Layout::

    ## pcapcheck

    ### `capture.pcap`

    | id | client | server | ... |          <- the connection table (as ``table``)
    |---:|:-------|:-------|-----|

    | rule | name | severity | conn | frame | message |   <- the findings table

    1 connection, 2 findings (1 error, 1 warning) in 3 packets

A capture that could not be read gets its heading and ``**error:** REASON``. Table cells
are escaped: the Markdown punctuation that could start inline markup (``\\ ` * _ [ ] < >``)
and ``|`` get a backslash (GFM's escape for a pipe inside a table), line breaks become
``<br>``. With ``ctx.statistics`` a last section ``### Statistics`` holds the per-rule
counts. Headings, fixed texts and values (severity, handshake, close) are in the current language
(:mod:`pcapcheck.i18n`); rule ids and names, RFC 9293 state names and Zeek's
``conn_state`` stay as they are. GitHub renders it in step summaries (:func:`pcapcheck.report.github.write_step_summary`),
pull-request comments and ``.md`` files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from pcapcheck.i18n import gettext as _
from pcapcheck.report import rule_statistics
from pcapcheck.report.common import (
    NUMERIC_COLUMNS,
    column_title,
    connection_columns,
    connection_row,
    summary_line,
    value_text,
)
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext

_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")
_NEWLINE = re.compile(r"\r\n|\r|\n")


def escape(text: Any) -> str:
    """``text`` (any value; ``None`` → ``""``) safe inside a GFM table cell: markup
    punctuation and pipes backslash-escaped, line breaks as ``<br>``."""
    if text is None:
        return ""
    return _NEWLINE.sub("<br>", _SPECIAL.sub(r"\\\1", str(text)))


def code_span(text: str) -> str:
    """``text`` as a Markdown code span, with a backtick fence longer than any backtick
    run inside it (CommonMark), so paths are shown verbatim."""
    text = _NEWLINE.sub(" ", text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(rows: list[list[Any]], headers: list[str], align: list[str]) -> str:
    return tabulate(
        [[escape(cell) for cell in row] for row in rows],
        headers=[column_title(h) for h in headers],
        tablefmt="github",
        disable_numparse=True,
        colalign=align,
    )


def render(results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """The whole report as GitHub-flavoured Markdown, newline-terminated (see the module
    docstring for the layout). Frame numbers are Wireshark's; messages use relative
    sequence numbers."""
    out = ["## pcapcheck", ""]
    if not results:
        out += [_("No captures."), ""]
    for res in results:
        out += [f"### {code_span(res.path)}", ""]
        if res.error is not None:
            out += [_("**error:** {reason}").format(reason=escape(res.error)), ""]
            continue
        if res.connections:
            headers = connection_columns(tunnel=False)
            rows = [[cells[h] for h in headers] for cells in map(connection_row, res.connections)]
            align = ["right" if h in NUMERIC_COLUMNS else "left" for h in headers]
            out.append(_table(rows, headers, align))
            if any(c["roles_inferred"] for c in res.connections):
                out += [
                    "",
                    escape(
                        _(
                            "* no SYN captured: client and server inferred from the "
                            "ports (the well-known or lower port is the server)"
                        )
                    ),
                ]
        else:
            out.append(_("No TCP connections."))
        out.append("")
        if res.findings:
            rows = [
                [
                    f.rule,
                    f.name,
                    value_text(f.severity),
                    f.connection if f.connection is not None else "-",
                    f.frame if f.frame is not None else "-",
                    f.message,
                ]
                for f in res.findings
            ]
            out += [
                _table(
                    rows,
                    ["rule", "name", "severity", "conn", "frame", "message"],
                    ["left", "left", "left", "right", "right", "left"],
                ),
                "",
            ]
        out += [escape(summary_line(res)), ""]
    if ctx is not None and ctx.statistics:
        stats = rule_statistics(results)
        out += [_("### Statistics"), ""]
        if stats:
            out += [
                _table(
                    [[n, rule, name, value_text(sev)] for n, rule, name, sev in stats],
                    ["count", "rule", "name", "severity"],
                    ["right", "left", "left", "left"],
                ),
                "",
            ]
        else:
            out += [_("No findings."), ""]
    return "\n".join(out).rstrip("\n") + "\n"
