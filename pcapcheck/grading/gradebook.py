"""Batches of submissions: finding them, grading them all, the integrity flag, the
gradebook CSV and Gradescope's ``results.json``.

Submissions (:func:`discover`): a capture file given directly is one student (the id is
the file name without its capture extension: ``alice.pcap`` → ``alice``); a directory is a
directory of submissions in which every entry is one student: a capture file, or a folder
named after the student holding one capture (its other files: ``answers.yaml`` and
``*.answers.yaml``). Files ending ``.answers.yaml`` beside the captures are answers, not
students; hidden entries are ignored. Every other entry is a student, so that a wrong file
is reported rather than silently dropped.

Integrity (:func:`flag_shared`): two submissions whose captures hold the same connection —
the same client ISN and server ISN, 2^64 possibilities for independent captures — are
flagged in each other's ``shared_with``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcapcheck.catalog.rules import Catalog, load_catalog
from pcapcheck.grading.answers import ANSWER_NAMES, ANSWER_SUFFIXES, find_answers
from pcapcheck.grading.feedback import check_body, render_feedback
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
    "student_id",
    "write_outputs",
]

#: File name endings read as capture files (longest first).
CAPTURE_SUFFIXES = (".pcapng.gz", ".pcap.gz", ".pcapng", ".pcap", ".cap", ".gz")


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


def student_id(path: Path) -> str:
    """The student id of a capture file or folder: its name without a capture suffix."""
    name = path.name
    if path.is_dir():
        return name
    for suffix in CAPTURE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem or name


def _from_folder(folder: Path) -> Submission:
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.name not in ANSWER_NAMES
        and not p.name.endswith(ANSWER_SUFFIXES)
    )
    if len(files) > 1:
        captures = [p for p in files if p.name.lower().endswith(CAPTURE_SUFFIXES)]
        files = captures or files
    if not files:
        return Submission(folder.name, folder, None, problem="the folder holds no capture file")
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        return Submission(
            folder.name,
            folder,
            None,
            problem=f"the folder holds several captures ({names}): hand in one",
        )
    return Submission(folder.name, folder, files[0], find_answers(files[0], folder))


def discover(paths: Sequence[Path]) -> list[Submission]:
    """The submissions in ``paths`` (files and directories of submissions), in order
    (directory entries sorted by name). Student ids are made unique by appending ``-2``,
    ``-3``... Raises :class:`SubmissionError` for a missing path or an empty directory."""
    found: list[Submission] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise SubmissionError(f"{path}: no such file or directory")
        if path.is_file():
            # A capture handed in alone: its directory is the student's folder.
            found.append(Submission(student_id(path), path, path, find_answers(path, path.parent)))
            continue
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        before = len(found)
        for entry in entries:
            if entry.is_dir():
                found.append(_from_folder(entry))
            elif entry.is_file() and not entry.name.endswith(ANSWER_SUFFIXES):
                found.append(Submission(student_id(entry), entry, entry, find_answers(entry)))
        if len(found) == before:
            raise SubmissionError(f"{path}: no submissions in this directory")
    seen: dict[str, int] = {}
    for sub in found:
        n = seen.get(sub.student, 0) + 1
        seen[sub.student] = n
        if n > 1:
            sub.student = f"{sub.student}-{n}"
    return found


def grade_all(
    rubric: Rubric, submissions: Iterable[Submission], catalog: Catalog | None = None
) -> list[StudentResult]:
    """Grade every submission (a bad one scores 0 and never stops the batch), then
    :func:`flag_shared`."""
    catalog = catalog if catalog is not None else load_catalog()
    results = []
    for sub in submissions:
        if sub.capture is None:
            results.append(
                bad_submission(rubric, sub.student, sub.path, sub.problem or "no capture")
            )
            continue
        results.append(
            grade_submission(
                rubric, sub.student, sub.capture, sub.answers, submission=sub.path, catalog=catalog
            )
        )
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
    return buf.getvalue()


def gradescope_results(rubric: Rubric, student: StudentResult) -> dict[str, Any]:
    """Gradescope's ``results.json`` for one student: top-level ``score``, ``output``
    (Markdown: the score and the ladders), and one test per check and scored answer with
    ``name``, ``number``, ``score``, ``max_score``, ``status`` (passed/failed), ``output``
    (Markdown), ``output_format`` and ``visibility``."""
    tests = []
    for n, check in enumerate(student.scored, start=1):
        tests.append(
            {
                "name": check.title,
                "number": str(n),
                "score": clean_points(check.score),
                "max_score": clean_points(check.points),
                "status": "passed" if check.passed else "failed",
                "output": check_body(check, student),
                "output_format": "md",
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
        "output": header + ladders,
        "output_format": "md",
        "visibility": "visible",
        "tests": tests,
    }


def write_outputs(
    rubric: Rubric, results: Sequence[StudentResult], out: Path, gradescope: bool = False
) -> list[Path]:
    """Write ``OUT/gradebook.csv``, ``OUT/<student>/feedback.md`` and, with
    ``gradescope``, ``OUT/<student>/results.json`` (plus ``OUT/results.json`` when one
    student was graded: the file Gradescope's autograder reads). Returns the paths
    written. Raises OSError."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "gradebook.csv"]
    written[0].write_text(gradebook_csv(rubric, results), encoding="utf-8")
    for res in results:
        folder = out / res.student
        folder.mkdir(exist_ok=True)
        (folder / "feedback.md").write_text(render_feedback(res, rubric), encoding="utf-8")
        written.append(folder / "feedback.md")
        if gradescope:
            text = json.dumps(gradescope_results(rubric, res), indent=2, ensure_ascii=False)
            (folder / "results.json").write_text(text + "\n", encoding="utf-8")
            written.append(folder / "results.json")
            if len(results) == 1:
                (out / "results.json").write_text(text + "\n", encoding="utf-8")
                written.append(out / "results.json")
    return written
