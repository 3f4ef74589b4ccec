"""The tests' oracle: capture records decoded with dpkt's objects (``--decoder dpkt``).

:func:`decode_with_dpkt` maps a :class:`model.Record` to what
:meth:`pcapcheck.capture.decoder.Decoder.decode` returns (a :class:`model.Segment`,
None for a packet that is not TCP, or a raised :class:`~pcapcheck.capture.decoder.DecodeError`),
but by parsing with dpkt: ``dpkt.ethernet.Ethernet`` (with its
``VLANtag8021Q`` and ``MPLSlabel`` headers), ``dpkt.sll.SLL``, ``dpkt.sll2.SLL2``,
``dpkt.loopback.Loopback``, ``dpkt.ip.IP``, ``dpkt.ip6.IP6`` and its extension header
classes, ``dpkt.tcp.TCP``; tunnels after an IP header with ``dpkt.gre.GRE`` (and
IPv4/IPv6 in IPv4/IPv6), PPPoE with ``dpkt.pppoe.PPPoE``, each tunnelled segment with its
encapsulation path (the UDP tunnels have no dpkt class: not followed, those captures are
not compared). It shares no link-layer logic with
:mod:`pcapcheck.capture.layers` (the table the native decoders walk): the tests
(``tests/test_decoder.py``, ``tests/test_decoder_paths.py``, ``tests/test_layers.py``)
compare the two, so a mistake in the table shows as a disagreement.

dpkt silently accepts cut headers; the checks it does not make are made here. Slow: for
tests, debugging and ``pcapcheck analyze --decoder dpkt``.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter

from pcapcheck.capture.decoder import DecodeError, _complete_options_end, _skip_kind_for_proto
from pcapcheck.model import Record, Segment, TcpOptions

__all__ = ["decode_with_dpkt"]

#: the IPv6 extension headers walked to TCP (ESP, 50, ends the walk: not TCP)
_IPV6_EXT = frozenset({0, 43, 44, 51, 60})
#: BSD loopback address families of IPv6 (dpkt.loopback's normalisation)
_AF_INET6 = frozenset({24, 28, 30})


def decode_with_dpkt(
    record: Record, *, verify_checksums: bool = False, skipped: Counter | None = None
) -> Segment | None:
    """Reference implementation of :meth:`Decoder.decode` built on dpkt objects.

    Same inputs, outputs and rules as the fast path (slow: for tests and debugging).
    Layers are parsed with ``dpkt.ethernet.Ethernet``, ``dpkt.sll.SLL``,
    ``dpkt.sll2.SLL2``, ``dpkt.loopback.Loopback``, ``dpkt.ip.IP``, ``dpkt.ip6.IP6`` and
    ``dpkt.tcp.TCP``; the checks dpkt does not make (it silently accepts cut headers)
    are made explicitly. The checksum is verified with dpkt's ``in_cksum`` helpers.

    :param skipped: a Counter to count non-TCP packets in (same kinds as
        :attr:`Decoder.skipped`), or None.
    :returns: a Segment, or None for a packet that is not TCP.
    :raises DecodeError: where the fast path raises it (the reason text may differ).
    """
    import dpkt  # imported when first used: the native path never pays for it

    try:
        return _decode_dpkt(record, verify_checksums, skipped if skipped is not None else Counter())
    except (dpkt.UnpackError, struct.error, IndexError) as exc:
        raise DecodeError(f"dpkt: {type(exc).__name__}: {exc}") from exc


def _decode_dpkt(record: Record, verify: bool, skipped: Counter) -> Segment | None:
    import dpkt
    import dpkt.ethernet as ethernet
    import dpkt.ip
    import dpkt.ip6
    import dpkt.loopback
    import dpkt.ppp
    import dpkt.pppoe
    import dpkt.sll
    import dpkt.sll2
    import dpkt.tcp

    # dpkt's names of the 802.1Q / 802.1ad / QinQ tag types and of the MPLS ethertypes
    tag_types = (
        ethernet.ETH_TYPE_8021Q,
        ethernet.ETH_TYPE_8021AD,
        ethernet.ETH_TYPE_QINQ1,
        ethernet.ETH_TYPE_QINQ2,
    )
    mpls_types = (ethernet.ETH_TYPE_MPLS, ethernet.ETH_TYPE_MPLS_MCAST)
    eth_ip, eth_ip6 = ethernet.ETH_TYPE_IP, ethernet.ETH_TYPE_IP6
    pppoe_type, teb = ethernet.ETH_TYPE_PPPoE, ethernet.ETH_TYPE_TEB
    #: the encapsulation path's entries so far (model.Segment.encapsulation), kept when
    #: an IP header turns out to be the outer one of a tunnel (``tunnelled``)
    entries: list[str] = []
    tunnelled = False
    data = record.data
    lt = record.linktype
    if lt < 0:  # a record without a packet (reader.NON_PACKET_KINDS)
        skipped["non-packet-record"] += 1
        return None
    if not data:
        raise DecodeError("empty packet (0 bytes captured)")
    if lt == 1:
        if len(data) < 14:
            raise DecodeError("truncated Ethernet header")
        try:
            et = ethernet.Ethernet(data).type  # outer type; tags are unwrapped below
        except dpkt.NeedData:
            # dpkt eagerly parses payloads (LLC, MPLS, ...) we do not need; only a cut
            # VLAN tag matters here, and the loop below reports it
            et = struct.unpack("!H", data[12:14])[0]
        payload = data[14:]
        entries.append("eth")
    elif lt == 113:
        sll = dpkt.sll.SLL(data)
        et, payload = sll.ethtype, data[16:]
        entries.append("sll")
    elif lt == 276:
        sll2 = dpkt.sll2.SLL2(data)
        et, payload = sll2.ethtype, data[20:]
        entries.append("sll2")
    elif lt in (0, 108):
        if len(data) < 4:
            raise DecodeError("truncated loopback header")
        entries.append("null" if lt == 0 else "loop")
        if lt == 108:
            fam = struct.unpack("!I", data[:4])[0]
        else:
            fam = struct.unpack("<I", data[:4])[0]
            if fam > 0xFFFF:
                fam = struct.unpack(">I", data[:4])[0]
            if fam == 2 or fam in _AF_INET6:
                # dpkt normalises the families it knows (both byte orders); for the
                # others it would guess Ethernet, which is not what the header says
                fam = dpkt.loopback.Loopback(data).family
        if fam == 2:
            et = eth_ip
        elif fam in _AF_INET6:
            et = eth_ip6
        else:
            skipped["other-af"] += 1
            return None
        payload = data[4:]
    elif lt in (101, 12, 14, 228, 229):
        v = data[0] >> 4
        if (lt == 228 and v != 4) or (lt == 229 and v != 6) or v not in (4, 6):
            raise DecodeError(f"IP version {v} in a link type {lt} packet")
        et = eth_ip if v == 4 else eth_ip6
        payload = data
    else:
        raise DecodeError(f"unsupported link type {lt}")

    while True:  # once per network layer: more than once inside tunnels
        # 802.1Q / 802.1ad / QinQ tags, MPLS label stacks, PPPoE, an Ethernet frame inside
        # GRE, any number, with dpkt's headers
        while et in tag_types or et in mpls_types or et in (pppoe_type, teb) or et in _ERSPAN:
            if et in _ERSPAN:  # ERSPAN in GRE: dpkt has no class for it, read by hand
                kind, version, hl = _ERSPAN[et]
                if len(payload) < hl:
                    raise DecodeError("truncated ERSPAN header")
                if payload[0] >> 4 != version:
                    raise DecodeError("wrong ERSPAN version")
                if kind == 3 and payload[11] & 1:  # type III's O bit: a platform subheader
                    hl += 8
                    if len(payload) < hl:
                        raise DecodeError("truncated ERSPAN header")
                session = struct.unpack("!H", payload[2:4])[0] & 0x3FF
                entries.append(f"erspan {kind} {session}")
                et, payload = teb, payload[hl:]
                continue
            if et == teb:  # transparent Ethernet bridging (gretap)
                if len(payload) < 14:
                    raise DecodeError("truncated Ethernet header")
                et, payload = struct.unpack("!H", payload[12:14])[0], payload[14:]
                entries.append("eth")
                continue
            if et == pppoe_type:  # a PPPoE session frame (RFC 2516) and its PPP protocol
                if len(payload) < 8:
                    raise DecodeError("truncated PPPoE session header")
                session = dpkt.pppoe.PPPoE(payload).session
                proto = dpkt.pppoe.PPP(payload[6:8]).p
                entries.append(f"pppoe {session}")
                payload = payload[8:]
                if proto == dpkt.ppp.PPP_IP:
                    et = eth_ip
                elif proto == dpkt.ppp.PPP_IP6:
                    et = eth_ip6
                else:
                    skipped["other-ppp-protocol"] += 1
                    return None
                continue
            if et in tag_types:
                tag = ethernet.VLANtag8021Q(payload)
                et, payload = tag.type, payload[len(tag) :]
                entries.append(f"vlan {tag.id}")
                continue
            label = ethernet.MPLSlabel(payload)  # NeedData: a stack cut short
            payload = payload[len(label) :]
            entries.append(f"mpls {label.val}")
            if label.s:  # bottom of stack: IPv4 or IPv6 by the first nibble, as Wireshark
                if not payload:  # (dpkt's Ethernet guesses from the first byte 0x45 / 0x6_)
                    raise DecodeError("nothing captured beneath the MPLS label stack")
                et = {4: eth_ip, 6: eth_ip6, 0: teb}.get(payload[0] >> 4, -1)
                if et == teb:  # an Ethernet pseudowire's control word (RFC 4385, 4448)
                    if len(payload) < 4:
                        raise DecodeError("truncated MPLS pseudowire control word")
                    payload = payload[4:]
                if et < 0:
                    skipped["other-mpls-payload"] += 1
                    return None

        if et == eth_ip:
            ip = dpkt.ip.IP(payload)
            if ip.v != 4:
                raise DecodeError(f"IP version {ip.v} in an IPv4 packet")
            ihl = ip.hl * 4
            if len(ip.opts) != ihl - 20:
                raise DecodeError("truncated IPv4 header")
            total = ip.len
            if total == 0:
                total = max(record.wire_len, len(data)) - (len(data) - len(payload))
            elif total < ihl:
                raise DecodeError("IPv4 total length < header length")
            if ip.mf or ip.offset:
                skipped["ipv4-fragment"] += 1
                return None
            if ip.p != 6:
                if ip.p not in _TUNNELS:
                    skipped[_skip_kind_for_proto(4, ip.p)] += 1
                    return None
                entries.append(f"ipv4 {_ntop(ip.src)}>{_ntop(ip.dst)}")
                et, payload = _tunnel(ip.p, payload[ihl:], entries)
                tunnelled = True
                continue
            tcp_len = total - ihl
            raw = payload[ihl:total]
            src, dst = ip.src, ip.dst
            pseudo = struct.pack(">4s4sxBH", src, dst, 6, tcp_len)
            version, ipid = 4, ip.id
        elif et == eth_ip6:
            ip6 = dpkt.ip6.IP6()
            dpkt.Packet.unpack(ip6, payload)  # the fixed header only (NeedData if < 40)
            if ip6.v != 6:
                raise DecodeError(f"IP version {ip6.v} in an IPv6 packet")
            plen = ip6.plen or max(record.wire_len, len(data)) - (len(data) - len(payload)) - 40
            inner = payload[40 : 40 + plen]
            ext = 0
            final_dst = None
            p = ip6.nxt
            while p in _IPV6_EXT:  # dpkt's header classes, one at a time
                h = dpkt.ip6.EXT_HDRS_CLS[p](inner[ext:])
                if isinstance(h, dpkt.ip6.IP6FragmentHeader) and (h.frag_off or h.m_flag):
                    skipped["ipv6-fragment"] += 1
                    return None
                if isinstance(h, dpkt.ip6.IP6RoutingHeader) and h.segs_left and h.addresses:
                    if h.type in (0, 2):
                        final_dst = h.addresses[-1]
                    elif h.type == 4:
                        final_dst = h.addresses[0]
                if isinstance(h, dpkt.ip6.IP6AHHeader) and h.length < 12:
                    raise DecodeError("bad IPv6 AH length")
                ext += h.length
                if 40 + ext > len(payload):
                    raise DecodeError("truncated IPv6 extension header")
                p = h.nxt
            if plen < ext:
                raise DecodeError("IPv6 payload length ends inside the extension headers")
            if p != 6:
                if p not in _TUNNELS:
                    skipped[_skip_kind_for_proto(6, p)] += 1
                    return None
                entries.append(f"ipv6 {_ntop(ip6.src)}>{_ntop(ip6.dst)}")
                et, payload = _tunnel(p, payload[40 + ext :], entries)
                tunnelled = True
                continue
            tcp_len = plen - ext
            raw = payload[40 + ext : 40 + plen]
            src, dst = ip6.src, ip6.dst
            pseudo = struct.pack(">16s16sIxxxB", src, final_dst or dst, tcp_len, 6)
            version, ipid = 6, None
        else:
            skipped["arp" if et == ethernet.ETH_TYPE_ARP else "other-ethertype"] += 1
            return None
        break

    if tcp_len < 20:
        raise DecodeError("IP length leaves less than 20 bytes for TCP")
    tcp = dpkt.tcp.TCP(raw)  # NeedData if < 20 bytes, UnpackError if off < 5
    hl = tcp.off * 4
    if tcp_len < hl:
        raise DecodeError("IP length leaves less than the TCP header")
    opts = None
    if len(tcp.opts) != hl - 20:
        if record.wire_len <= len(record.data):
            raise DecodeError("truncated TCP header")
        cut = bytes(tcp.opts)  # the snaplen cut the options: keep the whole ones
        cut = cut[: _complete_options_end(cut, 0, len(cut))]
        opts = _options_from_dpkt(dpkt.tcp.parse_opts(cut))
    elif hl > 20:
        _check_option_lengths(tcp.opts)
        opts = _options_from_dpkt(dpkt.tcp.parse_opts(tcp.opts))
    truncated = len(raw) < tcp_len
    if truncated and record.wire_len <= len(record.data):
        raise DecodeError("IP length exceeds the packet")
    checksum_ok = None
    if verify and not truncated:
        s = dpkt.in_cksum_add(0, pseudo)
        s = dpkt.in_cksum_add(s, bytes(raw))
        checksum_ok = dpkt.in_cksum_done(s) == 0
    if version == 4:
        s_src = socket.inet_ntop(socket.AF_INET, src)
        s_dst = socket.inet_ntop(socket.AF_INET, dst)
    else:
        s_src = socket.inet_ntop(socket.AF_INET6, src)
        s_dst = socket.inet_ntop(socket.AF_INET6, dst)
    return Segment(
        record.frame,
        record.ts,
        s_src,
        s_dst,
        tcp.sport,
        tcp.dport,
        tcp.seq,
        tcp.ack,
        tcp.flags & 0xFF,
        tcp.win,
        tcp_len - hl,
        opts,
        ipid,
        version,
        truncated,
        checksum_ok,
        (*entries, f"ipv{version}") if tunnelled else None,
    )


#: The tunnels the oracle follows after an IP header: IPv4 (RFC 2003), IPv6 (RFC 4213,
#: RFC 2473) and GRE (RFC 2784, RFC 2890), by IP protocol number; the UDP tunnels (VXLAN,
#: Geneve, GTP-U, Teredo) have no dpkt class and are not followed here.
_TUNNELS = frozenset({4, 41, 47})
#: ERSPAN in GRE (draft-foschiano-erspan-03): protocol type -> (type, version, header
#: length without type III's optional subheader)
_ERSPAN = {0x88BE: (2, 1, 8), 0x22EB: (3, 2, 12)}


def _ntop(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def _tunnel(proto: int, payload: bytes, entries: list[str]) -> tuple[int, bytes]:
    """What follows an outer IP header whose protocol is ``proto`` (in :data:`_TUNNELS`):
    ``(ethertype of the next layer, its bytes)``; GRE's entry appended to ``entries``.
    :raises DecodeError: a GRE header of another version than 0, or cut short."""
    import dpkt
    import dpkt.ethernet
    import dpkt.gre

    if proto == 4:
        return dpkt.ethernet.ETH_TYPE_IP, payload
    if proto == 41:
        return dpkt.ethernet.ETH_TYPE_IP6, payload
    if len(payload) < 4:
        raise DecodeError("truncated GRE header")
    gre = dpkt.gre.GRE()
    dpkt.Packet.unpack(gre, payload[:4])  # flags and protocol type
    if gre.v != 0:
        raise DecodeError(f"GRE version {gre.v} not supported")
    names, fmts = gre.opt_fields_fmts()
    fields = struct.calcsize("!" + "".join(fmts))
    if len(payload) < 4 + fields:
        raise DecodeError("truncated GRE header")
    values = dict(zip(names, struct.unpack("!" + "".join(fmts), payload[4 : 4 + fields])))
    entries.append(f"gre {values['key']}" if "key" in values else "gre")  # RFC 2890's key
    if gre.p == 0x88BE and "seq" not in values:
        # ERSPAN type I: no sequence number, no ERSPAN header, the mirrored frame follows
        entries.append("erspan 1")
        return dpkt.ethernet.ETH_TYPE_TEB, payload[4 + fields :]
    return gre.p, payload[4 + fields :]


def _check_option_lengths(opts: bytes) -> None:
    """dpkt's parse_opts hides the raw length byte: check it here (0, 1, past the end)."""
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            return
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2 or i + opts[i + 1] > len(opts):
            raise DecodeError(f"bad TCP option length (kind {kind})")
        i += opts[i + 1]


def _options_from_dpkt(parsed: list) -> TcpOptions:
    o = TcpOptions()
    for item in parsed:
        if item is None:
            break
        kind, d = item
        if kind == 0:
            break
        if kind == 2 and len(d) == 2:
            o.mss = struct.unpack(">H", d)[0]
        elif kind == 3 and len(d) == 1:
            o.wscale = d[0]
        elif kind == 4 and len(d) == 0:
            o.sack_permitted = True
        elif kind == 5 and len(d) % 8 == 0:
            o.sack_blocks = tuple(struct.unpack(">II", d[j : j + 8]) for j in range(0, len(d), 8))
        elif kind == 8 and len(d) == 8:
            o.ts_val, o.ts_ecr = struct.unpack(">II", d)
        elif kind == 34:
            o.tfo_cookie = bytes(d)
        elif kind == 254 and len(d) >= 2 and d[:2] == b"\xf9\x89":
            o.tfo_cookie = bytes(d[2:])
    return o
