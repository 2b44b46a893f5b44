"""The dynamic-EID machine of a gateway segment, fed frames and a fake clock."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from lispd.gateway import (
    HOST_LIMIT,
    MAC_HOLD,
    PROBE_INTERVAL,
    PROBES,
    DynamicEids,
    GatewaySegment,
    HostArrived,
    HostLeft,
    Transmit,
)
from lispd.wire.neighbor import (
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST,
    Arp,
    NeighborAdvertisement,
    NeighborFrame,
    NeighborSolicitation,
    read_neighbor_frame,
    write_neighbor_frame,
)

GATEWAY_MAC = bytes.fromhex("020000000011")
HOST_MAC = bytes.fromhex("020000000070")
OTHER_MAC = bytes.fromhex("020000000099")
GW4, GW6 = IPv4Address("192.0.2.1"), IPv6Address("2001:db8:11::1")
MOVED4, MOVED6 = IPv4Address("192.0.2.70"), IPv6Address("2001:db8:12::70")
OLD_GW4, OLD_GW6 = IPv4Address("192.0.2.65"), IPv6Address("2001:db8:12::1")
NATIVE4 = IPv4Address("192.0.2.10")
TIMEOUT = 30.0

SEGMENT = GatewaySegment(
    vni=11, instance_id=0, mac=GATEWAY_MAC, addresses=(GW4, GW6),
    prefixes=(ip_network("192.0.2.0/26"), ip_network("2001:db8:11::/64")),
    ranges=(ip_network("192.0.2.0/24"), ip_network("2001:db8::/40")), timeout=TIMEOUT,
)


def arp(sender: IPv4Address, target: IPv4Address, *, mac: bytes = HOST_MAC,
        operation: int = ARP_REQUEST, to: bytes = BROADCAST) -> bytes:
    message = Arp(operation, mac, sender, b"\0" * 6 if to == BROADCAST else to, target)
    return write_neighbor_frame(NeighborFrame(to, mac, message))


def solicitation(source: IPv6Address, target: IPv6Address, *, mac: bytes = HOST_MAC) -> bytes:
    message = NeighborSolicitation(source, IPv6Address("ff02::1:ff00:1"), target, mac)
    return write_neighbor_frame(NeighborFrame(bytes.fromhex("3333ff000001"), mac, message))


def advertisement(target: IPv6Address, *, mac: bytes = HOST_MAC) -> bytes:
    message = NeighborAdvertisement(target, IPv6Address("ff02::1"), target, router=False,
                                    solicited=False, override=True, link_address=mac)
    return write_neighbor_frame(NeighborFrame(bytes.fromhex("333300000001"), mac, message))


def fresh() -> DynamicEids:
    return DynamicEids(SEGMENT)


def test_a_gratuitous_arp_from_a_moved_host_makes_it_a_dynamic_eid() -> None:
    machine = fresh()
    events = machine.received(arp(MOVED4, MOVED4), now=1.0)
    assert events == [HostArrived(11, 0, MOVED4, HOST_MAC)]  # no answer to a gratuitous one
    assert machine.received(arp(MOVED4, MOVED4), now=2.0) == []  # once
    assert machine.counters["arrived"] == 1


def test_an_unsolicited_advertisement_makes_an_ipv6_dynamic_eid() -> None:
    machine = fresh()
    assert machine.received(advertisement(MOVED6), now=1.0) == [
        HostArrived(11, 0, MOVED6, HOST_MAC)]


def test_a_moved_host_asking_for_its_old_gateway_is_answered_with_the_segments_mac() -> None:
    machine = fresh()
    arrived, answer = machine.received(arp(MOVED4, OLD_GW4), now=1.0)
    assert arrived == HostArrived(11, 0, MOVED4, HOST_MAC)
    assert isinstance(answer, Transmit) and answer.vni == 11
    reply = read_neighbor_frame(answer.frame)
    assert reply is not None and reply.destination == HOST_MAC
    assert reply.message == Arp(ARP_REPLY, GATEWAY_MAC, OLD_GW4, HOST_MAC, MOVED4)


def test_and_for_ipv6_with_a_router_advertisement_of_the_gateways_own() -> None:
    machine = fresh()
    arrived, answer = machine.received(solicitation(MOVED6, OLD_GW6), now=1.0)
    assert arrived == HostArrived(11, 0, MOVED6, HOST_MAC)
    assert isinstance(answer, Transmit)
    reply = read_neighbor_frame(answer.frame)
    assert reply is not None and reply.destination == HOST_MAC
    message = reply.message
    assert isinstance(message, NeighborAdvertisement)
    assert (message.source, message.destination, message.target) == (GW6, MOVED6, OLD_GW6)
    assert message.solicited and message.router and not message.override
    assert message.link_address == GATEWAY_MAC


def test_native_hosts_and_other_addresses_are_left_to_the_kernel() -> None:
    machine = fresh()
    outside = IPv4Address("198.51.100.7")  # in no dynamic-eid range
    for frame in (arp(NATIVE4, GW4), arp(outside, GW4), arp(IPv4Address(0), MOVED4),
                  solicitation(IPv6Address("fe80::70"), OLD_GW6),
                  solicitation(IPv6Address("::"), MOVED6),
                  arp(MOVED4, OLD_GW4, mac=GATEWAY_MAC)):  # our own, looped back
        assert machine.received(frame, now=1.0) == []
    assert not machine.hosts


def test_a_moved_host_asking_for_a_host_on_the_segment_is_not_answered() -> None:
    machine = fresh()
    machine.received(arp(MOVED4, MOVED4), now=1.0)
    assert machine.received(arp(MOVED4, NATIVE4), now=2.0) == []  # that host answers itself


def test_a_new_mac_is_a_new_arrival_but_not_more_than_once_a_hold() -> None:
    machine = fresh()
    machine.received(arp(MOVED4, MOVED4), now=1.0)
    assert machine.received(arp(MOVED4, MOVED4, mac=OTHER_MAC), now=1.0 + MAC_HOLD) == [
        HostArrived(11, 0, MOVED4, OTHER_MAC)]
    # Flapping back and forth within the hold changes nothing.
    for step in range(1, 20):
        now = 1.0 + MAC_HOLD + step * MAC_HOLD / 40
        mac = HOST_MAC if step % 2 else OTHER_MAC
        assert machine.received(arp(MOVED4, MOVED4, mac=mac), now=now) == []
    assert machine.counters["mac_flaps"] == 10


def test_a_silent_host_is_probed_then_given_up() -> None:
    machine = fresh()
    machine.received(arp(MOVED4, MOVED4), now=0.0)
    assert machine.next_timer() == TIMEOUT
    assert machine.timer(TIMEOUT - 0.1) == []
    now = TIMEOUT
    for _ in range(PROBES):
        (probe,) = machine.timer(now)
        assert isinstance(probe, Transmit)
        read = read_neighbor_frame(probe.frame)
        assert read is not None and read.destination == HOST_MAC  # unicast
        assert read.message == Arp(ARP_REQUEST, GATEWAY_MAC, GW4, bytes(6), MOVED4)
        assert machine.timer(now + PROBE_INTERVAL / 2) == []
        now += PROBE_INTERVAL
    assert machine.timer(now) == [HostLeft(11, 0, MOVED4, "silent")]
    assert not machine.hosts and machine.next_timer() is None
    assert machine.counters["probes"] == PROBES and machine.counters["left_silent"] == 1


def test_an_answer_to_a_probe_keeps_the_host() -> None:
    machine = fresh()
    machine.received(advertisement(MOVED6), now=0.0)
    (probe,) = machine.timer(TIMEOUT)
    read = read_neighbor_frame(probe.frame) if isinstance(probe, Transmit) else None
    assert read is not None and isinstance(read.message, NeighborSolicitation)
    assert read.message.source == GW6 and read.message.target == MOVED6
    assert read.destination == HOST_MAC
    reply = NeighborAdvertisement(MOVED6, GW6, MOVED6, router=False, solicited=True,
                                  override=True, link_address=HOST_MAC)
    answer = write_neighbor_frame(NeighborFrame(GATEWAY_MAC, HOST_MAC, reply))
    assert machine.received(answer, now=TIMEOUT + 0.5) == []
    assert machine.next_timer() == TIMEOUT + 0.5 + TIMEOUT
    assert machine.timer(TIMEOUT + 5 * PROBE_INTERVAL) == []


def test_a_host_registered_elsewhere_leaves_at_once() -> None:
    machine = fresh()
    machine.received(arp(MOVED4, MOVED4), now=0.0)
    assert machine.moved_away(MOVED4) == [HostLeft(11, 0, MOVED4, "moved")]
    assert machine.moved_away(MOVED4) == []
    assert machine.received(arp(MOVED4, MOVED4), now=1.0) == [
        HostArrived(11, 0, MOVED4, HOST_MAC)]  # and may come back


def test_the_hosts_are_bounded() -> None:
    machine = fresh()
    base = int(IPv6Address("2001:db8:99::"))
    for i in range(HOST_LIMIT + 10):
        machine.received(advertisement(IPv6Address(base + i + 1)), now=0.0)
    assert len(machine.hosts) == HOST_LIMIT and machine.counters["full"] == 10


@settings(max_examples=300)
@given(st.binary(max_size=128), st.floats(0, 1e6))
def test_any_frame_is_taken_calmly(frame: bytes, now: float) -> None:
    machine = fresh()
    for event in machine.received(frame, now):
        assert isinstance(event, HostArrived | Transmit)
    assert machine.counters["frames"] == 1


@settings(max_examples=100)
@given(st.lists(st.tuples(st.sampled_from(range(3)), st.floats(0, 200)), max_size=30))
def test_timers_never_go_backwards_or_leak(steps: list[tuple[int, float]]) -> None:
    """Whatever is heard when, a machine run to quiet has probed each host at
    most PROBES times per silence and holds nobody it gave up."""
    machine, now = fresh(), 0.0
    left: set[IPv4Address | IPv6Address] = set()
    for which, wait in steps:
        now += wait
        address = IPv4Address(int(MOVED4) + which)
        machine.received(arp(address, address), now)
        left.discard(address)
        due = machine.next_timer()
        while due is not None and due <= now:
            for event in machine.timer(due):
                if isinstance(event, HostLeft):
                    left.add(event.address)
            following = machine.next_timer()
            assert following is None or following > due
            due = following
    assert not left & set(machine.hosts)


def test_a_host_of_the_segment_back_from_elsewhere_arrives_again() -> None:
    machine = fresh()
    assert machine.received(arp(NATIVE4, GW4), now=1.0) == []  # native: the kernel's
    machine.away.add(NATIVE4)
    # Away: its neighbours asking for it are answered (this node is the way there)...
    (answer,) = machine.received(arp(IPv4Address("192.0.2.11"), NATIVE4, mac=OTHER_MAC), 2.0)
    assert isinstance(answer, Transmit)
    reply = read_neighbor_frame(answer.frame)
    assert reply is not None and reply.message == Arp(
        ARP_REPLY, GATEWAY_MAC, NATIVE4, OTHER_MAC, IPv4Address("192.0.2.11"))
    # ...until it speaks on the segment again: a dynamic EID here, to register.
    assert machine.received(arp(NATIVE4, NATIVE4), now=3.0) == [
        HostArrived(11, 0, NATIVE4, HOST_MAC)]


def test_a_dynamic_host_asking_from_its_link_local_address_is_answered() -> None:
    machine = fresh()
    machine.received(advertisement(MOVED6), now=1.0)
    link_local = IPv6Address("fe80::70")
    (answer,) = machine.received(solicitation(link_local, OLD_GW6), now=2.0)
    assert isinstance(answer, Transmit)
    reply = read_neighbor_frame(answer.frame)
    assert reply is not None and isinstance(reply.message, NeighborAdvertisement)
    assert reply.message.destination == link_local and reply.message.target == OLD_GW6
    # From a MAC no dynamic host has: not ours to answer.
    assert machine.received(solicitation(link_local, OLD_GW6, mac=OTHER_MAC), now=3.0) == []
