"""The C flow hash and ICMP too-big answers (native/flow.c, native/icmp.c)
against their Python twins (lispd.wire.flow, lispd.wire.icmp), and the
answers against scapy as an outside reference."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6, in6_chksum
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from lispd import native
from lispd.ffi import buffer_in, ffi, lib
from lispd.wire import flow, icmp
from lispd.wire.errors import EncodeError
from lispd.wire.inet import inet_checksum
from tests import strategies as s

IpAddress = IPv4Address | IPv6Address

PORT_PROTOCOLS = (6, 17, 132, 136)
OTHER_PROTOCOLS = (0, 1, 4, 41, 43, 44, 47, 50, 58, 60, 255)
ICMP_TYPES = (0, 3, 4, 5, 8, 11, 12, 13, 1, 2, 127, 128, 129, 135, 255)

SPECIAL_IPV4 = tuple(
    IPv4Address(a)
    for a in ("0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.5", "239.255.255.255",
              "240.0.0.1", "255.255.255.255", "192.0.2.1")
)
SPECIAL_IPV6 = tuple(
    IPv6Address(a) for a in ("::", "::1", "ff02::1", "ff0e::2", "::ffff:127.0.0.1", "fe80::1")
)

# Mostly ordinary unicast (s.ipv4 and s.ipv6 favour 0.0.0.0 and ::, which
# ICMP must not answer), now and then an address ICMP treats apart.
unicast_ipv4 = st.builds(IPv4Address, st.integers(1 << 24, (224 << 24) - 1))
unicast_ipv6 = st.builds(IPv6Address, st.integers(0x2000 << 112, (0xFE00 << 112) - 1))
ipv4_address: st.SearchStrategy[IPv4Address] = st.one_of(
    unicast_ipv4, unicast_ipv4, unicast_ipv4, s.ipv4, st.sampled_from(SPECIAL_IPV4)
)
ipv6_address: st.SearchStrategy[IPv6Address] = st.one_of(
    unicast_ipv6, unicast_ipv6, unicast_ipv6, s.ipv6, st.sampled_from(SPECIAL_IPV6)
)


def random_bytes(max_size: int) -> st.SearchStrategy[bytes]:
    """Short ones from hypothesis (it shrinks them), long ones seeded."""
    return st.one_of(
        st.binary(max_size=64),
        st.builds(lambda n, seed: random.Random(seed).randbytes(n),
                  st.integers(0, max_size), s.u32),
    )


def ipv4_packet(
    src: IPv4Address, dst: IPv4Address, protocol: int, transport: bytes, *,
    ttl: int = 64, tos: int = 0, ident: int = 0, flags: int = 0, offset: int = 0,
    options: bytes = b"", total_length: int | None = None,
) -> bytes:
    """An IPv4 packet built by hand (RFC 791 3.1), header checksum filled in."""
    assert len(options) % 4 == 0
    header_length = 20 + len(options)
    total = header_length + len(transport) if total_length is None else total_length
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | header_length // 4, tos, total & 0xFFFF, ident,
        flags << 13 | offset, ttl, protocol, 0, src.packed, dst.packed,
    ) + options
    check = inet_checksum(header)
    return header[:10] + struct.pack("!H", check) + header[12:] + transport


def ipv6_packet(
    src: IPv6Address, dst: IPv6Address, next_header: int, payload: bytes, *,
    hop_limit: int = 64, traffic_class: int = 0, flow_label: int = 0,
) -> bytes:
    """An IPv6 packet built by hand (RFC 8200 section 3)."""
    word = 6 << 28 | traffic_class << 20 | flow_label
    return struct.pack(
        "!IHBB16s16s", word, len(payload) & 0xFFFF, next_header, hop_limit,
        src.packed, dst.packed,
    ) + payload


def ip_packet(src: IpAddress, dst: IpAddress, protocol: int, transport: bytes) -> bytes:
    if isinstance(src, IPv4Address) and isinstance(dst, IPv4Address):
        return ipv4_packet(src, dst, protocol, transport)
    assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
    return ipv6_packet(src, dst, protocol, transport)


@st.composite
def transports(draw: st.DrawFn, protocol: int) -> bytes:
    """What follows the IP header: ports (now and then cut short), an ICMP
    type, a Fragment header, or anything."""
    rest = draw(random_bytes(1600))
    if protocol in PORT_PROTOCOLS:
        ports = struct.pack("!HH", draw(s.u16), draw(s.u16))
        if draw(st.integers(0, 9)) == 0:
            return ports[: draw(st.integers(0, 3))]
        return ports + rest
    if protocol in (1, 58):
        return bytes([draw(st.sampled_from(ICMP_TYPES))]) + rest
    if protocol == 44:
        fragment = struct.pack(
            "!BBHI", draw(st.sampled_from((6, 17, 58, 59))), 0,
            draw(st.one_of(st.just(0), st.integers(1, 0x1FFF))) << 3 | draw(st.integers(0, 1)),
            draw(s.u32),
        )
        return fragment + rest
    return rest


protocols = st.one_of(
    st.sampled_from(PORT_PROTOCOLS), st.sampled_from(OTHER_PROTOCOLS), s.u8
)


@st.composite
def ipv4_packets(draw: st.DrawFn) -> bytes:
    protocol = draw(protocols)
    transport = draw(transports(protocol))
    flags = draw(st.sampled_from((0, 0, 0b010, 0b010, 0b001, 0b011, 0b100)))  # DF, MF, evil
    offset = draw(st.one_of(st.just(0), st.just(0), st.just(0), st.integers(1, 0x1FFF)))
    return ipv4_packet(
        draw(ipv4_address), draw(ipv4_address), protocol, transport,
        ttl=draw(s.u8), tos=draw(s.u8), ident=draw(s.u16), flags=flags, offset=offset,
        options=draw(st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n,
                                                                     max_size=4 * n))),
        total_length=draw(st.one_of(st.none(), st.none(), s.u16)),
    )


@st.composite
def ipv6_packets(draw: st.DrawFn) -> bytes:
    next_header = draw(protocols)
    return ipv6_packet(
        draw(ipv6_address), draw(ipv6_address), next_header, draw(transports(next_header)),
        hop_limit=draw(s.u8), traffic_class=draw(s.u8), flow_label=draw(st.integers(0, 0xFFFFF)),
    )


@st.composite
def cut(draw: st.DrawFn, packets: st.SearchStrategy[bytes]) -> bytes:
    """Now and then only the head of a packet: short packets of every kind."""
    packet = draw(packets)
    if draw(st.integers(0, 4)) == 0:
        return packet[: draw(st.integers(0, min(len(packet), 80)))]
    return packet


# A random buffer whose first nibble is 4 or 6 gets past the version check.
versioned_bytes = st.tuples(st.sampled_from((0x40, 0x60, 0x00)), st.binary(max_size=80)).map(
    lambda t: bytes([t[0] | (t[1][0] & 0x0F if t[1] else 5)]) + t[1][1:]
)
any_packet = st.one_of(
    cut(ipv4_packets()), cut(ipv4_packets()), cut(ipv6_packets()), cut(ipv6_packets()),
    versioned_bytes, st.binary(max_size=64),
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    macs = draw(st.binary(min_size=12, max_size=12))
    ethertype = draw(st.one_of(st.sampled_from((0x0800, 0x86DD)), st.sampled_from((0x0800, 0x86DD)),
                               st.sampled_from((0x0806, 0x88CC, 0x8100)), s.u16))
    payload = draw(any_packet)
    tag = b""
    if draw(st.booleans()):
        tag = struct.pack("!HH", 0x8100, draw(s.u16))
    frame = macs + tag + struct.pack("!H", ethertype) + payload
    if draw(st.integers(0, 5)) == 0:
        frame = frame[: draw(st.integers(0, 20))]
    return frame


# --- FNV-1a ----------------------------------------------------------------


def test_fnv1a_reference_values() -> None:
    # The 32-bit FNV-1a test vectors of the FNV reference code.
    assert flow.fnv1a_32(b"") == 0x811C9DC5
    assert flow.fnv1a_32(b"a") == 0xE40C292C
    assert flow.fnv1a_32(b"foobar") == 0xBF9CF968
    assert flow.fnv1a_32(b"bar", flow.fnv1a_32(b"foo")) == flow.fnv1a_32(b"foobar")


# --- flow hash ---------------------------------------------------------------


@given(any_packet)
def test_flow_hash_c_equals_python(packet: bytes) -> None:
    c = native.flow_hash(packet)
    assert c == flow.flow_hash(packet)
    key = flow.flow_key(packet)
    note(f"key={key.hex() if key else None}")
    event("malformed" if key is None else
          f"IPv{4 if len(key) == 13 else 6} {'no ports' if key[-4:] == bytes(4) else 'ports'}")
    assert (c == 0) if key is None else (c == flow.fnv1a_32(key) and len(key) in (13, 37))


@given(frames())
def test_frame_hash_c_equals_python(frame: bytes) -> None:
    if len(frame) < 14:
        event("short")
    else:
        tagged = frame[12:14] == b"\x81\x00" and len(frame) >= 18
        ethertype = frame[16:18] if tagged else frame[12:14]
        ip = ethertype in (b"\x08\x00", b"\x86\xdd")
        event(f"{'tagged ' if tagged else ''}{'IP' if ip else 'other'}")
    assert native.frame_hash(frame) == flow.frame_hash(frame)


@st.composite
def flows(draw: st.DrawFn) -> tuple[IpAddress, IpAddress, int, int, int]:
    src: IpAddress
    dst: IpAddress
    if draw(st.booleans()):
        src, dst = draw(s.ipv4), draw(s.ipv4)
    else:
        src, dst = draw(s.ipv6), draw(s.ipv6)
    return src, dst, draw(st.sampled_from(PORT_PROTOCOLS)), draw(s.u16), draw(s.u16)


@st.composite
def packets_of(draw: st.DrawFn, five_tuple: tuple[IpAddress, IpAddress, int, int, int]) -> bytes:
    """One packet of the flow, all else random: payload, TTL, TOS, ID, DF,
    options, traffic class, flow label."""
    src, dst, protocol, sport, dport = five_tuple
    transport = struct.pack("!HH", sport, dport) + draw(st.binary(max_size=40))
    if isinstance(src, IPv4Address) and isinstance(dst, IPv4Address):
        return ipv4_packet(
            src, dst, protocol, transport, ttl=draw(s.u8), tos=draw(s.u8),
            ident=draw(s.u16), flags=draw(st.sampled_from((0, 0b010))),
            options=draw(st.sampled_from((b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00"))),
        )
    assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
    return ipv6_packet(
        src, dst, protocol, transport, hop_limit=draw(s.u8), traffic_class=draw(s.u8),
        flow_label=draw(st.integers(0, 0xFFFFF)),
    )


@given(flows().flatmap(lambda f: st.tuples(st.just(f), packets_of(f), packets_of(f))),
       st.binary(min_size=12, max_size=12), st.booleans())
def test_flow_hash_sees_only_the_flow(
    case: tuple[tuple[IpAddress, IpAddress, int, int, int], bytes, bytes],
    macs: bytes, tagged: bool,
) -> None:
    (src, dst, protocol, sport, dport), one, other = case
    key = src.packed + dst.packed + struct.pack("!BHH", protocol, sport, dport)
    expected = flow.fnv1a_32(key)
    for packet in (one, other):
        assert native.flow_hash(packet) == flow.flow_hash(packet) == expected
        ethertype = 0x0800 if isinstance(src, IPv4Address) else 0x86DD
        tag = b"\x81\x00\x0f\xff" if tagged else b""
        frame = macs + tag + struct.pack("!H", ethertype) + packet
        assert native.frame_hash(frame) == flow.frame_hash(frame) == expected


def test_flow_hash_changes_with_either_port() -> None:
    """Counted over a fixed sample, so never flaky: a changed port gives a
    changed hash (FNV-1a could collide on a two-octet change; it may not do
    so more than rarely)."""
    rng = random.Random(9300)
    trials = changed = 0
    for _ in range(2000):
        v6 = rng.random() < 0.5
        src = IPv6Address(rng.getrandbits(128)) if v6 else IPv4Address(rng.getrandbits(32))
        dst = IPv6Address(rng.getrandbits(128)) if v6 else IPv4Address(rng.getrandbits(32))
        protocol = rng.choice(PORT_PROTOCOLS)
        ports = [rng.getrandbits(16), rng.getrandbits(16)]
        before = ip_packet(src, dst, protocol, struct.pack("!HH", *ports) + b"data")
        which = rng.randrange(2)
        ports[which] = (ports[which] + rng.randrange(1, 0x10000)) & 0xFFFF
        after = ip_packet(src, dst, protocol, struct.pack("!HH", *ports) + b"data")
        trials += 1
        changed += native.flow_hash(before) != native.flow_hash(after)
    assert changed >= trials * 0.995, (changed, trials)


def test_ipv4_fragments_hash_without_ports() -> None:
    src, dst = IPv4Address("192.0.2.1"), IPv4Address("198.51.100.7")
    whole = ipv4_packet(src, dst, 17, struct.pack("!HHHH", 4000, 53, 16, 0) + bytes(8))
    first = ipv4_packet(src, dst, 17, struct.pack("!HHHH", 4000, 53, 1508, 0) + bytes(8),
                        flags=0b001)
    middle = ipv4_packet(src, dst, 17, b"\x12\x34\x56\x78" + bytes(8), flags=0b001, offset=185)
    last = ipv4_packet(src, dst, 17, b"\x9a\xbc\xde\xf0", offset=370)
    no_ports = flow.fnv1a_32(src.packed + dst.packed + b"\x11" + bytes(4))
    for fragment in (first, middle, last):
        assert native.flow_hash(fragment) == flow.flow_hash(fragment) == no_ports
    assert native.flow_hash(whole) != no_ports


def test_ports_after_ipv4_options_and_short_packets() -> None:
    src, dst = IPv4Address("192.0.2.1"), IPv4Address("203.0.113.9")
    options = bytes([0x94, 0x04, 0, 0]) + bytes([1] * 36)  # router alert, NOPs: IHL 15
    packet = ipv4_packet(src, dst, 6, struct.pack("!HH", 443, 51000) + bytes(16), options=options)
    with_ports = flow.fnv1a_32(src.packed + dst.packed + struct.pack("!BHH", 6, 443, 51000))
    assert native.flow_hash(packet) == with_ports
    assert native.flow_hash(packet[: 60 + 3]) == flow.fnv1a_32(
        src.packed + dst.packed + b"\x06" + bytes(4)
    )
    assert native.flow_hash(packet[:59]) == 0  # the options are cut off
    assert native.flow_hash(bytes([0x44]) + packet[1:]) == 0  # IHL 4


def test_frame_hash_of_non_ip_frames() -> None:
    macs = bytes(range(12))
    arp = macs + b"\x08\x06" + bytes(28)
    assert native.frame_hash(arp) == flow.fnv1a_32(macs + b"\x08\x06")
    tagged_arp = macs + b"\x81\x00\x00\x05\x08\x06" + bytes(28)
    assert native.frame_hash(tagged_arp) == native.frame_hash(arp)  # the VLAN ID is not hashed
    short_tag = macs + b"\x81\x00\x00"
    assert native.frame_hash(short_tag) == flow.fnv1a_32(macs + b"\x81\x00")
    assert native.frame_hash(macs + b"\x08") == flow.frame_hash(macs + b"\x08") == 0


# --- ICMP too big -------------------------------------------------------------


mtus = st.one_of(st.sampled_from((68, 576, 1280, 1400, 1500, 9000)), s.u16, s.u32)


def check_with_scapy(packet: bytes, mtu: int, source: IpAddress, answer: bytes) -> None:
    """The answer as scapy builds it (checksums computed by scapy), and
    scapy's reading of it."""
    if isinstance(source, IPv4Address):
        check_ipv4_with_scapy(packet, mtu, source, answer)
    else:
        check_ipv6_with_scapy(packet, mtu, source, answer)


def check_ipv4_with_scapy(packet: bytes, mtu: int, source: IPv4Address, answer: bytes) -> None:
    quoted = packet[: 576 - 28]
    assert len(answer) == 28 + len(quoted) <= 576
    assert answer[28:] == quoted
    original_source = str(IPv4Address(packet[12:16]))
    reference = IP(src=str(source), dst=original_source, ttl=64, id=0, flags=0, tos=0) / ICMP(
        type=3, code=4, nexthopmtu=min(mtu, 0xFFFF)
    ) / Raw(quoted)
    assert bytes(reference) == answer
    assert scapy_checksum(answer[:20]) == 0
    assert scapy_checksum(answer[20:]) == 0
    parsed = IP(answer)
    assert (parsed.ttl, parsed.proto, parsed.flags.value, parsed.len) == (
        64, 1, 0, len(answer))
    assert parsed.src == str(source) and parsed.dst == original_source
    assert (parsed[ICMP].type, parsed[ICMP].code) == (3, 4)
    assert parsed[ICMP].nexthopmtu == min(mtu, 0xFFFF)


def check_ipv6_with_scapy(packet: bytes, mtu: int, source: IPv6Address, answer: bytes) -> None:
    quoted = packet[: 1280 - 48]
    assert len(answer) == 48 + len(quoted) <= 1280
    assert answer[48:] == quoted
    original_source = str(IPv6Address(packet[8:24]))
    reference = IPv6(src=str(source), dst=original_source, hlim=64, tc=0, fl=0) / (
        ICMPv6PacketTooBig(mtu=mtu) / Raw(quoted)
    )
    assert bytes(reference) == answer
    parsed = IPv6(answer)
    pseudo_checksum: Callable[[int, IPv6, bytes], int] = in6_chksum
    assert pseudo_checksum(58, parsed, answer[40:]) == 0
    assert (parsed.hlim, parsed.nh, parsed.plen) == (64, 58, len(answer) - 40)
    assert IPv6Address(parsed.src) == source  # scapy spells some addresses its own way
    assert IPv6Address(parsed.dst) == IPv6Address(original_source)
    too_big = parsed[ICMPv6PacketTooBig]
    assert (too_big.type, too_big.code, too_big.mtu) == (2, 0, mtu)


@st.composite
def too_big_cases(draw: st.DrawFn) -> tuple[bytes, int, IpAddress]:
    packet = draw(any_packet)
    source: IpAddress = (
        draw(s.ipv6) if packet and packet[0] >> 4 == 6 else draw(s.ipv4)
    )
    return packet, draw(mtus), source


@given(too_big_cases())
def test_too_big_c_equals_python_and_scapy(case: tuple[bytes, int, IpAddress]) -> None:
    packet, mtu, source = case
    c = native.icmp_too_big(packet, mtu, source.packed)
    assert c == icmp.too_big(packet, mtu, source)
    reason = icmp.refusal(packet)
    note(f"refusal: {reason}")
    if reason is None:
        full = len(packet) >= (1232 if isinstance(source, IPv6Address) else 548)
        event(f"answered IPv{source.version}{', quote cut' if full else ''}")
    else:
        kind = "not IPv4/IPv6" if reason.startswith("IP version") else reason
        event(f"refused: {kind.split(' (')[0].split(' is ')[-1]}")
    assert (c is None) == (reason is not None)
    if c is not None:
        check_with_scapy(packet, mtu, source, c)


@given(st.one_of(ipv4_packets(), ipv6_packets()), mtus, st.sampled_from((0, 4, 16, 20)))
def test_too_big_built_in_place(packet: bytes, mtu: int, gap: int) -> None:
    """out may overlap packet: the answer built in front of the packet in its
    own buffer (and overlapping it by `gap`) equals the one built apart."""
    v6 = packet[0] >> 4 == 6
    source = IPv6Address("2001:db8::1") if v6 else IPv4Address("198.18.0.1")
    expected = native.icmp_too_big(packet, mtu, source.packed)
    front = (48 if v6 else 28) - gap
    buf = bytearray(front) + bytearray(packet) + bytearray(1280)
    base = buffer_in(buf)
    length = lib.lispd_icmp_too_big(base, len(buf), base + front, len(packet), mtu,
                                    buffer_in(source.packed))
    if expected is None:
        assert length == -1
    else:
        assert bytes(buf[:length]) == expected


def test_too_big_refuses_a_buffer_too_small() -> None:
    packet = ipv4_packet(IPv4Address("192.0.2.1"), IPv4Address("198.51.100.1"), 17, bytes(1000))
    source = buffer_in(IPv4Address("198.18.0.1").packed)
    out = bytearray(576)
    assert lib.lispd_icmp_too_big(buffer_in(out), 575, buffer_in(packet), len(packet), 1400,
                                  source) == -1
    assert lib.lispd_icmp_too_big(buffer_in(out), 576, buffer_in(packet), len(packet), 1400,
                                  source) == 576
    assert lib.lispd_icmp_too_big(ffi.NULL, 0, buffer_in(packet), 19, 1400, source) == -1


V4 = IPv4Address("192.0.2.10")
V4_PEER = IPv4Address("198.51.100.20")
V6 = IPv6Address("2001:db8::10")
V6_PEER = IPv6Address("2001:db8:1::20")


def frag6(offset: int, more: int, inner: int = 17) -> bytes:
    return struct.pack("!BBHI", inner, 0, offset << 3 | more, 7) + bytes(16)


ANSWERED = {
    "udp": ipv4_packet(V4, V4_PEER, 17, bytes(100)),
    "echo request": ipv4_packet(V4, V4_PEER, 1, b"\x08\x00" + bytes(62)),
    "echo reply": ipv4_packet(V4, V4_PEER, 1, b"\x00\x00" + bytes(62)),
    "first fragment": ipv4_packet(V4, V4_PEER, 17, bytes(100), flags=0b011),
    "ipv4 options": ipv4_packet(V4, V4_PEER, 6, bytes(40), options=bytes([1] * 8)),
    "private source": ipv4_packet(IPv4Address("10.1.2.3"), V4_PEER, 17, bytes(8)),
    "class E destination": ipv4_packet(V4, IPv4Address("240.0.0.1"), 17, bytes(8)),
    "ipv6 udp": ipv6_packet(V6, V6_PEER, 17, bytes(100)),
    "ipv6 echo request": ipv6_packet(V6, V6_PEER, 58, b"\x80\x00" + bytes(62)),
    "ipv6 multicast destination": ipv6_packet(V6, IPv6Address("ff0e::1"), 17, bytes(8)),
    "ipv6 link-local source": ipv6_packet(IPv6Address("fe80::1"), V6_PEER, 17, bytes(8)),
    "ipv6 first fragment": ipv6_packet(V6, V6_PEER, 44, frag6(0, 1)),
    "ipv6 atomic fragment": ipv6_packet(V6, V6_PEER, 44, frag6(0, 0)),
}

REFUSED = {
    "empty": b"",
    "version 5": bytes([0x50]) + bytes(39),
    "ipv4 19 octets": ipv4_packet(V4, V4_PEER, 17, b"")[:19],
    "ipv4 IHL 4": bytes([0x44]) + ipv4_packet(V4, V4_PEER, 17, bytes(8))[1:],
    "ipv4 options cut": ipv4_packet(V4, V4_PEER, 17, b"", options=bytes(8))[:24],
    **{
        f"icmp type {t}": ipv4_packet(V4, V4_PEER, 1, bytes([t, 0]) + bytes(34))
        for t in (3, 4, 5, 11, 12)
    },
    "icmp without a type": ipv4_packet(V4, V4_PEER, 1, b""),
    "non-first fragment": ipv4_packet(V4, V4_PEER, 17, bytes(100), offset=1),
    "last fragment": ipv4_packet(V4, V4_PEER, 17, bytes(100), offset=185),
    **{
        f"source {a}": ipv4_packet(IPv4Address(a), V4_PEER, 17, bytes(8))
        for a in ("0.0.0.0", "0.9.9.9", "127.0.0.1", "127.255.0.1", "224.0.0.1",
                  "239.1.2.3", "240.0.0.1", "255.255.255.255")
    },
    **{
        f"destination {a}": ipv4_packet(V4, IPv4Address(a), 17, bytes(8))
        for a in ("224.0.0.1", "239.255.255.250", "255.255.255.255")
    },
    "ipv6 39 octets": ipv6_packet(V6, V6_PEER, 17, b"")[:39],
    **{
        f"icmpv6 type {t}": ipv6_packet(V6, V6_PEER, 58, bytes([t, 0]) + bytes(30))
        for t in (1, 2, 3, 4, 100, 127)
    },
    "icmpv6 without a type": ipv6_packet(V6, V6_PEER, 58, b""),
    "ipv6 non-first fragment": ipv6_packet(V6, V6_PEER, 44, frag6(1, 1)),
    "ipv6 last fragment": ipv6_packet(V6, V6_PEER, 44, frag6(100, 0)),
    "ipv6 fragment header cut": ipv6_packet(V6, V6_PEER, 44, bytes(7)),
    **{
        f"ipv6 source {a}": ipv6_packet(IPv6Address(a), V6_PEER, 17, bytes(8))
        for a in ("::", "::1", "ff02::1", "ff05::1:3")
    },
}


def source_for(packet: bytes) -> IpAddress:
    return ip_address("2001:db8::1" if packet and packet[0] >> 4 == 6 else "198.18.0.1")


@pytest.mark.parametrize("name", sorted(ANSWERED))
def test_answered(name: str) -> None:
    packet = ANSWERED[name]
    source = source_for(packet)
    answer = native.icmp_too_big(packet, 1400, source.packed)
    assert answer is not None
    assert answer == icmp.too_big(packet, 1400, source)
    check_with_scapy(packet, 1400, source, answer)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(name: str) -> None:
    packet = REFUSED[name]
    source = source_for(packet)
    assert native.icmp_too_big(packet, 1400, source.packed) is None
    assert icmp.too_big(packet, 1400, source) is None
    assert icmp.refusal(packet) is not None


def test_quote_limits_and_mtu_clamp() -> None:
    big4 = ipv4_packet(V4, V4_PEER, 17, bytes(range(256)) * 8)
    answer = native.icmp_too_big(big4, 70000, IPv4Address("198.18.0.1").packed)
    assert answer is not None and len(answer) == 576 and answer[28:] == big4[:548]
    assert answer[26:28] == b"\xff\xff"  # an MTU over 16 bits is sent as 65535
    big6 = ipv6_packet(V6, V6_PEER, 17, bytes(range(256)) * 8)
    answer = native.icmp_too_big(big6, 70000, IPv6Address("2001:db8::1").packed)
    assert answer is not None and len(answer) == 1280 and answer[48:] == big6[:1232]
    assert answer[44:48] == (70000).to_bytes(4, "big")


def test_source_of_the_wrong_family_is_an_error() -> None:
    v4, v6 = ANSWERED["udp"], ANSWERED["ipv6 udp"]
    calls: list[Callable[[], bytes | None]] = [
        lambda: native.icmp_too_big(v4, 1400, IPv6Address("2001:db8::1").packed),
        lambda: native.icmp_too_big(v6, 1400, IPv4Address("198.18.0.1").packed),
        lambda: native.icmp_too_big(v4, 1400, b"\x01\x02\x03"),
        lambda: native.icmp_too_big(v4, 1 << 32, b"\x01\x02\x03\x04"),
        lambda: icmp.too_big(v4, 1400, IPv6Address("2001:db8::1")),
        lambda: icmp.too_big(v6, 1400, IPv4Address("198.18.0.1")),
        lambda: icmp.too_big(v4, -1, IPv4Address("198.18.0.1")),
    ]
    for call in calls:
        with pytest.raises(EncodeError):
            call()
