"""The analyze pipeline: read → decode → track → replay → events → findings.

:func:`analyze_file` runs every stage on one capture and returns a :class:`FileResult`
holding per-connection summaries (Zeek-comparable) and the findings the rule catalogue
decided to report.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from math import modf
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from pcapcheck.catalog.rules import Catalog
from pcapcheck.capture.decoder import DecodeError, Decoder, SourceAttributes
from pcapcheck.capture.dpkt_decoder import decode_with_dpkt
from pcapcheck.capture.layers import tunnel_parents
from pcapcheck.capture.reader import open_capture
from pcapcheck.fast import clean_connections as clean
from pcapcheck.fast.clean_connections import CleanConnection, FastPathMismatch, transitions
from pcapcheck.fast.established_lane import feed_block
from pcapcheck.fast.summarising_tracker import SummarisingTracker
from pcapcheck.jsonlines import LINE_END, dumps_bytes
from pcapcheck.model import CLOSED, OTHER_SHARD, TIME_WAIT, Event, Finding, Segment, SegmentBlock
from pcapcheck.results import FileResult
from pcapcheck.spool import FieldsCodec, LineSpool, Spool
from pcapcheck.tcp.connection import Connection
from pcapcheck.tcp.detectors import Checker, classify
from pcapcheck.tcp.tracker import CLOSE_DELAY, IDLE_TIMEOUT, SWEEP_EVERY, Tracker


class NativeSource(SourceAttributes):
    """The default decoding path: :mod:`pcapcheck.capture.reader` + :mod:`pcapcheck.capture.decoder`.

    Iterating yields ``(frame, ts, item)`` per record: ``item`` is a Segment, ``None``
    (not TCP; counted in ``skipped``) or a :class:`DecodeError` (reported as CP005).
    After iteration: ``skipped`` (Counter by kind), ``truncated`` (str or None),
    ``format`` and ``snaplen``. ``use_dpkt`` selects dpkt's objects for the packets
    (the reference path, slower). ``shard=(k, n)``: yield :data:`model.OTHER_SHARD` in
    place of the Segments of the other shards (those with ``(sport + dport) % n != k``;
    see :mod:`pcapcheck.run.shards`). ``stream``: read it instead of the file ``path``
    (a live pipe: :func:`pcapcheck.capture.reader.open_capture`). ``tunnel_ports``: the
    UDP ports of the tunnels (:func:`pcapcheck.capture.layers.tunnel_tables`; None:
    IANA's). Raises CaptureError when the file is not a capture.
    """

    def __init__(
        self,
        path: str | Path,
        verify_checksums: bool = False,
        use_dpkt: bool = False,
        shard: tuple[int, int] | None = None,
        stream: Any = None,
        tunnel_ports: Mapping[str, Iterable[int]] | None = None,
    ):
        self.reader = open_capture(path, with_non_packets=True, stream=stream)
        self.decoder = Decoder(verify_checksums=verify_checksums, tunnel_ports=tunnel_ports)
        self.use_dpkt = use_dpkt
        self.verify = verify_checksums
        self.shard = shard

    def __iter__(self):
        decode = self.decoder.decode
        skipped = self.decoder.skipped
        k, n = self.shard if self.shard is not None else (0, 0)
        for record in self.reader:
            item: Any  # a Segment, None, a DecodeError or OTHER_SHARD
            try:
                if self.use_dpkt:
                    item = decode_with_dpkt(record, verify_checksums=self.verify, skipped=skipped)
                else:
                    item = decode(record)
            except DecodeError as exc:
                item = exc.with_traceback(None)  # its frames not kept (issue #23)
            if n and type(item) is Segment and (item.sport + item.dport) % n != k:
                item = OTHER_SHARD
            yield record.frame, record.ts, item


class _LiveSource(NativeSource):
    """:class:`NativeSource` over a live pipe: ``now`` is the capture time of the last
    record read (what :func:`_analyze_part` sweeps the connections at when the pipe
    is silent)."""

    now = 0.0

    def __iter__(self):
        for item in NativeSource.__iter__(self):
            if item[1] > self.now:
                self.now = item[1]
            yield item


@dataclass
class Live:
    """A capture analysed as it arrives (``analyze_file(live=...)``): ``stream``, the
    :class:`~pcapcheck.capture.inputs.LiveStream` read instead of the file (None: the
    file, its connections given to the sink all the same); ``sink``,
    called as ``sink(summary, findings)`` in the reading thread for each connection as
    soon as it is finalised (closed and past the close delay, idle past the idle
    timeout, or still open at the end of the input; the timers run in capture time):
    ``summary`` the dict the report holds for it (:func:`connection_summary`, with its
    ``findings`` count), ``findings`` the reported :class:`~pcapcheck.model.Finding`
    objects recorded since the last call, in frame order: the connection's, the
    file-level ones (CP005, a malformed packet) that came before, and those a
    connection still open has already made final (one with many events hands them
    over as they are decided, ``Checker.sink``); and as ``sink(None, findings)`` for
    such findings alone (those recorded while the pipe is silent, and at the end:
    CP003, CP004, CP006). Each finding is given once. Everything also goes to the
    result, as without ``live``.

    When the pipe has been silent for the stream's ``flush_interval`` (wall-clock), the
    connection table is swept at the capture time of the last record: the connections
    already idle or closed past their limit at that time, which the periodic sweep
    (every :data:`~pcapcheck.tcp.tracker.SWEEP_EVERY` seconds of capture time, at a
    segment) would only finalise at a later segment, are finalised and given to the
    sink. Nothing is finalised because of wall-clock time: a connection whose limit
    has not passed at the last record's capture time waits for a later record (or
    the end). The periodic sweeps keep their schedule, so the results are those of
    the same capture read from a file.

    ``keep``: False: the summaries and events go to the sink alone, not to the result
    (its ``connections`` and ``events`` stay empty; its ``findings`` are kept, for the
    exit status), so that a pipe read for days keeps nothing but its findings."""

    stream: Any
    sink: Callable[[dict[str, Any] | None, list[Finding]], None]
    keep: bool = True


class _Dropped(list):
    """A result's sequence whose items are not kept (:attr:`Live.keep` False)."""

    def append(self, *item: Any) -> None:
        pass

    def close(self) -> None:
        pass


def open_source(
    path: str | Path,
    decoder: str = "native",
    verify_checksums: bool = False,
    shard: tuple[int, int] | None = None,
    blocks: bool = False,
    lookahead: tuple[float, float] | None = None,
    feed: Any = None,
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
):
    """The segment source for ``decoder``: ``"native"`` (default: pcapcheck's decoder,
    records decoded in batches with numpy, :class:`pcapcheck.fast.batch_decoder.BatchSource`),
    ``"dpkt"`` (dpkt's packet objects, the reference path) or ``"tshark"`` (Wireshark's
    dissectors through pyshark). ``shard=(k, n)`` is passed on to a source that takes it
    (it then yields :data:`model.OTHER_SHARD` for the other shards' Segments); the tshark
    source yields them all (the caller filters). ``blocks``: the native source yields
    runs of plain TCP records as :class:`model.SegmentBlock` items (fed with
    :func:`pcapcheck.fast.established_lane.feed_block`); with ``lookahead=(close_delay, horizon)`` too,
    the connections :mod:`pcapcheck.fast.lookahead` finds clean come as ticks and marks
    (native source only); ``feed``: a :class:`pcapcheck.run.feed.Feed` of the file's
    batches read by another process (native source, blocks only); ``tunnel_ports``: the
    UDP ports of the tunnels (:func:`pcapcheck.capture.layers.tunnel_tables`; native and
    tshark sources).
    Raises CaptureError, or ValueError for an unknown decoder name."""
    if decoder == "native":
        from pcapcheck.fast.batch_decoder import BatchSource

        return BatchSource(
            path,
            verify_checksums,
            shard=shard,
            blocks=blocks,
            lookahead=lookahead,
            feed=feed,
            tunnel_ports=tunnel_ports,
        )
    if decoder == "dpkt":
        return NativeSource(path, verify_checksums, use_dpkt=True, shard=shard)
    if decoder == "tshark":
        from pcapcheck.capture.tshark import TsharkSource

        return TsharkSource(path, verify_checksums=verify_checksums, tunnel_ports=tunnel_ports)
    raise ValueError(f"unknown decoder {decoder!r} (native, dpkt, tshark)")


def analyze_file(
    path: str | Path,
    catalog: Catalog,
    active: set[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    severity: Mapping[str, str] | None = None,
    decoder: str = "native",
    marks: bool = False,
    idle_timeout: float = IDLE_TIMEOUT,
    close_delay: float = CLOSE_DELAY,
    fast: bool = True,
    live: Live | None = None,
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> FileResult:
    """Analyse one capture.

    ``active``: the rule IDs to report (from :meth:`Catalog.select`); ``params``: rule
    parameter overrides by rule ID; ``severity``: severity overrides by rule ID;
    ``decoder``: see :func:`open_source`. ``marks``: also fill ``result.marks`` and
    ``result.frame_conn`` (per-frame Wireshark-style analysis flags, for crosscheck).
    ``idle_timeout``: seconds after which an idle connection is finalised (a later
    segment on its 4-tuple starts a new, midstream connection); ``close_delay``: seconds
    a closed connection (last FIN acknowledged, or RST) keeps its state for the segments
    that may follow (retransmitted FINs and their ACKs), as Zeek's tcp_close_delay; its
    4-tuple is remembered for 2·MSL (CL010). Memory follows the number of concurrent
    connections, not the length of the capture.
    The analysis runs in this process, serially: how work is spread over processes (the
    shards of one capture, several captures at once) is the execution layer's,
    :mod:`pcapcheck.run`, which calls this function or :func:`analyze_part`.
    Raises :class:`pcapcheck.capture.reader.CaptureError` when the file is not a readable capture
    (nothing could be read); a capture cut short is analysed up to the cut (CP006).
    ``fast``: with the speed machinery of :mod:`pcapcheck.fast` (batch decoding, the
    lookahead, clean connections summarised, the established lane; the default);
    False analyses with the reference engine alone (:mod:`pcapcheck.tcp`, records
    decoded one by one by :class:`~pcapcheck.capture.decoder.Decoder`, serially): the
    same report, slower (the tests compare both).
    ``live``: the capture is a live pipe, analysed as it arrives, each connection given
    to ``live.sink`` as soon as it is finalised (:class:`Live`; ``path`` only names
    it): read with the reference engine (``fast`` is not used; the batches, the
    lookahead and the established lane would hold records back), records decoded one
    by one as they arrive.
    ``tunnel_ports``: the UDP ports of the tunnels the native decoder follows (tunnel
    name -> ports, :func:`pcapcheck.capture.layers.tunnel_tables`; None: IANA's).
    """
    result, _facts = analyze_part(
        path,
        catalog,
        active,
        params,
        severity,
        decoder,
        marks,
        idle_timeout,
        close_delay,
        fast=fast,
        live=live,
        tunnel_ports=tunnel_ports,
    )
    return result


@dataclass
class PartFacts:
    """What :func:`analyze_part` counts for the file-level events CP003 and CP004, kept
    apart so that the shards of a capture can be added up (:mod:`pcapcheck.run.shards`).

    ``cut_count``/``first_cut``: segments cut by the snaplen and the frame of the first;
    ``bad_sum``/``first_bad_sum``: segments with a bad TCP checksum, likewise;
    ``snaplen``: the capture's; ``first_frames``: the first frame of each connection,
    by id (``first_frames[i]`` of connection ``i + 1``; 8 bytes a connection).
    """

    cut_count: int = 0
    first_cut: int | None = None
    bad_sum: int = 0
    first_bad_sum: int | None = None
    snaplen: int | None = None
    first_frames: array = field(default_factory=lambda: array("q"))

    def file_events(self) -> list[Event]:
        """CP003 (segments cut by the snaplen) and CP004 (bad checksums), when any."""
        events = []
        if self.first_cut is not None:
            events.append(
                Event(
                    "CP003",
                    None,
                    self.first_cut,
                    {"count": self.cut_count, "snaplen": self.snaplen},
                )
            )
        if self.bad_sum:
            events.append(
                Event(
                    "CP004",
                    None,
                    self.first_bad_sum,
                    {"count": self.bad_sum, "first_frame": self.first_bad_sum},
                )
            )
        return events


def verifies_checksums(active: set[str]) -> bool:
    """Whether the analysis of the rules ``active`` verifies the TCP checksums (only
    CP004, bad-checksum, needs them): what the decoder of the file must be told, here
    and by the process that reads the file for the shards (:mod:`pcapcheck.run.feed`)."""
    return "CP004" in active


def analyze_part(
    path: str | Path,
    catalog: Catalog,
    active: set[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    severity: Mapping[str, str] | None = None,
    decoder: str = "native",
    marks: bool = False,
    idle_timeout: float = IDLE_TIMEOUT,
    close_delay: float = CLOSE_DELAY,
    shard: tuple[int, int] | None = None,
    encode: bool = False,
    feed: Any = None,
    fast: bool = True,
    live: Live | None = None,
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> tuple[FileResult, PartFacts]:
    """The analysis of :func:`analyze_file` (same arguments): ``(result, facts)``, the
    counts behind CP003 and CP004 in :class:`PartFacts`.

    ``shard=(k, n)``: analyse only the connections of shard ``k`` of ``n`` (the segments
    with ``(sport + dport) % n == k``, :mod:`pcapcheck.run.shards`); the other shards'
    segments only move the clock (:meth:`Tracker.tick`), so connections are released
    and checked exactly as in the analysis of the whole capture. The file-level facts
    (records, skipped, malformed, truncated) are every shard's, ``tcp_packets`` the
    shard's own; shard 0 alone records the events CP005 and CP006, and no shard CP003
    or CP004 (the merge makes them from every shard's ``facts``).
    Connection ids are the shard's own (1, 2, ... in order of first frame).
    ``encode``: ``result.connections`` is a :class:`~pcapcheck.spool.LineSpool` of the
    summaries' JSON text, ``rest`` for each id: the bytes the JSON report writes for the
    summary after the id (:func:`pcapcheck.jsonlines.dumps_bytes`; the text is
    ``b'{"id":%d%s' % (id, rest)``), each line ending with
    :data:`pcapcheck.jsonlines.LINE_END`; so the shards encode their
    summaries in parallel, and the merge need not and writes the merged ids without
    reading the shards' (:func:`pcapcheck.run.shards.merge_shards`).

    With the native decoder (no marks), the clean connections are found ahead of the
    tracker (:mod:`pcapcheck.fast.lookahead`); should the tracker's state ever contradict
    it (:class:`~pcapcheck.fast.clean_connections.FastPathMismatch`), the capture is analysed again
    without it.
    ``feed``: with the native decoder, the file's batches read by another process, given
    by the execution layer (an iterable of :class:`pcapcheck.fast.batch_decoder.Batch`
    that has ``truncated``, ``skipped`` and ``snaplen`` once it has ended, e.g. a
    :class:`pcapcheck.run.feed.Feed`); the file is then not read here, but for a retry
    without the lookahead. An exception the feed raises (it was lost) propagates: the
    caller analyses the shard again without it (:func:`pcapcheck.run.shards.analyze_shard`).
    The caller closes the feed.
    ``fast``: see :func:`analyze_file` (False: no lookahead, no feed, no blocks).
    Raises :class:`pcapcheck.capture.reader.CaptureError` as :func:`analyze_file`.
    """
    args = (
        path,
        catalog,
        active,
        params,
        severity,
        decoder,
        marks,
        idle_timeout,
        close_delay,
        shard,
        encode,
    )
    if not fast or live is not None:
        return _analyze_part(*args, ahead=False, fast=False, live=live, tunnel_ports=tunnel_ports)
    ahead = False
    if decoder == "native" and not marks and clean.ENABLED:
        from pcapcheck.fast import lookahead

        ahead = lookahead.ENABLED
    if feed is not None and decoder == "native" and not marks:
        try:
            return _analyze_part(*args, ahead=ahead, feed=feed, tunnel_ports=tunnel_ports)
        except FastPathMismatch:
            ahead = False  # read here, without the lookahead
    if ahead:
        try:
            return _analyze_part(*args, ahead=True, tunnel_ports=tunnel_ports)
        except FastPathMismatch:
            pass
    return _analyze_part(*args, ahead=False, tunnel_ports=tunnel_ports)


def _analyze_part(
    path: str | Path,
    catalog: Catalog,
    active: set[str],
    params: Mapping[str, Mapping[str, Any]] | None,
    severity: Mapping[str, str] | None,
    decoder: str,
    marks: bool,
    idle_timeout: float,
    close_delay: float,
    shard: tuple[int, int] | None,
    encode: bool,
    ahead: bool,
    feed: Any = None,
    fast: bool = True,
    live: Live | None = None,
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> tuple[FileResult, PartFacts]:
    """:func:`analyze_part`; ``ahead``: with :mod:`pcapcheck.fast.lookahead` (then raises
    :class:`~pcapcheck.fast.clean_connections.FastPathMismatch` when the tracker contradicts it, the
    spools of the result deleted); ``feed``: the batches to take (:func:`analyze_part`;
    what it raises when it is lost propagates, the spools deleted); ``fast``: False, the reference engine alone (:func:`analyze_file`)."""
    merged = {rid: catalog.params(rid, (params or {}).get(rid)) for rid in catalog.rules}
    checker = Checker(merged, record_marks=marks)
    # fast: connections kept as rows and the clean ones summarised; else the reference
    tracker = (SummarisingTracker if fast else Tracker)(
        checker, idle_timeout=idle_timeout, close_delay=close_delay
    )
    horizon = max(tracker.idle_timeout, tracker.close_delay, tracker.linger) + 2 * SWEEP_EVERY + 1.0
    if live is not None:
        source: Any = _LiveSource(
            path,
            verifies_checksums(active),
            decoder == "dpkt",
            shard,
            stream=live.stream,
            tunnel_ports=tunnel_ports,
        )
    elif not fast and decoder == "native":
        source = NativeSource(
            path, verifies_checksums(active), shard=shard, tunnel_ports=tunnel_ports
        )
    else:
        source = open_source(
            path,
            decoder,
            verify_checksums=verifies_checksums(active),
            shard=shard,
            blocks=fast,
            lookahead=(tracker.close_delay, horizon) if ahead else None,
            feed=feed,
            tunnel_ports=tunnel_ports,
        )
    # the spools (FileResult's fields name what a reader sees: sequences)
    connections: Any = LineSpool(end=LINE_END) if encode else Spool(key=summary_order)
    events: Spool[Event] = Spool(key=event_order, codec=_EVENT_CODEC)
    findings: Spool[Finding] = Spool(key=event_order, codec=_FINDING_CODEC)
    if live is not None and not live.keep:  # given to the sink alone
        connections, events = _Dropped(), cast(Spool[Event], _Dropped())
    result = FileResult(path=str(path), connections=connections, events=events, findings=findings)
    facts = PartFacts()
    first_frames = facts.first_frames
    to_finding = catalog.to_finding
    add_event = events.append
    add_finding: Callable[[Finding], None] = findings.append
    sink = live.sink if live is not None else None
    pending: list[Finding] = []  # live: the findings not yet given to the sink
    if sink is not None:

        def add_and_give(finding: Finding, _append=findings.append) -> None:
            _append(finding)
            pending.append(finding)

        add_finding = add_and_give

    def record(ev: Event) -> bool:
        """Spool ``ev`` and, when the catalogue reports it, its finding (True then)."""
        add_event(ev)
        finding = to_finding(ev, active, severity)
        if finding is None:
            return False
        add_finding(finding)
        return True

    # a connection with many events spools its final ones as they are decided (issue
    # #23: not held until its end); the spools' order is the same
    checker.sink = record

    def absorb(conns) -> None:
        # A finalised connection's events are final: its summary, events and findings
        # go to the result's spools and the connection itself is released.
        for conn in conns:
            i = conn.id - 1
            if i >= len(first_frames):
                first_frames.extend(bytes(max(i + 1 - len(first_frames), 1024)))
            first_frames[i] = conn.first_frame
            if encode and conn.__class__ is CleanConnection and not conn.events:
                text = clean_line(conn)  # no events, no Zeek state
                if text is not None:
                    connections.append(conn.id, text)
                    continue
            summary = connection_summary(conn)
            if conn.zeek is not None:
                conn.zeek.release()
            summary["findings"] = conn.released + sum(record(ev) for ev in conn.events)
            if encode:  # the text after the id (the merge writes the global id)
                connections.append(
                    conn.id, memoryview(dumps_bytes(summary))[_ID_TEXT + len(str(conn.id)) :]
                )
            else:
                connections.append(summary)
            if sink is not None:
                give(summary)

    def give(summary: dict[str, Any] | None) -> None:
        # live: the findings recorded since the last call, to the sink (file-level
        # ones with summary None, when there are any)
        if sink is None or (summary is None and not pending):
            return
        found = sorted(pending, key=event_order)
        pending.clear()
        sink(summary, found)

    if live is not None and live.stream is not None:

        def idle() -> None:
            # the pipe is silent: sweep at the last record's capture time, the sweep
            # schedule kept (Live's docstring)
            due = tracker.next_sweep
            tracker.sweep(source.now)
            tracker.next_sweep = due
            if tracker.has_finished:
                absorb(tracker.pop_finished())
            give(None)

        live.stream.on_idle = idle
    try:
        if live is not None:
            try:
                done = _run(source, tracker, result, facts, record, absorb, shard)
            finally:
                if live.stream is not None:
                    live.stream.on_idle = None
            give(None)  # the file-level findings of the end (CP003, CP004, CP006)
            return done
        return _run(source, tracker, result, facts, record, absorb, shard)
    except BaseException:  # a FastPathMismatch, a feed lost: the result is discarded
        for spool in (connections, events, findings):
            spool.close()
        raise


def _run(
    source,
    tracker: Tracker,
    result: FileResult,
    facts: PartFacts,
    record,
    absorb,
    shard: tuple[int, int] | None,
) -> tuple[FileResult, PartFacts]:
    """The loop of :func:`_analyze_part` over the items of ``source``."""
    k, n = shard if shard is not None else (0, 0)
    checker = tracker.checker
    first_frames = facts.first_frames
    last_ts = 0.0
    packets = tcp_packets = malformed = 0
    feed, tick, finished = tracker.feed, tracker.tick, tracker.pop_finished
    for frame, ts, seg in source:
        if seg.__class__ is SegmentBlock:
            packets += seg.records
            block_ts = max(seg.ts, default=last_ts)
            if seg.other_max is not None:  # the other shards' latest time
                block_ts = max(block_ts, max(seg.other_max))
            if block_ts > last_ts:
                last_ts = block_ts
            tcp_packets += len(seg) + seg.fast_ticks
            _block_facts(seg, facts)
            feed_block(cast(SummarisingTracker, tracker), seg)  # blocks: fast
            if tracker.has_finished:
                absorb(finished())
            continue
        packets += 1
        if ts > last_ts:
            last_ts = ts
        if seg is None:
            continue
        if seg is OTHER_SHARD:
            tick(ts)
            continue
        if isinstance(seg, DecodeError):
            malformed += 1
            if not k:  # every shard sees it: shard 0 reports it
                record(Event("CP005", None, frame, {"reason": str(seg)}))
            continue
        if n and (seg.sport + seg.dport) % n != k:  # a source that does not shard
            tick(ts)
            continue
        tcp_packets += 1
        if seg.truncated:
            facts.cut_count += 1
            if facts.first_cut is None:
                facts.first_cut = seg.frame
        if seg.checksum_ok is False:
            facts.bad_sum += 1
            if facts.first_bad_sum is None:
                facts.first_bad_sum = seg.frame
        feed(seg)
        if tracker.has_finished:
            absorb(finished())
    result.packets, result.tcp_packets, result.malformed = packets, tcp_packets, malformed
    result.format = source.format
    result.skipped = Counter(source.skipped)
    result.truncated = source.truncated
    facts.snaplen = source.snaplen
    if result.truncated and not k:
        record(Event("CP006", None, None, {"detail": result.truncated}))
    absorb(tracker.finish(last_ts, cut=bool(result.truncated)))
    if shard is None:
        for ev in facts.file_events():
            record(ev)
    del first_frames[tracker.connections :]
    result.marks, result.frame_conn = checker.marks, checker.frame_conn
    return result, facts


def _block_facts(block: SegmentBlock, facts: PartFacts) -> None:
    """Count the segments of ``block`` (its rows: the shard's own) cut by the snaplen or
    with a wrong checksum into ``facts``, as the loop of :func:`analyze_part` does for
    one Segment."""
    if True in block.truncated:
        for i, cut in enumerate(block.truncated):
            if cut:
                facts.cut_count += 1
                if facts.first_cut is None:
                    facts.first_cut = block.frame[i]
    if False in block.checksum_ok:
        for i, ok in enumerate(block.checksum_ok):
            if ok is False:
                facts.bad_sum += 1
                if facts.first_bad_sum is None:
                    facts.first_bad_sum = block.frame[i]


#: How the spools write events and findings (as tuples of their fields: issue #23).
_EVENT_CODEC = FieldsCodec(Event)
_FINDING_CODEC = FieldsCodec(Finding)


def summary_order(summary: Mapping[str, Any]) -> int:
    """Sort key of connection summaries: the connection id."""
    return summary["id"]


#: Characters of ``{"id":``, how the JSON text of a summary starts (its first key is
#: the id): ``analyze_part(encode=True)`` keeps the text after the id's digits.
_ID_TEXT = len('{"id":')


def event_order(item: Event | Finding) -> tuple[int, int, str]:
    """Sort key of events and findings: frame (file-level ones without a frame last),
    then connection id, then rule ID."""
    frame = item.frame
    return (frame if frame is not None else 1 << 62, item.connection or 0, item.rule)


def _iso(ts: float) -> str | None:
    """ISO 8601 UTC text of ``ts`` (seconds since the epoch, microseconds rounded half
    to even as :meth:`datetime.fromtimestamp` rounds them); None when the capture's
    timestamp is outside what a date can hold (a corrupt record header). The text of
    each whole second is made once (:data:`_ISO_SECONDS`)."""
    try:
        frac, whole = modf(ts)
        us = round(frac * 1e6)  # CPython's _PyTime_DoubleToDenominator
        if us >= 1_000_000:
            us -= 1_000_000
            whole += 1.0
        elif us < 0:
            us += 1_000_000
            whole -= 1.0
        second = int(whole)
    except (OverflowError, ValueError):  # inf, nan
        return None
    head = _ISO_SECONDS.get(second)
    if head is None:
        head = _iso_slow(second)
        if head is None:
            return None
        head = head[:-1]  # without the "Z"
        if len(_ISO_SECONDS) >= 100_000:
            _ISO_SECONDS.clear()
        _ISO_SECONDS[second] = head
    return f"{head}.{us:06d}Z" if us else head + "Z"


#: whole second -> its ISO 8601 text without the "Z" (:func:`_iso`)
_ISO_SECONDS: dict[int, str] = {}


def _iso_slow(ts: float) -> str | None:
    """:func:`_iso` by :mod:`datetime` alone (the reference; the tests compare both)."""
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


def connection_summary(conn: Connection | CleanConnection) -> dict[str, Any]:
    """One connection as a JSON-ready dict (the keys of README's JSON document,
    :func:`_summary`); a :class:`~pcapcheck.fast.clean_connections.CleanConnection` through
    :func:`clean_summary`."""
    if isinstance(conn, CleanConnection):
        return clean_summary(conn)
    handshake, close = classify(conn)
    zeek = conn.zeek
    summary = _summary(
        conn.id,
        conn.client_text,
        conn.server_text,
        conn.roles_inferred,
        conn.first_frame,
        conn.last_frame,
        conn.first_ts,
        round(max(conn.max_ts - conn.min_ts, 0.0), 6),
        (conn.c.packets, conn.s.packets),
        (conn.c.bytes, conn.s.bytes),
        conn.c.isn,
        conn.s.isn,
        handshake,
        close,
        conn.ec.state,
        conn.es.state,
        zeek.conn_state() if zeek is not None else None,
        zeek.history() if zeek is not None else None,
        {
            role: [
                {"frame": t.frame, "from": t.from_state, "to": t.to_state, "cause": t.cause}
                for t in ep.transitions
            ]
            for role, ep in (("client", conn.ec), ("server", conn.es))
        },
    )
    if conn.encapsulation is not None:
        _add_encapsulation(summary, conn.encapsulation)
    return summary


def clean_summary(c: CleanConnection) -> dict[str, Any]:
    """:func:`connection_summary` of a connection that fits the clean pattern
    (:mod:`pcapcheck.fast.clean_connections`): the same keys and values as its replay gives (handshake
    complete, graceful close, the closer in TIME-WAIT and the other side CLOSED, Zeek's
    conn_state SF)."""
    by_client = c.closer == "client"
    summary = _summary(
        c.id,
        Connection.endpoint_text(c.client),
        Connection.endpoint_text(c.server),
        False,
        c.first_frame,
        c.last_frame,
        c.first_ts,
        c.duration,
        c.packets,
        c.bytes,
        c.client_isn,
        c.server_isn,
        "complete",
        "graceful",
        TIME_WAIT if by_client else CLOSED,
        CLOSED if by_client else TIME_WAIT,
        "SF",
        c.history,
        transitions(c),
    )
    if c.encapsulation is not None:
        _add_encapsulation(summary, c.encapsulation)
    return summary


def clean_line(c: CleanConnection) -> bytes | None:
    """The JSON text the JSON report writes for the summary of the
    clean connection ``c`` after its id (``'{"id":%d' % c.id`` comes before it), its
    ``findings`` (0) included, as bytes: :func:`clean_summary` encoded, made by filling
    a template (:func:`_clean_templates`) in a third of the time (issue #4). None when
    a value would not be written as the template writes it (a time or duration that
    Python writes with an exponent, or not finite; a start time no date can hold): the
    caller then encodes the summary."""
    if c.encapsulation is not None:  # the templates have no encapsulation
        return None
    first_ts, duration = repr(c.first_ts), repr(c.duration)
    if "e" in first_ts or "n" in first_ts or "e" in duration or "n" in duration:
        return None
    start = _iso(c.first_ts)
    templates = _CLEAN_TEMPLATES or _clean_templates()
    if start is None or not templates:
        return None
    text = Connection.endpoint_text
    (c_pkts, s_pkts), (c_bytes, s_bytes) = c.packets, c.bytes
    head = (
        text(c.client).encode(),
        text(c.server).encode(),
        c.first_frame,
        c.last_frame,
        start.encode(),
        first_ts.encode(),
        duration.encode(),
        c_pkts,
        s_pkts,
        c_bytes,
        s_bytes,
        c.client_isn,
        c.server_isn,
        c.history.encode(),
        c.syn,
        c.synack,
    )
    if c.closer == "client":  # the rest of the transitions (_CLEAN_FIELDS)
        return templates[0] % (head + (c.f1, c.a1, c.f2, c.synack, c.ack, c.f1, c.f2, c.last))
    return templates[1] % (head + (c.f1, c.f2, c.last, c.synack, c.ack, c.f1, c.a1, c.f2))


#: The templates of :func:`clean_line` (client closes, server closes), made on first use;
#: empty when they cannot be made (then :func:`clean_line` gives None).
_CLEAN_TEMPLATES: list[bytes] = []

#: The values :func:`clean_line` fills its templates with, in order, by closer: what
#: :func:`_clean_templates` finds in the text of a summary made from distinct values.
_CLEAN_FIELDS = {
    "client": (
        "client",
        "server",
        "first_frame",
        "last_frame",
        "start",
        "start_ts",
        "duration",
        "c_pkts",
        "s_pkts",
        "c_bytes",
        "s_bytes",
        "client_isn",
        "server_isn",
        "history",
        "syn",
        "synack",
        "f1",
        "a1",
        "f2",
        "synack",
        "ack",
        "f1",
        "f2",
        "last",
    ),
    "server": (
        "client",
        "server",
        "first_frame",
        "last_frame",
        "start",
        "start_ts",
        "duration",
        "c_pkts",
        "s_pkts",
        "c_bytes",
        "s_bytes",
        "client_isn",
        "server_isn",
        "history",
        "syn",
        "synack",
        "f1",
        "f2",
        "last",
        "synack",
        "ack",
        "f1",
        "a1",
        "f2",
    ),
}


def _clean_templates() -> list[bytes]:
    """Make :data:`_CLEAN_TEMPLATES` from what the JSON report writes for the summary
    (:func:`clean_summary`, then ``findings``) of a clean connection made of distinct
    values: each value's text becomes a ``%d`` or ``%s`` field, and the fields must be
    :data:`_CLEAN_FIELDS`, else no template is made (the summaries are then encoded)."""
    import re

    ints = {
        "first_frame": 910000001,
        "last_frame": 910000002,
        "c_pkts": 910000003,
        "s_pkts": 910000004,
        "c_bytes": 910000005,
        "s_bytes": 910000006,
        "client_isn": 910000007,
        "server_isn": 910000008,
        "syn": 910000009,
        "synack": 910000010,
        "ack": 910000011,
        "f1": 910000012,
        "a1": 910000013,
        "f2": 910000014,
        "last": 910000015,
    }
    texts = {
        "client": b'"192.0.2.201:65001"',
        "server": b'"192.0.2.202:65002"',
        "start": b'"1970-01-01T00:00:01.250000Z"',
        "start_ts": b'"start_ts":1.25,',
        "duration": b'"duration":2.75,',
        "history": b'"ShADadFf"',
    }
    fields = {b"%d" % value: name for name, value in ints.items()}
    fields.update({text: name for name, text in texts.items()})
    made = []
    for closer in ("client", "server"):
        c = CleanConnection()
        c.id, c.client, c.server = 1, ("192.0.2.201", 65001), ("192.0.2.202", 65002)
        c.first_ts, c.duration, c.history, c.closer = 1.25, 2.75, "ShADadFf", closer
        c.first_frame, c.last_frame = ints["first_frame"], ints["last_frame"]
        c.packets, c.bytes = (ints["c_pkts"], ints["s_pkts"]), (ints["c_bytes"], ints["s_bytes"])
        c.client_isn, c.server_isn = ints["client_isn"], ints["server_isn"]
        for name in ("syn", "synack", "ack", "f1", "a1", "f2", "last"):
            setattr(c, name, ints[name])
        summary = clean_summary(c)
        summary["findings"] = 0
        text = dumps_bytes(summary)
        if not text.startswith(b'{"id":1,'):
            return []
        text = text[len(b'{"id":1') :].replace(b"%", b"%%")
        pattern = b"|".join(re.escape(key) for key in sorted(fields, key=len, reverse=True))
        order: list[str] = []

        def field(m: re.Match, order: list[str] = order) -> bytes:
            name = fields[m.group()]
            order.append(name)
            if name in ints:
                return b"%d"
            if name in ("start_ts", "duration"):
                return b'"%s":%%s,' % name.encode()
            return b'"%s"'

        template = re.sub(pattern, field, text)
        if tuple(order) != _CLEAN_FIELDS[closer]:
            return []
        made.append(template)
    _CLEAN_TEMPLATES[:] = made
    return made


def _add_encapsulation(summary: dict[str, Any], path: Sequence[str]) -> None:
    """The keys only a tunnelled connection's summary has: ``encapsulation``, its path
    (:mod:`pcapcheck.capture.layers`, client to server, outermost first), and
    ``tunnel_parents``, Zeek's view of its tunnels
    (:func:`pcapcheck.capture.layers.tunnel_parents`)."""
    summary["encapsulation"] = list(path)
    summary["tunnel_parents"] = tunnel_parents(path)


def _summary(
    cid: int,
    client: str,
    server: str,
    roles_inferred: bool,
    first_frame: int,
    last_frame: int,
    first_ts: float,
    duration: float,
    packets: tuple[int, int],
    sizes: tuple[int, int],
    client_isn: int | None,
    server_isn: int | None,
    handshake: str,
    close: str,
    client_state: str | None,
    server_state: str | None,
    conn_state: str | None,
    history: str | None,
    transitions: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """The summary's layout, written once. Times: ``start`` ISO 8601 UTC and
    ``start_ts`` seconds since the epoch (``first_ts``); ``duration`` seconds, from the
    smallest to the largest timestamp of its segments (a capture clock stepping back
    does not make it negative). ``packets`` and ``sizes`` (payload bytes) are
    ``(client, server)``. ISNs are absolute. Transitions are ``{"frame", "from", "to",
    "cause"}`` by role."""
    return {
        "id": cid,
        "client": client,
        "server": server,
        "roles_inferred": roles_inferred,
        "first_frame": first_frame,
        "last_frame": last_frame,
        "start": _iso(first_ts),
        "start_ts": first_ts,
        "duration": duration,
        "packets": {"client": packets[0], "server": packets[1]},
        "bytes": {"client": sizes[0], "server": sizes[1]},
        "client_isn": client_isn,
        "server_isn": server_isn,
        "handshake": handshake,
        "close": close,
        "client_state": client_state,
        "server_state": server_state,
        "conn_state": conn_state,
        "history": history,
        "transitions": transitions,
    }
