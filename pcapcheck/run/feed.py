"""One reading of a capture for all its shards.

Analysed in shards (:mod:`pcapcheck.run.shards`), a capture used to be read and decoded by
every shard's process: each walked every record header and decoded every record with
numpy, to keep its own connections and the others' timestamps. Here the process that
starts the shards reads and decodes it once (:meth:`pcapcheck.fast.batch_decoder.BatchSource.batches`,
blocks mode, no shard) and sends each :class:`~pcapcheck.fast.batch_decoder.Batch` to every shard's
process, which takes its own rows from it (``BatchSource(feed=...)``) exactly as from its
own reading (``tests/test_feed.py`` compares the two).

* :class:`Feeder` (the starting process): a Unix socket in a private temporary directory
  (mode 0700); :meth:`Feeder.ticket` is what a worker needs to connect (picklable, so it
  crosses :class:`~concurrent.futures.ProcessPoolExecutor`'s queue);
  :meth:`Feeder.serve` accepts the ``n`` workers (those that come within its time),
  reads the file and sends every batch to each (one sending thread and a bounded queue
  per worker: a worker may run up to :data:`QUEUE` batches ahead of another, and the
  reading waits when a queue is full), then the end of the file (its ``truncated``,
  ``skipped`` and ``snaplen``).
* :class:`Feed` (a worker): the batches in order, then :attr:`Feed.truncated`,
  :attr:`Feed.skipped` and :attr:`Feed.snaplen`. Anything else — the socket refused or closed before the end,
  the reading failing in the starting process — raises :class:`FeedLost`, and the
  worker analyses its shard from its own reading of the file
  (:func:`pcapcheck.run.shards.analyze_shard`): the report is the same, only slower.
  The pipeline knows nothing of this module: it is handed the :class:`Feed` as the
  iterable of batches to decode from (``analyze_part(feed=...)``).

Wire format: each message is an 8-byte little-endian length and a pickle (protocol 5):
a :class:`~pcapcheck.fast.batch_decoder.Batch`, then one :class:`End`. Nothing is sent back.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ACCEPT_TIMEOUT", "ENABLED", "QUEUE", "End", "Feed", "FeedLost", "Feeder", "feeder_for"]

#: Batches a worker's queue holds before the reading waits for it (about 0.5 MB each on
#: Ethernet/IPv4/TCP traffic with 4 MiB chunks).
QUEUE = 32
#: Seconds :meth:`Feeder.serve` waits for all workers to connect before it gives up
#: (the workers then read the file themselves).
ACCEPT_TIMEOUT = 30.0

_LENGTH = struct.Struct("<Q")
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


#: Read a sharded capture once for all its shards; False: every shard reads it (the
#: tests compare both).
ENABLED = True


def feeder_for(n: int) -> Feeder | None:
    """A :class:`Feeder` for ``n`` workers, or None when the feed is disabled
    (:data:`ENABLED`), the platform has no Unix sockets (Windows' Python) or the socket
    cannot be made (the workers then read the file)."""
    if not ENABLED or not hasattr(socket, "AF_UNIX"):
        return None
    try:
        return Feeder(n)
    except OSError:
        return None


class FeedLost(Exception):
    """The feed ended before the end of the file (or never started): the worker reads
    the file itself."""


@dataclass
class End:
    """The last message: the file's ``truncated`` (why it ended early, or None),
    ``skipped`` (the records that are not TCP, by kind, but for those decoded one by
    one: the workers decode them and count them) and ``snaplen`` (a pcapng
    file's comes from its interfaces, read with its blocks), as the reading found them."""

    truncated: str | None
    skipped: Counter
    snaplen: int | None = None


class Feeder:
    """The starting process's side (module docstring): ``Feeder(n)`` for ``n`` workers;
    a context manager (the socket and its directory are removed on exit).

    :raises OSError: the socket cannot be made.
    """

    def __init__(self, n: int):
        self.n = n
        self._dir: str | None = tempfile.mkdtemp(prefix="pcapcheck-feed-")  # mode 0700
        self.address = os.path.join(self._dir, "s")
        self._sock: socket.socket | None = None
        try:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.bind(self.address)
            self._sock.listen(n)
        except OSError:
            self.close()
            raise

    def ticket(self) -> str:
        """What a worker passes to :class:`Feed` (the socket's path)."""
        return self.address

    def serve(
        self,
        path: str | Path,
        verify_checksums: bool = False,
        chunk_bytes: int | None = None,
        timeout: float = ACCEPT_TIMEOUT,
        give_up: Callable[[], bool] | None = None,
        tunnel_ports: Mapping[str, Iterable[int]] | None = None,
    ) -> bool:
        """Accept the ``n`` workers (within ``timeout`` seconds, or until ``give_up()``
        is true: asked every 0.2 s while waiting, e.g. a worker failed), read ``path``
        once and send its batches to each (``verify_checksums``: as the workers'
        analysis asks, CP004; ``chunk_bytes``: see :class:`~pcapcheck.fast.batch_decoder.BatchSource`;
        ``tunnel_ports``: the run's UDP tunnel ports, as the workers' own decoders take them).
        Returns True when every batch and the end reached every worker's socket; False
        when the workers did not all connect (those that did are fed all the same, the
        others read the file), the file could not be read (the workers then meet the
        error themselves) or a worker went away (it reads the file itself). Never raises
        for those; the socket is closed on return."""
        conns: list[socket.socket] = []
        try:
            listener = self._sock
            if listener is None:  # closed already
                return False
            deadline = time.monotonic() + timeout
            listener.settimeout(0.2)
            while len(conns) < self.n:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    if time.monotonic() > deadline or (give_up is not None and give_up()):
                        break
                    continue
                except OSError:
                    break
                conn.settimeout(None)
                conns.append(conn)
            self._shut()
            return bool(
                _send_all(path, verify_checksums, chunk_bytes, conns, tunnel_ports)
                and len(conns) == self.n
            )
        finally:
            for conn in conns:
                conn.close()
            self.close()

    def _shut(self) -> None:
        """Let no more worker in: the socket's name removed first (a late connect is
        refused: that worker reads the file), then the connections already queued
        closed (forked workers hold the listening socket too, so closing it here would
        not refuse them: they would wait for batches that never come), then it."""
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        with contextlib.suppress(OSError):
            os.unlink(self.address)
        sock.setblocking(False)
        while True:
            try:
                late, _ = sock.accept()
            except OSError:  # BlockingIOError: none left
                break
            late.close()
        sock.close()

    def close(self) -> None:
        """Remove the socket and its directory (once)."""
        self._shut()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Feeder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Sender(threading.Thread):
    """Sends the messages of its queue to one worker; after an error it drops them (the
    worker went away and reads the file itself)."""

    def __init__(self, conn: socket.socket):
        super().__init__(daemon=True)
        self.conn = conn
        self.queue: queue.Queue = queue.Queue(QUEUE)
        self.ok = True

    def run(self) -> None:
        get, send = self.queue.get, self.conn.sendall
        while (message := get()) is not None:
            if self.ok:
                try:
                    # MSG_NOSIGNAL: a worker gone is an error, never a SIGPIPE (a host
                    # program may not ignore it, as Python does by default)
                    send(_LENGTH.pack(len(message)), _NOSIGNAL)
                    send(message, _NOSIGNAL)
                except OSError:
                    self.ok = False


def _send_all(
    path: str | Path,
    verify_checksums: bool,
    chunk_bytes: int | None,
    conns: list[socket.socket],
    tunnel_ports: Mapping[str, Iterable[int]] | None = None,
) -> bool:
    """Read ``path`` and send its batches, then the end, to each of ``conns``; True when
    all of it reached every one. Stops reading when no worker is left."""
    from pcapcheck.fast.batch_decoder import BatchSource

    if not conns:
        return False
    senders: list[_Sender] = []
    ended = False
    try:
        for conn in conns:
            sender = _Sender(conn)
            sender.start()
            senders.append(sender)
        source = BatchSource(
            path,
            verify_checksums,
            blocks=True,
            chunk_bytes=chunk_bytes,
            tunnel_ports=tunnel_ports,
        )
        dumps, protocol = pickle.dumps, 5
        for batch in source.batches():
            message = dumps(batch, protocol)
            for s in senders:
                s.queue.put(message)
            if not any(s.ok for s in senders):
                return False  # every worker gone: each reads the file itself
        message = dumps(End(source.truncated, Counter(source.skipped), source.snaplen), protocol)
        for s in senders:
            s.queue.put(message)
        ended = True
    except Exception:
        if os.environ.get("PCAPCHECK_DEBUG"):
            raise
    finally:
        for s in senders:
            s.queue.put(None)
        for s in senders:
            s.join()
    return ended and all(s.ok for s in senders)


class Feed:
    """A worker's side (module docstring): iterating yields the batches of the file in
    order; then :attr:`truncated`, :attr:`skipped` and :attr:`snaplen` are the file's.
    ``ticket``: :meth:`Feeder.ticket`. Iterable once.

    :raises FeedLost: (connecting, iterating) the feed cannot be had whole.
    """

    def __init__(self, ticket: str, timeout: float = ACCEPT_TIMEOUT):
        self.truncated: str | None = None
        self.skipped: Counter = Counter()
        self.snaplen: int | None = None
        try:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        except (OSError, AttributeError) as exc:  # no Unix sockets here
            raise FeedLost(f"cannot connect to the feed: {exc}") from None
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(ticket)
            self._sock.settimeout(None)
        except OSError as exc:
            self._sock.close()
            raise FeedLost(f"cannot connect to the feed: {exc}") from None

    def __iter__(self) -> Iterator:
        from pcapcheck.fast.batch_decoder import Batch

        read = self._read
        loads = pickle.loads
        try:
            while True:
                head = read(8)
                data = read(_LENGTH.unpack(head)[0])
                try:
                    message = loads(data)
                except Exception as exc:
                    raise FeedLost(f"a message that cannot be read: {exc!r}") from None
                if message.__class__ is Batch:
                    yield message
                elif message.__class__ is End:
                    self.truncated, self.skipped = message.truncated, message.skipped
                    self.snaplen = message.snaplen
                    return
                else:
                    raise FeedLost(f"unexpected message {type(message).__name__}")
        finally:
            self.close()

    def _read(self, size: int) -> bytearray:
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        recv_into = self._sock.recv_into
        try:
            while got < size:
                n = recv_into(view[got:])
                if not n:
                    raise FeedLost("the feed ended before the end of the file")
                got += n
        except OSError as exc:
            raise FeedLost(f"the feed broke: {exc}") from None
        return buf

    def close(self) -> None:
        """Close the connection (the starting process then stops sending to it)."""
        self._sock.close()
