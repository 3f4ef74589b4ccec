"""The human-readable report: a connection table and a findings table (tabulate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tabulate import tabulate

from pcapcheck.i18n import gettext as _
from pcapcheck.report import statistics_rows
from pcapcheck.report.common import column_title, encapsulation_short, summary_line, value_text
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext


def _state(value: str | None) -> str:
    return value if value is not None else "?"


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
            rows = [
                [
                    c["id"],
                    c["client"] + ("*" if c["roles_inferred"] else ""),
                    c["server"],
                    value_text(c["handshake"]),
                    value_text(c["close"]),
                    _state(c["client_state"]),
                    _state(c["server_state"]),
                    c["conn_state"] or "",
                    c["packets"]["client"] + c["packets"]["server"],
                    c["findings"],
                ]
                for c in res.connections
            ]
            headers = [
                "id",
                "client",
                "server",
                "handshake",
                "close",
                "client state",
                "server state",
                "conn_state",
                "packets",
                "findings",
            ]
            if any(c.get("encapsulation") for c in res.connections):
                # tunnelled connections: the short form of their encapsulation path
                headers.insert(3, "tunnel")
                for row, c in zip(rows, res.connections):
                    row.insert(3, encapsulation_short(c))
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
