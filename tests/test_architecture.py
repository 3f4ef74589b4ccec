"""The architecture, lint, format and type checks, run inside the suite.

CI runs exactly the README's test command (``.ci/run``; tests/test_readme.py), so the
checks of docs/architecture.md live here: import-linter's contracts (the layers, the
reference engine apart from the speed machinery, report formats independent of each
other, no import cycles), ``ruff check``, ``ruff format --check`` and mypy, each with the configuration in
pyproject.toml, each a subprocess whose output is shown when it fails. The contracts
themselves are checked too, so that deleting or loosening one fails a test.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent

#: What ruff lints and formats (the same paths as the command in docs/architecture.md).
RUFF_PATHS = ["pcapcheck", "tests", "scripts", "bench"]

#: The layers of the package, top to bottom (docs/architecture.md); the siblings of an
#: ``a | b`` layer may not import each other.
LAYERS = [
    "__main__",
    "cli",
    "commands",
    "grading | compare",
    "api",
    "run",
    "report",
    "pipeline",
    "fast",
    "catalog",
    "tcp",
    "capture",
    "results | jsonlines",
    "spool | model | __about__ | i18n",
]

#: What the reference engine must never import.
ENGINE_FORBIDS = {"pcapcheck.fast", "pcapcheck.run", "pcapcheck.pipeline", "pcapcheck.report"}


def _run(args: list[str], what: str) -> None:
    """Run ``args`` in the repository; fail with its whole output unless it exits 0."""
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {proc.returncode}): {' '.join(args[1:])}\n"
            f"{proc.stdout}\n{proc.stderr}",
            pytrace=False,
        )


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    linter = config["tool"]["importlinter"]
    assert linter["root_package"] == "pcapcheck"
    return {contract["id"]: contract for contract in linter["contracts"]}


# --------------------------------------------------------------------------- the contracts
def test_layers_contract_names_every_layer():
    layers = _contracts()["layers"]
    assert layers["type"] == "layers"
    assert layers["containers"] == ["pcapcheck"]
    assert layers["layers"] == LAYERS
    # every module of the package must be in a layer: a new subpackage is placed on purpose
    assert layers.get("exhaustive") is True
    assert not layers.get("exhaustive_ignores")


def test_engine_contract_forbids_the_speed_machinery():
    engine = _contracts()["engine"]
    assert engine["type"] == "forbidden"
    assert engine["source_modules"] == ["pcapcheck.tcp"]
    assert set(engine["forbidden_modules"]) >= ENGINE_FORBIDS
    assert not engine.get("allow_indirect_imports")  # no path through another module either


def test_every_report_format_is_in_the_independence_contract():
    from pcapcheck.report import DIRECTORY_FORMATS, FORMATS

    formats = _contracts()["formats"]
    assert formats["type"] == "independence"
    # the module of each format's renderer (a new format must be added to the contract)
    modules = {FORMATS[name].__module__ for name in FORMATS}
    assert len(modules) == len(FORMATS)  # one module per format
    # and of each directory format (parquet)
    assert not modules & set(DIRECTORY_FORMATS.values())
    modules |= set(DIRECTORY_FORMATS.values())
    assert set(formats["modules"]) == modules


def test_no_cycles_contract_covers_the_package():
    acyclic = _contracts()["acyclic"]
    assert acyclic["type"] == "acyclic_siblings"
    assert acyclic["ancestors"] == ["pcapcheck"]
    assert not acyclic.get("skip_descendants")


def test_no_contract_ignores_an_import():
    """A broken contract is fixed in the code, not by listing the import as an exception."""
    for contract in _contracts().values():
        assert not contract.get("ignore_imports"), contract["id"]


def test_the_version_is_written_once_in_a_leaf_module():
    """``__version__`` is assigned in pcapcheck/__about__.py only (hatch reads it there);
    the package root re-exports it, and the modules that write it import it from there,
    never from the root, which exposes the whole API (lint-imports would see a report
    module depend on pcapcheck.api through it)."""
    assigned = []
    root_importers = []
    for path in sorted((ROOT / "pcapcheck").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            if any(isinstance(t, ast.Name) and t.id == "__version__" for t in targets):
                assigned.append(path.relative_to(ROOT).as_posix())
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "pcapcheck"
                and any(alias.name == "__version__" for alias in node.names)
            ):
                root_importers.append(path.relative_to(ROOT).as_posix())
    assert assigned == ["pcapcheck/__about__.py"]
    assert root_importers == []


# --------------------------------------------------------------------------- the tools
def test_import_contracts_are_kept():
    _run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; "
            "sys.exit(lint_imports_command())",
            "--no-cache",
            "--no-logo",
        ],
        "lint-imports",
    )


def test_ruff_check():
    _run([sys.executable, "-m", "ruff", "check", "--no-cache", *RUFF_PATHS], "ruff check")


def test_ruff_format():
    _run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", *RUFF_PATHS],
        "ruff format --check",
    )


def test_mypy(tmp_path):
    # the packages of [tool.mypy]; a cache of its own so the check never reads a stale one
    _run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy")], "mypy")
