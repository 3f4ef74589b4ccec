"""Output formats: one module per format, each with ``render(results, ctx=None) -> str``.

:data:`FORMATS` maps a format name to its renderer; :data:`WRITERS` maps it to a writer
``(results, out, ctx) -> None`` that writes the same text to a text stream. The formats
whose size grows with the capture (json, jsonl, csv) write one connection or finding at
a time, so that a report never has to be held in memory whole (the results' connections
and findings are :class:`~pcapcheck.spool.Spool` objects that stream from disk); the
others build their text first (tables need every row to size their columns, XML
documents are built as a tree). A renderer takes the
:class:`~pcapcheck.results.FileResult` of every capture (in command-line order) and an
optional :class:`ReportContext`, and returns the whole report as text (``""`` is possible
for the line-oriented formats when there is nothing to say). Every renderer works with
``ctx=None``; a context adds what the results alone do not say: the rule catalogue (rule
documentation for SARIF, rule names for JUnit), the rules that were evaluated (JUnit's
passing test cases) and whether to append per-rule statistics.

========  ==============================================================  ===============
name      what                                                            statistics
========  ==============================================================  ===============
table     connection table, findings table, summary line (tabulate)       appended
json      one document for all files (``schemas/report.schema.json``)     ignored
jsonl     one finding per line                                            ignored
csv       one finding per row, with a header row (RFC 4180 quoting)       ignored
markdown  GitHub-flavoured Markdown: per file a heading and two tables    appended
junit     JUnit XML: a test suite per capture, a test case per rule       ignored
sarif     SARIF 2.1.0 log                                                 ignored
github    GitHub Actions workflow commands (``::error file=...::...``)    appended
========  ==============================================================  ===============

A capture that could not be read (``FileResult.error`` set) is reported by every format.

Every format writes valid UTF-8, whatever the capture's name: a file name that is not
valid UTF-8 reaches Python with its undecodable bytes as lone surrogates (PEP 383,
``surrogateescape``), which no UTF-8 text can hold. :func:`utf8_text` shows each such
byte as ``\\xNN`` (Python's ``backslashreplace``: the name ``bad<0xff>.pcap`` is reported
as ``bad\\xff.pcap``), and :data:`FORMATS` and :data:`WRITERS` apply it to the
capture paths and error messages of the results before any renderer sees them
(:func:`utf8_results`): one policy, in one place, for every format.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from pcapcheck.catalog.rules import Catalog, Rule
    from pcapcheck.results import FileResult

__all__ = [
    "FORMATS",
    "WRITERS",
    "Renderer",
    "ReportContext",
    "Writer",
    "connection_text",
    "lookup_rule",
    "rule_statistics",
    "statistics_rows",
    "text_of",
    "utf8_results",
    "utf8_text",
]


@dataclass
class ReportContext:
    """What a renderer may know beyond the results.

    ``catalog``: the rule catalogue the captures were analysed with (``None``: unknown;
    renderers that want rule documentation fall back to the shipped catalogue for rules
    whose id and name match). ``active``: the ids of the rules that were evaluated
    (``Catalog.select``); empty means unknown. ``statistics``: append a per-rule count
    table (count, rule, name, severity; like ``ruff --statistics``) to the text formats
    (table, markdown, github).
    """

    catalog: Catalog | None = None
    active: frozenset[str] = frozenset()
    statistics: bool = False


#: The signature of every renderer in :data:`FORMATS`.
Renderer = Callable[["Sequence[FileResult]", "ReportContext | None"], str]

#: The signature of every writer in :data:`WRITERS`.
Writer = Callable[["Sequence[FileResult]", TextIO, "ReportContext | None"], None]


def text_of(write: Writer, results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """The text ``write`` writes for ``results`` and ``ctx``, as one string (how the
    streaming formats implement ``render``)."""
    buf = io.StringIO()
    write(results, buf, ctx)
    return buf.getvalue()


def rule_statistics(results: Sequence[FileResult]) -> list[tuple[int, str, str, str]]:
    """``(count, rule, name, severity)`` for every rule with findings in ``results``,
    most frequent first, then by rule id (the order of ``ruff --statistics``)."""
    counts: Counter = Counter()
    info: dict[str, tuple[str, str]] = {}
    for res in results:
        for f in res.findings:
            counts[f.rule] += 1
            info.setdefault(f.rule, (f.name, f.severity))
    return [
        (n, rule, *info[rule])
        for rule, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def statistics_rows(results: Sequence[FileResult]) -> str:
    """The statistics as aligned plain-text lines ``"  2  HS002  synack-bad-ack  error"``
    (count right-aligned), one per rule, newline-terminated; ``""`` without findings."""
    rows = rule_statistics(results)
    if not rows:
        return ""
    width = [max(len(str(row[i])) for row in rows) for i in range(4)]
    return "".join(
        f"{n:>{width[0]}}  {rule:<{width[1]}}  {name:<{width[2]}}  {sev}".rstrip() + "\n"
        for n, rule, name, sev in rows
    )


def connection_text(conn: Mapping | None) -> str | None:
    """``"10.0.0.1:40000 -> 10.0.0.2:80"`` (client -> server) for a connection summary
    dict, ``None`` for ``None``."""
    if conn is None:
        return None
    return f"{conn['client']} -> {conn['server']}"


@lru_cache(maxsize=1)
def _shipped_catalog() -> Catalog | None:
    from pcapcheck.catalog.rules import CatalogError, load_catalog

    try:
        return load_catalog()
    except (CatalogError, OSError):
        return None


def lookup_rule(ctx: ReportContext | None, rule_id: str, name: str | None = None) -> Rule | None:
    """The catalogue :class:`~pcapcheck.catalog.rules.Rule` for ``rule_id``: from
    ``ctx.catalog`` when there is one, else from the shipped catalogue provided its name is
    ``name`` (a rule replaced through ``--rules`` may document something else);
    ``None`` when unknown."""
    if ctx is not None and ctx.catalog is not None:
        return ctx.catalog.rules.get(rule_id)
    shipped = _shipped_catalog()
    rule = shipped.rules.get(rule_id) if shipped is not None else None
    if rule is not None and name is not None and rule.name != name:
        return None
    return rule


def utf8_text(text: str) -> str:
    """``text`` as UTF-8 can hold it: each undecodable byte of a file name (carried by
    Python as a lone surrogate U+DC80..U+DCFF, PEP 383) becomes the four characters
    ``\\xNN``, any other lone surrogate ``\\uNNNN`` (``backslashreplace``); text that
    is already valid is returned as it is (the common case costs one encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that stands for no byte
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
    return text


def utf8_results(results: Sequence[FileResult]) -> list[FileResult]:
    """``results`` with every ``path`` and ``error`` passed through :func:`utf8_text`
    (a copy of the results that need it; the others as they are). The names are the
    only text of a report that comes from outside a capture's packets."""
    out: list[FileResult] = []
    for res in results:
        path = utf8_text(res.path)
        error = utf8_text(res.error) if res.error is not None else None
        if path is not res.path or error is not res.error:
            res = dataclasses.replace(res, path=path, error=error)
        out.append(res)
    return out


def _utf8(function: Callable) -> Callable:
    """``function(results, ...)`` given :func:`utf8_results` of its results."""

    def call(results: Sequence[FileResult], *args: object) -> object:
        return function(utf8_results(results), *args)

    # the renderer's module, name and docstring (the architecture test reads __module__)
    return functools.update_wrapper(call, function)


#: Format name -> the module of its renderer (in this package).
_MODULES = {
    "table": "table",
    "json": "json_report",
    "jsonl": "jsonl",
    "csv": "csv_report",
    "markdown": "markdown",
    "junit": "junit",
    "sarif": "sarif",
    "github": "github",
}


class _ByFormat(MutableMapping):
    """Format name -> what ``pick(name, module)`` gives, the format's module imported
    at first use (a JSON report does not import tabulate or the XML writer: the
    start-up of ``pcapcheck analyze``, issue #4)."""

    def __init__(self, pick: Callable[[str, ModuleType], Callable]):
        self._pick = pick
        self._made: dict[str, Callable] = {}

    def __getitem__(self, name: str) -> Callable:
        made = self._made.get(name)
        if made is None:
            module = import_module(f"pcapcheck.report.{_MODULES[name]}")
            made = self._made[name] = self._pick(name, module)
        return made

    def __setitem__(self, name: str, value: Callable) -> None:  # a test's stand-in
        if name not in _MODULES:
            raise KeyError(name)
        self._made[name] = value

    def __delitem__(self, name: str) -> None:
        del self._made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


#: Format name -> renderer ``(results, ctx) -> str``; ``ctx`` may be ``None``.
FORMATS: Mapping[str, Renderer] = _ByFormat(lambda _name, module: _utf8(module.render))


def _text_writer(name: str) -> Writer:
    def write(results: Sequence[FileResult], out: TextIO, ctx: ReportContext | None = None) -> None:
        out.write(FORMATS[name](results, ctx))

    write.__doc__ = f"Write the text of the ``{name}`` renderer (:data:`FORMATS`) to ``out``."
    return write


#: Format name -> writer ``(results, out, ctx)``: streams json, jsonl and csv; writes the
#: renderer's text for the others.
WRITERS: Mapping[str, Writer] = _ByFormat(
    lambda name, module: _utf8(getattr(module, "write", None) or _text_writer(name))
)
