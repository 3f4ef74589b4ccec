"""The spool that streams findings, events and connection summaries through temporary
files: order, pickling across processes (``--jobs``), clean-up, and reports identical
to the in-memory ones."""

from __future__ import annotations

import gc
import json
import os
import pickle
import random
from concurrent.futures import ProcessPoolExecutor

import pytest
from conftest import SAMPLES

from pcapcheck import spool as spool_module
from pcapcheck.model import Event
from pcapcheck.pipeline import analyze_file, event_order
from pcapcheck.report import FORMATS
from pcapcheck.spool import LineSpool, Spool


def _key(item):
    return item[0]


def test_spilled_spool_is_a_stable_sort():
    rng = random.Random(7)
    items = [(rng.randrange(50), i) for i in range(1000)]
    sp = Spool(items, key=_key, limit=64)
    assert sp.spilled and len(sp) == 1000 and len(sp._buffer) < 64
    assert list(sp) == sorted(items, key=_key)  # ties keep their order of appending
    assert list(sp) == list(sp)  # re-iterable
    assert sp[0] == sorted(items, key=_key)[0] and sp[-1] == sorted(items, key=_key)[-1]
    assert sp[10:13] == sorted(items, key=_key)[10:13]
    assert sp == sorted(items, key=_key) and sp != items
    with pytest.raises(IndexError):
        sp[1000]


def test_unsorted_spool_keeps_the_order_of_appending():
    sp = Spool(range(10), limit=3)
    assert list(sp) == list(range(10)) and bool(sp) and not Spool()


def test_run_files_are_deleted_when_the_spool_goes():
    sp = Spool(range(100), key=int, limit=10)
    paths = [path for path, _n in sp._runs]
    assert len(paths) == 10 and all(os.path.exists(p) for p in paths)
    del sp
    gc.collect()
    assert not any(os.path.exists(p) for p in paths)


def _spool_in_worker(n: int) -> Spool:
    return Spool(range(n, 0, -1), key=int, limit=7)


def test_a_spool_made_in_another_process_keeps_its_files():
    with ProcessPoolExecutor(max_workers=1) as pool:
        sp = pool.submit(_spool_in_worker, 50).result()
    assert sp.spilled and list(sp) == list(range(1, 51))
    paths = [path for path, _n in sp._runs]
    sp.close()
    assert not any(os.path.exists(p) for p in paths) and list(sp) == []


def test_pickled_copy_owns_the_files():
    sp = Spool([(3, "c"), (1, "a"), (2, "b")], key=_key, limit=2)
    copy = pickle.loads(pickle.dumps(sp))
    del sp
    gc.collect()
    assert list(copy) == [(1, "a"), (2, "b"), (3, "c")]


@pytest.mark.parametrize(
    "name",
    [
        "loopback/time_wait_reuse.pcap",
        "artefacts/artefact_dup_four.pcap",
        "artefacts/artefact_loss_hole_unacked.pcap",
        "artefacts/bad/tcp_header_cut.pcap",
        "artefacts/bad/record_past_eof.pcap",
        "crafted/hs002_synack-bad-ack.pcap",
    ],
)
def test_report_is_the_same_when_everything_spills(name, catalog, monkeypatch):
    path = SAMPLES / name
    active = catalog.select(None, None)
    whole = analyze_file(path, catalog, active)
    assert not whole.findings.spilled
    monkeypatch.setattr(spool_module, "DEFAULT_LIMIT", 1)
    spilled = analyze_file(path, catalog, active)
    assert spilled.connections.spilled or len(spilled.connections) <= 1
    for fmt in ("json", "jsonl", "csv", "table", "sarif"):
        assert FORMATS[fmt]([spilled]) == FORMATS[fmt]([whole]), fmt
    assert list(spilled.events) == list(whole.events)
    assert [event_order(e) for e in whole.events] == sorted(event_order(e) for e in whole.events)
    doc = json.loads(FORMATS["json"]([spilled]))
    assert [c["id"] for c in doc["files"][0]["connections"]] == list(
        range(1, len(whole.connections) + 1)
    )


def test_event_order_puts_file_level_events_last():
    evs = [
        Event("CP006", None, None),
        Event("SQ002", 2, 5),
        Event("CP005", None, 5),
        Event("HS001", 1, 1),
    ]
    assert [e.rule for e in sorted(evs, key=event_order)] == ["HS001", "CP005", "SQ002", "CP006"]


def test_generated_capture_spilled_gives_the_same_reports(tmp_path, catalog, monkeypatch):
    """A bench capture (300 connections with refusals, retransmissions, resets and loss)
    analysed with tiny spools: the same reports, connections in id order, findings in
    frame order."""
    import argparse
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    from generate import generate

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
            seed=1,
        )
    )
    active = catalog.select(None, None)
    whole = analyze_file(path, catalog, active)
    assert len(whole.connections) >= 300 and len(whole.findings) > 30
    monkeypatch.setattr(spool_module, "DEFAULT_LIMIT", 16)
    spilled = analyze_file(path, catalog, active)
    assert spilled.findings.spilled and spilled.connections.spilled
    for fmt in ("json", "jsonl", "csv", "github"):
        assert FORMATS[fmt]([spilled]) == FORMATS[fmt]([whole]), fmt
    assert [c["id"] for c in spilled.connections] == list(range(1, len(whole.connections) + 1))
    frames = [f.frame for f in spilled.findings if f.frame is not None]
    assert frames == sorted(frames)


def test_runs_are_merged_to_bound_open_files(monkeypatch):
    monkeypatch.setattr(spool_module, "MAX_RUNS", 4)
    created = []
    mkstemp = spool_module.tempfile.mkstemp

    def recording_mkstemp(*args, **kwargs):
        fd, path = mkstemp(*args, **kwargs)
        created.append(path)
        return fd, path

    monkeypatch.setattr(spool_module.tempfile, "mkstemp", recording_mkstemp)
    rng = random.Random(3)
    items = [(rng.randrange(100), i) for i in range(200)]
    sp = Spool(items, key=_key, limit=10)
    assert 1 <= len(sp._runs) < 4 and len(sp) == 200
    assert list(sp) == sorted(items, key=_key)
    # the merged runs' files are gone; exactly the current runs' files are left
    assert len(created) > 4
    assert {p for p in created if os.path.exists(p)} == {p for p, _n in sp._runs}
    sp.close()
    assert not any(os.path.exists(p) for p in created)


@pytest.mark.parametrize("limit", [255, 256, 257, 1000])
def test_runs_longer_than_one_pickled_chunk(limit, monkeypatch):
    # A run file holds its items in lists of spool._CHUNK (one pickle.load per list):
    # runs of a chunk less, exactly one, one more and several, and runs merged again
    # (MAX_RUNS) into one of thousands of items, all read back whole and in order.
    monkeypatch.setattr(spool_module, "MAX_RUNS", 3)
    rng = random.Random(limit)
    items = [(rng.randrange(300), i) for i in range(3 * limit + 17)]
    sp = Spool(items, key=_key, limit=limit)
    assert sp.spilled and sum(n for _p, n in sp._runs) + len(sp._buffer) == len(items)
    assert list(sp) == sorted(items, key=_key)
    assert sp[limit] == sorted(items, key=_key)[limit]
    sp.close()


# --------------------------------------------------------------------------- LineSpool


def _line(i: int) -> bytes:
    return b'text of %d {"x":[%d]}' % (i, i * 7)


def _lines_of(sp: LineSpool) -> list[bytes]:
    return list(sp.lines())


def test_line_spool_in_order_is_one_file_read_as_it_is():
    sp = LineSpool(end=b",\n", limit=4)
    for i in range(1, 101):
        sp.append(i, _line(i))
    assert len(sp) == 100 and sp and not sp.spilled and len(sp._paths) == 1
    sp.finish()
    with open(sp._paths[0], "rb") as fh:
        assert fh.read() == b"".join(_line(i) + b",\n" for i in range(1, 101))
    lines = sp.lines()
    assert hasattr(lines, "fileno")  # the file itself: no Python per line
    assert list(lines) == [_line(i) + b",\n" for i in range(1, 101)]
    lines.close()
    assert list(sp) == [(i, _line(i)) for i in range(1, 101)]
    assert not LineSpool() and list(LineSpool()) == [] and list(LineSpool().lines()) == []


def test_line_spool_waits_for_the_smaller_ids_within_its_limit():
    # released about in order of creation: each id at most 5 places late, limit 8
    rng = random.Random(1)
    ids = sorted(range(1, 2001), key=lambda i: i + 5 * rng.random())
    assert ids != sorted(ids)
    sp = LineSpool(limit=8)
    for i in ids:
        sp.append(i, memoryview(b"xx" + _line(i))[2:])  # memoryviews, as analyze gives
        assert len(sp._waiting) <= 8
    assert not sp.spilled and not sp._gaps
    assert _lines_of(sp) == [_line(i) + b"\n" for i in range(1, 2001)]


def test_line_spool_gaps_and_late_lines_are_put_in_place():
    # 1 and 2 are held (connections open long): past the limit the waiting lines are
    # written, 1-2 and 6 become gaps, their lines come late
    sp = LineSpool(limit=2)
    for i in (3, 4, 5, 7, 8, 9, 2, 10, 6, 1, 11):
        sp.append(i, _line(i))
    assert sp.spilled and sp._gaps == [(1, 2), (6, 6)]
    assert _lines_of(sp) == [_line(i) + b"\n" for i in range(1, 12)]
    assert list(sp) == [(i, _line(i)) for i in range(1, 12)]


@pytest.mark.parametrize("seed", range(12))
def test_line_spool_any_order_and_missing_ids(seed, monkeypatch):
    """Any order of appending, ids missing, limits from 1 up, the late lines' spool
    spilled: the lines always come back in id order."""
    monkeypatch.setattr(spool_module, "DEFAULT_LIMIT", 3)  # the late lines' Spool
    rng = random.Random(seed)
    ids = [i for i in range(1, 400) if rng.random() > 0.1]
    if seed % 3 == 0:
        rng.shuffle(ids)
    else:  # mostly in order, some held very long
        ids.sort(
            key=lambda i: i + (rng.randrange(300) if rng.random() < 0.05 else rng.randrange(4))
        )
    sp = LineSpool(limit=1 + seed % 5)
    for i in ids:
        sp.append(i, _line(i))
    assert len(sp) == len(ids)
    assert _lines_of(sp) == [_line(i) + b"\n" for i in sorted(ids)]
    assert list(sp) == [(i, _line(i)) for i in sorted(ids)]
    if seed % 3 == 0:
        assert sp.spilled and sp._late.spilled


def test_line_spool_appending_after_reading():
    sp = LineSpool()
    sp.append(1, b"a")
    assert _lines_of(sp) == [b"a\n"]
    sp.append(3, b"c")
    sp.append(2, b"b")
    assert _lines_of(sp) == [b"a\n", b"b\n", b"c\n"] and len(sp._paths) == 1


def _line_spool_in_worker(n: int) -> LineSpool:
    sp = LineSpool(limit=2)
    for i in [*range(4, n + 1), 3, 2, 1]:
        sp.append(i, _line(i))
    return sp


def test_line_spool_made_in_another_process_owns_its_file():
    with ProcessPoolExecutor(max_workers=1) as pool:
        sp = pool.submit(_line_spool_in_worker, 40).result()
    assert sp.spilled and list(sp) == [(i, _line(i)) for i in range(1, 41)]
    path = sp._paths[0]
    copy = pickle.loads(pickle.dumps(sp))
    del sp
    gc.collect()
    assert os.path.exists(path) and _lines_of(copy) == [_line(i) + b"\n" for i in range(1, 41)]
    late_runs = [p for p, _n in copy._late._runs]
    copy.close()
    assert not os.path.exists(path) and not any(os.path.exists(p) for p in late_runs)
    assert list(copy) == [] and len(copy) == 0


def test_line_spool_file_is_deleted_when_the_spool_goes():
    sp = LineSpool()
    sp.append(1, b"a")
    path = sp._paths[0]
    assert os.path.exists(path)
    del sp
    gc.collect()
    assert not os.path.exists(path)
