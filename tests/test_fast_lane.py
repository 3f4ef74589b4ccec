"""The ordinary-segment steps of the replay (``Checker.established_segment``: in-order segments
of an established connection, taken before the full path; ``ZeekState.established_segment``:
ACK segments once both Zeek endpoints are established, the steps of ``_process`` such a
segment takes) give the same reports as replaying every segment through the full paths:
on every sample capture, and on generated captures full of retransmissions, resets,
refusals and capture loss (every rule, marks included)."""

from __future__ import annotations

import argparse
import sys

import pytest
from conftest import ALL_CAPTURES, ROOT, SAMPLES

from pcapcheck.capture.reader import CaptureError
from pcapcheck.fast import clean_connections as clean
from pcapcheck.pipeline import analyze_file
from pcapcheck.report.json_report import document
from pcapcheck.tcp.detectors import Checker
from pcapcheck.tcp.zeek import ZeekState

sys.path.insert(0, str(ROOT / "bench"))
from generate import generate


@pytest.fixture(autouse=True)
def replay_every_connection(monkeypatch):
    """No clean-connection shortcut (pcapcheck.fast.clean_connections, tests/test_clean.py): every
    connection goes through the lanes compared here."""
    monkeypatch.setattr(clean, "ENABLED", False)


def _both(path, catalog, monkeypatch, **kw):
    active = catalog.select(["ALL"], None)
    for cls in (Checker, ZeekState):
        monkeypatch.setattr(cls, "fast_lane", True)
    fast = analyze_file(path, catalog, active, **kw)
    for cls in (Checker, ZeekState):
        monkeypatch.setattr(cls, "fast_lane", False)
    full = analyze_file(path, catalog, active, **kw)
    return fast, full


@pytest.mark.parametrize(
    "path", ALL_CAPTURES, ids=[str(p.relative_to(SAMPLES)) for p in ALL_CAPTURES]
)
def test_fast_lane_equals_full_replay_on_samples(path, catalog, monkeypatch):
    try:
        fast, full = _both(path, catalog, monkeypatch)
    except CaptureError:
        return
    assert document([fast]) == document([full])
    assert list(fast.events) == list(full.events)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_lane_equals_full_replay_on_generated_captures(seed, tmp_path, catalog, monkeypatch):
    path = tmp_path / "gen.pcap"
    n = generate(
        argparse.Namespace(
            out=str(path),
            connections=150,
            concurrency=12,
            exchanges=4,
            refused=0.05,
            retrans=0.08,
            resets=0.05,
            loss=0.02,
            seed=seed,
        )
    )
    fast, full = _both(path, catalog, monkeypatch)
    assert fast.tcp_packets == n and len(fast.findings) > 10
    assert document([fast]) == document([full])
    marked_fast, marked_full = _both(path, catalog, monkeypatch, marks=True)
    assert marked_fast.marks == marked_full.marks
    assert document([marked_fast]) == document([full])


def test_fast_lane_is_taken(catalog, monkeypatch, tmp_path):
    """The lane carries most segments of an ordinary transfer (else it is dead code)."""
    taken = []
    original = Checker.established_segment

    def spy(self, *args):
        ok = original(self, *args)
        taken.append(ok)
        return ok

    zeek_taken = []
    zeek_original = ZeekState.established_segment

    def zeek_spy(self, *args):
        zeek_taken.append(True)
        return zeek_original(self, *args)

    monkeypatch.setattr(Checker, "established_segment", spy)
    monkeypatch.setattr(ZeekState, "established_segment", zeek_spy)
    res = analyze_file(
        SAMPLES / "loopback" / "bulk_transfer.pcap", catalog, catalog.select(None, None)
    )
    assert sum(taken) > 0.8 * len(taken) > 10
    assert len(zeek_taken) > 0.8 * res.tcp_packets
