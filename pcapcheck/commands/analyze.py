"""``pcapcheck analyze INPUT...``: the connection table, findings, reports and an exit status.

Inputs are files, directories (searched recursively), globs and ``-`` (standard input);
see :mod:`pcapcheck.capture.inputs`. One report covers them all, in the order given.

Reports: ``--format/-f FMT[=FILE]`` is repeatable; a format without ``=FILE`` goes to
standard output (at most one may), ``--output/-o FILE`` sends that one to FILE instead.
The formats are the keys of :data:`pcapcheck.report.FORMATS`; ``--format parquet=DIR``
(a key of :data:`pcapcheck.report.DIRECTORY_FORMATS`) adds the run to a dataset in the
directory DIR instead, capture by capture as the analysis goes.

Configuration: ``pcapcheck.toml`` or ``[tool.pcapcheck]`` in ``pyproject.toml`` (see
:mod:`pcapcheck.catalog.config`); the command line overrides it.

Exit status: 0 when no reported finding reaches ``--fail-on`` (or with ``--exit-zero``,
or after ``--write-baseline``); 1 when one does; 2 on a usage error, a bad configuration,
rule or baseline file, or an input that is not a readable capture (one line on stderr,
never a traceback; the readable files are still reported).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, TextIO, cast

import typer

from pcapcheck.commands.common import (
    CONFIG_HELP,
    ISOLATED_HELP,
    LANG_HELP,
    FailOn,
    app,
    fail,
    split_ids,
    use_language,
    write_error,
    writing_stdout,
)
from pcapcheck.results import failed


class DecoderName(str, Enum):
    native = "native"
    dpkt = "dpkt"
    tshark = "tshark"


# --------------------------------------------------------------------------- reports


def parse_formats(
    values: Sequence[str] | None,
    output: Path | None,
    valid: Sequence[str],
    directories: Sequence[str] = (),
) -> list[tuple[str, Path | None]]:
    """The report plan: ``(format, file or None for stdout)`` per ``--format`` value.

    ``values`` are ``FMT`` or ``FMT=FILE`` (default: ``["table"]``); ``output`` is
    ``--output``, the file of the one format without ``=FILE``; ``valid``: the format
    names; ``directories``: those of them that write a directory (``parquet=DIR``:
    :data:`pcapcheck.report.DIRECTORY_FORMATS`), which need ``=DIR`` and are given at
    most once each. Raises ``ValueError`` with a one-line message for an unknown format
    (listing the valid ones), an empty file name, a directory format without its
    directory or given twice, two formats on stdout, ``--output`` with nothing to
    redirect, or two reports written to the same file.
    """
    plan: list[tuple[str, Path | None]] = []
    for value in values or ["table"]:
        name, sep, file = value.partition("=")
        name = name.strip().lower()
        if name not in valid:
            raise ValueError(f"--format: unknown format {name!r} (valid: {', '.join(valid)})")
        if sep and not file.strip():
            raise ValueError(f"--format {value}: no file name after '='")
        if name in directories:
            if not sep:
                raise ValueError(f"--format {name} writes a directory: give it as -f {name}=DIR")
            if any(done == name for done, _path in plan):
                raise ValueError(f"--format {name}: given twice (one directory per run)")
        plan.append((name, Path(file) if sep else None))
    on_stdout = [name for name, path in plan if path is None]
    if len(on_stdout) > 1:
        raise ValueError(
            f"at most one format can go to standard output, got "
            f"{', '.join(on_stdout)}: give the others a file "
            f"(-f {on_stdout[-1]}=FILE)"
        )
    if output is not None:
        if not on_stdout:
            raise ValueError(
                "--output names the file of the format given without =FILE, "
                "but every --format names its own file"
            )
        plan = [(name, output if path is None else path) for name, path in plan]
    seen: dict[str, str] = {}
    for name, path in plan:
        if path is None:
            continue
        key = os.path.normcase(os.path.abspath(path))
        if key in seen:
            raise ValueError(
                f"{path}: both the {seen[key]} and the {name} report would be written to this file"
            )
        seen[key] = name
    return plan


def _report_context(report: Any, statistics: bool, connections: bool = False) -> Any:
    """The :class:`pcapcheck.report.ReportContext` of the run ``report``
    (:class:`pcapcheck.api.Report`: its catalogue, active rules and tunnel ports)."""
    from pcapcheck.report import ReportContext

    return ReportContext(
        catalog=report.catalog,
        active=frozenset(report.active),
        statistics=statistics,
        connections=connections,
        tunnel_ports=report.settings.tunnel_ports,
    )


# --------------------------------------------------------------------------- live pipe


def option_words(message: str, names: Sequence[str]) -> str:
    """``message`` of an :class:`pcapcheck.api.OptionError` with each of ``names`` (the
    API's parameters it names: ``shard_size``) said as this command's option
    (``--shard-size``)."""
    import re

    for name in names:
        message = re.sub(rf"\b{re.escape(name)}\b", "--" + name.replace("_", "-"), message)
    return message


def live_pipe(files: Sequence[str], plan: Sequence[tuple[str, Path | None]], decoder: str) -> bool:
    """Whether this run reads a live pipe: ``-`` is the only input, standard input is a
    pipe or a socket (not a file redirected with ``<``), the jsonl report goes to
    standard output and the decoder reads streams (not tshark). Its connections are
    then reported as they are finalised (README, "A live pipe")."""
    from pcapcheck.capture.inputs import LiveStream

    return (
        list(files) == ["-"]
        and ("jsonl", None) in plan
        and decoder != "tshark"
        and LiveStream.is_pipe(getattr(sys.stdin, "buffer", None))
    )


class _LiveSink:
    """What a live run does with each connection finalised (:class:`pcapcheck.pipeline.Live`):
    the findings the baseline holds (``remaining``, set once it is loaded) dropped, as
    :func:`pcapcheck.report.baseline.apply_baseline` drops them (first come, here in
    order of finalisation), the rest written as jsonl lines on standard output at once
    (:class:`pcapcheck.report.jsonl.LiveWriter`). An output that cannot be written
    (``| head`` closed, a full disk) ends the input (``stream``): :attr:`error`."""

    def __init__(self, stream: Any, ctx: Any):
        from pcapcheck.capture.inputs import STDIN_NAME
        from pcapcheck.report import WRITERS
        from pcapcheck.report.jsonl import LiveWriter

        self.stream = stream
        self.writer = LiveWriter(STDIN_NAME, sys.stdout, ctx, WRITERS["jsonl"])
        self.remaining: Counter[str] | None = None
        self.error: OSError | None = None

    def __call__(self, summary: dict[str, Any] | None, findings: list) -> None:
        if self.error is not None:
            return
        if self.remaining is not None:
            from pcapcheck.report.baseline import fingerprint

            kept = []
            for f in findings:
                key = fingerprint(f, summary if f.connection is not None else None)
                if self.remaining[key] > 0:
                    self.remaining[key] -= 1
                else:
                    kept.append(f)
            if summary is not None:
                own = sum(1 for f in kept if f.connection == summary["id"])
                summary = dict(summary, findings=own)
            findings = kept
        try:
            self.writer(summary, findings)
        except OSError as exc:
            self.error = exc
            sys.stdout = open(os.devnull, "w")  # what the buffer holds cannot be written
            self.stream.stopped = True


@contextmanager
def stopping_on_signals(stream: Any) -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM end the data of the live ``stream``
    (:meth:`~pcapcheck.capture.inputs.LiveStream.request_stop`): the run ends as at the
    end of its input, everything finalised reported. A second signal stops it as
    usual (KeyboardInterrupt, :class:`pcapcheck.run.signals.Terminated`)."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def stop(signum: int, frame: Any) -> None:
        for sig, handler in saved.items():  # a second one: the usual way
            signal.signal(sig, handler)
        stream.request_stop()

    for sig in saved:
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _write(name: str, results: list, ctx: Any, out: TextIO) -> None:
    from pcapcheck.report import WRITERS

    WRITERS[name](results, out, ctx)


def _step_summary(results: list, ctx: Any, log: Callable[[str], None]) -> None:
    """Append the Markdown summary to ``$GITHUB_STEP_SUMMARY`` (``-f github`` in
    GitHub Actions), when the github report module provides it."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target or ctx is None:
        return
    try:
        from pcapcheck.report.github import write_step_summary
    except ImportError:
        return
    try:
        write_step_summary(results, ctx, Path(target))
    except OSError as exc:
        log(f"pcapcheck: warning: cannot write the step summary to {target}: {exc.strerror}")


# --------------------------------------------------------------------------- progress


def progress_enabled(quiet: bool, stream: TextIO | None = None) -> bool:
    """Whether to show the progress bar: not ``--quiet`` and stderr is a terminal."""
    stream = sys.stderr if stream is None else stream
    if quiet:
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Progress:
    """One bar over the files (with a spinner and the current file name), drawn with
    rich on stderr; ``log`` prints a line above it. Does nothing when disabled."""

    def __init__(self, bar: Any = None, task: Any = None):
        self.bar = bar
        self.task = task

    def start(self, name: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=name)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def done(self, files: int, done_bytes: int, total_bytes: int) -> None:
        """A cluster's progress (``--scheduler``): the files and bytes whose analysis
        ended on its workers, in the order they end."""
        if self.bar is not None:
            from rich.filesize import decimal

            self.bar.update(
                self.task,
                completed=files,
                description=f"{decimal(done_bytes)} / {decimal(total_bytes)}",
            )

    def log(self, line: str) -> None:
        if self.bar is not None:
            self.bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            typer.echo(line, err=True)


@contextmanager
def progress(total: int, enabled: bool, stream: TextIO | None = None) -> Iterator[_Progress]:
    """A :class:`_Progress` over ``total`` files, drawn on ``stream`` (default stderr)
    when ``enabled``; the bar is removed when the context exits."""
    if not enabled:
        yield _Progress()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(file=stream if stream is not None else sys.stderr)
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with bar:
        yield _Progress(bar, bar.add_task("", total=total))


# --------------------------------------------------------------------------- gate


def gate_status(results: Sequence[Any], fail_on: str) -> int:
    """1 when a finding of ``results`` reaches ``fail_on`` (error / warning / info;
    never: no finding does), else 0."""
    return int(any(failed(r.findings, fail_on) for r in results))


def summary_line(results: Sequence[Any], suppressed: int | None) -> str:
    """``pcapcheck: 3 files, 5 findings (1 error, 4 warnings); 2 suppressed by the
    baseline; 1 file unreadable``."""
    from pcapcheck.i18n import gettext as _
    from pcapcheck.i18n import ngettext
    from pcapcheck.report.common import severity_counts

    sev = Counter(f.severity for r in results for f in r.findings)
    total = sum(sev.values())
    parts = severity_counts(sev)
    n = len(results)
    text = _("pcapcheck: {files}, {findings}{severities}").format(
        files=ngettext("{n} file", "{n} files", n).format(n=n),
        findings=ngettext("{n} finding", "{n} findings", total).format(n=total),
        severities=f" ({parts})" if parts else "",
    )
    if suppressed is not None:
        text += "; " + _("{n} suppressed by the baseline").format(n=suppressed)
    unreadable = sum(1 for r in results if r.error is not None)
    if unreadable:
        text += "; " + ngettext("{n} file unreadable", "{n} files unreadable", unreadable).format(
            n=unreadable
        )
    return text


# --------------------------------------------------------------------------- command


@app.command()
def analyze(
    files: list[str] = typer.Argument(
        ...,
        metavar="INPUT",
        help="Capture files (pcap, pcapng, optionally gzip), directories (searched "
        "recursively), globs ('captures/**/*.pcap'), or - for standard input.",
    ),
    formats: list[str] | None = typer.Option(
        None,
        "--format",
        "-f",
        metavar="FMT[=FILE]",
        help="Report format, to FILE or to stdout; repeatable (-f table -f "
        "junit=report.xml). Formats: table, json, jsonl, csv, markdown, junit, "
        "sarif, github; parquet=DIR appends the run to a Parquet dataset. Default: table.",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write the report of the format given without =FILE to FILE instead of stdout.",
    ),
    rules: list[Path] | None = typer.Option(
        None,
        "--rules",
        help="Extra rule directory (adds or overrides rules by ID); "
        "repeatable; after the configuration's rules-dirs.",
    ),
    select: list[str] | None = typer.Option(
        None,
        "--select",
        help="Rule IDs or prefixes to enable (comma-separated; 'ALL'); "
        "replaces the configuration's select and extend-select.",
    ),
    extend_select: list[str] | None = typer.Option(
        None, "--extend-select", help="Rule IDs or prefixes to enable in addition."
    ),
    ignore: list[str] | None = typer.Option(
        None,
        "--ignore",
        help="Rule IDs or prefixes to disable (added to the configuration's ignore).",
    ),
    fail_on: FailOn | None = typer.Option(
        None,
        "--fail-on",
        help="Lowest severity that makes the exit status 1 "
        "(default: the configuration's fail-on, else error).",
    ),
    exit_zero: bool = typer.Option(
        False,
        "--exit-zero",
        help="Exit 0 even when findings reach --fail-on (usage and input errors still exit 2).",
    ),
    statistics: bool = typer.Option(
        False, "--statistics", help="Report the number of findings per rule."
    ),
    config: Path | None = typer.Option(None, "--config", metavar="FILE", help=CONFIG_HELP),
    isolated: bool = typer.Option(False, "--isolated", help=ISOLATED_HELP),
    baseline: Path | None = typer.Option(
        None,
        "--baseline",
        metavar="FILE",
        help="Do not report (nor fail on) the findings recorded in this baseline.",
    ),
    write_baseline: Path | None = typer.Option(
        None,
        "--write-baseline",
        metavar="FILE",
        help="Record the findings of this run in FILE as the new baseline (exit 0).",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress bar and no summary line on stderr."
    ),
    decoder: DecoderName = typer.Option(
        DecoderName.native,
        "--decoder",
        help="Packet decoder: pcapcheck's own (native), dpkt's objects, or Wireshark's "
        "through pyshark (tshark).",
    ),
    connections: bool = typer.Option(
        False,
        "--connections",
        help="jsonl: also write one line per connection, its summary "
        '({"path", "connection", "summary"}).',
    ),
    flush_interval: float | None = typer.Option(
        None,
        "--flush-interval",
        metavar="SECONDS",
        help="Live pipe (- with -f jsonl): after this many seconds without data (default "
        "1), write the connections already finalised at the last packet's capture time. "
        "Anywhere else it has no effect: a warning says so.",
    ),
    idle_timeout: float = typer.Option(
        300.0,
        "--idle-timeout",
        metavar="SECONDS",
        help="Finalise a connection idle this long (as Zeek's tcp_inactivity_timeout); a "
        "later segment starts a new, midstream connection.",
    ),
    close_delay: float = typer.Option(
        5.0,
        "--close-delay",
        metavar="SECONDS",
        help="Keep a closed connection's state this long for the segments that may follow "
        "(as Zeek's tcp_close_delay; at most 2*MSL).",
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        help="Worker processes (default: the number of CPUs): files are analysed in "
        "parallel; with fewer files than jobs, each file of 4 MB or more is split "
        "by connection over jobs/files processes. The report is identical to a "
        "serial run's (--jobs 1), in the same order.",
    ),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        metavar="ADDRESS",
        help="Run the analysis on a Dask cluster: tcp://HOST:8786 (a running dask "
        "scheduler; workers read the captures by path) or local:N (N local worker "
        "processes). Same report, same order. Needs pip install 'pcapcheck[dask]'; "
        "not with --jobs.",
    ),
    upload: bool = typer.Option(
        False,
        "--upload",
        help="With --scheduler: send the captures' bytes to the workers instead of their "
        "paths (no shared storage; standard input always is).",
    ),
    shard_size: str | None = typer.Option(
        None,
        "--shard-size",
        metavar="BYTES",
        help="With --scheduler: split a capture this large or larger (256M, 2G; default "
        "256M) into connection shards over the cluster's workers.",
    ),
    lang: str | None = typer.Option(None, "--lang", metavar="LANG", help=LANG_HELP),
) -> None:
    """Analyse captures: a connection table, findings, reports and an exit status for CI."""
    from pcapcheck.api import OptionError
    from pcapcheck.api import analyze as analyze_captures
    from pcapcheck.report import DIRECTORY_FORMATS, FORMATS, DatasetError
    from pcapcheck.report import baseline as baselines
    from pcapcheck.results import FileResult
    from pcapcheck.run.tasks import problem_line

    use_language(lang, config=False)  # the configuration's lang: pcapcheck.analyze's
    try:
        plan = parse_formats(
            formats, output, [*FORMATS, *DIRECTORY_FORMATS], directories=list(DIRECTORY_FORMATS)
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    # directory formats (parquet=DIR): written capture by capture as the analysis goes
    # (by the API, or by a cluster's workers); the text formats at the end, here
    datasets = {name: path for name, path in plan if name in DIRECTORY_FORMATS and path}
    plan = [(name, path) for name, path in plan if name not in DIRECTORY_FORMATS]
    if flush_interval is not None and not 0 < flush_interval < float("inf"):
        raise fail(f"--flush-interval: expected a number of seconds > 0, got {flush_interval}")
    # a live pipe: each connection's lines written as it is finalised (_LiveSink)
    sink: _LiveSink | None = None
    stdin = cast(BinaryIO, getattr(sys.stdin, "buffer", sys.stdin))
    if live_pipe(files, plan, decoder.value):
        from pcapcheck.capture.inputs import LiveStream

        stdin = cast(BinaryIO, LiveStream(stdin, flush_interval or 1.0))
        sink = _LiveSink(stdin, None)  # its report context once the rules are known
    if scheduler is not None and jobs is not None:
        raise fail("--jobs sets local worker processes: not with --scheduler (the cluster's)")
    cluster_bar = _Progress()  # a cluster's progress: files and bytes done on its workers
    try:
        report = analyze_captures(
            files,
            select=split_ids(select),
            extend_select=split_ids(extend_select),
            ignore=split_ids(ignore),
            rules=rules,
            fail_on=fail_on.value if fail_on is not None else None,
            decoder=decoder.value,
            jobs=jobs,
            idle_timeout=idle_timeout,
            close_delay=close_delay,
            config=config,
            isolated=isolated,
            stdin=stdin,
            # A JSON report: captures analysed in shards hand over their encoded summaries.
            encode_summaries=any(name == "json" for name, _file in plan),
            datasets=datasets or None,
            live=sink,
            # only this jsonl report wants the connections: written, then dropped
            live_keep=bool(plan != [("jsonl", None)] or baseline or write_baseline or datasets),
            scheduler=scheduler,
            upload=upload,
            shard_size=shard_size,
            progress=cluster_bar.done if scheduler is not None else None,
            lang=lang,
        )
    except OptionError as exc:  # the API's parameter names said as this command's options
        raise fail(option_words(str(exc), exc.names)) from None
    if flush_interval is not None and sink is None:  # as ruff warns of a setting that does nothing
        from pcapcheck.i18n import gettext as _

        print(
            _(
                "pcapcheck: warning: --flush-interval applies to a live pipe only"
                " (- on a pipe with -f jsonl): ignored"
            ),
            file=sys.stderr,
        )
    if sink is not None:
        sink.writer.ctx = _report_context(report, statistics, connections)

    results: list[FileResult] = []
    status = 0
    with report, progress(len(report), progress_enabled(quiet)) as bar:
        cluster_bar.bar, cluster_bar.task = (bar.bar, bar.task) if scheduler else (None, None)
        try:
            known = baselines.load_baseline(baseline) if baseline is not None else None
        except baselines.BaselineError as exc:
            raise fail(str(exc)) from None
        if sink is not None and known is not None:
            sink.remaining = Counter(known)
        # The results come in the order of the inputs, whatever runs them (this process,
        # --jobs worker processes): the report is the one a serial run writes.
        try:
            with stopping_on_signals(stdin) if sink is not None else nullcontext():
                for result in report:
                    if scheduler is None:
                        bar.start(result.path)
                    line = problem_line(result)
                    if line is not None:
                        bar.log(line)
                        status = 2
                    results.append(result)
                    if scheduler is None:
                        bar.advance()
        except DatasetError as exc:  # a --format parquet=DIR that cannot be written
            raise fail(str(exc)) from None
    if sink is not None and sink.error is not None:
        raise write_error("the standard output", sink.error)
    gate = report.fail_on

    recorded = None
    if write_baseline is not None:
        try:
            recorded = baselines.write_baseline(results, write_baseline)
        except baselines.BaselineError as exc:
            raise fail(str(exc)) from None
    suppressed = None
    if known is not None:
        results, suppressed = baselines.apply_baseline(results, known)

    ctx = _report_context(report, statistics, connections)
    for name, path in plan:
        if path is None:
            with writing_stdout():
                # live: the lines are written; what is left is an unreadable input's
                _write(name, [r for r in results if r.error] if sink else results, ctx, sys.stdout)
            continue
        try:
            with path.open("w", encoding="utf-8") as out:
                _write(name, results, ctx, out)
        except OSError as exc:
            raise write_error(str(path), exc) from None
    if any(name == "github" for name, _ in plan):
        _step_summary(results, ctx, lambda line: typer.echo(line, err=True))

    if not quiet:
        if recorded is not None:
            from pcapcheck.i18n import ngettext

            typer.echo(
                ngettext(
                    "pcapcheck: wrote {n} finding to the baseline {path}",
                    "pcapcheck: wrote {n} findings to the baseline {path}",
                    recorded,
                ).format(n=recorded, path=write_baseline),
                err=True,
            )
        if suppressed is not None or all(path is not None for _, path in plan):
            typer.echo(summary_line(results, suppressed), err=True)

    if status == 0 and recorded is None and not exit_zero:
        status = gate_status(results, gate)
    raise typer.Exit(status)
