"""The reference RFC 9293 state machine for one TCP endpoint.

pcapcheck replays every connection through one :class:`Endpoint` per side. The machine
is table-driven: :data:`TABLE` maps ``(state, stimulus)`` to the next state, and every
entry cites the RFC 9293 section that defines it. A stimulus is something the capture
shows the endpoint doing (``SND_*``) or receiving (``RCV_*``); the detectors decide which
stimulus a segment is (its flags, and whether its ACK acknowledges our SYN or FIN).

An endpoint whose state the capture does not show yet (a server before it answers) has
``state = None``; the first thing it sends decides where it started (a SYN-ACK proves a
LISTEN, an RST answering a SYN proves CLOSED: RFC 9293 §3.10.7.1).
"""

from __future__ import annotations

from pcapcheck.model import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    Transition,
)

# Stimuli.
SND_SYN = "snd SYN"
SND_SYNACK = "snd SYN,ACK"
SND_FIN = "snd FIN"
SND_RST = "snd RST"
RCV_SYN = "rcv SYN"
RCV_SYNACK = "rcv SYN,ACK"  # a SYN-ACK whose ACK acknowledges our SYN
RCV_ACK_OF_SYN = "rcv ACK"  # an ACK acknowledging our SYN (handshake completes)
RCV_FIN = "rcv FIN"
RCV_ACK_OF_FIN = "rcv ACK of FIN"  # an ACK acknowledging our FIN
RCV_RST = "rcv RST"  # an acceptable RST

#: (state, stimulus) -> (next state, RFC 9293 section). A pair that is missing means
#: the stimulus does not change the state.
TABLE: dict[tuple[str, str], tuple[str, str]] = {
    (CLOSED, SND_SYN): (SYN_SENT, "§3.10.1 OPEN call, active"),
    (LISTEN, SND_SYNACK): (SYN_RECEIVED, "§3.10.7.2 LISTEN: SYN received, SYN,ACK sent"),
    (SYN_SENT, RCV_SYN): (SYN_RECEIVED, "§3.10.7.3 SYN-SENT: SYN without ACK (simultaneous open)"),
    (SYN_SENT, SND_SYNACK): (SYN_RECEIVED, "§3.10.7.3 SYN-SENT: SYN received, SYN,ACK sent"),
    (SYN_SENT, RCV_SYNACK): (ESTABLISHED, "§3.10.7.3 SYN-SENT: our SYN acknowledged"),
    (SYN_RECEIVED, RCV_SYNACK): (ESTABLISHED, "§3.10.7.4 SYN-RECEIVED: ACK acceptable"),
    (SYN_RECEIVED, RCV_ACK_OF_SYN): (ESTABLISHED, "§3.10.7.4 SYN-RECEIVED: ACK acceptable"),
    (SYN_RECEIVED, SND_FIN): (FIN_WAIT_1, "§3.10.4 CLOSE call in SYN-RECEIVED"),
    (SYN_RECEIVED, RCV_FIN): (CLOSE_WAIT, "§3.10.7.4 eighth, FIN bit"),
    (ESTABLISHED, SND_FIN): (FIN_WAIT_1, "§3.10.4 CLOSE call in ESTABLISHED"),
    (ESTABLISHED, RCV_FIN): (CLOSE_WAIT, "§3.10.7.4 eighth, FIN bit"),
    (CLOSE_WAIT, SND_FIN): (LAST_ACK, "§3.10.4 CLOSE call in CLOSE-WAIT"),
    (FIN_WAIT_1, RCV_ACK_OF_FIN): (FIN_WAIT_2, "§3.10.7.4 FIN-WAIT-1: our FIN acknowledged"),
    (FIN_WAIT_1, RCV_FIN): (CLOSING, "§3.10.7.4 eighth: FIN in FIN-WAIT-1 (simultaneous close)"),
    (FIN_WAIT_2, RCV_FIN): (TIME_WAIT, "§3.10.7.4 eighth: FIN in FIN-WAIT-2"),
    (CLOSING, RCV_ACK_OF_FIN): (TIME_WAIT, "§3.10.7.4 CLOSING: our FIN acknowledged"),
    (LAST_ACK, RCV_ACK_OF_FIN): (CLOSED, "§3.10.7.4 LAST-ACK: our FIN acknowledged"),
}

# An acceptable RST closes every state but these (RFC 9293 §3.10.7.4 second, RST bit).
_RST_CLOSES = (
    SYN_SENT,
    SYN_RECEIVED,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    CLOSE_WAIT,
    CLOSING,
    LAST_ACK,
    TIME_WAIT,
)
for _state in _RST_CLOSES:
    TABLE[(_state, RCV_RST)] = (CLOSED, "§3.10.7.4 second, RST bit")
    TABLE[(_state, SND_RST)] = (CLOSED, "§3.10.4 ABORT call / §3.10.7 reset generation")
# A passively opened connection in SYN-RECEIVED returns to LISTEN on RST (§3.10.7.4).
TABLE[(SYN_RECEIVED, RCV_RST)] = (
    LISTEN,
    "§3.10.7.4 SYN-RECEIVED: RST, passive open returns to LISTEN",
)
TABLE[(SYN_SENT, RCV_RST)] = (CLOSED, "§3.10.7.3 SYN-SENT: RST with acceptable ACK")


class Endpoint:
    """One side of a connection replayed through RFC 9293's state machine.

    ``role`` is ``"client"`` or ``"server"``. ``state`` is an RFC 9293 state name or
    ``None`` while the capture has not shown it. ``initial`` is the state the endpoint
    was first known to be in; ``transitions`` lists every change with its frame.
    ``passive`` is true when it opened passively (from LISTEN).
    """

    __slots__ = ("initial", "passive", "role", "state", "transitions")

    def __init__(self, role: str, state: str | None):
        self.role = role
        self.state = state
        self.initial = state
        self.transitions: list[Transition] = []
        self.passive = False

    def assume(self, state: str) -> None:
        """Set the state the endpoint must have been in before the capture showed it.

        Used for a server whose first segment reveals it was in LISTEN (SYN-ACK) or
        CLOSED (RST to a SYN). Records no transition.
        """
        if self.state is None:
            self.state = state
            self.initial = state
            self.passive = state == LISTEN

    def step(self, stimulus: str, frame: int, note: str = "") -> bool:
        """Apply ``stimulus`` seen at ``frame``; return True when the state changed.

        ``note`` is appended to the recorded cause (e.g. "not captured; implied by
        frame 7"). Raises nothing: a stimulus with no entry in :data:`TABLE` for the
        current state leaves the state unchanged.
        """
        if self.state is None:
            return False
        nxt: tuple[str, str] | None
        if stimulus == RCV_RST and self.state == SYN_RECEIVED and not self.passive:
            nxt = (CLOSED, "§3.10.7.4 SYN-RECEIVED: RST, active open is closed")
        elif stimulus == RCV_SYN and self.state == SYN_RECEIVED and self.passive:
            nxt = (LISTEN, "§3.10.7.4 SYN-RECEIVED: SYN, passive open returns to LISTEN")
        else:
            nxt = TABLE.get((self.state, stimulus))
        if nxt is None:
            return False
        self.move(nxt[0], frame, stimulus + (f" ({note})" if note else ""))
        return True

    def move(self, state: str, frame: int, cause: str) -> None:
        """Record a change to ``state`` caused by ``frame`` (no table lookup)."""
        if state != self.state:
            self.transitions.append(Transition(frame, self.state or "?", state, cause))
            self.state = state

    def undo_last(self) -> Transition | None:
        """Take back the last transition (used when a later frame proves two segments
        crossed, e.g. both FINs of a simultaneous close). Returns it, or None."""
        if not self.transitions:
            return None
        last = self.transitions.pop()
        self.state = last.from_state
        return last
