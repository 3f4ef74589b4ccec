"""What more than one output format says the same way (kept here so that the format
modules stay independent of each other; an import-linter contract checks it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pcapcheck.i18n import DEFAULT_LANGUAGE, get_language, ngettext
from pcapcheck.i18n import gettext as _
from pcapcheck.tcp.tracker import unpaired_idents

if TYPE_CHECKING:
    from pcapcheck.catalog.rules import Catalog, Rule
    from pcapcheck.model import Finding
    from pcapcheck.report import ReportContext
    from pcapcheck.results import FileResult

__all__ = [
    "CONNECTION_COLUMNS",
    "NUMERIC_COLUMNS",
    "SEVERITY_ORDER",
    "column_title",
    "connection_columns",
    "connection_filter",
    "connection_row",
    "encapsulation_short",
    "endpoint_parts",
    "finding_message",
    "severity_count_parts",
    "severity_counts",
    "state_text",
    "summary_line",
    "value_text",
]

#: Finding severities, most severe first (the order of counts in a summary line).
SEVERITY_ORDER = ("error", "warning", "info")

#: Entries of an encapsulation path left out of its short form: link layers and the
#: UDP header of a UDP tunnel (the tunnel's own entry follows it).
_NOT_SHORT = frozenset({"eth", "sll", "sll2", "null", "loop", "vlan", "udp"})


def encapsulation_short(conn: Mapping[str, Any]) -> str:
    """The short form of a connection's encapsulation path (the summary's
    ``encapsulation`` list, :mod:`pcapcheck.capture.layers`), for tables: ``""`` for a
    plain connection (no ``encapsulation``); else its tunnels and label stacks from the
    outermost, joined by ``">"``: ``"vxlan:42"`` (VNI), ``"geneve:7"``,
    ``"gtpu:4097"`` (TEID; ``"gtpu:257/40961"``: uplink / downlink TEID, client to
    server first), ``"mpls:100"`` (label), ``"pppoe:5"`` (session id),
    ``"gre"``, ``"teredo"``, and an IP header inside an IP header (RFC 2003, RFC 4213,
    RFC 2473) as ``"ipip"``, ``"6in4"``, ``"4in6"``, ``"6in6"``: ``"gre>ipip"``. Link
    layers, UDP headers and outer addresses are left out (the JSON has them).
    """
    path = conn.get("encapsulation")
    if not path:
        return ""
    out = []
    for i, entry in enumerate(path):
        name, _, value = entry.partition(" ")
        if name in _NOT_SHORT:
            continue
        if name in ("ipv4", "ipv6"):
            if ">" not in value or i + 1 >= len(path):
                continue  # the inner network layer
            inner = path[i + 1].partition(" ")[0]
            if inner in ("ipv4", "ipv6"):
                out.append("ipip" if name == inner == "ipv4" else f"{inner[3]}in{name[3]}")
            continue
        out.append(f"{name}:{value.replace(' ', ':')}" if value else name)  # erspan:2:100
    return ">".join(out)


def endpoint_parts(text: str) -> tuple[str, int]:
    """``"10.0.0.1:40000"`` → ``("10.0.0.1", 40000)``; ``"[2001:db8::1]:80"`` →
    ``("2001:db8::1", 80)`` (a summary's ``client`` / ``server`` text). Raises
    ValueError when ``text`` does not end with ``:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not an endpoint: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


#: Wireshark's display-filter field of each tunnel or label of an encapsulation path
#: that has one (the path entry's value: VNI, TEID, label, key, session id, VLAN id).
_TUNNEL_FIELDS = {
    "vxlan": "vxlan.vni",
    "geneve": "geneve.vni",
    "gtpu": "gtp.teid",
    "mpls": "mpls.label",
    "gre": "gre.key",
    "pppoe": "pppoe.session_id",
    "vlan": "vlan.id",
}


def connection_filter(conn: Mapping[str, Any]) -> str:
    """The Wireshark display filter of a connection's packets, from its endpoints (stable
    across tools, unlike ``tcp.stream``) and its tunnels (the summary's
    ``encapsulation``, when the mapping has it): ``ip.addr == 10.0.0.1 && tcp.port ==
    40000 && ip.addr == 10.0.0.2 && tcp.port == 80`` (``ipv6.addr`` for IPv6), then ``&&
    vxlan.vni == 42`` (``geneve.vni``, ``gtp.teid``, ``mpls.label``, ``gre.key``,
    ``pppoe.session_id``, ``vlan.id``) for each tunnel entry with a value; an entry with
    a value per direction (GTP-U's TEIDs, ``"gtpu 257/40961"``) matches both: ``&&
    gtp.teid in {257 40961}``; an MPLS label under the tunnels (one direction's only,
    :func:`pcapcheck.tcp.tracker.unpaired_idents`) is left out."""
    parts = []
    for text in (conn["client"], conn["server"]):
        host, port = endpoint_parts(text)
        field = "ipv6.addr" if ":" in host else "ip.addr"
        parts.append(f"{field} == {host} && tcp.port == {port}")
    path = tuple(conn.get("encapsulation") or ())
    skip = unpaired_idents(path) if path else frozenset()
    for i, entry in enumerate(path):
        name, _sep, value = entry.partition(" ")
        if name not in _TUNNEL_FIELDS or i in skip:
            continue
        if value.isdigit():
            parts.append(f"{_TUNNEL_FIELDS[name]} == {value}")
        elif all(v.isdigit() for v in value.split("/")):  # one per direction: "257/40961"
            parts.append(f"{_TUNNEL_FIELDS[name]} in {{{' '.join(value.split('/'))}}}")
    return " && ".join(parts)


#: The columns of a connection row, in order (the ``table`` and ``markdown`` reports and
#: the HTML report's table): names for :func:`column_title`. ``"tunnel"`` is shown when
#: a format asks for it (:func:`connection_columns`).
CONNECTION_COLUMNS = (
    "id",
    "client",
    "server",
    "tunnel",
    "handshake",
    "close",
    "client state",
    "server state",
    "conn_state",
    "packets",
    "findings",
)
#: The connection columns holding numbers (right-aligned, sorted as numbers).
NUMERIC_COLUMNS = frozenset({"id", "packets", "findings"})


def connection_columns(tunnel: bool) -> list[str]:
    """:data:`CONNECTION_COLUMNS`, without ``"tunnel"`` unless ``tunnel``."""
    return [c for c in CONNECTION_COLUMNS if tunnel or c != "tunnel"]


def state_text(state: str | None) -> str:
    """An RFC 9293 state as shown: ``"?"`` when not known (None or empty)."""
    return state or "?"


def connection_row(conn: Mapping[str, Any]) -> dict[str, Any]:
    """A connection summary's cells as every format shows them, by column name
    (:data:`CONNECTION_COLUMNS`): the client with ``*`` when the roles were inferred
    (no SYN captured), the tunnel's short form (:func:`encapsulation_short`), handshake
    and close in the current language (:func:`value_text`), a state not known as
    ``"?"``, Zeek's ``conn_state`` (``""`` when none), packets of both directions."""
    return {
        "id": conn["id"],
        "client": conn["client"] + ("*" if conn["roles_inferred"] else ""),
        "server": conn["server"],
        "tunnel": encapsulation_short(conn),
        "handshake": value_text(conn["handshake"]),
        "close": value_text(conn["close"]),
        "client state": state_text(conn["client_state"]),
        "server state": state_text(conn["server_state"]),
        "conn_state": conn["conn_state"] or "",
        "packets": conn["packets"]["client"] + conn["packets"]["server"],
        "findings": conn["findings"],
    }


def summary_line(res: FileResult) -> str:
    """One capture's totals as a line of text (no newline), the last line of the
    ``table`` and ``markdown`` reports for a capture::

        3 connections, 2 findings (1 error, 1 warning) in 42 packets; 5 non-TCP skipped (5 udp)

    Severity counts with none are left out (``info`` is not pluralised); the tail, after
    ``;``, lists non-TCP records skipped by kind, malformed records and a file cut short,
    each only when there is one.
    """
    sev = Counter(f.severity for f in res.findings)
    parts = severity_counts(sev)
    n = len(res.connections)
    found = len(res.findings)
    text = _("{connections}, {findings}{severities} in {packets} packets").format(
        connections=ngettext("{n} connection", "{n} connections", n).format(n=n),
        findings=ngettext("{n} finding", "{n} findings", found).format(n=found),
        severities=f" ({parts})" if parts else "",
        packets=res.packets,
    )
    extra = []
    skipped = sum(res.skipped.values())
    if skipped:
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(res.skipped.items()))
        extra.append(_("{n} non-TCP skipped ({kinds})").format(n=skipped, kinds=kinds))
    if res.malformed:
        extra.append(_("{n} malformed").format(n=res.malformed))
    if res.truncated:
        extra.append(_("file cut short"))
    return text + ("; " + "; ".join(extra) if extra else "")


def severity_counts(counts: Mapping[str, int]) -> str:
    """``"1 error, 2 warnings, 3 info"`` in the current language: the severities of
    ``counts`` (severity -> findings), most severe first, those with none left out."""
    return ", ".join(text for _severity, text in severity_count_parts(counts))


def severity_count_parts(counts: Mapping[str, int]) -> list[tuple[str, str]]:
    """:func:`severity_counts` as ``(severity, text)`` pairs (``("warning", "2
    warnings")``), for a format that marks each severity (the HTML report)."""
    return [(s, _severity_count(s, counts[s])) for s in SEVERITY_ORDER if counts.get(s)]


def _severity_count(severity: str, n: int) -> str:
    """``"1 error"``, ``"2 warnings"``, ``"3 info"`` (not pluralised) in the current
    language."""
    if severity == "error":
        return ngettext("{n} error", "{n} errors", n).format(n=n)
    if severity == "warning":
        return ngettext("{n} warning", "{n} warnings", n).format(n=n)
    return ngettext("{n} info", "{n} info", n).format(n=n)


def column_title(name: str) -> str:
    """The heading of a report column (``"client state"``, ``"severity"``...) in the
    current language; Zeek's ``conn_state`` and unknown names as they are."""
    titles = {
        "id": _("id"),
        "client": _("client"),
        "server": _("server"),
        "tunnel": _("tunnel"),
        "handshake": _("handshake"),
        "close": _("close"),
        "client state": _("client state"),
        "server state": _("server state"),
        "packets": _("packets"),
        "findings": _("findings"),
        "rule": _("rule"),
        "name": _("name"),
        "severity": _("severity"),
        "conn": _("conn"),
        "frame": _("frame"),
        "message": _("message"),
        "count": _("count"),
        "default": _("default"),
        "summary": _("summary"),
    }
    return titles.get(name, name)


def value_text(value: Any) -> str:
    """A value of a connection summary or a finding shown to a person, in the current
    language: a severity (``error``, ``warning``, ``info``), a handshake (``complete``,
    ``incomplete``, ``refused``, ``none``) or close (``graceful``, ``half``, ``open``,
    ``reset``, ``none``) outcome, an endpoint (``client``, ``server``), ``on``/``off``;
    anything else (RFC 9293 state names, addresses, numbers) as ``str(value)``."""
    text = str(value)
    if get_language() == DEFAULT_LANGUAGE:
        return text
    values = {
        "error": _("error"),
        "warning": _("warning"),
        "info": _("info"),
        "complete": _("complete"),
        "incomplete": _("incomplete"),
        "refused": _("refused"),
        "none": _("none"),
        "graceful": _("graceful"),
        "half": _("half"),
        "open": _("open"),
        "reset": _("reset"),
        "client": _("client"),
        "server": _("server"),
        "on": _("on"),
        "off": _("off"),
    }
    return values.get(text, text)


def finding_message(finding: Finding, rule: Rule | None = None) -> str:
    """A finding's message in the current language (:func:`pcapcheck.i18n.get_language`):
    the rule's translated template (:meth:`~pcapcheck.catalog.rules.Rule.text`) filled
    from the finding's ``data`` (:func:`~pcapcheck.catalog.rules.format_message`; a
    boolean value as the language's yes / no). ``finding.message`` as it is in English,
    for a rule without a translation, or a rule unknown (``rule``: the catalogue's rule
    of the finding; ``None``: the shipped rule of that id and name). Never raises.
    Interface I3: every report format shows the same text (:data:`pcapcheck.report.FORMATS`
    localises the results once before a renderer sees them)."""
    lang = get_language()
    if lang == DEFAULT_LANGUAGE:
        return finding.message
    if rule is None:
        rule = lookup_rule(None, finding.rule, finding.name)
    if rule is None or rule.id != finding.rule:
        return finding.message
    template = rule.text("message", lang)
    if template == rule.message:
        return finding.message
    from pcapcheck.catalog.rules import format_message

    data = {key: _data_text(value) for key, value in (finding.data or {}).items()}
    return format_message(template, data)


def _data_text(value: Any) -> Any:
    """An event-data value as a translated message shows it: a boolean as yes / no, an
    endpoint (``"client"``, ``"server"``) in the language; anything else unchanged."""
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if value == "client" or value == "server":
        return value_text(value)
    return value


@lru_cache(maxsize=1)
def _shipped_catalog() -> Catalog | None:
    from pcapcheck.catalog.rules import CatalogError, load_catalog

    try:
        return load_catalog()
    except (CatalogError, OSError):
        return None


def lookup_rule(ctx: ReportContext | None, rule_id: str, name: str | None = None) -> Rule | None:
    """The catalogue :class:`~pcapcheck.catalog.rules.Rule` for ``rule_id``: from
    ``ctx.catalog`` when there is one, else from the shipped catalogue provided its name is
    ``name`` (a rule replaced through ``--rules`` may document something else);
    ``None`` when unknown."""
    if ctx is not None and ctx.catalog is not None:
        return ctx.catalog.rules.get(rule_id)
    shipped = _shipped_catalog()
    rule = shipped.rules.get(rule_id) if shipped is not None else None
    if rule is not None and name is not None and rule.name != name:
        return None
    return rule
