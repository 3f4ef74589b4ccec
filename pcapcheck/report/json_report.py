"""The JSON report: one document for all files (see README "JSON output")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pcapcheck import __version__
from pcapcheck.analyze import FileResult

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext

#: The JSON Schema (draft 2020-12) of :func:`document`, shipped in the package.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "report.schema.json"


def document(results: Sequence[FileResult]) -> dict[str, Any]:
    """The report as a JSON-ready dict: ``{"version", "files": [...]}``.

    A file that could not be read is ``{"path", "error"}``. Each finding carries
    ``rule``, ``name``, ``severity``, ``connection``, ``frame`` (1-based), ``message``
    (relative sequence numbers) and ``data`` (the event values; keys ending in ``_abs``
    are absolute sequence numbers). Every key and type is described by
    :data:`SCHEMA_PATH`.
    """
    files = []
    for res in results:
        if res.error is not None:
            files.append({"path": res.path, "error": res.error})
            continue
        files.append({
            "path": res.path,
            "format": res.format,
            "packets": res.packets,
            "tcp_packets": res.tcp_packets,
            "skipped": dict(sorted(res.skipped.items())),
            "malformed": res.malformed,
            "truncated": res.truncated,
            "connections": res.connections,
            "findings": [{"rule": f.rule, "name": f.name, "severity": f.severity,
                          "connection": f.connection, "frame": f.frame,
                          "message": f.message, "data": f.data} for f in res.findings],
        })
    return {"version": __version__, "files": files}


def render(results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """The document serialised with 2-space indentation and a final newline.

    ``ctx`` is accepted for the common renderer signature and not used (the document
    never changes with it; ``statistics`` does not apply to JSON).
    """
    return json.dumps(document(results), indent=2, default=str) + "\n"
