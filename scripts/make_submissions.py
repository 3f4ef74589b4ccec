#!/usr/bin/env python3
"""Write the example class of student submissions for ``pcapcheck grade`` into
sample_pcaps/grading/submissions/ (graded with sample_pcaps/grading/http_lab.yaml).

The lab: capture an HTTP download (client 10.0.0.1, server 10.0.0.2 port 80) — the
3-way handshake, the request and the response, and the client's 4-way close — and
answer a few questions about it. The students:

- ``alice/`` (a folder: ``http.pcap`` and a correct ``answers.yaml``): the perfect capture;
  a 20 KB response, so the ladder folds its data phase;
- ``bob.pcap``: stopped capturing before the close (CL008, close ``open``);
- ``carol.pcap``: her client aborted the download with an RST (RS001, close ``reset``);
- ``dave.pcap``: captured only what his machine sent (CP007, no server bytes);
- ``erin.pcap``: a byte-for-byte copy of alice's capture (same ISN pair: integrity flag);
- ``frank.pcap``: a text file named .pcap (not a capture);
- ``grace.pcap`` with ``grace.pcap.answers.yaml``: a clean capture, answers with the
  classic mistakes (server in SYN-SENT after its SYN-ACK, client CLOSED after the
  SYN-ACK, TIME-WAIT for CLOSE-WAIT, the relative ack number given as absolute);
- ``heidi.pcap``: a capture of DNS over UDP only (no TCP);
- ``ivan.pcap``: the download plus three more connections (4 > 3 allowed).

Packets are built with the Conversation builder of scripts/craft_captures.py (same
addresses, options, clocks and checksum verification). Deterministic: running the script
twice writes byte-identical files.

Usage: python scripts/make_submissions.py [OUTDIR]   (default sample_pcaps/grading/submissions)
"""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from craft_captures import (
    ACK,
    CLIENT_IP,
    MACS,
    SERVER_IP,
    Capture,
    Conversation,
)

RESPONSE_SEGMENTS = 14  # alice's 20 KB page: 14 full-sized segments
MSS = 1448  # payload per full segment (1460 - 12 bytes of timestamps)
REQUEST = 120  # bytes of the GET request


def download(c: Conversation, segments: int) -> list[int]:
    """Request, a response of ``segments`` segments (ACK every second one), last ACK."""
    frames = [c.data("c", REQUEST)]
    for i in range(segments):
        last = i == segments - 1
        frames.append(
            c.data("s", MSS, flags=(0x08 | ACK) if last else ACK, dt=0.0004 if i == 0 else None)
        )
        if i % 2 == 1 or last:
            frames.append(c.ack("c"))
    return frames


def lab_conversation(
    cap: Capture, cport: int, cisn: int, sisn: int, segments: int = RESPONSE_SEGMENTS
) -> tuple[Conversation, dict[str, int]]:
    """The whole lab: handshake, download, client-first 4-way close. Returns the
    conversation and the frames that the answers refer to."""
    c = Conversation(cap, cport=cport, cisn=cisn, sisn=sisn)
    syn, synack, hs_ack = c.handshake()
    download(c, segments)
    fin1, ack1, fin2, ack2 = c.close("c")
    return c, {
        "syn": syn,
        "synack": synack,
        "hs_ack": hs_ack,
        "fin1": fin1,
        "ack1": ack1,
        "fin2": fin2,
        "ack2": ack2,
    }


def alice(out: Path) -> Path:
    cap = Capture()
    c, f = lab_conversation(cap, 51514, 0x1C0FFEE5, 0x7A11CE00)
    folder = out / "alice"
    folder.mkdir(parents=True, exist_ok=True)
    cap.write(folder / "http.pcap")
    (folder / "answers.yaml").write_text(f"""\
# Alice's answers (all correct).
client_isn: {c.isn["c"]}
server_isn: {c.isn["s"]}
synack_ack: {c.isn["c"] + 1}
states:
  - {{after_frame: {f["syn"]}, client: SYN-SENT, server: LISTEN}}
  - {{after_frame: {f["synack"]}, client: ESTABLISHED, server: SYN-RECEIVED}}
  - {{after_frame: {f["hs_ack"]}, client: ESTABLISHED, server: ESTABLISHED}}
  - {{after_frame: {f["fin1"]}, client: FIN-WAIT-1, server: CLOSE-WAIT}}
  - {{after_frame: {f["ack1"]}, client: FIN-WAIT-2, server: CLOSE-WAIT}}
  - {{after_frame: {f["fin2"]}, client: TIME-WAIT, server: LAST-ACK}}
  - {{after_frame: {f["ack2"]}, client: TIME-WAIT, server: CLOSED}}
""")
    return folder / "http.pcap"


def bob(out: Path) -> None:
    cap = Capture()
    c = Conversation(cap, cport=50322, cisn=0x0B0B0B0B, sisn=0x5E4D3C2B)
    c.handshake()
    download(c, 3)  # ... and the capture stops: no FIN, no RST
    cap.write(out / "bob.pcap")


def carol(out: Path) -> None:
    cap = Capture()
    c = Conversation(cap, cport=49870, cisn=0xCA201000, sisn=0x2468ACE0)
    c.handshake()
    download(c, 4)
    c.rst("c", with_ack=True, dt=0.01)  # the browser tab was closed: abort
    cap.write(out / "carol.pcap")


def dave(out: Path) -> None:
    """Only the client's packets are in the capture (a filter on the source host)."""
    cap = Capture()
    c = Conversation(cap, cport=53001, cisn=0xDA7E0001, sisn=0x13572468)
    c.syn("c")
    c.synack("s", capture=False)
    c.ack("c")
    c.data("c", REQUEST)
    for i in range(4):
        c.data("s", MSS, flags=ACK, capture=False)
        if i % 2 == 1:
            c.ack("c")
    c.fin("c", dt=0.005)
    c.ack("s", capture=False)
    c.fin("s", dt=0.0002, capture=False)
    c.ack("c")
    cap.write(out / "dave.pcap")


def frank(out: Path) -> None:
    (out / "frank.pcap").write_text(
        "Wireshark would not start on my laptop, so here is what I saw in the lab:\n"
        "SYN -> SYN/ACK -> ACK, then the page, then FIN/ACK both ways.\n"
    )


def grace(out: Path) -> None:
    cap = Capture()
    c, f = lab_conversation(cap, 52780, 0x6A0CE000, 0x00C0FFEE, segments=2)
    cap.write(out / "grace.pcap")
    (out / "grace.pcap.answers.yaml").write_text(f"""\
# Grace's answers: the mistakes of the study notes in shared/seeds.
client_isn: {c.isn["c"]}
server_isn: {c.isn["s"]}
synack_ack: 1                  # the relative number Wireshark shows, given as absolute
states:
  - {{after_frame: {f["syn"]}, client: SYN-SENT, server: LISTEN}}
  - {{after_frame: {f["synack"]}, client: CLOSED, server: SYN-SENT}}
  - {{after_frame: {f["hs_ack"]}, client: ESTABLISHED, server: ESTABLISHED}}
  - {{after_frame: {f["ack1"]}, client: FIN-WAIT-2, server: TIME_WAIT}}
  - {{after_frame: {f["ack2"]}, client: TIME-WAIT, server: CLOSED}}
""")


def heidi(out: Path) -> None:
    """DNS over UDP: a query and its answer, no TCP at all."""
    cap = Capture()
    query = (
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06server\x07example\x00\x00\x01\x00\x01"
    )
    answer = (
        b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x06server\x07example\x00"
        b"\x00\x01\x00\x01\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x0a\x00\x00\x02"
    )
    for src, dst, sport, dport, payload, t in (
        (CLIENT_IP, SERVER_IP, 40053, 53, query, 0),
        (SERVER_IP, CLIENT_IP, 53, 40053, answer, 800),
    ):
        udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        udp.ulen = 8 + len(payload)
        ip = dpkt.ip.IP(
            src=socket.inet_aton(src),
            dst=socket.inet_aton(dst),
            p=dpkt.ip.IP_PROTO_UDP,
            ttl=64,
            id=cap.next_ipid(src),
            data=udp,
        )
        eth = dpkt.ethernet.Ethernet(
            src=MACS[src], dst=MACS[dst], type=dpkt.ethernet.ETH_TYPE_IP, data=ip
        )
        cap.add(t, bytes(eth), src)
    cap.write(out / "heidi.pcap")


def ivan(out: Path) -> None:
    """The download, then the browser fetched three more objects on new connections."""
    cap = Capture()
    lab_conversation(cap, 55100, 0x1FA40000, 0x4B1D0000, segments=2)
    for n in range(1, 4):
        cap.t += 20_000  # 20 ms between the connections
        lab_conversation(
            cap, 55100 + n, 0x1FA40000 + n * 0x01000000, 0x4B1D0000 + n * 0x00100000, segments=1
        )
    cap.write(out / "ivan.pcap")


def main() -> None:
    out = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parent.parent / "sample_pcaps" / "grading" / "submissions"
    )
    out.mkdir(parents=True, exist_ok=True)
    first = alice(out)
    bob(out)
    carol(out)
    dave(out)
    shutil.copyfile(first, out / "erin.pcap")  # erin handed in alice's file
    frank(out)
    grace(out)
    heidi(out)
    ivan(out)
    print(f"wrote the submissions to {out}")


if __name__ == "__main__":
    main()
