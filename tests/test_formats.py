"""Output formats (pcapcheck.report): every format on clean, faulty and unreadable
captures; the JSON report schema, the official SARIF 2.1.0 schema and the JUnit XSD of
Jenkins' xunit plugin (both vendored under tests/data/); workflow-command escaping; and
that the table and JSON reports did not change."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from pcapcheck import __version__
from pcapcheck.capture.reader import CaptureError, open_capture
from pcapcheck.catalog.rules import Catalog
from pcapcheck.model import Finding
from pcapcheck.pipeline import FileResult, analyze_file
from pcapcheck.report import (
    FORMATS,
    ReportContext,
    csv_report,
    github,
    json_report,
    junit,
    markdown,
    rule_statistics,
    sarif,
    statistics_rows,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLES = ROOT / "sample_pcaps"
HS002 = "sample_pcaps/crafted/hs002_synack-bad-ack.pcap"
HS013 = "sample_pcaps/crafted/hs013_fin-before-established.pcap"  # HS013 error, RS004 warning
CLEAN = "sample_pcaps/crafted/clean_handshake_close.pcap"
INFO_ONLY = "sample_pcaps/crafted/hs005_syn-retransmitted.pcap"  # 2 x HS005 (info)
MANY = "sample_pcaps/encap/bad/unsupported_linktype.pcap"  # 10 x CP005 (warning)
PCAPNG_CUT = "sample_pcaps/encap/bad/cut_block.pcapng"  # CP006 (no frame)
PCAPNG_DUPS = "sample_pcaps/artefacts/artefact_lo_merged_duplicates.pcapng"  # CP008 x10
GZIP = "sample_pcaps/encap/bad/cut_gzip.pcap.gz"  # findings, no offsets
UNREADABLE = FileResult(path="missing.pcap", error="missing.pcap: no such file")

NAMES = ("table", "json", "jsonl", "csv", "markdown", "junit", "sarif", "github", "html")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def active(catalog) -> frozenset[str]:
    return frozenset(catalog.select())


@pytest.fixture(scope="module")
def ctx(catalog, active) -> ReportContext:
    return ReportContext(catalog=catalog, active=active)


@pytest.fixture(scope="module")
def result(catalog, active):
    cache: dict[str, FileResult] = {}

    def get(path: str) -> FileResult:
        if path not in cache:
            # the path as a user types it (relative to the checkout), like the CLI
            cache[path] = analyze_file(path, catalog, set(active))
        return cache[path]

    return get


@pytest.fixture(scope="module")
def mixed(result):
    """A clean capture, one with findings, an info-only one and an unreadable one."""
    return [result(CLEAN), result(HS002), result(INFO_ONLY), UNREADABLE]


def _capture_files() -> list[Path]:
    return sorted(
        p
        for p in SAMPLES.rglob("*")
        if p.is_file() and p.suffix not in (".md", ".yaml", ".yml", ".txt", ".json")
    )


@pytest.fixture(scope="module")
def every_sample(catalog):
    """Every file under sample_pcaps/ analysed with ALL rules (unreadable ones as
    ``FileResult(error=...)``, as the CLI reports them)."""
    active = catalog.select(["ALL"])
    out = []
    for path in _capture_files():
        rel = path.relative_to(ROOT).as_posix()
        try:
            out.append(replace(analyze_file(path, catalog, active), path=rel))
        except CaptureError as exc:
            out.append(FileResult(path=rel, error=str(exc)))
    return out


@pytest.fixture(autouse=True, scope="module")
def _chdir_root():
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)
    yield
    mp.undo()


# --------------------------------------------------------------------------- contract


def test_formats_registry_and_signature(mixed, ctx):
    assert tuple(FORMATS) == NAMES
    for name, render in FORMATS.items():
        for text in (render(mixed), render(mixed, None), render(mixed, ctx)):
            assert isinstance(text, str), name
        assert render([]) is not None


def test_report_context_defaults():
    c = ReportContext()
    assert c.catalog is None and c.active == frozenset() and c.statistics is False


@pytest.mark.parametrize("name", NAMES)
def test_unreadable_file_in_every_format(name):
    text = FORMATS[name]([UNREADABLE])
    assert "missing.pcap" in text and "no such file" in text, name


# --------------------------------------------------------------------------- table, json

README_TABLE = """\
  id  client          server       handshake    close    client state    server state    conn_state      packets    findings
----  --------------  -----------  -----------  -------  --------------  --------------  ------------  ---------  ----------
   1  10.0.0.1:40000  10.0.0.2:80  incomplete   none     SYN-SENT        LISTEN          RSTO                  3           1

rule    severity      conn    frame  message
------  ----------  ------  -------  --------------------------------------------------------------------------------
HS002   error            1        2  SYN-ACK acknowledges 0, expected client ISN+1 = 1 (absolute 1015684903, expected
                                     1015684904; the SYN carried 0 data bytes)

1 connection, 1 finding (1 error) in 3 packets
"""


def test_table_unchanged(result, ctx):
    res = result(HS002)
    assert FORMATS["table"]([res]) == README_TABLE
    assert FORMATS["table"]([res], ctx) == README_TABLE
    assert FORMATS["table"]([UNREADABLE]) == "error: missing.pcap: no such file\n"
    two = FORMATS["table"]([res, UNREADABLE], ctx)
    assert two.startswith(f"== {HS002} ==\n" + README_TABLE + "\n== missing.pcap ==\n")


def test_table_statistics(result, ctx):
    results = [result(HS002), result(INFO_ONLY)]
    plain = FORMATS["table"](results, ctx)
    stats = FORMATS["table"](results, replace(ctx, statistics=True))
    assert stats.startswith(plain)
    assert stats[len(plain) :] == (
        "\n2  HS005  syn-retransmitted  info\n1  HS002  synack-bad-ack     error\n"
    )
    # no findings: nothing appended
    clean = [result(CLEAN)]
    assert FORMATS["table"](clean, replace(ctx, statistics=True)) == FORMATS["table"](clean)


def test_rule_statistics_order(result):
    rows = rule_statistics([result(HS002), result(INFO_ONLY), result(MANY)])
    assert rows == [
        (10, "CP005", "malformed-packet", "warning"),
        (2, "HS005", "syn-retransmitted", "info"),
        (1, "HS002", "synack-bad-ack", "error"),
    ]
    assert statistics_rows([]) == ""
    assert statistics_rows([result(MANY)]) == "10  CP005  malformed-packet  warning\n"


def test_json_unchanged(result, ctx):
    res = result(HS002)
    text = FORMATS["json"]([res, UNREADABLE])
    assert text == FORMATS["json"]([res, UNREADABLE], ctx)
    assert text == FORMATS["json"]([res, UNREADABLE], replace(ctx, statistics=True))
    assert json.loads(text) == json.loads(
        json.dumps(json_report.document([res, UNREADABLE]), default=str)
    )
    # One line per connection and per finding, the structure indented by 2 spaces.
    lines = text.splitlines()
    assert lines[:3] == ["{", f'  "version": "{__version__}",', '  "files": [']
    assert [ln for ln in lines if ln.startswith('        {"id":')] == [
        "        " + json_report.dumps(c) + ("," if i + 1 < len(res.connections) else "")
        for i, c in enumerate(res.connections)
    ]
    assert [json.loads(json_report.dumps(c)) for c in res.connections] == [
        json.loads(json.dumps(c, default=str)) for c in res.connections
    ]
    assert sum(ln.startswith('        {"rule":') for ln in lines) == len(res.findings)
    doc = json.loads(text)
    assert list(doc) == ["version", "files"] and doc["version"] == __version__
    entry = doc["files"][0]
    assert list(entry) == [
        "path",
        "format",
        "packets",
        "tcp_packets",
        "skipped",
        "malformed",
        "truncated",
        "connections",
        "findings",
    ]
    assert list(entry["findings"][0]) == [
        "rule",
        "name",
        "severity",
        "connection",
        "frame",
        "message",
        "data",
    ]
    assert entry["findings"][0]["data"]["ack_abs"] == 1015684903
    assert doc["files"][1] == {"path": "missing.pcap", "error": "missing.pcap: no such file"}
    assert text.startswith('{\n  "version": ')


# --------------------------------------------------------------------------- JSON schema


@pytest.fixture(scope="module")
def report_validator():
    schema = json.loads(json_report.SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_report_schema_is_packaged():
    assert json_report.SCHEMA_PATH == (ROOT / "pcapcheck" / "schemas" / "report.schema.json")
    assert json_report.SCHEMA_PATH.is_file()


@dataclass
class _Point:
    x: int


class _Float(float):
    pass


class _Opaque:
    def __str__(self) -> str:
        return "opaque"


def test_json_dumps_gives_compact_ascii_text_of_the_standard_librarys_values():
    """json_report.dumps (orjson, the standard library for what orjson refuses or writes
    in non-ASCII) parses back to what json.dumps(default=str) writes, with no spaces and
    ASCII only; the floats of a summary, the fallbacks and ``default=str`` included."""
    std = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str).encode
    values = [
        {
            "id": 7,
            "start_ts": 1767225600.00017,
            "duration": 0.02338,
            "ok": True,
            "n": None,
            "transitions": [{"frame": 1, "from": "CLOSED", "to": "SYN-SENT"}],
            "pair": (1, 2),
        },
        0.1,
        1e16,
        2.5e-05,
        -0.0,
        5e-324,
        2**63 - 1,
        -(2**63),
        2**64,
        2**70,
        -(2**65),  # beyond 64 bits: orjson refuses
        {1: "int key", "b": 2},  # a key that is not a string: refused
        "caf\u00e9 \u2192 \u2028",
        'ctl \x01\n\t"\\/',  # non-ASCII: written as escapes
        _Point(3),
        datetime(2026, 1, 1, tzinfo=timezone.utc),
        Path("a/b.pcap"),
        ipaddress.ip_address("10.0.0.1"),
        object.__new__(_Opaque),
        np.float64(0.25),
        np.int64(7),
        [_Float(1.5)],
    ]  # numpy scalars, a float subclass
    for value in values:
        text = json_report.dumps(value)
        assert text.isascii(), value
        assert json.loads(text) == json.loads(std(value)), value
        assert ", " not in text and ": " not in text, value
    # where orjson's text and the standard library's agree exactly
    assert json_report.dumps(values[0]) == std(values[0])
    assert json_report.dumps(values[12]) == std(values[12]) == '"caf\\u00e9 \\u2192 \\u2028"'
    assert json_report.dumps(values[14]) == '"_Point(x=3)"'  # str(), as before
    assert json_report.dumps(values[15]) == '"2026-01-01 00:00:00+00:00"'
    assert json_report.dumps(values[18]) == '"opaque"'
    assert json_report.dumps(values[19]) == "0.25" and json_report.dumps(values[20]) == '"7"'
    assert json_report.dumps(values[21]) == "[1.5]"
    # not finite: null, where the standard library writes NaN (not JSON)
    assert json_report.dumps([float("nan"), float("inf")]) == "[null,null]"
    assert json_report.dumps(2**70) == str(2**70)


def test_json_of_every_sample_matches_schema(every_sample, report_validator, catalog):
    assert len(every_sample) > 50
    doc = json.loads(FORMATS["json"](every_sample))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in report_validator.iter_errors(doc)]
    assert errors == []
    # the default selection too (one document per file, as a CLI user would get)
    active = catalog.select()
    for res in every_sample[:20]:
        if res.error is None:
            one = analyze_file(res.path, catalog, active)
            report_validator.validate(json.loads(FORMATS["json"]([one])))


def test_report_schema_rejects_what_the_code_never_emits(result, report_validator):
    good = json.loads(FORMATS["json"]([result(HS002), UNREADABLE]))
    report_validator.validate(good)

    def broken(mutate) -> bool:
        doc = json.loads(json.dumps(good))
        mutate(doc)
        return not report_validator.is_valid(doc)

    assert broken(lambda d: d["files"][0]["findings"][0].update(severity="fatal"))
    assert broken(lambda d: d["files"][0]["findings"][0].update(rule="hs002"))
    assert broken(lambda d: d["files"][0]["findings"][0].update(frame=0))
    assert broken(lambda d: d["files"][0]["findings"][0].pop("data"))
    assert broken(lambda d: d["files"][0]["connections"][0].update(handshake="done"))
    assert broken(lambda d: d["files"][0]["connections"][0].update(close="closed"))
    assert broken(lambda d: d["files"][0]["connections"][0].update(client_state="OPEN"))
    assert broken(lambda d: d["files"][0]["connections"][0].update(conn_state="XX"))
    assert broken(lambda d: d["files"][0]["connections"][0].update(extra=1))
    assert broken(
        lambda d: d["files"][0]["connections"][0]["transitions"]["client"][0].update(to="?")
    )
    assert broken(lambda d: d["files"][0].pop("truncated"))
    assert broken(lambda d: d["files"][1].update(format="pcap"))
    assert broken(lambda d: d.update(extra=True))
    # ...and accepts the nulls it documents
    ok = json.loads(json.dumps(good))
    ok["files"][0]["connections"][0].update(
        server_state=None, conn_state=None, history=None, client_isn=None
    )
    ok["files"][0]["connections"][0]["transitions"]["server"][0]["from"] = "?"
    ok["files"][0]["findings"][0].update(connection=None, frame=None)
    report_validator.validate(ok)


# --------------------------------------------------------------------------- jsonl, csv


def test_jsonl(mixed):
    text = FORMATS["jsonl"](mixed)
    lines = text.splitlines()
    assert text.endswith("\n")
    n_findings = sum(len(r.findings) for r in mixed)
    assert len(lines) == n_findings + 1
    objs = [json.loads(line) for line in lines]
    keys = ["path", "rule", "name", "severity", "connection", "frame", "message", "data"]
    assert all(list(o) == keys for o in objs[:-1])
    assert objs[0]["path"] == HS002 and objs[0]["rule"] == "HS002" and objs[0]["frame"] == 2
    assert objs[0]["data"]["expected_abs"] == 1015684904
    assert objs[-1] == {"path": "missing.pcap", "error": "missing.pcap: no such file"}
    assert FORMATS["jsonl"]([mixed[0]]) == ""  # clean capture: no lines


def test_csv(mixed):
    text = FORMATS["csv"](mixed)
    rows = list(csv.reader(io.StringIO(text)))
    assert (
        rows[0]
        == list(csv_report.COLUMNS)
        == ["path", "rule", "name", "severity", "connection", "frame", "message"]
    )
    assert rows[1] == [
        HS002,
        "HS002",
        "synack-bad-ack",
        "error",
        "1",
        "2",
        "SYN-ACK acknowledges 0, expected client ISN+1 = 1 (absolute 1015684903,"
        " expected 1015684904; the SYN carried 0 data bytes)",
    ]
    assert rows[-1] == ["missing.pcap", "", "", "error", "", "", "missing.pcap: no such file"]
    assert len(rows) == 1 + sum(len(r.findings) for r in mixed) + 1
    assert FORMATS["csv"]([]) == "path,rule,name,severity,connection,frame,message\n"


def test_csv_quoting_and_file_level_findings(result):
    res = result(PCAPNG_CUT)
    tricky = Finding(
        "CP005", "malformed-packet", "warning", None, None, 'say "hi", then\nnewline', {}
    )
    weird = replace(res, findings=[*res.findings, tricky], path="a,b.pcap")
    rows = list(csv.reader(io.StringIO(FORMATS["csv"]([weird]))))
    assert rows[-1] == [
        "a,b.pcap",
        "CP005",
        "malformed-packet",
        "warning",
        "",
        "",
        'say "hi", then\nnewline',
    ]
    cp006 = next(r for r in rows if r[1] == "CP006")
    assert cp006[4:6] == ["", ""]  # no connection, no frame


# --------------------------------------------------------------------------- markdown


def _cells(line: str) -> list[str]:
    """Split a GFM table row on unescaped pipes."""
    assert line.startswith("|") and line.endswith("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])]


def test_markdown(mixed, ctx):
    text = FORMATS["markdown"](mixed, ctx)
    assert text.startswith("## pcapcheck\n\n")
    assert f"### `{HS002}`" in text and "### `missing.pcap`" in text
    assert "**error:** missing.pcap: no such file" in text
    assert "1 connection, 1 finding (1 error) in 3 packets" in text
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    # every row of a table has as many cells as its header
    widths = {len(_cells(line)) for line in table_lines}
    assert widths <= {10, 6}
    hs = [line for line in table_lines if line.startswith("| HS002")]
    assert _cells(hs[0])[:5] == ["HS002", "synack-bad-ack", "error", "1", "2"]
    assert "### Statistics" not in text
    assert FORMATS["markdown"](mixed) == text  # ctx changes nothing but statistics


def test_markdown_escaping(result):
    res = result(HS002)
    f = replace(res.findings[0], message="a | b <none> *x* _y_ `z` [l](u)\nnext")
    weird = replace(res, findings=[f], path="dir/we`ird|name.pcap")
    text = FORMATS["markdown"]([weird])
    row = next(line for line in text.splitlines() if line.startswith("| HS002"))
    cells = _cells(row)
    assert len(cells) == 6
    assert cells[5] == (r"a \| b \<none\> \*x\* \_y\_ \`z\` \[l\](u)<br>next")
    assert "### ``dir/we`ird|name.pcap``" in text
    assert markdown.escape(None) == "" and markdown.escape(3) == "3"
    assert markdown.code_span("`a`") == "`` `a` ``"


def test_markdown_statistics(result, ctx):
    text = FORMATS["markdown"]([result(HS002), result(INFO_ONLY)], replace(ctx, statistics=True))
    stats = text.split("### Statistics\n\n", 1)[1].splitlines()
    assert _cells(stats[0]) == ["count", "rule", "name", "severity"]
    assert _cells(stats[2]) == ["2", "HS005", "syn-retransmitted", "info"]
    assert len(stats) == 4
    clean = FORMATS["markdown"]([result(CLEAN)], replace(ctx, statistics=True))
    assert clean.endswith("### Statistics\n\nNo findings.\n")


# --------------------------------------------------------------------------- JUnit


@pytest.fixture(scope="module")
def junit_xsd():
    etree = pytest.importorskip("lxml.etree")
    return etree.XMLSchema(etree.parse(str(DATA / "junit-10.xsd")))


def _assert_junit_valid(text: str, xsd) -> ET.Element:
    from lxml import etree

    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    doc = etree.fromstring(text.encode("utf-8"))
    assert xsd.validate(doc), xsd.error_log
    return ET.fromstring(text.encode("utf-8"))


def _check_counts(root: ET.Element) -> None:
    totals = [0, 0, 0]
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(suite.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))
        for c in cases:
            assert c.get("classname") == suite.get("name")
            assert len(c.findall("failure")) <= 1
        totals[0] += len(cases)
        totals[1] += int(suite.get("failures"))
        totals[2] += int(suite.get("errors"))
    assert [int(root.get(k)) for k in ("tests", "failures", "errors")] == totals


def test_junit_structure(mixed, ctx, active, junit_xsd, result):
    root = _assert_junit_valid(FORMATS["junit"](mixed + [result(MANY)], ctx), junit_xsd)
    assert root.tag == "testsuites" and root.get("name") == "pcapcheck"
    _check_counts(root)
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == [CLEAN, HS002, INFO_ONLY, "missing.pcap", MANY]

    # one test case per evaluated rule, named "ID name", in id order
    clean = suites[CLEAN].findall("testcase")
    assert [c.get("name").split()[0] for c in clean] == sorted(active)
    assert all(c.find("failure") is None and c.find("system-out") is None for c in clean)
    assert suites[CLEAN].get("failures") == "0"
    props = {p.get("name"): p.get("value") for p in suites[CLEAN].find("properties")}
    assert props["format"] == "pcap" and props["connections"] == "1"

    hs = {c.get("name"): c for c in suites[HS002].findall("testcase")}
    fail = hs["HS002 synack-bad-ack"].find("failure")
    assert fail.get("type") == "error"
    assert fail.get("message").startswith("1 finding: SYN-ACK acknowledges 0")
    assert fail.text == (
        "frame 2, connection 1 (10.0.0.1:40000 -> 10.0.0.2:80): SYN-ACK "
        "acknowledges 0, expected client ISN+1 = 1 (absolute 1015684903, "
        "expected 1015684904; the SYN carried 0 data bytes)"
    )
    assert hs["RS004 reset-in-handshake"].find("failure") is None  # the RFC's answer
    assert suites[HS002].get("failures") == "1"
    # a warning finding: a failure of type warning
    two = _assert_junit_valid(FORMATS["junit"]([result(HS013)], ctx), junit_xsd)
    cases = {c.get("name"): c for c in two.find("testsuite").findall("testcase")}
    assert cases["RS004 reset-in-handshake"].find("failure").get("type") == "warning"

    # info findings never fail: they go to system-out
    info = {c.get("name"): c for c in suites[INFO_ONLY].findall("testcase")}
    case = info["HS005 syn-retransmitted"]
    assert case.find("failure") is None
    assert case.find("system-out").text.count("\n") == 1  # two findings, two lines
    assert case.find("system-out").text.startswith("info: frame ")
    assert suites[INFO_ONLY].get("failures") == "0"

    # all findings of a rule in ONE failure
    many = {c.get("name"): c for c in suites[MANY].findall("testcase")}
    fail = many["CP005 malformed-packet"].find("failure")
    assert fail.get("message").startswith("10 findings: ")
    assert len(fail.text.splitlines()) == 10
    assert fail.text.splitlines()[0].startswith("frame 1, file: ")

    # unreadable capture: an error test case "read"
    err = suites["missing.pcap"]
    assert [c.get("name") for c in err.findall("testcase")] == ["read"]
    assert err.find("testcase/error").get("message") == "missing.pcap: no such file"
    assert (err.get("tests"), err.get("errors"), err.get("failures")) == ("1", "1", "0")


def test_junit_timestamp_format():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", junit.timestamp())


def test_junit_without_context(mixed, junit_xsd):
    root = _assert_junit_valid(FORMATS["junit"](mixed), junit_xsd)
    _check_counts(root)
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    # without the evaluated rules only the rules with findings are test cases
    assert [c.get("name") for c in suites[CLEAN].findall("testcase")] == ["analyze"]
    assert [c.get("name") for c in suites[HS002].findall("testcase")] == [
        "HS002 synack-bad-ack",
    ]
    assert FORMATS["junit"]([]).endswith(
        '<testsuites name="pcapcheck" tests="0" failures="0" errors="0" time="0" />\n'
    )


def test_junit_frame_less_finding_and_illegal_characters(result, ctx, junit_xsd):
    res = result(PCAPNG_CUT)
    bad = replace(res.findings[0], message="bell \x07 and nul \x00 <&>")
    root = _assert_junit_valid(
        FORMATS["junit"](
            [replace(res, findings=[bad, *res.findings[1:]], path="p\x01.pcapng")], ctx
        ),
        junit_xsd,
    )
    suite = root.find("testsuite")
    assert suite.get("name") == "p\ufffd.pcapng"
    texts = [f.text for f in suite.iter("failure")]
    assert any("bell \ufffd and nul \ufffd <&>" in t for t in texts)
    assert any(t.startswith("frame -, file: ") for t in texts)  # CP006 has no frame


def test_junit_every_sample_valid(every_sample, catalog, junit_xsd):
    ctx = ReportContext(catalog=catalog, active=frozenset(catalog.select(["ALL"])))
    _check_counts(_assert_junit_valid(FORMATS["junit"](every_sample, ctx), junit_xsd))


# --------------------------------------------------------------------------- SARIF


@pytest.fixture(scope="module")
def sarif_validator():
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    assert schema["title"] == "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _sarif(results, ctx=None, validator=None) -> dict:
    doc = json.loads(FORMATS["sarif"](results, ctx))
    if validator is not None:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == []
    return doc


def test_sarif_every_sample_valid(every_sample, catalog, sarif_validator):
    ctx = ReportContext(catalog=catalog, active=frozenset(catalog.select(["ALL"])))
    for c in (ctx, None):
        doc = _sarif(every_sample, c, sarif_validator)
        run = doc["runs"][0]
        fired = sorted({f.rule for r in every_sample for f in r.findings})
        assert [r["id"] for r in run["tool"]["driver"]["rules"]] == fired
        assert len(run["results"]) == sum(len(r.findings) for r in every_sample)
        assert len(run["artifacts"]) == len(every_sample)
        notes = run["invocations"][0]["toolExecutionNotifications"]
        assert len(notes) == sum(1 for r in every_sample if r.error is not None) > 0
        assert run["invocations"][0]["executionSuccessful"] is False


def test_sarif_document(result, ctx, catalog, sarif_validator):
    res = result(HS002)
    doc = _sarif([res, result(INFO_ONLY), UNREADABLE], ctx, sarif_validator)
    assert doc["$schema"] == sarif.SCHEMA_URI and doc["version"] == "2.1.0"
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "pcapcheck" and driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")
    rules = {r["id"]: r for r in driver["rules"]}
    assert list(rules) == ["HS002", "HS005"]  # only the rules that fired
    rule = catalog.get("HS002")
    assert rules["HS002"] == {
        "id": "HS002",
        "name": "synack-bad-ack",
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rules["HS002"]["fullDescription"]["text"]},
        "help": {"text": rule.explanation, "markdown": rule.explanation},
        "defaultConfiguration": {"level": "error"},
        "properties": {"rfc": rule.rfc, "equivalents": rule.equivalents},
    }
    assert rules["HS002"]["fullDescription"]["text"].startswith(
        "Checks the acknowledgment number of every SYN-ACK"
    )
    assert rules["HS005"]["defaultConfiguration"]["level"] == "note"

    first = run["results"][0]
    assert first["ruleId"] == "HS002"
    assert driver["rules"][first["ruleIndex"]]["id"] == "HS002"
    assert all(driver["rules"][r["ruleIndex"]]["id"] == r["ruleId"] for r in run["results"])
    assert first["level"] == "error" and first["message"]["text"] == res.findings[0].message
    loc = first["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"] == {"uri": HS002, "index": 0}
    # frame 2 of a pcap with 24-byte file header: 24 + (16 + 74) = 114; 16 + 74 bytes
    assert loc["physicalLocation"]["region"] == {"byteOffset": 114, "byteLength": 90}
    assert loc["logicalLocations"] == [
        {"name": "10.0.0.1:40000 -> 10.0.0.2:80", "kind": "connection"}
    ]
    assert first["properties"]["frame"] == 2 and first["properties"]["connection"] == 1
    assert first["properties"]["data"]["ack_abs"] == 1015684903
    assert {r["level"] for r in run["results"]} == {"error", "note"}
    warned = _sarif([result(HS013)], ctx, sarif_validator)["runs"][0]["results"]
    assert [r["level"] for r in warned] == ["error", "warning"]

    assert run["artifacts"][0] == {
        "location": {"uri": HS002},
        "roles": ["analysisTarget"],
        "length": (ROOT / HS002).stat().st_size,
    }
    inv = run["invocations"][0]
    assert inv["executionSuccessful"] is False
    note = inv["toolExecutionNotifications"][0]
    assert note["level"] == "error" and note["message"]["text"] == "missing.pcap: no such file"
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "missing.pcap"

    ok = _sarif([result(CLEAN)], ctx, sarif_validator)["runs"][0]
    assert ok["invocations"] == [{"executionSuccessful": True}]
    assert ok["results"] == [] and ok["tool"]["driver"]["rules"] == []


def _region_bytes(path: str, region: dict) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(region["byteOffset"])
        return fh.read(region["byteLength"])


def test_sarif_regions_point_at_the_records(result, ctx, sarif_validator):
    # pcap: the region is the record header + the captured bytes of that frame
    res = result(MANY)
    doc = _sarif([res], ctx, sarif_validator)
    records = {r.frame: r for r in open_capture(MANY)}
    for found in doc["runs"][0]["results"]:
        region = found["locations"][0]["physicalLocation"]["region"]
        blob = _region_bytes(MANY, region)
        frame = found["properties"]["frame"]
        assert blob[16:] == records[frame].data
        assert struct.unpack("<I", blob[8:12])[0] == len(records[frame].data)
    # pcapng: the region is the whole packet block (type, length ... length)
    res = result(PCAPNG_DUPS)
    doc = _sarif([res], ctx, sarif_validator)
    with_frame = [r for r in doc["runs"][0]["results"] if r["properties"]["frame"] is not None]
    assert with_frame
    for found in with_frame:
        blob = _region_bytes(PCAPNG_DUPS, found["locations"][0]["physicalLocation"]["region"])
        btype, length = struct.unpack("<II", blob[:8])
        assert btype == 6 and length == len(blob) == struct.unpack("<I", blob[-4:])[0]
    # a finding without a frame (CP006) has no region
    doc = _sarif([result(PCAPNG_CUT)], ctx, sarif_validator)
    cp006 = next(r for r in doc["runs"][0]["results"] if r["ruleId"] == "CP006")
    assert "region" not in cp006["locations"][0]["physicalLocation"]
    assert "logicalLocations" not in cp006["locations"][0]
    # gzip: offsets are unknown, so no region at all
    doc = _sarif([result(GZIP)], ctx, sarif_validator)
    assert doc["runs"][0]["results"]
    assert all(
        "region" not in r["locations"][0]["physicalLocation"] for r in doc["runs"][0]["results"]
    )


def test_sarif_without_context_uses_shipped_docs_only_for_matching_rules(result, catalog):
    res = result(HS013)
    rules = _sarif([res])["runs"][0]["tool"]["driver"]["rules"]
    assert rules[0]["help"]["markdown"] == catalog.get("HS013").explanation
    renamed = replace(res, findings=[replace(f, name="my-own") for f in res.findings])
    rules = _sarif([renamed])["runs"][0]["tool"]["driver"]["rules"]
    assert rules[0] == {"id": "HS013", "name": "my-own", "defaultConfiguration": {"level": "error"}}
    # with a context, its catalogue is used (here: one without HS013)
    small = Catalog({rid: r for rid, r in catalog.rules.items() if rid != "HS013"})
    rules = _sarif([res], ReportContext(catalog=small))["runs"][0]["tool"]["driver"]["rules"]
    assert "help" not in rules[0] and "help" in rules[1]


def test_sarif_uris():
    assert sarif.artifact_uri("sample_pcaps/a b%.pcap") == "sample_pcaps/a%20b%25.pcap"
    assert sarif.artifact_uri("/tmp/x y.pcap") == "file:///tmp/x%20y.pcap"
    assert sarif.record_regions("missing.pcap", [1]) == {}
    assert sarif.record_regions(HS002, []) == {}


# --------------------------------------------------------------------------- GitHub


def test_github_commands(mixed, ctx, result):
    text = FORMATS["github"](mixed, ctx)
    lines = text.splitlines()
    assert lines[0] == (
        f"::error file={HS002},title=HS002 synack-bad-ack::SYN-ACK acknowledges"
        " 0, expected client ISN+1 = 1 (absolute 1015684903, expected 1015684904;"
        " the SYN carried 0 data bytes) [frame 2, connection 1]"
    )
    assert lines[1].startswith(f"::notice file={INFO_ONLY},title=HS005 syn-retransmitted::")
    assert lines[-1] == (
        "::error file=missing.pcap,title=pcapcheck%3A unreadable capture::"
        "missing.pcap: no such file"
    )
    assert len(lines) == sum(len(r.findings) for r in mixed) + 1
    assert FORMATS["github"]([mixed[0]]) == ""
    # a warning finding: ::warning
    warning = FORMATS["github"]([result(HS013)], ctx).splitlines()[1]
    assert warning.startswith(
        f"::warning file={HS013},title=RS004 reset-in-handshake::RST from the client (RST) "
    )


def test_github_escaping():
    # @actions/core escapeData / escapeProperty
    assert github.escape_data("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext: a,b"
    assert github.escape_property("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext%3A a%2Cb"
    assert github.escape_data("%0A") == "%250A"  # % first: no double meaning
    f = Finding("HS002", "synack-bad-ack", "error", 1, 7, "50% of\nit: x, y\r", {})
    res = FileResult(path="dir:a,b/c%.pcap", format="pcap", findings=[f])
    assert FORMATS["github"]([res]) == (
        "::error file=dir%3Aa%2Cb/c%25.pcap,title=HS002 synack-bad-ack::"
        "50%25 of%0Ait: x, y%0D [frame 7, connection 1]\n"
    )
    f2 = Finding("CP006", "capture-truncated", "warning", None, None, "cut", {})
    assert FORMATS["github"]([FileResult(path="x.pcap", findings=[f2])]) == (
        "::warning file=x.pcap,title=CP006 capture-truncated::cut\n"
    )
    assert github.command("notice", "m", file=None, title="t") == "::notice title=t::m"
    assert github.command("debug", "m") == "::debug::m"


def test_github_statistics(result, ctx):
    results = [result(HS002)]
    text = FORMATS["github"](results, replace(ctx, statistics=True))
    assert text == FORMATS["github"](results) + statistics_rows(results)


def test_write_step_summary(tmp_path, mixed, ctx):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    github.write_step_summary(mixed, ctx, summary)
    github.write_step_summary(mixed[:1], None, str(summary))
    text = summary.read_text(encoding="utf-8")
    assert text == (
        "earlier step\n" + markdown.render(mixed, ctx) + markdown.render(mixed[:1], None)
    )
    with pytest.raises(OSError):
        github.write_step_summary(mixed, ctx, tmp_path / "no" / "such" / "dir.md")


# --------------------------------------------------------------------------- reader offsets


@pytest.mark.parametrize("chunk", [None, 7, 100])
def test_record_offsets(monkeypatch, chunk):
    import pcapcheck.capture.reader as reader_mod

    if chunk is not None:
        monkeypatch.setattr(reader_mod, "_CHUNK", chunk)
    checked = 0
    for path in _capture_files():
        try:
            reader = open_capture(path)
        except CaptureError:
            continue
        raw = path.read_bytes()
        for rec in reader:
            if reader.compressed:
                assert rec.offset is None
                continue
            off = rec.offset
            if reader.format == "pcapng":
                head = raw[off : off + 4]
                btype = struct.unpack("<I", head)[0]
                if btype not in (2, 3, 6):
                    btype = struct.unpack(">I", head)[0]
                start = off + (12 if btype == 3 else 28)
                assert btype in (2, 3, 6)
            else:
                start = off + 16
            assert raw[start : start + len(rec.data)] == rec.data, (path, rec.frame)
            checked += 1
    assert checked > 500


def test_all_formats_on_every_sample(every_sample, catalog):
    ctx = ReportContext(catalog=catalog, active=frozenset(catalog.select(["ALL"])), statistics=True)
    for name in NAMES:
        text = FORMATS[name](every_sample, ctx)
        assert text.endswith("\n"), name
    lines = FORMATS["jsonl"](every_sample).splitlines()
    assert all(json.loads(line) for line in lines)
    assert len(list(csv.reader(io.StringIO(FORMATS["csv"](every_sample))))) == len(lines) + 1


def test_json_lists_longer_than_one_write_stay_whole():
    """The JSON writer joins a few thousand lines per write: lists of several such
    batches (and one of exactly one batch) come out whole, in order."""
    for n in (4096, 9000):
        res = FileResult(path="many.pcap", connections=[{"id": i} for i in range(1, n + 1)])
        doc = json.loads(FORMATS["json"]([res]))
        assert doc["files"][0]["connections"] == [{"id": i} for i in range(1, n + 1)]
        assert doc["files"][0]["findings"] == []
