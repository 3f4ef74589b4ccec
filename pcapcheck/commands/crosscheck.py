"""``pcapcheck crosscheck FILE...``: compare pcapcheck's TCP analysis with Wireshark's.

For each file: the connection grouping and the per-frame analysis flags of both tools,
the agreement table and every disagreement (see :mod:`pcapcheck.compare.wireshark`).

Both tools decode the same UDP tunnels: pcapcheck with the ports of the configuration
(``[tunnel-ports]``; ``--config FILE``, ``--isolated``), as ``pcapcheck analyze`` does, and
tshark with a decode-as (``-d udp.port==8472,vxlan``) for every port that differs from
IANA's (:func:`pcapcheck.capture.tshark.decode_as`).

Exit status: 0 when every disagreement is a known, explained difference; 1 when at least
one is not; 2 when tshark is not installed, the configuration cannot be read or a file
cannot be read (one line on stderr, never a traceback; the other files are still compared).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from pcapcheck.commands.common import (
    CONFIG_HELP,
    ISOLATED_HELP,
    app,
    command_config,
    fail,
    writing_stdout,
)


@app.command()
def crosscheck(
    files: list[Path] = typer.Argument(..., help="Capture files (pcap, pcapng, optionally gzip)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the report to FILE instead of stdout."
    ),
    jobs: int = typer.Option(
        0, "--jobs", "-j", min=0, help="tshark processes at a time (0: one per CPU)."
    ),
    config: Path | None = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP),
    isolated: bool = typer.Option(False, "--isolated", help=ISOLATED_HELP),
) -> None:
    """Compare pcapcheck with Wireshark (tshark): connections and per-frame TCP analysis
    flags. Exit 0 on agreement apart from known differences, 1 otherwise."""
    ports = command_config(config, isolated, None).tunnel_ports
    from pcapcheck.capture.reader import CaptureError
    from pcapcheck.capture.tshark import (
        TsharkMissing,
        clear_prefetched,
        decode_as,
        prefetch,
        wireshark_version,
    )
    from pcapcheck.compare.wireshark import crosscheck as run_crosscheck
    from pcapcheck.compare.wireshark import render_crosscheck

    wireshark_ports = decode_as(ports)  # tshark decodes the tunnels on the same ports

    try:
        version = wireshark_version()
        # Start tshark on every file now (in the background, ``jobs`` at a time): the
        # files are then compared in order as their runs complete.
        started = prefetch(
            files, analysis=True, workers=jobs or None, wait=False, decode_as=wireshark_ports
        )
    except TsharkMissing as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        if os.environ.get("PCAPCHECK_DEBUG"):
            raise
        raise fail(f"cannot run tshark: {type(exc).__name__}: {exc}") from None
    status = 0
    texts: list[str] = []
    try:
        for path in files:
            try:
                report = run_crosscheck(
                    path,
                    wireshark_version=version,
                    tunnel_ports=ports,
                )
            except CaptureError as exc:
                typer.echo(f"pcapcheck: error: {exc}", err=True)
                status = 2
                continue
            except Exception as exc:
                if os.environ.get("PCAPCHECK_DEBUG"):
                    raise
                typer.echo(
                    f"pcapcheck: {path}: internal error: {type(exc).__name__}: "
                    f"{exc} (set PCAPCHECK_DEBUG=1 for a traceback)",
                    err=True,
                )
                status = 2
                continue
            texts.append(render_crosscheck(report))
            if not report.agrees and status == 0:
                status = 1
    finally:
        clear_prefetched(started)
    text = "\n".join(texts)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot write {output}: {exc.strerror}") from None
    else:
        with writing_stdout():
            sys.stdout.write(text)
    raise typer.Exit(status)
