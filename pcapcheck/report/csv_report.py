"""The CSV report: one finding per row, written with :mod:`csv` (RFC 4180 quoting).

Columns (header row first): ``path, rule, name, severity, connection, frame, message``;
an empty cell stands for "none" (a file-level finding has no connection, CP006 no frame).
A capture that could not be read is one row with empty ``rule``/``name``, severity
``error`` and the reason as ``message``. CSV holds a single table, so the connection
table is not included (use ``json`` for it), nor the event ``data``. Lines end in
``\\n``; a field holding a comma, a double quote, a CR or an LF is quoted (RFC 4180,
section 2, rule 6), so that no field splits its row.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from pcapcheck.report import text_of
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext

#: The header row.
COLUMNS = ("path", "rule", "name", "severity", "connection", "frame", "message")


class _LineFeed:
    """A text stream whose writes (one per CSV row) end in ``\\n`` where the row ends in
    ``\\r\\n`` (the row's own line breaks are inside quotes)."""

    def __init__(self, out: TextIO):
        self._out = out

    def write(self, row: str) -> int:
        if row.endswith("\r\n"):
            row = row[:-2] + "\n"
        return self._out.write(row)


def render(results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """The text :func:`write` writes."""
    return text_of(write, results, ctx)


def write(results: Sequence[FileResult], out: TextIO, ctx: ReportContext | None = None) -> None:
    """Write the header row and one row per finding (per unreadable capture), in file
    order then frame order, one row at a time. ``ctx`` is not used (``statistics`` does
    not apply: one table)."""
    # The csv module quotes a field holding a character of the line terminator: with
    # "\r\n" a bare CR is quoted too (with "\n" alone it would split the row for a
    # reader that takes CR as a line end); each row's "\r\n" is written as "\n".
    writer = csv.writer(_LineFeed(out), lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for res in results:
        if res.error is not None:
            writer.writerow([res.path, "", "", "error", "", "", res.error])
            continue
        for f in res.findings:
            writer.writerow(
                [res.path, f.rule, f.name, f.severity, f.connection, f.frame, f.message]
            )
