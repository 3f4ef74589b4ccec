"""The capture inputs of ``pcapcheck analyze``: files, directories, globs and ``-``.

:func:`collect_inputs` turns the command-line arguments into the list of captures to
analyse, in the order given:

* an existing **file** is taken as named, whatever its name or content (a file that is
  not a capture is then reported by the reader, exit status 2);
* an existing **directory** is searched recursively (symbolic links to directories are
  not followed; names starting with ``.`` are skipped) and its captures are taken in
  sorted path order. A file is a capture when its name ends in one of
  :data:`CAPTURE_SUFFIXES` or, for any other name, when its first bytes are a pcap or
  pcapng magic number, or gzip data whose decompressed start is one (:func:`sniff`);
* an argument that does not exist and contains a glob character (``*``, ``?``, ``[``) is
  expanded by pcapcheck, for shells that did not (``'captures/**/*.pcap'``; ``**``
  crosses directories): matched files are taken as named, matched directories are
  searched as above, each capture once;
* ``-`` is standard input, copied to a temporary file that lives as long as the
  :func:`collect_inputs` context (reported as ``<stdin>``); or, when the stream given
  for it is a :class:`LiveStream` (a live pipe, ``pcapcheck analyze -`` with a JSON
  Lines report on standard output), read as its data arrives, without a copy;
* any other argument is passed through as a file name, so that the reader reports it
  ("no such file").

A directory without captures, a glob matching nothing, ``-`` twice or ``-`` on a
terminal raise :class:`InputError` (one line).
"""

from __future__ import annotations

import glob
import gzip
import math
import os
import select
import shutil
import stat
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "CAPTURE_SUFFIXES",
    "STDIN_NAME",
    "Input",
    "InputError",
    "LiveStream",
    "collect_inputs",
    "display_path",
    "is_capture",
    "read_limited",
    "sniff",
]

#: File-name endings taken as captures without looking inside (case-insensitive).
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")
#: How standard input is named in the report.
STDIN_NAME = "<stdin>"

#: First four bytes of a pcap (µs / ns, both byte orders) or pcapng file.
_MAGICS = frozenset(
    {
        b"\xa1\xb2\xc3\xd4",
        b"\xd4\xc3\xb2\xa1",  # pcap, microseconds
        b"\xa1\xb2\x3c\x4d",
        b"\x4d\x3c\xb2\xa1",  # pcap, nanoseconds
        b"\x0a\x0d\x0d\x0a",  # pcapng Section Header Block
    }
)
_GZIP_MAGIC = b"\x1f\x8b"
_GLOB_CHARS = frozenset("*?[")


class InputError(Exception):
    """An argument names no capture at all; the message is one line naming it."""


@dataclass(frozen=True)
class Input:
    """One capture to analyse: ``path`` is the file to read, ``name`` how the report
    calls it (the argument as typed, the path below a directory argument, or
    :data:`STDIN_NAME`); ``stdin`` is true for standard input; ``stream``: the
    :class:`LiveStream` to read instead of ``path`` (a live pipe; ``path`` is then
    :data:`STDIN_NAME`, no file)."""

    path: Path
    name: str
    stdin: bool = False
    stream: LiveStream | None = None


class _Stop(BaseException):
    """Raised by :meth:`LiveStream.request_stop` in the middle of a wait for data."""


class LiveStream:
    """Standard input (or any pipe) read as its data arrives: what a live capture
    (``tcpdump -U -w - | pcapcheck analyze - -f jsonl``) gives, for
    :func:`pcapcheck.capture.reader.open_capture` (``stream=``).

    ``read(n)`` returns the bytes that are there (at most ``n``, at least one), without
    waiting for ``n`` of them as a buffered file's ``read`` does, and ``b""`` at the end
    of the data or once a stop was asked for (:meth:`request_stop`). ``fd``: the file
    descriptor (or a binary stream that has ``fileno()``); ``flush_interval``: seconds
    (wall-clock) of silence on the pipe after which :attr:`on_idle` is called (then the
    wait goes on), None: never. ``on_idle``: a callable without arguments, set by the
    reader's consumer (the pipeline: it writes what is already final,
    :func:`pcapcheck.pipeline.analyze_file`); it runs in the thread that reads, between
    two waits. Raises :class:`OSError` as :func:`os.read` does. Not for a terminal.
    """

    def __init__(self, fd: int | IO[bytes], flush_interval: float | None = 1.0):
        self.fd = fd if isinstance(fd, int) else fd.fileno()
        if flush_interval is not None and not 0 < flush_interval < math.inf:
            raise ValueError(
                f"flush interval: expected a number of seconds > 0, got {flush_interval!r}"
            )
        self.flush_interval = flush_interval
        self.on_idle: Callable[[], None] | None = None
        #: a stop was asked for (SIGINT, SIGTERM): the data ends here
        self.stopped = False
        self._waiting = False

    @staticmethod
    def is_pipe(stream: IO[bytes] | None) -> bool:
        """Whether ``stream`` is a pipe or a socket (what a live capture comes through);
        False for a regular file, a terminal, or no file descriptor at all."""
        try:
            mode = os.fstat(stream.fileno()).st_mode  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            return False
        return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)

    def request_stop(self) -> None:
        """End the data now: the wait in progress (if any) returns ``b""``, and so does
        every later :meth:`read`. For a signal handler (SIGINT, SIGTERM) in the thread
        that reads: the run then ends as at the end of its input."""
        self.stopped = True
        if self._waiting:
            raise _Stop

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (``-1``: up to 1 MiB) as soon as there are any; ``b""``
        at the end of the data or after :meth:`request_stop`."""
        size = size if size > 0 else 1 << 20
        fd, interval = self.fd, self.flush_interval
        try:
            while not self.stopped:
                self._waiting = True
                try:
                    if interval is None or select.select([fd], [], [], interval)[0]:
                        return os.read(fd, size)
                finally:
                    self._waiting = False
                if self.on_idle is not None:
                    self.on_idle()
        except _Stop:
            pass
        return b""

    def readinto(self, view: memoryview) -> int:
        """:meth:`read` into ``view``: how many bytes (0 at the end)."""
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Nothing: the descriptor stays open (it is the process's standard input)."""

    def isatty(self) -> bool:
        """Whether the descriptor is a terminal (no capture comes from one)."""
        return os.isatty(self.fd)


def read_limited(path: Path | str, limit: int, what: str) -> bytes:
    """The bytes of the file ``path``, at most ``limit`` bytes read whatever it is (a
    device such as ``/dev/zero``, a FIFO, a huge file): the configuration and baseline
    files are read whole, so their size is bounded here rather than by memory.

    Raises :class:`ValueError` with a one-line message ("``PATH``: larger than N MB:
    not a WHAT") when the file holds more; :class:`OSError` (from :func:`open`) as it
    comes, for the caller to word.
    """
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{display_path(path)}: larger than {limit // 1_000_000} MB: not a {what}")
    return data


def display_path(path: Path | str) -> str:
    """``path`` relative to the working directory when it is below it, else as given."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def sniff(path: Path | str) -> bool:
    """Whether the file starts like a capture: a pcap or pcapng magic number, plain or
    inside gzip. Unreadable files are not captures (never raises for I/O errors)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            if head[:2] == _GZIP_MAGIC:
                fh.seek(0)
                with gzip.GzipFile(fileobj=fh) as gz:
                    head = gz.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return head in _MAGICS


def is_capture(path: Path | str) -> bool:
    """Whether a file found in a directory is taken as a capture: its name ends in one of
    :data:`CAPTURE_SUFFIXES`, or :func:`sniff` recognises its content."""
    name = Path(path).name.lower()
    return name.endswith(CAPTURE_SUFFIXES) or sniff(path)


def _walk(top: Path) -> list[Path]:
    """The captures below ``top``, sorted by path components."""
    found: list[tuple[tuple[str, ...], Path]] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for name in filenames:
            if name.startswith("."):
                continue
            path = base / name
            if path.is_file() and is_capture(path):
                found.append((path.relative_to(top).parts, path))
    return [path for _, path in sorted(found)]


def _directory(arg: str, path: Path) -> list[Input]:
    found = _walk(path)
    if not found:
        raise InputError(
            f"{arg}: no capture files in this directory (looked for "
            f"{', '.join(CAPTURE_SUFFIXES)} and pcap/pcapng content)"
        )
    return [Input(p, str(p)) for p in found]


def _glob(arg: str) -> list[Input]:
    matches = sorted(glob.glob(arg, recursive=True))
    if not matches:
        raise InputError(f"{arg}: no file matches this pattern")
    out: list[Input] = []
    seen: set[str] = set()
    for match in matches:
        path = Path(match)
        items = _walk(path) if path.is_dir() else [path] if path.is_file() else []
        for item in items:
            key = os.path.normpath(item)
            if key not in seen:
                seen.add(key)
                out.append(Input(item, str(item)))
    if not out:
        raise InputError(f"{arg}: the pattern matches no capture file")
    return out


@contextmanager
def collect_inputs(
    args: Sequence[str], stdin: IO[bytes] | LiveStream | None = None
) -> Iterator[list[Input]]:
    """Expand ``args`` (see the module docstring) into :class:`Input` objects.

    ``stdin``: the binary stream read for ``-`` (a :class:`LiveStream`: read as its data
    arrives, not copied). The temporary copy of standard input is deleted when the
    context exits. Raises :class:`InputError`.
    """
    with tempfile.TemporaryDirectory(prefix="pcapcheck-") as tmp:
        if list(args).count("-") > 1:
            raise InputError("-: standard input can be read only once")
        inputs: list[Input] = []
        for arg in args:
            if arg == "-":
                if stdin is None:
                    raise InputError("-: no standard input")
                try:
                    interactive = stdin.isatty()
                except (AttributeError, ValueError):
                    interactive = False
                if interactive:
                    raise InputError("-: standard input is a terminal; pipe a capture into it")
                if isinstance(stdin, LiveStream):  # read as it arrives: no copy
                    inputs.append(Input(Path(STDIN_NAME), STDIN_NAME, stdin=True, stream=stdin))
                    continue
                target = Path(tmp) / "stdin.capture"
                try:
                    with open(target, "wb") as fh:
                        shutil.copyfileobj(stdin, fh)
                except OSError as exc:
                    # A full disk (ENOSPC), a file-size limit (EFBIG, RLIMIT_FSIZE), a
                    # read error on the pipe: one line, never a traceback.
                    raise InputError(
                        f"-: cannot copy standard input to {tmp}: {exc.strerror or exc}"
                    ) from None
                inputs.append(Input(target, STDIN_NAME, stdin=True))
                continue
            path = Path(arg)
            if path.is_dir():
                inputs.extend(_directory(arg, path))
            elif not path.exists() and _GLOB_CHARS & set(arg):
                inputs.extend(_glob(arg))
            else:
                inputs.append(Input(path, arg))
        yield inputs
