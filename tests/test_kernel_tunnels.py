"""TCP through the Linux kernel's own GRE, gretap, IPIP, sit, ip6tnl, ip6gre, ip6gretap and
Geneve devices (issue 24), recorded by ``scripts/record_tunnels.py --vm`` in a guest running
Debian's kernel 6.1.0-57-amd64 (sample_pcaps/encap/kernel/README.md): the exact
connections, encapsulation paths, states and findings; the batch decoder's fast path
where it walks the tunnel; and Wireshark's agreement, frame for frame.

Every capture holds the same two connections (record_tunnels' module docstring): a clean
one from port 40001 (the server closes first: TIME-WAIT on its side, frames 1-10) and
one the client resets (SO_LINGER 0: RS001 at the RST, frame 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import needs_tshark

from pcapcheck.capture.decoder import Decoder
from pcapcheck.capture.reader import open_capture
from pcapcheck.fast.batch_decoder import BatchSource
from pcapcheck.model import Segment

ROOT = Path(__file__).resolve().parent.parent
KERNEL = ROOT / "sample_pcaps" / "encap" / "kernel"
SCRIPTS = ROOT / "scripts"

U4 = "ipv4 192.0.2.1>192.0.2.2"
U6 = "ipv6 2001:db8:ffff::1>2001:db8:ffff::2"
C4, S4 = "10.0.0.1", "10.0.0.2"
C6, S6 = "[2001:db8::1]", "[2001:db8::2]"

#: capture -> (client address, server address, encapsulation path, decoded on the batch
#: decoder's fast path). The fast path builds Segments from IPv4 only (IPv6 inside goes
#: one by one: sit, ip6tnl_inner6) and walks into a tunnel after an outer IPv6 header
#: only when no extension header comes first; Linux's ip6tnl, ip6gre and ip6gretap put a
#: Destination Options header (the Tunnel Encapsulation Limit option, RFC 2473 §4.1.1)
#: there unless told ``encaplimit none`` (the *_noencap captures), so they go one by one.
CAPTURES = {
    "geneve.pcap": (C4, S4, ["eth", U4, "udp 6081", "geneve 42", "eth", "ipv4"], True),
    "geneve_under6.pcap": (C4, S4, ["eth", U6, "udp 6081", "geneve 42", "eth", "ipv4"], True),
    "gre.pcap": (C4, S4, ["eth", U4, "gre", "ipv4"], True),
    "gre_key.pcap": (C4, S4, ["eth", U4, "gre 42", "ipv4"], True),  # RFC 2890 key
    "gre_csum_seq.pcap": (C4, S4, ["eth", U4, "gre 42", "ipv4"], True),  # and C, S
    # two options (RFC 8926 §3.5) the path does not show
    "geneve_opts.pcap": (C4, S4, ["eth", U4, "udp 6081", "geneve 42", "eth", "ipv4"], True),
    "gretap.pcap": (C4, S4, ["eth", U4, "gre", "eth", "ipv4"], True),
    "ipip.pcap": (C4, S4, ["eth", U4, "ipv4"], True),
    "sit.pcap": (C6, S6, ["eth", U4, "ipv6"], False),
    "ip6tnl.pcap": (C4, S4, ["eth", U6, "ipv4"], False),
    "ip6tnl_inner6.pcap": (C6, S6, ["eth", U6, "ipv6"], False),
    "ip6tnl_noencap.pcap": (C4, S4, ["eth", U6, "ipv4"], True),
    "ip6gre.pcap": (C4, S4, ["eth", U6, "gre", "ipv4"], False),
    "ip6gre_noencap.pcap": (C4, S4, ["eth", U6, "gre", "ipv4"], True),
    "ip6gretap.pcap": (C4, S4, ["eth", U6, "gre", "eth", "ipv4"], False),
}  # fmt: skip

#: the captures whose outer IPv6 header is followed by a Destination Options header
#: holding Tunnel Encapsulation Limit 4 (RFC 2473 §4.1.1) and a PadN
ENCAP_LIMIT = {"ip6tnl.pcap", "ip6tnl_inner6.pcap", "ip6gre.pcap", "ip6gretap.pcap"}


def report(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "pcapcheck", "analyze", str(path), "-f", "json", "--isolated"],
        capture_output=True,
        check=False,
        cwd=ROOT,
        text=True,
    )
    assert out.returncode == 0, out.stderr  # RS001 alone does not fail the run
    (r,) = json.loads(out.stdout)["files"]
    return r


def _conns(r: dict) -> list[tuple]:
    return [
        (
            c["id"], c["client"], c["server"], c.get("encapsulation"), c["handshake"],
            c["close"], c["client_state"], c["server_state"], c["conn_state"],
            c["packets"]["client"], c["packets"]["server"], c["first_frame"], c["last_frame"],
        )
        for c in r["connections"]
    ]  # fmt: skip


def test_every_kernel_capture_is_listed():
    """Every capture of the directory is asserted here, or in tests/test_tunnels.py (the
    VXLAN ones, recorded on the host's own kernel)."""
    on_disk = {p.name for p in KERNEL.glob("*.pcap")}
    assert on_disk - set(CAPTURES) == {
        "vxlan.pcap", "vxlan_8472.pcap", "vxlan_inner6.pcap", "vxlan_under6.pcap",
    }  # fmt: skip
    assert set(CAPTURES) <= on_disk


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_kernel_tunnel_connections(name):
    """The two connections, their tunnel in the path, their states, packet counts and
    frames; RS001 at the abort's RST and nothing else; every frame decoded."""
    client, server, path, _batched = CAPTURES[name]
    r = report(KERNEL / name)
    assert _conns(r) == [
        (1, f"{client}:40001", f"{server}:8080", path, "complete", "graceful",
         "CLOSED", "TIME-WAIT", "SF", 5, 5, 1, 10),
        (2, f"{client}:40002", f"{server}:8080", path, "complete", "reset",
         "CLOSED", "CLOSED", "RSTO", 5, 3, 11, 18),
    ]  # fmt: skip
    assert [(f["rule"], f["connection"], f["frame"]) for f in r["findings"]] == [("RS001", 2, 18)]
    assert (r["packets"], r["skipped"], r["malformed"]) == (18, {}, 0)


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_kernel_tunnel_batch_decoder(name):
    """The batch decoder gives exactly the decoder's Segments (same frames, same paths);
    the tunnels it walks in batches are counted in ``tunnelled``, the rest one by one."""
    batched = CAPTURES[name][3]
    dec = Decoder()
    one_by_one = [dec.decode(rec) for rec in open_capture(KERNEL / name)]
    batch = BatchSource(KERNEL / name)
    items = [item for _f, _t, item in batch]
    assert items == one_by_one
    assert sum(type(item) is Segment for item in items) == 18
    # each packet's own path: the server's packets show the underlay the other way round
    path = CAPTURES[name][2]
    back = " ".join([path[1].split()[0], ">".join(reversed(path[1].split()[1].split(">")))])
    assert {item.encapsulation for item in items} == {
        tuple(path), (path[0], back, *path[2:]),
    }  # fmt: skip
    assert (batch.one_by_one, batch.tunnelled) == ((0, 18) if batched else (18, 0))
    # checksums verified: the inner TCP checksums are checksum offload's partial ones
    # (README.md; Wireshark calls them bad too), on both paths
    dec = Decoder(verify_checksums=True)
    verified = [dec.decode(rec) for rec in open_capture(KERNEL / name)]
    assert [s.checksum_ok for s in verified] == [False] * 18
    assert [item for _f, _t, item in BatchSource(KERNEL / name, verify_checksums=True)] == verified


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_kernel_tunnel_headers(name):
    """What the kernel put on the wire, read from the bytes (so the reasons of the table
    above stay true of the captures): the outer IPv6 next header is 60 (Destination
    Options: option type 4, Tunnel Encapsulation Limit, value 4) for the ip6 tunnels
    without ``encaplimit none``, the tunnel's protocol otherwise; GRE's key flag and key."""
    path = CAPTURES[name][2]
    for rec in open_capture(KERNEL / name):
        data = bytes(rec.data)
        assert data[12:14] == (b"\x86\xdd" if path[1] == U6 else b"\x08\x00")
        if path[1] == U6:
            nh = data[14 + 6]
            if name in ENCAP_LIMIT:
                assert nh == 60
                assert data[54:62] == bytes([data[54], 0, 4, 1, 4, 1, 1, 0])
                nh, inner = data[54], 62
            else:
                inner = 54
        else:
            nh, inner = data[14 + 9], 34
        assert nh == {"gre": 47, "gre 42": 47, "udp 6081": 17, "ipv4": 4, "ipv6": 41}[path[2]]
        if path[2].startswith("gre"):
            flags, proto = data[inner : inner + 2], data[inner + 2 : inner + 4]
            assert proto == (b"\x65\x58" if path[3] == "eth" else b"\x08\x00")
            key = (42).to_bytes(4, "big")
            if name == "gre_csum_seq.pcap":  # C, K, S: checksum and reserved, key, sequence
                assert (flags, data[inner + 6 : inner + 12]) == (b"\xb0\x00", b"\0\0" + key)
            elif path[2] == "gre 42":
                assert (flags, data[inner + 4 : inner + 8]) == (b"\x20\x00", key)
            else:
                assert flags == b"\x00\x00"
        if path[2] == "udp 6081":  # Geneve: options length (4-byte words), VNI
            geneve = data[inner + 8 :]
            words = 5 if name == "geneve_opts.pcap" else 0
            assert (geneve[0], geneve[2:4], geneve[4:8]) == (words, b"\x65\x58", b"\0\0\x2a\0")
            if words:  # class 0x0102 type 1 (4 bytes), class 0x0103 type 2 (8 bytes)
                assert geneve[8:28].hex() == "01020101008800220103020200000001" + "00000002"


@needs_tshark
@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_kernel_tunnel_agrees_with_wireshark(name):
    """crosscheck: every TCP frame grouped into the same connections as Wireshark's
    tcp.stream, the same analysis flags (none), no disagreement at all."""
    from pcapcheck.compare import wireshark as cc

    got = cc.crosscheck(KERNEL / name)
    assert (got.tcp_frames, got.connections, got.streams) == (18, 2, 2)
    assert got.counts[cc.CONNECTION].both == 18
    assert got.disagreements == [], cc.render_crosscheck(got)


def test_tunnel_vm_refuses_an_unknown_tunnel():
    """scripts/tunnel_vm.py: an unknown tunnel name is a one-line error, exit 2, before
    anything is fetched or booted."""
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "tunnel_vm.py"), "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr.startswith("tunnel_vm: unknown tunnel 'nope' (known: vxlan, ")
    assert out.stderr.count("\n") == 1


def test_tunnel_vm_initramfs_cpio():
    """The guest's initramfs: a new-format cpio archive that BusyBox's cpio lists back
    (names, types, sizes), with the modules in the order they are loaded by /init."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import tunnel_vm
    finally:
        sys.path.remove(str(SCRIPTS))
    archive = tunnel_vm._cpio(
        [
            ("d", 0o040755, b"", (0, 0)),
            ("d/f", 0o100644, b"abcde", (0, 0)),
            ("l", 0o120777, b"d/f", (0, 0)),
            ("dev/console", 0o020600, b"", (5, 1)),
        ]
    )
    assert archive.startswith(b"070701")
    assert len(archive) % 4 == 0
    assert archive.endswith(b"TRAILER!!!\0\0\0\0")
    # the header of d/f: ino 2, mode, uid, gid, nlink 1, mtime, size 5, ..., namesize 4
    head = archive.index(b"070701", 1)
    fields = [int(archive[head + 6 + 8 * i : head + 14 + 8 * i], 16) for i in range(13)]
    assert fields == [2, 0o100644, 0, 0, 1, 0, 5, 0, 0, 0, 0, 4, 0]
    assert archive[head + 110 : head + 114] == b"d/f\0"
    assert archive[head + 116 : head + 121] == b"abcde"  # name padded to 4 bytes
    busybox = Path("/bin/busybox")
    if busybox.exists():
        listing = subprocess.run(
            [str(busybox), "cpio", "-t", "-v"], input=archive, capture_output=True, check=True
        ).stdout.decode()
        rows = [line.split()[:3] + line.split()[5:] for line in listing.splitlines()]
        assert rows == [
            ["drwxr-xr-x", "0/0", "0", "d"],
            ["-rw-r--r--", "0/0", "5", "d/f"],
            ["lrwxrwxrwx", "0/0", "0", "l", "->", "d/f"],
            ["crw-------", "0/0", "0", "dev/console"],
        ]
