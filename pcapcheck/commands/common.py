"""The ``pcapcheck`` Typer application and what its commands share.

Each command is a module of :mod:`pcapcheck.commands` that registers itself on
:data:`app`; :mod:`pcapcheck.cli` holds only the console-script entry point
(:func:`pcapcheck.cli.main`). Dependencies go one way: ``cli`` → ``commands`` →
this module.

Exit status everywhere: 0 success, 1 findings reached the gate, 2 usage or input error
(one line on stderr, never a traceback).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pcapcheck.__about__ import __version__
from pcapcheck.results import SEVERITY_RANK

if TYPE_CHECKING:
    from pcapcheck.catalog.config import Config

__all__ = [
    "CONFIG_HELP",
    "ISOLATED_HELP",
    "LANG_HELP",
    "SEVERITY_RANK",
    "FailOn",
    "app",
    "command_config",
    "fail",
    "split_ids",
    "use_language",
    "write_error",
    "writing_stdout",
]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="pcapcheck: rebuild TCP connections from a capture and check them against RFC 9293.",
)


class FailOn(str, Enum):
    error = "error"
    warning = "warning"
    info = "info"
    never = "never"


def fail(message: str) -> typer.Exit:
    """Print ``pcapcheck: error: MESSAGE`` on stderr (``error:`` in the current
    language); return the Exit(2) to raise."""
    from pcapcheck.i18n import gettext as _

    typer.echo(_("pcapcheck: error: {message}").format(message=message), err=True)
    return typer.Exit(2)


def write_error(target: str, exc: OSError) -> typer.Exit:
    """:func:`fail` for an output that could not be written: ``cannot write TARGET:
    No space left on device`` (a full disk, a file-size limit, a closed pipe)."""
    from pcapcheck.i18n import gettext as _

    return fail(
        _("cannot write {target}: {reason}").format(target=target, reason=exc.strerror or exc)
    )


#: The help of every command's ``--lang`` option.
LANG_HELP = (
    "Language of what a person reads: en or ko (default: the configuration's lang, "
    "else the environment's LANGUAGE, LC_ALL, LC_MESSAGES or LANG, else English). "
    "Machine formats keep English keys."
)


#: The help of every command's ``--config`` option.
CONFIG_HELP = (
    "Configuration file (pcapcheck.toml, or a pyproject.toml with a tool.pcapcheck table)."
)
#: The help of every command's ``--isolated`` option.
ISOLATED_HELP = "Ignore every configuration file."


def command_config(config: Path | None, isolated: bool, lang: str | None) -> Config:
    """The configuration a command reads and the language it speaks, as ``pcapcheck
    analyze`` has them: ``config`` (``--config FILE``), none with ``isolated``
    (``--isolated``), else the file found from the working directory upward
    (:func:`pcapcheck.catalog.config.resolve_config`, the one the API uses). The
    language is set (:func:`use_language`): ``lang`` (``--lang``), else the
    configuration's ``lang``, else the environment's. A configuration that cannot be
    read or holds a wrong value is :func:`fail` (exit 2, one line). Returns the
    :class:`~pcapcheck.catalog.config.Config` (its ``tunnel_ports``: the UDP ports of
    the tunnels the command's decoders follow)."""
    from pcapcheck.catalog.config import ConfigError, resolve_config

    try:
        cfg = resolve_config(config, isolated)
    except (ConfigError, OSError) as exc:
        use_language(lang, config=False)
        raise fail(str(exc)) from None
    use_language(lang if lang is not None else cfg.lang, config=False)
    return cfg


def use_language(lang: str | None, config: bool = True) -> str:
    """Set the language of the command's text (:func:`pcapcheck.i18n.set_language`) and
    return it: ``lang`` (``--lang``), else with ``config`` the ``lang`` key of the
    configuration file found from the working directory (a file that cannot be read is
    left to the commands that use it), else the environment's, else English. An unknown
    ``lang`` is :func:`fail` (exit 2): ``unknown language 'xx' (valid: en, ko)``."""
    from pcapcheck.i18n import LanguageError, set_language

    if lang is None and config:
        from pcapcheck.catalog.config import ConfigError, resolve_config

        try:
            lang = resolve_config(None, False).lang
        except (ConfigError, OSError):
            lang = None
    try:
        return set_language(lang)
    except LanguageError as exc:
        raise fail(str(exc)) from None


@contextmanager
def writing_stdout() -> Iterator[None]:
    """Around what a command writes to standard output: the output is flushed at the
    end, and an :class:`OSError` on the way (``> /dev/full``: ENOSPC; ``| head``:
    EPIPE; RLIMIT_FSIZE: EFBIG) becomes the one-line :func:`write_error` and exit
    status 2, not a traceback."""
    try:
        yield
        sys.stdout.flush()
    except OSError as exc:
        # What the buffer still holds cannot be written either: drop it, so that the
        # exit (pcapcheck.cli.quick_exit flushes) does not report it a second time.
        sys.stdout = open(os.devnull, "w")
        raise write_error("the standard output", exc) from None


def split_ids(values: list[str] | None) -> list[str] | None:
    """``["HS,CL001", "RS"]`` → ``["HS", "CL001", "RS"]``; None when nothing was given."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pcapcheck {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    """pcapcheck: TCP connection analysis and RFC 9293 conformance checks for captures."""
    from pcapcheck.i18n import set_language

    set_language(None)  # every command starts in the environment's language (or English)
