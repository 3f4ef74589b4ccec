"""Configuration files: discovery, every key, every error message, and the command line
overriding the file."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
from conftest import SAMPLES
from typer.testing import CliRunner

from pcapcheck.catalog.config import (
    KEYS,
    Config,
    ConfigError,
    find_config,
    glob_match,
    load_config,
    resolve_config,
    resolve_selection,
)
from pcapcheck.catalog.rules import load_catalog
from pcapcheck.cli import app

runner = CliRunner()
HS002 = SAMPLES / "crafted" / "hs002_synack-bad-ack.pcap"  # HS002 error
TWO = SAMPLES / "crafted" / "hs013_fin-before-established.pcap"  # HS013 error, RS004 warning
CL003 = SAMPLES / "crafted" / "cl003_close-incomplete.pcap"  # CL003 warning
CL010 = SAMPLES / "crafted" / "cl010_time-wait-reuse.pcap"  # CL010 info, gap 10 s
CP004 = SAMPLES / "crafted" / "cp004_bad-checksum.pcap"
CATALOG = load_catalog()


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def analyze(*args: str):
    return runner.invoke(app, ["analyze", *args])


def rules_of(res) -> list[list[str]]:
    return [[f["rule"] for f in f_["findings"]] for f_ in json.loads(res.stdout)["files"]]


def one_error_line(res) -> str:
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --------------------------------------------------------------------------- discovery


def test_discovery_walks_up_to_the_first_directory_with_a_config(tmp_path):
    cfg = write(tmp_path / "pcapcheck.toml", "select = ['HS']\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert find_config(sub) == cfg.resolve()


def test_pcapcheck_toml_beats_pyproject_in_the_same_directory(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.pcapcheck]\nselect = ['CL']\n")
    cfg = write(tmp_path / "pcapcheck.toml", "select = ['HS']\n")
    assert find_config(tmp_path) == cfg.resolve()


def test_pyproject_without_the_table_is_skipped(tmp_path):
    cfg = write(tmp_path / "pcapcheck.toml", "select = ['HS']\n")
    write(tmp_path / "proj" / "pyproject.toml", "[project]\nname = 'x'\n[tool.ruff]\n")
    assert find_config(tmp_path / "proj") == cfg.resolve()


def test_closest_directory_wins_even_with_pyproject(tmp_path):
    write(tmp_path / "pcapcheck.toml", "select = ['HS']\n")
    near = write(tmp_path / "proj" / "pyproject.toml", "[tool.pcapcheck]\nselect = ['CL']\n")
    assert find_config(tmp_path / "proj") == near.resolve()
    assert load_config(near).select == ["CL"]


def test_no_config_anywhere(tmp_path):
    if find_config(tmp_path.parent) is not None:
        pytest.skip("a configuration file above the temporary directory")
    assert find_config(tmp_path) is None
    assert resolve_config(start=tmp_path).path is None


def test_discovered_config_applies_from_a_subdirectory(tmp_path, monkeypatch):
    write(tmp_path / "pcapcheck.toml", "ignore = ['HS013']\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    res = analyze("-f", "json", str(TWO))
    assert res.exit_code == 0 and rules_of(res) == [["RS004"]]


def test_pyproject_table_applies(tmp_path, monkeypatch):
    write(
        tmp_path / "pyproject.toml", "[project]\nname = 'x'\n\n[tool.pcapcheck]\nselect = ['RS']\n"
    )
    monkeypatch.chdir(tmp_path)
    assert rules_of(analyze("-f", "json", str(TWO))) == [["RS004"]]


def test_isolated_ignores_the_config(tmp_path, monkeypatch):
    write(tmp_path / "pcapcheck.toml", "select = ['RS']\n")
    monkeypatch.chdir(tmp_path)
    assert rules_of(analyze("--isolated", "-f", "json", str(TWO))) == [["HS013", "RS004"]]


def test_explicit_config_file(tmp_path):
    cfg = write(tmp_path / "ci" / "strict.toml", "select = ['RS']\n")
    assert rules_of(analyze("--config", str(cfg), "-f", "json", str(TWO))) == [["RS004"]]
    pyproject = write(tmp_path / "pyproject.toml", "[tool.pcapcheck]\nignore = ['RS']\n")
    assert rules_of(analyze("--config", str(pyproject), "-f", "json", str(TWO))) == [["HS013"]]


# --------------------------------------------------------------------------- keys


def test_severity_override_changes_the_findings_and_the_gate(tmp_path, monkeypatch):
    write(tmp_path / "pcapcheck.toml", '[rules.HS002]\nseverity = "warning"\n')
    monkeypatch.chdir(tmp_path)
    res = analyze("-f", "json", str(HS002))
    assert res.exit_code == 0
    assert json.loads(res.stdout)["files"][0]["findings"][0]["severity"] == "warning"


def test_rule_parameter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert rules_of(analyze("-f", "json", str(CL010))) == [["CL010"]]
    write(tmp_path / "pcapcheck.toml", "[rules.CL010]\nmsl = 1\n")  # window 2 s < 10 s
    assert rules_of(analyze("-f", "json", str(CL010))) == [[]]
    write(tmp_path / "pcapcheck.toml", "[rules.CL010]\nmsl = 30\n")  # window 60 s > 10 s
    assert rules_of(analyze("-f", "json", str(CL010))) == [["CL010"]]


def test_fail_on_from_the_file_and_the_command_line_overrides_it(tmp_path, monkeypatch):
    write(tmp_path / "pcapcheck.toml", 'fail-on = "warning"\n')
    monkeypatch.chdir(tmp_path)
    assert analyze(str(CL003)).exit_code == 1
    assert analyze("--fail-on", "error", str(CL003)).exit_code == 0


def test_select_extend_select_ignore(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "pcapcheck.toml", "select = ['HS', 'RS']\nignore = ['HS013']\n")
    assert rules_of(analyze("-f", "json", str(TWO))) == [["RS004"]]
    write(tmp_path / "pcapcheck.toml", "extend-select = ['CP004']\n")
    assert "CP004" in rules_of(analyze("-f", "json", str(CP004)))[0]
    assert "CP004" not in rules_of(analyze("--isolated", "-f", "json", str(CP004)))[0]


def test_command_line_select_replaces_the_file_and_ignore_adds(tmp_path, monkeypatch):
    write(tmp_path / "pcapcheck.toml", "select = ['RS']\nignore = ['HS013']\n")
    monkeypatch.chdir(tmp_path)
    # --select replaces select; the file's ignore still applies
    assert rules_of(analyze("--select", "HS,RS", "-f", "json", str(TWO))) == [["RS004"]]
    # --ignore adds to the file's ignore
    assert rules_of(analyze("--select", "ALL", "--ignore", "RS", "-f", "json", str(TWO))) == [[]]
    # a more specific --select beats the file's prefix ignore
    write(tmp_path / "pcapcheck.toml", "ignore = ['HS']\n")
    assert rules_of(analyze("--select", "HS013", "-f", "json", str(TWO))) == [["HS013"]]
    assert rules_of(analyze("--extend-select", "HS013", "-f", "json", str(TWO))) == [
        ["HS013", "RS004"]
    ]


def test_resolve_selection_semantics():
    cfg = Config(select=["CL"], extend_select=["HS002"], ignore=["CL010"])
    active = resolve_selection(CATALOG, cfg)
    assert "HS002" in active and "CL001" in active and "CL010" not in active
    assert "HS001" not in active
    # command-line select replaces select and extend-select, keeps ignore
    active = resolve_selection(CATALOG, cfg, select=["CL010", "RS"])
    assert active == {"RS001", "RS002", "RS003", "RS004", "RS005"}  # CL010 ignored: tie
    active = resolve_selection(CATALOG, Config(), extend_select=["CP004"])
    assert active == CATALOG.select(None) | {"CP004"}


def test_rules_dirs_are_relative_to_the_config_file(tmp_path, monkeypatch):
    rule = (SAMPLES.parent / "rules" / "HS002.yaml").read_text()
    write(
        tmp_path / "ci" / "rules" / "HS002.yaml",
        rule.replace("severity: error", "severity: info", 1),
    )
    write(tmp_path / "ci" / "pcapcheck.toml", "rules-dirs = ['rules']\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    res = analyze("--config", "../ci/pcapcheck.toml", "-f", "json", str(HS002))
    assert json.loads(res.stdout)["files"][0]["findings"][0]["severity"] == "info"


def test_per_file_ignores(tmp_path, monkeypatch):
    for sub in ("legacy", "new", "legacy/old"):
        (tmp_path / "captures" / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(TWO, tmp_path / "captures" / sub / "x.pcap")
    write(
        tmp_path / "pcapcheck.toml",
        """\
        [per-file-ignores]
        "captures/legacy/*.pcap" = ["HS", "RS004"]
        "**/old/*.pcap" = ["RS"]
        """,
    )
    monkeypatch.chdir(tmp_path / "captures")  # paths relative to the config's dir
    res = analyze("-f", "json", "legacy/x.pcap", "new/x.pcap", "legacy/old/x.pcap")
    assert rules_of(res) == [[], ["HS013", "RS004"], ["HS013"]]


def test_per_file_ignores_name_only_pattern_and_default_off_rules(tmp_path):
    cfg = Config(path=tmp_path / "pcapcheck.toml", per_file_ignores=[("x.pcap", ["CP"])])
    ignored = cfg.ignored_for(tmp_path / "deep" / "dir" / "x.pcap", CATALOG)
    assert "CP004" in ignored and "CP001" in ignored and "HS002" not in ignored
    assert cfg.ignored_for(tmp_path / "y.pcap", CATALOG) == set()


@pytest.mark.parametrize(
    "pattern,path,hit",
    [
        ("captures/legacy/*.pcap", "captures/legacy/a.pcap", True),
        ("captures/legacy/*.pcap", "captures/legacy/sub/a.pcap", False),
        ("captures/**/*.pcap", "captures/a.pcap", True),
        ("captures/**/*.pcap", "captures/x/y/a.pcap", True),
        ("captures/**", "captures/x/y/a.pcap", True),
        ("captures/?.pcap", "captures/ab.pcap", False),
        ("captures/[ab].pcap", "captures/b.pcap", True),
        ("./captures/*.pcap", "captures/b.pcap", True),
    ],
)
def test_glob_match(pattern, path, hit):
    assert glob_match(pattern, path) is hit


# --------------------------------------------------------------------------- errors

ALLOWED = ", ".join(KEYS)


@pytest.mark.parametrize(
    "text,message",
    [
        ("selct = ['HS']\n", f"pcapcheck.toml: unknown key 'selct' (allowed: {ALLOWED})"),
        (
            'fail-on = "fatal"\n',
            "pcapcheck.toml: fail-on: 'fatal' is not one of error, warning, info, never",
        ),
        (
            'select = "HS"\n',
            "pcapcheck.toml: select: expected an array of rule IDs or prefixes, got 'HS'",
        ),
        (
            "ignore = [1]\n",
            "pcapcheck.toml: ignore: expected an array of rule IDs or prefixes, got [1]",
        ),
        ("ignore = ['XY9']\n", "pcapcheck.toml: ignore: unknown rule selector 'XY9'"),
        ("extend-select = ['ZZ']\n", "pcapcheck.toml: extend-select: unknown rule selector 'ZZ'"),
        ("[rules.XY001]\nseverity = 'info'\n", "pcapcheck.toml: rules.XY001: unknown rule 'XY001'"),
        (
            "[rules.HS003]\nseverity = 'fatal'\n",
            "pcapcheck.toml: rules.HS003.severity: 'fatal' is not one of error, warning, info",
        ),
        (
            "[rules.CL010]\nmsl = 'soon'\n",
            "pcapcheck.toml: rules.CL010.msl: expected number, got 'soon'",
        ),
        (
            "[rules.CL010]\nmsl = true\n",
            "pcapcheck.toml: rules.CL010.msl: expected number, got True",
        ),
        (
            "[rules.CL010]\nmls = 30\n",
            "pcapcheck.toml: rules.CL010: unknown parameter 'mls' (known: msl)",
        ),
        (
            "rules = 3\n",
            "pcapcheck.toml: rules: expected a table of [rules.ID] tables, got an integer",
        ),
        (
            "[rules]\nHS003 = 'warning'\n",
            "pcapcheck.toml: rules.HS003: expected a table (severity and rule parameters), got a string",
        ),
        (
            "rules-dirs = ['missing']\n",
            "pcapcheck.toml: rules-dirs: 'missing' does not exist (relative to .)",
        ),
        (
            "per-file-ignores = ['x']\n",
            "pcapcheck.toml: per-file-ignores: expected a table of glob = [rule IDs or prefixes], got an array",
        ),
        (
            "[per-file-ignores]\n'*.pcap' = ['QQ1']\n",
            "pcapcheck.toml: per-file-ignores.'*.pcap': unknown rule selector 'QQ1'",
        ),
        ("select = [\n", "pcapcheck.toml: invalid TOML: "),
        (
            "[tunnel-ports]\nvxlan = [6081]\n",
            "pcapcheck.toml: tunnel-ports: vxlan port 6081 is geneve's default port"
            " (give geneve other ports, or geneve = [] to turn it off)",
        ),
        (
            "[tunnel-ports]\nvxlan = [8472]\ngeneve = [8472]\n",
            "pcapcheck.toml: tunnel-ports: port 8472 given to both vxlan and geneve",
        ),
        (
            "[tunnel-ports]\nvxlan2 = [8472]\n",
            "pcapcheck.toml: tunnel-ports: unknown tunnel 'vxlan2'"
            " (known: vxlan, geneve, gtpu, teredo)",
        ),
        (
            "[tunnel-ports]\ngtpu = [-1]\n",
            "pcapcheck.toml: tunnel-ports: gtpu port -1 is not a UDP port",
        ),
    ],
)
def test_config_errors_are_one_line_exit_2(tmp_path, monkeypatch, text, message):
    write(tmp_path / "pcapcheck.toml", text)
    monkeypatch.chdir(tmp_path)
    line = one_error_line(analyze(str(HS002)))
    assert line.startswith(f"pcapcheck: error: {message}"), line


def test_pyproject_errors_name_the_table(tmp_path, monkeypatch):
    write(tmp_path / "pyproject.toml", "[tool.pcapcheck]\nselct = 1\n")
    monkeypatch.chdir(tmp_path)
    line = one_error_line(analyze(str(HS002)))
    assert line.startswith("pcapcheck: error: pyproject.toml [tool.pcapcheck]: unknown key 'selct'")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--config", "nope.toml"], "nope.toml: no such file"),
        (["--config", "pyproject.toml"], "pyproject.toml: no [tool.pcapcheck] table"),
        (
            ["--config", "pcapcheck.toml", "--isolated"],
            "--config and --isolated cannot be used together",
        ),
    ],
)
def test_config_option_errors(tmp_path, monkeypatch, args, message):
    write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")
    write(tmp_path / "pcapcheck.toml", "")
    monkeypatch.chdir(tmp_path)
    assert one_error_line(analyze(*args, str(HS002))) == f"pcapcheck: error: {message}"


def test_load_config_values(tmp_path):
    cfg = write(
        tmp_path / "pcapcheck.toml",
        """\
        select = ["HS", "CL"]
        extend-select = ["CP004"]
        ignore = ["CL008"]
        fail-on = "warning"
        rules-dirs = ["."]
        [rules.HS003]
        severity = "warning"
        [rules.CL010]
        msl = "30"
        [per-file-ignores]
        "legacy/*.pcap" = ["CP"]
        """,
    )
    config = load_config(cfg)
    assert (config.select, config.extend_select, config.ignore, config.fail_on) == (
        ["HS", "CL"],
        ["CP004"],
        ["CL008"],
        "warning",
    )
    assert config.rules_dirs == [tmp_path.resolve()]
    assert config.severity == {"HS003": "warning"}
    assert config.per_file_ignores == [("legacy/*.pcap", ["CP"])]
    assert config.check(CATALOG) == {"CL010": {"msl": 30.0}}  # converted by the catalogue
    with pytest.raises(ConfigError):
        resolve_config(cfg, isolated=True)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--shard-size", "1M"], "--shard-size: only with --scheduler (for a run on a cluster)"),
        (
            ["--upload", "--shard-size", "1M"],
            "--upload, --shard-size: only with --scheduler (for a run on a cluster)",
        ),
    ],
)
def test_cluster_options_without_a_scheduler_say_the_options(args, message):
    """The API's message names its parameters (shard_size); the command says its options."""
    assert (
        one_error_line(analyze("--isolated", *args, str(HS002))) == f"pcapcheck: error: {message}"
    )


def test_flush_interval_where_it_does_nothing_is_a_warning():
    """--flush-interval only acts on a live pipe: with files it warns (one line on
    stderr, as ruff warns of a setting without effect) and the analysis goes on."""
    res = analyze("--isolated", "--flush-interval", "2", "-f", "json", str(HS002))
    assert res.exit_code == 1  # HS002: an error finding
    assert res.stderr.splitlines()[0] == (
        "pcapcheck: warning: --flush-interval applies to a live pipe only"
        " (- on a pipe with -f jsonl): ignored"
    )
    assert rules_of(res) == [["HS002"]]
    quiet = analyze("--isolated", "-q", "-f", "json", str(HS002))
    assert "--flush-interval" not in quiet.stderr
    assert one_error_line(analyze("--flush-interval", "0", str(HS002))) == (
        "pcapcheck: error: --flush-interval: expected a number of seconds > 0, got 0.0"
    )
