"""Check every LISP datagram of a pcap against the codecs.

Each control payload (UDP 4342) must decode and re-encode byte for byte,
and each authenticated one must verify with the capture's key; each data
payload (UDP 4341) must carry a valid LISP header.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from scapy.layers.inet import UDP
from scapy.utils import rdpcap

from lispd.wire import auth
from lispd.wire.control import decode, encode
from lispd.wire.data import LISP_DATA_PORT, LispDataHeader
from lispd.wire.messages import EncapsulatedControlMessage, MapNotify, MapRegister

CONTROL_PORT = 4342


def udp_payloads(pcap: Path) -> list[tuple[int, bytes]]:
    """(destination port, payload) of every UDP datagram in the capture."""
    found = []
    for frame in rdpcap(str(pcap)):
        if UDP in frame:
            found.append((frame[UDP].dport, bytes(frame[UDP].payload)))
    return found


def check_capture(pcap: Path, key: bytes) -> Counter[str]:
    """Assert the capture round-trips; count what it held, by message kind."""
    seen: Counter[str] = Counter()
    for port, payload in udp_payloads(pcap):
        if port == CONTROL_PORT:
            message = decode(payload)
            assert encode(message) == payload, f"{type(message).__name__} not byte-exact"
            if isinstance(message, MapRegister | MapNotify):
                assert auth.verify(payload, key), f"{type(message).__name__} HMAC"
            if isinstance(message, EncapsulatedControlMessage):
                assert message.inner_ip.checksum_ok()  # type: ignore[union-attr]
                seen[f"ECM/{type(message.message).__name__}"] += 1
            else:
                seen[type(message).__name__] += 1
        elif port == LISP_DATA_PORT:
            LispDataHeader.decode(payload)
            seen["data"] += 1
    return seen
