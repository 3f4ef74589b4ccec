"""``pcapcheck ladder FILE``: the ladder (sequence) diagram of one connection.

``--format text`` (default) draws it as text; ``svg`` as one SVG picture
(:mod:`pcapcheck.report.ladder_svg`); ``html`` as a self-contained page with the
connection's findings, to which the SVG's markers link. ``--output FILE`` writes it to
FILE instead of standard output. The capture is decoded with the UDP tunnel ports of the
configuration (``[tunnel-ports]``; ``--config FILE``, ``--isolated``), as ``pcapcheck
analyze`` decodes it.

Exit status: 0 when the ladder was drawn; 2 when the file is not a readable capture,
holds no TCP connection, the connection does not exist, the width is too small or the
output cannot be written (one line on stderr, never a traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pcapcheck.commands.common import (
    CONFIG_HELP,
    ISOLATED_HELP,
    LANG_HELP,
    app,
    command_config,
    fail,
    write_error,
    writing_stdout,
)

if TYPE_CHECKING:
    from pcapcheck.model import Segment
    from pcapcheck.results import FileResult

#: The values of ``--format``.
FORMATS = ("text", "svg", "html")


def _draw(fmt: str, result: FileResult, cid: int, segments: list[Segment]) -> str:
    """The ``svg`` or ``html`` drawing of connection ``cid`` of ``result``."""
    from pcapcheck.report import localised_results, utf8_results
    from pcapcheck.report.ladder_model import build_ladder

    result = localised_results(utf8_results([result]))[0]  # the findings in the language
    ladder = build_ladder(result, cid, segments)
    if fmt == "svg":
        from pcapcheck.report.ladder_svg import render_svg

        return render_svg(ladder) + "\n"
    from pcapcheck.report.html import render_ladder_page

    return render_ladder_page(ladder, result)


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
        100, "--width", "-w", help="Maximum line length in columns (at least 60; text only)."
    ),
    fmt: str = typer.Option(
        "text", "--format", "-f", help="text (default), svg or html (a self-contained page)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the ladder to FILE instead of standard output."
    ),
    lang: str | None = typer.Option(None, "--lang", metavar="LANG", help=LANG_HELP),
    config: Path | None = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP),
    isolated: bool = typer.Option(False, "--isolated", help=ISOLATED_HELP),
) -> None:
    """Draw one connection as a ladder diagram with each endpoint's RFC 9293 states."""
    ports = command_config(config, isolated, lang).tunnel_ports
    from pcapcheck.capture.reader import CaptureError
    from pcapcheck.catalog.rules import CatalogError, load_catalog
    from pcapcheck.i18n import gettext as _
    from pcapcheck.pipeline import analyze_file
    from pcapcheck.report.ladder import LadderError, connection_segments, render_ladder

    if fmt not in FORMATS:
        raise fail(
            _("--format: {fmt!r} is not one of {valid}").format(fmt=fmt, valid=", ".join(FORMATS))
        )
    try:
        catalog = load_catalog()
        result = analyze_file(file, catalog, catalog.select(None, None), tunnel_ports=ports)
        if not result.connections:
            raise fail(f"{file}: no TCP connection in the capture ({result.packets} packets)")
        cid = connection if connection is not None else result.connections[0]["id"]
        conn = next((c for c in result.connections if c["id"] == cid), None)
        segments = connection_segments(file, [conn] if conn else [], tunnel_ports=ports)
        if fmt == "text":
            text = render_ladder(result, cid, segments.get(cid, []), ascii=ascii_only, width=width)
        else:
            text = _draw(fmt, result, cid, segments.get(cid, []))
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
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise write_error(str(output), exc) from None
    else:
        with writing_stdout():
            sys.stdout.write(text)
    others = len(result.connections) - 1
    if connection is None and others:
        typer.echo(
            f"({others} more connection{'s' if others > 1 else ''} in this capture: "
            f"--connection N, N = 1..{len(result.connections)})",
            err=True,
        )
