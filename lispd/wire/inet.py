"""IPv4, IPv6 and UDP headers, and the Internet checksum.

These are the headers inside an Encapsulated Control Message (RFC 9301
section 5.8) and the outer headers the data plane writes. The checksum and
header-building functions are the pure-Python reference twins of the C in
native/ (lispd.native); tests hold the two to the same answers.

RFC 791 section 3.1, the IPv4 header:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version|  IHL  |Type of Service|          Total Length         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Identification        |Flags|      Fragment Offset    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Time to Live |    Protocol   |         Header Checksum       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       Source Address                          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Destination Address                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Options                    |    Padding    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

RFC 8200 section 3, the IPv6 header:

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Traffic Class |           Flow Label                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Payload Length        |  Next Header  |   Hop Limit   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                   Source Address (128 bits)                   |
    |                 Destination Address (128 bits)                |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

RFC 768, the UDP header:

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          Source Port          |       Destination Port        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |            Length             |           Checksum            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The header classes keep every field as it was on the wire (lengths and
checksums included), so a received header re-encodes byte for byte; the
build_* functions make new ones with lengths and checksums filled in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address

from lispd.wire.errors import EncodeError, check_bits
from lispd.wire.reader import Reader

IPPROTO_UDP = 17
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")


def csum_add(partial: int, data: bytes) -> int:
    """RFC 1071 one's-complement sum of data added to partial, unfolded."""
    padded = data + b"\x00" if len(data) % 2 else data
    words: tuple[int, ...] = struct.unpack(f"!{len(padded) // 2}H", padded)
    return partial + sum(words)


def csum_fold(partial: int) -> int:
    """Fold a partial sum to 16 bits and complement it."""
    while partial >> 16:
        partial = (partial & 0xFFFF) + (partial >> 16)
    return ~partial & 0xFFFF


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    return csum_fold(csum_add(0, data))


def csum_update16(check: int, old_word: int, new_word: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')."""
    return csum_fold((~check & 0xFFFF) + (~old_word & 0xFFFF) + new_word)


def csum_update32(check: int, old_value: int, new_value: int) -> int:
    """RFC 1624 for a 32-bit field, one 16-bit half after the other."""
    check = csum_update16(check, old_value >> 16, new_value >> 16)
    return csum_update16(check, old_value & 0xFFFF, new_value & 0xFFFF)


def udp_checksum(source: bytes, destination: bytes, udp: bytes) -> int:
    """UDP checksum over the IPv4/IPv6 pseudo-header and the datagram.

    The datagram's own checksum field is taken as zero; a computed zero is
    sent as 0xFFFF (RFC 768).
    """
    if len(source) not in (4, 16) or len(destination) != len(source):
        raise EncodeError("pseudo-header addresses must be 4 or 16 octets each", 0)
    partial = csum_add(0, source + destination)
    partial += IPPROTO_UDP + (len(udp) >> 16) + (len(udp) & 0xFFFF)
    partial = csum_add(partial, udp[:6] + udp[8:] if len(udp) >= 8 else udp)
    return csum_fold(partial) or 0xFFFF


@dataclass(frozen=True)
class Ipv4Header:
    source: IPv4Address
    destination: IPv4Address
    total_length: int
    protocol: int = IPPROTO_UDP
    ttl: int = 64
    tos: int = 0
    identification: int = 0
    flags: int = 0b010  # DF
    fragment_offset: int = 0
    checksum: int = 0
    options: bytes = b""

    @property
    def header_length(self) -> int:
        return 20 + len(self.options)

    def checksum_ok(self) -> bool:
        return inet_checksum(self.encode()) == 0

    def encode(self) -> bytes:
        if len(self.options) % 4 or len(self.options) > 40:
            raise EncodeError("IPv4 options must be a multiple of 4 octets, at most 40", 0)
        check_bits("IPv4 total length", self.total_length, 16, 2)
        check_bits("IPv4 identification", self.identification, 16, 4)
        check_bits("IPv4 flags", self.flags, 3, 6)
        check_bits("IPv4 fragment offset", self.fragment_offset, 13, 6)
        check_bits("IPv4 TTL", self.ttl, 8, 8)
        check_bits("IPv4 protocol", self.protocol, 8, 9)
        check_bits("IPv4 checksum", self.checksum, 16, 10)
        check_bits("IPv4 type of service", self.tos, 8, 1)
        return (
            _IPV4.pack(
                0x40 | (self.header_length // 4),
                self.tos,
                self.total_length,
                self.identification,
                (self.flags << 13) | self.fragment_offset,
                self.ttl,
                self.protocol,
                self.checksum,
                self.source.packed,
                self.destination.packed,
            )
            + self.options
        )


@dataclass(frozen=True)
class Ipv6Header:
    source: IPv6Address
    destination: IPv6Address
    payload_length: int
    next_header: int = IPPROTO_UDP
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0

    @property
    def header_length(self) -> int:
        return 40

    def encode(self) -> bytes:
        check_bits("IPv6 traffic class", self.traffic_class, 8, 0)
        check_bits("IPv6 flow label", self.flow_label, 20, 1)
        check_bits("IPv6 payload length", self.payload_length, 16, 4)
        check_bits("IPv6 next header", self.next_header, 8, 6)
        check_bits("IPv6 hop limit", self.hop_limit, 8, 7)
        return _IPV6.pack(
            (6 << 28) | (self.traffic_class << 20) | self.flow_label,
            self.payload_length,
            self.next_header,
            self.hop_limit,
            self.source.packed,
            self.destination.packed,
        )


@dataclass(frozen=True)
class UdpHeader:
    source_port: int
    destination_port: int
    length: int
    checksum: int = 0

    def encode(self) -> bytes:
        for what, value in (
            ("UDP source port", self.source_port),
            ("UDP destination port", self.destination_port),
            ("UDP length", self.length),
            ("UDP checksum", self.checksum),
        ):
            check_bits(what, value, 16, 0)
        return _UDP.pack(self.source_port, self.destination_port, self.length, self.checksum)


IpHeader = Ipv4Header | Ipv6Header


def read_ip_header(r: Reader) -> IpHeader:
    """Read an IPv4 or IPv6 header; lengths are checked against what follows."""
    start = r.offset
    version = r.take(1, "IP version")[0] >> 4
    r.offset = start
    if version == 4:
        return _read_ipv4(r)
    if version == 6:
        return _read_ipv6(r)
    raise r.fail(f"IP version {version} is neither 4 nor 6")


def _read_ipv4(r: Reader) -> Ipv4Header:
    vihl, tos, total, ident, frag, ttl, proto, check, src, dst = _IPV4.unpack(
        r.take(_IPV4.size, "IPv4 header")
    )
    ihl = (vihl & 0x0F) * 4
    if ihl < 20:
        raise r.fail(f"IPv4 IHL {ihl // 4} below 5")
    options = r.take(ihl - 20, "IPv4 options")
    if total != r.remaining + ihl:
        raise r.fail(f"IPv4 total length {total} but {r.remaining + ihl} octets present")
    if frag & 0x3FFF:
        raise r.fail("fragmented IPv4 packet")
    return Ipv4Header(
        IPv4Address(src), IPv4Address(dst), total, proto, ttl, tos, ident,
        frag >> 13, frag & 0x1FFF, check, options,
    )


def _read_ipv6(r: Reader) -> Ipv6Header:
    word, payload, next_header, hop_limit, src, dst = _IPV6.unpack(
        r.take(_IPV6.size, "IPv6 header")
    )
    if payload != r.remaining:
        raise r.fail(f"IPv6 payload length {payload} but {r.remaining} octets present")
    return Ipv6Header(
        IPv6Address(src), IPv6Address(dst), payload, next_header, hop_limit,
        (word >> 20) & 0xFF, word & 0xFFFFF,
    )


def read_udp_header(r: Reader) -> UdpHeader:
    sport, dport, length, check = _UDP.unpack(r.take(_UDP.size, "UDP header"))
    if length != r.remaining + _UDP.size:
        raise r.fail(f"UDP length {length} but {r.remaining + _UDP.size} octets present")
    return UdpHeader(sport, dport, length, check)


def build_ipv4_header(
    source: IPv4Address,
    destination: IPv4Address,
    total_length: int,
    *,
    identification: int = 0,
    tos: int = 0,
    ttl: int = 64,
    protocol: int = IPPROTO_UDP,
    dont_fragment: bool = True,
) -> Ipv4Header:
    """A 20-octet IPv4 header with its checksum filled in."""
    header = Ipv4Header(
        source, destination, total_length, protocol, ttl, tos, identification,
        0b010 if dont_fragment else 0,
    )
    return replace(header, checksum=inet_checksum(header.encode()))


def build_udp(
    ip: IpHeader | None, source_port: int, destination_port: int, payload: bytes
) -> UdpHeader:
    """A UDP header for payload, its checksum computed when ip is given."""
    length = _UDP.size + len(payload)
    if length > 0xFFFF:
        raise EncodeError(f"UDP datagram of {length} octets exceeds 65535", 0)
    header = UdpHeader(source_port, destination_port, length)
    if ip is None:
        return header
    check = udp_checksum(ip.source.packed, ip.destination.packed, header.encode() + payload)
    return UdpHeader(source_port, destination_port, length, check)
