"""The Parquet dataset (``--format parquet=DIR``, :mod:`pcapcheck.report.parquet`): made
from the sample captures by the real command, read back with DuckDB (SQL over the Hive
partitions) and pyarrow, and held to the JSON report of the same run: the same rows,
the same values, the types the README documents. Appending runs, rewriting a run, the
README's queries with their printed results, and the one-line errors.

Needs pyarrow and DuckDB (the test extra): skipped without them, failed with
``PCAPCHECK_FULL=1`` (CI).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pcapcheck.commands.common import app
from tests.conftest import ROOT, SAMPLES, need_module

pa = need_module("pyarrow")
pq = need_module("pyarrow.parquet")
pads = need_module("pyarrow.dataset")
duckdb = need_module("duckdb")

import pcapcheck  # noqa: E402
from pcapcheck.report import DatasetError, parquet  # noqa: E402

runner = CliRunner()

CRAFTED = SAMPLES / "crafted"
CL003 = CRAFTED / "cl003_close-incomplete.pcap"
#: Several captures: a half close (CL003), a bad SYN-ACK, IPv6, retransmissions, a
#: malformed record (a file-level finding without connection), port reuse, a clean one,
#: two names for the same bytes (cl007 and clean_simultaneous_close), two connections
#: through VXLAN, and a recording of another day.
CAPTURES = [
    CL003,
    CRAFTED / "hs002_synack-bad-ack.pcap",
    CRAFTED / "clean_ipv6.pcap",
    CRAFTED / "sq002_retransmission.pcap",
    CRAFTED / "cp005_malformed-packet.pcap",
    CRAFTED / "clean_port_reuse.pcap",
    CRAFTED / "cl007_simultaneous-close.pcap",
    CRAFTED / "clean_simultaneous_close.pcap",
    SAMPLES / "encap" / "vxlan.pcap",  # two tunnels: the encapsulation column
    SAMPLES / "loopback" / "client_close_first.pcap",
]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def read(directory: Path, table: str, sql: str = "SELECT * FROM t") -> list[dict]:
    """Rows of ``sql`` over ``table`` of the dataset (``t``), read by DuckDB."""
    con = duckdb.connect()
    glob = (directory / table / "**" / "*.parquet").as_posix()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
    rel = con.sql(sql)
    return [dict(zip(rel.columns, row)) for row in rel.fetchall()]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, dict]:
    """A dataset and the JSON report of the same run (``pcapcheck analyze``, relative
    paths from the repository root)."""
    tmp = tmp_path_factory.mktemp("parquet")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        out = runner.invoke(
            app,
            [
                "analyze",
                *map(_rel, CAPTURES),
                "-f",
                f"parquet={tmp / 'ds'}",
                "-f",
                f"json={tmp / 'report.json'}",
                "-q",
                "--isolated",
            ],
        )
    finally:
        os.chdir(cwd)
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exc_info
    assert out.exit_code == 1, out.output  # error findings (HS002)
    return tmp / "ds", json.loads((tmp / "report.json").read_text())


def test_rows_are_the_json_report(made):
    directory, report = made
    conns = read(directory, "connections", "SELECT * FROM t ORDER BY capture_path, connection")
    finds = read(directory, "findings", "SELECT * FROM t ORDER BY capture_path, frame, rule")
    files = sorted(report["files"], key=lambda f: f["path"])
    assert [f["path"] for f in files] == sorted(map(_rel, CAPTURES))
    expected = [(f, c) for f in files for c in f["connections"]]
    assert len(conns) == len(expected) == 12
    runs = {row["run"] for row in conns + finds}
    assert len(runs) == 1 and re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", runs.pop())
    for row, (file, c) in zip(conns, expected):
        digest = hashlib.sha256((ROOT / file["path"]).read_bytes()).hexdigest()
        start = dt.datetime.fromisoformat(c["start"].replace("Z", "+00:00"))
        assert row["capture_path"] == file["path"]
        assert row["capture_sha256"] == digest
        assert row["capture"] == f"sha256-{digest[:16]}"
        assert row["pcapcheck_version"] == report["version"]
        assert row["connection"] == c["id"]
        assert (row["client"], row["server"]) == (c["client"], c["server"])
        assert f"{row['client_ip']}:{row['client_port']}" in (
            c["client"],
            c["client"].replace("[", "").replace("]", ""),
        )
        assert row["start"] == start
        assert row["duration_s"] == c["duration"]
        assert (row["client_packets"], row["server_packets"]) == (
            c["packets"]["client"],
            c["packets"]["server"],
        )
        assert (row["client_bytes"], row["server_bytes"]) == (
            c["bytes"]["client"],
            c["bytes"]["server"],
        )
        for key in (
            "roles_inferred",
            "first_frame",
            "last_frame",
            "client_isn",
            "server_isn",
            "handshake",
            "close",
            "client_state",
            "server_state",
            "conn_state",
            "history",
            "findings",
        ):
            assert row[key] == c[key], key
        assert row["encapsulation"] == c.get("encapsulation")
        assert json.loads(row["transitions"]) == c["transitions"]
        assert row["date"] == start.date()  # the first packet is the first segment here
    expected_findings = sorted(
        ((file["path"], f) for file in files for f in file["findings"]),
        key=lambda pf: (pf[0], pf[1]["frame"] is None, pf[1]["frame"] or 0, pf[1]["rule"]),
    )
    assert len(finds) == len(expected_findings) == 7
    for row, (path, f) in zip(finds, expected_findings):
        assert row["capture_path"] == path
        for key in ("rule", "name", "severity", "connection", "frame", "message"):
            assert row[key] == f[key], key
        assert json.loads(row["data"]) == f["data"]
    # a file-level finding: no connection
    assert any(row["rule"] == "CP005" and row["connection"] is None for row in finds)
    # tunnels: the encapsulation path, outermost first
    tunnels = [row["encapsulation"] for row in conns if row["encapsulation"] is not None]
    assert [path[3] for path in tunnels] == ["vxlan 42", "vxlan 43"]
    assert {row["date"] for row in conns} == {
        dt.date(2026, 1, 1),
        dt.date(2026, 11, 21),
        dt.date(2023, 11, 14),
    }


def test_known_values(made):
    directory, _report = made
    (conn,) = read(
        directory,
        "connections",
        f"SELECT * FROM t WHERE capture_path = '{_rel(CL003)}'",
    )
    assert conn["client_isn"] == 1015684903
    assert conn["server_isn"] == 2652593410  # above 2**31: unsigned 32-bit
    assert conn["duration_s"] == 5.00803
    assert conn["start"] == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert (conn["client_state"], conn["server_state"], conn["conn_state"]) == (
        "FIN-WAIT-2",
        "CLOSE-WAIT",
        "S2",
    )
    (finding,) = read(directory, "findings", "SELECT * FROM t WHERE rule = 'CL003'")
    assert (finding["frame"], finding["connection"], finding["severity"]) == (7, 1, "warning")
    assert json.loads(finding["data"])["fin_frame"] == 7
    # the same bytes under two names: two captures of the report, both kept
    rows = read(
        directory,
        "connections",
        "SELECT capture_path, count(*) AS n, count(DISTINCT capture_sha256) AS sha "
        "FROM t WHERE capture_path LIKE '%simultaneous%' GROUP BY ALL ORDER BY 1",
    )
    assert [(r["n"], r["sha"]) for r in rows] == [(1, 1), (1, 1)]
    assert len({r["capture_path"] for r in rows}) == 2


def test_types(made):
    directory, _report = made
    conns = pads.dataset(directory / "connections", partitioning="hive")
    schema = conns.schema
    assert schema.field("start").type == pa.timestamp("us", tz="UTC")
    assert schema.field("client_isn").type == pa.uint32()
    assert schema.field("server_isn").type == pa.uint32()
    assert schema.field("duration_s").type == pa.float64()
    assert schema.field("client_packets").type == pa.int64()
    assert schema.field("client_port").type == pa.uint16()
    assert pa.types.is_dictionary(schema.field("client_state").type)
    assert schema.field("capture").type == pa.string()  # the partition: never a number
    assert conns.count_rows() == 12
    finds = pads.dataset(directory / "findings", partitioning="hive")
    assert finds.schema.field("frame").type == pa.int64()
    assert finds.count_rows() == 7
    # the columns are those of the module's schema, then the partitions
    for table, dataset in (("connections", conns), ("findings", finds)):
        assert dataset.schema.names == [*parquet.schema(table).names, "date", "capture"]
    types = {
        row["column_name"]: row["column_type"]
        for row in read(directory, "connections", "DESCRIBE SELECT * FROM t")
    }
    assert types["start"] == "TIMESTAMP WITH TIME ZONE"
    assert types["client_isn"] == "UINTEGER"
    assert types["duration_s"] == "DOUBLE"
    assert types["date"] == "DATE"
    assert types["capture"] == "VARCHAR"


def test_layout(made):
    directory, _report = made
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))
    parquet_files = [f for f in files if f.endswith(".parquet")]
    assert len(parquet_files) == 2 * len(CAPTURES)  # both tables, every capture
    assert not [f for f in files if f.endswith(".tmp")]
    name = re.compile(
        r"(connections|findings)/date=\d{4}-\d\d-\d\d/capture=sha256-[0-9a-f]{16}/"
        r"\d{8}T\d{6}Z-[0-9a-f]{6}\.[0-9a-f]{8}\.parquet"
    )
    assert all(name.fullmatch(f) for f in parquet_files), parquet_files
    loopback = hashlib.sha256(CAPTURES[-1].read_bytes()).hexdigest()[:16]
    assert any(f.startswith(f"findings/date=2026-11-21/capture=sha256-{loopback}/") for f in files)


def test_readme_layout_example(tmp_path, monkeypatch):
    """The README's example paths are those write_result gives for its capture and run."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r"^results/\S+\.parquet$", text, re.M)
    monkeypatch.chdir(ROOT)
    (result,) = pcapcheck.analyze(_rel(CL003), isolated=True)
    written = parquet.write_result(result, tmp_path / "results", run="20261207T035449Z-38bf99")
    assert shown == [p.relative_to(tmp_path).as_posix() for p in written]


def test_appending_runs(tmp_path):
    """A second run adds its own files (and partitions for new captures): counts double;
    the same run id again replaces its files: counts stay."""
    first = [CL003, CRAFTED / "hs002_synack-bad-ack.pcap"]

    def run(captures: list[Path], run_id: str) -> None:
        with pcapcheck.analyze(
            captures, isolated=True, datasets={"parquet": tmp_path}, run=run_id
        ) as r:
            assert r.run == run_id
            assert len(r.files) == len(captures)

    def counts() -> tuple[int, int, int]:
        (c,) = read(
            tmp_path, "connections", "SELECT count(*) AS n, count(DISTINCT capture) AS p FROM t"
        )
        (f,) = read(tmp_path, "findings", "SELECT count(*) AS n FROM t")
        return c["n"], f["n"], c["p"]

    run(first, "run-1")
    assert counts() == (2, 2, 2)
    run(first, "run-1")  # a retried run: the same files rewritten
    assert counts() == (2, 2, 2)
    assert len(list(tmp_path.rglob("*.parquet"))) == 4
    run(first, "run-2")
    assert counts() == (4, 4, 2)
    run([CRAFTED / "clean_ipv6.pcap"], "run-3")  # a new capture: a new partition
    assert counts() == (5, 4, 3)
    assert {
        r["run"]: r["n"]
        for r in read(tmp_path, "findings", "SELECT run, count(*) AS n FROM t GROUP BY run")
    } == {
        "run-1": 2,
        "run-2": 2,
    }
    # a rerun whose captures changed is still one file per capture and run
    assert len(list(tmp_path.rglob("*.parquet"))) == 10


def test_write_result_batches_and_idempotence(tmp_path, monkeypatch):
    """write_result streams its rows a batch at a time (one row group each), and a
    second write of the same capture and run replaces the file."""
    (result,) = pcapcheck.analyze(CL003, isolated=True)
    conn = result.connections[0]
    many = pcapcheck.FileResult(
        path=result.path,
        connections=[{**conn, "id": i} for i in range(1, 11)],
        findings=list(result.findings) * 4,
    )
    monkeypatch.setattr(parquet, "BATCH_ROWS", 2)
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 4)
    written = parquet.write_result(many, tmp_path, run="r")
    assert [p.relative_to(tmp_path).parts[0] for p in written] == ["connections", "findings"]
    groups = [pq.ParquetFile(p).metadata for p in written]
    assert [[m.row_group(i).num_rows for i in range(m.num_row_groups)] for m in groups] == [
        [4, 4, 2],
        [4],
    ]
    assert pq.read_table(written[0]).column("connection").to_pylist() == list(range(1, 11))
    assert parquet.write_result(many, tmp_path, run="r") == written
    assert len(list(tmp_path.rglob("*.parquet"))) == 2
    # an error result writes nothing
    assert (
        parquet.write_result(pcapcheck.FileResult(path="x", error="x: bad"), tmp_path, run="r")
        == []
    )


def test_rows_stream_a_batch_at_a_time(tmp_path, monkeypatch):
    """The connections are read from their sequence one batch ahead at most (a spool
    streaming from disk is never read whole): 10,000 summaries, batches of 1,000."""
    (result,) = pcapcheck.analyze(CL003, isolated=True)
    conn = result.connections[0]
    made = []

    class Lazy(Sequence):
        def __len__(self) -> int:
            return 10_000

        def __getitem__(self, index):
            raise AssertionError("read in order only")

        def __iter__(self):
            for i in range(1, 10_001):
                made.append(i)
                yield {**conn, "id": i}

    seen = []
    columns = parquet._COLUMNS["connections"]

    def spy(rows):
        seen.append((len(made), len(rows)))
        return columns(rows)

    monkeypatch.setattr(parquet, "BATCH_ROWS", 1_000)
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 2_000)
    monkeypatch.setitem(parquet._COLUMNS, "connections", spy)
    lazy = pcapcheck.FileResult(path=result.path, connections=Lazy(), findings=[])
    written = parquet.write_result(lazy, tmp_path, run="r", source=CL003)
    assert seen == [(1_000 * (k + 1), 1_000) for k in range(10)]
    assert pq.ParquetFile(written[0]).metadata.num_rows == 10_000
    assert pq.ParquetFile(written[0]).num_row_groups == 5


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    (result,) = pcapcheck.analyze(CL003, isolated=True)

    def broken(rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(parquet._COLUMNS, "findings", broken)
    with pytest.raises(DatasetError, match=r"^cannot write .*findings.*: No space left on device$"):
        parquet.write_result(result, tmp_path, run="r")
    left = sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["connections"]  # the finished table; no half file, no temporary one


def test_stdin_is_hashed_from_its_copy(tmp_path):
    out = runner.invoke(
        app,
        ["analyze", "-", "-f", f"parquet={tmp_path}", "-q", "--isolated"],
        input=CL003.read_bytes(),
    )
    assert out.exit_code == 0, out.output
    (row,) = read(tmp_path, "connections")
    assert row["capture_path"] == "<stdin>"
    assert row["capture_sha256"] == hashlib.sha256(CL003.read_bytes()).hexdigest()


def test_unreadable_capture_adds_no_rows(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_text("not a capture")
    out = runner.invoke(
        app,
        ["analyze", str(bad), str(CL003), "-f", f"parquet={tmp_path / 'ds'}", "-q", "--isolated"],
    )
    assert out.exit_code == 2
    assert [r["capture_path"] for r in read(tmp_path / "ds", "connections")] == [str(CL003)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("parquet", "--format parquet writes a directory: give it as -f parquet=DIR"),
        ("parquet=", "--format parquet=: no file name after '='"),
        ("parquet=FILE", "FILE: not a directory (--format parquet=DIR)"),
    ],
)
def test_bad_format_is_one_line(tmp_path, value, message):
    target = tmp_path / "FILE"
    target.write_text("")
    out = runner.invoke(
        app, ["analyze", str(CL003), "-f", value.replace("FILE", str(target)), "-q"]
    )
    assert out.exit_code == 2
    assert out.output == f"pcapcheck: error: {message.replace('FILE', str(target))}\n"


def test_directory_made_not_its_parents(tmp_path):
    """parquet=DIR creates DIR (and its tables) but not missing parents, as ``mkdir``
    without -p: a missing parent is a one-line error (exit 2) before any analysis, as
    json=/html= into a missing directory are; nothing is created."""
    missing = tmp_path / "a" / "b"
    for value, message in (
        (f"parquet={missing}", f"cannot create {missing}: its parent directory does not exist"),
        (f"json={missing}/r.json", f"cannot write {missing}/r.json: No such file or directory"),
        (f"html={missing}/r.html", f"cannot write {missing}/r.html: No such file or directory"),
    ):
        out = runner.invoke(app, ["analyze", str(CL003), "-q", "--isolated", "-f", value])
        assert (out.exit_code, out.output) == (2, f"pcapcheck: error: {message}\n"), value
    assert list(tmp_path.iterdir()) == []
    out = runner.invoke(
        app, ["analyze", str(CL003), "-q", "--isolated", "-f", f"parquet={tmp_path / 'a'}"]
    )
    assert out.exit_code == 0, out.output  # CL003's finding is a warning
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["connections", "findings"]
    assert [r["capture_path"] for r in read(tmp_path / "a", "connections")] == [str(CL003)]


def test_tables_checked_before_the_analysis(tmp_path, monkeypatch):
    """check() makes DIR/connections and DIR/findings and writes a file in each (deleted):
    a table that is a file, or a directory where nothing can be written, is a one-line
    error (exit 2) before any capture is analysed."""
    parquet.check(tmp_path / "ds", "r")
    assert sorted(p.name for p in (tmp_path / "ds").rglob("*")) == ["connections", "findings"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "findings").write_text("")
    with pytest.raises(DatasetError, match=r"^.*/bad/findings: not a directory \(--format"):
        parquet.check(tmp_path / "bad", "r")

    def refused(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied")

    analysed: list[Any] = []
    monkeypatch.setattr(parquet.tempfile, "mkstemp", refused)
    monkeypatch.setattr("pcapcheck.pipeline.analyze_file", lambda *a, **k: analysed.append(a))
    out = runner.invoke(app, ["analyze", str(CL003), "-q", "-f", f"parquet={tmp_path / 'ds'}"])
    assert (out.exit_code, out.output, analysed) == (
        2,
        f"pcapcheck: error: cannot write in {tmp_path / 'ds' / 'connections'}: Permission denied\n",
        [],
    )


def test_twice_is_one_line(tmp_path):
    out = runner.invoke(
        app, ["analyze", str(CL003), "-f", f"parquet={tmp_path}/a", "-f", f"parquet={tmp_path}/b"]
    )
    assert out.exit_code == 2
    assert out.output == "pcapcheck: error: --format parquet: given twice (one directory per run)\n"


def test_api_options():
    with pytest.raises(pcapcheck.OptionError, match="unknown directory format 'orc'"):
        pcapcheck.analyze(CL003, datasets={"orc": "x"})
    with pytest.raises(pcapcheck.OptionError, match=re.escape("run id '../x'")):
        pcapcheck.analyze(CL003, datasets={"parquet": "x"}, run="../x")


def test_without_pyarrow_one_line_and_not_imported(tmp_path):
    """Without the parquet extra: -f parquet=DIR is a one-line error (exit 2) naming it;
    the other formats run as before and never import pyarrow."""
    shadow = tmp_path / "shadow" / "pyarrow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('pyarrow is not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), str(ROOT)])}
    command = [sys.executable, "-m", "pcapcheck", "analyze", str(CL003), "-q", "--isolated"]
    out = subprocess.run(
        [*command, "-f", f"parquet={tmp_path / 'ds'}"], capture_output=True, text=True, env=env
    )
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (
        "pcapcheck: error: the parquet format needs pyarrow: pip install 'pcapcheck[parquet]'\n"
    )
    assert not (tmp_path / "ds").exists()
    out = subprocess.run([*command, "-f", "json"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and json.loads(out.stdout)["files"][0]["findings"]
    probe = "import sys, pcapcheck, pcapcheck.report.parquet, pcapcheck.commands.analyze; print('pyarrow' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout
        == "False\n"
    )


# --------------------------------------------------------------------------- README


def table_text(relation: Any) -> str:
    """A DuckDB result as the README prints it: a header line and one line per row,
    columns left-aligned two spaces apart."""
    rows = [list(relation.columns)] + [[str(v) for v in row] for row in relation.fetchall()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows)


def readme_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of the fenced blocks between the README's dataset markers."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    part = text.split("<!-- dataset-queries:begin -->")[1].split("<!-- dataset-queries:end -->")[0]
    return [(m[1], m[2]) for m in re.finditer(r"```(\w+)\n(.*?)```", part, re.S)]


def test_readme_queries(tmp_path, monkeypatch):
    """The README's command, queries and their printed results, run on the dataset
    they describe: the numbers cannot drift from what pcapcheck writes."""
    blocks = readme_blocks()
    languages = [lang for lang, _code in blocks]
    assert languages == ["sh", "sql", "text", "sql", "text", "sql", "text", "python", "text"]
    command = blocks[0][1].split()
    assert command[:2] == ["pcapcheck", "analyze"] and "-f" in command
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample_pcaps").mkdir()
    for sample in ("crafted", "loopback"):  # the README's paths, the dataset in tmp_path
        (tmp_path / "sample_pcaps" / sample).symlink_to(SAMPLES / sample)
    out = runner.invoke(app, [*command[1:], "--isolated"])
    assert out.exit_code == 1, out.output
    for (lang, query), (_text, shown) in zip(blocks[1:7:2], blocks[2:8:2]):
        assert lang == "sql"
        assert table_text(duckdb.sql(query.strip().rstrip(";"))) == shown.rstrip("\n")
    pd = need_module("pandas")
    (_python, code), (_text, shown) = blocks[7], blocks[8]
    counts = eval(code.strip(), {"pd": pd})  # the README's one-liner
    printed = dict((m[1], int(m[2])) for m in re.finditer(r"^(\w+)\s+(\d+)$", shown, re.M))
    assert {str(k): int(v) for k, v in counts.items()} == printed
    assert sum(printed.values()) == len(read(tmp_path / "results", "findings"))
