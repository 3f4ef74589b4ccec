"""Rule messages name the endpoint an event concerns, not a fixed role: in a simultaneous
open (RFC 9293 §3.5, figure 7) the client too sends a SYN-ACK and waits for its ACK."""

from __future__ import annotations

import json
import sys

from conftest import ROOT
from typer.testing import CliRunner

from pcapcheck.cli import app

sys.path.insert(0, str(ROOT / "scripts"))
from craft_captures import CLIENT_ISN, SYN, Capture, Conversation


def test_synack_retransmitted_names_its_sender_in_a_simultaneous_open(tmp_path):
    """Both ends send a SYN; the client's SYN-ACK (frame 3) is repeated at frame 4 while
    the client waits in SYN-RECEIVED: HS006's message names the client and its state
    (before: "the server is in ESTABLISHED, waiting for the handshake ACK")."""
    cap = Capture()
    c = Conversation(cap, sport=50000)
    c.syn("c")
    c.send("s", SYN, seq=c.isn["s"], dt=0.00005)  # 2: the other SYN
    c.synack("c", syn_opts=True)  # 3
    c.synack("c", syn_opts=True, dt=1.0)  # 4: the same SYN-ACK again
    path = tmp_path / "simopen.pcap"
    cap.write(path)
    out = CliRunner().invoke(app, ["analyze", "--isolated", "-f", "json", str(path)])
    findings = json.loads(out.stdout)["files"][0]["findings"]
    hs006 = [f for f in findings if f["rule"] == "HS006"]
    assert [(f["frame"], f["data"]["sender"]) for f in hs006] == [(4, "client")]
    assert hs006[0]["message"].endswith(
        "the first in frame 3; the client is in SYN-RECEIVED, waiting for the handshake ACK"
    )


def test_unacceptable_handshake_ack_names_its_receiver_in_a_simultaneous_open(tmp_path):
    """The server's ACK of the client's SYN-ACK acknowledges 50 instead of 1 (frame 4):
    the receiver of that ACK, the client, stays in SYN-RECEIVED (RFC 9293 §3.10.7.4),
    and HS004 says so (before: "the server stays in ESTABLISHED")."""
    cap = Capture()
    c = Conversation(cap, sport=50000)
    c.syn("c")
    c.send("s", SYN, seq=c.isn["s"], dt=0.00005)  # 2: the other SYN
    c.synack("c", syn_opts=True)  # 3
    c.ack("s", ack=CLIENT_ISN + 50)  # 4
    path = tmp_path / "simopen_bad_ack.pcap"
    cap.write(path)
    out = CliRunner().invoke(app, ["analyze", "--isolated", "-f", "json", str(path)])
    findings = json.loads(out.stdout)["files"][0]["findings"]
    hs004 = [f for f in findings if f["rule"] == "HS004"]
    assert [(f["frame"], f["data"]["receiver"], f["data"]["actual"]) for f in hs004] == [
        (4, "client", 50)
    ]
    assert hs004[0]["message"].endswith("; the client stays in SYN-RECEIVED")
