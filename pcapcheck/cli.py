"""The console-script entry point (``pcapcheck = "pcapcheck.cli:main"``).

:func:`main` runs the Typer application :data:`app` (defined in
:mod:`pcapcheck.commands.common`, each command a module of :mod:`pcapcheck.commands`)
with what a command-line process needs around it: the cyclic garbage collector tuned,
numpy's BLAS threads off, and a quick exit. Nothing here is imported by the commands.

Exit status everywhere: 0 success, 1 findings reached the gate, 2 usage or input error
(one line on stderr, never a traceback).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import gc
import os
import sys
from typing import NoReturn

from pcapcheck.commands import app
from pcapcheck.run.signals import TERMINATED_STATUS, Terminated, on_sigterm

__all__ = ["app", "main", "one_blas_thread", "quick_exit"]


def main() -> None:
    """Console-script entry point."""
    # An analysis allocates millions of short-lived objects (segments, tuples) and few
    # reference cycles; CPython's default generation-0 threshold (700 allocations) runs
    # the cyclic collector so often that it costs 15-20 % of the run (bench/README.md).
    # Collect less often; what the imports built is frozen out of every collection.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    one_blas_thread()
    on_sigterm()  # SIGTERM unwinds as Ctrl-C does: temporary files removed (issue #23)
    try:
        app(prog_name="pcapcheck")
    except Terminated:
        with contextlib.suppress(OSError, ValueError):
            print("pcapcheck: terminated (SIGTERM)", file=sys.stderr)
        quick_exit(TERMINATED_STATUS)
    except SystemExit as exc:
        quick_exit(exc.code)
    except OSError as exc:
        # What a command did not word itself: an output that cannot be written (a full
        # disk, a file-size limit, a disk quota, an I/O error) is one line, never a
        # traceback (issue 23). Any other OSError is a bug and keeps its traceback.
        if exc.errno not in _WRITE_ERRNOS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        with contextlib.suppress(OSError, ValueError):
            print(f"pcapcheck: error: cannot write{where}: {exc.strerror}", file=sys.stderr)
        quick_exit(2)
    quick_exit(0)


#: The errors of a write that cannot be done (see :func:`main`).
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EPIPE})


def quick_exit(code: object) -> NoReturn:
    """End the process with the status :class:`SystemExit` ``code`` gives (None: 0, an
    int: itself, anything else: printed on stderr, 1), after what an exit must do
    (the :mod:`atexit` handlers: the spools' temporary files deleted, the worker pools
    shut down; stdout and stderr flushed), without the interpreter's teardown of every
    module and object: about 50 ms after an analysis that imported numpy, for nothing
    (issue #4). Standard output that cannot be flushed (a full disk, a closed pipe)
    is one line on stderr and status 2 (issue 23), never a traceback. Threads still
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
    try:
        sys.stdout.flush()
    except OSError as exc:  # what was left in the buffer: a full disk, a closed pipe
        with contextlib.suppress(OSError, ValueError):
            print(
                f"pcapcheck: error: cannot write the standard output: {exc.strerror}",
                file=sys.stderr,
            )
        status = 2
    except (ValueError, AttributeError):
        pass
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
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
