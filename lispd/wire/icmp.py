"""ICMP "packet too big": the answer to an inner packet that does not fit.

An ITR that cannot send a packet because the packet plus the encapsulation
exceeds the underlay MTU answers its sender the way a router would (RFC 9300
section 7.1, the stateless approach), so the sender's path MTU discovery
lowers its packet size. This module is the pure-Python twin of
native/icmp.c (lispd.native.icmp_too_big).

IPv4, RFC 1191 section 4 (RFC 792's Destination Unreachable, code 4
"fragmentation needed and DF set", with the next-hop MTU in what RFC 792
left unused), after a 20-octet IPv4 header (TOS 0, identification 0, DF
clear, TTL 64, protocol 1):

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   Type = 3    |   Code = 4    |           Checksum            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           unused = 0          |         Next-Hop MTU          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |      Internet Header + leading octets of original datagram    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The whole answer is at most 576 octets (RFC 1812 section 4.3.2.3: as much
of the original as fits); the checksum covers the ICMP message. The MTU
field is 16 bits: a larger MTU is sent as 65535.

IPv6, RFC 4443 section 3.2, after a 40-octet IPv6 header (traffic class 0,
flow label 0, next header 58, hop limit 64):

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   Type = 2    |   Code = 0    |          Checksum             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                             MTU                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    As much of invoking packet                 |
    +               as possible without the ICMPv6 packet           +
    |               exceeding the minimum IPv6 MTU [IPv6]           |

The whole answer is at most 1280 octets; the checksum covers the RFC 8200
section 8.1 pseudo-header (source, destination, 32-bit upper-layer length,
three zero octets, next header 58) and the ICMPv6 message.

No answer (None) for a packet no ICMP error may answer (RFC 1122 section
3.2.2, RFC 1812 section 4.3.2.7, RFC 4443 section 2.4 (e)); `refusal` says
which rule applies. Extension headers are not walked: IPv6 is judged by the
next header of its fixed header only.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from lispd.wire.errors import EncodeError, check_bits
from lispd.wire.inet import Ipv6Header, build_ipv4_header, csum_add, csum_fold, inet_checksum

IPV4_ANSWER_LIMIT = 576  # RFC 1812 4.3.2.3
IPV6_ANSWER_LIMIT = 1280  # RFC 8200 section 5, the IPv6 minimum link MTU
ANSWER_TTL = 64

IPPROTO_ICMP = 1
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58

ICMP_DEST_UNREACH = 3
ICMP_FRAG_NEEDED = 4
ICMPV6_PACKET_TOO_BIG = 2

# RFC 792 / RFC 1122 3.2.2: the ICMPv4 error messages (destination
# unreachable, source quench, redirect, time exceeded, parameter problem).
ICMPV4_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})
# RFC 4443 section 2.1: ICMPv6 types 0-127 are errors, 128-255 informational.
ICMPV6_FIRST_INFORMATIONAL = 128

# RFC 1122 3.2.2: "a datagram whose source address does not define a single
# host -- e.g., a zero address, a loopback address, a broadcast address, a
# multicast address, or a Class E address".
_IPV4_NOT_ONE_HOST = (
    IPv4Network("0.0.0.0/8"),
    IPv4Network("127.0.0.0/8"),
    IPv4Network("224.0.0.0/4"),
    IPv4Network("240.0.0.0/4"),  # class E, 255.255.255.255 among them
)
# RFC 1812 4.3.2.7: nor one destined to a broadcast or multicast address.
_IPV4_MULTICAST = IPv4Network("224.0.0.0/4")
_IPV4_LIMITED_BROADCAST = IPv4Address("255.255.255.255")
# RFC 4443 2.4 (e.6): a source that does not uniquely identify one node;
# RFC 4291 2.5.3: the loopback address never leaves its node. (A multicast
# destination is answered: 2.4 (e.3) excepts Packet Too Big.)
_IPV6_MULTICAST = IPv6Network("ff00::/8")
_IPV6_UNSPECIFIED = IPv6Address("::")
_IPV6_LOOPBACK = IPv6Address("::1")

_ICMP_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, unused, MTU
_ICMPV6_HEADER = struct.Struct("!BBHI")  # type, code, checksum, MTU


def refusal(packet: bytes) -> str | None:
    """Why no ICMP error may answer packet; None when one may."""
    if not packet:
        return "empty"
    version = packet[0] >> 4
    if version == 4:
        return _ipv4_refusal(packet)
    if version == 6:
        return _ipv6_refusal(packet)
    return f"IP version {version}"


def _ipv4_refusal(packet: bytes) -> str | None:
    header_length = (packet[0] & 0x0F) * 4
    if len(packet) < 20 or header_length < 20 or header_length > len(packet):
        return "shorter than its IPv4 header"
    (flags_fragment,) = struct.unpack_from("!H", packet, 6)
    if flags_fragment & 0x1FFF:
        return "a non-first fragment"
    if packet[9] == IPPROTO_ICMP:
        icmp = packet[header_length:]
        if not icmp:
            return "ICMP without a type: perhaps an error"
        if icmp[0] in ICMPV4_ERROR_TYPES:
            return f"an ICMP error (type {icmp[0]})"
    source = IPv4Address(packet[12:16])
    destination = IPv4Address(packet[16:20])
    if any(source in network for network in _IPV4_NOT_ONE_HOST):
        return f"source {source} is not one host"
    if destination in _IPV4_MULTICAST or destination == _IPV4_LIMITED_BROADCAST:
        return f"destination {destination} is multicast or broadcast"
    return None


def _ipv6_refusal(packet: bytes) -> str | None:
    if len(packet) < 40:
        return "shorter than the IPv6 header"
    next_header = packet[6]
    after = packet[40:]
    if next_header == IPPROTO_ICMPV6:
        if not after:
            return "ICMPv6 without a type: perhaps an error"
        if after[0] < ICMPV6_FIRST_INFORMATIONAL:
            return f"an ICMPv6 error (type {after[0]})"
    if next_header == IPPROTO_FRAGMENT:
        # RFC 8200 4.5: next header, reserved, offset (13 bits) | res | M.
        if len(after) < 8:
            return "a cut-off Fragment header"
        (offset_flags,) = struct.unpack_from("!H", after, 2)
        if offset_flags >> 3:
            return "a non-first fragment"
    source = IPv6Address(packet[8:24])
    if source in _IPV6_MULTICAST or source in (_IPV6_UNSPECIFIED, _IPV6_LOOPBACK):
        return f"source {source} is not one node"
    return None


def too_big(packet: bytes, mtu: int, source: IPv4Address | IPv6Address) -> bytes | None:
    """The ICMP/ICMPv6 packet-too-big answer from source to packet's sender
    (source must be of the packet's family), or None when none may be sent."""
    check_bits("MTU", mtu, 32, 0)
    version = packet[0] >> 4 if packet else 0
    expected = {4: IPv4Address, 6: IPv6Address}.get(version)
    if expected is not None and not isinstance(source, expected):
        raise EncodeError(f"an IPv{version} packet answered from {source}", 0)
    if refusal(packet) is not None:
        return None
    if isinstance(source, IPv4Address):
        return _ipv4_too_big(packet, mtu, source)
    return _ipv6_too_big(packet, mtu, source)


def _ipv4_too_big(packet: bytes, mtu: int, source: IPv4Address) -> bytes:
    quoted = packet[: IPV4_ANSWER_LIMIT - 20 - _ICMP_HEADER.size]
    unchecked = _ICMP_HEADER.pack(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 0, 0, min(mtu, 0xFFFF))
    check = inet_checksum(unchecked + quoted)
    message = _ICMP_HEADER.pack(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, check, 0, min(mtu, 0xFFFF))
    ip = build_ipv4_header(
        source,
        IPv4Address(packet[12:16]),
        20 + len(message) + len(quoted),
        identification=0,
        tos=0,
        ttl=ANSWER_TTL,
        protocol=IPPROTO_ICMP,
        dont_fragment=False,
    )
    return ip.encode() + message + quoted


def _ipv6_too_big(packet: bytes, mtu: int, source: IPv6Address) -> bytes:
    destination = IPv6Address(packet[8:24])
    quoted = packet[: IPV6_ANSWER_LIMIT - 40 - _ICMPV6_HEADER.size]
    length = _ICMPV6_HEADER.size + len(quoted)
    pseudo_header = (
        source.packed + destination.packed + struct.pack("!I3xB", length, IPPROTO_ICMPV6)
    )
    unchecked = _ICMPV6_HEADER.pack(ICMPV6_PACKET_TOO_BIG, 0, 0, mtu)
    check = csum_fold(csum_add(0, pseudo_header + unchecked + quoted))
    message = _ICMPV6_HEADER.pack(ICMPV6_PACKET_TOO_BIG, 0, check, mtu)
    ip = Ipv6Header(
        source, destination, length, next_header=IPPROTO_ICMPV6, hop_limit=ANSWER_TTL
    )
    return ip.encode() + message + quoted


__all__ = [
    "IPV4_ANSWER_LIMIT",
    "IPV6_ANSWER_LIMIT",
    "refusal",
    "too_big",
]
