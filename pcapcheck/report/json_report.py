"""The JSON report: one document for all files (see README "JSON output")."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TextIO

import orjson

from pcapcheck import __version__
from pcapcheck.analyze import FileResult
from pcapcheck.report import text_of

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext

#: The JSON Schema (draft 2020-12) of :func:`document`, shipped in the package.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "report.schema.json"

#: The standard library's encoder, with the layout :func:`dumps` gives.
_std_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str).encode

#: What orjson hands to ``default`` (:func:`_default`) instead of encoding it its own
#: way, as the standard library does: dataclass instances and datetimes.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _default(value: Any) -> Any:
    """What orjson writes for a value it does not encode itself: a float subclass (numpy's
    float64) as the float, anything else as its ``str()`` (the standard library's way)."""
    return float(value) if isinstance(value, float) else str(value)


def dumps(value: Any) -> str:
    """The JSON text of one value of the report as :func:`write` writes it: compact (no
    spaces), ASCII only (``\\uXXXX`` escapes), a value JSON cannot hold written as its
    ``str()``, a float that is not finite as ``null`` (``NaN``, which is not JSON, in a
    value left to the standard library, below). Encoded by orjson (about five times
    faster than the standard library on a connection summary, issue #4); a value orjson
    refuses (an integer beyond 64 bits, a key that is not a string) or whose text is not
    ASCII is encoded by the standard library with the same layout. Shards use it to
    write their connection lines (:func:`pcapcheck.analyze.analyze_part` with
    ``encode``)."""
    try:
        text = orjson.dumps(value, default=_default, option=_ORJSON_OPTIONS).decode()
    except TypeError:                   # orjson.JSONEncodeError is a TypeError
        return _std_dumps(value)
    return text if text.isascii() else _std_dumps(value)


def _finding(f: Any) -> dict[str, Any]:
    return {"rule": f.rule, "name": f.name, "severity": f.severity,
            "connection": f.connection, "frame": f.frame, "message": f.message,
            "data": f.data}


def _file_head(res: FileResult) -> dict[str, Any]:
    return {"path": res.path, "format": res.format, "packets": res.packets,
            "tcp_packets": res.tcp_packets, "skipped": dict(sorted(res.skipped.items())),
            "malformed": res.malformed, "truncated": res.truncated}


def document(results: Sequence[FileResult]) -> dict[str, Any]:
    """The report as a JSON-ready dict: ``{"version", "files": [...]}`` (held in memory
    whole; :func:`write` streams the same document).

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
        files.append({**_file_head(res), "connections": list(res.connections),
                      "findings": [_finding(f) for f in res.findings]})
    return {"version": __version__, "files": files}


def write(results: Sequence[FileResult], out: TextIO, ctx: ReportContext | None = None) -> None:
    """Write the document of :func:`document` to ``out`` as it is produced, one
    connection or finding at a time (memory does not grow with their number).

    Layout: the document's structure is indented by 2 spaces; each connection summary
    and each finding is one line (compact JSON, so ``grep``/``jq -c`` friendly); ends
    with a newline. Values JSON cannot hold are written as strings. ``ctx`` is accepted
    for the common renderer signature and not used. A result whose
    ``connection_lines`` is set (merged shards) has its summaries' lines written as
    they are, without encoding the summaries again.
    """
    out.write('{\n  "version": %s,\n  "files": [' % dumps(__version__))
    for i, res in enumerate(results):
        out.write("\n    {" if i == 0 else ",\n    {")
        if res.error is not None:
            out.write('\n      "path": %s,\n      "error": %s\n    }'
                      % (dumps(res.path), dumps(res.error)))
            continue
        for key, value in _file_head(res).items():
            out.write('\n      "%s": %s,' % (key, dumps(value)))
        lines = getattr(res, "connection_lines", None)
        for key, items, convert in (
                ("connections", res.connections if lines is None else lines,
                 dumps if lines is None else None),
                ("findings", res.findings, lambda f: dumps(_finding(f)))):
            out.write('\n      "%s": [' % key)
            texts = iter(items) if convert is None else map(convert, items)
            empty = True
            # 512 lines a write (about 350 KB): 4,096 made strings of some 3 MB, each on
            # fresh pages of memory (page faults): 0.13 s instead of 0.06 s on bench.pcap
            while chunk := list(islice(texts, 512)):
                out.write("\n        " if empty else ",\n        ")
                out.write(",\n        ".join(chunk))
                empty = False
            out.write("]" if empty else "\n      ]")
            out.write("," if key == "connections" else "")
        out.write("\n    }")
    out.write("\n  ]\n}\n" if results else "]\n}\n")


def render(results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """The text :func:`write` writes."""
    return text_of(write, results, ctx)
