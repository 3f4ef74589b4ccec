"""The reference engine: TCP connections replayed through RFC 9293 for both endpoints.

The stages connections → engine → events of the data path. Every TCP decision pcapcheck
makes is written here, once; the speed machinery (:mod:`pcapcheck.fast`) may only decide
that a connection or a run of segments needs nothing but counters and summaries, and calls
this package's functions when it needs a result. This package imports nothing from
``fast``, ``run``, ``pipeline`` or ``report`` (an import-linter contract).

- :mod:`~pcapcheck.tcp.tracker`: :class:`~pcapcheck.tcp.tracker.Tracker` groups segments into
  connections (unordered 4-tuple, port reuse, roles), runs the idle and close timers and
  hands back finished connections.
- :mod:`~pcapcheck.tcp.connection`: one connection and its two directions
  (:class:`~pcapcheck.tcp.connection.Flow`: ISN, SND.NXT, holes; sequence numbers unwrapped and
  relative, modulo 2^32 arithmetic).
- :mod:`~pcapcheck.tcp.state_machine`: the RFC 9293 state machine of one endpoint, a table whose
  entries cite their section.
- :mod:`~pcapcheck.tcp.detectors`: :class:`~pcapcheck.tcp.detectors.Checker` replays each segment
  through both endpoints and emits :class:`~pcapcheck.model.Event` objects (rule, frame, states,
  expected and actual values); one function or branch per rule.
- :mod:`~pcapcheck.tcp.zeek`: Zeek's ``conn_state`` and ``history``, ported from Zeek's TCP analyzer.
"""
