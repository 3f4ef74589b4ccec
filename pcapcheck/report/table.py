"""The human-readable report: a connection table and a findings table (tabulate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tabulate import tabulate

from pcapcheck.i18n import gettext as _
from pcapcheck.report import statistics_rows
from pcapcheck.report.common import (
    column_title,
    connection_columns,
    connection_row,
    summary_line,
    value_text,
)
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext


def render(
    results: Sequence[FileResult], ctx: ReportContext | None = None, *, color: bool = False
) -> str:
    """Render each file as a connection table, a findings table and a summary line.

    Frame numbers are Wireshark's (1-based); messages use relative sequence numbers.
    A file that could not be read is ``error: REASON``. With ``ctx.statistics`` a blank
    line and one line per rule with findings (``count rule name severity``, all files
    together, most frequent first) follow.
    """
    out: list[str] = []
    for res in results:
        if len(results) > 1:
            out.append(f"== {res.path} ==")
        if res.error is not None:
            out.append(_("error: {reason}").format(reason=res.error))
            out.append("")
            continue
        if res.connections:
            tunnel = any(c.get("encapsulation") for c in res.connections)
            headers = connection_columns(tunnel)  # the tunnel's short form when tunnelled
            rows = [[cells[h] for h in headers] for cells in map(connection_row, res.connections)]
            out.append(
                tabulate(
                    rows,
                    headers=[column_title(h) for h in headers],
                    tablefmt="simple",
                )
            )
            if any(c["roles_inferred"] for c in res.connections):
                out.append(
                    _(
                        "* no SYN captured: client and server inferred (the sender of "
                        "a SYN-ACK, else the well-known or lower port, is the server)"
                    )
                )
        else:
            out.append(_("no TCP connections"))
        out.append("")
        if res.findings:
            rows = [
                [
                    f.rule,
                    value_text(f.severity),
                    f.connection if f.connection is not None else "-",
                    f.frame if f.frame is not None else "-",
                    f.message,
                ]
                for f in res.findings
            ]
            out.append(
                tabulate(
                    rows,
                    headers=[
                        column_title(h) for h in ("rule", "severity", "conn", "frame", "message")
                    ],
                    tablefmt="simple",
                    maxcolwidths=[None, None, None, None, 90],
                )
            )
            out.append("")
        out.append(summary_line(res))
        out.append("")
    text = "\n".join(out).rstrip("\n") + "\n"
    if ctx is not None and ctx.statistics:
        stats = statistics_rows(results)
        if stats:
            text += "\n" + stats
    return text
