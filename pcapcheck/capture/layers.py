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

from collections.abc import Iterator

__all__ = [
    "ETHERTYPE",
    "IPV4",
    "IPV6",
    "LINKTYPE",
    "MPLS",
    "Dispatch",
    "Field",
    "Layer",
    "layers",
    "register",
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
    """

    __slots__ = (
        "dispatch",
        "length",
        "length_from",
        "length_unit",
        "name",
        "need",
        "network",
        "next",
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
    ):
        if (next is None) != (dispatch is None) or (next is None) == (network is None):
            raise ValueError(f"layer {name}: a next field with its dispatch, or a network")
        self.name = name
        self.title = title
        self.length = length
        self.next = next
        self.dispatch: Dispatch = dispatch if dispatch is not None else _END
        self.network = network
        self.length_from = length_from
        self.length_unit = length_unit
        ends = [length] + [f.end for f in (next, length_from) if f is not None]
        self.need = max(ends)

    def truncated(self, have: int, need: int | None = None) -> str:
        """The malformed record's reason when ``have`` of the header's ``need`` bytes
        (default :attr:`need`) are captured."""
        return f"truncated {self.title} ({have} of {need or self.need} bytes captured)"

    def header_length(self, data: bytes, start: int) -> int:
        """The length of the header that starts at ``data[start]`` (its ``need`` bytes
        captured): ``length``, or the value of ``length_from`` times ``length_unit``."""
        f = self.length_from
        return self.length if f is None else f.read(data, start) * self.length_unit

    def __repr__(self) -> str:
        return f"Layer({self.name!r})"


class Dispatch:
    """The layers named by the values of a next-layer field (a dissector table).

    ``Dispatch(name, skip=None, kinds=None, malformed=None)``: a value that names no
    layer makes the record one that is not TCP, counted under ``kinds.get(value,
    skip)`` (a skipped kind), or, when ``skip`` is None, a malformed record with the
    reason ``malformed.format(value=value)``. ``layers``: value -> :class:`Layer`,
    filled by :func:`register` in the order of registration (the batch decoder tries
    them in that order: the common ones first).
    """

    __slots__ = ("kinds", "layers", "malformed", "name", "skip")

    def __init__(
        self,
        name: str,
        skip: str | None = None,
        kinds: dict[int, str] | None = None,
        malformed: str | None = None,
    ):
        self.name = name
        self.skip = skip
        self.kinds = kinds or {}
        self.malformed = malformed or f"unsupported {name} {{value}}"
        self.layers: dict[int, Layer] = {}

    def skip_kind(self, value: int) -> str | None:
        """The skipped kind of an unbound ``value``, or None: malformed."""
        if self.skip is None:
            return None
        return self.kinds.get(value, self.skip)

    def reason(self, value: int) -> str:
        """The malformed record's reason for an unbound ``value`` (``skip`` is None)."""
        return self.malformed.format(value=value)

    def __repr__(self) -> str:
        return f"Dispatch({self.name!r})"


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
    seen: set[int] = set()
    todo = list(LINKTYPE.layers.values())
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
# (a pseudowire, a control word) is not TCP.
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
