"""Baselines: accept today's findings, fail only on new ones.

``pcapcheck analyze --write-baseline FILE`` records the reported findings;
``--baseline FILE`` then drops every finding the baseline holds, so that only new ones
are reported and gated.

A finding is identified by its **fingerprint** (:func:`fingerprint`), built to survive a
re-recording of the same conversation, where ISNs, client ports, timestamps and the
absolute frame numbers change:

* the rule ID;
* the connection's server endpoint (``ip:port``) and the client's IP address without its
  ephemeral port;
* the frame relative to the connection's first frame (``frame - first_frame``; None stays
  None).

File-level findings (no connection: CP003, CP005, CP006, ...) use the frame number as is
and no endpoints. The capture's path is not part of the fingerprint, so a renamed capture
still matches. Matching is a multiset: two findings with the same fingerprint need two
baseline entries.

The file is JSON::

    {"version": 1, "generator": "pcapcheck 0.1.0",
     "findings": [{"rule": "HS002", "fingerprint": "3f0c9b1e2a7d4c55",
                   "hint": "capture.pcap: HS002 10.0.0.1 -> 10.0.0.2:80 frame 2 (+1): ..."}]}

``hint`` is for people reading the file (and diffs); only ``fingerprint`` is matched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pcapcheck.__about__ import __version__
from pcapcheck.capture.inputs import display_path, read_limited
from pcapcheck.model import Finding
from pcapcheck.report.common import endpoint_parts
from pcapcheck.results import FileResult

__all__ = [
    "BASELINE_VERSION",
    "BaselineError",
    "apply_baseline",
    "baseline_entries",
    "fingerprint",
    "fingerprint_parts",
    "load_baseline",
    "write_baseline",
]

#: The ``version`` written in (and required of) baseline files.
BASELINE_VERSION = 1
_HINT_MESSAGE_CHARS = 160
#: The largest baseline file read (bytes): about half a million findings; more is
#: refused with a one-line error rather than read whole (``--baseline /dev/zero``).
MAX_BASELINE_BYTES = 100_000_000


class BaselineError(Exception):
    """A baseline file cannot be read, is not a pcapcheck baseline, or cannot be written
    (one line naming the file)."""


def _client_host(endpoint: str) -> str:
    """``"10.0.0.1:40000"`` → ``"10.0.0.1"``; ``"[::1]:40000"`` → ``"[::1]"``."""
    try:
        host, _port = endpoint_parts(endpoint)
    except ValueError:
        return endpoint
    return f"[{host}]" if ":" in host else host  # the fingerprints' form: brackets kept


def fingerprint_parts(
    finding: Finding, connection: dict[str, Any] | None
) -> tuple[str, str, str, int | None]:
    """``(rule, server "ip:port", client ip, relative frame)`` of a finding.

    ``connection`` is the finding's connection summary (``FileResult.connections``
    entry, with ``client``, ``server``, ``first_frame``) or None for a file-level
    finding, which gives ``(rule, "-", "-", frame)``.
    """
    if connection is None:
        return finding.rule, "-", "-", finding.frame
    relative = None
    if finding.frame is not None and connection.get("first_frame") is not None:
        relative = finding.frame - connection["first_frame"]
    return finding.rule, connection["server"], _client_host(connection["client"]), relative


def fingerprint(finding: Finding, connection: dict[str, Any] | None) -> str:
    """The finding's fingerprint: 16 hex digits of the SHA-256 of
    :func:`fingerprint_parts` joined with ``|``."""
    text = "|".join("-" if p is None else str(p) for p in fingerprint_parts(finding, connection))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _iter_keyed(
    results: Sequence[FileResult],
) -> Iterator[tuple[FileResult, Finding, dict[str, Any] | None]]:
    for res in results:
        if res.error is not None:
            continue
        by_id = {c["id"]: c for c in res.connections}
        for finding in res.findings:
            conn = by_id.get(finding.connection) if finding.connection is not None else None
            yield res, finding, conn


def _hint(res: FileResult, finding: Finding, conn: dict[str, Any] | None) -> str:
    rule, server, client, relative = fingerprint_parts(finding, conn)
    message = " ".join(finding.message.split())
    if len(message) > _HINT_MESSAGE_CHARS:
        message = message[: _HINT_MESSAGE_CHARS - 3] + "..."
    frame = "-" if finding.frame is None else str(finding.frame)
    if conn is None:
        where = f"frame {frame}"
    else:
        offset = "" if relative is None else f" (+{relative})"
        where = f"{client} -> {server} frame {frame}{offset}"
    return f"{res.path}: {rule} {where}: {message}"


def baseline_entries(results: Sequence[FileResult]) -> list[dict[str, str]]:
    """``[{"rule", "fingerprint", "hint"}]`` for every finding of ``results``, in report
    order (files as given, findings in frame order)."""
    return [
        {"rule": f.rule, "fingerprint": fingerprint(f, conn), "hint": _hint(res, f, conn)}
        for res, f, conn in _iter_keyed(results)
    ]


def write_baseline(results: Sequence[FileResult], path: Path | str) -> int:
    """Write the baseline of ``results`` to ``path`` (JSON, see the module docstring);
    return the number of findings recorded. Raises :class:`BaselineError` when the file
    cannot be written."""
    entries = baseline_entries(results)
    document = {
        "version": BASELINE_VERSION,
        "generator": f"pcapcheck {__version__}",
        "findings": entries,
    }
    try:
        Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"{display_path(path)}: cannot write: {exc.strerror}") from None
    return len(entries)


def load_baseline(path: Path | str) -> Counter[str]:
    """The fingerprints of a baseline file with their multiplicities. Raises
    :class:`BaselineError` for a missing or unreadable file, invalid JSON or a document
    that is not a version-1 pcapcheck baseline, one larger than
    :data:`MAX_BASELINE_BYTES` or nested too deeply for the JSON parser."""
    shown = display_path(path)
    try:
        text = read_limited(path, MAX_BASELINE_BYTES, "pcapcheck baseline").decode("utf-8")
    except UnicodeDecodeError:
        raise BaselineError(f"{shown}: cannot read: not UTF-8 text") from None
    except ValueError as exc:  # larger than MAX_BASELINE_BYTES
        raise BaselineError(str(exc)) from None
    except FileNotFoundError:
        raise BaselineError(f"{shown}: no such baseline file") from None
    except IsADirectoryError:
        raise BaselineError(f"{shown}: is a directory, not a baseline file") from None
    except OSError as exc:
        raise BaselineError(
            f"{shown}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{shown}: invalid JSON: {exc}") from None
    except RecursionError:
        raise BaselineError(f"{shown}: invalid JSON: nested too deeply") from None
    if not isinstance(document, dict) or "findings" not in document:
        raise BaselineError(
            f"{shown}: not a pcapcheck baseline (no 'findings' list; write "
            "one with --write-baseline)"
        )
    if document.get("version") != BASELINE_VERSION:
        raise BaselineError(
            f"{shown}: unsupported baseline version "
            f"{document.get('version')!r} (expected {BASELINE_VERSION})"
        )
    findings = document["findings"]
    if not isinstance(findings, list):
        raise BaselineError(f"{shown}: findings: expected a list")
    counts: Counter[str] = Counter()
    for index, entry in enumerate(findings):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("fingerprint"), str)
            and isinstance(entry.get("rule"), str)
        ):
            raise BaselineError(
                f"{shown}: findings[{index}]: expected an object with "
                "'rule' and 'fingerprint' strings"
            )
        counts[entry["fingerprint"]] += 1
    return counts


def apply_baseline(
    results: Sequence[FileResult], baseline: Counter[str]
) -> tuple[list[FileResult], int]:
    """``results`` without the findings the baseline holds, and how many were dropped.

    Each baseline entry absorbs one finding (first come, in report order). The returned
    results are copies (the per-connection ``findings`` counts are updated); files with
    an ``error`` are returned as they are. ``baseline`` is not modified.
    """
    remaining = Counter(baseline)
    suppressed = 0
    out: list[FileResult] = []
    for res in results:
        if res.error is not None:
            out.append(res)
            continue
        by_id = {c["id"]: c for c in res.connections}
        kept: list[Finding] = []
        for finding in res.findings:
            conn = by_id.get(finding.connection) if finding.connection is not None else None
            key = fingerprint(finding, conn)
            if remaining[key] > 0:
                remaining[key] -= 1
                suppressed += 1
            else:
                kept.append(finding)
        per_conn = Counter(f.connection for f in kept if f.connection is not None)
        connections = [dict(c, findings=per_conn[c["id"]]) for c in res.connections]
        out.append(
            dataclasses.replace(res, findings=kept, connections=connections, connection_lines=None)
        )
    return out, suppressed
