"""Clean connections found ahead of the tracker, over whole columns (issue #4, performance).

:mod:`pcapcheck.fast.clean_connections` spares the replay to the connections that follow the common life
cycle (three-way handshake, data in order, four-way close), but the tracker still
touches each of their segments in Python to keep it as a row. This module finds those
connections with numpy, over the decoded columns of many chunks of the capture at once,
*before* the tracker reaches them, so that their segments reach the tracker only as
clock ticks (:meth:`pcapcheck.tcp.tracker.Tracker.tick`), like another shard's.

:class:`Lookahead` holds the chunks decoded by :class:`pcapcheck.fast.batch_decoder.BatchSource`
(:class:`Plan`, in capture order) until every segment of this shard in them has a
verdict, by rounds over everything still undecided:

* the undecided segments are grouped by their unordered 4-tuple (a 64-bit hash, the
  4-tuple compared within each group);
* a group is a **candidate** when it is one connection that may be clean: its first
  segment is a pure SYN and no other is, no two consecutive segments are more than
  ``close_delay`` apart, none is cut by the snaplen or has a wrong checksum, both ends
  differ, the capture's clock has never gone back, and the 4-tuple was not seen within
  ``horizon`` seconds before its SYN (:data:`seen`: every 4-tuple of a decided group or
  of a segment decoded one by one; so the tracker holds nothing for it, neither in its
  table nor among the recently closed 4-tuples). Any other group is **normal** at once:
  its segments go to the tracker as before;
* a candidate is **complete** once a segment later than its last one by more than
  ``close_delay`` has been read (the tracker releases it on that segment, and no
  segment of its 4-tuple can join it any more), or at the end of the capture (not for
  a capture cut short: the tracker would then replay it); :func:`classify` then tests
  all complete candidates at once against :func:`pcapcheck.fast.clean_connections.check`'s conditions;
  the clean ones are **fast**; the SYN of each other one is marked **direct**: the
  tracker replays that connection as it comes instead of keeping its rows for a
  :func:`~pcapcheck.fast.clean_connections.check` that would fail (:meth:`~pcapcheck.fast.summarising_tracker.SummarisingTracker.feed_direct`,
  the same report). A candidate whose first segment is more than ``max_rows`` segments
  old, or with more than :data:`~pcapcheck.fast.clean_connections.MAX_CLEAN_ROWS`
  segments, is made normal (memory stays bounded).

A fast connection's SYN row and last row reach the tracker
(:meth:`~pcapcheck.fast.summarising_tracker.SummarisingTracker.start_fast`, which reserves its id exactly when the
tracker would have made its :class:`~pcapcheck.fast.clean_connections.Pending`, and
:meth:`~pcapcheck.fast.summarising_tracker.SummarisingTracker.end_fast`, which finalises the
:class:`~pcapcheck.fast.clean_connections.CleanConnection` as the tracker finalises a clean Pending); its
other segments are only ticks. Should the tracker ever find its
state not to be what this module inferred, it raises
:class:`~pcapcheck.fast.clean_connections.FastPathMismatch` and the analysis runs again without the
lookahead (:func:`pcapcheck.pipeline.analyze_part`), so the report is always the
replay's. ``tests/test_lookahead.py`` compares the reports with and without it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import repeat
from typing import Any

import numpy as np

from pcapcheck.fast.clean_connections import MAX_CLEAN_ROWS, RETX_MAX, CleanConnection
from pcapcheck.model import ACK, FIN, PSH, RST, SYN, Segment
from pcapcheck.tcp.detectors import DUPLICATE_KEY_FIELDS
from pcapcheck.tcp.tracker import client_path, connection_key, tunnel_ends, tunnels_of

__all__ = [
    "MAX_ROWS",
    "ROUND_ROWS",
    "FastConn",
    "Lookahead",
    "Plan",
    "RawPlan",
    "classify",
    "clean_connections",
    "histories",
]

_M32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1
_GOLD = 0x9E3779B97F4A7C15
#: mixes a tunnel's id into a 4-tuple's hash (an odd 64-bit constant, splitmix64's)
_TUNNEL_MIX = 0xBF58476D1CE4E5B9

#: Find clean connections ahead of the tracker (with the native decoder); False: never
#: (the tests compare both).
ENABLED = True

#: Segments of this shard pushed between two rounds of classification. A segment waits
#: in rounds until its connection is complete (the close delay after its last segment):
#: on bench.pcap each was grouped 3 times with 32k a round, 2 with 64k (0.40 -> 0.34 s
#: of rounds a shard, 8 MB more held).
ROUND_ROWS = 1 << 16
#: Segments classified at a time (:func:`classify`'s temporaries: about 300 bytes each).
CLASSIFY_ROWS = 1 << 14
#: The fields of a round read from the plans' columns: name -> ``batch._Columns`` field.
_FROM_COLS = {
    "ts": "ts",
    "flags": "flags",
    "frame": "frame",
    "seq": "seq",
    "ack": "ack",
    "win": "win",
    "ln": "payload_len",
    "ip_id": "ip_id",
}
#: A candidate whose SYN is more than this many segments (of this shard) behind the
#: latest one read is made normal: the lookahead's memory stays bounded.
MAX_ROWS = 1 << 19
#: What a record decoded one by one (a Segment, a DecodeError: objects of about 2.4 kB,
#: malformed records, zero-length ones, IPv6) weighs in :data:`ROUND_ROWS` and
#: :data:`MAX_ROWS`, in segments held as columns (about 150 bytes each); a record of
#: another shard or skipped (a few bytes of the plan's per-record arrays) weighs
#: ``1 / OTHER_RECORDS``. So the plans held behind an undecided candidate stay within
#: about ``MAX_ROWS`` segments' worth whatever the capture holds (issue #23: a valid
#: connection followed by a million zero-length records held them all).
SPECIAL_WEIGHT = 16
OTHER_RECORDS = 4

# row labels (Plan.label)
UNDECIDED, NORMAL, MIDDLE, START, END, DIRECT = 0, 1, 2, 3, 4, 5


class FastConn:
    """A fast connection as the tracker needs it: ``key``, the tracker's key of its
    4-tuple; ``clean``, its :class:`~pcapcheck.fast.clean_connections.CleanConnection` (``id`` set by
    :meth:`~pcapcheck.fast.summarising_tracker.SummarisingTracker.start_fast`)."""

    __slots__ = ("clean", "key")

    def __init__(self, key: tuple, clean: CleanConnection):
        self.key, self.clean = key, clean


class Plan:
    """One chunk of the capture decoded by :class:`pcapcheck.fast.batch_decoder.BatchSource`, kept
    until its segments have their verdicts. ``cols``: the chunk's TCP segments decoded
    in columns (``batch._Columns``, all shards); ``mine``: bool array, the rows of this
    shard (None: all); ``cat``, ``frames``, ``ts``: per record of the chunk (the
    source's categories, frame numbers, seconds); ``special``: record index -> item of
    the records that are not rows (decoded one by one).

    :class:`Lookahead` adds ``own`` (the indices of this shard's rows), the fields it
    groups and classifies them by, per own row, and the verdicts: ``olabel`` (int8 per
    own row: :data:`UNDECIDED`, :data:`NORMAL`, :data:`MIDDLE`, :data:`START`,
    :data:`END`), ``ofast`` (object per own row: the :class:`FastConn` of a START or END
    row). :meth:`verdicts` gives them per row."""

    __slots__ = (
        "base",
        "cat",
        "cols",
        "f",
        "frames",
        "mine",
        "ofast",
        "olabel",
        "own",
        "special",
        "ts",
        "undecided",
    )

    # set by Lookahead._push_cols
    own: np.ndarray
    olabel: np.ndarray
    ofast: np.ndarray
    undecided: int
    f: dict[str, np.ndarray] | None
    base: int

    def __init__(
        self,
        cols: Any,
        mine: np.ndarray | None,
        cat: np.ndarray,
        frames: np.ndarray,
        ts: np.ndarray,
        special: dict[int, Any],
    ):
        self.cols, self.mine, self.cat = cols, mine, cat
        self.frames, self.ts, self.special = frames, ts, special

    def verdicts(self) -> tuple[np.ndarray | None, dict[int, FastConn]]:
        """``(label, fast)``: the label of every row of ``cols`` (None: all NORMAL) and
        row -> :class:`FastConn` of the START and END rows."""
        olabel = self.olabel
        at = np.flatnonzero(olabel > NORMAL)
        if not len(at):
            return None, {}
        label = np.full(len(self.cols.frame), NORMAL, np.int8)
        label[self.own] = olabel
        ends = at[olabel[at] != MIDDLE]
        return label, dict(zip(self.own[ends].tolist(), self.ofast[ends].tolist()))


class RawPlan:
    """Items of the capture that are not a decoded chunk (a chunk with no plain TCP
    segment, a pcapng block other than a packet): ``items``, ``(frame, ts, item)``."""

    __slots__ = ("items",)
    undecided = 0

    def __init__(self, items: list):
        self.items = items


def key_hash(a: int, aport: int, b: int, bport: int) -> int:
    """The 64-bit hash of an unordered IPv4 4-tuple (addresses as ints), as
    :meth:`Lookahead._push_cols` computes it with numpy."""
    x, y = (a << 16) | aport, (b << 16) | bport
    lo, hi = (x, y) if x <= y else (y, x)
    return (lo * _GOLD + hi) & _M64


def _ip4_int(text: str) -> int | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    try:
        a, b, c, d = (int(p) for p in parts)
    except ValueError:
        return None
    return (a << 24) | (b << 16) | (c << 8) | d


class Lookahead:
    """The rounds of the module docstring over the plans pushed, in capture order.

    ``close_delay``: the tracker's (seconds); ``horizon``: seconds within which a
    4-tuple seen before a SYN may still be in the tracker's table or among its recently
    closed 4-tuples (``max(idle_timeout, close_delay, 2·MSL)`` plus two sweep periods);
    ``addr``: IPv4 int -> dotted text (the source's cache). :meth:`push` and
    :meth:`finish` return the plans whose verdicts are all in, in order.
    """

    def __init__(self, close_delay: float, horizon: float, addr: dict):
        self.delay = float(close_delay)
        self.horizon = float(horizon)
        self.addr = addr
        self.round_rows, self.max_rows = ROUND_ROWS, MAX_ROWS
        self.queue: deque = deque()
        self.fresh = 0  # rows pushed since the last round
        #: the weight of the other records pushed since the last round (SPECIAL_WEIGHT)
        self.fresh_other = 0
        #: rows of this shard pushed so far, plus the weight of the other records (the
        #: ordinals that MAX_ROWS is counted in)
        self.rows = 0
        self.clock = float("-inf")  # latest time of a row read (any shard)
        self.last = float("-inf")  # latest time of any record read
        self.disordered = False  # the capture's clock went back
        #: 4-tuple hash -> the latest time of one of its segments that reached (or will
        #: reach) the tracker as itself: the segments of decided groups, and those
        #: decoded one by one.
        self.seen: dict[int, float] = {}
        self._purged = float("-inf")
        self.fast_count = 0
        #: the encapsulation paths of tunnelled rows (issue 24) by their id here (0: no
        #: tunnel), and the id of each path's tunnel (its connection key's identity: both
        #: directions of one tunnel share it), which the rounds group rows by
        self.paths: list[tuple[str, ...] | None] = [None]
        self._path_ids: dict[tuple[str, ...], int] = {}
        self._tunnel_of: list[int] = [0]
        self._tunnel_ids: dict[tuple, int] = {}
        #: whether each path has idents per direction (:func:`tunnel_ends`: GTP-U's
        #: TEID): only rows of such paths need :meth:`_tunnels` (the others are one
        #: tunnel per coarse key, ``[{}]``); the paths of one group all have or lack them
        self._paired: list[bool] = [False]

    # -- input -----------------------------------------------------------------------

    def push(self, plan: Plan | RawPlan) -> list:
        """Take the next plan; return the plans now ready (in order)."""
        if isinstance(plan, RawPlan):
            items = plan.items
            self._times([t for _f, t, _i in items])
            decoded = 0
            for _f, _t, item in items:
                if item is not None:
                    decoded += 1
                    if item.__class__ is Segment:
                        self._poison(item)
            self._weigh(decoded, len(items) - decoded)
        else:
            self._push_cols(plan)
        self.queue.append(plan)
        if self.fresh >= self.round_rows or self.fresh_other >= self.round_rows:
            self._round(eof=False, truncated=False)
        return self._ready()

    def finish(self, truncated: bool) -> list:
        """The end of the capture (``truncated``: cut short): decide everything; return
        the remaining plans."""
        self._round(eof=True, truncated=truncated)
        return self._ready()

    def _times(self, ts: Iterable[float]) -> None:
        last = self.last
        for t in ts:
            if t < last:
                self.disordered = True
            last = t if t > last else last
        self.last = last

    def _weigh(self, decoded: int, other: int) -> None:
        """Count ``decoded`` records decoded one by one and ``other`` records (skipped,
        of another shard) towards the round and the ordinals (:data:`SPECIAL_WEIGHT`)."""
        w = decoded * SPECIAL_WEIGHT + other // OTHER_RECORDS
        self.fresh_other += w
        self.rows += w

    def _poison(self, seg: Segment) -> None:
        """A segment decoded one by one: its 4-tuple is seen (IPv4 only: no fast
        connection has an IPv6 4-tuple)."""
        a, b = _ip4_int(seg.src), _ip4_int(seg.dst)
        if a is None or b is None:
            return
        k = key_hash(a, seg.sport, b, seg.dport)
        if self.seen.get(k, float("-inf")) < seg.ts:
            self.seen[k] = seg.ts

    def _push_cols(self, plan: Plan) -> None:
        c = plan.cols
        ts = plan.ts
        if len(ts):
            if ts[0] < self.last or (len(ts) > 1 and bool((ts[1:] < ts[:-1]).any())):
                self.disordered = True
            self.last = max(self.last, float(ts.max()))
        decoded = 0
        for item in plan.special.values():
            if item is not None:
                decoded += 1
                if item.__class__ is Segment:
                    self._poison(item)
        n = len(c.frame)
        if n:
            self.clock = max(self.clock, float(c.ts.max()))
        own = np.arange(n) if plan.mine is None else np.flatnonzero(plan.mine)
        m = len(own)
        plan.own = own
        plan.olabel = np.zeros(m, np.int8)
        plan.ofast = np.empty(m, object)
        plan.undecided = m
        aps = (c.src[own].astype(np.int64) << 16) | c.sport[own]
        apd = (c.dst[own].astype(np.int64) << 16) | c.dport[own]
        dirty = c.cut[own].astype(bool)
        if c.checksum_ok is not None:
            dirty |= np.fromiter((c.checksum_ok[i] is False for i in own.tolist()), bool, m)
        # what the rounds need beyond cols, per own row (the rest is read from cols)
        plan.f = {
            "lo": np.minimum(aps, apd),
            "hi": np.maximum(aps, apd),
            "dirty": dirty,
            "aps": aps,
        }
        if c.tunnel is not None:  # tunnelled rows: their paths' ids here, their tunnels'
            ids = np.array([self._path_id(p) for p in c.paths], np.int32)
            gid = ids[c.tunnel[own]]
            plan.f["gid"] = gid
            plan.f["tid"] = np.array(self._tunnel_of, np.int32)[gid]
        plan.base = self.rows  # the ordinal of its first own row
        self.rows += m
        self.fresh += m
        self._weigh(decoded, len(ts) - m - decoded)

    def _path_id(self, path: tuple[str, ...] | None) -> int:
        """The id of an encapsulation path (0: None), given on first sight."""
        if path is None:
            return 0
        i = self._path_ids.get(path)
        if i is None:
            i = self._path_ids[path] = len(self.paths)
            self.paths.append(path)
            tunnel = connection_key("", 0, "", 0, path)[4]
            t = self._tunnel_ids.get(tunnel)
            if t is None:
                t = self._tunnel_ids[tunnel] = len(self._tunnel_ids) + 1
            self._tunnel_of.append(t)
            self._paired.append(bool(tunnel_ends(path)))
        return i

    def _tunnels(self, gids: np.ndarray) -> list[dict]:
        """:func:`pcapcheck.tcp.tracker.tunnels_of` the rows with these path ids (capture
        order)."""
        paths = self.paths
        return tunnels_of(
            [p for p in map(paths.__getitem__, dict.fromkeys(gids.tolist())) if p is not None]
        )

    def _ready(self) -> list:
        queue = self.queue
        out = []
        while queue and not queue[0].undecided:
            plan = queue.popleft()
            if plan.__class__ is Plan:
                plan.f = None  # the fields the rounds needed
            out.append(plan)
        return out

    # -- a round ---------------------------------------------------------------------

    def _round(self, eof: bool, truncated: bool) -> None:
        self.fresh = self.fresh_other = 0
        plans = [p for p in self.queue if p.undecided]
        if not plans:
            return
        where = [np.flatnonzero(p.olabel == UNDECIDED) for p in plans]
        bounds = np.cumsum([0] + [len(w) for w in where])
        rows_of = [p.own[w] for p, w in zip(plans, where)]

        def cat(name: str) -> np.ndarray:
            """Field ``name`` of every undecided row, plan after plan (row order)."""
            if name in _FROM_COLS:
                attr = _FROM_COLS[name]
                return np.concatenate([getattr(p.cols, attr)[r] for p, r in zip(plans, rows_of)])
            if name == "ordinal":
                return np.concatenate([p.base + w for p, w in zip(plans, where)])
            if name in ("gid", "tid"):  # tunnels: 0 for the rows of plans without
                return np.concatenate(
                    [
                        p.f[name][w] if name in p.f else np.zeros(len(w), np.int32)
                        for p, w in zip(plans, where)
                    ]
                )
            return np.concatenate([p.f[name][w] for p, w in zip(plans, where)])

        lo = cat("lo")
        hi = cat("hi")
        # rows through tunnels (issue 24): grouped by 4-tuple and tunnel (tid), the
        # 4-tuples seen by 4-tuple alone (seen_key: a 4-tuple seen in any tunnel or none
        # makes no candidate: fewer fast connections, never a wrong one)
        tunnels = any("tid" in p.f for p in plans)
        tid = cat("tid") if tunnels else None
        with np.errstate(over="ignore"):
            h = lo.astype(np.uint64) * np.uint64(_GOLD) + hi.astype(np.uint64)
            if tid is not None:
                h ^= tid.astype(np.uint64) * np.uint64(_TUNNEL_MIX)
        n = len(h)
        order = np.argsort(h, kind="stable")  # by 4-tuple, each in capture order
        hs = h[order]
        new = np.empty(n, bool)
        new[0] = True
        new[1:] = hs[1:] != hs[:-1]
        gs = np.flatnonzero(new)  # the groups' first and last rows
        gsz = np.diff(np.append(gs, n))
        ge = gs + gsz - 1
        lo = lo[order]
        hi = hi[order]
        ts = cat("ts")[order]
        flags = cat("flags")[order]
        pure = (flags & (SYN | ACK | FIN | RST)) == SYN
        gap = np.zeros(n, bool)
        gap[1:] = (ts[1:] - ts[:-1] > self.delay) & ~new[1:]
        gap[1:] |= ((lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])) & ~new[1:]  # collision
        if tid is not None:
            tid = tid[order]
            gap[1:] |= (tid[1:] != tid[:-1]) & ~new[1:]
            tid = None

        def seen_key(g: np.ndarray) -> np.ndarray:
            """The 4-tuple hash (:func:`key_hash`) of the rows ``g`` (grouped order)."""
            if not tunnels:
                return hs[g]
            with np.errstate(over="ignore"):
                return lo[g].astype(np.uint64) * np.uint64(_GOLD) + hi[g].astype(np.uint64)

        cand = (
            pure[gs]
            & (np.add.reduceat(pure.astype(np.int64), gs) == 1)
            & ~np.logical_or.reduceat(gap | cat("dirty")[order], gs)
            & (lo[gs] != hi[gs])
        )
        if self.disordered:
            cand[:] = False
        if tunnels and cand.any():
            # a coarse group (tunnels whose ids are per direction share one: GTP-U) that
            # holds more than one tunnel is the reference tracker's (TunnelPairing)
            gid = cat("gid")[order]
            paired = np.asarray(self._paired)[gid[gs]]  # a group's paths all alike
            for j in np.flatnonzero(cand & paired).tolist():
                if len(self._tunnels(gid[gs[j] : ge[j] + 1])) > 1:
                    cand[j] = False
        if cand.any():
            seen, horizon = self.seen, self.horizon
            ci = np.flatnonzero(cand)
            for j, k, t in zip(ci.tolist(), seen_key(gs[ci]).tolist(), ts[gs[ci]].tolist()):
                s = seen.get(k)
                if s is not None and t - s <= horizon:
                    cand[j] = False
        evidence = self.clock > ts[ge] + self.delay
        complete = evidence | eof
        if truncated:
            complete &= evidence
        decided = ~cand | complete
        decided |= cand & (cat("ordinal")[order][gs] < self.rows - self.max_rows)
        decided |= cand & (gsz > MAX_CLEAN_ROWS)  # too long to be summarised
        if eof:
            decided[:] = True
        lab = np.where(np.repeat(decided, gsz), NORMAL, UNDECIDED).astype(np.int8)
        obj = None
        test = np.flatnonzero(cand & complete)
        fg_all: list[np.ndarray] = []
        fast_all: list[np.ndarray] = []
        if len(test):
            # the fields of the complete candidates' rows, gathered once (grouped order)
            tsz = gsz[test]
            size = np.cumsum(tsz)
            sub_starts = size - tsz
            rows = np.repeat(gs[test] - sub_starts, tsz) + np.arange(int(size[-1]))
            pos = order[rows]  # in the order of cat()
            got = {
                name: cat(name)[pos]
                for name in ("frame", "seq", "ack", "win", "ln", "ip_id", "dirty", "aps")
                + (("gid",) if tunnels else ())
            }
            got["ts"], got["flags"] = ts[rows], flags[rows]
            # classified in slices of about CLASSIFY_ROWS segments: classify's
            # temporaries (some 40 arrays of its rows) stay small
            cuts = np.searchsorted(
                size, np.arange(CLASSIFY_ROWS, int(size[-1]), CLASSIFY_ROWS), side="right"
            )
            for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), len(test)]):
                if a < b:
                    part = test[a:b]
                    lo_row, hi_row = int(sub_starts[a]), int(size[b - 1])
                    fg, fast = self._classify(
                        part,
                        {k: v[lo_row:hi_row] for k, v in got.items()},
                        sub_starts[a:b] - lo_row,
                        tsz[a:b],
                        gs,
                        lo,
                        hi,
                    )
                    lab[gs[part]] = DIRECT  # the SYN of the ones not clean (below:
                    fg_all.append(fg)  # the clean ones' labels)
                    fast_all.append(fast)
        if fg_all and sum(len(fg) for fg in fg_all):
            fg = np.concatenate(fg_all)
            fast = np.concatenate(fast_all)
            in_fast = np.zeros(len(gs), bool)
            in_fast[fg] = True
            lab[np.repeat(in_fast, gsz)] = MIDDLE
            lab[gs[fg]] = START
            lab[ge[fg]] = END
            obj = np.empty(n, object)
            obj[gs[fg]] = fast
            obj[ge[fg]] = fast
            self.fast_count += len(fg)

        # the verdicts back to the plans, and the 4-tuples of the decided groups seen
        dec = np.flatnonzero(decided)
        if len(dec):
            seen = self.seen
            for k, t in zip(seen_key(gs[dec]).tolist(), ts[ge[dec]].tolist()):
                if seen.get(k, float("-inf")) < t:
                    seen[k] = t
        back = np.empty(n, np.int8)
        back[order] = lab
        if obj is not None:
            back_obj = np.empty(n, object)
            back_obj[order] = obj
        for j, (p, w) in enumerate(zip(plans, where)):
            a, b = bounds[j], bounds[j + 1]
            verdict = back[a:b]
            p.olabel[w] = verdict
            p.undecided = int(np.count_nonzero(verdict == UNDECIDED))
            if obj is not None:
                p.ofast[w] = back_obj[a:b]
        self._purge()

    def _classify(
        self,
        test: np.ndarray,
        got: dict[str, np.ndarray],
        sub_starts: np.ndarray,
        tsz: np.ndarray,
        gs: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`classify` the groups ``test`` (complete candidates; indices of the
        round's groups, whose first rows are ``gs`` in the round's grouped order, where
        ``lo``/``hi`` are their 4-tuple halves): ``got``, their rows' fields (``frame``,
        ``ts``, ``seq``, ``ack``, ``flags``, ``win``, ``ln``, ``dirty``, ``aps``), each
        group's together (``sub_starts``, sizes ``tsz``). Returns the clean ones and
        their :class:`FastConn` (object array)."""
        cols = {
            "frame": got["frame"],
            "ts": got["ts"],
            "seq": got["seq"].astype(np.int64),
            "ack": got["ack"].astype(np.int64),
            "flags": got["flags"].astype(np.int64),
            "win": got["win"].astype(np.int64),
            "ln": got["ln"].astype(np.int64),
            "ip_id": got["ip_id"].astype(np.int64),
            "cut": got["dirty"],
        }
        aps = got["aps"]
        fc = aps == np.repeat(aps[sub_starts], tsz)
        every = np.arange(len(aps))
        out = classify(cols, every, sub_starts, tsz, fc)
        ok = out["clean"]
        conns = clean_connections(cols, every, sub_starts, tsz, out)
        fg = test[ok]
        client_ap = aps[sub_starts[ok]]
        server_ap = np.where(lo[gs[fg]] == client_ap, hi[gs[fg]], lo[gs[fg]])
        get = self.addr.__getitem__
        fast = np.empty(len(conns), object)
        gid = got.get("gid")
        paths = (
            repeat(None)
            if gid is None
            else map(self.paths.__getitem__, gid[sub_starts[ok]].tolist())
        )
        spans = zip(sub_starts[ok].tolist(), (sub_starts[ok] + tsz[ok]).tolist())
        for j, (c, ca, sa, path, (a, b)) in enumerate(
            zip(conns, client_ap.tolist(), server_ap.tolist(), paths, spans)
        ):
            cs, cp = c.client = (get(ca >> 16), ca & 0xFFFF)
            ss, sp = c.server = (get(sa >> 16), sa & 0xFFFF)
            if path is not None and gid is not None:  # the path it reports (tracker)
                ends = self._tunnels(gid[a:b])[0] if self._paired[gid[a]] else {}
                c.encapsulation = client_path(path, True, ends)
                fast[j] = FastConn(connection_key(cs, cp, ss, sp, path), c)
                continue
            fast[j] = FastConn(
                (cs, cp, ss, sp) if cs < ss or (cs == ss and cp <= sp) else (ss, sp, cs, cp), c
            )
        return fg, fast

    def _purge(self) -> None:
        """Forget the 4-tuples last seen more than ``horizon`` seconds ago (every quarter
        of the horizon of capture time)."""
        now = self.last
        if now - self._purged < self.horizon / 4:
            return
        self._purged = now
        limit = now - self.horizon
        self.seen = {k: t for k, t in self.seen.items() if t >= limit}


def classify(
    cols: dict[str, np.ndarray],
    rows: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    fc: np.ndarray,
) -> dict[str, np.ndarray]:
    """:func:`pcapcheck.fast.clean_connections.check` over many candidate connections at once.

    ``cols``: int64/float64/bool arrays of segments: ``frame``, ``ts`` (seconds),
    absolute ``seq``/``ack``, ``flags``, ``win``, ``ln`` (payload bytes), ``ip_id`` (0
    when absent), ``cut`` (cut by the snaplen or wrong checksum); ``rows``: the indices
    into ``cols`` of the candidates' segments, each connection's together and in
    capture order;
    ``starts``/``sizes``: each connection's slice of ``rows``; ``fc``: per entry of
    ``rows``, True when sent by the client (the SYN's sender).

    Returns per connection: ``clean`` (bool), and for the clean ones the fields of their
    :class:`~pcapcheck.fast.clean_connections.CleanConnection` (``f1``, ``a1``, ``f2``, ``last`` frames,
    ``closer`` 1 client / 2 server, packets and bytes per side, ISNs, ``min_ts``/
    ``max_ts``, ``letters``: the row of the first A D F T a d f t of Zeek's history, -1
    when absent); ``retx``: the retransmissions of every candidate, clean or not
    (:func:`_retransmissions`' table, one line per retransmission). A segmented running
    maximum of what each direction has sent tells a retransmission (data wholly below
    it) from a segment that must be at SND.NXT; segmented sums of the others give each
    segment's expected SEG.SEQ (the sender's SND.NXT) and the peer's SND.NXT; the
    previous segment of the same direction is found by index; each FIN's acknowledgment
    and each retransmission's first frame by ``searchsorted``.
    """
    R, C = len(rows), len(starts)
    if not C:
        return {"clean": np.zeros(0, bool)}
    g = np.repeat(np.arange(C), sizes)
    k = np.arange(R) - starts[g]
    seq, ack = cols["seq"][rows], cols["ack"][rows]
    fl, win, ln = cols["flags"][rows], cols["win"][rows], cols["ln"][rows]
    frame = cols["frame"][rows]
    ok = sizes >= 7
    ok &= ~np.logical_or.reduceat(cols["cut"][rows], starts)
    r0 = starts
    r1 = np.minimum(starts + 1, R - 1)
    r2 = np.minimum(starts + 2, R - 1)
    ok &= fc[r0] & (fl[r0] == SYN) & (ln[r0] == 0) & (win[r0] != 0)
    isn_c = seq[r0]
    ok &= (
        ~fc[r1]
        & (fl[r1] == SYN | ACK)
        & (ln[r1] == 0)
        & (win[r1] != 0)
        & (ack[r1] == (isn_c + 1) & _M32)
    )
    isn_s = seq[r1]
    ok &= fc[r2] & ((fl[r2] & FIN) == 0)

    loop = k >= 2
    f = fl & ~PSH
    fin = loop & (f == FIN | ACK)
    bad = loop & (((f != ACK) & ~fin) | (win == 0))
    own_isn = np.where(fc, isn_c[g], isn_s[g])
    peer_isn = np.where(fc, isn_s[g], isn_c[g])
    rel = (seq - own_isn) & _M32  # SEG.SEQ relative to the sender's ISN
    # the rows of each direction, and the highest sequence number sent before each row
    # (segmented running maximum: each group's values lifted above the previous ones')
    side_rows = {}
    sent = np.ones(R, np.int64)
    lift = g * (1 << 34)
    for side, mask in (("c", fc), ("s", ~fc)):
        idx = np.flatnonzero(loop & mask)
        side_rows[side] = idx
        if len(idx):
            top = np.maximum.accumulate(rel[idx] + ln[idx] + fin[idx] + lift[idx])
            sent[idx[1:]] = np.maximum(top[:-1] - lift[idx[1:]], 1)
    # retransmissions: data sent again, whole (see clean.check)
    retx = loop & (ln > 0) & ~fin & (rel + ln <= sent)
    contrib = np.where(loop & ~retx, ln + fin, 0)
    before = {}
    for side, mask in (("c", fc), ("s", ~fc)):
        part = np.where(mask, contrib, 0)
        excl = np.cumsum(part) - part
        before[side] = excl - excl[starts][g]
    own_nxt = 1 + np.where(fc, before["c"], before["s"])
    peer_nxt = 1 + np.where(fc, before["s"], before["c"])
    bad |= loop & ~retx & (rel != own_nxt)
    first_fin = np.minimum.reduceat(np.where(fin, np.arange(R), R), starts)
    bad |= retx & ((f != ACK) | (ln < 2) | (rel < 1) | (np.arange(R) > first_fin[g]))
    a = (ack - peer_isn) & _M32
    bad |= loop & ((a > peer_nxt) | (a < 1))
    # the previous segment of the same direction in the same connection (loop rows)
    prev = np.full(R, -1, np.int64)
    for side in ("c", "s"):
        idx = side_rows[side]
        same = g[idx[1:]] == g[idx[:-1]]
        prev[idx[1:][same]] = idx[:-1][same]
    has_prev = prev >= 0
    pv = np.where(has_prev, prev, 0)
    prev_a = np.where(has_prev, a[pv], 0)
    prev_data = has_prev & (ln[pv] > 0) & ~fin[pv] & ~retx[pv]
    bad |= loop & (a < prev_a)
    bad |= loop & (a == prev_a) & ~prev_data & (ln == 0) & (f == ACK)
    # FINs: one per side, without data, the client's not on row 2, nothing but ACKs
    # after it, acknowledged by the first segment of the other side after it
    bad |= fin & ((ln > 0) | (fc & (k == 2)))
    ok &= ~np.logical_or.reduceat(bad, starts)
    fin_at = {}
    for side, mask in (("c", fc), ("s", ~fc)):
        idx = np.flatnonzero(fin & mask)
        count = np.bincount(g[idx], minlength=C)
        ok &= count == 1
        at = np.full(C, -1, np.int64)
        at[g[idx]] = idx  # with count == 1: the FIN's row
        fin_at[side] = at
    for side, peer, mask in (("c", "s", fc), ("s", "c", ~fc)):
        at = fin_at[side]
        has = at >= 0
        after = loop & mask & (np.arange(R) > np.where(has, at, R)[g])  # after own FIN
        ok &= ~np.logical_or.reduceat(after & (ln > 0), starts)  # no data there
        peer_idx = side_rows[peer]
        j = np.searchsorted(peer_idx, np.where(has, at, 0), side="right")
        j = np.minimum(j, max(len(peer_idx) - 1, 0))
        acker = peer_idx[j] if len(peer_idx) else np.zeros(C, np.int64)
        valid = has & (acker > at) & (g[acker] == np.arange(C))
        ok &= valid
        fin_rel = own_nxt[np.where(has, at, 0)]
        ok &= ~valid | (a[acker] == fin_rel + 1)
        fin_at[side + "_ack"] = np.where(valid, acker, -1)
    closer_c = fin_at["c"] < fin_at["s"]
    first = np.where(closer_c, fin_at["c"], fin_at["s"])
    second = np.where(closer_c, fin_at["s"], fin_at["c"])
    a1 = np.where(closer_c, fin_at["c_ack"], fin_at["s_ack"])
    last_ack = np.where(closer_c, fin_at["s_ack"], fin_at["c_ack"])
    ok &= last_ack == starts + sizes - 1
    # no sequence number wraps
    c_total = np.bincount(g, weights=np.where(fc, contrib, 0), minlength=C).astype(np.int64)
    s_total = np.bincount(g, weights=np.where(~fc, contrib, 0), minlength=C).astype(np.int64)
    ok &= (isn_c + 1 + c_total <= _M32) & (isn_s + 1 + s_total <= _M32)

    ip_id = cols["ip_id"][rows] if "ip_id" in cols else np.zeros(R, np.int64)
    retx_at = _retransmissions(
        frame, ip_id, g, starts, fc, rel, ln, fl, win, a, retx, side_rows, ok
    )
    data = loop & (ln > 0) & ~fin
    pure = loop & (ln == 0) & ~fin
    letters = np.full((C, 8), R, np.int64)
    for col, mask in enumerate(
        (fc & pure, fc & data, fc & fin, fc & retx, ~fc & pure, ~fc & data, ~fc & fin, ~fc & retx)
    ):
        idx = np.flatnonzero(mask)  # ascending, so each group's first comes first
        if len(idx):
            head = np.ones(len(idx), bool)
            head[1:] = g[idx][1:] != g[idx][:-1]
            letters[g[idx][head], col] = idx[head]
    letters[letters == R] = -1
    ts = cols["ts"][rows]

    def per_conn(weights: np.ndarray) -> np.ndarray:
        return np.bincount(g, weights=weights, minlength=C).astype(np.int64)

    return {
        "clean": ok,
        "isn_c": isn_c,
        "isn_s": isn_s,
        "closer": np.where(closer_c, 1, 2),
        "synack": frame[r1],
        "ack": frame[r2],
        "f1": frame[first],
        "a1": frame[a1],
        "f2": frame[second],
        "last": frame[starts + sizes - 1],
        "c_pkts": 1 + per_conn(loop & fc),
        "s_pkts": 1 + per_conn(loop & ~fc),
        "c_bytes": per_conn(np.where(fc & data, ln, 0)),
        "s_bytes": per_conn(np.where(~fc & data, ln, 0)),
        "min_ts": np.minimum.reduceat(ts, starts),
        "max_ts": np.maximum.reduceat(ts, starts),
        "letters": letters,
        "retx": retx_at,
    }


def _retransmissions(
    frame: np.ndarray,
    ip_id: np.ndarray,
    g: np.ndarray,
    starts: np.ndarray,
    fc: np.ndarray,
    rel: np.ndarray,
    ln: np.ndarray,
    fl: np.ndarray,
    win: np.ndarray,
    a: np.ndarray,
    retx: np.ndarray,
    side_rows: dict[str, np.ndarray],
    ok: np.ndarray,
) -> np.ndarray:
    """The part of :func:`classify` about retransmissions (``retx``: per row), as
    :func:`pcapcheck.fast.clean_connections.check` tests them (``_resent``): clears ``ok`` of a
    connection with more than :data:`~pcapcheck.fast.clean_connections.RETX_MAX` from one direction, or
    with two data segments of one direction equal in the fields of CP008's duplicate key
    (:data:`pcapcheck.tcp.detectors.DUPLICATE_KEY_FIELDS`) held here (all but the TCP
    timestamp: a coarser comparison, which finds every pair the engine's would, and
    more), whatever their time apart (maybe one packet stored twice). The other arguments are
    :func:`classify`'s per row (``rel``: SEG.SEQ relative to the sender's ISN, ``a``:
    SEG.ACK relative to the peer's; ``side_rows``: the rows after the handshake's SYNs
    of each direction, ``"c"`` and ``"s"``).

    Returns an int64 array (m, 7), one line per retransmission in row order: its row,
    frame, 1 when from the client, SEG.SEQ (relative), payload length, the frame that
    first sent its first byte while that data is not wholly acknowledged (the peer's
    latest SEG.ACK below its end) else -1, flags."""
    R = len(g)
    at = np.flatnonzero(retx)
    table = np.empty((len(at), 7), np.int64)
    if not len(at):
        return table
    table[:, 0], table[:, 1], table[:, 2] = at, frame[at], fc[at]
    table[:, 3], table[:, 4], table[:, 6] = rel[at], ln[at], fl[at]
    C = len(starts)
    for mask in (fc, ~fc):
        ok &= np.bincount(g[retx & mask], minlength=C) <= RETX_MAX
    # two equal data segments of one direction (each such pair holds a retransmission)
    some = np.zeros(C, bool)
    some[g[at]] = True
    d = np.flatnonzero((ln > 0) & some[g] & (np.arange(R) - starts[g] >= 2))
    held = {"ip_id": ip_id, "seq": rel, "ack": a, "flags": fl, "payload_len": ln, "window": win}
    keys = tuple(held[name][d] for name in DUPLICATE_KEY_FIELDS if name in held) + (fc[d], g[d])
    order = np.lexsort(keys)
    same = np.ones(max(len(d) - 1, 0), bool)
    for key in keys:
        v = key[order]
        same &= v[1:] == v[:-1]
    ok[g[d[order[1:][same]]]] = False
    # the first frame: the data segment (not a retransmission) that holds the first byte
    first = np.full(R, -1, np.int64)
    lift = g * (1 << 34)
    for side, mask, peer in (("c", fc, "s"), ("s", ~fc, "c")):
        mine = at[mask[at]]
        sent = side_rows[side]
        sent = sent[(ln[sent] > 0) & ~retx[sent]]
        if not len(mine) or not len(sent):  # (none sent: not a connection that is clean)
            continue
        j = np.searchsorted(rel[sent] + lift[sent], rel[mine] + lift[mine], side="right")
        holder = sent[np.maximum(j - 1, 0)]
        # the peer's latest SEG.ACK before it (0: none after the SYN-ACK, which acks 1)
        acks = side_rows[peer]
        latest = np.zeros(len(mine), np.int64)
        if len(acks):
            p = np.searchsorted(acks, mine) - 1
            pp = acks[np.maximum(p, 0)]
            latest = np.where((p >= 0) & (g[pp] == g[mine]), a[pp], 0)
        first[mine] = np.where(rel[holder] + ln[holder] > latest, frame[holder], -1)
    table[:, 5] = first[at]
    return table


#: Zeek's history letters of :func:`classify`'s ``letters`` columns.
_LETTERS = "ADFTadft"
#: history code (see :func:`histories`) -> history text
_HISTORY: dict[int, str] = {}


def histories(letters: np.ndarray) -> list[str]:
    """Zeek's history of each clean connection from :func:`classify`'s ``letters``
    (int array (m, 8), the row of each letter's first occurrence, -1 absent): "Sh",
    then the letters present in the order they first occur. Each connection's order is
    coded as an int (base 9, one digit per position: 0 none, else the letter's column
    + 1), its text made once per code."""
    if not len(letters):
        return []
    width = len(_LETTERS)
    key = np.where(letters < 0, np.iinfo(np.int64).max, letters)
    order = np.argsort(key, axis=1, kind="stable")
    present = np.take_along_axis(letters >= 0, order, 1)
    codes = ((order + 1) * present) @ ((width + 1) ** np.arange(width, dtype=np.int64))
    out = []
    for code in codes.tolist():
        text = _HISTORY.get(code)
        if text is None:
            text, rest = "Sh", code
            while rest:
                rest, digit = divmod(rest, width + 1)
                text += _LETTERS[digit - 1]
            _HISTORY[code] = text
        out.append(text)
    return out


#: The ``retx`` of a CleanConnection without retransmissions (shared, never changed).
_NO_RETX: list = []


def clean_connections(
    cols: dict[str, np.ndarray],
    rows: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    out: dict[str, np.ndarray],
) -> list[CleanConnection]:
    """The :class:`~pcapcheck.fast.clean_connections.CleanConnection` of each connection :func:`classify`
    found clean (arguments as given to it, ``out`` its result), in the order of
    ``starts``; ``id`` 0, ``client``/``server`` None (the caller sets them)."""
    clean = np.flatnonzero(out["clean"])
    if not len(clean):
        return []
    fields = {
        key: out[key][clean].tolist()
        for key in out
        if key not in ("clean", "letters", "min_ts", "max_ts", "retx")
    }
    resent: dict[int, list[tuple]] = {}  # connection -> CleanConnection.retx
    table = out["retx"]
    if len(table):
        conn = np.searchsorted(starts, table[:, 0], side="right") - 1
        for c, (_row, frame, from_client, seq, length, first, flags) in zip(
            conn.tolist(), table.tolist()
        ):
            if out["clean"][c]:
                resent.setdefault(c, []).append(
                    (frame, from_client == 1, seq, length, None if first < 0 else first, flags)
                )
    first = rows[starts[clean]]
    last = rows[starts[clean] + sizes[clean] - 1]
    firsts = cols["frame"][first].tolist()
    first_ts = cols["ts"][first].tolist()
    close_ts = cols["ts"][last].tolist()
    hist = histories(out["letters"][clean])
    duration = (out["max_ts"][clean] - out["min_ts"][clean]).tolist()
    new = CleanConnection.__new__
    conns: list[CleanConnection] = []
    append = conns.append
    for (
        index,
        first_frame,
        ts,
        last_frame,
        close,
        span,
        c_pkts,
        s_pkts,
        c_bytes,
        s_bytes,
        isn_c,
        isn_s,
        closer,
        synack,
        ack,
        f1,
        a1,
        f2,
        history,
    ) in zip(
        clean.tolist(),
        firsts,
        first_ts,
        fields["last"],
        close_ts,
        duration,
        fields["c_pkts"],
        fields["s_pkts"],
        fields["c_bytes"],
        fields["s_bytes"],
        fields["isn_c"],
        fields["isn_s"],
        fields["closer"],
        fields["synack"],
        fields["ack"],
        fields["f1"],
        fields["a1"],
        fields["f2"],
        hist,
    ):
        c = new(CleanConnection)  # every slot set here
        c.events, c.zeek, c.id, c.encapsulation = [], None, 0, None
        c.client = c.server = None  # type: ignore[assignment]  # the caller sets them
        c.retx = resent.get(index, _NO_RETX)
        c.first_frame = c.syn = first_frame
        c.first_ts, c.last_frame, c.close_ts = ts, last_frame, close
        c.duration = round(max(span, 0.0), 6)
        c.packets, c.bytes = (c_pkts, s_pkts), (c_bytes, s_bytes)
        c.client_isn, c.server_isn = isn_c, isn_s
        c.closer = "client" if closer == 1 else "server"
        c.synack, c.ack, c.f1, c.a1, c.f2, c.last = synack, ack, f1, a1, f2, last_frame
        c.history = history
        append(c)
    return conns
