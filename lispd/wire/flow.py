"""The flow hash: which RLOC and which outer UDP source port a packet gets.

RFC 9300 section 5.3 has the ITR choose the outer UDP source port from a
hash of the inner header's 5-tuple, so that the underlay's own ECMP tells
the flows apart, and section 12 (Routing Locator Hashing) keeps each flow on
one of the equal-priority RLOCs, shared by weight; RFC 7348 section 5 says
the same of a VXLAN source port, hashing the inner Ethernet frame.

This module is the pure-Python twin of native/flow.c (lispd.native.flow_hash
and .frame_hash): both give the same 32 bits on every host and every run,
so the hash is FNV-1a (draft-eastlake-fnv, 32-bit parameters), unseeded.

What is hashed, in this order:

    IPv4 (RFC 791 section 3.1)          IPv6 (RFC 8200 section 3)
    source address        4 octets      source address        16 octets
    destination address   4 octets      destination address   16 octets
    protocol              1 octet       next header            1 octet
    ports                 4 octets      ports                  4 octets

The ports are the first four octets of the transport header (source port,
destination port, as on the wire) for TCP (6), UDP (17), SCTP (132) and
UDP-Lite (136), whose headers all begin

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          Source Port          |       Destination Port        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

and four zero octets instead when the protocol is another one, when the
IPv4 packet is a fragment of any kind (More Fragments set or a non-zero
offset: all pieces of a datagram then hash alike and stay in order), or when
the buffer ends before four octets of transport header. IPv6 extension
headers are not walked: the next header of the fixed header is hashed as
it is (a Fragment header, 44, therefore hashes without ports too).

A buffer that is not a well-formed IP header hashes to 0: IPv4 needs version
4, an IHL of at least 5 and the whole header with its options present; IPv6
needs version 6 and 40 octets. Total/payload length and the header checksum
are not looked at.

An Ethernet frame (IEEE 802.3 section 3.2.6; one IEEE 802.1Q tag skipped)
carrying IPv4 (EtherType 0x0800) or IPv6 (0x86DD) hashes as its IP payload;
any other frame as its two MAC addresses and its EtherType:

    +--------------+--------------+ - - - - - - - - - +-----------+
    | destination  |   source     | 0x8100 |   TCI    | EtherType | payload
    |   6 octets   |   6 octets   |   (optional tag)  | 2 octets  |
    +--------------+--------------+ - - - - - - - - - +-----------+
"""

from __future__ import annotations

import struct

FNV32_OFFSET_BASIS = 0x811C9DC5
FNV32_PRIME = 0x01000193
_MASK32 = 0xFFFFFFFF

PORT_PROTOCOLS = frozenset({6, 17, 132, 136})  # TCP, UDP, SCTP, UDP-Lite
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100

_NO_PORTS = bytes(4)


def fnv1a_32(data: bytes, start: int = FNV32_OFFSET_BASIS) -> int:
    """32-bit FNV-1a of data; `start` continues an earlier hash."""
    value = start
    for octet in data:
        value = ((value ^ octet) * FNV32_PRIME) & _MASK32
    return value


def flow_key(packet: bytes) -> bytes | None:
    """The octets the flow hash covers, or None for a malformed IP header."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        header_length = (packet[0] & 0x0F) * 4
        if len(packet) < 20 or header_length < 20 or header_length > len(packet):
            return None
        (flags_fragment,) = struct.unpack_from("!H", packet, 6)
        more_fragments = bool(flags_fragment & 0x2000)
        fragment_offset = flags_fragment & 0x1FFF
        fragment = more_fragments or fragment_offset != 0
        protocol = packet[9]
        addresses = packet[12:20]
    elif version == 6:
        if len(packet) < 40:
            return None
        header_length = 40
        fragment = False  # a Fragment header shows up as next header 44
        protocol = packet[6]
        addresses = packet[8:40]
    else:
        return None
    transport = packet[header_length:]
    if protocol in PORT_PROTOCOLS and not fragment and len(transport) >= 4:
        ports = transport[:4]
    else:
        ports = _NO_PORTS
    return addresses + bytes([protocol]) + ports


def flow_hash(packet: bytes) -> int:
    """FNV-1a of the flow key of an IPv4/IPv6 packet; 0 when it is malformed."""
    key = flow_key(packet)
    return 0 if key is None else fnv1a_32(key)


def frame_hash(frame: bytes) -> int:
    """The flow hash of an Ethernet frame's IP payload, else of its MACs and
    EtherType; 0 for a frame shorter than 14 octets."""
    if len(frame) < 14:
        return 0
    macs = frame[:12]
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    payload = frame[14:]
    if ethertype == ETHERTYPE_VLAN and len(frame) >= 18:
        (ethertype,) = struct.unpack_from("!H", frame, 16)  # past the tag's TCI
        payload = frame[18:]
    if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return flow_hash(payload)
    return fnv1a_32(macs + struct.pack("!H", ethertype))


__all__ = [
    "FNV32_OFFSET_BASIS",
    "FNV32_PRIME",
    "PORT_PROTOCOLS",
    "flow_hash",
    "flow_key",
    "fnv1a_32",
    "frame_hash",
]
