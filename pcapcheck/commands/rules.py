"""``pcapcheck rules ...``: the rule catalogue from the command line.

* ``rules list [--format table|json]``: ID, name, severity, default on/off, summary;
* ``rules show ID [--format text|json]``: everything about one rule (explanation,
  message template, RFC, equivalents, parameters with defaults, samples), like
  ``ruff rule``;
* ``rules check DIR``: validate a rule directory (or one rule file) against the schema:
  exit 0, or 2 with the one-line :class:`~pcapcheck.catalog.rules.CatalogError`;
* ``rules test [--rules DIR]``: run each rule on its trigger captures (it must fire) and
  clean captures (it must not), with the rule selected explicitly; one PASS/FAIL line per
  rule, exit 1 on any failure. Sample paths are relative to the ``sample_pcaps``
  directory beside the rule's directory (the repository's ``sample_pcaps/``, or
  ``pcapcheck/_data/sample_pcaps`` when installed).

Every command takes ``--rules DIR`` (repeatable) to add or override rules, as
``analyze`` does, and ``--lang`` (``en``, ``ko``; default the configuration's ``lang``,
else the environment's): ``rules show HS002 --lang ko`` gives the rule's Korean summary,
message template and explanation (:meth:`pcapcheck.catalog.rules.Rule.text`) and the
command's own text in Korean; ids, names and the JSON keys stay English.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from pcapcheck.commands.common import LANG_HELP, app, fail, use_language, writing_stdout
from pcapcheck.i18n import gettext as _
from pcapcheck.i18n import ngettext

rules_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="List, explain, validate and test the rules."
)
app.add_typer(rules_app, name="rules")

_RULES_OPTION_HELP = "Extra rule directory (adds or overrides rules by ID); repeatable."


class ListFormat(str, Enum):
    table = "table"
    json = "json"


class ShowFormat(str, Enum):
    text = "text"
    json = "json"


def _catalog(extra: list[Path] | None) -> Any:
    from pcapcheck.catalog.rules import CatalogError, load_catalog

    try:
        return load_catalog(list(extra or []))
    except CatalogError as exc:
        raise fail(str(exc)) from None


def rule_dict(rule: Any) -> dict[str, Any]:
    """A rule as a JSON-ready dict (every field of :class:`pcapcheck.catalog.rules.Rule`,
    ``enabled`` as a bool and ``default`` as ``"on"``/``"off"``; ``source`` a string).
    ``summary``, ``message`` and ``explanation`` are in the current language (English
    where the rule has no translation); the keys and the other values are not."""
    return {
        "id": rule.id,
        "name": rule.name,
        "severity": rule.severity,
        "enabled": rule.enabled,
        "default": "on" if rule.enabled else "off",
        "summary": rule.text("summary"),
        "message": rule.text("message"),
        "rfc": rule.rfc,
        "explanation": rule.text("explanation"),
        "equivalents": dict(rule.equivalents),
        "params": {name: dict(spec) for name, spec in rule.params.items()},
        "samples": {kind: list(paths) for kind, paths in rule.samples.items()},
        "source": str(rule.source),
    }


@rules_app.command("list")
def list_rules(
    fmt: ListFormat = typer.Option(ListFormat.table, "--format", "-f", help="Output format."),
    rules: list[Path] | None = typer.Option(None, "--rules", help=_RULES_OPTION_HELP),
    lang: str | None = typer.Option(None, "--lang", metavar="LANG", help=LANG_HELP),
) -> None:
    """List the rules: ID, name, severity, default on/off, summary."""
    use_language(lang)
    catalog = _catalog(rules)
    if fmt is ListFormat.json:
        rows = [
            {
                "id": r.id,
                "name": r.name,
                "severity": r.severity,
                "default": "on" if r.enabled else "off",
                "summary": r.text("summary"),
            }
            for r in catalog
        ]
        with writing_stdout():
            typer.echo(json.dumps(rows, indent=2))
        return
    from tabulate import tabulate

    from pcapcheck.report.common import column_title, value_text

    table = [
        [
            r.id,
            r.name,
            value_text(r.severity),
            value_text("on" if r.enabled else "off"),
            r.text("summary"),
        ]
        for r in catalog
    ]
    headers = [column_title(h) for h in ("id", "name", "severity", "default", "summary")]
    with writing_stdout():
        typer.echo(tabulate(table, headers=headers, tablefmt="simple"))


def render_rule(rule: Any) -> str:
    """The ``rules show`` text of a rule (Markdown, like ``ruff rule``), in the current
    language (:meth:`pcapcheck.catalog.rules.Rule.text` and :mod:`pcapcheck.i18n`)."""
    from pcapcheck.report.common import value_text

    if rule.enabled:
        default = _("Severity: {severity}. Default: on.")
    else:
        default = _("Severity: {severity}. Default: off (select it with --select {id}).")
    lines = [
        f"# {rule.name} ({rule.id})",
        "",
        rule.text("summary"),
        "",
        default.format(severity=value_text(rule.severity), id=rule.id),
        _("Standard: {rfc}.").format(rfc=rule.rfc),
        "",
        _("Message template:"),
        "",
        "```text",
        rule.text("message"),
        "```",
        "",
        rule.text("explanation").rstrip(),
        "",
    ]
    if rule.equivalents:
        lines += [_("## Equivalents"), ""]
        names = {"wireshark": "Wireshark", "zeek": "Zeek", "suricata": "Suricata"}
        lines += [f"- {names.get(tool, tool)}: {text}" for tool, text in rule.equivalents.items()]
        lines.append("")
    lines += [_("## Parameters"), ""]
    if rule.params:
        for name, spec in rule.params.items():
            bounds = "".join(
                f", {sign} {spec[key]}"
                for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
                if key in spec
            )
            text = _("- `{name}` ({type}{bounds}, default {default})").format(
                name=name, type=spec["type"], bounds=bounds, default=repr(spec["default"])
            )
            lines.append(f"{text}: {spec['description']}" if spec.get("description") else text)
        lines += [
            "",
            _("Set them in pcapcheck.toml: `[rules.{id}]` then `{param} = ...`.").format(
                id=rule.id, param=next(iter(rule.params))
            ),
            "",
        ]
    else:
        lines += [_("None."), ""]
    if rule.samples:
        lines += [_("## Sample captures"), ""]
        kinds = {"trigger": _("trigger"), "clean": _("clean")}
        for kind in ("trigger", "clean"):
            for sample in rule.samples.get(kind) or []:
                lines.append(f"- {kinds[kind]}: {sample}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


@rules_app.command("show")
def show_rule(
    rule_id: str = typer.Argument(..., metavar="ID", help="The rule ID (HS003)."),
    fmt: ShowFormat = typer.Option(ShowFormat.text, "--format", "-f", help="Output format."),
    rules: list[Path] | None = typer.Option(None, "--rules", help=_RULES_OPTION_HELP),
    lang: str | None = typer.Option(None, "--lang", metavar="LANG", help=LANG_HELP),
) -> None:
    """Explain one rule: what it checks, why, an example, message, RFC, parameters."""
    from pcapcheck.catalog.rules import CatalogError

    use_language(lang)
    catalog = _catalog(rules)
    try:
        rule = catalog.get(rule_id.strip().upper())
    except CatalogError:
        raise fail(
            _("unknown rule {id} (see pcapcheck rules list)").format(id=repr(rule_id))
        ) from None
    with writing_stdout():
        if fmt is ShowFormat.json:
            typer.echo(json.dumps(rule_dict(rule), indent=2))
        else:
            typer.echo(render_rule(rule), nl=False)


@rules_app.command("check")
def check_rules(
    directory: Path = typer.Argument(
        ..., metavar="DIR", help="A rule directory (or one rule file)."
    ),
    lang: str | None = typer.Option(None, "--lang", metavar="LANG", help=LANG_HELP),
) -> None:
    """Validate a rule directory against the schema: exit 0, or 2 with the error."""
    from pcapcheck.catalog.rules import CatalogError, load_catalog

    use_language(lang)
    try:
        catalog = load_catalog([directory])
    except CatalogError as exc:
        raise fail(str(exc)) from None
    where = directory.resolve()
    mine = [r for r in catalog if r.source.resolve() == where or r.source.resolve().parent == where]
    if not mine:
        raise fail(
            _("{directory}: no rule files found (*.yaml, *.yml)").format(directory=directory)
        )
    with writing_stdout():
        typer.echo(
            ngettext("{directory}: {n} rule OK", "{directory}: {n} rules OK", len(mine)).format(
                directory=directory, n=len(mine)
            )
        )


def samples_dir(rule: Any) -> Path:
    """The directory a rule's sample paths are relative to: ``sample_pcaps`` beside the
    directory holding the rule file."""
    return rule.source.resolve().parent.parent / "sample_pcaps"


@rules_app.command("test")
def test_rules(
    rules: list[Path] | None = typer.Option(
        None,
        "--rules",
        help="Rule directory to test (repeatable); its rules are "
        "tested instead of the shipped ones.",
    ),
    lang: str | None = typer.Option(None, "--lang", metavar="LANG", help=LANG_HELP),
) -> None:
    """Run every rule on its trigger captures (must fire) and clean ones (must not)."""
    use_language(lang)
    from pcapcheck.capture.reader import CaptureError
    from pcapcheck.pipeline import analyze_file

    catalog = _catalog(rules)
    if rules:
        wanted = {p.resolve() for p in rules}
        tested = [
            r
            for r in catalog
            if r.source.resolve() in wanted or r.source.resolve().parent in wanted
        ]
        if not tested:
            raise fail(
                _("no rule files found in {paths}").format(paths=", ".join(str(p) for p in rules))
            )
    else:
        tested = list(catalog)

    cache: dict[tuple[Path, bool], Any] = {}

    def fires(rule: Any, sample: str) -> bool:
        path = samples_dir(rule) / sample
        verify = rule.id == "CP004"  # checksums are verified only when CP004 is active
        key = (path, verify)
        if key not in cache:
            try:
                cache[key] = analyze_file(path, catalog, {"CP004"} if verify else set())
            except CaptureError as exc:
                cache[key] = exc
        result = cache[key]
        if isinstance(result, Exception):
            raise result
        return any(catalog.to_finding(ev, {rule.id}) is not None for ev in result.events)

    with writing_stdout():
        failed = _test_each(tested, fires)
    raise typer.Exit(1 if failed else 0)


def _test_each(tested: list[Any], fires: Any) -> int:
    """``rules test``'s PASS/FAIL line per rule and the total line; the number failed."""
    from pcapcheck.capture.reader import CaptureError

    failed = 0
    for rule in tested:
        problems: list[str] = []
        triggers = rule.samples.get("trigger") or []
        cleans = rule.samples.get("clean") or []
        if not triggers:
            problems.append(_("no trigger capture listed"))
        for kind, samples, expected in (("trigger", triggers, True), ("clean", cleans, False)):
            for sample in samples:
                try:
                    if fires(rule, sample) != expected:
                        problem = (
                            _("did not fire on trigger {sample}")
                            if expected
                            else _("fired on clean {sample}")
                        )
                        problems.append(problem.format(sample=sample))
                except CaptureError as exc:
                    problems.append(f"{kind} {sample}: {exc}")
        if problems:
            failed += 1
            typer.echo(f"FAIL {rule.id} {rule.name}: {'; '.join(problems)}")
        else:
            typer.echo(
                _("PASS {id} {name} ({triggers} trigger, {cleans} clean)").format(
                    id=rule.id, name=rule.name, triggers=len(triggers), cleans=len(cleans)
                )
            )
    typer.echo(
        ngettext(
            "{n} rule: {passed} passed, {failed} failed",
            "{n} rules: {passed} passed, {failed} failed",
            len(tested),
        ).format(n=len(tested), passed=len(tested) - failed, failed=failed)
    )
    return failed
