"""The C checksum and IPv4/UDP routines against their Python twins (and
scapy as an outside reference)."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from lispd import native
from lispd.ffi import buffer_in, lib
from lispd.wire import inet
from tests import strategies as s

JUMBO = 9001


def test_checksum_over_every_length_up_to_jumbo() -> None:
    rng = random.Random(1071)
    data = rng.randbytes(JUMBO)
    for length in range(JUMBO + 1):
        chunk = data[:length]
        assert native.inet_checksum(chunk) == inet.inet_checksum(chunk), length


def test_checksum_of_all_ones_and_all_zeros() -> None:
    for length in (0, 1, 2, 3, 64, 65535, 65536 * 2 + 1):
        for fill in (b"\x00", b"\xff"):
            data = fill * length
            assert native.inet_checksum(data) == inet.inet_checksum(data)


@given(st.binary(max_size=2000), st.binary(max_size=2000))
def test_chained_partial_sums_equal_one_pass(first: bytes, second: bytes) -> None:
    first = first[: len(first) // 2 * 2]  # all pieces but the last are even
    partial = native.csum_add(native.csum_add(0, first), second)
    assert native.csum_fold(partial) == inet.inet_checksum(first + second)
    python = inet.csum_add(inet.csum_add(0, first), second)
    assert native.csum_fold(partial) == inet.csum_fold(python)


@given(st.binary(min_size=2, max_size=1500).map(lambda b: b[: len(b) // 2 * 2]), st.data())
def test_incremental_update_equals_recompute(data: bytes, draw: st.DataObject) -> None:
    words = len(data) // 2
    at = draw.draw(st.integers(0, words - 1)) * 2
    new_word = draw.draw(s.u16)
    old_word = int.from_bytes(data[at : at + 2], "big")
    changed = data[:at] + new_word.to_bytes(2, "big") + data[at + 2 :]
    check = inet.inet_checksum(data)
    expected = inet.inet_checksum(changed)
    # RFC 1624: eqn. 3 gives the recomputed value, except that it never
    # yields 0x0000 where a recompute gives 0xFFFF... and both are the same
    # one's-complement number, so compare modulo that.
    for update in (native.csum_update16, inet.csum_update16):
        assert update(check, old_word, new_word) % 0xFFFF == expected % 0xFFFF


@given(st.binary(min_size=4, max_size=1500).map(lambda b: b[: len(b) // 4 * 4]), st.data())
def test_incremental_update32(data: bytes, draw: st.DataObject) -> None:
    at = draw.draw(st.integers(0, len(data) // 4 - 1)) * 4
    new_value = draw.draw(s.u32)
    old_value = int.from_bytes(data[at : at + 4], "big")
    changed = data[:at] + new_value.to_bytes(4, "big") + data[at + 4 :]
    expected = inet.inet_checksum(changed)
    check = inet.inet_checksum(data)
    assert native.csum_update32(check, old_value, new_value) % 0xFFFF == expected % 0xFFFF
    assert native.csum_update32(check, old_value, new_value) == inet.csum_update32(
        check, old_value, new_value
    )


@given(s.ipv4, s.ipv4, s.u16, s.u16, s.u8, s.u8, st.booleans(), st.integers(0, 32))
def test_ipv4_header_c_equals_python_and_scapy(  # noqa: PLR0917 - one per @given strategy
    src: IPv4Address, dst: IPv4Address, length: int, ident: int, tos: int, ttl: int,
    df: bool, offset: int,
) -> None:
    length = max(length, 20)
    python = inet.build_ipv4_header(
        src, dst, length, identification=ident, tos=tos, ttl=ttl, dont_fragment=df
    ).encode()
    buf = bytearray(offset + 20)
    native.write_ipv4_header(
        buf, offset, src, dst, length, identification=ident, tos=tos, ttl=ttl, dont_fragment=df
    )
    assert bytes(buf[offset:]) == python
    reference = IP(
        src=str(src), dst=str(dst), len=length, id=ident, tos=tos, ttl=ttl,
        flags="DF" if df else 0, proto=17,
    )
    assert bytes(reference)[:20] == python
    assert inet.inet_checksum(python) == 0


@given(st.one_of(st.tuples(s.ipv4, s.ipv4), st.tuples(s.ipv6, s.ipv6)),
       s.u16, s.u16, st.binary(max_size=1500))
def test_udp_checksum_c_equals_python_and_scapy(
    addresses: tuple[IPv4Address, IPv4Address] | tuple[IPv6Address, IPv6Address],
    sport: int, dport: int, payload: bytes,
) -> None:
    src, dst = addresses
    header = bytearray(8)
    native.write_udp_header(header, 0, sport, dport, 8 + len(payload))
    assert bytes(header) == inet.UdpHeader(sport, dport, 8 + len(payload)).encode()
    udp = bytes(header) + payload
    c = native.udp_checksum(src.packed, dst.packed, udp)
    assert c == inet.udp_checksum(src.packed, dst.packed, udp)
    ip = IP if isinstance(src, IPv4Address) else IPv6
    packet = ip(src=str(src), dst=str(dst)) / UDP(sport=sport, dport=dport) / payload
    assert c == UDP(bytes(packet[UDP])).chksum


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 7), st.booleans())
def test_the_offload_sum_is_the_rfc_1071_sum(data: bytes, skip: int, vector: bool) -> None:
    """Both ways the offload path sums payloads (AVX2 and 32-bit words), at
    every alignment, against the Python reference; and over every length."""
    piece = data[skip:]
    got = lib.lispd_csum_sum(buffer_in(piece), len(piece), int(vector))
    assert inet.csum_fold(got) == inet.csum_fold(inet.csum_add(0, piece))


def test_the_offload_sum_over_every_length() -> None:
    data = bytes((i * 131 + 7) & 0xFF for i in range(600)) + b"\xff" * 200
    for length in range(len(data)):
        for vector in (0, 1):
            got = lib.lispd_csum_sum(buffer_in(data), length, vector)
            assert inet.csum_fold(got) == inet.csum_fold(inet.csum_add(0, data[:length])), length
