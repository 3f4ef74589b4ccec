"""The RFC 9293 state machine table: every state is an RFC state, and the paths the
textbook draws (and the student notes get wrong) hold."""

from pcapcheck.model import STATES
from pcapcheck.tcp import state_machine as fsm
from pcapcheck.tcp.state_machine import Endpoint


def test_table_uses_only_rfc_states_and_cites_a_section():
    for (state, stimulus), (nxt, ref) in fsm.TABLE.items():
        assert state in STATES and nxt in STATES, (state, stimulus, nxt)
        assert ref.startswith("§3."), ref


def run(initial, *stimuli):
    ep = Endpoint("x", initial)
    for frame, stim in enumerate(stimuli, 1):
        ep.step(stim, frame)
    return ep


def test_passive_open_is_syn_received_not_syn_sent():
    ep = run(fsm.LISTEN, fsm.SND_SYNACK)
    assert ep.state == fsm.SYN_RECEIVED
    ep.step(fsm.RCV_ACK_OF_SYN, 3)
    assert [(t.from_state, t.to_state) for t in ep.transitions] == [
        ("LISTEN", "SYN-RECEIVED"),
        ("SYN-RECEIVED", "ESTABLISHED"),
    ]


def test_active_close_ends_in_time_wait_passive_in_closed():
    active = run(fsm.ESTABLISHED, fsm.SND_FIN, fsm.RCV_ACK_OF_FIN, fsm.RCV_FIN)
    assert [t.to_state for t in active.transitions] == ["FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT"]
    passive = run(fsm.ESTABLISHED, fsm.RCV_FIN, fsm.SND_FIN, fsm.RCV_ACK_OF_FIN)
    assert [t.to_state for t in passive.transitions] == ["CLOSE-WAIT", "LAST-ACK", "CLOSED"]


def test_simultaneous_close_passes_through_closing():
    ep = run(fsm.ESTABLISHED, fsm.SND_FIN, fsm.RCV_FIN, fsm.RCV_ACK_OF_FIN)
    assert [t.to_state for t in ep.transitions] == ["FIN-WAIT-1", "CLOSING", "TIME-WAIT"]


def test_simultaneous_open():
    ep = run(fsm.CLOSED, fsm.SND_SYN, fsm.RCV_SYN, fsm.RCV_SYNACK)
    assert [t.to_state for t in ep.transitions] == ["SYN-SENT", "SYN-RECEIVED", "ESTABLISHED"]


def test_rst_in_syn_received_returns_a_passive_open_to_listen():
    ep = Endpoint("server", None)
    ep.assume(fsm.LISTEN)
    ep.step(fsm.SND_SYNACK, 2)
    ep.step(fsm.RCV_RST, 3)
    assert ep.state == fsm.LISTEN
    active = run(fsm.CLOSED, fsm.SND_SYN, fsm.RCV_SYN, fsm.RCV_RST)
    assert active.state == fsm.CLOSED


def test_unknown_stimulus_leaves_state_and_unknown_endpoint_stays_unknown():
    ep = run(fsm.ESTABLISHED, fsm.RCV_SYNACK)
    assert ep.state == fsm.ESTABLISHED and ep.transitions == []
    unknown = Endpoint("server", None)
    assert unknown.step(fsm.RCV_FIN, 1) is False and unknown.state is None


def test_undo_last_restores_previous_state():
    ep = run(fsm.ESTABLISHED, fsm.RCV_FIN)
    assert ep.undo_last().to_state == "CLOSE-WAIT"
    assert ep.state == fsm.ESTABLISHED and ep.transitions == []
