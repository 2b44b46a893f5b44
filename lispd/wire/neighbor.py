"""Neighbor discovery on a VXLAN segment: ARP, and ICMPv6 NS / NA.

The segment gateway reads the ARP and IPv6 Neighbor Discovery frames its
hosts send and answers them for the overlay's addresses (a proxy, RFC 4861
section 7.2.8). Only Ethernet, only untagged frames, and only IPv6 without
extension headers are understood; anything else is not ours (None).

RFC 826, the ARP packet (the Ethernet header in front of it included), here
always with hardware Ethernet (1, 6-octet addresses) and protocol IPv4
(0x0800, 4-octet addresses):

    Ethernet transmission layer:
        48.bit: Ethernet address of destination
        48.bit: Ethernet address of sender
        16.bit: Protocol type = ether_type$ADDRESS_RESOLUTION
    Ethernet packet data:
        16.bit: (ar$hrd) Hardware address space
        16.bit: (ar$pro) Protocol address space
         8.bit: (ar$hln) byte length of each hardware address
         8.bit: (ar$pln) byte length of each protocol address
        16.bit: (ar$op)  opcode (ares_op$REQUEST | ares_op$REPLY)
        nbytes: (ar$sha) Hardware address of sender of this packet
        mbytes: (ar$spa) Protocol address of sender of this packet
        nbytes: (ar$tha) Hardware address of target of this packet
        mbytes: (ar$tpa) Protocol address of target.

The same Ethernet header (ethertype 0x86dd) carries the IPv6 header, RFC 8200
section 3, next header 58 (ICMPv6):

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Traffic Class |           Flow Label                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Payload Length        |  Next Header  |   Hop Limit   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                   Source Address (128 bits)                   |
    |                 Destination Address (128 bits)                |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

RFC 4861 section 4.3, the Neighbor Solicitation (type 135, code 0), and
section 4.4, the Neighbor Advertisement (type 136, code 0), alike but for
the second word, all Reserved in a solicitation:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     Type      |     Code      |          Checksum             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |R|S|O|                     Reserved                            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                   Target Address (128 bits)                   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   Options ...
    +-+-+-+-+-+-+-+-+-+-+-+-

R: the sender is a router. S: the answer to a solicitation. O: override a
cached link-layer address. The checksum covers the RFC 8200 section 8.1
pseudo-header and the message. Reserved bits are sent as zero and ignored.

RFC 4861 section 4.6.1, the Source (type 1, in a solicitation) and Target
(type 2, in an advertisement) Link-Layer Address options; Length counts 8
octets, so on Ethernet it is 1 (RFC 2464 section 6):

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     Type      |    Length     |    Link-Layer Address ...
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The reader applies the validity checks of RFC 4861 sections 7.1.1 and 7.1.2
(a frame failing them is to be discarded, hence DecodeError). The writer
checks only what the wire cannot hold, so tests can build invalid frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from lispd.wire.errors import DecodeError, EncodeError
from lispd.wire.icmp import IPPROTO_ICMPV6
from lispd.wire.inet import Ipv6Header, csum_add, csum_fold
from lispd.wire.reader import Reader

MacAddress = bytes  # 6 octets

BROADCAST = b"\xff" * 6
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
ARP_REQUEST = 1
ARP_REPLY = 2
ICMPV6_NS = 135
ICMPV6_NA = 136
OPTION_SOURCE_LINK = 1
OPTION_TARGET_LINK = 2
ND_HOP_LIMIT = 255  # RFC 4861 7.1: proof that the frame was not forwarded
ALL_NODES = IPv6Address("ff02::1")
SOLICITED_NODES = IPv6Network("ff02::1:ff00:0/104")  # RFC 4291 section 2.7.1

_NA_ROUTER, _NA_SOLICITED, _NA_OVERRIDE = 1 << 31, 1 << 30, 1 << 29
_ETHERNET = struct.Struct("!6s6sH")
_ARP_FIXED = struct.Struct("!HHBBH")
_ARP_ADDRESSES = struct.Struct("!6s4s6s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_ND = struct.Struct("!BBHI16s")
_LINK_OPTION = struct.Struct("!BB6s")
_ARP_EXPECTED = (  # Ethernet/IPv4 is all a segment carries: (field, value, offset)
    ("hardware type", 1, 0),
    ("protocol type", 0x0800, 2),
    ("hardware address length", 6, 4),
    ("protocol address length", 4, 5),
)
_ND_AT = _ETHERNET.size + _IPV6.size


@dataclass(frozen=True)
class Arp:
    operation: int
    sender_mac: MacAddress
    sender_ip: IPv4Address
    target_mac: MacAddress
    target_ip: IPv4Address


@dataclass(frozen=True)
class NeighborSolicitation:
    source: IPv6Address
    destination: IPv6Address
    target: IPv6Address
    link_address: MacAddress | None


@dataclass(frozen=True)
class NeighborAdvertisement:
    source: IPv6Address
    destination: IPv6Address
    target: IPv6Address
    router: bool
    solicited: bool
    override: bool
    link_address: MacAddress | None


Neighbor = Arp | NeighborSolicitation | NeighborAdvertisement


@dataclass(frozen=True)
class NeighborFrame:
    destination: MacAddress
    source: MacAddress
    message: Neighbor


def solicited_node(address: IPv6Address) -> IPv6Address:
    """RFC 4291 section 2.7.1: ff02::1:ff00:0/104 and the low 24 bits."""
    return IPv6Address(int(SOLICITED_NODES.network_address) | int(address) & 0xFFFFFF)


def multicast_mac(address: IPv6Address) -> MacAddress:
    """RFC 2464 section 7: 33:33 and the last four octets."""
    return b"\x33\x33" + address.packed[12:]


def _checksum(source: IPv6Address, destination: IPv6Address, message: bytes) -> int:
    pseudo = struct.pack("!16s16sI3xB", source.packed, destination.packed, len(message),
                         IPPROTO_ICMPV6)
    return csum_fold(csum_add(0, pseudo + message))


def read_neighbor_frame(frame: bytes) -> NeighborFrame | None:
    """The ARP or NS / NA in an Ethernet frame; None for any other frame."""
    r = Reader(frame)
    destination, source, ethertype = _ETHERNET.unpack(r.take(_ETHERNET.size, "Ethernet header"))
    message: Neighbor | None
    if ethertype == ETHERTYPE_ARP:
        message = _read_arp(r)
    elif ethertype == ETHERTYPE_IPV6:
        message = _read_nd(r)
    else:  # a VLAN tag too: the segments are untagged, a tag means someone else's frame
        return None
    return None if message is None else NeighborFrame(destination, source, message)


def _read_arp(r: Reader) -> Arp:
    start = r.offset
    *fixed, operation = _ARP_FIXED.unpack(r.take(_ARP_FIXED.size, "ARP header"))
    for (what, expected, at), value in zip(_ARP_EXPECTED, fixed, strict=True):
        if value != expected:
            raise DecodeError(f"ARP {what} {value:#x}, not {expected:#x} (Ethernet/IPv4)",
                              start + at)
    if operation not in (ARP_REQUEST, ARP_REPLY):
        raise DecodeError(f"unknown ARP operation {operation}", start + 6)
    sender_mac, sender_ip, target_mac, target_ip = _ARP_ADDRESSES.unpack(
        r.take(_ARP_ADDRESSES.size, "ARP addresses")
    )
    return Arp(operation, sender_mac, IPv4Address(sender_ip), target_mac, IPv4Address(target_ip))


def _read_nd(r: Reader) -> NeighborSolicitation | NeighborAdvertisement | None:
    start = r.offset
    word, length, next_header, hop_limit, src, dst = _IPV6.unpack(
        r.take(_IPV6.size, "IPv6 header")
    )
    if next_header != IPPROTO_ICMPV6:
        return None
    if length > r.remaining:
        raise DecodeError(f"IPv6 payload length {length} past the frame ({r.remaining} left)",
                          start + 4)
    icmp = r.take(length, "ICMPv6 message")
    if not icmp or icmp[0] not in (ICMPV6_NS, ICMPV6_NA):
        return None
    if word >> 28 != 6:
        raise DecodeError(f"IP version {word >> 28} in an IPv6 frame", start)
    if hop_limit != ND_HOP_LIMIT:
        raise DecodeError(f"hop limit {hop_limit}, not 255: a forwarded ND message", start + 7)
    source, destination = IPv6Address(src), IPv6Address(dst)
    if _checksum(source, destination, icmp):
        raise DecodeError("bad ICMPv6 checksum", _ND_AT + 2)
    if len(icmp) < _ND.size:
        raise DecodeError(f"ND message of {len(icmp)} octets, under 24", _ND_AT)
    kind, code, _, flags, target_octets = _ND.unpack_from(icmp)
    if code:
        raise DecodeError(f"ICMPv6 code {code} in an ND message, not 0", _ND_AT + 1)
    target = IPv6Address(target_octets)
    if target.is_multicast:
        raise DecodeError(f"multicast target {target}", _ND_AT + 8)
    if source.is_multicast:  # RFC 4291 2.7: never a source; its answer could not be sent
        raise DecodeError(f"multicast source {source}", start + 8)
    wanted = OPTION_SOURCE_LINK if kind == ICMPV6_NS else OPTION_TARGET_LINK
    link = _link_option(icmp[_ND.size :], wanted)
    if kind == ICMPV6_NS:
        if source.is_unspecified and link is not None:
            raise DecodeError("NS from :: with a source link-layer address option",
                              _ND_AT + _ND.size)
        if source.is_unspecified and destination not in SOLICITED_NODES:
            raise DecodeError(f"NS from :: to {destination}, not a solicited-node address",
                              start + 24)
        return NeighborSolicitation(source, destination, target, link)
    solicited = bool(flags & _NA_SOLICITED)
    if solicited and destination.is_multicast:
        raise DecodeError(f"solicited NA to multicast {destination}", _ND_AT + 4)
    return NeighborAdvertisement(
        source, destination, target, router=bool(flags & _NA_ROUTER), solicited=solicited,
        override=bool(flags & _NA_OVERRIDE), link_address=link,
    )


def _link_option(options: bytes, wanted: int) -> MacAddress | None:
    """The link-layer address of the first option of type wanted; RFC 4861
    4.3 / 4.4 say to skip options not understood, and Linux keeps the first
    of duplicates, so a later one cannot rewrite the answer."""
    found = None
    offset = 0
    while offset < len(options):
        at = _ND_AT + _ND.size + offset
        if len(options) - offset < 2:
            raise DecodeError("ND option header runs past the end", at)
        kind, units = options[offset], options[offset + 1]
        if not units:
            raise DecodeError(f"ND option type {kind} of length 0", at)
        if offset + units * 8 > len(options):
            raise DecodeError(f"ND option type {kind} of {units * 8} octets runs past the end", at)
        if kind in (OPTION_SOURCE_LINK, OPTION_TARGET_LINK) and units != 1:
            raise DecodeError(f"link-layer address option of length {units}, not 1 on Ethernet",
                              at)
        if kind == wanted and found is None:
            found = options[offset + 2 : offset + 8]
        offset += units * 8
    return found


def _check_mac(what: str, mac: bytes, offset: int) -> None:
    # struct's "6s" would pad or cut a wrong-sized address without a word.
    if len(mac) != 6:
        raise EncodeError(f"{what} of {len(mac)} octets, not 6", offset)


def write_neighbor_frame(frame: NeighborFrame) -> bytes:
    """The Ethernet frame of an ARP or NS / NA, unpadded."""
    _check_mac("Ethernet destination", frame.destination, 0)
    _check_mac("Ethernet source", frame.source, 6)
    message = frame.message
    if isinstance(message, Arp):
        return _ETHERNET.pack(frame.destination, frame.source, ETHERTYPE_ARP) + _write_arp(message)
    return _ETHERNET.pack(frame.destination, frame.source, ETHERTYPE_IPV6) + _write_nd(message)


def _write_arp(arp: Arp) -> bytes:
    start = _ETHERNET.size
    if arp.operation not in (ARP_REQUEST, ARP_REPLY):
        raise EncodeError(f"ARP operation {arp.operation} is neither request nor reply", start + 6)
    _check_mac("ARP sender hardware address", arp.sender_mac, start + 8)
    _check_mac("ARP target hardware address", arp.target_mac, start + 18)
    fixed = _ARP_FIXED.pack(*(expected for _, expected, _ in _ARP_EXPECTED), arp.operation)
    return fixed + _ARP_ADDRESSES.pack(
        arp.sender_mac, arp.sender_ip.packed, arp.target_mac, arp.target_ip.packed
    )


def _write_nd(message: NeighborSolicitation | NeighborAdvertisement) -> bytes:
    if isinstance(message, NeighborSolicitation):
        kind, flags, option = ICMPV6_NS, 0, OPTION_SOURCE_LINK
    else:
        kind, option = ICMPV6_NA, OPTION_TARGET_LINK
        flags = (
            (_NA_ROUTER if message.router else 0)
            | (_NA_SOLICITED if message.solicited else 0)
            | (_NA_OVERRIDE if message.override else 0)
        )
    options = b""
    if message.link_address is not None:
        _check_mac("link-layer address option", message.link_address, _ND_AT + _ND.size + 2)
        options = _LINK_OPTION.pack(option, 1, message.link_address)
    unchecked = _ND.pack(kind, 0, 0, flags, message.target.packed) + options
    check = _checksum(message.source, message.destination, unchecked)
    icmp = unchecked[:2] + struct.pack("!H", check) + unchecked[4:]
    ip = Ipv6Header(message.source, message.destination, len(icmp),
                    next_header=IPPROTO_ICMPV6, hop_limit=ND_HOP_LIMIT)
    return ip.encode() + icmp


def arp_reply(*, request: NeighborFrame, mac: MacAddress) -> bytes:
    """The reply to an ARP request: its target IP is at mac."""
    asked = request.message
    if not isinstance(asked, Arp) or asked.operation != ARP_REQUEST:
        raise EncodeError("only an ARP request has an ARP reply", 0)
    reply = Arp(ARP_REPLY, mac, asked.target_ip, asked.sender_mac, asked.sender_ip)
    return write_neighbor_frame(NeighborFrame(asked.sender_mac, mac, reply))


def arp_request(*, sender_mac: MacAddress, sender_ip: IPv4Address, target_ip: IPv4Address,
                destination: MacAddress = BROADCAST) -> bytes:
    """Who has target_ip? Broadcast, or a unicast probe to destination."""
    # RFC 5227 section 2.1.1: the target hardware address is sent as zero.
    request = Arp(ARP_REQUEST, sender_mac, sender_ip, bytes(6), target_ip)
    return write_neighbor_frame(NeighborFrame(destination, sender_mac, request))


def neighbor_advertisement(*, solicitation: NeighborFrame, source: IPv6Address, mac: MacAddress,
                           router: bool = True) -> bytes:
    """A proxy's answer to an NS (RFC 4861 7.2.8: no override, so the owner's
    own answer wins); to all nodes, unsolicited, for a DAD probe (7.2.4)."""
    asked = solicitation.message
    if not isinstance(asked, NeighborSolicitation):
        raise EncodeError("only a neighbor solicitation has a neighbor advertisement", 0)
    dad = asked.source.is_unspecified
    answer = NeighborAdvertisement(
        source, ALL_NODES if dad else asked.source, asked.target, router=router,
        solicited=not dad, override=False, link_address=mac,
    )
    return write_neighbor_frame(NeighborFrame(solicitation.source, mac, answer))


def neighbor_solicitation(*, source: IPv6Address, source_mac: MacAddress, target: IPv6Address,
                          destination_mac: MacAddress | None = None) -> bytes:
    """Who has target? To its solicited-node group, or unicast to
    destination_mac (reachability confirmation, RFC 4861 7.3.1)."""
    if destination_mac is None:
        destination = solicited_node(target)
        destination_mac = multicast_mac(destination)
    else:
        destination = target
    # RFC 4861 4.3: a DAD probe (from ::) must not carry the option.
    link = None if source.is_unspecified else source_mac
    probe = NeighborSolicitation(source, destination, target, link)
    return write_neighbor_frame(NeighborFrame(destination_mac, source_mac, probe))

