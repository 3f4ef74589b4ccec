"""The rule catalogue: ``rules/*.yaml`` → :class:`Rule`; rule selection; Events → Findings.

Each rule lives in its own YAML file named after its id (``rules/HS002.yaml``), declared
yamllint-style: id, name, severity, default on/off, message template, parameters with
typed defaults, plus the documentation (summary, RFC sections, ruff-style explanation,
equivalents in other tools, sample captures). Files are validated against
``pcapcheck/schemas/rule.schema.json`` (JSON Schema draft 2020-12) and a few checks the
schema cannot express (file name = id, message template fields).

Where the rules come from (:func:`default_rules_dir`): the ``_data/rules`` directory inside
the installed package (the wheel force-includes ``rules/`` there), else the repository's
top-level ``rules/``. :func:`load_catalog` loads that directory, then each extra directory
(``--rules``): a rule there with a new id is added, one with an existing id replaces the
default rule wholly.

Selection (:meth:`Catalog.select`) follows ruff:

* a selector is ``ALL``, a full rule id (``CL010``) or an id prefix (``HS``, ``HS0``,
  ``CL00``); selectors are case-insensitive; one that matches no rule is an error;
* with no ``select`` the default set is used: every rule with ``enabled: true``;
  with ``select`` only what it matches (``select=[]`` selects nothing);
* ``ignore`` removes rules; when a rule is matched by both lists, the more specific
  selector wins (longer prefix; a full id is the most specific, ``ALL`` the least), and at
  equal specificity ``ignore`` wins — so ``select=["CL"], ignore=["CL010"]`` drops CL010
  and ``select=["CL010"], ignore=["CL"]`` keeps it;
* a rule with ``enabled: false`` (CP004 bad-checksum: checksum offload makes locally
  captured checksums wrong) is not switched on by a prefix: only its full id or ``ALL``
  selects it. ``select=["CP"]`` leaves CP004 off; ``select=["CP004"]`` turns it on.

Messages (:meth:`Catalog.to_finding`, :func:`format_message`) are the rule's
``str.format`` template filled from ``Event.data`` by a formatter that never raises: a
missing field renders as ``?``, ``None`` as ``-``, a bool as ``yes``/``no``, and a value
that does not fit the format spec falls back to ``str(value)``.

``python -m pcapcheck.catalog.rules --markdown`` prints the README catalogue table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import string
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pcapcheck.i18n import DEFAULT_LANGUAGE, get_language
from pcapcheck.i18n import gettext as _
from pcapcheck.model import COMMON_EVENT_FIELDS, EVENT_FIELDS, Event, Finding

if TYPE_CHECKING:
    import jsonschema.protocols
from pcapcheck.catalog.yamlfile import (
    display_path,
    load_yaml,
    read_yaml_text,
    schema_error_text,
    schema_validator,
    yaml_error,
    yaml_problem,
)

__all__ = [
    "PARSED_NAME",
    "README_END",
    "README_START",
    "SCHEMA_PATH",
    "SEVERITIES",
    "STAMP_NAME",
    "TEXT_FIELDS",
    "Catalog",
    "CatalogError",
    "Rule",
    "allowed_fields",
    "default_rules_dir",
    "format_message",
    "load_catalog",
    "load_rule_file",
    "main",
    "replace_readme_table",
    "rules_digest",
    "stamped",
    "template_fields",
]

#: The severities, most severe first.
SEVERITIES = ("error", "warning", "info")
#: The JSON Schema every rule file is validated against.
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "rule.schema.json"
#: File suffixes read as rule files.
RULE_SUFFIXES = (".yaml", ".yml")
#: The markers around the generated table in README.md.
README_START = "<!-- rules:start -->"
README_END = "<!-- rules:end -->"

#: The fields of a rule's text that a rule file may translate (``translations: ko: ...``).
TEXT_FIELDS = ("summary", "message", "explanation")

_PARAM_TYPES = ("number", "integer", "boolean", "string")
#: The range a number or integer parameter may declare (the rule schema's names).
_PARAM_BOUNDS = ("minimum", "exclusiveMinimum", "maximum")


def _out_of_range(spec: Mapping[str, Any], value: Any) -> str | None:
    """Why ``value`` is outside the range ``spec`` (a parameter's declaration) gives,
    as ``"expected a number > 0, got -1"``; None when it is inside (or not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    kind = spec.get("type", "number")
    low, above, high = (spec.get(key) for key in _PARAM_BOUNDS)
    if low is not None and not value >= low:
        return f"expected {'an' if kind == 'integer' else 'a'} {kind} >= {low}, got {value!r}"
    if above is not None and not value > above:
        return f"expected {'an' if kind == 'integer' else 'a'} {kind} > {above}, got {value!r}"
    if high is not None and not value <= high:
        return f"expected {'an' if kind == 'integer' else 'a'} {kind} <= {high}, got {value!r}"
    return None


_ID_RE = re.compile(r"^[A-Z]{2,3}[0-9]{3}$")


class CatalogError(Exception):
    """A rule file, a rule directory, a selector, a parameter or an override is invalid.

    The message is one line naming the file (or rule) and the field, e.g.
    ``rules/HS002.yaml: severity: 'fatal' is not one of 'error', 'warning', 'info'``.
    """


@dataclass(frozen=True)
class Rule:
    """One catalogue rule, as declared in ``rules/<id>.yaml``.

    ``params`` maps a parameter name to ``{"default": ..., "type": "number" | "integer" |
    "boolean" | "string", "description": ...}`` plus, for a number, the range it declares
    (``minimum``, ``exclusiveMinimum``, ``maximum``, when given); ``equivalents`` maps ``wireshark`` /
    ``zeek`` / ``suricata`` to a description of the closest condition there (only the
    tools that have one); ``samples`` maps ``trigger`` / ``clean`` to capture paths
    relative to ``sample_pcaps/``. ``source`` is the file the rule was loaded from.
    """

    id: str
    name: str
    severity: str
    enabled: bool
    summary: str
    message: str
    rfc: str
    explanation: str
    equivalents: dict[str, str] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    source: Path = Path()
    #: language -> {"summary" | "message" | "explanation": text} (the rule file's
    #: ``translations``; a field missing there is English, see :meth:`text`).
    translations: dict[str, dict[str, str]] = field(default_factory=dict)

    def text(self, field: str, lang: str | None = None) -> str:
        """The rule's ``field`` (``"summary"``, ``"message"`` — the ``str.format``
        template — or ``"explanation"``, Markdown) in ``lang`` (default: the current
        language, :func:`pcapcheck.i18n.get_language`), falling back to English when the
        rule has no text in that language. Raises ``ValueError`` for another field."""
        if field not in TEXT_FIELDS:
            raise ValueError(f"not a rule text field: {field!r} (one of {', '.join(TEXT_FIELDS)})")
        if lang is None:
            lang = get_language()
        if lang != DEFAULT_LANGUAGE:
            translated = self.translations.get(lang, {}).get(field)
            if translated:
                return translated
        text: str = getattr(self, field)
        return text


# --------------------------------------------------------------------------- paths


def default_rules_dir() -> Path:
    """The directory holding the shipped rules.

    ``<package>/_data/rules`` when it exists (an installed wheel, where ``rules/`` is
    force-included), else the repository's top-level ``rules/`` (the parent of the
    package directory).
    """
    package_dir = Path(__file__).resolve().parent.parent  # pcapcheck/catalog/rules.py
    installed = package_dir / "_data" / "rules"
    if installed.is_dir():
        return installed
    return package_dir.parent / "rules"


# --------------------------------------------------------------------------- loading


def _validator() -> jsonschema.protocols.Validator:
    return schema_validator(SCHEMA_PATH)


def template_fields(template: str) -> list[str]:
    """The base names of the replacement fields of a ``str.format`` template.

    ``"{ack} vs {expected:>5} {a.b}"`` → ``["ack", "expected", "a"]``; fields nested in a
    format spec are included. Raises ``ValueError`` for a malformed template and for
    positional fields (``{}``, ``{0}``).
    """
    names: list[str] = []
    for _literal, name, spec, _conversion in string.Formatter().parse(template):
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]  # "a.b" / "a[0]" -> "a"
        if base == "" or base.isdigit():
            raise ValueError(f"positional field {{{name}}} is not allowed; name the field")
        names.append(base)
        if spec:
            names.extend(template_fields(spec))
    return names


def allowed_fields(rule_id: str) -> tuple[str, ...]:
    """The event-data keys a rule's message may use: the common ones plus the rule's own
    (:data:`pcapcheck.model.EVENT_FIELDS`); only the common ones for an id unknown to
    the engine."""
    return tuple(COMMON_EVENT_FIELDS) + tuple(EVENT_FIELDS.get(rule_id, ()))


#: Beside the shipped rules: the SHA-256 (:func:`rules_digest`) of the rule files and of
#: the schema, written by ``scripts/stamp_rules.py`` once every shipped rule passed the
#: schema. While it matches, the shipped rules are loaded without the schema check
#: (jsonschema is then not even imported: about 65 ms of every run, issue #4); every
#: other check is made, and a rule file given with ``--rules``, or a shipped one once
#: edited, is checked in full.
STAMP_NAME = ".validated"


def rules_digest(location: Path) -> str:
    """The SHA-256 (hex) of the rule files of ``location`` (names and bytes, in name
    order) and of :data:`SCHEMA_PATH`'s bytes. Raises OSError for an unreadable file."""
    digest = hashlib.sha256(SCHEMA_PATH.read_bytes())
    for path in _rule_files(location):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


#: Beside the shipped rules and written with :data:`STAMP_NAME`: the rule files' YAML
#: data as JSON, ``{"digest": rules_digest, "rules": {file name: data}}``. While its
#: digest is the rules', the shipped rules are built from it: yaml is then not imported
#: nor the files parsed (about 25 ms of every run, issue #4). Only files whose data is
#: the same once through JSON are in it (the others are parsed).
PARSED_NAME = ".parsed.json"


def stamped(location: Path) -> bool:
    """Whether ``location``'s :data:`STAMP_NAME` file holds its :func:`rules_digest`
    (its rules passed the schema as they are now)."""
    return _stamp(location) is not None


def _stamp(location: Path) -> str | None:
    """The digest of ``location``'s rules when :func:`stamped`, else None."""
    try:
        stamp = (location / STAMP_NAME).read_text(encoding="ascii").strip()
        if location.is_dir() and stamp == rules_digest(location):
            return stamp
    except (OSError, UnicodeDecodeError):
        pass
    return None


def parsed_rules(location: Path, digest: str) -> dict[str, Any]:
    """The rule data of ``location``'s :data:`PARSED_NAME` by file name, when it was
    written for the rules of ``digest``; else ``{}`` (missing, unreadable, stale)."""
    try:
        with open(location / PARSED_NAME, "rb") as fh:
            parsed = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(parsed, dict) or parsed.get("digest") != digest:
        return {}
    rules = parsed.get("rules")
    return rules if isinstance(rules, dict) else {}


def parsed_document(location: Path, digest: str) -> dict[str, Any]:
    """What ``scripts/stamp_rules.py`` writes to :data:`PARSED_NAME` for the rules of
    ``location`` (``digest``: their :func:`rules_digest`): every rule file whose YAML
    data JSON keeps as it is. Raises :class:`CatalogError` as :func:`parse_rule_file`."""
    rules = {}
    for path in _rule_files(location):
        data = parse_rule_file(path)
        if json.loads(json.dumps(data)) == data:
            rules[path.name] = data
    return {"digest": digest, "rules": rules}


def load_rule_file(path: Path, check_schema: bool = True) -> Rule:
    """Read, validate and return one rule file.

    Raises :class:`CatalogError` (naming the file and the field) when the file is not
    readable UTF-8, not valid YAML, not a mapping, fails the schema (not checked
    without ``check_schema``: a stamped file, :data:`STAMP_NAME`), has an ``id`` other
    than its file name, or its message template is malformed or uses a field the rule's
    events do not carry.
    """
    path = Path(path)
    return _rule_from_data(path, parse_rule_file(path), check_schema)


def parse_rule_file(path: Path) -> Any:
    """The YAML data of a rule file (plain data, not checked). Raises
    :class:`CatalogError` when the file is not readable UTF-8 or not valid YAML."""
    where = display_path(path)
    try:
        text = read_yaml_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{where}: cannot read the file ({exc})") from None
    try:
        return load_yaml(text)
    except yaml_error() as exc:
        raise CatalogError(f"{where}: not valid YAML ({yaml_problem(exc)})") from None


def _rule_from_data(path: Path, data: Any, check_schema: bool) -> Rule:
    """:func:`load_rule_file` once the file is parsed (``data``)."""
    where = display_path(path)
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise CatalogError(f"{where}: expected a mapping of rule fields, got {kind}")

    if check_schema:
        import jsonschema.exceptions

        error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
        if error is not None:
            raise CatalogError(f"{where}: {schema_error_text(error)}")

    rule_id = data["id"]
    if rule_id != path.stem:
        raise CatalogError(
            f"{where}: id: {rule_id!r} does not match the file name (expected {path.stem!r})"
        )
    try:
        used = template_fields(data["message"])
    except ValueError as exc:
        raise CatalogError(f"{where}: message: not a valid template ({exc})") from None
    allowed = allowed_fields(rule_id)
    for name in used:
        if name not in allowed:
            raise CatalogError(
                f"{where}: message: unknown field {name!r} "
                f"(allowed for {rule_id}: {', '.join(allowed)})"
            )

    params = {
        name: {
            "default": spec["default"],
            "type": spec["type"],
            "description": spec["description"],
            **{key: spec[key] for key in _PARAM_BOUNDS if key in spec},
        }
        for name, spec in (data.get("params") or {}).items()
    }
    for name, spec in params.items():
        problem = _out_of_range(spec, spec["default"])
        if problem is not None:
            raise CatalogError(f"{where}: params.{name}.default: {problem}")
    samples = {key: list(value) for key, value in (data.get("samples") or {}).items()}
    translations = _translations(where, data.get("translations"), used)
    return Rule(
        id=rule_id,
        name=data["name"],
        severity=data["severity"],
        enabled=data["enabled"],
        summary=data["summary"],
        message=data["message"],
        rfc=data["rfc"],
        explanation=data["explanation"],
        equivalents=dict(data.get("equivalents") or {}),
        params=params,
        samples=samples,
        source=path,
        translations=translations,
    )


def _translations(where: str, data: Any, english_fields: list[str]) -> dict[str, dict[str, str]]:
    """A rule file's ``translations`` (language -> field -> text), once each translated
    message is checked: a valid template with exactly the placeholders of the English
    message (``english_fields``), else :class:`CatalogError` (one line)."""
    translations: dict[str, dict[str, str]] = {}
    for lang, fields in (data or {}).items():
        texts = {name: fields[name] for name in TEXT_FIELDS if fields.get(name)}
        message = texts.get("message")
        if message is not None:
            try:
                used = template_fields(message)
            except ValueError as exc:
                raise CatalogError(
                    f"{where}: translations.{lang}.message: not a valid template ({exc})"
                ) from None
            if set(used) != set(english_fields):
                theirs = ", ".join(sorted(set(used))) or "none"
                ours = ", ".join(sorted(set(english_fields))) or "none"
                raise CatalogError(
                    f"{where}: translations.{lang}.message: placeholders {{{theirs}}} "
                    f"differ from the English message's {{{ours}}}"
                )
        translations[lang] = texts
    return translations


def _rule_files(location: Path) -> list[Path]:
    if location.is_file():
        return [location]
    try:
        return sorted(
            entry
            for entry in location.iterdir()
            if entry.is_file() and entry.suffix in RULE_SUFFIXES and not entry.name.startswith(".")
        )
    except OSError as exc:
        raise CatalogError(
            f"{display_path(location)}: cannot list the rules directory: {exc.strerror or exc}"
        ) from None


def _load_location(location: Path, trusted: bool = False) -> dict[str, Rule]:
    """The rules of one directory (or one rule file); duplicate ids are an error.
    ``trusted``: the shipped rules, loaded without the schema check when
    :func:`stamped`."""
    if not location.exists():
        raise CatalogError(f"{display_path(location)}: no such rules directory")
    if location.is_file() and location.suffix not in RULE_SUFFIXES:
        raise CatalogError(
            f"{display_path(location)}: not a rule file (expected {' or '.join(RULE_SUFFIXES)})"
        )
    if not location.is_file() and not location.is_dir():  # a device, a FIFO, a socket
        raise CatalogError(
            f"{display_path(location)}: not a rules directory nor a rule file "
            f"({' or '.join(RULE_SUFFIXES)})"
        )
    rules: dict[str, Rule] = {}
    digest = _stamp(location) if trusted else None
    parsed = parsed_rules(location, digest) if digest is not None else {}
    for path in _rule_files(location):
        data = parsed.get(path.name)
        if data is None:
            data = parse_rule_file(path)
        rule = _rule_from_data(path, data, check_schema=digest is None)
        if rule.id in rules:
            raise CatalogError(
                f"{display_path(path)}: id: {rule.id!r} is already defined in "
                f"{display_path(rules[rule.id].source)}"
            )
        rules[rule.id] = rule
    return rules


def load_catalog(extra_dirs: Sequence[Path | str] = ()) -> Catalog:
    """Load the shipped rules, then each extra directory in order.

    A rule in an extra directory (``--rules DIR``; a single rule file is accepted too)
    adds a new id or replaces the rule with the same id wholly. Raises
    :class:`CatalogError` for any invalid file, a missing directory, or a default
    directory without rules.
    """
    base = default_rules_dir()
    rules = _load_location(base, trusted=True)
    if not rules:
        raise CatalogError(f"{display_path(base)}: no rule files found")
    for extra in extra_dirs:
        rules.update(_load_location(Path(extra)))
    return Catalog(rules)


# --------------------------------------------------------------------------- formatting


class _Missing:
    """Stands for a field absent from the event data."""

    def __repr__(self) -> str:
        return "?"


_MISSING = _Missing()


class _SafeFormatter(string.Formatter):
    """``str.format`` semantics that never raise (see :func:`format_message`)."""

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str):
            return kwargs.get(key, _MISSING)
        return _MISSING

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]):
        try:
            return super().get_field(field_name, args, kwargs)
        except Exception:  # attribute or index of a missing / unexpected value
            return _MISSING, field_name

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if value is _MISSING:
            return value
        try:
            return super().convert_field(value, conversion)
        except Exception:
            return value

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is _MISSING:
            return "?"
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "no"
        try:
            return format(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


_FORMATTER = _SafeFormatter()


def format_message(template: str, data: Mapping[str, Any] | None) -> str:
    """Fill ``template`` from ``data`` without ever raising.

    A missing key renders as ``?``, ``None`` as ``-``, ``True``/``False`` as
    ``yes``/``no``; a value the format spec does not fit (``{ack:.3f}`` with a string)
    renders as ``str(value)``; a malformed template is returned unchanged.

    When every field of the template is a plain ``{name}`` and each has a value that is
    neither None nor a bool, ``str.format_map`` gives the same text in a tenth of the
    time (issue #4); anything else goes through the formatter.
    """
    data = data or {}
    names = _plain_fields(template)
    if names is not None:
        for name in names:
            value = data.get(name)
            if value is None or value.__class__ is bool:
                break
        else:
            try:
                return template.format_map(data)
            except Exception:
                pass
    try:
        return _FORMATTER.vformat(template, (), dict(data))
    except Exception:
        return template


@lru_cache(maxsize=512)
def _plain_fields(template: str) -> tuple[str, ...] | None:
    """The names of ``template``'s fields when each is a plain ``{name}`` (no
    conversion, format spec, attribute or index); None otherwise, or when the template
    is malformed."""
    names = []
    try:
        for _text, name, spec, conversion in _PARSER.parse(template):
            if name is None:
                continue
            if spec or conversion or not name.isidentifier():
                return None
            names.append(name)
    except ValueError:
        return None
    return tuple(names)


_PARSER = string.Formatter()


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# --------------------------------------------------------------------------- catalogue


class Catalog:
    """The loaded rules, ordered by id, with selection, parameters and message filling."""

    def __init__(self, rules: Mapping[str, Rule]):
        #: id → Rule, ordered by id.
        self.rules: dict[str, Rule] = dict(sorted(rules.items()))

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules.values())

    def __len__(self) -> int:
        return len(self.rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self.rules

    def __repr__(self) -> str:
        return f"Catalog({len(self.rules)} rules)"

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; :class:`CatalogError` if there is none."""
        try:
            return self.rules[rule_id]
        except KeyError:
            raise CatalogError(_("unknown rule {id}").format(id=repr(rule_id))) from None

    # ------------------------------------------------------------------ selection

    def _expand(self, selector: str) -> tuple[int, list[str]]:
        """(specificity, matching ids) of one selector; ALL has specificity 0."""
        if not isinstance(selector, str):
            raise CatalogError(
                _("unknown rule selector {selector}").format(selector=repr(selector))
            )
        wanted = selector.strip().upper()
        if wanted == "ALL":
            return 0, list(self.rules)
        matches = [rule_id for rule_id in self.rules if wanted and rule_id.startswith(wanted)]
        if not matches:
            raise CatalogError(
                _("unknown rule selector {selector}").format(selector=repr(selector))
            )
        return len(wanted), matches

    def select(
        self,
        select: Sequence[str] | None = None,
        ignore: Sequence[str] | None = None,
    ) -> set[str]:
        """The ids of the active rules (ruff semantics, see the module docstring).

        ``select=None`` starts from the rules enabled by default; otherwise from what the
        selectors match (``ALL``, full ids, id prefixes; case-insensitive). ``ignore``
        removes; the more specific selector wins, ``ignore`` on ties. Rules with
        ``enabled: false`` are selected only by their full id or ``ALL``. An unknown
        selector raises ``CatalogError("unknown rule selector 'XY9'")``.
        """
        if isinstance(select, str) or isinstance(ignore, str):
            raise CatalogError("select and ignore take a list of selectors, not a string")
        # id -> (specificity of the deciding selector, active?)
        decision: dict[str, tuple[int, bool]] = {}
        for rule_id, rule in self.rules.items():
            decision[rule_id] = (-1, rule.enabled if select is None else False)
        for selector in select or ():
            specificity, matches = self._expand(selector)
            for rule_id in matches:
                rule = self.rules[rule_id]
                exact = specificity == len(rule_id)
                if not rule.enabled and not (exact or specificity == 0):
                    continue  # a default-off rule needs its full id or ALL
                if specificity >= decision[rule_id][0]:
                    decision[rule_id] = (specificity, True)
        for selector in ignore or ():
            specificity, matches = self._expand(selector)
            for rule_id in matches:
                if specificity >= decision[rule_id][0]:
                    decision[rule_id] = (specificity, False)
        return {rule_id for rule_id, (_, active) in decision.items() if active}

    # ------------------------------------------------------------------ parameters

    @staticmethod
    def _coerce(rule_id: str, name: str, kind: str, value: Any) -> Any:
        def bad() -> CatalogError:
            return CatalogError(f"{rule_id}: params.{name}: expected {kind}, got {value!r}")

        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1"):
                return True
            if isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "0"):
                return False
            raise bad()
        if kind == "string":
            if isinstance(value, str):
                return value
            raise bad()
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, str):
            try:
                value = int(value) if kind == "integer" else float(value)
            except ValueError:
                raise bad() from None
        if kind == "integer":
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad()
        if isinstance(value, int):  # a number: an int must fit a float (10**400 does not)
            try:
                float(value)
            except OverflowError:
                raise bad() from None
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        raise bad()

    def params(self, rule_id: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The rule's parameter values: defaults merged with ``overrides``.

        Overrides are type-checked against the declared type (strings such as ``"30"``
        or ``"true"`` from a command line are converted; a number must be finite) and
        against the declared range (``minimum``, ``exclusiveMinimum``, ``maximum``: CL010's
        ``msl`` must be > 0). Raises :class:`CatalogError` (one line) for an unknown rule,
        an unknown parameter, a value of the wrong type or out of range.
        """
        rule = self.get(rule_id)
        values = {name: spec["default"] for name, spec in rule.params.items()}
        for name, value in (overrides or {}).items():
            if name not in rule.params:
                known = ", ".join(rule.params) or "none"
                raise CatalogError(
                    _("{id}: unknown parameter {name} (known: {known})").format(
                        id=rule_id, name=repr(name), known=known
                    )
                )
            spec = rule.params[name]
            value = self._coerce(rule_id, name, spec["type"], value)
            problem = _out_of_range(spec, value)
            if problem is not None:
                raise CatalogError(f"{rule_id}: params.{name}: {problem}")
            values[name] = value
        return values

    # ------------------------------------------------------------------ findings

    def to_finding(
        self,
        event: Event,
        active: set[str] | frozenset[str],
        severity_overrides: Mapping[str, str] | None = None,
    ) -> Finding | None:
        """The finding for ``event``, or ``None`` when its rule is not in ``active``.

        The severity is the rule's unless ``severity_overrides`` maps the rule id to
        another one; the message is the rule's template filled from ``event.data`` (see
        :func:`format_message`). Raises :class:`CatalogError` for an event of an unknown
        rule or an invalid override severity.
        """
        if event.rule not in active:
            return None
        rule = self.get(event.rule)
        severity = rule.severity
        if severity_overrides and rule.id in severity_overrides:
            severity = severity_overrides[rule.id]
            if severity not in SEVERITIES:
                choices = ", ".join(repr(s) for s in SEVERITIES)
                raise CatalogError(f"{rule.id}: severity: {severity!r} is not one of {choices}")
        data = dict(event.data or {})
        return Finding(
            rule=rule.id,
            name=rule.name,
            severity=severity,
            connection=event.connection,
            frame=event.frame,
            message=format_message(rule.message, data),
            data=data,
        )

    # ------------------------------------------------------------------ documentation

    def catalogue_markdown(self) -> str:
        """The README table: ``| id | name | severity | default | summary |``, one row per
        rule in id order, ``default`` being ``on`` or ``off``; ends with a newline."""
        lines = [
            "| id | name | severity | default | summary |",
            "| --- | --- | --- | --- | --- |",
        ]
        for rule in self.rules.values():
            default = "on" if rule.enabled else "off"
            lines.append(
                f"| {rule.id} | {rule.name} | {rule.severity} | {default} | {_md_cell(rule.summary)} |"
            )
        return "\n".join(lines) + "\n"


def replace_readme_table(text: str, table: str) -> str:
    """``text`` with everything between :data:`README_START` and :data:`README_END`
    replaced by ``table``; :class:`CatalogError` if the markers are missing."""
    start = text.find(README_START)
    end = text.find(README_END, start + len(README_START)) if start >= 0 else -1
    if start < 0 or end < 0:
        raise CatalogError(f"README markers {README_START} ... {README_END} not found")
    head = text[: start + len(README_START)]
    return f"{head}\n{table.rstrip()}\n{text[end:]}"


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pcapcheck.catalog.rules [--rules DIR]... (--markdown | --check-readme F |
    --update-readme F)``."""
    parser = argparse.ArgumentParser(
        prog="python -m pcapcheck.catalog.rules",
        description="Validate the rule catalogue and print or check the README table.",
    )
    parser.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="DIR",
        help="extra rules directory (adds or overrides rules by id); repeatable",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--markdown", action="store_true", help="print the catalogue table")
    action.add_argument(
        "--check-readme",
        metavar="FILE",
        help="exit 1 if the table between the rules markers in FILE is out of date",
    )
    action.add_argument(
        "--update-readme",
        metavar="FILE",
        help="rewrite the table between the rules markers in FILE",
    )
    args = parser.parse_args(argv)
    try:
        catalog = load_catalog(args.rules)
        table = catalog.catalogue_markdown()
        if args.check_readme or args.update_readme:
            path = Path(args.check_readme or args.update_readme)
            text = path.read_text(encoding="utf-8")
            updated = replace_readme_table(text, table)
            if args.check_readme:
                if updated != text:
                    print(
                        f"{path}: the rule table is out of date; run "
                        f"python -m pcapcheck.catalog.rules --update-readme {path}",
                        file=sys.stderr,
                    )
                    return 1
                return 0
            if updated != text:
                path.write_text(updated, encoding="utf-8")
            return 0
        if args.markdown:
            sys.stdout.write(table)
        else:
            print(f"{len(catalog)} rules OK ({display_path(default_rules_dir())})")
    except (CatalogError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
