"""Capture-file reader: pcap, pcap-nsec and pcapng, optionally gzip-compressed.

The container formats are parsed here directly with :mod:`struct` over big chunks of
the file (this is the per-packet hot path), following

* pcap: draft-ietf-opsawg-pcap ("PCAP Capture File Format"): 24-byte file header,
  16-byte record headers; magic ``a1b2c3d4`` (microseconds) or ``a1b23c4d``
  (nanoseconds), in either byte order;
* pcapng: draft-ietf-opsawg-pcapng ("PCAP Next Generation Dump File Format"): Section
  Header Blocks (each section with its own byte order and interfaces), Interface
  Description Blocks (link type, snaplen, ``if_tsresol``, ``if_tsoffset``), Enhanced
  Packet Blocks, Simple Packet Blocks and the obsolete Packet Block. Custom Blocks,
  systemd Journal Export Blocks and Sysdig event blocks are records that hold no packet:
  Wireshark numbers them as frames, so they take a frame number here too (yielded only
  on request, see :func:`open_capture`). Every other block is skipped (unknown block
  types are counted in ``skipped_blocks``);
* gzip (RFC 1952), detected by the magic ``1f 8b``, never by the file name; several
  concatenated members are read in turn, trailing garbage after the last member is
  ignored (as gzip(1) does).

Usage::

    reader = open_capture("trace.pcapng.gz")   # CaptureError if unusable
    for record in reader:                       # model.Record, frame numbers 1-based
        ...
    if reader.truncated:                        # file cut short / corrupt tail (CP006)
        print(reader.truncated)

For decoding many records at once (:mod:`pcapcheck.fast.batch_decoder`),
:meth:`CaptureReader.pcap_batches` and :meth:`CaptureReader.pcapng_batches` hand over
whole chunks of the file with the offsets of the records in them, with exactly the same
records, frame numbers and ``truncated`` note as iteration.

A damaged file never raises during iteration: iteration stops after the last complete
record and :attr:`CaptureReader.truncated` says why. Only problems that leave nothing to
read (missing, unreadable, empty, not a capture, corrupt gzip from the start, a broken
file header) raise :class:`CaptureError`, and I/O errors while reading.

What counts as damage follows Wireshark's reader (wiretap, checked against tshark 4.0)
and libpcap: a record whose captured length exceeds the file's or the interface's
snaplen is read like any other; only a captured length above the largest one Wireshark
accepts for the link type (:func:`max_caplen`, 256 KiB for most), or above what the
record's block or the rest of the file holds, stops the reading.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple, cast

from pcapcheck.model import Record

__all__ = [
    "LINKTYPE_PCAPNG_CUSTOM",
    "LINKTYPE_SYSDIG_EVENT",
    "LINKTYPE_SYSTEMD_JOURNAL",
    "MAX_CAPLEN",
    "NON_PACKET_KINDS",
    "CaptureError",
    "CaptureReader",
    "EpbRun",
    "max_caplen",
    "open_capture",
]

#: Largest captured length accepted for one record of most link types (256 KiB,
#: Wireshark's ``WTAP_MAX_PACKET_SIZE_STANDARD``); a bigger one means a corrupt record
#: header. The snaplen of the file or interface is no limit (libpcap and Wireshark read
#: a record longer than it).
MAX_CAPLEN = 262144

#: Link types for which Wireshark accepts longer records (``wtap_max_snaplen_for_encap``):
#: Linux USB mmapped (220), D-Bus (231), USBPcap (249): 128 MiB; EBHSCR (279): 8 MiB.
_MAX_CAPLEN_BY_LINKTYPE = {220: 128 << 20, 231: 128 << 20, 249: 128 << 20, 279: 8 << 20}

#: Largest pcapng block accepted, Wireshark's: an Enhanced Packet Block holding a
#: maximal D-Bus packet plus 128 KiB of options (134348832 bytes).
MAX_BLOCK_LEN = 32 + (128 << 20) + 131072

#: Pseudo link types of the records that hold no packet (negative: no LINKTYPE_* value
#: is), in the records :func:`open_capture` yields with ``with_non_packets=True``.
LINKTYPE_PCAPNG_CUSTOM = -1  # pcapng Custom Block (0x00000BAD, 0x40000BAD)
LINKTYPE_SYSTEMD_JOURNAL = -2  # pcapng systemd Journal Export Block (0x00000009)
LINKTYPE_SYSDIG_EVENT = -3  # pcapng Sysdig event block (0x204, 0x216, 0x221)
#: The kind name of each pseudo link type (the keys of ``CaptureReader.non_packets``).
NON_PACKET_KINDS = {
    LINKTYPE_PCAPNG_CUSTOM: "pcapng-custom",
    LINKTYPE_SYSTEMD_JOURNAL: "systemd-journal",
    LINKTYPE_SYSDIG_EVENT: "sysdig-event",
}


def max_caplen(linktype: int) -> int:
    """The largest captured length (bytes) Wireshark accepts for a record of
    ``linktype`` (LINKTYPE_* numbering): :data:`MAX_CAPLEN` except for the few link
    types that carry bigger messages."""
    return _MAX_CAPLEN_BY_LINKTYPE.get(linktype, MAX_CAPLEN)


_CHUNK = 1 << 20  # bytes read from the file at a time
#: Records in one batch of :meth:`CaptureReader.pcap_batches` (one :class:`EpbRun` of
#: :meth:`CaptureReader.pcapng_batches`) at most, whatever their size: a batch's
#: records may each become a Python object (decoded one by one: malformed, zero-length),
#: so a batch of 16-byte records must not hold a chunk's worth (issue #23: 4 MB of
#: zeros are 262,144 records). Ordinary captures (60 bytes a record or more) never
#: reach it.
BATCH_RECORDS = 1 << 14
_GZ_PIECE = 1 << 16  # compressed bytes fed to zlib at a time
#: Decompressed bytes one call to zlib gives at most (what is left of the piece is fed
#: again): deflate expands up to 1,032 times, so a piece of zeros was 64 MB at once
#: (issue #23: 256 MB of gzipped zeros peaked at 325 MB).
_GZ_OUT = 1 << 20

_PCAP_MAGICS = {
    # first four bytes -> (byte order, format, ticks per second)
    b"\xd4\xc3\xb2\xa1": ("<", "pcap", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", "pcap", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", "pcap-nsec", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", "pcap-nsec", 1_000_000_000),
}
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D

_BT_IDB = 0x00000001
_BT_PB = 0x00000002  # obsolete Packet Block
_BT_SPB = 0x00000003
_BT_NRB = 0x00000004
_BT_ISB = 0x00000005
_BT_EPB = 0x00000006
_BT_JOURNAL = 0x00000009
#: Block types this reader knows and deliberately ignores (not counted as skipped):
#: name resolution, interface statistics, decryption secrets.
_KNOWN_IGNORED = frozenset({_BT_NRB, _BT_ISB, 0x0000000A})
#: Blocks that are records without a packet, as Wireshark 4.0 reads them: block type ->
#: (pseudo link type, smallest valid block length, bytes before the record's data).
#: Wireshark rejects a shorter block as corrupt (the file ends there for it).
_NON_PACKET_BLOCKS = {
    0x00000BAD: (LINKTYPE_PCAPNG_CUSTOM, 16, 12),  # copyable; data after the PEN
    0x40000BAD: (LINKTYPE_PCAPNG_CUSTOM, 16, 12),  # not copyable
    _BT_JOURNAL: (LINKTYPE_SYSTEMD_JOURNAL, 36, 8),  # 12 + a 23-byte entry, padded
    0x00000204: (LINKTYPE_SYSDIG_EVENT, 36, 32),  # event header 24 bytes
    0x00000216: (LINKTYPE_SYSDIG_EVENT, 40, 36),  # v2 header 28 bytes
    0x00000221: (LINKTYPE_SYSDIG_EVENT, 40, 36),  # v2 "large"
}
#: The shortest journal entry Wireshark accepts ("__REALTIME_TIMESTAMP=0\n").
_MIN_JOURNAL_ENTRY = 23
_BLOCK_NAMES = {
    _BT_IDB: "interface description block",
    _BT_PB: "packet block",
    _BT_SPB: "simple packet block",
    _BT_EPB: "enhanced packet block",
    _PCAPNG_SHB: "section header block",
    0x00000BAD: "custom block",
    0x40000BAD: "custom block",
    _BT_JOURNAL: "systemd journal export block",
    0x00000204: "sysdig event block",
    0x00000216: "sysdig event block",
    0x00000221: "sysdig event block",
}


class EpbRun(NamedTuple):
    """Consecutive Enhanced Packet Blocks of a pcapng file (see
    :meth:`CaptureReader.pcapng_batches`), each checked as iteration checks it.

    ``buf``: bytes holding the blocks; ``positions``: the offset in ``buf`` of each
    block (its packet data starts 28 bytes further); ``base``: file offset of ``buf[0]``
    (None for a gzip-compressed file); ``endian``: the section's byte order (a
    :mod:`struct` prefix) in which the block's fields are (at +8: interface id,
    timestamp high and low, captured length, original length, all 32-bit);
    ``interfaces``: the section's interfaces, ``(linktype, ticks per second, offset in
    ticks, largest captured length)`` each, indexed by interface id (the timestamp is
    ``((high << 32 | low) + offset) / ticks`` seconds): the reader's own list, not a
    copy (it grows as interface blocks come, also between the blocks of a run: read
    what the run needs before taking the next item); ``first_frame``: the frame
    number of the first block.
    """

    buf: bytes
    base: int | None
    positions: list[int]
    endian: str
    interfaces: Sequence[tuple[int, int, int, int]]
    first_frame: int


class CaptureError(Exception):
    """A capture file that cannot be read at all.

    The message is one user-facing line that starts with the path, e.g.
    ``"x.pcap: empty file, not a capture"``. Raised by :func:`open_capture` (file
    missing, a directory, unreadable, empty, unknown magic, corrupt gzip, broken file
    header) and, for I/O errors, while iterating.
    """


def open_capture(
    path: str | Path, *, with_non_packets: bool = False, stream: BinaryIO | None = None
) -> CaptureReader:
    """Open a pcap / pcap-nsec / pcapng capture, plain or gzip-compressed.

    The format is detected from the first bytes (magic numbers), never from the file
    name. The file header (pcap file header or first pcapng Section Header Block) is read
    and checked here, so most unusable files fail immediately.

    :param path: the capture file.
    :param with_non_packets: also yield the pcapng records that hold no packet (custom,
        systemd journal export and Sysdig event blocks), as records with a negative
        pseudo link type (:data:`NON_PACKET_KINDS`). Either way they take their frame
        number, so the packets' frame numbers are Wireshark's.
    :param stream: read this open binary stream instead of opening ``path`` (which
        then only names it in messages): a pipe read as its data arrives
        (:class:`pcapcheck.capture.inputs.LiveStream`, whose ``read(n)`` returns what
        is there, at least one byte, ``b""`` at the end); it can be iterated once.
    :returns: a :class:`CaptureReader`; iterate it to get :class:`model.Record` objects.
    :raises CaptureError: file not found, a directory, unreadable (permissions), empty
        (0 bytes), not a capture file (unknown magic; the message says what the first
        bytes look like), gzip data corrupt before anything could be decompressed, or a
        file header that is cut short or invalid.
    """
    return CaptureReader(path, with_non_packets=with_non_packets, stream=stream)


def _describe(head: bytes) -> str:
    """Say in a few words what ``head`` (the first bytes of a file) looks like."""
    known = (
        (b"\xa1\xb2\xcd\x34", "a modified (Kuznetzov) pcap file, which is not supported"),
        (b"\x34\xcd\xb2\xa1", "a modified (Kuznetzov) pcap file, which is not supported"),
        (b"BZh", "bzip2-compressed data (only gzip compression is supported)"),
        (b"\xfd7zXZ\x00", "xz-compressed data (only gzip compression is supported)"),
        (b"\x28\xb5\x2f\xfd", "zstd-compressed data (only gzip compression is supported)"),
        (b"\x04\x22\x4d\x18", "lz4-compressed data (only gzip compression is supported)"),
        (b"PK\x03\x04", "a zip archive"),
        (b"snoop\x00\x00\x00", "a Solaris snoop capture, which is not supported"),
        (b"\x7fELF", "an ELF executable"),
        (b"%PDF", "a PDF document"),
    )
    for magic, what in known:
        if head.startswith(magic):
            return "looks like " + what
    sample = head[:512]
    text: str | None
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:  # maybe cut inside a multi-byte character
        text = sample[: exc.start].decode("utf-8") if exc.start > len(sample) - 4 else None
    if text and all(c.isprintable() or c in "\t\r\n\f" for c in text):
        first = text.strip().splitlines()[0] if text.strip() else ""
        if len(first) > 40:
            first = first[:40] + "..."
        return f"looks like text: {first!r}" if first else "looks like text (blank)"
    return "unknown magic " + head[:4].hex(" ")


class _FileSource:
    """Raw chunks of a plain file. ``error`` is set when the data ended abnormally."""

    __slots__ = ("_f", "_first", "error")

    def __init__(self, f: BinaryIO, first: bytes):
        self._f = f
        self._first = first
        self.error: str | None = None

    def read(self, size: int = _CHUNK) -> bytes:
        """The next chunk: ``size`` bytes (fewer at the end of the file)."""
        if self._first:
            chunk, self._first = self._first, b""
            return chunk
        return self._f.read(size)

    def readinto(self, view: memoryview) -> int:
        """Fill ``view`` with the next bytes; return how many (fewer only at the end)."""
        done = 0
        if self._first:
            done = min(len(self._first), len(view))
            view[:done] = self._first[:done]
            self._first = self._first[done:]
        while done < len(view):
            got = self._f.readinto(view[done:])  # type: ignore[attr-defined]
            if not got:
                break
            done += got
        return done


class _GzipSource:
    """Decompressed chunks of a gzip file (RFC 1952), member after member.

    Never raises zlib errors: a corrupt or cut-short stream ends the data, after
    everything that could be decompressed before the damage, and sets ``error``.
    """

    __slots__ = ("_d", "_done", "_f", "_in", "_inpos", "_member_data", "error", "total_out")

    def __init__(self, f: BinaryIO, first: bytes):
        self._f = f
        self._d = zlib.decompressobj(31)
        self._in = first
        self._inpos = 0
        self._done = False
        self._member_data = False  # some input fed to the current member
        self.error: str | None = None
        self.total_out = 0

    def read(self, size: int = _CHUNK) -> bytes:
        """The next piece of decompressed data (its size is what one piece of the
        compressed input gives; ``size`` is ignored)."""
        while not self._done:
            if self._inpos >= len(self._in):
                self._in = self._f.read(_CHUNK)
                self._inpos = 0
                if not self._in:
                    self._done = True
                    if self._member_data and not self._d.eof:
                        self.error = "gzip data cut short (no end-of-stream marker)"
                    return b""
            if self._d.eof:
                rest = self._in[self._inpos :]
                if rest.startswith(b"\x1f\x8b") or rest == b"\x1f":
                    self._d = zlib.decompressobj(31)  # next member
                    self._member_data = False
                elif rest.strip(b"\x00"):
                    self._done = True  # trailing garbage: ignored
                    return b""
                else:
                    self._inpos = len(self._in)  # zero padding
                    continue
            start = self._inpos
            piece = self._in[start : start + _GZ_PIECE]
            self._inpos = start + len(piece)
            self._member_data = True
            snapshot = self._d.copy()
            try:
                out = self._d.decompress(piece, _GZ_OUT)
                self._inpos -= len(self._d.unconsumed_tail)  # fed again next time
            except zlib.error as exc:
                out = self._salvage(snapshot, piece)
                self.error = f"corrupt gzip data ({exc.args[0] if exc.args else exc})"
                self._done = True
                self.total_out += len(out)
                return out
            if self._d.eof and self._d.unused_data:
                # give back what belongs to the next member (or trailing bytes)
                self._inpos -= len(self._d.unused_data)
            if out:
                self.total_out += len(out)
                return out
        return b""

    @staticmethod
    def _salvage(d, piece: bytes) -> bytes:
        """Re-feed ``piece`` to ``d`` (the decompressor as it was before it) to recover
        every byte of output before the damage: in 8-byte steps, and the step in which
        the error occurs again one input byte and one output byte at a time (zlib drops
        the output of the call that fails: a step of 8 bytes can hold kilobytes of it,
        and a call given more input may read past the byte it wrote)."""
        out = []
        for i in range(0, len(piece), 8):
            step = piece[i : i + 8]
            before = d.copy()
            try:
                out.append(d.decompress(step))
            except zlib.error:
                d = before
                break
        else:
            return b"".join(out)
        try:
            for i in range(len(step)):
                data = step[i : i + 1]
                while True:
                    one = d.decompress(data, 1)  # at most one byte out
                    data = d.unconsumed_tail
                    if not one and not data:
                        break
                    out.append(one)
        except zlib.error:
            pass
        return b"".join(out)


class CaptureReader:
    """An open capture file; iterate it to get :class:`model.Record` objects.

    Create it with :func:`open_capture`. Each record is ``Record(frame, ts, linktype,
    data, wire_len)``: ``frame`` 1-based, Wireshark's frame number: it counts every
    record of the file, i.e. every pcap record, and in pcapng every packet block (EPB,
    SPB, PB) and every block Wireshark numbers as a frame without a packet in it (custom,
    systemd journal export, Sysdig event); ``ts`` float seconds since the epoch (the
    nearest float to the exact stored timestamp; for pcapng the interface's
    ``if_tsresol`` and ``if_tsoffset`` apply; a Simple Packet Block, which has no
    timestamp, gets the previous record's timestamp, 0.0 if none); ``linktype`` the
    LINKTYPE_* of the record's interface; ``data`` the captured bytes (also beyond the
    snaplen); ``wire_len`` the original length; ``offset`` the byte offset of the record
    header (pcap) or packet block (pcapng) in the file, ``None`` for a gzip-compressed
    file. Zero-length records are yielded too.

    The records without a packet are only yielded when the reader was opened with
    ``with_non_packets=True``: then as ``Record(frame, ts, linktype, data, wire_len)``
    with ``ts`` the previous record's timestamp (0.0 if none), ``linktype`` one of the
    negative keys of :data:`NON_PACKET_KINDS`, ``data`` the block's content (custom data
    after the Private Enterprise Number; the journal entry without its padding; the
    Sysdig event's parameters), ``wire_len = len(data)`` and ``offset`` the block's.

    Iterating again re-reads the file from the start (counters are reset); iterate one
    loop at a time (starting a new loop closes the file under the old one).

    Attributes (valid during and after iteration):

    * ``path`` (Path), ``format`` (``"pcap"``, ``"pcap-nsec"`` or ``"pcapng"``),
      ``compressed`` (bool, gzip), ``with_non_packets`` (bool, as opened);
    * ``snaplen``: int or None. pcap: the file header's. pcapng: the largest snaplen of the
      interfaces seen so far (all sections), ``None`` before the first interface block or
      when an interface has no limit (snaplen 0);
    * ``linktypes``: set of the link types of the file (pcap header) / of the interfaces
      seen (pcapng);
    * ``interfaces``: pcapng only, the list of ``(linktype, snaplen)`` of the current
      section's interfaces;
    * ``skipped_blocks``: number of unknown pcapng blocks skipped;
    * ``non_packets``: Counter of the records without a packet read so far, by kind
      (the values of :data:`NON_PACKET_KINDS`), yielded or not;
    * ``records``: number of records read so far, the frame number of the last one
      (the records without a packet included, yielded or not);
    * ``truncated``: None, or a one-line description of why reading stopped early (file
      ends inside a record or block, bad block length, captured length above
      :func:`max_caplen` or beyond its block, a block too short for its type, corrupt
      gzip stream...), e.g. ``"file ends inside record 15: 40 of 74 bytes"``. Every
      record before the damage has been yielded.

    :raises CaptureError: from iteration only for I/O errors (see :func:`open_capture`).
    """

    def __init__(
        self, path: str | Path, with_non_packets: bool = False, stream: BinaryIO | None = None
    ):
        self.path = Path(path)
        self._stream = stream  # read instead of opening path (once: see open_capture)
        self.with_non_packets = with_non_packets
        self.format: str = ""
        self.compressed = False
        self.snaplen: int | None = None
        self.linktypes: set[int] = set()
        self.interfaces: list[tuple[int, int]] = []
        self.skipped_blocks = 0
        self.non_packets: Counter[str] = Counter()
        self.records = 0
        self.truncated: str | None = None
        self._f: BinaryIO | None = None
        self._iterated = False
        self._open()

    # -- opening ----------------------------------------------------------------------

    def _fail(self, what: str) -> CaptureError:
        return CaptureError(f"{self.path}: {what}")

    def _open(self) -> None:
        """(Re)open the file, detect compression and format, read the file header."""
        self.close()
        self.compressed = False
        self.snaplen = None
        self.linktypes = set()
        self.interfaces = []
        self._snaplens: set[int] = set()
        self.skipped_blocks = 0
        self.non_packets = Counter()
        self.records = 0
        self.truncated = None
        try:
            if self._stream is not None:  # read once: again, it is an empty file
                f, self._stream = self._stream, cast(BinaryIO, io.BytesIO())
            else:
                f = open(self.path, "rb")
        except FileNotFoundError:
            raise self._fail("no such file") from None
        except IsADirectoryError:
            raise self._fail("is a directory, not a capture file") from None
        except PermissionError:
            raise self._fail("permission denied") from None
        except OSError as exc:
            raise self._fail(f"cannot open: {exc.strerror or exc}") from None
        self._f = f
        try:
            try:
                first = f.read(_CHUNK)
            except IsADirectoryError:
                raise self._fail("is a directory, not a capture file") from None
            except OSError as exc:
                raise self._fail(f"read error: {exc.strerror or exc}") from None
            if not first:
                raise self._fail("empty file, not a capture")
            if first.startswith(b"\x1f\x8b"):
                self.compressed = True
                src: _FileSource | _GzipSource = _GzipSource(f, first)
            else:
                src = _FileSource(f, first)
            self._src = src
            self._buf = b""
            self._pos = 0
            if not self._ensure(4):
                have = len(self._buf)
                if self._src.error or have == 0:
                    self._header_problem(have, 4, "the magic number")
                raise self._fail(f"not a capture file (only {have} bytes)")
            magic = self._buf[:4]
            if magic in _PCAP_MAGICS:
                self._open_pcap(magic)
            elif magic == b"\x0a\x0d\x0d\x0a":
                self._open_pcapng()
            else:
                if self.compressed:
                    raise self._fail(
                        "not a capture file (gzip-compressed, content "
                        + _describe(self._buf[:512])
                        + ")"
                    )
                raise self._fail("not a capture file (" + _describe(self._buf[:512]) + ")")
        except BaseException:
            self.close()
            raise

    def _header_problem(self, have: int, need: int, what: str) -> None:
        src = self._src
        if src.error:  # gzip trouble before anything useful
            raise self._fail(src.error)
        if have == 0:
            raise self._fail(
                "empty file (after gzip decompression), not a capture"
                if self.compressed
                else "empty file, not a capture"
            )
        raise self._fail(f"file ends inside {what} ({have} of {need} bytes)")

    def _ensure(self, need: int) -> bool:
        """Make ``need`` bytes available at ``self._pos`` (False at end of data)."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos >= need:
            return True
        buf, pos = self._refill(buf, pos, need)
        self._buf, self._pos = buf, pos
        return len(buf) - pos >= need

    def _refill(self, buf: bytes | memoryview, pos: int, need: int) -> tuple[bytes, int]:
        """Return ``(buf, 0)`` holding the unread rest plus new chunks, ``need`` bytes
        if the data has that many."""
        parts: list[bytes | memoryview] = [buf[pos:]]
        have = len(parts[0])
        read = self._src.read
        try:
            while have < need:
                chunk = read(max(need - have, _CHUNK))
                if not chunk:
                    break
                parts.append(chunk)
                have += len(chunk)
        except OSError as exc:
            raise self._fail(f"read error: {exc.strerror or exc}") from None
        except ValueError:  # the file was closed under us (iterated twice at once)
            raise self._fail("read error: file closed during iteration") from None
        return b"".join(parts), 0

    def _open_pcap(self, magic: bytes) -> None:
        endian, fmt, ticks = _PCAP_MAGICS[magic]
        if not self._ensure(24):
            self._header_problem(len(self._buf) - self._pos, 24, "the pcap file header")
        major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
            endian + "HHiIII", self._buf, 4
        )
        if major != 2:
            raise self._fail(f"unsupported pcap version {major}.{minor}")
        self.format = fmt
        self._endian = endian
        self._ticks = ticks
        self.snaplen = snaplen
        self._linktype = network & 0x03FFFFFF  # upper bits: FCS information
        self.linktypes.add(self._linktype)
        self._pos += 24

    def _open_pcapng(self) -> None:
        self.format = "pcapng"
        if not self._ensure(28):
            self._header_problem(len(self._buf) - self._pos, 28, "the pcapng section header block")
        bom = self._buf[8:12]
        if bom == b"\x4d\x3c\x2b\x1a":
            endian = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            endian = ">"
        else:
            raise self._fail("bad pcapng byte-order magic " + bom.hex(" "))
        blen, major = struct.unpack_from(endian + "I4xH", self._buf, 4)
        if major != 1:
            raise self._fail(f"unsupported pcapng version {major}")
        if blen < 28 or blen % 4 or blen > MAX_BLOCK_LEN:
            raise self._fail(f"bad pcapng section header block length {blen}")
        # The block itself is (re)parsed by the iterator.

    def close(self) -> None:
        """Close the underlying file (iteration re-opens it)."""
        if self._f is not None:
            try:
                self._f.close()
            finally:
                self._f = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return (
            f"<CaptureReader {str(self.path)!r} format={self.format}"
            f" compressed={self.compressed} records={self.records}>"
        )

    # -- iteration --------------------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        if self._iterated or self._f is None:
            self._open()
        self._iterated = True
        if self.format == "pcapng":  # records only: no batch asked for
            return cast(Iterator[Record], self._iter_pcapng())
        return self._iter_pcap()

    def _end_note(self, last_frame: int) -> None:
        """At a clean record boundary: report a damaged compressed stream, if any."""
        err = self._src.error
        if err:
            self.truncated = (
                f"{err} after record {last_frame}"
                if last_frame
                else f"{err} before the first record"
            )

    def _cut_note(self, text: str) -> None:
        err = self._src.error
        self.truncated = f"{text} ({err})" if err else text

    def pcapng_batches(self, size: int = 4 << 20) -> Iterator[Record | EpbRun]:
        """Read a pcapng file for callers that decode many records at once
        (:mod:`pcapcheck.fast.batch_decoder`): yields the records as iterating the reader does, except
        that runs of consecutive Enhanced Packet Blocks come as :class:`EpbRun` items
        instead of one :class:`model.Record` each (other records, and the odd EPB that
        straddles two reads, still come as Records). ``size``: bytes read at a time.
        ``records``, ``truncated`` and the other attributes are kept exactly as by
        iteration. Starts reading from the beginning like :meth:`__iter__`.

        :raises ValueError: the file is not pcapng.
        :raises CaptureError: I/O errors while reading.
        """
        if self.format != "pcapng":
            raise ValueError("pcapng_batches: the file is not pcapng")
        if self._iterated or self._f is None:
            self._open()
        self._iterated = True
        return self._iter_pcapng(max(size, 12))

    def pcap_layout(self) -> tuple[str, int, int]:
        """The layout of a pcap / pcap-nsec file's records: ``(byte order, ticks per
        second, linktype)``; the byte order is a :mod:`struct` prefix (``"<"`` or
        ``">"``), the ticks are 10**6 (pcap) or 10**9 (pcap-nsec): a record's timestamp
        is ``(sec * ticks + frac) / ticks`` seconds.

        :raises ValueError: the file is pcapng.
        """
        if self.format == "pcapng":
            raise ValueError("pcap_layout: the file is pcapng, not pcap")
        return self._endian, self._ticks, self._linktype

    def pcap_batches(
        self, size: int = 4 << 20
    ) -> Iterator[tuple[bytes | memoryview, int | None, list[int]]]:
        """Read a pcap / pcap-nsec file in batches of whole records, for callers that
        decode many records at once (:mod:`pcapcheck.fast.batch_decoder`).

        Yields ``(buf, base, positions)``: ``buf`` a bytes-like object (bytes or a
        memoryview) of about ``size`` bytes (more when a record is bigger), **valid until
        the next batch is taken** (the memory is reused: copy what must outlive it);
        ``positions`` the offsets in ``buf`` of the 16-byte headers of the records that
        are wholly inside it (in file order, at least one; the record's data follows
        its header: ``caplen`` bytes, see :meth:`pcap_layout` for the byte order);
        ``base`` the file offset of ``buf[0]``, ``None`` for a gzip-compressed file.
        Frame numbers continue from batch to batch (the first record of the file is
        frame 1). ``records`` and ``truncated`` are kept exactly as iterating the
        reader keeps them: a batch never holds a record that iteration would not have
        yielded, and reading stops with the same ``truncated`` text.

        Starts reading from the beginning like :meth:`__iter__` (re-opening the file
        when it was read before).

        :raises ValueError: the file is pcapng.
        :raises CaptureError: I/O errors while reading.
        """
        if self.format == "pcapng":
            raise ValueError("pcap_batches: the file is pcapng, not pcap")
        if self._iterated or self._f is None:
            self._open()
        self._iterated = True
        return self._pcap_batches(max(size, 16))

    def _pcap_batches(
        self, size: int
    ) -> Iterator[tuple[bytes | memoryview, int | None, list[int]]]:
        caplen_at = struct.Struct(self._endian + "8xI").unpack_from  # at a header
        limit = max_caplen(self._linktype)
        refill = self._refill
        buf: bytes | memoryview
        buf, pos = self._buf, self._pos
        frame = 0
        base = 0  # file offset of buf[0]
        plain = not self.compressed
        most = BATCH_RECORDS
        # plain files are read straight into two buffers used in turn (no copying)
        pool = [bytearray(), bytearray()]
        turn = 0
        try:
            while True:
                blen = len(buf)
                positions: list[int] = []
                append = positions.append
                try:
                    # the hot loop: struct.error ends it where fewer than 12 bytes are left
                    for _ in range(most):
                        caplen = caplen_at(buf, pos)[0]
                        if caplen > limit:
                            break
                        append(pos)
                        pos += 16 + caplen
                except struct.error:
                    pass
                if pos > blen:  # the last record is not wholly in buf
                    pos = positions.pop()
                if positions:
                    frame += len(positions)
                    self.records = frame
                    yield buf, base if plain else None, positions
                    if len(positions) == most and blen - pos >= 16:
                        continue  # more records in buf than BATCH_RECORDS
                # buf[pos:] holds no whole record: a cut header, a cut record, or nothing
                if blen - pos >= 16:  # the header is there: the record is cut
                    caplen = caplen_at(buf, pos)[0]
                    if caplen > limit:  # the snaplen is no limit (libpcap, Wireshark)
                        self.truncated = self._absurd_caplen(frame + 1, caplen, limit)
                        break
                    need = 16 + caplen
                else:
                    need = 16
                base += pos
                if plain:
                    if len(pool[turn]) < max(need, size):
                        pool[turn] = bytearray(max(need, size))
                    buf, pos = self._refill_into(pool[turn], buf, pos, max(need, size))
                    turn ^= 1
                else:
                    buf, pos = refill(buf, pos, max(need, size))
                blen = len(buf)
                if blen < need:  # refill gives less than asked only at the end
                    if need == 16:
                        if blen:
                            self._cut_note(self._cut_header(frame + 1, blen))
                        else:
                            self._end_note(frame)
                    else:
                        self._cut_note(self._cut_record(frame + 1, blen, caplen))
                    break
        finally:
            self._buf, self._pos = b"", 0
            self.close()

    def _refill_into(
        self, target: bytearray, buf: bytes | memoryview, pos: int, need: int
    ) -> tuple[memoryview, int]:
        """:meth:`_refill` for a plain file, into ``target`` (at least ``need`` bytes
        long, not ``buf``'s memory): return ``(view of target, 0)`` holding the unread
        rest of ``buf`` plus new data, ``need`` bytes if the file has that many."""
        rest = len(buf) - pos
        target[:rest] = buf[pos:]
        view = memoryview(target)
        try:
            have = rest + cast(_FileSource, self._src).readinto(view[rest:need])
        except OSError as exc:
            raise self._fail(f"read error: {exc.strerror or exc}") from None
        except ValueError:  # the file was closed under us (iterated twice at once)
            raise self._fail("read error: file closed during iteration") from None
        return view[:have], 0

    @staticmethod
    def _absurd_caplen(frame: int, caplen: int, limit: int) -> str:
        return (
            f"record {frame} has an absurd captured length {caplen} (more than"
            f" {limit}: corrupt record header)"
        )

    @staticmethod
    def _cut_header(frame: int, have: int) -> str:
        return f"file ends inside the header of record {frame}: {have} of 16 bytes"

    @staticmethod
    def _cut_record(frame: int, have: int, caplen: int) -> str:
        return f"file ends inside record {frame}: {have - 16} of {caplen} bytes"

    def _iter_pcap(self) -> Iterator[Record]:
        endian = self._endian
        unpack = struct.Struct(endian + "IIII").unpack_from
        ticks = self._ticks
        lt = self._linktype
        limit = max_caplen(lt)
        refill = self._refill
        buf, pos = self._buf, self._pos
        blen = len(buf)
        frame = 0
        base = 0  # file offset of buf[0]
        plain = not self.compressed
        try:
            while True:
                if blen - pos < 16:
                    base += pos
                    buf, pos = refill(buf, pos, 16)
                    blen = len(buf)
                    if blen < 16:
                        if blen:
                            self._cut_note(self._cut_header(frame + 1, blen))
                        else:
                            self._end_note(frame)
                        break
                sec, frac, caplen, wire = unpack(buf, pos)
                if caplen > limit:  # the snaplen is no limit (libpcap, Wireshark)
                    self.truncated = self._absurd_caplen(frame + 1, caplen, limit)
                    break
                end = pos + 16 + caplen
                if end > blen:
                    base += pos
                    buf, pos = refill(buf, pos, 16 + caplen)
                    blen = len(buf)
                    end = 16 + caplen
                    if end > blen:
                        self._cut_note(self._cut_record(frame + 1, blen, caplen))
                        break
                frame += 1
                self.records = frame
                yield Record(
                    frame,
                    (sec * ticks + frac) / ticks,
                    lt,
                    buf[pos + 16 : end],
                    wire,
                    base + pos if plain else None,
                )
                pos = end
        finally:
            self._buf, self._pos = b"", 0
            self.close()

    def _iter_pcapng(self, batch: int = 0) -> Iterator[Record | EpbRun]:
        """The records of a pcapng file. ``batch`` > 0: the batch mode of
        :meth:`pcapng_batches`, reading about ``batch`` bytes at a time."""
        refill = self._refill
        buf, pos = self._buf, self._pos
        blen = len(buf)
        offset = 0  # file offset of buf[0] in the decompressed data
        plain = not self.compressed
        frame = 0
        endian = "<"
        u32 = struct.Struct("<I").unpack_from
        hdr = struct.Struct("<II").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        pb = struct.Struct("<HHIIII").unpack_from
        epb_block = struct.Struct("<IIIIIII").unpack_from  # batch mode: a whole EPB header
        # per interface: (linktype, ticks per second, offset in ticks, caplen limit); a
        # new list for each section, given as it is to every EpbRun (never copied: a copy
        # per run made an interface block before every packet quadratic, issue #23)
        ifaces: list[tuple[int, int, int, int]] = []
        # batch mode: the caplen limit of each interface, kept as interfaces come
        limits: list[int] = []
        most = BATCH_RECORDS
        last_ts = 0.0
        with_non_packets = self.with_non_packets
        non_packets = self.non_packets
        try:
            while True:
                if batch and ifaces:
                    # A run of Enhanced Packet Blocks wholly in buf that pass every check
                    # below; the first block that does not is left to the code after.
                    run: list[int] = []
                    append = run.append
                    count = len(ifaces)
                    try:
                        for _ in range(most):
                            btype, length, ifid, _, _, caplen, _ = epb_block(buf, pos)
                            end = pos + length
                            if (
                                btype == _BT_IDB  # an interface inside a run: taken here
                                and 20 <= length <= MAX_BLOCK_LEN
                                and not length & 3
                                and end <= blen
                                and u32(buf, end - 4)[0] == length
                            ):
                                ifaces.append(self._parse_idb(buf, pos, length, endian))
                                limits.append(ifaces[-1][3])
                                count += 1
                                pos = end
                                continue
                            if (
                                btype != _BT_EPB
                                or length < 32
                                or length & 3
                                or end > blen
                                or length > MAX_BLOCK_LEN
                                or ifid >= count
                                or caplen > length - 32
                                or caplen > limits[ifid]
                                or u32(buf, end - 4)[0] != length
                            ):
                                break
                            append(pos)
                            pos = end
                    except struct.error:  # fewer than 28 bytes left
                        pass
                    if run:
                        frame += len(run)
                        self.records = frame
                        ifid, tsh, tsl = epb(buf, run[-1] + 8)[:3]
                        _, ticks, toff, _ = ifaces[ifid]
                        last_ts = (((tsh << 32) | tsl) + toff) / ticks
                        yield EpbRun(
                            buf,
                            offset if plain else None,
                            run,
                            endian,
                            ifaces,
                            frame - len(run) + 1,
                        )
                        if len(run) == most:
                            continue  # more blocks in buf than BATCH_RECORDS
                if blen - pos < 12:
                    offset += pos
                    buf, pos = refill(buf, pos, max(12, batch))
                    blen = len(buf)
                    if blen < 12:
                        if blen:
                            self._cut_note(
                                f"file ends inside the pcapng block at offset"
                                f" {offset}: {blen} of at least 12 bytes"
                            )
                        else:
                            self._end_note(frame)
                        break
                btype, length = hdr(buf, pos)
                if btype == _PCAPNG_SHB:
                    bom = buf[pos + 8 : pos + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        new_endian = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        new_endian = ">"
                    else:
                        self.truncated = (
                            f"bad byte-order magic in the section header block"
                            f" at offset {offset + pos}"
                        )
                        break
                    if new_endian != endian:
                        endian = new_endian
                        u32 = struct.Struct(endian + "I").unpack_from
                        hdr = struct.Struct(endian + "II").unpack_from
                        epb = struct.Struct(endian + "IIIII").unpack_from
                        pb = struct.Struct(endian + "HHIIII").unpack_from
                        epb_block = struct.Struct(endian + "IIIIIII").unpack_from
                    length = u32(buf, pos + 4)[0]
                if length < 12 or length % 4 or length > MAX_BLOCK_LEN:
                    self.truncated = (
                        f"bad pcapng block length {length} at offset"
                        f" {offset + pos} (block type 0x{btype:08x})"
                    )
                    break
                end = pos + length
                if end > blen:
                    offset += pos
                    buf, pos = refill(buf, pos, max(length, batch))
                    blen = len(buf)
                    end = length
                    if end > blen:
                        what = _BLOCK_NAMES.get(btype, f"block type 0x{btype:08x}")
                        if btype in (_BT_EPB, _BT_SPB, _BT_PB) or btype in _NON_PACKET_BLOCKS:
                            what += f", record {frame + 1}"
                        self._cut_note(
                            f"file ends inside the pcapng block at offset {offset}"
                            f" ({what}): {blen} of {length} bytes"
                        )
                        break
                if u32(buf, end - 4)[0] != length:
                    self.truncated = (
                        f"pcapng block at offset {offset + pos}: trailing length"
                        f" {u32(buf, end - 4)[0]} != leading length {length}"
                    )
                    break

                if btype in (_BT_EPB, _BT_PB):
                    if length < 32:
                        kind = "enhanced packet" if btype == _BT_EPB else "packet"
                        self.truncated = (
                            f"{kind} block too short ({length} bytes) at offset {offset + pos}"
                        )
                        break
                    if btype == _BT_EPB:
                        ifid, tsh, tsl, caplen, wire = epb(buf, pos + 8)
                    else:  # the obsolete Packet Block: 16-bit interface id, drops count
                        ifid, _drops, tsh, tsl, caplen, wire = pb(buf, pos + 8)
                    if ifid >= len(ifaces):
                        self.truncated = (
                            f"record {frame + 1} refers to interface {ifid}, but"
                            f" only {len(ifaces)} are defined"
                        )
                        break
                    lt, ticks, toff, limit = ifaces[ifid]
                    if caplen > limit or caplen > length - 32:
                        self.truncated = self._bad_caplen(frame + 1, caplen, limit, length - 32)
                        break
                    frame += 1
                    self.records = frame
                    last_ts = (((tsh << 32) | tsl) + toff) / ticks
                    yield Record(
                        frame,
                        last_ts,
                        lt,
                        buf[pos + 28 : pos + 28 + caplen],
                        wire,
                        offset + pos if plain else None,
                    )
                elif btype == _BT_SPB:
                    if not ifaces:
                        self.truncated = (
                            f"record {frame + 1} (simple packet block) before"
                            f" any interface description block"
                        )
                        break
                    wire = u32(buf, pos + 8)[0]
                    lt, ticks, toff, limit = ifaces[0]
                    # no captured length in an SPB: what the block holds, at most the
                    # packet's length and the interface's snaplen (as Wireshark does)
                    caplen = min(wire, length - 16)
                    snap = self.interfaces[0][1]
                    if snap:
                        caplen = min(caplen, snap)
                    if caplen > limit:
                        self.truncated = self._bad_caplen(frame + 1, caplen, limit, caplen)
                        break
                    frame += 1
                    self.records = frame
                    yield Record(
                        frame,
                        last_ts,
                        lt,
                        buf[pos + 12 : pos + 12 + caplen],
                        wire,
                        offset + pos if plain else None,
                    )
                elif btype == _BT_IDB:
                    if length < 20:
                        self.truncated = (
                            f"interface description block too short ({length}"
                            f" bytes) at offset {offset + pos}"
                        )
                        break
                    ifaces.append(self._parse_idb(buf, pos, length, endian))
                    limits.append(ifaces[-1][3])
                elif btype == _PCAPNG_SHB:
                    if length < 28:
                        self.truncated = (
                            f"section header block too short ({length} bytes)"
                            f" at offset {offset + pos}"
                        )
                        break
                    major = struct.unpack_from(endian + "H", buf, pos + 12)[0]
                    if major != 1:
                        self.truncated = (
                            f"unsupported pcapng version {major} in the section"
                            f" at offset {offset + pos}"
                        )
                        break
                    ifaces = []
                    limits = []
                    self.interfaces = []
                elif btype in _NON_PACKET_BLOCKS:
                    # a frame for Wireshark, without a packet
                    lt, least, start = _NON_PACKET_BLOCKS[btype]
                    if length < least:
                        self.truncated = (
                            f"{_BLOCK_NAMES[btype]} too short ({length} bytes)"
                            f" at offset {offset + pos}"
                        )
                        break
                    data = buf[pos + start : end - 4]
                    if lt == LINKTYPE_SYSTEMD_JOURNAL:
                        data = data.rstrip(b"\x00")  # the padding
                    if lt == LINKTYPE_SYSTEMD_JOURNAL and len(data) < _MIN_JOURNAL_ENTRY:
                        self.truncated = (
                            f"systemd journal export block at offset"
                            f" {offset + pos}: entry too short ({len(data)}"
                            f" bytes without the padding)"
                        )
                        break
                    frame += 1
                    self.records = frame
                    non_packets[NON_PACKET_KINDS[lt]] += 1
                    if with_non_packets:
                        yield Record(
                            frame, last_ts, lt, data, len(data), offset + pos if plain else None
                        )
                elif btype not in _KNOWN_IGNORED:
                    self.skipped_blocks += 1
                pos = end
        finally:
            self._buf, self._pos = b"", 0
            self.close()

    @staticmethod
    def _bad_caplen(frame: int, caplen: int, limit: int, room: int) -> str:
        """The ``truncated`` text for record ``frame`` whose captured length exceeds its
        block's room or the link type's :func:`max_caplen` ``limit`` (bytes)."""
        if caplen > room:
            return (
                f"record {frame} has captured length {caplen}, more than its block holds"
                f" ({room} bytes)"
            )
        return (
            f"record {frame} has an absurd captured length {caplen} (more than {limit}:"
            f" corrupt block)"
        )

    def _parse_idb(
        self, buf: bytes, pos: int, length: int, endian: str
    ) -> tuple[int, int, int, int]:
        """Parse an Interface Description Block; return the interface tuple
        ``(linktype, ticks per second, if_tsoffset in ticks, largest captured length)``
        (the snaplen is recorded in :attr:`interfaces`, but is no limit)."""
        linktype, snaplen = struct.unpack_from(endian + "H2xI", buf, pos + 8)
        ticks = 1_000_000
        toff = 0
        opt = pos + 16
        end = pos + length - 4
        u16x2 = struct.Struct(endian + "HH").unpack_from
        while opt + 4 <= end:
            code, olen = u16x2(buf, opt)
            if code == 0:
                break
            val = opt + 4
            if val + olen > end:
                break  # malformed options: ignore rest
            if code == 9 and olen >= 1:  # if_tsresol
                r = buf[val]
                ticks = (1 << (r & 0x7F)) if r & 0x80 else 10**r
            elif code == 14 and olen >= 8:  # if_tsoffset (seconds)
                toff = struct.unpack_from(endian + "q", buf, val)[0]
            opt = val + ((olen + 3) & ~3)
        self.interfaces.append((linktype, snaplen))
        self.linktypes.add(linktype)
        self._snaplens.add(snaplen)
        self.snaplen = None if 0 in self._snaplens else max(self._snaplens)
        return linktype, ticks, toff * ticks, max_caplen(linktype)
