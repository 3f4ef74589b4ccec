"""Configuration files: ``pcapcheck.toml``, or ``[tool.pcapcheck]`` in ``pyproject.toml``.

Discovery (:func:`find_config`): from the working directory upward, the first directory
holding a ``pcapcheck.toml`` or a ``pyproject.toml`` with a ``[tool.pcapcheck]`` table
wins; in one directory ``pcapcheck.toml`` beats ``pyproject.toml``, and a
``pyproject.toml`` without the table is skipped. ``--config FILE`` names the file
(either kind), ``--isolated`` ignores every file (:func:`resolve_config`).

Keys (kebab-case, like ruff's)::

    select = ["HS", "CL", "RS"]          # rule IDs or prefixes, "ALL"; replaces the default set
    extend-select = ["CP004"]            # added to the default set or to select
    ignore = ["CL008"]                   # removed (the more specific selector wins)
    fail-on = "warning"                  # error | warning | info | never
    rules-dirs = ["ci/rules"]            # extra rule directories, relative to this file
    lang = "ko"                          # the language of what a person reads: en | ko

    [tunnel-ports]                       # UDP ports of tunnels (issue 24); unnamed: IANA's
    vxlan = [4789, 8472]                 # vxlan, geneve, gtpu, teredo; [] turns one off

    [rules.HS003]
    severity = "warning"                 # severity override
    [rules.CL010]
    msl = 30                             # rule parameters, type-checked by the catalogue

    [per-file-ignores]
    "captures/legacy/*.pcap" = ["CP", "HS001"]

``per-file-ignores`` globs are matched against the capture's path relative to the
configuration file's directory, component by component (``*`` and ``?`` stay inside one
component, ``**`` spans any number of them); a pattern without ``/`` is matched against
the file name alone, wherever the file is.

The command line overrides the file: ``--select`` replaces ``select`` and
``extend-select``; ``--extend-select``, ``--ignore`` and ``--rules`` add to the file's
lists; ``--fail-on`` replaces ``fail-on`` (:func:`resolve_selection`). ``--lang``
replaces ``lang``; without either the environment chooses (``LANGUAGE``, ``LC_ALL``,
``LC_MESSAGES``, ``LANG``, as gettext reads them), else English
(:mod:`pcapcheck.i18n`). Machine formats keep English keys whatever the language.

Every problem raises :class:`ConfigError` with a one-line message starting with the
file's name, e.g. ``pcapcheck.toml: unknown key 'selct' (allowed: ...)``.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from pcapcheck.capture.inputs import display_path, read_limited

if TYPE_CHECKING:
    from pcapcheck.catalog.rules import Catalog

__all__ = [
    "CONFIG_NAME",
    "FAIL_ON",
    "KEYS",
    "PYPROJECT_NAME",
    "Config",
    "ConfigError",
    "find_config",
    "glob_match",
    "load_config",
    "resolve_config",
    "resolve_selection",
]

CONFIG_NAME = "pcapcheck.toml"
PYPROJECT_NAME = "pyproject.toml"
#: The keys allowed at the top level of the configuration.
KEYS = (
    "select",
    "extend-select",
    "ignore",
    "fail-on",
    "rules-dirs",
    "rules",
    "per-file-ignores",
    "lang",
    "tunnel-ports",
)
#: The values of ``fail-on`` (and ``--fail-on``).
FAIL_ON = ("error", "warning", "info", "never")
_SEVERITIES = ("error", "warning", "info")


class ConfigError(Exception):
    """The configuration file cannot be read or holds a wrong key or value (one line)."""


@dataclass
class Config:
    """A parsed configuration (empty when no file applies: ``path`` is None).

    ``select`` is None when the file does not set it; ``rules_dirs`` are absolute;
    ``severity``: rule ID → severity; ``rule_params``: rule ID → {parameter: value} as
    written (checked and converted by :meth:`check`); ``per_file_ignores``: (glob,
    selectors) in file order; ``rule_tables``: the IDs of the ``[rules.*]`` tables.
    """

    path: Path | None = None
    label: str = "configuration"
    select: list[str] | None = None
    extend_select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    fail_on: str | None = None
    #: ``lang``: a language of :data:`pcapcheck.i18n.LANGUAGES` (``"ko"``), None when unset.
    lang: str | None = None
    #: ``[tunnel-ports]``: tunnel name -> its UDP ports (:func:`pcapcheck.capture.layers.
    #: tunnel_tables`), None when unset
    tunnel_ports: dict[str, list[int]] | None = None
    rules_dirs: list[Path] = field(default_factory=list)
    severity: dict[str, str] = field(default_factory=dict)
    rule_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_file_ignores: list[tuple[str, list[str]]] = field(default_factory=list)
    rule_tables: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        """The directory relative paths of the file are resolved against."""
        return self.path.parent.resolve() if self.path is not None else Path.cwd().resolve()

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.label}: {message}")

    # ------------------------------------------------------------------ catalogue checks

    def check(self, catalog: Catalog) -> dict[str, dict[str, Any]]:
        """Check everything that needs the rule catalogue: the selectors, the rule IDs of
        ``[rules.*]`` and their parameter names and types (:meth:`Catalog.params`).

        Returns the converted parameter overrides, rule ID → {name: value}.
        Raises :class:`ConfigError`.
        """
        from pcapcheck.catalog.rules import CatalogError

        for key, selectors in (
            ("select", self.select),
            ("extend-select", self.extend_select),
            ("ignore", self.ignore),
        ):
            self._check_selectors(catalog, key, selectors or [])
        for pattern, selectors in self.per_file_ignores:
            self._check_selectors(catalog, f"per-file-ignores.{pattern!r}", selectors)
        params: dict[str, dict[str, Any]] = {}
        for rule_id in self.rule_tables:
            if rule_id not in catalog:
                raise self.error(f"rules.{rule_id}: unknown rule {rule_id!r}")
        for rule_id, values in self.rule_params.items():
            for name, value in values.items():
                try:
                    converted = catalog.params(rule_id, {name: value})[name]
                except CatalogError as exc:
                    raise self.error(_param_message(rule_id, name, str(exc))) from None
                params.setdefault(rule_id, {})[name] = converted
        return params

    def _check_selectors(self, catalog: Catalog, key: str, selectors: Sequence[str]) -> None:
        from pcapcheck.catalog.rules import CatalogError

        try:
            catalog.select(list(selectors), None)
        except CatalogError as exc:
            raise self.error(f"{key}: {exc}") from None

    # ------------------------------------------------------------------ per-file ignores

    def ignored_for(self, capture: Path, catalog: Catalog) -> set[str]:
        """The rule IDs ``per-file-ignores`` switches off for ``capture`` (a real path;
        standard input matches nothing). Prefixes remove default-off rules too."""
        if not self.per_file_ignores:
            return set()
        try:
            relative = capture.resolve().relative_to(self.root).as_posix()
        except (ValueError, OSError):
            relative = None
        selectors: list[str] = []
        for pattern, ids in self.per_file_ignores:
            if "/" not in pattern.strip("/"):
                hit = fnmatch.fnmatchcase(capture.name, pattern.strip("/"))
            else:
                hit = relative is not None and glob_match(pattern, relative)
            if hit:
                selectors.extend(ids)
        if not selectors:
            return set()
        return set(catalog.rules) - catalog.select(["ALL"], selectors)


def _param_message(rule_id: str, name: str, message: str) -> str:
    for prefix in (f"{rule_id}: params.{name}: ", f"{rule_id}: "):
        if message.startswith(prefix):
            rest = message[len(prefix) :]
            where = (
                f"rules.{rule_id}.{name}" if prefix.endswith(f"{name}: ") else f"rules.{rule_id}"
            )
            return f"{where}: {rest}"
    return f"rules.{rule_id}: {message}"


def glob_match(pattern: str, path: str) -> bool:
    """Whether the ``/``-separated relative ``path`` matches the glob ``pattern``:
    ``*``, ``?`` and ``[...]`` match inside one path component, ``**`` any number of
    whole components (``a/**/b.pcap`` matches ``a/b.pcap`` and ``a/x/y/b.pcap``)."""
    pat = [p for p in pattern.split("/") if p not in ("", ".")]
    parts = [p for p in path.split("/") if p not in ("", ".")]

    def match(i: int, j: int) -> bool:
        if i == len(pat):
            return j == len(parts)
        if pat[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(parts) + 1))
        return j < len(parts) and fnmatch.fnmatchcase(parts[j], pat[i]) and match(i + 1, j + 1)

    return match(0, 0)


# --------------------------------------------------------------------------- discovery


def _has_tool_table(pyproject: Path) -> bool:
    """Whether a pyproject.toml has [tool.pcapcheck] (an unreadable or invalid one is
    read, and reported, by :func:`load_config`: it counts as having the table only when
    the text mentions it)."""
    try:
        text = read_limited(pyproject, MAX_CONFIG_BYTES, "configuration file").decode("utf-8")
    except (OSError, ValueError):  # ValueError: too large, or not UTF-8
        return False
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return "tool.pcapcheck" in text
    tool = data.get("tool")
    return isinstance(tool, dict) and "pcapcheck" in tool


def find_config(start: Path | None = None) -> Path | None:
    """The configuration file that applies in ``start`` (default: the working
    directory), searching upward; None when there is none."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
        pyproject = directory / PYPROJECT_NAME
        if pyproject.is_file() and _has_tool_table(pyproject):
            return pyproject
    return None


def resolve_config(
    explicit: Path | None = None, isolated: bool = False, start: Path | None = None
) -> Config:
    """The configuration to use: ``explicit`` (``--config``), none with ``isolated``,
    else the discovered one (:func:`find_config`), else an empty :class:`Config`.
    ``explicit`` together with ``isolated`` is a :class:`ConfigError`."""
    if explicit is not None and isolated:
        raise ConfigError("--config and --isolated cannot be used together")
    if isolated:
        return Config()
    path = explicit if explicit is not None else find_config(start)
    return load_config(path) if path is not None else Config()


# --------------------------------------------------------------------------- parsing


#: The largest configuration file read (bytes); a larger one (or a device that never
#: ends) is refused with a one-line error.
MAX_CONFIG_BYTES = 10_000_000


def load_config(path: Path | str) -> Config:
    """Read and check one configuration file (the structure and the values that do not
    need the catalogue; see :meth:`Config.check` for the rest).

    A file named ``pyproject.toml`` is read from its ``[tool.pcapcheck]`` table (which
    must exist); any other file is the table itself. Raises :class:`ConfigError`.
    """
    path = Path(path)
    shown = display_path(path)
    pyproject = path.name == PYPROJECT_NAME
    label = f"{shown} [tool.pcapcheck]" if pyproject else shown
    try:
        text = read_limited(path, MAX_CONFIG_BYTES, "configuration file").decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text") from None
    except ValueError as exc:  # larger than MAX_CONFIG_BYTES (--config /dev/zero)
        raise ConfigError(str(exc)) from None
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{shown}: is a directory, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{shown}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{shown}: invalid TOML: nested too deeply") from None
    if pyproject:
        tool = data.get("tool")
        if not isinstance(tool, dict) or "pcapcheck" not in tool:
            raise ConfigError(f"{shown}: no [tool.pcapcheck] table")
        data = tool["pcapcheck"]
        if not isinstance(data, dict):
            raise ConfigError(f"{shown}: tool.pcapcheck: expected a table")
    config = Config(path=path, label=label)
    _parse(config, data)
    return config


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _string_list(config: Config, key: str, value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise config.error(f"{key}: expected an array of {what}, got {value!r}")
    return [v.strip() for v in value]


def _parse(config: Config, data: Mapping[str, Any]) -> None:
    unknown = [key for key in data if key not in KEYS]
    if unknown:
        raise config.error(f"unknown key {unknown[0]!r} (allowed: {', '.join(KEYS)})")
    ids = "rule IDs or prefixes"
    if "select" in data:
        config.select = _string_list(config, "select", data["select"], ids)
    if "extend-select" in data:
        config.extend_select = _string_list(config, "extend-select", data["extend-select"], ids)
    if "ignore" in data:
        config.ignore = _string_list(config, "ignore", data["ignore"], ids)
    if "fail-on" in data:
        value = data["fail-on"]
        if value not in FAIL_ON:
            raise config.error(f"fail-on: {value!r} is not one of {', '.join(FAIL_ON)}")
        config.fail_on = value
    if "lang" in data:
        from pcapcheck.i18n import LANGUAGES, normalize_language

        value = data["lang"]
        lang = normalize_language(value) if isinstance(value, str) else None
        if lang is None:
            raise config.error(f"lang: {value!r} is not one of {', '.join(LANGUAGES)}")
        config.lang = lang
    if "tunnel-ports" in data:
        from pcapcheck.capture.layers import tunnel_tables

        value = data["tunnel-ports"]
        if not isinstance(value, Mapping) or not all(isinstance(v, list) for v in value.values()):
            raise config.error(f"tunnel-ports: expected a table of port arrays, got {value!r}")
        try:
            tunnel_tables(value)
        except ValueError as exc:
            raise config.error(str(exc)) from None
        config.tunnel_ports = {name: list(ports) for name, ports in value.items()}
    if "rules-dirs" in data:
        for entry in _string_list(config, "rules-dirs", data["rules-dirs"], "directories"):
            where = (config.root / entry).resolve()
            if not where.exists():
                raise config.error(
                    f"rules-dirs: {entry!r} does not exist "
                    f"(relative to {display_path(config.root)})"
                )
            config.rules_dirs.append(where)
    if "rules" in data:
        _parse_rules(config, data["rules"])
    if "per-file-ignores" in data:
        table = data["per-file-ignores"]
        if not isinstance(table, dict):
            raise config.error(
                f"per-file-ignores: expected a table of glob = [{ids}], got {_type_name(table)}"
            )
        for pattern, selectors in table.items():
            config.per_file_ignores.append(
                (pattern, _string_list(config, f"per-file-ignores.{pattern!r}", selectors, ids))
            )


def _parse_rules(config: Config, table: Any) -> None:
    if not isinstance(table, dict):
        raise config.error(f"rules: expected a table of [rules.ID] tables, got {_type_name(table)}")
    for rule_id, settings in table.items():
        if not isinstance(settings, dict):
            raise config.error(
                f"rules.{rule_id}: expected a table (severity and rule "
                f"parameters), got {_type_name(settings)}"
            )
        config.rule_tables.append(rule_id)
        for name, value in settings.items():
            if name == "severity":
                if value not in _SEVERITIES:
                    raise config.error(
                        f"rules.{rule_id}.severity: {value!r} is not one of "
                        f"{', '.join(_SEVERITIES)}"
                    )
                config.severity[rule_id] = value
            else:
                config.rule_params.setdefault(rule_id, {})[name] = value


# --------------------------------------------------------------------------- selection


def resolve_selection(
    catalog: Catalog,
    config: Config,
    select: Sequence[str] | None = None,
    extend_select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
) -> set[str]:
    """The active rule IDs from the file's and the command line's selectors.

    ``select`` (command line) replaces the file's ``select`` and ``extend-select``;
    ``extend_select`` and ``ignore`` are added to the file's. The result is
    ``Catalog.select(base, ignores)`` plus ``Catalog.select(extends, ignores)``, where
    ``base`` is None (the default set) when neither sets ``select``. Raises
    :class:`pcapcheck.catalog.rules.CatalogError` for an unknown selector.
    """
    if select is not None:
        base: list[str] | None = list(select)
        extends = list(extend_select or [])
    else:
        base = config.select
        extends = list(config.extend_select) + list(extend_select or [])
    ignores = list(config.ignore) + list(ignore or [])
    active = catalog.select(base, ignores)
    if extends:
        active |= catalog.select(extends, ignores)
    return active
