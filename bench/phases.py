"""Where one shard's time goes (issue #4): run the analysis of one shard of a capture,
as ``pcapcheck analyze`` runs it, with a wall-clock timer around each stage.

    python bench/phases.py CAPTURE [--shard K/N]

Stages (seconds, summed over calls; they nest in the order given only where noted):

- ``walk``: ``CaptureReader._pcap_batches``, the reader's walk over the record headers
  (a Python loop) and the reading of the file into its buffers;
- ``decode``: ``BatchSource._batch``, the numpy decoding of each chunk of records;
- ``lookahead``: ``Lookahead._push_cols`` and ``Lookahead._round``, the clean
  connections found ahead of the tracker;
- ``blocks``: ``BatchSource._blocks``, the SegmentBlocks built from the decided chunks;
- ``feed``: ``lane.feed_block``, the tracker's work on the blocks (the replay of the
  connections that are not clean, the release of all of them);
- ``summaries``: ``analyze.connection_summary`` (inside ``feed``'s releases and the end).

The rest of ``total`` is the loop of ``analyze._run``, writing the JSON lines and
spooling. ``--shard 999/1000`` (a shard owning almost nothing) shows what every shard
pays whatever it owns. ``--fed``: the shard as ``analyze`` runs it now, fed the batches
by another process (forked here) that reads the file (:mod:`pcapcheck.run.feed`): ``walk``
and ``decode`` then happen there and are not shown, and ``receive`` (``Feed.__iter__``:
waiting for the batches, receiving and unpickling them) is the shard's; ``cpu`` is the
shard's own CPU time. Figures in bench/README.md ("The lookahead", "One reading for the shards").
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from pcapcheck import pipeline as analyze
from pcapcheck.capture import reader
from pcapcheck.catalog.config import resolve_config, resolve_selection
from pcapcheck.catalog.rules import load_catalog
from pcapcheck.fast import batch_decoder as batch
from pcapcheck.fast import lookahead
from pcapcheck.run import feed
from pcapcheck.run.shards import analyze_shard

spent: dict[str, float] = {}


def _timed(owner: Any, name: str, label: str, generator: bool = False) -> None:
    """Replace ``owner.name`` by a version that adds its wall time to ``spent[label]``
    (for a generator function, the time of each step)."""
    original: Callable = getattr(owner, name)
    clock = time.perf_counter

    if generator:

        def timed(*args, **kw):
            steps = original(*args, **kw)
            while True:
                t = clock()
                try:
                    item = next(steps)
                except StopIteration:
                    spent[label] = spent.get(label, 0.0) + clock() - t
                    return
                spent[label] = spent.get(label, 0.0) + clock() - t
                yield item
    else:

        def timed(*args, **kw):
            t = clock()
            try:
                return original(*args, **kw)
            finally:
                spent[label] = spent.get(label, 0.0) + clock() - t

    setattr(owner, name, timed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture")
    ap.add_argument(
        "--shard",
        default="0/2",
        metavar="K/N",
        help="the shard to analyse (default 0/2, as --jobs 2 runs it)",
    )
    ap.add_argument(
        "--fed",
        action="store_true",
        help="fed by another process that reads the file, as analyze runs it",
    )
    args = ap.parse_args(argv)
    k, n = (int(v) for v in args.shard.split("/"))
    _timed(feed.Feed, "__iter__", "receive", generator=True)
    _timed(reader.CaptureReader, "_pcap_batches", "walk", generator=True)
    _timed(batch.BatchSource, "_batch", "decode")
    _timed(lookahead.Lookahead, "_push_cols", "lookahead")
    _timed(lookahead.Lookahead, "_round", "lookahead")
    _timed(batch.BatchSource, "_blocks", "blocks", generator=True)
    _timed(analyze, "feed_block", "feed")
    _timed(analyze, "connection_summary", "summaries")
    config = resolve_config(None, True)
    catalog = load_catalog(config.rules_dirs)
    active = resolve_selection(catalog, config, None, None, None)
    gc.freeze()  # as the CLI does before analysing
    gc.set_threshold(50_000, 20, 20)
    ticket = None
    if args.fed:
        feeder = feed.Feeder(1)
        ticket = feeder.ticket()
        child = os.fork()
        if child == 0:  # the reading, as the analyze command does it
            feeder.serve(args.capture, analyze.verifies_checksums(active))
            os._exit(0)
    t, cpu = time.perf_counter(), time.process_time()
    analyze_shard(args.capture, catalog, active, shard=(k, n), encode=True, feed=ticket)
    total, cpu = time.perf_counter() - t, time.process_time() - cpu
    if args.fed:
        os.waitpid(child, 0)
    print(
        f"{args.capture} shard {k}/{n}{' fed' if args.fed else ''}: total {total:.2f} s, "
        f"cpu {cpu:.2f} s"
    )
    for label, value in spent.items():
        print(f"  {label:10s} {value:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
