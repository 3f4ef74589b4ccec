"""One reading of a capture for its shards (pcapcheck.run.feed): a shard fed the batches read
by another process gives exactly the result of its own reading, on every sample capture
(pcap, pcapng, gzip, cut short, checksums verified) and on generated ones; the fed shard
really does not read the file; a feed lost at any point (refused, cut mid-way, never
served, a worker going away, a file that is not a capture) gives the shard's own reading
instead, never a hang; and ``analyze --jobs 2`` serves the feed and writes the serial
report."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import socket
import sys
import threading
import time

import numpy as np
import pytest
from conftest import ROOT, SAMPLES, same_report
from typer.testing import CliRunner

from pcapcheck.capture.reader import CaptureError, CaptureReader
from pcapcheck.cli import app
from pcapcheck.fast.batch_decoder import Batch, BatchSource
from pcapcheck.pipeline import analyze_file, analyze_part, verifies_checksums
from pcapcheck.run import feed as feed_module
from pcapcheck.run.feed import End, Feed, Feeder, FeedLost
from pcapcheck.run.shards import analyze_shard, analyze_sharded, merge_shards

sys.path.insert(0, str(ROOT / "bench"))
from generate import generate
from test_shard import scenario

CAPTURES = sorted(
    p for p in SAMPLES.rglob("*") if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".gz"))
)
IDS = [str(p.relative_to(SAMPLES)) for p in CAPTURES]


class Served:
    """``Feeder(n).serve(path, ...)`` in a thread; ``.ok`` its return value once joined."""

    def __init__(self, path, n=1, verify=False, **kwargs):
        self.feeder = Feeder(n)
        self.ticket = self.feeder.ticket()
        self.ok = None
        self.thread = threading.Thread(
            target=lambda: setattr(self, "ok", self.feeder.serve(path, verify, **kwargs))
        )
        self.thread.start()

    def join(self):
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        return self.ok


#: set while a fed shard runs in the test's thread (see ``no_reading_here``)
FED = threading.Event()


@pytest.fixture
def no_reading_here(monkeypatch):
    """While a fed shard runs (:data:`FED`), the file's records may be read by other
    threads only (the feeder's): the fed shard reading them in the test's thread fails
    the test."""
    main = threading.current_thread()
    for name in ("pcap_batches", "pcapng_batches"):
        original = getattr(CaptureReader, name)

        def guarded(self, *args, _original=original, **kwargs):
            assert not (FED.is_set() and threading.current_thread() is main), (
                "the fed shard read the file"
            )
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(CaptureReader, name, guarded)


def shard_part(path, catalog, active, shard, feed, **kwargs):
    """``(result, facts)`` of ``shard`` as the execution layer makes them
    (:func:`pcapcheck.run.shards.analyze_shard`): fed by the Feed of the ticket ``feed``,
    read here when the feed is lost."""
    part = analyze_shard(path, catalog, active, shard=shard, feed=feed, **kwargs)
    return part.result, part.facts


def fed_part(path, catalog, active, shard, **kwargs):
    """The analysis of ``shard`` fed by a Feeder in a thread; ``(result, facts, ok)``."""
    served = Served(path, verify=verifies_checksums(active))
    FED.set()
    try:
        result, facts = shard_part(path, catalog, active, shard, served.ticket, **kwargs)
    finally:
        FED.clear()
    return result, facts, served.join()


def same_part(a, b) -> None:
    (ra, fa), (rb, fb) = a, b
    same_report(ra, rb)
    assert list(ra.findings) == list(rb.findings)
    assert (ra.packets, ra.tcp_packets, ra.malformed, ra.truncated, ra.format) == (
        rb.packets,
        rb.tcp_packets,
        rb.malformed,
        rb.truncated,
        rb.format,
    )
    assert ra.skipped == rb.skipped
    assert fa == fb


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_a_fed_shard_equals_its_own_reading(catalog, path, no_reading_here):
    active = catalog.select(["ALL"], None)
    for shard in ((0, 2), (1, 2)):
        try:
            own = analyze_part(path, catalog, active, shard=shard)
        except CaptureError as exc:
            with pytest.raises(CaptureError) as fed_error:
                fed_part(path, catalog, active, shard)
            assert str(fed_error.value) == str(exc)
            return
        result, facts, ok = fed_part(path, catalog, active, shard)
        assert ok is True
        same_part((result, facts), own)


def test_generated_captures_fed(tmp_path, catalog, no_reading_here):
    """Cut short (the End carries ``truncated``), tiny timers, checksums verified and
    not, the lookahead on and off, encoded summaries."""
    from pcapcheck.fast import lookahead

    path = tmp_path / "s.pcap"
    scenario(path, 2, cut=True)
    gen = tmp_path / "gen.pcap"
    generate(
        argparse.Namespace(
            out=str(gen),
            connections=300,
            concurrency=16,
            exchanges=3,
            refused=0.05,
            retrans=0.05,
            resets=0.05,
            loss=0.01,
            seed=5,
        )
    )
    cases = [
        (path, ["ALL"], {}),
        (path, None, {"idle_timeout": 1, "close_delay": 0.5}),
        (gen, None, {}),
        (gen, ["ALL"], {"idle_timeout": 0.5, "close_delay": 0.0}),
    ]
    for capture, select, timers in cases:
        active = catalog.select(select, None)
        for ahead in (True, False):
            lookahead.ENABLED = ahead
            try:
                for shard in ((0, 2), (1, 3)):
                    own = analyze_part(capture, catalog, active, shard=shard, encode=True, **timers)
                    result, facts, ok = fed_part(
                        capture, catalog, active, shard, encode=True, **timers
                    )
                    assert ok is True
                    same_part((result, facts), own)
            finally:
                lookahead.ENABLED = True
        if capture == path:
            assert own[0].truncated


def same_batch(a: Batch, b: Batch) -> None:
    """Field by field, arrays by value and dtype."""

    def same(x, y):
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype
            assert np.array_equal(x, y)
        else:
            assert x == y

    for name in ("cat", "frames", "ts", "slow"):
        same(getattr(a, name), getattr(b, name))
    assert (a.cols is None) == (b.cols is None)
    if a.cols is not None:
        for name in a.cols.__dataclass_fields__:
            x, y = getattr(a.cols, name), getattr(b.cols, name)
            assert (x is None) == (y is None), name
            if x is not None:
                same(x, y)


def test_batches_survive_the_wire_whole():
    """Every field of a batch arrives: the columns (arrays and the parsed options), the
    records decoded one by one, and the end's ``truncated`` and ``skipped``."""
    seen = {"slow": 0, "parsed": 0, "skipped": 0, "truncated": 0}
    for name in (
        "encap/with_non_tcp.pcap",
        "encap/vlan.pcap",
        "crafted/cp006_capture-truncated.pcap",
        "encap/multi_if.pcapng.gz",
        "artefacts/artefact_dup_ipv6.pcap",  # records the batches decode one by one
    ):
        path = SAMPLES / name
        source = BatchSource(path, True, blocks=True)
        sent = list(source.batches())
        served = Served(path, verify=True)
        feed = Feed(served.ticket)
        got = list(feed)
        assert served.join() is True
        assert len(got) == len(sent) and all(isinstance(b, Batch) for b in got)
        for a, b in zip(sent, got):
            assert pickle.dumps(a, 5) == pickle.dumps(b, 5)
            same_batch(a, b)
        assert (feed.truncated, feed.skipped, feed.snaplen) == (
            source.truncated,
            source.skipped,
            source.snaplen,
        )
        seen["slow"] += sum(len(b.slow) for b in got)
        seen["parsed"] += sum(len(b.cols.parsed) for b in got if b.cols is not None)
        seen["skipped"] += sum(feed.skipped.values())
        seen["truncated"] += bool(feed.truncated)
    assert all(seen.values()), seen


# --------------------------------------------------------------------------- a feed lost


def _serve_raw(path, messages: int | None, listener: socket.socket) -> threading.Thread:
    """A feeder that sends the first ``messages`` batches of ``path`` (32 KiB pieces;
    None: every one and the end) to the one worker that connects, then closes."""

    def run():
        conn, _ = listener.accept()
        try:
            source = BatchSource(path, False, blocks=True, chunk_bytes=1 << 15)
            for sent, batch in enumerate(source.batches()):
                if messages is not None and sent == messages:
                    return
                data = pickle.dumps(batch, 5)
                conn.sendall(len(data).to_bytes(8, "little") + data)
            data = pickle.dumps(End(source.truncated, source.skipped, source.snaplen), 5)
            conn.sendall(len(data).to_bytes(8, "little") + data)
        finally:
            conn.close()
            listener.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("messages", [0, 1, 3])
def test_a_feed_cut_mid_way_gives_the_own_reading(tmp_path, catalog, messages, monkeypatch):
    path = tmp_path / "gen.pcap"
    generate(
        argparse.Namespace(
            out=str(path),
            connections=300,
            concurrency=16,
            exchanges=3,
            refused=0.05,
            retrans=0.05,
            resets=0.05,
            loss=0.01,
            seed=6,
        )
    )
    active = catalog.select(None, None)
    own = analyze_part(path, catalog, active, shard=(1, 2))
    lost = []
    original = Feed._read

    def spy(self, size):
        try:
            return original(self, size)
        except FeedLost:
            lost.append(size)
            raise

    monkeypatch.setattr(Feed, "_read", spy)

    def fed_by_raw(count, name):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address = str(tmp_path / name)
        listener.bind(address)
        listener.listen(1)
        thread = _serve_raw(path, count, listener)
        fed = shard_part(path, catalog, active, (1, 2), address)
        thread.join(timeout=60)
        return fed

    same_part(fed_by_raw(messages, "sock"), own)
    assert lost  # the feed was lost, and the shard read the file
    if messages == 3:  # every batch and the end: the feed is kept
        lost.clear()
        same_part(fed_by_raw(None, "sock2"), own)
        assert not lost


def test_a_refused_feed_gives_the_own_reading(tmp_path, catalog):
    path = tmp_path / "s.pcap"
    scenario(path, 1)
    active = catalog.select(None, None)
    with pytest.raises(FeedLost):
        Feed(str(tmp_path / "nobody"))
    same_part(
        shard_part(path, catalog, active, (0, 2), str(tmp_path / "nobody")),
        analyze_part(path, catalog, active, shard=(0, 2)),
    )


def test_workers_that_never_connect_or_go_away_do_not_hang_the_feeder(tmp_path, catalog):
    path = tmp_path / "gen.pcap"
    generate(
        argparse.Namespace(
            out=str(path),
            connections=2000,
            concurrency=16,
            exchanges=3,
            refused=0.05,
            retrans=0.05,
            resets=0.05,
            loss=0.01,
            seed=7,
        )
    )
    active = catalog.select(None, None)
    own = analyze_part(path, catalog, active, shard=(0, 2))
    # one of two workers never connects: the feeder stops waiting and feeds the one that
    # did (it does not read the file: FED), the other would read the file itself
    served = Served(path, n=2, timeout=0.5)
    FED.set()
    try:
        fed = shard_part(path, catalog, active, (0, 2), served.ticket)
    finally:
        FED.clear()
    same_part(fed, own)
    assert served.join() is False
    # give_up() true: the feeder stops waiting at once; a worker coming later is
    # refused (the socket's name is gone) and reads the file
    served = Served(path, n=2, give_up=lambda: True)
    assert served.join() is False
    with pytest.raises(FeedLost):
        Feed(served.ticket)
    # one worker leaves after its first batch: the other still gets every batch
    served = Served(path, n=2)
    leaver = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leaver.connect(served.ticket)
    fed = shard_part(path, catalog, active, (0, 2), served.ticket)
    leaver.recv(1000)
    leaver.close()
    assert served.join() is False  # not every worker got everything...
    same_part(fed, own)  # ...but the one that stayed did


def test_a_file_that_is_not_a_capture(tmp_path, catalog):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all" * 10)
    active = catalog.select(None, None)
    with pytest.raises(CaptureError) as own:
        analyze_part(bad, catalog, active, shard=(0, 2))
    served = Served(bad)
    with pytest.raises(CaptureError) as fed:
        shard_part(bad, catalog, active, (0, 2), served.ticket)
    assert served.join() is False
    assert str(fed.value) == str(own.value)


# --------------------------------------------------------------------------- processes


def test_shards_in_processes_are_fed(tmp_path, catalog, monkeypatch):
    """analyze_sharded(shards=2) and ``analyze --jobs 2`` serve the feed (it reaches every
    worker) and give the serial report; with the feed disabled, the same."""
    path = tmp_path / "gen.pcap"
    generate(
        argparse.Namespace(
            out=str(path),
            connections=300,
            concurrency=16,
            exchanges=3,
            refused=0.05,
            retrans=0.05,
            resets=0.05,
            loss=0.01,
            seed=8,
        )
    )
    active = catalog.select(None, None)
    serial = analyze_file(path, catalog, active)
    served = []
    original = Feeder.serve
    monkeypatch.setattr(
        Feeder, "serve", lambda self, *a, **k: served.append(original(self, *a, **k)) or served[-1]
    )
    same_report(analyze_sharded(path, catalog, active, shards=2), serial)
    assert served == [True]
    monkeypatch.setenv("PCAPCHECK_SHARD_MIN_BYTES", "0")
    runner = CliRunner()
    one = runner.invoke(app, ["analyze", str(path), "-f", "json", "--jobs", "1"])
    two = runner.invoke(app, ["analyze", str(path), "-f", "json", "--jobs", "2"])
    assert served == [True, True]
    assert two.exit_code == one.exit_code and two.stdout == one.stdout
    assert json.loads(two.stdout)["files"][0]["connections"]
    # two files in shards (4 jobs): each is read by its own shards, no feed
    three = runner.invoke(app, ["analyze", str(path), str(path), "-f", "json", "--jobs", "4"])
    assert served == [True, True] and three.exit_code == one.exit_code
    monkeypatch.setattr(feed_module, "ENABLED", False)
    same_report(analyze_sharded(path, catalog, active, shards=2), serial)
    assert served == [True, True]


def test_merged_fed_shards_equal_serial(tmp_path, catalog):
    """Three shards, each fed by its own Feeder in a thread, merged: the serial result."""
    path = tmp_path / "s.pcap"
    scenario(path, 0, cut=True)
    active = catalog.select(["ALL"], None)
    timers = {"idle_timeout": 8, "close_delay": 2}
    serial = analyze_file(path, catalog, active, **timers)
    parts = []
    for k in range(3):
        served = Served(path, verify=verifies_checksums(active))
        parts.append(
            analyze_shard(
                path, catalog, active, shard=(k, 3), encode=True, feed=served.ticket, **timers
            )
        )
        assert served.join() is True
    same_report(merge_shards(parts, path, catalog, active), serial)


def _pcapng_of_simple_blocks(source, target) -> int:
    """``target``: the packets of the pcap ``source`` as pcapng simple packet blocks
    (SPB: no timestamp, no interface id; read one by one); returns their number."""
    import struct

    import dpkt

    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    with open(source, "rb") as f:
        frames = [bytes(buf) for _ts, buf in dpkt.pcap.Reader(f)]
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 0))  # Ethernet, no snaplen
    for frame in frames:
        out += block(3, struct.pack("<I", len(frame)) + frame)
    target.write_bytes(out)
    return len(frames)


def test_pcapng_records_read_one_by_one_travel_together(tmp_path, catalog, no_reading_here):
    """Simple packet blocks are records read one by one: consecutive ones make one
    Batch (not one message each), and the fed shards give their own reading's result."""
    path = tmp_path / "spb.pcapng"
    count = _pcapng_of_simple_blocks(SAMPLES / "loopback" / "client_close_first.pcap", path)
    batches = list(BatchSource(path, False, blocks=True).batches())
    assert [(b.cols is None, len(b.cat)) for b in batches] == [(True, count)]
    active = catalog.select(["ALL"], None)
    for shard in ((0, 2), (1, 2)):
        own = analyze_part(path, catalog, active, shard=shard)
        result, facts, ok = fed_part(path, catalog, active, shard)
        assert ok is True
        same_part((result, facts), own)
    assert (
        own[0].tcp_packets + analyze_part(path, catalog, active, shard=(0, 2))[0].tcp_packets
        == count
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_worker_queued_but_not_taken_is_let_go(tmp_path):
    """Forked workers share the listening socket, so closing it would not refuse one
    that connected but was never accepted: the feeder closes the queued connections
    (the worker sees the end at once and reads the file), after removing the name."""
    feeder = Feeder(3)
    late = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    late.connect(feeder.ticket())  # queued: nobody accepts it
    late.settimeout(5)
    holder = os.fork()  # a process that holds the listening socket
    if holder == 0:
        try:
            time.sleep(8)
        finally:
            os._exit(0)
    try:
        feeder.close()
        assert late.recv(1) == b""  # let go at once, not left waiting
    finally:
        os.kill(holder, 9)
        os.waitpid(holder, 0)
    assert not os.path.exists(feeder.ticket())
    feeder.close()  # twice: nothing more


def test_without_unix_sockets_the_shards_read_the_file(tmp_path, catalog, monkeypatch):
    """Windows' Python has no AF_UNIX: no feeder, each shard reads the file, the same
    result (the socket's absence was a traceback before)."""
    path = tmp_path / "s.pcap"
    scenario(path, 3)
    active = catalog.select(None, None)
    serial = analyze_file(path, catalog, active)
    monkeypatch.delattr(socket, "AF_UNIX")
    assert feed_module.feeder_for(2) is None
    with pytest.raises(FeedLost):
        Feed(str(tmp_path / "s"))
    same_report(analyze_sharded(path, catalog, active, shards=2), serial)
