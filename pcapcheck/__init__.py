"""pcapcheck: a pcap analyzer and RFC 9293 TCP handshake conformance checker."""

__version__ = "0.1.0"
