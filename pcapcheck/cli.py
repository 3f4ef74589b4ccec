"""Command line: ``pcapcheck analyze FILE...``.

Exit status: 0 when no finding reaches ``--fail-on``; 1 when one does; 2 on a usage
error, a bad rule file, or an input that is not a readable capture (one line on stderr,
never a traceback).
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from pcapcheck import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="pcapcheck: rebuild TCP connections from a capture and check them "
                       "against RFC 9293.")

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


class Format(str, Enum):
    table = "table"
    json = "json"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


def _fail(message: str) -> "typer.Exit":
    typer.echo(f"pcapcheck: error: {message}", err=True)
    return typer.Exit(2)


def _split(values: Optional[List[str]]) -> Optional[List[str]]:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pcapcheck {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version,
                                       is_eager=True, help="Print the version and exit.")):
    """pcapcheck: TCP connection analysis and RFC 9293 conformance checks for captures."""


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
) -> None:
    """Analyse captures: a connection table, findings, and an exit status for CI."""
    from pcapcheck.analyze import analyze_file
    from pcapcheck.catalog import CatalogError, load_catalog
    from pcapcheck.reader import CaptureError
    from pcapcheck.report import FORMATS

    try:
        catalog = load_catalog(list(rules or []))
        active = catalog.select(_split(select), _split(ignore))
    except CatalogError as exc:
        raise _fail(str(exc))
    results = []
    status = 0
    for path in files:
        try:
            results.append(analyze_file(path, catalog, active))
        except CaptureError as exc:
            typer.echo(f"pcapcheck: error: {exc}", err=True)
            status = 2
        except Exception as exc:  # noqa: BLE001 - never a traceback for the user
            if os.environ.get("PCAPCHECK_DEBUG"):
                raise
            typer.echo(f"pcapcheck: internal error on {path}: {type(exc).__name__}: {exc} "
                       "(set PCAPCHECK_DEBUG=1 for a traceback)", err=True)
            status = 2
    text = FORMATS[fmt.value](results)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot write {output}: {exc.strerror}")
    else:
        sys.stdout.write(text)
    if status == 0 and fail_on is not FailOn.never:
        threshold = SEVERITY_RANK[fail_on.value]
        if any(SEVERITY_RANK[f.severity] >= threshold for r in results for f in r.findings):
            status = 1
    raise typer.Exit(status)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="pcapcheck")
