"""Issue 23, items 11-13: hostile or unlucky input and output never give a traceback.

Each case is a one-line ``pcapcheck: error: ...`` on stderr and exit status 2: output to
a full disk or a closed pipe (standard output and ``-o FILE``), the standard-input copy
over a file-size limit, ``--rules`` naming a device, deeply nested TOML and JSON, a
configuration or baseline that never ends (``/dev/zero``), rule parameters and timers
out of range. Every format writes valid UTF-8 for a capture whose name is not UTF-8,
and CSV quotes a bare CR. The command line runs in a subprocess here (as CI runs it):
the streams are the real ones, and ``pcapcheck.cli.main`` is the entry point.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES

from pcapcheck.report import FORMATS, utf8_text

HS002 = str(SAMPLES / "crafted" / "hs002_synack-bad-ack.pcap")
CL010 = str(SAMPLES / "crafted" / "cl010_time-wait-reuse.pcap")
FULL = "/dev/full"
needs_dev_full = pytest.mark.skipif(not os.path.exists(FULL), reason="no /dev/full")


def pcapcheck(
    *args: str,
    stdin: bytes | None = None,
    stdout: object = subprocess.PIPE,
    cwd: Path | str = ROOT,
    limit_file_size: int | None = None,
) -> subprocess.CompletedProcess:
    def limits() -> None:
        if limit_file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pcapcheck", *args],
        input=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        preexec_fn=limits,
        timeout=120,
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess, *parts: str) -> str:
    """The one stderr line of a failed run (exit 2, no traceback), containing ``parts``."""
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "╭" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pcapcheck: error: "), err
    for part in parts:
        assert part in lines[0], (part, err)
    return lines[0]


# --------------------------------------------------------------------------- item 11


@needs_dev_full
@pytest.mark.parametrize(
    "args",
    [
        ("analyze", HS002),
        ("analyze", HS002, "-f", "json"),
        ("analyze", HS002, "-f", "csv"),
        ("rules", "list"),
        ("rules", "list", "-f", "json"),
        ("rules", "show", "CL010"),
        ("ladder", HS002),
    ],
    ids=lambda a: " ".join(x for x in a if x != HS002),
)
def test_standard_output_on_a_full_disk(args):
    quiet = ("-q",) if args[0] == "analyze" else ()
    with open(FULL, "wb") as full:
        proc = pcapcheck(*args, *quiet, stdout=full)
    one_error_line(proc, "cannot write the standard output: No space left on device")


@needs_dev_full
def test_any_command_on_a_full_disk(tmp_path):
    """What a command does not word itself is worded by the entry point (``grade``)."""
    grading = SAMPLES / "grading"
    with open(FULL, "wb") as full:
        proc = pcapcheck(
            "grade",
            str(grading / "submissions"),
            "--rubric",
            str(grading / "http_lab.yaml"),
            "--out",
            str(tmp_path / "out"),
            stdout=full,
        )
    one_error_line(proc, "cannot write", "No space left on device")


@needs_dev_full
def test_report_file_on_a_full_disk():
    proc = pcapcheck("analyze", HS002, "-q", "-f", "json", "-o", FULL)
    one_error_line(proc, f"cannot write {FULL}: No space left on device")
    proc = pcapcheck("analyze", HS002, "-q", "-f", f"csv={FULL}")
    one_error_line(proc, f"cannot write {FULL}: No space left on device")


def test_standard_output_closed_early():
    """``pcapcheck analyze ... | head -c 10``: EPIPE is one line, exit 2."""
    captures = sorted(str(p) for p in (SAMPLES / "crafted").glob("*.pcap"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pcapcheck", "analyze", *captures, "-q", "-f", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, None, err)
    one_error_line(done, "cannot write the standard output: Broken pipe")


def test_standard_input_copy_over_the_file_size_limit():
    """The copy of ``-`` meets RLIMIT_FSIZE (EFBIG, as a full disk gives ENOSPC)."""
    data = (SAMPLES / "crafted" / "hs002_synack-bad-ack.pcap").read_bytes()
    data += b"\0" * 300_000  # the copy is larger than the limit
    proc = pcapcheck("analyze", "-", "-q", stdin=data, limit_file_size=100_000)
    one_error_line(proc, "-: cannot copy standard input to ", "File too large")


@pytest.mark.parametrize("where", ["/dev/null", "/dev/zero"])
def test_rules_naming_a_device(where, tmp_path):
    for args in (("analyze", HS002, "-q", "--rules", where), ("rules", "list", "--rules", where)):
        proc = pcapcheck(*args)
        one_error_line(proc, f"{where}: not a rules directory nor a rule file")
    config = tmp_path / "pcapcheck.toml"
    config.write_text(f'rules-dirs = ["{where}"]\n', encoding="utf-8")
    proc = pcapcheck("analyze", HS002, "-q", "--config", str(config))
    one_error_line(proc, f"{where}: not a rules directory nor a rule file")


def test_rules_naming_a_capture_file():
    proc = pcapcheck("analyze", HS002, "-q", "--rules", HS002)
    one_error_line(proc, "not a rule file (expected .yaml or .yml)")


def test_deeply_nested_configuration(tmp_path):
    config = tmp_path / "pcapcheck.toml"
    config.write_text("a = " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8")
    proc = pcapcheck("analyze", HS002, "-q", "--config", str(config))
    one_error_line(proc, "invalid TOML: nested too deeply")
    # found by the upward search as well (pyproject.toml naming tool.pcapcheck)
    (tmp_path / "pyproject.toml").write_text(
        "[tool.pcapcheck]\nx = " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8"
    )
    config.unlink()
    proc = pcapcheck("analyze", HS002, "-q", cwd=tmp_path)
    one_error_line(proc, "invalid TOML: nested too deeply")


def test_deeply_nested_baseline(tmp_path):
    baseline = tmp_path / "baseline.json"
    baseline.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    proc = pcapcheck("analyze", HS002, "-q", "--baseline", str(baseline))
    one_error_line(proc, "invalid JSON: nested too deeply")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--config", "/dev/zero: larger than 10 MB: not a configuration file"),
        ("--baseline", "/dev/zero: larger than 100 MB: not a pcapcheck baseline"),
    ],
)
def test_files_that_never_end(option, message):
    proc = pcapcheck("analyze", HS002, "-q", option, "/dev/zero")
    one_error_line(proc, message)


# --------------------------------------------------------------------------- item 12


@pytest.fixture(scope="module")
def undecodable(tmp_path_factory):
    """Two copies of an HS002 capture whose names are not UTF-8 (one holds a CR)."""
    top = tmp_path_factory.mktemp("names")
    names = [b"bad\xffname.pcap", b"bad\xfe\rname.pcap"]
    for name in names:
        shutil.copy(HS002, os.path.join(os.fsencode(top), name))
    return top, names


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_writes_utf8_for_an_undecodable_name(undecodable, fmt):
    top, names = undecodable
    proc = pcapcheck("analyze", *(os.fsdecode(n) for n in names), "-q", "-f", fmt, cwd=top)
    assert proc.returncode == 1, proc.stderr.decode("utf-8", "replace")
    text = proc.stdout.decode("utf-8")  # raises when the bytes are not UTF-8
    assert "\\xff" in text or "%5Cxff" in text  # the documented policy: \xNN
    if fmt == "json":
        paths = [f["path"] for f in json.loads(text)["files"]]
        assert paths == ["bad\\xffname.pcap", "bad\\xfe\rname.pcap"]
    if fmt == "sarif":
        log = json.loads(text)
        uris = [a["location"]["uri"] for a in log["runs"][0]["artifacts"]]
        assert uris == ["bad%5Cxffname.pcap", "bad%5Cxfe%0Dname.pcap"]
    if fmt == "jsonl":
        assert {json.loads(line)["path"] for line in text.splitlines()} == {
            "bad\\xffname.pcap",
            "bad\\xfe\rname.pcap",
        }


def test_undecodable_name_in_a_report_file(undecodable):
    top, names = undecodable
    proc = pcapcheck(
        "analyze", os.fsdecode(names[0]), "-q", "-f", "markdown", "-o", "out.md", cwd=top
    )
    assert proc.returncode == 1
    assert "bad\\xffname.pcap" in (top / "out.md").read_bytes().decode("utf-8")


def test_utf8_text_policy():
    assert utf8_text("plain é.pcap") == "plain é.pcap"
    assert utf8_text(os.fsdecode(b"a\xff\xc3b")) == "a\\xff\\xc3b"
    assert utf8_text("x\ud800y") == "x\\ud800y"  # a surrogate that stands for no byte


def test_csv_quotes_a_bare_cr(undecodable):
    top, names = undecodable
    proc = pcapcheck("analyze", os.fsdecode(names[1]), "-q", "-f", "csv", cwd=top)
    text = proc.stdout.decode("utf-8")
    lines = text.split("\n")
    assert lines[1].startswith('"bad\\xfe\rname.pcap",HS002,synack-bad-ack,error,1,2,')
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert [row[0] for row in rows] == ["path", "bad\\xfe\rname.pcap"]
    assert [row[1] for row in rows[1:]] == ["HS002"]
    assert text.count("\r\n") == 0 and text.endswith("\n")  # rows still end in LF alone


# --------------------------------------------------------------------------- item 13


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[rules.CL010]\nmsl = -1\n", "rules.CL010.msl: expected a number > 0, got -1"),
        ("[rules.CL010]\nmsl = 0\n", "rules.CL010.msl: expected a number > 0, got 0"),
        ("[rules.CL010]\nmsl = nan\n", "rules.CL010.msl: expected number, got nan"),
        ("[rules.CL010]\nmsl = inf\n", "rules.CL010.msl: expected number, got inf"),
        (  # found by tests/fuzz/fuzz_config.py: an OverflowError traceback before
            "[rules.CL010]\nmsl = " + "9" * 400 + "\n",
            "rules.CL010.msl: expected number, got 9999",
        ),
        (
            "[rules.SQ006]\nreorder_window = -0.5\n",
            "rules.SQ006.reorder_window: expected a number >= 0, got -0.5",
        ),
        (
            "[rules.CP008]\nmax_interval = -1e-9\n",
            "rules.CP008.max_interval: expected a number >= 0, got -1e-09",
        ),
    ],
)
def test_rule_parameters_out_of_range_in_the_configuration(tmp_path, table, message):
    config = tmp_path / "pcapcheck.toml"
    config.write_text(table, encoding="utf-8")
    proc = pcapcheck("analyze", CL010, "-q", "--config", str(config))
    one_error_line(proc, message)


def test_rule_parameters_out_of_range_through_the_api():
    from pcapcheck.api import OptionError, analyze

    with pytest.raises(OptionError, match=r"^params: CL010: params.msl: expected a number > 0"):
        analyze([CL010], params={"CL010": {"msl": -1}})
    with pytest.raises(OptionError, match=r"expected number, got nan"):
        analyze([CL010], params={"CL010": {"msl": float("nan")}})


def test_rule_file_whose_default_is_out_of_range(tmp_path):
    text = (ROOT / "rules" / "CL010.yaml").read_text(encoding="utf-8")
    assert "    default: 120\n" in text
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "CL010.yaml").write_text(text.replace("    default: 120\n", "    default: -1\n"))
    proc = pcapcheck("rules", "check", str(rules))
    one_error_line(proc, "CL010.yaml: params.msl.default: expected a number > 0, got -1")
    # a bound on a string parameter is not a range: the schema refuses it
    (rules / "CL010.yaml").write_text(
        text.replace("    type: number\n", "    type: string\n").replace(
            "    default: 120\n", "    default: 'x'\n"
        )
    )
    proc = pcapcheck("rules", "check", str(rules))
    one_error_line(proc, "CL010.yaml")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--idle-timeout", "nan", "idle_timeout: expected a finite number of seconds >= 0"),
        ("--idle-timeout", "-1", "idle_timeout: expected a finite number of seconds >= 0"),
        ("--idle-timeout", "inf", "idle_timeout: expected a finite number of seconds >= 0"),
        ("--close-delay", "-1", "close_delay: expected a finite number of seconds >= 0"),
        ("--jobs", "0", "jobs: expected a number of processes >= 1"),
    ],
)
def test_timers_out_of_range_are_one_line(option, value, message):
    proc = pcapcheck("analyze", HS002, "-q", option, value)
    one_error_line(proc, message)
