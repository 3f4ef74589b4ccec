"""Distributed execution: the jobs of a run on a Dask cluster (``pcapcheck analyze
--scheduler``, ``pcapcheck.analyze(scheduler=...)``), with the report of a local run.

:class:`DaskExecutor` is one more :class:`~pcapcheck.run.executors.Executor`: it submits
the tasks of :mod:`pcapcheck.run.tasks` to Dask's distributed scheduler
(``client.submit``) and gives their results in job order, each exactly the serial
analysis of its capture, so the report is byte for byte a local run's.

* **A capture is a task** (:func:`analyze_task`). A capture of :data:`SHARD_BYTES`
  (256 MB) or more (``--shard-size``) is split into connection shards, as the local
  executor splits one (:mod:`pcapcheck.run.shards`: ``(sport + dport) % n``, so a
  connection, whatever its tunnel, lives in one shard), one shard per worker thread of
  the cluster (:func:`shard_task`), merged on a worker (:func:`merge_task`) by
  :func:`pcapcheck.run.tasks.merge_job`, exactly as the local shards are.
* **Inputs.** The workers read each capture by its absolute path (storage every machine
  sees), or, with ``upload`` (``--upload``; standard input ``-`` always), the client
  reads it and sends its bytes (``client.scatter``) in pieces of :data:`UPLOAD_CHUNK`
  bytes (the client holds one at a time), which the worker writes to a temporary file
  for the task's time; at most :data:`UPLOAD_BYTES` of captures are on the cluster at
  once (at least one, at most 4 per worker thread), the next sent as a task ends. The :class:`~pcapcheck.run.tasks.Settings` (the rule
  catalogue) are sent once to every worker, not with every task.
* **Compact results.** A worker hands back a :class:`Packed` result: the counters and one
  ``bytes`` blob holding the connection summaries (already encoded as the JSON
  report's lines when a JSON report is written, :data:`pcapcheck.jsonlines.LINE_END`
  ended, as the local shards encode theirs), events and findings (pickled 256 at a
  time); the client keeps a blob larger than :data:`MEMORY_BYTES` in a temporary file
  (``pcapcheck-cluster-*``, deleted by :meth:`FileResult.close
  <pcapcheck.results.FileResult.close>` or when the result is garbage collected) and
  reads it back one chunk at a time, so its memory does not grow with the captures.
  The worker holds one capture's blob while it is sent.
* **Results as they end.** With paths every capture is submitted at once (the
  scheduler queues them); the client takes each result as its task ends
  (``as_completed``), whatever its place in the report, and releases its future at
  once, so that finished results never wait on the workers behind a slow capture; a
  result that arrives before its turn goes to a temporary file whatever its size
  (:func:`unpack` ``spill``) until the report, in input order, reaches it.
* **Faults.** Every task is a pure function of its inputs (nothing is written but
  temporary files removed at its end, and the Parquet partition files, whose names are
  deterministic: a retried task overwrites them): a worker that dies mid-task has its
  task run again on another by the scheduler, and the client takes each capture's
  result once. A capture whose task keeps killing workers (the scheduler's
  ``distributed.scheduler.allowed-failures``, 3 by default, then ``KilledWorker``) is a
  result with ``error`` set, one line, as an unreadable capture is; so is any other
  failure of its task (a worker's exception). Closing the :meth:`DaskExecutor.results`
  generator (Ctrl-C, SIGTERM, the report closed) cancels the futures not yet taken.
  Dask's log lines (a failed task's ``Compute Failed`` and traceback) are silenced in
  this process while connected and in the workers of ``local:N``
  (``silence_logs=logging.CRITICAL``): what goes wrong is a result's ``error`` or one
  line.
* **Parquet** (``--format parquet=DIR``): each worker writes its capture's partition
  files itself (:func:`pcapcheck.report.parquet.write_result`) inside the task; nothing
  of it goes through the client.

* **Workers' configuration** (:data:`WORKER_CONFIG`): ``local:N`` starts its workers
  without what Dask's defaults make cost about 40 % more CPU per capture here (the
  statistical profiler, frequent event-loop callbacks, the nanny's
  ``MALLOC_TRIM_THRESHOLD_``); :func:`worker_environment` gives the same as the
  variables to start ``dask worker`` processes with.

Dask is imported only here, and only when a :class:`DaskExecutor` connects: ``import
pcapcheck`` and a run without ``--scheduler`` never import it (the extra ``pip install
'pcapcheck[dask]'``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import os
import pickle
import shutil
import tempfile
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import count, islice
from pathlib import Path
from typing import Any

from pcapcheck.i18n import gettext as _
from pcapcheck.jsonlines import LINE_END, dumps_bytes
from pcapcheck.results import FileResult
from pcapcheck.run.executors import Executor
from pcapcheck.run.tasks import Job, Settings, analyze_job, analyze_job_shard, merge_job
from pcapcheck.spool import LineSpool, item_at

__all__ = [
    "CONNECT_TIMEOUT",
    "MEMORY_BYTES",
    "SHARD_BYTES",
    "UPLOAD_BYTES",
    "UPLOAD_CHUNK",
    "WORKER_CONFIG",
    "ClusterError",
    "DaskExecutor",
    "Packed",
    "analyze_task",
    "merge_task",
    "pack",
    "parse_scheduler",
    "parse_size",
    "shard_task",
    "unpack",
    "worker_environment",
]

#: Captures of this many bytes or more are split into connection shards over the
#: cluster's workers (``--shard-size``, ``pcapcheck.analyze(shard_size=...)``).
SHARD_BYTES = 256_000_000

#: Seconds the client waits for the scheduler to answer (and, for ``local:N``, for the
#: local cluster to start) before :class:`ClusterError`.
CONNECT_TIMEOUT = 5.0

#: The Dask configuration of the local cluster's workers (``local:N``), and the one
#: to give ``dask worker`` processes (:func:`worker_environment`; README, "On a Dask
#: cluster"). Dask's defaults wake a worker's event loop thread every 10 ms (the
#: statistical profiler: a sample of the running task's stack), 20 ms (the tick that
#: watches the loop) and 100 ms (the memory monitor); each wake-up takes the GIL from
#: the task and spoils its caches. Measured on 40 captures of 50,000 packets in one
#: worker (user CPU of the task's thread): 3.72 s with the defaults, 3.02 s with these,
#: 2.86 s (+ 0.26 s system) in a plain process. And a nanny starts its worker with
#: ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes glibc's mmap threshold: every
#: array of 128 KB or more the batch decoder makes is then a fresh mmap, faulted in
#: page by page (100 captures: 14.6 s of the two workers' CPU, 12.1 s without it, as
#: without a nanny). The other variables are Dask's own defaults (bench/README.md,
#: "Fleet").
WORKER_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.nanny.pre-spawn-environ": {
        "MALLOC_TRIM_THRESHOLD_": None,
        "OMP_NUM_THREADS": 1,
        "MKL_NUM_THREADS": 1,
        "OPENBLAS_NUM_THREADS": 1,
    },
}


def worker_environment() -> dict[str, str]:
    """:data:`WORKER_CONFIG` as the environment variables a ``dask worker`` reads
    (``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``...; a mapping as its Python
    literal, which Dask reads so)."""
    return {
        "DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(value)
        for key, value in WORKER_CONFIG.items()
    }


#: A packed result larger than this many bytes is kept in a temporary file on the client
#: (any result that arrives before its turn in the report's order is).
MEMORY_BYTES = 256 * 1024

#: ``upload``: bytes of a capture read and sent (``client.scatter``) at a time: the
#: client holds one such piece, whatever the capture's size.
UPLOAD_CHUNK = 16 * 1024 * 1024

#: ``upload``: at most this many bytes of captures on the cluster at once (captures
#: sent whose task has not ended; at least one capture, at most 4 per worker thread).
UPLOAD_BYTES = 512 * 1024 * 1024

#: Items pickled together in a packed section (as :mod:`pcapcheck.spool` writes runs).
_CHUNK = 256

_EXTRA = "pip install 'pcapcheck[dask]'"

#: Dask's loggers in the client's process (silenced while connected).
_LOGGERS = ("distributed", "bokeh", "tornado")


class ClusterError(Exception):
    """The cluster cannot be used: Dask is not installed, the scheduler address is not
    one, the scheduler cannot be reached. The message is one line."""


# --------------------------------------------------------------------------- options


def parse_scheduler(text: str) -> tuple[str, Any]:
    """``("local", N)`` for ``local:N`` (N >= 1 worker processes), ``("address", text)``
    for a scheduler address (``tcp://HOST:PORT``, ``tls://...``, any ``SCHEME://``).
    Raises :class:`ClusterError` for anything else."""
    text = str(text).strip()
    if text.startswith("local:"):
        number = text[len("local:") :]
        if number.isdigit() and int(number) >= 1:
            return "local", int(number)
    elif "://" in text and text.split("://", 1)[1]:
        return "address", text
    raise ClusterError(
        _(
            "--scheduler: expected tcp://HOST:PORT or local:N (N worker processes), got {text}"
        ).format(text=repr(text))
    )


def parse_size(text: str | int) -> int:
    """A size in bytes from ``256000000``, ``256M``, ``2G``, ``500k`` (decimal units:
    k = 1,000); >= 1. Raises :class:`ValueError` with a one-line message."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        raw = str(text).strip()
        scale = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}.get(raw[-1:].lower(), 1)
        digits = raw[:-1] if scale != 1 else raw
        if not digits.strip().isdigit():
            raise ValueError(
                _("--shard-size: expected a size in bytes (e.g. 256M), got {text}").format(
                    text=repr(text)
                )
            )
        value = int(digits) * scale
    if value < 1:
        raise ValueError(
            _("--shard-size: expected a size of at least 1 byte, got {text}").format(
                text=repr(text)
            )
        )
    return value


# --------------------------------------------------------------------------- packing


class _Blob:
    """The bytes of one packed result on the client: in memory up to
    :data:`MEMORY_BYTES` (unless ``spill``), else in a temporary file (deleted by
    :meth:`close` or with the object)."""

    def __init__(self, data: bytes, spill: bool = False):
        self.data: bytes | None = None
        self._paths: list[str] = []
        self._finalizer = weakref.finalize(self, _remove, self._paths)
        if not data or (len(data) <= MEMORY_BYTES and not spill):
            self.data = bytes(data)
            return
        fd, path = tempfile.mkstemp(prefix="pcapcheck-cluster-")
        self._paths.append(path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    @contextlib.contextmanager
    def section(self, offset: int) -> Iterator[Any]:
        """A binary file object positioned at ``offset``."""
        if self.data is not None:
            yield io.BytesIO(memoryview(self.data)[offset:])
            return
        if not self._paths:
            raise ValueError("the result was closed")
        with open(self._paths[0], "rb", buffering=1 << 20) as fh:
            fh.seek(offset)
            yield fh

    def close(self) -> None:
        self._finalizer()
        self.data = b""


def _remove(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
    paths.clear()


class _Section(Sequence[Any]):
    """A read-only sequence over one section of a :class:`_Blob` (``count`` items from
    ``offset``), read one chunk at a time on every iteration (as a spool is)."""

    def __init__(self, blob: _Blob, offset: int, count: int):
        self.blob, self.offset, self.length = blob, offset, count

    def _items(self) -> Iterator[Any]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        return self._items()

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return self.length > 0

    def __getitem__(self, index):
        return item_at(self, self.length, index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Sequence, _Section)) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.length} items)"

    def close(self) -> None:
        """Delete the result's temporary file (every section of it)."""
        self.blob.close()


class _Pickled(_Section):
    """Items pickled :data:`_CHUNK` at a time."""

    def _items(self) -> Iterator[Any]:
        left = self.length
        if not left:
            return
        with self.blob.section(self.offset) as fh:
            while left > 0:
                chunk = pickle.load(fh)
                left -= len(chunk)
                yield from chunk


class _Lines(_Section):
    """Connection summaries as the JSON report's lines, ids 1, 2, ...: each line the
    bytes after ``{"id":N`` plus :data:`~pcapcheck.jsonlines.LINE_END`. Iterating gives
    ``(id, text)`` without the line end and :meth:`lines` the lines, as a
    :class:`pcapcheck.spool.LineSpool` does (what :func:`pcapcheck.run.shards.merge_shards`
    reads of an encoding shard)."""

    def lines(self) -> Iterator[bytes]:
        if not self.length:
            return
        with self.blob.section(self.offset) as fh:
            yield from islice(fh, self.length)

    def _items(self) -> Iterator[tuple[int, bytes]]:
        cut = -len(LINE_END)
        return zip(count(1), (line[:cut] for line in self.lines()))


class _Numbered(_Section):
    """``(id, line)`` with the line end: ``FileResult.connection_lines``."""

    def __init__(self, lines: _Lines):
        super().__init__(lines.blob, lines.offset, lines.length)
        self.source = lines

    def _items(self) -> Iterator[tuple[int, bytes]]:
        return zip(count(1), self.source.lines())


class _Decoded(_Section):
    """The summaries of a :class:`_Lines` section as dicts (the JSON text decoded, as
    :func:`pcapcheck.run.shards.merge_shards` decodes an encoding shard's)."""

    def __init__(self, lines: _Lines):
        super().__init__(lines.blob, lines.offset, lines.length)
        self.source = lines

    def _items(self) -> Iterator[dict[str, Any]]:
        loads = json.loads
        return (loads(b'{"id":%d%s' % item) for item in self.source)


#: The fields of :class:`~pcapcheck.results.FileResult` sent in a :class:`Packed`
#: result's blob (read back lazily); every other field (:data:`_VALUES`) is sent as it is.
_SEQUENCES = ("connections", "connection_lines", "events", "findings")

#: The other fields of :class:`~pcapcheck.results.FileResult`, derived from the
#: dataclass: a field added to it goes through the cluster with no change here.
_VALUES = tuple(f.name for f in dataclasses.fields(FileResult) if f.name not in _SEQUENCES)


@dataclass
class Packed:
    """A :class:`~pcapcheck.results.FileResult` as a worker sends it to the client:
    ``values`` its fields but the sequences (:data:`_VALUES`: the counters, ``error``...)
    as they are, the sequences in ``blob`` (``sections``: name → ``(offset, count)`` for
    ``connections``, ``events``, ``findings``; ``lines``: the connections are the JSON
    report's lines, then also ``connection_lines``, else pickled dicts). :func:`pack`
    makes it, :func:`unpack` gives the result back."""

    values: dict[str, Any]
    blob: bytes = b""
    sections: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    lines: bool = False

    @property
    def path(self) -> str:
        return self.values["path"]

    @property
    def error(self) -> str | None:
        return self.values.get("error")

    @property
    def size(self) -> int:
        """Bytes of the blob."""
        return len(self.blob)


def _write_pickled(out: io.BytesIO, items: Any) -> int:
    n = 0
    it = iter(items)
    dump, protocol = pickle.dump, pickle.HIGHEST_PROTOCOL
    while chunk := list(islice(it, _CHUNK)):
        dump(chunk, out, protocol)
        n += len(chunk)
    return n


def _write_lines(out: io.BytesIO, result: FileResult, encode: bool) -> int | None:
    """Write the connections as lines (the shards' encoded lines, or each summary
    encoded here when ``encode``); their number, or None when they cannot be (ids not
    1, 2, ...: nothing written)."""
    start = out.tell()
    n = 0
    if isinstance(result.connections, LineSpool):  # an encoding shard's: (id, text)
        for n, (id_, text) in enumerate(result.connections, 1):
            if id_ != n:
                break
            out.write(text)
            out.write(LINE_END)
        else:
            return n
    elif result.connection_lines is not None:
        for n, (id_, line) in enumerate(result.connection_lines, 1):
            if id_ != n:
                break
            out.write(line)
        else:
            return n
    elif encode:
        for n, summary in enumerate(result.connections, 1):
            head = b'{"id":%d' % n
            text = dumps_bytes(summary)
            if summary.get("id") != n or not text.startswith(head):
                break
            out.write(memoryview(text)[len(head) :])
            out.write(LINE_END)
        else:
            return n
    out.seek(start)
    out.truncate()
    return None


def pack(result: FileResult, encode: bool = False) -> Packed:
    """``result`` as a :class:`Packed` (its spools read, not closed). ``encode``: a JSON
    report will be written: the connections go as its lines (encoded here, on the
    worker), else as pickled dicts."""
    values = {name: copy.copy(getattr(result, name)) for name in _VALUES}
    if result.error is not None:
        return Packed(values)
    out = io.BytesIO()
    sections: dict[str, tuple[int, int]] = {}
    offset = out.tell()
    lines = _write_lines(out, result, encode)
    if lines is None:
        sections["connections"] = (offset, _write_pickled(out, result.connections))
    else:
        sections["connections"] = (offset, lines)
    for name in ("events", "findings"):
        offset = out.tell()
        sections[name] = (offset, _write_pickled(out, getattr(result, name)))
    return Packed(values, out.getvalue(), sections, lines is not None)


def unpack(packed: Packed, *, raw_lines: bool = False, spill: bool = False) -> FileResult:
    """The :class:`~pcapcheck.results.FileResult` of :func:`pack` (its sequences read
    from ``packed.blob``, kept in a temporary file when large). ``raw_lines``: the
    connections stay ``(id, text)`` pairs with a ``lines()`` method (an encoding
    shard's, for :func:`pcapcheck.run.shards.merge_shards`); else connection lines
    become ``connection_lines`` and ``connections`` their decoded dicts. ``spill``: the
    blob goes to a temporary file whatever its size (a result kept for later)."""
    values = {name: copy.copy(value) for name, value in packed.values.items()}
    if packed.error is not None:
        return FileResult(**values)
    blob = _Blob(packed.blob, spill)
    offset, n = packed.sections["connections"]
    connections: Any
    lines: Any = None
    if packed.lines:
        source = _Lines(blob, offset, n)
        if raw_lines:
            connections = source
        else:
            connections, lines = _Decoded(source), _Numbered(source)
    else:
        connections = _Pickled(blob, offset, n)
    return FileResult(
        **values,
        connections=connections,
        connection_lines=lines,
        events=_Pickled(blob, *packed.sections["events"]),
        findings=_Pickled(blob, *packed.sections["findings"]),
    )


@dataclass
class _PackedShard:
    """A :class:`pcapcheck.run.shards.ShardResult` as a worker sends it to another."""

    shard: tuple[int, int]
    result: Packed
    facts: Any
    encoded: bool


# --------------------------------------------------------------------------- tasks


def _tune(gc_threshold: tuple[int, ...] | None) -> None:
    """Give this worker process the client's cyclic-GC thresholds
    (:func:`gc.set_threshold`; ``pcapcheck.cli.main`` raises them, and the local
    worker processes, forked, inherit them: the analysis runs 15-20 % faster)."""
    import gc

    if gc_threshold and gc.get_threshold() != gc_threshold:
        gc.set_threshold(*gc_threshold)


def _upload(client: Any, path: str | Path) -> list[Any]:
    """Send the capture at ``path`` to the cluster :data:`UPLOAD_CHUNK` bytes at a time
    (``client.scatter``): the futures of its pieces, in order. Raises OSError."""
    pieces: list[Any] = []
    try:
        with open(path, "rb") as fh:
            while data := fh.read(UPLOAD_CHUNK):
                pieces.append(client.scatter(data, hash=False))
                del data
    except BaseException:
        for piece in pieces:
            with contextlib.suppress(Exception):
                piece.release()
        raise
    return pieces


@contextlib.contextmanager
def _capture(job: Job, source: str | bytes | Sequence[bytes]) -> Iterator[Job]:
    """The job with the path this worker reads: ``source`` the capture's path, or its
    bytes (one ``bytes``, or its pieces in order: written to a temporary file named as
    the capture, removed at the end)."""
    if isinstance(source, (str, os.PathLike)):
        yield dataclasses.replace(job, path=source)
        return
    pieces = [source] if isinstance(source, (bytes, bytearray, memoryview)) else source
    directory = tempfile.mkdtemp(prefix="pcapcheck-upload-")
    try:
        path = Path(directory) / (Path(str(job.path)).name or "capture")
        with open(path, "wb") as fh:
            for piece in pieces:
                fh.write(piece)
        yield dataclasses.replace(job, path=path)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _as_given(result: FileResult, job: Job, local: Job) -> FileResult:
    """``result`` with the worker's path of the capture (``local.path``) in its error
    message replaced by what a local run names: the job's name for standard input,
    else its path."""
    if result.error is not None and str(local.path) != str(job.path):
        shown = job.name if job.stdin else str(job.path)
        result.error = result.error.replace(str(local.path), shown)
    return result


def _finish(result: FileResult, settings: Settings, local: Job, encode: bool) -> Packed:
    """Write the capture's files into the run's datasets here (``settings.datasets``,
    :class:`pcapcheck.report.Dataset`: the Parquet partition files, named by the
    capture's bytes and the run, so that a retried task replaces them), then pack the
    result and delete its spools."""
    try:
        for dataset in getattr(settings, "datasets", ()):
            dataset.write(result, source=local.path)
        return pack(result, encode)
    finally:
        result.close()


def analyze_task(
    job: Job,
    settings: Settings,
    source: str | Sequence[bytes],
    encode: bool = False,
    gc_threshold: tuple[int, ...] | None = None,
) -> Packed:
    """One capture on a worker: :func:`pcapcheck.run.tasks.analyze_job` of the capture
    at ``source`` (its absolute path, or its bytes' pieces), its dataset files written here
    (``settings.datasets``), packed (:func:`pack`). Never raises for a capture that
    cannot be read (an ``error``, worded as a local run words it); raises
    :class:`pcapcheck.report.DatasetError` when a dataset cannot be written.
    ``gc_threshold``: the client's (:func:`gc.get_threshold`), set in this worker."""
    _tune(gc_threshold)
    with _capture(job, source) as local:
        result = _as_given(analyze_job(local, settings), job, local)
        result.path = job.name
        return _finish(result, settings, local, encode)


def shard_task(
    job: Job,
    settings: Settings,
    source: str | Sequence[bytes],
    shard: tuple[int, int],
    encode: bool,
    gc_threshold: tuple[int, ...] | None = None,
) -> _PackedShard | None:
    """Shard ``shard = (k, n)`` of one capture on a worker
    (:func:`pcapcheck.run.tasks.analyze_job_shard`, reading the capture itself), packed
    for the worker that merges; None when the analysis failed (the merge then analyses
    the capture serially, so that the error is the serial one; ``PCAPCHECK_DEBUG``:
    raised)."""
    _tune(gc_threshold)
    try:
        with _capture(job, source) as local:
            part = analyze_job_shard(local, settings, shard, encode)
    except Exception:
        if os.environ.get("PCAPCHECK_DEBUG"):
            raise
        return None
    try:
        return _PackedShard(part.shard, pack(part.result), part.facts, part.encoded)
    finally:
        part.close()


def merge_task(
    job: Job,
    settings: Settings,
    source: str | Sequence[bytes],
    parts: Sequence[_PackedShard | None],
    encode: bool = False,
    gc_threshold: tuple[int, ...] | None = None,
) -> Packed:
    """The capture's result from its shards (:func:`pcapcheck.run.tasks.merge_job`, on
    a worker), packed, its datasets written as :func:`analyze_task` writes them; when a
    shard failed, the serial analysis of the capture here."""
    from pcapcheck.run.shards import ShardResult

    if any(p is None for p in parts):
        return analyze_task(job, settings, source, encode, gc_threshold)
    shards = [
        ShardResult(p.shard, unpack(p.result, raw_lines=p.encoded), p.facts, p.encoded)
        for p in parts
        if p is not None
    ]
    try:
        result = merge_job(job, settings, shards)
    except BaseException:
        for part in shards:
            part.result.close()
        raise
    if not getattr(settings, "datasets", ()):
        return _finish(result, settings, job, encode)
    with _capture(job, source) as local:  # the datasets name the capture by its bytes
        return _finish(result, settings, local, encode)


# --------------------------------------------------------------------------- executor


def _gc_threshold() -> tuple[int, ...]:
    import gc

    return gc.get_threshold()


def _size(path: str | Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class DaskExecutor(Executor):
    """The jobs on a Dask cluster (see the module docstring).

    ``scheduler``: ``tcp://HOST:PORT`` (a running ``dask scheduler``) or ``local:N`` (a
    :class:`distributed.LocalCluster` of N worker processes with one thread each, started
    by :meth:`connect` and closed by :meth:`close`). ``upload``: send the captures'
    bytes instead of their paths (standard input always is). ``shard_size``: captures of
    this many bytes or more are split into one connection shard per worker thread (at
    least 2). The run's datasets (``settings.datasets``, ``--format parquet=DIR``) are
    written by the workers (:attr:`writes_datasets`), into their directories made
    absolute (storage every machine sees).
    ``progress``: called in this process as each capture's task ends on the cluster
    (in the order they end), with ``(files done, bytes done, bytes in all)``.
    ``connect_timeout``: seconds (:data:`CONNECT_TIMEOUT`).
    """

    #: the workers write each capture's dataset files (:class:`pcapcheck.api.Report`
    #: then writes none)
    writes_datasets = True

    def __init__(
        self,
        scheduler: str,
        *,
        upload: bool = False,
        shard_size: int = SHARD_BYTES,
        progress: Callable[[int, int, int], None] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ):
        self.kind, self.target = parse_scheduler(scheduler)
        self.scheduler = scheduler
        self.upload = upload
        self.shard_size = shard_size
        self.progress = progress
        self.connect_timeout = connect_timeout
        self.client: Any = None
        self.cluster: Any = None
        self._levels: dict[str, int] = {}  # Dask's loggers silenced: their levels before

    # ------------------------------------------------------------------ connection
    def connect(self) -> None:
        """Import Dask and connect to the scheduler (start the local cluster). Raises
        :class:`ClusterError` (one line) when Dask is not installed or the scheduler
        does not answer within ``connect_timeout`` seconds."""
        if self.client is not None:
            return
        try:
            import distributed
        except ImportError:
            raise ClusterError(
                _(
                    "--scheduler needs Dask's distributed scheduler, not installed: {command}"
                ).format(command=_EXTRA)
            ) from None
        self._quiet()
        try:
            if self.kind == "local":
                import dask

                with dask.config.set(WORKER_CONFIG):  # passed to the spawned workers
                    self.cluster = distributed.LocalCluster(
                        n_workers=self.target,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address="127.0.0.1:0",  # no fixed port (8787 may be taken)
                        silence_logs=logging.CRITICAL,  # the workers' logs: see _quiet
                    )
                self.client = distributed.Client(
                    self.cluster, timeout=self.connect_timeout, set_as_default=False
                )
            else:
                self.client = distributed.Client(
                    self.target, timeout=self.connect_timeout, set_as_default=False
                )
        except (OSError, TimeoutError) as exc:
            self.close()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClusterError(
                _(
                    "cannot reach the Dask scheduler at {address} within {seconds} s: {reason}"
                ).format(address=self.scheduler, seconds=f"{self.connect_timeout:g}", reason=reason)
            ) from None

    def _quiet(self) -> None:
        """Silence Dask's loggers in this process (the client's, and the local
        cluster's scheduler) until :meth:`close`: what goes wrong reaches the user as
        a result's ``error`` or a one-line error, never as Dask's log lines and
        tracebacks on standard error (the workers of ``local:N`` are started with
        ``silence_logs=logging.CRITICAL``; ``dask worker`` processes log where they
        were started)."""
        if self._levels:
            return
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.CRITICAL + 1)

    def close(self) -> None:
        """Disconnect (and stop the local cluster). Never raises."""
        client, self.client = self.client, None
        cluster, self.cluster = self.cluster, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
        levels, self._levels = self._levels, {}
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)

    def threads(self) -> int:
        """The worker threads of the cluster (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))

    # ------------------------------------------------------------------ the run
    def results(
        self, jobs: Sequence[Job], settings: Settings, encode: bool = False
    ) -> Iterator[FileResult]:
        if not jobs:
            return
        self.connect()
        client = self.client
        from distributed import as_completed

        sizes = [_size(job.path) for job in jobs]
        total = sum(sizes)
        threads = self.threads()
        run = uuid.uuid4().hex[:12]
        tuning = _gc_threshold()
        datasets = getattr(settings, "datasets", ())
        if datasets:  # the workers' working directory is not this one
            settings = dataclasses.replace(
                settings,
                datasets=tuple(
                    dataclasses.replace(d, directory=os.path.abspath(d.directory)) for d in datasets
                ),
            )
        shared = client.scatter(settings, broadcast=True, hash=False)
        futures: dict[int, Any] = {}  # job index -> its result's future (not finished)
        helpers: dict[int, list[Any]] = {}  # job index -> its bytes' and shards' futures
        # captures submitted ahead: all of them when the workers read them by path (the
        # scheduler queues them: no worker ever waits for the client), else (uploads,
        # their bytes held on the cluster) a few per worker thread and at most
        # UPLOAD_BYTES of them (at least one capture)
        uploads = self.upload or any(job.stdin for job in jobs)
        window = max(4, 4 * threads) if uploads else len(jobs)
        flight: dict[int, int] = {}  # job index -> bytes uploaded, while its task runs
        # finished, waiting for their turn in input order: the result (its blob in a
        # temporary file), or the exception to raise at its turn
        here: dict[int, FileResult | Exception] = {}
        done_files = done_bytes = 0
        pending = deque(range(len(jobs)))
        completions = as_completed(loop=client.loop)
        index: dict[str, int] = {}

        def submit(i: int) -> None:
            job = jobs[i]
            source: Any
            sent = 0
            if self.upload or job.stdin:
                try:
                    source = _upload(client, job.path)
                except OSError:  # its error row, as a local run words it
                    here[i] = analyze_job(job, settings)
                    done(i)
                    return
                helpers.setdefault(i, []).extend(source)
                sent = sizes[i]
            else:
                source = os.path.abspath(job.path)
            key = f"pcapcheck-{run}-{i}"
            if sizes[i] >= self.shard_size and settings.decoder != "tshark" and threads >= 1:
                n = max(2, threads)
                parts = [
                    client.submit(
                        shard_task,
                        job,
                        shared,
                        source,
                        (k, n),
                        encode,
                        tuning,
                        key=f"{key}-shard-{k}",
                        pure=False,
                    )
                    for k in range(n)
                ]
                helpers.setdefault(i, []).extend(parts)
                future = client.submit(
                    merge_task,
                    job,
                    shared,
                    source,
                    parts,
                    encode,
                    tuning,
                    key=key,
                    pure=False,
                )
            else:
                future = client.submit(
                    analyze_task, job, shared, source, encode, tuning, key=key, pure=False
                )
            futures[i] = future
            flight[i] = sent
            index[future.key] = i
            completions.add(future)

        def submit_more() -> None:
            while pending and len(flight) < window:
                i = pending[0]
                sent = sizes[i] if self.upload or jobs[i].stdin else 0
                if flight and sum(flight.values()) + sent > UPLOAD_BYTES:
                    return
                pending.popleft()
                submit(i)

        def done(i: int) -> None:
            nonlocal done_files, done_bytes
            done_files += 1
            done_bytes += sizes[i]
            if self.progress is not None:
                self.progress(done_files, done_bytes, total)

        try:
            submit_more()
            taken = 0
            while taken < len(jobs):
                if taken in here:
                    result = here.pop(taken)
                    if isinstance(result, Exception):
                        raise result
                    yield result
                    taken += 1
                    continue
                # the next task to end, wherever it is in the order: its result taken
                # at once (out of turn: into a temporary file) and its futures released,
                # so that nothing waits on the cluster behind a slow capture
                future = next(completions)
                i = index.pop(future.key)
                del futures[i], flight[i]
                for helper in helpers.pop(i, ()):
                    helper.release()
                try:
                    here[i] = self._take(jobs[i], future, spill=i != taken)
                except Exception as exc:  # raised at its turn, as a local run would
                    here[i] = exc
                done(i)
                submit_more()
        finally:
            # stopped early (Ctrl-C, SIGTERM, the report closed): nothing left running
            left = [*futures.values(), *(f for fs in helpers.values() for f in fs), shared]
            with contextlib.suppress(Exception):
                client.cancel(left)
            for item in here.values():
                if isinstance(item, FileResult):
                    item.close()

    def _take(self, job: Job, future: Any, spill: bool = False) -> FileResult:
        """The capture's result from its finished future (released on the cluster); a
        failed task is a result with ``error`` (one line). ``spill``: its blob goes to
        a temporary file whatever its size (:func:`unpack`)."""
        from distributed import KilledWorker

        try:
            packed = future.result()
        except KilledWorker as exc:
            return FileResult(
                path=job.name,
                error=_(
                    "{name}: its analysis ended the worker processes that ran it "
                    "(KilledWorker: {reason})"
                ).format(name=job.name, reason=_one_line(exc)),
            )
        except Exception as exc:
            if os.environ.get("PCAPCHECK_DEBUG") or type(exc).__name__ == "DatasetError":
                raise  # a dataset that cannot be written stops the run, as locally
            return FileResult(
                path=job.name,
                error=_("{name}: its task failed on the cluster ({kind}: {reason})").format(
                    name=job.name, kind=type(exc).__name__, reason=_one_line(exc)
                ),
            )
        finally:
            future.release()
        return unpack(packed, spill=spill)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."
