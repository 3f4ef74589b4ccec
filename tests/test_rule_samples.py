"""Every rule is proven by a capture: each rule's listed trigger captures make it fire
(with the rule selected, so default-off rules count too), and its clean captures don't."""

from __future__ import annotations

import pytest
import yaml
from conftest import SAMPLES

from pcapcheck.catalog.rules import load_catalog

CATALOG = load_catalog()
RULES = sorted(CATALOG.rules)


def _manifest_frames(sample: str, rule: str) -> set:
    kind, name = sample.split("/", 1)
    path = SAMPLES / kind / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    entry = data.get(name) or data.get(name.rsplit(".", 1)[0]) or {}
    items = (entry.get("findings") or entry.get("expected_findings") or []) + (
        entry.get("findings_when_enabled") or []
    )
    return {(f.get("connection"), f.get("frame")) for f in items if f["rule"] == rule}


@pytest.mark.parametrize("rule", RULES)
def test_trigger_captures_fire_the_rule_at_the_manifest_frame(analyze, rule):
    triggers = CATALOG.get(rule).samples.get("trigger") or []
    assert triggers, f"{rule} has no trigger capture"
    for sample in triggers:
        result = analyze(sample, select=[rule])
        got = {(f.connection, f.frame) for f in result.findings if f.rule == rule}
        assert got, f"{rule} did not fire on {sample}"
        assert got == _manifest_frames(sample, rule), sample


@pytest.mark.parametrize("rule", RULES)
def test_clean_captures_do_not_fire_the_rule(analyze, rule):
    cleans = CATALOG.get(rule).samples.get("clean") or []
    assert cleans, f"{rule} has no clean capture"
    for sample in cleans:
        result = analyze(sample, select=[rule])
        assert [f for f in result.findings if f.rule == rule] == [], sample
