"""The lane (pcapcheck.fast.established_lane.feed_block: plain segments replayed straight from the
decoder's columns) gives the same reports as building and feeding every Segment: on
every sample capture, on generated captures full of retransmissions, resets, refusals
and capture loss (every rule, marks included, tiny timers, shards), and on one whose
blocks are split by other records; and it carries most segments of a transfer."""

from __future__ import annotations

import argparse
import struct
import sys

import pytest
from conftest import ALL_CAPTURES, ROOT, SAMPLES, same_report

from pcapcheck.capture.reader import CaptureError
from pcapcheck.fast import clean_connections as clean
from pcapcheck.fast import established_lane as lane
from pcapcheck.fast.summarising_tracker import SummarisingTracker as Tracker
from pcapcheck.pipeline import analyze_file
from pcapcheck.run.shards import analyze_shard, merge_shards
from pcapcheck.tcp import tracker as tracker_module

sys.path.insert(0, str(ROOT / "bench"))
from generate import generate


@pytest.fixture(autouse=True)
def replay_every_connection(monkeypatch):
    """No clean-connection shortcut (pcapcheck.fast.clean_connections, tests/test_clean.py): every
    connection goes through the lanes compared here."""
    monkeypatch.setattr(clean, "ENABLED", False)


def _both(path, catalog, monkeypatch, checksums=False, **kw):
    """(lane on, lane off) analyses with every rule; ``checksums``: CP004 included
    (the generated captures' checksums are 0: wrong, so the lane stands aside)."""
    active = catalog.select(["ALL"], None if checksums else ["CP004"])
    monkeypatch.setattr(lane, "FAST", True)
    fed.clear()
    fast = analyze_file(path, catalog, active, **kw)
    fast.fed = len(fed)  # the segments that went through Tracker.feed
    monkeypatch.setattr(lane, "FAST", False)
    slow = analyze_file(path, catalog, active, **kw)
    return fast, slow


fed: list[int] = []


@pytest.fixture(autouse=True)
def count_feed(monkeypatch):
    """Count the frames given to Tracker.feed (in ``fed``)."""
    fed.clear()
    original = Tracker.feed

    def spy(self, seg):
        fed.append(seg.frame)
        return original(self, seg)

    monkeypatch.setattr(Tracker, "feed", spy)


@pytest.mark.parametrize(
    "path", ALL_CAPTURES, ids=[str(p.relative_to(SAMPLES)) for p in ALL_CAPTURES]
)
def test_lane_equals_segments_on_samples(path, catalog, monkeypatch):
    for checksums in (False, True):
        try:
            fast, slow = _both(path, catalog, monkeypatch, checksums)
        except CaptureError:
            return
        same_report(fast, slow)


def _generated(tmp_path, seed, connections=150, concurrency=12):
    path = tmp_path / f"gen{seed}.pcap"
    n = generate(
        argparse.Namespace(
            out=str(path),
            connections=connections,
            concurrency=concurrency,
            exchanges=4,
            refused=0.05,
            retrans=0.08,
            resets=0.05,
            loss=0.02,
            seed=seed,
        )
    )
    return path, n


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lane_equals_segments_on_generated_captures(seed, tmp_path, catalog, monkeypatch):
    path, n = _generated(tmp_path, seed)
    fast, slow = _both(path, catalog, monkeypatch)
    assert fast.tcp_packets == n and len(fast.findings) > 10
    assert fast.fed < 0.5 * n  # the lane took the others
    same_report(fast, slow)
    # marks (the lane stands aside) and timers short enough to release connections
    # idle or closed in the middle of blocks, with sweeps of the table every 3 ms
    monkeypatch.setattr(tracker_module, "SWEEP_EVERY", 0.003)
    for kw in (
        {"marks": True},
        {"idle_timeout": 0.0004, "close_delay": 0.0002},
        {"idle_timeout": 0.05, "close_delay": 0.02},
    ):
        fast, slow = _both(path, catalog, monkeypatch, **kw)
        same_report(fast, slow)
        if "marks" in kw:
            assert fast.marks == slow.marks
            assert fast.fed == n  # marks are recorded by the full path only
        else:  # connections released all the time, yet:
            assert fast.fed < n


def test_lane_equals_segments_in_shards(tmp_path, catalog, monkeypatch):
    path, _n = _generated(tmp_path, 4, connections=200, concurrency=16)
    active = catalog.select(["ALL"], ["CP004"])
    results = []
    for fast in (True, False):
        monkeypatch.setattr(lane, "FAST", fast)
        parts = [
            analyze_shard(path, catalog, active, shard=(k, 2), idle_timeout=0.05, close_delay=0.02)
            for k in range(2)
        ]
        results.append(merge_shards(parts, path, catalog, active))
    serial = analyze_file(path, catalog, active, idle_timeout=0.05, close_delay=0.02)
    same_report(results[0], results[1])
    same_report(results[0], serial)


def test_lane_with_blocks_split_by_other_records(tmp_path, catalog, monkeypatch):
    """UDP records every few packets: many short blocks, each with its own state."""
    path, _n = _generated(tmp_path, 5)
    data = path.read_bytes()
    out, pos, k = [data[:24]], 24, 0
    udp = (
        b"\x00" * 12
        + b"\x08\x00"
        + struct.pack("!BBHHHBBHII", 0x45, 0, 28, 0, 0, 64, 17, 0, 0x0A000001, 0x0A000002)
        + struct.pack("!HHHH", 53, 53, 8, 0)
    )
    while pos < len(data):
        sec, usec, caplen, _wire = struct.unpack_from("<IIII", data, pos)
        out.append(data[pos : pos + 16 + caplen])
        pos += 16 + caplen
        k += 1
        if k % 7 == 0:
            out.append(struct.pack("<IIII", sec, usec, len(udp), len(udp)) + udp)
    mixed = tmp_path / "mixed.pcap"
    mixed.write_bytes(b"".join(out))
    fast, slow = _both(mixed, catalog, monkeypatch)
    assert fast.skipped == {"ipv4-udp": k // 7}
    same_report(fast, slow)


def test_lane_is_taken(catalog):
    """Most segments of an ordinary transfer never reach Tracker.feed (else the lane is
    dead code)."""
    res = analyze_file(
        SAMPLES / "loopback" / "bulk_transfer.pcap", catalog, catalog.select(None, None)
    )
    assert res.tcp_packets > 50
    assert len(fed) < 0.2 * res.tcp_packets
