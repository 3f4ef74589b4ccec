"""`pcapcheck rules list | show | check | test`."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT, SAMPLES
from typer.testing import CliRunner

from pcapcheck.catalog.rules import load_catalog
from pcapcheck.cli import app

runner = CliRunner()
CATALOG = load_catalog()
RULES = ROOT / "rules"


def run(*args: str):
    return runner.invoke(app, ["rules", *args])


def one_error_line(res) -> str:
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, lines
    return lines[0]


@pytest.fixture
def rule_dir(tmp_path):
    """tmp/rules/ with a copy of HS002 and tmp/sample_pcaps/crafted/ beside it."""
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES / "HS002.yaml", tmp_path / "rules" / "HS002.yaml")
    shutil.copytree(
        SAMPLES / "crafted",
        tmp_path / "sample_pcaps" / "crafted",
        ignore=shutil.ignore_patterns("*.yaml", "*.md"),
    )
    return tmp_path / "rules"


def test_list_table_has_every_rule_with_default():
    res = run("list")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["id", "name", "severity", "default", "summary"]
    assert len(lines) == 2 + len(CATALOG)
    cp004 = next(line for line in lines if line.startswith("CP004"))
    assert cp004.split()[1:4] == ["bad-checksum", "info", "off"]


def test_list_json():
    res = run("list", "--format", "json")
    rows = json.loads(res.stdout)
    assert [r["id"] for r in rows] == sorted(CATALOG.rules)
    assert rows[0] == {
        "id": "CL001",
        "name": "fin-unacked",
        "severity": "error",
        "default": "on",
        "summary": CATALOG.get("CL001").summary,
    }


def test_show_prints_the_whole_explanation():
    res = run("show", "cl010")
    assert res.exit_code == 0
    rule = CATALOG.get("CL010")
    out = res.stdout
    assert out.startswith("# time-wait-reuse (CL010)\n")
    for part in (
        rule.summary,
        rule.message,
        rule.rfc,
        "## Why is this bad?",
        "## Example",
        "Wireshark: tcp.analysis.reused_ports",
        "`msl` (number, > 0, default 120)",
        "trigger: crafted/cl010_time-wait-reuse.pcap",
        "[rules.CL010]",
    ):
        assert part in out, part
    assert rule.explanation.strip() in out


def test_show_default_off_rule_and_json():
    assert "select it with --select CP004" in run("show", "CP004").stdout
    doc = json.loads(run("show", "HS002", "--format", "json").stdout)
    assert doc["id"] == "HS002" and doc["default"] == "on" and "suricata" in doc["equivalents"]


def test_show_unknown_rule_is_exit_2():
    assert "unknown rule 'XY001'" in one_error_line(run("show", "XY001"))


def test_check_ok(rule_dir):
    res = run("check", str(rule_dir))
    assert res.exit_code == 0 and res.stdout.strip() == f"{rule_dir}: 1 rule OK"
    assert run("check", str(RULES)).stdout.strip().endswith(f"{len(CATALOG)} rules OK")


def test_check_bad_rule_is_the_catalog_error(rule_dir):
    path = rule_dir / "HS002.yaml"
    path.write_text(path.read_text().replace("severity: error", "severity: fatal", 1))
    line = one_error_line(run("check", str(rule_dir)))
    assert line.startswith("pcapcheck: error: ") and "HS002.yaml: severity: 'fatal'" in line


def test_check_empty_and_missing_directories(tmp_path):
    assert "no rule files" in one_error_line(run("check", str(tmp_path)))
    assert "no such rules directory" in one_error_line(run("check", str(tmp_path / "nope")))


def test_test_every_shipped_rule_passes():
    res = run("test")
    assert res.exit_code == 0, res.stdout
    lines = res.stdout.splitlines()
    assert len(lines) == len(CATALOG) + 1
    assert all(line.startswith("PASS ") for line in lines[:-1])
    assert "PASS CP004 bad-checksum (1 trigger, 1 clean)" in lines  # default-off rule
    assert lines[-1] == f"{len(CATALOG)} rules: {len(CATALOG)} passed, 0 failed"


def test_test_a_rule_directory_with_samples_beside_it(rule_dir):
    res = run("test", "--rules", str(rule_dir))
    assert res.exit_code == 0
    assert res.stdout.splitlines() == [
        "PASS HS002 synack-bad-ack (2 trigger, 3 clean)",
        "1 rule: 1 passed, 0 failed",
    ]


def test_test_failures_exit_1(rule_dir):
    path = rule_dir / "HS002.yaml"
    text = path.read_text()
    text = text.replace(
        "trigger: [crafted/hs002_synack-bad-ack.pcap, crafted/hs002_synack-bad-ack_recovered.pcap]",
        "trigger: [crafted/clean_handshake_close.pcap, crafted/missing.pcap]",
    )
    text = text.replace(
        "clean: [crafted/clean_handshake_close.pcap,", "clean: [crafted/hs002_synack-bad-ack.pcap,"
    )
    path.write_text(text)
    res = run("test", "--rules", str(rule_dir))
    assert res.exit_code == 1
    fail_line, summary = res.stdout.splitlines()
    assert fail_line.startswith("FAIL HS002 synack-bad-ack: ")
    assert "did not fire on trigger crafted/clean_handshake_close.pcap" in fail_line
    assert "trigger crafted/missing.pcap: " in fail_line and "no such file" in fail_line
    assert "fired on clean crafted/hs002_synack-bad-ack.pcap" in fail_line
    assert summary == "1 rule: 0 passed, 1 failed"


def test_test_bad_rule_directory_is_exit_2(tmp_path):
    assert "no such rules directory" in one_error_line(
        run("test", "--rules", str(tmp_path / "nope"))
    )
