"""Grading student captures against a rubric (``pcapcheck grade``).

Stages, one module each:

- :mod:`~pcapcheck.grading.rubric`: load and validate a rubric (YAML, JSON Schema), compile
  its CEL expressions;
- :mod:`~pcapcheck.grading.expressions`: the CEL environment of one analysed capture
  (``connections``, ``findings``, ``packets``, ``file``) and compilation with name checks;
- :mod:`~pcapcheck.grading.answers`: the student's answers file, checked and explained;
- :mod:`~pcapcheck.grading.grader`: grade one submission (checks, answers, ladders);
- :mod:`~pcapcheck.grading.feedback`: the Markdown feedback of one student;
- :mod:`~pcapcheck.grading.gradebook`: batches, integrity flag, gradebook CSV, Gradescope
  ``results.json``.

The user-facing description (rubric format, CEL variables, outputs) is docs/grading.md.
"""

from pcapcheck.grading.feedback import render_feedback
from pcapcheck.grading.gradebook import discover, grade_all, gradebook_csv, gradescope_results
from pcapcheck.grading.grader import grade_submission
from pcapcheck.grading.rubric import Rubric, RubricError, load_rubric

__all__ = [
    "Rubric",
    "RubricError",
    "discover",
    "grade_all",
    "grade_submission",
    "gradebook_csv",
    "gradescope_results",
    "load_rubric",
    "render_feedback",
]
