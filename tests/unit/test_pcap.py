"""lispd.pcap.read: classic pcap files built in memory, byte by byte, and
scapy's writer and reader as an outside reference. No tcpdump, no files."""

from __future__ import annotations

import io
import random
import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lispd.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    Frame,
    read,
)

MICRO, NANO = 10**6, 10**9
# A small IPv4/UDP packet and an IPv6 one: read() does not look inside them,
# it only has to hand them back exactly.
IPV4 = bytes.fromhex("4500001c0001000040116ab30102030405060708000100020008e8ee")
IPV6 = bytes.fromhex("60000000000811400000000000000000000000000000000100000000"
                     "0000000000000000000000020001000200084242")
MACS = bytes.fromhex("020000000001" "020000000002")


def global_header(linktype: int, order: str = "<", nano: bool = False) -> bytes:
    """The 24-octet file header: magic, version 2.4, thiszone, sigfigs, snaplen, link type."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)


def record(seconds: int, fraction: int, frame: bytes, order: str = "<",
           original: int | None = None) -> bytes:
    """One record: its 16-octet header (captured and original length) and the frame."""
    length = len(frame) if original is None else original
    return struct.pack(order + "IIII", seconds, fraction, len(frame), length) + frame


def pcap(linktype: int, *records: tuple[int, int, bytes], order: str = "<",
         nano: bool = False) -> bytes:
    return global_header(linktype, order, nano) + b"".join(
        record(seconds, fraction, frame, order) for seconds, fraction, frame in records)


def ethernet(payload: bytes, ethertype: int = 0x0800, vlan: int | None = None) -> bytes:
    tag = b"" if vlan is None else struct.pack("!HH", 0x8100, vlan)
    return MACS + tag + struct.pack("!H", ethertype) + payload


def sll(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked header v1 (16 octets): packet type, ARPHRD, address length and
    8 octets of address, protocol."""
    return struct.pack("!HHH8sH", 0, 1, 6, MACS[:6], protocol) + payload


def sll2(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked header v2 (20 octets): protocol, reserved, interface index,
    ARPHRD, packet type, address length, 8 octets of address."""
    return struct.pack("!HHIHBB8s", protocol, 0, 3, 1, 0, 6, MACS[:6]) + payload


# -- file header: byte order, timestamp resolution ------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(("nano", "unit"), [(False, MICRO), (True, NANO)])
def test_both_byte_orders_and_both_resolutions(order: str, nano: bool, unit: int) -> None:
    data = pcap(LINKTYPE_RAW, (1, unit // 2, IPV4), (2, unit // 4, IPV6), (3, 0, IPV4),
                order=order, nano=nano)
    assert read(data) == [Frame(1.5, IPV4), Frame(2.25, IPV6), Frame(3.0, IPV4)]


def test_the_magic_numbers_are_the_four_of_classic_pcap() -> None:
    # Spelled out, so that the builder above cannot hide a byte-order mistake.
    magics = {("<", False): "d4c3b2a1", (">", False): "a1b2c3d4",
              ("<", True): "4d3cb2a1", (">", True): "a1b23c4d"}
    for (order, nano), magic in magics.items():
        data = pcap(LINKTYPE_RAW, (7, 1, IPV4), order=order, nano=nano)
        assert data[:4].hex() == magic
        assert read(data) == [Frame(7 + (1e-9 if nano else 1e-6), IPV4)]


def test_big_endian_link_type_is_read_in_the_file_s_byte_order() -> None:
    # 113 read in the wrong order would be 0x71000000, an unknown link type.
    data = pcap(LINKTYPE_LINUX_SLL, (1, 0, sll(IPV4)), order=">")
    assert read(data) == [Frame(1.0, IPV4)]


# -- timestamps ---------------------------------------------------------------------


def test_timestamps_exact() -> None:
    cases = [
        (False, 0, 0, 0.0),
        (False, 1, 500_000, 1.5),
        (False, 1_700_000_000, 123_456, 1_700_000_000.123456),
        (False, 0, 1, 1e-6),
        (False, 4_294_967_295, 999_999, 4_294_967_295.999999),
        (True, 1, 250_000_000, 1.25),
        (True, 0, 1, 1e-9),
        (True, 1_700_000_000, 123_456_789, 1_700_000_000.123456789),
    ]
    for nano, seconds, fraction, expected in cases:
        (frame,) = read(pcap(LINKTYPE_RAW, (seconds, fraction, IPV4), nano=nano))
        assert frame.time == expected, (nano, seconds, fraction)


@given(st.integers(2**30, 2**32 - 1), st.booleans(), st.data())
def test_epoch_timestamps_are_the_nearest_float(seconds: int, nano: bool,
                                                data: st.DataObject) -> None:
    """For capture times (seconds since the epoch, 2004 to 2106) the time is the
    float nearest to seconds + fraction / unit, computed exactly here (int / int
    is correctly rounded in Python)."""
    unit = NANO if nano else MICRO
    fraction = data.draw(st.integers(0, unit - 1))
    (frame,) = read(pcap(LINKTYPE_RAW, (seconds, fraction, IPV4), nano=nano))
    assert frame.time == (seconds * unit + fraction) / unit


def test_frames_keep_file_order_even_when_the_clock_steps_back() -> None:
    data = pcap(LINKTYPE_RAW, (5, 0, IPV4), (4, 0, IPV6), (6, 0, IPV4))
    assert [frame.time for frame in read(data)] == [5.0, 4.0, 6.0]


# -- link types ---------------------------------------------------------------------


def test_ethernet_header_is_stripped() -> None:
    data = pcap(LINKTYPE_ETHERNET, (1, 0, ethernet(IPV4)), (2, 0, ethernet(IPV6, 0x86DD)))
    assert read(data) == [Frame(1.0, IPV4), Frame(2.0, IPV6)]


def test_ethernet_with_an_802_1q_tag_is_stripped_tag_and_all() -> None:
    tagged = ethernet(IPV4, vlan=100)
    assert len(tagged) == 18 + len(IPV4)
    data = pcap(LINKTYPE_ETHERNET, (1, 0, tagged), (2, 0, ethernet(IPV6, 0x86DD, vlan=4095)),
                (3, 0, ethernet(IPV4)))
    assert read(data) == [Frame(1.0, IPV4), Frame(2.0, IPV6), Frame(3.0, IPV4)]


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6])
def test_raw_ip_link_types_are_the_packet_itself(linktype: int) -> None:
    packet = IPV6 if linktype == LINKTYPE_IPV6 else IPV4
    assert read(pcap(linktype, (9, 9, packet))) == [Frame(9.000009, packet)]


def test_linux_cooked_v1_header_is_16_octets() -> None:
    frame = sll(IPV4)
    assert len(frame) == 16 + len(IPV4)
    assert read(pcap(LINKTYPE_LINUX_SLL, (1, 0, frame), (2, 0, sll(IPV6, 0x86DD)))) == [
        Frame(1.0, IPV4), Frame(2.0, IPV6)]


def test_linux_cooked_v2_header_is_20_octets() -> None:
    frame = sll2(IPV4)
    assert len(frame) == 20 + len(IPV4)
    assert read(pcap(LINKTYPE_LINUX_SLL2, (1, 0, frame), (2, 0, sll2(IPV6, 0x86DD)))) == [
        Frame(1.0, IPV4), Frame(2.0, IPV6)]


def test_a_vlan_tag_in_a_linux_cooked_capture_is_stripped() -> None:
    tagged = sll(struct.pack("!HH", 100, 0x0800) + IPV4, protocol=0x8100)
    assert read(pcap(LINKTYPE_LINUX_SLL, (1, 0, tagged))) == [Frame(1.0, IPV4)]


def test_the_vlan_test_is_for_ethernet_only() -> None:
    # 0x8100 at octets 12-13 of a raw IP packet is just data.
    packet = IPV4[:12] + b"\x81\x00" + IPV4[14:]
    assert read(pcap(LINKTYPE_RAW, (1, 0, packet))) == [Frame(1.0, packet)]


@pytest.mark.parametrize("linktype", [0, 105, 127, 0xFFFF, 2**32 - 1])
def test_an_unknown_link_type_raises_value_error(linktype: int) -> None:
    with pytest.raises(ValueError, match=f"link type {linktype}"):
        read(pcap(linktype, (1, 0, IPV4)))


def test_an_unknown_link_type_raises_even_without_records() -> None:
    with pytest.raises(ValueError, match="link type"):
        read(global_header(147))


# -- short, empty and truncated input ----------------------------------------------


@pytest.mark.parametrize("data", [
    b"",
    b"\xd4\xc3\xb2\xa1",
    global_header(LINKTYPE_RAW)[:23],
    b"\x0a\x0d\x0d\x0a" + bytes(40),  # pcapng: not classic pcap
    bytes(24),
    b"not a pcap file at all, not at all",
])
def test_empty_short_or_foreign_input_gives_no_frames(data: bytes) -> None:
    assert read(data) == []


def test_a_file_header_alone_gives_no_frames() -> None:
    for linktype in (LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL2):
        assert read(global_header(linktype)) == []


def test_a_truncated_last_record_is_left_out() -> None:
    whole = pcap(LINKTYPE_ETHERNET, (1, 0, ethernet(IPV4)), (2, 0, ethernet(IPV6, 0x86DD)))
    first_only = [Frame(1.0, IPV4)]
    second_starts = 24 + 16 + len(ethernet(IPV4))
    assert read(whole) == [Frame(1.0, IPV4), Frame(2.0, IPV6)]
    # Cut inside the second record's data, inside its header, right after its header.
    for end in (len(whole) - 1, second_starts + 16 + 3, second_starts + 16,
                second_starts + 15, second_starts + 1, second_starts):
        assert read(whole[:end]) == first_only, end


def test_a_record_whose_length_runs_past_the_end_is_left_out() -> None:
    lying = struct.pack("<IIII", 2, 0, 10_000, 10_000) + IPV4
    data = pcap(LINKTYPE_RAW, (1, 0, IPV4)) + lying
    assert read(data) == [Frame(1.0, IPV4)]


def test_the_captured_length_counts_not_the_original_length() -> None:
    """A frame cut by the snap length: the captured part, and the next record
    found where the captured length says."""
    cut = ethernet(IPV4)[:30]
    data = (global_header(LINKTYPE_ETHERNET) + record(1, 0, cut, original=1514)
            + record(2, 0, ethernet(IPV6, 0x86DD)))
    assert read(data) == [Frame(1.0, cut[14:]), Frame(2.0, IPV6)]


def test_an_empty_record_is_an_empty_packet() -> None:
    data = pcap(LINKTYPE_RAW, (1, 0, b""), (2, 0, IPV4), (3, 0, b""))
    assert read(data) == [Frame(1.0, b""), Frame(2.0, IPV4), Frame(3.0, b"")]


def test_read_accepts_what_a_pipe_gives_in_pieces_without_raising() -> None:
    """Every prefix of a file (tcpdump stopped at any octet) reads as the
    records complete in it, never raises."""
    frames = [(1, 0, ethernet(IPV4, vlan=7)), (2, 0, ethernet(IPV6, 0x86DD)),
              (3, 0, ethernet(IPV4))]
    whole = pcap(LINKTYPE_ETHERNET, *frames)
    ends = [24]
    for _, _, frame in frames:
        ends.append(ends[-1] + 16 + len(frame))
    for cut in range(len(whole) + 1):
        complete = sum(1 for end in ends[1:] if end <= cut)
        assert len(read(whole[:cut])) == complete, cut


# -- scapy as a slow reference ---------------------------------------------------------


def _random_ip_packet(rng: random.Random) -> object:
    from scapy.layers.inet import IP, UDP  # noqa: PLC0415
    from scapy.layers.inet6 import IPv6  # noqa: PLC0415
    from scapy.packet import Raw  # noqa: PLC0415

    payload = Raw(rng.randbytes(rng.randrange(0, 200)))
    ports = UDP(sport=rng.randrange(1, 65536), dport=rng.choice([4341, 4342, 9000]))
    if rng.random() < 0.5:
        src = ".".join(str(rng.randrange(256)) for _ in range(4))
        return IP(src=src, dst="198.18.1.2", ttl=rng.randrange(1, 256)) / ports / payload
    return IPv6(src=f"2001:db8::{rng.randrange(1, 0xFFFF):x}", dst="2001:db8::1") / ports / payload


def _framed(linktype: int, packet: object, rng: random.Random) -> object:
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether  # noqa: PLC0415

    if linktype == LINKTYPE_ETHERNET:
        # Both MACs given: scapy would otherwise look the destination up (ARP).
        ether = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        if rng.random() < 0.5:
            return ether / Dot1Q(vlan=rng.randrange(4096)) / packet
        return ether / packet
    if linktype == LINKTYPE_LINUX_SLL:
        return CookedLinux(pkttype=0, lladdrtype=1) / packet
    if linktype == LINKTYPE_LINUX_SLL2:
        return CookedLinuxV2(pkttype=0) / packet
    return packet


@pytest.mark.parametrize("linktype", [LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL,
                                      LINKTYPE_LINUX_SLL2, LINKTYPE_RAW])
@pytest.mark.parametrize("endianness", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_read_agrees_with_scapy(linktype: int, endianness: str, nano: bool) -> None:
    utils = pytest.importorskip("scapy.utils")
    from scapy.layers.inet import IP  # noqa: PLC0415
    from scapy.layers.inet6 import IPv6  # noqa: PLC0415

    rng = random.Random(f"{linktype} {endianness} {nano}")
    digits = 9 if nano else 6
    written = []
    for _ in range(8):
        packet = _framed(linktype, _random_ip_packet(rng), rng)
        seconds, fraction = rng.randrange(2**30, 2**32), rng.randrange(10**digits)
        packet.time = Decimal(f"{seconds}.{fraction:0{digits}d}")  # type: ignore[attr-defined]
        written.append(packet)
    buffer = io.BytesIO()
    writer = utils.PcapWriter(buffer, linktype=linktype, endianness=endianness, nano=nano,
                              sync=True)
    for packet in written:
        writer.write(packet)
    writer.flush()
    data = buffer.getvalue()

    expected = []
    for packet in utils.rdpcap(io.BytesIO(data)):
        network = packet.getlayer(IP) or packet.getlayer(IPv6)
        expected.append(Frame(float(packet.time), bytes(network)))
    assert len(expected) == len(written)
    assert read(data) == expected
