"""GitHub Actions output: workflow commands that become annotations, and the step summary.

One line per finding::

    ::error file=PATH,title=HS002 synack-bad-ack::MESSAGE [frame 2, connection 1]

``error`` findings give ``::error``, ``warning`` ``::warning``, ``info`` ``::notice``; a
capture that could not be read gives ``::error file=PATH,title=pcapcheck: unreadable
capture::REASON``. Values are escaped as GitHub's runner expects (the ``escapeData`` /
``escapeProperty`` functions of ``@actions/core``): in the message ``%`` → ``%25``,
CR → ``%0D``, LF → ``%0A``; in properties (``file``, ``title``) also ``:`` → ``%3A`` and
``,`` → ``%2C``. A capture has no lines, so no ``line=`` is given. The message and the
title of an unreadable capture are in the current language (:mod:`pcapcheck.i18n`); the
command names and the rule id and name of a title are not.

:func:`write_step_summary` appends the Markdown report (the ``markdown`` format, taken by
name from :data:`pcapcheck.report.FORMATS` like any other caller's: the format modules do not
import each other) to the file named by ``$GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pcapcheck.i18n import gettext as _
from pcapcheck.report import FORMATS, statistics_rows
from pcapcheck.results import FileResult

if TYPE_CHECKING:
    from pcapcheck.report import ReportContext

#: Finding severity -> workflow command.
COMMANDS = {"error": "error", "warning": "warning", "info": "notice"}


def escape_data(text: str) -> str:
    """A command's message: ``%`` → ``%25``, ``\\r`` → ``%0D``, ``\\n`` → ``%0A``."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value: :func:`escape_data` plus ``:`` → ``%3A`` and ``,`` → ``%2C``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: str | None) -> str:
    """One workflow command line (no newline): ``::name k=v,k=v::message``, properties
    in the given order, ``None`` values left out, everything escaped."""
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None
    )
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def render(results: Sequence[FileResult], ctx: ReportContext | None = None) -> str:
    """One workflow command per finding (and per unreadable capture), newline-terminated;
    ``""`` when there is nothing to annotate. With ``ctx.statistics`` the per-rule counts
    follow as plain log lines."""
    lines = []
    for res in results:
        if res.error is not None:
            lines.append(
                command("error", res.error, file=res.path, title=_("pcapcheck: unreadable capture"))
            )
            continue
        for f in res.findings:
            where = [_("frame {frame}").format(frame=f.frame)] if f.frame is not None else []
            if f.connection is not None:
                where.append(_("connection {id}").format(id=f.connection))
            message = f.message + (f" [{', '.join(where)}]" if where else "")
            lines.append(
                command(
                    COMMANDS.get(f.severity, "warning"),
                    message,
                    file=res.path,
                    title=f"{f.rule} {f.name}",
                )
            )
    text = "".join(line + "\n" for line in lines)
    if ctx is not None and ctx.statistics:
        text += statistics_rows(results)
    return text


def write_step_summary(
    results: Sequence[FileResult], ctx: ReportContext | None, path: str | os.PathLike[str]
) -> None:
    """Append the Markdown report (``FORMATS["markdown"](results, ctx)``) to ``path``, the
    file named by ``$GITHUB_STEP_SUMMARY`` (UTF-8; the file is created if missing).
    Raises ``OSError`` when it cannot be written."""
    text = FORMATS["markdown"](results, ctx)
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
