"""Capture: from the bytes of a file to :class:`~pcapcheck.model.Segment` objects.

The first two stages of the data path (capture → decode). Nothing here knows about
connections, states or rules.

- :mod:`~pcapcheck.capture.reader`: the containers: pcap (micro- and nanoseconds, both byte
  orders), pcapng (several interfaces and link types), either gzip-compressed; records
  with their 1-based frame numbers (Wireshark's), a capture cut short reported, never raised.
- :mod:`~pcapcheck.capture.layers`: **the one table of link layers and encapsulations**
  (Ethernet, 802.1Q/QinQ, SLL/SLL2, NULL/LOOP, raw IP, MPLS ...): how a layer is recognised,
  its header length, where the next layer is named. Adding an encapsulation is one entry here.
- :mod:`~pcapcheck.capture.decoder`: :class:`~pcapcheck.capture.decoder.Decoder` walks that
  table one record at a time down to IPv4/IPv6, then parses IP and TCP (RFC 9293 §3.1).
- :mod:`~pcapcheck.capture.dpkt_decoder`: the same mapping made of dpkt's own classes, an
  independent oracle (``--decoder dpkt``, and the tests that compare it with the table's walk).
- :mod:`~pcapcheck.capture.tshark`: Wireshark's dissectors as a segment source
  (``--decoder tshark``).
- :mod:`~pcapcheck.capture.inputs`: the command line's inputs (files, directories, globs, ``-``)
  as a list of captures.

The batch decoder, which walks the same table over many records at once with numpy, is
speed machinery and lives in :mod:`pcapcheck.fast.batch_decoder`.
"""
