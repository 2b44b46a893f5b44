"""Solicit-Map-Request from the ETR side, and the routing of control messages."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from itertools import count

import pytest

from lispd.config.model import RlocConfig
from lispd.control.node import ControlNode, Route, route
from lispd.control.registrar import LocalMapping, MapServerPeer, Registrar
from lispd.control.resolver import Resolver
from lispd.control.smr import MAX_PENDING, Solicitor
from lispd.mapcache import EidPrefix, MapCache
from lispd.wire import auth
from lispd.wire.address import InstanceIdAddress
from lispd.wire.auth import KeyId
from lispd.wire.control import decode, encapsulate, encode
from lispd.wire.messages import (
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
)
from lispd.wire.records import EidRecord, MappingRecord

ITR = IPv4Address("198.18.2.2")
ME = IPv4Address("198.18.3.10")
PREFIX = EidPrefix.parse("192.0.2.100/32")


def solicitor(resends: int = 2) -> Solicitor:
    nonces = count(1)
    s = Solicitor(resends=resends, interval=1.0, nonces=lambda: next(nonces))
    s.set_itr_rlocs((ME,))
    return s


def test_an_smr_names_the_prefix_and_our_rlocs() -> None:
    (datagram,) = solicitor().solicit([PREFIX], [ITR], now=0.0)
    assert (datagram.destination, datagram.port) == (ITR, 4342)
    request = decode(datagram.payload)
    assert isinstance(request, MapRequest)
    assert request.smr and not request.probe and not request.smr_invoked
    assert request.itr_rlocs == (ME,)
    assert request.records == (EidRecord(IPv4Address("192.0.2.100"), 32),)
    assert request.source_eid == IPv4Address("192.0.2.100")


def test_an_smr_to_an_itr_whose_eids_we_know_names_one_of_them() -> None:
    """OpenOverlayRouter's form: the record one of the ITR's EID prefixes of
    the same family, the changed one as source EID; resends alike."""
    theirs = EidPrefix.parse("198.51.100.0/24")
    other = IPv4Address("198.18.4.4")
    s = solicitor()
    sent = s.solicit([PREFIX], [ITR, other], now=0.0,
                     theirs={(ITR, 4): theirs, (other, 6): EidPrefix.parse("2001:db8::/48")})
    for datagrams in (sent, s.timer(1.0)):
        to_itr, to_other = (decode(d.payload) for d in datagrams)
        assert isinstance(to_itr, MapRequest) and isinstance(to_other, MapRequest)
        assert to_itr.records == (EidRecord(IPv4Address("198.51.100.0"), 24),)
        assert to_itr.source_eid == IPv4Address("192.0.2.100")
        assert to_other.records == (EidRecord(IPv4Address("192.0.2.100"), 32),)


def test_instance_ids_are_carried() -> None:
    prefix = EidPrefix.parse("2001:db8::/48", instance_id=7)
    (datagram,) = solicitor().solicit([prefix], [ITR], now=0.0)
    request = decode(datagram.payload)
    assert isinstance(request, MapRequest)
    assert request.records == (EidRecord(InstanceIdAddress(7, IPv6Address("2001:db8::")), 48),)


def test_resent_then_forgotten() -> None:
    s = solicitor(resends=2)
    assert len(s.solicit([PREFIX], [ITR, IPv4Address("198.18.4.4")], now=0.0)) == 2
    assert s.next_timer() == 1.0
    assert s.timer(0.5) == []
    assert len(s.timer(1.0)) == 2
    assert len(s.timer(2.0)) == 2
    assert s.timer(3.0) == [] and s.next_timer() is None
    assert s.counters["smr_sent"] == 6


def test_cancel_stops_the_resends() -> None:
    s = solicitor()
    s.solicit([PREFIX], [ITR], now=0.0)
    s.cancel(PREFIX)
    assert s.next_timer() is None


def test_without_an_rloc_nothing_is_sent() -> None:
    s = Solicitor()
    assert s.solicit([PREFIX], [ITR], now=0.0) == []
    assert s.counters == {"smr_no_rloc": 1} and s.next_timer() is None


def test_resends_are_bounded() -> None:
    s = solicitor()
    itrs = [ip_address(0xC6120000 + i) for i in range(MAX_PENDING + 10)]
    assert len(s.solicit([PREFIX], itrs, now=0.0)) == MAX_PENDING + 10
    assert len(s.timer(1.0)) == MAX_PENDING


REQUEST = MapRequest(1, (ME,), (EidRecord(IPv4Address("192.0.2.1"), 32),))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (encode(REQUEST), Route.REGISTRAR),
        (encode(MapRequest(1, (ME,), REQUEST.records, probe=True)), Route.REGISTRAR),
        (encode(MapRequest(1, (ME,), REQUEST.records, smr=True)), Route.RESOLVER),
        (encode(MapReply(1, ())), Route.RESOLVER),
        (encode(MapReply(1, (), probe=True)), Route.PROBER),
        (encode(MapRegister(1, (), key_id=1, auth_data=bytes(20))), Route.MAP_SERVER),
        (encode(MapNotifyAck(1, (), key_id=1, auth_data=bytes(20))), Route.MAP_SERVER),
        (encode(MapNotify(1, (), key_id=1, auth_data=bytes(20))), Route.MAP_NOTIFY),
        (encode(encapsulate(REQUEST, ME, IPv4Address("192.0.2.1"))), Route.MAP_SERVER),
        (encode(encapsulate(REQUEST, ME, IPv4Address("192.0.2.1"), to_etr=True)),
         Route.REGISTRAR),
        (b"", Route.NONE),
        (b"\xf0", Route.NONE),
    ],
)
def test_route(payload: bytes, expected: Route) -> None:
    assert route(payload) is expected


def test_an_ecm_without_the_e_bit_reaches_the_etr_of_a_node_without_map_server() -> None:
    """OpenOverlayRouter 1.3.0's map-server forwards requests without RFC 9301's E bit."""
    registrar = Registrar(
        (LocalMapping(0, IPv4Network("192.0.2.0/24"), (RlocConfig(ME),)),),
        (MapServerPeer(IPv4Address("198.18.1.2"), b"k"),),
    )
    registrar.start(0.0)
    node = ControlNode(registrar=registrar)
    ecm = encode(encapsulate(REQUEST, ITR, IPv4Address("192.0.2.1")))
    out = node.receive(ecm, IPv4Address("198.18.1.2"), 4342, ME, 1.0)
    ((reply, source),) = out.sourced
    assert source == ME and reply.destination == ME  # REQUEST's ITR-RLOC
    assert isinstance(decode(reply.payload), MapReply)


@pytest.mark.parametrize(
    ("record", "xtr_id", "expected"),
    [
        ("192.0.2.0/24", None, Route.REGISTRAR),  # ours: a registration's answer, a take-over
        ("192.0.2.0/24", 7, Route.REGISTRAR),
        ("192.0.2.70/32", None, Route.REGISTRAR),  # the map-server: a host of ours left
        ("192.0.2.70/32", 7, Route.RESOLVER),  # a publication for a more specific
        ("192.0.0.0/16", None, Route.RESOLVER),  # around ours: someone else's
        ("198.51.100.0/24", None, Route.RESOLVER),
    ],
)
def test_a_map_notify_goes_to_the_machine_it_concerns(record: str, xtr_id: int | None,
                                                      expected: Route) -> None:
    resolver = Resolver(MapCache(4), map_resolvers=(IPv4Address("198.18.1.2"),), itr_rlocs=(ME,))
    node = ControlNode(resolver=resolver,
                       local_prefixes=lambda: (EidPrefix.parse("192.0.2.0/24"),))
    prefix = EidPrefix.parse(record)
    assert isinstance(prefix.address, IPv4Address)
    notify = MapNotify(1, (MappingRecord(prefix.address, prefix.length),), xtr_id=xtr_id,
                       site_id=None if xtr_id is None else 1)
    assert node._notify_route(encode(auth.sign(notify, b"k", KeyId.HMAC_SHA256_128))) \
        is expected
