"""The execution layer: how the analysis of captures is run, never what it computes.

It wraps the pipeline (:mod:`pcapcheck.pipeline`) from outside: the pipeline analyses one
capture, or one shard of a capture, in the calling process and knows nothing of
processes; this package decides where that happens and hands the pipeline what it needs
(the batches another process read, as an iterable).

* :mod:`pcapcheck.run.tasks`: the units of work, module-level and picklable: a
  :class:`~pcapcheck.run.tasks.Job` (one capture) and the run's
  :class:`~pcapcheck.run.tasks.Settings`; :func:`~pcapcheck.run.tasks.analyze_job` (a
  capture, never raising for an unreadable one), :func:`~pcapcheck.run.tasks.analyze_job_shard`
  and :func:`~pcapcheck.run.tasks.merge_job` (a capture in shards).
* :mod:`pcapcheck.run.executors`: :class:`~pcapcheck.run.executors.Serial` and
  :class:`~pcapcheck.run.executors.Processes` (``--jobs``), which run those tasks and
  give the results in input order; a distributed executor is one more subclass of
  :class:`~pcapcheck.run.executors.Executor` submitting the same tasks.
* :mod:`pcapcheck.run.cluster`: :class:`~pcapcheck.run.cluster.DaskExecutor`, the same
  tasks on a Dask cluster (``--scheduler``), Dask imported only there.
* :mod:`pcapcheck.run.shards`: one capture split by connection (``(sport + dport) % n``),
  the shards' results merged into exactly the serial result.
* :mod:`pcapcheck.run.feed`: the capture read once for all its shards, its batches sent
  to the shards' processes over a Unix socket.

The public API (:func:`pcapcheck.analyze`) chooses the executor; the command line calls
the API.
"""
