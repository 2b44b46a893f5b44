"""Dynamic EIDs on a gateway segment: hosts that moved here keep their address.

A VM migrated onto a [[vxlan]] segment this node is the gateway of still
has the address (and the gateway) of the segment it came from. It shows
itself in what it says about neighbors: a gratuitous ARP or unsolicited
Neighbor Advertisement when its interface comes up, ARP requests and
Neighbor Solicitations for its old gateway. From a sender address inside
the segment's `dynamic-eid` ranges but outside its own prefixes, this
machine concludes a dynamic EID (RFC 9300's EID of a host that moved, the
"LISP-MN"/"dynamic-EID" of implementations such as OpenOverlayRouter): the
node then routes the host's address to the segment and registers it.

It answers such a host's requests for any address off the segment (its old
gateway above all) with the segment's own MAC: every packet it sends off
the segment goes through this node, which routes it like any other. The
same for the hosts that stayed on a moved host's home segment, asking for
it as if it were still there (`away`).

A host that has said nothing for `dynamic_eid_timeout` seconds is probed
(unicast ARP request / Neighbor Solicitation, PROBES times a second apart);
one that does not answer has left. One the mapping system says is now
elsewhere (another xTR registered it) has left at once (`moved_away`).

Sans-IO like the control plane's machines: fed frames and `now`, it hands
back events; lispd.gateways puts them on the host and the sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal

from lispd.wire.errors import DecodeError
from lispd.wire.neighbor import (
    ARP_REQUEST,
    Arp,
    NeighborAdvertisement,
    NeighborFrame,
    NeighborSolicitation,
    arp_reply,
    arp_request,
    neighbor_advertisement,
    neighbor_solicitation,
    read_neighbor_frame,
)

__all__ = [
    "COUNTERS",
    "HOST_LIMIT",
    "MAC_HOLD",
    "PROBES",
    "PROBE_INTERVAL",
    "DynamicEids",
    "Event",
    "GatewaySegment",
    "HostArrived",
    "HostLeft",
    "Transmit",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

PROBES = 3
PROBE_INTERVAL = 1.0
MAC_HOLD = 1.0
"""Seconds a dynamic host keeps its MAC before another may replace it."""
COUNTERS = ("frames", "malformed", "arrived", "left_silent", "left_moved", "answered", "probes",
            "full", "mac_flaps")
HOST_LIMIT = 1024
"""Dynamic hosts per segment: past it, newcomers are counted, not tracked.
(The local database has room for this many per segment: lispd.reload.)"""


@dataclass(frozen=True)
class GatewaySegment:
    """What the machine needs of a gateway [[vxlan]] segment."""

    vni: int
    instance_id: int
    mac: bytes  # the TAP's: the gateway's link address on the segment
    addresses: tuple[IPAddress, ...]  # the gateway's own on the segment
    prefixes: tuple[IPNetwork, ...]
    ranges: tuple[IPNetwork, ...]  # dynamic-eid
    timeout: float


@dataclass(frozen=True)
class HostArrived:
    """A dynamic EID is on the segment, at `mac` (again, or at a new MAC)."""

    vni: int
    instance_id: int
    address: IPAddress
    mac: bytes


@dataclass(frozen=True)
class HostLeft:
    """A dynamic EID is no longer on the segment."""

    vni: int
    instance_id: int
    address: IPAddress
    why: Literal["silent", "moved"]


@dataclass(frozen=True)
class Transmit:
    """A frame to send out of the segment's TAP (onto the segment)."""

    vni: int
    frame: bytes


Event = HostArrived | HostLeft | Transmit


@dataclass
class _Host:
    mac: bytes
    last_heard: float
    mac_since: float  # when it took this MAC
    probes_sent: int = 0
    next_probe: float = 0.0


@dataclass
class DynamicEids:
    """The dynamic EIDs of one gateway segment."""

    segment: GatewaySegment
    hosts: dict[IPAddress, _Host] = field(default_factory=dict)
    # Hosts of the segment's own prefixes that are elsewhere (a dynamic EID on
    # another segment here, or moved away): asked for, this node answers.
    away: set[IPAddress] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def received(self, frame: bytes, now: float) -> list[Event]:
        """A frame that came in on the segment (not one this node sent)."""
        self.counters["frames"] += 1
        try:
            read = read_neighbor_frame(frame)
        except DecodeError:
            self.counters["malformed"] += 1
            return []
        if read is None or read.source == self.segment.mac:
            return []
        events: list[Event] = []
        heard = _heard(read)
        if heard is not None and self._dynamic(heard[0]):
            events += self._heard(heard[0], heard[1], now)
        # A dynamic host asks from its link-local address too (for a router it
        # learnt from an advertisement): known by its MAC.
        dynamic = heard[0] in self.hosts if heard is not None else (
            isinstance(read.message, NeighborSolicitation)
            and any(host.mac == read.source for host in self.hosts.values()))
        return events + self._answer(read, dynamic=dynamic)

    def timer(self, now: float) -> list[Event]:
        """Probe the hosts that went quiet; drop the ones probed in vain."""
        events: list[Event] = []
        for address, host in list(self.hosts.items()):
            if now < host.last_heard + self.segment.timeout or now < host.next_probe:
                continue
            if host.probes_sent >= PROBES:
                del self.hosts[address]
                self.counters["left_silent"] += 1
                events.append(self._left(address, "silent"))
                continue
            probe = self._probe(address, host.mac)
            host.probes_sent += 1
            host.next_probe = now + PROBE_INTERVAL
            if probe is not None:
                self.counters["probes"] += 1
                events.append(Transmit(self.segment.vni, probe))
        return events

    def next_timer(self) -> float | None:
        """When `timer` has something to do next (None: no hosts)."""
        return min((max(h.last_heard + self.segment.timeout, h.next_probe)
                    for h in self.hosts.values()), default=None)

    def moved_away(self, address: IPAddress) -> list[Event]:
        """The mapping system says the host is behind another xTR now."""
        if self.hosts.pop(address, None) is None:
            return []
        self.counters["left_moved"] += 1
        return [self._left(address, "moved")]

    # -- inside ------------------------------------------------------------------

    def _dynamic(self, address: IPAddress) -> bool:
        """A host from elsewhere, or one of the segment's own back from
        elsewhere: the mapping system has it at another xTR until this node
        registers it again."""
        segment = self.segment
        return address in self.away or (
            any(address in network for network in segment.ranges)
            and not any(address in network for network in segment.prefixes)
            and address not in segment.addresses
        )

    def _heard(self, address: IPAddress, mac: bytes, now: float) -> list[Event]:
        host = self.hosts.get(address)
        if host is None and len(self.hosts) >= HOST_LIMIT:
            self.counters["full"] += 1
            return []
        if host is not None and host.mac != mac and now < host.mac_since + MAC_HOLD:
            # Two hosts claiming one address, or one flapping: heard, but its
            # MAC (and the host's routes) change at most once per MAC_HOLD.
            self.counters["mac_flaps"] += 1
            mac = host.mac
        if host is not None and host.mac == mac:
            self.hosts[address] = _Host(mac, now, host.mac_since)
            return []
        self.hosts[address] = _Host(mac, now, now)
        self.counters["arrived"] += 1
        return [HostArrived(self.segment.vni, self.segment.instance_id, address, mac)]

    def _answer(self, read: NeighborFrame, *, dynamic: bool) -> list[Event]:
        """Answer a dynamic host for addresses off the segment, and anyone for
        hosts of the segment's prefixes that are `away`: this node is the way
        there."""
        message, segment = read.message, self.segment
        target: IPAddress
        if isinstance(message, Arp):
            target = message.target_ip
            if message.operation != ARP_REQUEST or target == message.sender_ip:
                return []  # gratuitous: no question
        elif isinstance(message, NeighborSolicitation):
            target = message.target
        else:
            return []
        if not (target in self.away or (dynamic and self._off_segment(target))):
            return []
        if isinstance(message, Arp):
            frame = arp_reply(request=read, mac=segment.mac)
        else:
            source = self._own(6)
            if not isinstance(source, IPv6Address):
                return []
            # R only when answering for a router (the old gateway), not for a host away.
            frame = neighbor_advertisement(solicitation=read, source=source, mac=segment.mac,
                                           router=target not in self.away)
        self.counters["answered"] += 1
        return [Transmit(segment.vni, frame)]

    def _off_segment(self, address: IPAddress) -> bool:
        return not any(address in network for network in self.segment.prefixes)

    def _own(self, version: int) -> IPAddress | None:
        return next((a for a in self.segment.addresses if a.version == version), None)

    def _probe(self, address: IPAddress, mac: bytes) -> bytes | None:
        source = self._own(address.version)
        if isinstance(address, IPv4Address) and isinstance(source, IPv4Address):
            return arp_request(sender_mac=self.segment.mac, sender_ip=source,
                               target_ip=address, destination=mac)
        if isinstance(address, IPv6Address) and isinstance(source, IPv6Address):
            return neighbor_solicitation(source=source, source_mac=self.segment.mac,
                                         target=address, destination_mac=mac)
        return None  # config checks refuse ranges of a family without an address

    def _left(self, address: IPAddress, why: Literal["silent", "moved"]) -> HostLeft:
        return HostLeft(self.segment.vni, self.segment.instance_id, address, why)


def _heard(read: NeighborFrame) -> tuple[IPAddress, bytes] | None:
    """Whose address and MAC a frame shows, if it shows one."""
    message = read.message
    if isinstance(message, Arp):
        if message.sender_ip == IPv4Address(0):  # an ARP probe (RFC 5227): not in use yet
            return None
        return message.sender_ip, message.sender_mac
    if isinstance(message, NeighborSolicitation):
        if message.source.is_unspecified or message.source.is_link_local:
            return None
        return message.source, message.link_address or read.source
    if isinstance(message, NeighborAdvertisement):
        if message.target.is_link_local:
            return None
        return message.target, message.link_address or read.source
    return None
