"""Feedback for one student, in Markdown: the score, every check passed or failed, and for
each failure what was expected, what the capture shows, the frames to open in Wireshark
and the ladder of the connection concerned; then the student's answers with expected and
given values and an explanation for each wrong one.

The same feedback as HTML (:func:`render_feedback_html`: a self-contained page,
``feedback.html`` beside ``feedback.md``; :func:`feedback_fragment`: the page's body for
Gradescope's ``output_format: "html"``): the Markdown above rendered by markdown-it-py
with raw HTML, links and images off (everything a student hands in — names, answers,
capture file names — is untrusted text, escaped), and each ladder drawn as SVG
(:mod:`pcapcheck.report.ladder_svg`) instead of text.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

from pcapcheck.grading.results import CheckResult, StudentResult, num
from pcapcheck.grading.rubric import Rubric
from pcapcheck.i18n import gettext as _
from pcapcheck.i18n import ngettext
from pcapcheck.report.common import connection_filter

if TYPE_CHECKING:
    from markupsafe import Markup

__all__ = [
    "check_body",
    "check_body_html",
    "feedback_fragment",
    "render_feedback",
    "render_feedback_html",
    "wireshark_filter",
]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """``text`` as a Markdown code span (CommonMark 6.1): fenced by one backtick more than
    its longest run of backticks, padded with a space when it starts or ends with a
    backtick (a student's answer may hold any)."""
    text = str(text)
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def wireshark_filter(frames: list[int]) -> str:
    """The Wireshark display filter selecting ``frames``: ``frame.number in {7 9}``."""
    return "frame.number in {" + " ".join(str(f) for f in frames) + "}"


def _conversation_filter(student: StudentResult, cid: int) -> str | None:
    """The connection's Wireshark filter (:func:`~pcapcheck.report.common.connection_filter`),
    from the summary its ladder was drawn from (which has the tunnels), else from its
    CEL map (endpoints only)."""
    model = student.ladder_models.get(cid)
    conn = (
        model.conn
        if model is not None
        else next((c for c in student.connections if c["id"] == cid), None)
    )
    if conn is None:
        return None
    return connection_filter(conn)


def check_body(check: CheckResult, student: StudentResult) -> str:
    """The Markdown explaining one check's result (no heading): for a failure, what was
    expected, what the capture shows, the frames to open and which ladder to look at."""
    if check.passed:
        return _("Passed.")
    parts: list[str] = []
    if student.problem:
        parts.append(
            _("**This submission could not be graded:** {problem}.").format(problem=student.problem)
        )
        if check.expected:
            parts.append(_("**Expected:** {expected}").format(expected=check.expected))
        return "\n\n".join(parts)
    if check.expected:
        parts.append(_("**Expected:** {expected}").format(expected=check.expected))
    if check.error:
        label = (
            _("**Not checked:**")
            if check.id.startswith("answer_")
            else _("**The check could not be evaluated:**")
        )
        parts.append(f"{label} {check.error}")
    if check.rows:
        lines = []
        for row in check.rows:
            mark = _("right") if row.ok else _("wrong")
            line = _("- {item}: expected {expected}, given {given} — {mark}").format(
                item=row.item, expected=_code(row.expected), given=_code(row.given), mark=mark
            )
            if row.explanation:
                line += f". {row.explanation[0].upper()}{row.explanation[1:]}"
            lines.append(line)
        parts.append("\n".join(lines))
    if check.shows:
        parts.append(_("**Your capture shows:**") + "\n" + "\n".join(f"- {s}" for s in check.shows))
    where = []
    if check.frames:
        where.append(
            ngettext(
                "frame {frames} (display filter `{filter}`)",
                "frames {frames} (display filter `{filter}`)",
                len(check.frames),
            ).format(
                frames=", ".join(str(f) for f in check.frames),
                filter=wireshark_filter(check.frames),
            )
        )
    if len(check.connections) == 1 and not check.id.startswith("answer_"):
        cid = check.connections[0]
        conv = _conversation_filter(student, cid)
        if conv:
            where.append(_("the whole connection {id}: `{filter}`").format(id=cid, filter=conv))
    if where:
        parts.append(_("**Open in Wireshark:** {where}.").format(where="; ".join(where)))
    drawn = [cid for cid in check.connections if cid in student.ladders]
    if drawn:
        names = ", ".join(str(cid) for cid in drawn)
        parts.append(
            ngettext(
                "**Ladder:** see the ladder of connection {ids}.",
                "**Ladder:** see the ladder of connections {ids}.",
                len(drawn),
            ).format(ids=names)
        )
    return "\n\n".join(parts)


def _result_word(check: CheckResult) -> str:
    if check.passed:
        return _("passed")
    if check.score:
        return _("**partly**")
    return _("**failed**")


def _answers_section(student: StudentResult) -> list[str]:
    answers = [c for c in student.checks if c.id.startswith("answer_")]
    if not answers or student.problem:
        return []
    scored = [c for c in answers if c.scored]
    head = "## " + _("Your answers")
    if scored:
        head += f" ({num(sum(c.score for c in scored))} / {num(sum(c.points for c in scored))})"
    out = [head, ""]
    errors = list(dict.fromkeys(c.error for c in answers if c.error))
    rows = [(c, r) for c in answers for r in c.rows]
    if student.answers_file is not None and rows:
        cids = sorted({cid for c in answers for cid in c.connections})
        name = student.answers_file.name
        if cids:
            line = _("From `{file}`, about connection {id}.").format(file=name, id=cids[0])
        else:
            line = _("From `{file}`.").format(file=name)
        out += [line, ""]
    out += [_("**Not checked:** {reason}.").format(reason=e) for e in errors]
    if errors:
        out.append("")
    if rows:
        heads = (_("question"), _("expected"), _("given"), _("result"))
        out += ["| " + " | ".join(heads) + " |", "|---|---|---|---|"]
        for check, row in rows:
            note = "" if check.scored else " " + _("(not scored)")
            result = _("right") if row.ok else "**" + _("wrong") + "**"
            out.append(
                f"| {_cell(row.item)} | {_code(_cell(row.expected))} | {_code(_cell(row.given))} "
                f"| {result}{note} |"
            )
        out.append("")
        wrong = [row for _, row in rows if not row.ok and row.explanation]
        for row in wrong:
            out.append(f"- **{row.item}**: {row.explanation[0].upper()}{row.explanation[1:]}")
        if wrong:
            out.append("")
        frames = sorted({f for c in answers if not c.passed for f in c.frames})
        if frames:
            where = ngettext(
                "frame {frames} (display filter `{filter}`)",
                "frames {frames} (display filter `{filter}`)",
                len(frames),
            ).format(frames=", ".join(str(f) for f in frames), filter=wireshark_filter(frames))
            out += [_("**Open in Wireshark:** {where}.").format(where=where), ""]
    return out


def _feedback_lines(student: StudentResult, rubric: Rubric) -> list[str]:
    """The Markdown feedback's lines up to the ladders."""
    out = [
        f"# {rubric.title}",
        "",
        _("Student: **{student}**").format(student=student.student),
        "",
        _("**Score: {score} / {max}**").format(
            score=num(student.score), max=num(student.max_score)
        ),
        "",
    ]
    if rubric.description:
        out += [rubric.description, ""]
    if student.problem:
        out += [
            _("**This submission could not be graded:** {problem}. Every check scores 0.").format(
                problem=student.problem
            ),
            "",
        ]
    else:
        count = len(student.connections)
        capture = student.capture.name if student.capture else "-"
        line = ngettext(
            "Capture `{capture}`: {packets} packets, {count} TCP connection.",
            "Capture `{capture}`: {packets} packets, {count} TCP connections.",
            count,
        ).format(capture=capture, packets=student.packets, count=count)
        out += [line, ""]

    heads = (_("check"), _("points"), _("result"))
    out += ["| " + " | ".join(heads) + " |", "|---|---|---|"]
    for check in student.checks:
        pts = f"{num(check.score)} / {num(check.points)}" if check.scored else _("not scored")
        out.append(f"| {_cell(check.title)} | {pts} | {_result_word(check)} |")
    out.append("")

    failed = [c for c in student.checks if not c.passed and not c.id.startswith("answer_")]
    if failed and not student.problem:
        out += ["## " + _("What to look at"), ""]
        for check in failed:
            out += [
                f"### {check.title} ({num(check.score)} / {num(check.points)})",
                "",
                check_body(check, student),
                "",
            ]
    elif not student.problem:
        out += [_("All checks on the capture passed."), ""]
    out += _answers_section(student)

    return out


def render_feedback(student: StudentResult, rubric: Rubric) -> str:
    """The whole Markdown feedback of ``student`` (graded with ``rubric``): score, table
    of checks, what to look at for each failed check, the answers, the ladders."""
    out = _feedback_lines(student, rubric)
    for cid, ladder in student.ladders.items():
        head = "## " + _("Ladder of connection {id}").format(id=cid)
        out += [head, "", "```text", ladder.rstrip("\n"), "```", ""]
    return "\n".join(out).rstrip("\n") + "\n"


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # CommonMark with GFM tables; raw HTML escaped, no links or images (a student's text
    # must not make the page load or point anywhere)
    return (
        MarkdownIt("commonmark", {"html": False})
        .enable("table")
        .disable(["link", "image", "autolink"])
    )


def _html(markdown: str) -> Markup:
    from markupsafe import Markup

    return Markup(_markdown().render(markdown))


def check_body_html(check: CheckResult, student: StudentResult) -> str:
    """:func:`check_body` as HTML (Gradescope's per-test ``output``)."""
    return str(_html(check_body(check, student)))


def _context(student: StudentResult, rubric: Rubric) -> dict[str, Any]:
    from pcapcheck.report.ladder_svg import svg_parts

    ladders = [
        {"id": cid, "parts": svg_parts(model)} for cid, model in student.ladder_models.items()
    ]
    body = "\n".join(_feedback_lines(student, rubric)).rstrip("\n") + "\n"
    return {
        "student": student.student,
        "title": rubric.title,
        "body": _html(body),
        "ladders": ladders,
    }


def feedback_fragment(student: StudentResult, rubric: Rubric) -> str:
    """The HTML feedback without page around it (no ``<head>``, style sheet or script: the
    ladders carry their colours), for Gradescope's ``output`` with ``output_format:
    "html"``."""
    from pcapcheck.report.html import environment

    template = environment().get_template("_feedback_body.html.j2")
    return template.render(**_context(student, rubric))


def render_feedback_html(student: StudentResult, rubric: Rubric) -> str:
    """The HTML feedback of ``student`` as a self-contained page (the report's style and
    Content-Security-Policy: nothing loaded, no script but the page's own)."""
    from pcapcheck.i18n import get_language
    from pcapcheck.report.html import environment, page_assets

    template = environment().get_template("feedback.html.j2")
    return template.render(lang=get_language(), assets=page_assets(), **_context(student, rubric))
