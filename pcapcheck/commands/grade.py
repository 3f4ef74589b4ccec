"""``pcapcheck grade SUBMISSION... --rubric RUBRIC``: grade student captures.

Exit status: 0 when every submission was graded (a bad submission — not a capture, empty,
no TCP — is graded 0 with a message, it does not change the status); 2 for a bad rubric,
a submission path that does not exist, an unwritable output directory or a usage error
(one line on stderr, never a traceback), or a configuration that cannot be read.

The captures are decoded with the UDP tunnel ports of the configuration
(``[tunnel-ports]``; ``--config FILE``, ``--isolated``), as ``pcapcheck analyze`` decodes
them.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import typer

from pcapcheck.commands.common import (
    CONFIG_HELP,
    ISOLATED_HELP,
    LANG_HELP,
    app,
    command_config,
    fail,
)


@app.command()
def grade(
    submissions: list[Path] = typer.Argument(
        ...,
        help="Capture files, or directories of submissions (one capture or one folder "
        "per student; the file or folder name is the student id).",
    ),
    rubric: Path = typer.Option(..., "--rubric", "-r", help="The rubric (YAML)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Write DIR/gradebook.csv and DIR/<student>/feedback.md and feedback.html "
        "(and results.json with --gradescope).",
    ),
    gradescope: bool = typer.Option(
        False, "--gradescope", help="Also write Gradescope's results.json per student."
    ),
    time_budget: float = typer.Option(
        10.0,
        "--time-budget",
        metavar="SECONDS",
        help="Seconds each rubric expression may run on one capture; past it the check "
        "fails for that student (the batch goes on).",
    ),
    lang: str | None = typer.Option(None, "--lang", metavar="LANG", help=LANG_HELP),
    config: Path | None = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP),
    isolated: bool = typer.Option(False, "--isolated", help=ISOLATED_HELP),
) -> None:
    """Grade student captures against a rubric: feedback, gradebook CSV, Gradescope."""
    ports = command_config(config, isolated, lang).tunnel_ports
    from tabulate import tabulate

    from pcapcheck.catalog.rules import CatalogError, load_catalog
    from pcapcheck.grading.feedback import render_feedback
    from pcapcheck.grading.gradebook import (
        SubmissionError,
        discover,
        grade_all,
        gradebook_csv,
        gradescope_results,
        safe_text,
        write_outputs,
    )
    from pcapcheck.grading.results import num
    from pcapcheck.grading.rubric import RubricError, load_rubric
    from pcapcheck.i18n import gettext as _
    from pcapcheck.i18n import ngettext

    if not math.isfinite(time_budget) or not 0 < time_budget <= 3600:
        raise fail(f"--time-budget: {time_budget:g} is not a number of seconds in (0, 3600]")
    try:
        loaded = load_rubric(rubric)
        found = discover(submissions)
        catalog = load_catalog()
    except (RubricError, SubmissionError, CatalogError) as exc:
        raise fail(str(exc)) from None
    if gradescope and out is None and len(found) > 1:
        raise fail(
            "--gradescope with several submissions needs --out DIR (one results.json per student)"
        )
    try:
        results = grade_all(loaded, found, catalog, budget=time_budget, tunnel_ports=ports)
    except Exception as exc:
        if os.environ.get("PCAPCHECK_DEBUG"):
            raise
        raise fail(
            f"internal error: {type(exc).__name__}: {exc} (set PCAPCHECK_DEBUG=1 for a traceback)"
        ) from None

    if out is None:
        if gradescope:
            text = (
                json.dumps(
                    gradescope_results(loaded, results[0], html=True), indent=2, ensure_ascii=False
                )
                + "\n"
            )
        elif len(results) == 1:
            text = render_feedback(results[0], loaded)
        else:
            text = gradebook_csv(loaded, results)
        sys.stdout.write(safe_text(text))
        raise typer.Exit(0)

    try:
        written = write_outputs(loaded, results, out, gradescope=gradescope, html=True)
    except OSError as exc:
        raise fail(
            _("cannot write to {target}: {reason}").format(
                target=safe_text(str(out)), reason=exc.strerror or exc
            )
        ) from None
    rows = []
    for res in results:
        failed = [c.id for c in res.scored if not c.passed and not c.id.startswith("answer_")]
        answers = [c for c in res.scored if c.id.startswith("answer_")]
        notes = [_("failed: {checks}").format(checks=", ".join(failed))] if failed else []
        if answers and not res.answers_file:
            notes.append(_("no answers file"))
        elif any(not c.passed for c in answers):
            notes.append(
                _("answers: {score} / {points}").format(
                    score=num(sum(c.score for c in answers)),
                    points=num(sum(c.points for c in answers)),
                )
            )
        note = res.problem or "; ".join(notes)
        rows.append(
            [
                res.student,
                f"{num(res.score)} / {num(res.max_score)}",
                ", ".join(res.shared_with),
                safe_text(note),
            ]
        )
    typer.echo(
        tabulate(
            rows,
            headers=[_("student"), _("score"), "shared_with", _("notes")],
            maxcolwidths=[None, None, None, 60],
        )
    )
    typer.echo(
        "\n"
        + ngettext(
            "{n} submission graded; wrote {files} files to {out}",
            "{n} submissions graded; wrote {files} files to {out}",
            len(results),
        ).format(n=len(results), files=len(written), out=out)
    )
