"""ARP and ICMPv6 NS / NA frames (lispd.wire.neighbor): round trips, robustness,
every reason a frame is refused, the gateway's answers, and scapy as an
outside reference in both directions."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet
from scapy.utils6 import in6_getnsma, in6_getnsmac

from lispd.wire import DecodeError, EncodeError
from lispd.wire.inet import csum_add, csum_fold
from lispd.wire.neighbor import (
    ALL_NODES,
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST,
    Arp,
    Neighbor,
    NeighborAdvertisement,
    NeighborFrame,
    NeighborSolicitation,
    arp_reply,
    arp_request,
    neighbor_advertisement,
    neighbor_solicitation,
    read_neighbor_frame,
    solicited_node,
    write_neighbor_frame,
)
from tests import strategies as s

UNSPECIFIED = IPv6Address("::")
HOST_MAC = bytes.fromhex("02 00 00 00 00 0a")
GATEWAY_MAC = bytes.fromhex("02 00 00 00 00 01")
HOST4, GATEWAY4 = IPv4Address("192.0.2.10"), IPv4Address("192.0.2.1")
HOST6, TARGET6 = IPv6Address("2001:db8::10"), IPv6Address("2001:db8::1")

# --- strategies ----------------------------------------------------------------

macs = st.binary(min_size=6, max_size=6)
unicast6 = s.ipv6.filter(lambda address: not address.is_multicast)
arps = st.builds(Arp, st.sampled_from([ARP_REQUEST, ARP_REPLY]), macs, s.ipv4, macs, s.ipv4)


@st.composite
def solicitations(draw: st.DrawFn) -> NeighborSolicitation:
    source = draw(st.one_of(st.just(UNSPECIFIED), unicast6))
    target = draw(unicast6)
    if source.is_unspecified:  # DAD (RFC 4861 7.1.1): no option, to the solicited-node group
        return NeighborSolicitation(source, solicited_node(target), target, None)
    destination = draw(st.one_of(st.just(solicited_node(target)), s.ipv6))
    return NeighborSolicitation(source, destination, target, draw(st.none() | macs))


@st.composite
def advertisements(draw: st.DrawFn) -> NeighborAdvertisement:
    solicited = draw(st.booleans())
    return NeighborAdvertisement(
        draw(unicast6), draw(unicast6 if solicited else s.ipv6), draw(unicast6),
        router=draw(st.booleans()), solicited=solicited, override=draw(st.booleans()),
        link_address=draw(st.none() | macs),
    )


messages: st.SearchStrategy[Neighbor] = st.one_of(arps, solicitations(), advertisements())
frames = st.builds(NeighborFrame, macs, macs, messages)
ns_frames = st.builds(NeighborFrame, macs, macs, solicitations())


# --- round trips and robustness -------------------------------------------------


@given(frames, st.binary(max_size=40))
def test_round_trip_with_or_without_trailing_padding(frame: NeighborFrame, pad: bytes) -> None:
    wire = write_neighbor_frame(frame)
    assert read_neighbor_frame(wire) == frame
    padded = wire + bytes(max(0, 60 - len(wire)))
    assert read_neighbor_frame(padded) == frame
    assert read_neighbor_frame(wire + pad) == frame


def _read(data: bytes) -> NeighborFrame | DecodeError | None:
    """What reading gives: a frame, None, or the DecodeError (nothing else)."""
    try:
        return read_neighbor_frame(data)
    except DecodeError as error:
        return error


ethertypes = st.sampled_from([0x0806, 0x86DD, 0x0800, 0x8100, 0x88CC])


@given(st.one_of(
    st.binary(max_size=120),
    st.tuples(macs, macs, ethertypes, st.binary(max_size=100)).map(
        lambda t: t[0] + t[1] + struct.pack("!H", t[2]) + t[3]
    ),
))
def test_random_bytes_read_as_none_a_frame_or_decode_error(data: bytes) -> None:
    _read(data)


@given(frames, st.data())
def test_truncations_read_as_none_or_decode_error(
    frame: NeighborFrame, data: st.DataObject
) -> None:
    wire = write_neighbor_frame(frame)
    cut = data.draw(st.integers(0, len(wire) - 1))
    assert not isinstance(_read(wire[:cut]), NeighborFrame)


@given(frames, st.data())
def test_one_corrupted_byte_reads_as_none_a_frame_or_decode_error(
    frame: NeighborFrame, data: st.DataObject
) -> None:
    wire = bytearray(write_neighbor_frame(frame))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] ^= data.draw(st.integers(1, 0xFF))
    result = _read(bytes(wire))
    if not isinstance(frame.message, Arp) and index >= 20:
        # From next header on, everything an NS / NA says is under the checksum.
        assert not isinstance(result, NeighborFrame)


# --- scapy, both ways ------------------------------------------------------------


def _colons(mac: bytes) -> str:
    return ":".join(f"{octet:02x}" for octet in mac)


def _scapy_frame(frame: NeighborFrame) -> Packet:
    """frame as scapy builds it from the fields alone."""
    ether = Ether(dst=_colons(frame.destination), src=_colons(frame.source))
    message = frame.message
    if isinstance(message, Arp):
        return ether / ARP(
            op=message.operation, hwsrc=_colons(message.sender_mac), psrc=str(message.sender_ip),
            hwdst=_colons(message.target_mac), pdst=str(message.target_ip),
        )
    ip = IPv6(src=str(message.source), dst=str(message.destination), hlim=255)
    if isinstance(message, NeighborSolicitation):
        packet = ether / ip / ICMPv6ND_NS(tgt=str(message.target))
        option: type[Packet] = ICMPv6NDOptSrcLLAddr
    else:
        packet = ether / ip / ICMPv6ND_NA(
            tgt=str(message.target), R=message.router, S=message.solicited, O=message.override
        )
        option = ICMPv6NDOptDstLLAddr
    if message.link_address is None:
        return packet
    with_option: Packet = packet / option(lladdr=_colons(message.link_address))
    return with_option


@given(frames)
def test_scapy_builds_the_same_bytes_and_we_read_what_it_builds(frame: NeighborFrame) -> None:
    theirs = bytes(_scapy_frame(frame))
    assert write_neighbor_frame(frame) == theirs
    assert read_neighbor_frame(theirs) == frame


@given(st.builds(NeighborFrame, macs, macs, st.one_of(solicitations(), advertisements())))
def test_scapy_finds_our_checksum_right(frame: NeighborFrame) -> None:
    ours = Ether(write_neighbor_frame(frame))
    layer = ours[ICMPv6ND_NS] if ICMPv6ND_NS in ours else ours[ICMPv6ND_NA]
    sent = layer.cksum
    del layer.cksum  # scapy computes it afresh over its own pseudo-header
    assert Ether(bytes(ours))[type(layer)].cksum == sent


def test_scapy_frames_read_to_the_right_fields() -> None:
    request = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:0a") / ARP(
        op="who-has", hwsrc="02:00:00:00:00:0a", psrc="192.0.2.10", pdst="192.0.2.1"
    )
    assert read_neighbor_frame(bytes(request) + bytes(18)) == NeighborFrame(
        BROADCAST, HOST_MAC, Arp(ARP_REQUEST, HOST_MAC, HOST4, bytes(6), GATEWAY4)
    )
    ns = (
        Ether(dst="33:33:ff:00:00:01", src="02:00:00:00:00:0a")
        / IPv6(src="2001:db8::10", dst="ff02::1:ff00:1")
        / ICMPv6ND_NS(tgt="2001:db8::1")
        / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:0a")
    )
    read = read_neighbor_frame(bytes(ns))
    assert read is not None
    assert read.message == NeighborSolicitation(
        HOST6, IPv6Address("ff02::1:ff00:1"), TARGET6, HOST_MAC
    )
    na = (
        Ether(dst="02:00:00:00:00:0a", src="02:00:00:00:00:01")
        / IPv6(src="fe80::1", dst="2001:db8::10")
        / ICMPv6ND_NA(tgt="2001:db8::1", R=1, S=1, O=0)
        / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01")
    )
    read = read_neighbor_frame(bytes(na))
    assert read is not None
    assert read.message == NeighborAdvertisement(
        IPv6Address("fe80::1"), HOST6, TARGET6,
        router=True, solicited=True, override=False, link_address=GATEWAY_MAC,
    )


# --- hand-built frames: what is refused, and why --------------------------------

ARP_FRAME = write_neighbor_frame(
    NeighborFrame(BROADCAST, HOST_MAC, Arp(ARP_REQUEST, HOST_MAC, HOST4, bytes(6), GATEWAY4))
)
SLLAO = b"\x01\x01" + HOST_MAC
TARGET6_GROUP = solicited_node(TARGET6)
_NA_SOLICITED = 1 << 30


def _nd_frame(
    icmp: bytes, *, source: IPv6Address = HOST6, destination: IPv6Address = TARGET6_GROUP,
    hop_limit: int = 255, version: int = 6, payload_length: int | None = None,
    checksum_error: int = 0,
) -> bytes:
    """An Ethernet + IPv6 + ICMPv6 frame built by hand, the checksum filled in
    (RFC 8200 8.1) and then off by checksum_error."""
    pseudo = source.packed + destination.packed + struct.pack("!I3xB", len(icmp), 58)
    check = csum_fold(csum_add(0, pseudo + icmp[:2] + b"\0\0" + icmp[4:])) ^ checksum_error
    icmp = icmp[:2] + struct.pack("!H", check) + icmp[4:] if len(icmp) >= 4 else icmp
    ip = struct.pack(
        "!IHBB16s16s", version << 28, len(icmp) if payload_length is None else payload_length,
        58, hop_limit, source.packed, destination.packed,
    )
    return b"\x33\x33\xff\x00\x00\x01" + HOST_MAC + b"\x86\xdd" + ip + icmp


def _ns(target: IPv6Address = TARGET6, *, code: int = 0, options: bytes = SLLAO) -> bytes:
    return struct.pack("!BBHI16s", 135, code, 0, 0, target.packed) + options


def _na(*, flags: int = 0, options: bytes = b"") -> bytes:
    return struct.pack("!BBHI16s", 136, 0, 0, flags, TARGET6.packed) + options


def _patched(frame: bytes, at: int, new: bytes) -> bytes:
    return frame[:at] + new + frame[at + len(new) :]


REFUSED = [  # (what is wrong, frame, reason, offset)
    ("truncated Ethernet header", bytes(13), "truncated Ethernet header", 0),
    ("truncated ARP header", ARP_FRAME[:18], "truncated ARP header", 14),
    ("truncated ARP addresses", ARP_FRAME[:40], "truncated ARP addresses", 22),
    ("ARP htype not Ethernet", _patched(ARP_FRAME, 14, b"\x00\x06"),
     "ARP hardware type 0x6, not 0x1", 14),
    ("ARP ptype not IPv4", _patched(ARP_FRAME, 16, b"\x86\xdd"),
     "ARP protocol type 0x86dd, not 0x800", 16),
    ("ARP hlen not 6", _patched(ARP_FRAME, 18, b"\x08"),
     "ARP hardware address length 0x8, not 0x6", 18),
    ("ARP plen not 4", _patched(ARP_FRAME, 19, b"\x10"),
     "ARP protocol address length 0x10, not 0x4", 19),
    ("unknown ARP operation", _patched(ARP_FRAME, 20, b"\x00\x03"),
     "unknown ARP operation 3", 20),
    ("truncated IPv6 header", _nd_frame(_ns())[:53], "truncated IPv6 header", 14),
    ("IPv6 payload length past the frame", _nd_frame(_ns(), payload_length=41),
     "IPv6 payload length 41 past the frame (32 left)", 18),
    ("IP version not 6", _nd_frame(_ns(), version=4), "IP version 4", 14),
    ("hop limit not 255", _nd_frame(_ns(), hop_limit=64), "hop limit 64, not 255", 21),
    ("bad ICMPv6 checksum", _nd_frame(_ns(), checksum_error=1), "bad ICMPv6 checksum", 56),
    ("ICMPv6 code not 0", _nd_frame(_ns(code=1)), "ICMPv6 code 1", 55),
    ("ND message under 24 octets", _nd_frame(_ns()[:20]), "ND message of 20 octets", 54),
    ("option of length 0", _nd_frame(_ns(options=b"\x0e\x00" + bytes(6))),
     "ND option type 14 of length 0", 78),
    ("option header past the end", _nd_frame(_ns(options=SLLAO + b"\x0e")),
     "ND option header runs past the end", 86),
    ("option past the end", _nd_frame(_ns(options=b"\x0e\x02" + bytes(6))),
     "ND option type 14 of 16 octets runs past the end", 78),
    ("link-layer option not 8 octets", _nd_frame(_ns(options=b"\x01\x02" + bytes(14))),
     "link-layer address option of length 2, not 1", 78),
    ("multicast target", _nd_frame(_ns(IPv6Address("ff02::1"))),
     "multicast target ff02::1", 62),
    ("multicast source", _nd_frame(_na(), source=ALL_NODES), "multicast source ff02::1", 22),
    ("NS from :: with a source link-layer option", _nd_frame(_ns(), source=UNSPECIFIED),
     "NS from :: with a source link-layer address option", 78),
    ("NS from :: not to a solicited-node group",
     _nd_frame(_ns(options=b""), source=UNSPECIFIED, destination=TARGET6),
     "NS from :: to 2001:db8::1, not a solicited-node address", 38),
    ("solicited NA to a multicast destination",
     _nd_frame(_na(flags=_NA_SOLICITED), destination=ALL_NODES),
     "solicited NA to multicast ff02::1", 58),
]


@pytest.mark.parametrize(
    ("frame", "reason", "offset"), [case[1:] for case in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_malformed_neighbor_frames_are_refused_with_a_reason(
    frame: bytes, reason: str, offset: int
) -> None:
    with pytest.raises(DecodeError) as error:
        read_neighbor_frame(frame)
    assert reason in error.value.reason
    assert error.value.offset == offset


def _ethernet(ethertype: int, body: bytes) -> bytes:
    return BROADCAST + HOST_MAC + struct.pack("!H", ethertype) + body


NOT_OURS = [
    ("IPv4", _ethernet(0x0800, bytes.fromhex("45") + bytes(19))),
    ("LLDP", _ethernet(0x88CC, bytes(46))),
    ("VLAN-tagged ARP", _ethernet(0x8100, b"\x00\x05\x08\x06" + ARP_FRAME[14:])),
    ("IPv6 UDP", _patched(_nd_frame(_ns()), 20, b"\x11")),
    ("ICMPv6 echo request", _nd_frame(struct.pack("!BBHI", 128, 0, 0, 0))),
    ("ICMPv6 router solicitation", _nd_frame(_ns()[:1].replace(b"\x87", b"\x85") + _ns()[1:])),
    ("ICMPv6 without a message", _nd_frame(b"")),
]


@pytest.mark.parametrize("frame", [c[1] for c in NOT_OURS], ids=[c[0] for c in NOT_OURS])
def test_frames_that_are_not_ours_read_as_none(frame: bytes) -> None:
    assert read_neighbor_frame(frame) is None


def test_unknown_options_are_skipped_and_the_first_link_option_counts() -> None:
    unknown = b"\x0e\x02" + bytes(14)
    later = b"\x01\x01" + GATEWAY_MAC
    read = read_neighbor_frame(_nd_frame(_ns(options=unknown + SLLAO + later)))
    assert read is not None
    assert isinstance(read.message, NeighborSolicitation)
    assert read.message.link_address == HOST_MAC
    # A target link-layer option means nothing in a solicitation.
    read = read_neighbor_frame(_nd_frame(_ns(options=b"\x02\x01" + GATEWAY_MAC)))
    assert read is not None
    assert isinstance(read.message, NeighborSolicitation)
    assert read.message.link_address is None


def test_reserved_bits_are_ignored() -> None:
    reserved = struct.pack("!I", 0x1FFFFFFF)
    read = read_neighbor_frame(_nd_frame(_patched(_na(), 4, reserved), destination=HOST6))
    assert read is not None
    assert read.message == NeighborAdvertisement(
        HOST6, HOST6, TARGET6, router=False, solicited=False, override=False, link_address=None
    )


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (NeighborFrame(BROADCAST[:5], HOST_MAC, Arp(1, HOST_MAC, HOST4, bytes(6), GATEWAY4)),
         "Ethernet destination of 5 octets, not 6"),
        (NeighborFrame(BROADCAST, HOST_MAC * 2, Arp(1, HOST_MAC, HOST4, bytes(6), GATEWAY4)),
         "Ethernet source of 12 octets, not 6"),
        (NeighborFrame(BROADCAST, HOST_MAC, Arp(1, b"", HOST4, bytes(6), GATEWAY4)),
         "ARP sender hardware address of 0 octets"),
        (NeighborFrame(BROADCAST, HOST_MAC, Arp(1, HOST_MAC, HOST4, bytes(7), GATEWAY4)),
         "ARP target hardware address of 7 octets"),
        (NeighborFrame(BROADCAST, HOST_MAC, Arp(3, HOST_MAC, HOST4, bytes(6), GATEWAY4)),
         "ARP operation 3 is neither request nor reply"),
        (NeighborFrame(BROADCAST, HOST_MAC, NeighborSolicitation(HOST6, HOST6, TARGET6, b"ab")),
         "link-layer address option of 2 octets"),
    ],
)
def test_what_cannot_be_written_is_an_encode_error(frame: NeighborFrame, reason: str) -> None:
    with pytest.raises(EncodeError, match=reason):
        write_neighbor_frame(frame)


# --- the gateway's answers ---------------------------------------------------------


def _read_back(wire: bytes) -> NeighborFrame:
    read = read_neighbor_frame(wire)
    assert read is not None
    return read


@given(macs, st.builds(Arp, st.just(ARP_REQUEST), macs, s.ipv4, macs, s.ipv4), macs)
def test_arp_reply_claims_the_asked_address(source: bytes, request: Arp, mac: bytes) -> None:
    reply = _read_back(arp_reply(request=NeighborFrame(BROADCAST, source, request), mac=mac))
    assert reply == NeighborFrame(
        request.sender_mac, mac,
        Arp(ARP_REPLY, mac, request.target_ip, request.sender_mac, request.sender_ip),
    )


def test_arp_reply_and_neighbor_advertisement_answer_only_their_question() -> None:
    asked = _read_back(ARP_FRAME)
    replied = _read_back(arp_reply(request=asked, mac=GATEWAY_MAC))
    with pytest.raises(EncodeError, match="only an ARP request"):
        arp_reply(request=replied, mac=GATEWAY_MAC)
    with pytest.raises(EncodeError, match="only a neighbor solicitation"):
        neighbor_advertisement(solicitation=asked, source=TARGET6, mac=GATEWAY_MAC)


def test_arp_request_broadcast_or_unicast_probe() -> None:
    request = _read_back(arp_request(sender_mac=GATEWAY_MAC, sender_ip=GATEWAY4, target_ip=HOST4))
    assert request == NeighborFrame(
        BROADCAST, GATEWAY_MAC, Arp(ARP_REQUEST, GATEWAY_MAC, GATEWAY4, bytes(6), HOST4)
    )
    probe = _read_back(arp_request(sender_mac=GATEWAY_MAC, sender_ip=GATEWAY4, target_ip=HOST4,
                                   destination=HOST_MAC))
    assert probe.destination == HOST_MAC
    assert probe.message == request.message


@given(ns_frames, unicast6, macs, st.booleans())
def test_neighbor_advertisement_answers_the_solicitation(
    asked: NeighborFrame, source: IPv6Address, mac: bytes, router: bool
) -> None:
    assert isinstance(asked.message, NeighborSolicitation)
    dad = asked.message.source.is_unspecified
    answer = _read_back(
        neighbor_advertisement(solicitation=asked, source=source, mac=mac, router=router)
    )
    assert answer == NeighborFrame(
        asked.source, mac,
        NeighborAdvertisement(
            source, ALL_NODES if dad else asked.message.source, asked.message.target,
            router=router, solicited=not dad, override=False, link_address=mac,
        ),
    )


def test_neighbor_advertisement_router_flag_by_default() -> None:
    answer = _read_back(neighbor_advertisement(
        solicitation=_read_back(_nd_frame(_ns())), source=TARGET6, mac=GATEWAY_MAC
    ))
    assert isinstance(answer.message, NeighborAdvertisement)
    assert answer.message.router


def test_neighbor_solicitation_to_the_solicited_node_group() -> None:
    # RFC 4291 2.7.1's shape, RFC 2464 7's mapping; the example target of RFC 4291 2.5.1.
    target = IPv6Address("2001:db8::1:800:200e:8c6c")
    probe = _read_back(neighbor_solicitation(source=HOST6, source_mac=HOST_MAC, target=target))
    assert probe == NeighborFrame(
        bytes.fromhex("3333ff0e8c6c"), HOST_MAC,
        NeighborSolicitation(HOST6, IPv6Address("ff02::1:ff0e:8c6c"), target, HOST_MAC),
    )


@given(unicast6)
def test_solicited_node_group_agrees_with_scapy(target: IPv6Address) -> None:
    wire = neighbor_solicitation(source=HOST6, source_mac=HOST_MAC, target=target)
    theirs = in6_getnsma(target.packed)
    assert wire[38:54] == theirs
    assert wire[:6] == bytes.fromhex(in6_getnsmac(theirs).replace(":", ""))


def test_neighbor_solicitation_unicast_probe_and_dad() -> None:
    probe = _read_back(neighbor_solicitation(source=HOST6, source_mac=HOST_MAC, target=TARGET6,
                                             destination_mac=GATEWAY_MAC))
    assert probe == NeighborFrame(
        GATEWAY_MAC, HOST_MAC, NeighborSolicitation(HOST6, TARGET6, TARGET6, HOST_MAC)
    )
    # RFC 4861 4.3: from :: the source link-layer option must be left out.
    dad = _read_back(neighbor_solicitation(source=UNSPECIFIED, source_mac=HOST_MAC,
                                           target=TARGET6))
    assert dad.message == NeighborSolicitation(
        UNSPECIFIED, solicited_node(TARGET6), TARGET6, None
    )
