"""What the atheris harnesses of ``tests/fuzz`` share: the temporary file an input is
written to (the loaders read paths), and the run of a harness from the command line.

Each harness defines ``test_one_input(data: bytes)`` that raises only for a bug: the
one-line errors pcapcheck documents for bad input (``CaptureError``, ``DecodeError``,
``ConfigError``, ``CatalogError``, ``RubricError``) are caught, anything else escapes
and atheris (libFuzzer) reports it as a crash with the input that caused it. The same
function replays the corpus in the normal test suite (``tests/test_fuzz_harnesses.py``)
without atheris.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

#: The repository (the harnesses import pcapcheck from it when run as scripts).
ROOT = Path(__file__).resolve().parents[2]
#: The seed corpus of each harness: ``corpus/<name>/``.
CORPUS = Path(__file__).resolve().parent / "corpus"

_SCRATCH = Path(tempfile.mkdtemp(prefix="pcapcheck-fuzz-"))


def scratch_file(name: str, data: bytes) -> Path:
    """``data`` written to ``name`` in this process's scratch directory (the same file
    for every input: the harnesses run one input at a time)."""
    path = _SCRATCH / name
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def fuzz(test_one_input: Callable[[bytes], None], name: str) -> None:
    """Run ``test_one_input`` under atheris with the command line's libFuzzer options
    (``-runs=N``, ``-max_total_time=S``, corpus directories; the seed corpus
    ``corpus/<name>`` is added as the last directory when none is given)."""
    import atheris

    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        argv.append(str(CORPUS / name))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def instrumented(enabled: bool) -> contextlib.AbstractContextManager:
    """``atheris.instrument_imports(include=["pcapcheck"])`` when ``enabled`` (a harness
    run as a script: coverage feedback for pcapcheck's code), else a context that does
    nothing (the corpus replay under pytest, where atheris may be missing)."""
    if not enabled:
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=["pcapcheck"])
