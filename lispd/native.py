"""Typed wrappers around the packet routines of native/lispd_native.h.

Each has a pure-Python twin (lispd.wire.inet, lispd.wire.data) that tests
compare it to. The C extension itself is imported only by lispd.ffi.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from lispd.ffi import buffer_in as _in
from lispd.ffi import lib as _lib
from lispd.wire.data import LispDataHeader
from lispd.wire.errors import EncodeError, check_bits


def csum_add(partial: int, data: bytes) -> int:
    result: int = _lib.lispd_csum_add(partial, _in(data), len(data))
    return result


def csum_fold(partial: int) -> int:
    result: int = _lib.lispd_csum_fold(partial)
    return result


def inet_checksum(data: bytes) -> int:
    result: int = _lib.lispd_inet_checksum(_in(data), len(data))
    return result


def csum_update16(check: int, old_word: int, new_word: int) -> int:
    result: int = _lib.lispd_csum_update16(check, old_word, new_word)
    return result


def csum_update32(check: int, old_value: int, new_value: int) -> int:
    result: int = _lib.lispd_csum_update32(check, old_value, new_value)
    return result


def udp_checksum(source: bytes, destination: bytes, udp: bytes) -> int:
    if len(source) not in (4, 16) or len(destination) != len(source):
        raise EncodeError("pseudo-header addresses must be 4 or 16 octets each", 0)
    result: int = _lib.lispd_udp_checksum(
        _in(source), _in(destination), len(source), _in(udp), len(udp)
    )
    return result


def _out(buf: bytearray, offset: int) -> Any:
    if offset < 0:
        raise EncodeError(f"negative offset {offset}", offset)
    return _in(buf)


def _written(result: int, offset: int) -> int:
    if result < 0:
        raise EncodeError(f"no room for the header at {offset}", offset)
    return result


def write_ipv4_header(
    buf: bytearray,
    offset: int,
    source: IPv4Address,
    destination: IPv4Address,
    total_length: int,
    *,
    identification: int = 0,
    tos: int = 0,
    ttl: int = 64,
    protocol: int = 17,
    dont_fragment: bool = True,
) -> int:
    for what, value, bits in (
        ("total length", total_length, 16),
        ("identification", identification, 16),
        ("type of service", tos, 8),
        ("TTL", ttl, 8),
        ("protocol", protocol, 8),
    ):
        check_bits(f"IPv4 {what}", value, bits, offset)
    return _written(
        _lib.lispd_ipv4_header_write(
            _out(buf, offset), len(buf), offset, _in(source.packed), _in(destination.packed),
            total_length, identification, tos, ttl, protocol, int(dont_fragment),
        ),
        offset,
    )


def write_udp_header(
    buf: bytearray, offset: int, source_port: int, destination_port: int, length: int
) -> int:
    for what, value in (("source port", source_port), ("destination port", destination_port),
                        ("length", length)):
        check_bits(f"UDP {what}", value, 16, offset)
    return _written(
        _lib.lispd_udp_header_write(
            _out(buf, offset), len(buf), offset, source_port, destination_port, length
        ),
        offset,
    )


def write_lisp_header(buf: bytearray, offset: int, header: LispDataHeader) -> int:
    flags, middle, iid, lsbs = header.wire_fields()
    return _written(
        _lib.lispd_lisp_header_write(_out(buf, offset), len(buf), offset, flags, middle, iid, lsbs),
        offset,
    )


def write_vxlan_header(buf: bytearray, offset: int, vni: int) -> int:
    check_bits("VNI", vni, 24, offset + 4)
    return _written(_lib.lispd_vxlan_header_write(_out(buf, offset), len(buf), offset, vni), offset)


def flow_hash(packet: bytes) -> int:
    """lispd_flow_hash: twin of lispd.wire.flow.flow_hash."""
    result: int = _lib.lispd_flow_hash(_in(packet), len(packet))
    return result


def frame_hash(frame: bytes) -> int:
    """lispd_frame_hash: twin of lispd.wire.flow.frame_hash."""
    result: int = _lib.lispd_frame_hash(_in(frame), len(frame))
    return result


_ICMP_ANSWER_MAX = 1280  # the IPv6 answer's bound; an IPv4 one is at most 576


def icmp_too_big(packet: bytes, mtu: int, source: bytes) -> bytes | None:
    """lispd_icmp_too_big: twin of lispd.wire.icmp.too_big, with source as
    4 or 16 octets of the packet's family. None when no answer may be sent."""
    check_bits("MTU", mtu, 32, 0)
    if len(source) not in (4, 16):
        raise EncodeError(f"ICMP source of {len(source)} octets is neither 4 nor 16", 0)
    version = packet[0] >> 4 if packet else 0
    if version in (4, 6) and len(source) != (4 if version == 4 else 16):
        # The C reads the source by the packet's family: never let it overrun.
        raise EncodeError(f"an IPv{version} packet answered from {len(source)} octets", 0)
    out = bytearray(_ICMP_ANSWER_MAX)
    length: int = _lib.lispd_icmp_too_big(
        _in(out), len(out), _in(packet), len(packet), mtu, _in(source)
    )
    return None if length < 0 else bytes(out[:length])


__all__ = [
    "csum_add",
    "csum_fold",
    "csum_update16",
    "csum_update32",
    "flow_hash",
    "frame_hash",
    "icmp_too_big",
    "inet_checksum",
    "udp_checksum",
    "write_ipv4_header",
    "write_lisp_header",
    "write_udp_header",
    "write_vxlan_header",
]
