"""The Parquet dataset (``--format parquet=DIR``): the results of every run as two tables a
query engine reads, growing run after run.

A directory format (:data:`pcapcheck.report.DIRECTORY_FORMATS`): it writes files into a
directory instead of text to a stream. pyarrow is imported only when a dataset is
written (the ``parquet`` extra: ``pip install 'pcapcheck[parquet]'``); without it
:func:`check` raises :class:`~pcapcheck.report.DatasetError` naming the extra.

Layout (Hive partitioning: DuckDB's ``read_parquet(..., hive_partitioning=true)``,
``pyarrow.dataset.dataset(DIR/"connections", partitioning="hive")``, pandas, Spark)::

    DIR/connections/date=YYYY-MM-DD/capture=sha256-<16 hex>/<run>.<name>.parquet
    DIR/findings/date=YYYY-MM-DD/capture=sha256-<16 hex>/<run>.<name>.parquet

* ``date``: the UTC date of the capture's first packet (its first record; the date of
  the analysis when the capture has no packet, or a timestamp no date can hold).
* ``capture``: ``sha256-`` and the first 16 hex digits of the SHA-256 of the capture
  file's bytes as stored (compressed, for a ``.pcap.gz``: what ``sha256sum`` prints;
  standard input: its spooled copy). The prefix keeps the value a string: a hex prefix
  of digits only (or digits and one ``e``) would be typed as a number by the readers'
  partition type inference, and not for every capture alike.
* ``<run>``: the run id (:func:`pcapcheck.report.new_run_id`, e.g.
  ``20261207T035222Z-3fa91c``): one ``pcapcheck analyze`` invocation.
* ``<name>``: 8 hex digits of the SHA-256 of the capture's name in the report
  (``capture_path``): the same bytes under two names in one run (two copies of a
  capture) are two captures of the report, and keep both their rows.

A run adds files and never rewrites another run's: a fleet's results accumulate. The
file name depends only on (capture bytes, run, name), so writing the same capture in
the same run again (a retried cluster task) replaces its own files instead of adding
rows; each file is written under a hidden name (``.<file name>.<pid>-<random>.tmp``, which
neither reader lists) and renamed into place, so a reader never sees half a file (a
process killed while writing leaves only such a hidden file, safe to delete).
Every capture gets both files, an empty one when it has no connection or no finding (a
query over a dataset of clean captures still finds the findings table). A capture that
could not be read (``FileResult.error``) writes nothing.

Keys: within a run, a capture is its ``capture_path``, a connection ``(capture_path,
connection)``; across runs, ``capture_sha256`` identifies the same bytes. A finding's
connection is the row of ``connections`` with the same ``run``, ``capture_path`` and
``connection``.

The rows are what the JSON report says (``schemas/report.schema.json``): nothing is
decided again here. Every finding the run reported is written, before ``--baseline``
(a baseline gates a run; the dataset records it). Messages are the engine's English
text (the data a query groups by does not change with ``--lang``). Memory: the
connections and findings are read from their spools :data:`BATCH_ROWS` at a time (as
Python objects), kept as Arrow columns until a row group of :data:`ROW_GROUP_ROWS` rows
is written, whatever their number.

Columns of ``connections`` (one row per TCP connection):

=====================  ================================  =========================================
column                 type                              meaning (unit)
=====================  ================================  =========================================
run                    dictionary<string>                the run id
pcapcheck_version      dictionary<string>                the version that wrote the row
capture_path           dictionary<string>                the capture as named in the report
capture_sha256         dictionary<string>                SHA-256 of the capture file (64 hex)
connection             int64                             connection id (1-based, per capture)
client                 string                            ``ip:port`` (IPv6 ``[addr]:port``)
client_ip              string                            the client's address
client_port            uint16                            the client's port
server                 string                            ``ip:port``
server_ip              string                            the server's address
server_port            uint16                            the server's port
roles_inferred         bool                              no SYN seen: roles guessed from the ports
first_frame            int64                             1-based frame number (Wireshark's)
last_frame             int64                             1-based frame number
start                  timestamp[us, tz=UTC]             the first segment's time (null when no
                                                         date can hold it)
duration_s             float64                           seconds, first to last segment
client_packets         int64                             segments the client sent
server_packets         int64                             segments the server sent
client_bytes           int64                             payload bytes the client sent
server_bytes           int64                             payload bytes the server sent
client_isn             uint32                            absolute ISN (null: SYN not captured)
server_isn             uint32                            absolute ISN (null: SYN,ACK not captured)
handshake              dictionary<string>                complete, incomplete, refused, none
close                  dictionary<string>                graceful, half, reset, open, none
client_state           dictionary<string>                final RFC 9293 state (``FIN-WAIT-2``)
server_state           dictionary<string>                final RFC 9293 state
conn_state             dictionary<string>                Zeek's conn_state (``SF``, ``S2``...)
history                string                            Zeek's history (``ShADadFf``)
findings               int64                             findings on this connection
encapsulation          list<string>                      tunnel path, outermost first (null:
                                                         no tunnel)
transitions            string (JSON)                     ``{"client": [...], "server": [...]}``
                                                         as in the JSON report
=====================  ================================  =========================================

Columns of ``findings`` (one row per finding): ``run``, ``pcapcheck_version``,
``capture_path``, ``capture_sha256`` as above, then

=====================  ================================  =========================================
column                 type                              meaning (unit)
=====================  ================================  =========================================
rule                   dictionary<string>                rule id (``CL003``)
name                   dictionary<string>                rule name (``close-incomplete``)
severity               dictionary<string>                error, warning, info
connection             int64                             connection id (null: file-level)
frame                  int64                             1-based frame number (null: none)
message                string                            the message (relative sequence numbers)
data                   string (JSON)                     the event values (keys ending in
                                                         ``_abs``: absolute sequence numbers)
=====================  ================================  =========================================

Readers add the partition columns ``date`` (DuckDB: DATE; pyarrow: string) and
``capture`` (string).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pcapcheck.__about__ import __version__
from pcapcheck.i18n import gettext as _
from pcapcheck.jsonlines import dumps
from pcapcheck.report import DatasetError, utf8_text
from pcapcheck.report.common import endpoint_parts

if TYPE_CHECKING:
    import pyarrow as pa

    from pcapcheck.results import FileResult

__all__ = [
    "BATCH_ROWS",
    "ROW_GROUP_ROWS",
    "TABLES",
    "capture_facts",
    "check",
    "schema",
    "write",
    "write_result",
]

#: Summaries or findings converted to Arrow at a time: the Python objects held at once
#: (a summary with its transitions is a few KB as Python objects, some 1 KB in Arrow).
BATCH_ROWS = 8_192

#: Rows per row group (a multiple of :data:`BATCH_ROWS`): the Arrow rows held at once.
ROW_GROUP_ROWS = 65_536

#: The tables of the dataset, each a subdirectory of it.
TABLES = ("connections", "findings")

#: A run id: a file name without separators (it names each run's files).
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

#: Bytes read at a time to hash a capture.
_HASH_CHUNK = 1 << 20


def _pyarrow() -> Any:
    """The ``pyarrow`` and ``pyarrow.parquet`` modules; :class:`DatasetError` when the
    ``parquet`` extra is not installed."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            _("the parquet format needs pyarrow: {command}").format(
                command="pip install 'pcapcheck[parquet]'"
            )
        ) from None
    return pa, pq


def check(directory: str | os.PathLike[str], run: str) -> None:
    """Raise :class:`DatasetError` (one line) when a dataset cannot be written at
    ``directory`` with run id ``run``: pyarrow missing (the ``parquet`` extra), a run id
    that is not a plain file name (letters, digits, ``.``, ``_``, ``-``; at most 100),
    ``directory`` an existing file or under a directory that does not exist (``directory``
    itself is created, not its parents, as ``mkdir`` without ``-p`` does; the other
    formats do not create directories either), ``connections`` or ``findings`` not
    creatable or not writable in it (each is tried: a hidden file created and deleted).
    Creates ``directory``, ``directory/connections`` and ``directory/findings``."""
    _check_run(run)
    for folder in _tables(directory):
        try:
            fd, probe = tempfile.mkstemp(prefix=".probe-", suffix=".tmp", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise DatasetError(
                _("cannot write in {path}: {reason}").format(
                    path=utf8_text(str(folder)), reason=exc.strerror or exc
                )
            ) from None


def _check_run(run: str) -> None:
    """:class:`DatasetError` when pyarrow is missing or ``run`` is not a run id."""
    _pyarrow()
    if not isinstance(run, str) or not _RUN_ID.fullmatch(run):
        raise DatasetError(
            _(
                "run id {run}: use letters, digits, '.', '_' and '-' (at most 100, "
                "not starting with '.', '_' or '-')"
            ).format(run=repr(run))
        )


def _tables(directory: str | os.PathLike[str]) -> list[Path]:
    """``directory`` (created, not its parents) and its :data:`TABLES` subdirectories
    (created); :class:`DatasetError` (one line) when one cannot be."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise DatasetError(
            _("{path}: not a directory (--format parquet=DIR)").format(path=utf8_text(str(path)))
        )
    folders = [path / table for table in TABLES]
    for folder in (path, *folders):
        try:
            folder.mkdir(exist_ok=True)
        except FileNotFoundError as exc:
            if not folder.parent.is_dir():
                raise DatasetError(
                    _("cannot create {path}: its parent directory does not exist").format(
                        path=utf8_text(str(folder))
                    )
                ) from None
            raise DatasetError(
                _("cannot create {path}: {reason}").format(
                    path=utf8_text(str(folder)), reason=exc.strerror or exc
                )
            ) from None
        except FileExistsError:
            raise DatasetError(
                _("{path}: not a directory (--format parquet=DIR)").format(
                    path=utf8_text(str(folder))
                )
            ) from None
        except OSError as exc:
            raise DatasetError(
                _("cannot create {path}: {reason}").format(
                    path=utf8_text(str(folder)), reason=exc.strerror or exc
                )
            ) from None
        if not folder.is_dir():
            raise DatasetError(
                _("{path}: not a directory (--format parquet=DIR)").format(
                    path=utf8_text(str(folder))
                )
            )
    return folders


def schema(table: str) -> pa.Schema:
    """The Arrow schema of ``table`` (one of :data:`TABLES`; see the module docstring)."""
    return _SCHEMAS(table)


def _schemas() -> Callable[[str], pa.Schema]:
    made: dict[str, pa.Schema] = {}

    def get(table: str) -> pa.Schema:
        if table not in made:
            pa, _pq = _pyarrow()
            text = pa.dictionary(pa.int32(), pa.string())
            common = [
                ("run", text),
                ("pcapcheck_version", text),
                ("capture_path", text),
                ("capture_sha256", text),
            ]
            columns = {
                "connections": [
                    ("connection", pa.int64()),
                    ("client", pa.string()),
                    ("client_ip", pa.string()),
                    ("client_port", pa.uint16()),
                    ("server", pa.string()),
                    ("server_ip", pa.string()),
                    ("server_port", pa.uint16()),
                    ("roles_inferred", pa.bool_()),
                    ("first_frame", pa.int64()),
                    ("last_frame", pa.int64()),
                    ("start", pa.timestamp("us", tz="UTC")),
                    ("duration_s", pa.float64()),
                    ("client_packets", pa.int64()),
                    ("server_packets", pa.int64()),
                    ("client_bytes", pa.int64()),
                    ("server_bytes", pa.int64()),
                    ("client_isn", pa.uint32()),
                    ("server_isn", pa.uint32()),
                    ("handshake", text),
                    ("close", text),
                    ("client_state", text),
                    ("server_state", text),
                    ("conn_state", text),
                    ("history", pa.string()),
                    ("findings", pa.int64()),
                    ("encapsulation", pa.list_(pa.string())),
                    ("transitions", pa.string()),
                ],
                "findings": [
                    ("rule", text),
                    ("name", text),
                    ("severity", text),
                    ("connection", pa.int64()),
                    ("frame", pa.int64()),
                    ("message", pa.string()),
                    ("data", pa.string()),
                ],
            }[table]
            made[table] = pa.schema(
                common + columns,
                metadata={
                    "pcapcheck.table": table,
                    "pcapcheck.units": "start: UTC; *_s: seconds; *_isn: absolute (uint32)",
                },
            )
        return made[table]

    return get


_SCHEMAS = _schemas()


# --------------------------------------------------------------------------- the capture


def capture_facts(path: str | os.PathLike[str]) -> tuple[str, dt.date | None]:
    """``(sha256, first_date)`` of the capture file at ``path``: the SHA-256 of its bytes
    as stored (64 lowercase hex digits, read in 1 MiB pieces) and the UTC date of its
    first packet (None when it has none, or its timestamp is beyond what a date holds).
    Raises OSError when the file cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), _first_date(path)


def _first_date(path: str | os.PathLike[str]) -> dt.date | None:
    from pcapcheck.capture.reader import CaptureError, open_capture

    try:
        with open_capture(Path(path)) as reader:
            first = next(iter(reader), None)
    except (CaptureError, OSError):
        return None
    if first is None:
        return None
    try:
        return dt.datetime.fromtimestamp(first.ts, dt.timezone.utc).date()
    except (OverflowError, OSError, ValueError):
        return None


# --------------------------------------------------------------------------- rows


def _endpoint(text: str) -> tuple[str, int | None]:
    """:func:`~pcapcheck.report.common.endpoint_parts`, ``(text, None)`` for a text
    without a port."""
    try:
        return endpoint_parts(text)
    except ValueError:
        return text, None


def _connection_columns(conns: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    clients = [_endpoint(c["client"]) for c in conns]
    servers = [_endpoint(c["server"]) for c in conns]
    return {
        "connection": [c["id"] for c in conns],
        "client": [c["client"] for c in conns],
        "client_ip": [e[0] for e in clients],
        "client_port": [e[1] for e in clients],
        "server": [c["server"] for c in conns],
        "server_ip": [e[0] for e in servers],
        "server_port": [e[1] for e in servers],
        "roles_inferred": [c["roles_inferred"] for c in conns],
        "first_frame": [c["first_frame"] for c in conns],
        "last_frame": [c["last_frame"] for c in conns],
        "start": [c["start"] for c in conns],  # the report's ISO 8601 text, cast by Arrow
        "duration_s": [c["duration"] for c in conns],
        "client_packets": [c["packets"]["client"] for c in conns],
        "server_packets": [c["packets"]["server"] for c in conns],
        "client_bytes": [c["bytes"]["client"] for c in conns],
        "server_bytes": [c["bytes"]["server"] for c in conns],
        "client_isn": [c["client_isn"] for c in conns],
        "server_isn": [c["server_isn"] for c in conns],
        "handshake": [c["handshake"] for c in conns],
        "close": [c["close"] for c in conns],
        "client_state": [c["client_state"] for c in conns],
        "server_state": [c["server_state"] for c in conns],
        "conn_state": [c["conn_state"] for c in conns],
        "history": [c["history"] for c in conns],
        "findings": [c["findings"] for c in conns],
        "encapsulation": [c.get("encapsulation") for c in conns],
        "transitions": [dumps(c["transitions"]) for c in conns],
    }


def _finding_columns(findings: Sequence[Any]) -> dict[str, list]:
    return {
        "rule": [f.rule for f in findings],
        "name": [f.name for f in findings],
        "severity": [f.severity for f in findings],
        "connection": [f.connection for f in findings],
        "frame": [f.frame for f in findings],
        "message": [utf8_text(f.message) for f in findings],
        "data": [utf8_text(dumps(f.data)) for f in findings],
    }


_COLUMNS: dict[str, Callable[[Sequence[Any]], dict[str, list]]] = {
    "connections": _connection_columns,
    "findings": _finding_columns,
}


def _batches(items: Iterable[Any]) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, BATCH_ROWS)):
        yield batch


# --------------------------------------------------------------------------- writing


def _write_table(table: str, items: Iterable[Any], target: Path, common: Mapping[str, str]) -> None:
    """Write ``items`` (summaries or findings) as the file ``target``: converted
    :data:`BATCH_ROWS` at a time, written a row group of :data:`ROW_GROUP_ROWS` at a
    time, through a hidden temporary name renamed into place."""
    pa, pq = _pyarrow()
    sch = schema(table)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with pq.ParquetWriter(tmp, sch, compression="zstd") as writer:
            pending: list = []
            rows = 0
            for batch in _batches(items):
                columns = _COLUMNS[table](batch)
                columns.update({key: [value] * len(batch) for key, value in common.items()})
                arrays = [
                    # times: the JSON report's text (microseconds, UTC), parsed by Arrow
                    pa.array(columns[f.name], pa.string()).cast(f.type)
                    if pa.types.is_timestamp(f.type)
                    else pa.array(columns[f.name], type=f.type)
                    for f in sch
                ]
                pending.append(pa.RecordBatch.from_arrays(arrays, schema=sch))
                rows += len(batch)
                del batch, columns, arrays
                if rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(pending, sch), ROW_GROUP_ROWS)
                    pending, rows = [], 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending, sch), ROW_GROUP_ROWS)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_result(
    result: FileResult,
    directory: str | os.PathLike[str],
    *,
    run: str,
    source: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
) -> list[Path]:
    """Write one capture's files into the dataset at ``directory`` (created if needed,
    not its parents):
    ``[connections file, findings file]``, or ``[]`` for a capture that could not be
    read (``result.error``). ``run``: the run id (see :func:`check`); ``source``: the
    file that was analysed, hashed and dated (default ``result.path``; standard input:
    its spooled copy); ``sha256``: its SHA-256 when the caller knows it already (then
    only the first packet's date is read from ``source``).

    The paths depend only on the capture's bytes, ``run`` and ``result.path``: writing
    the same capture in the same run again replaces its files (see the module
    docstring).

    Raises :class:`DatasetError` (one line) when pyarrow is missing, ``run`` is not a
    valid run id, the source cannot be read or the dataset cannot be written (``directory``
    under a directory that does not exist: see :func:`check`).
    """
    _check_run(run)
    _tables(directory)
    if result.error is not None:
        return []
    src = Path(source if source is not None else result.path)
    try:
        if sha256 is None:
            sha256, first = capture_facts(src)
        else:
            first = _first_date(src)
    except OSError as exc:
        raise DatasetError(
            _("cannot read {path} to hash it: {reason}").format(
                path=utf8_text(str(src)), reason=exc.strerror or exc
            )
        ) from None
    day = first or dt.datetime.now(dt.timezone.utc).date()
    common = {
        "run": run,
        "pcapcheck_version": __version__,
        "capture_path": utf8_text(result.path),
        "capture_sha256": sha256,
    }
    partition = Path(f"date={day.isoformat()}", f"capture=sha256-{sha256[:16]}")
    name = hashlib.sha256(common["capture_path"].encode("utf-8")).hexdigest()[:8]
    written: list[Path] = []
    for table, items in (("connections", result.connections), ("findings", result.findings)):
        folder = Path(directory, table, partition)
        target = folder / f"{run}.{name}.parquet"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_table(table, items, target, common)
        except OSError as exc:
            raise DatasetError(
                _("cannot write {path}: {reason}").format(
                    path=utf8_text(str(target)), reason=exc.strerror or exc
                )
            ) from None
        written.append(target)
    return written


def write(
    results: Iterable[FileResult],
    directory: str | os.PathLike[str],
    *,
    run: str,
    sources: Iterable[str | os.PathLike[str] | None] | None = None,
) -> list[Path]:
    """Write a whole report into the dataset at ``directory``: :func:`write_result` for
    each capture of ``results`` (``sources``: the file each was analysed from, in the
    same order; default their paths). Returns every file written."""
    srcs = iter(sources) if sources is not None else None
    written: list[Path] = []
    for result in results:
        source = next(srcs, None) if srcs is not None else None
        written += write_result(result, directory, run=run, source=source)
    return written
