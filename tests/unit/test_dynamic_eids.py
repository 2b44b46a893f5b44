"""Dynamic EIDs in the control plane: a host that arrived on a gateway segment
is a local EID (database, C table, registrations) until it leaves or another
xTR registers it. A real control plane, never started: no socket opened."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from ipaddress import IPv4Address, ip_network

import pytest

from lispd.config import parse
from lispd.control import setup
from lispd.control.plane import ControlPlane
from lispd.control.registrar import Displaced, Left, Returned
from lispd.dataplane.fastpath import FastPath
from lispd.dataplane.tables import Fdb, Fib, FibAction, FibKey
from lispd.mapcache import EidPrefix, MapCache
from lispd.wire.records import LocatorRecord, MappingRecord

CONFIG = """
[underlay]
rlocs = ["198.18.4.2"]

[xtr]
eid-space = ["192.0.2.0/24"]
map-resolvers = ["198.18.1.2"]

[[xtr.map-server]]
address = "198.18.1.2"
key = "k"

[[vxlan]]
device = "vni11"
vni = 11
local = "198.18.4.2"
address = ["192.0.2.1/26"]
dynamic-eid = ["192.0.2.0/24"]
"""
HOST = ip_network("192.0.2.70/32")
PREFIX = EidPrefix.of(0, IPv4Address("192.0.2.70"), 32)
ELSEWHERE = IPv4Address("198.18.5.2")


@pytest.fixture
def plane() -> Iterator[ControlPlane]:
    loop = asyncio.new_event_loop()
    config = parse(CONFIG)
    mapcache, fib, database_fib = MapCache(10), Fib(10), Fib(10)
    yield ControlPlane(loop, config, mapcache=mapcache, mapcache_fib=fib,
                       database_fib=database_fib, fastpath=FastPath(fib, database_fib, Fdb(1)),
                       tuns={}, rlocs=config.underlay.rlocs)
    loop.close()


def local(plane: ControlPlane) -> set[str]:
    return {str(p) for p in setup.local_prefixes(plane.database)}


def test_an_arrived_host_is_a_local_eid_until_it_leaves(plane: ControlPlane) -> None:
    assert local(plane) == {"[0]192.0.2.0/26"}  # the segment's own prefix
    plane.add_dynamic(0, HOST)
    plane.add_dynamic(0, HOST)  # once
    assert local(plane) == {"[0]192.0.2.0/26", "[0]192.0.2.70/32"}
    found = plane.database_fib.lookup(0, IPv4Address("192.0.2.70"))
    assert found is not None and found[0] == FibKey(0, HOST)
    plane.remove_dynamic(0, HOST)
    plane.remove_dynamic(0, HOST)
    assert local(plane) == {"[0]192.0.2.0/26"}
    assert plane.database_fib.lookup(0, IPv4Address("192.0.2.70")) is None  # off the segment


def test_one_registered_elsewhere_is_sent_on_and_its_segment_told(
        plane: ControlPlane) -> None:
    told: list[EidPrefix] = []
    plane.dynamic_moved_away = told.append
    plane.add_dynamic(0, HOST)
    record = MappingRecord(IPv4Address("192.0.2.70"), 32, (LocatorRecord(ELSEWHERE),),
                           authoritative=True)
    plane._displaced(Displaced(0, HOST, (record,), at=0.0))  # as the registrar reports it
    assert told == [PREFIX]
    assert local(plane) == {"[0]192.0.2.0/26"}
    assert PREFIX in plane.policy.reencap  # what still comes for it goes on
    # It comes back: local again, sent on no more.
    plane.add_dynamic(0, HOST)
    assert "[0]192.0.2.70/32" in local(plane)
    assert PREFIX not in plane.policy.reencap and plane.mapcache.get(PREFIX) is None


def test_a_host_of_our_prefix_registered_elsewhere_is_sent_on_until_it_returns(
        plane: ControlPlane) -> None:
    told: list[EidPrefix] = []
    plane.dynamic_moved_away = told.append
    plane._set_database(0.0)  # what the daemon loads at start
    native = IPv4Address("192.0.2.10")  # inside the segment's own 192.0.2.0/26
    host = ip_network("192.0.2.10/32")
    prefix = EidPrefix.of(0, native, 32)
    record = MappingRecord(native, 32, (LocatorRecord(ELSEWHERE),), authoritative=True)
    plane._host_left(Left(0, host, (record,), at=0.0))  # as the registrar reports it
    assert told == [prefix] and prefix in plane.away and prefix in plane.policy.reencap
    found = plane.database_fib.lookup(0, native)
    assert found is not None and found[0] == FibKey(0, host)
    assert found[1].action is FibAction.DROP  # not local: the ETR sends it on
    entry = plane.mapcache.get(prefix)
    assert entry is not None and [loc.address for loc in entry.locators] == [ELSEWHERE]
    assert local(plane) == {"[0]192.0.2.0/26"}  # the prefix stays ours
    # Registered elsewhere no more (the map-server says so): the prefix covers it.
    back: list[EidPrefix] = []
    plane.dynamic_returned = back.append
    plane._host_returned(Returned(0, host, at=1.0))
    assert back == [prefix] and prefix not in plane.away
    assert prefix not in plane.policy.reencap and plane.mapcache.get(prefix) is None
    found = plane.database_fib.lookup(0, native)
    assert found is not None and found[0] == FibKey(0, ip_network("192.0.2.0/26"))
    plane._host_left(Left(0, host, (record,), at=2.0))  # and leaves again
    assert prefix in plane.away
    # Heard on its segment again: ours, registered as a host until it goes quiet.
    plane.add_dynamic(0, host)
    assert prefix not in plane.away and prefix not in plane.policy.reencap
    found = plane.database_fib.lookup(0, native)
    assert found is not None and found[1].action is FibAction.LOCAL
    plane.remove_dynamic(0, host)
    found = plane.database_fib.lookup(0, native)
    assert found is not None and found[0] == FibKey(0, ip_network("192.0.2.0/26"))
