"""The HTML report (``--format html``), read back with html.parser: the summary, the
connection table, findings by rule and by connection with their filters, explanations,
ladders, the page's bounds and notes, the Content-Security-Policy and escaping."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from html.parser import HTMLParser

import pytest
from conftest import SAMPLES
from typer.testing import CliRunner

from pcapcheck.cli import app
from pcapcheck.report import FORMATS
from pcapcheck.report import html as html_report
from pcapcheck.results import FileResult

runner = CliRunner()
VOID = {"meta", "br", "input", "img", "link", "hr", "wbr", "source", "area", "col", "base"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        out = []
        for c in self.children:
            if isinstance(c, str):
                continue
            if (
                (tag is None or c.tag == tag)
                and (cls is None or cls in c.classes())
                and all(c.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
            ):
                out.append(c)
            out.extend(c.all(tag, cls, **attrs))
        return out

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, (tag, cls, attrs, len(found))
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#document", {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.node)
        self.node.children.append(node)
        if tag not in VOID:
            self.node = node

    def handle_startendtag(self, tag, attrs):
        self.node.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.node))

    def handle_endtag(self, tag):
        node = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.children.append(data)


def parse(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


@pytest.fixture(scope="module")
def page(analyze):
    def make(*names: str, **kw) -> tuple[str, Node]:
        results = [analyze(n) for n in names]
        for res, name in zip(results, names):
            res.path = str(SAMPLES / name)
        text = html_report.render(results, None, **kw) if kw else FORMATS["html"](results, None)
        return text, parse(text)

    return make


def words(node: Node) -> str:
    return " ".join(node.text.split())


def test_summary_per_capture(page):
    _text, doc = page("crafted/hs002_synack-bad-ack.pcap", "crafted/clean_handshake_close.pcap")
    caps = doc.all("section", cls="capture")
    assert [c.attrs["id"] for c in caps] == ["c1", "c2"]
    first = caps[0]
    assert first.attrs["data-path"].endswith("crafted/hs002_synack-bad-ack.pcap")
    dd = {d.attrs["data-key"]: words(d) for d in first.all("dd")}
    assert dd["packets"] == "3 (3 TCP segments; format pcap)"
    assert dd["connections"] == "1"
    assert dd["findings"] == "1 (1 error)"
    assert dd["skipped"] == "0" and dd["malformed"] == "0"
    assert dd["span"] == (
        "2026-01-01 00:00:00.000000 UTC to 2026-01-01 00:00:00.001000 UTC (0.001000 s)"
    )
    assert doc.one("head").one("title").text == "pcapcheck report: 2 captures"


def test_connection_table_rows_and_links(page):
    _text, doc = page("grading/submissions/ivan.pcap")
    table = doc.one("table", cls="connections")
    heads = [words(th) for th in table.all("th")]
    assert heads == [
        "id",
        "client",
        "server",
        "tunnel",
        "handshake",
        "close",
        "client state",
        "server state",
        "conn_state",
        "packets",
        "findings",
    ]
    rows = table.all("tr", cls=None)[1:]
    cells = [[words(td) for td in tr.all("td")] for tr in rows]
    assert cells[0] == [
        "1",
        "10.0.0.1:55100",
        "10.0.0.2:80",
        "",
        "complete",
        "graceful",
        "TIME-WAIT",
        "CLOSED",
        "SF",
        "11",
        "0",
    ]
    assert [c[9] for c in cells] == ["11", "10", "10", "10"]
    # every row links to its connection, which holds its ladder
    for tr in rows:
        cid = tr.attrs["data-connection"]
        link = tr.one("a")
        assert link.attrs["href"] == f"#c1-conn{cid}"
        section = doc.one("section", id=f"c1-conn{cid}")
        assert section.attrs["data-connection"] == cid
        assert len(section.all("svg", cls="ladder")) >= 1
    assert doc.one("input", cls="table-filter").attrs["data-table"] == "c1-table"


def test_tunnel_column_uses_the_short_form(page):
    _text, doc = page("encap/vxlan.pcap")
    row = doc.one("table", cls="connections").all("tr")[1]
    assert words(row.all("td")[3]).startswith("vxlan:")


def test_findings_by_connection_with_states_filters_and_ladder_links(page):
    _text, doc = page("crafted/hs002_synack-bad-ack.pcap")
    section = doc.one("section", id="c1-conn1")
    assert "ip.addr == 10.0.0.1 && tcp.port == 40000 && ip.addr == 10.0.0.2 && tcp.port == 80" in [
        c.text for c in section.all("code", cls="filter")
    ]
    items = section.all("li", cls="finding")
    assert [(li.attrs["id"], li.attrs["data-rule"], li.attrs["data-frame"]) for li in items] == [
        ("c1-f0", "HS002", "2"),
    ]
    first = words(items[0])
    assert "SYN-ACK acknowledges 0, expected client ISN+1 = 1" in first
    assert "states: client SYN-SENT, server SYN-RECEIVED" in first
    assert items[0].one("code", cls="filter").text == "frame.number == 2"
    assert items[0].one("button", cls="copy").attrs["data-copy"] == "frame.number == 2"
    assert [words(b) for b in section.all("button", cls="copy")] == ["Copy"] * 2
    assert items[0].all("a")[-1].attrs["href"] == "#c1-rule-HS002"
    # the ladder's markers link to these findings
    markers = section.all("a", cls="finding-marker")
    assert [(m.attrs["data-rule"], m.attrs["href"]) for m in markers] == [
        ("HS002", "#c1-f0"),
    ]
    states = [
        (t.attrs["data-side"], t.attrs["data-frame"], t.attrs["data-state"])
        for t in section.all("text", cls="state")
    ]
    # the client's RST answers the bad SYN-ACK (RFC 9293 §3.10.7.3): it stays in SYN-SENT
    assert ("server", "2", "SYN-RECEIVED") in states and ("server", "3", "LISTEN") in states
    assert not [s for s in states if s[0] == "client" and s[1] == "3"]


def test_findings_by_rule_with_the_explanation(page):
    _text, doc = page("crafted/hs002_synack-bad-ack.pcap")
    rules = doc.all("details", cls="rule")
    assert [d.attrs["id"] for d in rules] == ["c1-rule-HS002"]
    hs002 = rules[0]
    assert words(hs002.one("summary")).startswith("HS002 synack-bad-ack error × 1: A SYN-ACK's")
    explanation = hs002.one("div", cls="explanation")
    assert [words(h) for h in explanation.all("h2")] == [
        "What it does",
        "Why is this bad?",
        "Example",
    ]
    assert explanation.one("code", cls="language-text").text.startswith("client")
    assert [a.attrs["href"] for a in hs002.all("a")] == ["#c1-f0"]


def test_capture_artefacts_apart_from_endpoint_faults(page):
    _text, doc = page("crafted/cp002_capture-loss.pcap")
    assert "kind-capture" in doc.one("details", cls="rule").one("span", cls="badge").classes()
    lost = doc.all("g", cls="lost")
    assert [(g.attrs["data-frame"], g.attrs["data-direction"]) for g in lost] == [
        ("6", "server-to-client")
    ]


def test_folds_are_expandable_details(page):
    _text, doc = page("grading/submissions/alice/http.pcap")
    fold = doc.one("details", cls="fold")
    assert fold.attrs["data-count"] == "16"
    summary = fold.one("summary")
    assert "16 segments of data transfer, 14 kB (frames 7–22)" in words(summary)
    inside = [g.attrs["data-frame"] for g in fold.all("g", cls="arrow")]
    assert inside == [str(f) for f in range(7, 23)]
    outside = [
        g.attrs["data-frame"]
        for g in doc.all("g", cls="arrow")
        if g.attrs["data-frame"] not in inside
    ]
    assert outside == [str(f) for f in [1, 2, 3, 4, 5, 6, *range(23, 30)]]


def test_self_contained_with_a_hash_based_policy(page):
    text, doc = page("crafted/hs002_synack-bad-ack.pcap")
    csp = doc.one("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert csp.startswith("default-src 'none'; ")
    assert "img-src" not in csp  # the page has no image: none allowed
    for tag, directive in (("style", "style-src"), ("script", "script-src")):
        body = doc.one(tag).text
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}';" in csp
    assert not doc.all("link") and not doc.all("img") and not doc.all("iframe")
    assert not [n for n in doc.all() if "src" in n.attrs]
    hrefs = [n.attrs["href"] for n in doc.all() if "href" in n.attrs]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    assert "@media print" in doc.one("style").text
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)


def test_bounds_and_what_was_left_out(page, monkeypatch):
    monkeypatch.setattr(html_report, "MAX_TABLE_ROWS", 2)
    _text, doc = page("grading/submissions/ivan.pcap", max_ladders=1)
    rows = doc.one("table", cls="connections").all("tr")[1:]
    assert [r.attrs["data-connection"] for r in rows] == ["1", "2"]
    assert words(doc.one("p", data_key="rows_left_out")).startswith(
        "2 more connections are not listed here"
    )
    assert len(doc.all("svg", cls="ladder")) == 1
    assert words(doc.one("p", data_key="ladders")).startswith(
        "1 ladder drawn; 3 connections without a ladder"
    )
    # a row without a section has no link
    assert rows[1].all("a") == []


def test_a_capture_that_cannot_be_read_again_has_no_ladders(analyze):
    res = analyze("crafted/clean_handshake_close.pcap")
    res.path = "/nonexistent/gone.pcap"
    doc = parse(FORMATS["html"]([res], None))
    assert not doc.all("svg")
    assert "could not be read again: no ladders are drawn" in doc.text


def test_an_unreadable_capture_is_reported():
    doc = parse(FORMATS["html"]([FileResult("bad.pcap", error="bad.pcap: not a capture")], None))
    assert "This capture could not be read: bad.pcap: not a capture" in words(doc)


def test_file_name_is_escaped(tmp_path, analyze):
    # a file name cannot hold "/": an unclosed <script> would still run the rest
    evil = tmp_path / '<script>window.__pwned=1;<img src=x onerror="window.__pwned=2">.pcap'
    shutil.copy(SAMPLES / "crafted/hs002_synack-bad-ack.pcap", evil)
    res = runner.invoke(app, ["analyze", str(evil), "-f", "html", "--fail-on", "never"])
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "<script>window" not in text and "<img" not in text
    assert "&lt;script&gt;window.__pwned=1;&lt;img src=x onerror=&#34;window" in text
    doc = parse(text)
    assert len(doc.all("script")) == 1 and not doc.all("img")
    assert doc.one("section", cls="capture").attrs["data-path"] == str(evil)


def test_cli_writes_the_page(tmp_path):
    out = tmp_path / "report.html"
    res = runner.invoke(
        app,
        ["analyze", str(SAMPLES / "crafted/clean_handshake_close.pcap"), "-f", f"html={out}"],
    )
    assert res.exit_code == 0, res.output
    doc = parse(out.read_text(encoding="utf-8"))
    assert len(doc.all("g", cls="arrow")) == 10


def test_a_large_capture_stays_bounded(tmp_path):
    """1,200 connections (bench/generate.py): 1,000 rows, 25 ladders, those with findings
    first, and the page under a megabyte."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    capture = tmp_path / "many.pcap"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "generate.py"), str(capture)]
        + ["--connections", "1200", "--concurrency", "16", "--exchanges", "1"],
        check=True,
        capture_output=True,
    )
    page = tmp_path / "many.html"
    report = tmp_path / "many.json"
    res = runner.invoke(
        app,
        ["analyze", str(capture), "-f", f"html={page}", "-f", f"json={report}"]
        + ["--fail-on", "never"],
    )
    assert res.exit_code == 0, res.output
    assert page.stat().st_size < 1_000_000
    doc = parse(page.read_text(encoding="utf-8"))
    summary = json.loads(report.read_text(encoding="utf-8"))["files"][0]
    assert words(doc.one("dd", data_key="connections")) == "1200"
    rows = doc.one("table", cls="connections").all("tr")[1:]
    assert [r.attrs["data-connection"] for r in rows] == [str(i) for i in range(1, 1001)]
    assert words(doc.one("p", data_key="rows_left_out")).startswith("200 more connections")
    with_findings = [c["id"] for c in summary["connections"] if c["findings"]]
    drawn = sorted(
        int(s.attrs["data-connection"])
        for s in doc.all("svg", cls="ladder")
        if s.attrs.get("data-connection") and s.all("text", cls="side")
    )
    assert drawn == sorted(with_findings[:25])
    assert words(doc.one("p", data_key="ladders")).startswith(
        "25 ladders drawn; 1175 connections without a ladder"
    )
    # every finding listed in its connection's section, linked from the table's row
    sections = {s.attrs["data-connection"] for s in doc.all("section", cls="connection")}
    assert sections == {str(c) for c in with_findings}


def test_the_ladders_of_a_capture_share_a_budget_of_rows(page, monkeypatch):
    monkeypatch.setattr(html_report, "LADDER_ROWS", 25)
    _text, doc = page("grading/submissions/ivan.pcap")
    drawn = [s.attrs["data-connection"] for s in doc.all("svg", cls="ladder")]
    assert drawn == ["1", "2"]  # 11 + 10 rows; 4 left, fewer than a ladder needs
    assert words(doc.one("p", data_key="ladders")).startswith(
        "2 ladders drawn; 2 connections without a ladder"
    )
    second = doc.one("section", id="c1-conn2")
    assert len(second.all("g", cls="arrow")) == 10


def test_a_clock_off_the_calendar_is_shown_in_seconds(analyze):
    import dataclasses

    res = analyze("crafted/clean_handshake_close.pcap")
    res = dataclasses.replace(res, connections=[dict(c, start_ts=1.85e13) for c in res.connections])
    doc = parse(FORMATS["html"]([res], None))
    assert words(doc.one("dd", data_key="span")).startswith(
        "18500000000000.000000 s since the epoch to 18500000000000.00"
    )  # the end in float precision at that size


def test_severity_counts_are_the_table_format_s(page):
    """The summary's counts by severity say what every report says (report.common)."""
    _text, doc = page("artefacts/bad/zero_length_record.pcap")
    dd = words(doc.one("section", id="c1").one("dd", data_key="findings"))
    assert dd == "2 (2 warnings)"


def test_only_what_the_drawn_ladders_show_is_held(tmp_path, monkeypatch):
    """A connection of 3,000 retransmissions (an SQ002 finding each, bench/hostile.py):
    the ladder reads its segments one at a time and holds a bounded number of them, and
    only the findings of its first rows are kept for it."""
    import sys

    from conftest import ROOT

    from pcapcheck.catalog.rules import load_catalog
    from pcapcheck.pipeline import analyze_file
    from pcapcheck.report import ladder_model

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from hostile import write_retransmissions
    finally:
        sys.path.remove(str(ROOT / "bench"))
    capture = tmp_path / "resent.pcap"
    write_retransmissions(capture, 3000)
    catalog = load_catalog()
    result = analyze_file(capture, catalog, catalog.select(None, None))
    assert sum(f.rule == "SQ002" for f in result.findings) == 3000

    seen = {"held": 0, "findings": [], "segments": 0}

    class Counting(ladder_model.LadderBuilder):
        def __init__(self, *args, **kw):
            seen["findings"].append(len(kw["findings"]))
            super().__init__(*args, **kw)

        def add(self, seg):
            super().add(seg)
            seen["segments"] += 1
            seen["held"] = max(seen["held"], self.held)

    monkeypatch.setattr(ladder_model, "LadderBuilder", Counting)
    html_report.render([result], None, ladder_steps=50)
    assert seen["segments"] == result.tcp_packets == 3009  # every segment read
    bound = 50 + ladder_model.FOLD_STEPS + 2 * ladder_model.FOLD_KEEP + 1
    assert 50 <= seen["held"] <= bound
    assert seen["findings"] == [50]  # one per frame: the first 50 frames with one


def test_connection_filter_names_the_tunnel(page):
    """One filter for a connection (report.common, the grading feedback's too): the
    endpoints and each tunnel's id under Wireshark's field name."""
    from pcapcheck.report.common import connection_filter

    base = "ip.addr == 10.0.0.1 && tcp.port == 40000 && ip.addr == 10.0.0.2 && tcp.port == 80"
    _text, doc = page("encap/vxlan.pcap")
    filters = [
        next(c.text for c in s.all("code", cls="filter"))
        for s in doc.all("section", cls="connection")
    ]
    assert filters == [f"{base} && vxlan.vni == 42", f"{base} && vxlan.vni == 43"]
    conn = {"client": "[2001:db8::1]:40000", "server": "[2001:db8::2]:80"}
    for path, tail in (
        (["eth", "ipv4 192.0.2.1>192.0.2.2", "gre 1", "ipv4"], " && gre.key == 1"),
        (["eth", "mpls 100", "mpls 200", "ipv6"], " && mpls.label == 100 && mpls.label == 200"),
        (
            ["eth", "ipv4 192.0.2.1>192.0.2.2", "udp 2152", "gtpu 4097", "ipv6"],
            " && gtp.teid == 4097",
        ),
        (["eth", "ipv4 192.0.2.1>192.0.2.2", "ipv6"], ""),
    ):
        assert connection_filter({**conn, "encapsulation": path}) == (
            "ipv6.addr == 2001:db8::1 && tcp.port == 40000 && "
            "ipv6.addr == 2001:db8::2 && tcp.port == 80" + tail
        )


def test_connection_table_is_the_common_row(page, analyze):
    """The page's table has report.common's columns and cells, as the table and
    markdown formats do."""
    from pcapcheck.report.common import CONNECTION_COLUMNS, connection_row

    _text, doc = page("encap/vxlan.pcap")
    table = doc.one("table", cls="connections")
    assert [words(th) for th in table.all("th")] == list(CONNECTION_COLUMNS)
    result = analyze("encap/vxlan.pcap")
    got = [[words(td) for td in tr.all("td")] for tr in table.all("tr")[1:]]
    want = [[str(v) for v in connection_row(c).values()] for c in result.connections]
    assert got == want
    assert want[1] == [
        "2", "10.0.0.1:40000", "10.0.0.2:80", "vxlan:43", "incomplete", "none", "SYN-SENT",
        "LISTEN", "RSTO", "3", "1",
    ]  # fmt: skip
