"""Student answers: a YAML file beside the capture, checked against the capture.

Where: ``<capture>.answers.yaml`` (e.g. ``alice.pcap.answers.yaml``), else
``answers.yaml`` in the submission folder (:func:`find_answers`). Content (every key
optional)::

    connection: 1                 # which connection the answers are about (default:
                                  # the rubric's focus connection, else the first one)
    client_isn: 1015684903        # absolute ISN of the client (the SYN's seq)
    server_isn: 2652593410        # absolute ISN of the server (the SYN-ACK's seq)
    synack_ack: 1015684904        # the SYN-ACK's acknowledgment number, absolute...
    # synack_ack: {value: 1, relative: true}    # ...or relative, when stated so
    states:                       # each endpoint's RFC 9293 state after a frame
      - {after_frame: 2, client: ESTABLISHED, server: SYN-RECEIVED}

Numbers are integers (YAML also reads ``0x3C8A1F27``) or digit strings. State names are
RFC 9293's; ``TIME_WAIT``, ``syn-rcvd`` and similar spellings are read as the RFC name.
Each answer is compared with what the capture shows (the ack of the captured SYN-ACK, not
what it should have been) and explained when wrong — which state the endpoint is in,
what that state means, and when the endpoint enters the state the student gave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema

from pcapcheck.catalog.yamlfile import read_yaml_mapping
from pcapcheck.grading.results import AnswerRow, CheckResult
from pcapcheck.grading.rubric import ANSWER_KEYS
from pcapcheck.model import ACK, STATES, SYN, Segment

__all__ = [
    "ANSWERS_SCHEMA",
    "ANSWER_NAMES",
    "ANSWER_SUFFIXES",
    "STATE_MEANING",
    "TITLES",
    "AnswersError",
    "check_answers",
    "find_answers",
    "load_answers",
    "normalize_state",
    "state_after",
]

_M32 = 1 << 32
#: An answers file is ``<capture><suffix>`` or, in a student's folder, one of the names.
ANSWER_SUFFIXES = (".answers.yaml", ".answers.yml")
ANSWER_NAMES = ("answers.yaml", "answers.yml")

_NUMBER = {
    "oneOf": [
        {"type": "integer", "minimum": 0, "maximum": _M32 - 1},
        {"type": "string", "pattern": "^[0-9]+$"},
    ]
}
#: The JSON Schema of an answers file.
ANSWERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "connection": {"type": "integer", "minimum": 1},
        "client_isn": _NUMBER,
        "server_isn": _NUMBER,
        "synack_ack": {
            "oneOf": [
                _NUMBER,
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["value"],
                    "properties": {"value": _NUMBER, "relative": {"type": "boolean"}},
                },
            ]
        },
        "states": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["after_frame"],
                "properties": {
                    "after_frame": {"type": "integer", "minimum": 1},
                    "client": {"type": "string"},
                    "server": {"type": "string"},
                },
            },
        },
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(ANSWERS_SCHEMA)

#: Feedback titles of the answers.
TITLES = {
    "client_isn": "Client ISN",
    "server_isn": "Server ISN",
    "synack_ack": "Acknowledgment number of the SYN-ACK",
    "states": "States after given frames",
}

# How the rows of each answer are named in the feedback.
_ITEMS = {
    "client_isn": "client ISN",
    "server_isn": "server ISN",
    "synack_ack": "SYN-ACK ack",
    "states": "states",
}

#: What being in each RFC 9293 state means, for the explanations.
STATE_MEANING = {
    "CLOSED": "there is no connection: it has not opened one yet, or the connection is over",
    "LISTEN": "it waits for a SYN; none has arrived yet",
    "SYN-SENT": "it has sent its SYN and waits for the SYN-ACK",
    "SYN-RECEIVED": "it has answered the SYN and waits for the ACK",
    "ESTABLISHED": "its side of the handshake is done and data can flow",
    "FIN-WAIT-1": "it has sent its FIN and waits for it to be acknowledged",
    "FIN-WAIT-2": "its FIN is acknowledged and it waits for the peer's FIN",
    "CLOSE-WAIT": (
        "it has received the peer's FIN and acknowledged it, and waits for its "
        "own application to close"
    ),
    "CLOSING": (
        "the FINs crossed: it has sent its FIN and received the peer's, and waits "
        "for the ACK of its own"
    ),
    "LAST-ACK": "it has sent its FIN after the peer's and waits for the last ACK",
    "TIME-WAIT": (
        "it closed first and has acknowledged the peer's FIN; it waits 2*MSL so "
        "that late segments die out"
    ),
}

# (given, expected) → the misconception it shows, in a sentence.
_MIX_UPS = {
    ("SYN-SENT", "SYN-RECEIVED"): (
        "SYN-SENT belongs to the side that sent the first SYN (the client); a listening "
        "server that answers a SYN with its SYN-ACK goes LISTEN -> SYN-RECEIVED "
        "(RFC 9293 section 3.5)"
    ),
    ("TIME-WAIT", "CLOSE-WAIT"): (
        "TIME-WAIT belongs to the side that closed first, after it acknowledges the other "
        "FIN; the side that receives the first FIN goes to CLOSE-WAIT"
    ),
    ("CLOSE-WAIT", "TIME-WAIT"): (
        "CLOSE-WAIT is the state of the side that received the first FIN; the side that "
        "sent it ends in TIME-WAIT once it acknowledges the peer's FIN"
    ),
    ("CLOSED", "ESTABLISHED"): (
        "receiving the SYN-ACK does not close anything: the client answers it with the "
        "ACK and is ESTABLISHED"
    ),
    ("TIME-WAIT", "CLOSED"): (
        "only the side that closed first waits in TIME-WAIT; the other goes LAST-ACK -> "
        "CLOSED when its FIN is acknowledged"
    ),
    ("CLOSED", "TIME-WAIT"): (
        "the side that closed first does not go straight to CLOSED: it stays in TIME-WAIT "
        "for 2*MSL (RFC 9293's MSL is 2 minutes; Linux waits 60 s)"
    ),
    ("SYN-RECEIVED", "SYN-SENT"): (
        "SYN-RECEIVED is the server's state once it has answered a SYN; the side that sent "
        "the SYN waits in SYN-SENT"
    ),
}

_ALIASES = {
    "SYN-RCVD": "SYN-RECEIVED",
    "SYN-RECV": "SYN-RECEIVED",
    "SYN-RECEIVE": "SYN-RECEIVED",
    "SYN-RCV": "SYN-RECEIVED",
    "ESTAB": "ESTABLISHED",
    "FIN-WAIT1": "FIN-WAIT-1",
    "FIN-WAIT2": "FIN-WAIT-2",
    "FINWAIT1": "FIN-WAIT-1",
    "FINWAIT2": "FIN-WAIT-2",
    "TIMEWAIT": "TIME-WAIT",
    "CLOSEWAIT": "CLOSE-WAIT",
    "LASTACK": "LAST-ACK",
    "SYNSENT": "SYN-SENT",
}


class AnswersError(ValueError):
    """An answers file that cannot be used: one line naming the file and the field."""


def find_answers(capture: Path, folder: Path | None = None) -> Path | None:
    """The answers file of ``capture``: ``<capture>.answers.yaml`` (or ``.yml``) beside
    it, else, when ``folder`` (the student's own folder) is given, ``answers.yaml`` (or
    ``.yml``) in it (a symbolic link too: :func:`pcapcheck.grading.gradebook.discover`
    refuses it). None when there is none."""
    for suffix in ANSWER_SUFFIXES:
        candidate = capture.with_name(capture.name + suffix)
        if _exists(candidate):
            return candidate
    for name in ANSWER_NAMES:
        if folder is not None and _exists(folder / name):
            return folder / name
    return None


def _exists(path: Path) -> bool:
    """Whether ``path`` is a file or a symbolic link (not followed: the caller refuses
    it); false when the name cannot exist (too long for the file system)."""
    try:
        return path.is_symlink() or path.is_file()
    except OSError:
        return False


def load_answers(path: Path) -> dict[str, Any]:
    """Read and validate an answers file (an empty file is no answer). Raises
    :class:`AnswersError` (one line naming the file and the field)."""
    return read_yaml_mapping(
        path,
        path.name,
        _VALIDATOR,
        AnswersError,
        "a mapping (client_isn, server_isn, synack_ack, states)",
        empty_ok=True,
    )


def normalize_state(text: str) -> str:
    """``"time_wait"`` → ``"TIME-WAIT"``, ``"SYN_RECEIVE"`` → ``"SYN-RECEIVED"``; other
    text is returned upper-cased with ``-`` separators (and is then no state)."""
    name = "-".join(str(text).strip().upper().replace("_", " ").replace("-", " ").split())
    return _ALIASES.get(name, name)


def state_after(
    transitions: Sequence[Mapping[str, Any]], final: str | None, frame: int
) -> str | None:
    """An endpoint's state once ``frame`` has been processed, from its transitions (the
    summary's ``{frame, from, to, cause}`` list); ``final`` when it has none (None when
    the capture does not show the endpoint's state)."""
    if not transitions:
        return final
    state = transitions[0]["from"]
    for t in transitions:
        if t["frame"] <= frame:
            state = t["to"]
    return state


def _explain_state(
    side: str, frame: int, expected: str, given: str, transitions: Sequence[Mapping[str, Any]]
) -> str:
    text = (
        f"after frame {frame} the {side} is in {expected}, not {given}: "
        f"{STATE_MEANING.get(expected, '')}"
    )
    mix_up = _MIX_UPS.get((given, expected))
    if mix_up:
        text += f". {mix_up[0].upper()}{mix_up[1:]}"
    later = [t for t in transitions if t["to"] == given and t["frame"] > frame]
    earlier = [i for i, t in enumerate(transitions) if t["to"] == given and t["frame"] <= frame]
    if later:
        t = later[0]
        text += f". The {side} enters {given} only at frame {t['frame']} ({t['cause']})"
    elif earlier and earlier[-1] + 1 < len(transitions):
        left = transitions[earlier[-1] + 1]
        text += f". The {side} was in {given} until frame {left['frame']} ({left['cause']})"
    elif not mix_up and not earlier:
        text += f". The {side} is never in {given} in this capture"
    return text + "."


def _isn_row(key: str, given_raw: Any, conn: Mapping[str, Any], syn_frame: int | None) -> AnswerRow:
    side = "client" if key == "client_isn" else "server"
    other = "server" if side == "client" else "client"
    expected = conn.get(key)
    relative = isinstance(given_raw, Mapping) and given_raw.get("relative")
    given = int(given_raw["value"] if isinstance(given_raw, Mapping) else given_raw)
    what = "SYN" if side == "client" else "SYN-ACK"
    where = f" (frame {syn_frame})" if syn_frame else ""
    if expected is None:
        return AnswerRow(
            _ITEMS[key],
            "not in the capture",
            str(given),
            False,
            f"the capture holds no {what} of the {side}, so its ISN cannot be "
            "read: capture the whole handshake.",
        )
    ok = given == expected and not relative
    row = AnswerRow(_ITEMS[key], str(expected), str(given), ok, frame=syn_frame)
    if ok:
        return row
    if relative or given == 0:
        row.explanation = (
            f"an ISN counted relative to itself is always 0 - Wireshark shows "
            f"relative numbers by default; the {side}'s ISN is the absolute "
            f"sequence number of its {what}{where}: {expected} (Wireshark: "
            "tcp.seq_raw)."
        )
    elif given == conn.get(f"{other}_isn"):
        row.explanation = (
            f"{given} is the {other}'s ISN; the {side}'s ISN is the "
            f"sequence number of the {what} it sent{where}: {expected}."
        )
    else:
        row.explanation = (
            f"the {side}'s ISN is the sequence number of its {what}{where}: {expected}."
        )
    return row


def _synack_row(given_raw: Any, conn: Mapping[str, Any], synack: Segment | None) -> AnswerRow:
    relative = bool(isinstance(given_raw, Mapping) and given_raw.get("relative"))
    given = int(given_raw["value"] if isinstance(given_raw, Mapping) else given_raw)
    shown = f"{given} (relative)" if relative else str(given)
    if synack is None:
        return AnswerRow(
            _ITEMS["synack_ack"],
            "no SYN-ACK captured",
            shown,
            False,
            "the capture holds no SYN-ACK from the server: capture both "
            "directions of the handshake.",
        )
    actual = synack.ack
    isn = conn.get("client_isn")
    rel = (actual - isn) % _M32 if isn is not None else None
    expected = f"{actual}" + (f" (relative {rel})" if rel is not None else "")
    ok = given == rel if relative else given == actual
    row = AnswerRow(_ITEMS["synack_ack"], expected, shown, ok, frame=synack.frame)
    if not ok:
        if not relative and given == rel:
            row.explanation = (
                f"{given} is the relative acknowledgment number (Wireshark's "
                f"default view); the absolute number in frame {synack.frame} "
                f"is {actual}. Give the absolute number, or write "
                f"`synack_ack: {{value: {given}, relative: true}}`."
            )
        elif isn is not None and given == isn:
            row.explanation = (
                f"{given} is the client's ISN itself; the SYN-ACK (frame "
                f"{synack.frame}) acknowledges ISN + 1 = {(isn + 1) % _M32}: "
                "the SYN occupies one sequence number."
            )
        else:
            row.explanation = (
                f"the SYN-ACK in frame {synack.frame} carries acknowledgment "
                f"number {actual}" + (f" (relative {rel})" if rel is not None else "") + "."
            )
    if any(f["rule"] == "HS002" and f["frame"] == synack.frame for f in conn["findings"]):
        row.explanation = (row.explanation + " " if row.explanation else "") + (
            f"Note: this SYN-ACK acknowledges relative {rel}, not ISN + 1 = 1: the server "
            "got it wrong (HS002)."
        )
    return row


def _state_rows(
    entries: Sequence[Mapping[str, Any]], conn: Mapping[str, Any], packets: int
) -> list[AnswerRow]:
    rows: list[AnswerRow] = []
    trans = conn.get("transitions") or {}
    for entry in entries:
        frame = entry["after_frame"]
        for side in ("client", "server"):
            if side not in entry:
                continue
            given_text = str(entry[side])
            given = normalize_state(given_text)
            item = f"after frame {frame}, {side}"
            if frame > packets:
                rows.append(
                    AnswerRow(
                        item,
                        "-",
                        given_text,
                        False,
                        f"frame {frame} is not in the capture (it has {packets} frames).",
                    )
                )
                continue
            expected = state_after(trans.get(side, []), conn.get(f"{side}_state"), frame)
            if expected is None:
                rows.append(
                    AnswerRow(
                        item,
                        "not shown",
                        given_text,
                        False,
                        f"the capture does not show the {side}'s state.",
                    )
                )
                continue
            row = AnswerRow(item, expected, given_text, given == expected, frame=frame)
            if given not in STATES:
                row.explanation = (
                    f"{given_text!r} is not an RFC 9293 state; the states are "
                    f"{', '.join(STATES)}. After frame {frame} the {side} is "
                    f"in {expected}: {STATE_MEANING[expected]}."
                )
            elif not row.ok:
                row.explanation = _explain_state(side, frame, expected, given, trans.get(side, []))
            rows.append(row)
    return rows


def check_answers(
    answers: Mapping[str, Any],
    conn: Mapping[str, Any],
    segments: Sequence[Segment],
    packets: int,
    points: Mapping[str, float],
) -> list[CheckResult]:
    """One :class:`CheckResult` (id ``answer_<key>``) per answer key that the student
    gave or the rubric scores (``points``: key → points), in :data:`ANSWER_KEYS` order.
    ``conn``: the CEL map of the connection the answers are about; ``segments``: its
    segments (to read the SYN and SYN-ACK); ``packets``: records in the capture. A scored
    key the student did not answer scores 0; a states answer scores its share of right
    items. Answers of keys the rubric does not score are checked with ``scored`` false."""
    client = (conn["client_ip"], conn["client_port"])
    synack = next(
        (s for s in segments if s.flags & (SYN | ACK) == SYN | ACK and (s.src, s.sport) != client),
        None,
    )
    syn = next((s for s in segments if s.flags & (SYN | ACK) == SYN), None)
    results: list[CheckResult] = []
    for key in ANSWER_KEYS:
        if key not in answers and key not in points:
            continue
        pts = points.get(key, 0)
        res = CheckResult(
            f"answer_{key}",
            TITLES[key],
            pts,
            0,
            False,
            scored=key in points,
            connections=[conn["id"]],
        )
        results.append(res)
        if key not in answers:
            res.rows = [
                AnswerRow(
                    _ITEMS[key], "-", "(no answer)", False, f"no `{key}` in the answers file."
                )
            ]
            continue
        if key == "client_isn":
            res.rows = [_isn_row(key, answers[key], conn, syn.frame if syn else None)]
        elif key == "server_isn":
            res.rows = [_isn_row(key, answers[key], conn, synack.frame if synack else None)]
        elif key == "synack_ack":
            res.rows = [_synack_row(answers[key], conn, synack)]
        else:
            res.rows = _state_rows(answers[key], conn, packets)
        res.frames = sorted({r.frame for r in res.rows if not r.ok and r.frame is not None})
        right = sum(1 for r in res.rows if r.ok)
        res.passed = bool(res.rows) and right == len(res.rows)
        res.score = round(pts * right / len(res.rows), 2) if res.rows else 0
    return results
