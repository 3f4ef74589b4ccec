"""The SARIF 2.1.0 report (OASIS Static Analysis Results Interchange Format).

One run for all captures::

    {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [{
      "tool": {"driver": {"name": "pcapcheck", "version", "informationUri",
                          "rules": [reportingDescriptor, ...]}},   # only rules that fired
      "invocations": [{"executionSuccessful", "toolExecutionNotifications": [...]}],
      "artifacts": [{"location": {"uri"}, "length", "roles": ["analysisTarget"]}, ...],
      "results": [result, ...]}]}

* a rule (``reportingDescriptor``): ``id``, ``name``, ``shortDescription`` (the rule's
  summary), ``fullDescription`` (its "What it does" paragraph), ``help`` (``text`` and
  ``markdown``: the explanation), ``defaultConfiguration.level``, ``properties``
  (``rfc``, ``equivalents``). The documentation comes from ``ctx.catalog`` (else from the
  shipped catalogue when the rule's id and name match there; else only id, name and
  level);
* a result: ``ruleId``, ``ruleIndex``, ``level`` (error → ``error``, warning →
  ``warning``, info → ``note``), ``message.text``, one location whose
  ``physicalLocation`` is the capture (``artifactLocation.uri`` + ``index``) with
  ``region {byteOffset, byteLength}`` = the frame's record (pcap record header + data,
  or the pcapng packet block) when it is known (an uncompressed capture that can still
  be read), and ``logicalLocations`` = the connection (``"10.0.0.1:40000 ->
  10.0.0.2:80"``, kind ``connection``); ``properties`` ``{frame, connection, data}``;
* a capture that could not be read: an ``error`` ``toolExecutionNotification`` with
  its location, and ``executionSuccessful`` false.

URIs: a relative capture path is written as a relative URI reference (``/`` separators,
percent-encoded), an absolute one as a ``file://`` URI.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pcapcheck.__about__ import __version__
from pcapcheck.report import connection_text, lookup_rule
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    from pcapcheck.catalog.rules import Rule
    from pcapcheck.report import ReportContext

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://pypi.org/project/pcapcheck/"
#: Finding severity -> SARIF level.
LEVELS = {"error": "error", "warning": "warning", "info": "note"}

_PCAPNG_PACKET_BLOCKS = (2, 3, 6)  # packet block, simple packet block, enhanced packet block


def artifact_uri(path: str) -> str:
    """The SARIF ``uri`` of a capture path: ``sample_pcaps/x%20y.pcap`` for a relative
    path, ``file:///abs/x.pcap`` for an absolute one."""
    p = Path(path)
    if p.is_absolute():
        return p.as_uri()
    return quote(PurePath(path).as_posix(), safe="/")


def record_regions(path: str, frames: Iterable[int]) -> dict[int, tuple[int, int]]:
    """``frame -> (byteOffset, byteLength)`` of those frames' records in the capture.

    Re-reads the capture with :func:`pcapcheck.capture.reader.open_capture` and stops after the
    last wanted frame. pcap: the 16-byte record header plus the captured bytes; pcapng:
    the whole packet block (length read from the block header). Empty for a
    gzip-compressed capture and when the file cannot be read any more (never raises).
    """
    from pcapcheck.capture.reader import CaptureError, open_capture

    wanted = set(frames)
    regions: dict[int, tuple[int, int]] = {}
    if not wanted:
        return regions
    try:
        reader = open_capture(path)
        if reader.compressed:
            reader.close()
            return regions
        pcapng = reader.format == "pcapng"
        last = max(wanted)
        with open(path, "rb") as fh:
            for record in reader:
                if record.frame in wanted and record.offset is not None:
                    length = 16 + len(record.data)
                    if pcapng:
                        fh.seek(record.offset)
                        head = fh.read(8)
                        if len(head) < 8:
                            continue
                        btype, length = struct.unpack("<II", head)
                        if btype not in _PCAPNG_PACKET_BLOCKS:
                            btype, length = struct.unpack(">II", head)
                    regions[record.frame] = (record.offset, length)
                if record.frame >= last:
                    break
        reader.close()
    except (CaptureError, OSError):
        pass
    return regions


def _what_it_does(explanation: str) -> str | None:
    """The paragraph under ``## What it does`` as one line."""
    match = re.search(
        r"^##\s*What it does\s*\n(.*?)(?=^##\s|\Z)", explanation, re.MULTILINE | re.DOTALL
    )
    if not match:
        return None
    text = " ".join(match.group(1).split())
    return text or None


def rule_descriptor(rule_id: str, name: str, severity: str, rule: Rule | None) -> dict[str, Any]:
    """The ``reportingDescriptor`` of a rule; ``rule`` (its catalogue entry) adds the
    documentation, else only ``id``, ``name`` and the level of ``severity``."""
    desc: dict[str, Any] = {"id": rule_id, "name": name}
    if rule is not None:
        desc["shortDescription"] = {"text": rule.summary}
        desc["fullDescription"] = {"text": _what_it_does(rule.explanation) or rule.summary}
        desc["help"] = {"text": rule.explanation, "markdown": rule.explanation}
        severity = rule.severity
    desc["defaultConfiguration"] = {"level": LEVELS.get(severity, "warning")}
    if rule is not None:
        desc["properties"] = {"rfc": rule.rfc, "equivalents": dict(rule.equivalents)}
    return desc


def _artifact(path: str) -> dict[str, Any]:
    art: dict[str, Any] = {"location": {"uri": artifact_uri(path)}, "roles": ["analysisTarget"]}
    with contextlib.suppress(OSError):
        art["length"] = os.path.getsize(path)
    return art


def log(results: Sequence[FileResult], ctx: ReportContext | None = None) -> dict[str, Any]:
    """The SARIF log as a JSON-ready dict (see the module docstring)."""
    first: dict[str, tuple[str, str]] = {}
    for res in results:
        for f in res.findings:
            first.setdefault(f.rule, (f.name, f.severity))
    rules = [
        rule_descriptor(rid, name, sev, lookup_rule(ctx, rid, name))
        for rid, (name, sev) in sorted(first.items())
    ]
    index = {desc["id"]: i for i, desc in enumerate(rules)}

    artifacts: list[dict[str, Any]] = []
    artifact_index: dict[str, int] = {}
    results_out: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for res in results:
        if res.path not in artifact_index:
            artifact_index[res.path] = len(artifacts)
            artifacts.append(_artifact(res.path))
        location = {"uri": artifact_uri(res.path), "index": artifact_index[res.path]}
        if res.error is not None:
            notifications.append(
                {
                    "level": "error",
                    "message": {"text": res.error},
                    "locations": [{"physicalLocation": {"artifactLocation": dict(location)}}],
                }
            )
            continue
        regions = record_regions(res.path, {f.frame for f in res.findings if f.frame is not None})
        conns = {c["id"]: c for c in res.connections}
        for f in res.findings:
            physical: dict[str, Any] = {"artifactLocation": dict(location)}
            if f.frame is not None and f.frame in regions:
                offset, length = regions[f.frame]
                physical["region"] = {"byteOffset": offset, "byteLength": length}
            loc: dict[str, Any] = {"physicalLocation": physical}
            conn = connection_text(conns.get(f.connection)) if f.connection is not None else None
            if conn is not None:
                loc["logicalLocations"] = [{"name": conn, "kind": "connection"}]
            results_out.append(
                {
                    "ruleId": f.rule,
                    "ruleIndex": index[f.rule],
                    "level": LEVELS.get(f.severity, "warning"),
                    "message": {"text": f.message},
                    "locations": [loc],
                    "properties": {"frame": f.frame, "connection": f.connection, "data": f.data},
                }
            )
    invocation: dict[str, Any] = {"executionSuccessful": not notifications}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    run = {
        "tool": {
            "driver": {
                "name": "pcapcheck",
                "version": __version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "invocations": [invocation],
        "artifacts": artifacts,
        "results": results_out,
    }
    return {"$schema": SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


def render(results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """The SARIF log serialised with 2-space indentation and a final newline (values
    JSON cannot hold, e.g. bytes in event data, are written as strings).
    ``ctx.statistics`` does not apply."""
    return json.dumps(log(results, ctx), indent=2, ensure_ascii=False, default=str) + "\n"
