"""Bytes to LISP control messages and back (RFC 9301 section 5).

decode() returns one of the dataclasses of lispd.wire.messages or raises
DecodeError; encode() is its inverse and raises EncodeError for a message
that cannot be put on the wire. Neither does anything else.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

from lispd.wire.address import read_address, write_address
from lispd.wire.errors import EncodeError, check_bits
from lispd.wire.inet import (
    IpHeader,
    Ipv4Header,
    Ipv6Header,
    build_ipv4_header,
    build_udp,
    read_ip_header,
    read_udp_header,
)
from lispd.wire.messages import (
    ControlMessage,
    EncapsulatedControlMessage,
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
    Message,
    MessageType,
)
from lispd.wire.reader import Reader
from lispd.wire.records import (
    MappingRecord,
    read_eid_record,
    read_mapping_record,
    write_eid_record,
    write_mapping_record,
)

__all__ = ["Message", "decode", "encapsulate", "encode"]

LISP_CONTROL_PORT = 4342
MAX_ITR_RLOCS = 32

_HEAD = struct.Struct("!IQ")
_AUTH = struct.Struct("!HH")
_XTR_SITE = struct.Struct("!QQQ")

# Flag bits of the first 32-bit word, by message type.
_REQ_A, _REQ_M, _REQ_P, _REQ_S = 1 << 27, 1 << 26, 1 << 25, 1 << 24
_REQ_PITR, _REQ_SMR_INVOKED, _REQ_I = 1 << 23, 1 << 22, 1 << 20
_REQ_L, _REQ_D = 1 << 14, 1 << 13
_REP_P, _REP_E, _REP_S = 1 << 27, 1 << 26, 1 << 25
_REG_P, _REG_S, _REG_I, _REG_M = 1 << 27, 1 << 26, 1 << 25, 1 << 8
_NOT_I = 1 << 27
_ECM_S, _ECM_D, _ECM_E, _ECM_M = 1 << 27, 1 << 26, 1 << 25, 1 << 24


def decode(data: bytes) -> Message:
    """Decode one LISP control message (the payload of a UDP 4342 datagram)."""
    return _decode(Reader(bytes(data)), allow_ecm=True)


def encode(message: Message) -> bytes:
    """Encode one LISP control message."""
    out = bytearray()
    _encode(out, message)
    return bytes(out)


def encapsulate(
    message: ControlMessage,
    source: IPv4Address | IPv6Address,
    destination: IPv4Address | IPv6Address,
    source_port: int = LISP_CONTROL_PORT,
    destination_port: int = LISP_CONTROL_PORT,
    *,
    to_ms: bool = False,
    to_etr: bool = False,
    ttl: int = 64,
) -> EncapsulatedControlMessage:
    """Wrap message in an ECM with inner IP and UDP headers, lengths and checksums filled in."""
    payload = encode(message)
    udp_length = 8 + len(payload)
    inner_ip: IpHeader
    if isinstance(source, IPv4Address) and isinstance(destination, IPv4Address):
        inner_ip = build_ipv4_header(source, destination, 20 + udp_length, ttl=ttl)
    elif isinstance(source, IPv6Address) and isinstance(destination, IPv6Address):
        inner_ip = Ipv6Header(source, destination, udp_length, hop_limit=ttl)
    else:
        raise EncodeError("ECM inner source and destination must both be IPv4 or both IPv6", 0)
    inner_udp = build_udp(inner_ip, source_port, destination_port, payload)
    return EncapsulatedControlMessage(
        inner_ip, inner_udp, message, to_ms=to_ms, to_etr=to_etr
    )


# -- decoding ---------------------------------------------------------------


def _decode(r: Reader, allow_ecm: bool) -> Message:
    first = r.take(1, "message type")[0]
    r.offset -= 1
    kind = first >> 4
    if kind == MessageType.ENCAPSULATED_CONTROL:
        if not allow_ecm:
            raise r.fail("an ECM inside an ECM")
        return _decode_ecm(r)
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise r.fail(f"unsupported LISP message type {kind}")
    message = decoder(r)
    r.expect_end(type(message).__name__)
    return message


def _decode_map_request(r: Reader) -> MapRequest:
    word, nonce = _HEAD.unpack(r.take(_HEAD.size, "Map-Request header"))
    source_eid = read_address(r)
    itr_rlocs = tuple(read_address(r) for _ in range(((word >> 8) & 0x1F) + 1))
    records = tuple(read_eid_record(r) for _ in range(word & 0xFF))
    map_reply_record = read_mapping_record(r) if word & _REQ_M else None
    xtr_id, site_id = _read_xtr_site(r) if word & _REQ_I else (None, None)
    return MapRequest(
        nonce,
        itr_rlocs,
        records,
        source_eid,
        authoritative=bool(word & _REQ_A),
        probe=bool(word & _REQ_P),
        smr=bool(word & _REQ_S),
        pitr=bool(word & _REQ_PITR),
        smr_invoked=bool(word & _REQ_SMR_INVOKED),
        local_xtr=bool(word & _REQ_L),
        dont_map_reply=bool(word & _REQ_D),
        map_reply_record=map_reply_record,
        xtr_id=xtr_id,
        site_id=site_id,
    )


def _decode_map_reply(r: Reader) -> MapReply:
    word, nonce = _HEAD.unpack(r.take(_HEAD.size, "Map-Reply header"))
    records = tuple(read_mapping_record(r) for _ in range(word & 0xFF))
    return MapReply(
        nonce,
        records,
        probe=bool(word & _REP_P),
        echo_nonce_capable=bool(word & _REP_E),
        security=bool(word & _REP_S),
    )


def _read_auth(r: Reader) -> tuple[int, bytes]:
    key_id, length = _AUTH.unpack(r.take(_AUTH.size, "key ID and authentication length"))
    return key_id, r.take(length, "authentication data")


def _read_xtr_site(r: Reader) -> tuple[int, int]:
    high, low, site_id = _XTR_SITE.unpack(r.take(_XTR_SITE.size, "xTR-ID and Site-ID"))
    return (high << 64) | low, site_id


def _read_records(r: Reader, count: int) -> tuple[MappingRecord, ...]:
    return tuple(read_mapping_record(r) for _ in range(count))


def _decode_map_register(r: Reader) -> MapRegister:
    word, nonce = _HEAD.unpack(r.take(_HEAD.size, "Map-Register header"))
    key_id, auth_data = _read_auth(r)
    records = _read_records(r, word & 0xFF)
    xtr_id, site_id = _read_xtr_site(r) if word & _REG_I else (None, None)
    return MapRegister(
        nonce,
        records,
        key_id,
        auth_data,
        proxy_reply=bool(word & _REG_P),
        security_capable=bool(word & _REG_S),
        want_map_notify=bool(word & _REG_M),
        xtr_id=xtr_id,
        site_id=site_id,
    )


def _decode_map_notify(r: Reader) -> MapNotify:
    word, nonce = _HEAD.unpack(r.take(_HEAD.size, "Map-Notify header"))
    key_id, auth_data = _read_auth(r)
    records = _read_records(r, word & 0xFF)
    xtr_id, site_id = _read_xtr_site(r) if word & _NOT_I else (None, None)
    cls = MapNotifyAck if word >> 28 == MessageType.MAP_NOTIFY_ACK else MapNotify
    return cls(nonce, records, key_id, auth_data, xtr_id, site_id)


def _decode_ecm(r: Reader) -> EncapsulatedControlMessage:
    word = r.u32("ECM header")
    inner_ip = read_ip_header(r)
    protocol = inner_ip.protocol if isinstance(inner_ip, Ipv4Header) else inner_ip.next_header
    if protocol != 17:
        raise r.fail(f"ECM inner protocol {protocol} is not UDP")
    inner_udp = read_udp_header(r)
    message = _decode(r, allow_ecm=False)
    assert not isinstance(message, EncapsulatedControlMessage)
    return EncapsulatedControlMessage(
        inner_ip,
        inner_udp,
        message,
        security=bool(word & _ECM_S),
        ddt=bool(word & _ECM_D),
        to_etr=bool(word & _ECM_E),
        to_ms=bool(word & _ECM_M),
    )


_DECODERS: dict[int, Callable[[Reader], ControlMessage]] = {
    MessageType.MAP_REQUEST: _decode_map_request,
    MessageType.MAP_REPLY: _decode_map_reply,
    MessageType.MAP_REGISTER: _decode_map_register,
    MessageType.MAP_NOTIFY: _decode_map_notify,
    MessageType.MAP_NOTIFY_ACK: _decode_map_notify,
}


# -- encoding ---------------------------------------------------------------


def _head(out: bytearray, kind: MessageType, flags: int, count: int, nonce: int) -> None:
    if count > 0xFF:
        raise EncodeError(f"{count} records exceed 255", len(out))
    check_bits("nonce", nonce, 64, len(out) + 4)
    out += _HEAD.pack((kind << 28) | flags | count, nonce)


def _flags(*pairs: tuple[bool, int]) -> int:
    word = 0
    for present, bit in pairs:
        if present:
            word |= bit
    return word


def _write_authenticated_body(out: bytearray, m: MapRegister | MapNotify) -> None:
    """Key ID, authentication data, records, xTR-ID/Site-ID: the part after
    the nonce that Map-Register and Map-Notify(-Ack) share."""
    check_bits("key ID", m.key_id, 16, len(out))
    check_bits("authentication data length", len(m.auth_data), 16, len(out))
    out += _AUTH.pack(m.key_id, len(m.auth_data)) + m.auth_data
    for record in m.records:
        write_mapping_record(out, record)
    _write_xtr_site(out, m.xtr_id, m.site_id)


def _xtr_site_present(out: bytearray, xtr_id: int | None, site_id: int | None) -> bool:
    if (xtr_id is None) != (site_id is None):
        raise EncodeError("xTR-ID and Site-ID go together: give both or neither", len(out))
    return xtr_id is not None


def _write_xtr_site(out: bytearray, xtr_id: int | None, site_id: int | None) -> None:
    if xtr_id is None or site_id is None:
        return
    check_bits("xTR-ID", xtr_id, 128, len(out))
    check_bits("Site-ID", site_id, 64, len(out))
    out += _XTR_SITE.pack(xtr_id >> 64, xtr_id & ((1 << 64) - 1), site_id)


def _encode(out: bytearray, message: Message) -> None:
    match message:
        case MapRequest():
            _encode_map_request(out, message)
        case MapReply():
            flags = _flags(
                (message.probe, _REP_P),
                (message.echo_nonce_capable, _REP_E),
                (message.security, _REP_S),
            )
            _head(out, MessageType.MAP_REPLY, flags, len(message.records), message.nonce)
            for record in message.records:
                write_mapping_record(out, record)
        case MapRegister():
            has_xtr = _xtr_site_present(out, message.xtr_id, message.site_id)
            flags = _flags(
                (message.proxy_reply, _REG_P),
                (message.security_capable, _REG_S),
                (has_xtr, _REG_I),
                (message.want_map_notify, _REG_M),
            )
            _head(out, MessageType.MAP_REGISTER, flags, len(message.records), message.nonce)
            _write_authenticated_body(out, message)
        case MapNotify():
            kind = (
                MessageType.MAP_NOTIFY_ACK
                if isinstance(message, MapNotifyAck)
                else MessageType.MAP_NOTIFY
            )
            has_xtr = _xtr_site_present(out, message.xtr_id, message.site_id)
            _head(out, kind, _NOT_I if has_xtr else 0, len(message.records), message.nonce)
            _write_authenticated_body(out, message)
        case EncapsulatedControlMessage():
            _encode_ecm(out, message)
        case _:
            raise EncodeError(f"not a LISP control message: {message!r}", len(out))


def _encode_map_request(out: bytearray, m: MapRequest) -> None:
    if not 1 <= len(m.itr_rlocs) <= MAX_ITR_RLOCS:
        raise EncodeError(
            f"a Map-Request carries 1 to {MAX_ITR_RLOCS} ITR-RLOCs, not {len(m.itr_rlocs)}",
            len(out),
        )
    has_xtr = _xtr_site_present(out, m.xtr_id, m.site_id)
    flags = _flags(
        (m.authoritative, _REQ_A),
        (m.map_reply_record is not None, _REQ_M),
        (m.probe, _REQ_P),
        (m.smr, _REQ_S),
        (m.pitr, _REQ_PITR),
        (m.smr_invoked, _REQ_SMR_INVOKED),
        (has_xtr, _REQ_I),
        (m.local_xtr, _REQ_L),
        (m.dont_map_reply, _REQ_D),
    ) | ((len(m.itr_rlocs) - 1) << 8)
    _head(out, MessageType.MAP_REQUEST, flags, len(m.records), m.nonce)
    write_address(out, m.source_eid)
    for rloc in m.itr_rlocs:
        write_address(out, rloc)
    for record in m.records:
        write_eid_record(out, record)
    if m.map_reply_record is not None:
        write_mapping_record(out, m.map_reply_record)
    _write_xtr_site(out, m.xtr_id, m.site_id)


def _encode_ecm(out: bytearray, m: EncapsulatedControlMessage) -> None:
    if isinstance(m.message, EncapsulatedControlMessage):
        raise EncodeError("an ECM cannot carry another ECM", len(out))
    flags = _flags((m.security, _ECM_S), (m.ddt, _ECM_D), (m.to_etr, _ECM_E), (m.to_ms, _ECM_M))
    out += struct.pack("!I", (MessageType.ENCAPSULATED_CONTROL << 28) | flags)
    start = len(out)
    out += m.inner_ip.encode()
    out += m.inner_udp.encode()
    _encode(out, m.message)
    # The inner headers are written as given; refuse lengths that a receiver
    # (this decoder among them) would reject.
    total = len(out) - start
    ip_length = (
        m.inner_ip.total_length
        if isinstance(m.inner_ip, Ipv4Header)
        else m.inner_ip.payload_length + 40
    )
    if ip_length != total or m.inner_udp.length != total - m.inner_ip.header_length:
        raise EncodeError("ECM inner IP/UDP lengths do not match the message", start)
