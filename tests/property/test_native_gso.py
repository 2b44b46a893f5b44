"""The C offload routines (lispd_gso_segment, lispd_gro_coalesce) against
their Python twin (lispd.dataplane.gso), octet for octet: random TCP streams
(IPv4 and IPv6, with and without IPv4 and TCP options, any MSS, odd sizes,
sequence numbers and IDs that wrap), UDP super-packets, TAP frames (the IP
header 14 octets in), and random bytes under random headers."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from lispd.dataplane.fastpath import OffloadError, gro_coalesce, gso_segment
from lispd.dataplane.gso import (
    GSO_NONE,
    GSO_TCPV4,
    GSO_UDP_L4,
    NEEDS_CSUM,
    GsoError,
    VirtioNetHdr,
    coalesce,
    segment,
)
from lispd.wire.inet import csum_add, csum_fold

V4 = ("192.0.2.10", "198.51.100.20")
V6 = ("2001:db8::10", "2001:db8:1::20")
ETHER = bytes.fromhex("020000000002 020000000001 0800")
ETHER6 = bytes.fromhex("020000000002 020000000001 86dd")


@st.composite
def tcp_streams(draw: st.DrawFn) -> list[bytes]:
    """A stream as a sender's NIC puts it on the wire."""
    version = draw(st.sampled_from((4, 6)))
    mss = draw(st.integers(1, 1460))
    data = draw(st.binary(min_size=1, max_size=12000))
    seq = draw(st.integers(0, 2**32 - 1))
    ident = draw(st.integers(0, 2**16 - 1))
    options = draw(st.sampled_from(([], [("NOP", None), ("NOP", None),
                                         ("Timestamp", (12345, 678))],
                                    [("MSS", 1400), ("SAckOK", b"")])))
    ip_options = version == 4 and draw(st.booleans())
    push = draw(st.booleans())
    out = []
    pieces = [data[i:i + mss] for i in range(0, len(data), mss)]
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        tcp = TCP(sport=40000, dport=5201, seq=(seq + index * mss) % 2**32, ack=7,
                  flags="PA" if push and last else "A", window=501, options=options)
        if version == 4:
            ip = IP(src=V4[0], dst=V4[1], id=(ident + index) % 2**16, flags="DF", ttl=63,
                    options=[b"\x01\x01\x01\x00"] if ip_options else [])
        else:
            ip = IPv6(src=V6[0], dst=V6[1], hlim=63)
        out.append(bytes(ip / tcp / piece))
    return out


def python_segments(header: VirtioNetHdr, packet: bytes) -> list[bytes] | None:
    try:
        return segment(header, packet)
    except GsoError:
        return None


def c_segments(header: VirtioNetHdr, packet: bytes, l3: int = 0) -> list[bytes] | None:
    try:
        return gso_segment(header.encode(), packet, l3)
    except OffloadError:
        return None


@settings(max_examples=300, deadline=None)
@given(tcp_streams())
def test_c_coalesces_and_cuts_as_python_does(stream: list[bytes]) -> None:
    supers = coalesce(stream)
    c_supers = [(VirtioNetHdr.decode(h), p) for h, p in gro_coalesce(stream)]
    assert c_supers == supers
    for header, packet in supers:
        assert c_segments(header, packet) == segment(header, packet)
    assert [s for h, p in supers for s in c_segments(h, p) or []] == stream


@settings(max_examples=150, deadline=None)
@given(tcp_streams())
def test_tap_frames_are_cut_and_joined_behind_their_ethernet_header(stream: list[bytes]) -> None:
    ether = ETHER if stream[0][0] >> 4 == 4 else ETHER6
    frames = [ether + packet for packet in stream]
    c_supers = gro_coalesce(frames, 14)
    python_supers = coalesce(stream)
    assert len(c_supers) == len(python_supers)
    for (c_header, frame), (header, packet) in zip(c_supers, python_supers, strict=True):
        assert frame == ether + packet
        shifted = header if header.gso_type == GSO_NONE else VirtioNetHdr(
            header.flags, header.gso_type, header.hdr_len + 14, header.gso_size,
            header.csum_start + 14, header.csum_offset)
        assert VirtioNetHdr.decode(c_header) == shifted
        assert c_segments(shifted, frame, 14) == [ether + s for s in segment(header, packet)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from((4, 6)), st.integers(1, 1472), st.binary(min_size=0, max_size=9000),
       st.integers(0, 2**16 - 1))
def test_udp_super_packets_are_cut_as_python_cuts_them(version: int, size: int, data: bytes,
                                                       ident: int) -> None:
    ip = IP(src=V4[0], dst=V4[1], id=ident) if version == 4 else IPv6(src=V6[0], dst=V6[1])
    whole = bytes(ip / UDP(sport=4341, dport=4341) / data)
    header = VirtioNetHdr(NEEDS_CSUM, GSO_UDP_L4, 0, size, 20 if version == 4 else 40, 6)
    assert c_segments(header, whole) == segment(header, whole)


@given(st.binary(min_size=0, max_size=3000), st.sampled_from(("PA", "A", "S")))
def test_a_partial_checksum_is_completed_as_python_does(data: bytes, flags: str) -> None:
    right = bytes(IP(src=V4[0], dst=V4[1]) / TCP(flags=flags) / data)
    partial = bytearray(right)
    pseudo = csum_add(0, right[12:20]) + 6 + len(right) - 20
    partial[36:38] = (~csum_fold(pseudo) & 0xFFFF).to_bytes(2, "big")
    header = VirtioNetHdr(NEEDS_CSUM, GSO_NONE, 0, 0, 20, 16)
    assert c_segments(header, bytes(partial)) == segment(header, bytes(partial)) == [right]


def test_a_damaged_segment_is_not_hidden_in_a_super_packet() -> None:
    stream = [bytes(IP(src=V4[0], dst=V4[1], id=i) / TCP(seq=1000 + 100 * i, flags="A")
                    / (bytes([i]) * 100)) for i in range(4)]
    damaged = bytearray(stream[2])
    damaged[-1] ^= 0xFF
    packets = [*stream[:2], bytes(damaged), stream[3]]
    kinds = [VirtioNetHdr.decode(h).gso_type for h, _ in gro_coalesce(packets)]
    assert kinds == [GSO_TCPV4, GSO_NONE, GSO_NONE]
    assert [h.gso_type for h, _ in coalesce(packets)] == kinds


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=10, max_size=10), st.binary(max_size=400), st.sampled_from((0, 14)))
def test_random_bytes_under_a_random_header_never_break_the_c(vnet: bytes, packet: bytes,
                                                              l3: int) -> None:
    """The C answers every input with segments or a refusal; where the twin
    (which knows only l3 0) cuts the packet, the C cuts it alike."""
    header = VirtioNetHdr.decode(vnet)
    got = c_segments(header, packet, l3)
    if l3 == 0 and got is not None:
        assert got == python_segments(header, packet)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8), st.sampled_from((0, 14)))
def test_random_packets_are_coalesced_without_harm(packets: list[bytes], l3: int) -> None:
    outputs = gro_coalesce(packets, l3)
    assert [piece for h, p in outputs for piece in gso_segment(h, p, l3)] == packets
    if l3 == 0:
        assert [(VirtioNetHdr.decode(h), p) for h, p in outputs] == coalesce(packets)


def test_a_bulk_transfer_becomes_few_super_packets_in_c() -> None:
    data = bytes(range(256)) * 400
    stream = [bytes(IP(src=V4[0], dst=V4[1], id=(65530 + i) % 2**16)
                    / TCP(seq=(2**32 - 3000 + i * 1448) % 2**32, flags="A")
                    / data[i * 1448:(i + 1) * 1448]) for i in range(71)]
    outputs = gro_coalesce(stream)
    assert [len(p) for _, p in outputs] == [40 + 45 * 1448, 40 + 25 * 1448 + 1040]
    header = VirtioNetHdr.decode(outputs[0][0])
    assert header == VirtioNetHdr(NEEDS_CSUM, GSO_TCPV4, 40, 1448, 20, 16)
    assert struct.unpack_from("!H", outputs[0][1], 2)[0] == 40 + 45 * 1448
    assert [s for h, p in outputs for s in gso_segment(h, p)] == stream


@st.composite
def udp_streams(draw: st.DrawFn) -> list[bytes]:
    """Datagrams of one UDP flow as a sender puts them on the wire: equal
    sizes but maybe the last, consecutive IPv4 IDs (or not), now and then
    one of another flow or size in between."""
    version = draw(st.sampled_from((4, 6)))
    size = draw(st.integers(1, 1472))
    count = draw(st.integers(1, 80))
    ident = draw(st.integers(0, 2**16 - 1))
    out = []
    for index in range(count):
        length = size if index < count - 1 else draw(st.integers(1, size))
        sport = 9 if draw(st.integers(0, 15)) == 0 else 4000
        udp = UDP(sport=sport, dport=5201) / (bytes([index & 0xFF]) * length)
        ip = (IP(src=V4[0], dst=V4[1], id=(ident + index) % 2**16) if version == 4
              else IPv6(src=V6[0], dst=V6[1]))
        out.append(bytes(ip / udp))
    return out


@settings(max_examples=200, deadline=None)
@given(udp_streams())
def test_udp_datagrams_are_coalesced_as_python_does(stream: list[bytes]) -> None:
    supers = coalesce(stream, udp=True)
    assert [(VirtioNetHdr.decode(h), p) for h, p in gro_coalesce(stream, udp=True)] == supers
    assert all(h.gso_type in (GSO_NONE, GSO_UDP_L4) for h, _ in supers)
    # Cut again, every datagram is what it was, boundaries included.
    assert [s for h, p in supers for s in gso_segment(h.encode(), p)] == stream
    # A device without USO gets them one by one.
    assert all(VirtioNetHdr.decode(h).gso_type == GSO_NONE for h, _ in gro_coalesce(stream))


def test_a_zero_udp_checksum_joins_over_ipv4_and_not_over_ipv6() -> None:
    def datagrams(version: int) -> list[bytes]:
        out = []
        for index in range(3):
            ip = (IP(src=V4[0], dst=V4[1], id=index) if version == 4
                  else IPv6(src=V6[0], dst=V6[1]))
            out.append(bytes(ip / UDP(sport=1, dport=2, chksum=0) / (b"x" * 100)))
        return out

    four = gro_coalesce(datagrams(4), udp=True)
    assert [VirtioNetHdr.decode(h).gso_type for h, _ in four] == [GSO_UDP_L4]
    # Cut again, they carry a real checksum: scapy's own.
    again = gso_segment(*four[0])
    assert again == [bytes(IP(src=V4[0], dst=V4[1], id=i) / UDP(sport=1, dport=2) / (b"x" * 100))
                     for i in range(3)]
    six = gro_coalesce(datagrams(6), udp=True)
    assert [VirtioNetHdr.decode(h).gso_type for h, _ in six] == [GSO_NONE] * 3
