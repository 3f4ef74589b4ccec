"""Inputs of `pcapcheck analyze`: files, directories (recursive, by extension or magic
number), globs expanded by pcapcheck, and `-` for standard input."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
from conftest import SAMPLES
from typer.testing import CliRunner

from pcapcheck.capture.inputs import STDIN_NAME, InputError, collect_inputs, is_capture, sniff
from pcapcheck.cli import app

runner = CliRunner()
HS002 = SAMPLES / "crafted" / "hs002_synack-bad-ack.pcap"
CLEAN = SAMPLES / "crafted" / "clean_handshake_close.pcap"
PCAPNG = SAMPLES / "encap" / "multi_if.pcapng"
NSEC_BE = SAMPLES / "encap" / "eth_ipv4_nsec_bigendian.pcap"


def run(*args: str, **kw):
    return runner.invoke(app, ["analyze", "--isolated", *args], **kw)


def paths(result) -> list[str]:
    return [f["path"] for f in json.loads(result.stdout)["files"]]


@pytest.fixture
def tree(tmp_path):
    """captures/ with nested directories, renamed captures, a gzip, and non-captures."""
    root = tmp_path / "captures"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a").mkdir()
    (root / ".hidden").mkdir()
    shutil.copy(HS002, root / "b" / "deep" / "z.pcap")
    shutil.copy(CLEAN, root / "a" / "y.cap")
    shutil.copy(PCAPNG, root / "b" / "trace.bin")  # pcapng magic, odd name
    shutil.copy(NSEC_BE, root / "renamed.dat")  # nanosecond, big-endian pcap
    (root / "a" / "x.gzdata").write_bytes(gzip.compress(CLEAN.read_bytes()))
    (root / "a" / "notes.txt").write_text("not a capture\n")
    (root / "a" / "text.gz").write_bytes(gzip.compress(b"hello, world\n"))
    shutil.copy(HS002, root / ".hidden" / "skipped.pcap")
    return root


def test_sniff_recognises_every_magic_and_gzip_content(tree):
    for path in (
        HS002,
        PCAPNG,
        NSEC_BE,
        SAMPLES / "encap" / "eth_ipv4_bigendian.pcap",
        SAMPLES / "encap" / "eth_ipv4_nsec.pcap",
        tree / "a" / "x.gzdata",
    ):
        assert sniff(path), path
    for path in (tree / "a" / "notes.txt", tree / "a" / "text.gz", tree / "missing"):
        assert not sniff(path), path
    assert is_capture(SAMPLES / "encap" / "bad" / "text.pcap")  # by extension
    assert not is_capture(tree / "a" / "notes.txt")


def test_directory_is_searched_recursively_in_sorted_order(tree):
    with collect_inputs([str(tree)]) as inputs:
        names = [i.path.relative_to(tree).as_posix() for i in inputs]
    assert names == ["a/x.gzdata", "a/y.cap", "b/deep/z.pcap", "b/trace.bin", "renamed.dat"]


def test_directory_through_the_cli_is_one_report_in_argument_order(tree):
    res = run("-f", "json", str(HS002), str(tree / "b"))
    assert res.exit_code == 1, res.stderr
    assert paths(res) == [
        str(HS002),
        str(tree / "b" / "deep" / "z.pcap"),
        str(tree / "b" / "trace.bin"),
    ]


def test_renamed_capture_is_found_by_its_magic_number(tree):
    res = run("-f", "json", str(tree))
    assert res.exit_code == 1
    files = {p.rsplit("/", 1)[-1]: f for p, f in zip(paths(res), json.loads(res.stdout)["files"])}
    assert files["renamed.dat"]["format"] == "pcap-nsec"
    assert files["trace.bin"]["format"] == "pcapng"
    assert files["x.gzdata"]["connections"][0]["handshake"] == "complete"


def test_glob_is_expanded_by_pcapcheck(tree, monkeypatch):
    monkeypatch.chdir(tree)
    res = run("-f", "json", "**/*.pcap", "a/*.ca?")
    assert res.exit_code == 1, res.stderr
    assert paths(res) == ["b/deep/z.pcap", "a/y.cap"]


def test_glob_matching_nothing_is_one_line_exit_2(tmp_path):
    pattern = str(tmp_path / "captures" / "**" / "*.pcap")
    res = run(pattern)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        f"pcapcheck: error: {pattern}: no file matches this pattern"
    ]


def test_directory_without_captures_is_one_line_exit_2(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    res = run(str(tmp_path))
    assert res.exit_code == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path) in lines[0] and "no capture files" in lines[0]


def test_stdin_is_read_from_dash():
    res = run("-f", "json", "-", input=HS002.read_bytes())
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)["files"][0]
    assert doc["path"] == STDIN_NAME and doc["packets"] == 3
    assert [f["rule"] for f in doc["findings"]] == ["HS002"]


def test_stdin_gzip_and_files_mixed(tmp_path):
    res = run("-f", "json", str(CLEAN), "-", input=gzip.compress(HS002.read_bytes()))
    assert res.exit_code == 1
    assert paths(res) == [str(CLEAN), STDIN_NAME]


def test_stdin_that_is_not_a_capture_names_stdin_not_the_temp_file():
    res = run("-", input=b"GET / HTTP/1.1\r\n")
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pcapcheck: error: {STDIN_NAME}: not a capture")


def test_stdin_twice_is_an_error():
    with pytest.raises(InputError, match="only once"), collect_inputs(["-", "-"], stdin=None):
        pass


def test_missing_file_is_passed_to_the_reader():
    with collect_inputs(["/nonexistent/x.pcap"]) as inputs:
        assert [i.name for i in inputs] == ["/nonexistent/x.pcap"]
