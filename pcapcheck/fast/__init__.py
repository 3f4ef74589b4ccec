"""Speed machinery: what exists only to make the reference engine's answers cheaper.

Nothing here decides a TCP question. Each module may only decide that work can be skipped or
batched — a connection that provably makes no event is summarised from a few of its frames,
a run of ordinary segments is replayed from decoded columns — and calls the engine
(:mod:`pcapcheck.tcp`) for every result it writes. ``pcapcheck.pipeline.analyze_file(...,
fast=False)`` runs without any of it, and tests (``tests/test_differential.py``, the report
fixtures) demand identical reports both ways.

- :mod:`~pcapcheck.fast.batch_decoder`: many records decoded at once with numpy, walking the
  layer table of :mod:`pcapcheck.capture.layers` in groups (records it cannot vectorise go to
  the per-record :class:`~pcapcheck.capture.decoder.Decoder`).
- :mod:`~pcapcheck.fast.lookahead`: over the decoded columns, ahead of the tracker, finds the
  connections that follow the common life cycle (handshake, data in order, close).
- :mod:`~pcapcheck.fast.clean_connections`: the same test on a connection's kept rows, and the
  summary (with the engine's SQ002 events for whole resent segments) of one that passes.
- :mod:`~pcapcheck.fast.summarising_tracker`: a :class:`~pcapcheck.tcp.tracker.Tracker` that keeps
  rows for the clean summary and replays them through the engine the moment they do not suffice.
- :mod:`~pcapcheck.fast.established_lane`: ordinary segments between two ESTABLISHED endpoints fed
  from the decoder's columns to the engine's ``Checker.established_segment``.
"""
