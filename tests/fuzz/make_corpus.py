"""Write the seed corpus of the atheris harnesses: ``tests/fuzz/corpus/{capture,rubric,config}``.

Small valid inputs (copies of sample captures, the sample rubric, a configuration, a
rule file) and small versions of the hostile inputs of issue 23: zero-length records
after a valid capture, records with IHL 3, a pcapng of many interface blocks, a gzip
with a flipped bit late, record lengths past the file, YAML alias bombs, 400 nested
parentheses in a CEL condition, an invalid regular expression, deeply nested TOML,
``msl = -1``, nan and inf. Deterministic: run it again after changing it, and commit
the files it writes::

    python tests/fuzz/make_corpus.py
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SAMPLES = ROOT / "sample_pcaps"
CORPUS = HERE / "corpus"

VALID_CAPTURES = [
    "crafted/clean_handshake_close.pcap",
    "crafted/cp003_truncated-packets.pcap",
    "encap/multi_if.pcapng",
    "encap/multi_section.pcapng",
    "encap/eth_ipv4.pcap.gz",
    "encap/eth_ipv4_nsec_bigendian.pcap",
    "encap/sll2.pcap",
    "encap/qinq.pcap",
    "encap/loop.pcap",
    "encap/raw_ipv6_229.pcap",
    "encap/eth_ipv6_allext.pcap",
    "encap/vlan_mpls2_ipv6_hs002.pcap",
    "encap/mpls_ipv4.pcap",
]

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet


def record(data: bytes, ts: int = 1, wire: int | None = None) -> bytes:
    return struct.pack("<IIII", ts, 0, len(data), len(data) if wire is None else wire) + data


def ipv4_tcp(ihl: int = 5, total: int | None = None, offset: int = 5, flags: int = 0x02) -> bytes:
    ip_len = 20 + 20 if total is None else total
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ip_len, 1, 0, 64, 6, 0, bytes(4), bytes(4))
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, offset << 4, flags, 65535, 0, 0)
    return b"\x00" * 12 + b"\x08\x00" + ip + tcp


def pcapng_block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def captures() -> dict[str, bytes]:
    clean = (SAMPLES / "crafted" / "clean_handshake_close.pcap").read_bytes()
    out = {
        "hostile_zero_length_records.pcap": clean + b"\0" * 16_000,
        "hostile_header_then_zeros.pcap": PCAP_HEADER + b"\0" * 8_000,
        "hostile_ihl3.pcap": PCAP_HEADER + b"".join(record(ipv4_tcp(ihl=3)) for _ in range(200)),
        "hostile_tcp_offset4.pcap": PCAP_HEADER + record(ipv4_tcp(offset=4)),
        "hostile_ip_total_short.pcap": PCAP_HEADER + record(ipv4_tcp(total=24)),
        "hostile_caplen_past_end.pcap": PCAP_HEADER + struct.pack("<IIII", 1, 0, 60000, 60000),
        "hostile_caplen_over_snaplen.pcap": PCAP_HEADER.replace(b"\xff\xff\0\0", b"\x40\0\0\0")
        + record(ipv4_tcp() + b"\0" * 100),
        "hostile_header_cut.pcap": PCAP_HEADER[:20],
        "hostile_empty_gzip.pcap.gz": gzip.compress(b"", mtime=0),
    }
    shb = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = pcapng_block(1, struct.pack("<HHI", 1, 0, 65535))
    out["hostile_many_interfaces.pcapng"] = shb + idb * 1_000
    out["hostile_block_length_zero.pcapng"] = shb + struct.pack("<II", 6, 0) + b"\0" * 24
    out["hostile_block_length_odd.pcapng"] = shb + struct.pack("<II", 6, 29) + b"\0" * 32
    epb = pcapng_block(6, struct.pack("<IIIII", 5, 0, 1, 60, 60) + ipv4_tcp())
    out["hostile_epb_unknown_interface.pcapng"] = shb + idb + epb
    opts = struct.pack("<HH", 9, 1) + b"\x7f" + b"\0" * 3 + struct.pack("<HH", 14, 8) + b"\xff" * 8
    idb_opts = pcapng_block(1, struct.pack("<HHI", 1, 0, 65535) + opts + b"\0" * 4)
    out["hostile_tsresol_tsoffset.pcapng"] = (
        shb + idb_opts + epb.replace(b"\x05\0\0\0", b"\0" * 4, 1)
    )
    zipped = bytearray(gzip.compress(clean, mtime=0))
    zipped[len(zipped) - 12] ^= 0x10  # a flipped bit late in the deflate stream
    out["hostile_gzip_flipped_bit.pcap.gz"] = bytes(zipped)
    out["hostile_gzip_cut.pcap.gz"] = gzip.compress(clean, mtime=0)[:-20]
    return out


ALIAS_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
)


def rubrics() -> dict[str, bytes]:
    lab = (SAMPLES / "grading" / "http_lab.yaml").read_text(encoding="utf-8")

    def one_check(condition: str) -> str:
        return (
            "title: t\nchecks:\n  - id: c1\n    title: c\n    points: 1\n"
            f"    condition: '{condition}'\n    feedback: f\n"
        )

    out = {
        "http_lab.yaml": lab,
        "hostile_alias_bomb.yaml": ALIAS_BOMB + "\n",
        "hostile_alias_bomb_in_checks.yaml": one_check("true")
        + "x: "
        + ALIAS_BOMB.replace("\n", "\nx")
        + "\n",
        "hostile_nested_parens.yaml": one_check("(" * 400 + "true" + ")" * 400),
        "hostile_bad_regex.yaml": one_check('connections.exists(c, c.client.matches("(["))'),
        "hostile_unknown_name.yaml": one_check("nosuchthing > 1"),
        "hostile_not_mapping.yaml": "- just\n- a list\n",
        "hostile_deep_yaml.yaml": "a: " + "[" * 2_000 + "]" * 2_000 + "\n",
        "hostile_duplicate_ids.yaml": one_check("true")
        + one_check("true").split("checks:\n", 1)[1],
        "hostile_points_nan.yaml": one_check("true").replace("points: 1", "points: .nan"),
    }
    return {name: text.encode("utf-8") for name, text in out.items()}


def configs() -> dict[str, bytes]:
    rule = (ROOT / "rules" / "CL010.yaml").read_text(encoding="utf-8").replace("CL010", "FZ001")
    toml = {
        "config_full.toml": (
            'select = ["ALL"]\nignore = ["CP004"]\nfail-on = "warning"\n'
            "rules-dirs = []\n[rules.CL010]\nmsl = 30\n[rules.SQ006]\nreorder_window = 0.01\n"
            '[severity]\nCL010 = "error"\n[per-file-ignores]\n"*.pcap" = ["RS"]\n'
        ),
        "hostile_msl_negative.toml": "[rules.CL010]\nmsl = -1\n",
        "hostile_msl_nan.toml": "[rules.CL010]\nmsl = nan\n",
        "hostile_msl_inf.toml": "[rules.CL010]\nmsl = inf\n",
        "hostile_unknown_rule.toml": "[rules.ZZ999]\nx = 1\n",
        "hostile_deep.toml": "a = " + "[" * 300 + "]" * 300 + "\n",
        "hostile_rules_dirs_device.toml": 'rules-dirs = ["/dev/null"]\n',
        "hostile_big_int.toml": "[rules.CL010]\nmsl = " + "9" * 400 + "\n",
    }
    yaml = {
        "rule_valid.yaml": rule,
        "hostile_rule_msl_negative.yaml": rule.replace("default: 120", "default: -1"),
        "hostile_rule_bound_on_string.yaml": rule.replace("type: number", "type: string"),
        "hostile_rule_alias_bomb.yaml": ALIAS_BOMB + "\n",
        "hostile_rule_bad_template.yaml": rule.replace("message: ", "message: '{client!z}' #", 1),
    }
    out = {name: b"\0" + text.encode("utf-8") for name, text in toml.items()}
    out.update({name: b"\1" + text.encode("utf-8") for name, text in yaml.items()})
    return out


def generated() -> dict[str, dict[str, bytes]]:
    """The files this script makes (not the copies of samples), by harness."""
    return {"capture": captures(), "rubric": rubrics(), "config": configs()}


def main() -> None:
    for kind, files in generated().items():
        target = CORPUS / kind
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        if kind == "capture":
            for name in VALID_CAPTURES:
                shutil.copy(SAMPLES / name, target / Path(name).name)
        for name, data in files.items():
            (target / name).write_bytes(data)
        print(f"{target.relative_to(ROOT)}: {len(list(target.iterdir()))} files")


if __name__ == "__main__":
    main()
