"""The ``[tunnel-ports]`` configuration key reaches every command that decodes a capture,
not only ``pcapcheck analyze``: ``ladder``, ``grade`` and ``crosscheck`` read the same
configuration (``--config FILE``, the file found from the working directory, none with
``--isolated``; :func:`pcapcheck.commands.common.command_config`).

The capture: ``encap/kernel/vxlan_8472.pcap``, two TCP connections (10.0.0.1:40001 and
:40002 to 10.0.0.2:8080, VNI 7) in VXLAN on Linux's historical port 8472, recorded by
scripts/record_tunnels.py. With IANA's ports (4789 only) it is 18 plain UDP datagrams and
no connection; with ``vxlan = [4789, 8472]`` the two connections.
"""

from __future__ import annotations

import shutil

import pytest
from conftest import SAMPLES
from typer.testing import CliRunner

from pcapcheck.capture.tshark import WIRESHARK_TUNNELS, decode_as
from pcapcheck.cli import app

runner = CliRunner()
CAPTURE = SAMPLES / "encap" / "kernel" / "vxlan_8472.pcap"
CONFIG = "[tunnel-ports]\nvxlan = [4789, 8472]\n"
CLIENT1, CLIENT2, SERVER = "10.0.0.1:40001", "10.0.0.1:40002", "10.0.0.2:8080"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tunnels.toml"
    path.write_text(CONFIG)
    return path


# ---- ladder ---------------------------------------------------------------------------


def test_ladder_draws_the_connections_in_vxlan_on_8472_with_the_config(config):
    for cid, client in ((1, CLIENT1), (2, CLIENT2)):
        res = runner.invoke(
            app, ["ladder", str(CAPTURE), "--config", str(config), "--connection", str(cid)]
        )
        assert res.exit_code == 0, res.output
        lines = res.stdout.splitlines()
        assert lines[0].startswith(f"connection {cid}: client {client} → server {SERVER}")
        # every segment of the connection is drawn (the segment reader decodes the tunnel
        # too): its SYN, and its last frame
        assert "─ SYN seq=0 len=0 " in lines[3]
        assert lines[-1].startswith("final: client ")
    res = runner.invoke(app, ["ladder", str(CAPTURE), "--config", str(config)])
    assert res.exit_code == 0
    assert res.stderr == "(1 more connection in this capture: --connection N, N = 1..2)\n"


def test_ladder_without_the_config_sees_no_connection(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configuration found from here
    res = runner.invoke(app, ["ladder", str(CAPTURE)])
    assert res.exit_code == 2
    assert (
        res.stderr
        == f"pcapcheck: error: {CAPTURE}: no TCP connection in the capture (18 packets)\n"
    )


def test_ladder_finds_the_config_as_analyze_does_and_isolated_ignores_it(tmp_path, monkeypatch):
    (tmp_path / "pcapcheck.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["ladder", str(CAPTURE), "-c", "2"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"connection 2: client {CLIENT2} → server {SERVER}")
    res = runner.invoke(app, ["ladder", str(CAPTURE), "--isolated"])
    assert res.exit_code == 2 and "no TCP connection" in res.stderr
    # analyze reads the same file
    res = runner.invoke(app, ["analyze", str(CAPTURE), "-f", "json"])
    assert '"client":"10.0.0.1:40002"' in res.stdout.replace(" ", "")


def test_a_bad_config_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[tunnel-ports]\nvxlan2 = [8472]\n")
    for command in (
        ["ladder", str(CAPTURE)],
        ["grade", str(CAPTURE), "--rubric", "r.yaml"],
        ["crosscheck", str(CAPTURE)],
    ):
        res = runner.invoke(app, [*command, "--config", str(bad)])
        assert res.exit_code == 2
        assert res.stderr == (
            f"pcapcheck: error: {bad}: tunnel-ports: unknown tunnel 'vxlan2' "
            "(known: vxlan, geneve, gtpu, teredo)\n"
        )
    res = runner.invoke(app, ["ladder", str(CAPTURE), "--config", str(bad), "--isolated"])
    assert res.exit_code == 2
    assert res.stderr == "pcapcheck: error: --config and --isolated cannot be used together\n"


# ---- grade ----------------------------------------------------------------------------

RUBRIC = """\
title: Two connections in a tunnel
checks:
  - id: two
    title: Both connections
    points: 2
    condition: 'size(connections) == 2 && connections.all(c, c.server_port == 8080)'
    feedback: the two connections to port 8080
  - id: complete
    title: Both handshakes complete
    points: 1
    condition: 'connections.filter(c, c.handshake == "complete").size() == 2'
    feedback: both handshakes
"""


@pytest.fixture
def submissions(tmp_path):
    (tmp_path / "lab.yaml").write_text(RUBRIC)
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copy(CAPTURE, folder / "kim.pcap")
    return folder


def test_grade_decodes_the_submission_with_the_config(submissions, config, tmp_path):
    rubric = str(tmp_path / "lab.yaml")
    res = runner.invoke(
        app, ["grade", str(submissions), "--rubric", rubric, "--config", str(config)]
    )
    assert res.exit_code == 0, res.output
    assert "Student: **kim**" in res.stdout
    assert "**Score: 3 / 3**" in res.stdout
    # the feedback's ladder of the focus connection is drawn from the tunnel's segments
    assert "─ SYN seq=0 len=0 " in res.stdout


def test_grade_without_the_config_finds_no_connection(submissions, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["grade", str(submissions), "--rubric", str(tmp_path / "lab.yaml")])
    assert res.exit_code == 0, res.output
    assert "**Score: 0 / 3**" in res.stdout
    assert "no TCP" in res.stdout


# ---- crosscheck -------------------------------------------------------------------------


def test_decode_as_names_wiresharks_dissector_for_each_port_not_ianas():
    from pcapcheck.capture.layers import UDP_TUNNELS

    assert set(WIRESHARK_TUNNELS) == set(UDP_TUNNELS)  # a new tunnel needs its name here
    assert decode_as(None) == decode_as({}) == []
    assert decode_as({"vxlan": [4789]}) == []
    assert decode_as({"vxlan": [4789, 8472]}) == ["-d", "udp.port==8472,vxlan"]
    assert decode_as({"gtpu": [2152, 3386], "teredo": []}) == [
        "-d",
        "udp.port==3386,gtp",
        "-d",
        "udp.port==3544,data",
    ]
    assert decode_as({"vxlan": [], "geneve": [4789]}) == [
        "-d",
        "udp.port==4789,geneve",
        "-d",
        "udp.port==6081,data",
    ]


needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


@needs_tshark
def test_crosscheck_with_the_config_compares_both_connections(config):
    res = runner.invoke(app, ["crosscheck", str(CAPTURE), "--config", str(config)])
    assert res.exit_code == 0, res.output
    assert "18 frames, 18 TCP frames compared; 2 connection(s) vs 2 tcp.stream(s)" in res.stdout
    assert "connections: 18 frames grouped alike, 0 grouped differently" in res.stdout
    assert res.stdout.rstrip().endswith("full agreement")


@needs_tshark
def test_crosscheck_without_the_config_sees_no_tcp_in_either_tool(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["crosscheck", str(CAPTURE)])
    assert res.exit_code == 0, res.output
    assert "18 frames, 0 TCP frames compared; 0 connection(s) vs 0 tcp.stream(s)" in res.stdout


# ---- the html report's ladders -------------------------------------------------------------


@pytest.mark.parametrize("with_config", [True, False])
def test_html_ladders_read_the_capture_with_the_runs_tunnel_ports(config, tmp_path, with_config):
    """``analyze -f html`` reads the capture again to draw its ladders
    (:func:`pcapcheck.report.ladder.scan_segments`): with the run's tunnel ports, so that
    each drawn connection has all its arrows (10 and 8 frames), not an empty ladder."""
    import re

    page = tmp_path / "report.html"
    options = ["--config", str(config)] if with_config else ["--isolated"]
    res = runner.invoke(app, ["analyze", str(CAPTURE), *options, "-f", f"html={page}", "-q"])
    assert res.exit_code == 0, res.output  # RS001 is a warning
    arrows = re.findall(r'<g class="arrow[^"]*" data-frame="(\d+)"', page.read_text())
    if with_config:
        assert sorted(map(int, arrows)) == list(range(1, 19))
    else:
        assert arrows == []  # no connection, no ladder
