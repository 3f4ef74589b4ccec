"""The HTML pages in a real browser: headless Chromium (the system's, /usr/bin/chromium)
driven by Playwright, opening the generated files and checking what a person sees: the
ladder's arrows and state labels, a finding's marker leading to its finding, the table's
sort and filter, a fold that opens, no console error, no request leaving the page, and
nothing executed from a capture's file name or payload. A screenshot of each page is
kept in ``$PCAPCHECK_ARTIFACTS`` (default: a temporary directory);
``PCAPCHECK_UPDATE_SCREENSHOTS=1`` also writes the README's ``docs/images/html-report.png``.

Skipped when Playwright or Chromium is missing, unless ``PCAPCHECK_FULL=1`` (CI): then
that is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, need
from typer.testing import CliRunner

from pcapcheck.cli import app

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ALICE = "grading/submissions/alice/http.pcap"
runner = CliRunner()


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed"
    return None


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    need(why is None, str(why))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    where = os.environ.get("PCAPCHECK_ARTIFACTS")
    path = Path(where) if where else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pages")


def report(pages: Path, name: str, *captures: str | Path) -> Path:
    out = pages / f"{name}.html"
    res = runner.invoke(
        app,
        ["analyze", *(str(c) for c in captures), "-f", f"html={out}", "--fail-on", "never"],
    )
    assert res.exit_code == 0, res.output
    return out


class Visit:
    """One page opened in its own browser context, with what it did recorded."""

    def __init__(self, browser, path: Path):
        self.url = path.as_uri()
        self.context = browser.new_context(viewport={"width": 1100, "height": 900})
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on(
            "console",
            lambda m: self.console.append(f"{m.type}: {m.text}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def dialog(d):
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", dialog)

        def route(r):
            if r.request.url.split("#")[0] == self.url:
                r.continue_()
            else:
                self.requests.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)
        self.page.goto(self.url)

    def check_quiet(self) -> None:
        assert self.console == []
        assert self.errors == []
        assert self.dialogs == []
        assert self.requests == []

    def shot(self, artifacts: Path, name: str) -> Path:
        out = artifacts / f"{name}.png"
        self.page.screenshot(path=str(out))
        return out


@pytest.fixture
def visit(browser):
    opened: list[Visit] = []

    def open_page(path: Path) -> Visit:
        v = Visit(browser, path)
        opened.append(v)
        return v

    yield open_page
    for v in opened:
        try:
            v.check_quiet()
        finally:
            v.context.close()


def texts(locator) -> list[str]:
    return [t.strip() for t in locator.all_text_contents()]


def test_clean_connection_ladder(visit, pages, artifacts):
    v = visit(report(pages, "clean", SAMPLES / "crafted/clean_handshake_close.pcap"))
    page = v.page
    ladder = page.locator("#c1-conn1 svg.ladder")
    arrows = ladder.locator("g.arrow")
    assert arrows.count() == 10
    frames = [arrows.nth(i).get_attribute("data-frame") for i in range(10)]
    assert frames == [str(n) for n in range(1, 11)]
    labels = texts(ladder.locator("g.arrow text.label"))
    assert labels[:3] == ["SYN seq=0 len=0", "SYN,ACK seq=0 ack=1 len=0", "ACK seq=1 ack=1 len=0"]
    assert labels[6] == "FIN,ACK seq=101 ack=1001 len=0"
    assert texts(ladder.locator("g.arrow text.frame-number")) == frames
    for i in range(10):
        assert arrows.nth(i).is_visible()
    client = texts(ladder.locator("text.state[data-side=client]"))
    server = texts(ladder.locator("text.state[data-side=server]"))
    assert client == ["CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    assert server == ["LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    # beside their own line: every client label left of every server label
    client_x = max(b["x"] + b["width"] for b in _boxes(ladder.locator("text.state.client")))
    server_x = min(b["x"] for b in _boxes(ladder.locator("text.state.server")))
    arrow_box = arrows.nth(0).locator("line").bounding_box()
    assert client_x <= arrow_box["x"] + 1 and server_x >= arrow_box["x"] + arrow_box["width"] - 1
    # SYN-RECEIVED on the server's line at the SYN-ACK's row
    syn_ack = ladder.locator("g.arrow[data-frame='2']").bounding_box()
    received = ladder.locator("text.state[data-state='SYN-RECEIVED']").bounding_box()
    assert syn_ack["y"] - 10 <= received["y"] <= syn_ack["y"] + syn_ack["height"] + 10
    v.shot(artifacts, "clean_handshake_close")


def _boxes(locator) -> list[dict]:
    return [locator.nth(i).bounding_box() for i in range(locator.count())]


def test_finding_marker_leads_to_its_finding(visit, pages, artifacts):
    v = visit(report(pages, "hs002", SAMPLES / "crafted/hs002_synack-bad-ack.pcap"))
    page = v.page
    finding = page.locator("#c1-f0")
    marker = page.locator("#c1-conn1 a.finding-marker[data-rule=HS002]")
    assert marker.get_attribute("data-frame") == "2"
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    marker.click()
    assert page.evaluate("location.hash") == "#c1-f0"
    assert page.evaluate("document.querySelector(':target').id") == "c1-f0"
    assert finding.is_visible()
    assert "SYN-ACK acknowledges 0" in finding.inner_text()
    assert finding.locator("button.copy").inner_text() == "Copy"
    assert finding.locator("code.filter").inner_text() == "frame.number == 2"
    top = page.evaluate("document.getElementById('c1-f0').getBoundingClientRect().top")
    assert 0 <= top < 900
    # the rule's explanation one click away
    page.locator("#c1-f0 a[href='#c1-rule-HS002']").click()
    assert page.locator("#c1-rule-HS002").evaluate("d => d.open")
    assert page.locator("#c1-rule-HS002 .explanation h2").first.is_visible()
    v.shot(artifacts, "hs002_synack-bad-ack")


def test_table_sort_and_filter(visit, pages):
    v = visit(report(pages, "ivan", SAMPLES / "grading/submissions/ivan.pcap"))
    page = v.page
    rows = page.locator("#c1-table tbody tr")

    def visible_ids() -> list[str]:
        return [
            rows.nth(i).get_attribute("data-connection")
            for i in range(rows.count())
            if rows.nth(i).is_visible()
        ]

    assert visible_ids() == ["1", "2", "3", "4"]
    page.locator("input.table-filter").fill("55102")
    assert visible_ids() == ["3"]
    page.locator("input.table-filter").fill("")
    assert visible_ids() == ["1", "2", "3", "4"]
    page.locator("#c1-table th button", has_text="packets").click()  # 11, 10, 10, 10
    assert visible_ids() == ["2", "3", "4", "1"]
    page.locator("#c1-table th button", has_text="packets").click()
    assert visible_ids()[0] == "1"
    page.locator("#c1-table th button", has_text="client").first.click()
    assert visible_ids() == ["1", "2", "3", "4"]
    page.locator("#c1-table th button", has_text="client").first.click()
    assert visible_ids() == ["4", "3", "2", "1"]
    # a row's link leads to its connection
    rows.nth(0).locator("a").click()
    assert page.evaluate("location.hash") == "#c1-conn4"


def test_fold_opens(visit, pages, artifacts):
    v = visit(report(pages, "alice", SAMPLES / ALICE))
    page = v.page
    fold = page.locator("details.fold")
    assert fold.count() == 1
    inside = fold.locator("g.arrow")
    assert inside.count() == 16 and not inside.first.is_visible()
    assert "16 segments of data transfer" in fold.locator("summary").inner_text()
    fold.locator("summary").click()
    assert inside.first.is_visible() and inside.nth(15).is_visible()
    assert inside.first.get_attribute("data-frame") == "7"
    v.shot(artifacts, "alice_http")


def test_report_screenshot(visit, pages, artifacts, monkeypatch):
    """The page of several captures; the README's screenshot when asked for."""
    monkeypatch.chdir(ROOT)  # the paths shown as a user would type them
    path = report(
        pages,
        "overview",
        "sample_pcaps/crafted/hs002_synack-bad-ack.pcap",
        "sample_pcaps/crafted/cp002_capture-loss.pcap",
        "sample_pcaps/grading/submissions/ivan.pcap",
    )
    v = visit(path)
    v.page.set_viewport_size({"width": 1100, "height": 1500})
    shot = v.shot(artifacts, "overview")
    assert shot.stat().st_size > 10_000
    if os.environ.get("PCAPCHECK_UPDATE_SCREENSHOTS") == "1":
        target = ROOT / "docs" / "images" / "html-report.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_ladder_command_pages(visit, pages, artifacts):
    html = pages / "ladder.html"
    svg = pages / "ladder.svg"
    for fmt, out in (("html", html), ("svg", svg)):
        res = runner.invoke(
            app,
            [
                "ladder",
                str(SAMPLES / "crafted/clean_simultaneous_close.pcap"),
                "-f",
                fmt,
                "-o",
                str(out),
            ],
        )
        assert res.exit_code == 0, res.output
    v = visit(html)
    assert v.page.locator("svg.ladder g.arrow").count() == 10
    marker = v.page.locator("a.finding-marker[data-rule=CL007]")
    marker.click()
    assert v.page.evaluate("document.querySelector(':target').dataset.rule") == "CL007"
    v.shot(artifacts, "ladder_simultaneous_close")
    w = visit(svg)
    server = texts(w.page.locator("text.state[data-side=server]"))
    client = texts(w.page.locator("text.state[data-side=client]"))
    assert "TIME-WAIT" in client and "TIME-WAIT" in server  # both closed first
    assert client.count("CLOSING") == 1 and server.count("CLOSING") == 1


def test_html_in_file_name_and_payload_never_runs(visit, pages, tmp_path, artifacts):
    import dpkt

    name = '<script>window.__pwned=1;<img src=x onerror="window.__pwned=2;alert(2)">.pcap'
    evil = tmp_path / name
    payload = b'<script>window.__pwned=3</script><img src=x onerror="alert(4)">'
    with (
        open(SAMPLES / "crafted/clean_handshake_close.pcap", "rb") as f,
        open(evil, "wb") as out,
    ):
        writer = dpkt.pcap.Writer(out)
        for ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            tcp = eth.data.data
            if tcp.data:
                tcp.data = (payload * 20)[: len(tcp.data)]
                tcp.sum = 0
                eth.data.sum = 0
            writer.writepkt(bytes(eth), ts)
    v = visit(report(pages, "evil", evil))
    page = v.page
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1
    heading = page.locator("section.capture h2").inner_text()
    assert heading.endswith(name)
    assert page.locator("#c1-conn1 g.arrow").count() == 10
    v.shot(artifacts, "escaped_names")


def test_grade_feedback_page(visit, tmp_path, artifacts):
    out = tmp_path / "grades"
    res = runner.invoke(
        app,
        [
            "grade",
            str(SAMPLES / "grading/submissions/carol.pcap"),
            "--rubric",
            str(SAMPLES / "grading/http_lab.yaml"),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    v = visit(out / "carol" / "feedback.html")
    page = v.page
    assert page.locator("h1").inner_text() == "Lab 3: one HTTP download, start to finish"
    arrows = page.locator("#ladder-1 svg.ladder g.arrow")
    assert arrows.count() == 11 and arrows.nth(10).is_visible()
    assert arrows.nth(10).get_attribute("data-flags") == "RST,ACK"
    marker = page.locator("#ladder-1 .finding-marker[data-rule=RS001]")
    assert marker.is_visible() and marker.get_attribute("data-frame") == "11"
    client = texts(page.locator("#ladder-1 text.state[data-side=client]"))
    assert client[:3] == ["CLOSED", "SYN-SENT", "ESTABLISHED"] and client[-1] == "CLOSED"
    v.shot(artifacts, "feedback_carol")
