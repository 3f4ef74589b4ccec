"""The link layers and encapsulations pcapcheck decodes: one table, walked by every decoder.

Each :class:`Layer` says how long its header is and where the field that names the next
layer sits; each :class:`Dispatch` maps the values of such a field to the layers they
name (Wireshark's dissector tables, Zeek's ``register_packet_analyzer``, scapy's
``bind_layers``). The walk starts in :data:`LINKTYPE` with the record's link type
(tcpdump.org LINKTYPE_* numbering) and goes layer by layer until it reaches
:data:`IPV4` or :data:`IPV6`, the network layer, which :mod:`pcapcheck.capture.decoder`
parses (IP options and IPv6 extension headers, then TCP). Two walkers use this table
and nothing else:

* :meth:`pcapcheck.capture.decoder.Decoder.decode`, one record at a time;
* :class:`pcapcheck.fast.batch_decoder.BatchSource`, a whole batch of records at once:
  it groups the records by the layer reached so far and reads the next field of all of
  them with one numpy gather (Zeek's vectorised walk).

A record leaves the walk in one of three ways:

* its header is not wholly captured: malformed (CP005), ``"truncated <title> (<have>
  of <need> bytes captured)"``;
* the next-layer value is not in the dispatch table: counted in the decoder's
  ``skipped`` Counter under the table's kind (``"arp"``, ``"other-ethertype"``,
  ``"other-af"``, ``"other-mpls-payload"``), or malformed with the table's reason (an
  unsupported link type, a raw IP packet whose version is neither 4 nor 6);
* it reaches IPv4 or IPv6 at some offset.

What is declared (everything :mod:`pcapcheck.capture.decoder` supports):

====================  ========================================  ==========================
layer                 recognised by                             next layer from
====================  ========================================  ==========================
Ethernet (14 bytes)   link type 1                               ethertype at 12
802.1Q VLAN tag (4)   ethertype 0x8100, 0x88a8 (802.1ad),       ethertype at 2
                      0x9100, 0x9200 (legacy QinQ); any depth
Linux SLL (16)        link type 113                             ethertype at 14
Linux SLL2 (20)       link type 276                             ethertype at 0
BSD NULL (4)          link type 0                               address family at 0, the
                                                                capturing host's order
                                                                (either: see Field)
BSD LOOP (4)          link type 108                             address family, big-endian
raw IP (0)            link types 101, 12, 14                    IP version nibble
raw IPv4 / IPv6 (0)   link types 228 / 229                      IP version nibble (4 / 6)
MPLS (4 per entry)    ethertype 0x8847, 0x8848 (RFC 3032 §5)    bottom-of-stack bit; then
                      (so also beneath 802.1Q and SLL)          the IP version nibble
PW control word (4)   first nibble 0 beneath an MPLS stack      Ethernet (RFC 4448)
                      (RFC 4385 §3)
====================  ========================================  ==========================

Loopback address families: 2 is IPv4; 24, 28 and 30 (the BSDs' AF_INET6) are IPv6.

How to add a layer (one entry). Declare the layer — its name, the words of its
truncation error, its header length, and its next-type field with the dispatch table
whose keys that field's values are — and register it under the values that name it, as
MPLS is declared at the end of this module::

    MPLS = Layer("MPLS", "MPLS label stack entry", 4, next=Field(2, 1, mask=1),
                 dispatch=MPLS_STACK)            # its S bit names the next layer
    register(ETHERTYPE, 0x8847, MPLS)            # RFC 3032 §5, unicast
    register(ETHERTYPE, 0x8848, MPLS)            # multicast
    register(MPLS_STACK, 0, MPLS)                # another entry: stacks of any depth
    register(MPLS_STACK, 1, MPLS_PAYLOAD)        # the bottom: IPv4 or IPv6 by the nibble

A header whose length is written in it (NSH, RFC 8300; radiotap) says where:
``length=<least valid length>, length_from=Field(...), length_unit=<bytes per unit>``
(``tests/test_layers.py`` declares NSH that way). A new :class:`Dispatch` gives its
unbound values a skipped kind or a malformed reason. Both native decoders then follow
the new layer, the batch decoder in batches: no decoder code names a layer, an
ethertype or an offset. Then a sample capture in ``sample_pcaps/encap/``
(``scripts/make_encap_captures.py``) and its report fixture; the tests compare the
native decoders with :mod:`pcapcheck.capture.dpkt_decoder` on every sample capture, so
teach that oracle the layer with dpkt's own class for it (``dpkt.ethernet.MPLSlabel``
for MPLS), not with this table.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence

__all__ = [
    "ETHERTYPE",
    "IPV4",
    "IPV6",
    "LINKTYPE",
    "MPLS",
    "PER_DIRECTION_LABELS",
    "Dispatch",
    "Field",
    "Layer",
    "ip_entry",
    "layers",
    "register",
    "tunnel_parents",
    "tunnel_tables",
    "udp_tunnel_layers",
]


class Field:
    """An unsigned integer field of a header: the one that names the next layer, or the
    one that gives the header's length.

    ``Field(offset, size=2, order="big", shift=0, mask=None)``: ``size`` bytes (1, 2 or
    4) at ``offset`` bytes from the start of the layer's header (an offset at or past
    the header's length reads the next header, as the IP version nibble does), in byte
    order ``order``: ``"big"`` (network order), ``"little"``, or ``"either"``
    (BSD NULL's address family, written in the capturing host's order: read
    little-endian, and big-endian when that gives more than 0xFFFF); then shifted right
    by ``shift`` bits and masked with ``mask``.
    """

    __slots__ = ("mask", "offset", "order", "shift", "size", "u16")

    def __init__(
        self,
        offset: int,
        size: int = 2,
        order: str = "big",
        shift: int = 0,
        mask: int | None = None,
    ):
        if size not in (1, 2, 4) or order not in ("big", "little", "either"):
            raise ValueError(f"bad field: {size} bytes, order {order!r}")
        self.offset = offset
        self.size = size
        self.order = order
        self.shift = shift
        self.mask = mask
        #: a plain big-endian 16-bit field (an ethertype): walkers may read it inline
        self.u16 = size == 2 and order == "big" and not shift and mask is None

    @property
    def end(self) -> int:
        """Bytes from the layer's start that must be captured to read the field."""
        return self.offset + self.size

    def read(self, data: bytes, start: int) -> int:
        """The field's value in the header that starts at ``data[start]`` (its bytes
        must be there)."""
        i = start + self.offset
        if self.u16:  # an ethertype: the common case
            return data[i] << 8 | data[i + 1]
        if self.size == 1:
            v = data[i]
        else:
            raw = data[i : i + self.size]
            if self.order == "big":
                v = int.from_bytes(raw, "big")
            else:
                v = int.from_bytes(raw, "little")
                if self.order == "either" and v > 0xFFFF:
                    v = int.from_bytes(raw, "big")
        v >>= self.shift
        return v if self.mask is None else v & self.mask


class Layer:
    """One link layer or encapsulation.

    ``Layer(name, title, length, next=None, dispatch=None, network=None,
    length_from=None, length_unit=1)``: ``name`` in Wireshark's / Zeek's words;
    ``title`` names the header in the truncation error (``"truncated <title> (3 of 4
    bytes captured)"``); ``length`` its header's length in bytes (0 for a link type
    that only says the IP header follows); ``next`` the :class:`Field` whose value
    ``dispatch`` (a :class:`Dispatch`) maps to the next layer. ``network`` (4 or 6)
    marks the network layers where the walk ends. A header whose length is written in
    it: ``length_from``, the :class:`Field` that holds it, in units of ``length_unit``
    bytes; ``length`` is then the least valid length (a smaller value is malformed:
    ``"bad <title> length 4 < 8"``), and the whole header must be captured.
    ``need``: bytes from the layer's start that must be captured to read its fields.

    Tunnel headers (reached from an IP header through :data:`IP_PROTOCOL`, after the
    outer network layer) may also say: ``length_add`` (bytes added to ``length_from``
    times ``length_unit``: Geneve's 8 fixed bytes before its options);
    ``length_table`` (the header length indexed by the ``length_from`` value: GRE's
    C/R/K/S bits); ``length_sum`` (more fields added to ``length_from``: Teredo's
    authentication header); ``next_alt`` (a second next-layer field tried when the
    first names no layer: UDP's source port after its destination port); a ``next``
    field with a negative offset counts from the header's end (a GTP-U extension
    header's next-type byte). ``label`` names the layer in a connection's
    encapsulation path (``"vxlan"``) and ``ident`` is the field whose value follows the
    label (``"vxlan 42"``: the VNI); ``label_value`` puts the next-layer value there
    instead (``"udp 4789"``). ``ident_per_direction``: the ident names the receiving
    tunnel endpoint's tunnel, so the two directions of one tunnel carry different values
    (GTP-U's TEID, 3GPP TS 29.281 §5.1): it is left out of a connection's stateless key
    and pairs the two directions instead (:data:`PER_DIRECTION_LABELS`,
    :class:`pcapcheck.tcp.tracker.TunnelPairing`).
    """

    __slots__ = (
        "dispatch",
        "ident",
        "ident_per_direction",
        "label",
        "label_value",
        "length",
        "length_add",
        "length_from",
        "length_sum",
        "length_table",
        "length_unit",
        "name",
        "need",
        "network",
        "next",
        "next_alt",
        "title",
    )

    def __init__(
        self,
        name: str,
        title: str,
        length: int = 0,
        next: Field | None = None,
        dispatch: Dispatch | None = None,
        network: int | None = None,
        length_from: Field | None = None,
        length_unit: int = 1,
        *,
        length_add: int = 0,
        length_table: tuple[int, ...] | None = None,
        length_sum: tuple[Field, ...] = (),
        next_alt: Field | None = None,
        label: str | None = None,
        ident: Field | None = None,
        label_value: bool = False,
        ident_per_direction: bool = False,
    ):
        if (next is None) != (dispatch is None) or (next is None) == (network is None):
            raise ValueError(f"layer {name}: a next field with its dispatch, or a network")
        self.length_add = length_add
        self.length_table = length_table
        self.length_sum = length_sum
        self.next_alt = next_alt
        self.label = label
        self.ident = ident
        self.label_value = label_value
        self.ident_per_direction = ident_per_direction
        self.name = name
        self.title = title
        self.length = length
        self.next = next
        self.dispatch: Dispatch = dispatch if dispatch is not None else _END
        self.network = network
        self.length_from = length_from
        self.length_unit = length_unit
        fields = (next, next_alt, length_from, ident, *length_sum)
        ends = [length] + [f.end for f in fields if f is not None and f.offset >= 0]
        self.need = max(ends)

    def truncated(self, have: int, need: int | None = None) -> str:
        """The malformed record's reason when ``have`` of the header's ``need`` bytes
        (default :attr:`need`) are captured."""
        return f"truncated {self.title} ({have} of {need or self.need} bytes captured)"

    def header_length(self, data: bytes, start: int) -> int:
        """The length of the header that starts at ``data[start]`` (its ``need`` bytes
        captured): ``length``, or the value of ``length_from`` times ``length_unit``."""
        f = self.length_from
        if f is None:
            return self.length
        v = f.read(data, start)
        if self.length_table is not None:
            return self.length_table[v]
        for g in self.length_sum:
            v += g.read(data, start)
        return v * self.length_unit + self.length_add

    def describe(self, data: bytes, start: int, value: int) -> str | None:
        """The layer's entry in an encapsulation path (None: it has no label), for the
        header at ``data[start]`` whose next-layer value is ``value``."""
        if self.label_value:
            return self.entry(value)
        if self.ident is not None:
            return self.entry(self.ident.read(data, start))
        return self.entry()

    def entry(self, ident: int | None = None) -> str | None:
        """The layer's entry in an encapsulation path with ``ident`` (the value of its
        :attr:`ident` field, or the next-layer value when ``label_value``; None: the
        label alone): ``"vxlan 42"``, ``"udp 4789"``, ``"gre"``; None when the layer has
        no label. The one place the entry is written (:meth:`describe` reads the
        ident from the header's bytes, :mod:`pcapcheck.capture.tshark` from Wireshark's
        fields)."""
        if self.label is None:
            return None
        return self.label if ident is None else f"{self.label} {ident}"

    def __repr__(self) -> str:
        return f"Layer({self.name!r})"


class Dispatch:
    """The layers named by the values of a next-layer field (a dissector table).

    ``Dispatch(name, skip=None, kinds=None, malformed=None, reasons=None)``: a value
    that names no layer makes the record one that is not TCP, counted under
    ``kinds.get(value, skip)`` (a skipped kind), or, when ``skip`` is None, a malformed
    record with the reason ``reasons.get(value)`` or ``malformed.format(value=value)``. ``layers``: value -> :class:`Layer`,
    filled by :func:`register` in the order of registration (the batch decoder tries
    them in that order: the common ones first).
    """

    __slots__ = ("kinds", "layers", "malformed", "name", "reasons", "skip")

    def __init__(
        self,
        name: str,
        skip: str | None = None,
        kinds: dict[int, str] | None = None,
        malformed: str | None = None,
        reasons: dict[int, str] | None = None,
    ):
        self.name = name
        self.skip = skip
        self.kinds = kinds or {}
        self.malformed = malformed or f"unsupported {name} {{value}}"
        self.reasons = reasons or {}
        self.layers: dict[int, Layer] = {}

    def skip_kind(self, value: int) -> str | None:
        """The skipped kind of an unbound ``value``, or None: malformed."""
        if self.skip is None:
            return None
        return self.kinds.get(value, self.skip)

    def reason(self, value: int) -> str:
        """The malformed record's reason for an unbound ``value`` (``skip`` is None)."""
        reason = self.reasons.get(value)
        return reason if reason is not None else self.malformed.format(value=value)

    def __repr__(self) -> str:
        return f"Dispatch({self.name!r})"


def ip_entry(version: int, src: str | None = None, dst: str | None = None) -> str:
    """An IP header's entry in an encapsulation path: a tunnel's outer header with its
    addresses (``"ipv4 192.0.2.1>192.0.2.2"``, ``"ipv6 2001:db8::1>2001:db8::2"``), the
    innermost one without (``"ipv4"``, ``"ipv6"``)."""
    return f"ipv{version}" if src is None else f"ipv{version} {src}>{dst}"


def register(dispatch: Dispatch, value: int, layer: Layer) -> None:
    """Make ``value`` of ``dispatch``'s field name ``layer`` (Zeek's
    ``register_packet_analyzer(parent, value, child)``).

    :raises ValueError: ``value`` already names another layer.
    """
    old = dispatch.layers.get(value)
    if old is not None and old is not layer:
        raise ValueError(f"{dispatch.name} {value:#x} already names {old.name}")
    dispatch.layers[value] = layer


def layers() -> Iterator[Layer]:
    """Every layer reachable from :data:`LINKTYPE`, each once (for documentation and
    tests)."""
    return _walk(LINKTYPE.layers.values())


def _walk(roots: Iterable[Layer]) -> Iterator[Layer]:
    """Every layer reachable from ``roots``, each once."""
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        layer = todo.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        todo += layer.dispatch.layers.values()


# ---- the table ---------------------------------------------------------------------------

#: The (empty) dispatch of the network layers: the walk ends there.
_END = Dispatch("end of the link layers")

#: The network layers, where the walk ends (parsed by :mod:`pcapcheck.capture.decoder`).
IPV4 = Layer("IPv4", "IPv4 header", network=4)
IPV6 = Layer("IPv6", "IPv6 header", network=6)

#: The record's link type (LINKTYPE_*, tcpdump.org).
LINKTYPE = Dispatch("link type", malformed="unsupported link type {value}")
#: Ethertypes (IEEE 802 numbers), shared by Ethernet, VLAN tags, SLL and SLL2 as in
#: Wireshark's "ethertype" table.
ETHERTYPE = Dispatch("ethertype", skip="other-ethertype", kinds={0x0806: "arp"})
#: BSD loopback address families.
LOOPBACK_FAMILY = Dispatch("address family", skip="other-af")
#: The IP version nibble of a raw IP packet (link types 101, 12, 14; 228; 229).
RAW_VERSION = Dispatch("IP version", malformed="raw IP packet with IP version {value}")
RAW4_VERSION = Dispatch(
    "IP version", malformed="IP version {value} in a link type 228 (raw IPv4) packet"
)
RAW6_VERSION = Dispatch(
    "IP version", malformed="IP version {value} in a link type 229 (raw IPv6) packet"
)

ETHERNET = Layer("Ethernet", "Ethernet header", 14, next=Field(12, 2), dispatch=ETHERTYPE)
VLAN = Layer("802.1Q", "VLAN tag", 4, next=Field(2, 2), dispatch=ETHERTYPE)
SLL = Layer("Linux SLL", "Linux cooked (SLL) header", 16, next=Field(14, 2), dispatch=ETHERTYPE)
SLL2 = Layer("Linux SLL2", "Linux cooked (SLL2) header", 20, next=Field(0, 2), dispatch=ETHERTYPE)
NULL = Layer("BSD NULL", "loopback header", 4, next=Field(0, 4, "either"), dispatch=LOOPBACK_FAMILY)
LOOP = Layer("BSD LOOP", "loopback header", 4, next=Field(0, 4), dispatch=LOOPBACK_FAMILY)
RAW = Layer("raw IP", "raw IP header", 0, next=Field(0, 1, shift=4), dispatch=RAW_VERSION)
RAW4 = Layer("raw IPv4", "raw IPv4 header", 0, next=Field(0, 1, shift=4), dispatch=RAW4_VERSION)
RAW6 = Layer("raw IPv6", "raw IPv6 header", 0, next=Field(0, 1, shift=4), dispatch=RAW6_VERSION)

for _value, _layer in (
    (1, ETHERNET),
    (113, SLL),
    (276, SLL2),
    (0, NULL),
    (108, LOOP),
    (101, RAW),
    (12, RAW),  # raw IP as some BSDs number it
    (14, RAW),
    (228, RAW4),
    (229, RAW6),
):
    register(LINKTYPE, _value, _layer)
register(ETHERTYPE, 0x0800, IPV4)  # the common ones first
register(ETHERTYPE, 0x86DD, IPV6)
for _value in (0x8100, 0x88A8, 0x9100, 0x9200):  # 802.1Q, 802.1ad, legacy QinQ
    register(ETHERTYPE, _value, VLAN)
register(LOOPBACK_FAMILY, 2, IPV4)
for _value in (24, 28, 30):  # AF_INET6 of NetBSD/OpenBSD, FreeBSD, macOS
    register(LOOPBACK_FAMILY, _value, IPV6)
register(RAW_VERSION, 4, IPV4)
register(RAW_VERSION, 6, IPV6)
register(RAW4_VERSION, 4, IPV4)
register(RAW6_VERSION, 6, IPV6)

# MPLS (RFC 3032): label stack entries of 4 bytes down to the one with the bottom-of-stack
# bit (S, §2.1), then IPv4 or IPv6 by the first nibble (RFC 3032 leaves what lies beneath
# to the label's binding; Wireshark and Zeek look at the nibble, as here); another nibble
# (a pseudowire without its control word, an associated channel) is not TCP.
MPLS_STACK = Dispatch("MPLS bottom-of-stack bit")
MPLS_PAYLOAD = Layer(
    "MPLS payload",
    "IP header beneath the MPLS label stack",
    0,
    next=Field(0, 1, shift=4),
    dispatch=Dispatch("IP version beneath MPLS", skip="other-mpls-payload"),
)
register(MPLS_PAYLOAD.dispatch, 4, IPV4)
register(MPLS_PAYLOAD.dispatch, 6, IPV6)
MPLS = Layer("MPLS", "MPLS label stack entry", 4, next=Field(2, 1, mask=1), dispatch=MPLS_STACK)
register(ETHERTYPE, 0x8847, MPLS)  # RFC 3032 §5: unicast
register(ETHERTYPE, 0x8848, MPLS)  # multicast
register(MPLS_STACK, 0, MPLS)  # not the bottom: another entry follows
register(MPLS_STACK, 1, MPLS_PAYLOAD)  # the bottom of the stack

# An Ethernet pseudowire (RFC 4448) with its control word (RFC 4385 §3): beneath the
# bottom of the stack, a first nibble 0 is the preferred PW control word (0000, flags,
# fragment bits, length, sequence number: 4 bytes), then an Ethernet frame. Wireshark's
# "pw_eth_heuristic" takes a first nibble 0 as a control word too (Zeek hands what is
# beneath a stack to IP and decodes no pseudowire); 4 and 6 stay IPv4 and IPv6.
PW_CONTROL_WORD = Dispatch("PW control word first nibble")
PW_ETH = Layer(
    "PW control word", "MPLS pseudowire control word", 4, next=Field(0, 1, shift=4),
    dispatch=PW_CONTROL_WORD,
)  # fmt: skip
register(MPLS_PAYLOAD.dispatch, 0, PW_ETH)
register(PW_CONTROL_WORD, 0, ETHERNET)  # its nibble is 0 (how it was reached)

# PPPoE session stage (RFC 2516 §4-5): version/type, code, session id, length, then the
# PPP protocol (RFC 1661 §2; 0x0021 IPv4, RFC 1332; 0x0057 IPv6, RFC 5072); the discovery
# stage (0x8863) and other PPP protocols (LCP, IPCP...) are not TCP.
PPP_PROTOCOL = Dispatch("PPP protocol", skip="other-ppp-protocol")
PPPOE = Layer(
    "PPPoE", "PPPoE session header", 8, next=Field(6, 2), dispatch=PPP_PROTOCOL, label="pppoe"
)
PPPOE.ident = Field(2, 2)  # the session id
register(ETHERTYPE, 0x8864, PPPOE)
ETHERTYPE.kinds[0x8863] = "pppoe-discovery"
register(PPP_PROTOCOL, 0x0021, IPV4)
register(PPP_PROTOCOL, 0x0057, IPV6)

# ---- tunnels: what follows an IP header ---------------------------------------------------
#
# The IP header itself (options, extension headers, fragments, lengths) is parsed by the
# decoders; when its protocol (IPv4) or last next header (IPv6) is not TCP, the walk goes
# on through these dispatches (Wireshark's "ip.proto" and "udp.port" tables, Zeek's
# IP/UDP tunnel analyzers) and the IP header becomes the outer one of a tunnel. A value
# that names nothing is skipped under the IP protocol's kind (``"ipv4-udp"``, ...) as
# before tunnels were decoded.
#
#: IPv4 protocol numbers / IPv6 next headers that name a tunnel (IANA protocol numbers).
IP_PROTOCOL = Dispatch("IP protocol")
IPV6_PROTOCOL = Dispatch("IPv6 next header")
#: The UDP ports of the UDP tunnels (destination port first, then source port): the
#: default ports of :data:`UDP_TUNNELS`, registered from there; :func:`tunnel_tables`
#: makes a table with other ports.
UDP_PORT = Dispatch("UDP port", skip="ipv4-udp")
UDP6_PORT = Dispatch("UDP port", skip="ipv6-udp")
UDP6_PORT.layers = UDP_PORT.layers  # one table of ports for both IP versions
UDP = Layer(
    "UDP", "UDP header", 8, next=Field(2, 2), next_alt=Field(0, 2), dispatch=UDP_PORT,
    label="udp", label_value=True,
)  # fmt: skip
UDP6 = Layer(
    "UDP", "UDP header", 8, next=Field(2, 2), next_alt=Field(0, 2), dispatch=UDP6_PORT,
    label="udp", label_value=True,
)  # fmt: skip

# IP-in-IP (RFC 2003), 6in4 / sit (RFC 4213 §3.5), IPv4 and IPv6 in IPv6 (RFC 2473).
for _d in (IP_PROTOCOL, IPV6_PROTOCOL):
    register(_d, 4, IPV4)
    register(_d, 41, IPV6)

# GRE (RFC 2784, RFC 2890): C R K S bits then the version (0; 1 is PPTP's enhanced GRE,
# RFC 2637, not decoded), then the protocol type, an ethertype (0x6558: transparent
# Ethernet bridging, gretap); then the checksum and offset (C or R), key (K) and
# sequence number (S), 4 bytes each. The key, when there is one, tells tunnels between
# the same endpoints apart (RFC 2890 §2.1): it follows the label (``"gre 1"``), so it is
# part of a connection's identity; its place (4 or 8) is read from the C R K bits with
# the version (the value of GRE_VERSION's field: those bits and the version).
# The S bit (a sequence number) is read with them: ERSPAN's protocol type 0x88BE names
# type I without it and type II with it (below).
_GRE_C, _GRE_R, _GRE_K, _GRE_S = 0x8000, 0x4000, 0x2000, 0x1000
GRE_VERSION = Dispatch("GRE version", malformed="GRE flags and version {value:#06x} not supported")
GRE_CHECK = Layer(
    "GRE", "GRE header", 0, next=Field(0, 2, mask=_GRE_C | _GRE_R | _GRE_K | _GRE_S | 7),
    dispatch=GRE_VERSION,
)  # fmt: skip
_GRE_LENGTHS = tuple(4 + 4 * (bool(b & 0xC) + bool(b & 2) + bool(b & 1)) for b in range(16))


#: GRE's protocol types after a header with a sequence number (S): the ethertypes
#: (Wireshark's "gre.proto" table holds them too) and ERSPAN's types II and III, which
#: name no layer after an Ethernet header (filled below); without one,
#: :data:`GRE_PROTOCOL_NO_SEQUENCE`, where 0x88BE is ERSPAN type I
GRE_PROTOCOL = Dispatch("GRE protocol type", skip="other-ethertype", kinds=ETHERTYPE.kinds)
GRE_PROTOCOL_NO_SEQUENCE = Dispatch(
    "GRE protocol type", skip="other-ethertype", kinds=ETHERTYPE.kinds
)


def _gre(ident: Field | None, protocol: Dispatch) -> Layer:
    return Layer(
        "GRE", "GRE header", 4, next=Field(2, 2), dispatch=protocol,
        length_from=Field(0, 1, shift=4), length_table=_GRE_LENGTHS, label="gre", ident=ident,
    )  # fmt: skip


#: (no key, key right after the protocol type, key after the checksum and offset), with a
#: sequence number and without
_GRE_LAYERS = {
    seq: (_gre(None, d), _gre(Field(4, 4), d), _gre(Field(8, 4), d))
    for seq, d in ((True, GRE_PROTOCOL), (False, GRE_PROTOCOL_NO_SEQUENCE))
}
GRE, GRE_KEY, GRE_CHECKSUM_KEY = _GRE_LAYERS[False]
for _flags in range(0, _GRE_C | _GRE_R | _GRE_K | _GRE_S + 1, _GRE_S):
    _plain, _key, _checksum_key = _GRE_LAYERS[bool(_flags & _GRE_S)]
    if not _flags & _GRE_K:
        _layer = _plain
    else:
        _layer = _checksum_key if _flags & (_GRE_C | _GRE_R) else _key
    register(GRE_VERSION, _flags, _layer)  # version 0
    for _version in range(1, 8):
        GRE_VERSION.reasons[_flags | _version] = (
            "GRE version 1 (PPTP) not supported"
            if _version == 1
            else f"GRE version {_version} not supported"
        )
register(ETHERTYPE, 0x6558, ETHERNET)  # transparent Ethernet bridging (GRE, Geneve)
GRE_PROTOCOL.layers.update(ETHERTYPE.layers)  # every ethertype, in its order
GRE_PROTOCOL_NO_SEQUENCE.layers.update(ETHERTYPE.layers)

# ERSPAN (Cisco's Encapsulated Remote SPAN, draft-foschiano-erspan-03 §4), carried in
# GRE: protocol type 0x88BE is type II, an 8-byte header (version 1, VLAN, COS, En, T,
# the 10-bit session id; reserved, index); 0x22EB is type III, a 12-byte header (version
# 2, VLAN, COS, BSO, T, session id; timestamp; SGT, P, FT, hardware id, D, Gra and the O
# bit, the header's last bit) and, when O is set, an 8-byte platform-specific subheader;
# then the mirrored Ethernet frame. The session id follows the label ("erspan 2 100"):
# two mirroring sessions are two connections. A version that does not match the
# protocol type is malformed. Type I is 0x88BE in a GRE header without a sequence number
# (S bit clear) and no ERSPAN header at all: the mirrored Ethernet frame follows GRE
# (Wireshark's packet-erspan.c tells the two types apart by the S bit, as here; Linux's
# include/net/erspan.h draws the same 4-byte GRE header). Its path entry is "erspan 1",
# without a session id (it has none: two type I sessions between the same endpoints are
# one tunnel).
ERSPAN2_VERSION = Dispatch(
    "ERSPAN version", malformed="ERSPAN type II header with version {value} (1 expected)"
)
ERSPAN2 = Layer(
    "ERSPAN", "ERSPAN type II header", 8, next=Field(0, 1, shift=4), dispatch=ERSPAN2_VERSION,
    label="erspan 2", ident=Field(2, 2, mask=0x3FF),
)  # fmt: skip
ERSPAN3_VERSION = Dispatch(
    "ERSPAN version", malformed="ERSPAN type III header with version {value} (2 expected)"
)
ERSPAN3 = Layer(
    "ERSPAN", "ERSPAN type III header", 12, next=Field(0, 1, shift=4), dispatch=ERSPAN3_VERSION,
    length_from=Field(11, 1, mask=1), length_table=(12, 20),
    label="erspan 3", ident=Field(2, 2, mask=0x3FF),
)  # fmt: skip
register(ERSPAN2_VERSION, 1, ETHERNET)
register(ERSPAN3_VERSION, 2, ETHERNET)
# (a zero-length layer: its next-layer field reads the mirrored frame's first byte and
# masks it to 0, the one value of its table)
ERSPAN1_FRAME = Dispatch("ERSPAN type I frame")
ERSPAN1 = Layer(
    "ERSPAN", "mirrored Ethernet frame (ERSPAN type I)", 0, next=Field(0, 1, mask=0),
    dispatch=ERSPAN1_FRAME, label="erspan 1",
)  # fmt: skip
register(ERSPAN1_FRAME, 0, ETHERNET)
register(GRE_PROTOCOL, 0x88BE, ERSPAN2)
register(GRE_PROTOCOL, 0x22EB, ERSPAN3)
register(GRE_PROTOCOL_NO_SEQUENCE, 0x88BE, ERSPAN1)
register(GRE_PROTOCOL_NO_SEQUENCE, 0x22EB, ERSPAN3)  # type III has its header either way
for _d in (IP_PROTOCOL, IPV6_PROTOCOL):
    register(_d, 47, GRE_CHECK)
    register(_d, 17, UDP if _d is IP_PROTOCOL else UDP6)

# VXLAN (RFC 7348 §5): flags (I, 0x08, must be set), 24 reserved bits, the 24-bit VNI,
# 8 reserved bits; then an Ethernet frame.
VXLAN_FLAG = Dispatch("VXLAN I flag", malformed="VXLAN header without the I flag (no valid VNI)")
VXLAN = Layer(
    "VXLAN", "VXLAN header", 8, next=Field(0, 1, shift=3, mask=1), dispatch=VXLAN_FLAG,
    label="vxlan", ident=Field(4, 4, shift=8),
)  # fmt: skip
register(VXLAN_FLAG, 1, ETHERNET)

# Geneve (RFC 8926 §3.4): version (2 bits, 0), options length (6 bits, 4-byte units),
# O C flags, protocol type (an ethertype: 0x6558 Ethernet, IPv4, IPv6), 24-bit VNI,
# reserved; then the options.
GENEVE_VERSION = Dispatch("Geneve version", malformed="Geneve version {value} not supported")
GENEVE_CHECK = Layer(
    "Geneve", "Geneve header", 0, next=Field(0, 1, shift=6), dispatch=GENEVE_VERSION
)
GENEVE = Layer(
    "Geneve", "Geneve header", 8, next=Field(2, 2), dispatch=ETHERTYPE,
    length_from=Field(0, 1, mask=0x3F), length_unit=4, length_add=8,
    label="geneve", ident=Field(4, 4, shift=8),
)  # fmt: skip
register(GENEVE_VERSION, 0, GENEVE)

# GTP-U (3GPP TS 29.281 §5): flags (version 1, PT 1, E S PN), message type (255: G-PDU;
# echo, error indication, end marker are signalling), length, TEID; with any of E S PN
# the sequence number, N-PDU number and next extension header type (4 bytes); then the
# extension headers (length in 4-byte units, their next type in their last byte); then
# an IPv4 or IPv6 packet (by its version nibble).
GTPU_MESSAGE = Dispatch("GTP-U message type", skip="gtpu-signalling")
GTPU = Layer("GTP-U", "GTP-U header", 0, next=Field(1, 1), dispatch=GTPU_MESSAGE)
GTPU_FLAGS = Dispatch(
    "GTP-U flags", malformed="unsupported GTP-U flags {value:#04x} (version 1, PT 1 expected)"
)
# The TEID is the receiving endpoint's (§5.1: "unambiguously identifies a tunnel endpoint
# in the receiving GTP-U protocol entity"): an uplink G-PDU carries the core's TEID, the
# downlink the access node's, so the TEID is an ident per direction.
GTPU_HEADER = Layer(
    "GTP-U", "GTP-U header", 8, next=Field(0, 1), dispatch=GTPU_FLAGS,
    label="gtpu", ident=Field(4, 4), ident_per_direction=True,
)  # fmt: skip
GTPU_NEXT = Dispatch("GTP-U next extension header type")
GTPU_OPTIONAL = Layer("GTP-U", "GTP-U optional fields", 4, next=Field(3, 1), dispatch=GTPU_NEXT)
GTPU_EXTENSION = Layer(
    "GTP-U", "GTP-U extension header", 4, next=Field(-1, 1), dispatch=GTPU_NEXT,
    length_from=Field(0, 1), length_unit=4,
)  # fmt: skip
GTPU_PAYLOAD = Layer(
    "GTP-U payload",
    "IP header inside GTP-U",
    0,
    next=Field(0, 1, shift=4),
    dispatch=Dispatch("IP version inside GTP-U", skip="other-gtpu-payload"),
)
register(GTPU_MESSAGE, 0xFF, GTPU_HEADER)
register(GTPU_FLAGS, 0x30, GTPU_PAYLOAD)
for _value in range(0x31, 0x38):
    register(GTPU_FLAGS, _value, GTPU_OPTIONAL)
register(GTPU_NEXT, 0, GTPU_PAYLOAD)
for _value in range(1, 256):
    register(GTPU_NEXT, _value, GTPU_EXTENSION)
register(GTPU_PAYLOAD.dispatch, 4, IPV4)
register(GTPU_PAYLOAD.dispatch, 6, IPV6)

# Teredo (RFC 4380 §5.1.1): an IPv6 packet, optionally after an authentication
# indicator (0x0001, id-len, au-len, client id, authentication value, nonce (8),
# confirmation (1)) and an origin indication (0x0000, port, address: 8 bytes).
TEREDO_NEXT = Dispatch("Teredo payload", skip="other-teredo-payload")
TEREDO = Layer("Teredo", "Teredo packet", 0, next=Field(0, 1, shift=4), dispatch=TEREDO_NEXT)
TEREDO.label = "teredo"
TEREDO_INDICATOR = Dispatch("Teredo indicator", malformed="unknown Teredo indicator {value:#06x}")
TEREDO_IND = Layer("Teredo", "Teredo indicator", 0, next=Field(0, 2), dispatch=TEREDO_INDICATOR)
TEREDO_ORIGIN = Layer(
    "Teredo", "Teredo origin indication", 8, next=Field(8, 1, shift=4), dispatch=TEREDO_NEXT
)
# its length is 13 bytes and the two lengths; its next field is its own indicator (1),
# which names what follows it: an origin indication or the IPv6 packet
TEREDO_AUTHENTICATED = Dispatch("Teredo authentication indicator")
TEREDO_AUTH = Layer(
    "Teredo", "Teredo authentication header", 13, next=Field(0, 2),
    dispatch=TEREDO_AUTHENTICATED, length_from=Field(2, 1), length_sum=(Field(3, 1),),
    length_add=13,
)  # fmt: skip
register(
    TEREDO_AUTHENTICATED,
    1,
    Layer("Teredo", "Teredo packet", 0, next=Field(0, 1, shift=4), dispatch=TEREDO_NEXT),
)
register(TEREDO_NEXT, 6, IPV6)
register(TEREDO_NEXT, 0, TEREDO_IND)
register(TEREDO_INDICATOR, 0, TEREDO_ORIGIN)
register(TEREDO_INDICATOR, 1, TEREDO_AUTH)

#: The UDP tunnels by name (the keys of the ``tunnel-ports`` option) and their default
#: ports (as IANA assigns them): the one place a UDP tunnel is declared. The default
#: table :data:`UDP_PORT` is made from it, as :func:`tunnel_tables` makes one with other
#: ports (:func:`_register_udp_tunnels`).
UDP_TUNNELS: dict[str, tuple[Layer, tuple[int, ...]]] = {
    "vxlan": (VXLAN, (4789,)),  # RFC 7348 §5
    "geneve": (GENEVE_CHECK, (6081,)),  # RFC 8926 §3.3
    "gtpu": (GTPU, (2152,)),  # 3GPP TS 29.281
    "teredo": (TEREDO, (3544,)),  # RFC 4380
}


def _register_udp_tunnels(dispatch: Dispatch, ports: Mapping[str, Iterable[int]]) -> None:
    """Register each tunnel of :data:`UDP_TUNNELS` in ``dispatch`` under its ports in
    ``ports`` (name -> UDP ports), or its default ports when ``ports`` does not name it.

    :raises ValueError: a port outside 0-65535, or one port named by two tunnels (one
        line, starting ``tunnel-ports:``, naming both tunnels).
    """
    owner: dict[int, str] = {}
    for name, (layer, default) in UDP_TUNNELS.items():
        for port in ports.get(name, default):
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                raise ValueError(f"tunnel-ports: {name} port {port!r} is not a UDP port")
            first = owner.setdefault(port, name)
            if first != name:
                raise ValueError(_port_conflict(port, first, name, ports))
            register(dispatch, port, layer)


def _port_conflict(port: int, first: str, second: str, ports: Mapping[str, object]) -> str:
    """The error of UDP ``port`` named by the tunnels ``first`` and ``second``."""
    given = [name for name in (first, second) if name in ports]
    if len(given) != 1:
        return f"tunnel-ports: port {port} given to both {first} and {second}"
    mine = given[0]
    theirs = second if mine == first else first
    return (
        f"tunnel-ports: {mine} port {port} is {theirs}'s default port"
        f" (give {theirs} other ports, or {theirs} = [] to turn it off)"
    )


_register_udp_tunnels(UDP_PORT, {})

# The entries of the link layers in an encapsulation path.
for _layer, _label in ((ETHERNET, "eth"), (SLL, "sll"), (SLL2, "sll2"), (NULL, "null"),
                       (LOOP, "loop"), (VLAN, "vlan"), (MPLS, "mpls")):  # fmt: skip
    _layer.label = _label
VLAN.ident = Field(0, 2, mask=0xFFF)
MPLS.ident = Field(0, 4, shift=12)
# An MPLS label is the downstream router's (RFC 3031 §3.4: the label is assigned by the
# LSR that receives it): the two directions of one connection may carry different ones.
MPLS.ident_per_direction = True

#: The labels of the layers whose ident is per direction (``ident_per_direction``:
#: ``{"gtpu", "mpls"}``): in an encapsulation path, ``"gtpu 4097"`` names the tunnel at
#: its receiver only. :func:`pcapcheck.tcp.tracker.connection_key` leaves these idents
#: out; :class:`pcapcheck.tcp.tracker.TunnelPairing` pairs the directions of those that
#: follow an outer IP header (its destination is the receiver; an MPLS label stack
#: before any tunnel names no endpoint: it is not part of a connection's identity). The
#: one list both read.
PER_DIRECTION_LABELS = frozenset(
    layer.label
    for layer in _walk(
        [*LINKTYPE.layers.values(), *IP_PROTOCOL.layers.values(), *IPV6_PROTOCOL.layers.values()]
    )
    if layer.ident_per_direction and layer.label is not None
)


def udp_tunnel_layers(ports: Mapping[str, Iterable[int]] | None = None) -> dict[int, Layer]:
    """The UDP tunnel layer on each UDP port with ``ports`` (as :func:`tunnel_tables`
    takes them; None or empty: IANA's, :data:`UDP_PORT`): ``{4789: VXLAN, 8472:
    VXLAN, ...}``, the layers of :data:`UDP_TUNNELS`.

    :raises ValueError: as :func:`tunnel_tables`.
    """
    return tunnel_tables(ports)[0][17].dispatch.layers if ports else UDP_PORT.layers


#: Zeek's type (``Tunnel::Type``, the ``tunnel_type`` of its tunnel.log) of each tunnel
#: label of an encapsulation path; an IP header carrying an IP header (IP-in-IP, 6in4,
#: ip6tnl) is ``Tunnel::IP``. ERSPAN is decoded by Zeek's GRE analyzer: its GRE entry
#: stands for it. MPLS, PPPoE and VLAN are link layers for Zeek, not tunnels.
ZEEK_TUNNEL_TYPES = {
    "gre": "Tunnel::GRE",
    "vxlan": "Tunnel::VXLAN",
    "geneve": "Tunnel::GENEVE",
    "gtpu": "Tunnel::GTPv1",
    "teredo": "Tunnel::TEREDO",
}


def tunnel_parents(path: Sequence[str]) -> list[dict[str, str | int]]:
    """Zeek's view of the tunnels of an encapsulation path (a connection's
    ``encapsulation``, client to server, outermost first): one ``{"tunnel_type",
    "orig_h", "resp_h"}`` per tunnel, outermost first, with ``"resp_p"`` for a tunnel in
    UDP: the port in the path, the one that named the tunnel (the destination port as a
    rule). These are the ``tunnel_type`` and ``id`` fields of the tunnel.log entries that
    Zeek's conn.log ``tunnel_parents`` refer to by uid; the addresses are the outer IP
    header's as the client's segments carry them. The other UDP port (the senders of
    VXLAN, Geneve and GTP-U vary the source port per inner flow for entropy, RFC 7348
    §5) is not in the path: it is no part of a tunnel's identity here.

    ``["eth", "ipv4 192.0.2.1>192.0.2.2", "udp 4789", "vxlan 42", "eth", "ipv4"]`` →
    ``[{"tunnel_type": "Tunnel::VXLAN", "orig_h": "192.0.2.1", "resp_h": "192.0.2.2",
    "resp_p": 4789}]``. Empty for a path without tunnels.
    """
    return [dict(tunnel) for tunnel in _tunnel_parents(tuple(path))]


@functools.lru_cache(maxsize=1 << 10)
def _tunnel_parents(path: tuple[str, ...]) -> list[dict[str, str | int]]:
    """:func:`tunnel_parents`, once per distinct path (connections share their tunnels)."""
    out: list[dict[str, str | int]] = []
    outer: list[str] = []
    port: int | None = None
    for i, entry in enumerate(path):
        name, _, value = entry.partition(" ")
        if name in ("ipv4", "ipv6"):
            if ">" in value:  # an outer IP header, with its addresses (ip_entry)
                outer, port = value.split(">", 1), None
                after = path[i + 1].partition(" ")[0] if i + 1 < len(path) else ""
                if after in ("ipv4", "ipv6"):
                    out.append(
                        {"tunnel_type": "Tunnel::IP", "orig_h": outer[0], "resp_h": outer[1]}
                    )
            continue
        if name == "udp":
            port = int(value)
            continue
        kind = ZEEK_TUNNEL_TYPES.get(name)
        if kind is not None and outer:
            tunnel: dict[str, str | int] = {
                "tunnel_type": kind,
                "orig_h": outer[0],
                "resp_h": outer[1],
            }
            if port is not None:
                tunnel["resp_p"] = port
            out.append(tunnel)
    return out


def tunnel_tables(
    ports: Mapping[str, Iterable[int]] | None = None,
) -> tuple[dict[int, Layer], dict[int, Layer]]:
    """The layers named by an IPv4 protocol and by an IPv6 next header after an IP
    header (:data:`IP_PROTOCOL`, :data:`IPV6_PROTOCOL`), with the UDP tunnels on
    ``ports`` (tunnel name -> UDP ports, the keys of :data:`UDP_TUNNELS`: ``{"vxlan":
    [4789, 8472]}``; a tunnel not named keeps its default ports, an empty list turns it
    off; None or empty: the defaults). A decoder takes them as ``tunnel_ports=``
    (:class:`pcapcheck.capture.decoder.Decoder`, the batch decoder), from the run's
    settings (the ``tunnel-ports`` configuration key, :mod:`pcapcheck.catalog.config`;
    ``pcapcheck.run.tasks.Settings.tunnel_ports``): nothing here is global.

    :raises ValueError: an unknown tunnel name, a port outside 0-65535, a port of two
        tunnels (one line, starting ``tunnel-ports:``).
    """
    if not ports:
        return IP_PROTOCOL.layers, IPV6_PROTOCOL.layers
    unknown = set(ports) - set(UDP_TUNNELS)
    if unknown:
        raise ValueError(
            f"tunnel-ports: unknown tunnel {sorted(unknown)[0]!r} (known: {', '.join(UDP_TUNNELS)})"
        )
    d4, d6 = Dispatch("UDP port", skip="ipv4-udp"), Dispatch("UDP port", skip="ipv6-udp")
    d6.layers = d4.layers
    _register_udp_tunnels(d4, ports)
    out = []
    for table, udp in ((IP_PROTOCOL.layers, UDP), (IPV6_PROTOCOL.layers, UDP6)):
        copy = dict(table)
        copy[17] = Layer(
            udp.name, udp.title, 8, next=udp.next, next_alt=udp.next_alt,
            dispatch=d4 if udp is UDP else d6, label="udp", label_value=True,
        )  # fmt: skip
        out.append(copy)
    return out[0], out[1]
