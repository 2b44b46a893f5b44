"""The per-packet steps of the fast path in plain Python: the model the C is
held to (native/steps.c; tests/property/test_fastpath_twin.py compares them).

This is written from the contract, not from the C: native/lispd_native.h
("Forwarding tables", "The batched fast path") and the RFCs it cites. Every
header is built with lispd.wire, the flow hash is lispd.wire.flow, the
ICMP answer lispd.wire.icmp, and the tables are naive: a list scanned for
the longest prefix, a dict for the FDB. Speed is no concern here, only
being obviously right.

What each step does, in the order its checks are made:

ITR (an IP packet read from the TUN of an instance-id)
    unknown TUN                      -> DROP unknown_instance
    not a whole IPv4/IPv6 packet     -> DROP truncated / bad_inner
    (the IPv4 checksum is not checked: the local kernel wrote it)
    no map-cache entry, or one that
    says send-map-request            -> MISS (instance-id, destination EID;
                                        the packet goes along as data)
    negative entry: native-forward   -> DROP native_forward
    negative entry: drop             -> DROP negative
    locator by weight on the flow hash (RFC 9300 section 12; the rule
    of struct lispd_locator, lispd.mapcache.choose_locator)
    no local RLOC of its family      -> DROP no_rloc
    the outer packet would exceed the underlay MTU, or its own 16-bit
    length fields:
        DF set, or IPv6              -> WRITE an ICMP too-big answer to the
                                        TUN with S = L - H (RFC 9300 7.1)
        no answer may be sent, an
        MTU not above H, or IPv4
        without DF                   -> DROP too_big
    else                             -> SEND outer IP + UDP (source port
        from the flow hash, destination 4341) + LISP (N + nonce; I +
        instance-id when it is not 0; L + the source EID's LSBs when the
        source is a local EID) + the inner packet. The outer TTL and
        TOS/traffic class are the inner ones (RFC 9300 5.3; RFC 6040
        normal mode copies the ECN field as it is).

ETR (the UDP payload of a packet to port 4341)
    shorter than the LISP header     -> DROP truncated
    N and V both set, or K bits      -> DROP bad_flags
    no TUN for the instance-id (I bit, else 0) -> DROP unknown_instance
    not a whole, valid IPv4/IPv6 packet (IPv4 checksum included)
                                     -> DROP truncated / bad_inner
    destination not a local EID of that instance:
        no map-cache entry for it that is ENCAP with reencap
                                     -> DROP not_local_eid (no open relay;
                                        the look is no use of the entry)
        outer CE on a Not-ECT packet -> DROP ecn (RFC 6040 4.2)
        min(inner, outer TTL) <= 1   -> DROP ttl_expired (re-encapsulating
                                        is a router hop: two nodes pointing
                                        at each other cannot loop forever)
        else the inner packet with ECN as below and TTL min(inner, outer) - 1
        is encapsulated as by the ITR (same locator rule, nonce, the
        received instance-id, L bit for a local source), except that one
        too big for the underlay is DROP too_big (no ICMP answer: its
        source is not behind this node)
                                     -> SEND
    outer CE on a Not-ECT packet     -> DROP ecn (RFC 6040 4.2)
    else                             -> WRITE the inner packet, its TTL /
        hop limit lowered to the outer one when that is smaller (RFC 9300
        5.3) and its ECN field set per RFC 6040 Figure 4.
    On WRITE and SEND the outer source, when known, is remembered as a
    recent ITR (RecentItrs).

VXLAN transmit (a frame read from a segment's TAP)
    unknown segment                  -> DROP unknown_vni
    shorter than an Ethernet header  -> DROP bad_frame
    unicast to a MAC the FDB puts behind a VTEP of the segment's family
                                     -> SEND (as vxlan_encap)
    else, with flood peers           -> FLOOD
    else                             -> DROP no_destination

VXLAN encap (one copy of a frame towards one peer)
    unknown segment                  -> DROP unknown_vni
    peer not of the segment's family -> DROP no_rloc
    outer length fields overflow     -> DROP too_big
    else                             -> SEND outer IP (TTL 64, TOS 0) + UDP
        (source port from the frame hash, destination 4789) + VXLAN

VXLAN receive (the UDP payload of a packet to port 4789)
    shorter than the VXLAN header    -> DROP truncated
    I flag clear                     -> DROP bad_flags (RFC 7348 5)
    unknown VNI                      -> DROP unknown_vni
    frame shorter than 14            -> DROP bad_frame
    else learn the source MAC behind the sender (when the segment learns
    and the MAC is unicast), WRITE the frame to the segment's TAP.

Outer headers, both encapsulations: IPv4 with identification 0 and DF clear
and a zero UDP checksum (RFC 9300 5.3, RFC 7348 5); IPv6 with the flow
label from the flow hash (RFC 6438) and a computed UDP checksum (RFC 6935/
6936 make a zero one the receiver's option). The UDP source port is taken
from the dynamic range (RFC 6335): 49152 + hash % 16384.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from lispd.dataplane.entries import FibAction, FibEntry, FibLocator
from lispd.dataplane.verdict import Verdict, VerdictKind
from lispd.wire.data import LISP_DATA_PORT, VXLAN_PORT, LispDataHeader, VxlanHeader
from lispd.wire.errors import DecodeError
from lispd.wire.flow import flow_hash, frame_hash
from lispd.wire.icmp import too_big
from lispd.wire.inet import (
    IPPROTO_UDP,
    Ipv4Header,
    Ipv6Header,
    build_ipv4_header,
    build_udp,
    inet_checksum,
)

IpAddress = IPv4Address | IPv6Address
IpNetwork = IPv4Network | IPv6Network

LISP_HEADER = 8
VXLAN_HEADER = 8
UDP_HEADER = 8
ETHER_HEADER = 14
OUTER_TTL_VXLAN = 64
# The dynamic and/or private ports (RFC 6335 section 6), where both RFC 9300
# 5.3 and RFC 7348 5 put a source port made from a hash of the inner flow.
SOURCE_PORTS_BASE = 49152
SOURCE_PORTS = 16384
FLOW_LABEL_VALUES = 1 << 20
MAX_U16 = 0xFFFF

# RFC 3168 section 5: the ECN field, the low two bits of TOS / traffic class.
ECN_MASK = 0x03
NOT_ECT, ECT_1, ECT_0, CE = 0b00, 0b01, 0b10, 0b11


class Drop(enum.StrEnum):
    """Why a packet was dropped: LISPD_DROP_* as lispd.dataplane.fastpath
    names them (the constant's suffix, lower case)."""

    TRUNCATED = "truncated"
    BAD_INNER = "bad_inner"
    BAD_FLAGS = "bad_flags"
    UNKNOWN_INSTANCE = "unknown_instance"
    NOT_LOCAL_EID = "not_local_eid"
    NEGATIVE = "negative"
    NATIVE_FORWARD = "native_forward"
    TOO_BIG = "too_big"
    NO_RLOC = "no_rloc"
    UNKNOWN_VNI = "unknown_vni"
    BAD_FRAME = "bad_frame"
    NO_DESTINATION = "no_destination"
    # RFC 6040 4.2: outer CE on a Not-ECT inner packet MUST be dropped.
    ECN = "ecn"
    NOT_OVERLAY = "not_overlay"
    TTL_EXPIRED = "ttl_expired"


def _drop(reason: Drop) -> Verdict:
    return Verdict(VerdictKind.DROP, reason=str(reason))


# --------------------------------------------------------------------------
# Tables


@dataclass
class NaiveFib:
    """(instance-id, prefix) -> entry; lookups scan for the longest match."""

    rows: list[tuple[int, IpNetwork, FibEntry]] = field(default_factory=list)
    used: set[tuple[int, IpNetwork]] = field(default_factory=set)

    def set(self, instance_id: int, prefix: IpNetwork, entry: FibEntry) -> None:
        self.rows = [row for row in self.rows if row[:2] != (instance_id, prefix)]
        self.rows.append((instance_id, prefix, entry))

    def lookup(self, instance_id: int, address: IpAddress) -> FibEntry | None:
        """The entry of the longest prefix covering address; a hit counts as
        use (lispd_fib_drain_used)."""
        best = self._longest(instance_id, address)
        if best is None:
            return None
        self.used.add(best[:2])
        return best[2]

    def find(self, instance_id: int, address: IpAddress) -> FibEntry | None:
        """As lookup, but not counted as use (lispd_fib_find)."""
        best = self._longest(instance_id, address)
        return None if best is None else best[2]

    def _longest(
        self, instance_id: int, address: IpAddress
    ) -> tuple[int, IpNetwork, FibEntry] | None:
        best: tuple[int, IpNetwork, FibEntry] | None = None
        for row in self.rows:
            iid, prefix, _ = row
            if iid != instance_id or prefix.version != address.version:
                continue
            if address in prefix and (best is None or prefix.prefixlen > best[1].prefixlen):
                best = row
        return best

    def drain_used(self) -> frozenset[tuple[int, IpNetwork]]:
        """The keys of entries hit since the last drain; forgets them."""
        used = frozenset(self.used)
        self.used.clear()
        return used


@dataclass(frozen=True)
class FdbRecord:
    vtep: IpAddress
    static: bool
    last_seen_ms: int


class Learned(enum.IntEnum):
    """What learning did (the lispd_fdb_learn results)."""

    FULL = -2
    MULTICAST = -1
    REFRESHED = 0
    ADDED_OR_MOVED = 1
    STATIC = 2


def is_group_mac(mac: bytes) -> bool:
    """IEEE 802: the I/G bit, the low bit of the first octet."""
    return bool(mac[0] & 0x01)


@dataclass
class NaiveFdb:
    """(VNI, MAC) -> remote VTEP, for at most `limit` entries."""

    limit: int
    entries: dict[tuple[int, bytes], FdbRecord] = field(default_factory=dict)

    def set(self, vni: int, mac: bytes, vtep: IpAddress, static: bool, now_ms: int) -> None:
        if is_group_mac(mac):
            raise ValueError("a multicast MAC has no VTEP")
        if (vni, mac) not in self.entries and len(self.entries) >= self.limit:
            raise OverflowError("FDB full")
        self.entries[vni, mac] = FdbRecord(vtep, static, now_ms)

    def lookup(self, vni: int, mac: bytes) -> FdbRecord | None:
        return self.entries.get((vni, mac))

    def learn(self, vni: int, mac: bytes, vtep: IpAddress, now_ms: int) -> Learned:
        if is_group_mac(mac):
            return Learned.MULTICAST
        known = self.entries.get((vni, mac))
        if known is not None and known.static:
            return Learned.STATIC
        if known is None and len(self.entries) >= self.limit:
            return Learned.FULL
        self.entries[vni, mac] = FdbRecord(vtep, False, now_ms)
        if known is not None and known.vtep == vtep:
            return Learned.REFRESHED
        return Learned.ADDED_OR_MOVED


def pick_locator(locators: Sequence[FibLocator], hash_value: int) -> FibLocator:
    """The rule of struct lispd_locator: h % sum(weights) walked over the
    cumulative weights in order; h % n when every weight is 0."""
    total = sum(loc.weight for loc in locators)
    if total == 0:
        return locators[hash_value % len(locators)]
    point = hash_value % total
    for loc in locators:
        if point < loc.weight:
            return loc
        point -= loc.weight
    raise AssertionError("unreachable: point < total")


@dataclass
class RecentItrs:
    """The ITRs the ETR took packets from: address -> (last seen ms, touch
    number), at most `limit`; a new address when full replaces the entry
    seen least recently, the earliest touched of those seen at the same ms
    (lispd_dp_recent_itrs)."""

    limit: int = 256
    seen_at: dict[IpAddress, tuple[int, int]] = field(default_factory=dict)
    touches: int = 0

    def seen(self, address: IpAddress, now_ms: int) -> None:
        if address not in self.seen_at and len(self.seen_at) >= self.limit:
            oldest = min(self.seen_at, key=self.seen_at.__getitem__)
            del self.seen_at[oldest]
        self.seen_at[address] = (now_ms, self.touches)
        self.touches += 1

    def since(self, since_ms: int) -> list[IpAddress]:
        """Those last seen at or after since_ms, most recent first."""
        recent = [a for a, (ms, _) in self.seen_at.items() if ms >= since_ms]
        return sorted(recent, key=self.seen_at.__getitem__, reverse=True)


# --------------------------------------------------------------------------
# Inner packets


@dataclass(frozen=True)
class InnerPacket:
    """An IPv4/IPv6 packet as its own header describes it."""

    version: int
    packet: bytes  # exactly its length by the header: trailing octets cut off
    header_length: int
    source: IpAddress
    destination: IpAddress
    tos: int  # IPv4 type of service or IPv6 traffic class
    ttl: int  # or hop limit
    dont_fragment: bool  # an IPv6 packet is never fragmented on the way


def is_overlay_destination(address: IpAddress) -> bool:
    """Multicast, broadcast and link-local destinations reach the TUN only
    because the kernel sends them out of every interface: no EID is there."""
    return not (address.is_multicast or address.is_link_local
                or address == IPv4Address("255.255.255.255"))


def read_inner(data: bytes, *, verify_checksum: bool) -> InnerPacket | Drop:
    """The IP packet at the start of data, or why it is not one."""
    if not data:
        return Drop.TRUNCATED
    version = data[0] >> 4
    if version == 4:
        if len(data) < 20:
            return Drop.TRUNCATED
        header_length = (data[0] & 0x0F) * 4
        (total,) = struct.unpack_from("!H", data, 2)
        if header_length < 20 or total < header_length:
            return Drop.BAD_INNER
        if total > len(data):
            return Drop.TRUNCATED
        if verify_checksum and inet_checksum(data[:header_length]) != 0:
            return Drop.BAD_INNER
        (flags_fragment,) = struct.unpack_from("!H", data, 6)
        return InnerPacket(
            4, bytes(data[:total]), header_length,
            IPv4Address(data[12:16]), IPv4Address(data[16:20]),
            data[1], data[8], bool(flags_fragment & 0x4000),
        )
    if version == 6:
        if len(data) < 40:
            return Drop.TRUNCATED
        (first_word, payload_length) = struct.unpack_from("!IH", data, 0)
        total = 40 + payload_length
        if total > len(data):
            return Drop.TRUNCATED
        return InnerPacket(
            6, bytes(data[:total]), 40,
            IPv6Address(data[8:24]), IPv6Address(data[24:40]),
            (first_word >> 20) & 0xFF, data[7], True,
        )
    return Drop.BAD_INNER


def decapsulated_ecn(inner: int, outer: int) -> int | None:
    """RFC 6040 section 4.2, Figure 4: the ECN field of the packet leaving
    the tunnel; None where the decapsulator must drop it."""
    if inner == NOT_ECT:
        return None if outer == CE else NOT_ECT
    if CE in (inner, outer):
        return CE
    if outer == ECT_1:
        return ECT_1
    return inner


def _rewrite_inner(inner: InnerPacket, tos: int, ttl: int) -> bytes:
    """The inner packet with a new TOS/traffic class and TTL/hop limit (IPv4
    checksum recomputed); untouched when neither changes."""
    if (tos, ttl) == (inner.tos, inner.ttl):
        return inner.packet
    data = inner.packet
    if inner.version == 4:
        (ident, flags_fragment, protocol) = struct.unpack_from("!HHxB", data, 4)
        header = Ipv4Header(
            IPv4Address(data[12:16]), IPv4Address(data[16:20]), len(data), protocol, ttl,
            tos, ident, flags_fragment >> 13, flags_fragment & 0x1FFF, 0,
            data[20 : inner.header_length],
        )
        header = replace(header, checksum=inet_checksum(header.encode()))
        return header.encode() + data[inner.header_length :]
    (first_word, payload_length, next_header) = struct.unpack_from("!IHB", data, 0)
    header6 = Ipv6Header(
        IPv6Address(data[8:24]), IPv6Address(data[24:40]), payload_length, next_header,
        ttl, tos, first_word & 0xFFFFF,
    )
    return header6.encode() + data[40:]


# --------------------------------------------------------------------------
# Outer headers


def _outer_ip_length(version: int) -> int:
    return 20 if version == 4 else 40


def _largest_outer(version: int) -> int:
    """The largest packet the 16-bit length fields can describe: IPv4 total
    length (RFC 791); IPv6 payload length past the 40-octet header (RFC 8200,
    no jumbograms)."""
    return MAX_U16 if version == 4 else 40 + MAX_U16


def _source_port(hash_value: int) -> int:
    return SOURCE_PORTS_BASE + hash_value % SOURCE_PORTS


def encapsulate(
    source: IpAddress,
    destination: IpAddress,
    source_port: int,
    destination_port: int,
    payload: bytes,
    *,
    tos: int,
    ttl: int,
    hash_value: int,
) -> bytes:
    """Outer IP + UDP in front of payload (the LISP or VXLAN header and what
    it carries)."""
    udp_length = UDP_HEADER + len(payload)
    if isinstance(source, IPv4Address) and isinstance(destination, IPv4Address):
        ip4 = build_ipv4_header(
            source, destination, 20 + udp_length, identification=0, tos=tos, ttl=ttl,
            protocol=IPPROTO_UDP, dont_fragment=False,
        )
        udp = build_udp(None, source_port, destination_port, payload)
        return ip4.encode() + udp.encode() + payload
    if isinstance(source, IPv6Address) and isinstance(destination, IPv6Address):
        ip6 = Ipv6Header(
            source, destination, udp_length, IPPROTO_UDP, ttl, tos,
            hash_value % FLOW_LABEL_VALUES,
        )
        udp = build_udp(ip6, source_port, destination_port, payload)
        return ip6.encode() + udp.encode() + payload
    raise ValueError(f"outer addresses of two families: {source}, {destination}")


# --------------------------------------------------------------------------
# The data plane


@dataclass
class Segment:
    vni: int
    local: IpAddress
    learning: bool
    flood: tuple[IpAddress, ...] = ()


@dataclass
class ReferenceDataplane:
    """The state the steps read: underlay, devices and tables."""

    mapcache: NaiveFib = field(default_factory=NaiveFib)
    database: NaiveFib = field(default_factory=NaiveFib)
    fdb: NaiveFdb = field(default_factory=lambda: NaiveFdb(limit=1 << 32))
    rloc4: IPv4Address | None = None
    rloc6: IPv6Address | None = None
    mtu: int = 1500
    tuns: list[int] = field(default_factory=list)  # index -> instance-id
    segments: list[Segment] = field(default_factory=list)  # index -> segment
    recent: RecentItrs = field(default_factory=RecentItrs)
    # Outer family -> the source ports of its train senders (FastPath's
    # set_train_senders): a flow's outer source port is ports[hash % n].
    train_ports: dict[int, tuple[int, ...]] = field(default_factory=dict)
    served_itrs: tuple[IpNetwork, ...] = ()  # this node is their proxy-ETR

    # -- configuration, as FastPath's ----------------------------------------

    def set_train_ports(self, version: int, ports: tuple[int, ...]) -> None:
        self.train_ports[version] = ports

    def _source_port(self, version: int, hash_value: int) -> int:
        ports = self.train_ports.get(version, ())
        return ports[hash_value % len(ports)] if ports else _source_port(hash_value)

    def set_underlay(
        self, rloc4: IPv4Address | None, rloc6: IPv6Address | None, mtu: int
    ) -> None:
        self.rloc4, self.rloc6, self.mtu = rloc4, rloc6, mtu

    def add_tun(self, instance_id: int) -> int:
        if instance_id in self.tuns:
            raise ValueError(f"instance-id {instance_id} already has a TUN")
        self.tuns.append(instance_id)
        return len(self.tuns) - 1

    def add_segment(self, vni: int, local: IpAddress, learning: bool) -> int:
        if any(s.vni == vni for s in self.segments):
            raise ValueError(f"VNI {vni} already has a segment")
        self.segments.append(Segment(vni, local, learning))
        return len(self.segments) - 1

    def set_flood(self, segment: int, peers: Iterable[IpAddress]) -> None:
        self.segments[segment].flood = tuple(peers)

    def set_served_itrs(self, served: Iterable[IpNetwork]) -> None:
        self.served_itrs = tuple(served)

    def _rloc(self, version: int) -> IpAddress | None:
        return self.rloc4 if version == 4 else self.rloc6

    # -- LISP ----------------------------------------------------------------

    def itr_process(self, tun: int, packet: bytes, nonce: int) -> Verdict:
        if not 0 <= tun < len(self.tuns):
            return _drop(Drop.UNKNOWN_INSTANCE)
        inner = read_inner(packet, verify_checksum=False)
        if isinstance(inner, Drop):
            return _drop(inner)
        if not is_overlay_destination(inner.destination):
            return _drop(Drop.NOT_OVERLAY)
        iid = self.tuns[tun]
        entry = self.mapcache.lookup(iid, inner.destination)
        if entry is None or entry.action is FibAction.PUNT:
            return Verdict(
                VerdictKind.MISS, data=inner.packet, instance_id=iid, address=inner.destination
            )
        if entry.action is FibAction.NATIVE:
            return _drop(Drop.NATIVE_FORWARD)
        if entry.action is not FibAction.ENCAP or not entry.locators:
            return _drop(Drop.NEGATIVE)
        encapsulated = self._encapsulate(iid, inner, entry, nonce)
        if isinstance(encapsulated, int):
            return self._too_big(tun, inner, encapsulated)
        return encapsulated

    def _encapsulate(
        self, iid: int, inner: InnerPacket, entry: FibEntry, nonce: int
    ) -> Verdict | int:
        """RFC 9300 5.3: the SEND (or drop) towards a locator of entry; for a
        packet that does not fit, the largest inner packet that would (the
        caller's to answer or drop)."""
        hash_value = flow_hash(inner.packet)
        rloc = pick_locator(entry.locators, hash_value)
        source = self._rloc(rloc.address.version)
        if source is None:
            return _drop(Drop.NO_RLOC)
        overhead = _outer_ip_length(rloc.address.version) + UDP_HEADER + LISP_HEADER
        limit = min(self.mtu, _largest_outer(rloc.address.version))
        if len(inner.packet) + overhead > limit:
            return limit - overhead

        local = self.database.lookup(iid, inner.source)
        lsbs: int | None = None
        if local is not None and local.action is FibAction.LOCAL:
            lsbs = local.lsbs & 0xFF if iid else local.lsbs
        lisp = LispDataHeader(
            nonce=nonce & 0xFFFFFF,
            instance_id=iid if iid else None,
            locator_status_bits=lsbs,
        )
        outer = encapsulate(
            source, rloc.address, self._source_port(rloc.address.version, hash_value),
            LISP_DATA_PORT,
            lisp.encode() + inner.packet, tos=inner.tos, ttl=inner.ttl, hash_value=hash_value,
        )
        return Verdict(VerdictKind.SEND, data=outer, address=rloc.address)

    def _too_big(self, tun: int, inner: InnerPacket, mtu: int) -> Verdict:
        """RFC 9300 7.1: a DF (or IPv6) packet gets an ICMP answer with S
        (`mtu`); the others are dropped (this ITR does not fragment), and so
        is everything when S <= 0 (no packet fits: no size to advertise)."""
        if not inner.dont_fragment or mtu <= 0:
            return _drop(Drop.TOO_BIG)
        # From this node's RLOC of the packet's family; lacking one, from the
        # address the packet was sent to.
        rloc = self._rloc(inner.version)
        source = rloc if rloc is not None else inner.destination
        answer = too_big(inner.packet, mtu, source)
        if answer is None:
            return _drop(Drop.TOO_BIG)
        return Verdict(VerdictKind.WRITE, data=answer, index=tun)

    def etr_process(
        self,
        payload: bytes,
        outer_ttl: int,
        outer_tos: int,
        *,
        source: IpAddress | None = None,
        now_ms: int = 0,
        nonce: int = 0,
    ) -> Verdict:
        verdict = self._etr(payload, outer_ttl, outer_tos, source, nonce)
        if source is not None and verdict.kind in (VerdictKind.WRITE, VerdictKind.SEND):
            self.recent.seen(source, now_ms)
        return verdict

    def recent_itrs(self, since_ms: int) -> list[IpAddress]:
        return self.recent.since(since_ms)

    def _etr(
        self,
        payload: bytes,
        outer_ttl: int,
        outer_tos: int,
        source: IpAddress | None,
        nonce: int,
    ) -> Verdict:
        if len(payload) < LISP_HEADER:
            return _drop(Drop.TRUNCATED)
        try:
            lisp = LispDataHeader.decode(payload)  # refuses N with V
        except DecodeError:
            return _drop(Drop.BAD_FLAGS)
        if lisp.key_id:  # LISP-crypto (RFC 8061): not spoken here
            return _drop(Drop.BAD_FLAGS)
        iid = lisp.instance_id or 0
        if iid not in self.tuns:
            return _drop(Drop.UNKNOWN_INSTANCE)
        tun = self.tuns.index(iid)
        inner = read_inner(payload[LISP_HEADER:], verify_checksum=True)
        if isinstance(inner, Drop):
            return _drop(inner)
        local = self.database.lookup(iid, inner.destination)
        if local is None or local.action is not FibAction.LOCAL:
            if self._moved_away(iid, inner.destination):
                return self._reencapsulate(iid, inner, outer_ttl, outer_tos, nonce)
            if source is None or not any(source in net for net in self.served_itrs):
                return _drop(Drop.NOT_LOCAL_EID)
        ecn = decapsulated_ecn(inner.tos & ECN_MASK, outer_tos & ECN_MASK)
        if ecn is None:
            return _drop(Drop.ECN)
        tos = (inner.tos & ~ECN_MASK) | ecn
        ttl = min(inner.ttl, outer_ttl)
        return Verdict(VerdictKind.WRITE, data=_rewrite_inner(inner, tos, ttl), index=tun)

    def _moved_away(self, iid: int, destination: IpAddress) -> bool:
        """The map-cache says the EID went elsewhere (an ENCAP entry with
        reencap); not a use of the entry."""
        entry = self.mapcache.find(iid, destination)
        return (
            entry is not None
            and entry.action is FibAction.ENCAP
            and entry.reencap
            and bool(entry.locators)
        )

    def _reencapsulate(
        self, iid: int, inner: InnerPacket, outer_ttl: int, outer_tos: int, nonce: int
    ) -> Verdict:
        """A packet for an EID that moved away (_moved_away): on to where the
        map-cache says it went. Only then is the entry used: anyone can send
        packets for EIDs that are not here."""
        entry = self.mapcache.lookup(iid, inner.destination)
        assert entry is not None
        ecn = decapsulated_ecn(inner.tos & ECN_MASK, outer_tos & ECN_MASK)
        if ecn is None:
            return _drop(Drop.ECN)
        ttl = min(inner.ttl, outer_ttl)
        if ttl <= 1:
            return _drop(Drop.TTL_EXPIRED)
        tos = (inner.tos & ~ECN_MASK) | ecn
        hop = replace(inner, packet=_rewrite_inner(inner, tos, ttl - 1), tos=tos, ttl=ttl - 1)
        encapsulated = self._encapsulate(iid, hop, entry, nonce)
        if isinstance(encapsulated, int):
            return _drop(Drop.TOO_BIG)
        return encapsulated

    # -- VXLAN ---------------------------------------------------------------

    def vxlan_tx_process(self, segment: int, frame: bytes) -> Verdict:
        if not 0 <= segment < len(self.segments):
            return _drop(Drop.UNKNOWN_VNI)
        if len(frame) < ETHER_HEADER:
            return _drop(Drop.BAD_FRAME)
        seg = self.segments[segment]
        destination = frame[:6]
        if not is_group_mac(destination):
            known = self.fdb.lookup(seg.vni, destination)
            if known is not None and known.vtep.version == seg.local.version:
                return self.vxlan_encap(segment, frame, known.vtep)
        if not seg.flood:
            return _drop(Drop.NO_DESTINATION)
        return Verdict(VerdictKind.FLOOD, data=bytes(frame), index=segment)

    def vxlan_encap(self, segment: int, frame: bytes, peer: IpAddress) -> Verdict:
        if not 0 <= segment < len(self.segments):
            return _drop(Drop.UNKNOWN_VNI)
        seg = self.segments[segment]
        if peer.version != seg.local.version:
            return _drop(Drop.NO_RLOC)
        overhead = _outer_ip_length(peer.version) + UDP_HEADER + VXLAN_HEADER
        if len(frame) + overhead > _largest_outer(peer.version):
            return _drop(Drop.TOO_BIG)
        hash_value = frame_hash(frame)
        outer = encapsulate(
            seg.local, peer, self._source_port(peer.version, hash_value), VXLAN_PORT,
            VxlanHeader(seg.vni).encode() + frame, tos=0, ttl=OUTER_TTL_VXLAN,
            hash_value=hash_value,
        )
        return Verdict(VerdictKind.SEND, data=outer, address=peer)

    def vxlan_rx_process(self, payload: bytes, source: IpAddress, now_ms: int) -> Verdict:
        if len(payload) < VXLAN_HEADER:
            return _drop(Drop.TRUNCATED)
        try:
            vxlan = VxlanHeader.decode(payload)  # refuses a clear I flag
        except DecodeError:
            return _drop(Drop.BAD_FLAGS)
        matching = [i for i, s in enumerate(self.segments) if s.vni == vxlan.vni]
        if not matching:
            return _drop(Drop.UNKNOWN_VNI)
        segment = matching[0]
        frame = payload[VXLAN_HEADER:]
        if len(frame) < ETHER_HEADER:
            return _drop(Drop.BAD_FRAME)
        if self.segments[segment].learning:
            self.fdb.learn(vxlan.vni, bytes(frame[6:12]), source, now_ms)
        return Verdict(VerdictKind.WRITE, data=bytes(frame), index=segment)


__all__ = [
    "Drop",
    "FdbRecord",
    "FibAction",
    "FibEntry",
    "FibLocator",
    "InnerPacket",
    "Learned",
    "NaiveFdb",
    "NaiveFib",
    "RecentItrs",
    "ReferenceDataplane",
    "Segment",
    "Verdict",
    "VerdictKind",
    "decapsulated_ecn",
    "encapsulate",
    "pick_locator",
    "read_inner",
]
