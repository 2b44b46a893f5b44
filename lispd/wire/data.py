"""Data-plane headers: the LISP data header and the VXLAN header.

RFC 9300 section 5.3, the LISP header after the outer UDP header (port 4341):

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |N|L|E|V|I|R|K|K|            Nonce/Map-Version                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 Instance ID/Locator-Status-Bits               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

N: a 24-bit nonce follows. V: instead, a 12-bit Source and a 12-bit Dest
Map-Version follow (RFC 9302); N and V are never both set. E: echo-nonce
request (meaningful with N only). L: the Locator-Status-Bits are valid.
I: the second word is a 24-bit Instance ID and 8 Locator-Status-Bits,
otherwise it is 32 Locator-Status-Bits. R: reserved. KK: key ID of
LISP-crypto (RFC 8061). Fields a clear bit disables are sent as zero and
ignored on receipt.

RFC 7348 section 5, the VXLAN header after the outer UDP header (port 4789):

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |R|R|R|R|I|R|R|R|            Reserved                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                VXLAN Network Identifier (VNI) |   Reserved    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

I must be set: a header without it is invalid. Reserved bits are sent as
zero and ignored on receipt.

write_into() of both classes is the Python twin of the C header writers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lispd.wire.errors import DecodeError, EncodeError, check_bits

LISP_DATA_PORT = 4341
VXLAN_PORT = 4789
HEADER_LENGTH = 8

_WORDS = struct.Struct("!II")
FLAG_N, FLAG_L, FLAG_E, FLAG_V, FLAG_I = 0x80, 0x40, 0x20, 0x10, 0x08
_VXLAN_I = 0x08


def _check_room(buf: bytearray, offset: int) -> None:
    if offset < 0 or offset + HEADER_LENGTH > len(buf):
        raise EncodeError(f"no room for an 8-octet header at {offset}", offset)


def _words(data: bytes, offset: int, what: str) -> tuple[int, int]:
    if offset < 0 or len(data) - offset < HEADER_LENGTH:
        raise DecodeError(f"truncated {what} header", offset)
    first, second = _WORDS.unpack_from(data, offset)
    return first, second


class _EightOctetHeader:
    def write_into(self, buf: bytearray, offset: int) -> int:
        raise NotImplementedError

    def encode(self) -> bytes:
        buf = bytearray(HEADER_LENGTH)
        self.write_into(buf, 0)
        return bytes(buf)


@dataclass(frozen=True)
class LispDataHeader(_EightOctetHeader):
    nonce: int | None = None
    echo_nonce_request: bool = False
    map_versions: tuple[int, int] | None = None
    instance_id: int | None = None
    locator_status_bits: int | None = None
    key_id: int = 0

    def wire_fields(self) -> tuple[int, int, int, int]:
        """(flags octet, 24-bit nonce/versions, instance ID, LSBs) as sent."""
        if self.nonce is not None and self.map_versions is not None:
            raise EncodeError("a LISP header carries a nonce or map-versions, not both", 0)
        if self.echo_nonce_request and self.nonce is None:
            raise EncodeError("the E bit needs a nonce", 0)
        check_bits("key ID", self.key_id, 2, 0)
        flags = self.key_id
        middle = 0
        if self.nonce is not None:
            check_bits("nonce", self.nonce, 24, 1)
            flags |= FLAG_N | (FLAG_E if self.echo_nonce_request else 0)
            middle = self.nonce
        if self.map_versions is not None:
            source, dest = self.map_versions
            check_bits("source map-version", source, 12, 1)
            check_bits("dest map-version", dest, 12, 2)
            flags |= FLAG_V
            middle = (source << 12) | dest
        lsbs = 0
        if self.locator_status_bits is not None:
            flags |= FLAG_L
            lsbs = self.locator_status_bits
        iid = 0
        if self.instance_id is not None:
            check_bits("instance ID", self.instance_id, 24, 4)
            check_bits("locator-status-bits", lsbs, 8, 7)
            flags |= FLAG_I
            iid = self.instance_id
        else:
            check_bits("locator-status-bits", lsbs, 32, 4)
        return flags, middle, iid, lsbs

    def write_into(self, buf: bytearray, offset: int) -> int:
        """Write the header at buf[offset:offset + 8]; returns 8."""
        _check_room(buf, offset)
        flags, middle, iid, lsbs = self.wire_fields()
        second = (iid << 8) | lsbs if flags & FLAG_I else lsbs
        _WORDS.pack_into(buf, offset, (flags << 24) | middle, second)
        return HEADER_LENGTH

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> LispDataHeader:
        first, second = _words(data, offset, "LISP data")
        flags, middle = first >> 24, first & 0xFFFFFF
        if flags & FLAG_N and flags & FLAG_V:
            raise DecodeError("LISP header with both N and V bits", offset)
        has_nonce = bool(flags & FLAG_N)
        if flags & FLAG_I:
            instance_id: int | None = second >> 8
            lsbs = second & 0xFF
        else:
            instance_id, lsbs = None, second
        return cls(
            nonce=middle if has_nonce else None,
            echo_nonce_request=has_nonce and bool(flags & FLAG_E),
            map_versions=(middle >> 12, middle & 0xFFF) if flags & FLAG_V else None,
            instance_id=instance_id,
            locator_status_bits=lsbs if flags & FLAG_L else None,
            key_id=flags & 0x3,
        )


@dataclass(frozen=True)
class VxlanHeader(_EightOctetHeader):
    vni: int

    def write_into(self, buf: bytearray, offset: int) -> int:
        """Write the header at buf[offset:offset + 8]; returns 8."""
        _check_room(buf, offset)
        check_bits("VNI", self.vni, 24, offset + 4)
        _WORDS.pack_into(buf, offset, _VXLAN_I << 24, self.vni << 8)
        return HEADER_LENGTH

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> VxlanHeader:
        first, second = _words(data, offset, "VXLAN")
        if not first >> 24 & _VXLAN_I:
            raise DecodeError("VXLAN header without the I flag", offset)
        return cls(second >> 8)
