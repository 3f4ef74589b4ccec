"""The SVG ladder and the ladder model it draws: arrows, states beside the lines where they
change, finding markers, folds, missed segments, the cap on rows, escaping, and
`pcapcheck ladder --format svg|html --output`."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import SAMPLES
from typer.testing import CliRunner

from pcapcheck.cli import app
from pcapcheck.report.ladder import connection_segments, render_ladder, render_text
from pcapcheck.report.ladder_model import Fold, Step, build_ladder
from pcapcheck.report.ladder_svg import render_svg, svg_parts

NS = "{http://www.w3.org/2000/svg}"
ALICE = "grading/submissions/alice/http.pcap"
runner = CliRunner()


@pytest.fixture(scope="module")
def model(analyze):
    def build(name: str, connection: int = 1, **kw):
        result = analyze(name)
        segs = connection_segments(SAMPLES / name, result.connections)
        return result, build_ladder(result, connection, segs[connection], **kw)

    return build


def svg_of(ladder, **kw) -> ET.Element:
    return ET.fromstring(render_svg(ladder, **kw))


def arrows(root: ET.Element) -> list[dict[str, str]]:
    return [dict(g.attrib) for g in root.iter(f"{NS}g") if "arrow" in g.get("class", "").split()]


def states(root: ET.Element, side: str) -> list[tuple[str, str]]:
    """``(frame, state)`` of ``side``'s state labels, top to bottom ("" = initial)."""
    return [
        (t.get("data-frame"), t.text) for t in root.iter(f"{NS}text") if t.get("data-side") == side
    ]


def test_clean_connection_arrows_and_states(model):
    _result, ladder = model("crafted/clean_handshake_close.pcap")
    root = svg_of(ladder)
    got = [(a["data-frame"], a["data-direction"], a["data-flags"]) for a in arrows(root)]
    assert got == [
        ("1", "client-to-server", "SYN"),
        ("2", "server-to-client", "SYN,ACK"),
        ("3", "client-to-server", "ACK"),
        ("4", "client-to-server", "PSH,ACK"),
        ("5", "server-to-client", "PSH,ACK"),
        ("6", "client-to-server", "ACK"),
        ("7", "client-to-server", "FIN,ACK"),
        ("8", "server-to-client", "ACK"),
        ("9", "server-to-client", "FIN,ACK"),
        ("10", "client-to-server", "ACK"),
    ]
    assert [(a["data-seq"], a["data-ack"], a["data-len"]) for a in arrows(root)][:5] == [
        ("0", "", "0"),
        ("0", "1", "0"),
        ("1", "1", "0"),
        ("1", "1", "100"),
        ("1", "101", "1000"),
    ]
    assert states(root, "client") == [
        ("", "CLOSED"),
        ("1", "SYN-SENT"),
        ("2", "ESTABLISHED"),
        ("7", "FIN-WAIT-1"),
        ("8", "FIN-WAIT-2"),
        ("9", "TIME-WAIT"),
    ]
    # SYN-RECEIVED after the SYN-ACK; CLOSE-WAIT on the side that received the first FIN;
    # TIME-WAIT only on the side that closed first
    assert states(root, "server") == [
        ("", "LISTEN"),
        ("2", "SYN-RECEIVED"),
        ("3", "ESTABLISHED"),
        ("7", "CLOSE-WAIT"),
        ("9", "LAST-ACK"),
        ("10", "CLOSED"),
    ]
    labels = [
        t.text
        for g in root.iter(f"{NS}g")
        for t in g.iter(f"{NS}text")
        if t.get("class") == "label"
    ]
    assert labels[1] == "SYN,ACK seq=0 ack=1 len=0"
    assert labels[6] == "FIN,ACK seq=101 ack=1001 len=0"
    assert root.find(f"{NS}title").text == (
        "Ladder of connection 1: client 10.0.0.1:40000, server 10.0.0.2:80"
    )
    assert not list(root.iter(f"{NS}a")) and root.find(f"{NS}style") is not None


def test_svg_and_text_draw_the_same_model(model, analyze):
    result, ladder = model(ALICE)
    segs = connection_segments(SAMPLES / ALICE, result.connections)
    assert render_text(ladder) == render_ladder(result, 1, segs[1])
    text_frames = {
        int(line[:5]) for line in render_text(ladder).splitlines() if line[:5].strip().isdigit()
    }
    svg_frames = {int(a["data-frame"]) for a in arrows(svg_of(ladder))}
    assert svg_frames == text_frames == set(range(1, 7)) | set(range(23, 30))


def test_fold_counts_and_expandable_parts(model):
    _result, ladder = model(ALICE)
    folds = [e for e in ladder.entries if isinstance(e, Fold)]
    assert len(folds) == 1
    fold = folds[0]
    assert (fold.count, fold.first_frame, fold.last_frame) == (16, 7, 22)
    # server seq 1449 at frame 6 (len 1448) to 17377 at frame 23: 14480 bytes in 10 segments
    assert fold.data_segments == 10 and fold.bytes == 14480
    assert [s.frame for s in fold.steps] == list(range(7, 23))
    g = next(g for g in svg_of(ladder).iter(f"{NS}g") if g.get("class") == "fold")
    assert (g.get("data-count"), g.get("data-bytes"), g.get("data-first"), g.get("data-last")) == (
        "16",
        "14480",
        "7",
        "22",
    )
    text = "".join(g.itertext())
    assert "16 segments of data transfer, 14 kB (frames 7–22)" in text
    parts = svg_parts(ladder)
    assert [p.fold is not None for p in parts] == [False, True, False]
    inside = arrows(ET.fromstring(parts[1].steps_svg))
    assert [int(a["data-frame"]) for a in inside] == list(range(7, 23))
    before, after = (arrows(ET.fromstring(parts[i].svg)) for i in (0, 2))
    assert [a["data-frame"] for a in before] == ["1", "2", "3", "4", "5", "6"]
    assert after[0]["data-frame"] == "23"


def test_finding_marker_on_its_arrow_links_and_colours(model):
    _result, ladder = model("crafted/hs013_fin-before-established.pcap")
    root = svg_of(ladder, href=lambda m: f"#finding-{m.index}")
    markers = [a for a in root.iter(f"{NS}a") if "finding-marker" in a.get("class", "")]
    assert [(m.get("data-rule"), m.get("data-frame"), m.get("href")) for m in markers] == [
        ("HS013", "2", "#finding-0"),
        ("RS004", "4", "#finding-1"),
    ]
    assert "severity-error" in markers[0].get("class") and "kind-endpoint" in markers[0].get(
        "class"
    )
    assert "severity-warning" in markers[1].get("class")
    assert (
        markers[0]
        .find(f"{NS}title")
        .text.startswith("HS013 fin-before-established (error): the client sent a FIN (seq 1)")
    )


def test_capture_loss_is_a_dashed_missed_segment_and_a_capture_marker(model):
    _result, ladder = model("crafted/cp002_capture-loss.pcap")
    step = next(s for s in ladder.steps if s.frame == 6)
    assert [(lo.from_client, lo.start, lo.end) for lo in step.lost] == [(False, 1001, 2001)]
    root = svg_of(ladder)
    lost = [g for g in root.iter(f"{NS}g") if g.get("class") == "lost"]
    assert [(g.get("data-frame"), g.get("data-direction")) for g in lost] == [
        ("6", "server-to-client")
    ]
    assert "not captured: seq=1001 to 2001" in "".join(lost[0].itertext())
    marker = next(g for g in root.iter(f"{NS}g") if "finding-marker" in g.get("class", ""))
    assert "kind-capture" in marker.get("class") and marker.get("data-rule") == "CP002"
    # drawn just before the arrow of the frame that proves it
    order = [
        (g.get("class").split()[0], g.get("data-frame"))
        for g in root
        if g.tag == f"{NS}g" and g.get("class", "").split()[0] in ("arrow", "lost")
    ]
    assert order.index(("lost", "6")) + 1 == order.index(("arrow", "6"))


def test_simultaneous_open_two_states_at_one_frame(model):
    _result, ladder = model("crafted/clean_simultaneous_open.pcap")
    step = next(s for s in ladder.steps if s.frame == 2)
    assert step.server_states == ("SYN-SENT", "SYN-RECEIVED")
    root = svg_of(ladder)
    assert [s for f, s in states(root, "server") if f == "2"] == ["SYN-SENT", "SYN-RECEIVED"]


def test_cap_on_rows_with_a_note(model):
    _result, ladder = model("crafted/clean_handshake_close.pcap", max_steps=4)
    assert [e.frame for e in ladder.entries if isinstance(e, Step)] == [1, 2, 3, 4]
    assert ladder.cut is not None
    assert (ladder.cut.segments, ladder.cut.first_frame, ladder.cut.last_frame) == (6, 5, 10)
    root = svg_of(ladder)
    assert len(arrows(root)) == 4
    cut = next(t for t in root.iter(f"{NS}text") if t.get("class") == "cut")
    assert cut.text == "6 more segments not drawn (frames 5–10)"
    assert "6 more segments not drawn (frames 5–10)" in render_text(ladder)


def test_untrusted_text_is_escaped(model):
    _result, ladder = model("crafted/hs013_fin-before-established.pcap")
    evil = "<script>alert(1)</script>&<img src=x onerror=alert(2)>"
    ladder.conn = dict(ladder.conn, client=evil)
    text = render_svg(ladder, href=lambda m: f'#x"><script>{m.index}')
    assert "<script>" not in text and "<img" not in text
    root = ET.fromstring(text)  # still well-formed XML
    assert evil in "".join(root.itertext())
    assert {a.get("href") for a in root.iter(f"{NS}a")} == {'#x"><script>0', '#x"><script>1'}


# ---- the command ------------------------------------------------------------------------


def test_command_svg_to_a_file(tmp_path):
    out = tmp_path / "ladder.svg"
    res = runner.invoke(
        app,
        [
            "ladder",
            str(SAMPLES / "crafted/clean_handshake_close.pcap"),
            "--format",
            "svg",
            "--output",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    root = ET.parse(out).getroot()
    assert root.tag == f"{NS}svg" and len(arrows(root)) == 10


def test_command_html_page_links_markers_to_findings():
    res = runner.invoke(
        app,
        ["ladder", str(SAMPLES / "crafted/hs013_fin-before-established.pcap"), "-f", "html"],
    )
    assert res.exit_code == 0, res.output
    page = res.stdout
    assert page.startswith("<!DOCTYPE html>")
    assert 'href="#c1-f0"' in page and 'id="c1-f0"' in page
    assert 'href="#c1-f1"' in page and 'id="c1-f1"' in page
    assert "Content-Security-Policy" in page and "default-src &#39;none&#39;" in page


def test_command_unknown_format_is_one_line():
    res = runner.invoke(
        app, ["ladder", str(SAMPLES / "crafted/clean_handshake_close.pcap"), "-f", "png"]
    )
    assert res.exit_code == 2
    assert "--format: 'png' is not one of text, svg, html" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_folds_keep_a_bounded_number_of_steps(model, monkeypatch):
    import pcapcheck.report.ladder_model as ladder_model

    monkeypatch.setattr(ladder_model, "FOLD_STEPS", 5)
    _result, ladder = model(ALICE)
    fold = next(e for e in ladder.entries if isinstance(e, Fold))
    assert [s.frame for s in fold.steps] == [7, 8, 9, 10, 11]
    assert (fold.count, fold.hidden) == (16, 11)
    part = next(p for p in svg_parts(ladder) if p.fold is not None)
    inside = ET.fromstring(part.steps_svg)
    assert [a["data-frame"] for a in arrows(inside)] == ["7", "8", "9", "10", "11"]
    note = next(t for t in inside.iter(f"{NS}text") if t.get("class") == "cut")
    assert note.text == "11 more folded segments not drawn"


def test_marker_title_and_fold_in_korean(model):
    """The marker's title and a fold's words follow the language (the severity too)."""
    from pcapcheck.i18n import set_language
    from pcapcheck.report.ladder_svg import fold_summary

    _result, ladder = model("crafted/hs002_synack-bad-ack.pcap")
    set_language("ko")
    try:
        root = svg_of(ladder)
        fold = Fold(120, 120, 174080, 7, 126)
        summary = fold_summary(fold)
    finally:
        set_language("en")
    marker = next(g for g in root.iter() if "finding-marker" in g.get("class", ""))
    assert marker.find(f"{NS}title").text.startswith("HS002 synack-bad-ack (오류): ")
    assert summary.startswith("… 데이터 세그먼트 120개, ") and summary.endswith("(프레임 7–126) …")
    assert fold_summary(fold).startswith("… 120 data segments, ")
    assert fold_summary(fold).endswith(" (frames 7–126) …")
