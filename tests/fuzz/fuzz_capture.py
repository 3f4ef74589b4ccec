"""atheris harness: the capture reader and the packet decoder (issue 23).

An input is a capture file (pcap, pcapng, gzip: the reader detects the format from the
magic numbers). It is read record by record with :func:`pcapcheck.capture.reader.open_capture`
and each record decoded with :class:`pcapcheck.capture.decoder.Decoder` (checksums
verified, as with CP004 selected). ``CaptureError`` (the file is not a readable capture)
and ``DecodeError`` (a malformed record: CP005) are what bad input may give; anything else
is a bug. The records are bounded (at most :data:`MAX_RECORDS` per input) so that an
input of millions of zero-length records stays one quick execution.

Run (see tests/fuzz/README.md)::

    python tests/fuzz/fuzz_capture.py -runs=100000          # seeds: corpus/capture
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]

from common import fuzz, instrumented, scratch_file  # noqa: E402

with instrumented(__name__ == "__main__"):
    from pcapcheck.capture.decoder import DecodeError, Decoder
    from pcapcheck.capture.reader import CaptureError, open_capture

#: Records read from one input at most.
MAX_RECORDS = 2_000


def test_one_input(data: bytes) -> None:
    path = scratch_file("input.capture", data)
    decoder = Decoder(verify_checksums=True)
    try:
        with open_capture(path, with_non_packets=True) as reader:
            for count, record in enumerate(reader):
                if count >= MAX_RECORDS:
                    break
                try:
                    segment = decoder.decode(record)
                except DecodeError as exc:
                    assert str(exc) and "\n" not in str(exc), repr(exc)
                    continue
                if segment is not None:
                    assert segment.frame == record.frame
    except CaptureError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)


if __name__ == "__main__":
    fuzz(test_one_input, "capture")
