"""Grade one submission: analyse its capture, evaluate every rubric check, check the
student's answers, and keep what the feedback needs (what the capture shows, frames to
open, ladders of the connections concerned).

A submission that cannot be graded — not a capture, an empty file or capture, no TCP in
it — scores 0 on every check, with the reason in :attr:`StudentResult.problem`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pcapcheck.capture.reader import CaptureError
from pcapcheck.catalog.rules import Catalog, load_catalog
from pcapcheck.grading.answers import TITLES, AnswersError, check_answers, load_answers
from pcapcheck.grading.expressions import (
    TIME_BUDGET,
    Expression,
    capture_environment,
    to_activation,
)
from pcapcheck.grading.results import CheckResult, StudentResult
from pcapcheck.grading.rubric import ANSWER_KEYS, Check, Rubric
from pcapcheck.model import Segment
from pcapcheck.pipeline import analyze_file
from pcapcheck.report.ladder import connection_segments, render_text
from pcapcheck.report.ladder_model import build_ladder
from pcapcheck.results import FileResult

__all__ = ["MAX_LADDERS", "bad_submission", "describe_connection", "grade_submission"]

#: Ladders drawn per feedback at most (a failed check about many connections lists them
#: all but draws the first ones).
MAX_LADDERS = 3


def describe_connection(conn: Mapping[str, Any]) -> str:
    """One Markdown line: what a connection (a CEL connection map) shows."""
    from pcapcheck.i18n import gettext as _
    from pcapcheck.report.common import value_text

    closer = value_text(conn["closer"]) if conn["closer"] else _("nobody")
    return _(
        "connection {id}, {client} → {server} (frames {first}–{last}): handshake "
        "**{handshake}**, close **{close}**, first FIN from {closer}; data bytes client "
        "{client_bytes}, server {server_bytes}; final states client {client_state}, "
        "server {server_state}"
    ).format(
        id=conn["id"],
        client=conn["client"],
        server=conn["server"],
        first=conn["first_frame"],
        last=conn["last_frame"],
        handshake=value_text(conn["handshake"]),
        close=value_text(conn["close"]),
        closer=closer,
        client_bytes=conn["bytes"]["client"],
        server_bytes=conn["bytes"]["server"],
        client_state=conn["client_state"] or "?",
        server_state=conn["server_state"] or "?",
    )


def _localised_messages(result: FileResult) -> dict[tuple, str]:
    """The messages of ``result``'s findings in the current language (empty in English:
    the findings' own), keyed as :func:`_finding_line` looks them up."""
    from pcapcheck.i18n import DEFAULT_LANGUAGE, get_language
    from pcapcheck.report.common import finding_message

    if get_language() == DEFAULT_LANGUAGE:
        return {}
    return {(f.rule, f.connection, f.frame, f.message): finding_message(f) for f in result.findings}


def _finding_line(f: Mapping[str, Any], messages: Mapping[tuple, str] | None = None) -> str:
    """``frame 9: CL008 (info) MESSAGE``; ``messages``: the findings' messages in the
    current language (:func:`_localised_messages`), else the English one."""
    from pcapcheck.i18n import gettext as _
    from pcapcheck.report.common import value_text

    if f.get("frame") is not None:
        where = _("frame {frame}").format(frame=f["frame"])
    else:
        where = _("file")
    key = (f["rule"], f.get("connection"), f.get("frame"), f["message"])
    message = (messages or {}).get(key, f["message"])
    return f"{where}: {f['rule']} ({value_text(f['severity'])}) {message}"


def bad_submission(
    rubric: Rubric, student: str, submission: Path, problem: str, capture: Path | None = None
) -> StudentResult:
    """A submission that cannot be graded: every check 0 points, ``problem`` as the
    reason (shown in each check's feedback and in the gradebook)."""
    result = StudentResult(student, submission, capture=capture, problem=problem)
    for check in rubric.checks:
        result.checks.append(
            CheckResult(
                check.id,
                check.title,
                check.points,
                0,
                False,
                expected=check.feedback,
                error=problem,
                visibility=check.visibility,
            )
        )
    result.checks.extend(_answers_not_checked(rubric, problem))
    return result


def _answers_not_checked(rubric: Rubric, reason: str) -> list[CheckResult]:
    """The rubric's scored answers, all 0 points with ``reason``."""
    return [
        CheckResult(f"answer_{key}", TITLES[key], rubric.answers[key], 0, False, error=reason)
        for key in ANSWER_KEYS
        if key in rubric.answers
    ]


def _problem(result: FileResult) -> str | None:
    """Why an analysed capture cannot be graded (None when it can)."""
    if result.packets == 0:
        return "the capture holds no packets"
    if not result.connections:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(result.skipped.items()))
        seen = f" (it holds {kinds})" if kinds else ""
        return (
            f"the capture holds no TCP connection: {result.packets} packets, "
            f"{result.tcp_packets} TCP{seen}; capture the lab's TCP traffic"
        )
    return None


def _matches(expr: Expression, activation: dict[str, Any], conn: Any, budget: float | None) -> bool:
    value, error = expr.evaluate({**activation, "c": conn}, budget)
    return error is None and value is True


def _focus(
    expr: Expression, env: Mapping[str, Any], activation: dict[str, Any], budget: float | None
) -> list[int]:
    """Ids of the connections ``expr`` (the rubric's focus) holds for. The evaluations
    share one time budget (``budget``, default TIME_BUDGET): once it is spent the
    remaining connections are not in the focus (a slow focus over thousands of
    connections must not stall the batch)."""
    total = TIME_BUDGET if budget is None else budget
    deadline = time.monotonic() + total
    ids = []
    for conn, cel in zip(env["connections"], activation["connections"]):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if _matches(expr, activation, cel, left):
            ids.append(conn["id"])
    return ids


def _evidence(value: Any) -> tuple[list[dict], list[int], list[int]]:
    """Split an evidence value into (findings, connection ids, frames)."""
    items = value if isinstance(value, list) else [value]
    findings, conns, frames = [], [], []
    for item in items:
        if isinstance(item, dict) and "rule" in item:
            findings.append(item)
        elif isinstance(item, dict) and "transitions" in item:
            conns.append(item["id"])
        elif isinstance(item, int) and not isinstance(item, bool):
            frames.append(item)
    return findings, conns, frames


def _evaluate(
    check: Check,
    env: Mapping[str, Any],
    activation: dict[str, Any],
    focus: list[int],
    budget: float | None,
) -> CheckResult:
    value, error = check.condition.evaluate(activation, budget)
    if error is None and not isinstance(value, bool):
        error = f"the condition gave {value!r}, not true or false"
    passed = error is None and value is True
    res = CheckResult(
        check.id,
        check.title,
        check.points,
        check.points if passed else 0,
        passed,
        expected=check.feedback,
        error=error,
        visibility=check.visibility,
    )
    if passed:
        return res
    by_id = {c["id"]: c for c in env["connections"]}
    findings: list[dict] = []
    conns: list[int] = []
    frames: list[int] = []
    if check.evidence is not None:
        ev, ev_error = check.evidence.evaluate(activation, budget)
        if ev_error is None:
            findings, conns, frames = _evidence(ev)
            conns += [f["connection"] for f in findings if f.get("connection") is not None]
        else:
            res.shows.append(f"(the evidence expression failed: {ev_error})")
    if not conns and not findings and not frames:
        conns = focus or ([env["connections"][0]["id"]] if env["connections"] else [])
        findings = [f for cid in conns for f in by_id[cid]["findings"]]
    conns = list(dict.fromkeys(conns))
    for cid in conns:
        res.shows.append(describe_connection(by_id[cid]))
    if not conns:
        res.shows.append("no connection of the capture is concerned")
    res.shows.extend(_finding_line(f, env.get("messages")) for f in findings)
    res.frames = sorted({f["frame"] for f in findings if f.get("frame") is not None} | set(frames))
    res.connections = conns
    return res


def grade_submission(
    rubric: Rubric,
    student: str,
    capture: Path,
    answers_file: Path | None = None,
    submission: Path | None = None,
    catalog: Catalog | None = None,
    budget: float | None = None,
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> StudentResult:
    """Grade the capture of one student against ``rubric``.

    ``answers_file``: the student's answers (see :mod:`pcapcheck.grading.answers`);
    ``submission``: the path the student handed in (default ``capture``); ``catalog``:
    the rule catalogue (default: the shipped one, default rule selection). Never raises
    for a bad capture or answers file: a capture that cannot be graded gives a
    :func:`bad_submission`, an unusable answers file scores 0 on the answers with the
    reason in their feedback. ``budget``: seconds each CEL expression may run (default
    :data:`pcapcheck.grading.expressions.TIME_BUDGET`); one that runs past it fails its
    check with that reason. ``tunnel_ports``: the UDP ports of the tunnels the capture is
    decoded with (tunnel name -> ports, the ``[tunnel-ports]`` configuration key; None:
    IANA's), as ``pcapcheck analyze`` decodes it.
    """
    submission = submission if submission is not None else capture
    catalog = catalog if catalog is not None else load_catalog()
    try:
        result = analyze_file(
            capture, catalog, catalog.select(None, None), tunnel_ports=tunnel_ports
        )
        problem = _problem(result)
        segments = (
            {}
            if problem
            else connection_segments(capture, result.connections, tunnel_ports=tunnel_ports)
        )
    except CaptureError as exc:
        text = str(exc)
        prefix = f"{capture}: "
        problem = "not a readable capture: " + (
            text[len(prefix) :] if text.startswith(prefix) else text
        )
    except Exception as exc:
        if os.environ.get("PCAPCHECK_DEBUG"):
            raise
        problem = f"internal error while analysing the capture: {type(exc).__name__}: {exc}"
    if problem:
        return bad_submission(rubric, student, submission, problem, capture)

    env = capture_environment(result, name=capture.name)
    activation = to_activation(env)
    # the findings' messages in the current language, for the feedback (not seen by CEL)
    env["messages"] = _localised_messages(result)
    out = StudentResult(
        student,
        submission,
        capture=capture,
        answers_file=answers_file,
        connections=env["connections"],
        packets=result.packets,
    )
    focus = _focus(rubric.focus, env, activation, budget) if rubric.focus is not None else []
    for check in rubric.checks:
        out.checks.append(_evaluate(check, env, activation, focus, budget))

    lab = focus[0] if focus else env["connections"][0]["id"]
    out.checks.extend(_answers(rubric, answers_file, env, segments, lab, result.packets))

    wanted = [lab] + [cid for c in out.checks if not c.passed for cid in c.connections]
    for cid in list(dict.fromkeys(wanted))[:MAX_LADDERS]:
        out.ladder_models[cid] = build_ladder(result, cid, segments.get(cid, []))
        out.ladders[cid] = render_text(out.ladder_models[cid])
    return out


def _answers(
    rubric: Rubric,
    answers_file: Path | None,
    env: Mapping[str, Any],
    segments: Mapping[int, Sequence[Segment]],
    lab: int,
    packets: int,
) -> list[CheckResult]:
    if answers_file is None:
        return _answers_not_checked(
            rubric,
            "no answers file: write them in "
            "<capture>.answers.yaml beside the capture, or "
            "answers.yaml in your submission folder",
        )
    try:
        answers = load_answers(answers_file)
    except AnswersError as exc:
        return _answers_not_checked(rubric, str(exc))
    by_id = {c["id"]: c for c in env["connections"]}
    cid = answers.get("connection", lab)
    if cid not in by_id:
        return _answers_not_checked(
            rubric,
            f"{answers_file.name}: connection {cid} does not exist (the capture has {len(by_id)})",
        )
    return check_answers(answers, by_id[cid], segments.get(cid, []), packets, rubric.answers)
