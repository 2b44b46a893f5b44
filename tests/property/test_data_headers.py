"""LISP data and VXLAN headers: round trips, robustness, C against Python,
and scapy as an outside reference for VXLAN."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.vxlan import VXLAN

from lispd import native
from lispd.wire import DecodeError, EncodeError, WireError
from lispd.wire.data import LispDataHeader, VxlanHeader
from tests import strategies as s


@given(s.lisp_data_headers)
def test_lisp_header_round_trip(header: LispDataHeader) -> None:
    assert LispDataHeader.decode(header.encode()) == header


@given(s.vxlan_headers)
def test_vxlan_header_round_trip(header: VxlanHeader) -> None:
    assert VxlanHeader.decode(header.encode()) == header


@given(st.binary(max_size=12), st.integers(0, 12))
def test_random_bytes_raise_only_wire_error(data: bytes, offset: int) -> None:
    for cls in (LispDataHeader, VxlanHeader):
        with contextlib.suppress(WireError):
            cls.decode(data, offset)


@given(st.binary(min_size=8, max_size=8))
def test_vxlan_reserved_bits_ignored_and_i_flag_required(data: bytes) -> None:
    if data[0] & 0x08:
        assert VxlanHeader.decode(data).vni == int.from_bytes(data[4:7], "big")
    else:
        with pytest.raises(DecodeError, match="I flag"):
            VxlanHeader.decode(data)


def test_lisp_header_with_n_and_v_is_refused() -> None:
    with pytest.raises(DecodeError, match="N and V"):
        LispDataHeader.decode(bytes([0x90, 0, 0, 1, 0, 0, 0, 0]))
    with pytest.raises(EncodeError):
        LispDataHeader(nonce=1, map_versions=(1, 2)).encode()


def test_lisp_header_as_openoverlayrouter_sends_it() -> None:
    # The data packets of ../shared/vectors carry flags 0x00: no nonce, no
    # instance ID, locator-status-bits ignored.
    assert LispDataHeader.decode(bytes(8)) == LispDataHeader()


@given(s.lisp_data_headers, st.integers(0, 64), st.integers(0, 16))
def test_c_lisp_writer_equals_python(header: LispDataHeader, offset: int, slack: int) -> None:
    size = offset + 8 + slack
    python, c = bytearray(b"\xaa" * size), bytearray(b"\xaa" * size)
    assert header.write_into(python, offset) == native.write_lisp_header(c, offset, header) == 8
    assert python == c


@given(s.vxlan_headers, st.integers(0, 64))
def test_c_vxlan_writer_equals_python_and_scapy(header: VxlanHeader, offset: int) -> None:
    python, c = bytearray(offset + 8), bytearray(offset + 8)
    header.write_into(python, offset)
    native.write_vxlan_header(c, offset, header.vni)
    assert python == c
    assert bytes(c[offset:]) == bytes(VXLAN(flags=0x08, vni=header.vni))


@pytest.mark.parametrize("offset", [-1, 1, 100])
def test_writers_refuse_a_buffer_without_room(offset: int) -> None:
    buf = bytearray(8)
    with pytest.raises(EncodeError):
        native.write_vxlan_header(buf, offset, 1)
    with pytest.raises(EncodeError):
        VxlanHeader(1).write_into(buf, offset)
    with pytest.raises(EncodeError):
        native.write_lisp_header(buf, offset, LispDataHeader())
    with pytest.raises(EncodeError):
        LispDataHeader().write_into(buf, offset)
