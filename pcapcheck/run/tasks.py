"""The units of work every executor runs: what one worker does with one capture, or with
one shard of a capture, and how the shards' results become the capture's.

An executor (:mod:`pcapcheck.run.executors`: in this process, in local worker
processes; later on a cluster) only decides *where* these functions run and in which
order their results are taken; *what* is computed is here, written once. Everything a
task takes and returns is picklable (a :class:`Job`, the :class:`Settings`, a
:class:`~pcapcheck.results.FileResult` whose spools move with it,
:class:`~pcapcheck.run.shards.ShardResult`), so any executor that can call a
module-level function elsewhere can run them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pcapcheck.results import FileResult
from pcapcheck.tcp.tracker import CLOSE_DELAY, IDLE_TIMEOUT

if TYPE_CHECKING:
    from pcapcheck.catalog.rules import Catalog
    from pcapcheck.report import Dataset
    from pcapcheck.run.shards import ShardResult

__all__ = [
    "INTERNAL_ERROR",
    "Job",
    "Settings",
    "analyze_job",
    "analyze_job_shard",
    "merge_job",
    "problem_line",
]

#: How the ``error`` of a :class:`FileResult` starts when pcapcheck itself failed on
#: the capture (a bug), rather than the capture being unreadable.
INTERNAL_ERROR = "internal error: "


@dataclass(frozen=True)
class Job:
    """One capture to analyse: ``path`` the file read; ``name`` how the report calls it
    (the argument as given, a path below a directory, ``<stdin>``); ``active`` the rule
    IDs reported for it (the selection less its per-file ignores); ``stdin``: the file
    is a temporary copy of standard input (its name is then replaced by ``name`` in an
    error message); ``live``: a live pipe analysed as it arrives
    (:class:`pcapcheck.pipeline.Live`; not picklable: only :class:`Serial
    <pcapcheck.run.executors.Serial>` runs such a job)."""

    path: str | Path
    name: str
    active: frozenset[str]
    stdin: bool = False
    live: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class Settings:
    """What every job of a run shares: the rule ``catalog``; ``params`` (rule ID →
    {parameter: value}, checked) and ``severity`` (rule ID → severity) overrides; the
    ``decoder`` (``"native"``, ``"dpkt"``, ``"tshark"``); ``idle_timeout`` and
    ``close_delay`` in seconds (see :func:`pcapcheck.pipeline.analyze_file`);
    ``datasets``: the directory outputs of the run (:class:`pcapcheck.report.Dataset`,
    ``--format parquet=DIR``), each capture's files written by ``dataset.write(result,
    source=job.path)``: by the :class:`~pcapcheck.api.Report` as it takes each result,
    or, for an executor whose ``writes_datasets`` is true (a cluster's), by the worker
    that analysed the capture. ``tunnel_ports``: the UDP ports of the tunnels (tunnel
    name -> ports, the ``tunnel-ports`` configuration key; None: IANA's), given to every
    decoder of the run (:func:`pcapcheck.capture.layers.tunnel_tables`), in whichever
    process or cluster worker it runs."""

    catalog: Catalog
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    severity: Mapping[str, str] = field(default_factory=dict)
    decoder: str = "native"
    idle_timeout: float = IDLE_TIMEOUT
    close_delay: float = CLOSE_DELAY
    datasets: tuple[Dataset, ...] = ()
    tunnel_ports: Mapping[str, Sequence[int]] | None = None


def analyze_job(job: Job, settings: Settings) -> FileResult:
    """Analyse one capture serially (in whichever process runs this): its
    :class:`FileResult`, named ``job.name``. Never raises for a capture that cannot be
    read: the result then has ``error`` set (one line, the reader's message), and for a
    failure of pcapcheck itself an ``error`` starting with :data:`INTERNAL_ERROR` (set
    ``PCAPCHECK_DEBUG`` to have it raised instead)."""
    from pcapcheck.capture.reader import CaptureError
    from pcapcheck.pipeline import analyze_file

    try:
        result = analyze_file(
            job.path,
            settings.catalog,
            set(job.active),
            params=settings.params,
            severity=settings.severity,
            decoder=settings.decoder,
            idle_timeout=settings.idle_timeout,
            close_delay=settings.close_delay,
            live=job.live,
            tunnel_ports=settings.tunnel_ports,
        )
    except CaptureError as exc:
        message = str(exc)
        if job.stdin:  # name standard input, not its temporary copy
            message = message.replace(str(job.path), job.name)
        return FileResult(path=job.name, error=message)
    except Exception as exc:
        if os.environ.get("PCAPCHECK_DEBUG"):
            raise
        return FileResult(path=job.name, error=f"{INTERNAL_ERROR}{type(exc).__name__}: {exc}")
    result.path = job.name
    return result


def analyze_job_shard(
    job: Job,
    settings: Settings,
    shard: tuple[int, int],
    encode: bool = False,
    feed: str | None = None,
) -> ShardResult:
    """Analyse shard ``shard = (k, n)`` of one capture (:mod:`pcapcheck.run.shards`):
    ``encode``: the shard also writes its summaries' JSON lines (a JSON report is
    asked for); ``feed``: the ticket of the :class:`pcapcheck.run.feed.Feeder` that
    reads the capture for its shards (None: the shard reads it). Raises what the
    analysis raises (:func:`merge_job` then analyses the capture serially)."""
    from pcapcheck.run.shards import analyze_shard

    return analyze_shard(
        job.path,
        settings.catalog,
        set(job.active),
        settings.params,
        settings.severity,
        settings.decoder,
        shard,
        settings.idle_timeout,
        settings.close_delay,
        encode=encode,
        feed=feed,
        tunnel_ports=settings.tunnel_ports,
    )


def merge_job(job: Job, settings: Settings, parts: Sequence[ShardResult] | None) -> FileResult:
    """The :class:`FileResult` of a capture analysed in shards: the merge of ``parts``
    (every shard's :class:`~pcapcheck.run.shards.ShardResult`), or, when a shard failed
    (``parts`` None), the serial analysis :func:`analyze_job` here, so that an error is
    reported exactly as the serial analysis reports it."""
    from pcapcheck.run.shards import merge_shards

    if parts is None:
        return analyze_job(job, settings)
    result = merge_shards(parts, job.path, settings.catalog, set(job.active), settings.severity)
    result.path = job.name
    return result


def problem_line(result: FileResult) -> str | None:
    """The line ``pcapcheck analyze`` prints on stderr for a result with an ``error``
    (None without): ``pcapcheck: error: MESSAGE`` for a capture that cannot be read,
    ``pcapcheck: NAME: internal error: ... (set PCAPCHECK_DEBUG=1 for a traceback)``
    for a failure of pcapcheck itself."""
    if result.error is None:
        return None
    if result.error.startswith(INTERNAL_ERROR):
        return f"pcapcheck: {result.path}: {result.error} (set PCAPCHECK_DEBUG=1 for a traceback)"
    from pcapcheck.i18n import gettext as _

    return _("pcapcheck: error: {message}").format(message=result.error)
