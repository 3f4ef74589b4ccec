"""Verdicts that survive the capture (issue #24): each case is a crafted capture
(scripts/craft_captures.py) that the engine got wrong before, checked by rule,
connection and frame, with the default path (fast machinery) and the reference engine
(``fast=False``) alike.

* CP008 (a packet stored twice) needs the copy within ``max_interval`` (0.5 ms) of the
  original and nothing from the peer between them; an IPv4 ID of 0 is no evidence.
"""

from __future__ import annotations

import pytest
from conftest import SAMPLES

from pcapcheck.pipeline import analyze_file
from pcapcheck.tcp.detectors import DEFAULT_PARAMS


def run(catalog, name: str, fast: bool = True, params=None):
    return analyze_file(
        SAMPLES / "crafted" / name, catalog, catalog.select(None, None), params=params, fast=fast
    )


def found(result) -> list[tuple]:
    return sorted((f.rule, f.connection, f.frame) for f in result.findings)


def test_the_engine_default_is_the_rule_file_default(catalog):
    assert DEFAULT_PARAMS["CP008"] == catalog.params("CP008") == {"max_interval": 0.0005}


@pytest.mark.parametrize("fast", [True, False])
def test_a_resend_after_a_retransmission_timeout_is_sq002_even_byte_for_byte(catalog, fast):
    # frame 5 repeats frame 4's bytes (IP ID 0, same TSval) 200 ms later: before the
    # fix, CP008 (within the old 0.5 s); now the resend it is.
    result = run(catalog, "clean_rto_resend_ipid0.pcap", fast)
    assert found(result) == [("SQ002", 1, 5)]
    (f,) = result.findings
    assert (f.data["seq"], f.data["payload_len"], f.data["first_frame"]) == (1, 100, 4)
    assert f.data["sender"] == "client"


@pytest.mark.parametrize("fast", [True, False])
def test_a_fast_retransmit_within_the_gap_is_sq002(catalog, fast):
    # frame 14 has frame 7's IP ID (0), TSval, seq, ack, window and length, 0.11 ms
    # later: within 0.5 ms, but the server's three duplicate ACKs (frames 11-13) were
    # stored between them: before the fix, CP008.
    result = run(catalog, "clean_fast_retransmit_ipid0.pcap", fast)
    assert found(result) == [("SQ002", 1, 14)]
    (f,) = result.findings
    assert (f.data["seq"], f.data["payload_len"], f.data["first_frame"]) == (101, 500, 7)


def test_a_segment_of_the_peer_between_them_rules_a_copy_out_whatever_the_gap(catalog):
    params = {"CP008": {"max_interval": 1.0}}
    result = run(catalog, "clean_fast_retransmit_ipid0.pcap", params=params)
    assert found(result) == [("SQ002", 1, 14)]


def test_the_gap_is_the_parameter(catalog):
    # with a limit above the 200 ms, the byte-for-byte resend is taken for a copy
    params = {"CP008": {"max_interval": 0.3}}
    result = run(catalog, "clean_rto_resend_ipid0.pcap", params=params)
    assert found(result) == [("CP008", 1, 5)]
    assert result.findings[0].data["original_frame"] == 4


@pytest.mark.parametrize("fast", [True, False])
def test_a_copy_20_us_later_with_ip_id_0_stays_cp008(catalog, fast):
    result = run(catalog, "cp008_capture-duplicates_ipid0.pcap", fast)
    assert found(result) == [("CP008", 1, 5)]
    assert result.findings[0].data["original_frame"] == 4
    # the copy is ignored by every other rule: the connection is clean
    (conn,) = result.connections
    assert (conn["handshake"], conn["close"]) == ("complete", "graceful")
    # a limit below the 20 us: the copy is analysed as a resend
    tight = run(
        catalog, "cp008_capture-duplicates_ipid0.pcap", fast, {"CP008": {"max_interval": 1e-5}}
    )
    assert found(tight) == [("SQ002", 1, 5)]
