"""Wireshark's dissectors as a segment source (``pcapcheck analyze --decoder tshark``).

:class:`TsharkSource` has the interface of :class:`pcapcheck.pipeline.NativeSource`, but
every field comes from Wireshark: pyshark finds the executables
(:func:`pyshark.tshark.tshark.get_process_path`), and one ``tshark -T fields`` process per
file prints the fields of every frame (one process per *file*: pyshark's ``FileCapture``
parses a PDML/JSON tree per packet, which is two orders of magnitude slower). ``capinfos``,
found the same way, gives the file format and the snapshot length.

Wireshark is run with its TCP analysis off (unless asked for, see :func:`run_tshark`),
absolute sequence numbers (``tcp.relative_sequence_numbers:FALSE``, so SACK edges are
absolute), no IP defragmentation (fragments are skipped, as pcapcheck's decoder does),
no TCP reassembly, and every TCP payload handed to the ``data`` dissector (no
application-layer dissection: faster, and an application dissector's "malformed" verdict
is not a TCP problem).

How Wireshark's view is mapped to pcapcheck's :class:`~pcapcheck.model.Segment`:

* ``payload_len`` is ``tcp.len``, which Wireshark computes from the IP length fields
  (the reported length), so a snaplen cut leaves it right; ``truncated`` is true when the
  captured TCP payload (``data.len``) or TCP options (``tcp.options``) are shorter than
  what the headers announce. Options only partly captured are left out, as pcapcheck's
  decoder does.
* A frame is a :class:`~pcapcheck.capture.decoder.DecodeError` when Wireshark marks it malformed
  (``_ws.malformed``) without it being a non-TCP packet, cut before the network layer
  (``_ws.short``), flags a bogus IPv4 header length or total length
  (``ip.bogus_header_length``, ``ip.bogus_ip_length``: shorter than the header, or longer
  than a packet no snaplen cut) or a bogus TCP header length, an option length that breaks
  the option list (``tcp.option.len.invalid``), an IP packet of protocol 6 it could not
  dissect as TCP, a link type it cannot dissect, or cannot give one of the TCP header
  fields. The reason is Wireshark's expert message.
* Tunnels: the frame is read down the protocols Wireshark dissected
  (``frame.protocols``) through the tunnels pcapcheck's decoders follow (an IPv4 or
  IPv6 header carrying IPv4, IPv6, GRE (with ERSPAN types I-III), or UDP to VXLAN,
  Geneve, GTP-U or Teredo, :data:`WIRESHARK_TUNNELS`) to the innermost network layer,
  whose fields are that header's occurrences (tshark prints a repeated field once per
  header, outermost first: the k-th ``ip.src`` is the k-th IPv4 header's). ``encapsulation`` is the
  path :class:`pcapcheck.capture.decoder.Decoder` gives, written with the layer table's
  own entries (:meth:`pcapcheck.capture.layers.Layer.entry`,
  :func:`pcapcheck.capture.layers.ip_entry`) from Wireshark's fields (``vlan.id``,
  ``mpls.label``, ``udp.dstport``, ``vxlan.vni``, ``gre.key``, ``erspan.spanid``,
  ``gtp.teid``...); what a tunnel carries that is not IP is counted under the kind of
  the layer it ends at (``arp``, ``other-ethertype``, ``gtpu-signalling``,
  ``other-teredo-payload``...), a tunnel header Wireshark marks malformed is a
  DecodeError. Where Wireshark accepts a header pcapcheck rejects (a VXLAN header
  without the I flag, Geneve version 1, GRE version 1), the source gives what
  Wireshark read. The UDP tunnels are those on the run's ports (IANA's by default, as
  Wireshark's; others given to Wireshark as decode-as arguments, :func:`decode_as`).
* Non-TCP frames are counted by the kind names of :class:`pcapcheck.capture.decoder.Decoder`
  (``arp``, ``other-ethertype``, ``other-af``, ``ipv4-fragment``, ``ipv6-fragment``,
  ``ipv4-udp``, ``ipv6-udp``, ``icmp``, ``ipv6-icmp``, ``other-ip-proto``), plus
  ``non-packet-record`` for a record Wireshark numbers as a frame but that holds no packet
  (a pcapng Custom Block or systemd Journal Export Block), as pcapcheck's own pipeline
  counts it.

tshark spends ~0.2 s of CPU starting up whatever the file's size: :func:`prefetch` runs
it over many files in parallel (optionally in the background) and the sources reuse the
outputs.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from pcapcheck.capture import layers as L
from pcapcheck.capture.decoder import DecodeError
from pcapcheck.capture.layers import Layer, ip_entry
from pcapcheck.capture.reader import CaptureError
from pcapcheck.model import Segment, TcpOptions

__all__ = [
    "ANALYSIS_FIELDS",
    "DECODE_FIELDS",
    "WIRESHARK_TUNNELS",
    "TsharkFailed",
    "TsharkMissing",
    "TsharkRun",
    "TsharkSource",
    "clear_prefetched",
    "decode_as",
    "is_non_packet",
    "prefetch",
    "row_to_item",
    "run_error",
    "run_tshark",
    "tshark_path",
    "wireshark_version",
]

#: The fields read for decoding (``-e`` options, in this order).
DECODE_FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.len",
    "frame.cap_len",
    "frame.protocols",
    "_ws.malformed",
    "_ws.expert.message",
    "ip.hdr_len",
    "ip.len",
    "ip.id",
    "ip.flags.mf",
    "ip.frag_offset",
    "ip.proto",
    "ip.src",
    "ip.dst",
    "ip.bogus_header_length",
    "ip.bogus_ip_length",
    "_ws.short",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.hdr_len",
    "tcp.len",
    "tcp.options",
    "data.len",
    "tcp.options.mss_val",
    "tcp.options.wscale.shift",
    "tcp.options.sack_perm",
    "tcp.options.sack_le",
    "tcp.options.sack_re",
    "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr",
    "tcp.options.tfo.cookie",
    "tcp.options.tfo.request",
    "tcp.checksum.status",
    "tcp.bogus_header_length",
    "tcp.option.len.invalid",
    "tcp.stream",
    # the headers of tunnels and link layers, for the encapsulation path (_walk)
    "frame.encap_type",
    "vlan.id",
    "ieee8021ad.id",
    "mpls.label",
    "mpls.bottom",
    "pppoe.session_id",
    "udp.srcport",
    "udp.dstport",
    "vxlan.vni",
    "geneve.vni",
    "gtp.message",
    "gtp.teid",
    "gre.flags.key",
    "gre.flags.sequence_number",
    "gre.key",
    "gre.proto",
    "erspan.spanid",
)

#: Wireshark's TCP analysis flags (read when ``analysis=True``); each prints ``1`` when set.
ANALYSIS_FIELDS = (
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.spurious_retransmission",
    "tcp.analysis.out_of_order",
    "tcp.analysis.duplicate_ack",
    "tcp.analysis.zero_window",
    "tcp.analysis.lost_segment",
    "tcp.analysis.ack_lost_segment",
    "tcp.analysis.keep_alive",
    "tcp.analysis.keep_alive_ack",
    "tcp.analysis.reused_ports",
    "tcp.analysis.window_update",
    "tcp.analysis.window_full",
    "tcp.analysis.zero_window_probe",
    "tcp.analysis.zero_window_probe_ack",
)

_AGG = "\x1f"  # aggregator between several occurrences of one field (never in values)

#: Preferences for every run: what Wireshark shows must not depend on the user's profile
#: where it matters here.
_PREFS = {
    "tcp.relative_sequence_numbers": "FALSE",
    "tcp.desegment_tcp_streams": "FALSE",
    "tcp.calculate_timestamps": "FALSE",
    "tcp.no_subdissector_on_error": "FALSE",  # retransmissions go to "data" too (data.len)
    "tcp.track_bytes_in_flight": "FALSE",
    "ip.defragment": "FALSE",
    "ipv6.defragment": "FALSE",
}

#: IPv6 extension headers pcapcheck's decoder walks through (RFC 8200 §4), as Wireshark
#: names them in frame.protocols.
_IPV6_EXT = frozenset({"ipv6.hopopts", "ipv6.routing", "ipv6.fraghdr", "ipv6.dstopts", "ah"})
#: The fields of one IPv4 / IPv6 header that occur once per header.
_IP_FIELDS = {
    4: ("ip.hdr_len", "ip.len", "ip.id", "ip.flags.mf", "ip.frag_offset", "ip.proto", "ip.src", "ip.dst"),
    6: ("ipv6.src", "ipv6.dst"),
}  # fmt: skip
_LINK_UNDISSECTED = frozenset(
    {"data", "user_dlt", "_ws.malformed", "_ws.short", "_ws.unreassembled"}
)


class TsharkMissing(CaptureError):
    """tshark is not installed where pyshark looks for it. One line."""


class TsharkFailed(CaptureError):
    """tshark failed for a reason that is not the capture's (e.g. a field this version
    of Wireshark does not know). One line, starting with the path."""


# ----------------------------------------------------------------------------- locating
def tshark_path() -> str:
    """The path of tshark as pyshark finds it (its config.ini, then the usual locations
    and ``$PATH``).

    :raises TsharkMissing: not found.
    """
    from pyshark.tshark.tshark import TSharkNotFoundException, get_process_path

    try:
        return get_process_path()
    except TSharkNotFoundException:
        raise TsharkMissing(
            "tshark not found (install Wireshark's command-line tools, "
            "e.g. the Debian package 'tshark', or set tshark_path in "
            "pyshark's config.ini)"
        ) from None


def _sibling(tool: str, tshark: str | None = None) -> str | None:
    """Wireshark's ``tool`` (capinfos, captype) installed next to the tshark pyshark
    finds, else on ``$PATH``; None when absent. (pyshark's own lookup only knows the
    programs its config.ini names: tshark and dumpcap.)"""
    name = f"{tool}.exe" if os.name == "nt" else tool
    sibling = os.path.join(os.path.dirname(tshark or tshark_path()), name)
    if os.path.exists(sibling):
        return sibling
    return shutil.which(tool)


def capinfos_path() -> str | None:
    """capinfos, installed next to the tshark pyshark finds (else on ``$PATH``), or None."""
    return _sibling("capinfos")


@dataclass(frozen=True)
class _Tools:
    tshark: str
    capinfos: str | None
    captype: str | None


def _tools() -> _Tools:
    """The executables, looked up once per request (not in worker threads)."""
    exe = tshark_path()
    return _Tools(exe, _sibling("capinfos", exe), _sibling("captype", exe))


_version_cache: list[str] = []


def wireshark_version() -> str:
    """The installed Wireshark's version, e.g. ``"4.0.17"`` (runs ``tshark -v`` once per
    process through pyshark). :raises TsharkMissing: tshark not found."""
    if not _version_cache:
        from pyshark.tshark.tshark import get_tshark_version

        path = tshark_path()
        _version_cache.append(str(get_tshark_version(path)))
    return _version_cache[0]


# ----------------------------------------------------------------------------- running
@dataclass
class TsharkRun:
    """The output of one tshark run over one file.

    ``fields``: the field names, in column order; ``lines``: one tab-separated line per
    frame (several occurrences of a field are joined by ``\\x1f``); ``stderr``: tshark's
    diagnostics (its "running as root" notice removed); ``returncode``; ``capinfos``: the
    text capinfos printed about the file (``""`` when it could not read it).
    """

    path: str
    fields: tuple[str, ...]
    lines: list[str]
    stderr: str
    returncode: int
    capinfos: str = ""
    analysis: bool = False

    def rows(self) -> Iterator[dict[str, str]]:
        """Each frame as ``{field: raw text}`` (absent fields are ``""``)."""
        names = self.fields
        for line in self.lines:
            yield dict(zip(names, line.rstrip("\n").split("\t")))


def _file_key(path: str | Path, verify_checksums: bool, decode_as: Sequence[str] = ()) -> tuple:
    st = os.stat(path)
    return (
        os.path.realpath(path),
        st.st_size,
        st.st_mtime_ns,
        bool(verify_checksums),
        tuple(decode_as),
    )


_prefetched: dict[tuple, _Prefetched] = {}
_lock = threading.Lock()


def _tshark_args(
    tools: _Tools,
    path: str | Path,
    analysis: bool,
    verify_checksums: bool,
    decode_as: Sequence[str] = (),
) -> tuple[list[str], tuple[str, ...]]:
    fields = DECODE_FIELDS + (ANALYSIS_FIELDS if analysis else ())
    prefs = dict(_PREFS)
    prefs["tcp.analyze_sequence_numbers"] = "TRUE" if analysis else "FALSE"
    prefs["tcp.check_checksum"] = "TRUE" if verify_checksums else "FALSE"
    args = [
        tools.tshark,
        "-n",
        "-r",
        str(path),
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        f"aggregator={_AGG}",
        "-E",
        "quote=n",
        "-E",
        "header=n",
        "-d",
        "tcp.port==0-65535,data",
        *decode_as,
    ]
    for name, value in prefs.items():
        args += ["-o", f"{name}:{value}"]
    for name in fields:
        args += ["-e", name]
    return args, fields


def _clean_stderr(text: str) -> str:
    return "\n".join(
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith("Running as user")
    )


def _capinfos(tools: _Tools, path: str | Path) -> subprocess.Popen | None:
    if tools.capinfos is None:
        return None
    return subprocess.Popen(
        [tools.capinfos, "-t", "-l", "-I", "-M", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    )


class _Stream:
    """One tshark process (and capinfos beside it) over one file, read line by line."""

    def __init__(
        self,
        tools: _Tools,
        path: str | Path,
        analysis: bool,
        verify_checksums: bool,
        decode_as: Sequence[str] = (),
    ):
        self.path = str(path)
        self.analysis = analysis
        self.tools = tools
        args, self.fields = _tshark_args(tools, path, analysis, verify_checksums, decode_as)
        self._err = tempfile.TemporaryFile()
        self._info = _capinfos(tools, path)
        # binary: a field value may hold a lone "\r", which text mode would take for a
        # line end; tshark ends its lines with "\n"
        self._proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._err, stdin=subprocess.DEVNULL
        )

    def lines(self) -> Iterator[str]:
        proc = self._proc
        assert proc.stdout is not None
        done = False
        try:
            for raw in proc.stdout:
                yield raw.decode("utf-8", "replace")
            done = True
        finally:
            if not done and proc.poll() is None:
                proc.kill()  # the consumer stopped early: do not read the whole file
            proc.stdout.close()
            proc.wait()

    def finish(self) -> TsharkRun:
        """After :meth:`lines` is exhausted: the run without its lines."""
        self._proc.wait()
        self._err.seek(0)
        stderr = _clean_stderr(self._err.read().decode("utf-8", "replace"))
        self._err.close()
        return TsharkRun(
            self.path,
            self.fields,
            [],
            stderr,
            self._proc.returncode,
            _capinfos_text(self.tools, self.path, self._info),
            self.analysis,
        )


def _capinfos_text(tools: _Tools, path: str | Path, info: subprocess.Popen | None) -> str:
    cap_out = ""
    if info is not None:
        out = info.communicate()[0]
        cap_out = out if info.returncode in (0, 1) else ""
    if "File type:" not in cap_out:
        # capinfos gives up on some damaged files (e.g. corrupt gzip data) before printing
        # anything; captype still names the format.
        captype = tools.captype
        if captype is not None:
            out = subprocess.run(
                [captype, str(path)],
                capture_output=True,
                text=True,
                errors="replace",
                stdin=subprocess.DEVNULL,
            ).stdout
            name = out.rsplit(":", 1)[-1].strip()
            if name and name != "unknown":
                cap_out += f"\nFile type: {name}\n"
    return cap_out


def _run_whole(
    tools: _Tools,
    path: str | Path,
    analysis: bool,
    verify_checksums: bool,
    decode_as: Sequence[str] = (),
) -> TsharkRun:
    """Run tshark (and capinfos) to completion and keep the whole output."""
    stream = _Stream(tools, path, analysis, verify_checksums, decode_as)
    lines = [line.rstrip("\n") for line in stream.lines()]
    run = stream.finish()
    run.lines = lines
    return run


def run_tshark(
    path: str | Path,
    *,
    analysis: bool = False,
    verify_checksums: bool = False,
    decode_as: Sequence[str] = (),
) -> TsharkRun:
    """Run tshark once over ``path`` and return its whole output (a prefetched run of the
    same, unchanged file is reused: see :func:`prefetch`).

    ``analysis``: also read Wireshark's TCP analysis flags (:data:`ANALYSIS_FIELDS`),
    with "Analyze TCP sequence numbers" on; ``verify_checksums``: let Wireshark verify
    TCP checksums (``tcp.checksum.status``); ``decode_as``: more tshark ``-d`` arguments
    (``["-d", "udp.port==8472,vxlan"]``: a tunnel on a port that is not IANA's,
    :func:`decode_as`).

    :raises TsharkMissing: tshark not found.
    :raises CaptureError: ``path`` cannot be opened (missing, a directory, unreadable).
    """
    tools = _tools()
    cached = _lookup(path, analysis, verify_checksums, decode_as)
    if cached is not None:
        return cached
    _check_openable(path)
    return _run_whole(tools, path, analysis, verify_checksums, decode_as)


@dataclass
class _Prefetched:
    analysis: bool
    future: Future


def _lookup(
    path: str | Path, analysis: bool, verify_checksums: bool, decode_as: Sequence[str] = ()
) -> TsharkRun | None:
    """A prefetched run of ``path`` that serves this request (waiting for it when it is
    still running; made with the same ``decode_as``), or None."""
    if not _prefetched:
        return None
    try:
        key = _file_key(path, verify_checksums, decode_as)
    except OSError:
        return None
    with _lock:
        entry = _prefetched.get(key)
    if entry is None or (analysis and not entry.analysis):
        return None
    try:
        return entry.future.result()
    except Exception:
        with _lock:
            if _prefetched.get(key) is entry:
                del _prefetched[key]
        return None


def prefetch(
    paths: Iterable[str | Path],
    *,
    analysis: bool = False,
    verify_checksums: bool = False,
    workers: int | None = None,
    wait: bool = True,
    decode_as: Sequence[str] = (),
) -> list[tuple]:
    """Run tshark over several files at once and keep the outputs, so that
    :class:`TsharkSource`, :func:`run_tshark` and :func:`pcapcheck.compare.wireshark.crosscheck`
    reuse them instead of starting tshark again (tshark spends ~0.2 s of CPU starting up,
    whatever the size of the file).

    ``workers``: processes at a time (default: the number of CPUs). ``wait=False``
    returns at once and lets the runs go on in background (daemon) threads, in the
    order given; a request for a file whose run is still going waits for it. A run
    with ``analysis=True`` also serves requests without analysis. Files that cannot be
    opened are left out (the later request reports them). The outputs stay in memory
    until :func:`clear_prefetched`. ``decode_as``: as :func:`run_tshark`'s (a run serves
    the requests with the same). Returns the keys of the runs this call started (for
    ``clear_prefetched(keys)``).

    :raises TsharkMissing: tshark not found.
    """
    tools = _tools()
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    keys: list[tuple] = []
    count = 0
    with _lock:
        for p in paths:
            try:
                key = _file_key(p, verify_checksums, decode_as)
                _check_openable(p)
            except (OSError, CaptureError):
                continue
            entry = _prefetched.get(key)
            if entry is not None and (entry.analysis or not analysis):
                continue
            fut: Future = Future()
            _prefetched[key] = _Prefetched(analysis, fut)
            jobs.put((p, fut))
            keys.append(key)
            count += 1

    def work() -> None:
        while True:
            try:
                p, fut = jobs.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(_run_whole(tools, p, analysis, verify_checksums, decode_as))
            except BaseException as exc:
                fut.set_exception(exc)

    threads = [
        threading.Thread(target=work, name="tshark-prefetch", daemon=True)
        for _ in range(min(count, workers or os.cpu_count() or 2))
    ]
    for t in threads:
        t.start()
    if wait:
        for t in threads:
            t.join()
    return keys


def clear_prefetched(keys: Iterable[tuple] | None = None) -> None:
    """Forget the prefetched runs of ``keys`` (as :func:`prefetch` returned them), or
    every one (runs still going finish unseen)."""
    with _lock:
        if keys is None:
            _prefetched.clear()
        else:
            for key in keys:
                _prefetched.pop(key, None)


def _check_openable(path: str | Path) -> None:
    """Raise CaptureError for a path that is not a readable, non-empty regular file
    (tshark's own words for these cases do not start with the path)."""
    p = Path(path)
    try:
        if p.is_dir():
            raise CaptureError(f"{path}: is a directory, not a capture file")
        with open(p, "rb") as f:
            empty = not f.read(1)
    except FileNotFoundError:
        raise CaptureError(f"{path}: no such file") from None
    except PermissionError:
        raise CaptureError(f"{path}: permission denied") from None
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    if empty:
        raise CaptureError(f"{path}: empty file, not a capture")


# ----------------------------------------------------------------------------- decoding
def _int(text: str, default: int | None = None) -> int | None:
    """First occurrence of an integer field (decimal or 0x-hex); ``default`` if absent."""
    if not text:
        return default
    text = text.split(_AGG, 1)[0]
    return int(text, 0) if text.startswith("0x") else int(text)


def _first(text: str) -> str:
    return text.split(_AGG, 1)[0]


def _all(text: str) -> list[str]:
    return text.split(_AGG) if text else []


def _ts(text: str) -> float:
    """``frame.time_epoch`` ("1700000000.123456000") as float seconds, computed like
    the reader does (integer ticks / ticks per second) so both paths agree exactly."""
    whole, _, frac = text.partition(".")
    if not frac:
        return float(int(whole))
    ticks = 10 ** len(frac)
    sign = -1 if whole.startswith("-") else 1
    return (int(whole) * ticks + sign * int(frac)) / ticks


def _reason(row: dict[str, str], fallback: str) -> str:
    msgs = [m for m in _all(row.get("_ws.expert.message", "")) if m]
    bad = [
        m
        for m in msgs
        if any(
            w in m.lower()
            for w in (
                "bogus",
                "malformed",
                "invalid",
                "too-short",
                "too short",
                "past end",
                "not handled",
                "exceeds",
                "must be",
                "truncated",
                "less than",
            )
        )
    ]
    text = "; ".join(bad) or fallback
    return f"Wireshark: {text}"


def _option_walk(raw: bytes) -> tuple[set[int], str | None]:
    """The option kinds wholly inside ``raw`` (the captured option bytes), and the
    structural problem that stops the list (an option length < 2 or running past the
    end), if any. Only lengths are looked at; values come from Wireshark's fields."""
    kinds: set[int] = set()
    i, n = 0, len(raw)
    while i < n:
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            return kinds, f"option kind {kind} has no length byte"
        olen = raw[i + 1]
        if olen < 2:
            return kinds, f"option kind {kind} has length {olen}"
        if i + olen > n:
            return kinds, f"option kind {kind} (length {olen}) runs past the end"
        kinds.add(kind)
        i += olen
    return kinds, None


def _options(row: dict[str, str], hdr_len: int) -> tuple[TcpOptions | None, bool]:
    """(options, header cut): the TCP options Wireshark decoded, keeping only those
    wholly captured; ``header cut`` when the snaplen cut the option bytes."""
    if hdr_len <= 20:
        return None, False
    raw = bytes.fromhex(_first(row.get("tcp.options", "")).replace(":", ""))
    want = hdr_len - 20
    cut = len(raw) < want
    if cut:
        complete, _problem = _option_walk(raw)
    else:
        complete = None  # everything captured: take all Wireshark decoded

    def keep(kind: int) -> bool:
        return complete is None or kind in complete

    mss = _int(row.get("tcp.options.mss_val", "")) if keep(2) else None
    wscale = _int(row.get("tcp.options.wscale.shift", "")) if keep(3) else None
    sack_ok = bool(row.get("tcp.options.sack_perm")) and keep(4)
    sack: tuple[tuple[int, int], ...] = ()
    if keep(5):
        le = [int(v) for v in _all(row.get("tcp.options.sack_le", ""))]
        re_ = [int(v) for v in _all(row.get("tcp.options.sack_re", ""))]
        sack = tuple(zip(le, re_))
    ts_val = ts_ecr = None
    if (
        keep(8)
        and row.get("tcp.options.timestamp.tsval")
        and row.get("tcp.options.timestamp.tsecr")
    ):
        ts_val = _int(row["tcp.options.timestamp.tsval"])
        ts_ecr = _int(row["tcp.options.timestamp.tsecr"])
    tfo = None
    if keep(34) or keep(254):
        cookie = _first(row.get("tcp.options.tfo.cookie", ""))
        if cookie:
            tfo = bytes.fromhex(cookie.replace(":", ""))
        elif row.get("tcp.options.tfo.request"):
            tfo = b""
    return TcpOptions(mss, wscale, sack_ok, sack, ts_val, ts_ecr, tfo), cut


# ----------------------------------------------------------------------------- tunnels
#: Wireshark's dissector (its name in the ``udp.port`` table and in ``frame.protocols``,
#: ``tshark -G decodes``) of each UDP tunnel of :data:`pcapcheck.capture.layers.UDP_TUNNELS`.
WIRESHARK_TUNNELS = {"vxlan": "vxlan", "geneve": "geneve", "gtpu": "gtp", "teredo": "teredo"}
_UDP_TUNNEL_NAMES = {ws: name for name, ws in WIRESHARK_TUNNELS.items()}


def decode_as(tunnel_ports: Mapping[str, Iterable[int]] | None) -> list[str]:
    """tshark's arguments that make Wireshark decode the UDP tunnels on the ports
    pcapcheck's decoders follow with ``tunnel_ports`` (tunnel name -> UDP ports, the
    ``[tunnel-ports]`` configuration key, :func:`pcapcheck.capture.layers.udp_tunnel_layers`):
    ``["-d", "udp.port==8472,vxlan"]`` for a port given to a tunnel that is not its
    default, ``["-d", "udp.port==4789,data"]`` for a default port no tunnel has any more.
    Empty for None or IANA's ports (Wireshark's defaults are the same).

    :raises ValueError: as :func:`pcapcheck.capture.layers.tunnel_tables`.
    """
    if not tunnel_ports:
        return []
    name_of = {layer: name for name, (layer, _ports) in L.UDP_TUNNELS.items()}
    default, chosen = L.UDP_PORT.layers, L.udp_tunnel_layers(tunnel_ports)
    args: list[str] = []
    for port in sorted(default.keys() | chosen.keys()):
        layer = chosen.get(port)
        if layer is not default.get(port):
            args += [
                "-d",
                f"udp.port=={port},{WIRESHARK_TUNNELS[name_of[layer]] if layer else 'data'}",
            ]
    return args


#: pcapcheck's layer of each link layer Wireshark names in ``frame.protocols``; the
#: first layer of a frame whose Wireshark name covers two link types is told by the
#: frame's ``frame.encap_type`` (Wireshark's WTAP_ENCAP numbers: 210 SLL2, 174 LOOP).
_LINK_LAYERS: dict[str, Layer] = {
    "eth": L.ETHERNET,
    "vlan": L.VLAN,
    "ieee8021ad": L.VLAN,
    "sll": L.SLL,
    "null": L.NULL,
    "raw": L.RAW,
    "mpls": L.MPLS,
    "pwethcw": L.PW_ETH,
    "pppoes": L.PPPOE,
}
_ENCAP_LAYERS = {210: L.SLL2, 174: L.LOOP}
#: Wireshark's field holding the ident of a link layer's path entry (the layer's
#: ``ident``: the VLAN id, the MPLS label, the PPPoE session id)
_IDENT_FIELDS = {
    "vlan": "vlan.id",
    "ieee8021ad": "ieee8021ad.id",
    "mpls": "mpls.label",
    "pppoes": "pppoe.session_id",
}
#: Of each UDP tunnel by Wireshark's name: the layer whose entry the path holds,
#: Wireshark's field of its ident (None: it has none) and the layer the tunnel ends at
#: (what it carries is dispatched from there)
_UDP_TUNNEL_LAYERS: dict[str, tuple[Layer, str | None, Layer]] = {
    "vxlan": (L.VXLAN, "vxlan.vni", L.VXLAN),
    "geneve": (L.GENEVE, "geneve.vni", L.GENEVE),
    "gtp": (L.GTPU_HEADER, "gtp.teid", L.GTPU_PAYLOAD),
    "teredo": (L.TEREDO, None, L.TEREDO),
}
#: names in ``frame.protocols`` that are no header of their own (a dissector table, a
#: heuristic, the PPP protocol field of the PPPoE session header)
_NO_HEADER = frozenset({"ethertype", "ppp", "pwethheuristic"})


class _Cursor:
    """The occurrences of the fields of a frame, taken in protocol order."""

    def __init__(self, row: dict[str, str]):
        self.row = row
        self.pos: Counter = Counter()

    def take(self, name: str) -> int | None:
        """The next occurrence of integer field ``name`` (None when there is none)."""
        i = self.pos[name]
        self.pos[name] += 1
        values = _all(self.row.get(name, ""))
        return _int(values[i]) if i < len(values) and values[i] else None


@dataclass
class _Walk:
    """Where the walk through the tunnels of a frame stopped: ``net``, the index in
    ``frame.protocols`` of the innermost network layer (None: it ended at a layer that
    names no network layer, ``last``); ``entries``, the encapsulation path so far (the
    inner IP header's entry left out); ``tunnelled``, an IP header led into a tunnel;
    ``kind``, a skipped kind decided on the way (GTP-U signalling)."""

    net: int | None
    entries: list[str]
    tunnelled: bool
    last: Layer | None = None
    kind: str | None = None


def _ip_fragment(row: dict[str, str], version: int, k: int, ext: list[str]) -> bool:
    """Whether the ``k``-th IPv4 header is a fragment, or an IPv6 header has a fragment
    header (``ext``: its extension headers)."""
    if version == 6:
        return "ipv6.fraghdr" in ext
    mf = _nth(row, "ip.flags.mf", k)
    return mf in ("1", "True") or bool(_int(_nth(row, "ip.frag_offset", k), 0))


def _nth(row: dict[str, str], name: str, k: int) -> str:
    values = _all(row.get(name, ""))
    return values[k] if k < len(values) else ""


def _walk(row: dict[str, str], protos: list[str], udp_ports: Mapping[int, Layer]) -> _Walk:
    """Follow Wireshark's dissection of a frame (``frame.protocols``) through the
    tunnels pcapcheck's decoders follow (an IP header carrying IPv4, IPv6, GRE, or UDP
    to one of :data:`WIRESHARK_TUNNELS`) down to the innermost network layer, writing
    each layer's path entry with the layer table's own labels
    (:meth:`pcapcheck.capture.layers.Layer.entry`,
    :func:`pcapcheck.capture.layers.ip_entry`) and Wireshark's values of their idents."""
    fields = _Cursor(row)
    entries: list[str] = []
    tunnelled = False
    last: Layer | None = None
    n = len(protos)
    i = 0

    def add(entry: str | None) -> None:
        if entry is not None:
            entries.append(entry)

    while i < n:
        name = protos[i]
        if name in _NO_HEADER:
            i += 1
            continue
        layer = _LINK_LAYERS.get(name)
        if layer is not None:
            if i == 0:
                layer = _ENCAP_LAYERS.get(_int(row.get("frame.encap_type", "")) or -1, layer)
            if name == "mpls":  # one name for the whole stack: an entry per label
                while (label := fields.take("mpls.label")) is not None:
                    add(layer.entry(label))
                    if fields.take("mpls.bottom") != 0:
                        break
                layer = L.MPLS_PAYLOAD
            elif name in _IDENT_FIELDS:
                add(layer.entry(fields.take(_IDENT_FIELDS[name])))
            else:
                add(layer.entry())
            last = layer
            i += 1
            continue
        if name not in ("ip", "ipv6"):
            break
        version = 4 if name == "ip" else 6
        j = i + 1
        while j < n and protos[j] in _IPV6_EXT:
            j += 1
        inner = protos[j] if j < n else None
        udp_tunnel = protos[j + 1] if inner == "udp" and j + 1 < n else None
        follows = inner in ("ip", "ipv6", "gre") or udp_tunnel in _UDP_TUNNEL_NAMES
        k = protos[:i].count(name)
        if (
            not follows
            or _ip_fragment(row, version, k, protos[i + 1 : j])
            or row.get("ip.bogus_header_length")
            or row.get("ip.bogus_ip_length")
        ):
            return _Walk(i, entries, tunnelled)
        prefix = "ip" if version == 4 else "ipv6"
        add(ip_entry(version, _nth(row, f"{prefix}.src", k), _nth(row, f"{prefix}.dst", k)))
        tunnelled = True
        if inner in ("ip", "ipv6"):
            i = j
            continue
        if inner == "gre":
            key = fields.take("gre.key") if fields.take("gre.flags.key") else None
            sequence = fields.take("gre.flags.sequence_number")
            protocol = fields.take("gre.proto")
            gre = L.GRE if key is None else L.GRE_KEY
            add(gre.entry(key))
            last = gre
            i = j + 1
            if i < n and protos[i] == "erspan":
                table = L.GRE_PROTOCOL if sequence else L.GRE_PROTOCOL_NO_SEQUENCE
                erspan = table.layers.get(protocol if protocol is not None else -1)
                if erspan is not None:
                    ident = fields.take("erspan.spanid") if erspan.ident is not None else None
                    add(erspan.entry(ident))
                    last = erspan
                i += 1
            continue
        # a UDP tunnel: the port of the tunnel Wireshark chose (the path names what the
        # frame was read as). pcapcheck's decoders take the destination port when it
        # names a tunnel (layers.UDP); Wireshark tries the lower port first, so the two
        # differ only for a datagram between two tunnels' ports: each says what it read.
        sport, dport = fields.take("udp.srcport"), fields.take("udp.dstport")
        assert udp_tunnel is not None
        tunnel = L.UDP_TUNNELS[_UDP_TUNNEL_NAMES[udp_tunnel]][0]
        port = (
            sport
            if udp_ports.get(dport or -1) is not tunnel and udp_ports.get(sport or -1) is tunnel
            else dport
        )
        add(L.UDP.entry(port))
        i = j + 2
        if udp_tunnel == "gtp":
            message = fields.take("gtp.message")
            if message is not None and message not in L.GTPU_MESSAGE.layers:
                return _Walk(None, entries, tunnelled, kind=L.GTPU_MESSAGE.skip_kind(message))
        labelled, ident_field, last = _UDP_TUNNEL_LAYERS[udp_tunnel]
        add(labelled.entry(fields.take(ident_field) if ident_field else None))
    return _Walk(None, entries, tunnelled, last)


def is_non_packet(row: dict[str, str]) -> bool:
    """True for a frame that is a record without packet data: a pcapng Custom Block (no
    timestamp) or systemd Journal Export Block, which Wireshark numbers as frames (so does
    pcapcheck's reader: :data:`pcapcheck.capture.reader.NON_PACKET_KINDS`)."""
    return (
        not row.get("frame.time_epoch")
        or row.get("frame.protocols", "").split(":")[0] == "systemd_journal"
    )


def row_to_item(
    row: dict[str, str],
    verify_checksums: bool = False,
    udp_ports: Mapping[int, Layer] | None = None,
) -> tuple[Segment | None, str | None]:
    """Map one frame of tshark output to ``(segment, None)``, ``(None, skip_kind)``
    or raise DecodeError. ``skip_kind`` is a :attr:`Decoder.skipped` kind name.
    ``udp_ports``: the UDP tunnel on each port (the run's,
    :func:`pcapcheck.capture.layers.udp_tunnel_layers`; None: IANA's), which tells a
    tunnel's port from the other end's."""
    frame = int(row["frame.number"])
    ts = _ts(row["frame.time_epoch"])
    protos = row.get("frame.protocols", "").split(":") if row.get("frame.protocols") else []
    malformed = bool(row.get("_ws.malformed"))
    walk = _walk(row, protos, L.UDP_PORT.layers if udp_ports is None else udp_ports)
    if walk.kind is not None:
        return None, walk.kind
    net = walk.net
    if net is None and not walk.tunnelled:  # a link layer the walk does not know
        net = next((i for i, p in enumerate(protos) if p in ("ip", "ipv6")), None)
    if net is None and walk.tunnelled:
        # a tunnel that carries no IP packet: the layer it ends at names no network layer
        if malformed or row.get("_ws.short"):
            raise DecodeError(_reason(row, "tunnel header not captured or malformed"))
        if "arp" in protos:
            return None, "arp"
        kind = walk.last.dispatch.skip if walk.last is not None else None
        if kind is None:
            raise DecodeError(_reason(row, "Wireshark found no packet inside the tunnel"))
        return None, kind
    if net is None:
        if not protos or protos[0] in _LINK_UNDISSECTED:
            raise DecodeError(_reason(row, "Wireshark cannot dissect this link layer"))
        if "arp" in protos:
            return None, "arp"
        if malformed or row.get("_ws.short") or len(protos) == 1:
            raise DecodeError(_reason(row, "link-layer header not captured or malformed"))
        if protos[0] in ("null", "loop"):
            return None, "other-af"
        return None, "other-ethertype"
    version = 4 if protos[net] == "ip" else 6
    if walk.tunnelled:
        # the innermost IP header: its fields are the k-th occurrences
        k = protos[:net].count(protos[net])
        row = dict(row)
        for name in _IP_FIELDS[version]:
            row[name] = _nth(row, name, k)
    rest = [p for p in protos[net + 1 :] if p not in _IPV6_EXT]
    nxt = rest[0] if rest else None
    if version == 4:
        if row.get("ip.bogus_header_length"):
            raise DecodeError(_reason(row, "bogus IPv4 header length"))
        if row.get("ip.bogus_ip_length"):
            # total length shorter than the header, or longer than the packet that was
            # not cut by a snaplen: the IP length contradicts the packet
            raise DecodeError(_reason(row, "bogus IPv4 total length"))
        mf = _first(row.get("ip.flags.mf", ""))
        if mf in ("1", "True") or _int(row.get("ip.frag_offset", ""), 0):
            return None, "ipv4-fragment"
        proto = _int(row.get("ip.proto", ""))
        if proto == 17:
            return None, "ipv4-udp"
        if proto == 1:
            return None, "icmp"
        if proto is not None and proto != 6:
            return None, "other-ip-proto"
    else:
        more = _first(row.get("ipv6.fraghdr.more", ""))
        if more in ("1", "True") or _int(row.get("ipv6.fraghdr.offset", ""), 0):
            return None, "ipv6-fragment"
        if nxt == "udp":
            return None, "ipv6-udp"
        if nxt == "icmpv6":
            return None, "ipv6-icmp"
        if nxt is None and not (malformed or row.get("_ws.short")):
            return None, "other-ip-proto"  # e.g. No Next Header (59)
        if nxt is not None and nxt != "tcp" and not nxt.startswith("_ws."):
            return None, "other-ip-proto"
    if nxt != "tcp":
        raise DecodeError(_reason(row, f"IPv{version} packet not dissected as TCP"))
    if malformed:
        raise DecodeError(_reason(row, "malformed packet"))
    if row.get("tcp.bogus_header_length"):
        raise DecodeError(_reason(row, "bogus TCP header length"))
    values = {}
    for name in (
        "tcp.srcport",
        "tcp.dstport",
        "tcp.seq_raw",
        "tcp.ack_raw",
        "tcp.flags",
        "tcp.window_size_value",
        "tcp.hdr_len",
        "tcp.len",
    ):
        v = _int(row.get(name, ""))
        if v is None:
            raise DecodeError(_reason(row, f"no {name} (TCP header not captured)"))
        values[name] = v
    hdr_len = values["tcp.hdr_len"]
    if row.get("tcp.option.len.invalid"):
        raw = bytes.fromhex(_first(row.get("tcp.options", "")).replace(":", ""))
        _kinds, problem = _option_walk(raw[: hdr_len - 20])
        if problem is not None and len(raw) >= hdr_len - 20:
            raise DecodeError(_reason(row, f"bad TCP option length: {problem}"))
    opts, header_cut = _options(row, hdr_len)
    length = values["tcp.len"]
    captured_payload = _int(row.get("data.len", "").split(_AGG)[-1], 0) or 0
    truncated = header_cut or captured_payload < length
    checksum_ok = None
    if verify_checksums and not truncated:
        status = _int(row.get("tcp.checksum.status", ""))  # 0 bad, 1 good, 2 unverified
        checksum_ok = None if status is None else {0: False, 1: True}.get(status)
    if version == 4:
        src, dst = _first(row["ip.src"]), _first(row["ip.dst"])
        ip_id = _int(row.get("ip.id", ""))
    else:
        src, dst = _first(row["ipv6.src"]), _first(row["ipv6.dst"])
        ip_id = None
    seg = Segment(
        frame,
        ts,
        src,
        dst,
        values["tcp.srcport"],
        values["tcp.dstport"],
        values["tcp.seq_raw"],
        values["tcp.ack_raw"],
        values["tcp.flags"] & 0xFF,
        values["tcp.window_size_value"],
        length,
        opts,
        ip_id,
        version,
        truncated,
        checksum_ok,
        tuple([*walk.entries, ip_entry(version)]) if walk.tunnelled else None,
    )
    return seg, None


# ----------------------------------------------------------------------------- the source
_FORMATS = {"pcap": "pcap", "nsecpcap": "pcap-nsec", "pcapng": "pcapng"}


def _parse_capinfos(text: str) -> tuple[str | None, int | None]:
    """(format, snaplen) from capinfos ``-t -l -I -M`` output: the format named as the
    reader names it (``pcap``, ``pcap-nsec``, ``pcapng``; other formats by Wireshark's
    name); the snaplen of a pcap file header, else the largest interface snaplen (None
    when an interface has none)."""
    fmt = None
    header_snap = None
    snaps: list[int] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "File type":
            name = (
                value.replace("(gzip compressed)", "")
                .replace("(zstd compressed)", "")
                .replace("(lz4 compressed)", "")
                .strip()
            )
            fmt = _FORMATS.get(name, name)
        elif key == "Packet size limit" and value.startswith("file hdr:"):
            num = value[len("file hdr:") :].strip().split(" ")[0]
            if num.isdigit():
                header_snap = int(num)
        elif line.strip().startswith("Capture length ="):
            num = line.split("=", 1)[1].strip()
            if num.isdigit():
                snaps.append(int(num))
    if header_snap is not None:
        return fmt, header_snap
    if not snaps or 0 in snaps:
        return fmt, None
    return fmt, max(snaps)


def _stderr_problem(stderr: str) -> str:
    """tshark's complaint as one line, without the "tshark: " prefixes and the quoted
    file name (the caller starts its message with the path)."""
    parts = [line.strip().removeprefix("tshark:").strip() for line in stderr.splitlines()]
    text = " ".join(p for p in parts if p)
    text = re.sub(r'The file "[^"]*" ', "", text)
    return text.replace("..", ".")


class TsharkSource:
    """Wireshark's decoding of a capture, with :class:`pcapcheck.pipeline.NativeSource`'s
    interface.

    ``TsharkSource(path, verify_checksums=False, tunnel_ports=None)`` (``tunnel_ports``:
    the run's UDP tunnel ports, as the native decoder takes them; Wireshark is told to
    decode the same, :func:`decode_as`); iterating yields ``(frame, ts, item)``
    for every frame (``frame`` 1-based as Wireshark numbers it, ``ts`` float seconds since
    the epoch, ``item`` a :class:`~pcapcheck.model.Segment`, ``None`` for a packet that is
    not TCP, or a :class:`~pcapcheck.capture.decoder.DecodeError`; see the module docstring for
    the mapping). After iteration: ``skipped`` (Counter by the decoder's kind names),
    ``truncated`` (one line when Wireshark stopped early: the file cut short inside a
    record, a damaged record, corrupt compressed data; else None), ``format``
    (``pcap``, ``pcap-nsec``, ``pcapng``, or Wireshark's name of another format) and
    ``snaplen`` (bytes, or None), both from capinfos (None when capinfos is not
    installed).

    :raises TsharkMissing: (at construction) tshark not found.
    :raises CaptureError: a file tshark cannot read at all (missing, empty, not a
        capture, a file header cut short, compressed data corrupt from the start); at
        construction when the file cannot be opened, else during iteration.
    """

    def __init__(
        self,
        path: str | Path,
        verify_checksums: bool = False,
        tunnel_ports: Mapping[str, Iterable[int]] | None = None,
    ):
        self.path = str(path)
        self.verify = verify_checksums
        self.decode_as = decode_as(tunnel_ports)
        self._udp_ports = L.udp_tunnel_layers(tunnel_ports)
        self.skipped: Counter = Counter()
        self.truncated: str | None = None
        self.format: str | None = None
        self.snaplen: int | None = None
        self._tools = _tools()
        self._prefetched = _lookup(path, False, verify_checksums, self.decode_as)
        if self._prefetched is None:
            _check_openable(path)

    def __iter__(self) -> Iterator[tuple[int, float, Segment | DecodeError | None]]:
        self.skipped = Counter()
        self.truncated = None
        # A prefetched run has its lines and exit status already; a stream has them
        # once its lines are read.
        source: TsharkRun | _Stream
        if self._prefetched is not None:
            source = self._prefetched
            names = source.fields
            lines: Iterable[str] = source.lines
        else:
            source = _Stream(self._tools, self.path, False, self.verify, self.decode_as)
            names = source.fields
            lines = source.lines()
        last = 0
        ts = 0.0
        for line in lines:
            row = dict(zip(names, line.rstrip("\n").split("\t")))
            frame = int(row["frame.number"])
            last = frame
            if is_non_packet(row):
                # A record that is not a packet (a pcapng custom or systemd journal
                # block): Wireshark numbers it as a frame.
                self.skipped["non-packet-record"] += 1
                yield frame, ts, None
                continue
            ts = _ts(row["frame.time_epoch"])
            try:
                seg, kind = row_to_item(row, self.verify, self._udp_ports)
            except DecodeError as exc:
                yield frame, ts, exc
                continue
            if seg is None:
                self.skipped[kind] += 1
            yield frame, ts, seg
        run = source.finish() if isinstance(source, _Stream) else source
        self.format, self.snaplen = _parse_capinfos(run.capinfos)
        if run.returncode != 0:
            error = run_error(run)
            if last == 0 and error is not None:
                raise error
            self.truncated = _truncation_text(_stderr_problem(run.stderr), last)


def run_error(run: TsharkRun) -> CaptureError | None:
    """The exception for a run that read no frame at all because tshark failed: a
    :class:`TsharkFailed` when tshark rejected its own arguments (a field or preference
    this Wireshark version does not know), a CaptureError when it could not read the
    file; None when the run succeeded or only stopped early (the file cut short in the
    middle of a packet, which is a truncated capture, not an unreadable one)."""
    if run.returncode == 0:
        return None
    problem = _stderr_problem(run.stderr)
    if problem.startswith("appears to have been cut short in the middle of a packet."):
        return None
    if any(
        w in problem
        for w in (
            "fields aren't valid",
            "-o flag",
            "unknown preference",
            "Invalid -",
            "invalid option",
        )
    ):
        return TsharkFailed(
            f"{run.path}: tshark rejected its arguments (Wireshark version?): {problem}"
        )
    return CaptureError(f"{run.path}: tshark cannot read it: {problem or 'no reason given'}")


def _truncation_text(problem: str, last: int) -> str:
    """The reader-style one-line note for a file Wireshark stopped reading early."""
    if "cut short in the middle of a packet" in problem:
        return (
            f"file ends inside record {last + 1} (Wireshark: the file appears to have "
            "been cut short in the middle of a packet)"
        )
    m = re.search(r"\(([^()]*)\)\s*$", problem)
    detail = m.group(1) if m else problem
    if "cannot be decompressed" in problem:
        where = f"after record {last}" if last else "before the first record"
        return f"corrupt compressed data {where} (Wireshark: {detail})"
    if "damaged or corrupt" in problem:
        return f"record {last + 1} is damaged or corrupt (Wireshark: {detail})"
    return f"Wireshark stopped reading after record {last}: {problem}"
