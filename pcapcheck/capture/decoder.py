"""Packet decoder: capture records (link layers + IP + TCP) to :class:`model.Segment`.

:class:`Decoder` reads the fields straight from the record's bytes with
:func:`struct.unpack_from` and indexing; no per-packet parser objects are created. The
batch decoder (:mod:`pcapcheck.fast.batch_decoder`) decodes the common records of a
whole chunk at once and hands every other record to :meth:`Decoder.decode`;
:mod:`pcapcheck.capture.dpkt_decoder` decodes with dpkt's objects, the independent
oracle the tests compare both with.

Link layers and encapsulations: the table of :mod:`pcapcheck.capture.layers`, walked
down to the IP header (Ethernet with stacked 802.1Q / 802.1ad / QinQ tags, MPLS label
stacks, Linux SLL and SLL2, BSD NULL and LOOP, raw IP; see there). Nothing here names a
link type, an ethertype or a link-layer offset.

Network layer: IPv4 (RFC 791) with options; IPv6 (RFC 8200) with the extension headers
hop-by-hop (0), routing (43), fragment (44), destination options (60) and AH (51,
RFC 4302, whose length counts 4-byte units) before TCP. Fragments are not reassembled:
IPv4 packets with MF set or a non-zero offset, and IPv6 packets whose fragment header
has MF set or a non-zero offset, are skipped.

TCP (RFC 9293 §3.1): header fields, options (RFC 9293 §3.2 MSS, RFC 7323 window scale and
timestamps, RFC 2018 SACK-permitted and SACK, RFC 7413 Fast Open, also in its experimental
form kind 254 with magic 0xF989). ``payload_len`` always comes from the IP length fields,
never from the number of captured bytes.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from pcapcheck.capture.layers import IPV4, LINKTYPE, ip_entry, tunnel_tables
from pcapcheck.model import Record, Segment, TcpOptions

__all__ = [
    "IPV4_FRAGMENT_BITS",
    "IPV4_NO_OPTIONS",
    "SUPPORTED_LINKTYPES",
    "DecodeError",
    "Decoder",
    "SourceAttributes",
    "frame_length",
    "ipv4_length",
]

#: Link types the decoder understands (LINKTYPE_*, :data:`pcapcheck.capture.layers.LINKTYPE`).
SUPPORTED_LINKTYPES = frozenset(LINKTYPE.layers)
_LINKTYPES = LINKTYPE.layers

_IPV6_EXT = frozenset({0, 43, 44, 51, 60})

# The IPv4 header checks (RFC 791 §3.1), written once: the batch decoder applies them to
# arrays (pcapcheck.fast.batch_decoder._plain_ipv4) with these values.
#: The first byte of an IPv4 header without options: version 4, IHL 5 (20 bytes).
IPV4_NO_OPTIONS = 0x45
#: The bits of the flags and fragment offset field that make a packet a fragment (MF
#: and the offset; DF does not): such a packet is skipped, not reassembled.
IPV4_FRAGMENT_BITS = 0x3FFF


# IP lengths of TSO / GSO captures, written once. A packet captured on the sending host
# before the NIC (or the kernel) segments it has its length left to them: IPv4 total
# length 0 (IPv6 payload length 0, which is also a jumbogram's, RFC 2675). Its length is
# then the frame's. Both functions take Python ints (the decoder, one record) or numpy
# integer arrays of equal shape (the batch decoder, a batch: its vectorised form makes
# the same decision by calling them), and use only arithmetic that means the same on
# both.


def frame_length(wire_len, captured, offset):
    """Bytes of the frame from ``offset`` (where the IP header starts) to its end: the
    larger of the original length ``wire_len`` and the ``captured`` length (a capture
    of outgoing TSO packets may record more than the wire length says), less
    ``offset``. Ints or numpy integer arrays."""
    return wire_len + (captured > wire_len) * (captured - wire_len) - offset


def ipv4_length(total, ihl, frame):
    """``(length, valid)`` of an IPv4 header (RFC 791 §3.1) whose total length field is
    ``total`` and header length ``ihl`` bytes, in a frame of ``frame`` bytes from the
    header on (:func:`frame_length`): ``length`` is ``total``, or ``frame`` when
    ``total`` is 0 (TSO / GSO: the length left to the NIC); ``valid`` is False when a
    nonzero ``total`` is shorter than the header (malformed: "IPv4 total length
    <total> < header length <ihl>"). Ints (bools) or numpy arrays (bool arrays)."""
    tso = total == 0
    return total + tso * frame, tso | (total >= ihl)


_IPV4_HDR = struct.Struct("!BxHHHxBxxII").unpack_from  # vihl, len, id, frag, proto, src, dst
# IPv4 without options + the TCP fixed header, in one call (the common case)
_IPV4_TCP_HDR = struct.Struct("!BxHHHxBxxIIHHIIBBH").unpack_from
_TS_ONLY = struct.Struct("!III").unpack_from  # NOP NOP kind len, TSval, TSecr
_IPV6_HDR = struct.Struct("!BxxxHB").unpack_from  # vtc, plen, next header
_TCP_HDR = struct.Struct("!HHIIBBH").unpack_from  # ports, seq, ack, doff, flags, win
_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_U32_PAIR = struct.Struct("!II").unpack_from
_NOP_NOP_TS = 0x0101080A

_CACHE_MAX = 1 << 16


class DecodeError(Exception):
    """A record that cannot be decoded (malformed or cut inside the headers).

    ``reason`` (also ``str(error)``) is one line, e.g. ``"IPv4 header length 12 < 20"``,
    ``"TCP data offset 4 < 5"``, ``"truncated TCP header (14 of 20 bytes captured)"``,
    ``"bad TCP option length 0 (kind 2 at header offset 20)"``, ``"unsupported link type
    147"``. The caller reports it as CP005 and goes on with the next record.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _skip_kind_for_proto(version: int, proto: int) -> str:
    if proto == 17:
        return "ipv4-udp" if version == 4 else "ipv6-udp"
    if proto == 1:
        return "icmp"
    if proto == 58:
        return "ipv6-icmp"
    return "other-ip-proto"


def _parse_options(
    data: bytes | memoryview, start: int, end: int, captured: int | None = None
) -> TcpOptions:
    """Parse the TCP options in ``data[start:end]`` (RFC 9293 §3.2).

    A known option with the wrong length (e.g. MSS with length 3) is ignored.
    ``captured``: where the snaplen cut the header, when it cut it inside the options;
    the options from the first one that is not wholly captured on are left out.
    :raises DecodeError: an option length of 0 or 1, or running past ``end``.
    """
    if captured is not None and captured < end:
        return _parse_options(data, start, _complete_options_end(data, start, captured))
    mss = wscale = ts_val = ts_ecr = tfo = None
    sack_ok = False
    sack: tuple[Any, ...] = ()
    i = start
    while i < end:
        kind = data[i]
        if kind == 0:  # end of option list
            break
        if kind == 1:  # no-operation
            i += 1
            continue
        if i + 1 >= end:
            raise DecodeError(
                f"bad TCP option length: kind {kind} at header offset"
                f" {i - start + 20} has no length byte"
            )
        olen = data[i + 1]
        if olen < 2 or i + olen > end:
            raise DecodeError(
                f"bad TCP option length {olen} (kind {kind} at header offset"
                f" {i - start + 20}, {end - i} bytes left)"
            )
        if kind == 8:
            if olen == 10:
                ts_val, ts_ecr = _U32_PAIR(data, i + 2)
        elif kind == 2:
            if olen == 4:
                mss = _U16(data, i + 2)[0]
        elif kind == 3:
            if olen == 3:
                wscale = data[i + 2]
        elif kind == 4:
            if olen == 2:
                sack_ok = True
        elif kind == 5:
            if (olen - 2) % 8 == 0:
                sack = tuple(_U32_PAIR(data, j) for j in range(i + 2, i + olen, 8))
        elif kind == 34:
            tfo = bytes(data[i + 2 : i + olen])
        elif kind == 254 and olen >= 4 and data[i + 2] == 0xF9 and data[i + 3] == 0x89:
            tfo = bytes(data[i + 4 : i + olen])
        i += olen
    return TcpOptions(mss, wscale, sack_ok, sack, ts_val, ts_ecr, tfo)


def _complete_options_end(data: bytes | memoryview, start: int, captured: int) -> int:
    """End of the last TCP option wholly inside ``data[start:captured]``."""
    i = start
    while i < captured:
        kind = data[i]
        if kind in (0, 1):
            i += 1
            continue
        if i + 1 >= captured or data[i + 1] < 2 or i + data[i + 1] > captured:
            return i
        i += data[i + 1]
    return i


def _routing_final_dst(data: bytes, rh: int) -> bytes | None:
    """Final destination named by the IPv6 routing header at ``data[rh:]`` (RFC 8200
    §8.1: the TCP pseudo-header uses it when Segments Left > 0), or None."""
    hlen = (data[rh + 1] + 1) * 8
    rtype = data[rh + 2]
    left = data[rh + 3]
    if left == 0 or hlen < 24:
        return None
    if rtype in (0, 2):  # list of addresses; the last one is the final one
        n = (hlen - 8) // 16
        a = rh + 8 + 16 * (n - 1)
        return data[a : a + 16]
    if rtype == 4:  # SRH (RFC 8754): Segment List[0] is the final one
        return data[rh + 8 : rh + 24]
    return None


def _ones_sum_ok(pseudo: int, data: bytes, start: int, length: int) -> bool:
    """True when the 16-bit ones' complement sum of the pseudo-header (already reduced
    to an int, any 16-bit-aligned grouping) and ``data[start:start+length]`` is -0.

    Uses 2**16 ≡ 1 (mod 0xFFFF): the sum of the 16-bit words of a byte string is
    congruent to the string read as one big-endian integer.
    """
    v = int.from_bytes(data[start : start + length], "big")
    if length & 1:
        v <<= 8
    return (v + pseudo) % 0xFFFF == 0


class Decoder:
    """Decode :class:`model.Record` objects into :class:`model.Segment` objects.

    ``Decoder(verify_checksums=False)``; when ``verify_checksums`` is true the TCP
    checksum (RFC 9293 §3.1, with the IPv4 (RFC 791) or IPv6 (RFC 8200 §8.1)
    pseudo-header) is verified for every fully captured segment and stored in
    ``Segment.checksum_ok``; otherwise, and for snaplen-cut segments, it stays None.

    ``skipped`` is a :class:`collections.Counter` of the records that are not TCP,
    keyed by kind: ``"arp"``, ``"other-ethertype"``, ``"other-af"`` (loopback family),
    ``"other-mpls-payload"`` (neither IPv4 nor IPv6 beneath an MPLS label stack),
    ``"non-packet-record"`` (pcapng blocks without a packet), ``"ipv4-fragment"``, ``"ipv6-fragment"``, ``"ipv4-udp"``, ``"ipv6-udp"``, ``"icmp"``,
    ``"ipv6-icmp"``, ``"other-ip-proto"``.

    Not thread-safe (address caches).
    """

    __slots__ = ("_proto4", "_proto6", "_v4", "_v6", "skipped", "verify_checksums")

    def __init__(
        self,
        verify_checksums: bool = False,
        tunnel_ports: Mapping[str, Iterable[int]] | None = None,
    ):
        self.verify_checksums = verify_checksums
        self.skipped: Counter[str] = Counter()
        self._v4: dict[int, str] = {}
        self._v6: dict[bytes, str] = {}
        #: the tunnels named by an IPv4 protocol / IPv6 next header (layers.IP_PROTOCOL)
        self._proto4, self._proto6 = tunnel_tables(tunnel_ports)

    def _path(
        self, data: bytes, lt: int, path: list[tuple[Any, int, int]], version: int
    ) -> tuple[str, ...]:
        """The encapsulation path of a tunnelled segment (``Segment.encapsulation``):
        the link layers down to the outermost IP header, each IP header of a tunnel
        with its addresses (``"ipv4 192.0.2.1>192.0.2.2"``), each labelled tunnel
        layer (``"udp 4789"``, ``"vxlan 42"``), and the inner ``"ipv4"`` or ``"ipv6"``.
        ``path``: the walk's record of the tunnel part (:meth:`decode`)."""
        out = []
        layer = _LINKTYPES[lt]
        off = 0
        first_ip = path[0][1]
        while layer.next is not None and off < first_ip:  # the link layers, checked
            hl = layer.header_length(data, off)
            value = layer.next.read(data, off)
            label = layer.describe(data, off, value)
            if label is not None:
                out.append(label)
            layer = layer.dispatch.layers[value]
            off += hl
        for what, at, value in path:
            if what == "ip":
                if value == 4:
                    a, b = self._addr4(_U32(data, at + 12)[0]), self._addr4(_U32(data, at + 16)[0])
                else:
                    a = self._addr6(bytes(data[at + 8 : at + 24]))
                    b = self._addr6(bytes(data[at + 24 : at + 40]))
                out.append(ip_entry(value, a, b))
            else:
                label = what.describe(data, at, value)
                if label is not None:
                    out.append(label)
        out.append(ip_entry(version))
        return tuple(out)

    def _addr4(self, a: int) -> str:
        s = self._v4.get(a)
        if s is None:
            if len(self._v4) >= _CACHE_MAX:
                self._v4.clear()
            s = self._v4[a] = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"
        return s

    def _addr6(self, b: bytes) -> str:
        s = self._v6.get(b)
        if s is None:
            if len(self._v6) >= _CACHE_MAX:
                self._v6.clear()
            s = self._v6[b] = socket.inet_ntop(socket.AF_INET6, b)
        return s

    def decode(self, record: Record) -> Segment | None:
        """Decode one record.

        :returns: a :class:`model.Segment` for a TCP segment (``frame`` and ``ts`` copied
            from the record; ``payload_len`` from the IP length fields, so a snaplen-cut
            packet gives the same Segment as the full one except ``truncated=True`` and
            ``checksum_ok=None``), or None for a packet that is not TCP (counted in
            :attr:`skipped`).
        :raises DecodeError: the record cannot be decoded: empty, unsupported link type,
            a link-layer header cut short (a VLAN tag, an MPLS label stack without its
            bottom entry, ...: ``"truncated MPLS label stack entry (2 of 4 bytes
            captured)"``), a raw IP packet of another IP version, headers cut by the snaplen (the IP and TCP headers including TCP options must
            be captured), IPv4 header length < 20, wrong IP version, IP length fields
            shorter than the headers, TCP data offset < 5, bad TCP option length.
        """
        data = record.data
        n = len(data)
        lt = record.linktype
        if n == 0:
            if lt < 0:  # a record without a packet (reader.NON_PACKET_KINDS)
                self.skipped["non-packet-record"] += 1
                return None
            raise DecodeError("empty packet (0 bytes captured)")

        # ---- link layers (the table of pcapcheck.capture.layers) down to IP ----------
        layer = _LINKTYPES.get(lt)
        if layer is None:
            if lt < 0:  # a record without a packet (reader.NON_PACKET_KINDS)
                self.skipped["non-packet-record"] += 1
                return None
            raise DecodeError(LINKTYPE.reason(lt))
        off = 0
        # the tunnel part of the encapsulation path (_path): None until an IP header
        # turns out to be the outer one of a tunnel; then ("ip", offset, version) and
        # (layer, offset, next-layer value) entries
        path: list[tuple[Any, int, int]] | None = None
        while True:  # once per network layer: more than once inside tunnels
            while (field := layer.next) is not None:
                if n - off < layer.need:
                    raise DecodeError(layer.truncated(n - off))
                if layer.length_from is None:
                    hl = layer.length
                else:  # a header whose length is written in it
                    hl = layer.header_length(data, off)
                    if hl < layer.length:
                        raise DecodeError(f"bad {layer.title} length {hl} < {layer.length}")
                    if n - off < hl:
                        raise DecodeError(layer.truncated(n - off, hl))
                if field.u16:  # an ethertype, read inline
                    i = off + field.offset
                    value = data[i] << 8 | data[i + 1]
                elif field.offset < 0:  # counted from the header's end
                    value = field.read(data, off + hl)
                else:
                    value = field.read(data, off)
                dispatch = layer.dispatch
                nxt = dispatch.layers.get(value)
                if nxt is None and layer.next_alt is not None:  # UDP: the source port
                    alt = layer.next_alt.read(data, off)
                    if (nxt := dispatch.layers.get(alt)) is not None:
                        value = alt
                if path is not None:
                    path.append((layer, off, value))
                off += hl
                if nxt is None:
                    kind = dispatch.skip_kind(value)
                    if kind is None:
                        raise DecodeError(dispatch.reason(value))
                    self.skipped[kind] += 1
                    return None
                layer = nxt
            tunnel = None

            # ---- network layer ------------------------------------------------------
            if layer is IPV4:
                avail = n - off
                if avail < 20:
                    raise DecodeError(f"truncated IPv4 header ({avail} of 20 bytes captured)")
                if avail >= 40 and data[off] == IPV4_NO_OPTIONS:
                    (
                        vihl,
                        total,
                        ip_id,
                        frag,
                        proto,
                        src,
                        dst,
                        sport,
                        dport,
                        seq,
                        ack,
                        doff,
                        flags,
                        win,
                    ) = _IPV4_TCP_HDR(data, off)
                    tcp_parsed = True
                else:
                    vihl, total, ip_id, frag, proto, src, dst = _IPV4_HDR(data, off)
                    tcp_parsed = False
                if vihl >> 4 != 4:
                    raise DecodeError(f"IP version {vihl >> 4} in an IPv4 packet")
                ihl = (vihl & 15) << 2
                if ihl < 20:
                    raise DecodeError(f"IPv4 header length {ihl} < 20")
                if avail < ihl:
                    raise DecodeError(f"truncated IPv4 header ({avail} of {ihl} bytes captured)")
                length, valid = ipv4_length(total, ihl, frame_length(record.wire_len, n, off))
                if not valid:
                    raise DecodeError(f"IPv4 total length {total} < header length {ihl}")
                total = length
                if frag & IPV4_FRAGMENT_BITS:
                    self.skipped["ipv4-fragment"] += 1
                    return None
                if proto != 6:
                    tunnel = self._proto4.get(proto)
                    if tunnel is None:
                        self.skipped[_skip_kind_for_proto(4, proto)] += 1
                        return None
                t = off + ihl
                tcp_len = total - ihl
                version = 4
            else:  # IPv6
                avail = n - off
                if avail < 40:
                    raise DecodeError(f"truncated IPv6 header ({avail} of 40 bytes captured)")
                vtc, plen, nh = _IPV6_HDR(data, off)
                if vtc >> 4 != 6:
                    raise DecodeError(f"IP version {vtc >> 4} in an IPv6 packet")
                if plen == 0:  # jumbogram or TSO: use the frame's length
                    plen = frame_length(record.wire_len, n, off) - 40

                t = off + 40
                final_dst = None
                while nh in _IPV6_EXT:
                    if plen < t - off - 40 + 8:
                        raise DecodeError(
                            f"IPv6 payload length {plen} ends inside the extension headers"
                        )
                    if n < t + 8:
                        raise DecodeError(
                            f"truncated IPv6 extension header ({n - t} of 8 bytes captured)"
                        )
                    if nh == 44:
                        if _U16(data, t + 2)[0] & 0xFFF9:
                            self.skipped["ipv6-fragment"] += 1
                            return None
                        hlen = 8
                    elif nh == 51:
                        hlen = (data[t + 1] + 2) << 2
                        if hlen < 12:
                            raise DecodeError(f"bad IPv6 AH length {hlen} < 12")
                    else:
                        hlen = (data[t + 1] + 1) << 3
                    if n < t + hlen:
                        raise DecodeError(
                            f"truncated IPv6 extension header ({n - t} of {hlen} bytes captured)"
                        )
                    if nh == 43:
                        final_dst = _routing_final_dst(data, t)
                    nh = data[t]
                    t += hlen
                ext = t - off - 40
                if plen < ext:
                    raise DecodeError(
                        f"IPv6 payload length {plen} ends inside the extension headers ({ext} bytes)"
                    )
                if nh != 6:
                    tunnel = self._proto6.get(nh)
                    if tunnel is None:
                        self.skipped[_skip_kind_for_proto(6, nh)] += 1
                        return None
                tcp_len = plen - ext
                version = 6
                tcp_parsed = False
            if tunnel is None:
                break
            # a tunnel: this IP header is an outer one; the walk goes on after it
            if path is None:
                path = []
            path.append(("ip", off, version))
            off = t
            layer = tunnel

        # ---- TCP ----------------------------------------------------------------------
        if tcp_len < 20:
            raise DecodeError(
                f"IP length leaves {tcp_len} bytes for TCP, less than the 20-byte TCP header"
            )
        have = n - t
        if not tcp_parsed:
            if have < 20:
                raise DecodeError(f"truncated TCP header ({have} of 20 bytes captured)")
            sport, dport, seq, ack, doff, flags, win = _TCP_HDR(data, t)
        doff >>= 4
        if doff < 5:
            raise DecodeError(f"TCP data offset {doff} < 5")
        hl = doff << 2
        if tcp_len < hl:
            raise DecodeError(
                f"IP length leaves {tcp_len} bytes for TCP, less than the {hl}-byte TCP header"
            )
        if have < hl:
            if record.wire_len <= n:
                raise DecodeError(f"truncated TCP header ({have} of {hl} bytes captured)")
            # The snaplen cut the options: analyse the segment with the options captured.
            opts = _parse_options(data, t + 20, t + hl, n)
        elif hl == 20:
            opts = None
        elif hl == 32:
            word, tv, te = _TS_ONLY(data, t + 20)
            if word == _NOP_NOP_TS:  # the common case: timestamps only
                opts = TcpOptions(None, None, False, (), tv, te, None)
            else:
                opts = _parse_options(data, t + 20, t + hl)
        else:
            opts = _parse_options(data, t + 20, t + hl)

        truncated = have < tcp_len
        if truncated and record.wire_len <= n:
            # Not cut by the snaplen: the IP length claims bytes the packet does not have.
            raise DecodeError(f"IP length gives {tcp_len} bytes of TCP, the packet holds {have}")
        checksum_ok = None
        if self.verify_checksums and not truncated:
            if version == 4:
                pseudo = src + dst + 6 + tcp_len
            else:
                addrs = data[off + 8 : off + 40]
                if final_dst is not None:
                    addrs = addrs[:16] + final_dst
                pseudo = int.from_bytes(addrs, "big") + 6 + tcp_len
            checksum_ok = _ones_sum_ok(pseudo, data, t, tcp_len)

        if version == 4:
            try:
                s_src = self._v4[src]
                s_dst = self._v4[dst]
            except KeyError:
                s_src = self._addr4(src)
                s_dst = self._addr4(dst)
            ipid = ip_id
        else:
            bs = data[off + 8 : off + 24]
            bd = data[off + 24 : off + 40]
            try:
                s_src = self._v6[bs]
                s_dst = self._v6[bd]
            except KeyError:
                s_src = self._addr6(bs)
                s_dst = self._addr6(bd)
            ipid = None
        return Segment(
            record.frame,
            record.ts,
            s_src,
            s_dst,
            sport,
            dport,
            seq,
            ack,
            flags,
            win,
            tcp_len - hl,
            opts,
            ipid,
            version,
            truncated,
            checksum_ok,
            None if path is None else self._path(data, lt, path, version),
        )


class SourceAttributes:
    """What every segment source built on a :mod:`pcapcheck.capture.reader` reader (``reader``)
    and a :class:`Decoder` (``decoder``) reports after iteration: ``skipped`` (Counter
    of the records that are not TCP, by kind), ``truncated`` (why the file ended early,
    or None), ``format`` and ``snaplen`` (the file's)."""

    reader: Any
    decoder: Decoder

    @property
    def skipped(self) -> Counter:
        return self.decoder.skipped

    @property
    def truncated(self) -> str | None:
        return self.reader.truncated

    @property
    def format(self) -> str | None:
        return self.reader.format

    @property
    def snaplen(self) -> int | None:
        return self.reader.snaplen
