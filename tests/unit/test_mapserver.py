"""The Map-Server/Map-Resolver machine, driven with a fake clock (RFC 9301 section 8)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from itertools import count

import pytest

from lispd.control.events import Datagram
from lispd.control.mapserver import MapServer, Site, negative_prefix
from lispd.mapcache import EidPrefix
from lispd.wire import auth
from lispd.wire.address import InstanceIdAddress
from lispd.wire.control import decode, encapsulate, encode
from lispd.wire.messages import (
    EncapsulatedControlMessage,
    MapNotify,
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
) -> bytes:
    message = MapRegister(nonce, records or (record(),), want_map_notify=notify, proxy_reply=proxy)
    return encode(auth.sign(message, key, key_id))


def request(eid: str | IPv4Address | InstanceIdAddress, nonce: int = 0xBEEF) -> bytes:
    target = IPv4Address(eid) if isinstance(eid, str) else eid
    inner = MapRequest(nonce, (ITR,), (EidRecord(target, 32),))
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
    assert ms.expire(279.999) == []
    assert len(ms.registrations()) == 1
    assert ms.expire(280.0) == []
    assert ms.registrations() == ()
    assert ms.next_timer() is None
    assert ms.counters["expired"] == 1


def test_next_timer_is_earliest_of_several() -> None:
    ms = server()
    ms.receive(register(record("192.0.2.0", 25), notify=False), ETR_A, 4342, now=5.0)
    ms.receive(register(record("192.0.2.128", 25), notify=False), ETR_A, 4342, now=1.0)
    assert ms.next_timer() == 181.0
    ms.expire(181.0)
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
    ms.expire(180.0)
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
