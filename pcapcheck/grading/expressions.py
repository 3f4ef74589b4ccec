"""The rubric expression language: CEL (Common Expression Language) through cel-python.

Rubric conditions are CEL expressions — never Python — evaluated against one analysed
capture. :func:`capture_environment` builds the variables (documented in
``docs/grading.md``):

``connections``
    list of maps, one per TCP connection, in connection-id order: ``id``, ``client`` and
    ``server`` (``"ip:port"``, ``"[v6]:port"``), ``client_ip``, ``client_port``,
    ``server_ip``, ``server_port``, ``roles_inferred``, ``handshake``
    (complete/incomplete/refused/none), ``close`` (graceful/half/reset/open/none),
    ``client_state`` / ``server_state`` (final RFC 9293 state or null), ``conn_state`` and
    ``history`` (Zeek's), ``packets`` and ``bytes`` (maps ``{client, server}``: counts and
    payload bytes per sender), ``client_isn`` / ``server_isn`` (absolute, or null),
    ``first_frame`` / ``last_frame``, ``duration`` (seconds, a double), ``findings`` (the
    connection's findings, as in ``findings`` below), ``transitions`` (``{client: [...],
    server: [...]}``, each ``{frame, from, to, cause}``), ``closer`` (``"client"`` /
    ``"server"``: who sent the first FIN; null when nobody did) and ``syn_ack_ok`` (true when
    the engine raised neither HS002 nor HS004 on the connection).
``findings``
    every finding of the capture: maps ``{rule, name, severity, frame, connection,
    message}`` (``frame`` / ``connection`` null for file-level findings).
``packets``
    the number of records in the capture (int).
``file``
    ``{name, format, packets, tcp_packets, malformed, truncated}`` (``truncated``: bool).

Integers are CEL ``int``; CEL does not compare ``int`` with ``double`` (write ``1.0``
against ``duration``). :func:`compile_expression` also rejects, before any capture is
read, names that cannot mean anything here: an unknown variable, an unknown global
function, or a field name that no map of the environment has.
"""

from __future__ import annotations

import difflib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

import celpy
import celpy.evaluation
import re2  # type: ignore[import-untyped]
from celpy import celtypes

from pcapcheck.report.ladder import endpoint_parts

if TYPE_CHECKING:
    from pcapcheck.results import FileResult

__all__ = [
    "FIELDS",
    "MAX_EXPRESSION_CHARS",
    "MAX_TREE_DEPTH",
    "TIME_BUDGET",
    "VARIABLES",
    "BudgetExceeded",
    "Expression",
    "ExpressionError",
    "capture_environment",
    "compile_expression",
    "connection_view",
    "run_with_budget",
    "to_activation",
    "to_python",
]

#: The variables every expression may use.
VARIABLES = ("connections", "findings", "packets", "file")
#: The macros that bind a variable (``list.exists(x, ...)``).
_BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
#: Field names a map of the environment has (for the unknown-field check).
CONNECTION_FIELDS = (
    "id",
    "client",
    "server",
    "client_ip",
    "client_port",
    "server_ip",
    "server_port",
    "roles_inferred",
    "handshake",
    "close",
    "client_state",
    "server_state",
    "conn_state",
    "history",
    "packets",
    "bytes",
    "client_isn",
    "server_isn",
    "first_frame",
    "last_frame",
    "duration",
    "findings",
    "transitions",
    "closer",
    "syn_ack_ok",
)
FINDING_FIELDS = ("rule", "name", "severity", "frame", "connection", "message")
TRANSITION_FIELDS = ("frame", "from", "to", "cause")
FILE_FIELDS = ("name", "format", "packets", "tcp_packets", "malformed", "truncated")
FIELDS = frozenset(CONNECTION_FIELDS + FINDING_FIELDS + TRANSITION_FIELDS + FILE_FIELDS)
_FUNCTIONS = frozenset(celpy.evaluation.base_functions) | {"has", "dyn"}

_ENV = celpy.Environment()

#: Seconds one expression may run on one capture (a check's condition, its evidence, the
#: focus over one connection) before it is stopped and counts as failed (issue #23: a
#: quadratic condition over thousands of connections must not stall a batch). cel-python
#: has no evaluation or cost limit of its own: its evaluator checks a deadline at every node.
TIME_BUDGET = 10.0
#: Characters of one expression at most.
MAX_EXPRESSION_CHARS = 10_000
#: Levels of cel-python's parse tree at most: about ten per nested parenthesis or chained
#: operator, so about 50 nested parentheses (deeper ones overflow Python's stack).
MAX_TREE_DEPTH = 500

_T = TypeVar("_T")


class BudgetExceeded(BaseException):
    """Raised inside an evaluation that ran past its time budget (a BaseException, so
    that cel-python's own ``except Exception`` cannot swallow it)."""


class _Budget(threading.local):
    """The deadline (``time.monotonic()`` seconds) of the evaluation running in this
    thread, or None."""

    deadline: float | None = None


_BUDGET = _Budget()
_visit_tree = celpy.evaluation.Evaluator._visit_tree


def _budgeted_visit_tree(self: Any, tree: Any) -> Any:
    """cel-python's evaluator visits one node of the expression's tree here (lark's
    ``Interpreter._visit_tree``, which ``visit`` and ``visit_children`` both call): past
    the deadline, the evaluation stops with :class:`BudgetExceeded`."""
    deadline = _BUDGET.deadline
    if deadline is not None and time.monotonic() > deadline:
        raise BudgetExceeded
    return _visit_tree(self, tree)


celpy.evaluation.Evaluator._visit_tree = _budgeted_visit_tree  # type: ignore[method-assign]


def run_with_budget(call: Callable[[], _T], seconds: float) -> _T:
    """``call()``, stopped with :class:`BudgetExceeded` once its CEL evaluation runs past
    ``seconds``. The stop is cooperative: cel-python's evaluator checks the deadline at
    every node of the expression's tree it visits (:func:`_budgeted_visit_tree`), so a
    stop lands only inside the evaluation, in any thread, with no signal and no
    asynchronous exception. Nested calls keep the earlier deadline when it is sooner."""
    previous = _BUDGET.deadline
    deadline = time.monotonic() + seconds
    _BUDGET.deadline = deadline if previous is None else min(previous, deadline)
    try:
        return call()
    finally:
        _BUDGET.deadline = previous


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the check's error, not re2's log lines


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2, without logging (cached: a macro applies the same
    pattern to every element). Raises re2.error."""
    return re2.compile(pattern, _RE2_OPTIONS)


def _function_matches(text: Any, pattern: Any) -> Any:
    """CEL ``matches`` (RE2 search), as cel-python's but without re2 logging an invalid
    pattern on stderr."""
    try:
        found = _regex(str(pattern)).search(str(text))
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "backslashreplace")
        return celpy.CELEvalError(
            f"invalid regular expression {str(pattern)!r}: {detail}", type(exc), exc.args
        )
    return celtypes.BoolType(found is not None)


_FUNCTION_OVERRIDES: dict[str, Any] = {"matches": _function_matches}


def _tree_depth(tree: Any) -> int:
    """Levels of a parse tree (iterative: the tree may be deeper than Python's stack)."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_TREE_DEPTH:
            break
        stack.extend((child, depth + 1) for child in node.children if _is_tree(child))
    return deepest


class ExpressionError(ValueError):
    """A CEL expression does not compile or names something unknown. One line, without the
    name of the check (the caller adds it)."""


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression. ``text`` is the source; :meth:`evaluate` runs it."""

    text: str
    program: Any

    def evaluate(
        self, activation: Mapping[str, Any], budget: float | None = None
    ) -> tuple[Any, str | None]:
        """Run against ``activation`` (name → CEL value: :func:`to_activation` of
        :func:`capture_environment`) within ``budget`` seconds (default
        :data:`TIME_BUDGET`). Returns ``(value, None)`` with ``value`` converted to plain
        Python (:func:`to_python`), or ``(None, error)`` with a one-line error when
        evaluation fails (missing field, wrong types, division by zero, an invalid
        regular expression, the time budget exceeded...)."""
        seconds = TIME_BUDGET if budget is None else budget
        try:
            value = run_with_budget(lambda: self.program.evaluate(dict(activation)), seconds)
        except BudgetExceeded:
            return None, (
                f"stopped after {seconds:g} s, the time budget of one expression: it takes "
                "too long on this capture (an expression comparing every connection with "
                "every other grows with the square of their number)"
            )
        except RecursionError:
            return None, "the expression nests too deeply to evaluate"
        except celpy.CELEvalError as exc:
            return None, _eval_error_text(exc)
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if isinstance(value, celpy.CELEvalError):
            return None, _eval_error_text(value)
        return to_python(value), None


def _eval_error_text(exc: Exception) -> str:
    args = exc.args
    text = str(args[0]) if args else str(exc)
    # cel-python appends the whole activation to an undeclared reference.
    text = text.split(" (in activation", 1)[0]
    if len(args) > 2 and args[2] and text in ("invalid_argument", "no such overload"):
        detail = args[2][0] if isinstance(args[2], tuple) else args[2]
        text = f"{text}: {detail}"
    return " ".join(text.split())


def _syntax_error_text(text: str, exc: Exception) -> str:
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if line is None or column is None:
        return f"syntax error ({' '.join(str(exc).split())})"
    lines = text.splitlines()
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    near = src[column - 1 : column + 19].strip()
    where = f"line {line}, column {column}"
    return (
        f"syntax error at {where}, near {near!r}"
        if near
        else f"syntax error at {where}: the expression ends too early"
    )


def _is_tree(node: object) -> TypeGuard[Any]:
    """A node of cel-python's parse tree (a lark ``Tree``: ``data`` and ``children``);
    the leaves are tokens (``str``)."""
    return hasattr(node, "data") and hasattr(node, "children")


def _unknown_names(tree: Any, variables: frozenset[str]) -> list[str]:
    """Problems with the names in a parsed expression (unknown variable, function or
    field), in source order."""
    problems: list[str] = []

    def walk(node: Any, bound: frozenset[str]) -> None:
        if not _is_tree(node):
            return
        kind = node.data
        if kind == "ident":
            name = str(node.children[0])
            if name not in bound and name not in variables:
                problems.append(
                    f"unknown name {name!r}"
                    + _suggest(
                        name,
                        variables | bound,
                        "the variables are: " + ", ".join(sorted(variables)),
                    )
                )
            return
        if kind == "ident_arg":
            name = str(node.children[0])
            if name not in _FUNCTIONS:
                problems.append(f"unknown function {name}()" + _suggest(name, _FUNCTIONS, ""))
            for child in node.children[1:]:
                walk(child, bound)
            return
        if kind == "member_dot":
            target, name = node.children[0], node.children[1]
            walk(target, bound)
            if isinstance(name, str) and name not in FIELDS:
                problems.append(
                    f"unknown field .{name}"
                    + _suggest(str(name), FIELDS, "fields: see docs/grading.md")
                )
            return
        if kind == "member_dot_arg":
            target, method = node.children[0], str(node.children[1])
            walk(target, bound)
            args = node.children[2] if len(node.children) > 2 else None
            inner = bound
            if method in _BINDING_MACROS and _is_tree(args) and args.children:
                var = _plain_ident(args.children[0])
                if var is not None:
                    inner = bound | {var}
                    for child in args.children[1:]:
                        walk(child, inner)
                    return
            walk(args, inner)
            return
        for child in node.children:
            walk(child, bound)

    walk(tree, frozenset())
    return problems


def _suggest(name: str, known: Iterable[str], fallback: str) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" ({fallback})" if fallback else ""


def _plain_ident(node: Any) -> str | None:
    """The name when ``node`` (an ``expr`` subtree) is just an identifier."""
    while _is_tree(node) and len(node.children) == 1 and node.data != "ident":
        node = node.children[0]
    if _is_tree(node) and node.data == "ident":
        return str(node.children[0])
    return None


def compile_expression(text: str, extra_variables: tuple[str, ...] = ()) -> Expression:
    """Compile CEL ``text``. ``extra_variables``: names bound besides :data:`VARIABLES`
    (``("c",)`` for a per-connection predicate). Raises :class:`ExpressionError` (one
    line) for a syntax error or an unknown variable, global function or field name."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"longer than {MAX_EXPRESSION_CHARS:,} characters ({len(text):,})")
    too_deep = (
        f"nested too deeply (more than about {MAX_TREE_DEPTH // 10} levels of "
        "parentheses or chained operators)"
    )
    try:
        ast = _ENV.compile(text)
    except celpy.CELParseError as exc:
        raise ExpressionError(_syntax_error_text(text, exc)) from None
    except RecursionError:
        raise ExpressionError(too_deep) from None
    except Exception as exc:
        raise ExpressionError(f"syntax error ({' '.join(str(exc).split())})") from None
    if _tree_depth(ast) > MAX_TREE_DEPTH:
        raise ExpressionError(too_deep)
    problems = _unknown_names(ast, frozenset(VARIABLES) | frozenset(extra_variables))
    if problems:
        raise ExpressionError(problems[0])
    return Expression(text, _ENV.program(ast, _FUNCTION_OVERRIDES))


def to_python(value: Any) -> Any:
    """A CEL value as plain Python (bool, int, float, str, None, list, dict)."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, (celtypes.IntType, celtypes.UintType)):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    if isinstance(value, celtypes.MapType):
        return {to_python(k): to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    return value


def _finding_map(f: Any) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "name": f.name,
        "severity": f.severity,
        "frame": f.frame,
        "connection": f.connection,
        "message": f.message,
    }


def _closer(transitions: Mapping[str, list[Mapping[str, Any]]]) -> str | None:
    """The side that sent the first FIN: its move into FIN-WAIT-1 comes first."""
    firsts = []
    for order, side in enumerate(("client", "server")):
        frames = [t["frame"] for t in transitions.get(side, []) if t["to"] == "FIN-WAIT-1"]
        if frames:
            firsts.append((min(frames), order, side))
    return min(firsts)[2] if firsts else None


def connection_view(
    summary: Mapping[str, Any],
    result: FileResult,
    findings: Mapping[Any, list[Any]] | None = None,
    bad_handshakes: set[Any] | None = None,
) -> dict[str, Any]:
    """The CEL map of one connection summary of ``result`` (plain Python values; see the
    module docstring for the fields). ``findings`` (connection id → its findings) and
    ``bad_handshakes`` (ids of connections with HS002 or HS004), when given, spare a
    scan of every finding and event per connection (:func:`capture_environment` passes
    them: its time is linear in connections plus findings)."""
    cid = summary["id"]
    client_ip, client_port = endpoint_parts(summary["client"])
    server_ip, server_port = endpoint_parts(summary["server"])
    transitions = summary.get("transitions") or {"client": [], "server": []}
    if bad_handshakes is None:
        bad_handshakes = _bad_handshakes(result)
    bad_handshake = cid in bad_handshakes
    own = (
        findings.get(cid, [])
        if findings is not None
        else [f for f in result.findings if f.connection == cid]
    )
    return {
        "id": cid,
        "client": summary["client"],
        "server": summary["server"],
        "client_ip": client_ip,
        "client_port": client_port,
        "server_ip": server_ip,
        "server_port": server_port,
        "roles_inferred": summary.get("roles_inferred", False),
        "handshake": summary["handshake"],
        "close": summary["close"],
        "client_state": summary.get("client_state"),
        "server_state": summary.get("server_state"),
        "conn_state": summary.get("conn_state"),
        "history": summary.get("history"),
        "packets": dict(summary["packets"]),
        "bytes": dict(summary["bytes"]),
        "client_isn": summary.get("client_isn"),
        "server_isn": summary.get("server_isn"),
        "first_frame": summary["first_frame"],
        "last_frame": summary["last_frame"],
        "duration": float(summary.get("duration") or 0.0),
        "findings": [_finding_map(f) for f in own],
        "transitions": {
            side: [dict(t) for t in transitions.get(side, [])] for side in ("client", "server")
        },
        "closer": _closer(transitions),
        "syn_ack_ok": not bad_handshake,
    }


def _bad_handshakes(result: FileResult) -> set[Any]:
    """Ids of the connections on which HS002 or HS004 was raised."""
    return {e.connection for e in result.events if e.rule in ("HS002", "HS004")}


def capture_environment(result: FileResult, name: str | None = None) -> dict[str, Any]:
    """The plain-Python environment of one analysed capture: ``{"connections",
    "findings", "packets", "file"}`` (see the module docstring). ``name``: the file name
    shown as ``file.name`` (default: the result's path)."""
    by_connection: dict[Any, list[Any]] = {}
    for f in result.findings:
        by_connection.setdefault(f.connection, []).append(f)
    bad = _bad_handshakes(result)
    return {
        "connections": [connection_view(c, result, by_connection, bad) for c in result.connections],
        "findings": [_finding_map(f) for f in result.findings],
        "packets": result.packets,
        "file": {
            "name": name if name is not None else result.path,
            "format": result.format,
            "packets": result.packets,
            "tcp_packets": result.tcp_packets,
            "malformed": result.malformed,
            "truncated": bool(result.truncated),
        },
    }


def to_activation(environment: Mapping[str, Any]) -> dict[str, Any]:
    """Plain-Python variables → CEL values, for :meth:`Expression.evaluate`."""
    return {key: celpy.json_to_cel(value) for key, value in environment.items()}
