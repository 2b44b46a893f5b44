"""The Map-Server/Map-Resolver machine, driven with a fake clock (RFC 9301 section 8)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from itertools import count
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lispd.control.events import Datagram
from lispd.control.mapserver import MapServer, Site, Subscription, negative_prefix
from lispd.control.registrations import PrefixIndex
from lispd.mapcache import EidPrefix
from lispd.wire import auth
from lispd.wire.address import NO_ADDRESS, Address, InstanceIdAddress, MacAddress
from lispd.wire.control import decode, encapsulate, encode
from lispd.wire.messages import (
    EncapsulatedControlMessage,
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
)
from lispd.wire.records import Action, EidRecord, LocatorRecord, MappingRecord

KEY = b"s3cret"
SITE = Site("cloud-a", KEY, (EidPrefix.parse("192.0.2.0/24"),), accept_more_specifics=True)
STRICT = Site("cloud-b", b"other", (EidPrefix.parse("198.51.100.0/24"),))
V6 = Site("v6", b"six", (EidPrefix.parse("2001:db8::/32", instance_id=7),), True)
ETR_A = IPv4Address("198.18.1.1")
ETR_B = IPv4Address("198.18.2.1")
ITR = IPv4Address("198.18.9.9")
MS = IPv4Address("198.18.0.1")


def record(
    prefix: str = "192.0.2.0", mask: int = 24, rloc: IPv4Address = ETR_A, ttl: int = 1440
) -> MappingRecord:
    return MappingRecord(IPv4Address(prefix), mask, (LocatorRecord(rloc),), ttl=ttl)


def register(
    *records: MappingRecord,
    key: bytes = KEY,
    key_id: auth.KeyId = auth.KeyId.HMAC_SHA256_128,
    nonce: int = 0x1234,
    notify: bool = True,
    proxy: bool = False,
    xtr_id: int | None = None,
) -> bytes:
    message = MapRegister(
        nonce, records or (record(),), want_map_notify=notify, proxy_reply=proxy,
        xtr_id=xtr_id, site_id=None if xtr_id is None else 7,
    )
    return encode(auth.sign(message, key, key_id))


def request(
    eid: str | IPv4Address | InstanceIdAddress,
    nonce: int = 0xBEEF,
    *,
    mask: int = 32,
    subscribe: bool = False,
    xtr_id: int | None = None,
    itr_rlocs: tuple[Address, ...] = (ITR,),
) -> bytes:
    target = IPv4Address(eid) if isinstance(eid, str) else eid
    inner = MapRequest(
        nonce, itr_rlocs, (EidRecord(target, mask, notify=subscribe),),
        xtr_id=xtr_id, site_id=None if xtr_id is None else 3,
    )
    destination = target.address if isinstance(target, InstanceIdAddress) else target
    assert isinstance(destination, IPv4Address)
    return encode(encapsulate(inner, ITR, destination, source_port=61000, to_ms=True))


def server(*sites: Site) -> MapServer:
    nonces = count(1000)
    return MapServer(
        sites or (SITE, STRICT, V6), register_interval=60.0, nonces=lambda: next(nonces)
    )


def notify_of(datagram: Datagram, key: bytes = KEY) -> MapNotify:
    assert auth.verify(datagram.payload, key)
    message = decode(datagram.payload)
    assert isinstance(message, MapNotify)
    return message


# -- Map-Register -----------------------------------------------------------


def test_register_installs_and_notifies_with_same_nonce_signed() -> None:
    ms = server()
    out = ms.receive(register(nonce=77), ETR_A, 4342, now=10.0)
    assert [(d.destination, d.port) for d in out] == [(ETR_A, 4342)]
    notify = notify_of(out[0])
    assert notify.nonce == 77
    assert notify.records == (record(),)
    assert notify.key_id == auth.KeyId.HMAC_SHA256_128
    (reg,) = ms.registrations()
    assert reg.prefix == EidPrefix.parse("192.0.2.0/24")
    assert reg.site == "cloud-a"
    assert reg.expires_at == 10.0 + 180.0
    assert ms.next_timer() == 190.0
    assert ms.counters["registered"] == 1


def test_register_without_m_bit_sends_nothing() -> None:
    ms = server()
    assert ms.receive(register(notify=False), ETR_A, 4342, now=0.0) == []
    assert len(ms.registrations()) == 1


def test_sha1_register_gets_sha1_notify() -> None:
    ms = server()
    out = ms.receive(register(key_id=auth.KeyId.HMAC_SHA1_96), ETR_A, 5000, now=0.0)
    assert out[0].port == 5000
    assert notify_of(out[0]).key_id == auth.KeyId.HMAC_SHA1_96


def test_expiry_at_three_intervals_and_refresh_pushes_it_back() -> None:
    ms = server()
    ms.receive(register(notify=False), ETR_A, 4342, now=0.0)
    assert ms.next_timer() == 180.0
    ms.receive(register(notify=False), ETR_A, 4342, now=100.0)
    assert ms.counters["refreshed"] == 1
    assert ms.next_timer() == 280.0
    assert ms.registrations()[0].registered_at == 0.0
    assert ms.timer(279.999) == []
    assert len(ms.registrations()) == 1
    assert ms.timer(280.0) == []
    assert ms.registrations() == ()
    assert ms.next_timer() is None
    assert ms.counters["expired"] == 1


def test_next_timer_is_earliest_of_several() -> None:
    ms = server()
    ms.receive(register(record("192.0.2.0", 25), notify=False), ETR_A, 4342, now=5.0)
    ms.receive(register(record("192.0.2.128", 25), notify=False), ETR_A, 4342, now=1.0)
    assert ms.next_timer() == 181.0
    ms.timer(181.0)
    assert [str(r.prefix) for r in ms.registrations()] == ["[0]192.0.2.0/25"]
    assert ms.next_timer() == 185.0


def test_ttl_zero_deregisters_at_once() -> None:
    ms = server()
    ms.receive(register(notify=False), ETR_A, 4342, now=0.0)
    out = ms.receive(register(record(ttl=0), nonce=9), ETR_A, 4342, now=1.0)
    assert ms.registrations() == ()
    assert ms.next_timer() is None
    assert ms.counters["deregistered"] == 1
    assert notify_of(out[0]).nonce == 9


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (register(key=b"wrong"), "bad_auth"),
        (register(record("203.0.113.0", 24)), "outside_site"),
        (register(record("192.0.0.0", 16)), "outside_site"),  # wider than the site
        (register(record("198.51.100.0", 25), key=b"other"), "more_specific_refused"),
        (register(record(), record("198.51.100.0", 24)), "outside_site"),  # two sites at once
        (b"\x30\x00", "malformed"),
        (b"", "malformed"),
    ],
)
def test_refused_register_changes_nothing(payload: bytes, reason: str) -> None:
    ms = server()
    ms.receive(register(record(rloc=ETR_B), notify=False), ETR_B, 4342, now=0.0)
    before = ms.registrations()
    assert ms.receive(payload, ETR_A, 4342, now=1.0) == []
    assert ms.registrations() == before
    assert ms.counters[reason] == 1


def test_unknown_key_id_is_counted() -> None:
    signed = auth.sign(MapRegister(1, (record(),), want_map_notify=True), KEY, auth.KeyId(2))
    payload = encode(replace(signed, key_id=3))
    ms = server()
    assert ms.receive(payload, ETR_A, 4342, now=0.0) == []
    assert ms.counters == {"unknown_key_id": 1}


def test_no_auth_key_id_zero_is_unknown() -> None:
    payload = encode(MapRegister(1, (record(),), key_id=0, auth_data=b""))
    ms = server()
    assert ms.receive(payload, ETR_A, 4342, now=0.0) == []
    assert ms.counters == {"unknown_key_id": 1}


def test_register_with_no_records_is_malformed() -> None:
    payload = encode(auth.sign(MapRegister(1, ()), KEY, auth.KeyId.HMAC_SHA256_128))
    ms = server()
    assert ms.receive(payload, ETR_A, 4342, now=0.0) == []
    assert ms.counters == {"malformed": 1}


def test_exact_prefix_accepted_by_strict_site() -> None:
    ms = server()
    ms.receive(register(record("198.51.100.0", 24), key=b"other"), ETR_A, 4342, now=0.0)
    assert [r.site for r in ms.registrations()] == ["cloud-b"]


def test_more_specific_accepted_when_allowed() -> None:
    ms = server()
    ms.receive(register(record("192.0.2.64", 26)), ETR_A, 4342, now=0.0)
    assert [str(r.prefix) for r in ms.registrations()] == ["[0]192.0.2.64/26"]


def test_instance_id_prefix_registers_under_its_instance() -> None:
    eid = InstanceIdAddress(7, IPv6Address("2001:db8:1::"))
    rec = MappingRecord(eid, 48, (LocatorRecord(ETR_A),))
    ms = server()
    out = ms.receive(register(rec, key=b"six"), ETR_A, 4342, now=0.0)
    assert notify_of(out[0], b"six").records == (rec,)
    assert ms.registrations()[0].prefix == EidPrefix.parse("[7]2001:db8:1::/48")
    # The same prefix in another instance is outside every site.
    other = replace(rec, eid_prefix=InstanceIdAddress(8, IPv6Address("2001:db8:1::")))
    assert ms.receive(register(other, key=b"six"), ETR_A, 4342, now=0.0) == []
    assert ms.counters["outside_site"] == 1


# -- mobility ---------------------------------------------------------------


def test_takeover_by_other_rlocs_notifies_previous_registrant() -> None:
    ms = server()
    ms.receive(register(record(rloc=ETR_A), notify=False), ETR_A, 4342, now=0.0)
    out = ms.receive(register(record(rloc=ETR_B), nonce=5), ETR_B, 4343, now=1.0)
    assert [(d.destination, d.port) for d in out] == [(ETR_B, 4343), (ETR_A, 4342)]
    assert notify_of(out[0]).nonce == 5
    old = notify_of(out[1])
    assert old.nonce == 1000  # a fresh nonce of its own
    assert old.records == (record(rloc=ETR_B),)
    assert ms.registrations()[0].source == ETR_B
    assert ms.counters["moved"] == 1


def test_takeover_notifies_previous_even_without_m_bit() -> None:
    ms = server()
    ms.receive(register(record(rloc=ETR_A), notify=False), ETR_A, 4342, now=0.0)
    out = ms.receive(register(record(rloc=ETR_B), notify=False), ETR_B, 4342, now=1.0)
    assert [d.destination for d in out] == [ETR_A]


def test_refresh_from_same_registrant_notifies_nobody_else() -> None:
    ms = server()
    ms.receive(register(notify=False), ETR_A, 4342, now=0.0)
    assert ms.receive(register(notify=False), ETR_A, 4342, now=60.0) == []
    # Same RLOC set from another source (a second ETR of the site): no move.
    assert ms.receive(register(notify=False), ETR_B, 4342, now=61.0) == []
    assert "moved" not in ms.counters


# -- Map-Resolver -----------------------------------------------------------


def test_request_for_registered_eid_is_forwarded_to_the_etr() -> None:
    ms = server()
    ms.receive(register(notify=False), ETR_A, 4342, now=0.0)
    out = ms.receive(request("192.0.2.10"), ITR, 61000, now=1.0)
    assert [(d.destination, d.port) for d in out] == [(ETR_A, 4342)]
    ecm = decode(out[0].payload)
    assert isinstance(ecm, EncapsulatedControlMessage)
    assert ecm.to_etr and not ecm.to_ms
    assert isinstance(ecm.message, MapRequest) and ecm.message.nonce == 0xBEEF
    assert ecm.inner_ip.source == ITR
    assert ms.counters["map_request_forwarded"] == 1


def test_forward_prefers_best_priority_reachable_rloc() -> None:
    locs = (
        LocatorRecord(IPv4Address("198.18.3.3"), priority=1, reachable=False),
        LocatorRecord(IPv4Address("198.18.4.4"), priority=5),
        LocatorRecord(IPv4Address("198.18.5.5"), priority=2),
    )
    ms = server()
    ms.receive(register(MappingRecord(IPv4Address("192.0.2.0"), 24, locs)), ETR_A, 1, now=0.0)
    out = ms.receive(request("192.0.2.1"), ITR, 61000, now=0.0)
    assert out[0].destination == IPv4Address("198.18.5.5")


def test_forward_falls_back_to_registrant_source() -> None:
    rec = MappingRecord(IPv4Address("192.0.2.0"), 24, ())
    ms = server()
    ms.receive(register(rec, notify=False), ETR_B, 4342, now=0.0)
    assert ms.receive(request("192.0.2.1"), ITR, 61000, now=0.0)[0].destination == ETR_B


def test_longest_registered_prefix_wins() -> None:
    ms = server()
    ms.receive(register(record(rloc=ETR_A), notify=False), ETR_A, 4342, now=0.0)
    ms.receive(register(record("192.0.2.128", 25, ETR_B), notify=False), ETR_B, 4342, now=0.0)
    assert ms.receive(request("192.0.2.200"), ITR, 1, now=0.0)[0].destination == ETR_B
    assert ms.receive(request("192.0.2.20"), ITR, 1, now=0.0)[0].destination == ETR_A


def test_proxy_reply_answers_the_itr_with_nonce_echoed() -> None:
    ms = server()
    ms.receive(register(proxy=True, notify=False), ETR_A, 4342, now=0.0)
    out = ms.receive(request("192.0.2.10", nonce=42), IPv4Address("203.0.113.1"), 4342, now=1.0)
    assert [(d.destination, d.port) for d in out] == [(ITR, 61000)]
    reply = decode(out[0].payload)
    assert isinstance(reply, MapReply)
    assert reply.nonce == 42
    assert reply.records == (record(),)
    assert ms.counters["proxy_reply"] == 1


def test_expired_registration_is_no_longer_resolved() -> None:
    ms = server()
    ms.receive(register(notify=False), ETR_A, 4342, now=0.0)
    ms.timer(180.0)
    reply = decode(ms.receive(request("192.0.2.10"), ITR, 1, now=181.0)[0].payload)
    assert isinstance(reply, MapReply) and reply.records[0].locators == ()


def test_negative_reply_for_unregistered_space() -> None:
    ms = server()
    ms.receive(register(notify=False), ETR_A, 4342, now=0.0)
    out = ms.receive(request("192.0.3.1", nonce=7), ITR, 61000, now=1.0)
    assert [(d.destination, d.port) for d in out] == [(ITR, 61000)]
    reply = decode(out[0].payload)
    assert isinstance(reply, MapReply) and reply.nonce == 7
    (rec,) = reply.records
    assert rec.locators == ()
    assert rec.action == Action.NATIVELY_FORWARD
    assert rec.ttl == 15
    # 192.0.3.1 and 192.0.2.0/24 share 23 bits: the answer is 192.0.3.0/24.
    assert (rec.eid_prefix, rec.mask_len) == (IPv4Address("192.0.3.0"), 24)
    assert ms.counters["negative_reply"] == 1


def test_negative_reply_with_empty_table_is_everything() -> None:
    reply = decode(server().receive(request("10.1.2.3"), ITR, 1, now=0.0)[0].payload)
    assert isinstance(reply, MapReply)
    assert (reply.records[0].eid_prefix, reply.records[0].mask_len) == (IPv4Address(0), 0)


def test_negative_reply_keeps_instance_id() -> None:
    eid = InstanceIdAddress(5, IPv4Address("10.0.0.1"))
    reply = decode(server().receive(request(eid), ITR, 1, now=0.0)[0].payload)
    assert isinstance(reply, MapReply)
    assert reply.records[0].eid_prefix == InstanceIdAddress(5, IPv4Address(0))


# -- negative_prefix --------------------------------------------------------


def _p(text: str) -> EidPrefix:
    return EidPrefix.parse(text)


@pytest.mark.parametrize(
    ("eid", "registered", "expected"),
    [
        ("10.0.0.1", [], "0.0.0.0/0"),
        ("192.0.3.1", ["192.0.2.0/24"], "192.0.3.0/24"),
        ("128.0.0.1", ["10.0.0.0/8"], "128.0.0.0/1"),
        ("192.0.2.129", ["192.0.2.0/25"], "192.0.2.128/25"),
        ("192.0.2.1", ["192.0.2.0/32"], "192.0.2.1/32"),
        ("192.0.2.5", ["192.0.2.4/32", "192.0.2.128/25"], "192.0.2.5/32"),
        ("192.0.2.200", ["192.0.2.0/26", "192.0.2.64/26"], "192.0.2.128/25"),
        ("10.0.0.1", ["[1]10.0.0.0/8", "2001:db8::/32"], "0.0.0.0/0"),
    ],
)
def test_negative_prefix(eid: str, registered: list[str], expected: str) -> None:
    got = negative_prefix(0, IPv4Address(eid), [_p(t) for t in registered])
    assert got == _p(expected)


def test_negative_prefix_ipv6() -> None:
    got = negative_prefix(0, IPv6Address("2001:db9::1"), [_p("2001:db8::/32")])
    assert got == _p("2001:db9::/32")


def test_negative_prefix_matches_brute_force() -> None:
    registered = [_p(t) for t in ("192.0.2.0/24", "192.0.2.0/26", "10.0.0.0/8", "192.0.4.0/23")]

    def brute(eid: IPv4Address) -> EidPrefix:
        for length in range(0, 33):
            candidate = EidPrefix.of(0, eid, length)
            inside = any(r.length >= length and candidate.covers(0, r.address) for r in registered)
            if not inside:
                return candidate
        raise AssertionError

    for text in ("192.0.3.7", "192.0.6.1", "11.0.0.0", "0.0.0.1", "255.255.255.255", "192.0.1.9"):
        eid = IPv4Address(text)
        assert negative_prefix(0, eid, registered) == brute(eid)


# -- bad input --------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"\x80", b"\xff" * 40, b"\x10\x00\x00\x01"])
def test_garbage_is_malformed_and_silent(payload: bytes) -> None:
    ms = server()
    assert ms.receive(payload, ITR, 4342, now=0.0) == []
    assert ms.counters == {"malformed": 1}


def test_request_without_records_is_malformed() -> None:
    inner = MapRequest(1, (ITR,), ())
    payload = encode(encapsulate(inner, ITR, MS, to_ms=True))
    ms = server()
    assert ms.receive(payload, ITR, 4342, now=0.0) == []
    assert ms.counters == {"malformed": 1}


def test_other_messages_are_unexpected() -> None:
    ms = server()
    bare = encode(MapRequest(1, (ITR,), (EidRecord(IPv4Address("192.0.2.1"), 32),)))
    assert ms.receive(bare, ITR, 4342, now=0.0) == []
    assert ms.receive(encode(MapReply(1, ())), ITR, 4342, now=0.0) == []
    assert ms.counters == {"unexpected": 2}


def test_bad_register_interval() -> None:
    with pytest.raises(ValueError):
        MapServer((SITE,), register_interval=0.0)


# -- publish/subscribe (RFC 9437) ----------------------------------------------------

XTR_B = 0xB0B0_0000_0000_0000_0000_0000_0000_000B
OTHER = b"other"  # cloud-b's key: where xTR B registered
THIRD = Site("cloud-c", b"third", (EidPrefix.parse("192.0.3.0/24"),))


def ack_of(datagram: Datagram, key: bytes = OTHER) -> bytes:
    """The Map-Notify-Ack a subscriber (or displaced registrant) answers with."""
    notify = decode(datagram.payload)
    assert isinstance(notify, MapNotify)
    ack = MapNotifyAck(notify.nonce, notify.records, xtr_id=notify.xtr_id, site_id=notify.site_id)
    return encode(auth.sign(ack, key, auth.KeyId.HMAC_SHA256_128))


def subscribed_server(**kwargs: Any) -> MapServer:
    """A /24 of cloud-a registered by ETR_A; xTR B registered 198.51.100.0/24 at cloud-b."""
    nonces = count(1000)
    ms = MapServer((SITE, STRICT, V6, THIRD), 60.0, lambda: next(nonces), **kwargs)
    ms.receive(register(notify=False), ETR_A, 4342, now=0.0)
    b_record = record("198.51.100.0", 24, ETR_B)
    ms.receive(register(b_record, key=OTHER, notify=False, xtr_id=XTR_B), ETR_B, 4342, now=0.0)
    return ms


def subscribe(
    ms: MapServer, eid: str = "192.0.2.10", now: float = 1.0, **kw: Any
) -> list[Datagram]:
    """xTR B subscribes to eid (a /32 unless mask= says otherwise)."""
    kw.setdefault("nonce", 500)
    kw.setdefault("itr_rlocs", (ETR_B,))
    payload = request(eid, subscribe=True, xtr_id=XTR_B, **kw)
    return ms.receive(payload, ETR_B, 61000, now=now)


def test_subscription_is_answered_and_gets_a_notify_with_the_request_nonce() -> None:
    ms = subscribed_server()
    out = subscribe(ms)
    # Answered as ever (forwarded to the ETR), and the initial Map-Notify.
    assert [(d.destination, d.port) for d in out] == [(ETR_A, 4342), (ETR_B, 4342)]
    notify = notify_of(out[1], OTHER)  # signed with the key of xTR B's site
    assert notify.nonce == 500
    assert notify.records == (replace(record(), authoritative=False),)
    assert (notify.xtr_id, notify.site_id) == (XTR_B, 3)
    (sub,) = ms.subscriptions()
    assert (sub.prefix, sub.xtr_id, sub.subscriber, sub.port) == (
        EidPrefix.parse("192.0.2.10/32"), XTR_B, ETR_B, 4342,
    )
    assert (sub.site, sub.confirmed, sub.expires_at) == ("cloud-b", False, 1.0 + 86400.0)
    assert ms.counters["subscribed"] == 1
    assert ms.next_timer() == 2.0  # the retransmission


def test_subscription_to_unregistered_space_gets_a_negative_record() -> None:
    ms = subscribed_server()
    out = subscribe(ms, "192.0.3.1")
    reply = decode(out[0].payload)
    assert isinstance(reply, MapReply) and reply.records[0].action == Action.NATIVELY_FORWARD
    (rec,) = notify_of(out[1], OTHER).records
    assert (rec.eid_prefix, rec.mask_len, rec.locators) == (IPv4Address("192.0.3.0"), 24, ())
    assert (rec.action, rec.ttl) == (Action.NATIVELY_FORWARD, 15)


@pytest.mark.parametrize(
    ("xtr_id", "itr_rlocs", "reason"),
    [
        (None, (ETR_B,), "subscribe_no_xtr_id"),
        (0x1234, (ETR_B,), "subscribe_unknown_xtr"),
        (XTR_B, (MacAddress(b"\x02" * 6),), "subscribe_no_itr_rloc"),
    ],
)
def test_refused_subscription_is_still_answered(
    xtr_id: int | None, itr_rlocs: tuple[Address, ...], reason: str
) -> None:
    ms = subscribed_server()
    payload = request("192.0.2.10", subscribe=True, xtr_id=xtr_id, itr_rlocs=itr_rlocs)
    out = ms.receive(payload, ETR_B, 61000, now=1.0)
    assert [d.destination for d in out] == [ETR_A]  # forwarded, no Map-Notify
    assert ms.subscriptions() == ()
    assert ms.counters[reason] == 1
    assert ms.pending_notifies() == 0


def test_request_without_n_bit_subscribes_nobody() -> None:
    ms = subscribed_server()
    payload = request("192.0.2.10", xtr_id=XTR_B, itr_rlocs=(ETR_B,))
    assert len(ms.receive(payload, ETR_B, 61000, now=1.0)) == 1
    assert ms.subscriptions() == ()


def test_unacknowledged_notify_is_sent_three_more_times_then_the_subscription_goes() -> None:
    ms = subscribed_server()
    first = subscribe(ms)[1]
    for when in (2.0, 3.0, 4.0):
        assert ms.next_timer() == when
        assert ms.timer(when - 0.01) == []
        assert ms.timer(when) == [first]
    assert ms.next_timer() == 5.0
    assert ms.timer(5.0) == []
    assert ms.subscriptions() == ()
    assert ms.pending_notifies() == 0
    assert ms.counters["map_notify_retransmitted"] == 3
    assert ms.counters["map_notify_unacknowledged"] == 1
    assert ms.counters["subscription_unconfirmed"] == 1
    assert ms.next_timer() == 180.0  # only the registrations are left


def test_ack_confirms_the_subscription_and_stops_the_retransmissions() -> None:
    ms = subscribed_server()
    first = subscribe(ms)[1]
    assert ms.receive(ack_of(first), ETR_B, 4342, now=1.5) == []
    assert ms.counters["map_notify_acked"] == 1
    assert ms.pending_notifies() == 0
    assert ms.subscriptions()[0].confirmed
    assert ms.next_timer() == 180.0
    assert ms.timer(10.0) == []


@pytest.mark.parametrize(
    ("make_ack", "reason"),
    [
        (lambda d: ack_of(d, key=KEY), "map_notify_ack_bad_auth"),  # the wrong site's key
        (lambda d: encode(MapNotifyAck(500, ())), "map_notify_ack_bad_auth"),  # no HMAC
        (
            lambda d: encode(auth.sign(MapNotifyAck(501, ()), OTHER, auth.KeyId(2))),
            "map_notify_ack_unknown",
        ),
    ],
)
def test_bad_ack_changes_nothing(make_ack: Callable[[Datagram], bytes], reason: str) -> None:
    ms = subscribed_server()
    first = subscribe(ms)[1]
    assert ms.receive(make_ack(first), ETR_B, 4342, now=1.5) == []
    assert ms.counters[reason] == 1
    assert ms.pending_notifies() == 1
    assert not ms.subscriptions()[0].confirmed
    assert ms.timer(2.0) == [first]


def confirmed(ms: MapServer, eid: str = "192.0.2.10", **kw: Any) -> Subscription:
    ms.receive(ack_of(subscribe(ms, eid, **kw)[-1]), ETR_B, 4342, now=1.5)
    (sub,) = [s for s in ms.subscriptions() if s.prefix.covers(0, IPv4Address(eid))]
    assert sub.confirmed
    return sub


def test_takeover_notifies_the_subscriber_with_the_next_nonce() -> None:
    ms = subscribed_server()
    confirmed(ms)
    c = IPv4Address("198.18.3.3")
    out = ms.receive(register(record(rloc=c), notify=False), c, 4342, now=10.0)
    # The displaced registrant, then the subscriber.
    assert [d.destination for d in out] == [ETR_A, ETR_B]
    notify = notify_of(out[1], OTHER)
    assert notify.nonce == 501
    assert notify.records == (replace(record(rloc=c), authoritative=False),)
    assert ms.counters["subscription_notify"] == 1
    assert ms.pending_notifies() == 2
    ms.receive(ack_of(out[1]), ETR_B, 4342, now=10.1)
    # A confirmed subscription outlives an unacknowledged notification.
    out = ms.receive(register(record(rloc=ETR_A), notify=False), ETR_A, 4342, now=20.0)
    notify = notify_of(out[-1], OTHER)
    assert notify.nonce == 502 and notify.records[0].locators[0].locator == ETR_A
    for when in (21.0, 22.0, 23.0, 24.0):
        ms.timer(when)
    assert len(ms.subscriptions()) == 1
    assert ms.subscriptions()[0].nonce == 502


def test_refresh_and_new_registrant_with_same_rlocs_notify_nobody() -> None:
    ms = subscribed_server()
    confirmed(ms)
    assert ms.receive(register(notify=False), ETR_A, 4342, now=30.0) == []
    # A second ETR of the site registering the same locator set: nothing moved.
    assert ms.receive(register(notify=False), ETR_B, 4342, now=31.0) == []
    assert "subscription_notify" not in ms.counters


def test_other_priorities_are_a_change() -> None:
    ms = subscribed_server()
    confirmed(ms)
    changed = MappingRecord(IPv4Address("192.0.2.0"), 24, (LocatorRecord(ETR_A, priority=9),))
    out = ms.receive(register(changed, notify=False), ETR_A, 4342, now=30.0)
    assert notify_of(out[0], OTHER).records[0].locators[0].priority == 9


def test_deregistration_withdraws_and_names_the_covering_registration() -> None:
    ms = subscribed_server()
    narrow = record("192.0.2.0", 25, IPv4Address("198.18.3.3"))
    ms.receive(register(narrow, notify=False), ETR_A, 4342, now=0.5)
    confirmed(ms)
    out = ms.receive(register(replace(narrow, ttl=0), notify=False), ETR_A, 4342, now=40.0)
    withdrawn, covering = notify_of(out[0], OTHER).records
    assert (withdrawn.eid_prefix, withdrawn.mask_len, withdrawn.locators) == (
        IPv4Address("192.0.2.0"), 25, (),
    )
    assert (withdrawn.ttl, withdrawn.action) == (0, Action.SEND_MAP_REQUEST)
    assert covering == replace(record(), authoritative=False)


def test_expiry_withdraws_from_the_subscribers() -> None:
    ms = subscribed_server()
    confirmed(ms)
    out = ms.timer(180.0)
    (rec,) = notify_of(out[0], OTHER).records
    assert (rec.mask_len, rec.ttl, rec.locators) == (24, 0, ())
    assert ms.counters["expired"] == 2  # xTR B's own registration too
    # Still signed with cloud-b's key though xTR B's registration expired.
    assert len(ms.subscriptions()) == 1


def test_registration_of_the_subscribed_eid_is_published() -> None:
    ms = subscribed_server()
    confirmed(ms, "192.0.3.1")
    rec = MappingRecord(IPv4Address("192.0.3.0"), 24, (LocatorRecord(ETR_A),))
    out = ms.receive(register(rec, key=THIRD.key, notify=False), ETR_A, 4342, now=5.0)
    assert notify_of(out[0], OTHER).records == (rec,)


def test_prefix_subscription_hears_of_more_specifics_inside_it() -> None:
    ms = subscribed_server()
    confirmed(ms, "192.0.2.0", mask=24)
    inner = record("192.0.2.64", 26, IPv4Address("198.18.3.3"))
    out = ms.receive(register(inner, notify=False), ETR_A, 4342, now=5.0)
    assert notify_of(out[0], OTHER).records == (replace(inner, authoritative=False),)


def test_more_specific_elsewhere_or_behind_another_is_not_published() -> None:
    ms = subscribed_server()
    confirmed(ms)  # 192.0.2.10/32
    other_half = record("192.0.2.128", 25, IPv4Address("198.18.3.3"))
    assert ms.receive(register(other_half, notify=False), ETR_A, 4342, now=5.0) == []
    # With a /26 deciding for 192.0.2.10, the /24 changing is none of its business.
    out = ms.receive(register(record("192.0.2.0", 26), notify=False), ETR_A, 4342, now=6.0)
    assert [d.destination for d in out] == [ETR_B]  # the /26 decides now
    moved = record(rloc=IPv4Address("198.18.4.4"))
    out = ms.receive(register(moved, notify=False), ETR_A, 4342, now=7.0)
    assert [d.destination for d in out] == []
    assert ms.counters["subscription_notify"] == 1  # the /26 only


def test_new_request_refreshes_the_one_subscription() -> None:
    ms = subscribed_server()
    confirmed(ms)
    out = subscribe(ms, now=50.0, nonce=900)
    assert notify_of(out[1], OTHER).nonce == 900
    (sub,) = ms.subscriptions()
    assert (sub.subscribed_at, sub.refreshed_at, sub.expires_at) == (1.0, 50.0, 86450.0)
    assert sub.confirmed  # same subscriber address
    assert ms.counters["subscription_refreshed"] == 1
    # From another address: it has to confirm again.
    payload = request("192.0.2.10", 901, subscribe=True, xtr_id=XTR_B, itr_rlocs=(ITR,))
    out = ms.receive(payload, ITR, 61000, now=51.0)
    assert out[1].destination == ITR
    assert not ms.subscriptions()[0].confirmed


def test_subscription_table_is_bounded() -> None:
    ms = subscribed_server(max_subscriptions=1)
    subscribe(ms)
    out = subscribe(ms, "192.0.2.11")
    assert [d.destination for d in out] == [ETR_A]
    assert ms.counters["subscribe_refused_full"] == 1
    assert [str(s.prefix) for s in ms.subscriptions()] == ["[0]192.0.2.10/32"]
    subscribe(ms, now=2.0)  # a refresh is no new entry
    assert ms.counters["subscription_refreshed"] == 1


def test_afi_zero_itr_rloc_withdraws_the_xtr_subscriptions() -> None:
    ms = subscribed_server()
    subscribe(ms)
    subscribe(ms, "192.0.2.11")
    assert ms.pending_notifies() == 2
    out = subscribe(ms, "192.0.2.12", itr_rlocs=(NO_ADDRESS,))
    assert [d.destination for d in out] == [ETR_A]  # still answered
    assert ms.subscriptions() == ()
    assert ms.pending_notifies() == 0
    assert ms.counters["unsubscribed"] == 2


def test_withdrawal_works_after_the_xtr_registration_expired() -> None:
    ms = subscribed_server()
    confirmed(ms)
    ms.timer(180.0)  # every registration expires, xTR B's too
    assert len(ms.subscriptions()) == 1
    subscribe(ms, now=181.0, itr_rlocs=(NO_ADDRESS,))
    assert ms.subscriptions() == ()


def test_subscription_lapses_after_its_lifetime() -> None:
    ms = subscribed_server(subscription_lifetime=100.0)
    confirmed(ms)
    assert ms.next_timer() == 101.0
    assert ms.timer(101.0) == []
    assert ms.subscriptions() == ()
    assert ms.counters["subscription_expired"] == 1


def test_bad_subscription_lifetime() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        MapServer((SITE,), subscription_lifetime=0.0)


# -- a more specific prefix elsewhere: the covering registrant is told -------------


def test_the_registrant_of_a_covering_prefix_hears_of_a_host_that_left_it() -> None:
    ms = server()
    ms.receive(register(record("192.0.2.0", 26), notify=False), ETR_A, 4342, now=0.0)
    host = record("192.0.2.10", 32, rloc=ETR_B)
    out = ms.receive(register(host, notify=False), ETR_B, 4342, now=1.0)
    (told,) = out
    assert (told.destination, told.port) == (ETR_A, 4342)
    assert notify_of(told).records == (host,) and notify_of(told).xtr_id is None
    assert ms.counters["more_specific_told"] == 1
    assert ms.timer(2.0) == [told]  # sent again until acknowledged, like a displacement
    # Its refresh tells nobody again; nor does a more specific at the same RLOCs.
    assert ms.receive(register(host, notify=False), ETR_B, 4342, now=3.5) == []
    mine = record("192.0.2.20", 32, rloc=ETR_A)
    assert ms.receive(register(mine, notify=False), ETR_A, 4342, now=4.0) == []
    assert ms.counters["more_specific_told"] == 1


def test_the_covering_registrant_is_told_under_its_own_sites_key() -> None:
    other = Site("cloud-b", b"other-key", (EidPrefix.parse("192.0.2.0/28"),), True)
    ms = server(SITE, other)
    ms.receive(register(record("192.0.2.0", 26), notify=False), ETR_A, 4342, now=0.0)
    host = record("192.0.2.10", 32, rloc=ETR_B)
    (told,) = ms.receive(register(host, key=b"other-key", notify=False), ETR_B, 4342, now=1.0)
    assert told.destination == ETR_A and notify_of(told, KEY).records == (host,)
    assert ms.receive(ack_of(told, KEY), ETR_A, 4342, now=1.5) == []
    assert ms.counters["map_notify_acked"] == 1 and ms.timer(2.0) == []


@pytest.mark.parametrize("how", ["deregistered", "expired"])
def test_the_covering_registrant_hears_when_the_more_specific_goes(how: str) -> None:
    ms = server()
    ms.receive(register(record("192.0.2.0", 26), notify=False), ETR_A, 4342, now=0.0)
    host = record("192.0.2.10", 32, rloc=ETR_B)
    (told,) = ms.receive(register(host, notify=False), ETR_B, 4342, now=1.0)
    ms.receive(ack_of(told, KEY), ETR_A, 4342, now=1.1)
    if how == "deregistered":
        out = ms.receive(register(replace(host, ttl=0), notify=False), ETR_B, 4342, now=2.0)
    else:
        ms.receive(register(record("192.0.2.0", 26), notify=False), ETR_A, 4342, now=120.0)
        out = ms.timer(181.0)  # B's /32 expires, A's /26 was refreshed
    (gone,) = [d for d in out if d.destination == ETR_A]
    (withdrawn,) = notify_of(gone).records
    assert (withdrawn.eid_prefix, withdrawn.mask_len) == (IPv4Address("192.0.2.10"), 32)
    assert withdrawn.locators == () and withdrawn.ttl == 0
    assert ms.counters["more_specific_gone_told"] == 1


def test_a_host_moving_between_two_more_specifics_tells_both_once() -> None:
    """Moved from A's /32 to B: A is displaced, and (A holding the /26 too) one
    Map-Notify carries the record once."""
    ms = server()
    ms.receive(register(record("192.0.2.0", 26), record("192.0.2.10", 32), notify=False),
               ETR_A, 4342, now=0.0)
    host = record("192.0.2.10", 32, rloc=ETR_B)
    (told,) = ms.receive(register(host, notify=False), ETR_B, 4342, now=1.0)
    assert told.destination == ETR_A and notify_of(told).records == (host,)


# -- the displaced registrant's Map-Notify is retransmitted ------------------------


def test_displaced_notify_is_sent_again_until_acknowledged() -> None:
    ms = server()
    ms.receive(register(record(rloc=ETR_A), notify=False), ETR_A, 4342, now=0.0)
    (old,) = ms.receive(register(record(rloc=ETR_B), notify=False), ETR_B, 4342, now=1.0)
    assert ms.next_timer() == 2.0
    assert ms.timer(2.0) == [old]
    assert ms.timer(3.0) == [old]
    assert ms.receive(ack_of(old, KEY), ETR_A, 4342, now=3.5) == []
    assert ms.timer(4.0) == []
    assert ms.next_timer() == 181.0
    assert ms.counters["map_notify_acked"] == 1


def test_displaced_notify_is_given_up_after_three_retransmissions() -> None:
    ms = server()
    ms.receive(register(record(rloc=ETR_A), notify=False), ETR_A, 4342, now=0.0)
    (old,) = ms.receive(register(record(rloc=ETR_B), notify=False), ETR_B, 4342, now=1.0)
    sent = [ms.timer(t) for t in (2.0, 3.0, 4.0, 5.0, 6.0)]
    assert sent == [[old], [old], [old], [], []]
    assert ms.counters["map_notify_unacknowledged"] == 1
    assert ms.pending_notifies() == 0


def test_late_deregistration_by_the_displaced_registrant_is_ignored() -> None:
    ms = server()
    ms.receive(register(record(rloc=ETR_A), notify=False), ETR_A, 4342, now=0.0)
    ms.receive(register(record(rloc=ETR_B), notify=False), ETR_B, 4342, now=1.0)
    assert ms.receive(register(record(rloc=ETR_A, ttl=0)), ETR_A, 4342, now=2.0) != []
    assert ms.counters["deregister_ignored"] == 1
    assert ms.registrations()[0].source == ETR_B
    # The registrant itself may deregister.
    ms.receive(register(record(rloc=ETR_B, ttl=0)), ETR_B, 4342, now=3.0)
    assert ms.registrations() == ()


# -- every bad input is counted and changes nothing ---------------------------------


def _state(ms: MapServer) -> tuple[object, ...]:
    return (ms.registrations(), ms.subscriptions(), ms.pending_notifies(), ms.next_timer())


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed"),
        (b"\x30" * 20, "malformed"),
        (register(key=b"wrong"), "bad_auth"),
        (register(record("203.0.113.0", 24)), "outside_site"),
        (register(record("198.51.100.0", 25), key=OTHER), "more_specific_refused"),
        (encode(MapRegister(1, (record(),))), "unknown_key_id"),
        (encode(MapNotify(1, ())), "unexpected"),
        (encode(MapReply(1, ())), "unexpected"),
        (encode(MapNotifyAck(1, ())), "map_notify_ack_unknown"),
        (encode(MapNotifyAck(500, ())), "map_notify_ack_bad_auth"),
        (request("192.0.2.10", subscribe=True, xtr_id=0x99), "subscribe_unknown_xtr"),
        (encode(encapsulate(MapRequest(1, (ITR,), ()), ITR, MS, to_ms=True)), "malformed"),
        (
            encode(
                encapsulate(
                    MapRequest(1, (ITR,), (EidRecord(NO_ADDRESS, 0),)), ITR, MS, to_ms=True
                )
            ),
            "malformed",
        ),
    ],
)
def test_bad_input_changes_nothing(payload: bytes, reason: str) -> None:
    ms = subscribed_server()
    subscribe(ms)
    before, counters = _state(ms), dict(ms.counters)
    out = ms.receive(payload, ETR_B, 4342, now=1.2)
    if reason == "subscribe_unknown_xtr":
        assert len(out) == 1  # the request itself is answered
    else:
        assert out == []
    assert _state(ms) == before
    assert ms.counters[reason] == counters.get(reason, 0) + 1


# -- the prefix index against the naive reference -----------------------------------

_near = st.one_of(
    st.integers(0, 2**32 - 1),
    st.integers(0, 255).map(lambda b: 0xC0000200 | b),
    st.sampled_from([0, 0xFFFFFFFF, 0x0A000000, 0x0A000001, 0x80000000]),
)
_v4_prefixes = st.lists(
    st.builds(
        lambda iid, value, length: EidPrefix.of(iid, IPv4Address(value), length),
        st.sampled_from([0, 0, 0, 1]),
        _near,
        st.integers(0, 32),
    ),
    max_size=40,
)
_other_prefixes = st.lists(
    st.one_of(
        st.builds(
            lambda v, n: EidPrefix.of(0, IPv6Address(v), n),
            st.integers(0, 2**128 - 1), st.integers(0, 128),
        ),
        st.builds(
            lambda v, n: EidPrefix.of(0, MacAddress(v.to_bytes(6, "big")), n),
            st.integers(0, 2**48 - 1), st.integers(0, 48),
        ),
    ),
    max_size=5,
)


def _index(prefixes: list[EidPrefix]) -> PrefixIndex[EidPrefix]:
    index: PrefixIndex[EidPrefix] = PrefixIndex()
    for prefix in prefixes:
        index.set(prefix, prefix)
    return index


@given(_v4_prefixes, _other_prefixes, _near, st.sampled_from([0, 1]))
def test_indexed_negative_prefix_equals_the_reference(
    v4: list[EidPrefix], other: list[EidPrefix], value: int, iid: int
) -> None:
    registered = v4 + other
    address = IPv4Address(value)
    # Covered or not: the index must agree with the reference either way.
    assert _index(registered).negative(iid, address) == negative_prefix(iid, address, registered)


@given(_other_prefixes, st.integers(0, 2**128 - 1))
def test_indexed_negative_prefix_ipv6(registered: list[EidPrefix], value: int) -> None:
    address = IPv6Address(value)
    assert _index(registered).negative(0, address) == negative_prefix(0, address, registered)


@given(_v4_prefixes, _near, st.integers(0, 32), st.data())
def test_index_longest_within_covering_match_brute_force(
    registered: list[EidPrefix], value: int, length: int, data: st.DataObject
) -> None:
    index = _index(registered)
    # Removing some on the way must leave the index as if they were never there.
    removed = data.draw(st.lists(st.sampled_from(registered), max_size=5) if registered
                        else st.just([]))
    for prefix in removed:
        index.pop(prefix)
    present = set(registered) - set(removed)
    assert len(index) == len(present)
    assert set(index.values()) == present
    query = EidPrefix.of(0, IPv4Address(value), length)
    covering = sorted(
        (p for p in present if p.instance_id == 0 and p.length <= length
         and p.covers(0, query.address)),
        key=lambda p: -p.length,
    )
    assert list(index.covering(query)) == covering
    assert index.longest(0, query.address, length) == (covering[0] if covering else None)
    inside = {p for p in present if p.instance_id == 0 and p.length >= length
              and query.covers(0, p.address)}
    assert set(index.within(query)) == inside
