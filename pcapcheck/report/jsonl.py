"""The JSON Lines report: one finding per line (https://jsonlines.org/).

Each line is a JSON object ``{"path", "rule", "name", "severity", "connection", "frame",
"message", "data"}`` (the finding keys of the JSON report plus the capture ``path``), in
file order then frame order. A capture that could not be read is one line
``{"path", "error"}``. No findings and no errors: empty output.

With ``ReportContext(connections=True)`` (``pcapcheck analyze --connections``) each
connection is a line too, ``{"path", "connection", "summary"}``: its id and its summary
(the object the JSON report holds for it, ``findings`` its number of findings), after
the capture's findings, in id order. Without it, connections are not reported (use
``json`` for them).

A live pipe (``tcpdump -U -w - | pcapcheck analyze - -f jsonl``) writes the same lines
as each connection is finalised (:class:`LiveWriter`): a connection's findings, then its
summary line; so the order is that of finalisation, not of frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from pcapcheck.report import text_of
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    from pcapcheck.model import Finding
    from pcapcheck.report import ReportContext, Writer


def records(results: Sequence[FileResult], connections: bool = False) -> Iterator[dict[str, Any]]:
    """The line objects, in output order; ``connections``: the connection lines too."""
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
        if connections:
            for conn in res.connections:
                yield {"path": res.path, "connection": conn["id"], "summary": conn}


def write(results: Sequence[FileResult], out: TextIO, ctx: ReportContext | None = None) -> None:
    """Write one compact JSON object per line, each line ending in ``\\n`` (non-ASCII
    kept as UTF-8; values JSON cannot hold are written as strings), one finding at a
    time. ``ctx``: its ``connections`` adds the connection lines."""
    dumps = json.JSONEncoder(ensure_ascii=False, default=str).encode
    for rec in records(results, bool(getattr(ctx, "connections", False))):
        out.write(dumps(rec) + "\n")


def render(results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """The text :func:`write` writes."""
    return text_of(write, results, ctx)


class LiveWriter:
    """The sink of a live analysis (:class:`pcapcheck.pipeline.Live`) that writes the
    report's lines as they come: called as ``writer(summary, findings)`` for a
    connection just finalised (``summary`` None: file-level findings alone), it writes
    the findings' lines, then (with ``ctx.connections``) the summary's line, and
    flushes ``out``, so that a reader of the pipe sees them at once.

    ``path``: the capture's name in the lines (``<stdin>``); ``writer``: the writer of
    this format as :data:`pcapcheck.report.WRITERS` gives it (the file names and the
    findings' messages as every report shows them), default :func:`write`. The lines
    are those :func:`write` writes for the whole capture, each once.
    """

    def __init__(
        self,
        path: str,
        out: TextIO,
        ctx: ReportContext | None = None,
        writer: Writer | None = None,
    ):
        self.path = path
        self.out = out
        self.ctx = ctx
        self._write = writer if writer is not None else write
        self.written = 0  # connections given

    def __call__(self, summary: Mapping[str, Any] | None, findings: Sequence[Finding]) -> None:
        if summary is not None:
            self.written += 1
        part = FileResult(
            path=self.path,
            connections=[dict(summary)] if summary is not None else [],
            findings=list(findings),
        )
        self._write([part], self.out, self.ctx)
        self.out.flush()
