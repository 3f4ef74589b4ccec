"""atheris harness: the rubric loader of ``pcapcheck grade`` (issue 23).

An input is a rubric file (YAML: title, checks with CEL conditions, ...), read with
:func:`pcapcheck.grading.rubric.load_rubric`: the YAML parsed (aliases bounded), the
schema checked, every CEL expression compiled. ``RubricError`` (one line naming the file
and the check) is what bad input may give; anything else (a RecursionError, a
MemoryError, a KeyError) is a bug.

Run (see tests/fuzz/README.md)::

    python tests/fuzz/fuzz_rubric.py -runs=100000           # seeds: corpus/rubric
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]

from common import fuzz, instrumented, scratch_file  # noqa: E402

with instrumented(__name__ == "__main__"):
    from pcapcheck.grading.rubric import RubricError, load_rubric


def test_one_input(data: bytes) -> None:
    path = scratch_file("rubric.yaml", data)
    try:
        load_rubric(path)
    except RubricError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)


if __name__ == "__main__":
    fuzz(test_one_input, "rubric")
