"""The JSON Lines report: one finding per line (https://jsonlines.org/).

Each line is a JSON object ``{"path", "rule", "name", "severity", "connection", "frame",
"message", "data"}`` (the finding keys of the JSON report plus the capture ``path``), in
file order then frame order. A capture that could not be read is one line
``{"path", "error"}``. No findings and no errors: empty output. Connections are not
reported (use ``json`` for them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from pcapcheck.report import text_of
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext


def records(results: Sequence[FileResult]) -> Iterator[dict[str, Any]]:
    """The line objects, in output order."""
    for res in results:
        if res.error is not None:
            yield {"path": res.path, "error": res.error}
            continue
        for f in res.findings:
            yield {
                "path": res.path,
                "rule": f.rule,
                "name": f.name,
                "severity": f.severity,
                "connection": f.connection,
                "frame": f.frame,
                "message": f.message,
                "data": f.data,
            }


def write(results: Sequence[FileResult], out: TextIO, ctx: ReportContext | None = None) -> None:
    """Write one compact JSON object per line, each line ending in ``\\n`` (non-ASCII
    kept as UTF-8; values JSON cannot hold are written as strings), one finding at a
    time. ``ctx`` is not used."""
    dumps = json.JSONEncoder(ensure_ascii=False, default=str).encode
    for rec in records(results):
        out.write(dumps(rec) + "\n")


def render(results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """The text :func:`write` writes."""
    return text_of(write, results, ctx)
