"""Executors: how the jobs of a run (:class:`~pcapcheck.run.tasks.Job`, one per capture)
are executed, their results always given in job order, each exactly what the serial
analysis of its capture gives.

* :class:`Serial`: one capture after the other, in this process.
* :class:`Processes`: local worker processes (``--jobs N``): captures in parallel, and
  with fewer captures than workers each large capture split by connection into shards
  (:mod:`pcapcheck.run.shards`), read once for all its shards when it is the only one
  (:mod:`pcapcheck.run.feed`).

An executor calls only the tasks of :mod:`pcapcheck.run.tasks` (:func:`analyze_job`,
:func:`analyze_job_shard`, :func:`merge_job`) and the shard plan (:func:`plan_shards`);
another one (a cluster's: :class:`pcapcheck.run.cluster.DaskExecutor`, Dask's
``client.submit`` of the same functions) is a subclass of :class:`Executor` with its own
:meth:`Executor.results`, and nothing below this layer changes. :func:`executor_for` picks the local one for ``--jobs``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from pcapcheck.results import FileResult
from pcapcheck.run.signals import on_sigterm
from pcapcheck.run.tasks import Job, Settings, analyze_job, analyze_job_shard, merge_job

__all__ = ["Executor", "Processes", "Serial", "cpu_jobs", "executor_for", "plan_shards"]


class Executor(ABC):
    """Runs the jobs of one analysis (see the module docstring)."""

    @abstractmethod
    def results(
        self, jobs: Sequence[Job], settings: Settings, encode: bool = False
    ) -> Iterator[FileResult]:
        """The :class:`~pcapcheck.results.FileResult` of each job, in job order, as each
        is ready (a generator: the work starts at the first ``next()``, and closing the
        generator stops it). A capture that cannot be read is a result with ``error``
        (:func:`pcapcheck.run.tasks.analyze_job`), never an exception. ``encode``: a
        JSON report will be written: captures analysed in shards may hand over their
        connection summaries already encoded (``FileResult.connection_lines``)."""


class Serial(Executor):
    """Every capture in this process, one after the other."""

    def results(
        self, jobs: Sequence[Job], settings: Settings, encode: bool = False
    ) -> Iterator[FileResult]:
        for job in jobs:
            yield analyze_job(job, settings)


def cpu_jobs(jobs: int | None) -> int:
    """The number of workers ``jobs`` asks for: itself, or the number of CPUs for None."""
    return jobs or os.cpu_count() or 1


def plan_shards(jobs: Sequence[Job], workers: int, decoder: str) -> list[int]:
    """Shards per job: with fewer jobs than ``workers``, each capture large enough is
    split in ``workers // len(jobs)`` shards (:func:`pcapcheck.run.shards.shards_for`:
    not with the tshark decoder, nor below :func:`~pcapcheck.run.shards.min_bytes`);
    else 1 each."""
    from pcapcheck.run.shards import shards_for

    if not jobs or len(jobs) >= workers:
        return [1] * len(jobs)
    return [shards_for(job.path, workers // len(jobs), decoder) for job in jobs]


class Processes(Executor):
    """``workers`` local worker processes (:class:`~concurrent.futures.ProcessPoolExecutor`,
    forked where the platform forks): the captures in parallel, or their shards
    (:func:`plan_shards`); :class:`Serial` when there is only one unit of work. The
    results are the serial ones, in the same order. ``mp_context``: the
    :mod:`multiprocessing` context the workers start with (default the platform's;
    ``multiprocessing.get_context("spawn")``: nothing is inherited, everything a worker
    needs travels in the tasks' arguments)."""

    def __init__(self, workers: int, mp_context: Any = None):
        self.workers = max(1, workers)
        self.mp_context = mp_context

    def results(
        self, jobs: Sequence[Job], settings: Settings, encode: bool = False
    ) -> Iterator[FileResult]:
        shards = plan_shards(jobs, self.workers, settings.decoder)
        workers = min(self.workers, sum(shards))
        if workers <= 1:
            yield from Serial().results(jobs, settings, encode)
            return
        fed, feeder = _feeder(shards, settings.decoder)
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=self.mp_context, initializer=on_sigterm
        )
        try:
            tasks: list[Future | list[Future]] = [
                pool.submit(analyze_job, job, settings)
                if n == 1
                else [
                    pool.submit(
                        analyze_job_shard,
                        job,
                        settings,
                        (k, n),
                        encode,
                        feeder.ticket() if feeder is not None and i == fed else None,
                    )
                    for k in range(n)
                ]
                for i, (job, n) in enumerate(zip(jobs, shards))
            ]
            if feeder is not None:  # one capture in shards: read once, here
                from pcapcheck.pipeline import verifies_checksums

                shard_tasks = tasks[fed]
                assert isinstance(shard_tasks, list)
                feeder.serve(
                    jobs[fed].path,
                    verifies_checksums(set(jobs[fed].active)),
                    give_up=lambda: any(t.done() for t in shard_tasks),
                    tunnel_ports=settings.tunnel_ports,
                )
            for job, task in zip(jobs, tasks):
                if isinstance(task, list):
                    yield merge_job(job, settings, _shard_results(task))
                else:
                    yield task.result()
        except BaseException:
            # stopped (SIGTERM, Ctrl-C, the generator closed): the workers stop too, their
            # spools removed as they unwind (pcapcheck.run.signals), before the pool waits
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                if proc.is_alive():
                    proc.terminate()
            raise
        finally:
            if feeder is not None:
                feeder.close()
            pool.shutdown(cancel_futures=True)


def _shard_results(futures: Sequence[Future]) -> list[Any] | None:
    """The shards' results, or None when one failed (unless ``PCAPCHECK_DEBUG``)."""
    try:
        return [f.result() for f in futures]
    except Exception:
        if os.environ.get("PCAPCHECK_DEBUG"):
            raise
        return None


def _feeder(shards: Sequence[int], decoder: str) -> tuple[int, Any]:
    """``(index, feeder)``: when exactly one capture is analysed in shards (with the
    native decoder), its index and a :class:`pcapcheck.run.feed.Feeder` with which this
    process reads it once for all its shards (several would make this process the
    bottleneck: their shards then read them themselves); else ``(-1, None)``."""
    split = [i for i, n in enumerate(shards) if n > 1]
    if len(split) != 1 or decoder != "native":
        return -1, None
    import pcapcheck.fast.batch_decoder  # noqa: F401 - before the workers start: forked, they have it
    from pcapcheck.run.feed import feeder_for

    feeder = feeder_for(shards[split[0]])
    return (-1, None) if feeder is None else (split[0], feeder)


def executor_for(jobs: int | None) -> Executor:
    """The local executor for ``jobs`` workers (``--jobs``; None: the number of CPUs):
    :class:`Serial` for 1, else :class:`Processes`."""
    workers = cpu_jobs(jobs)
    return Serial() if workers <= 1 else Processes(workers)
