"""Keep pcapcheck's gettext message catalogs, with Babel's API (babel.messages).

    python scripts/i18n.py extract   # the marked strings -> pcapcheck/locale/pcapcheck.pot
    python scripts/i18n.py update    # the .pot's messages -> each language's .po (new ones
                                     # empty, changed ones fuzzy: translate them)
    python scripts/i18n.py compile   # each .po -> its .mo (the catalogs pcapcheck reads)
    python scripts/i18n.py check     # exit 1, naming each problem, when the .pot is stale,
                                     # a message lacks its translation (empty or fuzzy), a
                                     # translation's placeholders differ from the English
                                     # ones, or a .mo does not hold its .po's translations

Strings are marked with ``_()`` / ``ngettext()`` (:mod:`pcapcheck.i18n`) in
``pcapcheck/**.py`` and with ``{{ _("...") }}`` / ``{% trans %}`` in the Jinja2 templates
(``pcapcheck/**/templates/**``, the ``jinja2.ext.i18n`` extension); ``babel.cfg`` at the
repository's root is the mapping. The languages are :data:`pcapcheck.i18n.LANGUAGES`
(English, the source, has no catalog). ``tests/test_i18n.py`` runs ``check``.

The .pot and .po files are written without line numbers and the .pot with a fixed date,
so that they change only when a message does; ``check`` compares messages, not bytes.
"""

from __future__ import annotations

import argparse
import datetime
import io
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pcapcheck.i18n import DEFAULT_LANGUAGE, DOMAIN, LANGUAGES, LOCALE_DIR  # noqa: E402

MAPPING = ROOT / "babel.cfg"
POT = LOCALE_DIR / f"{DOMAIN}.pot"
#: The date written into the .pot's header (a fixed one: the file changes with its messages).
POT_DATE = datetime.datetime(2026, 12, 7, tzinfo=datetime.timezone.utc)
COMMENT_TAGS = ("TRANSLATORS:",)
WIDTH = 88
#: str.format fields ({n}, {rule:>5}) and %-style ones (%(name)s: Jinja2's newstyle gettext).
_FIELDS = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}|%\(([A-Za-z_][A-Za-z0-9_]*)\)")


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def translated_languages() -> list[str]:
    return [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE]


# --------------------------------------------------------------------------- extract


def extract() -> Catalog:
    """The catalog of every marked string (the template, ``.pot``), by Babel's
    extractors as ``babel.cfg`` maps them."""
    with MAPPING.open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh, str(MAPPING))
    catalog = Catalog(
        project="pcapcheck",
        version="",
        domain=DOMAIN,
        charset="utf-8",
        creation_date=POT_DATE,
        revision_date=POT_DATE,
        msgid_bugs_address="",
        copyright_holder="the pcapcheck authors",
        fuzzy=False,
    )
    found = extract_from_dir(
        ROOT,
        method_map,
        options_map,
        keywords=DEFAULT_KEYWORDS,
        comment_tags=COMMENT_TAGS,
        strip_comment_tags=True,
        directory_filter=lambda path: "__pycache__" not in path,
    )
    for filename, lineno, message, comments, context in found:
        catalog.add(
            message,
            None,
            [(Path(filename).as_posix(), lineno)],
            auto_comments=comments,
            context=context,
        )
    return catalog


def _write_po(path: Path, catalog: Catalog) -> None:
    buf = io.BytesIO()
    write_po(buf, catalog, width=WIDTH, include_lineno=False, ignore_obsolete=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def _read_po(path: Path, lang: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


def cmd_extract() -> int:
    catalog = extract()
    _write_po(POT, catalog)
    print(f"{shown(POT)}: {len(catalog)} messages")
    return 0


# --------------------------------------------------------------------------- update


def cmd_update() -> int:
    template = _read_po(POT)
    for lang in translated_languages():
        path = po_path(lang)
        if path.exists():
            catalog = _read_po(path, lang)
        else:
            catalog = Catalog(locale=lang, domain=DOMAIN, charset="utf-8", fuzzy=False)
            catalog.project = "pcapcheck"
            catalog.copyright_holder = "the pcapcheck authors"
        catalog.update(template, update_creation_date=False)
        _write_po(path, catalog)
        missing = [m for m in _messages(catalog) if _problem(m) is not None]
        print(f"{shown(path)}: {len(catalog)} messages, {len(missing)} to translate")
    return 0


# --------------------------------------------------------------------------- compile


def _mo_bytes(catalog: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def cmd_compile() -> int:
    for lang in translated_languages():
        catalog = _read_po(po_path(lang), lang)
        mo_path(lang).write_bytes(_mo_bytes(catalog))
        print(f"{shown(mo_path(lang))}: compiled")
    return 0


# --------------------------------------------------------------------------- check


def _key(message: Message) -> tuple:
    ident = tuple(message.id) if isinstance(message.id, (list, tuple)) else message.id
    return (message.context, ident)


def _strings(message: Message) -> tuple:
    string = message.string
    return tuple(string) if isinstance(string, (list, tuple)) else (string,)


def _messages(catalog: Catalog) -> Iterable[Message]:
    return (m for m in catalog if m.id)  # not the header


def fields(text: str) -> set[str]:
    """The placeholder names of a message: ``{name}`` / ``{name:>5}`` and ``%(name)s``."""
    return {a or b for a, b in _FIELDS.findall(text)}


def _problem(message: Message) -> str | None:
    """Why a translated message is not done, else None."""
    ids = message.id if isinstance(message.id, tuple) else (message.id,)
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    if not all(strings):
        return "no translation"
    if message.fuzzy:
        return "fuzzy (check the translation, then remove the fuzzy flag)"
    wanted = set().union(*(fields(i) for i in ids))
    for string in strings:
        if fields(string) != wanted:
            return (
                f"placeholders {sorted(fields(string))} differ from the English ones "
                f"{sorted(wanted)}"
            )
    return None


def problems() -> list[str]:
    """Everything ``check`` reports (empty: the catalogs are up to date)."""
    out = []
    extracted = {_key(m) for m in _messages(extract())}
    if not POT.exists():
        return [f"{shown(POT)}: missing; run python scripts/i18n.py extract"]
    template = _read_po(POT)
    kept = {_key(m) for m in _messages(template)}
    if extracted != kept:
        new = sorted(str(k[1]) for k in extracted - kept)
        gone = sorted(str(k[1]) for k in kept - extracted)
        out.append(
            f"{shown(POT)}: stale ({len(new)} new, {len(gone)} gone messages, "
            f"e.g. {(new or gone)[0]!r}); run python scripts/i18n.py extract, then update"
        )
    for lang in translated_languages():
        path = po_path(lang)
        where = shown(path)
        if not path.exists():
            out.append(f"{where}: missing; run python scripts/i18n.py update")
            continue
        catalog = _read_po(path, lang)
        have = {_key(m): m for m in _messages(catalog)}
        for key in sorted(kept - set(have), key=str):
            out.append(f"{where}: {key[1]!r}: not in the catalog; run update")
        for key, message in have.items():
            if key not in kept:
                out.append(f"{where}: {key[1]!r}: no longer in the .pot; run update")
                continue
            problem = _problem(message)
            if problem is not None:
                out.append(f"{where}: {key[1]!r}: {problem}")
        mo = mo_path(lang)
        if not mo.exists():
            out.append(f"{shown(mo)}: missing; run python scripts/i18n.py compile")
            continue
        with mo.open("rb") as fh:
            compiled = read_mo(fh)
        ours = {
            _key(m): _strings(m) for m in _messages(catalog) if not m.fuzzy and all(_strings(m))
        }
        theirs = {_key(m): _strings(m) for m in _messages(compiled)}
        if ours != theirs:
            out.append(f"{shown(mo)}: does not match {where}; run python scripts/i18n.py compile")
    return out


def cmd_check() -> int:
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    if found:
        return 1
    print(f"message catalogs up to date ({', '.join(translated_languages())})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/i18n.py", description=__doc__)
    parser.add_argument("command", choices=("extract", "update", "compile", "check"))
    args = parser.parse_args(argv)
    return {
        "extract": cmd_extract,
        "update": cmd_update,
        "compile": cmd_compile,
        "check": cmd_check,
    }[args.command]()


if __name__ == "__main__":
    sys.exit(main())
