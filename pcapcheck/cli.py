"""Command line: the ``pcapcheck`` Typer application; each command is a module of
:mod:`pcapcheck.commands` (``analyze``, ...). This module only holds what they share.

Exit status everywhere: 0 success, 1 findings reached the gate, 2 usage or input error
(one line on stderr, never a traceback).
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from enum import Enum
from typing import NoReturn

import typer

from pcapcheck import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="pcapcheck: rebuild TCP connections from a capture and check them against RFC 9293.",
)

SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


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


def main() -> None:
    """Console-script entry point."""
    # An analysis allocates millions of short-lived objects (segments, tuples) and few
    # reference cycles; CPython's default generation-0 threshold (700 allocations) runs
    # the cyclic collector so often that it costs 15-20 % of the run (bench/README.md).
    # Collect less often; what the imports built is frozen out of every collection.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    one_blas_thread()
    try:
        app(prog_name="pcapcheck")
    except SystemExit as exc:
        quick_exit(exc.code)
    quick_exit(0)


def quick_exit(code: object) -> NoReturn:
    """End the process with the status :class:`SystemExit` ``code`` gives (None: 0, an
    int: itself, anything else: printed on stderr, 1), after what an exit must do
    (the :mod:`atexit` handlers: the spools' temporary files deleted, the worker pools
    shut down; stdout and stderr flushed), without the interpreter's teardown of every
    module and object: about 50 ms after an analysis that imported numpy, for nothing
    (issue #4). A flush that fails (a closed pipe) changes nothing else. Threads still
    running are not waited for (the interpreter's exit would join them): the command
    joins its own (the feed's senders) and shuts its pools down before it returns."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(status)


def one_blas_thread() -> None:
    """Ask numpy's OpenBLAS for no worker thread (``OPENBLAS_NUM_THREADS=1``) unless the
    environment already says how many, before any process of the analysis imports numpy.

    pcapcheck makes no BLAS call, but OpenBLAS starts one thread per CPU when numpy is
    imported, and each spins for about 0.1 s of CPU before it sleeps: with ``--jobs``
    every worker's spinning threads take that CPU from the other workers
    (bench/README.md, "What the workers did not need"). The workers are forked from this
    process and inherit its environment."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


# The commands register themselves on ``app`` (one module each, pcapcheck/commands/).
import pcapcheck.commands  # noqa: E402,F401
