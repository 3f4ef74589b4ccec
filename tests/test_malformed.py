"""Malformed input through the command line (issue 3): one test per case.

Every case runs ``pcapcheck analyze -f json FILE`` (typer's CliRunner on
pcapcheck.cli.app) and expects, each time: a one-line error (exit 2) or a CP005/CP006
finding; exit 2 only when nothing at all could be read; never a traceback (nor the CLI's
"internal error" fallback); and everything before the fault analysed and reported (the
frames and connections before it are in the JSON document).

The files come from sample_pcaps/encap/bad/ (scripts/make_encap_captures.py) and
sample_pcaps/artefacts/bad/ (scripts/craft_artefacts.py; the last test checks that the
script reproduces them). Most artefacts/bad files are clean_handshake_close (10 frames:
1-3 handshake, 4 request, 5 response, 6 ACK, 7-10 close) with one malformed *extra*
packet inserted as frame 7, so the frames around it must give the clean result.
"""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES
from typer.testing import CliRunner

from pcapcheck.cli import app

runner = CliRunner()
BAD = SAMPLES / "artefacts" / "bad"
ENCAP_BAD = SAMPLES / "encap" / "bad"

#: The JSON document's keys, as README.md documents them ("### JSON").
DOC_KEYS = {"version", "files"}
FILE_KEYS = {
    "path",
    "format",
    "packets",
    "tcp_packets",
    "skipped",
    "malformed",
    "truncated",
    "connections",
    "findings",
}
CONN_KEYS = {
    "id",
    "client",
    "server",
    "roles_inferred",
    "first_frame",
    "last_frame",
    "start",
    "start_ts",
    "duration",
    "packets",
    "bytes",
    "client_isn",
    "server_isn",
    "handshake",
    "close",
    "client_state",
    "server_state",
    "conn_state",
    "history",
    "transitions",
    "findings",
}
FINDING_KEYS = {"rule", "name", "severity", "connection", "frame", "message", "data"}

#: What clean_handshake_close gives (with or without an extra undecodable frame).
CLEAN_CONN = {
    "client": "10.0.0.1:40000",
    "server": "10.0.0.2:80",
    "handshake": "complete",
    "close": "graceful",
    "client_state": "TIME-WAIT",
    "server_state": "CLOSED",
    "packets": {"client": 6, "server": 4},
}


def check_document(doc: dict) -> None:
    """The report has the documented keys (extra keys are allowed)."""
    assert set(doc) >= DOC_KEYS, set(doc)
    for f in doc["files"]:
        if "error" in f:
            assert set(f) >= {"path", "error"} and isinstance(f["error"], str)
            assert "\n" not in f["error"]
            continue
        assert set(f) >= FILE_KEYS, FILE_KEYS - set(f)
        for c in f["connections"]:
            assert set(c) >= CONN_KEYS, CONN_KEYS - set(c)
        for x in f["findings"]:
            assert set(x) >= FINDING_KEYS, FINDING_KEYS - set(x)


def check_run(res) -> None:
    """No traceback, no internal error, a documented exit status; exit 2 comes with
    one line per unreadable input on stderr."""
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert "internal error" not in res.stderr, res.stderr
    assert res.exit_code in (0, 1, 2), res.exit_code
    if res.exit_code == 2:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert lines and all(ln.startswith("pcapcheck: ") for ln in lines), res.stderr


def analyse(*paths: Path | str, args: tuple[str, ...] = ()) -> tuple[object, dict]:
    res = runner.invoke(app, ["analyze", "-f", "json", *args, *map(str, paths)])
    check_run(res)
    doc = json.loads(res.stdout)
    check_document(doc)
    assert len(doc["files"]) == len(paths)
    return res, doc


def analyse_one(path: Path, args: tuple[str, ...] = ()) -> tuple[object, dict]:
    res, doc = analyse(path, args=args)
    return res, doc["files"][0]


def readable(res, f: dict) -> None:
    """Something was read: no exit 2, no file error."""
    assert "error" not in f, f.get("error")
    assert res.exit_code in (0, 1), res.stderr


def unreadable(res, f: dict, *words: str) -> None:
    """Nothing could be read: exit 2, one line on stderr naming the problem."""
    assert res.exit_code == 2
    assert "error" in f
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pcapcheck: error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def at(f: dict, rule: str) -> list:
    return sorted((x["connection"], x["frame"]) for x in f["findings"] if x["rule"] == rule)


def others(f: dict, *rules: str) -> list:
    return [(x["rule"], x["frame"]) for x in f["findings"] if x["rule"] not in rules]


def clean_around(f: dict, packets: int, malformed: int) -> None:
    """clean_handshake_close with undecodable extra frames: all frames read, the TCP ones
    all in the one clean connection, which runs to the last frame."""
    assert f["packets"] == packets and f["malformed"] == malformed
    assert f["tcp_packets"] == 10 and f["truncated"] is None
    [conn] = f["connections"]
    assert (conn["first_frame"], conn["last_frame"]) == (1, packets)
    assert {k: conn[k] for k in CLEAN_CONN} == CLEAN_CONN


def cut_after(f: dict, frames: int, rule: str = "CP006", handshake: str = "complete") -> None:
    """The file is damaged after ``frames`` complete records: those are analysed, the
    damage is a file-level finding."""
    assert f["packets"] == frames and f["truncated"]
    assert at(f, rule) == [(None, None)]
    [conn] = f["connections"]
    assert (conn["first_frame"], conn["last_frame"]) == (1, frames)
    assert conn["handshake"] == handshake
    assert conn["packets"]["client"] + conn["packets"]["server"] == frames


# --------------------------------------------------------------------------- IP header


def test_bad_ihl():
    """IHL below 5 (encap: frame 4) and IHL beyond the total length (frame 7): CP005."""
    res, f = analyse_one(ENCAP_BAD / "ipv4_ihl3.pcap")
    readable(res, f)
    assert at(f, "CP005") == [(None, 4)]
    assert f["packets"] == 10 and f["tcp_packets"] == 9
    assert f["connections"][0]["first_frame"] == 1 and f["connections"][0]["last_frame"] == 10
    res, f = analyse_one(BAD / "ipv4_ihl_beyond.pcap")
    readable(res, f)
    assert at(f, "CP005") == [(None, 7)] and others(f, "CP005") == []
    clean_around(f, 11, 1)


def test_ip_total_length_smaller_than_headers():
    res, f = analyse_one(BAD / "ipv4_total_len_short.pcap")
    readable(res, f)
    assert res.exit_code == 0
    assert at(f, "CP005") == [(None, 7)] and others(f, "CP005") == []
    clean_around(f, 11, 1)


def test_ip_total_length_beyond_the_packet_is_read():
    """IPv4 total length 1500 in a complete 66-byte record (not cut by a snaplen): the
    file is read, the frames around it are analysed."""
    res, f = analyse_one(BAD / "ipv4_total_len_long.pcap")
    readable(res, f)
    assert f["packets"] == 11
    conn = f["connections"][0]
    assert (conn["first_frame"], conn["last_frame"]) == (1, 11)
    assert (conn["handshake"], conn["close"]) == ("complete", "graceful")


def test_ip_total_length_beyond_the_packet_is_cp005():
    _res, f = analyse_one(BAD / "ipv4_total_len_long.pcap")
    assert at(f, "CP005") == [(None, 7)] and others(f, "CP005") == []
    clean_around(f, 11, 1)


def test_truncated_ip_header():
    """12 bytes of IPv4 header, in a complete record and in a record cut by the capture."""
    for name in ("ipv4_header_cut.pcap", "ipv4_header_snapped.pcap"):
        res, f = analyse_one(BAD / name)
        readable(res, f)
        assert at(f, "CP005") == [(None, 7)] and others(f, "CP005") == [], name
        clean_around(f, 11, 1)


# --------------------------------------------------------------------------- TCP header


def test_bad_data_offset():
    """Data offset 3 (encap: frame 4) and 15, beyond the IP length (frame 7): CP005."""
    res, f = analyse_one(ENCAP_BAD / "tcp_doff3.pcap")
    readable(res, f)
    assert at(f, "CP005") == [(None, 4)]
    assert f["tcp_packets"] == 9 and f["connections"][0]["last_frame"] == 10
    res, f = analyse_one(BAD / "tcp_doff_beyond.pcap")
    readable(res, f)
    assert at(f, "CP005") == [(None, 7)] and others(f, "CP005") == []
    clean_around(f, 11, 1)


def test_truncated_tcp_header():
    """10 bytes of TCP header: the IP length says so (complete record), or the capture
    cut the record."""
    for name in ("tcp_header_cut.pcap", "tcp_header_snapped.pcap"):
        res, f = analyse_one(BAD / name)
        readable(res, f)
        assert at(f, "CP005") == [(None, 7)] and others(f, "CP005") == [], name
        clean_around(f, 11, 1)


def test_tcp_options_with_bad_lengths():
    """Option length 1, an option running past the header, a kind without its length
    byte (frames 7-9); and MSS with length 0 on the SYN (encap, frame 1)."""
    res, f = analyse_one(BAD / "tcp_options_bad_len.pcap")
    readable(res, f)
    assert at(f, "CP005") == [(None, 7), (None, 8), (None, 9)] and others(f, "CP005") == []
    clean_around(f, 13, 3)
    res, f = analyse_one(ENCAP_BAD / "tcp_optlen0.pcap")
    readable(res, f)
    assert at(f, "CP005") == [(None, 1)]
    assert f["packets"] == 10 and f["tcp_packets"] == 9
    assert f["connections"][0]["last_frame"] == 10


# --------------------------------------------------------------------------- records


def test_zero_length_records():
    """Two records with no captured byte (wire length 66, then 0) as frames 7 and 8."""
    res, f = analyse_one(BAD / "zero_length_record.pcap")
    readable(res, f)
    assert at(f, "CP005") == [(None, 7), (None, 8)] and others(f, "CP005") == []
    clean_around(f, 12, 2)


def same_report(f: dict, reference: Path) -> None:
    """``f`` is the report of ``reference`` (apart from the path)."""
    _res, ref = analyse_one(reference)
    assert {**f, "path": None} == {**ref, "path": None}


def test_record_longer_than_the_snaplen():
    """Record 5 holds 1066 bytes, the file header's snaplen is 1024: libpcap and
    Wireshark read such a record like any other, and so does pcapcheck (no CP006); the
    report is the one of the same packets under a big snaplen. The same when the very
    first record (74 bytes) exceeds the snaplen (70). Only a captured length above the
    most Wireshark accepts stops the reading (absurd_caplen, below)."""
    res, f = analyse_one(BAD / "record_over_snaplen.pcap")
    readable(res, f)
    assert res.exit_code == 0 and f["findings"] == []
    clean_around(f, 10, 0)
    same_report(f, SAMPLES / "crafted" / "clean_handshake_close.pcap")
    res, f = analyse_one(ENCAP_BAD / "caplen_over_snaplen.pcap")
    readable(res, f)
    assert f["packets"] == f["tcp_packets"] == 10 and f["truncated"] is None
    same_report(f, SAMPLES / "encap" / "eth_ipv4.pcap")


def test_record_longer_than_the_file():
    """The last record's header announces more bytes than the file holds (in its body and
    in its header): the complete records are analysed, then CP006."""
    res, f = analyse_one(BAD / "record_past_eof.pcap")
    readable(res, f)
    cut_after(f, 5)
    for name in ("cut_record_body.pcap", "cut_record_header.pcap"):
        res, f = analyse_one(ENCAP_BAD / name)
        readable(res, f)
        cut_after(f, 5)
    res, f = analyse_one(ENCAP_BAD / "absurd_caplen.pcap")  # record 3 claims 2 GiB
    readable(res, f)
    cut_after(f, 2, handshake="incomplete")  # SYN, SYN-ACK


def test_unknown_link_type():
    """A pcap whose link type pcapcheck does not decode (162, and 147 in encap): a
    CP005 per record, or one error line."""
    for path in (BAD / "unknown_linktype.pcap", ENCAP_BAD / "unsupported_linktype.pcap"):
        res, f = analyse_one(path)
        if res.exit_code == 2:
            unreadable(res, f, "link type")
            continue
        assert f["packets"] == 10 and f["connections"] == []
        assert at(f, "CP005") == [(None, n) for n in range(1, 11)]
        assert "link type" in f["findings"][0]["message"]


# --------------------------------------------------------------------------- pcapng


#: pcapng_unknown_blocks.pcapng: the frame number of each packet of clean_handshake_close
#: (custom blocks are frames 4 and 8, a systemd journal export block frame 11, as
#: Wireshark 4.0 numbers them).
UNKNOWN_BLOCKS_FRAMES = {1: 1, 2: 2, 3: 3, 4: 5, 5: 6, 6: 7, 7: 9, 8: 10, 9: 12, 10: 13}


def test_pcapng_with_unknown_blocks():
    """Unknown blocks (before the interface, between packets) and the ISB are skipped;
    custom and systemd journal export blocks are frames without a packet, as Wireshark
    numbers them. The 10 packets give exactly what they give in a pcap, at Wireshark's
    frame numbers."""
    res, f = analyse_one(BAD / "pcapng_unknown_blocks.pcapng")
    readable(res, f)
    assert res.exit_code == 0 and f["format"] == "pcapng"
    assert f["findings"] == [] and f["truncated"] is None
    assert f["tcp_packets"] == 10 and f["malformed"] == 0
    [conn] = f["connections"]
    assert (conn["first_frame"], conn["last_frame"]) == (1, 13)
    assert {k: conn[k] for k in CLEAN_CONN} == CLEAN_CONN
    _res, ref = analyse_one(SAMPLES / "crafted" / "clean_handshake_close.pcap")
    [ref_conn] = ref["connections"]
    moved = {
        role: [{**t, "frame": UNKNOWN_BLOCKS_FRAMES[t["frame"]]} for t in ts]
        for role, ts in ref_conn["transitions"].items()
    }
    assert conn["transitions"] == moved
    assert {t["frame"] for ts in moved.values() for t in ts} >= {9, 12, 13}  # shifted


def test_pcapng_records_without_a_packet_are_counted():
    _res, f = analyse_one(BAD / "pcapng_unknown_blocks.pcapng")
    assert (f["packets"], f["tcp_packets"], f["malformed"]) == (13, 10, 0)
    assert f["skipped"] == {"non-packet-record": 3}


def test_pcapng_with_interfaces_of_different_link_types():
    """Ethernet, raw IPv4 and Linux cooked v2 interfaces carrying one connection; and an
    interface of an unknown link type among good ones (its record is CP005)."""
    res, f = analyse_one(BAD / "pcapng_mixed_linktypes.pcapng")
    readable(res, f)
    assert f["findings"] == []
    clean_around(f, 10, 0)
    res, f = analyse_one(BAD / "pcapng_unknown_linktype.pcapng")
    readable(res, f)
    assert at(f, "CP005") == [(None, 7)] and others(f, "CP005") == []
    clean_around(f, 11, 1)
    res, f = analyse_one(SAMPLES / "encap" / "multi_if.pcapng")
    readable(res, f)
    assert f["packets"] == 10 and len(f["connections"]) == 1


# --------------------------------------------------------------------------- whole files


def test_not_a_capture():
    for path in (ENCAP_BAD / "text.pcap", BAD / "not_a_capture.pcap", ENCAP_BAD / "text.pcap.gz"):
        res, f = analyse_one(path)
        unreadable(res, f, "not a capture")


def test_empty_file():
    res, f = analyse_one(ENCAP_BAD / "empty.pcap")
    unreadable(res, f, "empty")
    # a valid file header without records is an empty capture, not an error
    res, f = analyse_one(ENCAP_BAD / "header_only.pcap")
    assert res.exit_code == 0 and f["packets"] == 0 and f["findings"] == []
    # a file header cut short
    res, f = analyse_one(ENCAP_BAD / "short_header.pcap")
    unreadable(res, f)


def test_directory(tmp_path):
    """A directory is no capture file: the reader refuses it in one line; given to the
    CLI, a directory with no capture in it is one error line (exit 2)."""
    from pcapcheck.capture.reader import CaptureError
    from pcapcheck.catalog.rules import load_catalog
    from pcapcheck.pipeline import analyze_file

    empty = tmp_path / "nothing_here"
    empty.mkdir()
    catalog = load_catalog()
    with pytest.raises(CaptureError) as exc:
        analyze_file(empty, catalog, catalog.select(None, None))
    assert "directory" in str(exc.value) and "\n" not in str(exc.value)
    res = runner.invoke(app, ["analyze", "-f", "json", str(empty)])
    check_run(res)
    assert res.exit_code == 2
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1


def test_unreadable_file_simulated(tmp_path, monkeypatch):
    """chmod 000 does not stop root: the permission error is simulated at the reader's
    open()."""
    import pcapcheck.capture.reader as reader

    target = tmp_path / "secret.pcap"
    target.write_bytes((SAMPLES / "crafted" / "clean_handshake_close.pcap").read_bytes())
    target.chmod(0)

    def fake_open(file, *args, **kwargs):
        if Path(file) == target:
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(reader, "open", fake_open, raising=False)
    good = SAMPLES / "crafted" / "clean_handshake_close.pcap"
    res, doc = analyse(target, good)
    bad, ok = doc["files"]
    unreadable(res, bad, "permission denied")
    assert ok["packets"] == 10 and len(ok["connections"]) == 1  # still reported


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: chmod 000 does not make a file unreadable "
    "(test_unreadable_file_simulated covers it)",
)
def test_unreadable_file(tmp_path):
    target = tmp_path / "secret.pcap"
    target.write_bytes((SAMPLES / "crafted" / "clean_handshake_close.pcap").read_bytes())
    target.chmod(0)
    try:
        res, f = analyse_one(target)
        unreadable(res, f, "permission denied")
    finally:
        target.chmod(0o644)


def test_gzip_corrupt_from_the_start():
    for path in (ENCAP_BAD / "corrupt_start.pcap.gz", BAD / "gzip_corrupt_start.pcap.gz"):
        res, f = analyse_one(path)
        unreadable(res, f, "gzip")


def test_gzip_corrupt_midway():
    """Everything decompressed before the damage is analysed, then CP006."""
    res, f = analyse_one(ENCAP_BAD / "corrupt.pcap.gz")
    readable(res, f)
    cut_after(f, 5)
    res, f = analyse_one(BAD / "gzip_corrupt_midway.pcap.gz")
    readable(res, f)
    cut_after(f, 6)
    assert "gzip" in f["truncated"]
    res, f = analyse_one(ENCAP_BAD / "cut_gzip.pcap.gz")
    readable(res, f)
    cut_after(f, 6)


def test_readable_files_are_still_reported_next_to_unreadable_ones():
    good = SAMPLES / "crafted" / "clean_handshake_close.pcap"
    res, doc = analyse(
        good, ENCAP_BAD / "empty.pcap", BAD / "gzip_corrupt_midway.pcap.gz", ENCAP_BAD / "text.pcap"
    )
    assert res.exit_code == 2
    first, empty, cut, text = doc["files"]
    assert first["packets"] == 10 and first["connections"][0]["close"] == "graceful"
    assert "error" in empty and "error" in text
    cut_after(cut, 6)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2, res.stderr


# --------------------------------------------------------------------------- clock


def test_clock_going_backwards_is_analysed():
    """Records whose timestamp goes back (by 1.5 s; by an hour) are analysed in file
    order like any other (their manifest entries hold the exact expectations)."""
    for name in ("artefact_time_backwards.pcap", "artefact_time_backwards_step.pcap"):
        res, f = analyse_one(SAMPLES / "artefacts" / name)
        readable(res, f)
        assert res.exit_code == 0 and f["findings"] == []


def test_timestamps_beyond_any_date():
    """pcapng timestamps near 2^64 us (year ~586000): the packets are analysed; the
    start that no date can hold is null, never an exception."""
    res, f = analyse_one(BAD / "pcapng_far_future.pcapng")
    readable(res, f)
    assert res.exit_code == 0 and f["findings"] == []
    clean_around(f, 10, 0)
    assert f["connections"][0]["start"] is None


def test_clock_going_backwards_gives_no_negative_duration():
    _res, f = analyse_one(SAMPLES / "artefacts" / "artefact_time_backwards_step.pcap")
    assert f["connections"][0]["duration"] >= 0


# --------------------------------------------------------------------------- generator


def test_craft_artefacts_script_reproduces_the_shipped_files(tmp_path):
    """scripts/craft_artefacts.py rewrites the crafted artefacts, bad/, the manifest and
    the README byte for byte (the artefact_lo_* recordings are not regenerated)."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "craft_artefacts.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    shipped = SAMPLES / "artefacts"
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert made
    for name in made:
        assert (tmp_path / name).read_bytes() == (shipped / name).read_bytes(), name
    kept = sorted(
        str(p.relative_to(shipped))
        for p in shipped.rglob("*")
        if p.is_file() and not p.name.startswith("artefact_lo_")
    )
    assert made == kept
