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
html      one self-contained page: tables, findings, SVG ladders (Jinja2) ignored
========  ==============================================================  ===============

A capture that could not be read (``FileResult.error`` set) is reported by every format.

The directory formats (:data:`DIRECTORY_FORMATS`: ``parquet``) are not renderers: a
:class:`Dataset` writes each capture's files into a directory as its result comes.

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
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, TextIO

from pcapcheck.report.common import finding_message, lookup_rule, value_text

if TYPE_CHECKING:
    import os

    from pcapcheck.catalog.rules import Catalog, Rule
    from pcapcheck.model import Finding
    from pcapcheck.results import FileResult

__all__ = [
    "DIRECTORY_FORMATS",
    "FORMATS",
    "WRITERS",
    "Dataset",
    "DatasetError",
    "LocalisedFindings",
    "Renderer",
    "ReportContext",
    "Writer",
    "connection_text",
    "localised_results",
    "lookup_rule",
    "new_run_id",
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
    (table, markdown, github). ``connections``: the jsonl report also writes one line
    per connection, its summary (``--connections``). ``tunnel_ports``: the UDP ports of
    the tunnels the captures were decoded with (tunnel name -> ports, the
    ``[tunnel-ports]`` configuration key; ``None``: IANA's), for renderers that read a
    capture again (the html report's ladders), so that they see the connections the
    analysis saw.
    """

    catalog: Catalog | None = None
    active: frozenset[str] = frozenset()
    statistics: bool = False
    connections: bool = False
    tunnel_ports: Mapping[str, Sequence[int]] | None = None


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
    (count right-aligned), one per rule, newline-terminated; ``""`` without findings.
    The severity in the current language (:func:`pcapcheck.report.common.value_text`)."""
    rows = rule_statistics(results)
    if not rows:
        return ""
    width = [max(len(str(row[i])) for row in rows) for i in range(4)]
    return "".join(
        f"{n:>{width[0]}}  {rule:<{width[1]}}  {name:<{width[2]}}  {value_text(sev)}".rstrip()
        + "\n"
        for n, rule, name, sev in rows
    )


def connection_text(conn: Mapping | None) -> str | None:
    """``"10.0.0.1:40000 -> 10.0.0.2:80"`` (client -> server) for a connection summary
    dict, ``None`` for ``None``."""
    if conn is None:
        return None
    return f"{conn['client']} -> {conn['server']}"


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


class LocalisedFindings(Sequence):
    """A read-only view of a capture's findings (a list or a
    :class:`~pcapcheck.spool.Spool` streaming from disk) whose items are the findings
    with ``message`` in the current language, each made as it is read (never all in
    memory): :func:`localised_results`."""

    def __init__(self, findings: Sequence[Finding], localise: Callable[[Finding], Finding]):
        self._findings = findings
        self._localise = localise

    def __len__(self) -> int:
        return len(self._findings)

    def __iter__(self) -> Iterator[Finding]:
        return map(self._localise, self._findings)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._localise(f) for f in self._findings[index]]
        return self._localise(self._findings[index])


def localised_results(
    results: Sequence[FileResult], ctx: ReportContext | None = None
) -> Sequence[FileResult]:
    """``results`` with each finding's ``message`` in the current language
    (:func:`pcapcheck.report.common.finding_message`, the rule from ``ctx.catalog`` or
    the shipped catalogue: :func:`lookup_rule`), mapped lazily as a renderer reads the
    findings (:class:`LocalisedFindings`). In English (the language of the engine's
    messages) ``results`` themselves. Interface I3: done once for every format."""
    from pcapcheck.i18n import DEFAULT_LANGUAGE, get_language

    if get_language() == DEFAULT_LANGUAGE:
        return results
    rules: dict[tuple[str, str], Rule | None] = {}

    def localise(finding: Finding) -> Finding:
        key = (finding.rule, finding.name)
        if key not in rules:
            rules[key] = lookup_rule(ctx, finding.rule, finding.name)
        message = finding_message(finding, rules[key])
        if message == finding.message:
            return finding
        return dataclasses.replace(finding, message=message)

    return [
        dataclasses.replace(res, findings=LocalisedFindings(res.findings, localise))
        if res.findings
        else res
        for res in results
    ]


def _utf8(function: Callable) -> Callable:
    """``function(results, ...)`` given :func:`utf8_results` of its results, with the
    findings' messages in the current language (:func:`localised_results`)."""

    def call(results: Sequence[FileResult], *args: object) -> object:
        ctx = next((arg for arg in args if isinstance(arg, ReportContext)), None)
        return function(localised_results(utf8_results(results), ctx), *args)

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
    "html": "html",
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


# --------------------------------------------------------------------------- directories

#: Directory format name -> its module: formats whose output is a directory of files (a
#: dataset that grows run after run), not text (``--format NAME=DIR``,
#: ``pcapcheck.analyze(datasets={NAME: DIR})``). Each module has ``check(directory,
#: run)``, ``write_result(result, directory, *, run, source=None)`` (one capture: what a
#: cluster's worker calls) and ``write(results, directory, *, run)``.
DIRECTORY_FORMATS: Mapping[str, str] = {"parquet": "pcapcheck.report.parquet"}


class DatasetError(Exception):
    """A directory format cannot be written: its library missing (the extra to install
    is named), a bad run id or directory, a file that cannot be read or written. The
    message is one line."""


def new_run_id() -> str:
    """A new run id, ``20261207T035222Z-3fa91c``: the UTC time and 6 random hex
    digits; made once per ``pcapcheck analyze`` (names the run's files in a dataset)."""
    import secrets
    from datetime import datetime, timezone

    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Dataset:
    """One directory output of a run: ``format`` (a key of :data:`DIRECTORY_FORMATS`),
    ``directory``, ``run`` (the run id, :func:`new_run_id`). Picklable: a cluster's
    worker gets it with the run's settings and writes its captures' files itself."""

    format: str
    directory: str
    run: str

    def _module(self) -> ModuleType:
        return import_module(DIRECTORY_FORMATS[self.format])

    def check(self) -> None:
        """Raise :class:`DatasetError` when the dataset cannot be written (the
        library missing, a bad run id, the directory a file or under a missing one, a
        table that cannot be made or written). Makes the directory (not its parents)
        and its tables; writes no data."""
        self._module().check(self.directory, self.run)

    def write(self, result: FileResult, source: str | os.PathLike[str] | None = None) -> list:
        """Write one capture's files (``source``: the file analysed, when not
        ``result.path``); the paths written. Raises :class:`DatasetError`."""
        return self._module().write_result(result, self.directory, run=self.run, source=source)
