"""The rule catalogue: rule files, schema errors, overrides, selection, parameters,
message templates, the README table, and what the explanations teach."""

from __future__ import annotations

import json
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pcapcheck
import pcapcheck.catalog.rules as catalog_module
from pcapcheck.catalog.rules import (
    README_END,
    README_START,
    CatalogError,
    default_rules_dir,
    format_message,
    load_catalog,
    load_rule_file,
)
from pcapcheck.model import COMMON_EVENT_FIELDS, EVENT_FIELDS, Event, Finding

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "rules"

#: The public interface: ids, names and severities never change.
EXPECTED = {
    "HS001": ("syn-unanswered", "warning"),
    "HS002": ("synack-bad-ack", "error"),
    "HS003": ("handshake-ack-missing", "error"),
    "HS004": ("handshake-ack-bad", "error"),
    "HS005": ("syn-retransmitted", "info"),
    "HS006": ("synack-retransmitted", "info"),
    "HS007": ("data-before-established", "error"),
    "HS008": ("synack-without-syn", "info"),
    "HS009": ("syn-isn-changed", "warning"),
    "HS010": ("simultaneous-open", "info"),
    "HS011": ("connection-refused", "warning"),
    "HS012": ("syn-with-data", "info"),
    "HS013": ("fin-before-established", "error"),
    "CL001": ("fin-unacked", "error"),
    "CL002": ("fin-ack-bad", "error"),
    "CL003": ("close-incomplete", "warning"),
    "CL004": ("last-ack-missing", "error"),
    "CL005": ("data-after-fin", "error"),
    "CL006": ("fin-retransmitted", "info"),
    "CL007": ("simultaneous-close", "info"),
    "CL008": ("open-at-end", "info"),
    "CL009": ("segment-after-close", "warning"),
    "CL010": ("time-wait-reuse", "info"),
    "RS001": ("reset-established", "warning"),
    "RS002": ("reset-during-close", "warning"),
    "RS003": ("reset-out-of-window", "error"),
    "RS004": ("reset-in-handshake", "warning"),
    "RS005": ("reset-unacceptable-ack", "error"),
    "SQ001": ("ack-unsent-data", "error"),
    "SQ002": ("retransmission", "info"),
    "SQ003": ("data-unacked", "warning"),
    "SQ004": ("ack-flag-missing", "error"),
    "SQ005": ("zero-window", "info"),
    "SQ006": ("out-of-order", "info"),
    "FL001": ("invalid-flags", "error"),
    "CP001": ("midstream", "info"),
    "CP002": ("capture-loss", "warning"),
    "CP003": ("truncated-packets", "info"),
    "CP004": ("bad-checksum", "info"),
    "CP005": ("malformed-packet", "warning"),
    "CP006": ("capture-truncated", "warning"),
    "CP007": ("one-sided", "info"),
    "CP008": ("capture-duplicates", "info"),
    "CP009": ("capture-reordered", "info"),
}
ALL_IDS = set(EXPECTED)
DISABLED = {"CP004"}
HEADINGS = ("## What it does", "## Why is this bad?", "## Example")


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def ids(prefix: str) -> set[str]:
    return {rule_id for rule_id in ALL_IDS if rule_id.startswith(prefix)}


def valid_rule(rule_id: str = "HS002") -> dict:
    """A valid rule declaration (a copy of the shipped file) to break in the tests."""
    return yaml.safe_load((RULES_DIR / f"{rule_id}.yaml").read_text(encoding="utf-8"))


def write_rule(directory: Path, data: dict, name: str | None = None) -> Path:
    path = directory / (name or f"{data['id']}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the files


def test_default_rules_dir_is_the_repository_rules():
    installed = Path(pcapcheck.__file__).resolve().parent / "_data" / "rules"
    expected = installed if installed.is_dir() else RULES_DIR
    assert default_rules_dir() == expected


def test_one_file_per_rule():
    assert sorted(p.stem for p in RULES_DIR.glob("*.yaml")) == sorted(ALL_IDS)
    assert not list(RULES_DIR.glob("*.yml"))


@pytest.mark.parametrize("rule_id", sorted(ALL_IDS))
def test_every_file_loads_and_validates(rule_id):
    rule = load_rule_file(RULES_DIR / f"{rule_id}.yaml")
    assert rule.id == rule_id
    assert rule.source == RULES_DIR / f"{rule_id}.yaml"


def test_ids_names_and_severities_are_the_public_interface(cat):
    assert {r.id: (r.name, r.severity) for r in cat} == EXPECTED
    assert list(cat.rules) == sorted(EXPECTED)


def test_every_rule_the_engine_can_emit_has_a_file(cat):
    assert set(cat.rules) == set(EVENT_FIELDS)


def test_only_bad_checksum_is_off_by_default(cat):
    assert {r.id for r in cat if not r.enabled} == DISABLED


@pytest.mark.parametrize("rule_id", sorted(ALL_IDS))
def test_template_uses_only_the_fields_its_events_carry(cat, rule_id):
    allowed = set(COMMON_EVENT_FIELDS) | set(EVENT_FIELDS[rule_id])
    used = set()
    for _literal, name, spec, _conv in string.Formatter().parse(cat.get(rule_id).message):
        if name is not None:
            assert name and not name.isdigit(), f"{rule_id}: positional field"
            used.add(re.match(r"[^.\[]*", name).group(0))
            assert "{" not in (spec or ""), f"{rule_id}: nested field in a format spec"
    assert used <= allowed, f"{rule_id}: {sorted(used - allowed)} not in the event contract"


@pytest.mark.parametrize("rule_id", sorted(ALL_IDS))
def test_template_fills_completely_from_a_full_event(cat, rule_id):
    data = {key: 7 for key in (*COMMON_EVENT_FIELDS, *EVENT_FIELDS[rule_id])}
    message = format_message(cat.get(rule_id).message, data)
    assert "?" not in message and "{" not in message, message


@pytest.mark.parametrize("rule_id", sorted(ALL_IDS))
def test_explanation_has_the_ruff_sections_and_an_rfc(cat, rule_id):
    rule = cat.get(rule_id)
    text = rule.explanation
    positions = [text.find(heading + "\n") for heading in HEADINGS]
    assert all(pos >= 0 for pos in positions), f"{rule_id}: missing a heading"
    assert positions == sorted(positions), f"{rule_id}: headings out of order"
    for heading, nxt in zip(HEADINGS, [*HEADINGS[1:], None]):
        body = text.split(heading, 1)[1]
        body = body.split(nxt, 1)[0] if nxt else body
        assert body.strip(), f"{rule_id}: empty section {heading!r}"
    assert text.count("```") % 2 == 0, f"{rule_id}: unclosed code block"
    assert re.search(r"RFC \d+", rule.rfc)
    assert "RFC" in text
    assert rule.summary and "\n" not in rule.summary


@pytest.mark.parametrize("rule_id", sorted(ALL_IDS))
def test_samples_follow_the_naming_convention(cat, rule_id):
    rule = cat.get(rule_id)
    stem = f"crafted/{rule_id.lower()}_{rule.name}"
    assert rule.samples["trigger"][0] == f"{stem}.pcap"
    assert all(p.startswith(stem) for p in rule.samples["trigger"])
    assert rule.samples["clean"][0] == "crafted/clean_handshake_close.pcap"
    assert all(p.startswith("crafted/clean_") for p in rule.samples["clean"])
    assert not set(rule.samples["trigger"]) & set(rule.samples["clean"])


def test_listed_samples_exist(cat):
    samples = ROOT / "sample_pcaps"
    missing = sorted(
        f"{rule.id}: {path}"
        for rule in cat
        for paths in rule.samples.values()
        for path in paths
        if not (samples / path).is_file()
    )
    assert missing == []


def test_equivalents_name_only_known_tools(cat):
    for rule in cat:
        assert set(rule.equivalents) <= {"wireshark", "zeek", "suricata"}, rule.id
        assert all(value.strip() for value in rule.equivalents.values()), rule.id


# --------------------------------------------------------------------------- README


def test_readme_table_is_generated_from_the_rules(cat):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Rule catalogue" in text
    start, end = text.index(README_START), text.index(README_END)
    assert start < end
    table = text[start + len(README_START) : end]
    assert table.strip() == cat.catalogue_markdown().strip(), (
        "README.md is out of date: python -m pcapcheck.catalog.rules --update-readme README.md"
    )


def test_catalogue_markdown_shape(cat):
    lines = cat.catalogue_markdown().splitlines()
    assert lines[0] == "| id | name | severity | default | summary |"
    assert len(lines) == 2 + len(ALL_IDS)
    assert any(line.startswith("| CP004 | bad-checksum | info | off |") for line in lines)
    assert any(line.startswith("| HS002 | synack-bad-ack | error | on |") for line in lines)


def test_module_prints_the_table(cat):
    out = subprocess.run(
        [sys.executable, "-m", "pcapcheck.catalog.rules", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == cat.catalogue_markdown()


# --------------------------------------------------------------------------- bad files


def _error_for(tmp_path: Path, data, name: str = "HS002.yaml", raw: str | None = None) -> str:
    path = tmp_path / name
    if raw is not None:
        path.write_text(raw, encoding="utf-8")
    else:
        write_rule(tmp_path, data, name)
    with pytest.raises(CatalogError) as info:
        load_catalog([tmp_path])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path) + ": ") or message.startswith(name), message
    return message


def test_wrong_severity_names_file_and_field(tmp_path):
    data = valid_rule()
    data["severity"] = "fatal"
    message = _error_for(tmp_path, data)
    assert message.endswith(
        "HS002.yaml: severity: 'fatal' is not one of 'error', 'warning', 'info'"
    )


def test_missing_message_names_file_and_field(tmp_path):
    data = valid_rule()
    del data["message"]
    assert _error_for(tmp_path, data).endswith("HS002.yaml: message: required field is missing")


def test_unknown_key_names_file_and_field(tmp_path):
    data = valid_rule()
    data["colour"] = "red"
    message = _error_for(tmp_path, data)
    assert "HS002.yaml: colour: unknown field (allowed: " in message


def test_unknown_key_in_a_param(tmp_path):
    data = valid_rule("CL010")
    data["params"]["msl"]["unit"] = "s"
    message = _error_for(tmp_path, data, "CL010.yaml")
    assert "CL010.yaml: params.msl.unit: unknown field" in message


def test_bad_yaml_names_file_and_line(tmp_path):
    raw = "id: HS002\nname: synack-bad-ack\nseverity: [error\n"
    message = _error_for(tmp_path, None, raw=raw)
    assert re.search(r"HS002\.yaml: not valid YAML \(line \d+: .+\)$", message), message


def test_yaml_that_is_not_a_mapping(tmp_path):
    message = _error_for(tmp_path, None, raw="- just\n- a list\n")
    assert "HS002.yaml: expected a mapping of rule fields" in message


def test_id_must_match_file_name(tmp_path):
    data = valid_rule("HS003")
    message = _error_for(tmp_path, data, "HS002.yaml")
    assert message.endswith(
        "HS002.yaml: id: 'HS003' does not match the file name (expected 'HS002')"
    )


def test_param_default_of_the_wrong_type(tmp_path):
    data = valid_rule("CL010")
    data["params"]["msl"]["default"] = "soon"
    message = _error_for(tmp_path, data, "CL010.yaml")
    assert message.endswith("CL010.yaml: params.msl.default: 'soon' is not of type 'number'")


def test_boolean_is_not_a_number_default(tmp_path):
    data = valid_rule("SQ006")
    data["params"]["reorder_window"]["default"] = True
    message = _error_for(tmp_path, data, "SQ006.yaml")
    assert "params.reorder_window.default: True is not of type 'number'" in message


def test_bad_id_pattern_and_name(tmp_path):
    data = valid_rule()
    data["name"] = "SynAck_Bad"
    assert "HS002.yaml: name: 'SynAck_Bad' does not match" in _error_for(tmp_path, data)


def test_template_field_outside_the_event_contract(tmp_path):
    data = valid_rule()
    data["message"] = "SYN-ACK acknowledges {ack}, expected {bogus}"
    message = _error_for(tmp_path, data)
    assert "HS002.yaml: message: unknown field 'bogus' (allowed for HS002: " in message


def test_malformed_template(tmp_path):
    data = valid_rule()
    data["message"] = "SYN-ACK acknowledges {ack"
    assert "HS002.yaml: message: not a valid template" in _error_for(tmp_path, data)


def test_duplicate_id_in_one_directory(tmp_path):
    write_rule(tmp_path, valid_rule(), "HS002.yaml")
    write_rule(tmp_path, valid_rule(), "HS002.yml")
    with pytest.raises(
        CatalogError, match=r"HS002\.yml: id: 'HS002' is already defined in .*HS002\.yaml"
    ):
        load_catalog([tmp_path])


def test_missing_rules_directory(tmp_path):
    with pytest.raises(CatalogError, match="no such rules directory"):
        load_catalog([tmp_path / "nope"])


# --------------------------------------------------------------------------- overrides


def test_rules_directory_replaces_a_rule_wholly(tmp_path, cat):
    data = valid_rule()
    data["severity"] = "warning"
    data["message"] = "bad SYN-ACK ack {ack}"
    del data["equivalents"]
    data.pop("translations", None)  # its Korean message keeps the shipped placeholders
    path = write_rule(tmp_path, data)
    over = load_catalog([tmp_path])
    rule = over.get("HS002")
    assert (rule.severity, rule.message, rule.equivalents, rule.source) == (
        "warning",
        "bad SYN-ACK ack {ack}",
        {},
        path,
    )
    assert rule.name == "synack-bad-ack"
    assert over.get("HS001") == cat.get("HS001")
    assert len(over) == len(cat)
    finding = over.to_finding(Event("HS002", 1, 2, {"ack": 5}), {"HS002"})
    assert (finding.severity, finding.message) == ("warning", "bad SYN-ACK ack 5")


def test_rules_directory_adds_a_rule(tmp_path, cat):
    data = valid_rule("CL008")
    data.update(id="XY001", name="custom-rule", message="{client} talks to {server}")
    data.pop("translations", None)  # its Korean message keeps CL008's placeholders
    write_rule(tmp_path, data)
    over = load_catalog([tmp_path])
    assert set(over.rules) == ALL_IDS | {"XY001"}
    assert "XY001" in over.select(["XY"])


def test_later_directories_win(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    for directory, severity in ((first, "warning"), (second, "info")):
        data = valid_rule()
        data["severity"] = severity
        write_rule(directory, data)
    assert load_catalog([first, second]).get("HS002").severity == "info"


# --------------------------------------------------------------------------- selection


def test_default_selection_is_the_enabled_rules(cat):
    assert cat.select() == ALL_IDS - DISABLED
    assert cat.select(None, None) == ALL_IDS - DISABLED


@pytest.mark.parametrize(
    "selectors, expected",
    [
        (["HS"], ids("HS")),
        (["HS0"], ids("HS")),
        (["HS01"], {"HS010", "HS011", "HS012", "HS013"}),
        (["CL00"], ids("CL") - {"CL010"}),
        (["CL010"], {"CL010"}),
        (["hs001", "Rs"], {"HS001"} | ids("RS")),
        (["SQ", "FL001"], ids("SQ") | {"FL001"}),
        ([], set()),
    ],
)
def test_select_prefixes(cat, selectors, expected):
    assert cat.select(selectors) == expected


def test_all_selects_every_rule_including_default_off_ones(cat):
    assert cat.select(["ALL"]) == ALL_IDS
    assert cat.select(["all"]) == ALL_IDS


def test_default_off_rule_needs_its_full_id(cat):
    assert "CP004" not in cat.select()
    assert cat.select(["CP"]) == ids("CP") - {"CP004"}
    assert cat.select(["CP00"]) == ids("CP") - {"CP004"}
    assert cat.select(["CP004"]) == {"CP004"}
    assert cat.select(["CP", "CP004"]) == ids("CP")


def test_ignore_removes_from_the_default_or_the_selection(cat):
    assert cat.select(None, ["CP00"]) == ALL_IDS - ids("CP")
    assert cat.select(None, ["HS", "CL010"]) == ALL_IDS - DISABLED - ids("HS") - {"CL010"}
    assert cat.select(["ALL"], ["CP004"]) == ALL_IDS - {"CP004"}


def test_the_more_specific_selector_wins(cat):
    assert cat.select(["CL"], ["CL010"]) == ids("CL") - {"CL010"}
    assert cat.select(["CL010"], ["CL"]) == {"CL010"}
    assert cat.select(["HS01"], ["HS"]) == {"HS010", "HS011", "HS012", "HS013"}
    assert cat.select(["CP004"], ["ALL"]) == {"CP004"}


def test_ignore_wins_a_tie(cat):
    assert cat.select(["HS"], ["HS"]) == set()
    assert cat.select(["HS001"], ["HS001"]) == set()


@pytest.mark.parametrize(
    "select, ignore", [(["XY9"], None), (None, ["XY9"]), (["HS", "XY9"], None)]
)
def test_unknown_selector(cat, select, ignore):
    with pytest.raises(CatalogError) as info:
        cat.select(select, ignore)
    assert str(info.value) == "unknown rule selector 'XY9'"


def test_empty_selector_is_unknown(cat):
    with pytest.raises(CatalogError, match="unknown rule selector ''"):
        cat.select([""])


# --------------------------------------------------------------------------- parameters


def test_parameter_defaults(cat):
    assert cat.params("CL010") == {"msl": 120}
    assert cat.params("SQ006") == {"reorder_window": 0.003}
    assert cat.params("CP008") == {"max_interval": 0.0005}
    assert cat.params("HS001") == {}
    assert cat.get("CL010").params["msl"]["type"] == "number"


def test_parameter_overrides_are_merged_and_type_checked(cat):
    assert cat.params("CL010", {"msl": 30}) == {"msl": 30}
    assert cat.params("CL010", {"msl": "30"}) == {"msl": 30.0}
    assert cat.params("SQ006", {"reorder_window": 0.01}) == {"reorder_window": 0.01}
    assert cat.params("CL010", None) == {"msl": 120}
    with pytest.raises(CatalogError, match=r"CL010: params\.msl: expected number, got 'soon'"):
        cat.params("CL010", {"msl": "soon"})
    with pytest.raises(CatalogError, match=r"CL010: params\.msl: expected number, got True"):
        cat.params("CL010", {"msl": True})
    with pytest.raises(CatalogError, match=r"CL010: unknown parameter 'mls' \(known: msl\)"):
        cat.params("CL010", {"mls": 30})
    with pytest.raises(CatalogError, match=r"unknown rule 'XY001'"):
        cat.params("XY001")


# --------------------------------------------------------------------------- messages


def test_safe_formatter():
    assert format_message("{a} and {b}", {"a": 1}) == "1 and ?"
    assert format_message("{a}", {"a": None}) == "-"
    assert format_message("{a}/{b}", {"a": True, "b": False}) == "yes/no"
    assert format_message("{a:.3f}", {"a": 0.25}) == "0.250"
    assert format_message("{a:.3f}", {"a": "n/a"}) == "n/a"
    assert format_message("{a:.3f}", {}) == "?"
    assert format_message("{a.b} {a[0]}", {}) == "? ?"
    assert format_message("{a[3]}", {"a": 5}) == "?"
    assert format_message("{0} and {}", {}) == "{0} and {}"  # mixed numbering: unchanged
    assert format_message("{0}", {}) == format_message("{}", {}) == "?"
    assert format_message("{a!r}", {"a": "x"}) == "'x'"
    assert format_message("{a", {"a": 1}) == "{a"
    assert format_message("{a}", None) == "?"


def test_plain_templates_take_format_map_with_the_same_text():
    """A template whose fields are all plain ``{name}``, each with a value neither None
    nor a bool, is filled by ``str.format_map`` (catalog._plain_fields): for every
    shipped rule's message and values of every kind, the text is the formatter's."""
    import random

    def reference(template, data):
        try:
            return catalog_module._FORMATTER.vformat(template, (), dict(data or {}))
        except Exception:
            return template

    cat = load_catalog()
    rng = random.Random(5)
    kinds = [0, 7, -3, 2**40, 0.5, 1e-07, "text", "{braces}", None, True, False, ("a", 1), b"raw"]
    taken = 0
    for rule in cat:
        names = catalog_module._plain_fields(rule.message)
        every = names or [f[1] for f in string.Formatter().parse(rule.message) if f[1]]
        for _ in range(12):
            data = {}
            for name in every:
                pick = rng.randrange(len(kinds) + 1)
                if pick < len(kinds):
                    data[name] = kinds[pick]
            taken += names is not None and all(
                data.get(n) is not None and data.get(n).__class__ is not bool for n in names
            )
            assert format_message(rule.message, data) == reference(rule.message, data), (
                rule.id,
                data,
            )
    assert taken > 20
    assert catalog_module._plain_fields("{a} {{b}} {c}") == ("a", "c")
    assert catalog_module._plain_fields("{a:.3f}") is None
    assert catalog_module._plain_fields("{a!r} {b.c} {d[0]} {0} {}") is None
    assert catalog_module._plain_fields("{a") is None
    assert format_message("{a} {{b}} {c}", {"a": 1, "c": "x"}) == "1 {b} x"


def test_to_finding_fills_the_template(cat):
    data = {
        "ack": 5,
        "expected": 1,
        "ack_abs": 1005,
        "expected_abs": 1001,
        "syn_data_len": 0,
        "client": "10.0.0.1:40000",
        "server": "10.0.0.2:80",
    }
    event = Event("HS002", 1, 2, data)
    finding = cat.to_finding(event, cat.select())
    assert isinstance(finding, Finding)
    assert (finding.rule, finding.name, finding.severity, finding.connection, finding.frame) == (
        "HS002",
        "synack-bad-ack",
        "error",
        1,
        2,
    )
    assert finding.message.startswith("SYN-ACK acknowledges 5, expected client ISN+1 = 1 ")
    assert "1005" in finding.message and "1001" in finding.message
    assert finding.data == data and finding.data is not data


def test_to_finding_with_missing_and_odd_values_never_raises(cat):
    finding = cat.to_finding(Event("HS012", 1, 1, {"payload_len": None}), {"HS012"})
    assert finding.message == "the SYN carries - bytes of data (TCP Fast Open): ?"
    cl003 = cat.to_finding(
        Event(
            "CL003",
            1,
            9,
            {
                "closer": "client",
                "other": "server",
                "closer_state": "FIN-WAIT-2",
                "other_state": "CLOSE-WAIT",
                "fin_frame": 8,
            },
        ),
        {"CL003"},
    )
    assert cl003.message == (
        "the client's FIN (frame 8) was acknowledged but the server never "
        "sent its own FIN: client left in FIN-WAIT-2, server in CLOSE-WAIT"
    )
    cl008 = cat.to_finding(Event("CL008", 1, 9, {"idle": "long"}), {"CL008"})
    assert "came long s before" in cl008.message
    file_level = cat.to_finding(Event("CP006", None, None, {"detail": "4 bytes left"}), {"CP006"})
    assert file_level.message.endswith(": 4 bytes left")


def test_to_finding_respects_the_active_set_and_overrides(cat):
    event = Event("CP004", None, 3, {"count": 2, "first_frame": 3})
    assert cat.to_finding(event, cat.select()) is None
    assert cat.to_finding(event, cat.select(["CP004"])).severity == "info"
    assert cat.to_finding(event, {"CP004"}, {"CP004": "error"}).severity == "error"
    with pytest.raises(CatalogError, match="CP004: severity: 'fatal' is not one of"):
        cat.to_finding(event, {"CP004"}, {"CP004": "fatal"})
    with pytest.raises(CatalogError, match="unknown rule 'XY001'"):
        cat.to_finding(Event("XY001", 1, 1, {}), {"XY001"})


# --------------------------------------------------------------------------- teaching


def _units(text: str) -> list[str]:
    """The sentences of the prose and the lines of the code blocks (ladders), with the
    SYN-ACK spellings made uniform."""
    text = re.sub(r"SYN[,+/ ]ACK", "SYN-ACK", text)
    units: list[str] = []
    for i, part in enumerate(text.split("```")):
        if i % 2:  # inside a code block: every ladder line stands alone
            units.extend(line for line in part.splitlines() if line.strip())
        else:
            for paragraph in re.split(r"\n\s*\n", part):
                prose = " ".join(paragraph.split())
                units.extend(u for u in re.split(r"(?<=[.!?])\s+", prose) if u)
    return units


def _puts_server_in_syn_sent_after_synack(text: str) -> list[str]:
    """Units that put the server in SYN-SENT around its SYN-ACK: the study notes' mistake
    ("the server enters SYN-SENT after sending its SYN-ACK"; RFC 9293 says SYN-RECEIVED).

    A unit is suspect when it mentions the SYN-ACK and SYN-SENT and the role named last
    before "SYN-SENT" is the server; a correction names SYN-RECEIVED in the same unit."""
    found = []
    for unit in _units(text):
        if "SYN-ACK" not in unit or "SYN-RECEIVED" in unit:
            continue
        for match in re.finditer("SYN-SENT", unit):
            roles = re.findall(r"\b(server|client|side)\b", unit[: match.start()], re.I)
            if roles and roles[-1].lower() == "server":
                found.append(unit)
                break
    return found


def test_the_syn_sent_check_catches_the_mistake():
    assert _puts_server_in_syn_sent_after_synack(
        "After sending its SYN+ACK the server is in SYN-SENT. The client is ESTABLISHED."
    )
    assert _puts_server_in_syn_sent_after_synack(
        "  |<-- SYN,ACK seq=0 ack=1 ----|  server: LISTEN -> SYN-SENT"
    )
    assert not _puts_server_in_syn_sent_after_synack(
        "The server is not in SYN-SENT after its SYN-ACK; it is in SYN-RECEIVED."
    )
    assert not _puts_server_in_syn_sent_after_synack(
        "A client in SYN-SENT that sends data before the SYN-ACK\nconfuses the server."
    )


def test_no_explanation_puts_the_server_in_syn_sent_after_its_synack(cat):
    offenders = {
        r.id: bad
        for r in cat
        if (
            bad := _puts_server_in_syn_sent_after_synack(
                "\n".join((r.summary, r.message, r.explanation))
            )
        )
    }
    assert offenders == {}


def test_explanations_correct_the_study_notes_where_the_mistake_is_close(cat):
    hs003 = cat.get("HS003").explanation
    assert "not in SYN-SENT" in hs003 and "SYN-RECEIVED" in hs003
    assert "not CLOSED after it receives the SYN-ACK" in hs003
    cl003 = cat.get("CL003").explanation
    assert '"TIME_WAIT"' in cl003 and "That state is CLOSE-WAIT" in cl003
    assert "TIME-WAIT belongs to the side that closed first" in cl003
    cl010 = cat.get("CL010")
    assert "240 s" in cl010.explanation and "60 s" in cl010.explanation
    assert "TCP_TIMEWAIT_LEN" in cl010.params["msl"]["description"]
    for rule_id in ("CL001", "SQ004"):
        text = " ".join(cat.get(rule_id).explanation.split())
        assert "includes an ACK" in text and "not a property of FIN" in text, rule_id


# --------------------------------------------------------------------------- the stamp


def test_the_shipped_rules_are_stamped():
    """``rules/.validated`` holds the digest of the shipped rules and the schema: after
    editing a rule or the schema, run ``python scripts/stamp_rules.py``."""
    stamp = (RULES_DIR / catalog_module.STAMP_NAME).read_text(encoding="ascii").strip()
    assert stamp == catalog_module.rules_digest(RULES_DIR), (
        "rules/.validated is stale: run python scripts/stamp_rules.py"
    )
    assert catalog_module.stamped(RULES_DIR)
    # rules/.parsed.json: the same digest, and every shipped file's YAML data as it is
    parsed = json.loads((RULES_DIR / catalog_module.PARSED_NAME).read_text(encoding="utf-8"))
    assert parsed["digest"] == stamp
    files = sorted(RULES_DIR.glob("*.yaml"))
    assert sorted(parsed["rules"]) == [p.name for p in files]
    for path in files:
        assert parsed["rules"][path.name] == yaml.safe_load(path.read_text()), path.name


def test_stamped_shipped_rules_are_built_from_their_parsed_data(tmp_path, monkeypatch):
    """While its digest is the rules', .parsed.json is what the shipped rules are built
    from (the YAML files are not parsed); stale, it is ignored."""
    rules = _shipped_copy(tmp_path, monkeypatch)
    path = rules / catalog_module.PARSED_NAME
    parsed = json.loads(path.read_text(encoding="utf-8"))
    parsed["rules"]["HS002.yaml"]["summary"] = "from the parsed data"
    path.write_text(json.dumps(parsed), encoding="utf-8")
    assert load_catalog().rules["HS002"].summary == "from the parsed data"
    parsed["digest"] = "0" * 64
    path.write_text(json.dumps(parsed), encoding="utf-8")
    yaml_summary = yaml.safe_load((rules / "HS002.yaml").read_text())["summary"]
    assert load_catalog().rules["HS002"].summary == yaml_summary
    path.write_text("not json", encoding="utf-8")
    assert load_catalog().rules["HS002"].summary == yaml_summary
    path.unlink()
    assert load_catalog().rules["HS002"].summary == yaml_summary


def test_stamped_shipped_rules_load_without_jsonschema(tmp_path):
    """The schema check (and jsonschema's 50 ms import) is skipped for the stamped
    shipped rules only: a rule directory given with --rules is checked in full."""
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "HS002.yaml").write_text((RULES_DIR / "HS002.yaml").read_text())
    code = (
        "import sys\nfrom pcapcheck.catalog.rules import load_catalog\n"
        "load_catalog(sys.argv[1:])\n"
        "print('jsonschema' in sys.modules, 'yaml' in sys.modules)\n"
    )
    shipped = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    with_extra = subprocess.run(
        [sys.executable, "-c", code, str(extra)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    # nor yaml (.parsed.json) for the shipped rules alone
    assert (shipped.stdout.split(), with_extra.stdout.split()) == (
        ["False", "False"],
        ["True", "True"],
    )


def _shipped_copy(tmp_path, monkeypatch) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in RULES_DIR.iterdir():
        (rules / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(catalog_module, "default_rules_dir", lambda: rules)
    return rules


def test_an_edited_shipped_rule_is_checked_in_full(tmp_path, monkeypatch):
    rules = _shipped_copy(tmp_path, monkeypatch)
    assert catalog_module.stamped(rules)
    path = rules / "HS002.yaml"
    path.write_text(path.read_text().replace("severity: error", "severity: fatal"))
    assert not catalog_module.stamped(rules)
    with pytest.raises(
        CatalogError, match=re.escape("HS002.yaml: severity: 'fatal' is not one of")
    ):
        load_catalog()
    # what the stamp vouches for is not checked again: forged over the bad file, the
    # schema error goes unseen (so the test above can fail)
    (rules / catalog_module.STAMP_NAME).write_text(catalog_module.rules_digest(rules))
    assert load_catalog().rules["HS002"].severity == "fatal"


def test_the_stamp_script_stamps_only_rules_that_pass(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    import stamp_rules

    rules = _shipped_copy(tmp_path, monkeypatch)
    monkeypatch.setattr(stamp_rules, "default_rules_dir", lambda: rules)
    stamp = rules / catalog_module.STAMP_NAME
    stamp.unlink()
    (rules / catalog_module.PARSED_NAME).unlink()
    assert stamp_rules.main() == 0 and catalog_module.stamped(rules)
    assert (rules / catalog_module.PARSED_NAME).read_bytes() == (
        RULES_DIR / catalog_module.PARSED_NAME
    ).read_bytes()
    path = rules / "HS002.yaml"
    path.write_text(path.read_text().replace("severity: error", "severity: fatal"))
    before = stamp.read_text()
    assert stamp_rules.main() == 1 and stamp.read_text() == before
    assert not catalog_module.stamped(rules)
