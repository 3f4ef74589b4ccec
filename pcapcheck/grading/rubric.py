"""Grading rubrics: YAML files validated by ``pcapcheck/schemas/rubric.schema.json``.

A rubric has a ``title``, an optional ``description`` and ``focus`` (a CEL predicate over
one connection ``c``: the connection the lab is about), a list of ``checks`` — each with
``id``, ``title``, ``points``, a CEL ``condition``, the ``feedback`` shown when it fails,
an optional CEL ``evidence`` expression and Gradescope ``visibility`` — and optional
``answers`` points (see :mod:`pcapcheck.grading.answers`). Every CEL expression is
compiled when the rubric is loaded: one that does not compile, or names an unknown
variable, function or field, is a rubric error naming the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import jsonschema.protocols

from pcapcheck.catalog.yamlfile import display_path, read_yaml_mapping, schema_validator
from pcapcheck.grading.expressions import Expression, ExpressionError, compile_expression

__all__ = [
    "ANSWER_KEYS",
    "RESERVED_IDS",
    "SCHEMA_PATH",
    "Check",
    "Rubric",
    "RubricError",
    "load_rubric",
]

#: The JSON Schema every rubric is validated against.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "rubric.schema.json"
#: The answers a student may give (and a rubric may score), in feedback order.
ANSWER_KEYS = ("client_isn", "server_isn", "synack_ack", "states")
#: Gradebook columns a check id may not take.
RESERVED_IDS = frozenset({"student", "score", "max", "shared_with", "problem"})


class RubricError(Exception):
    """The rubric cannot be used. One line naming the file and the field or check, e.g.
    ``lab.yaml: check 'close': condition: unknown field .closr (did you mean closer?)``."""


@dataclass(frozen=True)
class Check:
    """One rubric check. ``points`` > 0; ``condition`` and ``evidence`` are compiled CEL."""

    id: str
    title: str
    points: float
    condition: Expression
    feedback: str
    evidence: Expression | None = None
    visibility: str = "visible"


@dataclass(frozen=True)
class Rubric:
    """A loaded rubric. ``answers``: points per answer key (only the scored ones)."""

    path: Path
    title: str
    checks: tuple[Check, ...]
    description: str = ""
    focus: Expression | None = None
    answers: dict[str, float] = field(default_factory=dict)

    @property
    def max_points(self) -> float:
        """Checks' points plus scored answers' points."""
        return sum(c.points for c in self.checks) + sum(self.answers.values())

    @property
    def columns(self) -> list[str]:
        """The scored items' ids, in feedback order: the check ids, then
        ``answer_<key>`` for each scored answer."""
        return [c.id for c in self.checks] + [
            f"answer_{k}" for k in ANSWER_KEYS if k in self.answers
        ]


def _validator() -> jsonschema.protocols.Validator:
    return schema_validator(SCHEMA_PATH)


def _compile(where: str, what: str, text: str, extra: tuple[str, ...] = ()) -> Expression:
    try:
        return compile_expression(text, extra)
    except ExpressionError as exc:
        raise RubricError(f"{where}: {what}: {exc}") from None


def load_rubric(path: str | Path) -> Rubric:
    """Read, validate and compile a rubric file.

    Raises :class:`RubricError` (one line) when the file is unreadable, not YAML, not a
    mapping, fails the schema, repeats a check id, uses a reserved id (``student``,
    ``score``, ``max``, ``shared_with``, ``problem``, ``answer_*``), or holds a CEL
    expression that does not compile.
    """
    path = Path(path)
    where = display_path(path)
    data = read_yaml_mapping(
        path, where, _validator(), RubricError, "a mapping (title, checks, ...)"
    )

    focus = _compile(where, "focus", data["focus"], ("c",)) if "focus" in data else None
    checks: list[Check] = []
    seen: set[str] = set()
    for item in data["checks"]:
        cid = item["id"]
        label = f"check {cid!r}"
        if cid in seen:
            raise RubricError(f"{where}: {label}: the id is used by another check")
        if cid in RESERVED_IDS or cid.startswith("answer_"):
            raise RubricError(f"{where}: {label}: the id is reserved for a gradebook column")
        seen.add(cid)
        condition = _compile(where, f"{label}: condition", item["condition"])
        evidence = (
            _compile(where, f"{label}: evidence", item["evidence"]) if "evidence" in item else None
        )
        checks.append(
            Check(
                cid,
                item["title"],
                item["points"],
                condition,
                item["feedback"].strip(),
                evidence,
                item.get("visibility", "visible"),
            )
        )
    return Rubric(
        path=path,
        title=data["title"],
        checks=tuple(checks),
        description=(data.get("description") or "").strip(),
        focus=focus,
        answers=dict(data.get("answers") or {}),
    )
