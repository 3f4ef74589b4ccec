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
    "display_path",
    "load_yaml",
    "read_yaml_mapping",
    "schema_error_text",
    "schema_validator",
    "yaml_error",
    "yaml_problem",
]


def load_yaml(text: str) -> Any:
    """``text`` parsed by libyaml's safe loader when PyYAML was built with it (several
    times faster), else by the pure-Python SafeLoader: both construct only plain data,
    never objects. Raises yaml.YAMLError. yaml is imported here, on first use: a run
    with the stamped shipped rules and no YAML configuration never imports it (issue
    #4)."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


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
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"{where}: cannot read the file ({reason})") from None
    try:
        data: Any = load_yaml(text)
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
