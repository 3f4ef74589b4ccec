"""The public Python API, ``pcapcheck.analyze``: its report is the command line's, its
options are the command line's, bad options raise before anything is analysed, a file
that is not a capture is an error entry, the captures are analysed as the report is
iterated, and ``import pcapcheck`` stays cheap."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES
from typer.testing import CliRunner

import pcapcheck
from pcapcheck.cli import app
from pcapcheck.report import json_report

HS002 = SAMPLES / "crafted" / "hs002_synack-bad-ack.pcap"
#: two findings of two rules and severities: HS013 (error) at frame 2, RS004 (warning) at 4
HS013 = SAMPLES / "crafted" / "hs013_fin-before-established.pcap"
CL003 = SAMPLES / "crafted" / "cl003_close-incomplete.pcap"
CL010 = SAMPLES / "crafted" / "cl010_time-wait-reuse.pcap"
CLEAN = SAMPLES / "loopback" / "client_close_first.pcap"
SAMPLE_SET = [
    HS002,
    CL003,
    CL010,
    CLEAN,
    SAMPLES / "crafted" / "cp006_capture-truncated.pcap",
    SAMPLES / "crafted" / "cp005_malformed-packet.pcap",
]

runner = CliRunner()


def cli_json(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["analyze", "-f", "json", "-q", "--isolated", *args])
    return res.exit_code, res.stdout


def triples(result) -> list[tuple[str, int | None, int | None]]:
    return [(f.rule, f.frame, f.connection) for f in result.findings]


# --------------------------------------------------------------------------- the report


def test_hs002_sample_exact_findings_and_counters():
    report = pcapcheck.analyze(HS002, isolated=True)
    assert isinstance(report, pcapcheck.Report) and len(report) == 1
    (result,) = list(report)
    assert isinstance(result, pcapcheck.FileResult)
    assert result.path == str(HS002)
    assert (result.format, result.packets, result.tcp_packets, result.malformed) == (
        "pcap",
        3,
        3,
        0,
    )
    assert result.truncated is None and dict(result.skipped) == {}
    # the client's RST (frame 3) answers the bad SYN-ACK as RFC 9293 §3.10.7.3 says: no finding
    assert triples(result) == [("HS002", 2, 1)]
    assert [f.severity for f in result.findings] == ["error"]
    assert all(isinstance(f, pcapcheck.Finding) for f in result.findings)
    (conn,) = list(result.connections)
    assert conn["id"] == 1 and conn["findings"] == 1 and conn["first_frame"] == 1
    assert result.worst_severity == "error" and result.failed("error")
    assert report.worst_severity == "error" and report.exit_status == 1


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_api_report_is_the_cli_json_report(jobs, monkeypatch):
    """The same document, byte for byte, and the typed objects carry what it says."""
    monkeypatch.setenv("PCAPCHECK_SHARD_MIN_BYTES", "0")  # jobs=2: files in processes
    paths = [str(p) for p in SAMPLE_SET]
    report = pcapcheck.analyze(paths, isolated=True, jobs=jobs)
    results = list(report)
    code, text = cli_json(*paths)
    assert json_report.render(results) == text
    assert report.exit_status == code
    doc = json.loads(text)
    for result, entry in zip(results, doc["files"], strict=True):
        assert result.path == entry["path"]
        head = (result.format, result.packets, result.tcp_packets, result.malformed)
        assert head == (entry["format"], entry["packets"], entry["tcp_packets"], entry["malformed"])
        assert (result.truncated, dict(result.skipped)) == (entry["truncated"], entry["skipped"])
        assert [
            (f.rule, f.frame, f.connection, f.severity, f.message) for f in result.findings
        ] == [
            (f["rule"], f["frame"], f["connection"], f["severity"], f["message"])
            for f in entry["findings"]
        ]
        assert [c["id"] for c in result.connections] == [c["id"] for c in entry["connections"]]


def test_one_capture_in_shards_gives_the_serial_report(monkeypatch, tmp_path):
    """jobs=2 with one capture: two shards (fed by one reading), merged: the serial
    results, and the JSON text the command line writes."""
    monkeypatch.setenv("PCAPCHECK_SHARD_MIN_BYTES", "0")
    path = SAMPLES / "crafted" / "sq006_out-of-order.pcap"
    serial = list(pcapcheck.analyze(path, isolated=True, select="ALL"))
    sharded = list(pcapcheck.analyze(path, isolated=True, select="ALL", jobs=2))
    encoded = list(
        pcapcheck.analyze(path, isolated=True, select="ALL", jobs=2, encode_summaries=True)
    )
    assert json_report.render(sharded) == json_report.render(serial)
    assert json_report.render(encoded) == json_report.render(serial)
    assert list(sharded[0].findings) == list(serial[0].findings)
    assert list(sharded[0].connections) == list(serial[0].connections)
    code, text = cli_json("--select", "ALL", "--jobs", "2", str(path))
    assert code == pcapcheck.analyze(path, isolated=True, select="ALL").exit_status
    assert text == json_report.render(serial)


def test_a_file_that_is_not_a_capture_is_an_error_entry(tmp_path):
    bad = tmp_path / "notes.pcap"
    bad.write_text("not a capture\n" * 10)
    report = pcapcheck.analyze([str(bad), str(HS002)], isolated=True)
    first, second = list(report)
    assert first.error is not None and first.error.startswith(str(bad))
    assert "\n" not in first.error and first.packets == 0 and not first.findings
    assert second.error is None and triples(second) == [("HS002", 2, 1)]
    assert [r.path for r in report.errors] == [str(bad)]
    assert report.exit_status == 2
    code, text = cli_json(str(bad), str(HS002))
    assert code == 2
    assert json.loads(text)["files"][0] == {"path": str(bad), "error": first.error}


def test_standard_input():
    data = HS002.read_bytes()
    (result,) = pcapcheck.analyze("-", isolated=True, stdin=io.BytesIO(data))
    assert result.path == "<stdin>" and triples(result) == [("HS002", 2, 1)]


# --------------------------------------------------------------------------- options


def test_select_and_ignore():
    def rules(**options):
        return [
            f.rule for r in pcapcheck.analyze(HS013, isolated=True, **options) for f in r.findings
        ]

    assert rules() == ["HS013", "RS004"]
    assert rules(select=["HS"]) == ["HS013"]
    assert rules(select="HS,RS") == ["HS013", "RS004"]
    assert rules(ignore="RS004") == ["HS013"]
    assert rules(select=["RS"], extend_select=["HS013"]) == ["HS013", "RS004"]
    assert rules(select="ALL", ignore=["HS", "RS"]) == []


def test_params_change_what_a_rule_reports():
    """CL010 (TIME-WAIT reuse within 2*MSL): the sample's reuse comes within 240 s, not
    within 2 s."""

    def cl010(**options):
        return [triples(r) for r in pcapcheck.analyze(CL010, isolated=True, **options)]

    assert cl010() == [[("CL010", 11, 2)]]
    assert cl010(params={"CL010": {"msl": 120}}) == [[("CL010", 11, 2)]]
    assert cl010(params={"CL010": {"msl": 1}}) == [[]]
    assert cl010(params={"CL010": {"msl": "1"}}) == [[]]  # converted as from a config file


def test_severity_overrides():
    (result,) = pcapcheck.analyze(HS013, isolated=True, severity={"HS013": "info"})
    assert [f.severity for f in result.findings] == ["info", "warning"]


def test_fail_on():
    report = pcapcheck.analyze(CL003, isolated=True)  # one warning (CL003)
    assert report.fail_on == "error" and report.worst_severity == "warning"
    assert (report.failed(), report.failed("warning"), report.failed("info")) == (
        False,
        True,
        True,
    )
    assert report.failed("never") is False and report.exit_status == 0
    assert pcapcheck.analyze(CL003, isolated=True, fail_on="warning").exit_status == 1
    assert pcapcheck.analyze(CLEAN, isolated=True, fail_on="info").exit_status == 0
    with pytest.raises(pcapcheck.OptionError):
        report.failed("sometimes")


def test_fail_on_from_the_configuration(tmp_path):
    cfg = tmp_path / "pcapcheck.toml"
    cfg.write_text('fail-on = "warning"\nignore = ["RS004"]\n')
    report = pcapcheck.analyze([CL003, HS002], config=cfg)
    assert report.fail_on == "warning" and report.exit_status == 1
    assert [[f.rule for f in r.findings] for r in report] == [["CL003"], ["HS002"]]
    assert pcapcheck.analyze(CL003, config=cfg, fail_on="error").exit_status == 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"select": ["XX999"]}, "XX999"),
        ({"ignore": "NOPE"}, "NOPE"),
        ({"select": [3]}, "select"),
        ({"decoder": "wireshark"}, "decoder"),
        ({"fail_on": "sometimes"}, "fail_on"),
        ({"jobs": 0}, "jobs"),
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"close_delay": "soon"}, "close_delay"),
        ({"params": {"CL010": {"msl": "long"}}}, "CL010"),
        ({"params": {"CL010": {"msll": 3}}}, "msll"),
        ({"params": {"ZZ001": {"x": 1}}}, "ZZ001"),
        ({"severity": {"HS002": "fatal"}}, "fatal"),
        ({"rules": ["/nonexistent/rules"]}, "nonexistent"),
        ({"config": "/nonexistent/pcapcheck.toml", "isolated": False}, "no such file"),
        ({"config": "pcapcheck.toml"}, "together"),  # with isolated=True
    ],
)
def test_bad_options_raise_before_anything_is_analysed(options, message, monkeypatch):
    calls = []
    monkeypatch.setattr("pcapcheck.pipeline.analyze_file", lambda *a, **k: calls.append(a))
    kwargs = {"isolated": True, **options}
    with pytest.raises(pcapcheck.OptionError) as err:
        pcapcheck.analyze(HS002, **kwargs)
    assert isinstance(err.value, ValueError)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert calls == []


def test_inputs_that_name_no_capture_raise(tmp_path):
    with pytest.raises(pcapcheck.OptionError, match="no capture files"):
        pcapcheck.analyze(tmp_path, isolated=True)
    with pytest.raises(pcapcheck.OptionError, match="no file matches"):
        pcapcheck.analyze(str(tmp_path / "*.pcap"), isolated=True)
    with pytest.raises(pcapcheck.OptionError, match="no input"):
        pcapcheck.analyze([], isolated=True)


# --------------------------------------------------------------------------- laziness


def test_iteration_analyses_one_capture_at_a_time(monkeypatch):
    import pcapcheck.pipeline as pipeline

    calls = []
    original = pipeline.analyze_file

    def spy(path, *args, **kwargs):
        calls.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "analyze_file", spy)
    paths = [str(HS002), str(CL003), str(CLEAN)]
    report = pcapcheck.analyze(paths, isolated=True)
    assert calls == []  # nothing analysed before the report is iterated
    it = iter(report)
    first = next(it)
    assert first.path == paths[0] and calls == paths[:1]
    second = next(it)
    assert second.path == paths[1] and calls == paths[:2]
    assert [r.path for r in it] == paths[2:] and calls == paths
    # iterated again: the results kept, nothing analysed again
    assert [r.path for r in report] == paths and calls == paths
    assert report.files[0] is first and report.exit_status == 1 and calls == paths


def test_closing_a_report_stops_it(monkeypatch):
    import pcapcheck.pipeline as pipeline

    calls = []
    original = pipeline.analyze_file
    monkeypatch.setattr(
        pipeline, "analyze_file", lambda p, *a, **k: calls.append(p) or original(p, *a, **k)
    )
    with pcapcheck.analyze([HS002, CL003], isolated=True) as report:
        first = next(iter(report))
    assert [r.path for r in report] == [first.path] and len(calls) == 1
    assert list(first.findings)  # still readable after the close


def test_import_pcapcheck_is_cheap():
    code = (
        "import sys, pcapcheck\n"
        "heavy = ('numpy', 'pcapcheck.pipeline', 'pcapcheck.api', 'pcapcheck.tcp.tracker', 'typer')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "analyze = pcapcheck.analyze\n"
        "print(sorted(m for m in ('numpy', 'pcapcheck.pipeline') if m in sys.modules))\n"
        "print(analyze.__module__, pcapcheck.Report.__module__, pcapcheck.FileResult.__module__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert proc.stdout.split("\n")[:3] == [
        "[]",
        "[]",
        "pcapcheck.api pcapcheck.api pcapcheck.results",
    ]
    with pytest.raises(AttributeError):
        pcapcheck.no_such_name  # noqa: B018


def test_an_executor_given_runs_the_jobs():
    """``executor=``: the hook of another executor (a cluster's): it is handed the jobs
    (one per capture, in input order) and the run's settings, and its results are the
    report's."""
    from pcapcheck.run.executors import Executor, Serial

    seen = []

    class Recording(Executor):
        def results(self, jobs, settings, encode=False):
            seen.append(([(job.name, sorted(job.active)[:1]) for job in jobs], settings.decoder))
            yield from Serial().results(jobs, settings, encode)

    paths = [str(HS002), str(CL003)]
    report = pcapcheck.analyze(paths, isolated=True, select="HS", executor=Recording())
    assert seen == []
    assert [triples(r) for r in report] == [[("HS002", 2, 1)], []]
    assert seen == [([(paths[0], ["HS001"]), (paths[1], ["HS001"])], "native")]
