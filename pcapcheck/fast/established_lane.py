"""The lane: the ordinary segments of a :class:`~pcapcheck.model.SegmentBlock` replayed
straight from the decoder's columns (issue #4, performance).

Most segments of a capture are ACKs, with or without data, between two ESTABLISHED
endpoints. The engine replays such an ordinary segment with one function each
(:meth:`Checker.established_segment <pcapcheck.tcp.detectors.Checker.established_segment>`
for the RFC 9293 replay, :meth:`ZeekState.established_segment
<pcapcheck.tcp.zeek.ZeekState.established_segment>`
for the Zeek emulation), taking the segment's fields rather than a Segment;
:func:`feed_block` calls them with the fields read from the decoder's columns, sparing
the :class:`~pcapcheck.model.Segment` object and the calls of
:meth:`Tracker.feed <pcapcheck.tcp.tracker.Tracker.feed>`,
:meth:`Checker.process <pcapcheck.tcp.detectors.Checker.process>` and
:meth:`ZeekState.add <pcapcheck.tcp.zeek.ZeekState.add>` that lead to them. It decides
only which segments may be ordinary (the engine's function has the last word: it
returns False for one that is not, and the full path takes it).

For each record of the block, in capture order, it does what ``Tracker.feed`` (or
``Tracker.tick`` for a segment of another shard) would do:

* a segment the block marks ``plain`` (ACK or ACK+PSH, open window, no option but
  timestamps, whole, checksum not wrong), of a connection in the table that is not
  idle past ``idle_timeout``, when no sweep of the connection table is due, and that
  the engine takes as ordinary (:meth:`ZeekState.both_established
  <pcapcheck.tcp.zeek.ZeekState.both_established>`, then
  :meth:`Checker.established_segment
  <pcapcheck.tcp.detectors.Checker.established_segment>`, which returns False for a
  segment that is not), is replayed from the columns by the engine's two functions;
  closed connections whose close delay ran out are then released, as ``feed`` does
  after every segment;
* every other record gets its Segment built (:meth:`SegmentBlock.segment`) and goes
  through ``Tracker.feed`` (or ``Tracker.tick``), the full path.

So the results are those of feeding every Segment: ``tests/test_lane.py`` compares the
reports with the lane on and off (:data:`FAST`) on every sample capture and on
generated ones.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from pcapcheck.fast.summarising_tracker import SummarisingTracker
from pcapcheck.model import MARK_END, MARK_START, SegmentBlock
from pcapcheck.tcp.tracker import connection_key

#: Replay plain segments from the columns; False builds and feeds every Segment (the
#: tests compare both).
FAST = True


def feed_block(tracker: SummarisingTracker, block: SegmentBlock) -> None:
    """Feed every record of ``block`` to ``tracker``, in capture order: the block's rows
    (this shard's segments) to :meth:`Tracker.feed` (or straight to the fast lanes, see
    the module docstring), the other shards' segments to :meth:`Tracker.tick`; a run of
    those whose latest time (``block.other_max``) calls for no sweep and no release is
    skipped whole (each tick would do nothing). Raises what ``feed`` raises."""
    checker = tracker.checker
    feed, segment = tracker.feed, block.segment
    # other_ts: numpy float64 array; other_max: per row, like other_end (model.SegmentBlock)
    other_ts: Any = block.other_ts
    other_end = block.other_end
    other_max: Any = block.other_max
    use_lane = FAST
    table_get, pending_get = tracker.table.get, tracker.pending.get
    closing, pending_closing = tracker.closing, tracker.pending_closing
    release_due, keep = tracker.release_due, tracker.keep
    table_key = tracker.table_key
    delay, expired = tracker.close_delay, tracker.expired
    lane = checker.established_segment
    next_sweep = tracker.next_sweep
    i = -1
    start = 0
    for (
        frame,
        ts,
        src,
        dst,
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        length,
        ip_id,
        ts_val,
        plain,
        latest,
        end,
        fast,
        encapsulation,
    ) in zip(
        block.frame,
        block.ts,
        block.src,
        block.dst,
        block.sport,
        block.dport,
        block.seq,
        block.ack,
        block.flags,
        block.window,
        block.payload_len,
        block.ip_id,
        block.ts_val,
        block.plain,
        repeat(_NONE) if other_end is None else other_max,
        other_end or _ZEROS,
        block.fast or _NONES,
        block.encapsulation or _NONES,
    ):
        i += 1
        if end > start and (
            latest >= next_sweep
            or (closing and latest - closing[0][0] > delay)
            or (pending_closing and latest - pending_closing[0][0] > delay)
        ):
            ticks(tracker, other_ts[start:end].tolist())
            next_sweep = tracker.next_sweep
        start = end
        if fast is not None:  # a verdict of pcapcheck.fast.lookahead
            mark = fast[0]
            if mark == MARK_START:
                tracker.start_fast(fast[1], ts)
            elif mark == MARK_END:
                tracker.end_fast(fast[1], ts)
            else:
                tracker.feed_direct(segment(i))
            next_sweep = tracker.next_sweep
            continue
        if use_lane and plain and ts < next_sweep:
            key = (
                connection_key(src, sport, dst, dport)
                if encapsulation is None
                else table_key(src, sport, dst, dport, encapsulation)  # its tunnel's
            )
            conn = table_get(key)
            p = pending_get(key) if conn is None else None
            if p is not None:
                if ts - p.last_ts <= delay:  # kept as a row (pcapcheck.fast.clean_connections)
                    client = p.client
                    row = (
                        frame,
                        ts,
                        sport == client[1] and src == client[0],
                        seq,
                        ack,
                        flags,
                        window,
                        length,
                        ip_id,
                        ts_val,
                        None,  # (SummarisingTracker makes its Segment if it must replay)
                    )
                    keep(key, p, row)
                    continue
            elif (
                conn is not None
                and not expired(conn, ts)  # (else feed finalises it)
                and (zeek := conn.zeek) is not None
            ):
                client = conn.client
                from_client = sport == client[1] and src == client[0]
                if from_client:
                    fs, fr, es, er = conn.c, conn.s, conn.ec, conn.es
                else:
                    fs, fr, es, er = conn.s, conn.c, conn.es, conn.ec
                ep = zeek.endpoint(from_client)
                if zeek.both_established(ep) and lane(
                    conn,
                    fs,
                    fr,
                    es,
                    er,
                    flags,
                    frame,
                    ts,
                    seq,
                    ack,
                    window,
                    length,
                    ip_id,
                    ts_val,
                ):
                    zeek.established_segment(ep, seq, ack, length, window, False)
                    release_due(ts)
                    continue
        feed(segment(i))
        next_sweep = tracker.next_sweep
    if other_end is not None:  # the other shards' segments after the rows
        latest = other_max[-1]
        if (
            latest >= tracker.next_sweep
            or (closing and latest - closing[0][0] > delay)
            or (pending_closing and latest - pending_closing[0][0] > delay)
        ):
            ticks(tracker, other_ts[start:].tolist())


def ticks(tracker: SummarisingTracker, times: list[float]) -> None:
    """:meth:`Tracker.tick` for each time of ``times`` (seconds, capture order) where it
    does something (a sweep due, or the oldest closed connection's delay run out), the
    same tests made inline for the others: most of a run of other segments needs
    no tick."""
    closing, pending_closing = tracker.closing, tracker.pending_closing
    delay = tracker.close_delay
    tick = tracker.tick
    next_sweep = tracker.next_sweep
    oldest = _oldest(closing, pending_closing)
    for t in times:
        if t >= next_sweep or t - oldest > delay:
            tick(t)
            next_sweep = tracker.next_sweep
            oldest = _oldest(closing, pending_closing)


def _oldest(closing, pending_closing) -> float:
    """The earliest close time at the head of the two queues (infinity: none)."""
    a = closing[0][0] if closing else _INF
    b = pending_closing[0][0] if pending_closing else _INF
    return a if a < b else b


_NONE = float("-inf")
_INF = float("inf")
_NONES = repeat(None)
_ZEROS = repeat(0)
