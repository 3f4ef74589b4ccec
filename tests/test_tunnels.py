"""Tunnels (issue 24): TCP inside IP-in-IP, GRE, VXLAN, Geneve, GTP-U, Teredo and PPPoE,
decoded through the layer table (pcapcheck.capture.layers), on the captures of
scripts/make_encap_captures.py: exact connections (inner 4-tuple, encapsulation path),
rule IDs and frames; a cut or malformed tunnel header is CP005 with its reason."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import struct
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from conftest import needs_tshark

from pcapcheck.capture.decoder import DecodeError, Decoder
from pcapcheck.capture.reader import open_capture
from pcapcheck.fast.batch_decoder import BatchSource
from pcapcheck.model import Segment
from pcapcheck.tcp.tracker import connection_key

ROOT = Path(__file__).resolve().parent.parent
ENCAP = ROOT / "sample_pcaps" / "encap"

A4, B4 = "192.0.2.1>192.0.2.2", "192.0.2.3>192.0.2.4"
A6, B6 = "2001:db8:ffff::1>2001:db8:ffff::2", "2001:db8:ffff::3>2001:db8:ffff::4"

#: capture -> (inner IP version, encapsulation of connection 1, of connection 2)
TUNNELS = {
    "ipip.pcap": (4, ["eth", f"ipv4 {A4}", "ipv4"], ["eth", f"ipv4 {B4}", "ipv4"]),
    "sit_6in4.pcap": (6, ["eth", f"ipv4 {A4}", "ipv6"], ["eth", f"ipv4 {B4}", "ipv6"]),
    "ip6tnl_ipv4.pcap": (4, ["eth", f"ipv6 {A6}", "ipv4"], ["eth", f"ipv6 {B6}", "ipv4"]),
    "ip6tnl_ipv6.pcap": (6, ["eth", f"ipv6 {A6}", "ipv6"], ["eth", f"ipv6 {B6}", "ipv6"]),
    "gre_ipv4.pcap": (
        4,
        ["eth", f"ipv4 {A4}", "gre 1", "ipv4"],  # the key (RFC 2890)
        ["eth", f"ipv4 {B4}", "gre 2", "ipv4"],
    ),
    "gretap_ipv6.pcap": (
        6,
        ["eth", f"ipv4 {A4}", "gre", "eth", "ipv6"],
        ["eth", f"ipv4 {B4}", "gre", "eth", "ipv6"],
    ),
    "erspan1.pcap": (
        4,
        ["eth", f"ipv4 {A4}", "gre", "erspan 1", "eth", "ipv4"],  # no session id
        ["eth", f"ipv4 {B4}", "gre", "erspan 1", "eth", "ipv4"],
    ),
    "erspan2.pcap": (
        4,
        ["eth", f"ipv4 {A4}", "gre", "erspan 2 100", "eth", "ipv4"],  # the session id
        ["eth", f"ipv4 {A4}", "gre", "erspan 2 101", "eth", "ipv4"],
    ),
    "erspan3.pcap": (
        4,
        ["eth", f"ipv4 {A4}", "gre", "erspan 3 100", "eth", "ipv4"],
        ["eth", f"ipv4 {A4}", "gre", "erspan 3 101", "eth", "ipv4"],
    ),
    "vxlan.pcap": (
        4,
        ["eth", f"ipv4 {A4}", "udp 4789", "vxlan 42", "eth", "ipv4"],
        ["eth", f"ipv4 {A4}", "udp 4789", "vxlan 43", "eth", "ipv4"],
    ),
    "geneve.pcap": (
        4,
        ["eth", f"ipv4 {A4}", "udp 6081", "geneve 42", "eth", "ipv4"],
        ["eth", f"ipv4 {A4}", "udp 6081", "geneve 43", "eth", "ipv4"],
    ),
    "gtpu.pcap": (
        4,
        ["eth", f"ipv4 {A4}", "udp 2152", "gtpu 4097", "ipv4"],
        ["eth", f"ipv4 {A4}", "udp 2152", "gtpu 4098", "ipv4"],
    ),
    "teredo.pcap": (
        6,
        ["eth", f"ipv4 {A4}", "udp 3544", "teredo", "ipv6"],
        ["eth", f"ipv4 {B4}", "udp 3544", "teredo", "ipv6"],
    ),
}

#: the captures whose tunnelled records the batch decoder decodes from its arrays
BATCHED = {
    "ipip.pcap",
    "gre_ipv4.pcap",
    "vxlan.pcap",
    "geneve.pcap",
    "gtpu.pcap",
    "ip6tnl_ipv4.pcap",
    "erspan1.pcap",
    "erspan2.pcap",
    "erspan3.pcap",
}

#: bad/ capture -> the CP005 reason of its frame 4
MALFORMED = {
    "gre_v1_pptp.pcap": "GRE version 1 (PPTP) not supported",
    "gre_cut.pcap": "truncated GRE header (6 of 8 bytes captured)",
    "vxlan_no_i_flag.pcap": "VXLAN header without the I flag (no valid VNI)",
    "vxlan_cut.pcap": "truncated VXLAN header (3 of 8 bytes captured)",
    "geneve_v1.pcap": "Geneve version 1 not supported",
    "geneve_cut_options.pcap": "truncated Geneve header (12 of 16 bytes captured)",
    "gtpu_bad_flags.pcap": "unsupported GTP-U flags 0x50 (version 1, PT 1 expected)",
    "gtpu_ext_len0.pcap": "bad GTP-U extension header length 0 < 4",
    "teredo_bad_indicator.pcap": "unknown Teredo indicator 0x0007",
    "pppoe_cut.pcap": "truncated PPPoE session header (5 of 8 bytes captured)",
    "erspan2_bad_version.pcap": "ERSPAN type II header with version 2 (1 expected)",
    "erspan3_cut_subheader.pcap": "truncated ERSPAN type III header (16 of 20 bytes captured)",
}


def report(path: Path, *extra: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcapcheck",
            "analyze",
            str(path),
            "-f",
            "json",
            "--isolated",
            *extra,
        ],
        capture_output=True,
        check=False,
        cwd=ROOT,
    ).stdout
    return json.loads(out)["files"][0]


def segments(path: Path, **kw) -> list:
    dec = Decoder(**kw)
    return [dec.decode(r) for r in open_capture(path)]


def _plain(seg: Segment) -> dict:
    d = dataclasses.asdict(seg)
    del d["encapsulation"]
    return d


@pytest.mark.parametrize("name", sorted(TUNNELS))
def test_tunnel_connections(name):
    """Two connections on the same inner 4-tuple, told apart by their tunnel; the clean
    one has no finding, the other the HS002 of its SYN-ACK (frame 12): the client's RST
    (frame 13) answering it is the right answer (RFC 9293 §3.10.7.3), no finding, and
    the handshake stays incomplete, closed by nothing."""
    version, path1, path2 = TUNNELS[name]
    r = report(ENCAP / name)
    client = "10.0.0.1:40000" if version == 4 else "[2001:db8::1]:40000"
    server = "10.0.0.2:80" if version == 4 else "[2001:db8::2]:80"
    conns = r["connections"]
    assert [(c["id"], c["client"], c["server"], c["encapsulation"]) for c in conns] == [
        (1, client, server, path1),
        (2, client, server, path2),
    ]
    assert [(c["first_frame"], c["last_frame"], c["handshake"]) for c in conns] == [
        (1, 10, "complete"),
        (11, 13, conns[1]["handshake"]),
    ]
    assert conns[0]["close"] == "graceful"
    got = sorted((f["rule"], f["frame"], f.get("connection")) for f in r["findings"])
    assert [(rule, frame) for rule, frame, _ in got] == [("HS002", 12)]
    assert (conns[1]["handshake"], conns[1]["close"]) == ("incomplete", "none")
    assert r["malformed"] == 0 and r["skipped"] == {}


@pytest.mark.parametrize("name", sorted(TUNNELS))
def test_tunnel_segments_are_the_plain_ones(name):
    """The inner segments are those of the plain capture (eth_ipv4 / the IPv6 one),
    with their encapsulation; the batch decoder gives the same items."""
    version = TUNNELS[name][0]
    plain = segments(ENCAP / ("eth_ipv4.pcap" if version == 4 else "raw_ipv6.pcap"))
    got = segments(ENCAP / name, verify_checksums=True)
    assert all(type(s) is Segment and s.checksum_ok for s in got)
    assert [_plain(s) | {"checksum_ok": None, "ip_id": None} for s in got[:10]] == [
        _plain(s) | {"checksum_ok": None, "ip_id": None} for s in plain
    ]
    path = TUNNELS[name][1]
    back = [
        f"{p.split(' ')[0]} {'>'.join(p.split(' ')[1].split('>')[::-1])}" if ">" in p else p
        for p in path
    ]
    from_client = [s.src in ("10.0.0.1", "2001:db8::1") for s in got[:10]]
    assert from_client == [True, False, True, True, False, True, True, False, False, True]
    assert [list(s.encapsulation) for s in got[:10]] == [path if c else back for c in from_client]
    batch = BatchSource(ENCAP / name, verify_checksums=True)
    assert [item for _f, _t, item in batch] == got
    # tunnels to IPv4 inside are walked in batches (over IPv4, or IPv6 without extension
    # headers); IPv6 inside goes one by one, as IPv6 does without a tunnel
    batched = name in BATCHED
    assert (batch.one_by_one, batch.tunnelled) == ((0, 13) if batched else (13, 0))


def test_erspan3_subheader_follows_the_o_bit():
    """ERSPAN type III: 12 bytes, 20 with the platform-specific subheader (its O bit set in
    the client's frames of erspan3.pcap only); both reach the same inner segments."""
    from pcapcheck.capture.layers import ERSPAN3, GRE_PROTOCOL

    assert GRE_PROTOCOL.layers[0x22EB] is ERSPAN3
    records = list(open_capture(ENCAP / "erspan3.pcap"))
    start = 14 + 20 + 8  # Ethernet, outer IPv4, GRE with a sequence number
    lengths = [ERSPAN3.header_length(r.data, start) for r in records[:10]]
    from_client = [s.src == "10.0.0.1" for s in segments(ENCAP / "erspan3.pcap")[:10]]
    assert lengths == [20 if c else 12 for c in from_client]
    assert set(lengths) == {12, 20}


def test_erspan_protocol_types_are_gre_only():
    """0x88BE and 0x22EB name ERSPAN in GRE only (Wireshark's "gre.proto"): after an
    Ethernet header they are another ethertype, skipped."""
    from test_batch import eth

    dec = Decoder()
    frame = eth(struct.pack("!HHI", 1 << 12, 100, 5) + bytes(60), et=0x88BE)
    rec = next(iter(open_capture(ENCAP / "eth_ipv4.pcap")))
    assert dec.decode(dataclasses.replace(rec, data=frame, wire_len=len(frame))) is None
    assert dec.skipped == {"other-ethertype": 1}


def test_direction_does_not_split_a_tunnelled_connection():
    segs = segments(ENCAP / "vxlan.pcap")
    up, down = segs[0], segs[1]
    assert up.encapsulation != down.encapsulation  # the outer addresses' order
    k = connection_key(up.src, up.sport, up.dst, up.dport, up.encapsulation)
    assert k == connection_key(down.src, down.sport, down.dst, down.dport, down.encapsulation)
    other = segs[10]
    assert k != connection_key(other.src, other.sport, other.dst, other.dport, other.encapsulation)
    assert connection_key(up.src, up.sport, up.dst, up.dport) == k[:4]


def test_pppoe_is_a_link_layer():
    """PPPoE is not a tunnel: no encapsulation key, its sessions are not part of a
    connection's identity; both conversations are one 4-tuple (CL009 at frame 12)."""
    r = report(ENCAP / "pppoe_ipv4.pcap")
    assert [
        ("encapsulation" in c, c["first_frame"], c["last_frame"]) for c in r["connections"]
    ] == [(False, 1, 13)]
    assert ("CL009", 12) in [(f["rule"], f["frame"]) for f in r["findings"]]
    assert r["skipped"] == {}
    batch = BatchSource(ENCAP / "pppoe_ipv4.pcap")
    list(batch)
    assert batch.one_by_one == 0


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_tunnel_header_is_cp005(name):
    r = report(ENCAP / "bad" / name)
    cp005 = [(f["frame"], f["message"]) for f in r["findings"] if f["rule"] == "CP005"]
    assert cp005 == [(4, f"the frame could not be decoded: {MALFORMED[name]}")]
    assert r["malformed"] == 1 and len(r["connections"]) == 1


def test_tunnel_ports_are_parameters():
    """Another VXLAN port: the capture's 4789 is then plain UDP (skipped)."""
    dec = Decoder(tunnel_ports={"vxlan": [8472]})
    assert [dec.decode(r) for r in open_capture(ENCAP / "vxlan.pcap")] == [None] * 13
    assert dec.skipped == {"ipv4-udp": 13}
    got = segments(ENCAP / "vxlan.pcap", tunnel_ports={"vxlan": [8472, 4789]})
    assert got[0].encapsulation[2:4] == ("udp 4789", "vxlan 42")
    with pytest.raises(ValueError, match="unknown tunnel 'vxlan2'"):
        Decoder(tunnel_ports={"vxlan2": [1]})
    with pytest.raises(ValueError, match="port 70000 is not a UDP port"):
        Decoder(tunnel_ports={"geneve": [70000]})


@pytest.mark.parametrize(
    ("path", "short"),
    [
        (None, ""),
        (["eth", f"ipv4 {A4}", "udp 4789", "vxlan 42", "eth", "ipv4"], "vxlan:42"),
        (["eth", f"ipv4 {A4}", "udp 6081", "geneve 7", "eth", "ipv6"], "geneve:7"),
        (["eth", f"ipv4 {A4}", "udp 2152", "gtpu 4097", "ipv4"], "gtpu:4097"),
        (["eth", f"ipv4 {A4}", "udp 3544", "teredo", "ipv6"], "teredo"),
        (["eth", f"ipv4 {A4}", "gre", "eth", "ipv6"], "gre"),
        (["eth", f"ipv4 {A4}", "ipv4"], "ipip"),
        (["eth", f"ipv4 {A4}", "ipv6"], "6in4"),
        (["eth", f"ipv6 {A6}", "ipv4"], "4in6"),
        (["eth", f"ipv6 {A6}", "ipv6"], "6in6"),
        (
            ["eth", "vlan 7", "mpls 100", f"ipv4 {A4}", "gre", f"ipv4 {B4}", "ipv4"],
            "mpls:100>gre>ipip",
        ),
        (["eth", "pppoe 5", f"ipv4 {A4}", "udp 4789", "vxlan 1", "eth", "ipv4"], "pppoe:5>vxlan:1"),
        (["eth", f"ipv4 {A4}", "gre", "erspan 2 100", "eth", "ipv4"], "gre>erspan:2:100"),
        (["eth", f"ipv4 {A4}", "gre 7", "erspan 3 5", "eth", "ipv6"], "gre:7>erspan:3:5"),
    ],
)
def test_encapsulation_short(path, short):
    from pcapcheck.report.common import encapsulation_short

    conn = {} if path is None else {"encapsulation": path}
    assert encapsulation_short(conn) == short


def test_table_shows_the_tunnel_only_when_there_is_one():
    def table(path: Path) -> list[str]:
        return subprocess.run(
            [sys.executable, "-m", "pcapcheck", "analyze", str(path), "--isolated"],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        ).stdout.splitlines()

    lines = table(ENCAP / "vxlan.pcap")
    assert lines[0].split()[:4] == ["id", "client", "server", "tunnel"]
    assert [line.split()[3] for line in lines[2:4]] == ["vxlan:42", "vxlan:43"]
    assert "tunnel" not in table(ENCAP / "eth_ipv4.pcap")[0]
    assert "tunnel" not in table(ENCAP / "pppoe_ipv4.pcap")[0]


# ---- tunnelled traffic on the fast path ----------------------------------------------------

WRAPPED_PATH = {
    "vxlan": ["eth", "ipv4 {a}>{b}", "udp 4789", "vxlan 42", "eth", "ipv4"],
    "geneve": ["eth", "ipv4 {a}>{b}", "udp 6081", "geneve 42", "eth", "ipv4"],
    "gre": ["eth", "ipv4 {a}>{b}", "gre", "ipv4"],
    "mpls": None,  # a label stack is a link layer, not a tunnel
}
WRAPPED_ZEEK_TYPE = {"vxlan": "Tunnel::VXLAN", "geneve": "Tunnel::GENEVE", "gre": "Tunnel::GRE"}


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory) -> dict:
    """bench/generate.py's traffic (400 connections with retransmissions, losses,
    resets, refusals), plain and inside each tunnel of ``--wrap``."""
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    out = {}
    for wrap in (None, *WRAPPED_PATH):
        path = tmp_path_factory.mktemp("wrap") / f"{wrap or 'plain'}.pcap"
        gen.generate(
            Namespace(
                out=str(path), connections=400, concurrency=24, exchanges=3, refused=0.05,
                retrans=0.05, resets=0.05, loss=0.02, seed=24, wrap=wrap,
            )
        )  # fmt: skip
        out[wrap] = path
    return out


def _fast_path(path: Path) -> tuple[int, int, int]:
    """(records decoded one by one, tunnelled records decoded from the arrays,
    connections the lookahead summarised) of the fast path on ``path``."""
    from pcapcheck.tcp.tracker import CLOSE_DELAY, IDLE_TIMEOUT

    src = BatchSource(path, blocks=True, lookahead=(CLOSE_DELAY, IDLE_TIMEOUT + 300))
    for _item in src:
        pass
    assert src._ahead is not None
    return src.one_by_one, src.tunnelled, src._ahead.fast_count


@pytest.mark.parametrize("wrap", sorted(WRAPPED_PATH))
def test_wrapped_capture_reports_the_plain_one(wrapped, wrap):
    """The benchmark's traffic inside a tunnel gives the plain capture's report but for
    each connection's encapsulation, serially and split over two processes; its records
    are decoded in batches (none one by one) and its clean connections summarised by the
    lookahead as the plain ones are (the fast path, issue 24)."""
    plain = report(wrapped[None], "--jobs", "1")
    assert len(plain["connections"]) == 400 and plain["findings"]
    for jobs in ("1", "2"):
        got = report(wrapped[wrap], "--jobs", jobs)
        expect = WRAPPED_PATH[wrap]
        for conn in got["connections"]:
            path = conn.pop("encapsulation", None)
            parents = conn.pop("tunnel_parents", None)
            if expect is None:
                assert path is None and parents is None
            else:
                a, b = "192.0.2.1", "192.0.2.2"
                assert path == [e.format(a=a, b=b) for e in expect]
                assert [(t["tunnel_type"], t["orig_h"], t["resp_h"]) for t in parents] == [
                    (WRAPPED_ZEEK_TYPE[wrap], a, b)
                ]
        for key in ("path", "sha256", "size"):
            got.pop(key, None)
        assert got == {k: v for k, v in plain.items() if k not in ("path", "sha256", "size")}
    one_by_one, tunnelled, fast = _fast_path(wrapped[wrap])
    base = _fast_path(wrapped[None])
    assert base[:2] == (0, 0) and base[2] > 300
    packets = plain["packets"]
    assert (one_by_one, tunnelled, fast) == (0, 0 if expect is None else packets, base[2])


def _vxlan_on_port(path: Path, port: int) -> Path:
    """sample_pcaps/encap/vxlan.pcap with its UDP destination port (4789) rewritten."""
    records = list(open_capture(ENCAP / "vxlan.pcap"))
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for r in records:
        data = bytearray(r.data)
        assert data[36:38] == (4789).to_bytes(2, "big")  # eth 14 + IPv4 20 + UDP's 2
        data[36:38] = port.to_bytes(2, "big")
        sec = int(r.ts)
        out += struct.pack("<IIII", sec, round((r.ts - sec) * 1e6), len(data), r.wire_len)
        out += data
    path.write_bytes(bytes(out))
    return path


def test_tunnel_ports_configuration_key(tmp_path):
    """``[tunnel-ports]`` in pcapcheck.toml: VXLAN on 8472 (Linux's old default) is
    decoded only with the key, serially, in worker processes and in batches."""
    odd = _vxlan_on_port(tmp_path / "vxlan8472.pcap", 8472)
    (tmp_path / "copy.pcap").write_bytes(odd.read_bytes())
    plain = report(odd)
    assert plain["connections"] == [] and plain["skipped"] == {"ipv4-udp": 13}
    config = tmp_path / "pcapcheck.toml"
    config.write_text("[tunnel-ports]\nvxlan = [4789, 8472]\n")
    for jobs in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-m", "pcapcheck", "analyze", str(odd), str(tmp_path / "copy.pcap"),
             "-f", "json", "--config", str(config), "--jobs", jobs],
            capture_output=True, check=False, cwd=ROOT,
        )  # fmt: skip
        for r in json.loads(out.stdout)["files"]:
            assert [c["encapsulation"][2:4] for c in r["connections"]] == [
                ["udp 8472", "vxlan 42"],
                ["udp 8472", "vxlan 43"],
            ]
            assert [(f["rule"], f["frame"]) for f in r["findings"]] == [("HS002", 12)]
    batch = BatchSource(odd, tunnel_ports={"vxlan": [8472]})
    assert sum(type(item) is Segment for _f, _t, item in batch) == 13
    assert (batch.one_by_one, batch.tunnelled) == (0, 13)
    config.write_text("[tunnel-ports]\nvxlan = [70000]\n")
    bad = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "analyze", str(odd), "--config", str(config)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "tunnel-ports: vxlan port 70000 is not a UDP port" in bad.stderr
    assert "Traceback" not in bad.stderr


def _tunnel_rows(result) -> list:
    """The connections' tunnel entries and the findings of a FileResult."""
    return [
        [list(c["encapsulation"][2:4]) for c in result.connections],
        [(f.rule, f.frame) for f in result.findings],
    ]


ODD_ROWS = [
    [["udp 8472", "vxlan 42"], ["udp 8472", "vxlan 43"]],
    [("HS002", 12)],
]


def test_tunnel_ports_reach_spawned_workers(tmp_path, monkeypatch):
    """The tunnel-ports key travels in the run's Settings, not in a process global: worker
    processes started with "spawn" (nothing inherited from this process) decode VXLAN on
    8472, whole captures in parallel and one capture in shards (read once, by a feed);
    this process's default decoder is untouched."""
    import multiprocessing

    import pcapcheck
    from pcapcheck.capture import layers
    from pcapcheck.run.executors import Processes
    from pcapcheck.run.tasks import Settings

    assert not hasattr(layers, "set_tunnel_ports")
    odd = _vxlan_on_port(tmp_path / "vxlan8472.pcap", 8472)
    (tmp_path / "copy.pcap").write_bytes(odd.read_bytes())
    config = tmp_path / "pcapcheck.toml"
    config.write_text("[tunnel-ports]\nvxlan = [8472]\n")
    spawn = multiprocessing.get_context("spawn")

    def run(*paths: Path, **kw) -> list:
        with pcapcheck.analyze(paths, config=config, **kw) as report:
            assert report.settings.tunnel_ports == {"vxlan": [8472]}
            return [_tunnel_rows(r) for r in report]

    assert run(odd, tmp_path / "copy.pcap", executor=Processes(2, spawn)) == [ODD_ROWS] * 2
    monkeypatch.setenv("PCAPCHECK_SHARD_MIN_BYTES", "1")  # one small capture in 2 shards
    assert run(odd, executor=Processes(2, spawn)) == [ODD_ROWS]
    assert run(odd, jobs=1) == [ODD_ROWS]
    # nothing left behind in this process: a decoder made without the key sees UDP
    dec = Decoder()
    assert {dec.decode(r) for r in open_capture(odd)} == {None}
    assert dec.skipped == {"ipv4-udp": 13}
    assert Settings(catalog=None).tunnel_ports is None  # type: ignore[arg-type]


def test_tunnel_ports_with_a_dask_scheduler(tmp_path):
    """``--scheduler local:1`` with the key: the cluster's worker decodes VXLAN on 8472
    (the Settings reach it; no refusal)."""
    if importlib.util.find_spec("distributed") is None:
        if os.environ.get("PCAPCHECK_FULL") == "1":
            pytest.fail("dask.distributed is not installed")
        pytest.skip("dask.distributed is not installed (pip install 'pcapcheck[dask]')")
    odd = _vxlan_on_port(tmp_path / "vxlan8472.pcap", 8472)
    config = tmp_path / "pcapcheck.toml"
    config.write_text("[tunnel-ports]\nvxlan = [8472]\n")
    out = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "analyze", str(odd), "-f", "json", "-q",
         "--config", str(config), "--scheduler", "local:1"],
        capture_output=True, check=False, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr  # findings
    (r,) = json.loads(out.stdout)["files"]
    assert [c["encapsulation"][2:4] for c in r["connections"]] == ODD_ROWS[0]
    assert [(f["rule"], f["frame"]) for f in r["findings"]] == ODD_ROWS[1]


# ---- recorded from the kernel's own tunnel devices (scripts/record_tunnels.py) -------------

KERNEL = ENCAP / "kernel"
U4 = "ipv4 192.0.2.1>192.0.2.2"
U6 = "ipv6 2001:db8:ffff::1>2001:db8:ffff::2"
#: capture -> (client address, server address, encapsulation path)
KERNEL_CAPTURES = {
    "vxlan.pcap": (
        "10.0.0.1", "10.0.0.2", ["eth", U4, "udp 4789", "vxlan 42", "eth", "ipv4"],
    ),
    "vxlan_inner6.pcap": (
        "[2001:db8::1]", "[2001:db8::2]", ["eth", U4, "udp 4789", "vxlan 42", "eth", "ipv6"],
    ),
    "vxlan_under6.pcap": (
        "10.0.0.1", "10.0.0.2", ["eth", U6, "udp 4789", "vxlan 42", "eth", "ipv4"],
    ),
}  # fmt: skip


def _kernel_conns(r: dict) -> list[tuple]:
    return [
        (
            c["id"], c["client"], c["server"], c.get("encapsulation"), c["handshake"],
            c["close"], c["client_state"], c["server_state"], c["conn_state"],
            c["packets"]["client"] + c["packets"]["server"], c["first_frame"], c["last_frame"],
        )
        for c in r["connections"]
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(KERNEL_CAPTURES))
def test_kernel_vxlan(name):
    """The kernel's VXLAN device (Linux, recorded on the underlay veth): a clean
    connection from port 40001 (the server closes first: TIME-WAIT on its side) and one
    the client resets (SO_LINGER 0: RS001 at the RST, the last frame)."""
    client, server, path = KERNEL_CAPTURES[name]
    r = report(KERNEL / name)
    assert _kernel_conns(r) == [
        (1, f"{client}:40001", f"{server}:8080", path, "complete", "graceful",
         "CLOSED", "TIME-WAIT", "SF", 10, 1, 10),
        (2, f"{client}:40002", f"{server}:8080", path, "complete", "reset",
         "CLOSED", "CLOSED", "RSTO", 8, 11, 18),
    ]  # fmt: skip
    assert [(f["rule"], f["connection"], f["frame"]) for f in r["findings"]] == [("RS001", 2, 18)]
    assert (r["packets"], r["skipped"], r["malformed"]) == (18, {}, 0)
    batch = BatchSource(KERNEL / name)
    assert sum(type(item) is Segment for _f, _t, item in batch) == 18
    # IPv4 inside in batches (over IPv4 or IPv6); IPv6 inside one by one
    batched = name != "vxlan_inner6.pcap"
    assert (batch.one_by_one, batch.tunnelled) == ((0, 18) if batched else (18, 0))


def test_kernel_vxlan_on_port_8472():
    """Linux's historical VXLAN port: plain UDP by default, the same two connections with
    the tunnel-ports key (VNI 7)."""
    r = report(KERNEL / "vxlan_8472.pcap")
    assert (r["connections"], r["skipped"]) == ([], {"ipv4-udp": 18})
    ports = {"vxlan": [4789, 8472]}
    segs = segments(KERNEL / "vxlan_8472.pcap", tunnel_ports=ports)
    assert {s.encapsulation[2:4] for s in segs} == {("udp 8472", "vxlan 7")}
    assert [(s.sport, s.dport) for s in segs if s.flags & 0x02 and not s.flags & 0x10] == [
        (40001, 8080),
        (40002, 8080),
    ]
    assert [
        item for _f, _t, item in BatchSource(KERNEL / "vxlan_8472.pcap", tunnel_ports=ports)
    ] == segs


@needs_tshark
@pytest.mark.parametrize("name", sorted(KERNEL_CAPTURES))
def test_kernel_vxlan_agrees_with_wireshark(name):
    """crosscheck: every TCP frame grouped into the same connections as Wireshark's
    tcp.stream, the same analysis flags (none), no disagreement at all."""
    from pcapcheck.compare import wireshark as cc

    got = cc.crosscheck(KERNEL / name)
    assert (got.tcp_frames, got.connections, got.streams) == (18, 2, 2)
    assert got.counts[cc.CONNECTION].both == 18
    assert got.disagreements == [], cc.render_crosscheck(got)


def test_two_vxlan_networks_on_the_fast_path(wrapped, tmp_path):
    """The benchmark's traffic twice, in VNI 42 and (1 µs later) in VNI 43: twice the
    connections, told apart by their tunnel on the fast path (the lookahead groups by
    4-tuple and tunnel: as many connections summarised in each network as in the plain
    capture), and the same report as the reference replay without the fast path."""
    from pcapcheck.catalog.rules import load_catalog
    from pcapcheck.pipeline import analyze_file

    raw = wrapped["vxlan"].read_bytes()
    out, pos = [raw[:24]], 24
    while pos < len(raw):
        sec, usec, cap, wire = struct.unpack_from("<IIII", raw, pos)
        frame = raw[pos + 16 : pos + 16 + cap]
        pos += 16 + cap
        for vni, later in ((42, 0), (43, 1)):
            t = sec * 1_000_000 + usec + later
            data = frame[:46] + struct.pack("!I", vni << 8) + frame[50:]  # the VNI
            out.append(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, cap, wire) + data)
    two = tmp_path / "two_vni.pcap"
    two.write_bytes(b"".join(out))
    catalog = load_catalog()
    active = catalog.select()
    fast = analyze_file(two, catalog, active)
    slow = analyze_file(two, catalog, active, fast=False)
    assert list(fast.connections) == list(slow.connections)
    assert [dataclasses.astuple(f) for f in fast.findings] == [
        dataclasses.astuple(f) for f in slow.findings
    ]
    vnis = [c["encapsulation"][3] for c in fast.connections]
    assert vnis.count("vxlan 42") == vnis.count("vxlan 43") == 400
    assert _fast_path(two)[2] == 2 * _fast_path(wrapped[None])[2]


def test_gre_key_tells_tunnels_apart(tmp_path):
    """gre_ipv4.pcap with the second conversation's outer addresses made the first's:
    the same endpoints and inner 4-tuple, two GRE keys (RFC 2890), two connections."""
    records = list(open_capture(ENCAP / "gre_ipv4.pcap"))
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for r in records:
        data = bytearray(r.data)
        for at in (26, 30):  # the outer IPv4 source and destination: .3 -> .1, .4 -> .2
            if data[at : at + 3] == bytes([192, 0, 2]) and data[at + 3] in (3, 4):
                data[at + 3] -= 2
        sec = int(r.ts)
        out += struct.pack("<IIII", sec, round((r.ts - sec) * 1e6), len(data), r.wire_len)
        out += data
    path = tmp_path / "gre_keys.pcap"
    path.write_bytes(bytes(out))
    r = report(path)
    assert [(c["id"], c["first_frame"], c["encapsulation"]) for c in r["connections"]] == [
        (1, 1, ["eth", f"ipv4 {A4}", "gre 1", "ipv4"]),
        (2, 11, ["eth", f"ipv4 {A4}", "gre 2", "ipv4"]),
    ]
    batch = BatchSource(path)
    assert [item for _f, _t, item in batch] == segments(path)
    assert (batch.one_by_one, batch.tunnelled) == (0, 13)


def test_nested_tunnels_in_batches(tmp_path):
    """Tunnels in any combination, walked in batches: MPLS, then VXLAN, then an 802.1Q
    tag inside, then GRE with a key, then IPv4 in IPv4 (path and short form exact); a
    record cut inside VXLAN's Ethernet frame is malformed with the decoder's reason (it
    alone is decoded one by one), and a plain record among them keeps the array path."""
    from test_batch import eth, ip4, mpls, tcp, write_pcap

    def udp(sport: int, dport: int, payload: bytes) -> bytes:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload

    def nested(seq: int, flags: int, back: bool) -> bytes:
        a, b = (0x0A000002, 0x0A000001) if back else (0x0A000001, 0x0A000002)
        ports = (80, 40000) if back else (40000, 80)
        inner = ip4(tcp(*ports, seq=seq, flags=flags), src=a, dst=b)
        ipip = ip4(inner, proto=4, src=0xCB007101, dst=0xCB007102)  # 203.0.113.1>.2
        gre = struct.pack("!HHI", 0x2000, 0x0800, 9) + ipip  # K: key 9
        tagged = eth(ip4(gre, proto=47, src=0xC6336401, dst=0xC6336402), vlans=(0x8100,))
        vxlan = struct.pack("!II", 0x08000000, 7 << 8) + tagged
        outer = ip4(udp(5000, 4789, vxlan), proto=17, src=0xC0000201, dst=0xC0000202)
        return eth(mpls(outer, 100), et=0x8847)

    frames = [
        nested(1, 0x02, False),
        eth(ip4(tcp(40001, 80, flags=0x02))),  # plain, between them
        nested(2, 0x12, True),
        nested(3, 0x10, False)[:60],  # cut inside the VXLAN header's frame
        nested(3, 0x10, False),
    ]
    path = write_pcap(tmp_path / "nested.pcap", frames)
    dec = Decoder()
    got = []
    for r in open_capture(path):
        try:
            got.append(dec.decode(r))
        except DecodeError as exc:
            got.append(exc.reason)
    assert got[3] == "truncated Ethernet header (6 of 14 bytes captured)"  # VXLAN's frame
    assert got[0].encapsulation == (
        "eth", "mpls 100", "ipv4 192.0.2.1>192.0.2.2", "udp 4789", "vxlan 7", "eth",
        "vlan 5", "ipv4 198.51.100.1>198.51.100.2", "gre 9", "ipv4 203.0.113.1>203.0.113.2",
        "ipv4",
    )  # fmt: skip
    assert got[1].encapsulation is None
    from pcapcheck.report.common import encapsulation_short

    short = encapsulation_short({"encapsulation": list(got[0].encapsulation)})
    assert short == "mpls:100>vxlan:7>gre:9>ipip"
    batch = BatchSource(path)
    items = [item for _f, _t, item in batch]
    assert [type(i).__name__ for i in items] == [
        "Segment", "Segment", "Segment", "DecodeError", "Segment",
    ]  # fmt: skip
    assert [i if type(i) is Segment else i.reason for i in items] == got
    assert (batch.one_by_one, batch.tunnelled) == (1, 3)


# ---- GTP-U: the TEID is the receiver's (3GPP TS 29.281 §5.1) ------------------------------

GTP_PATH = ["eth", "ipv4 192.0.2.1>192.0.2.2", "udp 2152"]  # eNB > SGW, then the G-PDU


def _conns(r: dict) -> list[tuple]:
    return [
        (
            c["id"],
            c["client"],
            c["server"],
            c["first_frame"],
            c["last_frame"],
            c["handshake"],
            c["close"],
            c["client_state"],
            c["server_state"],
            c["conn_state"],
            c["encapsulation"],
        )
        for c in r["connections"]
    ]


def test_gtpu_uplink_and_downlink_teids_are_one_connection():
    """gtpu_uplink_downlink.pcap: the uplink carries the SGW's TEID 0x101, the downlink
    the eNB's 0xa001: one clean connection (keyed by the TEID alone, each direction was
    a one-sided connection), its path the client's (the UE's) with both TEIDs, its
    Wireshark filter matching both directions."""
    from pcapcheck.report.common import connection_filter, encapsulation_short

    r = report(ENCAP / "gtpu_uplink_downlink.pcap")
    path = [*GTP_PATH, "gtpu 257/40961", "ipv4"]
    assert _conns(r) == [
        (
            1,
            "10.45.0.2:40000",
            "198.51.100.10:80",
            1,
            10,
            "complete",
            "graceful",
            "TIME-WAIT",
            "CLOSED",
            "SF",
            path,
        )
    ]
    assert r["connections"][0]["packets"] == {"client": 6, "server": 4}
    assert r["findings"] == [] and r["malformed"] == 0 and r["skipped"] == {}
    conn = r["connections"][0]
    assert encapsulation_short(conn) == "gtpu:257/40961"
    assert connection_filter(conn) == (
        "ip.addr == 10.45.0.2 && tcp.port == 40000 && ip.addr == 198.51.100.10"
        " && tcp.port == 80 && gtp.teid in {257 40961}"
    )


def test_gtpu_two_tunnels_interleaved():
    """gtpu_two_tunnels_interleaved.pcap: two bearers between the same eNB and SGW (TEIDs
    0x101/0xa001 and 0x102/0xa002), the same inner 4-tuple, packets interleaved: two
    connections, each with its own frames; the second's RST aborts it (RS001, frame 12)."""
    r = report(ENCAP / "gtpu_two_tunnels_interleaved.pcap")
    ue, web = "10.45.0.2:40000", "198.51.100.10:80"
    assert _conns(r) == [
        (1, ue, web, 1, 16, "complete", "graceful", "TIME-WAIT", "CLOSED", "SF",
         [*GTP_PATH, "gtpu 257/40961", "ipv4"]),
        (2, ue, web, 2, 12, "complete", "reset", "CLOSED", "CLOSED", "RSTO",
         [*GTP_PATH, "gtpu 258/40962", "ipv4"]),
    ]  # fmt: skip
    assert [c["packets"] for c in r["connections"]] == [
        {"client": 6, "server": 4},
        {"client": 4, "server": 2},
    ]
    assert [(f["rule"], f["connection"], f["frame"]) for f in r["findings"]] == [("RS001", 2, 12)]


GTPU_CAPTURES = ("gtpu.pcap", "gtpu_uplink_downlink.pcap", "gtpu_two_tunnels_interleaved.pcap")


@pytest.mark.parametrize("name", GTPU_CAPTURES)
def test_gtpu_fast_paths_and_shards_agree(name, monkeypatch):
    """The fast paths give the reference replay's report, and two shards (--jobs 2)
    the serial one's: both directions of a tunnel stay together."""
    from pcapcheck.catalog.rules import load_catalog
    from pcapcheck.pipeline import analyze_file

    catalog = load_catalog()
    active = catalog.select()
    fast = analyze_file(ENCAP / name, catalog, active)
    slow = analyze_file(ENCAP / name, catalog, active, fast=False)
    assert list(fast.connections) == list(slow.connections)
    assert [dataclasses.astuple(f) for f in fast.findings] == [
        dataclasses.astuple(f) for f in slow.findings
    ]
    monkeypatch.setenv("PCAPCHECK_SHARD_MIN_BYTES", "1")
    assert report(ENCAP / name, "--jobs", "2") == report(ENCAP / name, "--jobs", "1")


def test_gtpu_fast_path_takes_one_tunnel_only():
    """The lookahead summarises the uplink/downlink connection (one tunnel in its coarse
    group); a coarse group with two tunnels goes to the reference tracker."""
    assert _fast_path(ENCAP / "gtpu_uplink_downlink.pcap") == (0, 10, 1)
    assert _fast_path(ENCAP / "gtpu_two_tunnels_interleaved.pcap") == (0, 16, 0)


def test_tunnel_pairing():
    """TunnelPairing: a known TEID for its receiver names its tunnel (before an earlier
    tunnel that does not know that receiver yet); else the first tunnel without one;
    else a new one. Forgotten with the coarse key's last connection."""
    from pcapcheck.tcp.tracker import TunnelPairing, tunnel_ends, tunnels_of

    up = ("eth", "ipv4 192.0.2.1>192.0.2.2", "udp 2152", "gtpu 257", "ipv4")
    down = ("eth", "ipv4 192.0.2.2>192.0.2.1", "udp 2152", "gtpu 40961", "ipv4")
    assert tunnel_ends(up) == (("192.0.2.2", ("257",)),)
    assert tunnel_ends(("ipv4 192.0.2.1>192.0.2.2", "gtpu 257/40961", "ipv4")) == (
        ("192.0.2.2", ("257",)),
        ("192.0.2.1", ("40961",)),
    )
    k = connection_key("10.45.0.2", 40000, "198.51.100.10", 80, up)
    assert k == connection_key("198.51.100.10", 80, "10.45.0.2", 40000, down)
    assert k[4] == ("eth", "ipv4 192.0.2.1|192.0.2.2", "udp 2152", "gtpu", "ipv4")
    p = TunnelPairing()
    a_up, b_up = (("S", ("1",)),), (("S", ("2",)),)
    b_down, a_down = (("E", ("20",)),), (("E", ("10",)),)
    assert [p.place(k, e) for e in (a_up, b_up)] == [0, 1]
    assert p.place(k, (("E", ("20",)), ("S", ("2",)))) == 1  # both ends: tunnel 1
    assert p.place(k, b_down) == 1  # known for E in tunnel 1, unknown in tunnel 0
    assert p.place(k, a_down) == 0
    assert p.place(k, (("E", ("30",)),)) == 2  # known everywhere, and different
    assert p.key(k, 0) == k and p.key(k, 2) == (*k, 2)
    p.opened(k)
    p.opened(p.key(k, 1))
    p.closed(k)
    assert p.ends_of(p.key(k, 1)) == {"S": ("2",), "E": ("20",)}
    p.closed(p.key(k, 1))
    assert p.tunnels == {} and p.live == {}
    assert len(tunnels_of([up, down])) == 1
    assert len(tunnels_of([up, down, up[:3] + ("gtpu 258",) + up[4:]])) == 2


def test_gtpu_pairing_memory_is_bounded():
    """The tracker's pairing holds the coarse keys of the connections in its table only:
    both tunnels while they are open, nothing once they are finalised."""
    from pcapcheck.tcp.detectors import Checker
    from pcapcheck.tcp.tracker import Tracker

    tracker = Tracker(Checker())
    segs = segments(ENCAP / "gtpu_two_tunnels_interleaved.pcap")
    for seg in segs[:12]:
        tracker.feed(seg)
    assert [len(t) for t in tracker.pairing.tunnels.values()] == [2]
    assert list(tracker.pairing.live.values()) == [2]
    done = list(tracker.finish(segs[-1].ts))
    assert len(done) == 2 and tracker.pairing.tunnels == {} and tracker.pairing.live == {}


def test_gtpu_ladder_segments():
    """The ladder's segment index pairs the TEIDs as the tracker does: each connection of
    the interleaved capture gets its own frames."""
    from pcapcheck.report.ladder import connection_segments

    r = report(ENCAP / "gtpu_two_tunnels_interleaved.pcap")
    got = connection_segments(ENCAP / "gtpu_two_tunnels_interleaved.pcap", r["connections"])
    assert {cid: [s.frame for s in segs] for cid, segs in got.items()} == {
        1: [1, 3, 5, 7, 9, 11, 13, 14, 15, 16],
        2: [2, 4, 6, 8, 10, 12],
    }


@needs_tshark
def test_gtpu_crosscheck():
    """Wireshark's tcp.stream ignores GTP-U: the uplink/downlink connection is one stream
    (full agreement); the two interleaved tunnels are two streams split at the second
    tunnel's SYN (a reuse of the ports for Wireshark), each difference explained by the
    tunnel identity or as following from it."""
    from pcapcheck.compare import wireshark as cc

    got = cc.crosscheck(ENCAP / "gtpu_uplink_downlink.pcap")
    assert (got.tcp_frames, got.connections, got.streams) == (10, 1, 1)
    assert got.counts[cc.CONNECTION].both == 10
    assert got.disagreements == [], cc.render_crosscheck(got)
    got = cc.crosscheck(ENCAP / "gtpu_two_tunnels_interleaved.pcap")
    assert (got.tcp_frames, got.connections, got.streams) == (16, 2, 2)
    assert all(d.known for d in got.disagreements), cc.render_crosscheck(got)
    assert [(d.frame, d.kind, d.known) for d in got.disagreements[:2]] == [
        (2, "reused_ports", "tunnel-identity"),
        (3, cc.CONNECTION, "tunnel-identity"),
    ]


def test_erspan_type_by_the_gre_s_bit():
    """GRE protocol type 0x88BE is ERSPAN type I without a sequence number (no ERSPAN
    header: the mirrored frame follows GRE) and type II with one, as Wireshark's
    packet-erspan.c tells them apart; 0x22EB is type III either way."""
    from pcapcheck.capture.layers import (
        ERSPAN1,
        ERSPAN2,
        ERSPAN3,
        GRE_CHECK,
        GRE_VERSION,
    )

    def protocol_layer(flags: int, proto: int):
        gre = GRE_VERSION.layers[GRE_CHECK.next.read(struct.pack("!HH", flags, proto), 0)]
        return gre.dispatch.layers.get(proto)

    assert protocol_layer(0x0000, 0x88BE) is ERSPAN1
    assert protocol_layer(0x2000, 0x88BE) is ERSPAN1  # a key, no sequence number
    assert protocol_layer(0x1000, 0x88BE) is ERSPAN2
    assert protocol_layer(0x0000, 0x22EB) is protocol_layer(0x1000, 0x22EB) is ERSPAN3
    segs = segments(ENCAP / "erspan1.pcap")
    assert segs[0].encapsulation == ("eth", f"ipv4 {A4}", "gre", "erspan 1", "eth", "ipv4")


@needs_tshark
@pytest.mark.parametrize("name", ["erspan1.pcap", "erspan2.pcap", "erspan3.pcap"])
def test_erspan_crosscheck(name):
    """Wireshark decodes the same TCP frames inside ERSPAN; the second tunnel's
    connection is its only difference (tunnel identity, and what follows from it)."""
    from pcapcheck.compare import wireshark as cc

    got = cc.crosscheck(ENCAP / name)
    assert (got.tcp_frames, got.connections, got.streams) == (13, 2, 1)
    assert [(d.frame, d.kind, d.known) for d in got.disagreements] == [
        (11, cc.CONNECTION, "tunnel-identity"),
        (11, "retransmission", "tunnel-identity"),
        (12, "retransmission", "after-connection-difference"),
    ], cc.render_crosscheck(got)


def test_mpls_labels_per_direction_do_not_split_a_tunnelled_connection():
    """mpls_ipip_labels.pcap: IP-in-IP over MPLS, label 100 towards the server's side
    and 200 back (the downstream router's labels, RFC 3031 §3.4): one connection (the
    label was part of the identity: two one-sided connections); the label, one
    direction's only, is left out of its Wireshark filter."""
    from pcapcheck.report.common import connection_filter
    from pcapcheck.tcp.tracker import unpaired_idents

    r = report(ENCAP / "mpls_ipip_labels.pcap")
    path = ["eth", "mpls 100", f"ipv4 {A4}", "ipv4"]
    assert [
        (c["id"], c["first_frame"], c["last_frame"], c["handshake"], c["close"], c["encapsulation"])
        for c in r["connections"]
    ] == [(1, 1, 10, "complete", "graceful", path)]
    assert r["findings"] == []
    assert unpaired_idents(tuple(path)) == {1}
    assert connection_filter(r["connections"][0]) == (
        "ip.addr == 10.0.0.1 && tcp.port == 40000 && ip.addr == 10.0.0.2 && tcp.port == 80"
    )
    up, down = segments(ENCAP / "mpls_ipip_labels.pcap")[:2]
    assert (up.encapsulation[1], down.encapsulation[1]) == ("mpls 100", "mpls 200")
    assert connection_key(up.src, up.sport, up.dst, up.dport, up.encapsulation) == (
        connection_key(down.src, down.sport, down.dst, down.dport, down.encapsulation)
    )


@needs_tshark
def test_mpls_labels_crosscheck():
    from pcapcheck.compare import wireshark as cc

    got = cc.crosscheck(ENCAP / "mpls_ipip_labels.pcap")
    assert (got.tcp_frames, got.connections, got.streams) == (10, 1, 1)
    assert got.disagreements == [], cc.render_crosscheck(got)


#: Zeek's tunnel_parents view of each sample's first connection: (tunnel_type, orig_h,
#: resp_h, resp_p or None), outermost first.
ZEEK_TUNNELS = {
    "vxlan.pcap": [("Tunnel::VXLAN", "192.0.2.1", "192.0.2.2", 4789)],
    "teredo.pcap": [("Tunnel::TEREDO", "192.0.2.1", "192.0.2.2", 3544)],
    "gtpu_uplink_downlink.pcap": [("Tunnel::GTPv1", "192.0.2.1", "192.0.2.2", 2152)],
    "erspan2.pcap": [("Tunnel::GRE", "192.0.2.1", "192.0.2.2", None)],
    "sit_6in4.pcap": [("Tunnel::IP", "192.0.2.1", "192.0.2.2", None)],
    "mpls_ipip_labels.pcap": [("Tunnel::IP", "192.0.2.1", "192.0.2.2", None)],
    "kernel/ip6gretap.pcap": [("Tunnel::GRE", "2001:db8:ffff::1", "2001:db8:ffff::2", None)],
    "kernel/geneve_under6.pcap": [("Tunnel::GENEVE", "2001:db8:ffff::1", "2001:db8:ffff::2", 6081)],
    "kernel/ip6tnl_inner6.pcap": [("Tunnel::IP", "2001:db8:ffff::1", "2001:db8:ffff::2", None)],
}


@pytest.mark.parametrize("name", sorted(ZEEK_TUNNELS))
def test_tunnel_parents_give_zeeks_tunnel_types(name):
    """The first connection's ``tunnel_parents``: Zeek's tunnel.log type and id of each
    tunnel (the UDP port only for a tunnel in UDP); the sample's other connections (in
    another tunnel) have tunnels of the same types."""
    conns = report(ENCAP / name)["connections"]
    got = [
        [(t["tunnel_type"], t["orig_h"], t["resp_h"], t.get("resp_p")) for t in c["tunnel_parents"]]
        for c in conns
    ]
    assert got[0] == ZEEK_TUNNELS[name]
    assert {tuple(t[0] for t in g) for g in got} == {tuple(t[0] for t in ZEEK_TUNNELS[name])}


def test_tunnel_parents_of_nested_tunnels_outermost_first():
    """VXLAN inside GRE inside IPv6-in-IPv4, below an MPLS label (a link layer for Zeek,
    no entry), and a path without a tunnel."""
    from pcapcheck.capture.layers import tunnel_parents

    path = [
        "eth", "mpls 100", "ipv4 192.0.2.1>192.0.2.2", "ipv6 2001:db8::a>2001:db8::b",
        "gre 7", "ipv4 198.51.100.1>198.51.100.2", "udp 4789", "vxlan 42", "eth", "ipv4",
    ]  # fmt: skip
    assert tunnel_parents(path) == [
        {"tunnel_type": "Tunnel::IP", "orig_h": "192.0.2.1", "resp_h": "192.0.2.2"},
        {"tunnel_type": "Tunnel::GRE", "orig_h": "2001:db8::a", "resp_h": "2001:db8::b"},
        {
            "tunnel_type": "Tunnel::VXLAN",
            "orig_h": "198.51.100.1",
            "resp_h": "198.51.100.2",
            "resp_p": 4789,
        },
    ]
    assert tunnel_parents(["eth", "vlan 10", "mpls 100", "ipv4"]) == []


def test_the_fast_paths_key_shortcut_is_the_table_key():
    """The tracker, the summarising tracker and the established lane key a segment
    without encapsulation by :func:`connection_key` directly, sparing the call of
    ``Tracker.table_key``: that is only right while the table key of such a segment is
    its connection key, and the first tunnel of a coarse key is the coarse key itself
    (the lookahead's ``FastConn`` keys by ``connection_key`` with the path)."""
    from pcapcheck.tcp.detectors import Checker
    from pcapcheck.tcp.tracker import Tracker, TunnelPairing

    tracker = Tracker(Checker())
    assert tracker.table_key("10.0.0.2", 80, "10.0.0.1", 40000) == connection_key(
        "10.0.0.2", 80, "10.0.0.1", 40000
    )
    path = ("eth", "ipv4 192.0.2.1>192.0.2.2", "udp 2152", "gtpu 257", "ipv4")
    coarse = connection_key("10.0.0.1", 40000, "10.0.0.2", 80, path)
    assert tracker.table_key("10.0.0.1", 40000, "10.0.0.2", 80, path) == coarse
    assert TunnelPairing.key(coarse, 0) == coarse
    assert TunnelPairing.key(coarse, 1) == (*coarse, 1)
