"""Authentication of Map-Register, Map-Notify and Map-Notify-Ack.

RFC 9301 sections 5.6 and 5.7: the Authentication Data is an HMAC, keyed
with the secret shared by an ETR and its Map-Server, over the whole message
with the Authentication Data field set to zero.

    Key ID 1  HMAC-SHA-1-96     (RFC 2404)
    Key ID 2  HMAC-SHA-256-128  (RFC 4868)

Real peers (OpenOverlayRouter, Cisco) put the whole digest on the wire, 20
and 32 octets, despite the truncated names; lispd sends the whole digest too
and accepts either the whole or the truncated (12 or 16 octets) length.
Verification works on the received bytes, not a re-encoding, so reserved
bits a peer set are covered exactly as it signed them, and runs in constant
time.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import replace
from enum import IntEnum
from typing import TypeVar

from lispd.wire.control import encode
from lispd.wire.errors import DecodeError, EncodeError
from lispd.wire.messages import MapNotify, MapRegister, MessageType

# Authentication Data starts after type/flags (4), nonce (8), key ID and
# length (4).
_AUTH_DATA_OFFSET = 16
_AUTHENTICATED_TYPES = (
    MessageType.MAP_REGISTER,
    MessageType.MAP_NOTIFY,
    MessageType.MAP_NOTIFY_ACK,
)


class KeyId(IntEnum):
    NONE = 0
    HMAC_SHA1_96 = 1
    HMAC_SHA256_128 = 2


_DIGESTS = {KeyId.HMAC_SHA1_96: hashlib.sha1, KeyId.HMAC_SHA256_128: hashlib.sha256}
_TRUNCATED = {KeyId.HMAC_SHA1_96: 12, KeyId.HMAC_SHA256_128: 16}

Signed = TypeVar("Signed", MapRegister, MapNotify)


def auth_data_length(key_id: KeyId) -> int:
    """Octets of Authentication Data lispd sends for key_id (the whole digest)."""
    if key_id not in _DIGESTS:
        raise EncodeError(f"no HMAC for key ID {int(key_id)}", 12)
    return _DIGESTS[key_id]().digest_size


def _mac(key_id: KeyId, key: bytes, zeroed: bytes) -> bytes:
    return hmac.new(key, zeroed, _DIGESTS[key_id]).digest()


def sign(message: Signed, key: bytes, key_id: KeyId) -> Signed:
    """The message with key_id set and its Authentication Data computed."""
    length = auth_data_length(key_id)
    unsigned = replace(message, key_id=int(key_id), auth_data=bytes(length))
    return replace(unsigned, auth_data=_mac(key_id, key, encode(unsigned)))


def verify(data: bytes, key: bytes) -> bool:
    """Whether the raw message data carries a valid HMAC made with key.

    Raises DecodeError when data is not an authenticated message or names a
    key ID lispd does not know (an operator wants that told apart from a
    wrong key); returns False when the HMAC does not match.
    """
    if len(data) < _AUTH_DATA_OFFSET:
        raise DecodeError("too short for an authenticated message", len(data))
    if data[0] >> 4 not in _AUTHENTICATED_TYPES:
        raise DecodeError(f"message type {data[0] >> 4} carries no authentication data", 0)
    key_id, length = struct.unpack_from("!HH", data, 12)
    if key_id not in _DIGESTS:
        raise DecodeError(f"unknown key ID {key_id}", 12)
    known = KeyId(key_id)
    if length not in (auth_data_length(known), _TRUNCATED[known]):
        raise DecodeError(f"authentication data length {length} does not fit key ID {key_id}", 14)
    end = _AUTH_DATA_OFFSET + length
    if len(data) < end:
        raise DecodeError("truncated authentication data", len(data))
    zeroed = data[:_AUTH_DATA_OFFSET] + bytes(length) + data[end:]
    expected = _mac(known, key, zeroed)[:length]
    return hmac.compare_digest(expected, data[_AUTH_DATA_OFFSET:end])


def authentic(data: bytes, key: bytes) -> bool:
    """verify(), with anything that is not a well-formed signed message counted
    as not authentic: for callers that only need yes or no."""
    try:
        return verify(data, key)
    except DecodeError:
        return False
