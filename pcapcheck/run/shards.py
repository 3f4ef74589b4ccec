"""Intra-file parallelism: one capture analysed by several processes, each taking one
shard of its connections, merged into exactly the result of the serial analysis.

**Shard rule.** A TCP segment belongs to shard ``(sport + dport) % n``: the sum is the
same in both directions, so a connection (one unordered 4-tuple, every incarnation of
it) lives wholly in one shard. Every shard sees the whole capture: the process that
starts the shards reads and decodes it once and hands its batches to every shard
(:mod:`pcapcheck.run.feed`; a shard whose feed is lost reads the file itself); a shard's
source builds only its own Segments, the others' segments only move its clock.
The tracker's and the checker's state is per 4-tuple (the connection table, the
recently closed 4-tuples, the connection a new one follows), but for three things:

* **The clock.** The tracker releases a connection once the capture's clock (the
  timestamp of any segment, of any connection) has gone ``close_delay`` (closed) or
  ``idle_timeout`` past its last segment, by a sweep every 10 s of capture time or from
  the queue of closed connections; one still held at the end is checked "at the end"
  (the last record's time, cut when the file is cut short). A shard gives each segment
  of another shard to :meth:`pcapcheck.tcp.tracker.Tracker.tick`, which sweeps and releases
  exactly as :meth:`~pcapcheck.tcp.tracker.Tracker.feed` would, so its connections are
  released at the same moments as in the serial analysis, and it reads every record's
  timestamp (the end of the capture).
* **Connection ids** are given in order of creation, i.e. of each connection's first
  frame. A shard numbers its own connections 1, 2, ...; the merge maps them to the rank
  of their first frame over all shards (8 bytes a connection) and renumbers the
  summaries (``id``), events and findings (``connection``) and the event values naming
  another connection (:data:`CONNECTION_KEYS`: CP001's and CL010's
  ``previous_connection``, a connection of the same 4-tuple, so of the same shard). A
  finding carrying such a value is made again from the renumbered event (its message
  may show the id); the others only change their ``connection``.
* **File-level facts** come out once: the records, ``skipped``, ``malformed`` and CP005,
  ``truncated`` and CP006, ``format`` from shard 0 (every shard reads them all);
  ``tcp_packets``, the snaplen-cut and bad-checksum counts and first frames summed or
  min-ed over the shards (:class:`pcapcheck.pipeline.PartFacts`), CP003 and CP004 made
  at the merge as the serial analysis makes them.

When a shard fails, the serial analysis runs instead, so that an error is reported
exactly as the serial analysis reports it. Per-frame marks (crosscheck) and the tshark
decoder are not sharded.

Memory: each shard holds its own connections; the merged result streams the shards'
spools (:func:`heapq.merge` on their sort keys, :class:`Merged`) through the id maps.
For a JSON report the shards encode their summaries, in their own id order, into a
:class:`~pcapcheck.spool.LineSpool` file each, which the report reads line after line
(:class:`MergedLines`).
"""

from __future__ import annotations

import functools
import heapq
import json
import os
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, cast

from pcapcheck.model import EVENT_FIELDS, Event, Finding
from pcapcheck.pipeline import (
    PartFacts,
    analyze_file,
    analyze_part,
    event_order,
    summary_order,
    verifies_checksums,
)
from pcapcheck.results import FileResult
from pcapcheck.run.feed import Feed, FeedLost, feeder_for
from pcapcheck.spool import LineSpool, Spool, item_at
from pcapcheck.tcp.tracker import CLOSE_DELAY, IDLE_TIMEOUT

#: Files smaller than this many bytes are analysed serially: below it, starting the
#: processes and reading the file once per shard costs more than sharing the analysis
#: saves. The environment variable ``PCAPCHECK_SHARD_MIN_BYTES`` overrides it.
MIN_BYTES = 4_000_000

#: Event data keys whose value is a connection id (renumbered with the connections).
CONNECTION_KEYS = tuple(
    sorted({key for keys in EVENT_FIELDS.values() for key in keys if key.endswith("connection")})
)


def min_bytes() -> int:
    """The size from which a file is sharded (:data:`MIN_BYTES`, or the environment's
    ``PCAPCHECK_SHARD_MIN_BYTES``)."""
    value = os.environ.get("PCAPCHECK_SHARD_MIN_BYTES")
    try:
        return int(value) if value else MIN_BYTES
    except ValueError:
        return MIN_BYTES


def shards_for(path: str | Path, shards: int, decoder: str = "native") -> int:
    """How many shards to analyse ``path`` with when ``shards`` processes are free: 1
    (the serial analysis) for the tshark decoder, a file smaller than :func:`min_bytes`
    or one whose size cannot be read."""
    if shards < 2 or decoder == "tshark":
        return 1
    try:
        size = os.path.getsize(path)
    except OSError:
        return 1
    return shards if size >= min_bytes() else 1


@dataclass
class ShardResult:
    """What one shard learned (picklable: the spools move with it to the merging
    process): ``shard`` is ``(k, n)``; ``result`` the shard's :class:`FileResult` (its
    own connection ids, its own ``tcp_packets``, no CP003/CP004); ``facts`` the counts
    for CP003/CP004 and the first frame of each of its connections; ``encoded``: the
    result's connections are ``(id, JSON text)`` (:func:`analyze_shard` with
    ``encode``)."""

    shard: tuple[int, int]
    result: FileResult
    facts: PartFacts
    encoded: bool = False

    def close(self) -> None:
        """Delete the spools' temporary files."""
        for spool in (self.result.connections, self.result.events, self.result.findings):
            if isinstance(spool, (Spool, LineSpool)):
                spool.close()


def analyze_shard(
    path: str | Path,
    catalog: Any,
    active: set[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    severity: Mapping[str, str] | None = None,
    decoder: str = "native",
    shard: tuple[int, int] = (0, 1),
    idle_timeout: float = IDLE_TIMEOUT,
    close_delay: float = CLOSE_DELAY,
    encode: bool = False,
    feed: str | None = None,
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> ShardResult:
    """Analyse the connections of shard ``shard = (k, n)`` of one capture (arguments as
    :func:`pcapcheck.pipeline.analyze_file`; see :func:`pcapcheck.pipeline.analyze_part`).
    ``encode``: the shard also writes the JSON report's line of each of its connection
    summaries (in parallel with the other shards), and the merge gives them as
    ``connection_lines`` (for a JSON report: the merging process then only renumbers
    them). ``feed``: the ticket of the :class:`pcapcheck.run.feed.Feeder` that reads the
    file for the shards (None: read it here): with the native decoder, the shard takes
    the batches of the :class:`pcapcheck.run.feed.Feed` it opens with it, and reads the
    file itself when the feed is lost (:class:`~pcapcheck.run.feed.FeedLost`: refused,
    cut short), so the result is the same (``tunnel_ports``: as the feeder's, for the
    records the shard decodes one by one). Raises what the serial analysis raises."""
    part = functools.partial(
        analyze_part,
        path,
        catalog,
        active,
        params,
        severity,
        decoder,
        idle_timeout=idle_timeout,
        close_delay=close_delay,
        shard=shard,
        encode=encode,
        tunnel_ports=tunnel_ports,
    )
    if feed is not None and decoder == "native":
        try:
            source = Feed(feed)
        except FeedLost:
            source = None  # read here, below
        if source is not None:
            try:
                result, facts = part(feed=source)
                return ShardResult(shard, result, facts, encode)
            except FeedLost:
                pass  # read here, below
            finally:
                source.close()
    result, facts = part()
    return ShardResult(shard, result, facts, encode)


# --------------------------------------------------------------------------- the merge


#: The JSON text of a summary from its id and the text after it (``analyze_part(
#: encode=True)``).
_WITH_ID = b'{"id":%d%s'


class _Renumber:
    """The renumbering of one shard's items (picklable, unlike a closure): ``ids[i]`` is
    the global id of the shard's connection ``i`` (``ids[0]`` unused); ``kind`` is
    ``summary``, ``event`` or ``finding`` (findings naming another connection are made
    again from the renumbered event by ``catalog.to_finding``, as the serial run makes
    them: the message may show the id); for the ``(id, text after the id)`` summaries of
    an encoding shard, ``decoded`` (the summary dict)."""

    def __init__(
        self,
        ids: array,
        kind: str,
        catalog: Any = None,
        active: set[str] | None = None,
        severity: Mapping[str, str] | None = None,
    ):
        self.ids, self.kind = ids, kind
        self.catalog, self.active, self.severity = catalog, active, severity

    def __call__(self, item: Any) -> Any:
        ids = self.ids
        kind = self.kind
        if kind == "summary":
            return {**item, "id": ids[item["id"]]}
        if kind == "decoded":
            return json.loads(_WITH_ID % (ids[item[0]], item[1]))
        conn = ids[item.connection] if item.connection is not None else None
        data = item.data
        refs = {key: ids[data[key]] for key in CONNECTION_KEYS if data.get(key) is not None}
        if refs:
            data = {**data, **refs}
        if self.kind == "event":
            return Event(item.rule, conn, item.frame, data)
        if refs:
            return self.catalog.to_finding(
                Event(item.rule, conn, item.frame, data), self.active, self.severity
            )
        return Finding(item.rule, item.name, item.severity, conn, item.frame, item.message, data)


class Merged(Sequence[Any]):
    """A read-only, sorted sequence made of several sorted sources, each item passed
    through its source's function (the shards' renumbering) and merged by ``key``
    (:func:`heapq.merge`) on every iteration; what a merged :class:`FileResult` holds in
    place of spools (``len()``, truthiness, iteration, indexing, ``==``)."""

    def __init__(
        self,
        sources: Sequence[tuple[Any, Callable | None]],
        key: Callable[[Any], Any],
        owner: Sequence[int] | None = None,
    ):
        self.sources = list(sources)
        self.key = key
        self._len = sum(len(items) for items, _fix in self.sources)
        #: the index of the source of each item in merged order, when known (the
        #: connections: ``owner[g - 1]`` is the shard of global id ``g``): iteration then
        #: takes the items in that order without comparing keys
        self.owner = owner

    def __iter__(self) -> Iterator:
        streams = [iter(items) if fix is None else map(fix, items) for items, fix in self.sources]
        merged: Iterator[Any]
        if self.owner is not None:
            merged = map(next, map(streams.__getitem__, self.owner))
        else:
            streams = [s for s, (items, _fix) in zip(streams, self.sources) if len(items)]
            merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=self.key)
        return merged

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __getitem__(self, index):
        return item_at(self, self._len, index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Merged, Spool, list, tuple)):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Merged({self._len} items from {len(self.sources)} sources)"

    def close(self) -> None:
        """Delete the temporary files of the sources that have them (the shards' spools)."""
        for items, _fix in self.sources:
            close = getattr(items, "close", None)
            if close is not None:
                close()


class MergedLines:
    """The connection lines of merged encoding shards (``FileResult.connection_lines``):
    iterating gives ``(global id, line)`` in global id order, ``line`` the bytes of the
    summary's JSON text after the id plus :data:`pcapcheck.jsonlines.LINE_END`, as read from the
    shards' :class:`~pcapcheck.spool.LineSpool` files (``owner[g - 1]`` is the shard of
    global id ``g``: each shard's next line, in C). ``len()`` is the number of lines."""

    def __init__(self, spools: Sequence[LineSpool], owner: Sequence[int]):
        self.spools, self.owner = list(spools), owner

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        streams = [spool.lines() for spool in self.spools]
        try:
            yield from zip(count(1), map(next, map(streams.__getitem__, self.owner)))
        finally:
            for stream in streams:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

    def __len__(self) -> int:
        return len(self.owner)

    def __repr__(self) -> str:
        return f"MergedLines({len(self)} lines from {len(self.spools)} shards)"

    def close(self) -> None:
        """Delete the shards' line files."""
        for spool in self.spools:
            spool.close()


def global_ids(first_frames: Sequence[array]) -> tuple[list[array], array]:
    """The global connection ids of every shard's connections: ``first_frames[j][i]`` is
    the first frame of connection ``i + 1`` of shard ``j``; returns ``(maps, owner)``:
    ``maps[j][i + 1]`` its rank (1-based) among the first frames of all shards (frames
    are unique: a connection is created by its first segment), ``owner[g - 1]`` the
    shard of global id ``g``. With numpy when this process has it already (it read the
    capture for the shards, :mod:`pcapcheck.run.feed`): about 2 ms for 40,000 connections;
    else plain Python, about 15 ms (importing numpy alone takes 50-80 ms)."""
    if "numpy" in sys.modules:
        return _global_ids_numpy(first_frames)
    tagged = sorted(
        (frame, j, i) for j, f in enumerate(first_frames) for i, frame in enumerate(f, 1)
    )
    maps = [array("q", bytes(8 * (len(f) + 1))) for f in first_frames]
    owner = array("q", bytes(8 * len(tagged)))
    for rank, (_frame, j, i) in enumerate(tagged, 1):
        maps[j][i] = rank
        owner[rank - 1] = j
    return maps, owner


def _global_ids_numpy(first_frames: Sequence[array]) -> tuple[list[array], array]:
    """:func:`global_ids` with numpy (the same arrays)."""
    import numpy as np

    frames = np.concatenate(
        [np.frombuffer(f, np.int64) if len(f) else np.empty(0, np.int64) for f in first_frames]
    )
    shard = np.repeat(np.arange(len(first_frames)), [len(f) for f in first_frames])
    order = np.argsort(frames, kind="stable")
    rank = np.empty(len(frames), np.int64)
    rank[order] = np.arange(1, len(frames) + 1)
    maps, at = [], 0
    for f in first_frames:
        m = array("q", bytes(8))  # maps[j][0] unused
        m.frombytes(rank[at : at + len(f)].tobytes())
        maps.append(m)
        at += len(f)
    owner = array("q")
    owner.frombytes(shard[order].astype(np.int64).tobytes())
    return maps, owner


def merge_shards(
    parts: Sequence[ShardResult],
    path: str | Path,
    catalog: Any,
    active: set[str],
    severity: Mapping[str, str] | None = None,
) -> FileResult:
    """The :class:`FileResult` of the serial analysis, from the results of every shard
    of one capture (``catalog``, ``active``, ``severity`` as given to
    :func:`analyze_shard`). Takes over the shards' spools."""
    parts = sorted(parts, key=lambda p: p.shard[0])
    head = parts[0].result
    facts = PartFacts(
        cut_count=sum(p.facts.cut_count for p in parts),
        first_cut=min(
            (p.facts.first_cut for p in parts if p.facts.first_cut is not None), default=None
        ),
        bad_sum=sum(p.facts.bad_sum for p in parts),
        first_bad_sum=min(
            (p.facts.first_bad_sum for p in parts if p.facts.first_bad_sum is not None),
            default=None,
        ),
        snaplen=parts[0].facts.snaplen,
    )
    file_events = sorted(facts.file_events(), key=event_order)
    file_findings = [
        f for f in (catalog.to_finding(ev, active, severity) for ev in file_events) if f is not None
    ]

    # (CP005 and CP006, file-level events every shard sees, are in shard 0's spools.)
    conn_sources: list[tuple[Any, Callable | None]] = []
    line_sources: list[LineSpool] = []
    event_sources: list[tuple[Any, Callable | None]] = [(file_events, None)]
    finding_sources: list[tuple[Any, Callable | None]] = [(file_findings, None)]
    maps, owner = global_ids([p.facts.first_frames for p in parts])
    for p, ids in zip(parts, maps):
        res = p.result
        if p.encoded:
            conn_sources.append((res.connections, _Renumber(ids, "decoded")))
            line_sources.append(cast(LineSpool, res.connections))
        else:
            conn_sources.append((res.connections, _Renumber(ids, "summary")))
        event_sources.append((res.events, _Renumber(ids, "event")))
        finding_sources.append((res.findings, _Renumber(ids, "finding", catalog, active, severity)))
    return FileResult(
        path=str(path),
        format=head.format,
        packets=head.packets,
        tcp_packets=sum(p.result.tcp_packets for p in parts),
        skipped=head.skipped,
        malformed=head.malformed,
        truncated=head.truncated,
        connections=Merged(conn_sources, summary_order, owner=owner),
        connection_lines=(
            MergedLines(line_sources, owner) if all(p.encoded for p in parts) else None
        ),
        events=Merged(event_sources, event_order),
        findings=Merged(finding_sources, event_order),
    )


# --------------------------------------------------------------------------- processes


def analyze_sharded(
    path: str | Path,
    catalog: Any,
    active: set[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    severity: Mapping[str, str] | None = None,
    decoder: str = "native",
    idle_timeout: float = IDLE_TIMEOUT,
    close_delay: float = CLOSE_DELAY,
    shards: int = 2,
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> FileResult:
    """:func:`pcapcheck.pipeline.analyze_file` in ``shards`` worker processes (one shard
    each, the file read once here for all of them: :mod:`pcapcheck.run.feed`), merged:
    the same :class:`~pcapcheck.results.FileResult`; the serial analysis when a shard
    fails (so that its error is the serial one). Used by the tests and by callers with
    one capture; the executors of :mod:`pcapcheck.run.executors` do the same over many
    (their shards share one process pool)."""
    feeder = feeder_for(shards) if decoder == "native" else None
    ticket = None if feeder is None else feeder.ticket()
    try:
        with ProcessPoolExecutor(max_workers=shards) as pool:
            futures = [
                pool.submit(
                    analyze_shard,
                    path,
                    catalog,
                    active,
                    params,
                    severity,
                    decoder,
                    (k, shards),
                    idle_timeout,
                    close_delay,
                    feed=ticket,
                    tunnel_ports=tunnel_ports,
                )
                for k in range(shards)
            ]
            if feeder is not None:  # the file read once, here, for every shard
                feeder.serve(
                    path,
                    verifies_checksums(active),
                    give_up=lambda: any(f.done() for f in futures),
                    tunnel_ports=tunnel_ports,
                )
            parts = [f.result() for f in futures]
    except Exception:
        if os.environ.get("PCAPCHECK_DEBUG"):
            raise
        return analyze_file(
            path,
            catalog,
            active,
            params=params,
            severity=severity,
            decoder=decoder,
            idle_timeout=idle_timeout,
            close_delay=close_delay,
            tunnel_ports=tunnel_ports,
        )
    finally:
        if feeder is not None:  # its socket and directory (serve removes them)
            feeder.close()
    return merge_shards(parts, path, catalog, active, severity)
