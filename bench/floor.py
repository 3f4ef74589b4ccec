"""The floor of a vectorised clean path (issue #4): how fast could pcapcheck find the
clean connections of a capture if that work were done by numpy over whole arrays
instead of a Python loop per segment?

This is an experiment, not part of the analysis. It measures, on one process:

1. **read**: the record headers walked by the reader
   (:meth:`pcapcheck.capture.reader.CaptureReader.pcap_batches`, the analysis' own loop) and the
   Ethernet/IPv4/TCP fields of every record gathered with numpy (plain Ethernet + IPv4
   without options + TCP only: what ``bench/generate.py`` writes; other records are
   counted and left out);
2. **group**: the records sorted into connections (the unordered 4-tuple; a new
   connection at each pure SYN), with numpy;
3. **classify**: :func:`pcapcheck.fast.lookahead.classify`, the conditions of :func:`pcapcheck.fast.clean_connections.check`
   (the module docstring of :mod:`pcapcheck.fast.clean_connections` lists them) written as array
   operations over all connections at once (segmented sums, the previous segment of
   the same direction by index);
4. **summarise**: the JSON line of each clean connection, as a shard writes it
   (:func:`pcapcheck.pipeline.clean_summary`, :func:`pcapcheck.report.json_report.dumps`).

With ``--verify`` it also runs :func:`pcapcheck.fast.clean_connections.check` on every connection's
rows and asserts the same verdict and the same summary fields (frames, history,
packets, bytes, ISNs, closer, duration) for each: the floor is that of the same work.

The connections it does not classify as clean (refused, reset, retransmitted, lost a
segment, a 4-tuple used twice, a pause past the close delay) would still go through
the full replay; their count is printed, to be priced at the replay's cost per
connection (bench/README.md).

    python bench/floor.py CAPTURE [--verify]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pcapcheck.capture.reader import open_capture
from pcapcheck.fast.clean_connections import Pending, check
from pcapcheck.fast.lookahead import classify, clean_connections
from pcapcheck.model import ACK, FIN, RST, SYN
from pcapcheck.tcp.tracker import CLOSE_DELAY

_ETH_IP4_TCP = np.dtype(
    {
        "names": [
            "et",
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
            ">u2",
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
        "offsets": [12, 14, 16, 18, 20, 23, 26, 30, 34, 36, 38, 42, 46, 47, 48],
        "itemsize": 54,
    }
)


def read(path: str | Path) -> dict[str, np.ndarray]:
    """The plain Ethernet/IPv4/TCP records of a pcap file as numpy columns (record
    order): ``frame`` (1-based), ``ts`` (seconds since the epoch), ``src``, ``dst``
    (int addresses), ``sport``, ``dport``, ``seq``, ``ack``, ``flags``, ``win``,
    ``ln`` (payload bytes), ``ip_id``, ``cut`` (the snaplen cut the payload); ``other``: how many
    records were left out (array of one int)."""
    reader = open_capture(path)
    endian, ticks, lt = reader.pcap_layout()
    if lt != 1:
        raise SystemExit(f"{path}: link type {lt}, this experiment reads Ethernet (1) only")
    hdr_dtype = np.dtype(
        [
            ("sec", endian + "u4"),
            ("frac", endian + "u4"),
            ("caplen", endian + "u4"),
            ("wire", endian + "u4"),
        ]
    )
    parts: list[dict[str, np.ndarray]] = []
    frame0, other = 1, 0
    for buf, _base, positions in reader.pcap_batches(1 << 20):
        pos = np.array(positions, dtype=np.int64)
        n = len(pos)
        u8 = np.frombuffer(buf, np.uint8)
        hdr = sliding_window_view(u8, 16)[pos].view(hdr_dtype).reshape(n)
        caplen = hdr["caplen"].astype(np.int64)
        ts = (hdr["sec"].astype(np.int64) * ticks + hdr["frac"]) / ticks
        frames = np.arange(frame0, frame0 + n, dtype=np.int64)
        frame0 += n
        whole = caplen >= 54
        idx = np.flatnonzero(whole)
        h = sliding_window_view(u8, 54)[pos[idx] + 16].view(_ETH_IP4_TCP).reshape(len(idx))
        total = h["total"].astype(np.int64)
        doff = (h["doff"] >> 4).astype(np.int64) * 4
        keep = (
            (h["et"] == 0x0800)
            & (h["vihl"] == 0x45)
            & (h["proto"] == 6)
            & ((h["frag"] & 0x3FFF) == 0)
            & (doff >= 20)
            & (total >= 20 + doff)
        )
        other += n - int(np.count_nonzero(keep))
        k = idx[keep]
        h = h[keep]
        ln = total[keep] - 20 - doff[keep]
        parts.append(
            {
                "frame": frames[k],
                "ts": ts[k],
                "src": h["src"].astype(np.int64),
                "dst": h["dst"].astype(np.int64),
                "sport": h["sport"].astype(np.int64),
                "dport": h["dport"].astype(np.int64),
                "seq": h["seq"].astype(np.int64),
                "ack": h["ack"].astype(np.int64),
                "flags": h["flags"].astype(np.int64),
                "win": h["win"].astype(np.int64),
                "ln": ln,
                "ip_id": h["ip_id"].astype(np.int64),
                "cut": caplen[k] < 14 + total[keep],
            }
        )
    names = (
        "frame",
        "ts",
        "src",
        "dst",
        "sport",
        "dport",
        "seq",
        "ack",
        "flags",
        "win",
        "ln",
        "ip_id",
        "cut",
    )
    cols = {
        key: np.concatenate([p[key] for p in parts]) if parts else np.zeros(0, np.int64)
        for key in names
    }
    cols["other"] = np.array([other])
    return cols


def group(
    cols: dict[str, np.ndarray], close_delay: float = CLOSE_DELAY, shard: tuple[int, int] = (0, 1)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The candidate connections: ``(order, starts, sizes, from_client)``. ``order``
    lists the rows of the candidates, each connection's rows together and in record
    order; ``starts``/``sizes`` index ``order`` per connection; ``from_client`` (per
    entry of ``order``) is True for the SYN's direction. A candidate is the only
    connection of its 4-tuple in the capture, begins with a pure SYN, and never pauses
    longer than ``close_delay`` seconds between two of its segments (the tracker
    replays the others in any case). ``shard=(k, n)``: the connections of shard k only
    (:mod:`pcapcheck.run.shards`'s rule, ``(sport + dport) % n == k``)."""
    if shard[1] > 1:
        mine = np.flatnonzero((cols["sport"] + cols["dport"]) % shard[1] == shard[0])
        cols = {key: value[mine] for key, value in cols.items() if key != "other"}
        rows, starts, sizes, fc = group(cols, close_delay)
        return mine[rows], starts, sizes, fc
    if not len(cols["frame"]):
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0, bool)
    ap_src = (cols["src"] << 16) | cols["sport"]
    ap_dst = (cols["dst"] << 16) | cols["dport"]
    lo, hi = np.minimum(ap_src, ap_dst), np.maximum(ap_src, ap_dst)
    with np.errstate(over="ignore"):
        h = lo.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + hi.astype(np.uint64)
    order = np.argsort(h, kind="stable")
    hs, los, his = h[order], lo[order], hi[order]
    new_key = np.empty(len(order), bool)
    new_key[0] = True
    new_key[1:] = hs[1:] != hs[:-1]
    same_hash = ~new_key[1:]
    if ((los[1:] != los[:-1]) | (his[1:] != his[:-1]))[same_hash].any():
        raise SystemExit("hash collision between two 4-tuples: not handled here")
    key_start = np.flatnonzero(new_key)
    key_size = np.diff(np.append(key_start, len(order)))
    fl = cols["flags"][order]
    pure_syn = (fl & (SYN | ACK | FIN | RST)) == SYN
    syns = np.add.reduceat(pure_syn.astype(np.int64), key_start)
    first_syn = pure_syn[key_start]
    ts = cols["ts"][order]
    gap = np.zeros(len(order), bool)
    gap[1:] = (ts[1:] - ts[:-1] > close_delay) & ~new_key[1:]
    gaps = np.add.reduceat(gap.astype(np.int64), key_start)
    good = (syns == 1) & first_syn & (gaps == 0) & (lo[order][key_start] != hi[order][key_start])
    starts_all = key_start[good]
    sizes = key_size[good]
    keep = np.repeat(good, key_size)
    rows = order[keep]
    starts = np.zeros(len(sizes), np.int64)
    starts[1:] = np.cumsum(sizes)[:-1]
    syn_src = np.repeat(ap_src[order][starts_all], sizes)
    return rows, starts, sizes, ap_src[rows] == syn_src


#: The fields of a CleanConnection that :func:`verify` compares (all but the id and the
#: endpoints, which :func:`~pcapcheck.fast.lookahead.clean_connections` leaves to its caller).
_COMPARED = (
    "first_frame",
    "last_frame",
    "first_ts",
    "close_ts",
    "duration",
    "packets",
    "bytes",
    "client_isn",
    "server_isn",
    "closer",
    "syn",
    "synack",
    "ack",
    "f1",
    "a1",
    "f2",
    "last",
    "history",
    "retx",
)


def verify(
    cols: dict[str, np.ndarray],
    rows: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    fc: np.ndarray,
    out: dict[str, np.ndarray],
) -> int:
    """Run :func:`pcapcheck.fast.clean_connections.check` on every candidate's rows; raise
    AssertionError at the first connection whose verdict, or whose
    :class:`~pcapcheck.fast.clean_connections.CleanConnection` fields (:data:`_COMPARED`), differ from
    :func:`classify`'s (through :func:`clean_connections`). Returns the number of
    connections compared."""
    lists = {
        key: cols[key][rows].tolist()
        for key in ("frame", "ts", "seq", "ack", "flags", "win", "ln", "ip_id", "cut")
    }
    fcl = fc.tolist()
    mine = iter(clean_connections(cols, rows, starts, sizes, out))
    for i, (s, n) in enumerate(zip(starts.tolist(), sizes.tolist())):
        p = Pending(i + 1, ("c", 1), ("s", 2))
        p.rows = [
            (
                lists["frame"][r],
                lists["ts"][r],
                fcl[r],
                lists["seq"][r],
                lists["ack"][r],
                lists["flags"][r],
                lists["win"][r],
                lists["ln"][r],
                lists["ip_id"][r],
                None,
                None,
            )
            for r in range(s, s + n)
        ]
        p.dirty = any(lists["cut"][s : s + n])
        c = check(p)
        clean = bool(out["clean"][i])
        assert (c is not None) == clean, (i, lists["frame"][s], c is not None, clean)
        if c is None:
            continue
        got = next(mine)
        for name in _COMPARED:
            assert getattr(got, name) == getattr(c, name), (
                i,
                name,
                getattr(got, name),
                getattr(c, name),
            )
    return len(starts)


def write_rest(path: str | Path, out: str | Path, clean_frames: np.ndarray) -> int:
    """Write to ``out`` (pcap, microseconds) every record of ``path`` whose frame is not
    in ``clean_frames``: what the full replay would still have to analyse. Returns the
    number of records written."""
    import struct

    drop = set(clean_frames.tolist())
    reader = open_capture(path)
    _endian, _ticks, lt = reader.pcap_layout()
    n = 0
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, lt))
        for rec in reader:
            if rec.frame in drop:
                continue
            sec = int(rec.ts)
            usec = round((rec.ts - sec) * 1e6)
            if usec == 1_000_000:
                sec, usec = sec + 1, 0
            f.write(struct.pack("<IIII", sec, usec, len(rec.data), rec.wire_len))
            f.write(rec.data)
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture")
    ap.add_argument(
        "--verify",
        action="store_true",
        help="also compare every verdict with pcapcheck.fast.clean_connections.check",
    )
    ap.add_argument(
        "--shard",
        default="0/1",
        metavar="K/N",
        help="classify the connections of shard K of N only (default 0/1)",
    )
    ap.add_argument(
        "--rest", metavar="OUT", help="write the records of the connections not found clean to OUT"
    )
    args = ap.parse_args(argv)
    shard = tuple(int(v) for v in args.shard.split("/"))
    from pcapcheck.pipeline import clean_summary
    from pcapcheck.report.json_report import dumps

    t0 = time.perf_counter()
    cols = read(args.capture)
    t1 = time.perf_counter()
    rows, starts, sizes, fc = group(cols, shard=shard)
    t2 = time.perf_counter()
    out = classify(cols, rows, starts, sizes, fc)
    t3 = time.perf_counter()
    clean = clean_connections(cols, rows, starts, sizes, out)
    for i, c in enumerate(clean, 1):
        c.id, c.client, c.server = i, ("10.0.0.1", 1), ("10.0.0.2", 80)
        dumps(clean_summary(c))
    t4 = time.perf_counter()
    n_tcp = len(cols["frame"])
    print(
        f"{args.capture}: {n_tcp} TCP records ({int(cols['other'][0])} others left out), "
        f"{len(starts)} candidate connections, {len(clean)} clean"
    )
    for name, dt in (
        ("read", t1 - t0),
        ("group", t2 - t1),
        ("classify", t3 - t2),
        ("summarise", t4 - t3),
        ("total", t4 - t0),
    ):
        print(f"  {name:10s} {dt:6.2f} s")
    if args.rest:
        kept = np.repeat(out["clean"], sizes) if len(starts) else np.zeros(0, bool)
        n = write_rest(args.capture, args.rest, cols["frame"][rows[kept]])
        print(f"  {n} records of the other connections written to {args.rest}")
    if args.verify:
        t = time.perf_counter()
        n = verify(cols, rows, starts, sizes, fc, out)
        print(
            f"  verified against pcapcheck.fast.clean_connections.check: {n} connections, same verdicts "
            f"and fields ({time.perf_counter() - t:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
