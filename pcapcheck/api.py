"""The public Python API: :func:`analyze` (``pcapcheck.analyze``) and its :class:`Report`.

::

    import pcapcheck

    report = pcapcheck.analyze(["captures/"], select=["HS", "CL"], fail_on="warning")
    for result in report:                  # one FileResult per capture, as each is done
        print(result.path, result.packets, result.worst_severity)
        for f in result.findings:          # pcapcheck.model.Finding
            print(f.rule, f.frame, f.severity, f.message)
    raise SystemExit(report.exit_status)   # 0, 1 (findings reach fail_on), 2 (unreadable)

The options are those of ``pcapcheck analyze``, with the same names and meaning, and the
same configuration file (``pcapcheck.toml`` or ``[tool.pcapcheck]`` in
``pyproject.toml``, found from the working directory upward; ``config=`` names one,
``isolated=True`` ignores them); the command line's ``analyze`` command is this function
plus its reports. How the work is executed (in this process, in ``jobs`` local worker
processes, or by an :class:`~pcapcheck.run.executors.Executor` given as ``executor=``)
changes nothing in the results: each is the serial analysis of its capture.

Data path: :func:`analyze` resolves the options into the rule selection and
:class:`~pcapcheck.run.tasks.Settings`, turns the inputs into
:class:`~pcapcheck.run.tasks.Job` objects (one per capture), and the executor runs
:func:`pcapcheck.pipeline.analyze_file` for each (capture → decode → connections →
engine → events → findings), giving one :class:`~pcapcheck.results.FileResult` per
capture, in input order.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pcapcheck.results import FAIL_ON, SEVERITY_RANK, FileResult, failed

if TYPE_CHECKING:
    from pcapcheck.catalog.rules import Catalog
    from pcapcheck.report import Dataset
    from pcapcheck.run.executors import Executor
    from pcapcheck.run.tasks import Job, Settings

__all__ = ["DECODERS", "FileResult", "OptionError", "Report", "analyze"]

#: The packet decoders (``decoder=``, ``--decoder``).
DECODERS = ("native", "dpkt", "tshark")

PathLike = str | os.PathLike[str]


class OptionError(ValueError):
    """An option of :func:`analyze` is wrong, or names nothing to analyse: an unknown rule
    or selector, a rule parameter of the wrong type, a bad ``fail_on``, ``decoder``,
    ``jobs`` or timer, a configuration or rules file that cannot be read or is invalid,
    a directory without captures, a glob that matches nothing. The message is one line
    (what ``pcapcheck analyze`` prints before it exits with status 2). ``names``: the
    parameters of :func:`analyze` the message names by their names here (``shard_size``),
    which the command line says as its options (``--shard-size``)."""

    def __init__(self, message: str, names: Sequence[str] = ()):
        super().__init__(message)
        self.names = tuple(names)


class Report:
    """The analysis of a list of captures, as :func:`analyze` returns it.

    Iterating gives one :class:`~pcapcheck.results.FileResult` per capture, in input
    order, as each is analysed: the first capture's result comes before the second
    capture is read (with ``jobs`` > 1, worker processes run ahead). The results are
    kept, so the report can be iterated again (without analysing anything again) and
    :attr:`files`, :attr:`worst_severity`, :meth:`failed` and :attr:`exit_status` see
    them all; each result's connections and findings are spools that hold at most a
    few thousand items in memory and the rest in temporary files, so a long capture is
    never in memory whole. A capture that cannot be read is a result whose ``error``
    is set (one line), never an exception.

    Also a context manager: leaving it (or :meth:`close`) stops an analysis still
    running and deletes the copy of standard input; the results already given stay
    usable.
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        settings: Settings,
        executor: Executor,
        fail_on: str,
        active: frozenset[str],
        encode_summaries: bool = False,
        stack: ExitStack | None = None,
    ):
        self._jobs = list(jobs)
        self.settings = settings
        self._executor = executor
        #: the ``fail_on`` in force (the option, else the configuration's, else "error")
        self.fail_on = fail_on
        #: the IDs of the rules evaluated (before per-file ignores)
        self.active = active
        self._encode = encode_summaries
        self._stack = stack
        self._done: list[FileResult] = []
        self._running: Iterator[FileResult] | None = None
        self._finished = False

    # ------------------------------------------------------------------ the captures

    @property
    def catalog(self) -> Catalog:
        """The rule catalogue the captures are analysed with (the shipped rules plus
        ``rules`` and the configuration's ``rules-dirs``)."""
        return self.settings.catalog

    @property
    def inputs(self) -> list[str]:
        """The name of each capture, in order (as its result's ``path`` will be)."""
        return [job.name for job in self._jobs]

    def __len__(self) -> int:
        """The number of captures (known before any is analysed)."""
        return len(self._jobs)

    def __iter__(self) -> Iterator[FileResult]:
        i = 0
        while True:
            if i < len(self._done):
                yield self._done[i]
                i += 1
                continue
            result = self._next()
            if result is None:
                return

    def _next(self) -> FileResult | None:
        """Analyse (or take from the executor) the next capture's result; None at the end."""
        if self._finished:
            return None
        if self._running is None:
            self._running = self._executor.results(self._jobs, self.settings, self._encode)
        try:
            result = next(self._running)
            self._write_datasets(result)
        except StopIteration:
            self.close()
            return None
        except BaseException:
            self.close()
            raise
        self._done.append(result)
        return result

    def _write_datasets(self, result: FileResult) -> None:
        """Write ``result`` (the next job's) into the run's datasets, unless the
        executor's workers write them (``writes_datasets``)."""
        if not self.settings.datasets or getattr(self._executor, "writes_datasets", False):
            return
        job = self._jobs[len(self._done)]
        for dataset in self.settings.datasets:
            dataset.write(result, source=job.path)

    @property
    def run(self) -> str | None:
        """The run id naming this run's files in its datasets (``datasets=``), else None."""
        return self.settings.datasets[0].run if self.settings.datasets else None

    @property
    def files(self) -> list[FileResult]:
        """Every capture's result, in input order (analyses what is left first)."""
        for _result in self:
            pass
        return list(self._done)

    # ------------------------------------------------------------------ the verdict

    @property
    def worst_severity(self) -> str | None:
        """The most severe finding's severity over every capture (``"error"``,
        ``"warning"``, ``"info"``), None without findings (analyses what is left)."""
        worst = [r.worst_severity for r in self.files]
        ranks = [SEVERITY_RANK[s] for s in worst if s is not None]
        return ("info", "warning", "error")[max(ranks)] if ranks else None

    def failed(self, fail_on: str | None = None) -> bool:
        """Whether a finding of any capture reaches ``fail_on`` (``"error"``,
        ``"warning"``, ``"info"``, ``"never"``; default :attr:`fail_on`). Raises
        :class:`OptionError` for another value."""
        gate = self.fail_on if fail_on is None else fail_on
        if gate not in FAIL_ON:
            raise OptionError(f"fail_on: {gate!r} is not one of {', '.join(FAIL_ON)}")
        return any(failed(r.findings, gate) for r in self.files)

    @property
    def errors(self) -> list[FileResult]:
        """The results of the captures that could not be read (``error`` set)."""
        return [r for r in self.files if r.error is not None]

    @property
    def exit_status(self) -> int:
        """The exit status ``pcapcheck analyze`` gives for this report (without a
        baseline): 2 when a capture could not be read, else 1 when a finding reaches
        :attr:`fail_on`, else 0."""
        if self.errors:
            return 2
        return int(self.failed())

    # ------------------------------------------------------------------ resources

    def close(self) -> None:
        """Stop the analysis if it still runs (worker processes shut down) and delete
        the temporary copy of standard input. The results given so far stay usable
        (:meth:`FileResult.close` deletes a result's own temporary files)."""
        self._finished = True
        running, self._running = self._running, None
        if running is not None:
            close = getattr(running, "close", None)
            if close is not None:
                close()
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def __enter__(self) -> Report:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Report of {len(self)} capture(s), {len(self._done)} analysed>"


def _ids(name: str, value: str | Iterable[str] | None) -> list[str] | None:
    """Rule IDs or prefixes given as ``"HS,CL001"`` or ``["HS", "CL001"]``; None for None."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in items):
        raise OptionError(f"{name}: expected rule IDs or prefixes (strings), got {value!r}")
    return [v.strip() for item in items for v in item.split(",") if v.strip()]


def _paths(value: PathLike | Iterable[PathLike] | None) -> list[Path]:
    if value is None:
        return []
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    return [Path(v) for v in items]


def _number(name: str, value: Any) -> float:
    """``value`` as a float when it is a finite number of seconds >= 0 (not nan, not
    inf, not a bool); :class:`OptionError` (one line) else."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < math.inf  # false for nan
    ):
        raise OptionError(f"{name}: expected a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _overrides(catalog: Catalog, params: Any, severity: Any) -> tuple[dict, dict]:
    """``params`` (rule ID → {parameter: value}) checked and converted by the catalogue,
    ``severity`` (rule ID → severity) checked; :class:`OptionError` else."""
    from pcapcheck.catalog.rules import SEVERITIES, CatalogError

    checked: dict[str, dict[str, Any]] = {}
    if params is not None:
        if not isinstance(params, Mapping):
            raise OptionError(f"params: expected {{rule ID: {{parameter: value}}}}, got {params!r}")
        for rule_id, values in params.items():
            if not isinstance(values, Mapping):
                raise OptionError(
                    f"params.{rule_id}: expected {{parameter: value}}, got {values!r}"
                )
            for name, value in values.items():
                try:
                    checked.setdefault(rule_id, {})[name] = catalog.params(rule_id, {name: value})[
                        name
                    ]
                except CatalogError as exc:
                    raise OptionError(f"params: {exc}") from None
    levels: dict[str, str] = {}
    if severity is not None:
        if not isinstance(severity, Mapping):
            raise OptionError(f"severity: expected {{rule ID: severity}}, got {severity!r}")
        for rule_id, level in severity.items():
            if rule_id not in catalog:
                raise OptionError(f"severity: unknown rule {rule_id!r}")
            if level not in SEVERITIES:
                raise OptionError(
                    f"severity.{rule_id}: {level!r} is not one of {', '.join(SEVERITIES)}"
                )
            levels[rule_id] = level
    return checked, levels


def _datasets(datasets: Any, run: str | None) -> tuple[Dataset, ...]:
    """The :class:`~pcapcheck.report.Dataset` of each ``{format: directory}`` of
    ``datasets``, all named by ``run`` (None: a new run id), checked (the format's
    library installed, the run id, the directory); :class:`OptionError` else."""
    if not datasets:
        return ()
    from pcapcheck.report import DIRECTORY_FORMATS, Dataset, DatasetError, new_run_id

    if not isinstance(datasets, Mapping):
        raise OptionError(f"datasets: expected {{format: directory}}, got {datasets!r}")
    run_id = run if run is not None else new_run_id()
    out = []
    for name, directory in datasets.items():
        if name not in DIRECTORY_FORMATS:
            raise OptionError(
                f"datasets: unknown directory format {name!r} "
                f"(valid: {', '.join(DIRECTORY_FORMATS)})"
            )
        dataset = Dataset(name, os.fspath(directory), run_id)
        try:
            dataset.check()
        except DatasetError as exc:
            raise OptionError(str(exc)) from None
        out.append(dataset)
    return tuple(out)


def _cluster(
    scheduler: str, upload: bool, shard_size: Any, progress: Any, stack: ExitStack
) -> Executor:
    """The connected :class:`pcapcheck.run.cluster.DaskExecutor` of :func:`analyze`'s
    ``scheduler`` (closed with ``stack``); :class:`OptionError` (one line, ``stack``
    closed) for a bad address or size, Dask missing, a scheduler that does not answer."""
    from pcapcheck.run.cluster import SHARD_BYTES, ClusterError, DaskExecutor, parse_size

    try:
        size = SHARD_BYTES if shard_size is None else parse_size(shard_size)
        executor = DaskExecutor(scheduler, upload=bool(upload), shard_size=size, progress=progress)
        executor.connect()
    except (ClusterError, ValueError) as exc:
        stack.close()
        raise OptionError(str(exc)) from None
    stack.callback(executor.close)
    return executor


def _live_stdin(inputs: Any, decoder: str, stdin: IO[bytes] | None, interval: Any) -> Any:
    """The :class:`~pcapcheck.capture.inputs.LiveStream` of a live analysis
    (:func:`analyze`'s ``live``), its options checked; :class:`OptionError` else."""
    from pcapcheck.capture.inputs import LiveStream

    if (inputs if isinstance(inputs, str) else list(inputs)) not in ("-", ["-"]):
        raise OptionError("live: a live pipe is standard input alone: give '-' as the only input")
    if decoder == "tshark":
        raise OptionError("live: the tshark decoder reads files: use native or dpkt")
    if isinstance(stdin, LiveStream):
        return stdin
    seconds = _number("flush_interval", interval)
    if not seconds:
        raise OptionError(f"flush_interval: expected a number of seconds > 0, got {interval!r}")
    stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
    if stream is None:
        return None
    try:
        return LiveStream(stream, seconds)
    except (AttributeError, OSError, ValueError):  # no file descriptor: read it as usual
        return stream


def _live_job(stdin: bool, stream: Any, sink: Any, keep: bool) -> Any:
    """The :class:`pcapcheck.pipeline.Live` of the job of standard input (``stdin``),
    read from ``stream`` (a live pipe; None: standard input was not one, e.g. a
    :class:`io.BytesIO`, and was copied: its connections still go to ``sink``); None
    for another job or without ``sink``."""
    if not stdin or sink is None:
        return None
    from pcapcheck.pipeline import Live

    return Live(stream, sink, keep=bool(keep))


def analyze(
    inputs: PathLike | Iterable[PathLike],
    *,
    select: str | Iterable[str] | None = None,
    extend_select: str | Iterable[str] | None = None,
    ignore: str | Iterable[str] | None = None,
    rules: PathLike | Iterable[PathLike] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    severity: Mapping[str, str] | None = None,
    fail_on: str | None = None,
    decoder: str = "native",
    jobs: int | None = 1,
    idle_timeout: float = 300.0,
    close_delay: float = 5.0,
    config: PathLike | None = None,
    isolated: bool = False,
    stdin: IO[bytes] | None = None,
    executor: Executor | None = None,
    encode_summaries: bool = False,
    scheduler: str | None = None,
    upload: bool = False,
    shard_size: int | str | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    datasets: Mapping[str, PathLike] | None = None,
    run: str | None = None,
    live: Callable[[dict[str, Any] | None, list[Any]], None] | None = None,
    flush_interval: float = 1.0,
    live_keep: bool = True,
    lang: str | None = None,
) -> Report:
    """Analyse captures: a :class:`Report` that gives one
    :class:`~pcapcheck.results.FileResult` per capture (connections, findings, counters)
    as it is iterated.

    ``inputs``: one or several capture files (pcap, pcapng, optionally gzip-compressed),
    directories (searched recursively), globs (``"captures/**/*.pcap"``) or ``"-"``
    (``stdin``, default the process's standard input), as ``pcapcheck analyze`` takes
    them; a file that is not a capture becomes a result with ``error`` set.

    Rules, as the command line's options and configuration keys: ``select`` (rule IDs or
    prefixes, ``"ALL"``; replaces the default set and the configuration's ``select`` and
    ``extend-select``), ``extend_select`` (added), ``ignore`` (removed; the more specific
    selector wins), each a list or a comma-separated string; ``rules``: extra rule
    directories (add or override rules by ID, after the configuration's
    ``rules-dirs``); ``params``: rule parameters, ``{"CL010": {"msl": 30}}`` (checked
    and converted by the catalogue, over the configuration's ``[rules.*]`` values);
    ``severity``: severity overrides, ``{"HS003": "warning"}``.

    ``fail_on``: the lowest severity that fails the run (``"error"``, ``"warning"``,
    ``"info"``, ``"never"``; default the configuration's ``fail-on``, else ``"error"``):
    what :meth:`Report.failed` and :attr:`Report.exit_status` use.

    ``decoder``: ``"native"`` (pcapcheck's, the default), ``"dpkt"`` or ``"tshark"``
    (Wireshark's dissectors). ``idle_timeout``: seconds after which an idle connection
    is finalised (a later segment starts a new, midstream connection; Zeek's
    tcp_inactivity_timeout); ``close_delay``: seconds a closed connection keeps its
    state for the segments that may follow (Zeek's tcp_close_delay).

    ``jobs``: worker processes (default 1: everything in this process; None: the number
    of CPUs): captures in parallel, and with fewer captures than jobs each capture of 4 MB
    or more split by connection; the results are the same. ``executor``: an
    :class:`~pcapcheck.run.executors.Executor` to run the work instead (``jobs`` is then
    ignored). ``config``: the configuration file to use (``pcapcheck.toml``, or a
    ``pyproject.toml`` with a ``[tool.pcapcheck]`` table); default the one found from
    the working directory upward; ``isolated``: use none. ``encode_summaries``: for a
    writer of the JSON report: captures analysed in shards hand over their connection
    summaries already encoded (``FileResult.connection_lines``; ``connections`` stay
    readable).

    ``scheduler``: run the work on a Dask cluster (:class:`pcapcheck.run.cluster.DaskExecutor`,
    the extra ``pip install 'pcapcheck[dask]'``): ``"tcp://HOST:8786"`` (a running
    ``dask scheduler``; its workers read the captures by absolute path, unless
    ``upload``) or ``"local:N"`` (a local cluster of N worker processes, closed with
    the report); ``jobs`` is then ignored. The report is the same, in the same order.
    Connected here: :class:`OptionError` when Dask is not installed or the scheduler
    does not answer within :data:`pcapcheck.run.cluster.CONNECT_TIMEOUT` seconds.
    ``upload``: send each capture's bytes to the workers (standard input always is).
    ``shard_size``: bytes (``"256M"``; default
    :data:`pcapcheck.run.cluster.SHARD_BYTES`, 256 MB) from which a capture is split
    into connection shards over the cluster's workers. ``progress``: called as each
    capture's task ends on the cluster with ``(files done, bytes done, bytes in all)``.

    ``datasets``: directory outputs, ``{"parquet": "results/"}`` (the keys of
    :data:`pcapcheck.report.DIRECTORY_FORMATS`; ``--format parquet=DIR``): each capture's
    files are written into the directory as its result is taken from the report (by the
    cluster's workers themselves with a distributed executor), named by ``run`` (default
    a new :func:`pcapcheck.report.new_run_id`, :attr:`Report.run`). The directory (not
    its missing parents) and its tables are made and tried here, before any analysis:
    :class:`OptionError` (one line) when they cannot be. Writing raises
    :class:`pcapcheck.report.DatasetError` (one line) from the report's iteration.

    ``live``: analyse standard input as it arrives (a live pipe: ``inputs`` must be
    ``"-"`` alone, ``decoder`` native or dpkt; in this process, ``jobs`` and
    ``executor`` are not used): ``live(summary, findings)`` is called for each
    connection as soon as it is finalised, and ``live(None, findings)`` for file-level
    findings (:class:`pcapcheck.pipeline.Live`); the report's result is the same as
    without it. ``stdin`` is read as a
    :class:`~pcapcheck.capture.inputs.LiveStream` (made with ``flush_interval``, the
    seconds of silence after which what is already final is given, unless ``stdin``
    is one already: its own interval then applies). ``live_keep``: False: the result
    holds no connections nor events (given to ``live`` alone), only its findings (the
    verdicts), so that a pipe read for days keeps nothing else.

    ``lang``: the language of the findings' messages and of every text a report gives a
    person (``"en"``, ``"ko"``, or a locale name such as ``"ko_KR.UTF-8"``; default the
    configuration's ``lang``, else the language already set, :mod:`pcapcheck.i18n`, which
    the command line takes from the environment). It is set for the process
    (:func:`pcapcheck.i18n.set_language`) when given here or by the configuration;
    machine keys stay English.

    The options, the configuration and the inputs are checked here, before anything is
    analysed: :class:`OptionError` (a ValueError) for anything wrong, with a one-line
    message. Nothing is analysed until the report is iterated (or one of its verdicts
    is asked for).
    """
    from pcapcheck.capture.inputs import InputError, collect_inputs
    from pcapcheck.catalog.config import ConfigError, resolve_config, resolve_selection
    from pcapcheck.catalog.rules import CatalogError, load_catalog
    from pcapcheck.i18n import LANGUAGES, normalize_language, set_language
    from pcapcheck.run.executors import executor_for
    from pcapcheck.run.tasks import Job, Settings

    if decoder not in DECODERS:
        raise OptionError(f"decoder: {decoder!r} is not one of {', '.join(DECODERS)}")
    if lang is not None and (not isinstance(lang, str) or normalize_language(lang) is None):
        raise OptionError(f"lang: {lang!r} is not one of {', '.join(LANGUAGES)}")
    if lang is not None:
        set_language(lang)
    if fail_on is not None and fail_on not in FAIL_ON:
        raise OptionError(f"fail_on: {fail_on!r} is not one of {', '.join(FAIL_ON)}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise OptionError(f"jobs: expected a number of processes >= 1, got {jobs!r}")
    timers = _number("idle_timeout", idle_timeout), _number("close_delay", close_delay)
    if live is not None:
        stdin = _live_stdin(inputs, decoder, stdin, flush_interval)
    if isinstance(inputs, (str, os.PathLike)):
        args = [os.fspath(inputs)]
    else:
        args = [os.fspath(item) for item in inputs]
    if not args:
        raise OptionError("no input: give capture files, directories, globs or '-'")
    try:
        cfg = resolve_config(Path(config) if config is not None else None, isolated)
        catalog = load_catalog([*cfg.rules_dirs, *_paths(rules)])
        rule_params = cfg.check(catalog)
        active = resolve_selection(
            catalog,
            cfg,
            _ids("select", select),
            _ids("extend_select", extend_select),
            _ids("ignore", ignore),
        )
    except (ConfigError, CatalogError) as exc:
        raise OptionError(str(exc)) from None
    if lang is None and cfg.lang is not None:
        set_language(cfg.lang)
    extra_params, levels = _overrides(catalog, params, severity)
    for rule_id, values in extra_params.items():
        rule_params[rule_id] = {**rule_params.get(rule_id, {}), **values}
    settings = Settings(
        catalog,
        rule_params,
        {**cfg.severity, **levels},
        decoder,
        idle_timeout=timers[0],
        close_delay=timers[1],
        datasets=_datasets(datasets, run),
        tunnel_ports=cfg.tunnel_ports,
    )
    stack = ExitStack()
    try:
        found = stack.enter_context(
            collect_inputs(args, stdin if stdin is not None else getattr(sys.stdin, "buffer", None))
        )
    except InputError as exc:
        stack.close()
        raise OptionError(str(exc)) from None
    work = [
        Job(
            item.path,
            item.name,
            frozenset(active if item.stdin else active - cfg.ignored_for(item.path, catalog)),
            item.stdin,
            live=_live_job(item.stdin, item.stream, live, live_keep),
        )
        for item in found
    ]
    if live is not None:  # the sink is called in this process
        executor, jobs = None, 1
    if scheduler is not None:
        if live is not None or executor is not None:
            stack.close()
            raise OptionError("scheduler: not with live (analysed in this process) nor executor")
        executor = _cluster(scheduler, upload, shard_size, progress, stack)
    elif upload or shard_size is not None:
        stack.close()
        given = [n for n, on in (("upload", upload), ("shard_size", shard_size is not None)) if on]
        raise OptionError(
            f"{', '.join(given)}: only with scheduler (for a run on a cluster)",
            (*given, "scheduler"),
        )
    return Report(
        work,
        settings,
        executor if executor is not None else executor_for(jobs),
        fail_on if fail_on is not None else (cfg.fail_on or "error"),
        frozenset(active),
        encode_summaries=encode_summaries,
        stack=stack,
    )
