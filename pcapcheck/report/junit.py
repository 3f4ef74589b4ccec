"""The JUnit XML report, for CI test-report views (GitLab, Jenkins, GitHub actions).

Follows the de-facto JUnit XML schema (Jenkins xunit-plugin ``junit-10.xsd``, which GitLab
and the GitHub reporters accept)::

    <testsuites name="pcapcheck" tests= failures= errors= time="0">
      <testsuite name=PATH tests= failures= errors= skipped="0" time="0" timestamp=>
        <properties> format, packets, tcp_packets, connections, findings </properties>
        <testcase classname=PATH name="HS002 synack-bad-ack" time="0">
          <failure message="2 findings: FIRST MESSAGE" type="error">
    frame 2, connection 1 (10.0.0.1:40000 -> 10.0.0.2:80): MESSAGE
    ...</failure>
          <system-out>the rule's info findings, one per line</system-out>
        </testcase>

* one ``<testsuite>`` per capture (``name`` = the capture path, ``timestamp`` = when the
  report was made, UTC, ISO 8601 without zone as JUnit writes it);
* one ``<testcase>`` per rule evaluated on the capture (``ctx.active``, plus any rule
  with findings), in rule-id order, named ``"ID name"``, ``classname`` = capture path.
  Without a context (or with an empty ``active``) only the rules with findings are known;
  a capture without findings then gets one passing test case ``"analyze"``;
* a rule with error or warning findings fails: ONE ``<failure>`` carries all of them
  (``message`` = count and the first message, ``type`` = the most severe severity, text =
  one line per finding), so viewers that keep one failure per test case lose nothing;
  ``info`` findings never fail and go to the test case's ``<system-out>``;
* a capture that could not be read: a test case ``"read"`` with ``<error>``.

Text that XML 1.0 cannot carry (control characters) is replaced by U+FFFD.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pcapcheck.model import Finding
from pcapcheck.report import connection_text, lookup_rule
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext

#: Severities that make a test case fail.
FAILING = ("error", "warning")

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: object) -> str:
    return _XML_ILLEGAL.sub("\ufffd", str(text))


def timestamp() -> str:
    """The current UTC time as JUnit writes it: ``2026-01-01T12:00:00``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def finding_line(f: Finding, conns: dict[int, dict]) -> str:
    """``"frame 2, connection 1 (10.0.0.1:40000 -> 10.0.0.2:80): MESSAGE"``; ``frame -``
    without a frame, ``file`` instead of the connection for a file-level finding."""
    where = f"frame {f.frame if f.frame is not None else '-'}, "
    if f.connection is None:
        where += "file"
    else:
        conn = connection_text(conns.get(f.connection))
        where += f"connection {f.connection}" + (f" ({conn})" if conn else "")
    return f"{where}: {f.message}"


def _counts(suite: ET.Element) -> tuple[int, int, int]:
    return (
        int(suite.get("tests", "0")),
        int(suite.get("failures", "0")),
        int(suite.get("errors", "0")),
    )


def _suite(res: FileResult, ctx: ReportContext | None, stamp: str) -> ET.Element:
    suite = ET.Element("testsuite", name=_clean(res.path))
    if res.error is not None:
        case = ET.SubElement(suite, "testcase", classname=_clean(res.path), name="read", time="0")
        err = ET.SubElement(case, "error", message=_clean(res.error), type="CaptureError")
        err.text = _clean(res.error)
        suite.attrib.update(
            tests="1", failures="0", errors="1", skipped="0", time="0", timestamp=stamp
        )
        return suite
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("format", res.format or ""),
        ("packets", res.packets),
        ("tcp_packets", res.tcp_packets),
        ("connections", len(res.connections)),
        ("findings", len(res.findings)),
    ):
        ET.SubElement(props, "property", name=name, value=_clean(value))
    by_rule: dict[str, list[Finding]] = {}
    for f in res.findings:
        by_rule.setdefault(f.rule, []).append(f)
    evaluated = set(ctx.active) if ctx is not None else set()
    rule_ids = sorted(evaluated | set(by_rule))
    conns = {c["id"]: c for c in res.connections}
    failures = 0
    for rule_id in rule_ids:
        findings = by_rule.get(rule_id, [])
        if findings:
            name = findings[0].name
        else:
            rule = lookup_rule(ctx, rule_id)
            name = rule.name if rule is not None else ""
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_clean(res.path),
            name=_clean(f"{rule_id} {name}".strip()),
            time="0",
        )
        failing = [f for f in findings if f.severity in FAILING]
        info = [f for f in findings if f.severity not in FAILING]
        if failing:
            failures += 1
            n = len(failing)
            worst = "error" if any(f.severity == "error" for f in failing) else "warning"
            fail = ET.SubElement(
                case,
                "failure",
                type=worst,
                message=_clean(f"{n} finding{'s' if n != 1 else ''}: {failing[0].message}"),
            )
            fail.text = _clean("\n".join(finding_line(f, conns) for f in failing))
        if info:
            out = ET.SubElement(case, "system-out")
            out.text = _clean("\n".join(f"{f.severity}: {finding_line(f, conns)}" for f in info))
    if not rule_ids:
        ET.SubElement(suite, "testcase", classname=_clean(res.path), name="analyze", time="0")
    suite.attrib.update(
        tests=str(max(len(rule_ids), 1)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time="0",
        timestamp=stamp,
    )
    return suite


def render(results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """The JUnit XML document (UTF-8 declaration, 2-space indentation, final newline).

    Rule names for rules without findings come from ``ctx.catalog`` (else the shipped
    catalogue); ``ctx.statistics`` does not apply.
    """
    stamp = timestamp()
    root = ET.Element("testsuites", name="pcapcheck")
    totals = [0, 0, 0]
    for res in results:
        suite = _suite(res, ctx, stamp)
        root.append(suite)
        for i, n in enumerate(_counts(suite)):
            totals[i] += n
    root.attrib.update(
        tests=str(totals[0]), failures=str(totals[1]), errors=str(totals[2]), time="0"
    )
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
