"""README.md tells the truth: CI runs exactly the README's test command, and the quick-start
command names a sample capture that exists."""

from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def _shell_blocks() -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", README, re.S)]


def test_ci_runs_the_readme_test_command():
    test_cmd = next(b for b in _shell_blocks() if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_quick_start_sample_exists():
    run_cmd = next(b for b in _shell_blocks() if "pcapcheck analyze" in b)
    sample = re.search(r"pcapcheck analyze (\S+)", run_cmd).group(1)
    assert (ROOT / sample).is_file()
