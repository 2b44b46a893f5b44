"""The C fast path (native/steps.c, through lispd.dataplane.fastpath) against
its pure-Python model (lispd.dataplane.reference): the same state built in
both, the same packets fed to both, the same verdicts and the same octets
out; the outer headers are also checked with scapy as an outside opinion.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, in6_chksum
from scapy.layers.vxlan import VXLAN
from scapy.utils import checksum as scapy_checksum

from lispd.dataplane import fastpath
from lispd.dataplane import reference as ref
from lispd.dataplane.tables import Fdb, FdbEntry, Fib, FibAction, FibEntry, FibKey, FibLocator
from lispd.mapcache import EidPrefix, MapEntry, choose_locator
from lispd.mapcache import Locator as MapLocator
from lispd.wire.inet import Ipv4Header, inet_checksum
from tests import strategies as s

IpAddress = IPv4Address | IPv6Address
IpNetwork = IPv4Network | IPv6Network

# The profile's example count, shared out: each example here runs several
# packets through two data planes.
EXAMPLES = max(settings().max_examples // 2, 20)

INSTANCES = (0, 1, 4095, 0xFFFFFF)
VNIS = (1, 42, 4096, 0xFFFFFF)
# EIDs gather near a few anchors so that prefixes and packets meet.
EID4 = (0x0A010000, 0xC0000200)  # 10.1.0.0, 192.0.2.0
EID6 = (0x20010DB8 << 96, (0x20010DB8 << 96) | (1 << 80))  # 2001:db8::, 2001:db8:1::
RLOC4 = tuple(IPv4Address(0xC6336400 + i) for i in range(1, 5))  # 198.51.100.x
RLOC6 = tuple(IPv6Address((0x20010DB8FFFF << 80) + i) for i in range(1, 5))
# Sources an ICMP error may not answer (RFC 1122 3.2.2, RFC 4443 2.4).
SPECIAL4 = tuple(IPv4Address(a) for a in ("0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255"))
SPECIAL6 = tuple(IPv6Address(a) for a in ("::", "::1", "ff02::1"))
# Underlay MTUs: common ones, loopback's (over 65535), ones at or below an
# encapsulation's overhead (36 or 56: nothing fits), and any in between.
MTUS = (576, 1280, 1500, 9000, 65535, 65536, 36, 56, 57)
ACTIONS = (FibAction.ENCAP,) * 5 + (FibAction.DROP, FibAction.NATIVE, FibAction.PUNT)

UNICAST_MACS = tuple(bytes([2, 0, 0, 0, 0, i]) for i in range(1, 6))
GROUP_MACS = tuple(
    bytes.fromhex(m) for m in ("ffffffffffff", "01005e000001", "333300000001", "030000000001")
)

u8 = st.integers(0, 0xFF)
# TOS / traffic class: any DSCP with each ECN codepoint alike (plain u8 would
# mostly give 0x00 and 0xFF).
tos_values = st.builds(
    lambda dscp, ecn: dscp << 2 | ecn, st.sampled_from(range(64)), st.sampled_from(range(4))
)


class Blob(bytes):
    """Bytes that print short: a failing example may hold 64 KiB packets."""

    def __repr__(self) -> str:
        if len(self) <= 96:
            return bytes.__repr__(self)
        return f"<{len(self)} octets {self[:48].hex()}...>"


def big_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# --------------------------------------------------------------------------
# Addresses and prefixes


@st.composite
def eids(draw: st.DrawFn, version: int, near: Sequence[IpNetwork] = ()) -> IpAddress:
    """Inside one of `near` (when given, mostly), else near an anchor."""
    bits = 32 if version == 4 else 128
    candidates = [n for n in near if n.version == version]
    if candidates and draw(st.integers(0, 3)) != 0:
        network = draw(st.sampled_from(candidates))
        host = draw(st.integers(0, (1 << (bits - network.prefixlen)) - 1))
        value = int(network.network_address) | host
    else:
        anchor = draw(st.sampled_from(EID4 if version == 4 else EID6))
        low = draw(st.sampled_from((0, 4, 8, 16, bits)))
        value = anchor ^ draw(st.integers(0, (1 << low) - 1))
    return IPv4Address(value) if version == 4 else IPv6Address(value)


@st.composite
def networks(draw: st.DrawFn) -> IpNetwork:
    version = draw(st.sampled_from((4, 6)))
    address = draw(eids(version))
    lengths = (0, 8, 16, 24, 28, 32) if version == 4 else (0, 32, 48, 64, 120, 128)
    length = draw(st.one_of(st.sampled_from(lengths), st.integers(0, address.max_prefixlen)))
    return ip_network((address, length), strict=False)


rlocs: st.SearchStrategy[IpAddress] = st.one_of(st.sampled_from(RLOC4), st.sampled_from(RLOC6))
weights = st.one_of(st.just(0), st.integers(0, 255), s.u32)


@st.composite
def mapcache_entries(draw: st.DrawFn) -> FibEntry:
    action = draw(st.sampled_from(ACTIONS))
    # An EID that moved away: the ETR sends its packets on (or, for any
    # action but ENCAP, still drops them).
    reencap = draw(st.integers(0, 2)) == 0
    if action is not FibAction.ENCAP:
        return FibEntry(action, reencap=reencap)
    locators = draw(st.lists(st.builds(FibLocator, rlocs, weights), min_size=1, max_size=8))
    if draw(st.integers(0, 4)) == 0:  # the h % n rule
        locators = [FibLocator(loc.address, 0) for loc in locators]
    return FibEntry(action, tuple(locators), reencap=reencap)


# --------------------------------------------------------------------------
# The LISP state: underlay, TUNs, map-cache, database


@dataclass(frozen=True)
class LispState:
    rloc4: IPv4Address | None
    rloc6: IPv6Address | None
    mtu: int
    tuns: tuple[int, ...]  # instance-id by TUN index
    mapcache: tuple[tuple[int, IpNetwork, FibEntry], ...]
    database: tuple[tuple[int, IpNetwork, FibEntry], ...]
    train_ports: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # IPv4, IPv6 senders
    served_itrs: tuple[IpNetwork, ...] = ()  # the PETR's ITRs

    def networks(self, table: str, instance_id: int | None = None) -> list[IpNetwork]:
        """The prefixes of a table, of one instance-id when given."""
        rows = self.mapcache if table == "mapcache" else self.database
        return [net for iid, net, _ in rows if instance_id in (None, iid)]


# Prefixes around the RLOCs of other xTRs, each as long as anything from a
# default route to one address.
served_itrs: st.SearchStrategy[IpNetwork] = st.builds(
    lambda address, length: ip_network(
        (address, length % (address.max_prefixlen + 1)), strict=False
    ),
    rlocs,
    st.integers(0, 128),
)

# The source ports of train senders (the offload path), or none.
train_ports = st.one_of(
    st.just(()),
    st.lists(st.integers(49152, 65535), min_size=1, max_size=fastpath.GSO_SENDERS).map(tuple),
)


def set_train_ports(c: fastpath.FastPath, model: ref.ReferenceDataplane,
                    ports: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    """The same senders on both (no fd: the steps only take their ports)."""
    for version, of_family in zip((4, 6), ports, strict=True):
        c.set_train_senders(version, [(-1, port) for port in of_family])
        model.set_train_ports(version, of_family)


@st.composite
def lisp_states(draw: st.DrawFn) -> LispState:
    tuns = tuple(draw(st.lists(st.sampled_from(INSTANCES), min_size=1, max_size=3, unique=True)))
    iids = st.sampled_from(tuns * 3 + INSTANCES)  # mostly instances with a TUN
    mapcache = draw(st.lists(st.tuples(iids, networks(), mapcache_entries()), max_size=8))
    local = st.builds(
        FibEntry,
        st.sampled_from((FibAction.LOCAL,) * 4 + (FibAction.DROP,)),
        st.just(()),
        s.u32,
    )
    database = draw(st.lists(st.tuples(iids, networks(), local), min_size=1, max_size=4))
    return LispState(
        rloc4=draw(st.sampled_from((None, *RLOC4))),
        rloc6=draw(st.sampled_from((None, *RLOC6))),
        mtu=draw(st.one_of(st.sampled_from(MTUS), st.integers(576, 9000))),
        tuns=tuns,
        mapcache=tuple(mapcache),
        database=tuple(database),
        train_ports=draw(st.tuples(train_ports, train_ports)),
        served_itrs=tuple(draw(st.lists(served_itrs, max_size=3))),
    )


def fib_entry(entry: FibEntry) -> FibEntry:
    return FibEntry(
        FibAction(int(entry.action)),
        tuple(FibLocator(loc.address, loc.weight) for loc in entry.locators),
        entry.lsbs,
        entry.reencap,
    )


@dataclass
class LispTwins:
    c: fastpath.FastPath
    model: ref.ReferenceDataplane
    mapcache: Fib
    database: Fib


def build_lisp(state: LispState) -> LispTwins:
    mapcache, database = Fib(64), Fib(64)
    c = fastpath.FastPath(mapcache, database, Fdb(4))
    model = ref.ReferenceDataplane()
    for fib, naive, rows in (
        (mapcache, model.mapcache, state.mapcache),
        (database, model.database, state.database),
    ):
        for iid, network, entry in rows:
            fib.set(FibKey(iid, network), fib_entry(entry))
            naive.set(iid, network, entry)
    c.set_underlay(state.rloc4, state.rloc6, state.mtu)
    model.set_underlay(state.rloc4, state.rloc6, state.mtu)
    set_train_ports(c, model, state.train_ports)
    c.set_served_itrs(state.served_itrs)
    model.set_served_itrs(state.served_itrs)
    for iid in state.tuns:
        assert c.add_tun(-1, iid) == model.add_tun(iid)
    return LispTwins(c, model, mapcache, database)


# --------------------------------------------------------------------------
# Inner packets


PROTOCOLS = (6, 17, 132, 136, 1, 58, 0, 47, 44)
ICMP_TYPES = (0, 3, 8, 11, 2, 128, 129)


def ipv4_packet(
    src: IPv4Address, dst: IPv4Address, protocol: int, payload: bytes, *, ttl: int, tos: int,
    df: bool, more: bool, offset: int, options: bytes,
) -> bytes:
    header = Ipv4Header(
        src, dst, 20 + len(options) + len(payload), protocol, ttl, tos, 0x1234,
        (0b010 if df else 0) | (0b001 if more else 0), offset, 0, options,
    )
    encoded = header.encode()
    check = inet_checksum(encoded)
    return encoded[:10] + struct.pack("!H", check) + encoded[12:] + payload


def ipv6_packet(
    src: IPv6Address, dst: IPv6Address, protocol: int, payload: bytes, *, ttl: int, tos: int
) -> bytes:
    first = (6 << 28) | (tos << 20) | 0x12345
    header = struct.pack("!IHBB", first, len(payload), protocol, ttl)
    return header + src.packed + dst.packed + payload


@st.composite
def sizes(draw: st.DrawFn, mtu: int) -> int:
    """A total length: small, or near where the outer packet stops fitting."""
    if draw(st.integers(0, 3)) < 2:
        return draw(st.integers(0, 160))
    limit = min(mtu, 65535)
    overhead = draw(st.sampled_from((36, 56)))  # outer IPv4 / IPv6 + UDP + LISP
    return limit - overhead + draw(st.integers(-2, 2))


MALFORMATIONS = ("none",) * 24 + (
    "cut", "trailing", "version", "ihl", "long", "checksum", "tiny"
)


@st.composite
def ip_packets(
    draw: st.DrawFn,
    mtu: int,
    dst_near: Sequence[IpNetwork],
    src_near: Sequence[IpNetwork],
    clean: bool = False,
) -> bytes:
    version = draw(st.sampled_from((4, 6)))
    special = SPECIAL4 if version == 4 else SPECIAL6
    src = draw(
        st.one_of(eids(version, src_near), eids(version, src_near), st.sampled_from(special))
    )
    dst = draw(eids(version, dst_near))
    protocol = draw(st.sampled_from(PROTOCOLS))
    ttl = draw(st.one_of(st.sampled_from((0, 1, 64, 255)), u8))
    tos = draw(tos_values)
    options = b""
    if version == 4 and draw(st.integers(0, 3)) == 0:
        options = bytes([1]) * draw(st.sampled_from((4, 8, 40)))
    header_length = 20 + len(options) if version == 4 else 40
    total = max(draw(sizes(mtu)), header_length)
    total = min(total, 65535 if version == 4 else 40 + 65535)
    head = draw(st.binary(max_size=8))
    if protocol in (1, 58):
        head = bytes([draw(st.sampled_from(ICMP_TYPES))]) + head[1:]
    payload = (head + big_bytes(total, draw(s.u32)))[: total - header_length]
    if version == 4:
        assert isinstance(src, IPv4Address) and isinstance(dst, IPv4Address)
        fragment = draw(st.integers(0, 7)) == 0
        packet = ipv4_packet(
            src, dst, protocol, payload, ttl=ttl, tos=tos, df=draw(st.booleans()),
            more=fragment and draw(st.booleans()),
            offset=draw(st.integers(0, 0x1FFF)) if fragment else 0, options=options,
        )
    else:
        assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
        packet = ipv6_packet(src, dst, protocol, payload, ttl=ttl, tos=tos)
    return Blob(packet if clean else draw(malformed(packet)))


@st.composite
def malformed(draw: st.DrawFn, packet: bytes) -> bytes:
    how = draw(st.sampled_from(MALFORMATIONS))
    event(f"inner packet: {how}")
    data = bytearray(packet)
    if how == "cut":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if how == "trailing":
        return bytes(data) + draw(st.binary(min_size=1, max_size=16))
    if how == "version":
        data[0] = (draw(st.sampled_from((0, 1, 5, 7, 15))) << 4) | (data[0] & 0x0F)
    elif how == "ihl" and data[0] >> 4 == 4:
        data[0] = 0x40 | draw(st.integers(0, 4))
    elif how == "long":
        field = 2 if data[0] >> 4 == 4 else 4
        length = struct.unpack_from("!H", data, field)[0]
        struct.pack_into("!H", data, field, min(length + draw(st.integers(1, 64)), 0xFFFF))
    elif how == "checksum" and data[0] >> 4 == 4:
        data[10] ^= 1 << draw(st.integers(0, 7))
    elif how == "tiny":
        return draw(st.binary(max_size=39))
    return bytes(data)


# --------------------------------------------------------------------------
# Comparison and outside checks


def same(got: fastpath.Verdict, want: ref.Verdict) -> None:
    """The C verdict equals the model's in every field its kind defines."""
    where = f"C {got.kind.name}/{got.reason}, model {want.kind.name}/{want.reason}"
    assert int(got.kind) == int(want.kind), where
    if want.kind is ref.VerdictKind.DROP:
        assert got.reason == want.reason, where
        return
    if want.kind is ref.VerdictKind.MISS:
        assert (got.instance_id, got.address) == (want.instance_id, want.address), where
        assert got.data == want.data, f"{where}: the missed packet differs"
        return
    if got.data != want.data:
        first = next(
            (i for i, (a, b) in enumerate(zip(got.data, want.data, strict=False)) if a != b),
            min(len(got.data), len(want.data)),
        )
        window = slice(max(first - 8, 0), first + 24)
        raise AssertionError(
            f"{where}: data differs from octet {first} ({len(got.data)} vs {len(want.data)})"
            f"\n  C     {got.data[window].hex(' ')}\n  model {want.data[window].hex(' ')}"
        )
    if want.kind is ref.VerdictKind.SEND:
        assert got.address == want.address, where
    else:
        assert got.index == want.index, where


def check_outer(outer: bytes, port: int) -> None:
    """An outer packet as scapy reads it: checksums right, lengths right."""
    if outer[0] >> 4 == 4:
        assert scapy_checksum(outer[:20]) == 0
        parsed: Any = IP(outer)
        assert parsed.len == len(outer)
        assert parsed[UDP].len == len(outer) - 20
        assert parsed[UDP].chksum == 0
    else:
        parsed = IPv6(outer)
        assert parsed.plen == len(outer) - 40
        assert parsed[UDP].len == len(outer) - 40
        pseudo_checksum: Callable[[int, Any, bytes], int] = in6_chksum
        assert pseudo_checksum(17, parsed, outer[40:]) == 0
        assert parsed[UDP].chksum != 0
    assert parsed[UDP].dport == port
    assert 49152 <= parsed[UDP].sport <= 65535


def some_index(n: int) -> st.SearchStrategy[int]:
    """A device index: mostly one of the n, now and then the first unknown."""
    return st.sampled_from([*range(n)] * 4 + [n])


def record(step: str, verdict: ref.Verdict) -> None:
    event(f"{step}: {verdict.kind.name}" + (f" {verdict.reason}" if verdict.reason else ""))


# --------------------------------------------------------------------------
# ITR


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_itr_twin(data: st.DataObject) -> None:
    state = data.draw(lisp_states(), "state")
    twins = build_lisp(state)
    for _ in range(data.draw(st.integers(1, 6), "packets")):
        tun = data.draw(some_index(len(state.tuns)), "TUN")
        # Mostly to and from EIDs the tables of the TUN's instance know.
        iid = state.tuns[tun] if tun < len(state.tuns) else None
        near = (state.networks("mapcache", iid), state.networks("database", iid))
        packet = data.draw(ip_packets(state.mtu, *near), "packet")
        nonce = data.draw(s.u32, "nonce")
        want = twins.model.itr_process(tun, packet, nonce)
        got = twins.c.itr_process(tun, packet, nonce)
        record("itr", want)
        same(got, want)
        if want.kind is ref.VerdictKind.SEND:
            check_outer(got.data, 4341)
            lisp = got.data[(20 if got.data[0] >> 4 == 4 else 40) + 8]
            event(f"itr: outer IPv{got.data[0] >> 4}, LISP flags {lisp:#04x}")
        used = {(key.instance_id, key.prefix) for key in twins.mapcache.drain_used()}
        assert used == twins.model.mapcache.drain_used()


@pytest.mark.parametrize("mtu", [1500, 65536])
@pytest.mark.parametrize("outer", [4, 6])
@pytest.mark.parametrize("inner", [4, 6])
@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_itr_mtu_boundary(mtu: int, outer: int, inner: int, delta: int) -> None:
    """A DF packet exactly at, one under and one over the largest that fits."""
    rloc: IpAddress = RLOC4[0] if outer == 4 else RLOC6[0]
    src: IpAddress = IPv4Address("10.1.0.1") if inner == 4 else IPv6Address("2001:db8::1")
    dst: IpAddress = IPv4Address("10.1.0.2") if inner == 4 else IPv6Address("2001:db8::2")
    overhead = (20 if outer == 4 else 40) + 16
    largest_outer = min(mtu, 65535 if outer == 4 else 65575)
    total = min(largest_outer - overhead + delta, 65535 if inner == 4 else 65575)
    state = LispState(
        RLOC4[1], RLOC6[1], mtu, (0,),
        ((0, ip_network((dst, 0), strict=False), FibEntry(FibAction.ENCAP,
                                                          (FibLocator(rloc, 1),))),),
        (),
    )
    twins = build_lisp(state)
    header = 20 if inner == 4 else 40
    payload = bytes(total - header)
    if isinstance(src, IPv4Address) and isinstance(dst, IPv4Address):
        packet = ipv4_packet(src, dst, 17, payload, ttl=64, tos=0, df=True, more=False,
                             offset=0, options=b"")
    else:
        assert isinstance(src, IPv6Address) and isinstance(dst, IPv6Address)
        packet = ipv6_packet(src, dst, 17, payload, ttl=64, tos=0)
    want = twins.model.itr_process(0, packet, 7)
    assert want.kind is (ref.VerdictKind.SEND if delta <= 0 else ref.VerdictKind.WRITE)
    same(twins.c.itr_process(0, packet, 7), want)


# --------------------------------------------------------------------------
# ETR


PAYLOAD_KINDS = ("good",) * 4 + ("moved",) * 2 + ("any",) * 3 + ("random", "cut")


@st.composite
def lisp_payloads(
    draw: st.DrawFn, state: LispState, kinds: Sequence[str] = PAYLOAD_KINDS
) -> bytes:
    how = draw(st.sampled_from(kinds))
    if how == "random":
        return draw(st.binary(max_size=64))
    if how in ("good", "moved"):  # sane flags, a served instance
        iid = draw(st.sampled_from(state.tuns))
        flags = draw(st.sampled_from((0x80, 0xC0, 0xA0, 0x40, 0x00, 0x10)))
        if iid or draw(st.booleans()):
            flags |= 0x08
        second = (iid << 8) | draw(u8) if flags & 0x08 else draw(s.u32)
        if how == "good":  # to a local EID
            near = [n for i, n, e in state.database if i == iid and e.action is FibAction.LOCAL]
        else:  # to an EID the map-cache knows (maybe moved away), from a local one
            near = [n for i, n, e in state.mapcache
                    if i == iid and e.reencap and e.action is FibAction.ENCAP]
            near = near or state.networks("mapcache", iid)
        src_near = state.networks("database", iid) if how == "moved" else ()
        # Up to the largest underlay MTU drawn, so re-encapsulation meets
        # the MTU check (and an inner packet is never over 64 KiB - 8).
        inner = draw(ip_packets(min(state.mtu, 9000), near, src_near,
                                clean=draw(st.integers(0, 3)) > 0))
        return Blob(struct.pack("!II", (flags << 24) | draw(s.u24), second) + inner)
    flags = 0
    for bit, chance in ((0x80, 2), (0x40, 2), (0x20, 2), (0x10, 6), (0x08, 1), (0x04, 6)):
        if draw(st.integers(0, chance)) == 0:
            flags |= bit
    if draw(st.integers(0, 7)) == 0:
        flags |= draw(st.integers(1, 3))  # K bits
    iid = draw(st.one_of(st.sampled_from(state.tuns), st.sampled_from(INSTANCES), s.u24))
    if not flags & 0x08 and draw(st.integers(0, 3)) == 0:
        flags |= 0x08
    second = (iid << 8) | draw(u8) if flags & 0x08 else draw(s.u32)
    header = struct.pack("!II", (flags << 24) | draw(s.u24), second)
    inner = draw(ip_packets(1500, state.networks("database"), ()))
    payload = header + inner
    if how == "cut":
        return Blob(payload[: draw(st.integers(0, len(payload)))])
    return Blob(payload)


# Outer sources: the RLOCs of other xTRs, and now and then a random one.
itr_sources: st.SearchStrategy[IpAddress] = st.one_of(
    rlocs, rlocs, s.ipv4, s.ipv6
)


@st.composite
def moved_states(draw: st.DrawFn) -> LispState:
    """A state where every TUN's instance has EIDs that moved away: an ENCAP
    map-cache entry with reencap, set last so it wins over any drawn before."""
    state = draw(lisp_states())
    moved = tuple(
        (iid, draw(networks()), replace(draw(mapcache_entries().filter(
            lambda e: e.action is FibAction.ENCAP)), reencap=True))
        for iid in state.tuns
    )
    return replace(state, mapcache=state.mapcache + moved)


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_etr_twin(data: st.DataObject) -> None:
    """Any state, any payload."""
    check_etr(data, data.draw(lisp_states(), "state"), PAYLOAD_KINDS, OUTER_TTLS)


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_etr_reencap_twin(data: st.DataObject) -> None:
    """Mostly packets for EIDs that moved away: re-encapsulation and the
    reasons it has to drop."""
    # Mostly a TTL that leaves a hop to take.
    ttls = st.one_of(st.sampled_from((2, 64, 255)), st.integers(2, 255), OUTER_TTLS)
    check_etr(data, data.draw(moved_states(), "state"), ("moved",) * 6 + ("good", "any"), ttls)


OUTER_TTLS = st.one_of(st.sampled_from((0, 1, 2, 64, 255)), u8)


def check_etr(
    data: st.DataObject,
    state: LispState,
    kinds: Sequence[str],
    outer_ttls: st.SearchStrategy[int],
) -> None:
    twins = build_lisp(state)
    cases = st.lists(
        st.tuples(
            lisp_payloads(state, kinds),
            outer_ttls,
            tos_values,
            st.one_of(st.none(), itr_sources),
            st.integers(0, 3000),
            s.u32,
        ),
        min_size=1,
        max_size=6,
    )
    now = 1000
    for payload, outer_ttl, outer_tos, source, wait, nonce in data.draw(cases, "payloads"):
        now += wait
        want = twins.model.etr_process(payload, outer_ttl, outer_tos, source=source,
                                       now_ms=now, nonce=nonce)
        got = twins.c.etr_process(payload, outer_ttl, outer_tos, source=source, now_ms=now,
                                  nonce=nonce)
        record("etr", want)
        if want.kind is ref.VerdictKind.WRITE or want.reason == ref.Drop.ECN:
            first, second = payload[8], payload[9]
            inner_tos = second if first >> 4 == 4 else (first << 4 | second >> 4) & 0xFF
            pair = f"{ECN_NAMES[inner_tos & 3]} + outer {ECN_NAMES[outer_tos & 3]}"
            event(f"etr: ECN inner {pair}")
        same(got, want)
        if want.kind is ref.VerdictKind.WRITE and got.data[0] >> 4 == 4:
            header_length = (got.data[0] & 0x0F) * 4
            assert scapy_checksum(got.data[:header_length]) == 0
        if want.kind is ref.VerdictKind.SEND:
            check_reencapsulated(got.data, payload, outer_ttl, nonce)
        used = {(key.instance_id, key.prefix) for key in twins.mapcache.drain_used()}
        assert used == twins.model.mapcache.drain_used()
        assert twins.c.recent_itrs(0) == twins.model.recent_itrs(0)
        assert twins.c.recent_itrs(now) == twins.model.recent_itrs(now)


def check_reencapsulated(outer: bytes, payload: bytes, outer_ttl: int, nonce: int) -> None:
    """A re-encapsulated packet, read from outside: valid outer headers, the
    received instance-id, the nonce given, the inner packet one hop on."""
    check_outer(outer, 4341)
    lisp_at = (20 if outer[0] >> 4 == 4 else 40) + 8
    flags, nonce_out, word = struct.unpack_from("!B3sI", outer, lisp_at)
    assert flags & 0x80 and int.from_bytes(nonce_out) == nonce & 0xFFFFFF
    received_flags, _, received_word = struct.unpack_from("!B3sI", payload, 0)
    iid = received_word >> 8 if received_flags & 0x08 else 0
    # The instance it came in (the I bit only for one that is not 0, as an ITR).
    assert (word >> 8 if flags & 0x08 else 0) == iid
    assert bool(flags & 0x08) == (iid != 0)
    inner, sent = outer[lisp_at + 8 :], payload[8:]
    version = inner[0] >> 4
    ttl_at = 8 if version == 4 else 7
    assert inner[ttl_at] == min(sent[ttl_at], outer_ttl) - 1
    outer_ttl_sent = outer[8] if outer[0] >> 4 == 4 else outer[7]
    assert outer_ttl_sent == inner[ttl_at]  # RFC 9300 5.3: copied outwards
    if version == 4:
        assert scapy_checksum(inner[: (inner[0] & 0x0F) * 4]) == 0
    event(f"etr: re-encapsulated IPv{version} in IPv{outer[0] >> 4}")


ECN_NAMES = {ref.NOT_ECT: "not-ect", ref.ECT_1: "ect1", ref.ECT_0: "ect0", ref.CE: "ce"}
# RFC 6040 section 4.2, Figure 4, copied out row by row (inner) and column
# by column (outer: Not-ECT, ECT(0), ECT(1), CE); None is "drop".
RFC6040_FIGURE_4: dict[int, tuple[int | None, ...]] = {
    ref.NOT_ECT: (ref.NOT_ECT, ref.NOT_ECT, ref.NOT_ECT, None),
    ref.ECT_0: (ref.ECT_0, ref.ECT_0, ref.ECT_1, ref.CE),
    ref.ECT_1: (ref.ECT_1, ref.ECT_1, ref.ECT_1, ref.CE),
    ref.CE: (ref.CE, ref.CE, ref.CE, ref.CE),
}
OUTER_COLUMNS = (ref.NOT_ECT, ref.ECT_0, ref.ECT_1, ref.CE)


@pytest.mark.parametrize("inner", OUTER_COLUMNS, ids=lambda v: f"inner-{ECN_NAMES[v]}")
@pytest.mark.parametrize("outer", OUTER_COLUMNS, ids=lambda v: f"outer-{ECN_NAMES[v]}")
@pytest.mark.parametrize("version", [4, 6])
def test_etr_ecn_rfc6040(inner: int, outer: int, version: int) -> None:
    """Every cell of RFC 6040's decapsulation table, model and C."""
    expected = RFC6040_FIGURE_4[inner][OUTER_COLUMNS.index(outer)]
    assert ref.decapsulated_ecn(inner, outer) == expected
    dst: IpAddress = IPv4Address("10.1.0.2") if version == 4 else IPv6Address("2001:db8::2")
    state = LispState(None, None, 1500, (0,), (),
                      ((0, ip_network((dst, 0), strict=False), FibEntry(FibAction.LOCAL)),))
    twins = build_lisp(state)
    tos = 0xB8 | inner  # DSCP EF, which the ETR leaves alone
    if isinstance(dst, IPv4Address):
        packet = ipv4_packet(IPv4Address("10.9.0.1"), dst, 17, bytes(12), ttl=64, tos=tos,
                             df=True, more=False, offset=0, options=b"")
    else:
        packet = ipv6_packet(IPv6Address("2001:db8:9::1"), dst, 17, bytes(12), ttl=64, tos=tos)
    payload = bytes([0x80, 0, 0, 1, 0, 0, 0, 0]) + packet
    want = twins.model.etr_process(payload, 64, 0x28 | outer)
    if expected is None:
        assert want.reason == ref.Drop.ECN
    else:
        tc = want.data[1] if version == 4 else (want.data[0] << 4 | want.data[1] >> 4) & 0xFF
        assert tc == 0xB8 | expected
    same(twins.c.etr_process(payload, 64, 0x28 | outer), want)


# --------------------------------------------------------------------------
# VXLAN


@dataclass(frozen=True)
class VxlanState:
    segments: tuple[tuple[int, IpAddress, bool, tuple[IpAddress, ...]], ...]
    fdb: tuple[tuple[int, bytes, IpAddress, bool, int], ...]
    fdb_room: int
    train_ports: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())


@st.composite
def vxlan_states(draw: st.DrawFn) -> VxlanState:
    vnis = draw(st.lists(st.sampled_from(VNIS), min_size=1, max_size=3, unique=True))
    segments = []
    for vni in vnis:
        local = draw(rlocs)
        pool = RLOC4 if local.version == 4 else RLOC6
        peers: st.SearchStrategy[IpAddress] = st.sampled_from(pool)
        flood = tuple(draw(st.lists(peers, max_size=3)))
        segments.append((vni, local, draw(st.booleans()), flood))
    vni_choice = st.one_of(st.sampled_from(vnis), st.sampled_from(VNIS))
    rows = draw(
        st.lists(
            st.tuples(vni_choice, st.sampled_from(UNICAST_MACS), rlocs, st.booleans(), s.u32),
            max_size=6,
        )
    )
    fdb = {(row[0], row[1]): row for row in rows}  # the last one for a (VNI, MAC)
    return VxlanState(tuple(segments), tuple(fdb.values()), draw(st.integers(0, 3)),
                      draw(st.tuples(train_ports, train_ports)))


@dataclass
class VxlanTwins:
    c: fastpath.FastPath
    model: ref.ReferenceDataplane
    fdb: Fdb


def build_vxlan(state: VxlanState) -> VxlanTwins:
    fdb = Fdb(len(state.fdb) + state.fdb_room)
    c = fastpath.FastPath(Fib(1), Fib(1), fdb)
    model = ref.ReferenceDataplane(fdb=ref.NaiveFdb(fdb.limit))
    set_train_ports(c, model, state.train_ports)
    for vni, local, learning, flood in state.segments:
        index = c.add_segment(-1, vni, local, learning)
        assert index == model.add_segment(vni, local, learning)
        c.set_flood(index, flood)
        model.set_flood(index, flood)
    for vni, mac, vtep, static, seen in state.fdb:
        fdb.set(FdbEntry(vni, mac, vtep, static, seen))
        model.fdb.set(vni, mac, vtep, static, seen)
    return VxlanTwins(c, model, fdb)


ETHERTYPES = (0x0800, 0x86DD, 0x0806, 0x8100, 0x88CC)
# Frame lengths where the outer length fields run out, IPv4 and IPv6.
BIG_FRAMES = (65479, 65480, 65499, 65500, 65519, 65520)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(("ip",) * 4 + ("other", "short", "big")))
    macs = st.sampled_from(UNICAST_MACS + GROUP_MACS)
    head = draw(macs) + draw(macs)
    if how == "short":
        return (head + bytes(2))[: draw(st.integers(0, 13))]
    if how == "big":
        n = draw(st.sampled_from(BIG_FRAMES))
        return Blob((head + b"\x88\xcc" + big_bytes(n, draw(s.u32)))[:n])
    ethertype = draw(st.sampled_from(ETHERTYPES))
    if how == "other":
        return head + struct.pack("!H", ethertype) + draw(st.binary(max_size=64))
    packet = draw(ip_packets(1500, (), ()))
    ip_type = 0x0800 if packet[:1] and packet[0] >> 4 == 4 else 0x86DD
    if ethertype == 0x8100:
        return head + struct.pack("!HHH", 0x8100, draw(s.u16), ip_type) + packet
    if ethertype not in (0x0800, 0x86DD):
        ethertype = ip_type
    return head + struct.pack("!H", ethertype) + packet


@st.composite
def vxlan_payloads(draw: st.DrawFn, vnis: Sequence[int]) -> bytes:
    how = draw(st.sampled_from(("valid",) * 5 + ("random", "cut")))
    if how == "random":
        return draw(st.binary(max_size=40))
    flags = 0x08 if draw(st.integers(0, 5)) else 0
    flags |= draw(u8) & 0xF7 if draw(st.integers(0, 3)) == 0 else 0
    vni = draw(st.one_of(st.sampled_from(vnis), st.sampled_from(VNIS), s.u24))
    header = struct.pack("!II", (flags << 24) | draw(s.u24), (vni << 8) | draw(u8))
    payload = header + draw(frames())
    if how == "cut":
        return Blob(payload[: draw(st.integers(0, min(len(payload), 40)))])
    return Blob(payload)


FdbView = dict[tuple[int, bytes], tuple[IpAddress, bool, int]]


def fdb_contents(fdb: Fdb) -> FdbView:
    return {(e.vni, e.mac): (e.vtep, e.static, e.last_seen_ms) for e in fdb.dump()}


def model_fdb(model: ref.ReferenceDataplane) -> FdbView:
    return {key: (r.vtep, r.static, r.last_seen_ms) for key, r in model.fdb.entries.items()}


@dataclass(frozen=True)
class VxlanOp:
    """tx: a frame from segment's TAP; encap: a frame to the peer at
    address; rx: a UDP payload from the VTEP at address."""

    step: str
    segment: int
    data: bytes
    address: IpAddress
    wait_ms: int


@settings(max_examples=EXAMPLES)
@given(st.data())
def test_vxlan_twin(data: st.DataObject) -> None:
    state = data.draw(vxlan_states(), "state")
    twins = build_vxlan(state)
    vnis = [vni for vni, *_ in state.segments]
    segment = some_index(len(state.segments))
    wait = st.integers(0, 5000)
    ops = st.lists(
        st.one_of(
            st.builds(VxlanOp, st.just("tx"), segment, frames(), rlocs, wait),
            st.builds(VxlanOp, st.just("encap"), segment, frames(), rlocs, wait),
            st.builds(VxlanOp, st.just("rx"), st.just(0), vxlan_payloads(vnis), rlocs, wait),
            st.builds(VxlanOp, st.just("rx"), st.just(0), vxlan_payloads(vnis), rlocs, wait),
        ),
        min_size=1,
        max_size=10,
    )
    now = 1000
    for op in data.draw(ops, "operations"):
        now += op.wait_ms
        if op.step == "tx":
            want = twins.model.vxlan_tx_process(op.segment, op.data)
            got = twins.c.vxlan_tx_process(op.segment, op.data)
        elif op.step == "encap":
            want = twins.model.vxlan_encap(op.segment, op.data, op.address)
            got = twins.c.vxlan_encap(op.segment, op.data, op.address)
        else:
            want = twins.model.vxlan_rx_process(op.data, op.address, now)
            got = twins.c.vxlan_rx_process(op.data, op.address, now)
        record(f"vxlan {op.step}", want)
        same(got, want)
        if want.kind is ref.VerdictKind.SEND:
            check_outer(got.data, 4789)
            parsed: Any = (IP if got.data[0] >> 4 == 4 else IPv6)(got.data)
            assert parsed[VXLAN].flags == 0x08
            assert parsed[VXLAN].vni in vnis
        assert fdb_contents(twins.fdb) == model_fdb(twins.model)
    if len(twins.fdb) == twins.fdb.limit:
        event("vxlan: FDB full at the end")


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("delta", [0, 1])
def test_vxlan_encap_length_boundary(version: int, delta: int) -> None:
    """The largest frame whose outer packet the 16-bit length fields still
    describe (IPv4 total length; IPv6 payload length), and one more."""
    local: IpAddress = RLOC4[0] if version == 4 else RLOC6[0]
    peer: IpAddress = RLOC4[1] if version == 4 else RLOC6[1]
    largest = 65535 - 36 if version == 4 else 65535 - 16
    twins = build_vxlan(VxlanState(((42, local, False, ()),), (), 0))
    frame = UNICAST_MACS[0] + UNICAST_MACS[1] + b"\x88\xcc" + bytes(largest + delta - 14)
    want = twins.model.vxlan_encap(0, frame, peer)
    assert want.kind is (ref.VerdictKind.SEND if delta == 0 else ref.VerdictKind.DROP)
    same(twins.c.vxlan_encap(0, frame, peer), want)


# --------------------------------------------------------------------------
# The locator pick: the header's rule is lispd.mapcache.choose_locator's


@given(st.lists(st.integers(0, 255), min_size=1, max_size=8), s.u32)
def test_pick_locator_is_choose_locator(weights: list[int], hash_value: int) -> None:
    locators = tuple(FibLocator(IPv4Address(0xC6336400 + i), w) for i, w in enumerate(weights))
    picked = ref.pick_locator(locators, hash_value)
    entry = MapEntry(
        EidPrefix.of(0, IPv4Address("10.1.0.0"), 16),
        tuple(MapLocator(loc.address, 1, loc.weight) for loc in locators),
    )
    chosen = choose_locator(entry, hash_value)
    assert chosen is not None
    assert picked.address == chosen.address
