"""Segmentation and coalescing (lispd.dataplane.gso), the reference the C
offload path will be held to, checked against packets scapy builds: a TCP
stream cut into segments, coalesced into one super-packet and cut again,
comes back octet for octet; checksums are what scapy computes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from lispd.dataplane.gso import (
    GSO_NONE,
    GSO_TCPV4,
    GSO_TCPV6,
    GSO_UDP_L4,
    NEEDS_CSUM,
    VirtioNetHdr,
    coalesce,
    segment,
)
from lispd.wire.inet import csum_add, csum_fold

V4 = ("192.0.2.10", "198.51.100.20")
V6 = ("2001:db8::10", "2001:db8:1::20")
TIMESTAMPS = [("NOP", None), ("NOP", None), ("Timestamp", (12345, 678))]


def tcp_segments(version: int, seq: int, ident: int, mss: int, data: bytes, *,
                 options: bool, push: bool) -> list[bytes]:
    """The stream as a sender's NIC would put it on the wire (scapy's checksums)."""
    out = []
    pieces = [data[i:i + mss] for i in range(0, len(data), mss)]
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        tcp = TCP(sport=40000, dport=5201, seq=(seq + index * mss) % 2**32, ack=7,
                  flags="PA" if push and last else "A", window=501,
                  options=TIMESTAMPS if options else [])
        ip = (IP(src=V4[0], dst=V4[1], id=(ident + index) % 2**16, flags="DF", ttl=63)
              if version == 4 else IPv6(src=V6[0], dst=V6[1], hlim=63))
        out.append(bytes(ip / tcp / piece))
    return out


streams = st.builds(
    tcp_segments,
    version=st.sampled_from((4, 6)),
    seq=st.integers(0, 2**32 - 1),
    ident=st.integers(0, 2**16 - 1),
    mss=st.integers(1, 1448),
    data=st.binary(min_size=1, max_size=20000),
    options=st.booleans(),
    push=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(streams)
def test_coalesce_then_segment_gives_the_segments_back(segments: list[bytes]) -> None:
    supers = coalesce(segments)
    again = [piece for header, packet in supers for piece in segment(header, packet)]
    assert again == segments
    for header, packet in supers:
        if header.gso_type != GSO_NONE:
            assert header.flags == NEEDS_CSUM
            assert header.gso_type in (GSO_TCPV4, GSO_TCPV6)
            assert len(packet) <= 65535


def test_a_bulk_transfer_becomes_few_super_packets() -> None:
    segments = tcp_segments(4, 2**32 - 3000, 65530, 1448, bytes(range(256)) * 400,
                            options=True, push=True)
    supers = coalesce(segments)
    headers = [header for header, _ in supers]
    # 102400 octets: 70 segments of 1448 and one of 1040, behind 52 octets of
    # IPv4 and TCP (with timestamps). 45 fit in 65535 octets; the rest in a second.
    assert [len(packet) for _, packet in supers] == [52 + 45 * 1448, 52 + 25 * 1448 + 1040]
    assert all(h == VirtioNetHdr(NEEDS_CSUM, GSO_TCPV4, 52, 1448, 20, 16) for h in headers)
    assert [p for h, packet in supers for p in segment(h, packet)] == segments


def test_what_is_not_a_plain_tcp_segment_goes_alone() -> None:
    syn = bytes(IP(src=V4[0], dst=V4[1]) / TCP(flags="S"))
    udp = bytes(IP(src=V4[0], dst=V4[1]) / UDP(sport=1, dport=2) / b"x")
    fin = bytes(IP(src=V4[0], dst=V4[1]) / TCP(flags="FA") / b"bye")
    data = tcp_segments(4, 1, 1, 100, b"a" * 300, options=False, push=False)
    packets = [syn, udp, *data[:2], fin, data[2]]
    headers = [header.gso_type for header, _ in coalesce(packets)]
    assert headers == [GSO_NONE, GSO_NONE, GSO_TCPV4, GSO_NONE, GSO_NONE]
    assert coalesce([b"", b"\x45"]) == [(VirtioNetHdr(), b""), (VirtioNetHdr(), b"\x45")]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from((4, 6)), st.integers(1, 1400), st.binary(min_size=1, max_size=9000))
def test_udp_segmentation_matches_scapy(version: int, size: int, data: bytes) -> None:
    ip = IP(src=V4[0], dst=V4[1], id=9) if version == 4 else IPv6(src=V6[0], dst=V6[1])
    whole = bytes(ip / UDP(sport=4341, dport=4341) / data)
    header = VirtioNetHdr(NEEDS_CSUM, GSO_UDP_L4, 0, size, 20 if version == 4 else 40, 6)
    pieces = segment(header, whole)
    expected = [
        bytes((IP(src=V4[0], dst=V4[1], id=(9 + i) % 2**16) if version == 4
               else IPv6(src=V6[0], dst=V6[1])) / UDP(sport=4341, dport=4341)
              / data[i * size:(i + 1) * size])
        for i in range((len(data) + size - 1) // size)
    ]
    assert pieces == expected


@given(st.binary(min_size=1, max_size=3000))
def test_a_partial_checksum_is_completed(data: bytes) -> None:
    right = bytes(IP(src=V4[0], dst=V4[1]) / TCP(flags="PA") / data)
    partial = bytearray(right)
    # What the kernel hands over with NEEDS_CSUM: the pseudo-header sum in the field.
    pseudo = csum_add(0, right[12:20]) + 6 + len(right) - 20
    partial[36:38] = (~csum_fold(pseudo) & 0xFFFF).to_bytes(2, "big")
    header = VirtioNetHdr(NEEDS_CSUM, GSO_NONE, 0, 0, 20, 16)
    assert segment(header, bytes(partial)) == [right]
