"""What more than one output format says the same way (kept here so that the format
modules stay independent of each other; an import-linter contract checks it).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pcapcheck.results import FileResult

__all__ = ["SEVERITY_ORDER", "summary_line"]

#: Finding severities, most severe first (the order of counts in a summary line).
SEVERITY_ORDER = ("error", "warning", "info")


def summary_line(res: FileResult) -> str:
    """One capture's totals as a line of text (no newline), the last line of the
    ``table`` and ``markdown`` reports for a capture::

        3 connections, 2 findings (1 error, 1 warning) in 42 packets; 5 non-TCP skipped (5 udp)

    Severity counts with none are left out (``info`` is not pluralised); the tail, after
    ``;``, lists non-TCP records skipped by kind, malformed records and a file cut short,
    each only when there is one.
    """
    sev = Counter(f.severity for f in res.findings)
    parts = ", ".join(
        f"{sev[s]} {s}{'s' if sev[s] != 1 and s != 'info' else ''}"
        for s in SEVERITY_ORDER
        if sev[s]
    )
    n = len(res.connections)
    text = (
        f"{n} connection{'s' if n != 1 else ''}, {len(res.findings)} "
        f"finding{'s' if len(res.findings) != 1 else ''}"
        f"{f' ({parts})' if parts else ''} in {res.packets} packets"
    )
    extra = []
    skipped = sum(res.skipped.values())
    if skipped:
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(res.skipped.items()))
        extra.append(f"{skipped} non-TCP skipped ({kinds})")
    if res.malformed:
        extra.append(f"{res.malformed} malformed")
    if res.truncated:
        extra.append("file cut short")
    return text + ("; " + "; ".join(extra) if extra else "")
