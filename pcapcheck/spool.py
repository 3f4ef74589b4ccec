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

A :class:`LineSpool` holds lines of bytes keyed by dense ids that come about in id order
(the JSON lines of a shard's connection summaries): they go to one file in id order as
they come, so reading them back is reading a file, with no merge.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import os
import pickle
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")

#: Items a spool keeps in memory before it writes a sorted run to disk.
DEFAULT_LIMIT = 2048

#: Lines a :class:`LineSpool` holds waiting for a smaller id before it writes them with
#: gaps (about 10 MB of connection lines). On ``bench.pcap`` a shard's lines wait for
#: the connections that are not clean, finalised a close delay after their last segment
#: while the clean ones are finalised at theirs: up to 2,868 at once.
LINE_LIMIT = 8192

#: Items pickled together in a run file (read back a list at a time).
_CHUNK = 256

#: Run files merged into one when there are this many (iterating opens every run file
#: at once: this bounds the open files).
MAX_RUNS = 64

#: Runs of one size tier merged into one as soon as there are this many (a tiered merge:
#: a run of tier ``t`` holds up to ``limit * MERGE_FANIN ** t`` items). Each item is
#: rewritten about ``log(items / limit) / log(MERGE_FANIN)`` times, so a spool of N
#: items costs O(N log N) (4 rewrites an item for 134 million), where merging every run
#: into one at :data:`MAX_RUNS` rewrote the whole spool every 63 runs: O(N²) (issue
#: #23: 2 GB of zero-length records are 134 million CP005 events and findings). The
#: tiers hold at most ``MERGE_FANIN - 1`` runs each: they reach MAX_RUNS only past
#: ``MERGE_FANIN ** 4`` runs (134 million items of the default limit).
MERGE_FANIN = 16


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


class FieldsCodec:
    """How a :class:`Spool` writes items of the dataclass ``cls`` to its run files: as
    the tuple of their fields (in :func:`dataclasses.fields` order), built again with
    ``cls(*fields)`` when read. Pickling and loading a tuple takes a fraction of the
    time of a dataclass instance (an :class:`~pcapcheck.model.Event`: 4.7 µs written
    and read as an instance, about 1 µs as a tuple), and every event and finding
    passes through a spool once or more (issue #23: a capture of malformed records
    makes one of each a record). Every field of ``cls`` must be an ``__init__``
    argument. Picklable (a spool given to another process takes it along)."""

    def __init__(self, cls: type):
        self.cls = cls
        self.names = tuple(f.name for f in dataclasses.fields(cls))
        self._get = attrgetter(*self.names)

    def pack(self, items: list[Any]) -> list[tuple]:
        """``items`` as tuples of their fields."""
        get = self._get
        return [get(item) for item in items]

    def unpack(self, rows: list[tuple]) -> list[Any]:
        """The items of :meth:`pack`'s ``rows``."""
        cls = self.cls
        return [cls(*row) for row in rows]

    def __getstate__(self) -> type:
        return self.cls

    def __setstate__(self, cls: type) -> None:
        self.__init__(cls)  # type: ignore[misc]


def _remove(runs: list[tuple[str, int]]) -> None:
    _remove_paths([path for path, _count in runs])


class Spool(Sequence[T], Generic[T]):
    """Items kept in ``key`` order (``None``: in order of appending), in memory up to
    ``limit`` of them (default :data:`DEFAULT_LIMIT`), beyond that in sorted runs on disk.
    ``key`` must be picklable (a module-level function) for the spool to be.

    A read-only :class:`~collections.abc.Sequence` (``len()``, truthiness, repeated
    iteration in order, indexing and slicing, O(n) once spilled) with ``append``/``extend``,
    and ``==`` with a list or another spool.
    Items must be picklable once spilled. Raises OSError when the temporary directory
    cannot be written.
    """

    def __init__(
        self,
        items: Iterable[T] = (),
        key: Callable[[T], Any] | None = None,
        limit: int | None = None,
        codec: FieldsCodec | None = None,
    ):
        self.key = key
        #: how items are written to run files (None: pickled as they are)
        self.codec = codec
        self.limit = max(1, int(limit if limit is not None else DEFAULT_LIMIT))
        self._buffer: list[T] = []
        self._sorted = True
        self._runs: list[tuple[str, int]] = []  # (path, item count); the finalizer's list
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
        runs = self._runs
        runs.append(self._write_run(self._buffer, len(self._buffer)))
        self._buffer = []
        fanin = MERGE_FANIN
        # the runs' tiers never increase along the list (a binary counter in base
        # MERGE_FANIN): the last MERGE_FANIN share one when the first of them has the last's
        while len(runs) >= fanin and self._tier(runs[-fanin][1]) == self._tier(runs[-1][1]):
            self._merge_runs(len(runs) - fanin)
        if len(runs) >= MAX_RUNS:
            self._merge_runs(0)

    def _tier(self, count: int) -> int:
        """The size tier of a run of ``count`` items (:data:`MERGE_FANIN`)."""
        tier, size = 0, self.limit
        while count > size:
            size *= MERGE_FANIN
            tier += 1
        return tier

    def _merge_runs(self, start: int) -> None:
        """Merge the runs from index ``start`` on into one run (consecutive runs, in
        order: ties keep the order of appending), their files deleted."""
        runs = self._runs
        old = runs[start:]
        merged = self._merge([self._read_run(path, n) for path, n in old])
        runs[start:] = [self._write_run(merged, sum(n for _p, n in old))]
        _remove(old)

    def _write_run(self, items: Iterable[T], count: int) -> tuple[str, int]:
        fd, path = tempfile.mkstemp(prefix="pcapcheck-spool-")
        dump, protocol = pickle.dump, pickle.HIGHEST_PROTOCOL
        pack = self.codec.pack if self.codec is not None else None
        items = iter(items)
        try:
            with os.fdopen(fd, "wb") as fh:
                # one pickle per list of up to _CHUNK items: a pickle.load costs about
                # 6 µs whatever its size, and the merging process loads every item
                while chunk := list(islice(items, _CHUNK)):
                    dump(chunk if pack is None else pack(chunk), fh, protocol)
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
    def _read_run(self, path: str, count: int) -> Iterator[T]:
        load = pickle.load
        unpack = self.codec.unpack if self.codec is not None else None
        with open(path, "rb") as fh:
            while count > 0:
                chunk = load(fh)
                count -= len(chunk)
                yield from (chunk if unpack is None else unpack(chunk))

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

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
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
        return {
            "key": self.key,
            "codec": self.codec,
            "limit": self.limit,
            "buffer": self._buffer,
            "sorted": self._sorted,
            "runs": self._runs,
            "count": self._count,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.key, self.limit = state["key"], state["limit"]
        self.codec = state.get("codec")
        self._buffer, self._sorted = state["buffer"], state["sorted"]
        self._runs, self._count = state["runs"], state["count"]
        self._finalizer = weakref.finalize(self, _remove, self._runs)


class LineSpool:
    """Lines of text keyed by dense integer ids (1, 2, ...), appended in *about* id order
    and kept on disk in id order, for a reader that wants them at the speed of reading a
    file: the JSON lines of one shard's connection summaries (``analyze_part(encode=
    True)``; ids are given at a connection's creation, lines appended at its release).

    ``append(id, text)``: ``text`` is bytes without a newline. The line goes to one
    temporary file (``pcapcheck-lines-*``) as ``text + end`` as soon as every smaller id
    has been written; until then it waits in memory. More than ``limit`` (default
    :data:`LINE_LIMIT`) waiting lines
    (a connection held long, e.g. open until the end of the capture) write the waiting
    lines out at once, leaving a **gap** for the ids not yet seen; a line that comes
    later for a gap (a **late** line) is kept in a :class:`Spool` (so memory stays
    bounded: ``limit`` lines plus the spool's) and put in its place when reading.

    Reading: :meth:`lines` gives every line (``text + end``, bytes) in id order,
    straight from the file when there was no late line; iteration gives ``(id, text)``
    pairs. Pickling to another process (``analyze --jobs``) writes the waiting lines
    first; the copy then owns the file and can only be read. Raises OSError when the
    temporary directory cannot be written.
    """

    def __init__(self, end: bytes = b"\n", limit: int | None = None):
        self.end = end
        self.limit = max(1, int(limit if limit is not None else LINE_LIMIT))
        self._next = 1  # the next id the file takes
        self._waiting: dict[int, bytes] = {}
        self._gaps: list[tuple[int, int]] = []  # [first, last] ids skipped, in order
        self._late: Spool = Spool(key=itemgetter(0))
        self._count = 0
        self._paths: list[str] = []  # the file (one path, once created)
        self._fh: Any = None
        self._finalizer = weakref.finalize(self, _remove_paths, self._paths)

    # ------------------------------------------------------------------ writing
    def append(self, id_: int, text: bytes) -> None:
        """Add the line of ``id_`` (bytes, no newline; each id once)."""
        self._count += 1
        if id_ != self._next:
            if id_ < self._next:  # a gap's line: put in place when reading
                self._late.append((id_, bytes(text)))
                return
            self._waiting[id_] = text
            if len(self._waiting) > self.limit:
                self._skip()
            return
        write, end = self._writer(), self.end
        write(text)
        write(end)
        self._next = id_ = id_ + 1
        waiting = self._waiting
        while waiting:
            queued = waiting.pop(id_, None)
            if queued is None:
                break
            write(queued)
            write(end)
            id_ += 1
        self._next = id_

    def _writer(self) -> Callable[[bytes], Any]:
        if self._fh is None:
            if self._paths:  # appending after reading
                self._fh = open(self._paths[0], "ab", buffering=1 << 16)
            else:
                fd, path = tempfile.mkstemp(prefix="pcapcheck-lines-")
                self._paths.append(path)
                self._fh = os.fdopen(fd, "wb", buffering=1 << 16)
        return self._fh.write

    def _skip(self) -> None:
        """Write every waiting line, in id order; the ids between them (not seen yet)
        become gaps."""
        write, end = self._writer(), self.end
        for id_ in sorted(self._waiting):
            if id_ > self._next:
                self._gaps.append((self._next, id_ - 1))
            write(self._waiting[id_])
            write(end)
            self._next = id_ + 1
        self._waiting = {}

    def finish(self) -> None:
        """Write the waiting lines and close the file for writing (reading does it)."""
        if self._waiting:
            self._skip()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    @property
    def spilled(self) -> bool:
        """True when some lines came late (after the ids beyond theirs were written)."""
        return bool(self._late)

    def lines(self) -> Iterator[bytes]:
        """Every line, ``text + end``, in id order (bytes)."""
        self.finish()
        if not self._paths:
            return iter(())
        # 1 MiB reads: the default 8 KiB made reading 51 MB of lines twice as slow
        fh = open(self._paths[0], "rb", buffering=1 << 20)
        if not self._late:
            return fh
        return self._spliced(fh)

    def _spliced(self, fh: Any) -> Iterator[bytes]:
        """The file's lines with the late ones put in place: a late id's line follows
        the file's lines of smaller ids, i.e. its id minus 1 minus the gaps' ids below
        it (gaps are ids not in the file)."""
        gaps, end = self._gaps, self.end
        done = 0  # file lines given
        skipped = 0  # gap ids below the current late id
        g = 0
        with fh:
            for id_, text in self._late:
                while g < len(gaps) and gaps[g][1] < id_:
                    skipped += gaps[g][1] - gaps[g][0] + 1
                    g += 1
                if g < len(gaps) and gaps[g][0] <= id_:
                    inside = id_ - gaps[g][0]  # ids of this gap below id_
                else:
                    inside = 0
                before = id_ - 1 - skipped - inside
                if before > done:
                    yield from islice(fh, before - done)
                    done = before
                yield text + end
            yield from fh

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """``(id, text)`` in id order (``text`` without ``end``): :meth:`lines` with
        their ids (the file's, and the late lines' put before a file line of the same
        id, as :meth:`lines` puts them)."""
        cut = -len(self.end) if self.end else None
        lines = self.lines()
        try:
            ids = heapq.merge((id_ for id_, _text in self._late), self._file_ids())
            for id_, line in zip(ids, lines):
                yield id_, line[:cut]
        finally:
            close = getattr(lines, "close", None)
            if close is not None:
                close()

    def _file_ids(self) -> Iterator[int]:
        """The ids of the file's lines, in order: 1 .. the last written, but the gaps."""
        self.finish()
        start = 1
        for first, last in self._gaps:
            yield from range(start, first)
            start = last + 1
        yield from range(start, self._next)

    def __repr__(self) -> str:
        late = f", {len(self._late)} late" if self._late else ""
        return f"LineSpool({self._count} lines{late})"

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Delete the file and forget every line."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._finalizer()
        self._late.close()
        self._paths, self._waiting, self._gaps = [], {}, []
        self._count, self._next = 0, 1
        self._finalizer = weakref.finalize(self, _remove_paths, self._paths)

    def __getstate__(self) -> dict[str, Any]:
        # as Spool: the copy owns the file from now on
        self.finish()
        self._finalizer.detach()
        return {
            "end": self.end,
            "limit": self.limit,
            "next": self._next,
            "gaps": self._gaps,
            "late": self._late,
            "count": self._count,
            "paths": self._paths,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.end, self.limit, self._next = state["end"], state["limit"], state["next"]
        self._gaps, self._late, self._count = state["gaps"], state["late"], state["count"]
        self._paths, self._waiting, self._fh = state["paths"], {}, None
        self._finalizer = weakref.finalize(self, _remove_paths, self._paths)


def _remove_paths(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
