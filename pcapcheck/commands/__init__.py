"""The pcapcheck commands: each module registers its command(s) on :data:`app`, the Typer
application of :mod:`pcapcheck.commands.common`."""

from pcapcheck.commands import (
    analyze,  # noqa: F401
    crosscheck,  # noqa: F401
    grade,  # noqa: F401
    ladder,  # noqa: F401
    rules,  # noqa: F401
)
from pcapcheck.commands.common import app

__all__ = ["app"]
