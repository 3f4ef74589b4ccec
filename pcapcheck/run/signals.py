"""SIGTERM as a clean stop (issue #23): ``timeout``, a cancelled CI job or ``kill`` end
an analysis as Ctrl-C does, its temporary files (spool runs, the copy of standard input)
removed, rather than the default action that kills the process where it stands.

:func:`on_sigterm` makes SIGTERM raise :class:`Terminated` in the main thread: the stack
unwinds (context managers and ``finally`` blocks run: the copy of standard input and
the worker pools), and the process's exit runs the :mod:`atexit` handlers (the spools'
files). The command line installs it (:func:`pcapcheck.cli.main`, which reports the
stop in one line with status 143, 128 + SIGTERM, as a shell reports a killed command);
:class:`~pcapcheck.run.executors.Processes` installs it in its workers and, when its
run is stopped, stops them the same way.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["TERMINATED_STATUS", "Terminated", "on_sigterm"]

#: Exit status of a run stopped by SIGTERM: 128 + 15, what a shell reports for a
#: command killed by it.
TERMINATED_STATUS = 128 + signal.SIGTERM


class Terminated(SystemExit):
    """Raised by SIGTERM once :func:`on_sigterm` is installed, its ``code``
    :data:`TERMINATED_STATUS`. A SystemExit: no ``except Exception`` of the analysis
    takes it for a fault of the capture, and a worker process that gets it while idle
    exits quietly with that status."""


def _raise(signum: int, frame: FrameType | None) -> None:
    # Once: a second SIGTERM (a worker gets one from the process group's signal and one
    # from its stopped pool) must not interrupt the clean-up the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(TERMINATED_STATUS)


def on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in this process's main thread (nothing
    outside the main thread: Python delivers signals there only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)
