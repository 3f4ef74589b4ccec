"""Korean (``--lang ko``): the rule data's translations (interface I2), the localised
finding messages of every report format (I3), the gettext catalogs (Babel), the language
from ``--lang`` / the configuration / the environment (I8), and English unchanged."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pcapcheck.catalog.rules import (
    TEXT_FIELDS,
    CatalogError,
    load_catalog,
    load_rule_file,
    template_fields,
)
from pcapcheck.commands import app
from pcapcheck.i18n import get_language, set_language

ROOT = Path(__file__).resolve().parent.parent
HANGUL = re.compile(r"[\uac00-\ud7a3]")
HS002_PCAP = str(ROOT / "sample_pcaps" / "crafted" / "hs002_synack-bad-ack.pcap")
HS013_PCAP = str(ROOT / "sample_pcaps" / "crafted" / "hs013_fin-before-established.pcap")
CL003_PCAP = str(ROOT / "sample_pcaps" / "crafted" / "cl003_close-incomplete.pcap")
#: An environment without any locale variable (English), for the commands run here.
NO_LOCALE = {"LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": ""}
runner = CliRunner()


@pytest.fixture(autouse=True)
def english_after():
    """Every test here leaves the process in English (CliRunner runs the commands in
    this process, where the language is a global)."""
    yield
    set_language("en")


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env={**NO_LOCALE, **(env or {})})


@pytest.fixture(scope="module")
def rules():
    return list(load_catalog())


# --------------------------------------------------------------------------- rule data (I2)


def test_every_rule_has_korean_text(rules):
    missing = [
        f"{rule.id}.{name}"
        for rule in rules
        for name in TEXT_FIELDS
        if not HANGUL.search(rule.translations.get("ko", {}).get(name, ""))
    ]
    assert missing == []


def test_korean_placeholders_equal_the_english_ones(rules):
    for rule in rules:
        message = rule.translations.get("ko", {}).get("message")
        if message is not None:
            assert set(template_fields(message)) == set(template_fields(rule.message)), rule.id


def test_rule_text_falls_back_to_english(rules):
    hs002 = next(rule for rule in rules if rule.id == "HS002")
    assert hs002.text("summary", "en") == hs002.summary
    assert hs002.text("message", "en") == hs002.message
    assert hs002.text("explanation", "fr") == hs002.explanation
    with pytest.raises(ValueError, match="not a rule text field"):
        hs002.text("name")


def _user_rule(tmp_path: Path, ko_message: str) -> Path:
    text = (ROOT / "rules" / "HS002.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^translations:.*?(?=^\S)", "", text)
    text += (
        "translations:\n"
        "  ko:\n"
        "    summary: SYN-ACK의 확인 번호가 틀렸습니다\n"
        f"    message: '{ko_message}'\n"
    )
    path = tmp_path / "HS002.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_user_rule_with_korean_text_loads(tmp_path):
    message = (
        "SYN-ACK가 {ack}을(를) 확인했습니다. 기대값 {expected} "
        "(절대값 {ack_abs}, 기대값 {expected_abs}; SYN 데이터 {syn_data_len}바이트)"
    )
    rule = load_rule_file(_user_rule(tmp_path, message))
    assert rule.text("message", "ko") == message
    assert rule.text("summary", "ko") == "SYN-ACK의 확인 번호가 틀렸습니다"
    assert rule.text("explanation", "ko") == rule.explanation  # not translated: English


def test_user_rule_with_other_placeholders_is_a_one_line_error(tmp_path):
    path = _user_rule(tmp_path, "SYN-ACK가 {ack}을(를) 확인했습니다. 기대값 {expectd}")
    with pytest.raises(CatalogError) as info:
        load_rule_file(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.endswith(
        "HS002.yaml: translations.ko.message: placeholders {ack, expectd} differ from the "
        "English message's {ack, ack_abs, expected, expected_abs, syn_data_len}"
    )


def test_user_rule_with_an_unknown_language_is_an_error(tmp_path):
    path = _user_rule(tmp_path, "{ack}")
    path.write_text(
        path.read_text(encoding="utf-8").replace("translations:\n  ko:", "translations:\n  fr:"),
        encoding="utf-8",
    )
    with pytest.raises(CatalogError, match=r"HS002.yaml: translations: 'fr' is not one of"):
        load_rule_file(path)


# --------------------------------------------------------------------------- findings (I3)


KO_HS002 = (
    "SYN-ACK가 {ack}을(를) 확인했습니다. 기대값은 클라이언트 ISN+1 = {expected} "
    "(절대값 {ack_abs}, 기대값 {expected_abs}; SYN 데이터 {syn_data_len}바이트)"
)


def test_finding_messages_follow_the_language_in_every_format(tmp_path):
    from pcapcheck.i18n import set_language
    from pcapcheck.pipeline import analyze_file
    from pcapcheck.report import FORMATS, ReportContext
    from pcapcheck.report.common import finding_message

    catalog = load_catalog([_user_rule(tmp_path, KO_HS002)])
    active = frozenset(catalog.select())
    result = analyze_file(
        ROOT / "sample_pcaps/crafted/hs002_synack-bad-ack.pcap", catalog, set(active)
    )
    ctx = ReportContext(catalog=catalog, active=active)
    hs002 = next(f for f in result.findings if f.rule == "HS002")
    english = FORMATS["jsonl"]([result], ctx)
    set_language("ko")
    try:
        korean = FORMATS["jsonl"]([result], ctx)
        message = finding_message(hs002, catalog.get("HS002"))
    finally:
        set_language("en")
    assert message == KO_HS002.format(**hs002.data)
    assert message.startswith(
        "SYN-ACK가 0을(를) 확인했습니다. 기대값은 클라이언트 ISN+1 = 1 (절대값 "
    )
    assert english != korean
    assert message in korean
    assert hs002.message in english and hs002.message not in korean
    # the findings themselves are untouched (localised as a report reads them)
    assert next(f for f in result.findings if f.rule == "HS002").message == hs002.message


# --------------------------------------------------------------------------- catalogs


def test_message_catalogs_are_complete_and_compiled():
    """scripts/i18n.py check: the .pot holds every marked string, each has its Korean
    text with the same placeholders, and the .mo is the .po compiled."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "i18n.py"), "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "message catalogs up to date (ko)"


def test_check_finds_a_missing_translation(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import i18n as tool
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    po = tmp_path / "ko" / "LC_MESSAGES" / "pcapcheck.po"
    po.parent.mkdir(parents=True)
    text = tool.po_path("ko").read_text(encoding="utf-8")
    po.write_text(
        text.replace('msgstr "TCP 연결이 없습니다."', 'msgstr ""', 1).replace(
            'msgstr "오류: {reason}"', 'msgstr "오류: {reson}"', 1
        ),
        encoding="utf-8",
    )
    (tmp_path / "ko" / "LC_MESSAGES" / "pcapcheck.mo").write_bytes(tool.mo_path("ko").read_bytes())
    monkeypatch.setattr(tool, "po_path", lambda lang: po)
    monkeypatch.setattr(tool, "mo_path", lambda lang: po.with_suffix(".mo"))
    problems = tool.problems()
    assert any("'No TCP connections.': no translation" in p for p in problems), problems
    assert any(
        "'error: {reason}': placeholders ['reson'] differ from the English ones ['reason']" in p
        for p in problems
    ), problems
    assert any("pcapcheck.mo: does not match" in p for p in problems), problems


def test_gettext_in_korean():
    from pcapcheck.i18n import gettext, ngettext

    set_language("ko")
    assert gettext("No findings.") == "발견 사항이 없습니다."
    assert ngettext("{n} connection", "{n} connections", 3).format(n=3) == "연결 3개"
    assert gettext("a string nobody marked") == "a string nobody marked"
    set_language("en")
    assert gettext("No findings.") == "No findings."


# --------------------------------------------------------------------------- commands


def test_analyze_table_in_korean():
    res = run("analyze", HS002_PCAP, "--lang", "ko")
    assert res.exit_code == 1
    out = res.stdout
    for heading in ("클라이언트 상태", "서버 상태", "핸드셰이크", "심각도", "메시지"):
        assert heading in out
    assert "conn_state" in out  # Zeek's name stays
    assert "SYN-SENT" in out and "LISTEN" in out  # RFC 9293's state names stay
    assert "SYN-ACK acknowledges" not in out
    assert "SYN-ACK가 0을(를) 확인 응답하지만, 기대값은 클라이언트 ISN+1 = 1" in out
    assert out.rstrip().endswith("패킷 3개에서 연결 1개, 발견 사항 1건 (오류 1건)")
    # RS004's {sender}: the endpoint in Korean
    assert (
        "핸드셰이크가 완료되기 전에 클라이언트 측에서 RST(RST)가 왔다"
        in run("analyze", HS013_PCAP, "--lang", "ko").stdout
    )


def test_analyze_markdown_in_korean():
    res = run("analyze", HS002_PCAP, "-f", "markdown", "--lang", "ko", "--statistics")
    out = res.stdout
    assert "| 규칙   | 이름" in out
    assert "### 통계" in out
    assert "| SYN-ACK가 0을(를) 확인 응답하지만" in out
    assert "| HS002  | synack-bad-ack" in out  # ids and names stay


def _keys(value):
    """The shape of a JSON document: its keys, recursively (lists element by element)."""
    if isinstance(value, dict):
        return {key: _keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_keys(item) for item in value]
    return type(value).__name__


def test_analyze_json_in_korean_keeps_english_keys():
    english = json.loads(run("analyze", HS002_PCAP, "-f", "json").stdout)
    korean = json.loads(run("analyze", HS002_PCAP, "-f", "json", "--lang", "ko").stdout)
    assert _keys(english) == _keys(korean)
    en_findings = english["files"][0]["findings"]
    ko_findings = korean["files"][0]["findings"]
    assert [f["rule"] for f in ko_findings] == ["HS002"]
    assert [f["name"] for f in ko_findings] == [f["name"] for f in en_findings]
    assert [f["severity"] for f in ko_findings] == ["error"]
    assert [f["data"] for f in ko_findings] == [f["data"] for f in en_findings]
    for en, ko in zip(en_findings, ko_findings):
        assert en["message"] != ko["message"] and HANGUL.search(ko["message"])
    assert korean["files"][0]["connections"] == english["files"][0]["connections"]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "sarif", "junit"])
def test_machine_formats_translate_only_messages(fmt):
    english = run("analyze", HS002_PCAP, CL003_PCAP, "-f", fmt).stdout
    korean = run("analyze", HS002_PCAP, CL003_PCAP, "-f", fmt, "--lang", "ko").stdout
    if fmt in ("json", "sarif"):
        en_doc, ko_doc = json.loads(english), json.loads(korean)
        assert _keys(en_doc) == _keys(ko_doc)
        if fmt == "json":
            en_msgs = [f["message"] for file in en_doc["files"] for f in file["findings"]]
            ko_msgs = [f["message"] for file in ko_doc["files"] for f in file["findings"]]
        else:
            en_msgs = [r["message"]["text"] for r in en_doc["runs"][0]["results"]]
            ko_msgs = [r["message"]["text"] for r in ko_doc["runs"][0]["results"]]
            assert [r["ruleId"] for r in en_doc["runs"][0]["results"]] == [
                r["ruleId"] for r in ko_doc["runs"][0]["results"]
            ]
    elif fmt == "jsonl":
        en_lines = [json.loads(line) for line in english.splitlines()]
        ko_lines = [json.loads(line) for line in korean.splitlines()]
        assert [sorted(x) for x in en_lines] == [sorted(x) for x in ko_lines]
        assert [x["rule"] for x in en_lines] == [x["rule"] for x in ko_lines]
        en_msgs = [x["message"] for x in en_lines]
        ko_msgs = [x["message"] for x in ko_lines]
    elif fmt == "csv":
        en_rows = list(csv.DictReader(io.StringIO(english)))
        ko_rows = list(csv.DictReader(io.StringIO(korean)))
        assert english.splitlines()[0] == korean.splitlines()[0]  # the header row
        for en, ko in zip(en_rows, ko_rows):
            assert {k: v for k, v in en.items() if k != "message"} == {
                k: v for k, v in ko.items() if k != "message"
            }
        en_msgs = [row["message"] for row in en_rows]
        ko_msgs = [row["message"] for row in ko_rows]
    else:
        en_root, ko_root = ET.fromstring(english), ET.fromstring(korean)
        assert [(e.tag, sorted(e.attrib)) for e in en_root.iter()] == [
            (e.tag, sorted(e.attrib)) for e in ko_root.iter()
        ]
        assert [e.get("name") for e in en_root.iter("testcase")] == [
            e.get("name") for e in ko_root.iter("testcase")
        ]
        en_msgs = [e.get("message") for e in en_root.iter("failure")]
        ko_msgs = [e.get("message") for e in ko_root.iter("failure")]
    assert len(en_msgs) == len(ko_msgs) >= 2
    for en, ko in zip(en_msgs, ko_msgs):
        assert en != ko and HANGUL.search(ko), (en, ko)


def test_rules_show_in_korean():
    res = run("rules", "show", "HS002", "--lang", "ko")
    assert res.exit_code == 0
    out = res.stdout
    assert out.startswith("# synack-bad-ack (HS002)\n\nSYN-ACK의 확인 응답 번호가")
    assert "심각도: 오류. 기본값: 켜짐." in out
    assert "메시지 템플릿:" in out
    assert "SYN-ACK가 {ack}을(를) 확인 응답하지만" in out
    assert "## 무엇을 검사하나" in out and "SYN-RECEIVED" in out
    assert "## 예제 캡처" in out
    english = run("rules", "show", "HS002").stdout
    assert english.startswith("# synack-bad-ack (HS002)\n\nA SYN-ACK's acknowledgment number")
    assert "Severity: error. Default: on." in english


def test_rules_list_and_json_in_korean():
    table = run("rules", "list", "--lang", "ko").stdout
    assert "심각도" in table and "기본값" in table
    assert "CP004   bad-checksum" in table and "꺼짐" in table
    rows = json.loads(run("rules", "list", "-f", "json", "--lang", "ko").stdout)
    english = json.loads(run("rules", "list", "-f", "json").stdout)
    assert [sorted(r) for r in rows] == [sorted(r) for r in english]
    assert all(HANGUL.search(r["summary"]) for r in rows)
    assert [r["severity"] for r in rows] == [r["severity"] for r in english]


def test_environment_chooses_korean():
    res = run("analyze", HS002_PCAP, env={"LANG": "ko_KR.UTF-8"})
    assert "발견 사항 1건" in res.stdout
    res = run("rules", "show", "HS002", env={"LC_ALL": "ko_KR.UTF-8", "LANG": "en_US.UTF-8"})
    assert "심각도: 오류" in res.stdout
    # LANGUAGE's list: the first language pcapcheck speaks wins
    res = run("analyze", HS002_PCAP, env={"LANGUAGE": "fr:ko", "LANG": "fr_FR.UTF-8"})
    assert "발견 사항 1건" in res.stdout
    # a language pcapcheck does not speak: English, no error
    res = run("analyze", HS002_PCAP, env={"LANG": "fr_FR.UTF-8"})
    assert res.stdout.rstrip().endswith("1 connection, 1 finding (1 error) in 3 packets")
    # --lang beats the environment
    res = run("analyze", HS002_PCAP, "--lang", "en", env={"LANG": "ko_KR.UTF-8"})
    assert "1 finding" in res.stdout and not HANGUL.search(res.stdout)


def test_configuration_lang(tmp_path, monkeypatch):
    config = tmp_path / "pcapcheck.toml"
    config.write_text('lang = "ko"\n', encoding="utf-8")
    res = run("analyze", HS002_PCAP, "--config", str(config))
    assert "발견 사항 1건" in res.stdout
    # the configuration beats the environment; --lang beats the configuration
    res = run("analyze", HS002_PCAP, "--config", str(config), env={"LANG": "en_US.UTF-8"})
    assert "발견 사항 1건" in res.stdout
    res = run("analyze", HS002_PCAP, "--config", str(config), "--lang", "en")
    assert not HANGUL.search(res.stdout)
    res = run("analyze", HS002_PCAP, "--isolated", env={"LANG": "C.UTF-8"})
    assert not HANGUL.search(res.stdout)
    # found from the working directory, by every command
    monkeypatch.chdir(tmp_path)
    assert "심각도: 오류" in run("rules", "show", "HS002").stdout
    assert "Severity: error" in run("rules", "show", "HS002", "--lang", "en").stdout


def test_configuration_lang_unknown(tmp_path):
    config = tmp_path / "pcapcheck.toml"
    config.write_text('lang = "fr"\n', encoding="utf-8")
    res = run("analyze", HS002_PCAP, "--config", str(config))
    assert res.exit_code == 2
    assert res.stderr == f"pcapcheck: error: {config}: lang: 'fr' is not one of en, ko\n"


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", HS002_PCAP],
        ["rules", "show", "HS002"],
        ["rules", "list"],
        ["ladder", HS002_PCAP],
        ["grade", HS002_PCAP, "--rubric", "missing.yaml"],
    ],
)
def test_unknown_language_exits_2(args):
    res = run(*args, "--lang", "xx")
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr == "pcapcheck: error: unknown language 'xx' (valid: en, ko)\n"


def test_ladder_in_korean():
    res = run("ladder", HS002_PCAP, "--lang", "ko")
    assert res.exit_code == 0
    assert "연결 1: 클라이언트 10.0.0.1:40000" in res.stdout
    assert "SYN-SENT" in res.stdout and "SYN-RECEIVED" in res.stdout


def test_korean_error_line():
    res = run("rules", "show", "ZZ999", "--lang", "ko")
    assert res.exit_code == 2
    assert res.stderr == "pcapcheck: 오류: 알 수 없는 규칙 'ZZ999' (pcapcheck rules list 참고)\n"


def test_workers_write_the_same_korean():
    """--jobs 2: findings made in worker processes are localised like a serial run's."""
    command = [sys.executable, "-m", "pcapcheck", "analyze", HS002_PCAP, CL003_PCAP]
    env = {**os.environ, **NO_LOCALE, "LANG": "ko_KR.UTF-8"}
    serial = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    parallel = subprocess.run(
        [*command, "--jobs", "2"], env=env, capture_output=True, text=True, check=False
    )
    assert "발견 사항" in serial.stdout
    assert parallel.stdout == serial.stdout


def test_api_lang():
    import pcapcheck
    from pcapcheck.api import OptionError
    from pcapcheck.report import FORMATS

    with pcapcheck.analyze(HS002_PCAP, lang="ko", isolated=True) as report:
        results = list(report)
        catalog, active = report.catalog, report.active
    from pcapcheck.report import ReportContext

    assert get_language() == "ko"
    text = FORMATS["table"](results, ReportContext(catalog=catalog, active=active))
    assert "발견 사항 1건" in text
    # the findings themselves keep the engine's English message
    assert results[0].findings[0].message.startswith("SYN-ACK acknowledges 0")
    with pytest.raises(OptionError, match=r"^lang: 'xx' is not one of en, ko$"):
        pcapcheck.analyze(HS002_PCAP, lang="xx", isolated=True)


def test_english_is_unchanged(monkeypatch):
    """English stays the default and its text the one the report fixtures hold."""
    monkeypatch.chdir(ROOT)
    res = run("analyze", HS002_PCAP)
    assert res.stdout.rstrip().endswith("1 connection, 1 finding (1 error) in 3 packets")
    assert "SYN-ACK acknowledges 0, expected client ISN+1 = 1" in res.stdout
    assert not HANGUL.search(res.stdout)
    expected = ROOT / "tests/data/reports/sample_pcaps__crafted__hs002_synack-bad-ack.pcap.json"
    relative = "sample_pcaps/crafted/hs002_synack-bad-ack.pcap"
    assert run("analyze", relative, "-f", "json", "--isolated").stdout == expected.read_text(
        encoding="utf-8"
    )


def test_grade_feedback_in_korean(tmp_path):
    """grade --lang ko: the gradebook's columns and notes, and each student's feedback
    (headings, what the capture shows, the findings' messages, the ladder)."""
    submissions = ROOT / "sample_pcaps" / "grading" / "submissions"
    rubric = ROOT / "sample_pcaps" / "grading" / "http_lab.yaml"
    res = run(
        "grade", str(submissions), "--rubric", str(rubric), "--out", str(tmp_path), "--lang", "ko"
    )
    assert res.exit_code == 0, res.stderr
    assert "학생" in res.stdout and "점수" in res.stdout
    assert re.search(r"\nbob +10 / 19 +실패: client_close; 답안 파일 없음\n", res.stdout)
    assert f"제출물 9개 채점 완료, 파일 19개를 {tmp_path}에 씀" in res.stdout
    feedback = (tmp_path / "bob" / "feedback.md").read_text(encoding="utf-8")
    assert "학생: **bob**" in feedback and "**점수: 10 / 19**" in feedback
    assert "| 항목 | 배점 | 결과 |" in feedback
    assert (
        "- 연결 1, 10.0.0.1:50322 → 10.0.0.2:80 (프레임 1–9): 핸드셰이크 **완료**, "
        "종료 **열린 채**, 처음 FIN을 보낸 쪽 없음;"
    ) in feedback
    assert "- 프레임 9: CL008 (정보) 캡처가 끝날 때 연결이 아직 열려 있었다" in feedback
    assert "마지막 상태: 클라이언트 ESTABLISHED, 서버 ESTABLISHED" in feedback  # the ladder
    # the rubric's own text is the teacher's (English here): shown as written
    assert "4-way close initiated by the client" in feedback


def test_github_annotations_in_korean():
    res = run("analyze", HS002_PCAP, "missing.pcap", "-f", "github", "--lang", "ko")
    lines = res.stdout.splitlines()
    assert lines[0].startswith(
        f"::error file={HS002_PCAP},title=HS002 synack-bad-ack::SYN-ACK가 0을(를) 확인 응답하지만"
    )
    assert lines[0].endswith(" [프레임 2, 연결 1]")
    assert (
        lines[1]
        == "::error file=missing.pcap,title=pcapcheck%3A 읽을 수 없는 캡처::missing.pcap: no such file"
    )
    assert res.stderr == "pcapcheck: 오류: missing.pcap: no such file\n"


def test_rules_show_json_in_korean():
    english = json.loads(run("rules", "show", "HS002", "-f", "json").stdout)
    korean = json.loads(run("rules", "show", "HS002", "-f", "json", "--lang", "ko").stdout)
    assert sorted(english) == sorted(korean)
    changed = {key for key in english if english[key] != korean[key]}
    assert changed == {"summary", "message", "explanation"}
    assert korean["explanation"].startswith("## 무엇을 검사하나\n")


def test_html_report_and_ladder_page_in_korean(tmp_path):
    report = tmp_path / "report.html"
    run("analyze", HS002_PCAP, "-f", f"html={report}", "--lang", "ko")
    page = report.read_text(encoding="utf-8")
    assert "<td>미완료</td>" in page and "<td>없음</td>" in page
    assert ">오류</span>" in page and ">오류 1건</span>" in page  # as the table says it
    assert "SYN-ACK가 0을(를) 확인 응답하지만" in page and "SYN-ACK acknowledges" not in page
    assert "## 무엇을 검사하나" in page or "무엇을 검사하나" in page
    ladder = tmp_path / "ladder.html"
    res = run("ladder", HS002_PCAP, "-f", "html", "-o", str(ladder), "--lang", "ko")
    assert res.exit_code == 0, res.stderr
    page = ladder.read_text(encoding="utf-8")
    assert "SYN-ACK가 0을(를) 확인 응답하지만" in page and "SYN-ACK acknowledges" not in page
    assert "<strong>미완료</strong>" in page


def test_ascii_ladder_keeps_korean_letters():
    res = run("ladder", HS002_PCAP, "--ascii", "--lang", "ko")
    assert res.exit_code == 0
    assert "| ^ HS002 SYN-ACK가 0을 확인 응답하지만" in res.stdout
    assert "─" not in res.stdout and "?" not in res.stdout
    english = run("ladder", HS002_PCAP, "--ascii").stdout
    assert english.isascii()
