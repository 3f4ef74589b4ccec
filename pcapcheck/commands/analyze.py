"""``pcapcheck analyze FILE...``: the connection table, findings, and an exit status.

Exit status: 0 when no finding reaches ``--fail-on``; 1 when one does; 2 on a usage
error, a bad rule file, or an input that is not a readable capture (one line on stderr,
never a traceback; the readable files are still reported).
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from pcapcheck.cli import SEVERITY_RANK, FailOn, app, fail, split_ids


class Format(str, Enum):
    table = "table"
    json = "json"


class DecoderName(str, Enum):
    native = "native"
    dpkt = "dpkt"
    tshark = "tshark"


@app.command()
def analyze(
    files: List[Path] = typer.Argument(..., help="Capture files (pcap, pcapng, optionally gzip)."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write the report to FILE instead of stdout."),
    rules: Optional[List[Path]] = typer.Option(None, "--rules",
                                               help="Extra rule directory (adds or overrides "
                                                    "rules by ID); repeatable."),
    select: Optional[List[str]] = typer.Option(None, "--select",
                                               help="Rule IDs or prefixes to enable "
                                                    "(comma-separated; 'ALL')."),
    ignore: Optional[List[str]] = typer.Option(None, "--ignore",
                                               help="Rule IDs or prefixes to disable."),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on",
                                   help="Lowest severity that makes the exit status 1."),
    decoder: DecoderName = typer.Option(DecoderName.native, "--decoder",
                                        help="Packet decoder: pcapcheck's own (native), "
                                             "dpkt's objects, or Wireshark's through "
                                             "pyshark (tshark)."),
) -> None:
    """Analyse captures: a connection table, findings, and an exit status for CI."""
    from pcapcheck.analyze import FileResult, analyze_file
    from pcapcheck.catalog import CatalogError, load_catalog
    from pcapcheck.reader import CaptureError
    from pcapcheck.report import FORMATS

    try:
        catalog = load_catalog(list(rules or []))
        active = catalog.select(split_ids(select), split_ids(ignore))
    except CatalogError as exc:
        raise fail(str(exc))
    results = []
    status = 0
    for path in files:
        try:
            results.append(analyze_file(path, catalog, active, decoder=decoder.value))
        except CaptureError as exc:
            typer.echo(f"pcapcheck: error: {exc}", err=True)
            results.append(FileResult(path=str(path), error=str(exc)))
            status = 2
        except Exception as exc:  # noqa: BLE001 - never a traceback for the user
            if os.environ.get("PCAPCHECK_DEBUG"):
                raise
            message = f"internal error: {type(exc).__name__}: {exc}"
            typer.echo(f"pcapcheck: {path}: {message} (set PCAPCHECK_DEBUG=1 for a "
                       "traceback)", err=True)
            results.append(FileResult(path=str(path), error=message))
            status = 2
    text = FORMATS[fmt.value](results)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot write {output}: {exc.strerror}")
    else:
        sys.stdout.write(text)
    if status == 0 and fail_on is not FailOn.never:
        threshold = SEVERITY_RANK[fail_on.value]
        if any(SEVERITY_RANK[f.severity] >= threshold for r in results for f in r.findings):
            status = 1
    raise typer.Exit(status)


