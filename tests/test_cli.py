"""The command line: tables, JSON document, selection, exit statuses, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES
from typer.testing import CliRunner

from pcapcheck.cli import app

runner = CliRunner()
CLEAN = str(SAMPLES / "loopback" / "client_close_first.pcap")
HS002 = str(SAMPLES / "crafted" / "hs002_synack-bad-ack.pcap")
HS013 = str(SAMPLES / "crafted" / "hs013_fin-before-established.pcap")  # HS013 and RS004
CL003 = str(SAMPLES / "crafted" / "cl003_close-incomplete.pcap")
OPEN = str(SAMPLES / "loopback" / "open_at_end.pcap")


def run(*args: str):
    return runner.invoke(app, list(args))


def test_table_shows_connection_and_findings_tables_and_summary():
    res = run("analyze", HS002)
    assert res.exit_code == 1
    out = res.stdout
    for header in ("client state", "server state", "conn_state", "handshake", "close"):
        assert header in out
    assert "HS002" in out and "SYN-ACK acknowledges 0, expected client ISN+1 = 1" in out
    assert out.rstrip().endswith("1 connection, 1 finding (1 error) in 3 packets")


def test_clean_loopback_recording_exits_zero_with_both_tables():
    res = run("analyze", CLEAN)
    assert res.exit_code == 0
    assert "TIME-WAIT" in res.stdout and "127.0.0.1:47101" in res.stdout
    assert "1 connection, 0 findings in 10 packets" in res.stdout


@pytest.mark.parametrize("fail_on,code", [("error", 0), ("warning", 1), ("info", 1), ("never", 0)])
def test_fail_on_threshold(fail_on, code):
    assert run("analyze", "--fail-on", fail_on, CL003).exit_code == code


def test_info_findings_fail_only_at_fail_on_info():
    assert run("analyze", OPEN).exit_code == 0
    assert run("analyze", "--fail-on", "info", OPEN).exit_code == 1


def test_json_document_keys():
    res = run("analyze", "--format", "json", HS002)
    doc = json.loads(res.stdout)
    assert set(doc) >= {"version", "files"}
    f = doc["files"][0]
    assert f["path"] == HS002 and f["packets"] == 3
    conn = f["connections"][0]
    assert {
        "id",
        "client",
        "server",
        "client_state",
        "server_state",
        "conn_state",
        "history",
        "handshake",
        "close",
        "transitions",
    } <= set(conn)
    assert (conn["id"], conn["client"], conn["server"]) == (1, "10.0.0.1:40000", "10.0.0.2:80")
    # the client's RST answers the bad SYN-ACK: it stays in SYN-SENT (RFC 9293 §3.10.7.3)
    assert (conn["client_state"], conn["server_state"]) == ("SYN-SENT", "LISTEN")
    assert conn["transitions"]["server"][0] == {
        "frame": 2,
        "from": "LISTEN",
        "to": "SYN-RECEIVED",
        "cause": "snd SYN,ACK",
    }
    finding = f["findings"][0]
    assert {k: finding[k] for k in ("rule", "name", "severity", "connection", "frame")} == {
        "rule": "HS002",
        "name": "synack-bad-ack",
        "severity": "error",
        "connection": 1,
        "frame": 2,
    }
    # relative numbers in the message, absolute ones in the data
    assert finding["data"]["ack"] == 0 and finding["data"]["expected"] == 1
    assert (
        finding["data"]["expected_abs"] == finding["data"]["ack_abs"] + 1 == conn["client_isn"] + 1
    )


def test_ipv6_endpoints_are_bracketed():
    doc = json.loads(run("analyze", "-f", "json", str(SAMPLES / "loopback" / "ipv6.pcap")).stdout)
    conn = doc["files"][0]["connections"][0]
    assert conn["client"].startswith("[::1]:") and conn["server"] == "[::1]:47108"


def test_select_and_ignore_take_ids_and_prefixes():
    assert run("analyze", "--ignore", "HS002", HS002).exit_code == 0
    res = run("analyze", "-f", "json", "--select", "RS", HS013)
    assert [f["rule"] for f in json.loads(res.stdout)["files"][0]["findings"]] == ["RS004"]
    res = run("analyze", "-f", "json", "--ignore", "HS,RS", HS013)
    assert json.loads(res.stdout)["files"][0]["findings"] == []


def test_unknown_selector_is_a_usage_error():
    res = run("analyze", "--select", "XY999", CLEAN)
    assert res.exit_code == 2
    assert "XY999" in res.stderr and "Traceback" not in res.stderr


def test_output_file(tmp_path):
    out = tmp_path / "report.json"
    res = run("analyze", "-f", "json", "-o", str(out), HS002)
    assert res.exit_code == 1 and res.stdout == ""
    assert json.loads(out.read_text())["files"][0]["findings"][0]["rule"] == "HS002"


@pytest.mark.parametrize(
    "path,words",
    [
        ("/nonexistent/x.pcap", "no such file"),
        (str(SAMPLES / "encap" / "bad" / "empty.pcap"), "empty"),
        (str(SAMPLES / "encap" / "bad" / "text.pcap"), "not a capture"),
    ],
)
def test_unreadable_input_is_one_line_exit_2(path, words):
    res = run("analyze", path)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and path in lines[0]


def test_directory_without_captures_is_one_line_exit_2(tmp_path):
    (tmp_path / "README.md").write_text("no captures here\n")
    res = run("analyze", str(tmp_path))
    assert res.exit_code == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "directory" in lines[0] and str(tmp_path) in lines[0]


def test_directory_is_searched_for_captures():
    res = run("analyze", "-f", "json", str(SAMPLES / "loopback"))
    paths = [f["path"] for f in json.loads(res.stdout)["files"]]
    on_disk = sorted(str(p) for p in (SAMPLES / "loopback").glob("*.pcap"))
    assert res.exit_code == 0 and paths == on_disk and len(paths) == 15
    assert paths[0] == str(SAMPLES / "loopback" / "abort_linger0.pcap")


def test_several_formats_and_the_output_option(tmp_path):
    report = tmp_path / "report.json"
    res = run("analyze", "-f", "table", "-f", f"json={report}", HS002)
    assert res.exit_code == 1 and "SYN-ACK acknowledges 0" in res.stdout
    assert json.loads(report.read_text())["files"][0]["path"] == HS002
    res = run("analyze", "-f", "nope", HS002)
    assert res.exit_code == 2 and "unknown format 'nope' (valid: table, json" in res.stderr


def test_bad_file_among_good_ones_still_reports_the_good_ones():
    res = run("analyze", "-f", "json", HS002, "/nonexistent/x.pcap")
    assert res.exit_code == 2
    files = json.loads(res.stdout)["files"]
    assert [f["path"] for f in files] == [HS002, "/nonexistent/x.pcap"]
    assert "no such file" in files[1]["error"] and "findings" not in files[1]


def test_file_cut_mid_record_is_analysed_up_to_the_cut():
    path = str(SAMPLES / "crafted" / "cp006_capture-truncated.pcap")
    res = run("analyze", "-f", "json", path)
    doc = json.loads(res.stdout)["files"][0]
    assert res.exit_code == 0
    assert doc["packets"] == 10 and doc["truncated"]
    assert [(f["rule"], f["frame"]) for f in doc["findings"]] == [("CP006", None)]
    assert doc["connections"][0]["handshake"] == "complete"


def test_empty_but_valid_capture_is_not_an_error():
    res = run("analyze", str(SAMPLES / "encap" / "bad" / "header_only.pcap"))
    assert res.exit_code == 0 and "0 connections, 0 findings in 0 packets" in res.stdout


def test_python_dash_m_works_and_bad_input_never_tracebacks():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcapcheck",
            "analyze",
            str(SAMPLES / "encap" / "bad" / "text.pcap"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("pcapcheck: error:") and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0 and proc.stdout.startswith("pcapcheck ")


def test_inferred_roles_are_marked_in_the_table_and_json():
    path = str(SAMPLES / "crafted" / "cp001_midstream.pcap")
    res = run("analyze", path)
    assert "10.0.0.1:40000*" in res.stdout and "inferred (the sender of" in res.stdout
    conn = json.loads(run("analyze", "-f", "json", path).stdout)["files"][0]["connections"][0]
    assert conn["roles_inferred"] is True and conn["handshake"] == "none"


def test_retransmitted_syn_data_points_at_the_syn():
    doc = json.loads(
        run(
            "analyze", "-f", "json", str(SAMPLES / "crafted" / "hs012_syn-with-data_rejected.pcap")
        ).stdout
    )
    sq002 = [f for f in doc["files"][0]["findings"] if f["rule"] == "SQ002"]
    assert [(f["frame"], f["data"]["first_frame"], f["data"]["seq"]) for f in sq002] == [(3, 1, 1)]


def test_jobs_give_the_serial_report_in_the_same_order():
    files = [str(p) for p in sorted((SAMPLES / "crafted").glob("hs00*.pcap"))] + [CLEAN]
    serial = run("analyze", "-f", "json", "--jobs", "1", *files)
    parallel = run("analyze", "-f", "json", "--jobs", "2", *files, "/nonexistent/x.pcap")
    assert parallel.exit_code == 2 and serial.exit_code == 1
    one, two = json.loads(serial.stdout), json.loads(parallel.stdout)
    assert two["files"][:-1] == one["files"]
    assert two["files"][-1] == {
        "path": "/nonexistent/x.pcap",
        "error": "/nonexistent/x.pcap: no such file",
    }


@pytest.mark.parametrize("given, expected", [(None, "1"), ("3", "3")])
def test_the_command_asks_openblas_for_one_thread_unless_told(given, expected):
    # numpy's OpenBLAS threads spin for ~0.1 s of CPU each at import, taken from the
    # other --jobs workers; the command sets OPENBLAS_NUM_THREADS=1 before any worker
    # imports numpy, and keeps a value the user set
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = (
        "import atexit, os, sys\n"
        "sys.argv = ['pcapcheck', '--version']\n"
        "from pcapcheck.cli import main\n"
        "atexit.register(lambda: print(os.environ.get('OPENBLAS_NUM_THREADS')))\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[-1] == expected


def test_the_command_leaves_at_once_with_its_status_output_and_no_temporary_file(tmp_path):
    """main() ends with os._exit (no interpreter teardown, issue #4) after the atexit
    handlers and a flush: the exit status is kept, every byte of the report reaches a
    pipe, and the spools' temporary files (a capture in shards, fed: pickled spools) are
    deleted."""
    sys.path.insert(0, str(ROOT / "bench"))
    import argparse

    from generate import generate

    capture = tmp_path / "gen.pcap"
    generate(
        argparse.Namespace(
            out=str(capture),
            connections=3000,
            concurrency=16,
            exchanges=2,
            refused=0.05,
            retrans=0.05,
            resets=0.05,
            loss=0.01,
            seed=9,
        )
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PCAPCHECK_SHARD_MIN_BYTES": "0"}
    command = [sys.executable, "-m", "pcapcheck", "analyze", str(capture), "-f", "json"]
    two = subprocess.run([*command, "--jobs", "2"], env=env, capture_output=True, text=True)
    one = run("analyze", str(capture), "-f", "json", "--jobs", "1")
    assert two.returncode == one.exit_code == 1  # warnings: the default gate
    assert (
        two.stdout == one.stdout and len(json.loads(two.stdout)["files"][0]["connections"]) == 3000
    )
    assert list(temp.iterdir()) == []
    table = subprocess.run(
        [*command[:5], "-f", "table", "--jobs", "1"], env=env, capture_output=True, text=True
    )
    assert table.stdout == run("analyze", str(capture), "-f", "table", "--jobs", "1").stdout
    assert len(table.stdout) > 100_000 and table.returncode == 1
    bad = subprocess.run(
        [*command[:4], str(tmp_path / "none.pcap")], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("pcapcheck: error:")
    usage = subprocess.run(
        [*command[:3], "--no-such-option"], env=env, capture_output=True, text=True
    )
    assert usage.returncode == 2 and "No such option" in usage.stderr
