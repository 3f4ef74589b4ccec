"""Every sample capture against its manifest: the independent oracle written from the
packets (sample_pcaps/*/manifest.yaml), not from pcapcheck's output.

Asserts the exact findings (rule, connection, frame), the handshake and close verdicts,
both endpoints' final RFC 9293 states and, where the manifest lists them, every state
transition with its frame. Capture-artefact samples (``artefact_*``) must, in addition,
never be blamed on the endpoints. A manifest entry's ``xfail`` (test -> engine problem)
marks those of its tests that the engine is known to fail (strict: remove the entry
once the engine is fixed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import SAMPLES, triples

SEVERE = ("error", "warning")


def _load(kind: str) -> list[tuple[str, dict]]:
    path = SAMPLES / kind / "manifest.yaml"
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text())
    cases = []
    for name, entry in data.items():
        file = name if name.endswith((".pcap", ".pcapng", ".gz")) else f"{name}.pcap"
        cases.append((f"{kind}/{file}", entry))
    return cases


CASES = _load("loopback") + _load("crafted") + _load("artefacts")


def _params(cases: list[tuple[str, dict]], test: str) -> list:
    """pytest params, with the manifest's known engine problem for ``test`` as a strict
    xfail."""
    out = []
    for name, entry in cases:
        reason = (entry.get("xfail") or {}).get(test)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(name, entry, id=name, marks=marks))
    return out


def _expected_findings(entry: dict) -> list[tuple]:
    items = entry.get("expected_findings", entry.get("findings")) or []
    return sorted((f["rule"], f.get("connection"), f.get("frame")) for f in items)


@pytest.mark.parametrize("name,entry", _params(CASES, "findings"))
def test_findings_match_manifest(analyze, name, entry):
    result = analyze(name)
    assert triples(result) == _expected_findings(entry)


@pytest.mark.parametrize("name,entry", _params(CASES, "connections"))
def test_connections_match_manifest(analyze, name, entry):
    result = analyze(name)
    if "packets" in entry:
        assert result.packets == entry["packets"]
    expected = entry.get("connections") or []
    assert len(result.connections) == len(expected)
    for got, exp in zip(result.connections, expected):
        assert got["id"] == exp["id"]
        for key in ("client", "server", "handshake", "close", "roles_inferred"):
            if key in exp:
                assert got[key] == exp[key], (key, got[key], exp[key])
        for role in ("client", "server"):
            if f"{role}_final_state" in exp:
                assert got[f"{role}_state"] == exp[f"{role}_final_state"], role
            trans = exp.get(f"{role}_transitions")
            if trans is None and len(expected) == 1:
                trans = (entry.get("transitions") or {}).get(role)
            if trans is not None:
                assert [[t["frame"], t["from"], t["to"]] for t in got["transitions"][role]] == [
                    list(t) for t in trans
                ], role


CLEAN_NAMES = (
    "clean_",
    "client_close_first",
    "server_close_first",
    "half_close",
    "bulk_transfer",
    "ipv6",
)
CLEAN = [c for c in CASES if Path(c[0]).name.startswith(CLEAN_NAMES)]


@pytest.mark.parametrize("name,entry", CLEAN, ids=[c[0] for c in CLEAN])
def test_clean_captures_have_nothing_above_info(analyze, name, entry):
    result = analyze(name)
    assert [f for f in result.findings if f.severity in SEVERE] == []


ENDPOINT_RULES = ("HS", "CL", "RS", "SQ", "FL")
ARTEFACTS = [c for c in CASES if Path(c[0]).name.startswith("artefact_")]


@pytest.mark.parametrize("name,entry", _params(ARTEFACTS, "endpoints"))
def test_artefacts_are_not_blamed_on_the_endpoints(analyze, name, entry):
    """A capture artefact is reported by CP rules only: no endpoint rule above info."""
    result = analyze(name)
    blamed = [
        (f.rule, f.frame, f.message)
        for f in result.findings
        if f.rule.startswith(ENDPOINT_RULES) and f.severity in SEVERE
    ]
    assert blamed == []
