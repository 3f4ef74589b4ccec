"""The ``pcapcheck`` Typer application and what its commands share.

Each command is a module of :mod:`pcapcheck.commands` that registers itself on
:data:`app`; :mod:`pcapcheck.cli` holds only the console-script entry point
(:func:`pcapcheck.cli.main`). Dependencies go one way: ``cli`` → ``commands`` →
this module.

Exit status everywhere: 0 success, 1 findings reached the gate, 2 usage or input error
(one line on stderr, never a traceback).
"""

from __future__ import annotations

from enum import Enum

import typer

from pcapcheck.__about__ import __version__
from pcapcheck.results import SEVERITY_RANK

__all__ = ["SEVERITY_RANK", "FailOn", "app", "fail", "split_ids"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="pcapcheck: rebuild TCP connections from a capture and check them against RFC 9293.",
)


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


def fail(message: str) -> typer.Exit:
    """Print ``pcapcheck: error: MESSAGE`` on stderr; return the Exit(2) to raise."""
    typer.echo(f"pcapcheck: error: {message}", err=True)
    return typer.Exit(2)


def split_ids(values: list[str] | None) -> list[str] | None:
    """``["HS,CL001", "RS"]`` → ``["HS", "CL001", "RS"]``; None when nothing was given."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pcapcheck {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    """pcapcheck: TCP connection analysis and RFC 9293 conformance checks for captures."""
