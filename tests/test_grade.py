"""Grading: the sample class (exact scores, gradebook CSV, Gradescope results.json,
integrity flag, bad submissions), every rubric example expression, rubric errors, the
student answers and their explanations, the command line."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES
from typer.testing import CliRunner

from pcapcheck.cli import app
from pcapcheck.grading.answers import normalize_state
from pcapcheck.grading.expressions import (
    ExpressionError,
    capture_environment,
    compile_expression,
    to_activation,
)
from pcapcheck.grading.feedback import render_feedback
from pcapcheck.grading.gradebook import (
    discover,
    grade_all,
    gradebook_csv,
    gradescope_results,
    student_id,
    write_outputs,
)
from pcapcheck.grading.grader import grade_submission
from pcapcheck.grading.rubric import RubricError, load_rubric

runner = CliRunner()
GRADING = SAMPLES / "grading"
SUBMISSIONS = GRADING / "submissions"
RUBRIC = GRADING / "http_lab.yaml"

SCORES = {
    "alice": 19,
    "bob": 10,
    "carol": 8,
    "dave": 11,
    "erin": 13,
    "frank": 0,
    "grace": 17.1,
    "heidi": 0,
    "ivan": 12,
}


@pytest.fixture(scope="module")
def rubric():
    return load_rubric(RUBRIC)


@pytest.fixture(scope="module")
def graded(rubric, catalog):
    results = grade_all(rubric, discover([SUBMISSIONS]), catalog)
    return {r.student: r for r in results}


# ---- the sample class -------------------------------------------------------------------


def test_exact_scores_per_student(graded):
    assert {s: r.score for s, r in graded.items()} == SCORES
    assert {r.max_score for r in graded.values()} == {19}


def test_failed_checks_per_student(graded):
    failed = {s: sorted(c.id for c in r.scored if not c.passed) for s, r in graded.items()}
    answers = ["answer_client_isn", "answer_server_isn", "answer_states", "answer_synack_ack"]
    assert failed["alice"] == []
    assert failed["bob"] == sorted(["client_close"] + answers)
    assert failed["carol"] == sorted(["client_close", "no_rst"] + answers)
    assert failed["dave"] == sorted(["data_both_ways"] + answers)
    assert failed["erin"] == answers
    assert failed["grace"] == ["answer_states", "answer_synack_ack"]
    assert failed["ivan"] == sorted(["at_most_3_connections"] + answers)


def test_gradebook_csv(rubric, graded):
    text = gradebook_csv(rubric, list(graded.values()))
    assert text == (GRADING / "expected" / "gradebook.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "student",
        "score",
        "max",
        "handshake",
        "data_both_ways",
        "client_close",
        "no_rst",
        "no_error",
        "at_most_3_connections",
        "answer_client_isn",
        "answer_server_isn",
        "answer_synack_ack",
        "answer_states",
        "shared_with",
        "problem",
    ]
    by = {r["student"]: r for r in rows}
    assert by["grace"]["score"] == "17.1" and by["grace"]["answer_states"] == "2.1"
    assert by["carol"]["client_close"] == "0" and by["carol"]["no_rst"] == "0"
    assert by["carol"]["handshake"] == "3" and by["carol"]["max"] == "19"
    assert by["ivan"]["at_most_3_connections"] == "0"
    assert by["frank"]["problem"].startswith("not a readable capture: not a capture file")
    assert by["heidi"]["problem"].startswith("the capture holds no TCP connection")


def test_integrity_flag_same_isn_pair(graded):
    assert graded["alice"].shared_with == ["erin"]
    assert graded["erin"].shared_with == ["alice"]
    assert all(not r.shared_with for s, r in graded.items() if s not in ("alice", "erin"))


def test_results_json_structure_and_values(rubric, graded):
    doc = gradescope_results(rubric, graded["carol"])
    assert set(doc) == {"score", "output", "output_format", "visibility", "tests"}
    assert doc["score"] == 8 and doc["output_format"] == "md"
    assert doc["output"].startswith("**Lab 3: one HTTP download, start to finish**: 8 / 19")
    assert "Ladder of connection 1:" in doc["output"]
    assert [t["name"] for t in doc["tests"]][:3] == [
        "Complete 3-way handshake with correct acknowledgment numbers",
        "Data in both directions (request and response)",
        "4-way close initiated by the client",
    ]
    assert len(doc["tests"]) == 10
    for t in doc["tests"]:
        assert set(t) == {
            "name",
            "number",
            "score",
            "max_score",
            "status",
            "output",
            "output_format",
            "visibility",
        }
        assert t["status"] == ("passed" if t["score"] == t["max_score"] else "failed")
        assert t["visibility"] == "visible"
    close = doc["tests"][2]
    assert (close["score"], close["max_score"], close["status"]) == (0, 3, "failed")
    assert "frame 11: RS001 (warning)" in close["output"]
    assert "`frame.number in {11}`" in close["output"]
    assert sum(t["score"] for t in doc["tests"]) == doc["score"]
    json.dumps(doc)  # serialisable


def test_bad_submissions_score_zero_with_a_message(graded, rubric):
    frank = graded["frank"]
    assert frank.problem == (
        "not a readable capture: not a capture file (looks like text: "
        "'Wireshark would not start on my laptop, ...')"
    )
    assert all(c.score == 0 for c in frank.checks) and len(frank.scored) == 10
    text = render_feedback(frank, rubric)
    assert "**Score: 0 / 19**" in text
    assert "**This submission could not be graded:** not a readable capture" in text
    assert graded["heidi"].problem == (
        "the capture holds no TCP connection: 2 packets, 0 TCP "
        "(it holds ipv4-udp 2); capture the lab's TCP traffic"
    )


def test_batch_goes_on_past_bad_files(tmp_path, rubric, catalog):
    (tmp_path / "empty.pcap").write_bytes(b"")
    header_only = (SAMPLES / "crafted/clean_handshake_close.pcap").read_bytes()[:24]
    (tmp_path / "noframes.pcap").write_bytes(header_only)
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "answers.yaml").write_text("client_isn: 1\n")
    (tmp_path / "two").mkdir()
    for name in ("a.pcap", "b.pcap"):
        (tmp_path / "two" / name).write_bytes(header_only)
    (tmp_path / "zz_good.pcap").write_bytes((SUBMISSIONS / "bob.pcap").read_bytes())
    results = {r.student: r for r in grade_all(rubric, discover([tmp_path]), catalog)}
    assert results["empty"].problem.startswith("not a readable capture:")
    assert "empty" in results["empty"].problem
    assert results["noframes"].problem == "the capture holds no packets"
    assert results["nothing"].problem == "the folder holds no capture file"
    assert results["two"].problem.startswith("the folder holds several captures (a.pcap, b.pcap)")
    assert results["zz_good"].score == 10 and results["zz_good"].problem is None


def test_discovery_ids_and_answers_files():
    subs = {s.student: s for s in discover([SUBMISSIONS])}
    assert sorted(subs) == sorted(SCORES)
    assert subs["alice"].capture == SUBMISSIONS / "alice" / "http.pcap"
    assert subs["alice"].answers == SUBMISSIONS / "alice" / "answers.yaml"
    assert subs["grace"].answers == SUBMISSIONS / "grace.pcap.answers.yaml"
    assert subs["bob"].answers is None
    # a capture given alone takes answers.yaml from its folder
    alone = discover([SUBMISSIONS / "alice" / "http.pcap"])
    assert alone[0].student == "http"
    assert alone[0].answers == SUBMISSIONS / "alice" / "answers.yaml"
    assert student_id(Path("x/alice.pcapng.gz")) == "alice"
    twice = discover([SUBMISSIONS / "bob.pcap", SUBMISSIONS / "bob.pcap"])
    assert [s.student for s in twice] == ["bob", "bob-2"]


def test_write_outputs(tmp_path, rubric, graded):
    results = [graded["carol"]]
    written = write_outputs(rubric, results, tmp_path, gradescope=True)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "carol/feedback.md",
        "carol/results.json",
        "gradebook.csv",
        "results.json",
    ]
    assert json.loads((tmp_path / "results.json").read_text())["score"] == 8


# ---- feedback ---------------------------------------------------------------------------


def test_feedback_for_a_failed_check(rubric, graded):
    text = render_feedback(graded["carol"], rubric)
    assert "**Score: 8 / 19**" in text
    assert "| 4-way close initiated by the client | 0 / 3 | **failed** |" in text
    assert "| No finding of severity error | 2 / 2 | passed |" in text
    assert "### 4-way close initiated by the client (0 / 3)" in text
    assert "**Expected:** the connection ends with the client's FIN" in text
    assert (
        "- connection 1, 10.0.0.1:49870 → 10.0.0.2:80 (frames 1–11): handshake "
        "**complete**, close **reset**, first FIN from nobody"
    ) in text
    assert (
        "**Open in Wireshark:** frame 11 (display filter `frame.number in {11}`); the "
        "whole connection 1: `ip.addr == 10.0.0.1 && tcp.port == 49870 && ip.addr == "
        "10.0.0.2 && tcp.port == 80`."
    ) in text
    assert "## Ladder of connection 1" in text
    assert "   11 CLOSED        │─ RST,ACK seq=121 ack=5793 len=0" in text
    assert "**Not checked:** no answers file" in text


def test_feedback_for_a_perfect_student(rubric, graded):
    text = render_feedback(graded["alice"], rubric)
    assert "**Score: 19 / 19**" in text and "All checks on the capture passed." in text
    assert "## Your answers (6 / 6)" in text and "**wrong**" not in text
    assert "… 16 segments of data transfer (frames 7–22) …" in text


def test_answers_with_the_classic_mistakes(graded):
    grace = {c.id: c for c in graded["grace"].checks}
    states = grace["answer_states"]
    assert states.score == 2.1 and states.points == 3
    wrong = {r.item: r for r in states.rows if not r.ok}
    assert sorted(wrong) == [
        "after frame 2, client",
        "after frame 2, server",
        "after frame 9, server",
    ]
    assert wrong["after frame 2, server"].explanation.startswith(
        "after frame 2 the server is in SYN-RECEIVED, not SYN-SENT: it has answered the SYN "
        "and waits for the ACK. SYN-SENT belongs to the side that sent the first SYN"
    )
    assert wrong["after frame 9, server"].given == "TIME_WAIT"
    assert wrong["after frame 9, server"].explanation.startswith(
        "after frame 9 the server is in CLOSE-WAIT, not TIME-WAIT: it has received the peer's "
        "FIN and acknowledged it"
    )
    assert (
        "TIME-WAIT belongs to the side that closed first"
        in wrong["after frame 9, server"].explanation
    )
    assert wrong["after frame 2, client"].explanation.startswith(
        "after frame 2 the client is in ESTABLISHED, not CLOSED"
    )
    assert states.frames == [2, 9]
    ack = grace["answer_synack_ack"].rows[0]
    assert not ack.ok and ack.given == "1" and ack.expected == "1779228673 (relative 1)"
    assert ack.explanation.startswith("1 is the relative acknowledgment number")
    assert grace["answer_client_isn"].passed and grace["answer_server_isn"].passed


def _grade_with_answers(
    tmp_path, rubric, catalog, text: str, capture="bob.pcap", source=SUBMISSIONS
):
    cap = tmp_path / capture
    cap.write_bytes((source / capture).read_bytes())
    answers = tmp_path / f"{capture}.answers.yaml"
    answers.write_text(text)
    res = grade_submission(rubric, "x", cap, answers, catalog=catalog)
    return {c.id: c for c in res.checks}


def test_relative_ack_accepted_when_stated(tmp_path, rubric, catalog):
    got = _grade_with_answers(tmp_path, rubric, catalog, "synack_ack: {value: 1, relative: true}\n")
    assert got["answer_synack_ack"].passed and got["answer_synack_ack"].score == 1
    got = _grade_with_answers(tmp_path, rubric, catalog, "client_isn: 0\nserver_isn: 185273099\n")
    isn = got["answer_client_isn"].rows[0]
    assert not isn.ok and "relative to itself is always 0" in isn.explanation
    assert "185273099 is the client's ISN" in got["answer_server_isn"].rows[0].explanation


def test_unusable_answers_file_scores_zero_with_reason(tmp_path, rubric, catalog):
    got = _grade_with_answers(tmp_path, rubric, catalog, "client_isn: [1, 2\n")
    assert got["answer_client_isn"].score == 0
    assert got["answer_client_isn"].error.startswith("bob.pcap.answers.yaml: not valid YAML")
    got = _grade_with_answers(tmp_path, rubric, catalog, "colour: red\n")
    assert "colour: unknown field" in got["answer_states"].error


def test_state_names_normalized():
    assert normalize_state("time_wait") == "TIME-WAIT"
    assert normalize_state("SYN_RECEIVE") == "SYN-RECEIVED"
    assert normalize_state(" fin wait 2 ") == "FIN-WAIT-2"


# ---- the rubric examples, one by one ----------------------------------------------------

EXAMPLES = {
    "handshake": 'connections.exists(c, c.server_port == 80 && c.handshake == "complete" '
    "&& c.syn_ack_ok)",
    "client_close": 'connections.exists(c, c.server_port == 80 && c.handshake == "complete" '
    '&& c.close == "graceful" && c.closer == "client")',
    "no_rst": '!findings.exists(f, f.rule.startsWith("RS"))',
    "no_rst_history": "!connections.exists(c, c.history != null && "
    '(c.history.contains("R") || c.history.contains("r")))',
    "no_error": '!findings.exists(f, f.severity == "error")',
    "at_most_3": "size(connections) <= 3",
}


@pytest.mark.parametrize(
    "example,capture,expected",
    [
        ("handshake", "grading/submissions/alice/http.pcap", True),
        ("handshake", "crafted/hs002_synack-bad-ack.pcap", False),
        ("handshake", "crafted/hs004_handshake-ack-bad.pcap", False),
        ("handshake", "crafted/hs001_syn-unanswered.pcap", False),
        ("client_close", "grading/submissions/alice/http.pcap", True),
        ("client_close", "grading/submissions/bob.pcap", False),
        ("client_close", "grading/submissions/carol.pcap", False),
        ("client_close", "crafted/clean_server_close_first.pcap", False),
        ("no_rst", "grading/submissions/alice/http.pcap", True),
        ("no_rst", "grading/submissions/carol.pcap", False),
        ("no_rst_history", "grading/submissions/alice/http.pcap", True),
        ("no_rst_history", "grading/submissions/carol.pcap", False),
        ("no_rst_history", "crafted/hs011_connection-refused.pcap", False),
        ("no_error", "grading/submissions/alice/http.pcap", True),
        ("no_error", "crafted/hs002_synack-bad-ack.pcap", False),
        ("at_most_3", "grading/submissions/alice/http.pcap", True),
        ("at_most_3", "grading/submissions/ivan.pcap", False),
    ],
)
def test_rubric_example_expression(analyze, example, capture, expected):
    env = to_activation(capture_environment(analyze(capture)))
    value, error = compile_expression(EXAMPLES[example]).evaluate(env)
    assert error is None and value is expected


def test_sample_rubric_uses_the_examples(rubric):
    conditions = {c.id: " ".join(c.condition.text.split()) for c in rubric.checks}
    for key in ("handshake", "client_close", "no_rst", "no_error"):
        assert conditions[key] == EXAMPLES[key]
    assert conditions["at_most_3_connections"] == EXAMPLES["at_most_3"]


@pytest.mark.parametrize(
    "capture,closer",
    [
        ("crafted/clean_handshake_close.pcap", "client"),
        ("crafted/clean_server_close_first.pcap", "server"),
        ("crafted/clean_simultaneous_close.pcap", "client"),
        ("grading/submissions/bob.pcap", None),
    ],
)
def test_environment_closer(analyze, capture, closer):
    assert capture_environment(analyze(capture))["connections"][0]["closer"] == closer


def test_environment_fields(analyze):
    env = capture_environment(analyze("crafted/hs002_synack-bad-ack.pcap"), name="x.pcap")
    conn = env["connections"][0]
    assert (conn["client_ip"], conn["client_port"], conn["server_ip"], conn["server_port"]) == (
        "10.0.0.1",
        40000,
        "10.0.0.2",
        80,
    )
    assert conn["syn_ack_ok"] is False and conn["handshake"] == "incomplete"
    # the client's RST answering the bad SYN-ACK is no finding (RFC 9293 §3.10.7.3)
    assert [f["rule"] for f in conn["findings"]] == ["HS002"]
    assert env["findings"][0] == {
        "rule": "HS002",
        "name": "synack-bad-ack",
        "severity": "error",
        "frame": 2,
        "connection": 1,
        "message": env["findings"][0]["message"],
    }
    assert conn["transitions"]["client"][0] == {
        "frame": 1,
        "from": "CLOSED",
        "to": "SYN-SENT",
        "cause": "snd SYN",
    }
    assert env["packets"] == 3 and env["file"]["name"] == "x.pcap"
    assert env["file"]["tcp_packets"] == 3 and env["file"]["truncated"] is False


# ---- CEL errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,message",
    [
        ("connections.exists(c, ", "syntax error at line 1, column 21"),
        ("conections.size() > 0", "unknown name 'conections' (did you mean connections?)"),
        ("connections.exists(c, c.closr == 1)", "unknown field .closr (did you mean closer?)"),
        ("sizee(connections) > 1", "unknown function sizee() (did you mean size?)"),
        ("connections.exists(c, true) && c.id == 1", "unknown name 'c'"),
    ],
)
def test_expressions_that_do_not_compile(text, message):
    with pytest.raises(
        ExpressionError,
        match=message.replace("(", r"\(")
        .replace(")", r"\)")
        .replace(".", r"\.")
        .replace("?", r"\?"),
    ):
        compile_expression(text)


def test_runtime_error_fails_the_check_with_the_error(tmp_path, catalog):
    path = tmp_path / "r.yaml"
    path.write_text(
        "title: t\nchecks:\n"
        "  - {id: idx, title: Index, points: 1, feedback: f,\n"
        "     condition: 'connections[5].id == 1'}\n"
        "  - {id: notbool, title: Not bool, points: 2, feedback: f,\n"
        "     condition: 'size(connections)'}\n"
        "  - {id: ok, title: Fine, points: 1, feedback: f, condition: 'true'}\n"
    )
    res = grade_submission(load_rubric(path), "bob", SUBMISSIONS / "bob.pcap", catalog=catalog)
    by = {c.id: c for c in res.checks}
    assert by["idx"].error == "invalid_argument: list index out of range"
    assert by["notbool"].error == "the condition gave 1, not true or false"
    assert res.score == 1 and res.max_score == 4
    text = render_feedback(res, load_rubric(path))
    assert "**The check could not be evaluated:** invalid_argument: list index out of range" in text


# ---- rubric errors ----------------------------------------------------------------------

CHECK = "  - {id: a, title: A, points: 1, condition: 'true', feedback: f}\n"


@pytest.mark.parametrize(
    "text,message",
    [
        ("checks:\n" + CHECK, "r.yaml: title: required field is missing"),
        ("title: t\nchecks: []\n", "r.yaml: checks: [] should be non-empty"),
        (
            "title: t\nchecks:\n  - {id: a, title: A, points: 0, condition: 'true', feedback: f}\n",
            "r.yaml: checks.0.points: 0 is less than or equal to the minimum of 0",
        ),
        (
            "title: t\nchecks:\n  - {id: A-1, title: A, points: 1, condition: 'true', feedback: f}\n",
            "r.yaml: checks.0.id: 'A-1' does not match",
        ),
        ("title: t\ncolour: red\nchecks:\n" + CHECK, "r.yaml: colour: unknown field"),
        (
            "title: t\nchecks:\n" + CHECK + CHECK,
            "r.yaml: check 'a': the id is used by another check",
        ),
        (
            "title: t\nchecks:\n" + CHECK.replace("id: a", "id: score"),
            "r.yaml: check 'score': the id is reserved",
        ),
        (
            "title: t\nchecks:\n" + CHECK.replace("id: a", "id: answer_x"),
            "r.yaml: check 'answer_x': the id is reserved",
        ),
        ("title: t\nanswers: {isn: 1}\nchecks:\n" + CHECK, "r.yaml: answers.isn: unknown field"),
        (
            "title: t\nchecks:\n" + CHECK.replace("'true'", "'connections.exists(c, '"),
            "r.yaml: check 'a': condition: syntax error at line 1, column 21",
        ),
        (
            "title: t\nfocus: 'c.port == 80'\nchecks:\n" + CHECK,
            "r.yaml: focus: unknown field .port",
        ),
        (
            "title: t\nchecks:\n  - {id: a, title: A, points: 1, condition: 'true', feedback: f,\n"
            "     evidence: 'findigs'}\n",
            "r.yaml: check 'a': evidence: unknown name 'findigs'",
        ),
        ("title: [t\n", "r.yaml: not valid YAML (line 2"),
        ("- a\n- b\n", "r.yaml: expected a mapping (title, checks, ...), got a list"),
        ("", "r.yaml: expected a mapping (title, checks, ...), got an empty file"),
    ],
)
def test_rubric_errors(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(RubricError) as err:
        load_rubric(tmp_path / "r.yaml")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    res = runner.invoke(app, ["grade", str(SUBMISSIONS / "bob.pcap"), "--rubric", "r.yaml"])
    assert res.exit_code == 2
    assert res.stderr == f"pcapcheck: error: {err.value}\n"


# ---- the command ------------------------------------------------------------------------


def test_command_single_submission_prints_feedback():
    res = runner.invoke(app, ["grade", str(SUBMISSIONS / "grace.pcap"), "--rubric", str(RUBRIC)])
    assert res.exit_code == 0
    assert res.stdout.startswith(
        "# Lab 3: one HTTP download, start to finish\n\nStudent: **grace**"
    )
    assert "**Score: 17.1 / 19**" in res.stdout


def test_command_batch_prints_the_gradebook():
    res = runner.invoke(app, ["grade", str(SUBMISSIONS), "--rubric", str(RUBRIC)])
    assert res.exit_code == 0
    assert res.stdout == (GRADING / "expected" / "gradebook.csv").read_text()


def test_command_out_dir_and_gradescope(tmp_path):
    res = runner.invoke(
        app,
        [
            "grade",
            str(SUBMISSIONS),
            "--rubric",
            str(RUBRIC),
            "--out",
            str(tmp_path),
            "--gradescope",
        ],
    )
    assert res.exit_code == 0, res.stderr
    assert "alice      19 / 19    erin" in res.stdout
    assert "9 submissions graded; wrote 28 files" in res.stdout  # with feedback.html
    assert (tmp_path / "gradebook.csv").read_text() == (
        GRADING / "expected" / "gradebook.csv"
    ).read_text()
    doc = json.loads((tmp_path / "grace" / "results.json").read_text())
    assert doc["score"] == 17.1
    assert [t["score"] for t in doc["tests"]] == [3, 2, 3, 2, 2, 1, 1, 1, 0, 2.1]
    assert "Student: **dave**" in (tmp_path / "dave" / "feedback.md").read_text()
    assert not (tmp_path / "results.json").exists()  # only for a single submission


def test_command_usage_errors():
    res = runner.invoke(app, ["grade", "/nonexistent/x.pcap", "--rubric", str(RUBRIC)])
    assert res.exit_code == 2
    assert res.stderr == "pcapcheck: error: /nonexistent/x.pcap: no such file or directory\n"
    res = runner.invoke(app, ["grade", str(SUBMISSIONS), "--rubric", str(RUBRIC), "--gradescope"])
    assert res.exit_code == 2 and "--gradescope with several submissions needs --out" in res.stderr


def test_make_submissions_reproduces_the_shipped_files(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_submissions.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    shipped = sorted(
        p.relative_to(SUBMISSIONS).as_posix() for p in SUBMISSIONS.rglob("*") if p.is_file()
    )
    made = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert made == shipped
    for name in made:
        assert (tmp_path / name).read_bytes() == (SUBMISSIONS / name).read_bytes(), name


def test_docs_outputs_are_real(monkeypatch):
    """Every ``$ pcapcheck ...`` block of README.md without --out is the command's
    real output."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```text\n\$ (pcapcheck [^\n]*)\n(.*?)```", text, re.S)
    checked = [(cmd, out) for cmd, out in blocks if "--out" not in cmd]
    assert len(checked) >= 3
    monkeypatch.chdir(ROOT)
    for cmd, out in checked:
        res = runner.invoke(app, shlex.split(cmd)[1:])
        assert res.exit_code in (0, 1), cmd  # 1: the example shows an error finding
        assert res.stdout == out, cmd


def test_answer_about_a_wrong_synack_names_hs002(tmp_path, rubric, catalog):
    got = _grade_with_answers(
        tmp_path,
        rubric,
        catalog,
        "synack_ack: 1015684904\n",
        capture="hs002_synack-bad-ack.pcap",
        source=SAMPLES / "crafted",
    )
    row = got["answer_synack_ack"].rows[0]
    assert (row.ok, row.expected) == (False, "1015684903 (relative 0)")
    assert row.explanation.endswith("not ISN + 1 = 1: the server got it wrong (HS002).")
    assert got["answer_states"].rows[0].item == "states"
    assert got["answer_states"].rows[0].given == "(no answer)"


# ---- HTML feedback ----------------------------------------------------------------------


def _html_tree(text: str):
    """The elements of an HTML text as ``(tag, attrs, text)``, in document order."""
    from html.parser import HTMLParser

    found: list[list] = []
    stack: list[list] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            item = [tag, dict(attrs), ""]
            found.append(item)
            if tag not in ("meta", "br", "input", "img", "link", "hr"):
                stack.append(item)

        def handle_endtag(self, tag):
            while stack and stack.pop()[0] != tag:
                pass

        def handle_data(self, data):
            for item in stack:
                item[2] += data

    Parser(convert_charrefs=True).feed(text)
    return found


def test_feedback_html_page_with_svg_ladders(rubric, graded):
    from pcapcheck.grading.feedback import render_feedback_html

    carol = graded["carol"]
    page = render_feedback_html(carol, rubric)
    tree = _html_tree(page)
    assert page.startswith("<!DOCTYPE html>")
    assert [t for tag, _a, t in tree if tag == "h1"] == [
        "Lab 3: one HTTP download, start to finish"
    ]
    assert "Score: 8 / 19" in [t for tag, _a, t in tree if tag == "strong"]
    csp = next(a["content"] for tag, a, _t in tree if a.get("http-equiv"))
    assert csp.startswith("default-src 'none'; ")
    # the ladders as SVG, not text: carol's one connection, 11 arrows, RS001 on frame 11
    assert list(carol.ladder_models) == list(carol.ladders) == [1]
    arrows = [a for tag, a, _t in tree if tag == "g" and "arrow" in a.get("class", "").split()]
    assert [a["data-frame"] for a in arrows] == [str(n) for n in range(1, 12)]
    assert arrows[-1]["data-flags"] == "RST,ACK"
    markers = [a for tag, a, _t in tree if "finding-marker" in a.get("class", "")]
    assert [(m["data-rule"], m["data-frame"]) for m in markers] == [("RS001", "11")]
    assert "```text" not in page and "│" not in page
    # the same words as the Markdown feedback: the failed check's body
    assert "4-way close initiated by the client (0 / 3)" in [
        t for tag, _a, t in tree if tag == "h3"
    ]
    codes = [t for tag, _a, t in tree if tag == "code"]
    assert "frame.number in {11}" in codes
    assert (
        "ip.addr == 10.0.0.1 && tcp.port == 49870 && ip.addr == 10.0.0.2 && tcp.port == 80" in codes
    )


def test_gradescope_results_in_html(rubric, graded):
    doc = gradescope_results(rubric, graded["carol"], html=True)
    assert doc["output_format"] == "html"
    assert doc["output"].startswith('<article class="feedback" data-student="carol">')
    assert "<svg" in doc["output"] and "<script" not in doc["output"]
    assert "<style" not in doc["output"].split("<svg")[0]
    assert {t["output_format"] for t in doc["tests"]} == {"html"}
    close = doc["tests"][2]
    assert close["output"].startswith("<p><strong>Expected:</strong> the connection ends")
    assert "<code>frame.number in {11}</code>" in close["output"]
    assert [t["score"] for t in doc["tests"]] == [
        t["score"] for t in gradescope_results(rubric, graded["carol"])["tests"]
    ]
    json.dumps(doc)


def test_student_controlled_text_is_escaped_in_html(rubric, graded):
    """Names, answers and capture file names come from students: shown, never run."""
    import copy

    from pcapcheck.grading.feedback import feedback_fragment, render_feedback_html

    evil = copy.deepcopy(graded["grace"])
    evil.student = "<script>alert(1)</script>"
    evil.capture = Path('<img src=x onerror="alert(2)">.pcap')
    answers = next(c for c in evil.checks if c.rows)
    answers.rows[0].given = "</code><script>alert(3)</script>[x](javascript:alert(4))"
    answers.rows[0].ok = False
    for text in (render_feedback_html(evil, rubric), feedback_fragment(evil, rubric)):
        assert "<script>alert" not in text and "<img" not in text
        assert "javascript:" not in text.replace("[x](javascript:alert(4))", "")
        assert 'href="javascript' not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "&lt;script&gt;alert(3)&lt;/script&gt;" in text
        assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;.pcap" in text
    page = render_feedback_html(evil, rubric)
    scripts = [a for tag, a, _t in _html_tree(page) if tag == "script"]
    assert len(scripts) == 1  # the page's own, allowed by its hash


def test_command_writes_feedback_html(tmp_path):
    res = runner.invoke(
        app,
        ["grade", str(SUBMISSIONS / "carol.pcap"), "--rubric", str(RUBRIC), "--out", str(tmp_path)],
    )
    assert res.exit_code == 0, res.stderr
    page = (tmp_path / "carol" / "feedback.html").read_text(encoding="utf-8")
    assert 'data-student="carol"' in page and "<svg" in page
    res = runner.invoke(
        app, ["grade", str(SUBMISSIONS / "carol.pcap"), "--rubric", str(RUBRIC), "--gradescope"]
    )
    doc = json.loads(res.stdout)
    assert doc["output_format"] == "html" and "<svg" in doc["output"]


def test_a_backtick_in_an_answer_keeps_its_code_span():
    """A student's answer with backticks stays one code span (a longer fence), in the
    Markdown feedback and in its HTML."""
    from pcapcheck.grading.feedback import check_body, check_body_html
    from pcapcheck.grading.results import AnswerRow, CheckResult, StudentResult

    row = AnswerRow("after frame 2, server", "SYN-RECEIVED", "`SYN``SENT", ok=False)
    check = CheckResult("answer_states", "states", 3, 0, False, rows=[row])
    student = StudentResult("x", Path("x.pcap"))
    text = check_body(check, student)
    assert "expected `SYN-RECEIVED`, given ``` `SYN``SENT ``` — wrong" in text
    html = check_body_html(check, student)
    assert "<code>SYN-RECEIVED</code>" in html and "<code>`SYN``SENT</code>" in html


def test_feedback_filter_names_the_tunnel(tmp_path, rubric, catalog):
    """The feedback's whole-connection filter is the HTML report's (report.common): the
    failed handshake of encap/vxlan.pcap (HS002, an error) is told apart from its twin by
    its VNI."""
    from pcapcheck.grading.feedback import check_body

    cap = tmp_path / "v.pcap"
    cap.write_bytes((SAMPLES / "encap/vxlan.pcap").read_bytes())
    res = grade_submission(rubric, "x", cap, None, catalog=catalog)
    no_error = next(c for c in res.checks if c.id == "no_error")
    assert no_error.connections == [2]
    assert (
        "the whole connection 2: `ip.addr == 10.0.0.1 && tcp.port == 40000 && ip.addr == "
        "10.0.0.2 && tcp.port == 80 && vxlan.vni == 43`." in check_body(no_error, res)
    )
