"""Check every shipped rule (``rules/*.yaml``) in full, schema included, then write
``rules/.validated``: the digest that lets ``pcapcheck`` load the shipped rules without
the schema check while they stay as they are (``pcapcheck.catalog.rules.STAMP_NAME``; about
65 ms of every run, issue #4), and ``rules/.parsed.json``, their YAML data as JSON, read
in place of the YAML files while the digest holds (``catalog.PARSED_NAME``; about 25 ms).

    python scripts/stamp_rules.py          # after editing a rule or the rule schema

Exits 1 (and writes nothing) when a rule fails a check; ``tests/test_catalog.py`` fails
while the stamp does not match the rules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pcapcheck.catalog.rules import (
    PARSED_NAME,
    STAMP_NAME,
    CatalogError,
    _load_location,
    default_rules_dir,
    parsed_document,
    rules_digest,
)


def main() -> int:
    rules = default_rules_dir()
    digest = rules_digest(rules)
    try:
        loaded = _load_location(rules, trusted=False)  # every check, the schema too
        parsed = parsed_document(rules, digest)
    except CatalogError as exc:
        print(f"stamp_rules: {exc}", file=sys.stderr)
        return 1
    if rules_digest(rules) != digest:
        print(
            "stamp_rules: the rules changed while they were checked; run it again", file=sys.stderr
        )
        return 1
    (rules / PARSED_NAME).write_text(
        json.dumps(parsed, indent=1, sort_keys=True) + "\n", encoding="utf-8"
    )
    (rules / STAMP_NAME).write_text(digest + "\n", encoding="ascii")
    print(
        f"{rules / STAMP_NAME}: {len(loaded)} rules checked, {digest}; "
        f"{rules / PARSED_NAME}: {len(parsed['rules'])} rules"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
