#!/usr/bin/env python3
"""Record real Linux TCP behaviour on the loopback interface as sample captures.

Usage (needs root, or CAP_NET_RAW, for tcpdump)::

    python scripts/record_loopback.py            # record every scenario
    python scripts/record_loopback.py NAME ...   # record only the named scenarios
    python scripts/record_loopback.py --list     # list the scenarios

Each scenario runs real sockets (a server thread and a client thread, or a forked
process where true concurrency is needed) on 127.0.0.1 / ::1 only, on its own fixed
server port, while ``tcpdump -i lo -U --immediate-mode`` records the scenario's port(s)
into a temporary file. After a short settle the script stops tcpdump with SIGINT, checks
that it wrote the file and that the kernel dropped nothing, and moves the file to
``sample_pcaps/loopback/NAME.pcap``.

Initial sequence numbers, ephemeral client ports and timestamps are random, so
re-recording never gives the same bytes: the shipped captures are described by
``sample_pcaps/loopback/manifest.yaml``, which was written by reading the shipped files.
Re-recording a capture means re-checking (and usually rewriting) its manifest entry.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "sample_pcaps" / "loopback"

V4 = "127.0.0.1"
V6 = "::1"

REQUEST = b"GET / HTTP/1.0\r\n\r\n"
BODY = b"Hello, world\n"
RESPONSE = (
    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)

STEP = 0.1  # pause between the steps of a scenario (> the 40 ms delayed-ACK timer)
SETTLE = 0.5  # pause before stopping tcpdump, so the last ACKs are captured
IO_TIMEOUT = 10.0

# TCP_SYNCNT is 7 on Linux; the socket module has it on Linux builds.
TCP_SYNCNT = getattr(socket, "TCP_SYNCNT", 7)


class RecordError(RuntimeError):
    """A scenario or the capture around it did not go as planned."""


# --------------------------------------------------------------------------- capture


class Capture:
    """A tcpdump process writing one scenario to a temporary file.

    ``start()`` returns once tcpdump says it is listening; ``stop()`` sends SIGINT after
    ``SETTLE`` seconds and returns the number of packets tcpdump reports it captured.
    """

    def __init__(self, bpf: str, snaplen: int | None, workdir: Path, name: str):
        self.bpf = bpf
        self.snaplen = snaplen
        self.path = workdir / f"{name}.pcap"
        self.proc: subprocess.Popen | None = None
        self.stderr_lines: list[str] = []
        self._reader: threading.Thread | None = None
        self._listening = threading.Event()
        self.captured: int | None = None

    def start(self) -> None:
        tcpdump = shutil.which("tcpdump") or (
            "/usr/bin/tcpdump" if os.path.exists("/usr/bin/tcpdump") else None
        )
        if tcpdump is None:
            raise RecordError("tcpdump not found: install it (apt-get install tcpdump)")
        cmd = [
            tcpdump,
            "-i",
            "lo",
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-B",
            "131072",
            "-s",
            str(self.snaplen if self.snaplen else 262144),
            "-w",
            str(self.path),
            self.bpf,
        ]
        # --immediate-mode matters: with TPACKET_V3 libpcap otherwise hands packets over
        # only when a ring block retires (about 1 s), and SIGINT would lose the last ones.
        # -B 131072 (KiB): the default 2 MiB ring overflows during the bulk transfer
        # (64 KiB loopback segments) and the kernel drops packets. -Z root: tcpdump would
        # otherwise drop to the tcpdump user before opening the output file.
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._listening.wait(10):
            self.kill()
            raise RecordError("tcpdump did not start listening: " + " | ".join(self.stderr_lines))
        time.sleep(0.2)  # the socket filter is attached before the message; be generous

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
            if "listening on" in line:
                self._listening.set()
        self._listening.set()  # EOF: tcpdump is gone (start() then reports the error)

    def stop(self, settle: float = SETTLE) -> int:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RecordError("tcpdump exited early: " + " | ".join(self.stderr_lines))
        time.sleep(settle)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise RecordError("tcpdump did not stop on SIGINT") from exc
        if self._reader:
            self._reader.join(5)
        captured = dropped = None
        for line in self.stderr_lines:
            words = line.split()
            if line.endswith("packets captured") or line.endswith("packet captured"):
                captured = int(words[0])
            elif "dropped by kernel" in line:
                dropped = int(words[0])
        if not self.path.exists() or self.path.stat().st_size < 24:
            raise RecordError(f"tcpdump wrote no capture file: {' | '.join(self.stderr_lines)}")
        if captured is None:
            raise RecordError(
                "tcpdump did not report its statistics: " + " | ".join(self.stderr_lines)
            )
        if dropped:
            raise RecordError(f"tcpdump reports {dropped} packets dropped by the kernel")
        if captured == 0:
            raise RecordError("tcpdump captured no packets")
        self.captured = captured
        return captured

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- helpers


def listener(family: int, port: int, backlog: int = 8) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((V6 if family == socket.AF_INET6 else V4, port))
    s.listen(backlog)
    s.settimeout(IO_TIMEOUT)
    return s


def client_socket(family: int = socket.AF_INET, bind_port: int | None = None) -> socket.socket:
    c = socket.socket(family, socket.SOCK_STREAM)
    c.settimeout(IO_TIMEOUT)
    if bind_port is not None:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind((V6 if family == socket.AF_INET6 else V4, bind_port))
    return c


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise RecordError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_until(s: socket.socket, marker: bytes) -> bytes:
    buf = bytearray()
    while marker not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise RecordError(f"EOF before {marker!r}")
        buf += chunk
    return bytes(buf)


def recv_to_eof(s: socket.socket) -> bytes:
    buf = bytearray()
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk


class Worker(threading.Thread):
    """A thread that keeps the exception of its target for ``join_checked``."""

    def __init__(self, name: str, target: Callable[[], None]):
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:
            self.error = exc

    def join_checked(self, timeout: float = 30) -> None:
        self.join(timeout)
        if self.is_alive():
            raise RecordError(f"{self.name} thread did not finish")
        if self.error is not None:
            raise RecordError(f"{self.name} thread failed: {self.error!r}") from self.error


def run_pair(server: Callable[[], None], client: Callable[[], None]) -> None:
    st, ct = Worker("server", server), Worker("client", client)
    st.start()
    ct.start()
    ct.join_checked()
    st.join_checked()


# --------------------------------------------------------------------------- scenarios
#
# Each scenario function gets the running Capture (most ignore it; open_at_end stops it
# itself) and its Scenario entry.


@dataclass
class Scenario:
    name: str
    port: int
    summary: str
    run: Callable[[Scenario, Capture], None]
    client_port: int | None = None  # fixed client port, when the scenario needs one
    snaplen: int | None = None
    bpf: str | None = None  # default: "tcp port <port>"
    attempts: int = 1  # re-record until accept() says yes (racy scenarios)
    accept: Callable[[Path], bool] | None = None

    def filter(self) -> str:
        return self.bpf or f"tcp port {self.port}"


def _request_response(family: int, port: int, server_closes_first: bool) -> None:
    host = V6 if family == socket.AF_INET6 else V4
    lst = listener(family, port)
    request_read = threading.Event()

    def server() -> None:
        conn, _ = lst.accept()
        with conn:
            conn.settimeout(IO_TIMEOUT)
            recv_until(conn, b"\r\n\r\n")
            request_read.set()
            time.sleep(STEP)
            conn.sendall(RESPONSE)
            if server_closes_first:
                time.sleep(STEP)
                conn.close()
            else:
                if recv_to_eof(conn):
                    raise RecordError("unexpected data from the client")
                # close right after reading EOF (as a real server would)
        lst.close()

    def client() -> None:
        c = client_socket(family)
        with c:
            c.connect((host, port))
            time.sleep(STEP)
            c.sendall(REQUEST)
            if server_closes_first:
                data = recv_to_eof(c)
                if data != RESPONSE:
                    raise RecordError(f"bad response {data!r}")
                time.sleep(STEP)
            else:
                data = recv_exactly(c, len(RESPONSE))
                time.sleep(STEP)
        # closed by the with block

    run_pair(server, client)


def sc_client_close_first(sc: Scenario, cap: Capture) -> None:
    _request_response(socket.AF_INET, sc.port, server_closes_first=False)


def sc_server_close_first(sc: Scenario, cap: Capture) -> None:
    _request_response(socket.AF_INET, sc.port, server_closes_first=True)


def sc_ipv6(sc: Scenario, cap: Capture) -> None:
    _request_response(socket.AF_INET6, sc.port, server_closes_first=False)


def sc_refused(sc: Scenario, cap: Capture) -> None:
    c = client_socket()
    try:
        c.connect((V4, sc.port))
    except ConnectionRefusedError:
        pass
    else:
        raise RecordError(f"something listens on {V4}:{sc.port}; the refusal needs a free port")
    finally:
        c.close()


def sc_abort_linger0(sc: Scenario, cap: Capture) -> None:
    lst = listener(socket.AF_INET, sc.port)
    aborted = threading.Event()

    def server() -> None:
        conn, _ = lst.accept()
        with conn:
            recv_until(conn, b"\r\n\r\n")
            time.sleep(STEP)
            conn.sendall(RESPONSE)
            if not aborted.wait(IO_TIMEOUT):
                raise RecordError("client did not abort")
            time.sleep(STEP)
            try:
                data = conn.recv(100)
                raise RecordError(f"expected a reset, got {data!r}")
            except ConnectionResetError:
                pass
        lst.close()

    def client() -> None:
        c = client_socket()
        c.connect((V4, sc.port))
        time.sleep(STEP)
        c.sendall(REQUEST)
        recv_exactly(c, len(RESPONSE))
        time.sleep(STEP)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # abortive close: RST instead of FIN
        aborted.set()

    run_pair(server, client)


def sc_unread_data_close(sc: Scenario, cap: Capture) -> None:
    lst = listener(socket.AF_INET, sc.port)
    sent = threading.Event()
    server_closed = threading.Event()

    def server() -> None:
        conn, _ = lst.accept()
        if not sent.wait(IO_TIMEOUT):
            raise RecordError("client did not send")
        time.sleep(STEP)
        conn.close()  # the request is still in the receive queue: RST, not FIN
        server_closed.set()
        lst.close()

    def client() -> None:
        c = client_socket()
        with c:
            c.connect((V4, sc.port))
            time.sleep(STEP)
            c.sendall(REQUEST)
            sent.set()
            if not server_closed.wait(IO_TIMEOUT):
                raise RecordError("server did not close")
            time.sleep(STEP)
            try:
                data = c.recv(100)
                raise RecordError(f"expected a reset, got {data!r}")
            except ConnectionResetError:
                pass
        # close() of a reset socket sends nothing

    run_pair(server, client)


HALF_CLOSE_CHUNKS = [f"chunk {i} of the response after your FIN\n".encode() for i in range(1, 5)]


def sc_half_close(sc: Scenario, cap: Capture) -> None:
    lst = listener(socket.AF_INET, sc.port)

    def server() -> None:
        conn, _ = lst.accept()
        with conn:
            conn.settimeout(IO_TIMEOUT)
            data = recv_to_eof(conn)  # the request, then the client's FIN
            if data != REQUEST:
                raise RecordError(f"bad request {data!r}")
            for chunk in HALF_CLOSE_CHUNKS:  # keep sending into the half-closed connection
                time.sleep(STEP)
                conn.sendall(chunk)
            time.sleep(STEP)
        lst.close()

    def client() -> None:
        c = client_socket()
        with c:
            c.connect((V4, sc.port))
            time.sleep(STEP)
            c.sendall(REQUEST)
            time.sleep(STEP)
            c.shutdown(socket.SHUT_WR)
            data = recv_to_eof(c)
            if data != b"".join(HALF_CLOSE_CHUNKS):
                raise RecordError(f"bad data {data!r}")
            time.sleep(STEP)

    run_pair(server, client)


def _bulk(port: int, size: int) -> None:
    lst = listener(socket.AF_INET, port)
    payload = bytes(range(256)) * (size // 256)
    ok = b"OK\n"

    def server() -> None:
        conn, _ = lst.accept()
        with conn:
            conn.settimeout(IO_TIMEOUT)
            got = recv_exactly(conn, len(payload))
            if got != payload:
                raise RecordError("bulk payload corrupted")
            time.sleep(STEP)
            conn.sendall(ok)
            if recv_to_eof(conn):
                raise RecordError("unexpected data after the bulk payload")
        lst.close()

    def client() -> None:
        c = client_socket()
        with c:
            c.connect((V4, port))
            time.sleep(STEP)
            c.sendall(payload)
            if recv_exactly(c, len(ok)) != ok:
                raise RecordError("no OK")
            time.sleep(STEP)

    run_pair(server, client)


def sc_bulk_transfer(sc: Scenario, cap: Capture) -> None:
    _bulk(sc.port, 2 * 1024 * 1024)


def sc_snaplen_bulk(sc: Scenario, cap: Capture) -> None:
    _bulk(sc.port, 200 * 1024)


def sc_time_wait_reuse(sc: Scenario, cap: Capture) -> None:
    """Two connections on one 4-tuple; the second SYN reaches the server's TIME-WAIT."""
    assert sc.client_port is not None
    lst = listener(socket.AF_INET, sc.port)
    first_done = threading.Event()

    def serve_one() -> None:
        conn, _ = lst.accept()
        with conn:
            conn.settimeout(IO_TIMEOUT)
            recv_until(conn, b"\r\n\r\n")
            time.sleep(STEP)
            conn.sendall(RESPONSE)
            time.sleep(STEP)
        # server closed first -> this side of the 4-tuple goes to TIME-WAIT

    def server() -> None:
        serve_one()
        first_done.wait(IO_TIMEOUT)
        serve_one()
        lst.close()

    def one_client() -> None:
        c = client_socket(bind_port=sc.client_port)
        with c:
            c.connect((V4, sc.port))
            time.sleep(STEP)
            c.sendall(REQUEST)
            if recv_to_eof(c) != RESPONSE:
                raise RecordError("bad response")
            time.sleep(STEP)

    def client() -> None:
        one_client()
        time.sleep(0.3)  # the server's side is in TIME-WAIT now (60 s on Linux)
        first_done.set()
        one_client()  # same local port, same server port: same 4-tuple

    run_pair(server, client)


def _fin_crossing(path: Path) -> bool:
    """True when each side's FIN was sent before either side acknowledged a FIN."""
    fins: dict[tuple, int] = {}  # (src, sport) -> seq after the FIN
    for src, sport, dst, dport, flags, seq, ack, plen in _tcp_packets(path):
        for (fsrc, fsport), fin_next in fins.items():
            if (dst, dport) == (fsrc, fsport) and flags & 0x10 and _seq_ge(ack, fin_next):
                return False  # a FIN was acknowledged before the other FIN was sent
        if flags & 0x01:
            fins[(src, sport)] = seq + plen + 1
            if len(fins) == 2:
                return True
    return False


def _seq_ge(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


def _tcp_packets(path: Path):
    """Minimal pcap (EN10MB, IPv4/IPv6) TCP reader for the acceptance checks."""
    import dpkt  # only the racy scenarios need it

    with open(path, "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            if not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            if isinstance(ip, dpkt.ip.IP):
                plen = ip.len - ip.hl * 4 - tcp.off * 4
            else:
                plen = ip.plen - tcp.off * 4
            yield (
                bytes(ip.src),
                tcp.sport,
                bytes(ip.dst),
                tcp.dport,
                tcp.flags,
                tcp.seq,
                tcp.ack,
                plen,
            )


def sc_simultaneous_close(sc: Scenario, cap: Capture) -> None:
    """Both ends shutdown(SHUT_WR) at the same instant, from two processes (no GIL)."""
    lst = listener(socket.AF_INET, sc.port)
    c = client_socket()
    c.connect((V4, sc.port))
    s, _ = lst.accept()
    lst.close()
    time.sleep(STEP)
    deadline = time.monotonic() + 0.3
    pid = os.fork()
    if pid == 0:  # child: the client's shutdown
        try:
            while time.monotonic() < deadline:
                pass
            c.shutdown(socket.SHUT_WR)
        finally:
            os._exit(0)
    while time.monotonic() < deadline:  # parent: the server's shutdown
        pass
    s.shutdown(socket.SHUT_WR)
    os.waitpid(pid, 0)
    s.settimeout(IO_TIMEOUT)
    if recv_to_eof(s) or recv_to_eof(c):
        raise RecordError("unexpected data")
    time.sleep(STEP)
    c.close()
    s.close()


def sc_open_at_end(sc: Scenario, cap: Capture) -> None:
    """One exchange, then the capture stops while the connection is still established."""
    lst = listener(socket.AF_INET, sc.port)
    c = client_socket()
    c.connect((V4, sc.port))
    s, _ = lst.accept()
    s.settimeout(IO_TIMEOUT)
    time.sleep(STEP)
    c.sendall(REQUEST)
    recv_until(s, b"\r\n\r\n")
    time.sleep(STEP)
    s.sendall(RESPONSE)
    recv_exactly(c, len(RESPONSE))
    cap.stop()  # stop tcpdump first (after the settle) ...
    c.close()  # ... then close: the FINs are not in the capture
    s.close()
    lst.close()


def sc_keepalive(sc: Scenario, cap: Capture) -> None:
    """An idle connection with TCP keepalive probes (1 s idle, 1 s interval), left open."""
    lst = listener(socket.AF_INET, sc.port)
    c = client_socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5)
    c.connect((V4, sc.port))
    s, _ = lst.accept()
    s.settimeout(IO_TIMEOUT)
    time.sleep(STEP)
    c.sendall(REQUEST)
    recv_until(s, b"\r\n\r\n")
    time.sleep(STEP)
    s.sendall(RESPONSE)
    recv_exactly(c, len(RESPONSE))
    time.sleep(2.6)  # idle: probes at about +1 s and +2 s after the last packet
    cap.stop(settle=0.2)
    c.close()
    s.close()
    lst.close()


def sc_syn_unanswered(sc: Scenario, cap: Capture) -> None:
    """A SYN the real stack drops: the listener's accept queue is full.

    listen(0) leaves room for one established connection in the accept queue; a filler
    connection (outside the capture filter: another client port) fills it and nobody
    calls accept(), so Linux silently drops the next SYN (ListenOverflows) and the
    client retransmits it. TCP_SYNCNT=1 limits the attempt to about 3 s; with
    net.ipv4.tcp_syn_linear_timeouts (Linux >= 6.7) the retransmissions are 1 s apart,
    so that is the SYN and two retransmissions.
    """
    assert sc.client_port is not None
    lst = listener(socket.AF_INET, sc.port, backlog=0)
    fillers = []
    try:
        for _ in range(2):  # one fills the queue; a second just makes sure it is full
            f = client_socket()
            f.setsockopt(socket.IPPROTO_TCP, TCP_SYNCNT, 1)
            f.setblocking(False)
            f.connect_ex((V4, sc.port))
            fillers.append(f)
        time.sleep(STEP)
        c = client_socket(bind_port=sc.client_port)
        c.setsockopt(socket.IPPROTO_TCP, TCP_SYNCNT, 1)
        c.settimeout(10)
        try:
            c.connect((V4, sc.port))
        except (TimeoutError, OSError) as exc:
            if isinstance(exc, ConnectionRefusedError):
                raise RecordError("the SYN was refused, not dropped") from exc
        else:
            raise RecordError("the SYN was answered: the accept queue was not full")
        finally:
            c.close()
    finally:
        for f in fillers:
            f.close()
        lst.close()


# bpf_loss: the capture itself drops data segments, deterministically, with a BPF filter.
LOSS_SIZE = 300 * 1024  # bytes from the client to the server
LOSS_MSS = 1460  # TCP_MAXSEG on both ends: 1448-byte data segments (timestamps on)
LOSS_SEQ_MASK = 0x3FFF  # the filter looks at SEG.SEQ modulo 16384 ...
LOSS_SEQ_BELOW = 1448  # ... and drops a data segment whose SEG.SEQ mod 16384 < 1448
# A run of full 1448-byte segments steps SEG.SEQ by 1448, so exactly one of every 16384
# sequence numbers' worth of segments (one in 11 or 12) starts in [0, 1448): about 19
# segments of 300 KiB, whatever the random ISN. Only segments with data are dropped
# (IP total length > 52 = 20 IP + 32 TCP with timestamps): the handshake, the ACKs and
# the FINs are all captured. The endpoints see every segment; only tcpdump misses them.
LOSS_BPF = (
    f"tcp port 47115 and not (ip[2:2] > 52 and tcp[4:4] & {LOSS_SEQ_MASK:#x} < {LOSS_SEQ_BELOW})"
)


def sc_bpf_loss(sc: Scenario, cap: Capture) -> None:
    """300 KiB in 1448-byte segments; the capture filter drops one data segment in ~11.

    TCP_MAXSEG on the listener and the client keeps the segments small, and one send()
    per segment keeps them 1448 bytes (the shipped file has no larger one; should a
    kernel hand tcpdump a GSO aggregate, the filter judges it by its own SEG.SEQ).
    """
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, LOSS_MSS)
    lst.bind((V4, sc.port))
    lst.listen(8)
    lst.settimeout(IO_TIMEOUT)
    payload = bytes(range(256)) * (LOSS_SIZE // 256)
    ok = b"OK\n"

    def server() -> None:
        conn, _ = lst.accept()
        with conn:
            conn.settimeout(IO_TIMEOUT)
            if recv_exactly(conn, len(payload)) != payload:
                raise RecordError("bulk payload corrupted")
            time.sleep(STEP)
            conn.sendall(ok)
            if recv_to_eof(conn):
                raise RecordError("unexpected data after the bulk payload")
        lst.close()

    def client() -> None:
        c = client_socket()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, LOSS_MSS)
        with c:
            c.connect((V4, sc.port))
            time.sleep(STEP)
            for i in range(0, len(payload), 1448):  # one segment per send: no coalescing
                c.sendall(payload[i : i + 1448])
            if recv_exactly(c, len(ok)) != ok:
                raise RecordError("no OK")
            time.sleep(STEP)

    run_pair(server, client)


SCENARIOS: list[Scenario] = [
    Scenario(
        "client_close_first",
        47101,
        "request/response, the client closes first (clean)",
        sc_client_close_first,
    ),
    Scenario(
        "server_close_first",
        47102,
        "request/response, the server closes first (clean)",
        sc_server_close_first,
    ),
    Scenario("refused", 47103, "SYN to a port without a listener, answered by RST,ACK", sc_refused),
    Scenario(
        "abort_linger0",
        47104,
        "exchange, then the client closes with SO_LINGER (1, 0): RST",
        sc_abort_linger0,
    ),
    Scenario(
        "unread_data_close",
        47105,
        "the server closes with unread data in its receive queue: RST instead of FIN",
        sc_unread_data_close,
    ),
    Scenario(
        "half_close",
        47106,
        "the client sends its request and shuts down writing; the server keeps sending",
        sc_half_close,
    ),
    Scenario(
        "bulk_transfer", 47107, "2 MiB from the client to the server, clean close", sc_bulk_transfer
    ),
    Scenario("ipv6", 47108, "client_close_first over ::1", sc_ipv6),
    Scenario(
        "time_wait_reuse",
        47109,
        "server closes first, the client reconnects from the same port: SYN to TIME-WAIT",
        sc_time_wait_reuse,
        client_port=47209,
    ),
    Scenario(
        "snaplen_bulk",
        47110,
        "200 KiB bulk transfer captured with snaplen 96",
        sc_snaplen_bulk,
        snaplen=96,
    ),
    Scenario(
        "simultaneous_close",
        47111,
        "both ends shut down writing at once: the FINs cross",
        sc_simultaneous_close,
        attempts=40,
        accept=_fin_crossing,
    ),
    Scenario(
        "open_at_end",
        47112,
        "one exchange; the capture ends while the connection is open",
        sc_open_at_end,
    ),
    Scenario(
        "keepalive", 47114, "idle connection with keepalive probes, open at the end", sc_keepalive
    ),
    Scenario(
        "syn_unanswered",
        47113,
        "SYN dropped by a listener whose accept queue is full, retransmitted, no answer",
        sc_syn_unanswered,
        client_port=47213,
        bpf="tcp port 47113 and tcp port 47213",
    ),
    Scenario(
        "bpf_loss",
        47115,
        "300 KiB bulk transfer; the BPF filter drops the data segments with "
        "SEG.SEQ mod 16384 < 1448 (capture loss)",
        sc_bpf_loss,
        snaplen=96,
        bpf=LOSS_BPF,
    ),
]


# --------------------------------------------------------------------------- driver


def record(sc: Scenario, workdir: Path) -> tuple[Path, int, int]:
    """Record one scenario; return (final path, packets, attempts used)."""
    last_error: Exception | None = None
    for attempt in range(1, sc.attempts + 1):
        cap = Capture(sc.filter(), sc.snaplen, workdir, sc.name)
        if cap.path.exists():
            cap.path.unlink()
        cap.start()
        try:
            sc.run(sc, cap)
            packets = cap.captured if cap.captured is not None else cap.stop()
        except BaseException:
            cap.kill()
            raise
        if sc.accept is not None and not sc.accept(cap.path):
            last_error = RecordError(f"attempt {attempt}: the capture does not show the behaviour")
            time.sleep(0.2)
            continue
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        final = OUT_DIR / f"{sc.name}.pcap"
        shutil.move(str(cap.path), final)
        os.chmod(final, 0o644)
        return final, packets, attempt
    raise RecordError(f"{sc.name}: not produced in {sc.attempts} attempts ({last_error})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="scenarios to record (default: all)")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = ap.parse_args(argv)
    by_name = {sc.name: sc for sc in SCENARIOS}
    if args.list:
        for sc in SCENARIOS:
            print(f"{sc.name:20} port {sc.port}  {sc.summary}")
        return 0
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    if shutil.which("tcpdump") is None and not os.path.exists("/usr/bin/tcpdump"):
        print(
            "error: tcpdump is missing; install it (e.g. apt-get install tcpdump)", file=sys.stderr
        )
        return 2
    if os.geteuid() != 0:
        print(
            "warning: not root; tcpdump needs root (or CAP_NET_RAW) to capture on lo",
            file=sys.stderr,
        )
    chosen = [by_name[n] for n in args.names] if args.names else SCENARIOS
    failures = 0
    with tempfile.TemporaryDirectory(prefix="pcapcheck-loopback-") as tmp:
        os.chmod(tmp, 0o755)
        for sc in chosen:
            try:
                path, packets, attempt = record(sc, Path(tmp))
            except RecordError as exc:
                failures += 1
                print(f"FAILED {sc.name}: {exc}", file=sys.stderr)
                continue
            more = f" (attempt {attempt})" if sc.attempts > 1 else ""
            print(f"{sc.name:20} {packets:5d} packets -> {path.relative_to(REPO)}{more}")
    print(f"kernel: {os.uname().release}")
    if failures:
        print(f"{failures} scenario(s) failed; the others were written", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
