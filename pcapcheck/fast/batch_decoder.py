"""Batch decoding: many capture records at once with numpy (what exists only for speed).

:class:`BatchSource` is a drop-in replacement for :class:`pcapcheck.pipeline.NativeSource`
(same constructor, iteration and attributes; the same items in the same order) that
decodes the common packets of a whole chunk of the file with vectorised numpy indexing
instead of one :class:`model.Record` and one :meth:`Decoder.decode` call per record:

1. the record headers of a chunk of a few MiB are walked in a tight loop by the reader
   (:meth:`reader.CaptureReader.pcap_batches`; for pcapng
   :meth:`~reader.CaptureReader.pcapng_batches`, which hands over runs of Enhanced Packet
   Blocks of one link type), which keeps its exact handling of cut files and corrupt
   headers;
2. the link layers of all the records are walked together down the table of
   :mod:`pcapcheck.capture.layers` (:meth:`BatchSource._walk`: the records grouped by
   the layer reached so far, each group's next-layer field read with one gather), which
   finds where each record's IPv4 header starts; records whose next-layer value names
   no layer are counted as skipped by the table's kind, as the decoder counts them; an
   outer IP header whose protocol names a tunnel (VXLAN, Geneve, GTP-U, GRE, IP-in-IP:
   issue 24) takes its records on through the tunnel's layers, grouped by the shape of
   their outer headers, and each record's encapsulation path is made once per distinct
   set of the fields it shows (``BatchSource.tunnelled`` counts them);
3. timestamps and the IPv4 and TCP header fields of the records that reached IPv4 are
   gathered as numpy arrays (a structured dtype over the rows of a sliding-window view
   of the chunk);
4. the "plain" records — IPv4 without IP options (IHL 5), not a fragment, TCP with
   consistent lengths, TCP options absent (data offset 5), NOP NOP Timestamps (data
   offset 8) or anything else the decoder's option parser accepts — become
   :class:`model.Segment` objects built from those arrays, ``_STEP`` at a time (and only
   for the wanted shard, see below); IPv4 packets that are not TCP or are fragments are
   counted as skipped;
5. every other record (IPv6, IPv4 options, link-layer or IP headers cut short,
   malformed packets, link types the table does not have, pcapng blocks other than
   EPBs...) goes through :meth:`Decoder.decode` with a :class:`model.Record` built for
   it, so its item is the decoder's own; :attr:`BatchSource.one_by_one` counts them (a
   layer of the table never sends a record there: MPLS, VLAN tags and the rest are
   walked in batches).

Sharding: ``shard=(k, n)`` leaves out the Segments of the connections of the other
shards, those with ``(sport + dport) % n != k`` (a function of the connection, the same
in both directions), before building them, and yields :data:`model.OTHER_SHARD` in their
place (their timestamps move the capture's clock): n worker processes, each with its own
shard, decode the file between them without building each other's Segments. ``None``
items and DecodeErrors are yielded by every shard. With ``feed`` the shard does not read
the file at all: the batches come decoded from the process that read it once for every
shard (:meth:`BatchSource.batches`, :class:`Batch`, :mod:`pcapcheck.run.feed`).

Blocks: with ``blocks=True`` (what :func:`pcapcheck.pipeline.analyze_part` asks for) each
run of consecutive records that are Segments of the vectorised path is yielded as one
``(frame, ts, SegmentBlock)`` item instead: the Segments' fields as Python lists (the
shard's own segments only; the other shards' as frames and times), from which
:func:`pcapcheck.fast.established_lane.feed_block` replays the ordinary ones without building a Segment.
Expanded, the blocks give exactly the items above (``tests/test_batch.py``). About
0.7-0.85 µs per record for the whole iteration.

Cost (2-core VM, bench/generate.py captures, Ethernet/IPv4/TCP with timestamps): about
1.5 µs per packet for the whole iteration, about 1 µs with ``shard=(0, 2)``, against
about 3 µs for NativeSource. What is left is Python's: walking the record headers
(~0.25 µs) and building one Segment and one TcpOptions object per packet (~0.8 µs).
Memory: two chunk buffers (:data:`CHUNK_BYTES` each) and the arrays of one chunk.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pcapcheck.capture.decoder import (
    IPV4_FRAGMENT_BITS,
    IPV4_NO_OPTIONS,
    DecodeError,
    Decoder,
    SourceAttributes,
    _parse_options,
    frame_length,
    ipv4_length,
)
from pcapcheck.capture.layers import IPV4, IPV6, LINKTYPE, Field, Layer, ip_entry
from pcapcheck.capture.reader import open_capture
from pcapcheck.fast.lookahead import DIRECT, END, MIDDLE, START, FastConn, Lookahead, Plan, RawPlan
from pcapcheck.model import (
    MARK_DIRECT,
    MARK_END,
    MARK_START,
    OTHER_SHARD,
    Record,
    Segment,
    SegmentBlock,
    TcpOptions,
    _OtherShard,
)

__all__ = ["CHUNK_BYTES", "Batch", "BatchSource", "Item"]

#: One item of a source: ``(frame, ts, Segment | None | DecodeError)``; also
#: :data:`model.OTHER_SHARD` with a shard, a :class:`model.SegmentBlock` with blocks.
Item = tuple[int, float, "Segment | SegmentBlock | DecodeError | _OtherShard | None"]
#: What decoding one batch gives: a :class:`Batch` in blocks mode, else its items.
Outcome: TypeAlias = "Batch | Iterable[Item]"

#: Bytes of a pcap file decoded at a time (a batch holds the records wholly inside).
CHUNK_BYTES = 4 << 20
#: SegmentBlock.fast's mark of each lookahead label
_MARKS = {START: MARK_START, END: MARK_END, DIRECT: MARK_DIRECT}
#: Segments built at a time (their Python objects stay in the CPU caches).
_STEP = 1024

_NOP_NOP_TS = 0x0101080A
_ADDR_CACHE_MAX = 1 << 16

# per-record categories of a batch
_FAST = 0  # a Segment built from the arrays
_DROP = 1  # a Segment of another shard: not built, OTHER_SHARD yielded
_SKIP = 2  # not TCP: item None, counted in ``skipped`` from the arrays
_SLOW = 3  # decoded with Decoder.decode

#: The root layer of each link type (the table of :mod:`pcapcheck.capture.layers`).
_LINKTYPES = LINKTYPE.layers

#: An IPv4 header without options and the fixed TCP header, as big-endian fields (the
#: first 40 bytes from the IPv4 header's start).
_IP_TCP_DTYPE = np.dtype(
    {
        "names": [
            "vihl",
            "total",
            "ip_id",
            "frag",
            "proto",
            "src",
            "dst",
            "sport",
            "dport",
            "seq",
            "ack",
            "doff",
            "flags",
            "win",
        ],
        "formats": [
            "u1",
            ">u2",
            ">u2",
            ">u2",
            "u1",
            ">u4",
            ">u4",
            ">u2",
            ">u2",
            ">u4",
            ">u4",
            "u1",
            "u1",
            ">u2",
        ],
        "offsets": [0, 2, 4, 6, 9, 12, 16, 20, 22, 24, 28, 32, 33, 34],
        "itemsize": 40,
    }
)
#: NOP NOP kind length, TSval, TSecr: the 12 option bytes of a timestamps-only header.
_TS_DTYPE = np.dtype(">u4")


class _Addr4(dict):
    """IPv4 address (int) -> dotted text, filled on demand."""

    def __missing__(self, a: int) -> str:
        s = self[a] = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"
        return s


class BatchSource(SourceAttributes):
    """The records of a capture decoded in batches; the same items as
    :class:`pcapcheck.pipeline.NativeSource`.

    ``BatchSource(path, verify_checksums=False, shard=None)``: ``shard`` is ``None`` or
    ``(k, n)`` with ``0 <= k < n``: then the Segments with ``(sport + dport) % n != k`` are
    not built, :data:`model.OTHER_SHARD` is yielded in their place (see the module
    docstring). ``chunk_bytes`` (keyword; default :data:`CHUNK_BYTES`) is the size in
    bytes of the pieces of the file decoded at a time (memory stays a few times that).

    Iterating yields ``(frame, ts, item)`` per record, ``item`` a :class:`model.Segment`,
    ``None`` (not TCP; counted in :attr:`skipped`) or a :class:`decoder.DecodeError`;
    with ``blocks=True`` (keyword) a run of Segments comes as one
    :class:`model.SegmentBlock` item (see the module docstring); with
    ``lookahead=(close_delay, horizon)`` (keyword, seconds, blocks only) the chunks wait
    in a :class:`pcapcheck.fast.lookahead.Lookahead` until its verdicts on their connections
    are in, and the blocks carry them (``SegmentBlock.fast``); with ``feed`` (keyword,
    blocks only) the file is not read here: the :class:`Batch` objects are taken from
    ``feed`` (an iterable that then has ``truncated``, ``skipped`` and ``snaplen``: a
    :class:`pcapcheck.run.feed.Feed`, decoded by another process) and only the header of
    the file is read (:attr:`format`).
    After iteration: :attr:`skipped` (Counter by kind, the decoder's kinds),
    :attr:`truncated` (str or None), :attr:`format`, :attr:`snaplen`, as the reader's.
    ``skipped`` may run ahead of the items yielded so far by up to one batch.

    :raises reader.CaptureError: when :func:`reader.open_capture` raises it (not a
        readable capture), and for I/O errors during iteration.
    :raises ValueError: a bad ``shard``, a ``feed`` without ``blocks``.
    """

    def __init__(
        self,
        path: str | Path,
        verify_checksums: bool = False,
        shard: tuple[int, int] | None = None,
        *,
        chunk_bytes: int | None = None,
        blocks: bool = False,
        lookahead: tuple[float, float] | None = None,
        feed: Any = None,
        tunnel_ports: Mapping[str, Iterable[int]] | None = None,
    ):
        if shard is not None:
            k, n = shard
            if not (isinstance(k, int) and isinstance(n, int) and 0 <= k < n):
                raise ValueError(f"bad shard {shard!r}: want (k, n) with 0 <= k < n")
            shard = (k, n)
        self.reader = open_capture(path, with_non_packets=True)
        self.decoder = Decoder(verify_checksums=verify_checksums, tunnel_ports=tunnel_ports)
        #: the IPv4 protocols that name a tunnel (pcapcheck.capture.layers.IP_PROTOCOL,
        #: with the source's UDP ports), walked in batches after their IPv4 header
        self._proto4 = self.decoder._proto4
        self._tunnel_protos = np.array(sorted(self._proto4), np.uint8)
        #: the IPv6 next headers that name a tunnel (layers.IPV6_PROTOCOL)
        self._proto6 = self.decoder._proto6
        self._tunnel_protos6 = np.array(sorted(self._proto6), np.uint8)
        #: per dispatch (by id): its values as a sorted int64 array; per layer with a
        #: length table: the table as an array (the walk's lookups)
        self._keys: dict[int, np.ndarray] = {}
        self._tables: dict[int, np.ndarray] = {}
        #: records whose encapsulation path was made from the arrays (tunnelled records
        #: decoded in batches)
        self.tunnelled = 0
        #: records decoded one by one by :meth:`Decoder.decode` (layouts or headers the
        #: arrays do not decode: IPv6, IPv4 options, cut or malformed headers, pcapng
        #: blocks other than EPBs...); the rest were decoded in batches
        self.one_by_one = 0
        self.verify = verify_checksums
        self.shard = shard
        self.chunk_bytes = chunk_bytes or CHUNK_BYTES
        self.blocks = blocks
        self._addr4 = _Addr4()
        #: with ``blocks`` and ``lookahead=(close_delay, horizon)``: the clean connections
        #: found ahead of the tracker (:mod:`pcapcheck.fast.lookahead`)
        self._ahead = (
            Lookahead(lookahead[0], lookahead[1], self._addr4)
            if blocks and lookahead is not None
            else None
        )
        if feed is not None and not blocks:
            raise ValueError("a fed BatchSource needs blocks=True")
        #: the batches, when another process reads the file (:mod:`pcapcheck.run.feed`)
        self._feed = feed
        #: ``(truncated, skipped, snaplen)`` of the file, from the feed once it has ended
        self._fed: tuple[str | None, Counter, int | None] | None = None

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Item]:
        if self._feed is not None:
            return self._iter_fed()
        return self._iter_file()

    def _iter_file(self) -> Iterator[Item]:
        take = self._take if self.blocks else None
        for out in self._raw():
            yield from self._out(out if take is None else take(out))
        yield from self._flush()

    def batches(self) -> Iterator[Batch]:
        """The file decoded batch after batch, for every shard (blocks mode, no shard,
        no lookahead: what :mod:`pcapcheck.run.feed` sends to the shards' processes):
        :class:`Batch` objects in file order; :attr:`skipped` and :attr:`truncated`
        are final once they are exhausted.

        :raises ValueError: the source was made without ``blocks``, with a shard or with
            a lookahead.
        :raises reader.CaptureError: I/O errors while reading.
        """
        if not self.blocks or self.shard is not None or self._ahead is not None:
            raise ValueError("batches(): a source with blocks, no shard, no lookahead")
        return self._raw()

    def _iter_fed(self) -> Iterator[Item]:
        feed = self._feed
        for batch in feed:
            yield from self._out(self._take(batch))
        self._fed = (feed.truncated, feed.skipped, feed.snaplen)
        yield from self._flush()

    @property
    def truncated(self) -> str | None:
        return self.reader.truncated if self._fed is None else self._fed[0]

    @property
    def skipped(self) -> Counter:
        # fed: the reading's counts (records skipped by the arrays) and this decoder's
        # (records decoded one by one: only the shards decode them)
        return self.decoder.skipped if self._fed is None else self._fed[1] + self.decoder.skipped

    @property
    def snaplen(self) -> int | None:
        return self.reader.snaplen if self._fed is None else self._fed[2]

    def _raw(self) -> Iterator:
        """The outcome of each batch of the file in order: a :class:`Batch` in blocks
        mode, else an iterable of items."""
        if self.reader.format == "pcapng":
            return self._raw_pcapng()
        return self._raw_pcap()

    def _raw_pcap(self) -> Iterator:
        reader = self.reader
        batches = reader.pcap_batches(self.chunk_bytes)  # (re)opens the file
        endian, ticks, lt = reader.pcap_layout()
        hdr_dtype = np.dtype(
            [
                ("sec", endian + "u4"),
                ("frac", endian + "u4"),
                ("caplen", endian + "u4"),
                ("wire", endian + "u4"),
            ]
        )
        frame0 = 1
        for buf, base, positions in batches:
            n = len(positions)
            pos = np.array(positions, dtype=np.int64)
            u8 = np.frombuffer(buf, np.uint8)
            hdr = sliding_window_view(u8, 16)[pos].view(hdr_dtype).reshape(n)
            caplen = hdr["caplen"].astype(np.int64)
            wire = hdr["wire"].astype(np.int64)
            num = hdr["sec"].astype(np.int64) * ticks + hdr["frac"]
            if ticks <= 1_000_000:  # < 2**53: exact in float64, as Python's int / int
                ts = num / ticks
            else:  # nanoseconds: Python's correctly rounded division
                ts = np.array([v / ticks for v in num.tolist()], dtype=np.float64)
            starts = pos + 16
            frames = np.arange(frame0, frame0 + n, dtype=np.int64)
            frame0 += n

            def record_at(
                i: int,
                buf=buf,
                base=base,
                starts=starts,
                caplen=caplen,
                wire=wire,
                ts=ts,
                frames=frames,
            ) -> Record:
                s = int(starts[i])
                return Record(
                    int(frames[i]),
                    float(ts[i]),
                    lt,
                    bytes(buf[s : s + int(caplen[i])]),
                    int(wire[i]),
                    None if base is None else base + s - 16,
                )

            yield self._batch(buf, u8, starts, caplen, wire, ts, frames, lt, record_at)

    def _raw_pcapng(self) -> Iterator:
        held: list[Record] = []  # blocks mode: records read one by one, as one Batch
        for item in self.reader.pcapng_batches(self.chunk_bytes):  # (re)opens the file
            if type(item) is Record:
                if not self.blocks:
                    yield self._slow_all((item,))
                    continue
                held.append(item)
                if len(held) >= _HELD_MAX:
                    yield _records_batch(held)
                    held = []
                continue
            if held:
                yield _records_batch(held)
                held = []
            buf, base, positions, endian, interfaces, first = item
            n = len(positions)
            pos = np.array(positions, dtype=np.int64)
            u8 = np.frombuffer(buf, np.uint8)
            fields = sliding_window_view(u8, 20)[pos + 8].view(endian + "u4")
            ifid = fields[:, 0].astype(np.intp)
            caplen = fields[:, 3].astype(np.int64)
            wire = fields[:, 4].astype(np.int64)
            # the interfaces the run's blocks name, and each block's index among them:
            # work in the run's length, not in the section's number of interfaces
            # (issue #23: an interface block before every packet)
            if (ifid == ifid[0]).all():
                used = [interfaces[int(ifid[0])]]
                ifid = np.zeros(n, np.intp)
            else:
                ids, ifid = np.unique(ifid, return_inverse=True)
                used = [interfaces[i] for i in ids.tolist()]
                ifid = ifid.reshape(-1)
            lts = np.array([i[0] for i in used], np.int64)[ifid]
            ts = _pcapng_times(fields[:, 1], fields[:, 2], ifid, used)
            starts = pos + 28
            frames = np.arange(first, first + n, dtype=np.int64)
            cuts = np.flatnonzero(lts[1:] != lts[:-1]) + 1  # runs of one link type
            for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), n]):
                lt = int(lts[a])

                def record_at(
                    i: int,
                    a=a,
                    lt=lt,
                    buf=buf,
                    base=base,
                    pos=pos,
                    caplen=caplen,
                    wire=wire,
                    ts=ts,
                    frames=frames,
                ) -> Record:
                    i += a
                    s = int(pos[i]) + 28
                    return Record(
                        int(frames[i]),
                        float(ts[i]),
                        lt,
                        bytes(buf[s : s + int(caplen[i])]),
                        int(wire[i]),
                        None if base is None else s - 28 + base,
                    )

                yield self._batch(
                    buf,
                    u8,
                    starts[a:b],
                    caplen[a:b],
                    wire[a:b],
                    ts[a:b],
                    frames[a:b],
                    lt,
                    record_at,
                )
        if held:
            yield _records_batch(held)

    def _out(self, items: Iterable[Item] | Plan) -> Iterable[Item]:
        """The items of one batch as they may be yielded: as they are without the
        lookahead; else the items of the plans the lookahead has now decided (a batch
        that is not a :class:`Plan` is taken whole as a :class:`RawPlan`)."""
        ahead = self._ahead
        if ahead is None:
            assert not isinstance(items, Plan)  # plans are made for the lookahead only
            return items
        plan = items if isinstance(items, Plan) else RawPlan(list(items))
        return self._emit(ahead.push(plan))

    def _flush(self) -> Iterable[Item]:
        """The items the lookahead still holds at the end of the file."""
        if self._ahead is None:
            return ()
        return self._emit(self._ahead.finish(bool(self.truncated)))

    def _take(self, batch: Batch) -> Iterable[Item] | Plan:
        """This shard's view of one :class:`Batch` (blocks mode): its rows as blocks, or
        a :class:`Plan` for the lookahead; the records of a batch without rows one by
        one."""
        cat, frames, ts, slow = batch.cat, batch.frames, batch.ts, batch.slow

        def special_item(r: int) -> Segment | DecodeError | _OtherShard | None:
            return None if cat[r] == _SKIP else self._decoded(slow[r])

        cols = batch.cols
        if cols is None:
            return map(
                lambda f, t, r: (f, t, special_item(r)),
                frames.tolist(),
                ts.tolist(),
                range(len(cat)),
            )
        mine = None if self.shard is None else self._mine(cols.sport, cols.dport)
        if self._ahead is not None:  # decoded now: the lookahead needs their 4-tuples
            special = {r: special_item(r) for r in np.flatnonzero(cat >= _SKIP).tolist()}
            return Plan(cols, mine, cat, frames, ts, special)
        return self._blocks(cols, mine, cat, frames, ts, special_item)

    def _mine(self, sport: np.ndarray, dport: np.ndarray) -> np.ndarray:
        """bool per segment: of this shard (``(sport + dport) % n == k``)."""
        assert self.shard is not None
        k, n = self.shard
        return ((sport.astype(np.int64) + dport) % n) == k

    def _no_rows(
        self,
        cat: np.ndarray,
        frames: np.ndarray,
        ts: np.ndarray,
        record_at: Callable[[int], Record],
    ) -> Outcome:
        """The outcome of a batch none of whose records is a row (every one skipped or
        decoded one by one)."""
        if self.blocks:
            return Batch(None, cat, frames, ts, _slow_records(cat, record_at))
        return self._yield_mixed(cat, frames, ts, record_at, iter(()))

    def _emit(self, plans: list) -> Iterator[Item]:
        for plan in plans:
            if plan.__class__ is RawPlan:
                yield from plan.items
            else:
                label, fast = plan.verdicts()
                yield from self._blocks(
                    plan.cols,
                    plan.mine,
                    plan.cat,
                    plan.frames,
                    plan.ts,
                    plan.special.__getitem__,
                    label,
                    fast,
                )

    def _slow_all(self, records: Iterable[Record]) -> Iterator[Item]:
        """The items of ``records``, decoded one by one (NativeSource's way)."""
        for record in records:
            yield record.frame, record.ts, self._decoded(record)

    def _decoded(self, record: Record) -> Segment | DecodeError | _OtherShard | None:
        """The item of one record decoded by :meth:`Decoder.decode` (the DecodeError it
        raises, OTHER_SHARD for another shard's Segment)."""
        self.one_by_one += 1
        try:
            item = self.decoder.decode(record)
        except DecodeError as exc:
            # without its traceback: the frames it holds (this one's callers, the batch
            # being listed) would make a cycle that keeps every batch (issue #23)
            return exc.with_traceback(None)
        shard = self.shard
        if (
            shard is not None
            and type(item) is Segment
            and (item.sport + item.dport) % shard[1] != shard[0]
        ):
            return OTHER_SHARD
        return item

    # -- one batch ------------------------------------------------------------------------

    def _batch(
        self,
        buf: bytes | memoryview,
        u8: np.ndarray,
        starts: np.ndarray,
        caplen: np.ndarray,
        wire: np.ndarray,
        ts: np.ndarray,
        frames: np.ndarray,
        lt: int,
        record_at: Callable[[int], Record],
    ) -> Outcome:
        """Decode one batch of ``n`` records of link type ``lt``.

        ``buf``/``u8``: the bytes holding every record's data (``u8`` their uint8 view);
        ``starts``, ``caplen``, ``wire``: int64 arrays (n,) of each record's data offset
        in ``buf``, captured and original length (bytes); ``ts``: float64 (n,) seconds;
        ``frames``: int64 (n,) frame numbers; ``record_at(i)``: the
        :class:`model.Record` of record ``i`` (for the records the arrays cannot decode).
        Returns the items, in record order (OTHER_SHARD for the other shards' Segments).
        """
        n = len(starts)
        cat = np.full(n, _SLOW, np.int8)
        skipped = self.decoder.skipped

        # ---- link layers: which records reach IPv4, and where its header starts ------
        walked = self._walk(u8, starts, caplen, _LINKTYPES.get(lt), cat)
        if walked is None:
            return self._no_rows(cat, frames, ts, record_at)
        # off: an int (one layout) or int64 (n,); pid: None (no tunnel), or int32 (n,)
        # each record's index in paths (0: came through no tunnel)
        ip4, off, pid, paths = walked

        # ---- IPv4 + TCP headers of the records that hold them whole -------------------
        idx = np.flatnonzero(ip4 & (caplen - off >= 40))
        if len(idx) == 0:
            return self._no_rows(cat, frames, ts, record_at)
        s = starts[idx]
        if not isinstance(off, int):
            off = off[idx]
        ip = s + off  # where each IPv4 header starts in the buffer
        h = sliding_window_view(u8, 40)[ip].view(_IP_TCP_DTYPE).reshape(len(idx))
        total = h["total"].astype(np.int64)
        keep, frag = _plain_ipv4(h["vihl"], total, h["frag"])  # else decoded one by one
        cap = caplen[idx]
        wl = wire[idx]
        # TSO's total length 0: the frame's (the decoder's rule)
        total = ipv4_length(total, 20, frame_length(wl, cap, off))[0]
        proto = h["proto"]
        not_tcp = keep & (frag | (proto != 6))
        if not_tcp.any():
            # a tunnel's outer header the walk did not take (tunnels nested deeper than
            # _MAX_TUNNELS): decoded one by one (the item is the decoder's own)
            tunnel = not_tcp & ~frag & np.isin(proto, self._tunnel_protos)
            if tunnel.any():
                keep &= ~tunnel
                not_tcp &= ~tunnel
        if not_tcp.any():
            cat[idx[not_tcp]] = _SKIP
            n_frag = int(np.count_nonzero(not_tcp & frag))
            if n_frag:
                skipped["ipv4-fragment"] += n_frag
            p = proto[not_tcp & ~frag]
            if len(p):
                n_udp = int(np.count_nonzero(p == 17))
                n_icmp = int(np.count_nonzero(p == 1))
                n_icmp6 = int(np.count_nonzero(p == 58))
                for kind, count in (
                    ("ipv4-udp", n_udp),
                    ("icmp", n_icmp),
                    ("ipv6-icmp", n_icmp6),
                    ("other-ip-proto", len(p) - n_udp - n_icmp - n_icmp6),
                ):
                    if count:
                        skipped[kind] += count
            keep &= ~not_tcp
        tcp_len = total - 20
        hl = (h["doff"] >> 4).astype(np.int64) << 2
        have = cap - (off + 20)
        cut = have < tcp_len  # the snaplen cut the payload
        keep &= (tcp_len >= 20) & (hl >= 20) & (tcp_len >= hl) & (have >= hl)
        keep &= ~cut | (wl > cap)  # else "IP length exceeds the packet"

        # ---- TCP options ----------------------------------------------------------------
        # kind per kept record: 0 none (hl 20), 1 NOP NOP timestamps (hl 32), 2 other
        okind = np.where(hl == 20, 0, 2).astype(np.int8)
        t32 = np.flatnonzero(keep & (hl == 32))
        tsv = tse = None
        if len(t32):
            words = sliding_window_view(u8, 12)[ip[t32] + 40].view(_TS_DTYPE)
            nnts = words[:, 0] == _NOP_NOP_TS
            okind[t32[nnts]] = 1
            if len(t32) == len(idx):
                tsv, tse = words[:, 1], words[:, 2]
            else:
                tsv = np.zeros(len(idx), _TS_DTYPE)
                tse = np.zeros(len(idx), _TS_DTYPE)
                tsv[t32] = words[:, 1]
                tse[t32] = words[:, 2]
        others = np.flatnonzero(keep & (okind == 2))
        parsed: dict[int, TcpOptions] = {}
        if len(others):
            t0 = ip[others] + 40
            for j, a, b in zip(others.tolist(), t0.tolist(), (t0 + hl[others] - 20).tolist()):
                try:
                    parsed[j] = _parse_options(buf, a, b)
                except DecodeError:
                    keep[j] = False  # decode() raises the same error

        cat[idx[keep]] = _FAST
        src, dst = h["src"], h["dst"]
        sport, dport = h["sport"], h["dport"]
        if self.shard is not None and not self.blocks:  # blocks carry every shard's rows
            mine = self._mine(sport, dport)
            cat[idx[keep & ~mine]] = _DROP
            keep &= mine

        # ---- the Segments -------------------------------------------------------------
        sel = np.flatnonzero(keep)
        if len(sel) == 0:
            return self._no_rows(cat, frames, ts, record_at)
        only_segments = not cat.any()  # every record _FAST
        if len(sel) == len(idx):

            def pick(a: np.ndarray, dtype=None) -> np.ndarray:
                return a.astype(dtype or a.dtype)  # contiguous, native byte order

            fi = idx
        else:

            def pick(a: np.ndarray, dtype=None) -> np.ndarray:
                return a[sel].astype(dtype or a.dtype, copy=False)

            fi = idx[sel]
        u32, u16 = np.uint32, np.uint16
        tl = pick(tcp_len)
        cols = _Columns(
            frame=frames[fi],
            ts=ts[fi],
            src=pick(src, u32),
            dst=pick(dst, u32),
            sport=pick(sport, u16),
            dport=pick(dport, u16),
            seq=pick(h["seq"], u32),
            ack=pick(h["ack"], u32),
            flags=pick(h["flags"]),
            win=pick(h["win"], u16),
            payload_len=tl - pick(hl),
            ip_id=pick(h["ip_id"], u16),
            okind=pick(okind),
            tsv=None if tsv is None else pick(tsv, u32),
            tse=None if tse is None else pick(tse, u32),
            parsed=[parsed[j] for j in sel[okind[sel] == 2].tolist()],
            cut=pick(cut),
            checksum_ok=None,
        )
        if pid is not None:
            tun = pid[fi]
            if tun.any():
                cols.tunnel, cols.paths = tun, paths
                self.tunnelled += int(np.count_nonzero(tun))
        if self.verify:
            cols.checksum_ok = _checksums(
                u8,
                pick(ip) + 20,
                tl,
                cols.src.astype(np.int64) + cols.dst + 6 + tl,
                cols.cut,
            )
        if self.blocks:
            return Batch(cols, cat, frames, ts, _slow_records(cat, record_at))
        segs = self._segments(cols, only_segments)
        return segs if only_segments else self._yield_mixed(cat, frames, ts, record_at, segs)

    def _walk(
        self,
        u8: np.ndarray,
        starts: np.ndarray,
        caplen: np.ndarray,
        root: Layer | None,
        cat: np.ndarray,
    ) -> tuple[np.ndarray, int | np.ndarray, np.ndarray | None, list | None] | None:
        """The layers of a batch's ``n`` records walked together, from ``root`` (the
        layer of their link type, None: not in the table) down the table of
        :mod:`pcapcheck.capture.layers` to the IPv4 header that holds TCP, through the
        tunnels after an IPv4 header (:data:`pcapcheck.capture.layers.IP_PROTOCOL`) or
        an IPv6 header without extension headers (``IPV6_PROTOCOL``):
        the records are grouped by the layer reached so far (so by the shape of their
        outer headers), and each group's next-layer field is read for all its records
        with one gather (Zeek's vectorised walk); an outer IPv4 header without options
        whose protocol names a tunnel takes its records on into the tunnel's layers, up
        to :data:`_MAX_TUNNELS` deep.

        ``u8``, ``starts``, ``caplen``: see :meth:`_batch`; ``cat``: int8 (n,), all
        ``_SLOW``, updated in place: ``_SKIP`` for the records whose next-layer value
        names no layer and whose table gives a skipped kind (counted in ``skipped``, as
        :meth:`Decoder.decode` would). The records that reach IPv6, whose header is cut
        short, or whose value the table calls malformed stay ``_SLOW``: the decoder
        decides them one by one.

        :returns: ``(ip4, off, pid, paths)``: bool (n,) the records that reach IPv4, and
            where that IPv4 header starts from their first byte: an int when every such
            record has the same layout, else int64 (n,); ``pid`` None when no record
            came through a tunnel, else int32 (n,) each record's index in ``paths``, the
            encapsulation paths (:attr:`model.Segment.encapsulation`, ``paths[0]`` None:
            no tunnel). None when no record reaches IPv4.
        """
        if root is None:
            return None
        n = len(starts)
        found = self._walk_groups(u8, starts, caplen, [(root, None, 0, ())], cat)
        final: list[tuple[np.ndarray | None, int | np.ndarray, tuple]] = []
        for depth in range(_MAX_TUNNELS + 1):
            todo: list[tuple[Layer, np.ndarray | None, int | np.ndarray, tuple]] = []
            for version, g_idx, g_off, g_trail in found:
                group = (g_idx, g_off, g_trail)
                if version == 6:  # an outer IPv6 header of a tunnel, or decoded alone
                    if depth < _MAX_TUNNELS:
                        self._tunnel_step6(u8, starts, caplen, group, todo)
                elif depth == _MAX_TUNNELS:
                    final.append(group)
                else:
                    self._tunnel_step(u8, starts, caplen, group, todo, final)
            if not todo:
                break
            found = self._walk_groups(u8, starts, caplen, todo, cat)
        if not final:
            return None
        ip4 = np.zeros(n, bool)
        pid: np.ndarray | None = None
        paths: list[tuple[str, ...] | None] | None = None
        if any(any(step[0] is None for step in trail) for _i, _o, trail in final):
            pid = np.zeros(n, np.int32)
            paths = [None]
            known: dict[tuple[str, ...], int] = {}
            for idx, _o, trail in final:
                if any(step[0] is None for step in trail):
                    base = starts if idx is None else starts[idx]
                    self._paths(u8, base, trail, pid, idx, paths, known)
        offs = {o for _, o, _t in final if isinstance(o, int)}
        if len(offs) == 1 and all(isinstance(o, int) for _, o, _t in final):
            for idx, _o, _t in final:
                ip4[slice(None) if idx is None else idx] = True
            return ip4, offs.pop(), pid, paths
        at_ip = np.zeros(n, np.int64)
        for idx, o, _t in final:
            where = slice(None) if idx is None else idx
            ip4[where] = True
            at_ip[where] = o
        return ip4, at_ip, pid, paths

    def _walk_groups(
        self,
        u8: np.ndarray,
        starts: np.ndarray,
        caplen: np.ndarray,
        todo: list[tuple[Layer, np.ndarray | None, int | np.ndarray, tuple]],
        cat: np.ndarray,
    ) -> list[tuple[int, np.ndarray | None, int | np.ndarray, tuple]]:
        """Walk the groups ``todo`` (``(layer, idx, off, trail)``: a layer reached by the
        records ``idx`` (None: all) at offsets ``off`` (int or int64 aligned with
        ``idx``), ``trail`` the labelled layers and outer IP headers passed, each
        ``(layer, its offset(s), its next-layer value)``, or ``(None, offset(s), IP
        version)`` for an outer IP header) down to a network layer; return the groups
        that reached one as ``(IP version, idx, off, trail)``.
        What a header says about its length and next layer is read as
        :meth:`Decoder.decode` reads it (``length_from``, ``length_table``,
        ``length_sum``, ``length_add``, a ``next`` field counted from the header's end,
        ``next_alt``); a record whose header is cut short or malformed stays ``_SLOW``."""
        skipped = self.decoder.skipped
        found: list[tuple[int, np.ndarray | None, int | np.ndarray, tuple]] = []
        while todo:
            layer, idx, off, trail = todo.pop()
            field = layer.next
            if field is None:  # the network layer
                if layer is IPV4 or layer is IPV6:
                    found.append((layer.network or 4, idx, off, trail))
                continue
            cap = caplen if idx is None else caplen[idx]
            whole = cap >= off + layer.need
            if not whole.all():  # cut short: the decoder says why
                idx, off, trail = _subset(idx, off, trail, np.flatnonzero(whole))
                if idx is not None and len(idx) == 0:
                    continue
                cap = cap[whole]
            base = starts if idx is None else starts[idx]
            length_from = layer.length_from
            hl: Any  # int, or int64 per record
            if length_from is None:
                hl = layer.length
            else:  # a header whose length is written in it: offsets per record
                v = _gather(u8, base + (off + length_from.offset), length_from)
                if layer.length_table is not None:
                    table = self._tables.get(id(layer))
                    if table is None:
                        table = self._tables[id(layer)] = np.array(layer.length_table, np.int64)
                    hl = table[v]
                else:
                    for g in layer.length_sum:
                        v = v + _gather(u8, base + (off + g.offset), g)
                    hl = v * layer.length_unit + layer.length_add
                fine = (hl >= layer.length) & (cap >= off + hl)
                if not fine.all():  # malformed or cut short: the decoder says why
                    keep = np.flatnonzero(fine)
                    idx, off, trail = _subset(idx, off, trail, keep)
                    if idx is not None and len(idx) == 0:
                        continue
                    base, hl = base[keep], hl[keep]
            at = off + (hl + field.offset if field.offset < 0 else field.offset)
            value = _gather(u8, base + at, field)
            if not len(value):
                continue
            dispatch = layer.dispatch
            keys = self._keys.get(id(dispatch))
            if keys is None:
                keys = self._keys[id(dispatch)] = np.array(sorted(dispatch.layers), np.int64)
            alt = layer.next_alt
            if alt is not None:  # UDP: the source port when the destination port names none
                unnamed = ~np.isin(value, keys)
                if unnamed.any():
                    other = _gather(u8, base + (off + alt.offset), alt)
                    use = unnamed & np.isin(other, keys)
                    value = np.where(use, other, value)
            nxt = off + hl
            label = layer.label is not None
            v0 = int(value[0])
            if (value == v0).all():
                groups: list[tuple[int, np.ndarray | None]] = [(v0, None)]
            else:
                uniq, inv = np.unique(value, return_inverse=True)
                groups = [(int(u), np.flatnonzero(inv == j)) for j, u in enumerate(uniq)]
            for val, sel in groups:
                if sel is None:
                    g_idx, g_off, g_trail, g_nxt = idx, off, trail, nxt
                else:
                    g_idx, g_off, g_trail = _subset(idx, off, trail, sel)
                    g_nxt = nxt if isinstance(nxt, int) else nxt[sel]
                child = dispatch.layers.get(val)
                if child is not None:
                    if label:
                        g_trail = (*g_trail, (layer, g_off, val))
                    todo.append((child, g_idx, g_nxt, g_trail))
                    continue
                kind = dispatch.skip_kind(val)
                if kind is None:  # malformed: the decoder gives the reason
                    continue
                skipped[kind] += len(value) if sel is None else len(sel)
                cat[slice(None) if g_idx is None else g_idx] = _SKIP
        return found

    def _tunnel_step(
        self,
        u8: np.ndarray,
        starts: np.ndarray,
        caplen: np.ndarray,
        group: tuple[np.ndarray | None, int | np.ndarray, tuple],
        todo: list,
        final: list,
    ) -> None:
        """One group that reached an IPv4 header (``(idx, off, trail)``): the records
        whose header is an outer one to walk on (no options, not a fragment, a sane
        total length, a protocol that names a tunnel) to ``todo``, after the header
        (``(tunnel layer, idx, off + 20, trail + the IPv4 header)``), the others to
        ``final`` (decoded as TCP, skipped or decoded one by one by :meth:`_batch`)."""
        idx, off, trail = group
        cap = caplen if idx is None else caplen[idx]
        base = starts if idx is None else starts[idx]
        m = len(cap)
        ok = cap >= off + 20
        proto = np.zeros(m, np.int64)
        w = np.flatnonzero(ok)
        if len(w) == m:
            proto = u8[base + (off + 9)].astype(np.int64)
        elif len(w):
            at = base[w] + (off if isinstance(off, int) else off[w])
            proto[w] = u8[at + 9]
        tun = ok & np.isin(proto, self._tunnel_protos)
        if not tun.any():
            final.append(group)
            return
        w = np.flatnonzero(tun)
        at = base[w] + (off if isinstance(off, int) else off[w])
        plain, frag = _plain_ipv4(
            u8[at],
            u8[at + 2].astype(np.int64) << 8 | u8[at + 3],
            u8[at + 6].astype(np.int64) << 8 | u8[at + 7],
        )
        tun[w] = plain & ~frag
        rest = np.flatnonzero(~tun)
        if len(rest):
            final.append(_subset(idx, off, trail, rest))
        w = np.flatnonzero(tun)
        if not len(w):
            return
        if len(w) == m:
            t_idx, t_off, t_trail = idx, off, trail
            t_proto = proto
        else:
            t_idx, t_off, t_trail = _subset(idx, off, trail, w)
            t_proto = proto[w]
        p0 = int(t_proto[0])
        uniform = bool((t_proto == p0).all())
        for p in [p0] if uniform else np.unique(t_proto).tolist():
            if uniform:
                g_idx, g_off, g_trail = t_idx, t_off, t_trail
            else:
                g_idx, g_off, g_trail = _subset(t_idx, t_off, t_trail, np.flatnonzero(t_proto == p))
            todo.append((self._proto4[p], g_idx, g_off + 20, (*g_trail, (None, g_off, 4))))

    def _tunnel_step6(
        self,
        u8: np.ndarray,
        starts: np.ndarray,
        caplen: np.ndarray,
        group: tuple,
        todo: list,
    ) -> None:
        """One group that reached an IPv6 header (``(idx, off, trail)``): the records whose
        next header (no extension header before it) names a tunnel to ``todo``, after
        the header, as :meth:`_tunnel_step` does for IPv4; the others stay ``_SLOW``
        (IPv6 is decoded one by one)."""
        idx, off, trail = group
        cap = caplen if idx is None else caplen[idx]
        base = starts if idx is None else starts[idx]
        w = np.flatnonzero(cap >= off + 40)
        if not len(w):
            return
        at = base[w] + (off if isinstance(off, int) else off[w])
        nh = u8[at + 6].astype(np.int64)
        take = ((u8[at] >> 4) == 6) & np.isin(nh, self._tunnel_protos6)
        if not take.any():
            return
        w, nh = w[take], nh[take]
        for p in np.unique(nh).tolist():
            g_idx, g_off, g_trail = _subset(idx, off, trail, w[nh == p])
            todo.append((self._proto6[p], g_idx, g_off + 40, (*g_trail, (None, g_off, 6))))

    def _paths(
        self,
        u8: np.ndarray,
        base: np.ndarray,
        trail: tuple,
        pid: np.ndarray,
        idx: np.ndarray | None,
        paths: list,
        known: dict[tuple[str, ...], int],
    ) -> None:
        """The encapsulation paths of the records ``idx`` (None: all; ``base``: where
        each starts in ``u8``) that passed the labelled layers and outer IPv4 headers
        ``trail`` (:meth:`_walk_groups`): the entries :meth:`Decoder._path` makes
        (``"ipv4 192.0.2.1>192.0.2.2"``, ``"udp 4789"``, ``"vxlan 42"``, ..., then
        ``"ipv4"``), made once for each distinct combination of the fields they show
        (addresses, VNI, TEID...); each record's path index into ``pid``, new paths
        appended to ``paths`` (``known``: path -> index)."""
        columns = []
        for layer, o, v in trail:
            if layer is None and v == 6:  # each address as two 64-bit halves
                for at in (8, 16, 24, 32):
                    columns.append(_u64(u8, base + (o + at)))
            elif layer is None:
                columns.append(_gather(u8, base + (o + 12), _ADDR))
                columns.append(_gather(u8, base + (o + 16), _ADDR))
            elif not layer.label_value and layer.ident is not None:
                columns.append(_gather(u8, base + (o + layer.ident.offset), layer.ident))
        rows, inv = _distinct_rows(columns, len(base))
        addr = self._addr4
        ids = np.empty(len(rows), np.int32)
        for j, row in enumerate(rows):
            k = 0
            out = []
            for layer, _o, v in trail:
                entry: str | None
                if layer is None and v == 6:
                    a, b = (_addr6(row[k], row[k + 1]), _addr6(row[k + 2], row[k + 3]))
                    entry = ip_entry(6, a, b)
                    k += 4
                elif layer is None:
                    entry = ip_entry(v, addr[row[k]], addr[row[k + 1]])
                    k += 2
                elif layer.label_value:
                    entry = layer.entry(v)
                elif layer.ident is not None:
                    entry = layer.entry(int(row[k]))
                    k += 1
                else:
                    entry = layer.entry()
                assert entry is not None  # the trail holds labelled layers only
                out.append(entry)
            out.append(ip_entry(4))
            path = tuple(out)
            i = known.get(path)
            if i is None:
                i = known[path] = len(paths)
                paths.append(path)
            ids[j] = i
        pid[slice(None) if idx is None else idx] = ids[inv]

    def _segments(self, c: _Columns, tuples: bool) -> Iterator[Any]:
        """Build the Segments of the columns ``c`` (all of one batch), ``_STEP`` at a time
        (so that the Python objects of a step are still in the CPU caches when they are
        used); yield them, or ``(frame, ts, segment)`` when ``tuples``."""
        addr = self._addr4
        if len(addr) > _ADDR_CACHE_MAX:
            addr.clear()
        get = addr.__getitem__
        any_cut = bool(c.cut.any())
        parsed = iter(c.parsed)
        for a in range(0, len(c.frame), _STEP):
            b = a + _STEP
            ok = c.okind[a:b]
            if not ok.any():
                opts: Iterable[TcpOptions | None] = repeat(None)
            elif (ok == 1).all():
                opts = map(
                    TcpOptions,
                    repeat(None),
                    repeat(None),
                    repeat(False),
                    repeat(()),
                    c.tsv[a:b].data,  # type: ignore[index]  # okind 1: tsv, tse set
                    c.tse[a:b].data,  # type: ignore[index]
                    repeat(None),
                )
            else:
                tsv = repeat(None) if c.tsv is None else c.tsv[a:b].tolist()
                tse = repeat(None) if c.tse is None else c.tse[a:b].tolist()
                opts = [
                    None
                    if o == 0
                    else TcpOptions(None, None, False, (), v, e, None)
                    if o == 1
                    else next(parsed)
                    for o, v, e in zip(ok.tolist(), tsv, tse)
                ]
            cut = c.cut[a:b].tolist() if any_cut else None
            cks = repeat(None) if c.checksum_ok is None else c.checksum_ok[a:b]
            paths = c.paths
            encs: Iterable[tuple[str, ...] | None] = (
                repeat(None)
                if c.tunnel is None or paths is None
                else map(paths.__getitem__, c.tunnel[a:b].tolist())
            )
            fl = c.frame[a:b].tolist()
            tl = c.ts[a:b].tolist()
            # memoryviews of native arrays: their ints are made as the Segments take them
            segs = map(
                Segment,
                fl,
                tl,
                map(get, c.src[a:b].data),
                map(get, c.dst[a:b].data),
                c.sport[a:b].data,
                c.dport[a:b].data,
                c.seq[a:b].data,
                c.ack[a:b].data,
                c.flags[a:b].data,
                c.win[a:b].data,
                c.payload_len[a:b].data,
                opts,
                c.ip_id[a:b].data,
                repeat(4),
                cut or repeat(False),
                cks,
                encs,
            )
            if tuples:
                yield from zip(fl, tl, segs)
            else:
                yield from segs

    def _blocks(
        self,
        c: _Columns,
        mine: np.ndarray | None,
        cat: np.ndarray,
        frames: np.ndarray,
        ts: np.ndarray,
        special_item: Callable[[int], Any],
        label: np.ndarray | None = None,
        fast: dict[int, FastConn] | None = None,
    ) -> Iterator[Item]:
        """The items of a batch in block mode: each run of consecutive records that are
        Segments (the shard's or another's, rows of ``c``; ``mine`` marks the shard's,
        None: all) as one ``(frame, ts, SegmentBlock)`` (its first record's frame and
        timestamp), the other records one by one (``special_item(r)``: the item of
        record ``r``). ``label``, ``fast``: the lookahead's verdicts
        (:class:`pcapcheck.fast.lookahead.Plan`): the MIDDLE rows of fast connections are
        given as ticks, like another shard's segments, their START and END rows in the
        block's ``fast``."""
        if label is not None:
            middle = label == MIDDLE
            if middle.any():
                mine = ~middle if mine is None else mine & ~middle
            elif not fast:
                label = None
        plain = ((c.flags & 0x37) == 0x10) & (c.win != 0) & (c.okind != 2) & ~c.cut
        if c.checksum_ok is not None:  # a list of True, False, None
            plain &= np.fromiter((v is not False for v in c.checksum_ok), bool, len(c.checksum_ok))
        cks = None if c.checksum_ok is None else np.array(c.checksum_ok, dtype=object)
        parsed = dict(zip(np.flatnonzero(c.okind == 2).tolist(), c.parsed))
        special = np.flatnonzero(cat >= _SKIP).tolist()
        if not special:
            yield self._block(c, plain, cks, parsed, mine, 0, len(c.frame), label, fast)
            return
        row = prev = 0
        for r in [*special, len(cat)]:
            if r > prev:  # records prev .. r-1: rows row .. row+r-prev-1
                yield self._block(c, plain, cks, parsed, mine, row, row + r - prev, label, fast)
                row += r - prev
            if r == len(cat):
                break
            yield int(frames[r]), float(ts[r]), special_item(r)
            prev = r + 1

    def _block(
        self,
        c: _Columns,
        plain: np.ndarray,
        cks: np.ndarray | None,
        parsed: dict[int, TcpOptions],
        mine: np.ndarray | None,
        lo: int,
        hi: int,
        label: np.ndarray | None = None,
        fast: dict[int, FastConn] | None = None,
    ) -> Item:
        """The item of the :class:`SegmentBlock` of rows ``lo .. hi-1`` of ``c`` (``label``
        and ``fast``: see :meth:`_blocks`)."""
        if mine is None:
            sel: slice | np.ndarray = slice(lo, hi)
            other_frame: Any = []  # list, or numpy arrays (see below)
            other_ts: Any = []
            other_end = other_max = None
        else:
            m = mine[lo:hi]
            own = np.flatnonzero(m)
            oth = np.flatnonzero(~m)
            n_own = len(own)
            sel = own + lo
            # numpy arrays: the lane makes lists of the few runs it ticks through
            other_frame = c.frame[lo:hi][oth]
            other_ts = ots = c.ts[lo:hi][oth]
            end = np.empty(n_own + 1, np.int64)
            end[:n_own] = own - np.arange(n_own)  # others before each own row
            end[n_own] = len(oth)
            start = np.empty_like(end)
            start[0] = 0
            start[1:] = end[:-1]
            latest = np.full(n_own + 1, -np.inf)
            runs = end > start
            if runs.any():
                latest[runs] = np.maximum.reduceat(ots, start[runs])
            other_end, other_max = end.tolist(), latest.tolist()
        addr = self._addr4
        if len(addr) > _ADDR_CACHE_MAX:
            addr.clear()
        get = addr.__getitem__
        okind = c.okind[sel]
        n = len(okind)
        tsv = [None] * n if c.tsv is None else c.tsv[sel].tolist()
        if c.tsv is not None and (okind != 1).any():
            tsv = [v if o == 1 else None for v, o in zip(tsv, okind.tolist())]
        rows = range(lo, hi) if isinstance(sel, slice) else sel.tolist()
        block = SegmentBlock(
            frame=c.frame[sel].tolist(),
            ts=c.ts[sel].tolist(),
            src=list(map(get, c.src[sel].tolist())),
            dst=list(map(get, c.dst[sel].tolist())),
            sport=c.sport[sel].tolist(),
            dport=c.dport[sel].tolist(),
            seq=c.seq[sel].tolist(),
            ack=c.ack[sel].tolist(),
            flags=c.flags[sel].tolist(),
            window=c.win[sel].tolist(),
            payload_len=c.payload_len[sel].tolist(),
            ip_id=c.ip_id[sel].tolist(),
            truncated=c.cut[sel].tolist(),
            checksum_ok=[None] * n if cks is None else cks[sel].tolist(),
            ts_val=tsv,
            plain=plain[sel].tolist(),
            okind=okind.tolist(),
            ts_ecr=[None] * n if c.tse is None else c.tse[sel].tolist(),
            parsed={j: parsed[r] for j, r in enumerate(rows) if r in parsed} if parsed else {},
            other_frame=other_frame,
            other_ts=other_ts,
            other_end=other_end,
            other_max=other_max,
        )
        if c.tunnel is not None and c.paths is not None:
            tun = c.tunnel[sel]
            if tun.any():
                block.encapsulation = list(map(c.paths.__getitem__, tun.tolist()))
        if label is not None:
            at = [r for r in fast if lo <= r < hi] if fast else None
            if at and fast:
                marks: list = [None] * n
                rows_of = np.arange(lo, hi) if isinstance(sel, slice) else sel
                for r, j in zip(at, np.searchsorted(rows_of, at).tolist()):
                    marks[j] = (_MARKS[int(label[r])], fast[r])
                block.fast = marks
            block.fast_ticks = int(np.count_nonzero(label[lo:hi] == MIDDLE))
        return int(c.frame[lo]), float(c.ts[lo]), block  # its first record

    def _yield_mixed(
        self,
        cat: np.ndarray,
        frames: np.ndarray,
        ts: np.ndarray,
        record_at: Callable[[int], Record],
        segs: Iterator[Segment],
    ) -> Iterator[Item]:
        """The items of a batch whose records are of several categories (``cat``), the
        Segments of the ``_FAST`` records taken in order from ``segs``."""
        nxt = segs.__next__
        for i, c, frame, t in zip(range(len(cat)), cat.tolist(), frames.tolist(), ts.tolist()):
            if c == _FAST:
                yield frame, t, nxt()
            elif c == _SKIP:
                yield frame, t, None
            elif c == _SLOW:
                yield frame, t, self._decoded(record_at(i))
            else:  # _DROP
                yield frame, t, OTHER_SHARD


#: Tunnels inside tunnels walked in batches (deeper: decoded one by one).
_MAX_TUNNELS = 4
#: An IPv4 address (an outer header's source or destination, for the path's entry).
_ADDR = Field(0, 4)


def _plain_ipv4(
    vihl: np.ndarray, total: np.ndarray, frag: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(plain, fragment)``, bool arrays over IPv4 headers given by their first byte
    ``vihl``, total length ``total`` and flags-and-offset field ``frag`` (equal-length
    arrays): ``plain``, the headers the arrays decode, on which
    :meth:`Decoder.decode`'s IPv4 checks pass (no options, :data:`IPV4_NO_OPTIONS`; a
    valid total length for the 20-byte header, :func:`pcapcheck.capture.decoder.ipv4_length`:
    0, TSO's, or at least 20); ``fragment``, the
    fragments (:data:`IPV4_FRAGMENT_BITS`), which are skipped. What is not ``plain`` is
    decoded one by one, so its item (a DecodeError's reason) is the decoder's own.
    Used for the IPv4 header before TCP (:meth:`BatchSource._batch`) and for the outer
    one of a tunnel (:meth:`BatchSource._tunnel_step`)."""
    plain = (vihl == IPV4_NO_OPTIONS) & ipv4_length(total, 20, 0)[1]
    return plain, (frag & IPV4_FRAGMENT_BITS) != 0


def _subset(
    idx: np.ndarray | None, off: int | np.ndarray, trail: tuple, sel: np.ndarray
) -> tuple[np.ndarray, int | np.ndarray, tuple]:
    """The records ``sel`` (positions within the group) of a group of the walk
    (``idx``, ``off``, ``trail``: see :meth:`BatchSource._walk_groups`)."""
    return (
        sel if idx is None else idx[sel],
        off if isinstance(off, int) else off[sel],
        tuple((layer, o if isinstance(o, int) else o[sel], v) for layer, o, v in trail),
    )


def _u64(u8: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The big-endian 64-bit values at ``at`` in ``u8``, as int64 (their bits)."""
    return sliding_window_view(u8, 8)[at].view(">u8").reshape(len(at)).astype(np.int64)


def _addr6(hi: int, lo: int) -> str:
    """An IPv6 address's text from its two 64-bit halves (:func:`_u64`'s int64 bits)."""
    raw = (hi & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big") + (lo & 0xFFFFFFFFFFFFFFFF).to_bytes(
        8, "big"
    )
    return socket.inet_ntop(socket.AF_INET6, raw)


def _distinct_rows(columns: list[np.ndarray], m: int) -> tuple[list[list[int]], np.ndarray]:
    """The distinct rows of the int64 ``columns`` (each (m,)) as lists, and each record's
    index among them (intp (m,)): :func:`numpy.unique` by rows, a column at a time (a
    constant column, the common case, without sorting)."""
    code = np.zeros(m, np.intp)
    for col in columns:
        if (col == col[0]).all():
            continue
        inv = np.unique(col, return_inverse=True)[1].reshape(-1)
        code = np.unique(code * m + inv, return_inverse=True)[1].reshape(-1)
    count = int(code.max()) + 1 if m else 0
    first = np.zeros(count, np.intp)  # a record of each distinct row
    first[code] = np.arange(m)
    if not columns:
        return [[] for _ in range(count)], code
    return np.stack([col[first] for col in columns], axis=1).tolist(), code


def _gather(u8: np.ndarray, at: np.ndarray, field: Field) -> np.ndarray:
    """The value of ``field`` (:class:`pcapcheck.capture.layers.Field`) of m headers, as
    int64 (m,): :meth:`Field.read` for all of them at once. ``at``: int64 (m,) where the
    field's bytes start in ``u8`` (header start + ``field.offset``; all captured)."""
    size = field.size
    if size == 1:
        v = u8[at].astype(np.int64)
    elif field.order == "big":  # byte by byte: faster than a window's gather
        v = u8[at].astype(np.int64)
        for i in range(1, size):
            v <<= 8
            v |= u8[at + i]
    else:
        raw = sliding_window_view(u8, size)[at]
        big = raw.view(f">u{size}").reshape(len(at)).astype(np.int64)
        if field.order == "big":
            v = big
        else:
            v = raw.view(f"<u{size}").reshape(len(at)).astype(np.int64)
            if field.order == "either":
                v = np.where(v > 0xFFFF, big, v)
    if field.shift:
        v >>= field.shift
    if field.mask is not None:
        v &= field.mask
    return v


def _pcapng_times(
    high: np.ndarray,
    low: np.ndarray,
    ifid: np.ndarray,
    interfaces: Sequence[tuple[int, int, int, int]],
) -> np.ndarray:
    """Timestamps (float64 seconds) of pcapng packet blocks, exactly as the reader
    computes them: ``((high << 32 | low) + offset) / ticks`` of each block's interface
    (``interfaces[ifid]`` is ``(linktype, ticks, offset, limit)``), in numpy when every
    value is exact in float64, else with Python's correctly rounded int division."""
    ticks = [i[1] for i in interfaces]
    offsets = [i[2] for i in interfaces]
    if (
        int(high.max()) < 1 << 20
        and max(ticks) < 1 << 53
        and max(abs(o) for o in offsets) < 1 << 52
    ):
        value = (high.astype(np.int64) << 32) + low
        value += np.array(offsets, np.int64)[ifid]
        return value / np.array(ticks, np.int64)[ifid]
    return np.array(
        [
            ((h << 32 | lo) + offsets[i]) / ticks[i]
            for h, lo, i in zip(high.tolist(), low.tolist(), ifid.tolist())
        ],
        dtype=np.float64,
    )


#: Records read one by one (pcapng blocks other than enhanced packet blocks) held
#: together in one :class:`Batch` at most (blocks mode).
_HELD_MAX = 4096


def _records_batch(records: list[Record]) -> Batch:
    """The :class:`Batch` of records read one by one (all ``_SLOW``)."""
    n = len(records)
    return Batch(
        None,
        np.full(n, _SLOW, np.int8),
        np.fromiter((r.frame for r in records), np.int64, n),
        np.fromiter((r.ts for r in records), np.float64, n),
        dict(enumerate(records)),
    )


def _slow_records(cat: np.ndarray, record_at: Callable[[int], Record]) -> dict[int, Record]:
    """The :class:`model.Record` of each record of a batch to decode one by one (``cat``
    ``_SLOW``), by its index in the batch (copied: the batch's buffer is reused)."""
    return {r: record_at(r) for r in np.flatnonzero(cat == _SLOW).tolist()}


@dataclass(slots=True)
class Batch:
    """One batch of records decoded for every shard (blocks mode), picklable: what
    :meth:`BatchSource.batches` yields and :mod:`pcapcheck.run.feed` sends to the shards.
    ``cols``: the TCP segments decoded in columns (``_Columns``, None when there is
    none); ``cat``: int8 (n,) each record's category (``_FAST`` a row of ``cols``,
    ``_SKIP`` not TCP, ``_SLOW`` decoded one by one); ``frames``: int64 (n,) frame
    numbers (1-based); ``ts``: float64 (n,) seconds; ``slow``: the :class:`model.Record`
    of each ``_SLOW`` record, by its index in the batch."""

    cols: _Columns | None
    cat: np.ndarray
    frames: np.ndarray
    ts: np.ndarray
    slow: dict[int, Record]

    def __reduce__(self) -> tuple:
        # Pickled for the wire: the frame numbers (consecutive in a batch) as the first
        # one, the rows' frames and times as their records' indices, payload lengths as
        # int32: about 52 bytes a record instead of 76. Unpickled, the same arrays.
        frames, c = self.frames, self.cols
        n = len(frames)
        first = int(frames[0]) if n else 0
        if n and int(frames[-1]) - first != n - 1:  # not consecutive: as they are
            return (Batch, (c, self.cat, frames, self.ts, self.slow))
        if c is None:
            return (_unpickle_batch, (None, self.cat, first, self.ts, self.slow))
        rows = (c.frame - first).astype(np.int32)
        rest = tuple(getattr(c, f) for f in _WIRE_FIELDS)
        return (
            _unpickle_batch,
            ((rows, c.payload_len.astype(np.int32), rest), self.cat, first, self.ts, self.slow),
        )


def _unpickle_batch(
    cols: tuple | None, cat: np.ndarray, first: int, ts: np.ndarray, slow: dict[int, Record]
) -> Batch:
    frames = np.arange(first, first + len(cat), dtype=np.int64)
    if cols is None:
        return Batch(None, cat, frames, ts, slow)
    rows, payload_len, rest = cols
    c = _Columns(
        frame=frames[rows],
        ts=ts[rows],
        payload_len=payload_len.astype(np.int64),
        **dict(zip(_WIRE_FIELDS, rest)),
    )
    return Batch(c, cat, frames, ts, slow)


@dataclass(slots=True)
class _Columns:
    """The fields of the Segments of one batch, numpy arrays (m,) in record order:
    ``okind`` is 0 (no options), 1 (NOP NOP timestamps: ``tsv``, ``tse``) or 2 (the
    next of ``parsed``); ``cut`` is true where the snaplen cut the payload;
    ``checksum_ok`` the Segments' (a list), None when checksums are not verified."""

    frame: np.ndarray
    ts: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    seq: np.ndarray
    ack: np.ndarray
    flags: np.ndarray
    win: np.ndarray
    payload_len: np.ndarray
    ip_id: np.ndarray
    okind: np.ndarray
    tsv: np.ndarray | None
    tse: np.ndarray | None
    parsed: list[TcpOptions]
    cut: np.ndarray
    checksum_ok: list[bool | None] | None
    #: None: no row came through a tunnel; else int32 (m,) each row's index in ``paths``,
    #: the batch's encapsulation paths (``paths[0]`` None: no tunnel)
    tunnel: np.ndarray | None = None
    paths: list[tuple[str, ...] | None] | None = None


#: The fields of ``_Columns`` pickled as they are (:meth:`Batch.__reduce__`).
_WIRE_FIELDS = tuple(
    f for f in _Columns.__dataclass_fields__ if f not in ("frame", "ts", "payload_len")
)

#: checksum_ok by code: 0 wrong, 1 right, 2 not verified (payload cut by the snaplen)
_CHECKSUM_OK = np.array([False, True, None], dtype=object)


def _checksums(
    u8: np.ndarray, start: np.ndarray, length: np.ndarray, pseudo: np.ndarray, cut: np.ndarray
) -> list[bool | None]:
    """``checksum_ok`` of m TCP segments: None where ``cut`` (payload not wholly
    captured), else whether the TCP checksum holds (RFC 9293 §3.1, RFC 1071), the same
    test as the decoder's: the ones' complement sum of the 16-bit words of the segment
    (an odd last byte padded with a zero byte) and of the pseudo-header is -0, i.e. the
    sum is 0 modulo 0xFFFF.

    ``u8``: the bytes (uint8 array); ``start``, ``length``: int64 (m,) offset of each
    TCP header in ``u8`` and TCP length (header + payload) in bytes, in increasing
    offset order, not overlapping; ``pseudo``: int64 (m,) the pseudo-header's sum
    (source + destination address + 6 + TCP length). The words of all segments are
    summed in two :func:`numpy.add.reduceat` passes over the buffer (segments at even
    and at odd offsets).
    """
    code = np.full(len(start), 2, np.int8)
    todo = np.flatnonzero(~cut)
    if len(todo):
        s, n = start[todo], length[todo]
        total = np.zeros(len(todo), np.int64)
        for parity in (0, 1):
            g = np.flatnonzero((s & 1) == parity)
            if len(g) == 0:
                continue
            # little-endian words: each is its big-endian value byte-swapped, i.e.
            # times 256 modulo 0xFFFF (2**16 = 1 mod 0xFFFF); corrected below
            words = u8[parity : parity + (len(u8) - parity) // 2 * 2].view("<u2")
            bounds = np.empty(2 * len(g), np.int64)
            bounds[0::2] = (s[g] - parity) >> 1
            bounds[1::2] = bounds[0::2] + (n[g] >> 1)
            if bounds[-1] >= len(words):  # the last segment ends the buffer: reduceat
                bounds = bounds[:-1]  # sums the last index to the end by itself
            total[g] = np.add.reduceat(words, bounds, dtype=np.uint64)[0::2] % 0xFFFF
        total *= 256  # back to big-endian words (256 * 256 = 1)
        odd = np.flatnonzero(n & 1)
        total[odd] += u8[s[odd] + n[odd] - 1].astype(np.int64) << 8
        code[todo] = (total + pseudo[todo]) % 0xFFFF == 0
    return _CHECKSUM_OK[code].tolist()
