"""A sorted, append-only sequence that spills to disk: how findings, events and connection
summaries stream out of the analysis without memory growing with the capture's length.

A :class:`Spool` keeps up to ``limit`` items in memory. When the buffer is full it is
sorted by ``key`` and written to a temporary file as one *run*; iterating merges the runs
and the buffer (an external merge sort, :func:`heapq.merge`), so the items come back in
``key`` order, ties in order of appending (the order of a stable sort of everything).
Memory: ``limit`` items plus, when iterating, up to 256 items per run (a run is read a
list of items at a time), whatever the number of items.

The run files are named temporary files (``pcapcheck-spool-*``, in :func:`tempfile.
gettempdir`), deleted when the spool is garbage collected or :meth:`Spool.close`\\ d. A
spool can be pickled to another process (``analyze --jobs``): its buffer is written to a
run first, the receiving copy takes over the files and the sender no longer deletes them.
"""

from __future__ import annotations

import heapq
import os
import pickle
import tempfile
import weakref
from itertools import islice
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")

#: Items a spool keeps in memory before it writes a sorted run to disk.
DEFAULT_LIMIT = 2048

#: Items pickled together in a run file (read back a list at a time).
_CHUNK = 256

#: Run files merged into one when there are this many (iterating opens every run file
#: at once: this bounds the open files).
MAX_RUNS = 64


def item_at(items: Iterable[T], length: int, index: int | slice) -> T | list[T]:
    """``items[index]`` for a sequence of ``length`` items that can only be read in order
    (a spool, a merge of spools): read up to the item (a slice: every item, then sliced).
    Raises IndexError when ``index`` is out of range."""
    if isinstance(index, slice):
        return list(items)[index]
    if index < 0:
        index += length
    if not 0 <= index < length:
        raise IndexError("index out of range")
    return next(islice(iter(items), index, None))


def _remove(runs: list[tuple[str, int]]) -> None:
    for path, _count in runs:
        try:
            os.unlink(path)
        except OSError:
            pass


class Spool(Generic[T]):
    """Items kept in ``key`` order (``None``: in order of appending), in memory up to
    ``limit`` of them (default :data:`DEFAULT_LIMIT`), beyond that in sorted runs on disk.
    ``key`` must be picklable (a module-level function) for the spool to be.

    Supports ``append``/``extend``, ``len()``, truthiness, repeated iteration (sorted),
    indexing and slicing (O(n) once spilled), and ``==`` with a list or another spool.
    Items must be picklable once spilled. Raises OSError when the temporary directory
    cannot be written.
    """

    def __init__(self, items: Iterable[T] = (), key: Callable[[T], Any] | None = None,
                 limit: int | None = None):
        self.key = key
        self.limit = max(1, int(limit if limit is not None else DEFAULT_LIMIT))
        self._buffer: list[T] = []
        self._sorted = True
        self._runs: list[tuple[str, int]] = []   # (path, item count); the finalizer's list
        self._count = 0
        self._finalizer = weakref.finalize(self, _remove, self._runs)
        self.extend(items)

    # ------------------------------------------------------------------ writing
    def append(self, item: T) -> None:
        """Add one item (spills the buffer to a run file when it reaches ``limit``)."""
        self._buffer.append(item)
        self._sorted = False
        self._count += 1
        if len(self._buffer) >= self.limit:
            self._spill()

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.append(item)

    def _sort_buffer(self) -> None:
        if not self._sorted:
            if self.key is not None:
                self._buffer.sort(key=self.key)
            self._sorted = True

    def _spill(self) -> None:
        self._sort_buffer()
        self._runs.append(self._write_run(self._buffer, len(self._buffer)))
        self._buffer = []
        if len(self._runs) >= MAX_RUNS:
            runs = list(self._runs)
            merged = self._merge([self._read_run(path, n) for path, n in runs])
            self._runs[:] = [self._write_run(merged, sum(n for _p, n in runs))]
            _remove(runs)

    @staticmethod
    def _write_run(items: Iterable[T], count: int) -> tuple[str, int]:
        fd, path = tempfile.mkstemp(prefix="pcapcheck-spool-")
        dump, protocol = pickle.dump, pickle.HIGHEST_PROTOCOL
        items = iter(items)
        try:
            with os.fdopen(fd, "wb") as fh:
                # one pickle per list of up to _CHUNK items: a pickle.load costs about
                # 6 µs whatever its size, and the merging process loads every item
                while chunk := list(islice(items, _CHUNK)):
                    dump(chunk, fh, protocol)
        except BaseException:
            _remove([(path, count)])
            raise
        return path, count

    def _merge(self, sources: list[Iterator[T]]) -> Iterator[T]:
        if self.key is None:
            return (item for source in sources for item in source)
        return heapq.merge(*sources, key=self.key)

    @property
    def spilled(self) -> bool:
        """True once part of the items live in run files."""
        return bool(self._runs)

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _read_run(path: str, count: int) -> Iterator[T]:
        load = pickle.load
        with open(path, "rb") as fh:
            while count > 0:
                chunk = load(fh)
                count -= len(chunk)
                yield from chunk

    def __iter__(self) -> Iterator[T]:
        self._sort_buffer()
        if not self._runs:
            return iter(list(self._buffer))
        sources = [self._read_run(path, n) for path, n in self._runs]
        sources.append(iter(list(self._buffer)))
        return self._merge(sources)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __getitem__(self, index):
        if not self._runs:
            self._sort_buffer()
            return self._buffer[index]
        return item_at(self, self._count, index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Spool, list, tuple)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        where = f", {len(self._runs)} runs on disk" if self._runs else ""
        return f"Spool({self._count} items{where})"

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Delete the run files and forget every item."""
        self._finalizer()
        self._runs, self._buffer, self._count = [], [], 0
        self._finalizer = weakref.finalize(self, _remove, self._runs)

    def __getstate__(self) -> dict[str, Any]:
        # The copy (in another process) owns the run files from now on. The buffer goes
        # to a run first: the receiving process (the merge of a capture's shards) then
        # holds no more than the heads of the runs.
        if self._buffer:
            self._spill()
        self._finalizer.detach()
        return {"key": self.key, "limit": self.limit, "buffer": self._buffer,
                "sorted": self._sorted, "runs": self._runs, "count": self._count}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.key, self.limit = state["key"], state["limit"]
        self._buffer, self._sorted = state["buffer"], state["sorted"]
        self._runs, self._count = state["runs"], state["count"]
        self._finalizer = weakref.finalize(self, _remove, self._runs)
