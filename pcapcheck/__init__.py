"""pcapcheck: a pcap analyzer and RFC 9293 TCP handshake conformance checker.

The public Python API is :func:`analyze` (:mod:`pcapcheck.api`)::

    import pcapcheck

    report = pcapcheck.analyze("capture.pcap", select="ALL")
    for result in report:
        for finding in result.findings:
            print(finding.rule, finding.frame, finding.message)

The names below are imported on first use (module ``__getattr__``), so that ``import
pcapcheck`` and the start of the command line stay cheap: neither numpy nor the analysis
pipeline is imported until :func:`analyze` runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pcapcheck.__about__ import __version__

if TYPE_CHECKING:
    from pcapcheck.api import OptionError, Report, analyze
    from pcapcheck.model import Event, Finding
    from pcapcheck.results import FileResult

#: public name -> the module that defines it
_LAZY = {
    "analyze": "pcapcheck.api",
    "Report": "pcapcheck.api",
    "OptionError": "pcapcheck.api",
    "FileResult": "pcapcheck.results",
    "Finding": "pcapcheck.model",
    "Event": "pcapcheck.model",
}

__all__ = ["Event", "FileResult", "Finding", "OptionError", "Report", "__version__", "analyze"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pcapcheck' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
