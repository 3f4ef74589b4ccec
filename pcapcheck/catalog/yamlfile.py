"""Reading pcapcheck's YAML files (rules, rubrics, answers) and reporting their errors.

Every YAML file the user gives is parsed with PyYAML's safe loader (plain data only),
validated with :mod:`jsonschema` against a schema in ``pcapcheck/schemas/``, and any
problem becomes one line naming the file and the field, e.g.
``rules/HS002.yaml: severity: 'fatal' is not one of 'error', 'warning', 'info'``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pcapcheck.capture.inputs import display_path  # re-exported: how YAML errors name a file

if TYPE_CHECKING:
    import jsonschema.exceptions  # imported where a schema is checked (it takes 50 ms)
    import jsonschema.protocols
    import yaml  # imported where a YAML file is read (about 18 ms)

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_YAML_CHARS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "check_yaml_bounds",
    "display_path",
    "load_yaml",
    "read_yaml_mapping",
    "read_yaml_text",
    "schema_error_text",
    "schema_validator",
    "yaml_error",
    "yaml_problem",
]


#: Bounds on one YAML document, checked on libyaml's event stream before anything is
#: built (issue #23: an alias bomb, "billion laughs", is a small file whose aliases
#: expand to billions of nodes; deep nesting crashes libyaml's recursive composer).
#: Nodes and scalar characters are counted with every alias expanded.
MAX_YAML_NODES = 100_000
MAX_YAML_CHARS = 10_000_000
MAX_YAML_DEPTH = 100
#: Bytes of a YAML file read at most (a larger file is refused before parsing).
MAX_YAML_BYTES = 8 * 1024 * 1024


@cache
def _bound_error() -> type[yaml.YAMLError]:
    import yaml

    class YAMLBoundError(yaml.YAMLError):
        """A YAML document past :data:`MAX_YAML_NODES`, :data:`MAX_YAML_CHARS` or
        :data:`MAX_YAML_DEPTH`, or with a recursive alias."""

        def __init__(self, problem: str) -> None:
            super().__init__(problem)
            self.problem = problem

    return YAMLBoundError


def check_yaml_bounds(text: str) -> None:
    """Raise a ``yaml.YAMLError`` (one line, ``problem``) when the document in ``text``,
    its aliases expanded, has more than :data:`MAX_YAML_NODES` nodes, more than
    :data:`MAX_YAML_CHARS` characters of scalars, nesting deeper than
    :data:`MAX_YAML_DEPTH`, or an alias inside its own anchor (a cycle). One pass over
    libyaml's events (iterative; memory is one counter per open anchor and nesting
    level); a syntax error is left to the loader."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    error = _bound_error()
    open_anchors: set[str] = set()
    sizes: dict[str, tuple[int, int]] = {}
    stack: list[list[Any]] = []  # per open collection: [nodes, chars, anchor]
    nodes = chars = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.CollectionStartEvent):
                if len(stack) >= MAX_YAML_DEPTH:
                    raise error(f"nested more than {MAX_YAML_DEPTH} levels deep")
                if event.anchor:
                    open_anchors.add(event.anchor)
                stack.append([1, 0, event.anchor])
                nodes += 1
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                n, c, anchor = stack.pop()
                if anchor:
                    open_anchors.discard(anchor)
                    sizes[anchor] = (n, c)
            elif isinstance(event, yaml.ScalarEvent):
                n, c = 1, len(event.value)
                if event.anchor:
                    sizes[event.anchor] = (n, c)
                nodes, chars = nodes + n, chars + c
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor in open_anchors:
                    raise error(f"the alias *{event.anchor} is inside its own anchor (a cycle)")
                n, c = sizes.get(event.anchor or "", (0, 0))
                nodes, chars = nodes + n, chars + c
            else:
                continue
            if stack:
                stack[-1][0] += n
                stack[-1][1] += c
            if nodes > MAX_YAML_NODES:
                raise error(
                    f"more than {MAX_YAML_NODES:,} nodes once its aliases are expanded "
                    "(an alias bomb?)"
                )
            if chars > MAX_YAML_CHARS:
                raise error(
                    f"more than {MAX_YAML_CHARS:,} characters once its aliases are expanded "
                    "(an alias bomb?)"
                )
    except yaml.YAMLError as exc:
        # PyYAML >= 6.0.4 has a nesting limit of its own, which may come first
        if "nesting depth" in str(getattr(exc, "problem", None) or ""):
            raise error(f"nested more than {MAX_YAML_DEPTH} levels deep") from None
        raise
    except RecursionError:
        raise error(f"nested more than {MAX_YAML_DEPTH} levels deep") from None


def load_yaml(text: str) -> Any:
    """``text`` parsed by libyaml's safe loader when PyYAML was built with it (several
    times faster), else by the pure-Python SafeLoader: both construct only plain data,
    never objects. The document is first held to :func:`check_yaml_bounds` (alias
    bombs, cycles, deep nesting). Raises yaml.YAMLError. yaml is imported here, on
    first use: a run with the stamped shipped rules and no YAML configuration never
    imports it (issue #4)."""
    import yaml

    check_yaml_bounds(text)
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def read_yaml_text(path: Path) -> str:
    """The UTF-8 text of the YAML file ``path``, read only up to :data:`MAX_YAML_BYTES`.
    Raises OSError (``strerror`` set: a larger file, a folder, a device that never
    ends) or UnicodeDecodeError."""
    with open(path, "rb") as stream:
        data = stream.read(MAX_YAML_BYTES + 1)
    if len(data) > MAX_YAML_BYTES:
        raise OSError(0, f"larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB")
    return data.decode("utf-8")


def yaml_error() -> type[yaml.YAMLError]:
    """``yaml.YAMLError`` (the class :func:`load_yaml` raises)."""
    import yaml

    return yaml.YAMLError


@cache
def schema_validator(schema_path: Path) -> jsonschema.protocols.Validator:
    """The jsonschema validator for the JSON Schema file at ``schema_path`` (the draft it
    declares), built once per path. Raises jsonschema.SchemaError for a bad schema."""
    import jsonschema.validators

    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error as one line: ``line N: problem`` when it has a position."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    problem = " ".join(str(problem).split())
    if mark is not None:
        return f"line {mark.line + 1}: {problem}"
    return problem


def schema_error_text(error: jsonschema.exceptions.ValidationError) -> str:
    """``field: problem`` for the most relevant schema error."""
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        missing = [name for name in _listed(error.validator_value) if name not in instance]
        name = missing[0] if missing else "?"
        return f"{path + '.' if path else ''}{name}: required field is missing"
    if error.validator == "additionalProperties":
        schema = error.schema
        known = sorted(schema.get("properties", {})) if isinstance(schema, Mapping) else []
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        extra = sorted(str(key) for key in instance if key not in known)
        name = extra[0] if extra else "?"
        allowed = ", ".join(known) if known else "none"
        return f"{path + '.' if path else ''}{name}: unknown field (allowed: {allowed})"
    if error.validator == "enum":
        choices = ", ".join(repr(choice) for choice in _listed(error.validator_value))
        return f"{path or '(top level)'}: {error.instance!r} is not one of {choices}"
    if error.validator == "propertyNames":
        return f"{path or '(top level)'}: {error.instance!r}: {error.message}"
    return f"{path or '(top level)'}: {error.message}"


def _listed(value: object) -> list[Any]:
    """A schema keyword's list value (``required``, ``enum``); ``[]`` for anything else
    (jsonschema types it as possibly unset)."""
    return list(value) if isinstance(value, (list, tuple)) else []


def read_yaml_mapping(
    path: Path,
    where: str,
    validator: Any,
    error: type[Exception],
    expected: str,
    empty_ok: bool = False,
) -> dict[str, Any]:
    """Read ``path`` as YAML that must be ``expected`` (a mapping) valid for the JSON
    Schema ``validator``. Raises ``error`` with one line starting with ``where`` when the
    file is unreadable, not YAML, not a mapping, or fails the schema. An empty file is
    ``{}`` when ``empty_ok``."""
    try:
        text = read_yaml_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"{where}: cannot read the file ({reason})") from None
    try:
        data: Any = load_yaml(text)
    except _bound_error() as exc:
        raise error(f"{where}: refused: {yaml_problem(exc)}") from None
    except yaml_error() as exc:
        raise error(f"{where}: not valid YAML ({yaml_problem(exc)})") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise error(f"{where}: expected {expected}, got {kind}")
    import jsonschema.exceptions

    problem = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if problem is not None:
        raise error(f"{where}: {schema_error_text(problem)}")
    return data
