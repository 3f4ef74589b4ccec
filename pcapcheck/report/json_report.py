"""The JSON report: one document for all files (see README "JSON output")."""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pcapcheck.__about__ import __version__
from pcapcheck.jsonlines import LINE_END, dumps, dumps_bytes
from pcapcheck.report import text_of

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext
    from pcapcheck.results import FileResult

__all__ = ["LINE_END", "SCHEMA_PATH", "document", "dumps", "dumps_bytes", "render", "write"]

#: The JSON Schema (draft 2020-12) of :func:`document`, shipped in the package.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "report.schema.json"

_LINE = b'        {"id":%d%s'

#: Encodings in which the report's ASCII bytes can go to a text stream's buffer as they
#: are.
_ASCII_SAFE = frozenset({"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252"})


def _binary(out: TextIO) -> Any:
    """The binary buffer under ``out`` (flushed) when ASCII bytes written to it are what
    writing the same text to ``out`` gives (an ASCII-compatible encoding, no newline
    translation: not on Windows); else None."""
    buffer = getattr(out, "buffer", None)
    if buffer is None or os.linesep != "\n":
        return None
    try:
        if codecs.lookup(out.encoding).name not in _ASCII_SAFE:
            return None
    except (AttributeError, LookupError, TypeError):
        return None
    out.flush()
    return buffer


def _write_lines(out: TextIO, lines: Any) -> None:
    """The items of the connections' list from ``lines``, ``(global id, line)`` pairs
    (``FileResult.connection_lines``: each line the bytes after the id plus
    :data:`LINE_END`): straight to ``out``'s binary buffer when it has a suitable one
    (:func:`_binary`), 512 lines a write; the last line without its comma."""
    buffer = _binary(out)
    write = buffer.write if buffer is not None else (lambda data: out.write(data.decode("ascii")))
    pieces = map(_LINE.__mod__, lines)
    held = None
    while chunk := list(islice(pieces, 512)):
        if held is None:
            write(b"\n")
        else:
            write(held)
        held = b"".join(chunk)
    if held is not None:
        write(held[: -len(LINE_END)])
        write(b"\n      ]")
    else:
        write(b"]")


def _finding(f: Any) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "name": f.name,
        "severity": f.severity,
        "connection": f.connection,
        "frame": f.frame,
        "message": f.message,
        "data": f.data,
    }


def _file_head(res: FileResult) -> dict[str, Any]:
    return {
        "path": res.path,
        "format": res.format,
        "packets": res.packets,
        "tcp_packets": res.tcp_packets,
        "skipped": dict(sorted(res.skipped.items())),
        "malformed": res.malformed,
        "truncated": res.truncated,
    }


def document(results: Sequence[FileResult]) -> dict[str, Any]:
    """The report as a JSON-ready dict: ``{"version", "files": [...]}`` (held in memory
    whole; :func:`write` streams the same document).

    A file that could not be read is ``{"path", "error"}``. Each finding carries
    ``rule``, ``name``, ``severity``, ``connection``, ``frame`` (1-based), ``message``
    (relative sequence numbers) and ``data`` (the event values; keys ending in ``_abs``
    are absolute sequence numbers). Every key and type is described by
    :data:`SCHEMA_PATH`.
    """
    files: list[dict[str, Any]] = []
    for res in results:
        if res.error is not None:
            files.append({"path": res.path, "error": res.error})
            continue
        files.append(
            {
                **_file_head(res),
                "connections": list(res.connections),
                "findings": [_finding(f) for f in res.findings],
            }
        )
    return {"version": __version__, "files": files}


def write(results: Sequence[FileResult], out: TextIO, ctx: ReportContext | None = None) -> None:
    """Write the document of :func:`document` to ``out`` as it is produced, one
    connection or finding at a time (memory does not grow with their number).

    Layout: the document's structure is indented by 2 spaces; each connection summary
    and each finding is one line (compact JSON, so ``grep``/``jq -c`` friendly); ends
    with a newline. Values JSON cannot hold are written as strings. ``ctx`` is accepted
    for the common renderer signature and not used. A result whose
    ``connection_lines`` is set (merged shards that encoded their summaries) has those
    lines written as they are, as bytes to ``out``'s buffer when it can take them
    (:func:`_write_lines`), without encoding the summaries again.
    """
    out.write(f'{{\n  "version": {dumps(__version__)},\n  "files": [')
    for i, res in enumerate(results):
        out.write("\n    {" if i == 0 else ",\n    {")
        if res.error is not None:
            out.write(
                f'\n      "path": {dumps(res.path)},\n      "error": {dumps(res.error)}\n    }}'
            )
            continue
        for key, value in _file_head(res).items():
            out.write(f'\n      "{key}": {dumps(value)},')
        lines = getattr(res, "connection_lines", None)
        for key, items, convert in (
            ("connections", res.connections, dumps),
            ("findings", res.findings, lambda f: dumps(_finding(f))),
        ):
            out.write(f'\n      "{key}": [')
            if key == "connections" and lines is not None:
                _write_lines(out, lines)
                out.write(",")
                continue
            texts = map(convert, items)
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
