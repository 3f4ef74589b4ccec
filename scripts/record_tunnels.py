#!/usr/bin/env python3
"""Record TCP through the Linux kernel's own tunnel devices as sample captures (issue 24).

Usage (needs root: network namespaces, tunnel devices, tcpdump)::

    python scripts/record_tunnels.py            # record every tunnel
    python scripts/record_tunnels.py vxlan gre  # record only these
    python scripts/record_tunnels.py --list     # list them
    python scripts/record_tunnels.py --vm gre   # in a guest with Debian's kernel
    python scripts/record_tunnels.py --out DIR  # elsewhere than sample_pcaps/encap/kernel

``--vm`` runs this same script (``--out``) inside a QEMU guest booted with Debian's
kernel, which has every tunnel driver as a module, for a machine whose own kernel lacks
them (``scripts/tunnel_vm.py``: what it fetches and caches, how long it takes).

For each tunnel two network namespaces are made (``ip netns add``), joined by a veth
pair, the underlay (192.0.2.1/24 <-> 192.0.2.2/24, and 2001:db8:ffff::1/64 <-> ::2 for
the IPv6 underlays; fixed MAC addresses and permanent neighbour entries, so no ARP or
neighbour discovery is recorded); in each namespace the kernel's tunnel device of that
kind (``ip link add t0 type vxlan / geneve / gre / gretap / ipip / sit / ip6tnl /
ip6gre``) to the other one, with the overlay addresses 10.0.0.1/24 <-> 10.0.0.2/24
(2001:db8::1/64 <-> ::2 for the IPv6 inside sit); IPv6 is off everywhere else (no router
solicitation or MLD report is recorded). ``tcpdump -i veth-a`` in the first namespace
records the underlay while Python sockets make two connections, the client in the first
namespace (``ip netns exec``), the server in the second, on fixed ports:

* port 40001 -> 8080: a request, a response, the server closes, then the client (clean);
* port 40002 -> 8080: a request, a response, then the client aborts (SO_LINGER 0: RST).

Besides the kinds of ``ip link add``, VXLAN with IPv6 inside (``vxlan_inner6``), over
an IPv6 underlay (``vxlan_under6``) and on Linux's historical port 8472
(``vxlan_8472``, decoded with the ``tunnel-ports`` key); Geneve over IPv6
(``geneve_under6``) and with two options (``geneve_opts``: a device in external mode and
a route with ``encap ip ... geneve_opts``, ``ROUTES``), GRE with a key (``gre_key``:
``key 42``, RFC 2890) and with every optional field (``gre_csum_seq``), IPv6 inside
IPv6 (``ip6tnl_inner6``), Ethernet in GRE over IPv6 (``ip6gretap``), and ip6tnl / ip6gre
without the Tunnel Encapsulation Limit option (``*_noencap``: ``encaplimit none``; by
default Linux puts that option, RFC 2473 §4.1.1, in a Destination Options header before
the tunnelled packet). A kernel built without a kind of device skips it, said so (the
VXLAN captures were recorded on the host's kernel, 6.18, the others with ``--vm``:
sample_pcaps/encap/kernel/README.md).

The namespaces are deleted at the end, also when a step fails. The captures go to
``sample_pcaps/encap/kernel/<tunnel>.pcap``; sequence numbers, timestamps and IP IDs
are the kernel's (random), so re-recording never gives the same bytes:
``tests/test_tunnels.py`` asserts what does not change (connections, 4-tuples,
encapsulation paths, states, findings).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "sample_pcaps" / "encap" / "kernel"

UNDER4 = ("192.0.2.1", "192.0.2.2")
UNDER6 = ("2001:db8:ffff::1", "2001:db8:ffff::2")
MACS = ("02:00:00:00:0a:01", "02:00:00:00:0a:02")
INNER4 = ("10.0.0.1", "10.0.0.2")
INNER6 = ("2001:db8::1", "2001:db8::2")
SERVER_PORT = 8080
CLIENT_PORTS = (40001, 40002)
REQUEST = b"GET / HTTP/1.0\r\n\r\n"
RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nHello, world\n"
STEP = 0.2
#: the frames of the two connections: 10 + 8 (handshake, request, its ACK, response, its
#: ACK, then FIN, FIN, ACK or the RST); a capture with others is recorded again, up to
#: TRIES times
FRAMES = 18
TRIES = 3
#: seconds after IPv6 addresses are added before recording: the kernel's unsolicited MLD
#: reports (RFC 3810 §6.1: robustness 2, 1 s apart) are over by then
MLD_QUIET = 3.0

#: tunnel -> (underlay IP version, inner IP version, the ``ip link add`` arguments after
#: ``type``, with {local} and {remote} filled per namespace). A kernel built without a
#: kind ("Unknown device type") skips it, said so.
TUNNELS: dict[str, tuple[int, int, str]] = {
    "vxlan": (4, 4, "vxlan id 42 local {local} remote {remote} dstport 4789 dev veth"),
    # IPv6 inside, an IPv6 underlay, and Linux's historical port (tunnel-ports)
    "vxlan_inner6": (4, 6, "vxlan id 42 local {local} remote {remote} dstport 4789 dev veth"),
    "vxlan_under6": (6, 4, "vxlan id 42 local {local} remote {remote} dstport 4789 dev veth"),
    "vxlan_8472": (4, 4, "vxlan id 7 local {local} remote {remote} dstport 8472 dev veth"),
    "geneve": (4, 4, "geneve id 42 remote {remote} dstport 6081"),
    "geneve_under6": (6, 4, "geneve id 42 remote {remote} dstport 6081"),
    # Geneve options (RFC 8926 §3.5): a device in "external" mode (collect_md), the
    # tunnel and its option (ROUTES) given per route
    "geneve_opts": (4, 4, "geneve external dstport 6081"),
    "gre": (4, 4, "gre local {local} remote {remote} ttl 64"),
    # the GRE key field (RFC 2890 §2.1) in every packet
    "gre_key": (4, 4, "gre local {local} remote {remote} ttl 64 key 42"),
    # every optional GRE field: checksum, key and sequence number (RFC 2784, RFC 2890)
    "gre_csum_seq": (4, 4, "gre local {local} remote {remote} ttl 64 key 42 csum seq"),
    "gretap": (4, 4, "gretap local {local} remote {remote} ttl 64"),
    "ipip": (4, 4, "ipip local {local} remote {remote} ttl 64"),
    "sit": (4, 6, "sit local {local} remote {remote} ttl 64"),
    "ip6tnl": (6, 4, "ip6tnl mode any local {local} remote {remote}"),
    "ip6tnl_inner6": (6, 6, "ip6tnl mode any local {local} remote {remote}"),
    "ip6gre": (6, 4, "ip6gre local {local} remote {remote}"),
    "ip6gretap": (6, 4, "ip6gretap local {local} remote {remote}"),
    # no Destination Options header (RFC 2473 §4.1.1's encapsulation limit) before the
    # tunnelled packet
    "ip6tnl_noencap": (6, 4, "ip6tnl mode any local {local} remote {remote} encaplimit none"),
    "ip6gre_noencap": (6, 4, "ip6gre local {local} remote {remote} encaplimit none"),
}


#: tunnel -> the route to the peer's overlay address, with its lightweight-tunnel
#: encapsulation (``ip route add {peer} encap ip ...``), for the devices in "external"
#: mode, whose tunnel (VNI, remote, options) is per route
ROUTES: dict[str, str] = {
    # class and type are read as C numbers (0x: hex), the data as hex digits
    "geneve_opts": "{peer}/32 encap ip id 42 dst {remote} ttl 64"
    " geneve_opts 0x0102:0x01:00880022,0x0103:0x02:0000000100000002 dev t0",
}


class RecordError(Exception):
    """A step of a recording failed (one line)."""


class Retry(RecordError):
    """The recording holds other packets than the two connections' 18 (an extra pure ACK
    happens when the machine is slow, as an emulated guest is): recorded again."""


class Unsupported(RecordError):
    """The kernel has no device of this kind."""


def run(*cmd: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd`` (in the namespace ``ns``); :class:`RecordError` when it fails."""
    full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    proc = subprocess.run(full, capture_output=True, text=True, check=False)
    if check and proc.returncode:
        error = Unsupported if "Unknown device type" in proc.stderr else RecordError
        raise error(f"{' '.join(full)}: {proc.stderr.strip() or proc.returncode}")
    return proc


class Namespaces:
    """Two namespaces joined by a veth pair, with a tunnel of ``kind`` between them;
    a context manager that deletes them on exit (whatever happened)."""

    def __init__(self, kind: str):
        self.kind = kind
        #: the tunnel carries Ethernet frames (inner neighbours made permanent too)
        self.ethernet = TUNNELS[kind][2].split()[0] in ("vxlan", "geneve", "gretap", "ip6gretap")
        tag = f"{os.getpid()}"
        self.names = (f"pcc-tun-a-{tag}", f"pcc-tun-b-{tag}")

    def __enter__(self) -> Namespaces:
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in self.names:
            run("ip", "netns", "del", ns, check=False)

    def _build(self) -> None:
        under, inner, spec = TUNNELS[self.kind]
        a, b = self.names
        for ns in self.names:
            run("ip", "netns", "add", ns)
            for key in ("all", "default"):  # no IPv6 unless asked for below
                run("sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1", ns=ns)
        run("ip", "link", "add", "veth", "netns", a, "type", "veth", "peer", "veth", "netns", b)
        addrs = UNDER4 if under == 4 else UNDER6
        for i, ns in enumerate(self.names):
            other = 1 - i
            run("ip", "link", "set", "lo", "up", ns=ns)
            run("ip", "link", "set", "veth", "address", MACS[i], ns=ns)
            if under == 6:
                run("sysctl", "-qw", "net.ipv6.conf.veth.disable_ipv6=0", ns=ns)
                run("ip", "link", "set", "veth", "addrgenmode", "none", ns=ns)
                run("ip", "addr", "add", f"{addrs[i]}/64", "dev", "veth", "nodad", ns=ns)
            else:
                run("ip", "addr", "add", f"{addrs[i]}/24", "dev", "veth", ns=ns)
            run("ip", "link", "set", "veth", "up", ns=ns)
            run(
                "ip", "neigh", "replace", addrs[other], "lladdr", MACS[other],
                "dev", "veth", "nud", "permanent", ns=ns,
            )  # fmt: skip
            args = spec.format(local=addrs[i], remote=addrs[other]).split()
            run("ip", "link", "add", "t0", "type", *args, ns=ns)
            if inner == 6:
                run("sysctl", "-qw", "net.ipv6.conf.t0.disable_ipv6=0", ns=ns)
                run("ip", "link", "set", "t0", "addrgenmode", "none", ns=ns)
                run("ip", "addr", "add", f"{INNER6[i]}/64", "dev", "t0", "nodad", ns=ns)
            else:
                run("ip", "addr", "add", f"{INNER4[i]}/24", "dev", "t0", ns=ns)
            if self.ethernet:  # Ethernet inside: fixed MACs
                run("ip", "link", "set", "t0", "address", MACS[i].replace(":0a:", ":0b:"), ns=ns)
            run("ip", "link", "set", "t0", "up", ns=ns)
            if self.kind in ROUTES:
                peer = (INNER6 if inner == 6 else INNER4)[other]
                route = ROUTES[self.kind].format(peer=peer, remote=addrs[other]).split()
                run("ip", "route", "add", *route, ns=ns)
        if self.ethernet:
            for i, ns in enumerate(self.names):
                other = 1 - i
                run(
                    "ip", "neigh", "replace", (INNER6 if inner == 6 else INNER4)[other],
                    "lladdr", MACS[other].replace(":0a:", ":0b:"),
                    "dev", "t0", "nud", "permanent", ns=ns,
                )  # fmt: skip


def serve(host: str) -> None:
    """The server (``--serve``, run in the second namespace): two connections, each a
    request and a response; the first it closes after the response, the second it
    reads to the end (the client resets it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as ls:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, SERVER_PORT))
        ls.listen(4)
        print("listening", flush=True)
        ls.settimeout(20)
        for n in range(2):
            conn, _ = ls.accept()
            with conn:
                conn.settimeout(10)
                data = b""
                while not data.endswith(b"\r\n\r\n"):
                    got = conn.recv(4096)
                    if not got:
                        break
                    data += got
                conn.sendall(RESPONSE)
                if n == 0:
                    time.sleep(STEP)
                    conn.shutdown(socket.SHUT_WR)
                try:
                    while conn.recv(4096):
                        pass
                except ConnectionResetError:
                    pass


def connect(host: str) -> None:
    """The client (``--connect``, run in the first namespace): the two connections of
    the module docstring, from fixed ports."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for n, port in enumerate(CLIENT_PORTS):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(10)
        s.bind(("", port))
        s.connect((host, SERVER_PORT))
        s.sendall(REQUEST)
        got = b""
        while len(got) < len(RESPONSE):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        if got != RESPONSE:
            raise SystemExit(f"client: got {got!r}")
        time.sleep(STEP)
        if n == 0:
            while s.recv(4096):  # the server's FIN
                pass
            s.close()
        else:  # abort: RST
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        time.sleep(STEP)


def count_frames(pcap: bytes) -> int:
    """The number of records of a classic pcap file as tcpdump writes it (host order,
    24-byte file header, 16-byte record headers; a cut last record not counted)."""
    order = "<" if pcap[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    n, pos = 0, 24
    while pos + 16 <= len(pcap):
        pos += 16 + struct.unpack_from(f"{order}I", pcap, pos + 8)[0]
        n += pos <= len(pcap)
    return n


def record(kind: str, out_dir: Path = OUT_DIR) -> Path:
    """Record the tunnel ``kind``; return the capture's path."""
    tcpdump = shutil.which("tcpdump") or "/usr/bin/tcpdump"
    inner = TUNNELS[kind][1]
    server = INNER6[1] if inner == 6 else INNER4[1]
    with Namespaces(kind) as spaces, tempfile.TemporaryDirectory() as tmp:
        a, b = spaces.names
        if 6 in TUNNELS[kind][:2]:  # the MLD reports of the new addresses, unrecorded
            time.sleep(MLD_QUIET)
        raw = Path(tmp) / f"{kind}.pcap"
        dump = subprocess.Popen(
            ["ip", "netns", "exec", a, tcpdump, "-i", "veth", "-U", "--immediate-mode",
             "-s", "0", "-Z", "root", "-w", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        srv = None
        try:
            assert dump.stderr is not None
            line = dump.stderr.readline()
            if "listening" not in line:
                raise RecordError(f"tcpdump: {line.strip()}")
            me = [sys.executable, str(Path(__file__).resolve())]
            srv = subprocess.Popen(
                ["ip", "netns", "exec", b, *me, "--serve", server],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert srv.stdout is not None
            if srv.stdout.readline().strip() != "listening":
                raise RecordError(f"server: {srv.stderr.read() if srv.stderr else ''}")
            client = run("ip", "netns", "exec", a, *me, "--connect", server, check=False)
            if client.returncode:
                raise RecordError(f"client: {client.stderr.strip()}")
            if srv.wait(timeout=30):
                raise RecordError(f"server: {srv.stderr.read() if srv.stderr else ''}")
            time.sleep(STEP)
        finally:
            if srv is not None and srv.poll() is None:
                srv.kill()
                srv.wait()
            dump.send_signal(signal.SIGINT)
            try:
                dump.wait(timeout=10)
            except subprocess.TimeoutExpired:
                dump.kill()
                dump.wait()
        if not raw.exists() or raw.stat().st_size <= 24:
            raise RecordError(f"{kind}: tcpdump wrote no packet")
        frames = count_frames(raw.read_bytes())
        if frames != FRAMES:
            raise Retry(f"{frames} frames recorded, not {FRAMES}")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{kind}.pcap"
        shutil.copyfile(raw, target)
    return target


def record_until_clean(kind: str, out_dir: Path = OUT_DIR) -> Path:
    """:func:`record`, again (up to :data:`TRIES` times) while the capture does not hold
    exactly the :data:`FRAMES` frames of the two connections."""
    for attempt in range(1, TRIES + 1):
        try:
            return record(kind, out_dir)
        except Retry as exc:
            if attempt == TRIES:
                raise RecordError(f"{exc} in each of {TRIES} tries") from None
            print(f"{kind}: {exc}, recording again", file=sys.stderr)
    raise AssertionError("unreachable")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tunnels", nargs="*", help="tunnels to record (default: all)")
    ap.add_argument("--list", action="store_true", help="list the tunnels")
    ap.add_argument(
        "--vm", action="store_true",
        help="record in a KVM guest with Debian's kernel (scripts/tunnel_vm.py)",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="where the captures go")
    ap.add_argument("--serve", metavar="HOST", help=argparse.SUPPRESS)
    ap.add_argument("--connect", metavar="HOST", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.connect:
        connect(args.connect)
        return 0
    if args.list:
        print("\n".join(TUNNELS))
        return 0
    unknown = [t for t in args.tunnels if t not in TUNNELS]
    if unknown:
        print(f"unknown tunnel {unknown[0]!r} (known: {', '.join(TUNNELS)})", file=sys.stderr)
        return 2
    if args.vm:
        import tunnel_vm  # scripts/, beside this file

        return tunnel_vm.main([*args.tunnels, "--out", str(args.out)])
    if os.geteuid() != 0:
        print("record_tunnels.py needs root (network namespaces)", file=sys.stderr)
        return 2
    failed = 0
    for kind in args.tunnels or TUNNELS:
        try:
            path = record_until_clean(kind, args.out)
        except Unsupported:
            print(f"{kind}: skipped, this kernel has no such device", file=sys.stderr)
            continue
        except (RecordError, subprocess.TimeoutExpired, OSError) as exc:
            print(f"{kind}: {exc}", file=sys.stderr)
            failed += 1
            continue
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        print(f"{kind}: {shown} ({path.stat().st_size} bytes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
