"""``pcapcheck ladder FILE``: the ladder (sequence) diagram of one connection.

Exit status: 0 when the ladder was drawn; 2 when the file is not a readable capture,
holds no TCP connection, the connection does not exist or the width is too small (one
line on stderr, never a traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from pcapcheck.commands.common import app, fail, writing_stdout


@app.command()
def ladder(
    file: Path = typer.Argument(..., help="Capture file (pcap, pcapng, optionally gzip)."),
    connection: int | None = typer.Option(
        None,
        "--connection",
        "-c",
        min=1,
        help="Connection id (as in `pcapcheck analyze`); default: the first connection.",
    ),
    ascii_only: bool = typer.Option(
        False, "--ascii", help="Plain ASCII instead of Unicode arrows and lines."
    ),
    width: int = typer.Option(
        100, "--width", "-w", help="Maximum line length in columns (at least 60)."
    ),
) -> None:
    """Draw one connection as a ladder diagram with each endpoint's RFC 9293 states."""
    from pcapcheck.capture.reader import CaptureError
    from pcapcheck.catalog.rules import CatalogError, load_catalog
    from pcapcheck.pipeline import analyze_file
    from pcapcheck.report.ladder import LadderError, connection_segments, render_ladder

    try:
        catalog = load_catalog()
        result = analyze_file(file, catalog, catalog.select(None, None))
        if not result.connections:
            raise fail(f"{file}: no TCP connection in the capture ({result.packets} packets)")
        cid = connection if connection is not None else result.connections[0]["id"]
        conn = next((c for c in result.connections if c["id"] == cid), None)
        segments = connection_segments(file, [conn] if conn else [])
        text = render_ladder(result, cid, segments.get(cid, []), ascii=ascii_only, width=width)
    except (CaptureError, CatalogError, LadderError) as exc:
        raise fail(str(exc)) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if os.environ.get("PCAPCHECK_DEBUG"):
            raise
        raise fail(
            f"{file}: internal error: {type(exc).__name__}: {exc} (set "
            "PCAPCHECK_DEBUG=1 for a traceback)"
        ) from None
    with writing_stdout():
        sys.stdout.write(text)
    others = len(result.connections) - 1
    if connection is None and others:
        typer.echo(
            f"({others} more connection{'s' if others > 1 else ''} in this capture: "
            f"--connection N, N = 1..{len(result.connections)})",
            err=True,
        )
