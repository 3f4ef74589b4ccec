"""The CI gate: exit statuses, --fail-on, --exit-zero, --statistics, several report formats
in one run, the summary line and the progress bar (only on a terminal)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES
from typer.testing import CliRunner

import pcapcheck.report as report
from pcapcheck.cli import app
from pcapcheck.commands.analyze import gate_status, progress, progress_enabled

runner = CliRunner()
CLEAN = str(SAMPLES / "loopback" / "client_close_first.pcap")  # no findings
HS002 = str(SAMPLES / "crafted" / "hs002_synack-bad-ack.pcap")  # error + warning
CL003 = str(SAMPLES / "crafted" / "cl003_close-incomplete.pcap")  # warning
OPEN = str(SAMPLES / "loopback" / "open_at_end.pcap")  # info
TEXT = str(SAMPLES / "encap" / "bad" / "text.pcap")  # not a capture


def run(*args: str, **kw):
    return runner.invoke(app, ["analyze", "--isolated", *args], **kw)


# --------------------------------------------------------------------------- exit status


@pytest.mark.parametrize(
    "args,code",
    [
        ([CLEAN], 0),
        ([OPEN], 0),  # info does not fail by default
        ([CL003], 0),  # nor a warning
        ([HS002], 1),  # an error does
        (["--fail-on", "warning", CL003], 1),
        (["--fail-on", "info", OPEN], 1),
        (["--fail-on", "never", HS002], 0),
        (["--exit-zero", HS002], 0),
        (["--exit-zero", "--fail-on", "info", OPEN, CL003], 0),
        (["--exit-zero", HS002, TEXT], 2),  # unreadable input still fails
        (["--exit-zero", "--select", "XY999", HS002], 2),
        (["--fail-on", "fatal", HS002], 2),  # usage error
        ([HS002, TEXT], 2),  # input error beats findings
    ],
)
def test_exit_status(args, code):
    res = run(*args)
    assert res.exit_code == code, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr


def test_gate_status_thresholds():
    finding = dataclasses.make_dataclass("F", ["severity"])
    result = dataclasses.make_dataclass("R", ["findings"])
    results = [result([finding("warning")]), result([finding("info")])]
    assert [gate_status(results, s) for s in ("error", "warning", "info", "never")] == [0, 1, 1, 0]


# --------------------------------------------------------------------------- formats


def test_several_formats_in_one_run(tmp_path):
    out = tmp_path / "report.json"
    res = run("-f", "table", "-f", f"json={out}", HS002)
    assert res.exit_code == 1
    assert "HS002" in res.stdout and not res.stdout.lstrip().startswith("{")
    assert json.loads(out.read_text())["files"][0]["findings"][0]["rule"] == "HS002"


def test_output_redirects_the_format_without_a_file(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.json"
    res = run("-f", "table", "-f", f"json={b}", "-o", str(a), HS002)
    assert res.exit_code == 1 and res.stdout == ""
    assert "HS002" in a.read_text() and json.loads(b.read_text())["files"]


@pytest.mark.parametrize(
    "args,words",
    [
        (["-f", "xml"], "--format: unknown format 'xml' (valid: table, json"),
        (["-f", "table", "-f", "json"], "at most one format can go to standard output"),
        (
            [
                "-f",
                "json=",
            ],
            "no file name after '='",
        ),
        (["-f", "json=a.json", "-o", "b.json"], "--output names the file of the format given"),
        (["-f", "json=same", "-f", "table=same"], "both the json and the table report"),
    ],
)
def test_format_usage_errors(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    res = run(*args, HS002)
    assert res.exit_code == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines
    assert list(tmp_path.iterdir()) == []  # nothing analysed, nothing written


def test_unknown_format_lists_every_valid_one():
    res = run("-f", "nope", HS002)
    for name in report.FORMATS:
        assert name in res.stderr


def test_ci_formats_together(tmp_path):
    for name in ("junit", "sarif"):
        if name not in report.FORMATS:
            pytest.skip(f"the {name} report is not there yet")
    junit, sarif = tmp_path / "report.xml", tmp_path / "out.sarif"
    res = run("-f", "table", "-f", f"junit={junit}", "-f", f"sarif={sarif}", HS002)
    assert res.exit_code == 1
    assert "HS002" in res.stdout and "HS002" in junit.read_text()
    assert json.loads(sarif.read_text())["runs"]


def test_github_format_appends_the_step_summary(tmp_path, monkeypatch):
    if "github" not in report.FORMATS:
        pytest.skip("the github report is not there yet")
    pytest.importorskip("pcapcheck.report.github").write_step_summary  # noqa: B018
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    res = run("-f", "github", HS002)
    assert res.exit_code == 1 and "HS002" in res.stdout
    text = summary.read_text()
    assert text.startswith("before\n") and "HS002" in text


# --------------------------------------------------------------------------- statistics


class _Context:
    def __init__(self, catalog, active, statistics):
        self.catalog, self.active, self.statistics = catalog, active, statistics


@pytest.fixture
def captured(monkeypatch):
    """Replace the table renderer by one recording its context (works before and after
    the report package defines ReportContext)."""
    seen: list = []

    def render(results, ctx=None):
        seen.append((results, ctx))
        return "rendered\n"

    if not hasattr(report, "ReportContext"):
        monkeypatch.setattr(report, "ReportContext", _Context, raising=False)
    monkeypatch.setitem(report.FORMATS, "table", render)
    return seen


def test_statistics_reaches_the_report_context(captured):
    res = run("--statistics", "--select", "HS,RS", HS002)
    assert res.exit_code == 1 and res.stdout == "rendered\n"
    ((results, ctx),) = captured
    assert ctx.statistics is True
    assert isinstance(ctx.active, frozenset) and "HS002" in ctx.active and "CL001" not in ctx.active
    assert "HS002" in ctx.catalog
    assert [f.rule for f in results[0].findings] == ["HS002"]


def test_no_statistics_by_default(captured):
    run(HS002)
    assert captured[0][1].statistics is False


def test_statistics_with_the_real_report_context():
    if not hasattr(report, "ReportContext"):
        pytest.skip("pcapcheck.report.ReportContext is not there yet")
    res = run("--statistics", "-f", "json", HS002, CL003)
    assert res.exit_code == 1 and json.loads(res.stdout)


# --------------------------------------------------------------------------- stderr


def test_summary_line_when_every_report_goes_to_a_file(tmp_path):
    res = run("-f", f"json={tmp_path / 'r.json'}", HS002, CL003)
    assert res.stderr == "pcapcheck: 2 files, 2 findings (1 error, 1 warning)\n"
    assert run("-q", "-f", f"json={tmp_path / 'r.json'}", HS002).stderr == ""
    assert run(HS002).stderr == ""  # the table has its own summary lines


def test_progress_only_on_a_terminal_and_not_quiet():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert progress_enabled(False, Tty()) is True
    assert progress_enabled(True, Tty()) is False
    assert progress_enabled(False, io.StringIO()) is False


def test_disabled_progress_is_a_no_op(capsys):
    with progress(2, False) as bar:
        bar.start("x.pcap")
        bar.advance()
        bar.log("pcapcheck: error: x.pcap: empty")
    assert capsys.readouterr().err == "pcapcheck: error: x.pcap: empty\n"


def test_no_progress_bar_on_a_pipe():
    proc = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "analyze", "--isolated", CLEAN, CLEAN],
        capture_output=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and proc.stderr == b""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a Linux pty")
def test_progress_bar_on_a_terminal():
    import pty
    import select

    def stderr_on_a_tty() -> bytes:
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pcapcheck", "analyze", "--isolated", "-f", "json", CLEAN],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
        )
        os.close(slave)
        data = b""
        while select.select([master], [], [], 10)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        os.close(master)
        assert proc.wait(10) == 0
        return data

    assert b"client_close_first.pcap" in stderr_on_a_tty()  # -q: test_progress_only_on_a_terminal


# --------------------------------------------------------------------------- README: CI gating


def test_ci_examples_are_valid_yaml_and_their_commands_work(tmp_path, monkeypatch):
    import re
    import shlex

    import yaml

    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "pcapcheck-junit.xml" in b]
    github, gitlab = (yaml.safe_load(b) for b in blocks)
    steps = github["jobs"]["pcapcheck"]["steps"]
    publish = next(s for s in steps if "publish-unit-test-result" in s.get("uses", ""))
    assert publish["if"] == "always()" and publish["with"]["files"] == "pcapcheck-junit.xml"
    artifacts = gitlab["pcapcheck"]["artifacts"]
    assert artifacts["when"] == "always" and artifacts["reports"]["junit"] == "pcapcheck-junit.xml"
    commands = [s["run"] for s in steps if s.get("run", "").startswith("pcapcheck ")]
    commands += [c for c in gitlab["pcapcheck"]["script"] if c.startswith("pcapcheck ")]
    assert len(commands) == 2
    (tmp_path / "captures").mkdir()
    for name in ("hs002_synack-bad-ack.pcap", "clean_handshake_close.pcap"):
        (tmp_path / "captures" / name).write_bytes((SAMPLES / "crafted" / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)  # never write the real one
    for command in commands:
        args = shlex.split(command)[1:]
        res = runner.invoke(app, [args[0], "--isolated", *args[1:]])
        assert res.exit_code == 1, (command, res.stderr)  # HS002 fails the job
        assert "<testsuites" in (tmp_path / "pcapcheck-junit.xml").read_text()
        (tmp_path / "pcapcheck-junit.xml").unlink()
