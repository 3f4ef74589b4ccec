#!/usr/bin/env python3
"""Run ``scripts/record_tunnels.py`` inside a QEMU guest booted with Debian's kernel (issue 24).

Usage (root)::

    python scripts/record_tunnels.py --vm                 # every tunnel, in the guest
    python scripts/record_tunnels.py --vm gre ip6gre      # only these
    python scripts/tunnel_vm.py gre                       # the same
    python scripts/tunnel_vm.py --accel kvm gre           # with KVM (see ACCEL)
    python scripts/tunnel_vm.py -v gre                    # and print the guest's console

Why: the recording needs the kernel's tunnel drivers (``ip_gre``, ``ipip``, ``sit``,
``ip6_tunnel``, ``ip6_gre``, ``geneve``, ``vxlan``, ``veth``); a machine whose own kernel
was built without them (no ``/lib/modules``: "Unknown device type") boots Debian's
kernel, which has them all as modules, in a small virtual machine and records there. The
recording is :mod:`record_tunnels`' own code path (namespaces, tcpdump, sockets),
unchanged: the guest runs ``record_tunnels.py --out /tmp/out KIND...``.

What it fetches, once (the cache, ``/var/tmp/pcapcheck-vm`` or ``$PCAPCHECK_VM_CACHE``):

* the kernel package that Debian's ``linux-image-amd64`` depends on (``apt-cache depends``;
  recorded with bookworm's ``linux-image-6.1.0-57-amd64`` 6.1.192-3, about 70 MB), by
  ``apt-get download`` and unpacked with ``dpkg-deb -x`` into ``<cache>/<package>_<version>/``
  (about 400 MB; a later run whose apt lists name the same package reuses it, a newer
  package is fetched beside it);
* nothing else: QEMU (``qemu-system-x86``) and a static BusyBox (``busybox-static``) come
  from Debian's packages (``apt-get install -y --no-install-recommends qemu-system-x86
  busybox-static``; a missing one is a one-line error naming the package).

The guest: the Debian ``vmlinuz`` and an initramfs made here (a new-format cpio, written by
this script: BusyBox, ``/init``, and the modules the guest needs, uncompressed ``.ko``
files in the order of their ``depends=`` (``.modinfo``): virtio PCI and 9P to reach the
host's files, and the tunnel drivers, loaded with ``insmod`` before the recording, so no
``modprobe`` or ``/lib/modules`` is needed in the guest). Its root is the initramfs
(writable), with the host's ``/usr``, ``/etc``, the running Python's prefix (when not under
``/usr``) and this repository mounted read-only through virtio-9p at the same paths, tmpfs
on ``/tmp`` and ``/run``, and a writable 9P share at ``/tmp/out`` where the captures and
the log are written. The guest has no network device (``-nodefaults``); it powers off
when the recording ends (``poweroff -f``), and QEMU's exit ends the run. Then the captures
are copied to ``sample_pcaps/encap/kernel/`` (or ``--out``), and the guest's kernel
release is printed (record it in that directory's README.md).

Time (2-core machine, QEMU's TCG: see :data:`ACCEL`): the first run a few seconds more to
fetch and unpack the kernel; each run about 10 s to boot, then 20-35 s per tunnel (the
emulated guest starts Python three times per tunnel; the IPv6 ones wait 3 s for MLD):
the 13 kinds recorded in the guest took about 7 minutes. The guest's timing is not a
native machine's: now and then the server sends one more pure ACK (a duplicate ACK
around the request or the response: 19 frames); record_tunnels.py records such a tunnel
again (``FRAMES``, ``TRIES``), which adds its time.

Errors (exit 2, one line): not root, no ``/dev/kvm`` (``--accel kvm``), a missing
program, an unknown tunnel, a kernel package that cannot be found or fetched, a guest
whose kernel printed nothing within :data:`SILENT` seconds, a guest that did not finish
(the last lines of its console are printed; the whole console is kept in
``<cache>/console.log``). The exit status is otherwise record_tunnels.py's in the guest.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import record_tunnels  # scripts/, beside this file

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PCAPCHECK_VM_CACHE", "/var/tmp/pcapcheck-vm"))
META_PACKAGE = "linux-image-amd64"
BUSYBOX = Path("/bin/busybox")
QEMU = "qemu-system-x86_64"
#: the modules the guest loads (with their dependencies), in this order: virtio PCI and
#: 9P to mount the host's files, then the tunnel drivers of record_tunnels.TUNNELS
MODULES = (
    "virtio_pci", "9pnet_virtio", "9p",
    "veth", "vxlan", "geneve", "ip_gre", "ipip", "sit", "ip6_tunnel", "ip6_gre",
)  # fmt: skip
#: seconds the guest may take, boot to power-off: this much, plus PER_TUNNEL for each
TIMEOUT = 120
PER_TUNNEL = 60
#: seconds within which the guest's kernel must print its banner ("Linux version")
SILENT = 60
GUEST_OUT = "/tmp/out"
#: --accel -> QEMU's options: TCG (emulated, the default: a guest boots in about 2 s and
#: works everywhere) or KVM with the host's CPU (needs a working /dev/kvm; under the
#: nested KVM of the machine the captures were made on, the guest hung before its
#: first console line, and ``-cpu host`` stops on MSR 0x10a, so it is not the default)
ACCEL = {
    "tcg": ("-accel", "tcg"),
    "kvm": ("-accel", "kvm", "-cpu", "host,-arch-capabilities"),
}


class VmError(Exception):
    """A step of the run failed (one line)."""


def _run(*cmd: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    except FileNotFoundError:
        raise VmError(f"{cmd[0]}: not found") from None
    if proc.returncode:
        err = (proc.stderr.strip() or proc.stdout.strip() or str(proc.returncode)).splitlines()
        raise VmError(f"{' '.join(cmd)}: {err[-1] if err else proc.returncode}")
    return proc.stdout


def kernel_package() -> tuple[str, str]:
    """The package ``linux-image-amd64`` depends on and its candidate version, from the
    apt lists; :class:`VmError` when apt does not know it (no ``apt-get update``)."""
    out = _run("apt-cache", "depends", META_PACKAGE)
    names = re.findall(r"Depends:\s*(linux-image-\S+)", out)
    if not names:
        raise VmError(f"apt-cache depends {META_PACKAGE}: no kernel (run apt-get update)")
    name = names[0]
    policy = _run("apt-cache", "policy", name)
    version = re.search(r"Candidate:\s*(\S+)", policy)
    if not version or version.group(1) == "(none)":
        raise VmError(f"{name}: no candidate version (run apt-get update)")
    return name, version.group(1)


def fetch_kernel(cache: Path = CACHE) -> tuple[Path, str, str]:
    """The unpacked kernel package in the cache (fetched and unpacked when missing):
    ``(directory, package, version)``."""
    name, version = kernel_package()
    root = cache / f"{name}_{version.replace(':', '%3a')}"
    if (root / ".complete").exists():
        return root, name, version
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        # apt-get download as root in a directory _apt cannot write: unsandboxed (a warning)
        _run("apt-get", "download", f"{name}={version}", cwd=Path(tmp))
        (deb,) = Path(tmp).glob("*.deb")
        unpacked = Path(tmp) / "root"
        _run("dpkg-deb", "-x", str(deb), str(unpacked))
        if root.exists():
            shutil.rmtree(root)
        unpacked.rename(root)
    (root / ".complete").write_text(f"{name} {version}\n")
    return root, name, version


def _modinfo(ko: bytes) -> dict[str, str]:
    """The ``.modinfo`` section of a kernel module (ELF64 little-endian): key -> value."""
    shoff = struct.unpack_from("<Q", ko, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", ko, shoff + i * shentsize) for i in range(shnum)]
    names_off = sections[shstrndx][4]
    info: dict[str, str] = {}
    for sh_name, _type, _flags, _addr, offset, size in sections:
        end = ko.index(b"\0", names_off + sh_name)
        if ko[names_off + sh_name : end] == b".modinfo":
            for entry in ko[offset : offset + size].split(b"\0"):
                key, sep, value = entry.decode("utf-8", "replace").partition("=")
                if sep:
                    info.setdefault(key, value)
    return info


def module_order(kernel: Path, wanted: tuple[str, ...] = MODULES) -> list[Path]:
    """The ``.ko`` files of ``wanted`` and of everything they depend on, each after its
    dependencies; modules built into the kernel (``modules.builtin``) are left out."""
    (moddir,) = (kernel / "lib" / "modules").iterdir()
    files = {p.name[: -len(".ko")].replace("-", "_"): p for p in moddir.rglob("*.ko")}
    builtin = {
        Path(line.strip()).name[: -len(".ko")].replace("-", "_")
        for line in (moddir / "modules.builtin").read_text().splitlines()
        if line.strip()
    }
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in files:
            raise VmError(f"kernel module {name}: not in {moddir}")
        for dep in filter(None, _modinfo(files[name].read_bytes()).get("depends", "").split(",")):
            visit(dep)
        order.append(files[name])

    for name in wanted:
        visit(name)
    return order


def _cpio(entries: list[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """A new-format ("070701") cpio archive of ``(name, mode, data, (rdev major, minor))``;
    a symlink's data is its target."""
    out = bytearray()
    for ino, (name, mode, data, (major, minor)) in enumerate(
        [*entries, ("TRAILER!!!", 0, b"", (0, 0))], start=1
    ):
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, major, minor, len(raw), 0)
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + raw
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def _shares() -> list[tuple[str, Path]]:
    """The host directories the guest mounts read-only at the same paths:
    ``(tag, path)``; the running Python's prefix when it is not under /usr."""
    dirs = [Path("/usr"), Path("/etc"), REPO]
    for prefix in {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}:
        if not any(prefix.is_relative_to(d) for d in dirs):
            dirs.append(prefix)
    return [(f"host{i}", d) for i, d in enumerate(dirs)]


def initramfs(modules: list[Path], shares: list[tuple[str, Path]], command: list[str]) -> bytes:
    """The guest's initramfs: BusyBox, the modules and an ``/init`` that mounts the
    shares, runs ``command`` (output and exit status into ``/tmp/out``) and powers off."""
    bb = "/.vm/busybox"
    mounts = []
    for tag, path in shares:
        mounts.append(f"$bb mkdir -p {path}")
        mounts.append(
            f"$bb mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 {tag} {path} || fail {tag}"
        )
    init = "\n".join([
        f"#!{bb} sh",
        f"bb={bb}",
        "fail() { echo \"pcapcheck-vm: failed: $*\"; $bb poweroff -f; }",
        "$bb mount -t proc proc /proc",
        "$bb mount -t sysfs sysfs /sys",
        "$bb mount -t devtmpfs devtmpfs /dev",
        "$bb mount -t tmpfs tmpfs /tmp",
        "$bb mount -t tmpfs tmpfs /run",
        *(f"$bb insmod /.vm/modules/{ko.name} || fail insmod {ko.name}" for ko in modules),
        *mounts,
        f"$bb mkdir -p {GUEST_OUT}",
        f"$bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out {GUEST_OUT} || fail out",
        "$bb uname -r > /tmp/out/kernel",
        "cd /",
        "export PATH=/usr/sbin:/usr/bin HOME=/root LANG=C.UTF-8",
        f"{' '.join(command)} > {GUEST_OUT}/log 2>&1",
        f"echo $? > {GUEST_OUT}/rc",
        f"$bb cat {GUEST_OUT}/log",
        "$bb sync",
        f"$bb umount {GUEST_OUT}",
        "$bb poweroff -f",
        "",
    ])  # fmt: skip
    d, f, ln, c = stat.S_IFDIR | 0o755, stat.S_IFREG, stat.S_IFLNK | 0o777, stat.S_IFCHR | 0o600
    entries = [
        *((name, d, b"", (0, 0)) for name in ("dev", "proc", "sys", "tmp", "run", "var", "root", ".vm", ".vm/modules")),
        ("dev/console", c, b"", (5, 1)),
        ("dev/null", c | 0o066, b"", (1, 3)),
        ("var/run", ln, b"/run", (0, 0)),
        ("var/tmp", ln, b"/tmp", (0, 0)),
        *((name, ln, f"usr/{name}".encode(), (0, 0)) for name in ("bin", "sbin", "lib", "lib64")),
        (".vm/busybox", f | 0o755, BUSYBOX.read_bytes(), (0, 0)),
        *((f".vm/modules/{ko.name}", f | 0o644, ko.read_bytes(), (0, 0)) for ko in modules),
        ("init", f | 0o755, init.encode(), (0, 0)),
    ]  # fmt: skip
    return _cpio(entries)


def check_host(accel: str = "tcg") -> None:
    """:class:`VmError` when the host cannot run the guest."""
    if os.geteuid() != 0:
        raise VmError("the VM run needs root (apt-get download, the guest's namespaces)")
    if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise VmError("no /dev/kvm: this machine cannot run a KVM guest (try --accel tcg)")
    if shutil.which(QEMU) is None:
        raise VmError(
            f"{QEMU} not found (apt-get install -y --no-install-recommends qemu-system-x86)"
        )
    if not BUSYBOX.exists():
        raise VmError(f"{BUSYBOX} not found (apt-get install -y busybox-static)")
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise VmError(f"{tool} not found: the kernel comes from Debian's packages")


def run(
    kinds: list[str], out_dir: Path, *, accel: str = "tcg", verbose: bool = False
) -> tuple[int, str, list[Path]]:
    """Record ``kinds`` (all of record_tunnels' when empty) in the guest: ``(exit status of
    record_tunnels.py in the guest, the guest's kernel release, the captures copied to
    out_dir)``; :class:`VmError` when the guest could not be run or did not finish."""
    check_host(accel)
    kernel, package, version = fetch_kernel()
    vmlinuz = next((kernel / "boot").glob("vmlinuz-*"), None)
    if vmlinuz is None:
        raise VmError(f"{package}: no boot/vmlinuz-*")
    modules = module_order(kernel)
    shares = _shares()
    script = REPO / "scripts" / "record_tunnels.py"
    command = [sys.executable, str(script), "--out", GUEST_OUT, *kinds]
    with tempfile.TemporaryDirectory(prefix="pcapcheck-vm-") as tmp:
        work = Path(tmp)
        (work / "out").mkdir()
        (work / "initrd").write_bytes(initramfs(modules, shares, command))
        qemu = [
            QEMU, *ACCEL[accel], "-m", "1024", "-smp", "2",
            "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
            "-serial", "stdio", "-kernel", str(vmlinuz), "-initrd", str(work / "initrd"),
            "-append", "console=ttyS0 panic=-1 loglevel=6",
            *(arg for tag, path in shares for arg in (
                "-virtfs", f"local,path={path},mount_tag={tag},security_model=none,readonly=on",
            )),
            "-virtfs", f"local,path={work / 'out'},mount_tag=out,security_model=none",
        ]  # fmt: skip
        CACHE.mkdir(parents=True, exist_ok=True)
        timeout = TIMEOUT + PER_TUNNEL * (len(kinds) or len(record_tunnels.TUNNELS))
        console_log = CACHE / "console.log"  # the guest's console, kept for a failed run
        with console_log.open("w") as log_file:
            proc = subprocess.Popen(
                qemu, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
            )
            try:
                # a guest that prints no kernel line at all has not booted: stop early
                try:
                    proc.wait(timeout=SILENT)
                except subprocess.TimeoutExpired:
                    if "] Linux version" not in console_log.read_text(errors="replace"):
                        raise VmError(
                            f"the guest printed nothing in {SILENT} s (its kernel did not "
                            f"start; with --accel kvm: nested KVM? try --accel tcg)"
                        ) from None
                    proc.wait(timeout=timeout - SILENT)
            except subprocess.TimeoutExpired:
                raise VmError(
                    f"the guest did not power off within {timeout} s (console: {console_log})"
                ) from None
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        console = console_log.read_text(errors="replace")
        if verbose:
            print(console, file=sys.stderr)
        rc_file = work / "out" / "rc"
        if not rc_file.exists():
            tail = " | ".join(line.strip() for line in console.splitlines()[-5:] if line.strip())
            raise VmError(f"the guest did not finish the recording (console: {tail})")
        rc = int(rc_file.read_text().strip() or 1)
        log = (work / "out" / "log").read_text(errors="replace")
        release = (work / "out" / "kernel").read_text().strip()
        print(log, end="", file=sys.stderr if rc else sys.stdout)
        out_dir.mkdir(parents=True, exist_ok=True)
        copied = []
        for pcap in sorted((work / "out").glob("*.pcap")):
            target = out_dir / pcap.name
            shutil.copyfile(pcap, target)
            copied.append(target)
            print(f"copied to {target}")
    print(f"guest kernel: {release} (Debian {package} {version})")
    return rc, release, copied


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tunnels", nargs="*", help="tunnels to record (default: all)")
    ap.add_argument(
        "--out", type=Path, help="where the captures go (default: sample_pcaps/encap/kernel)"
    )
    ap.add_argument("--accel", choices=sorted(ACCEL), default="tcg", help="QEMU accelerator")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the guest's console")
    args = ap.parse_args(argv)
    out = args.out or record_tunnels.OUT_DIR
    unknown = [t for t in args.tunnels if t not in record_tunnels.TUNNELS]
    if unknown:
        known = ", ".join(record_tunnels.TUNNELS)
        print(f"tunnel_vm: unknown tunnel {unknown[0]!r} (known: {known})", file=sys.stderr)
        return 2
    try:
        rc, _release, _copied = run(args.tunnels, out, accel=args.accel, verbose=args.verbose)
    except VmError as exc:
        print(f"tunnel_vm: {exc}", file=sys.stderr)
        return 2
    return rc


if __name__ == "__main__":
    sys.exit(main())
