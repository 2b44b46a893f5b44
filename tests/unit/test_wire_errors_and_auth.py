"""Hand-picked cases: the errors the issue names, and authentication."""

from __future__ import annotations

import hashlib
import hmac
from ipaddress import IPv4Address

import pytest
from hypothesis import given

from lispd.wire import DecodeError, EncodeError, auth
from lispd.wire.control import decode, encapsulate, encode
from lispd.wire.inet import build_ipv4_header, build_udp
from lispd.wire.messages import MapNotify, MapRegister, MapRequest
from lispd.wire.records import EidRecord, LocatorRecord, MappingRecord
from tests import strategies as s

RLOC = IPv4Address("198.18.0.11")
RECORD = MappingRecord(IPv4Address("192.0.2.0"), 26, (LocatorRecord(RLOC, local=True),), ttl=10)


def _request_with_eid_afi(afi_and_body: bytes) -> bytes:
    request = MapRequest(1, (RLOC,), (EidRecord(IPv4Address("192.0.2.1"), 32),))
    wire = encode(request)
    # The EID record is last: 2 octets of flags/mask-len, then the address.
    return wire[: -6] + afi_and_body


def test_unknown_lcaf_type_is_a_clear_error() -> None:
    wire = _request_with_eid_afi(bytes.fromhex("4003 0000 0e00 0004 00000000"))
    with pytest.raises(DecodeError, match="unknown LCAF type 14") as error:
        decode(wire)
    assert error.value.offset == len(wire) - 8  # points at the type octet


def test_unknown_afi_is_a_clear_error() -> None:
    with pytest.raises(DecodeError, match="unsupported AFI 17"):
        decode(_request_with_eid_afi(bytes.fromhex("0011 0102")))


def test_unsupported_message_type_and_nested_ecm() -> None:
    with pytest.raises(DecodeError, match="unsupported LISP message type 7"):
        decode(bytes([0x70]) + bytes(20))
    inner = encode(encapsulate(MapRequest(1, (RLOC,), ()), RLOC, RLOC))
    ip = build_ipv4_header(RLOC, RLOC, 28 + len(inner))
    udp = build_udp(ip, 4342, 4342, inner)
    nested = inner[:4] + ip.encode() + udp.encode() + inner
    with pytest.raises(DecodeError, match="an ECM inside an ECM"):
        decode(nested)


def test_encode_refuses_what_cannot_be_on_the_wire() -> None:
    with pytest.raises(EncodeError, match="ITR-RLOCs"):
        encode(MapRequest(1, (), ()))
    with pytest.raises(EncodeError, match="mask-len 33"):
        encode(MapRegister(1, (MappingRecord(RLOC, 33),)))
    with pytest.raises(EncodeError, match="together"):
        encode(MapNotify(1, (), xtr_id=1))
    with pytest.raises(EncodeError, match="nonce"):
        encode(MapNotify(1 << 64, ()))


@given(s.map_registers(), s.key_ids)
def test_sign_then_verify(message: MapRegister, key_id: auth.KeyId) -> None:
    signed = auth.sign(message, b"s3cret", key_id)
    wire = encode(signed)
    assert auth.verify(wire, b"s3cret")
    assert not auth.verify(wire, b"wrong")
    # Any change to the signed bytes breaks the HMAC.
    tampered = bytearray(wire)
    tampered[4] ^= 1  # a nonce bit
    assert not auth.verify(bytes(tampered), b"s3cret")


def test_verify_accepts_truncated_96_bit_sha1_as_rfc_2404_defines_it() -> None:
    unsigned = encode(MapRegister(7, (RECORD,), key_id=1, auth_data=bytes(12)))
    mac = hmac.new(b"k", unsigned, hashlib.sha1).digest()[:12]
    wire = unsigned[:16] + mac + unsigned[28:]
    assert auth.verify(wire, b"k")


def test_verify_tells_unknown_key_ids_and_wrong_lengths_apart() -> None:
    with pytest.raises(DecodeError, match="unknown key ID 3"):
        auth.verify(encode(MapRegister(1, (), key_id=3, auth_data=bytes(20))), b"k")
    with pytest.raises(DecodeError, match="does not fit key ID 2"):
        auth.verify(encode(MapRegister(1, (), key_id=2, auth_data=bytes(20))), b"k")
    with pytest.raises(DecodeError, match="no authentication data"):
        auth.verify(encode(MapRequest(1, (RLOC,), ())), b"k")


def test_authentic_is_verify_without_the_exceptions() -> None:
    good = encode(auth.sign(MapRegister(7, (RECORD,)), b"k", auth.KeyId.HMAC_SHA256_128))
    assert auth.authentic(good, b"k")
    assert not auth.authentic(good, b"other")
    assert not auth.authentic(encode(MapRegister(1, (), key_id=3, auth_data=bytes(20))), b"k")
    assert not auth.authentic(b"", b"k")
