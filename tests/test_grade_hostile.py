"""Grading a class whose students are hostile or unlucky (issue #23, items 6-10): a student
controls the capture, its file name, the folder name and answers.yaml, and none of them
may write outside ``--out``, read outside the submissions directory, stall or end the
batch. Each test below failed before the fix; the last one grades every hostile
submission at once beside two honest students.

The 2,000-connection capture of the quadratic CEL check is built here
(:func:`many_connections`, scripts/craft_captures.py's builder): 6,000 packets, about a
second to analyse; the check is stopped by a 1 s budget.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SAMPLES

from pcapcheck.catalog.rules import CatalogError, load_catalog
from pcapcheck.catalog.yamlfile import MAX_YAML_DEPTH, load_yaml, yaml_error
from pcapcheck.grading.expressions import compile_expression
from pcapcheck.grading.gradebook import (
    MAX_ID_CHARS,
    discover,
    grade_all,
    gradebook_rows,
    student_id,
    write_outputs,
)
from pcapcheck.grading.rubric import RubricError, load_rubric

sys.path.insert(0, str(ROOT / "scripts"))
from craft_captures import Capture, Conversation

GRADING = SAMPLES / "grading"
SUBMISSIONS = GRADING / "submissions"
RUBRIC = GRADING / "http_lab.yaml"
DAVE = SUBMISSIONS / "dave.pcap"  # an honest capture: 11 / 19 without answers

#: "Billion laughs": 9 levels of 9 aliases, 387 million nodes once expanded.
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
    for i in range(8)
)
#: "No two connections share an ISN", the plausible quadratic check.
ISN_CHECK = {
    "id": "unique_isns",
    "title": "No two connections share an ISN",
    "points": 1,
    "condition": "connections.all(a, connections.all(b, a.id == b.id || "
    "a.client_isn == null || a.client_isn != b.client_isn))",
    "feedback": "every connection picks its own ISN",
}


def many_connections(path: Path, n: int = 2000) -> Path:
    """A capture of ``n`` handshakes (3 packets each) to port 80, distinct ISNs."""
    cap = Capture()
    for i in range(n):
        c = Conversation(cap, cport=20000 + i, cisn=1_000_003 * i + 7, sisn=7_000_009 * i + 3)
        c.handshake()
    cap.write(path)
    return path


def rubric_with(tmp_path: Path, *checks: dict) -> Path:
    data = yaml.safe_load(RUBRIC.read_text(encoding="utf-8"))
    data["checks"] += list(checks)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def tree(root: Path, skip: Path | None = None) -> dict[str, tuple[str, int]]:
    """Every entry under ``root`` (not following links), but ``skip``: kind and size."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            continue
        for name in dirnames + filenames:
            p = here / name
            if p == skip:
                continue
            st = p.lstat()
            found[os.fsencode(p).hex()] = (oct(st.st_mode), st.st_size)
    return found


def written_inside(out: Path, written: list[Path]) -> None:
    real = out.resolve()
    for path in written:
        assert real in path.resolve().parents, path
        assert path.resolve().parent in (real, *(real / d for d in os.listdir(real)))


# -- item 6: student ids ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("..pcap", "student"),
        ("...pcap", "student"),
        (".pcap.pcap", "pcap"),
        ("a\\..\\..\\b.pcap", "a_.._.._b"),
        ("bell\x07\x1b[31m\n.pcap", "bell___31m_"),
        ("x" * 300 + ".pcap", "x" * MAX_ID_CHARS),
        (os.fsdecode(b"caf\xe9.pcap"), "caf_"),
        ("José García.pcapng", "José_García"),
        ("alice.pcap", "alice"),
        ("COM1.pcap", "COM1"),  # made unique against reserved names by discover
    ],
)
def test_student_id_is_a_safe_file_name(name, expected):
    assert student_id(Path("/submissions") / name) == expected


def test_ids_stay_inside_out_and_are_unique(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    names = [
        "..pcap",  # hidden in a directory of submissions: ignored
        "a\\..\\b.pcap",
        "ctl\x01\x7f.pcap",
        "y" * 250 + ".pcap",
        "Bob.pcap",
        "bob.pcap",
        "BOB.pcapng",
        "student.pcap",
        "nul.pcap",
    ]
    for name in names:
        shutil.copy(DAVE, subs / name)
    (subs / "gradebook.csv").mkdir()  # a folder named like an output
    shutil.copy(DAVE, subs / "gradebook.csv" / "http.pcap")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(DAVE, alone / "...pcap")  # given alone: was the student id ".."
    found = discover([subs, alone / "...pcap"])
    ids = [s.student for s in found]
    assert len({i.casefold() for i in ids}) == len(ids) == 10
    assert sorted(ids, key=str.casefold) == sorted(
        [
            "student-2",
            "a_.._b",
            "ctl__",
            "y" * 64,
            "BOB",  # sorted by name: BOB.pcapng, Bob.pcap, bob.pcap
            "Bob-2",
            "bob-3",
            "student",
            "nul-2",
            "gradebook.csv-2",
        ],
        key=str.casefold,
    )
    rubric = load_rubric(RUBRIC)
    results = grade_all(rubric, found)
    assert [r.score for r in results] == [11] * 10
    out = tmp_path / "deep" / "out"
    out.parent.mkdir()
    before = tree(tmp_path, skip=out)
    written = write_outputs(rubric, results, out, gradescope=True)
    assert len(written) == 1 + 2 * 10
    written_inside(out, written)
    assert tree(tmp_path, skip=out) == before
    assert sorted(os.listdir(out), key=str.casefold) == sorted(
        ["gradebook.csv", *ids], key=str.casefold
    )


@pytest.mark.parametrize("sid", ["..", ".", "../x", "a/b", "/etc/x", "gradebook.csv", ""])
def test_write_outputs_refuses_an_unsafe_id(tmp_path, sid):
    """A guard behind discover's ids (results made by the API may carry any id)."""
    rubric = load_rubric(RUBRIC)
    [result] = grade_all(rubric, discover([DAVE]))
    result.student = sid
    out = tmp_path / "a" / "out"
    with pytest.raises(ValueError, match="not a safe file name"):
        write_outputs(rubric, [result], out)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "a",
        "a/out",
        "a/out/gradebook.csv",
    ]


# -- item 7: links ------------------------------------------------------------


def test_links_are_not_followed(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    secret = tmp_path / "secret.pcap"
    shutil.copy(DAVE, secret)
    (subs / "etc").symlink_to("/etc")
    (subs / "outside.pcap").symlink_to(secret)
    (subs / "linky").mkdir()
    (subs / "linky" / "http.pcap").symlink_to(secret)
    shutil.copy(DAVE, subs / "sneaky.pcap")
    (subs / "sneaky.pcap.answers.yaml").symlink_to("/etc/passwd")
    shutil.copy(DAVE, subs / "honest.pcap")
    rubric = load_rubric(RUBRIC)
    results = {r.student: r for r in grade_all(rubric, discover([subs]))}
    assert sorted(results) == ["etc", "honest", "linky", "outside", "sneaky"]
    assert results["honest"].score == 11 and results["honest"].problem is None
    for sid in ("etc", "outside", "linky", "sneaky"):
        res = results[sid]
        assert res.score == 0 and res.capture is None, sid
        assert "is a symbolic link" in res.problem and "not followed" in res.problem, sid
    assert results["etc"].problem == (
        "etc is a symbolic link (to /etc): links are not followed, hand in the file"
    )
    assert results["linky"].problem.startswith("the folder holds a bad entry: http.pcap is")
    out = tmp_path / "out"
    write_outputs(rubric, list(results.values()), out)
    text = "".join(p.read_text(encoding="utf-8") for p in out.rglob("*.md"))
    assert "root:" not in text and "passwd:" not in text and "hostname" not in text


# -- item 8: YAML alias bombs -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BOMB, "more than 100,000 nodes once its aliases are expanded (an alias bomb?)"),
        (
            "a: &a [" + repr("x" * 100_000) + "]\nb: [" + ", ".join(["*a"] * 200) + "]\n",
            "more than 10,000,000 characters once its aliases are expanded (an alias bomb?)",
        ),
        ("a: &a [1, *a]\n", "the alias *a is inside its own anchor (a cycle)"),
        ("[" * 100_000 + "]" * 100_000, f"nested more than {MAX_YAML_DEPTH} levels deep"),
    ],
)
def test_yaml_bounds(text, problem):
    started = time.perf_counter()
    with pytest.raises(yaml_error()) as caught:
        load_yaml(text)
    assert caught.value.problem == problem
    assert time.perf_counter() - started < 2


def test_yaml_within_bounds_is_loaded():
    assert load_yaml("a: &x [1, 2]\nb: [*x, *x]\nc: {<<: {q: 1}}\n") == {
        "a": [1, 2],
        "b": [[1, 2], [1, 2]],
        "c": {"q": 1},
    }


def test_alias_bomb_in_a_rubric_and_a_rule_file(tmp_path):
    rubric = tmp_path / "lab.yaml"
    rubric.write_text("title: x\n" + BOMB, encoding="utf-8")
    with pytest.raises(RubricError) as caught:
        load_rubric(rubric)
    assert str(caught.value) == (
        f"{rubric}: refused: more than 100,000 nodes once its aliases are expanded (an alias bomb?)"
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "XX001.yaml").write_text("id: XX001\n" + BOMB, encoding="utf-8")
    with pytest.raises(CatalogError, match=r"XX001.yaml: not valid YAML \(more than 100,000 nodes"):
        load_catalog([rules])


def test_alias_bomb_in_answers_is_that_students_problem(tmp_path):
    subs = tmp_path / "subs"
    for sid in ("bomb", "alice"):
        shutil.copytree(SUBMISSIONS / "alice", subs / sid)
    (subs / "bomb" / "answers.yaml").write_text(BOMB, encoding="utf-8")
    results = {r.student: r for r in grade_all(load_rubric(RUBRIC), discover([subs]))}
    assert results["alice"].score == 19
    bomb = results["bomb"]
    assert bomb.score == 13 and bomb.problem is None
    answers = [c for c in bomb.checks if c.id.startswith("answer_")]
    assert [c.error for c in answers] == [
        "answers.yaml: refused: more than 100,000 nodes once its aliases are expanded "
        "(an alias bomb?)"
    ] * 4


# -- item 9: CEL budgets ------------------------------------------------------


def test_quadratic_check_is_stopped_for_that_student_only(tmp_path):
    """2,000 connections: 4 million comparisons, minutes in cel-python (about 0.5 ms per
    macro iteration), stopped after the 2 s budget; a linear check passes. The focus,
    linear per connection hence quadratic over them all, shares one budget."""
    subs = tmp_path / "subs"
    subs.mkdir()
    many_connections(subs / "mallory.pcap")
    shutil.copy(SUBMISSIONS / "carol.pcap", subs / "carol.pcap")
    linear = {
        "id": "some_port_80",
        "title": "A connection to port 80",
        "points": 1,
        "condition": "connections.exists(c, c.server_port == 80)",
        "feedback": "connect to port 80",
    }
    rubric_file = tmp_path / "isn.yaml"
    rubric_file.write_text(
        yaml.safe_dump(
            {
                "title": "ISNs",
                "focus": "c.server_port == 80 && !connections.exists(d, d.id < c.id)",
                "checks": [linear, ISN_CHECK],
            }
        ),
        encoding="utf-8",
    )
    rubric = load_rubric(rubric_file)
    started = time.perf_counter()
    results = {r.student: r for r in grade_all(rubric, discover([subs]), budget=2.0)}
    elapsed = time.perf_counter() - started
    assert (results["carol"].score, results["mallory"].score) == (2, 1)
    mallory = {c.id: c for c in results["mallory"].checks}
    assert mallory["some_port_80"].passed and not mallory["unique_isns"].passed
    assert mallory["unique_isns"].error == (
        "stopped after 2 s, the time budget of one expression: it takes too long on this "
        "capture (an expression comparing every connection with every other grows with the "
        "square of their number)"
    )
    assert elapsed < 30, elapsed


def test_budget_stops_only_what_runs_too_long():
    fast = compile_expression("[1, 2, 3].all(x, x > 0)")
    slow = compile_expression(
        "["
        + ",".join(["1"] * 300)
        + "].all(a, ["
        + ",".join(["1"] * 300)
        + "].all(b, ["
        + ",".join(["1"] * 300)
        + "].all(c, a == b)))"
    )
    outcomes = set()
    for n in range(300):  # budgets about the evaluation's own time, to provoke the race
        value, error = fast.evaluate({}, budget=0.0001 * (n % 30))
        assert (value, error) == (True, None) or error.startswith("stopped after"), error
        outcomes.add(value)
    assert outcomes == {True, None}  # both happened, and no exception escaped
    started = time.perf_counter()
    value, error = slow.evaluate({}, budget=0.2)
    assert value is None and error.startswith("stopped after 0.2 s")
    assert time.perf_counter() - started < 2
    time.sleep(0.05)  # no stray exception arrives after the evaluation returned


def test_deeply_nested_condition_is_a_rubric_error(tmp_path):
    deep = dict(ISN_CHECK, id="deep", condition="(" * 400 + "true" + ")" * 400)
    with pytest.raises(RubricError) as caught:
        load_rubric(rubric_with(tmp_path, deep))
    assert str(caught.value) == (
        f"{tmp_path / 'lab.yaml'}: check 'deep': condition: nested too deeply (more than "
        "about 50 levels of parentheses or chained operators)"
    )
    chained = dict(ISN_CHECK, id="chained", condition="1" + " + 1" * 1500 + " > 0")
    with pytest.raises(RubricError, match="check 'chained': condition: nested too deeply"):
        load_rubric(rubric_with(tmp_path, chained))


def test_invalid_regex_keeps_stderr_to_nothing(tmp_path):
    check = dict(ISN_CHECK, id="bad_regex", condition='file.name.matches("(")')
    rubric = rubric_with(tmp_path, check)
    proc = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "grade", str(DAVE), "--rubric", str(rubric)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert "invalid regular expression '(': missing ): (" in proc.stdout


# -- item 10: bad names -------------------------------------------------------


def test_bad_names_are_each_a_students_zero(tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(DAVE, os.fsencode(subs) + b"/caf\xe9.pcap")
    for folder in ("gradebook.csv", "feedback.md", "results.json"):
        (subs / folder).mkdir()
        shutil.copy(DAVE, subs / folder / "http.pcap")
    (subs / "odd").mkdir()
    shutil.copy(DAVE, os.fsencode(subs / "odd") + b"/\xff\xfe.pcap")
    (subs / "folderfile").write_text("I meant to hand in a folder\n", encoding="utf-8")
    os.mkfifo(subs / "pipe.pcap")
    (subs / "locked").mkdir()
    shutil.copy(DAVE, subs / "locked" / "http.pcap")
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self.name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    rubric = load_rubric(RUBRIC)
    results = grade_all(rubric, discover([subs]))
    problems = {r.student: r.problem for r in results}
    assert problems == {
        "caf_": "the file name caf\\udce9.pcap is not valid UTF-8: rename it",
        "feedback.md-2": None,
        "folderfile": "not a readable capture: not a capture file (looks like text: "
        "'I meant to hand in a folder')",
        "gradebook.csv-2": None,
        "locked": "cannot read the folder (Permission denied)",
        "odd": "the folder holds a bad entry: the file name \\udcff\\udcfe.pcap is not "
        "valid UTF-8: rename it",
        "pipe": "pipe.pcap is not a regular file or folder",
        "results.json-2": None,
    }
    out = tmp_path / "out"
    written = write_outputs(rubric, results, out, gradescope=True)
    written_inside(out, written)
    rows = gradebook_rows(rubric, results)
    text = (out / "gradebook.csv").read_text(encoding="utf-8")
    assert len(text.splitlines()) == len(rows) == 9
    assert "caf\\udce9.pcap" in text


# -- everything at once -------------------------------------------------------


def test_the_batch_survives_every_hostile_submission(tmp_path):
    """Two honest students (alice, carol) among every hostile submission above, graded
    by the command line with a quadratic check and a 2 s budget."""
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copytree(SUBMISSIONS / "alice", subs / "alice")
    shutil.copy(SUBMISSIONS / "carol.pcap", subs / "carol.pcap")
    secret = tmp_path / "secret.pcap"
    shutil.copy(DAVE, secret)
    hostile = {
        "..pcap": DAVE,
        "a\\..\\b.pcap": DAVE,
        "bell\x07\x1b.pcap": DAVE,
        "z" * 240 + ".pcap": DAVE,
        "Dave.pcap": DAVE,
        "dave.pcap": DAVE,
    }
    for name, src in hostile.items():
        shutil.copy(src, subs / name)
    shutil.copy(DAVE, os.fsencode(subs) + b"/caf\xe9.pcap")
    (tmp_path / "alone").mkdir()
    shutil.copy(DAVE, tmp_path / "alone" / "..pcap")
    for folder in ("gradebook.csv", "feedback.md", "results.json"):
        (subs / folder).mkdir()
        shutil.copy(DAVE, subs / folder / "http.pcap")
    (subs / "etc").symlink_to("/etc")
    (subs / "outside.pcap").symlink_to(secret)
    (subs / "linky").mkdir()
    (subs / "linky" / "http.pcap").symlink_to(secret)
    shutil.copy(DAVE, subs / "sneaky.pcap")
    (subs / "sneaky.pcap.answers.yaml").symlink_to("/etc/passwd")
    (subs / "notafolder").write_text("hello\n", encoding="utf-8")
    os.mkfifo(subs / "pipe.pcap")
    shutil.copytree(SUBMISSIONS / "alice", subs / "bomb")
    (subs / "bomb" / "answers.yaml").write_text(BOMB, encoding="utf-8")
    shutil.copy(DAVE, subs / "deep.pcap")
    (subs / "deep.pcap.answers.yaml").write_text("[" * 100_000, encoding="utf-8")
    many_connections(subs / "mallory.pcap", 400)  # 160,000 comparisons: over a minute
    if os.geteuid() != 0:  # root reads any folder
        (subs / "locked").mkdir(mode=0)
    rubric = rubric_with(tmp_path, ISN_CHECK)
    out = tmp_path / "work" / "out"
    out.parent.mkdir()
    before = tree(tmp_path, skip=out)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "grade", str(subs), str(tmp_path / "alone" / "..pcap")]
        + ["--rubric", str(rubric)]
        + ["--out", str(out), "--gradescope", "--time-budget", "2"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    proc.stdout.decode("utf-8")
    assert tree(tmp_path, skip=out) == before
    import csv

    with open(out / "gradebook.csv", encoding="utf-8", newline="") as stream:
        rows = {row["student"]: row for row in csv.DictReader(stream)}
    expected_students = 21 + (os.geteuid() != 0)
    assert len(rows) == expected_students, sorted(rows)
    assert (rows["alice"]["score"], rows["alice"]["shared_with"]) == ("20", "bomb")
    assert (rows["carol"]["score"], rows["carol"]["problem"]) == ("9", "")
    assert rows["mallory"]["unique_isns"] == "0" and rows["mallory"]["handshake"] == "3"
    assert rows["bomb"]["score"] == "14"
    for sid in ("student", "a_.._b", "bell__", "z" * 64, "Dave", "dave-2", "gradebook.csv-2"):
        assert rows[sid]["score"] == "12", sid
    for sid in ("etc", "outside", "linky", "sneaky", "caf_", "pipe", "notafolder"):
        assert rows[sid]["score"] == "0" and rows[sid]["problem"], sid
    for path in out.rglob("*"):
        assert out.resolve() in path.resolve().parents
        if path.is_file():
            assert "root:" not in path.read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == sorted(["gradebook.csv", *rows])
    assert elapsed < 60, elapsed


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf"])
def test_time_budget_must_be_a_number_of_seconds(value):
    proc = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "grade", str(DAVE), "--rubric", str(RUBRIC)]
        + [f"--time-budget={value}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        f"pcapcheck: error: --time-budget: {value} is not a number of seconds in (0, 3600]\n"
    )


def test_rubric_bomb_on_the_command_line_is_one_line(tmp_path):
    rubric = tmp_path / "lab.yaml"
    rubric.write_text("title: x\n" + BOMB, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "grade", str(DAVE), "--rubric", str(rubric)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"pcapcheck: error: {rubric}: refused: more than 100,000 nodes once its aliases are "
        "expanded (an alias bomb?)\n"
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('file.name.matches("^a.c")', (True, None)),
        ('file.name.matches("z")', (False, None)),
        ('file.name.matches("[")', (None, "invalid regular expression '[': missing ]: [")),
    ],
)
def test_matches_is_re2_search(condition, expected):
    import celpy

    activation = {"file": celpy.json_to_cel({"name": "abc.pcap"})}
    assert compile_expression(condition).evaluate(activation) == expected


def test_links_given_on_the_command_line_are_not_followed(tmp_path):
    """Gradescope's ``submission/*.pcap*`` hands the student's own files to pcapcheck: a
    link there (to a file or a folder) is that student's bad submission; its target is
    never read (the first line of /etc/passwd would be quoted as "looks like text")."""
    (tmp_path / "x.pcap").symlink_to("/etc/passwd")
    (tmp_path / "y.pcap").symlink_to("/etc")
    shutil.copy(DAVE, tmp_path / "z.pcap")
    (tmp_path / "z.pcap.answers.yaml").symlink_to("/etc/hostname")
    paths = [tmp_path / n for n in ("x.pcap", "y.pcap", "z.pcap")]
    results = grade_all(load_rubric(RUBRIC), discover(paths))
    assert [(r.student, r.score, r.problem) for r in results] == [
        (
            "x",
            0,
            "x.pcap is a symbolic link (to /etc/passwd): links are not followed, hand in the file",
        ),
        ("y", 0, "y.pcap is a symbolic link (to /etc): links are not followed, hand in the file"),
        (
            "z",
            0,
            "z.pcap.answers.yaml is a symbolic link (to /etc/hostname): links are not "
            "followed, hand in the file",
        ),
    ]
    dave = grade_all(load_rubric(RUBRIC), discover([DAVE]))
    assert [(r.student, r.score, r.problem) for r in dave] == [("dave", 11, None)]
