"""Batches of submissions: finding them, grading them all, the integrity flag, the
gradebook CSV and Gradescope's ``results.json``.

Submissions (:func:`discover`): a capture file given directly is one student (the id is
the file name without its capture extension: ``alice.pcap`` → ``alice``); a directory is a
directory of submissions in which every entry is one student: a capture file, or a folder
named after the student holding one capture (its other files: ``answers.yaml`` and
``*.answers.yaml``). Files ending ``.answers.yaml`` beside the captures are answers, not
students; hidden entries are ignored. Every other entry is a student, so that a wrong file
is reported rather than silently dropped.

Everything a student hands in is untrusted (issue #23): a symbolic link (a submission, or
a file in a student's folder) is never followed, an entry that is neither a regular file
nor a folder, an unreadable folder or a file name that is not valid UTF-8 are that
student's bad submission (score 0, the reason in ``problem``), and the student id is
sanitised (:func:`student_id`) so that every file written stays inside the output folder.

Integrity (:func:`flag_shared`): two submissions whose captures hold the same connection —
the same client ISN and server ISN, 2^64 possibilities for independent captures — are
flagged in each other's ``shared_with``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcapcheck.catalog.rules import Catalog, load_catalog
from pcapcheck.grading.answers import ANSWER_NAMES, ANSWER_SUFFIXES, find_answers
from pcapcheck.grading.feedback import (
    check_body,
    check_body_html,
    feedback_fragment,
    render_feedback,
    render_feedback_html,
)
from pcapcheck.grading.grader import bad_submission, grade_submission
from pcapcheck.grading.results import StudentResult, clean_points, num
from pcapcheck.grading.rubric import Rubric

__all__ = [
    "CAPTURE_SUFFIXES",
    "Submission",
    "SubmissionError",
    "discover",
    "flag_shared",
    "grade_all",
    "gradebook_csv",
    "gradebook_rows",
    "gradescope_results",
    "safe_text",
    "student_id",
    "unique_ids",
    "write_outputs",
]

#: File name endings read as capture files (longest first).
CAPTURE_SUFFIXES = (".pcapng.gz", ".pcap.gz", ".pcapng", ".pcap", ".cap", ".gz")
#: Characters of a student id at most.
MAX_ID_CHARS = 64
#: Names a student id may not take (compared case-insensitively): the files written at
#: the top of the output folder, and Windows' reserved device names.
RESERVED_NAMES = frozenset(
    {"gradebook.csv", "results.json", "feedback.md", "feedback.html", "con", "prn", "aux", "nul"}
    | {f"{dev}{n}" for dev in ("com", "lpt") for n in range(1, 10)}
)


class SubmissionError(Exception):
    """A submission path that does not exist or an empty directory of submissions (a usage
    error: one line)."""


@dataclass
class Submission:
    """One student's hand-in: ``path`` as found, ``capture`` and ``answers`` to grade
    (``capture`` None with ``problem`` set when the folder holds no single capture)."""

    student: str
    path: Path
    capture: Path | None
    answers: Path | None = None
    problem: str | None = None


def _sanitise(name: str) -> str:
    """``name`` as a safe file name: NFC, every character other than a letter, a digit,
    ``-``, ``_`` or ``.`` (slashes, control characters, spaces, undecodable bytes...)
    replaced by ``_``, leading dots and trailing dots removed, at most
    :data:`MAX_ID_CHARS` characters; ``student`` when nothing is left."""
    name = unicodedata.normalize("NFC", name)
    kept = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    kept = kept.lstrip(".")[:MAX_ID_CHARS].rstrip(".")
    return kept or "student"


def student_id(path: Path) -> str:
    """The student id of a capture file or folder: its name without a capture suffix,
    made a safe file name (:func:`_sanitise`: letters, digits, ``-``, ``_`` and ``.``
    only, no leading dot, at most 64 characters). :func:`discover` then makes the ids
    unique (:func:`unique_ids`)."""
    name = path.name
    if not path.is_dir() or path.is_symlink():
        for suffix in CAPTURE_SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                break
        else:
            name = path.stem or name
    return _sanitise(name)


def unique_ids(ids: Sequence[str]) -> list[str]:
    """``ids`` made unique case-insensitively (two folders ``Bob`` and ``bob`` would be
    one on a case-insensitive file system) and distinct from :data:`RESERVED_NAMES`: a
    repeat gets ``-2``, ``-3``... (the first free one)."""
    taken = set(RESERVED_NAMES)
    unique = []
    for sid in ids:
        candidate, n = sid, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{sid}-{n}"
        taken.add(candidate.casefold())
        unique.append(candidate)
    return unique


def safe_text(text: str) -> str:
    """``text`` encodable as UTF-8: a lone surrogate (a byte of a file name that is not
    valid UTF-8, as Python's ``surrogateescape`` reads it) becomes ``\\udcXX``
    (``backslashreplace``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _undecodable(name: str) -> bool:
    """Whether a file name holds bytes that are not valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _entry_problem(entry: Path) -> str | None:
    """Why a directory entry (a student's submission, or a file in a student's folder)
    is refused before being read: a symbolic link, not a regular file or folder, a name
    that is not UTF-8."""
    shown = safe_text(entry.name)
    if entry.is_symlink():
        try:
            target = safe_text(os.readlink(entry))
        except OSError:
            target = "?"
        return f"{shown} is a symbolic link (to {target}): links are not followed, hand in the file"
    if _undecodable(entry.name):
        return f"the file name {shown} is not valid UTF-8: rename it"
    if not entry.is_dir() and not entry.is_file():
        return f"{shown} is not a regular file or folder"
    return None


def _from_folder(folder: Path) -> Submission:
    sid = student_id(folder)
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return Submission(sid, folder, None, problem=f"cannot read the folder ({reason})")
    for entry in entries:
        problem = _entry_problem(entry)
        if problem is not None:
            return Submission(sid, folder, None, problem=f"the folder holds a bad entry: {problem}")
    files = [
        p
        for p in entries
        if p.is_file() and p.name not in ANSWER_NAMES and not p.name.endswith(ANSWER_SUFFIXES)
    ]
    if len(files) > 1:
        captures = [p for p in files if p.name.lower().endswith(CAPTURE_SUFFIXES)]
        files = captures or files
    if not files:
        return Submission(sid, folder, None, problem="the folder holds no capture file")
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        return Submission(
            sid,
            folder,
            None,
            problem=f"the folder holds several captures ({names}): hand in one",
        )
    return Submission(sid, folder, files[0], find_answers(files[0], folder))


def _from_entry(entry: Path, alone: bool = False) -> Submission | None:
    """The submission of one entry of a directory of submissions (None for an answers
    file beside a capture); ``alone``: a file given on the command line (its directory
    is the student's folder: ``answers.yaml`` there counts)."""
    if entry.name.endswith(ANSWER_SUFFIXES) and not alone:
        return None  # the answers of a capture beside it (checked with that capture)
    problem = _entry_problem(entry)
    if problem is not None:
        return Submission(student_id(entry), entry, None, problem=problem)
    if entry.is_dir():
        return _from_folder(entry)
    answers = find_answers(entry, entry.parent if alone else None)
    if answers is not None and answers.is_symlink():
        problem = _entry_problem(answers)
        return Submission(student_id(entry), entry, None, problem=problem)
    return Submission(student_id(entry), entry, entry, answers)


def discover(paths: Sequence[Path]) -> list[Submission]:
    """The submissions in ``paths`` (files and directories of submissions), in order
    (directory entries sorted by name; a path given that is a symbolic link is not
    followed either). Student ids are made unique by appending ``-2``,
    ``-3``... (:func:`unique_ids`). Raises :class:`SubmissionError` for a missing path, an
    unreadable directory or an empty one."""
    found: list[Submission] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise SubmissionError(f"{safe_text(str(path))}: no such file or directory")
        if path.is_symlink() or not path.is_dir():
            # A capture handed in alone (Gradescope's submission/*.pcap*): a student's
            # file like any other; a symbolic link (even to a directory) or a FIFO is
            # that student's bad submission.
            sub = _from_entry(path, alone=True)
            assert sub is not None
            found.append(sub)
            continue
        try:
            entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        except OSError as exc:
            raise SubmissionError(
                f"{safe_text(str(path))}: cannot read the directory ({exc.strerror or exc})"
            ) from None
        before = len(found)
        for entry in entries:
            sub = _from_entry(entry)
            if sub is not None:
                found.append(sub)
        if len(found) == before:
            raise SubmissionError(f"{safe_text(str(path))}: no submissions in this directory")
    for sub, sid in zip(found, unique_ids([sub.student for sub in found])):
        sub.student = sid
    return found


def grade_all(
    rubric: Rubric,
    submissions: Iterable[Submission],
    catalog: Catalog | None = None,
    budget: float | None = None,
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> list[StudentResult]:
    """Grade every submission (a bad one scores 0 and never stops the batch; neither
    does an unexpected error while grading one, which becomes its ``problem``), then
    :func:`flag_shared`. ``budget``: seconds per CEL expression (default
    :data:`pcapcheck.grading.expressions.TIME_BUDGET`). ``tunnel_ports``: the UDP
    tunnel ports the captures are decoded with (:func:`grade_submission`)."""
    catalog = catalog if catalog is not None else load_catalog()
    results = []
    for sub in submissions:
        if sub.capture is None:
            results.append(
                bad_submission(rubric, sub.student, sub.path, sub.problem or "no capture")
            )
            continue
        try:
            result = grade_submission(
                rubric,
                sub.student,
                sub.capture,
                sub.answers,
                submission=sub.path,
                catalog=catalog,
                budget=budget,
                tunnel_ports=tunnel_ports,
            )
        except Exception as exc:  # one student's problem is never the batch's
            if os.environ.get("PCAPCHECK_DEBUG"):
                raise
            problem = f"internal error while grading: {type(exc).__name__}: {exc}"
            result = bad_submission(rubric, sub.student, sub.path, problem, sub.capture)
        results.append(result)
    flag_shared(results)
    return results


def flag_shared(results: Sequence[StudentResult]) -> None:
    """Fill each result's ``shared_with``: the other students whose capture holds a
    connection with the same (client ISN, server ISN) pair."""
    owners: dict[tuple[int, int], set[str]] = {}
    for res in results:
        for pair in res.isn_pairs:
            owners.setdefault(pair, set()).add(res.student)
    for res in results:
        others = set()
        for pair in res.isn_pairs:
            others |= owners[pair]
        others.discard(res.student)
        res.shared_with = sorted(others)


def gradebook_rows(rubric: Rubric, results: Sequence[StudentResult]) -> list[list[str]]:
    """The gradebook as rows of text, header first: ``student, score, max``, one column
    per check id then per scored answer (``answer_<key>``), ``shared_with`` (other
    students, ``;``-separated) and ``problem`` (why a submission could not be graded)."""
    ids = rubric.columns
    rows = [["student", "score", "max", *ids, "shared_with", "problem"]]
    for res in results:
        by_id = {c.id: c for c in res.scored}
        rows.append(
            [
                res.student,
                num(res.score),
                num(res.max_score),
                *(num(by_id[i].score) if i in by_id else "0" for i in ids),
                ";".join(res.shared_with),
                res.problem or "",
            ]
        )
    return rows


def gradebook_csv(rubric: Rubric, results: Sequence[StudentResult]) -> str:
    """:func:`gradebook_rows` as CSV text (``\\n`` line ends)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(gradebook_rows(rubric, results))
    return safe_text(buf.getvalue())


def gradescope_results(
    rubric: Rubric, student: StudentResult, html: bool = False
) -> dict[str, Any]:
    """Gradescope's ``results.json`` for one student: top-level ``score``, ``output``
    (Markdown: the score and the ladders), and one test per check and scored answer with
    ``name``, ``number``, ``score``, ``max_score``, ``status`` (passed/failed), ``output``
    (Markdown), ``output_format`` and ``visibility``. ``html``: every ``output`` in HTML
    (``output_format: "html"``, Gradescope's autograder specification), the top-level
    one the whole feedback with its ladders as SVG."""
    tests = []
    for n, check in enumerate(student.scored, start=1):
        tests.append(
            {
                "name": check.title,
                "number": str(n),
                "score": clean_points(check.score),
                "max_score": clean_points(check.points),
                "status": "passed" if check.passed else "failed",
                "output": check_body_html(check, student) if html else check_body(check, student),
                "output_format": "html" if html else "md",
                "visibility": check.visibility,
            }
        )
    header = f"**{rubric.title}**: {num(student.score)} / {num(student.max_score)}"
    if student.problem:
        header += f"\n\nThis submission could not be graded: {student.problem}."
    ladders = "".join(
        f"\n\nLadder of connection {cid}:\n\n```text\n{text}```"
        for cid, text in student.ladders.items()
    )
    return {
        "score": student.score,
        "output": feedback_fragment(student, rubric) if html else header + ladders,
        "output_format": "html" if html else "md",
        "visibility": "visible",
        "tests": tests,
    }


def write_outputs(
    rubric: Rubric,
    results: Sequence[StudentResult],
    out: Path,
    gradescope: bool = False,
    html: bool = False,
) -> list[Path]:
    """Write ``OUT/gradebook.csv``, ``OUT/<student>/feedback.md`` (and
    ``OUT/<student>/feedback.html`` with ``html``, whose results.json then holds HTML)
    and, with ``gradescope``, ``OUT/<student>/results.json`` (plus ``OUT/results.json``
    when one student was graded: the file Gradescope's autograder reads). Returns the paths
    written. Raises OSError; ValueError for a student id that is not a plain name (ids
    from :func:`discover` always are: a guard, so nothing is written outside ``out``)."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "gradebook.csv"]
    written[0].write_text(gradebook_csv(rubric, results), encoding="utf-8")
    for res in results:
        if _sanitise(res.student) != res.student or res.student.casefold() in RESERVED_NAMES:
            raise ValueError(f"student id {safe_text(res.student)!r} is not a safe file name")
        folder = out / res.student
        folder.mkdir(exist_ok=True)
        (folder / "feedback.md").write_text(
            safe_text(render_feedback(res, rubric)), encoding="utf-8"
        )
        written.append(folder / "feedback.md")
        if html:
            (folder / "feedback.html").write_text(
                safe_text(render_feedback_html(res, rubric)), encoding="utf-8"
            )
            written.append(folder / "feedback.html")
        if gradescope:
            doc = gradescope_results(rubric, res, html=html)
            text = json.dumps(doc, indent=2, ensure_ascii=False)
            (folder / "results.json").write_text(safe_text(text) + "\n", encoding="utf-8")
            written.append(folder / "results.json")
            if len(results) == 1:
                (out / "results.json").write_text(safe_text(text) + "\n", encoding="utf-8")
                written.append(out / "results.json")
    return written
