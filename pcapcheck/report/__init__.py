"""Output formats: one module per format, each with ``render(results, **opts) -> str``."""

from __future__ import annotations

from pcapcheck.report import json_report, table

FORMATS = {"table": table.render, "json": json_report.render}
