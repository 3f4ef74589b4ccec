"""The live pipe (issue 26, I7): ``pcapcheck analyze - -f jsonl`` on a pipe writes each
connection's lines as soon as it is finalised, not at the end of the input.

Every test runs the real command in a subprocess whose standard input is a real pipe,
written by the test a part at a time (a crafted capture's global header and first
records, then the rest held back), and reads its standard output with a timeout. The
lines of a live run are compared, as a set, with those of the same capture read from a
file (the order is that of finalisation, README "A live pipe").
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcapcheck.capture.inputs import LiveStream
from tests.conftest import need

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from craft_captures import FIN, Capture, Conversation  # noqa: E402

#: Seconds a test waits for a line it expects (a start-up of the command included).
WAIT = 20.0
#: The environment of the commands: standard output buffered as a user's is (a pipe:
#: block-buffered), so that the lines come early only when pcapcheck flushes them.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


# --------------------------------------------------------------------------- helpers


def split_records(data: bytes) -> tuple[bytes, list[bytes]]:
    """A little-endian pcap's global header and its records (header and data each)."""
    head, pos, records = data[:24], 24, []
    while pos < len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        records.append(data[pos : pos + 16 + caplen])
        pos += 16 + caplen
    return head, records


class Live:
    """``pcapcheck analyze - -f jsonl ARGS`` with a pipe on its standard input; its
    output lines are collected by a thread (:meth:`line` waits for one)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pcapcheck", "analyze", "-", "-f", "jsonl", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env if env is not None else ENV,
            cwd=ROOT,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8").rstrip("\n"))
        self.lines.put(None)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def line(self, timeout: float = WAIT) -> str | None:
        """The next line (None at the end of the output); fails after ``timeout``."""
        try:
            item = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no line within {timeout} s (seen: {self.seen})")
        if item is not None:
            self.seen.append(item)
        return item

    def until(self, want, timeout: float = WAIT) -> list[str]:
        """Lines until one for which ``want(line)`` holds (that one included)."""
        got: list[str] = []
        end = time.monotonic() + timeout
        while True:
            line = self.line(max(end - time.monotonic(), 0.01))
            assert line is not None, f"the output ended before the line looked for: {got}"
            got.append(line)
            if want(json.loads(line)):
                return got

    def quiet_for(self, seconds: float) -> list[str]:
        """The lines that come within ``seconds`` (none expected, usually)."""
        got = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                item = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                self.lines.put(None)
                break
            got.append(item)
        self.seen += got
        return got

    def finish(self, timeout: float = WAIT) -> tuple[int, list[str], str]:
        """Close the input, wait for the end: (exit status, every line, stderr)."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        return self.wait(timeout)

    def wait(self, timeout: float = WAIT) -> tuple[int, list[str], str]:
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("the command did not end")
        self.reader.join(timeout)
        while (item := self.lines.get_nowait() if not self.lines.empty() else None) is not None:
            self.seen.append(item)
        assert self.proc.stderr is not None
        return status, self.seen, self.proc.stderr.read().decode("utf-8", "replace")


def file_run(path: Path, args: list[str]) -> tuple[int, list[str]]:
    """The lines of the same analysis of the file ``path`` (not live), named as standard
    input is, and the exit status."""
    done = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "analyze", str(path), "-f", "jsonl", *args],
        capture_output=True,
        cwd=ROOT,
    )
    lines = done.stdout.decode("utf-8").splitlines()
    return done.returncode, [json.dumps(dict(json.loads(x), path="<stdin>")) for x in lines]


def as_set(lines: list[str]) -> list[str]:
    """The lines as sorted canonical JSON (a set that keeps duplicates)."""
    return sorted(json.dumps(json.loads(x), sort_keys=True) for x in lines)


def summary_of(port: int):
    """A predicate: the summary line of the connection from client port ``port``."""
    return lambda rec: "summary" in rec and rec["summary"]["client"].endswith(f":{port}")


# --------------------------------------------------------------------------- captures


def two_parts(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    """A capture in two parts: ``first`` (the global header and the records of
    connection A, a client that sends a FIN in SYN-SENT and resets the SYN-ACK: HS013,
    RS004,
    then connection B's handshake and request, 10 s later: A is past its close delay)
    and ``rest`` (B's close, then a clean connection C). Returns (the whole file, first,
    rest)."""
    cap = Capture()
    a = Conversation(cap, cport=40001)
    a.syn("c")
    a.send("c", FIN, ts=False, dt=0.0001, deliver=False)  # a FIN in SYN-SENT: HS013
    a.synack("s")
    a.rst("c", seq=a.isn["c"] + 1)  # RS004: a reset in the handshake
    b = Conversation(cap, cport=40002)
    b.syn("c", at=10.0)
    b.synack("s")
    b.ack("c")
    b.exchange()
    split = cap.frames
    b.close()
    c = Conversation(cap, cport=40003)
    c.syn("c", at=12.0)
    c.synack("s")
    c.ack("c")
    c.exchange()
    c.close()
    path = tmp_path / "two_parts.pcap"
    cap.write(path)
    head, records = split_records(path.read_bytes())
    return path, head + b"".join(records[:split]), b"".join(records[split:])


def with_tail(path: Path, first: bytes, name: str) -> Path:
    """The file of the bytes ``first`` (a capture's first records), next to ``path``."""
    out = path.with_name(name)
    out.write_bytes(first)
    return out


# --------------------------------------------------------------------------- tests


def test_first_connection_before_the_end(tmp_path: Path) -> None:
    path, first, rest = two_parts(tmp_path)
    live = Live(["--connections", "-q"])
    live.send(first)
    # A is finalised at B's first segment (10 s later, its close delay 5 s): its lines
    # come while the input is still open, B's not
    got = live.until(summary_of(40001))
    recs = [json.loads(x) for x in got]
    assert [r.get("rule") for r in recs] == ["HS013", "RS004", None]
    assert all(r["path"] == "<stdin>" and r["connection"] == 1 for r in recs)
    summary = recs[-1]["summary"]
    assert (summary["id"], summary["handshake"], summary["close"]) == (1, "incomplete", "reset")
    assert (summary["conn_state"], summary["findings"]) == ("RSTO", 2)
    assert live.quiet_for(0.5) == []  # B is open: nothing more until it is finalised
    live.send(rest)
    status, lines, err = live.finish()
    want_status, want = file_run(path, ["--connections", "-q"])
    assert (status, err) == (want_status, "")
    assert status == 1  # HS013 is an error: the gate as usual
    assert as_set(lines) == as_set(want)
    assert len(lines) == 2 + 3  # two findings and three summaries


def test_findings_alone_without_connections(tmp_path: Path) -> None:
    path, first, rest = two_parts(tmp_path)
    live = Live(["-q"])
    live.send(first)
    got = live.until(lambda rec: rec.get("rule") == "RS004")
    assert [json.loads(x)["rule"] for x in got] == ["HS013", "RS004"]
    live.send(rest)
    status, lines, _err = live.finish()
    assert (status, as_set(lines)) == (1, as_set(file_run(path, ["-q"])[1]))


def idle_capture(tmp_path: Path) -> Path:
    """Connection D: a SYN alone at 0 s; connection E: a handshake at 3 s. With
    ``--idle-timeout 2``, D is idle past its limit at E's SYN, but the periodic sweep
    (every 10 s of capture time) is not due: only the sweep of a silent pipe finalises
    it before the end. E, idle 0 s at the last record, is not past its limit."""
    cap = Capture()
    d = Conversation(cap, cport=40004)
    d.syn("c")
    e = Conversation(cap, cport=40005)
    e.syn("c", at=3.0)
    e.synack("s")
    e.ack("c")
    path = tmp_path / "idle.pcap"
    cap.write(path)
    return path


def test_flush_interval_writes_what_is_final(tmp_path: Path) -> None:
    path = idle_capture(tmp_path)
    args = ["--connections", "--idle-timeout", "2", "--flush-interval", "0.2", "-q"]
    live = Live(args)
    live.send(path.read_bytes())
    got = live.until(summary_of(40004))  # D, while the input is open
    assert json.loads(got[-1])["summary"]["id"] == 1
    # E is not past its idle timeout at the last record's capture time: the silence
    # (wall-clock) finalises nothing early
    assert live.quiet_for(1.0) == []
    status, lines, err = live.finish()
    want_status, want = file_run(path, args[:-3] + ["-q"])
    assert (status, err) == (want_status, "")
    assert as_set(lines) == as_set(want)
    assert [json.loads(x)["connection"] for x in lines if "summary" in x] == [1, 2]


def test_without_silence_nothing_is_swept(tmp_path: Path) -> None:
    # the same capture with a long flush interval: D waits for the end (or the sweep)
    path = idle_capture(tmp_path)
    args = ["--connections", "--idle-timeout", "2", "--flush-interval", "60", "-q"]
    live = Live(args)
    live.send(path.read_bytes())
    assert live.quiet_for(2.0) == []
    status, lines, _err = live.finish()
    assert (status, as_set(lines)) == (0, as_set(file_run(path, args[:-3] + ["-q"])[1]))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_the_run_cleanly(tmp_path: Path, signum: int) -> None:
    path, first, _rest = two_parts(tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    live = Live(["--connections"], env={**ENV, "TMPDIR": str(tmp)})
    live.send(first)
    live.until(summary_of(40001))
    live.proc.send_signal(signum)  # the input is still open: B was never closed
    status, lines, err = live.wait()
    # everything finalised so far, plus B finalised as at the end of the input: the
    # report of the capture cut where the input was
    want_status, want = file_run(with_tail(path, first, "first.pcap"), ["--connections", "-q"])
    assert as_set(lines) == as_set(want)
    assert [json.loads(x)["connection"] for x in lines if "summary" in x] == [1, 2]
    assert status == want_status == 1  # the exit status as usual (HS013: an error)
    assert "Traceback" not in err
    assert list(tmp.iterdir()) == []  # no spool or copy left behind


def test_regular_file_is_not_live(tmp_path: Path) -> None:
    # standard input redirected from a file is read as before: the report in file order
    path, _first, _rest = two_parts(tmp_path)
    with path.open("rb") as fh:
        done = subprocess.run(
            [sys.executable, "-m", "pcapcheck", "analyze", "-", "-f", "jsonl", "--connections"],
            stdin=fh,
            capture_output=True,
            cwd=ROOT,
        )
    lines = done.stdout.decode().splitlines()
    assert lines == file_run(path, ["--connections", "-q"])[1]
    assert [json.loads(x).get("rule") for x in lines][:2] == ["HS013", "RS004"]


def test_live_stream_reads_what_is_there() -> None:
    r, w = os.pipe()
    try:
        stream = LiveStream(r, flush_interval=0.05)
        idle: list[float] = []

        def on_idle() -> None:
            idle.append(time.monotonic())
            os.write(w, b"xyz")

        stream.on_idle = on_idle
        os.write(w, b"ab")
        assert stream.read(1 << 20) == b"ab"  # not a full megabyte: what is there
        assert stream.read(10) == b"xyz" and len(idle) == 1  # after a silence
        stream.on_idle = None
        stream.stopped = True
        assert stream.read(10) == b""
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(ValueError, match="flush interval"):
        LiveStream(0, flush_interval=0)


def test_options_are_checked() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "analyze", "-", "-f", "jsonl", "--flush-interval", "0"],
        stdin=subprocess.PIPE,
        capture_output=True,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert (
        done.stderr.decode()
        .strip()
        .splitlines()[-1]
        .endswith("--flush-interval: expected a number of seconds > 0, got 0.0")
    )


# --------------------------------------------------------------------------- tcpdump


def _can_record() -> bool:
    return shutil.which("tcpdump") is not None and os.geteuid() == 0


@pytest.fixture
def tcpdump_lo() -> Iterator[tuple[subprocess.Popen, socket.socket]]:
    """``tcpdump -U -i lo -w - tcp port P`` with a listening socket on 127.0.0.1:P."""
    need(_can_record(), "tcpdump as root is needed")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    dump = subprocess.Popen(
        ["tcpdump", "-U", "--immediate-mode", "-i", "lo", "-w", "-", f"tcp port {port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert dump.stderr is not None
    dump.stderr.readline()  # "tcpdump: listening on lo, ...": it records from here
    try:
        yield dump, server
    finally:
        server.close()
        if dump.poll() is None:
            dump.send_signal(signal.SIGINT)
            try:
                dump.wait(10)
            except subprocess.TimeoutExpired:
                dump.kill()


def _talk(server: socket.socket) -> int:
    """One connection from a client to ``server``: a request, a reply, the client
    closes first. Returns the client's port."""
    client = socket.create_connection(server.getsockname(), timeout=5)
    conn, _ = server.accept()
    with conn, client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert conn.recv(100)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
        assert client.recv(100)
        port = client.getsockname()[1]
        client.shutdown(socket.SHUT_WR)
        assert conn.recv(100) == b""
        conn.shutdown(socket.SHUT_WR)
        assert client.recv(100) == b""
    return port


def test_tcpdump_on_loopback(tcpdump_lo) -> None:
    dump, server = tcpdump_lo
    live = subprocess.Popen(
        [sys.executable, "-m", "pcapcheck", "analyze", "-", "-f", "jsonl", "--connections"]
        + ["--close-delay", "0.5", "--flush-interval", "0.2"],
        stdin=dump.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        cwd=ROOT,
    )
    assert dump.stdout is not None
    dump.stdout.close()  # the pipe is pcapcheck's now
    reader = Live.__new__(Live)  # the line collector of Live, over this process
    reader.proc, reader.lines, reader.seen = live, queue.Queue(), []
    reader.reader = threading.Thread(target=reader._read, daemon=True)
    reader.reader.start()
    first = _talk(server)
    time.sleep(0.8)  # past the close delay: the next connection's SYN finalises it
    second = _talk(server)
    got = reader.until(summary_of(first))
    summary = json.loads(got[-1])["summary"]
    assert (summary["handshake"], summary["close"], summary["conn_state"]) == (
        "complete",
        "graceful",
        "SF",
    )
    assert summary["client_state"] == "TIME-WAIT" and summary["server_state"] == "CLOSED"
    # Ctrl-C in a terminal reaches both: tcpdump ends its output, pcapcheck its input
    dump.send_signal(signal.SIGINT)
    live.send_signal(signal.SIGINT)
    status, lines, err = reader.wait()
    assert "Traceback" not in err
    ports = [json.loads(x)["summary"]["client"] for x in lines if "summary" in x]
    assert ports == [f"127.0.0.1:{first}", f"127.0.0.1:{second}"]
    assert status == 0


def test_other_formats_and_baseline(tmp_path: Path) -> None:
    # the other formats are written at the end as before; --baseline drops the lines of
    # the findings it holds, as it drops them from a file's report
    path, first, rest = two_parts(tmp_path)
    base = tmp_path / "baseline.json"
    subprocess.run(
        [sys.executable, "-m", "pcapcheck", "analyze", str(path), "--write-baseline", str(base)],
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    live = Live(["--connections", "-q", "-f", f"json={tmp_path / 'live.json'}"])
    live.send(first)
    live.until(summary_of(40001))
    live.send(rest)
    status, lines, err = live.finish()
    with path.open("rb") as fh:  # standard input from a file: not live, named <stdin> too
        subprocess.run(
            [sys.executable, "-m", "pcapcheck", "analyze", "-", "-q"]
            + ["-f", f"json={tmp_path / 'file.json'}"],
            stdin=fh,
            cwd=ROOT,
        )
    assert (tmp_path / "live.json").read_bytes() == (tmp_path / "file.json").read_bytes()
    assert (status, err, len(lines)) == (1, "", 5)
    live = Live(["--connections", "-q", "--baseline", str(base)])
    live.send(first + rest)
    status, lines, err = live.finish()
    assert (status, err) == (0, "")
    assert as_set(lines) == as_set(
        file_run(path, ["--connections", "-q", "--baseline", str(base)])[1]
    )
    assert [json.loads(x)["summary"]["findings"] for x in lines] == [0, 0, 0]


def test_python_api_live_callback(tmp_path: Path) -> None:
    # pcapcheck.analyze(live=...): the callback gets each connection and its findings,
    # from a pipe or (not live, the same calls at the same points) a stream without a
    # descriptor; the report's result is the one without it
    import io

    import pcapcheck

    path, first, rest = two_parts(tmp_path)
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, first + rest), os.close(w)))
    writer.start()
    calls: dict[str, list] = {}
    for name, stdin in (("pipe", os.fdopen(r, "rb")), ("bytes", io.BytesIO(first + rest))):
        got: list = calls.setdefault(name, [])
        with pcapcheck.analyze(
            "-", stdin=stdin, isolated=True, live=lambda s, fs, got=got: got.append((s, fs))
        ) as report:
            (result,) = report.files
        assert [(s["id"], s["findings"]) for s, _ in got] == [(1, 2), (2, 0), (3, 0)]
        assert [[f.rule for f in fs] for _, fs in got] == [["HS013", "RS004"], [], []]
        assert [c["id"] for c in result.connections] == [1, 2, 3]
        assert [f.rule for f in result.findings] == ["HS013", "RS004"]
    writer.join()
    assert calls["pipe"] == calls["bytes"]
    with pytest.raises(pcapcheck.OptionError, match="only input"):
        pcapcheck.analyze([str(path)], live=print)
