"""Round trips and robustness of the control-message codec, per message type."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lispd.wire import WireError
from lispd.wire.control import decode, encode
from lispd.wire.messages import Message
from tests import strategies as s

PER_TYPE = {
    "map-request": s.map_requests(),
    "map-reply": s.map_replies,
    "map-register": s.map_registers(),
    "map-notify": s.map_notifies,
    "map-notify-ack": s.map_notify_acks,
    "ecm": s.ecms(),
}


@pytest.mark.parametrize("kind", PER_TYPE)
@given(data=st.data())
def test_decode_inverts_encode(kind: str, data: st.DataObject) -> None:
    message: Message = data.draw(PER_TYPE[kind])
    wire = encode(message)
    assert decode(wire) == message
    assert encode(decode(wire)) == wire


@pytest.mark.parametrize("kind", PER_TYPE)
@given(data=st.data())
def test_mutated_messages_decode_or_raise_wire_error(kind: str, data: st.DataObject) -> None:
    wire = bytearray(encode(data.draw(PER_TYPE[kind])))
    for _ in range(data.draw(st.integers(1, 4))):
        choice = data.draw(st.sampled_from(["flip", "cut", "grow"]))
        if choice == "flip" and wire:
            at = data.draw(st.integers(0, len(wire) - 1))
            wire[at] ^= 1 << data.draw(st.integers(0, 7))
        elif choice == "cut" and wire:
            del wire[data.draw(st.integers(0, len(wire) - 1)) :]
        else:
            wire += data.draw(st.binary(min_size=1, max_size=8))
    try:
        again = decode(bytes(wire))
    except WireError:
        return
    # Whatever decodes must be a message that encodes again.
    encode(again)


@settings(max_examples=2000)
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    try:
        decode(data)
    except WireError as error:
        assert 0 <= error.offset <= len(data)


@given(st.sampled_from([1, 2, 3, 4, 5, 8]), st.binary(max_size=200))
def test_random_bodies_behind_each_type_raise_only_wire_error(kind: int, body: bytes) -> None:
    with contextlib.suppress(WireError):
        decode(bytes([kind << 4]) + body)
