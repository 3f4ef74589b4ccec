"""The pcapcheck commands: each module registers its command(s) on :data:`pcapcheck.cli.app`."""

from pcapcheck.commands import (
    analyze,  # noqa: F401
    crosscheck,  # noqa: F401
    grade,  # noqa: F401
    ladder,  # noqa: F401
    rules,  # noqa: F401
)
