"""Baselines: fingerprints survive a re-recording, write-then-check is clean, new findings
fail, matching is a multiset, bad baseline files are one-line errors."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import dpkt
import pytest
from conftest import SAMPLES
from typer.testing import CliRunner

from pcapcheck.cli import app
from pcapcheck.pipeline import analyze_file
from pcapcheck.report.baseline import (
    BASELINE_VERSION,
    BaselineError,
    apply_baseline,
    baseline_entries,
    fingerprint_parts,
    load_baseline,
)

runner = CliRunner()
CL004 = SAMPLES / "crafted" / "cl004_last-ack-missing.pcap"  # CL004 error, CL006 info x2
CL003 = SAMPLES / "crafted" / "cl003_close-incomplete.pcap"  # CL003 warning
CL001 = SAMPLES / "crafted" / "cl001_fin-unacked.pcap"  # CL001 error, CL006 info
TRUNC = SAMPLES / "crafted" / "cp006_capture-truncated.pcap"  # CP006, file-level, no frame


def analyze(*args: str):
    return runner.invoke(app, ["analyze", "--isolated", *args])


def rerecord(src, dst, *, client_port=51515, isn_shift=0x10000000, time_shift=3600.0):
    """The same conversation as recorded another day: another ephemeral client port, other
    client ISN, later timestamps, and an unrelated UDP packet captured first (so every
    absolute frame number moves by one)."""
    with open(src, "rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        packets = list(reader)
    client = None
    with open(dst, "wb") as out:
        writer = dpkt.pcap.Writer(out, linktype=linktype)
        noise = dpkt.ethernet.Ethernet(
            src=b"\x02" * 6,
            dst=b"\x04" * 6,
            type=dpkt.ethernet.ETH_TYPE_IP,
            data=dpkt.ip.IP(
                src=b"\x0a\x00\x00\x09",
                dst=b"\x0a\x00\x00\x0a",
                p=17,
                data=dpkt.udp.UDP(sport=53, dport=5353, data=b"x"),
            ),
        )
        writer.writepkt(bytes(noise), packets[0][0] + time_shift - 1)
        for ts, buf in packets:
            eth = dpkt.ethernet.Ethernet(buf)
            ip, tcp = eth.data, eth.data.data
            if client is None:
                client = (ip.src, tcp.sport)
            if (ip.src, tcp.sport) == client:
                tcp.sport = client_port
                tcp.seq = (tcp.seq + isn_shift) % 2**32
            else:
                tcp.dport = client_port
                if tcp.flags & dpkt.tcp.TH_ACK:
                    tcp.ack = (tcp.ack + isn_shift) % 2**32
            tcp.sum = 0
            ip.sum = 0
            writer.writepkt(bytes(eth), ts + time_shift)


def test_fingerprint_parts(catalog):
    result = analyze_file(CL004, catalog, catalog.select())
    conn = result.connections[0]
    parts = [fingerprint_parts(f, conn) for f in result.findings]
    assert parts == [
        ("CL004", "10.0.0.2:80", "10.0.0.1", 8),
        ("CL006", "10.0.0.2:80", "10.0.0.1", 9),
        ("CL006", "10.0.0.2:80", "10.0.0.1", 10),
    ]
    trunc = analyze_file(TRUNC, catalog, catalog.select())
    assert [fingerprint_parts(f, None) for f in trunc.findings] == [("CP006", "-", "-", None)]


def test_rerecorded_capture_has_the_same_fingerprints(catalog, tmp_path):
    copy = tmp_path / "renamed.pcap"
    shutil.copy(CL004, copy)
    again = tmp_path / "again.pcap"
    rerecord(CL004, again)
    active = catalog.select()
    original, renamed, rerecorded = (analyze_file(p, catalog, active) for p in (CL004, copy, again))
    assert rerecorded.connections[0]["client"] == "10.0.0.1:51515"
    assert [f.frame for f in rerecorded.findings] == [f.frame + 1 for f in original.findings]
    prints = [
        [e["fingerprint"] for e in baseline_entries([r])] for r in (original, renamed, rerecorded)
    ]
    assert prints[0] == prints[1] == prints[2] and len(set(prints[0])) == 3


def test_write_then_check_and_a_rerecording_still_matches(tmp_path):
    base = tmp_path / "baseline.json"
    res = analyze("-f", "json", "--write-baseline", str(base), str(CL004))
    assert res.exit_code == 0  # today's findings are accepted
    assert "wrote 3 findings to the baseline" in res.stderr
    doc = json.loads(base.read_text())
    assert doc["version"] == BASELINE_VERSION
    assert [e["rule"] for e in doc["findings"]] == ["CL004", "CL006", "CL006"]
    assert all(set(e) == {"rule", "fingerprint", "hint"} for e in doc["findings"])
    assert "CL004 10.0.0.1 -> 10.0.0.2:80 frame 9 (+8)" in doc["findings"][0]["hint"]

    res = analyze("-f", "json", "--baseline", str(base), str(CL004))
    assert res.exit_code == 0
    assert json.loads(res.stdout)["files"][0]["findings"] == []
    assert json.loads(res.stdout)["files"][0]["connections"][0]["findings"] == 0
    assert "3 suppressed by the baseline" in res.stderr

    again = tmp_path / "again.pcap"
    rerecord(CL004, again)
    res = analyze("--baseline", str(base), str(again))
    assert res.exit_code == 0 and "0 findings" in res.stdout


def test_a_new_finding_fails_and_only_it_is_reported(tmp_path):
    base = tmp_path / "baseline.json"
    analyze("--write-baseline", str(base), str(CL003))
    res = analyze("-f", "json", "--fail-on", "warning", "--baseline", str(base), str(CL003))
    assert res.exit_code == 0
    res = analyze("-f", "json", "--baseline", str(base), str(CL003), str(CL001))
    assert res.exit_code == 1
    files = json.loads(res.stdout)["files"]
    assert [[f["rule"] for f in x["findings"]] for x in files] == [[], ["CL001", "CL006"]]
    assert res.stderr.strip() == (
        "pcapcheck: 2 files, 2 findings (1 error, 1 info); 1 suppressed by the baseline"
    )


def test_matching_is_a_multiset(tmp_path):
    base = tmp_path / "baseline.json"
    copy = tmp_path / "copy.pcap"
    shutil.copy(CL004, copy)
    analyze("--write-baseline", str(base), str(CL004))
    # the same findings twice need two baseline entries each: the copy's are new
    res = analyze("-f", "json", "--baseline", str(base), str(CL004), str(copy))
    assert res.exit_code == 1
    files = json.loads(res.stdout)["files"]
    assert [[f["rule"] for f in x["findings"]] for x in files] == [[], ["CL004", "CL006", "CL006"]]
    analyze("--write-baseline", str(base), str(CL004), str(copy))
    assert len(json.loads(base.read_text())["findings"]) == 6
    assert analyze("--baseline", str(base), str(CL004), str(copy)).exit_code == 0


def test_apply_baseline_does_not_touch_its_inputs(catalog):
    result = analyze_file(CL004, catalog, catalog.select())
    first = baseline_entries([result])[0]["fingerprint"]
    known = Counter([first])
    kept, suppressed = apply_baseline([result], known)
    assert suppressed == 1 and [f.rule for f in kept[0].findings] == ["CL006", "CL006"]
    assert kept[0].connections[0]["findings"] == 2
    assert len(result.findings) == 3 and result.connections[0]["findings"] == 3
    assert known == Counter([first])


@pytest.mark.parametrize(
    "content,words",
    [
        (None, "no such baseline file"),
        ("{", "invalid JSON"),
        ("[]", "not a pcapcheck baseline"),
        ('{"version": 7, "findings": []}', "unsupported baseline version 7"),
        ('{"version": 1, "findings": [{"rule": "HS002"}]}', "findings[0]"),
    ],
)
def test_bad_baseline_is_one_line_exit_2(tmp_path, content, words):
    base = tmp_path / "baseline.json"
    if content is not None:
        base.write_text(content)
    res = analyze("--baseline", str(base), str(CL004))
    assert res.exit_code == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "baseline.json" in lines[0]
    with pytest.raises(BaselineError):
        load_baseline(base)


def test_unwritable_baseline_is_exit_2(tmp_path):
    res = analyze("--write-baseline", str(tmp_path / "no" / "dir" / "b.json"), str(CL004))
    assert res.exit_code == 2 and "cannot write" in res.stderr
