"""The JSON text of the report's values, written once for every writer of it.

A leaf module (it imports only orjson and the standard library): the pipeline encodes
connection summaries with it ahead of the report (:func:`pcapcheck.pipeline.clean_line`,
``analyze_part(encode=True)`` in the shards of a capture), and the JSON report
(:mod:`pcapcheck.report.json_report`) writes every value with it, so both write the same
bytes.

Layout: compact (no spaces), ASCII only (``\\uXXXX`` escapes), a value JSON cannot hold
written as its ``str()``, a float that is not finite as ``null``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["LINE_END", "dumps", "dumps_bytes"]

#: The standard library's encoder, with the layout :func:`dumps` gives.
_std_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str).encode

#: What orjson hands to ``default`` (:func:`_default`) instead of encoding it its own
#: way, as the standard library does: dataclass instances and datetimes.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME

#: How an encoded connection line ends (``analyze_part(encode=True)`` keeps each in a
#: :class:`pcapcheck.spool.LineSpool`): the separator of the JSON report's list of
#: connections, whose newline ends the line in the shard's file. The JSON report writes
#: ``'        {"id":%d' % global id``, then the line; the last one without the comma.
LINE_END = b",\n"


def _default(value: Any) -> Any:
    """What orjson writes for a value it does not encode itself: a float subclass (numpy's
    float64) as the float, anything else as its ``str()`` (the standard library's way)."""
    return float(value) if isinstance(value, float) else str(value)


def dumps(value: Any) -> str:
    """The JSON text of one value of the report (the layout of the module docstring; a
    float that is not finite is ``NaN``, which is not JSON, in a value left to the
    standard library). Encoded by orjson (about five times faster than the standard
    library on a connection summary); a value orjson refuses (an integer beyond 64 bits,
    a key that is not a string) or whose text is not ASCII is encoded by the standard
    library with the same layout. :func:`dumps_bytes` gives the same text as bytes."""
    try:
        text = orjson.dumps(value, default=_default, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _std_dumps(value)
    return text if text.isascii() else _std_dumps(value)


def dumps_bytes(value: Any) -> bytes:
    """:func:`dumps` as ASCII bytes, orjson's own without decoding them: how the
    pipeline encodes connection summaries ahead of the report
    (:func:`pcapcheck.pipeline.analyze_part` with ``encode``)."""
    try:
        data = orjson.dumps(value, default=_default, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _std_dumps(value).encode("ascii")
    return data if data.isascii() else _std_dumps(value).encode("ascii")
