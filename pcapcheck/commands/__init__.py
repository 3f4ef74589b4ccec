"""The pcapcheck commands: each module registers its command(s) on :data:`pcapcheck.cli.app`."""

from pcapcheck.commands import analyze  # noqa: F401
from pcapcheck.commands import rules  # noqa: F401
from pcapcheck.commands import ladder  # noqa: F401
from pcapcheck.commands import grade  # noqa: F401
from pcapcheck.commands import crosscheck  # noqa: F401
