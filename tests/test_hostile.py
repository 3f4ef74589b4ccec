"""Hostile and unlucky captures (issue #23, items 1-5): memory bounded whatever the
content, time linear in the records, everything valid before a fault reported, the
temporary files gone after SIGTERM. The inputs are built by ``bench/hostile.py`` (which
runs them at full size); here they are small enough for the suite, measured in a child
process (peak RSS by :func:`os.wait4`) and compared at N and 4N rather than against a
wall-clock limit."""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest
from conftest import ROOT

from pcapcheck.capture.reader import _GzipSource, open_capture

sys.path.insert(0, str(ROOT / "bench"))
import hostile


def _analyze(path, *extra: str, out=None) -> tuple[int, int, dict | None]:
    """``pcapcheck analyze path -f json -q`` in a child: (exit status, peak RSS in MB
    (its VmHWM: see ``hostile.PEAK``), the JSON report or None)."""
    out_path = out or (path.parent / (path.name + ".json"))
    peak = path.parent / (path.name + ".peak")
    proc = subprocess.run(
        [sys.executable, "-c", hostile.PEAK, str(peak), "analyze", str(path), "-f", "json", "-q"]
        + ["-o", str(out_path), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.returncode in (0, 1), proc.stderr.decode(errors="replace")
    report = json.loads(out_path.read_text()) if out_path.exists() else None
    return proc.returncode, int(peak.read_text()) // 1024, report


# -- item 1: malformed and zero-length records ---------------------------------------


def test_zero_length_records_after_a_valid_connection_bounded_and_it_is_reported(tmp_path):
    """A valid 10-packet capture followed by a run of zero-length records (gzipped): the
    peak RSS does not follow the number of records (it grew by 2.4 kB a record: about
    90 MB more for 4N than for N here), and the connection before them is reported."""
    rss = {}
    for n in (12_500, 50_000):
        path = tmp_path / f"zeros{n}.pcap.gz"
        hostile.write_zeros_gz(path, 16 * n)
        _code, rss[n], report = _analyze(path)
        f = report["files"][0]
        assert (f["packets"], f["malformed"]) == (10 + n, n)
        (conn,) = f["connections"]
        assert (conn["first_frame"], conn["last_frame"], conn["close"]) == (1, 10, "graceful")
        cp005 = [x for x in f["findings"] if x["rule"] == "CP005"]
        assert len(cp005) == n and cp005[0]["frame"] == 11 and cp005[-1]["frame"] == 10 + n
    assert rss[50_000] - rss[12_500] < 30, rss
    assert rss[50_000] < 150, rss


def test_malformed_records_bounded(tmp_path):
    """Records whose IPv4 header length is 3 (CP005 each): the same bound."""
    rss = {}
    for n in (12_500, 50_000):
        path = tmp_path / f"ihl3_{n}.pcap"
        hostile.write_ihl3(path, n)
        _code, rss[n], report = _analyze(path)
        assert report["files"][0]["malformed"] == n
    assert rss[50_000] - rss[12_500] < 30, rss


# -- item 2: pcapng interfaces -------------------------------------------------------


def _reader_lines(path) -> int:
    """Python lines the reader executes to read ``path`` in batches (a count of work,
    the same on every run: ``sys.settrace`` on the reader's frames only)."""
    import sys

    from pcapcheck.capture import reader as reader_mod

    lines = 0

    def local(frame, event, _arg):
        nonlocal lines
        if event == "line":
            lines += 1
        return local

    def trace(frame, _event, _arg):
        return local if frame.f_code.co_filename == reader_mod.__file__ else None

    reader = open_capture(path)
    sys.settrace(trace)
    try:
        n = sum(1 for _ in reader.pcapng_batches())
    finally:
        sys.settrace(None)
    assert n >= 1 and reader.records == 9
    return lines


def test_pcapng_interfaces_read_in_linear_time(tmp_path):
    """20,000 interface description blocks then 9 packets: the reader's work (Python
    lines executed, counted, not timed) is about 4 times that of 5,000 blocks (it was
    quadratic, 16 times: the list of interface limits was rebuilt for every block);
    every packet is read."""
    small, big = tmp_path / "idb5k.pcapng", tmp_path / "idb20k.pcapng"
    hostile.write_idbs(small, 5_000)
    hostile.write_idbs(big, 20_000)
    ratio = _reader_lines(big) / _reader_lines(small)
    assert 3.5 < ratio < 4.5, ratio
    _code, _rss, report = _analyze(big)
    assert report["files"][0]["packets"] == 9


# -- item 3: a corrupt gzip stream ---------------------------------------------------


def _byte_by_byte(data: bytes) -> bytes:
    """Everything zlib gives before the error, fed one input byte and taking one output
    byte at a time (the reference)."""
    d = zlib.decompressobj(31)
    out = []
    try:
        for i in range(len(data)):
            piece = data[i : i + 1]
            while True:
                one = d.decompress(piece, 1)
                piece = d.unconsumed_tail
                if not one and not piece:
                    break
                out.append(one)
            if d.eof:
                break
    except zlib.error:
        pass
    return b"".join(out)


def test_gzip_salvage_is_byte_precise():
    """Every one-bit flip of a gzipped 9-record capture that zlib finds: the salvage
    gives every byte zlib can give before the damage (it dropped the 8-byte step in
    which the error occurs)."""
    raw = hostile.PCAP_HEADER + b"".join(hostile.connection(1, step_us=1000))
    good = gzip.compress(raw, compresslevel=9, mtime=0)
    tried = 0
    for at in range(10, len(good) - 8):
        for bit in range(8):
            bad = bytearray(good)
            bad[at] ^= 1 << bit
            try:
                zlib.decompressobj(31).decompress(bytes(bad))
                continue
            except zlib.error:
                pass
            tried += 1
            got = _GzipSource._salvage(zlib.decompressobj(31), bytes(bad))
            assert got == _byte_by_byte(bytes(bad)), (at, bit)
    assert tried > 500


def test_gzipped_zeros_are_decompressed_a_bounded_piece_at_a_time(tmp_path):
    """Deflate expands zeros about 1,000 times: 64 MB of them are 62 kB gzipped, one
    piece of compressed input, which zlib gave back whole (64 MB at once: 256 MB of
    gzipped zeros peaked at 325 MB). Each piece of output is at most 1 MB now, and the
    stream is read whole; a corrupt tail still ends it with the data before it."""
    path = tmp_path / "zeros64m.pcap.gz"
    hostile.write_zeros_gz(path, 64 << 20, header_only=True)
    with open(path, "rb") as f:
        src = _GzipSource(f, b"")
        sizes = []
        while piece := src.read():
            sizes.append(len(piece))
    assert max(sizes) <= 1 << 20, max(sizes)
    assert sum(sizes) == len(hostile.PCAP_HEADER) + (64 << 20) and src.error is None
    bad = bytearray(path.read_bytes())
    bad[len(bad) // 2] ^= 0x40
    with open(tmp_path / "bad.gz", "wb") as f:
        f.write(bytes(bad))
    with open(tmp_path / "bad.gz", "rb") as f:
        src = _GzipSource(f, b"")
        total = 0
        while piece := src.read():
            total += len(piece)
    assert src.error is not None and src.error.startswith("corrupt gzip data")
    assert 0 < total < len(hostile.PCAP_HEADER) + (64 << 20)


def test_corrupt_gzip_keeps_the_complete_record_before_the_damage(tmp_path):
    """A flipped bit at byte 188 of a gzipped 9-record capture: 7 records are whole
    before the damage and all 7 are read (6 before: the step with the error was
    dropped), then CP006 with the corrupt-gzip note."""
    raw = hostile.PCAP_HEADER + b"".join(hostile.connection(1, step_us=1000))
    bad = bytearray(gzip.compress(raw, compresslevel=9, mtime=0))
    bad[188] ^= 1 << 6
    path = tmp_path / "corrupt.pcap.gz"
    path.write_bytes(bytes(bad))
    reader = open_capture(path)
    records = list(reader)
    assert len(records) == 7
    pos = 24
    for r in records:
        (caplen,) = struct.unpack_from("<I", raw, pos + 8)
        assert r.data == raw[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
    assert reader.truncated is not None and "corrupt gzip data" in reader.truncated
    assert reader.truncated.startswith("file ends inside the header of record 8: 5 of 16")


# -- item 4: one long connection -----------------------------------------------------


def test_one_long_connection_bounded(tmp_path):
    """One connection of 100,000 segments uses about the memory of one of 25,000 (it
    held every segment: 181 MB at 250k in the issue), and is reported whole."""
    rss = {}
    for n in (25_000, 100_000):
        path = tmp_path / f"long{n}.pcap"
        hostile.write_long(path, n)
        _code, rss[n], report = _analyze(path)
        (conn,) = report["files"][0]["connections"]
        assert (
            sum(conn["packets"].values()) == report["files"][0]["packets"] == 2 * ((n - 7) // 2) + 7
        )
        assert (conn["close"], conn["history"]) == ("graceful", "ShADaFf")
    assert rss[100_000] - rss[25_000] < 20, rss


# -- item 5: SIGTERM -----------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_removes_the_temporary_files(tmp_path, jobs):
    """SIGTERM to the process group (``timeout``, a cancelled CI job) during an analysis
    of standard input: exit status 143, one line on stderr, and the copy of standard
    input and the spools' files removed (they were left behind)."""
    path = tmp_path / "long.pcap"
    hostile.write_long(path, 250_000)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with open(path, "rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pcapcheck", "analyze", "-", "-f", "json", "-q"]
            + ["-o", str(tmp_path / "out.json"), "--jobs", jobs],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "TMPDIR": str(tmp)},
            start_new_session=True,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 30
        while not any(tmp.rglob("stdin.capture")) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # the analysis under way
        assert proc.poll() is None, "the analysis ended before the signal"
        assert any(tmp.iterdir())
        os.killpg(proc.pid, signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert err.decode().splitlines() == ["pcapcheck: terminated (SIGTERM)"]
    time.sleep(0.2)
    assert list(tmp.rglob("*")) == []
