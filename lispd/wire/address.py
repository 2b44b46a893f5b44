"""Addresses as LISP puts them on the wire: an AFI, then the address.

RFC 9301 section 5 and the IANA Address Family Numbers registry give the
plain AFIs; RFC 8060 gives the LISP Canonical Address Format (LCAF, AFI 16387)
that wraps them.

    AFI 0      no address (an empty Source-EID in a Map-Request)
    AFI 1      IPv4, 4 octets
    AFI 2      IPv6, 16 octets
    AFI 16389  48-bit MAC, 6 octets (L2 EIDs)
    AFI 16387  LCAF; types 1 (AFI List) and 2 (Instance ID) are understood,
               any other type is refused with a DecodeError, never guessed.

RFC 8060 section 3, the LCAF header:

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           AFI = 16387         |     Rsvd1     |     Flags     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |    Type       |     Rsvd2     |            Length             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Rsvd1 and Flags are sent as zero and ignored on receipt. Length counts the
octets after the Length field.

RFC 8060 section 4.1, Instance ID (Rsvd2 carries the IID mask-len):

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   Type = 2    | IID mask-len  |             Length            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         Instance ID                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |              AFI = x          |         Address  ...          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

RFC 8060 section 4.16.1, AFI List (Rsvd2 reserved): a sequence of
AFI-encoded addresses filling Length octets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address

from lispd.wire.errors import EncodeError, check_bits
from lispd.wire.reader import Reader

# LCAFs may nest (an AFI List of Instance IDs, ...); a bound keeps a hostile
# packet from recursing without end.
MAX_LCAF_DEPTH = 4


class Afi(IntEnum):
    NONE = 0
    IPV4 = 1
    IPV6 = 2
    LCAF = 16387
    MAC = 16389


class LcafType(IntEnum):
    AFI_LIST = 1
    INSTANCE_ID = 2


@dataclass(frozen=True)
class NoAddress:
    """AFI 0: the field is present but holds no address."""


NO_ADDRESS = NoAddress()


@dataclass(frozen=True)
class MacAddress:
    """AFI 16389: a 48-bit IEEE MAC address (6 octets)."""

    octets: bytes

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in self.octets)


@dataclass(frozen=True)
class InstanceIdAddress:
    """LCAF type 2: an address qualified by a 32-bit instance ID."""

    instance_id: int
    address: Address
    iid_mask_len: int = 0


@dataclass(frozen=True)
class AfiListAddress:
    """LCAF type 1: several addresses of one entity, in order."""

    addresses: tuple[Address, ...]


Address = IPv4Address | IPv6Address | MacAddress | NoAddress | InstanceIdAddress | AfiListAddress

_LCAF_HEADER = struct.Struct("!HBBBBH")


def address_bits(address: Address) -> int:
    """Longest mask-len that makes sense for this address as a prefix."""
    match address:
        case IPv4Address():
            return 32
        case IPv6Address():
            return 128
        case MacAddress():
            return 48
        case InstanceIdAddress(address=inner):
            return address_bits(inner)
        case _:
            return 0


def read_address(r: Reader, depth: int = 0) -> Address:
    start = r.offset
    afi = r.u16("AFI")
    if afi == Afi.NONE:
        return NoAddress()
    if afi == Afi.IPV4:
        return IPv4Address(r.take(4, "IPv4 address"))
    if afi == Afi.IPV6:
        return IPv6Address(r.take(16, "IPv6 address"))
    if afi == Afi.MAC:
        return MacAddress(r.take(6, "MAC address"))
    if afi == Afi.LCAF:
        return _read_lcaf(r, depth)
    r.offset = start
    raise r.fail(f"unsupported AFI {afi}")


def _read_lcaf(r: Reader, depth: int) -> Address:
    if depth >= MAX_LCAF_DEPTH:
        raise r.fail(f"LCAF nested deeper than {MAX_LCAF_DEPTH}")
    r.take(2, "LCAF Rsvd1/Flags")
    type_at = r.offset
    lcaf_type = r.u8("LCAF type")
    rsvd2 = r.u8("LCAF Rsvd2")
    body = r.sub(r.u16("LCAF length"), "LCAF body")
    if lcaf_type == LcafType.INSTANCE_ID:
        instance_id = body.u32("instance ID")
        inner = read_address(body, depth + 1)
        body.expect_end("Instance ID LCAF")
        return InstanceIdAddress(instance_id, inner, rsvd2)
    if lcaf_type == LcafType.AFI_LIST:
        addresses: list[Address] = []
        while body.remaining:
            addresses.append(read_address(body, depth + 1))
        return AfiListAddress(tuple(addresses))
    r.offset = type_at
    raise r.fail(f"unknown LCAF type {lcaf_type}")


def write_address(out: bytearray, address: Address) -> None:
    match address:
        case NoAddress():
            out += b"\x00\x00"
        case IPv4Address():
            out += b"\x00\x01" + address.packed
        case IPv6Address():
            out += b"\x00\x02" + address.packed
        case MacAddress(octets=octets):
            if len(octets) != 6:
                raise EncodeError(f"MAC address must be 6 octets, not {len(octets)}", len(out))
            out += b"\x40\x05" + octets
        case InstanceIdAddress(instance_id=iid, address=inner, iid_mask_len=mask):
            check_bits("instance ID", iid, 32, len(out))
            check_bits("IID mask-len", mask, 8, len(out))
            body = bytearray(struct.pack("!I", iid))
            write_address(body, inner)
            _write_lcaf(out, LcafType.INSTANCE_ID, mask, body)
        case AfiListAddress(addresses=addresses):
            body = bytearray()
            for item in addresses:
                write_address(body, item)
            _write_lcaf(out, LcafType.AFI_LIST, 0, body)
        case _:
            raise EncodeError(f"not an address: {address!r}", len(out))


def _write_lcaf(out: bytearray, lcaf_type: LcafType, rsvd2: int, body: bytearray) -> None:
    if len(body) > 0xFFFF:
        raise EncodeError(f"LCAF body of {len(body)} octets exceeds 65535", len(out))
    out += _LCAF_HEADER.pack(Afi.LCAF, 0, 0, lcaf_type, rsvd2, len(body))
    out += body
