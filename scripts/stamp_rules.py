"""Check every shipped rule (``rules/*.yaml``) in full, schema included, then write
``rules/.validated``: the digest that lets ``pcapcheck`` load the shipped rules without
the schema check while they stay as they are (``pcapcheck.catalog.STAMP_NAME``; about
65 ms of every run, issue #4).

    python scripts/stamp_rules.py          # after editing a rule or the rule schema

Exits 1 (and writes nothing) when a rule fails a check; ``tests/test_catalog.py`` fails
while the stamp does not match the rules.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pcapcheck.catalog import (STAMP_NAME, CatalogError, _load_location,  # noqa: E402
                               default_rules_dir, rules_digest)


def main() -> int:
    rules = default_rules_dir()
    digest = rules_digest(rules)
    try:
        loaded = _load_location(rules, trusted=False)      # every check, the schema too
    except CatalogError as exc:
        print(f"stamp_rules: {exc}", file=sys.stderr)
        return 1
    if rules_digest(rules) != digest:
        print("stamp_rules: the rules changed while they were checked; run it again",
              file=sys.stderr)
        return 1
    (rules / STAMP_NAME).write_text(digest + "\n", encoding="ascii")
    print(f"{rules / STAMP_NAME}: {len(loaded)} rules checked, {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
