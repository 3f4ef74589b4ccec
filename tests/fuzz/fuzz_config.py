"""atheris harness: the configuration and rule-file loaders (issue 23).

An input's first byte chooses the target, the rest is the file:

* even: a configuration file (``pcapcheck.toml``), read with
  :func:`pcapcheck.catalog.config.load_config` and checked against the shipped rule
  catalogue (:meth:`~pcapcheck.catalog.config.Config.check`: selectors, rule IDs,
  parameter types and ranges);
* odd: a rule file ``FZ001.yaml`` (``rules/*.yaml``, ``--rules``), read with
  :func:`pcapcheck.catalog.rules.load_rule_file` (YAML, schema, template fields,
  parameter ranges), then its parameters resolved with overrides of every type.

``ConfigError`` and ``CatalogError`` (one line) are what bad input may give; anything
else is a bug.

Run (see tests/fuzz/README.md)::

    python tests/fuzz/fuzz_config.py -runs=100000           # seeds: corpus/config
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]

from common import fuzz, instrumented, scratch_file  # noqa: E402

with instrumented(__name__ == "__main__"):
    from pcapcheck.catalog.config import ConfigError, load_config
    from pcapcheck.catalog.rules import Catalog, CatalogError, load_catalog, load_rule_file

_CATALOG = load_catalog()
#: Parameter overrides tried on a rule file's parameters (the strings come from a
#: command line; the others from TOML or the API).
_OVERRIDES = (-1, 0, 0.5, float("nan"), "30", "x", True, None)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    body = data[1:]
    if data[0] % 2 == 0:
        path = scratch_file("pcapcheck.toml", body)
        try:
            load_config(path).check(_CATALOG)
        except ConfigError as exc:
            assert str(exc) and "\n" not in str(exc), repr(exc)
        return
    path = scratch_file("FZ001.yaml", body)
    try:
        rule = load_rule_file(path)
    except CatalogError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        return
    catalog = Catalog({rule.id: rule})
    for name in rule.params:
        for value in _OVERRIDES:
            try:
                catalog.params(rule.id, {name: value})
            except CatalogError as exc:
                assert str(exc) and "\n" not in str(exc), repr(exc)


if __name__ == "__main__":
    fuzz(test_one_input, "config")
