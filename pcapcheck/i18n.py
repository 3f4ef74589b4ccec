"""Translations of what a person reads: gettext message catalogs (managed with Babel).

The language is chosen once per run (:func:`set_language`, from ``--lang``, the
configuration's ``lang`` key or the environment as GNU gettext reads it:
``LANGUAGE``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``; :func:`language_from_environment`)
and every module that writes text for a person marks its strings::

    from pcapcheck.i18n import gettext as _, ngettext

    _("Connections")
    ngettext("{n} connection", "{n} connections", n).format(n=n)

English is the default and the source language (the msgids). The compiled catalogs are
``pcapcheck/locale/<lang>/LC_MESSAGES/pcapcheck.mo`` (shipped in the wheel). Machine
formats keep English keys; only their human-readable message fields follow the language.

A leaf module: it imports nothing from pcapcheck.
"""

from __future__ import annotations

import gettext as _gettext
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

__all__ = [
    "DEFAULT_LANGUAGE",
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "LanguageError",
    "get_language",
    "gettext",
    "language_from_environment",
    "ngettext",
    "normalize_language",
    "set_language",
]

#: The gettext domain and where its compiled catalogs live.
DOMAIN = "pcapcheck"
LOCALE_DIR = Path(__file__).with_name("locale")
#: The languages pcapcheck speaks (the first is the default and the source language).
LANGUAGES = ("en", "ko")
DEFAULT_LANGUAGE = "en"


class LanguageError(ValueError):
    """An unknown language was asked for explicitly (``--lang`` or ``lang =``); the message
    is one line naming the valid ones."""


_language = DEFAULT_LANGUAGE


def normalize_language(value: str) -> str | None:
    """The pcapcheck language of a locale name: ``"ko"``, ``"ko_KR.UTF-8"``, ``"ko-KR"``
    -> ``"ko"``; ``"C"``, ``"POSIX"``, ``"en_US"`` -> ``"en"``; ``None`` for a language
    pcapcheck does not speak."""
    base = value.strip().split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    if base in ("c", "posix", ""):
        return DEFAULT_LANGUAGE
    return base if base in LANGUAGES else None


def language_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The language the environment asks for, as GNU gettext reads it: ``LANGUAGE`` (a
    colon-separated preference list, the first spoken one wins), then the first set of
    ``LC_ALL``, ``LC_MESSAGES``, ``LANG``; ``None`` when none is set or none is spoken."""
    env = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if not value:
            continue
        if name == "LANGUAGE":
            for part in value.split(":"):
                lang = normalize_language(part)
                if lang is not None and part:
                    return lang
            continue
        return normalize_language(value)
    return None


def set_language(lang: str | None) -> str:
    """Make ``lang`` (``"en"``, ``"ko"``, or a locale name such as ``"ko_KR"``) the language
    of every later :func:`gettext`; ``None`` chooses from the environment
    (:func:`language_from_environment`), else English. Returns the language set.
    Raises :class:`LanguageError` for an explicit language pcapcheck does not speak."""
    global _language
    if lang is None:
        chosen = language_from_environment() or DEFAULT_LANGUAGE
    else:
        found = normalize_language(lang)
        if found is None:
            raise LanguageError(f"unknown language {lang!r} (valid: {', '.join(LANGUAGES)})")
        chosen = found
    _language = chosen
    return chosen


def get_language() -> str:
    """The current language (``"en"`` or ``"ko"``)."""
    return _language


@cache
def _translations(lang: str) -> _gettext.NullTranslations:
    if lang == DEFAULT_LANGUAGE:
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def gettext(message: str) -> str:
    """``message`` (English, the msgid) in the current language."""
    return _translations(_language).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n`` in the current language."""
    return _translations(_language).ngettext(singular, plural, n)
