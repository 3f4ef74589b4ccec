"""What grading one submission produces: :class:`CheckResult` per rubric check or answer,
gathered in a :class:`StudentResult`. Points are plain numbers (int or float)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pcapcheck.report.ladder_model import Ladder


@dataclass
class AnswerRow:
    """One answered item: ``item`` (e.g. ``"after frame 2, server"``), the ``expected``
    and ``given`` values as text, ``ok``, the ``explanation`` shown when wrong and the
    ``frame`` to open in Wireshark for it (None when there is none)."""

    item: str
    expected: str
    given: str
    ok: bool
    explanation: str = ""
    frame: int | None = None


@dataclass
class CheckResult:
    """The outcome of one rubric check or one answer.

    ``id``: the check id, or ``answer_<key>`` for an answer; ``score`` out of ``points``;
    ``expected``: the rubric's feedback (what was expected); ``shows``: Markdown lines of
    what the capture shows; ``frames``: frame numbers to open in Wireshark;
    ``connections``: ids of the connections concerned (their ladders go in the
    feedback); ``error``: why the check could not be evaluated; ``rows``: answered items
    (answers only); ``scored``: false for an answer the rubric gives no points.
    """

    id: str
    title: str
    points: float
    score: float
    passed: bool
    expected: str = ""
    shows: list[str] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    error: str | None = None
    rows: list[AnswerRow] = field(default_factory=list)
    scored: bool = True
    visibility: str = "visible"


@dataclass
class StudentResult:
    """One graded submission.

    ``student``: the id (file or folder name); ``submission``: the path given;
    ``capture`` / ``answers_file``: the files used (None when absent); ``problem``: why
    the submission could not be graded (bad submission: every check scores 0);
    ``checks``: rubric checks then answers; ``ladders``: connection id → ladder text;
    ``ladder_models``: connection id → the same ladders' model
    (:class:`~pcapcheck.report.ladder_model.Ladder`, drawn as SVG in the HTML feedback);
    ``connections``: the CEL connection maps; ``packets``: records in the capture;
    ``shared_with``: other students whose capture holds the same connection (same
    client and server ISN pair), filled by the gradebook.
    """

    student: str
    submission: Path
    capture: Path | None = None
    answers_file: Path | None = None
    problem: str | None = None
    checks: list[CheckResult] = field(default_factory=list)
    ladders: dict[int, str] = field(default_factory=dict)
    ladder_models: dict[int, Ladder] = field(default_factory=dict)
    connections: list[dict[str, Any]] = field(default_factory=list)
    packets: int = 0
    shared_with: list[str] = field(default_factory=list)

    @property
    def scored(self) -> list[CheckResult]:
        """The results that count: every check and the scored answers."""
        return [c for c in self.checks if c.scored]

    @property
    def score(self) -> int | float:
        return clean_points(sum(c.score for c in self.scored))

    @property
    def max_score(self) -> int | float:
        return clean_points(sum(c.points for c in self.scored))

    @property
    def isn_pairs(self) -> set[tuple[int, int]]:
        """The (client ISN, server ISN) pairs of the connections where both are known."""
        return {
            (c["client_isn"], c["server_isn"])
            for c in self.connections
            if c.get("client_isn") is not None and c.get("server_isn") is not None
        }


def clean_points(value: float) -> int | float:
    """Points rounded to 2 decimals, as an int when whole (``3.0`` → ``3``)."""
    value = round(float(value), 2)
    return int(value) if value == int(value) else value


def num(value: float) -> str:
    """Points as text: ``3``, ``2.1`` (never ``3.0``)."""
    return str(clean_points(value))
