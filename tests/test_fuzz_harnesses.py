"""The atheris harnesses of ``tests/fuzz`` (issue 23): the seed corpus replayed, and a
bounded coverage-guided run of each harness.

* every file of ``tests/fuzz/corpus/<harness>/`` goes through the harness's
  ``test_one_input`` in this process (no atheris needed): small valid inputs and the
  hostile inputs of issue 23 (zero-length records, IHL 3, 1,000 interface blocks, a
  damaged gzip, alias bombs, 400 nested parentheses, nested TOML, ``msl = -1``, a
  number too large for a float, ...) give only pcapcheck's one-line errors;
* the generated part of the corpus is what ``tests/fuzz/make_corpus.py`` writes;
* with atheris installed, each harness runs 1,000 executions under libFuzzer (about
  3 s each on one core), starting from the corpus: a crash fails the test with the
  harness's report. The long campaign is documented in ``tests/fuzz/README.md``.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import pytest
from conftest import ROOT

FUZZ = ROOT / "tests" / "fuzz"
HARNESSES = ("capture", "rubric", "config")
BOUNDED_RUNS = 1_000

sys.path.insert(0, str(FUZZ))


def harness(name: str):
    return importlib.import_module(f"fuzz_{name}")


@pytest.mark.parametrize("name", HARNESSES)
def test_corpus_replays_cleanly(name):
    files = sorted((FUZZ / "corpus" / name).iterdir())
    assert len(files) >= 10
    test_one_input = harness(name).test_one_input
    for path in files:
        try:
            test_one_input(path.read_bytes())
        except BaseException as exc:  # the file that failed, in the message
            raise AssertionError(f"{path.name}: {type(exc).__name__}: {exc}") from exc


def test_generated_corpus_is_current():
    make_corpus = importlib.import_module("make_corpus")
    for kind, files in make_corpus.generated().items():
        for name, data in files.items():
            path = FUZZ / "corpus" / kind / name
            assert path.read_bytes() == data, f"{path}: run python tests/fuzz/make_corpus.py"


def test_harnesses_catch_only_one_line_errors():
    """A harness lets a bug through: an exception pcapcheck does not document escapes."""
    capture = harness("capture")
    original = capture.open_capture

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    capture.open_capture = broken
    try:
        with pytest.raises(KeyError):
            capture.test_one_input(b"\xd4\xc3\xb2\xa1")
    finally:
        capture.open_capture = original


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
@pytest.mark.parametrize("name", HARNESSES)
def test_bounded_atheris_run(name, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(FUZZ / f"fuzz_{name}.py"),
            str(tmp_path),  # the corpus it grows; the seeds are read, never written
            str(FUZZ / "corpus" / name),
            f"-runs={BOUNDED_RUNS}",
            "-max_len=4096",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        timeout=300,
        check=False,
    )
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, err[-3000:]
    assert f"Done {BOUNDED_RUNS} runs" in err, err[-3000:]
