"""Comparisons of pcapcheck's analysis with other tools'.

- :mod:`~pcapcheck.compare.wireshark`: ``pcapcheck crosscheck``: the grouping of frames into
  connections and the TCP analysis flags, frame by frame, against Wireshark's (tshark), with the
  known differences named and explained.
"""
