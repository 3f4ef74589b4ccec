"""The native decoding path (the layer table of pcapcheck.capture.layers, walked in batches
and per record) and the dpkt oracle (pcapcheck.capture.dpkt_decoder, dpkt's own parsing)
give identical reports on every sample capture (findings, connections, states, Zeek
fields), the MPLS ones included. The one allowed difference is the wording of a malformed
packet's reason (CP005), which each decoder states its own way: the frame and the rule
must still agree."""

from __future__ import annotations

import pytest
from conftest import SAMPLES

from pcapcheck.capture.reader import CaptureError
from pcapcheck.pipeline import analyze_file
from pcapcheck.report.json_report import document

CAPTURES = sorted(
    p for p in SAMPLES.rglob("*") if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".gz"))
)


@pytest.mark.parametrize("path", CAPTURES, ids=[str(p.relative_to(SAMPLES)) for p in CAPTURES])
def test_fast_path_equals_dpkt_path(catalog, path):
    active = catalog.select(["ALL"], None)
    try:
        fast = analyze_file(path, catalog, active)
    except CaptureError:
        with pytest.raises(CaptureError):
            analyze_file(path, catalog, active, decoder="dpkt")
        return
    slow = analyze_file(path, catalog, active, decoder="dpkt")
    assert _without_reasons(document([slow])) == _without_reasons(document([fast]))


def _without_reasons(doc: dict) -> dict:
    for f in doc["files"]:
        for finding in f.get("findings", []):
            if finding["rule"] == "CP005":
                finding["message"] = finding["data"]["reason"] = "<decoder's wording>"
    return doc
