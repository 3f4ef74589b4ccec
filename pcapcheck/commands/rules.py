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
``analyze`` does.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from pcapcheck.commands.common import app, fail, writing_stdout

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
    ``enabled`` as a bool and ``default`` as ``"on"``/``"off"``; ``source`` a string)."""
    return {
        "id": rule.id,
        "name": rule.name,
        "severity": rule.severity,
        "enabled": rule.enabled,
        "default": "on" if rule.enabled else "off",
        "summary": rule.summary,
        "message": rule.message,
        "rfc": rule.rfc,
        "explanation": rule.explanation,
        "equivalents": dict(rule.equivalents),
        "params": {name: dict(spec) for name, spec in rule.params.items()},
        "samples": {kind: list(paths) for kind, paths in rule.samples.items()},
        "source": str(rule.source),
    }


@rules_app.command("list")
def list_rules(
    fmt: ListFormat = typer.Option(ListFormat.table, "--format", "-f", help="Output format."),
    rules: list[Path] | None = typer.Option(None, "--rules", help=_RULES_OPTION_HELP),
) -> None:
    """List the rules: ID, name, severity, default on/off, summary."""
    catalog = _catalog(rules)
    if fmt is ListFormat.json:
        rows = [
            {
                "id": r.id,
                "name": r.name,
                "severity": r.severity,
                "default": "on" if r.enabled else "off",
                "summary": r.summary,
            }
            for r in catalog
        ]
        with writing_stdout():
            typer.echo(json.dumps(rows, indent=2))
        return
    from tabulate import tabulate

    table = [[r.id, r.name, r.severity, "on" if r.enabled else "off", r.summary] for r in catalog]
    with writing_stdout():
        typer.echo(
            tabulate(
                table, headers=["id", "name", "severity", "default", "summary"], tablefmt="simple"
            )
        )


def render_rule(rule: Any) -> str:
    """The ``rules show`` text of a rule (Markdown, like ``ruff rule``)."""
    lines = [
        f"# {rule.name} ({rule.id})",
        "",
        rule.summary,
        "",
        f"Severity: {rule.severity}. Default: {'on' if rule.enabled else 'off'}"
        f"{'' if rule.enabled else f' (select it with --select {rule.id})'}.",
        f"Standard: {rule.rfc}.",
        "",
        "Message template:",
        "",
        "```text",
        rule.message,
        "```",
        "",
        rule.explanation.rstrip(),
        "",
    ]
    if rule.equivalents:
        lines += ["## Equivalents", ""]
        names = {"wireshark": "Wireshark", "zeek": "Zeek", "suricata": "Suricata"}
        lines += [f"- {names.get(tool, tool)}: {text}" for tool, text in rule.equivalents.items()]
        lines.append("")
    lines += ["## Parameters", ""]
    if rule.params:
        for name, spec in rule.params.items():
            bounds = "".join(
                f", {sign} {spec[key]}"
                for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
                if key in spec
            )
            text = f"- `{name}` ({spec['type']}{bounds}, default {spec['default']!r})"
            lines.append(f"{text}: {spec['description']}" if spec.get("description") else text)
        lines += [
            "",
            f"Set them in pcapcheck.toml: `[rules.{rule.id}]` then "
            f"`{next(iter(rule.params))} = ...`.",
            "",
        ]
    else:
        lines += ["None.", ""]
    if rule.samples:
        lines += ["## Sample captures", ""]
        for kind in ("trigger", "clean"):
            for sample in rule.samples.get(kind) or []:
                lines.append(f"- {kind}: {sample}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


@rules_app.command("show")
def show_rule(
    rule_id: str = typer.Argument(..., metavar="ID", help="The rule ID (HS003)."),
    fmt: ShowFormat = typer.Option(ShowFormat.text, "--format", "-f", help="Output format."),
    rules: list[Path] | None = typer.Option(None, "--rules", help=_RULES_OPTION_HELP),
) -> None:
    """Explain one rule: what it checks, why, an example, message, RFC, parameters."""
    from pcapcheck.catalog.rules import CatalogError

    catalog = _catalog(rules)
    try:
        rule = catalog.get(rule_id.strip().upper())
    except CatalogError:
        raise fail(f"unknown rule {rule_id!r} (see pcapcheck rules list)") from None
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
) -> None:
    """Validate a rule directory against the schema: exit 0, or 2 with the error."""
    from pcapcheck.catalog.rules import CatalogError, load_catalog

    try:
        catalog = load_catalog([directory])
    except CatalogError as exc:
        raise fail(str(exc)) from None
    where = directory.resolve()
    mine = [r for r in catalog if r.source.resolve() == where or r.source.resolve().parent == where]
    if not mine:
        raise fail(f"{directory}: no rule files found (*.yaml, *.yml)")
    with writing_stdout():
        typer.echo(f"{directory}: {len(mine)} rule{'s' if len(mine) != 1 else ''} OK")


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
) -> None:
    """Run every rule on its trigger captures (must fire) and clean ones (must not)."""
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
            raise fail(f"no rule files found in {', '.join(str(p) for p in rules)}")
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
            problems.append("no trigger capture listed")
        for kind, samples, expected in (("trigger", triggers, True), ("clean", cleans, False)):
            for sample in samples:
                try:
                    if fires(rule, sample) != expected:
                        problems.append(
                            f"{'did not fire' if expected else 'fired'} on {kind} {sample}"
                        )
                except CaptureError as exc:
                    problems.append(f"{kind} {sample}: {exc}")
        if problems:
            failed += 1
            typer.echo(f"FAIL {rule.id} {rule.name}: {'; '.join(problems)}")
        else:
            typer.echo(f"PASS {rule.id} {rule.name} ({len(triggers)} trigger, {len(cleans)} clean)")
    typer.echo(
        f"{len(tested)} rule{'s' if len(tested) != 1 else ''}: "
        f"{len(tested) - failed} passed, {failed} failed"
    )
    return failed
