"""What the analysis of one capture gives: :class:`FileResult` (a leaf module: it imports
only :mod:`pcapcheck.model`).

:func:`pcapcheck.pipeline.analyze_file` makes it, the executors of :mod:`pcapcheck.run`
carry it (merged from the shards of a capture, or from worker processes), the public
API (:func:`pcapcheck.analyze`) yields it file by file, and every report format in
:mod:`pcapcheck.report` renders a sequence of them.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pcapcheck.model import Event, Finding

__all__ = ["FAIL_ON", "SEVERITY_RANK", "FileResult", "failed", "worst_severity"]

#: Finding severities, least to most severe, with their rank.
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}

#: The values of ``fail_on`` (``--fail-on``): the lowest severity that fails a run;
#: ``never``: none does.
FAIL_ON = ("error", "warning", "info", "never")


def worst_severity(findings: Iterable[Finding]) -> str | None:
    """The most severe ``severity`` among ``findings`` (``"error"``, ``"warning"``,
    ``"info"``), None when there is none. Stops at the first error."""
    worst = -1
    for f in findings:
        rank = SEVERITY_RANK[f.severity]
        if rank > worst:
            worst = rank
            if rank == 2:
                break
    return None if worst < 0 else ("info", "warning", "error")[worst]


def failed(findings: Iterable[Finding], fail_on: str = "error") -> bool:
    """Whether a finding of ``findings`` reaches ``fail_on`` (one of :data:`FAIL_ON`:
    ``"error"``, ``"warning"``, ``"info"``; ``"never"``: no finding does), as the exit
    status of ``pcapcheck analyze --fail-on`` decides. Raises ValueError for another
    ``fail_on``."""
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on: {fail_on!r} is not one of {', '.join(FAIL_ON)}")
    if fail_on == "never":
        return False
    threshold = SEVERITY_RANK[fail_on]
    return any(SEVERITY_RANK[f.severity] >= threshold for f in findings)


@dataclass
class FileResult:
    """Everything pcapcheck learned from one capture file.

    Counters: ``format`` (``"pcap"``, ``"pcapng"``, ``"pcap.gz"``..., None when unread);
    ``packets``: records in the file (every frame, TCP or not); ``tcp_packets``: decoded
    TCP segments; ``skipped``: the records that are not TCP, by kind (``Counter``, e.g.
    ``{"udp": 3, "arp": 1}``); ``malformed``: records that could not be decoded (each
    also a CP005 event); ``truncated``: why the file ends early (a record cut short:
    also CP006), else None.

    ``connections``: one summary dict per TCP connection, in id order (ids 1, 2, ... in
    order of first frame). Keys: ``id``; ``client``/``server`` (``"ip:port"``,
    ``"[v6]:port"``); ``roles_inferred`` (no SYN seen: roles guessed); ``first_frame``,
    ``last_frame`` (1-based, as Wireshark numbers frames); ``start`` (ISO 8601 UTC,
    microseconds) and ``start_ts`` (float seconds since the epoch); ``duration`` (float
    seconds, smallest to largest segment timestamp); ``packets`` and ``bytes``
    (payload bytes) as ``{"client": n, "server": n}``; ``client_isn``/``server_isn``
    (absolute sequence numbers, None when unseen); ``handshake``, ``close``;
    ``client_state``/``server_state`` (RFC 9293 states at the end, e.g.
    ``"TIME-WAIT"``); ``conn_state`` and ``history`` (Zeek's); ``transitions``
    (``{"client": [...], "server": [...]}``, each ``{"frame", "from", "to", "cause"}``);
    ``findings`` (how many of the file's findings are about it).

    ``findings``: the :class:`~pcapcheck.model.Finding` objects the rule catalogue
    reports (``rule``, ``name``, ``severity``, ``connection`` id or None for a
    file-level one, ``frame`` or None, ``message`` with relative sequence numbers,
    ``data`` with the event values: sequence numbers relative to the ISN unless the key
    ends in ``_abs``); ``events``: every event detected, reported or not
    (:class:`~pcapcheck.model.Event`). Both in frame order (file-level ones without a
    frame last), then connection id, then rule ID.

    ``error``: the one-line reason when the file could not be read at all (then nothing
    else is filled): the reader's message, naming the file; a failure of pcapcheck
    itself (a bug) starts with ``"internal error: "``
    (:data:`pcapcheck.run.tasks.INTERNAL_ERROR`).

    Memory: :func:`pcapcheck.pipeline.analyze_file` fills ``connections``, ``events``
    and ``findings`` with :class:`~pcapcheck.spool.Spool` objects, sequences that spill
    to temporary files beyond a few thousand items (deleted by :meth:`close`, or when
    the result is garbage-collected), so a long capture does not hold its whole report
    in memory; analysed in shards, :class:`pcapcheck.run.shards.Merged` views merge the
    shards' spools. Anything iterable with ``len()`` (a list) is accepted in their place.
    ``connection_lines``: None, or (merged shards that encoded their summaries,
    :class:`pcapcheck.run.shards.MergedLines`) ``(id, rest)`` for each summary of
    ``connections``, in the same order: ``rest`` the bytes of its JSON text after the
    id, plus :data:`pcapcheck.jsonlines.LINE_END`. ``marks`` and ``frame_conn``: per-frame
    Wireshark-style analysis flags and each frame's connection id (``analyze_file(
    marks=True)``, for crosscheck), else None.
    """

    path: str
    format: str | None = None
    packets: int = 0
    tcp_packets: int = 0
    skipped: Counter = field(default_factory=Counter)
    malformed: int = 0
    truncated: str | None = None
    connections: Sequence[dict[str, Any]] = field(default_factory=list)
    events: Sequence[Event] = field(default_factory=list)
    findings: Sequence[Finding] = field(default_factory=list)
    connection_lines: Any = None
    error: str | None = None
    marks: dict[int, set[str]] | None = None
    frame_conn: dict[int, int] | None = None

    @property
    def worst_severity(self) -> str | None:
        """The most severe severity of :attr:`findings` (``"error"``, ``"warning"``,
        ``"info"``), None without findings."""
        return worst_severity(self.findings)

    def failed(self, fail_on: str = "error") -> bool:
        """Whether a finding reaches ``fail_on`` (see :func:`failed`; an unreadable file
        has no findings: see :attr:`error`)."""
        return failed(self.findings, fail_on)

    def close(self) -> None:
        """Delete the temporary files of the spools behind ``connections``, ``events``
        and ``findings`` (they are not readable afterwards). Never raises."""
        for items in (self.connections, self.events, self.findings, self.connection_lines):
            close = getattr(items, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
