"""The ITR resolver (lispd.control.resolver), driven by a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from ipaddress import IPv4Address, IPv6Address
from itertools import count

import pytest

from lispd.control.events import Datagram, Output, Released
from lispd.control.registrar import MapServerPeer
from lispd.control.resolver import RequestReason, Resolver, ResolverLimits, entry_of
from lispd.mapcache import (
    EidPrefix,
    Installed,
    Locator,
    MapCache,
    MapEntry,
    RemovalReason,
    Removed,
)
from lispd.wire import auth
from lispd.wire.address import InstanceIdAddress
from lispd.wire.auth import KeyId
from lispd.wire.control import decode, encode
from lispd.wire.inet import Ipv4Header, Ipv6Header
from lispd.wire.messages import (
    EncapsulatedControlMessage,
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
)
from lispd.wire.records import Action, EidRecord, LocatorRecord, MappingRecord

MR1 = IPv4Address("198.18.0.1")
MR2 = IPv4Address("198.18.0.2")
ITR = IPv4Address("198.18.1.10")
ITR6 = IPv6Address("2001:db8:ffff::10")
ETR = IPv4Address("198.18.2.20")
ETR2 = IPv4Address("198.18.2.21")
EID = IPv4Address("192.0.2.5")
EID2 = IPv4Address("192.0.2.6")
OTHER = IPv4Address("198.51.100.7")
MS = MapServerPeer(IPv4Address("198.18.0.9"), b"s3cret", KeyId.HMAC_SHA256_128)
XTR_ID = 0x0123456789ABCDEF0123456789ABCDEF


def _resolver(
    resolvers: tuple[IPv4Address, ...] = (MR1,),
    itr_rlocs: tuple[IPv4Address | IPv6Address, ...] = (ITR,),
    mapcache: MapCache | None = None,
    **kwargs: object,
) -> tuple[Resolver, MapCache]:
    cache = mapcache if mapcache is not None else MapCache(100)
    nonces: Iterator[int] = count(1000)
    names = {f.name for f in fields(ResolverLimits)}
    limits = ResolverLimits(**{k: v for k, v in kwargs.items() if k in names})  # type: ignore[arg-type]
    options = {k: v for k, v in kwargs.items() if k not in names}
    resolver = Resolver(
        cache, resolvers, itr_rlocs, nonces=lambda: next(nonces), limits=limits, **options  # type: ignore[arg-type]
    )
    return resolver, cache


def _request(d: Datagram) -> tuple[EncapsulatedControlMessage, MapRequest]:
    ecm = decode(d.payload)
    assert isinstance(ecm, EncapsulatedControlMessage)
    assert isinstance(ecm.message, MapRequest)
    return ecm, ecm.message


def _only(out: Output) -> MapRequest:
    (d,) = out.datagrams
    return _request(d)[1]


def _record(
    prefix: str = "192.0.2.0",
    mask: int = 24,
    rlocs: tuple[IPv4Address, ...] = (ETR,),
    ttl: int = 1,
    action: Action = Action.NO_ACTION,
) -> MappingRecord:
    locators = tuple(LocatorRecord(r, priority=1, weight=50) for r in rlocs)
    return MappingRecord(IPv4Address(prefix), mask, locators, ttl=ttl, action=action)


def _reply(nonce: int, *records: MappingRecord, probe: bool = False) -> bytes:
    return encode(MapReply(nonce, records or (_record(),), probe=probe))


def _answer(r: Resolver, out: Output, now: float, *records: MappingRecord) -> Output:
    return r.receive(_reply(_only(out).nonce, *records), ETR, 4342, now)


# -- misses -------------------------------------------------------------------


def test_cold_miss_sends_one_encapsulated_map_request() -> None:
    r, cache = _resolver(itr_rlocs=(ITR6, ITR))
    out = r.miss(0, EID, b"p1", 0.0)
    assert out.changes == () and out.released == ()
    (d,) = out.datagrams
    assert (d.destination, d.port) == (MR1, 4342)
    ecm, request = _request(d)
    assert isinstance(ecm.inner_ip, Ipv4Header)
    assert (ecm.inner_ip.source, ecm.inner_ip.destination) == (ITR, EID)
    assert (ecm.inner_udp.source_port, ecm.inner_udp.destination_port) == (4342, 4342)
    assert not ecm.to_etr
    assert request.nonce == 1000
    # The map-resolver answers to the first ITR-RLOC: ours of its family first.
    assert request.itr_rlocs == (ITR, ITR6)
    (record,) = request.records
    assert (record.eid_prefix, record.mask_len, record.notify) == (EID, 32, False)
    assert not (request.probe or request.smr or request.smr_invoked)
    assert request.xtr_id is None
    (pending,) = r.pending()
    assert pending.prefix == EidPrefix(0, EID, 32)
    assert (pending.reason, pending.attempts, pending.nonce) == (RequestReason.MISS, 1, 1000)
    assert (pending.map_resolver, pending.queued, pending.due) == (MR1, 1, 1.0)
    assert r.queued_packets == 1 and len(cache) == 0
    assert r.next_timer() == 1.0


def test_instance_id_wraps_the_eid_and_ipv6_without_v6_rloc() -> None:
    r, _ = _resolver()
    request = _only(r.miss(7, EID, None, 0.0))
    assert request.records[0].eid_prefix == InstanceIdAddress(7, EID)
    eid6 = IPv6Address("2001:db8::5")
    ecm, request = _request(r.miss(0, eid6, None, 0.0).datagrams[0])
    # No IPv6 RLOC: the inner header still has to be IPv6.
    assert isinstance(ecm.inner_ip, Ipv6Header)
    assert (ecm.inner_ip.source, ecm.inner_ip.destination) == (IPv6Address(0), eid6)
    assert request.records[0].mask_len == 128
    r.set_itr_rlocs((ITR, ITR6))
    ecm, request = _request(r.miss(0, IPv6Address("2001:db8::6"), None, 0.0).datagrams[0])
    assert ecm.inner_ip.source == ITR6
    assert request.itr_rlocs == (ITR, ITR6)


def test_second_miss_for_the_same_eid_only_queues() -> None:
    r, _ = _resolver()
    first = r.miss(0, EID, b"p1", 0.0)
    assert len(first.datagrams) == 1
    assert r.miss(0, EID, b"p2", 0.1) == Output()
    assert r.queued_packets == 2
    assert r.counters["map_requests_sent"] == 1
    assert r.counters["packets_queued"] == 2


def test_miss_that_raced_an_answer_is_released_at_once() -> None:
    r, cache = _resolver()
    cache.insert(MapEntry(EidPrefix.parse("192.0.2.0/24"), (Locator(ETR),), 60.0), 0.0)
    out = r.miss(0, EID, b"p", 1.0)
    assert out == Output(released=(Released(0, b"p"),))
    assert r.pending() == ()
    assert r.counters["released_at_once"] == 1


def test_negative_send_map_request_entry_is_still_resolved() -> None:
    r, cache = _resolver()
    negative = MapEntry(EidPrefix.parse("192.0.2.0/24"), (), 60.0, Action.SEND_MAP_REQUEST)
    cache.insert(negative, 0.0)
    assert len(r.miss(0, EID, b"p", 1.0).datagrams) == 1


def test_without_map_resolver_or_itr_rloc_packets_are_dropped() -> None:
    r, _ = _resolver(resolvers=())
    assert r.miss(0, EID, b"p", 0.0) == Output()
    assert r.counters["no_map_resolver"] == 1 and r.counters["packets_dropped"] == 1
    r, _ = _resolver(itr_rlocs=())
    assert r.miss(0, EID, b"p", 0.0) == Output()
    assert r.counters["no_itr_rloc"] == 1


def test_queue_bounds_per_eid_and_in_total() -> None:
    r, _ = _resolver(queue_per_eid=3, queue_total=4)
    for i in range(5):
        r.miss(0, EID, bytes([i]), 0.0)
    assert r.queued_packets == 3
    assert r.counters["queue_overflow"] == 2
    r.miss(0, EID2, b"a", 0.0)
    out = r.miss(0, EID2, b"b", 0.0)  # total bound
    assert r.queued_packets == 4
    assert r.counters["queue_overflow"] == 3
    assert out.datagrams == ()
    # A full queue still lets the request go: resolution helps the next packets.
    assert len(r.miss(0, OTHER, b"c", 0.0).datagrams) == 1
    assert r.counters["queue_overflow"] == 4


# -- answers ------------------------------------------------------------------


def test_reply_with_an_unknown_nonce_is_ignored() -> None:
    r, cache = _resolver()
    nonce = _only(r.miss(0, EID, b"p", 0.0)).nonce
    out = r.receive(_reply(nonce + 1), ETR, 4342, 0.1)
    assert out == Output()
    assert r.counters["unknown_nonce"] == 1
    assert len(cache) == 0 and r.queued_packets == 1


def test_good_reply_installs_and_releases_queued_packets_in_order() -> None:
    r, cache = _resolver()
    first = r.miss(0, EID, b"p1", 0.0)
    r.miss(0, EID, b"p2", 0.1)
    r.miss(0, EID, b"p3", 0.2)
    record = MappingRecord(
        IPv4Address("192.0.2.0"),
        24,
        (LocatorRecord(ETR, 1, 30), LocatorRecord(ETR2, 2, 70, reachable=False)),
        ttl=10,
    )
    out = _answer(r, first, 0.3, record)
    (change,) = out.changes
    assert isinstance(change, Installed)
    entry = change.entry
    assert entry.prefix == EidPrefix.parse("192.0.2.0/24")
    assert entry.locators == (Locator(ETR, 1, 30, True), Locator(ETR2, 2, 70, False))
    assert (entry.ttl, entry.created, entry.action) == (600.0, 0.3, Action.NO_ACTION)
    assert cache.get(entry.prefix) == entry
    assert out.released == tuple(Released(0, p) for p in (b"p1", b"p2", b"p3"))
    assert out.datagrams == ()
    assert r.pending() == () and r.queued_packets == 0
    assert r.counters["packets_released"] == 3 and r.counters["replies_accepted"] == 1
    # The request is closed: the same answer again is unknown.
    assert _answer(r, first, 0.4) == Output()
    assert r.counters["unknown_nonce"] == 1


def test_negative_reply_installs_its_action_and_releases() -> None:
    r, cache = _resolver()
    out = r.miss(0, EID, b"p", 0.0)
    negative = _record("192.0.2.0", 25, rlocs=(), ttl=15, action=Action.NATIVELY_FORWARD)
    answered = _answer(r, out, 0.1, negative)
    entry = cache.get(EidPrefix.parse("192.0.2.0/25"))
    assert entry is not None and entry.negative
    assert (entry.action, entry.ttl) == (Action.NATIVELY_FORWARD, 900.0)
    assert answered.released == (Released(0, b"p"),)


def test_wider_reply_prefix_releases_other_eids_packets() -> None:
    r, _ = _resolver()
    first = r.miss(0, EID, b"a1", 0.0)
    second = r.miss(0, EID2, b"b1", 0.1)
    r.miss(0, EID, b"a2", 0.2)
    r.miss(0, OTHER, b"c1", 0.3)  # not covered by the answer
    assert len(second.datagrams) == 1
    out = _answer(r, first, 0.4)
    assert out.released == tuple(Released(0, p) for p in (b"a1", b"b1", b"a2"))
    assert [p.prefix for p in r.pending()] == [EidPrefix(0, OTHER, 32)]
    # The other EID's request is closed too: its answer is no longer expected.
    assert _answer(r, second, 0.5) == Output()


def test_reply_for_a_prefix_not_covering_the_eid_is_refused() -> None:
    r, cache = _resolver()
    out = r.miss(0, EID, b"p", 0.0)
    assert _answer(r, out, 0.1, _record("198.51.100.0")) == Output()
    # One good record does not carry a bad one.
    assert _answer(r, out, 0.1, _record(), _record("198.51.100.0")) == Output()
    assert r.counters["reply_prefix_mismatch"] == 2
    assert len(cache) == 0 and r.queued_packets == 1


def test_record_ttl_zero_withdraws_and_answers_the_request() -> None:
    r, cache = _resolver()
    cache.insert(MapEntry(EidPrefix.parse("192.0.2.0/24"), (Locator(ETR),), 1.0), 0.0)
    out = r.miss(0, EID, b"p", 2.0)  # the entry has expired
    answered = _answer(r, out, 2.1, _record(ttl=0))
    assert answered.changes == (Removed(EidPrefix.parse("192.0.2.0/24"), RemovalReason.WITHDRAWN),)
    # The nonce matched: asking again would get the same answer. The packet
    # goes back to the data plane, which will miss (and ask, rate-limited) again.
    assert answered.released == (Released(0, b"p"),)
    assert r.pending() == ()


def test_probe_replies_and_garbage_are_not_the_resolvers() -> None:
    r, _ = _resolver()
    nonce = _only(r.miss(0, EID, b"p", 0.0)).nonce
    assert r.receive(_reply(nonce, probe=True), ETR, 4342, 0.1) == Output()
    assert r.receive(b"\x20", ETR, 4342, 0.1) == Output()
    assert r.receive(encode(MapRegister(1, ())), ETR, 4342, 0.1) == Output()
    assert r.counters["probe_reply_ignored"] == 1
    assert r.counters["malformed"] == 1 and r.counters["unexpected"] == 1
    assert r.queued_packets == 1


def test_ttl_is_capped_and_non_ip_locators_are_skipped() -> None:
    r, cache = _resolver(max_ttl=3600.0)
    out = r.miss(0, EID, None, 0.0)
    _answer(r, out, 0.1, _record(ttl=0xFFFFFFFF))
    entry = cache.get(EidPrefix.parse("192.0.2.0/24"))
    assert entry is not None and entry.ttl == 3600.0


# -- rate limits, retries, failover -------------------------------------------


def test_one_request_per_eid_per_second() -> None:
    r, cache = _resolver()
    out = r.miss(0, EID, b"p", 0.0)
    _answer(r, out, 0.1, _record("192.0.2.5", 32, ttl=0xFFFFFFFF))
    cache.flush()
    # 0.5 s after the last Map-Request for this EID: wait, but keep the packet.
    assert r.miss(0, EID, b"q", 0.5) == Output()
    assert r.counters["rate_limited"] == 1
    assert r.next_timer() == 1.0
    assert r.timer(0.99) == Output()
    assert len(r.timer(1.0).datagrams) == 1
    assert r.queued_packets == 1


def test_global_rate_limit_defers_in_order() -> None:
    r, _ = _resolver(request_rate=2.0, request_burst=2)
    eids = [IPv4Address(f"192.0.2.{i}") for i in range(10, 14)]
    sent = [len(r.miss(0, eid, b"p", 0.0).datagrams) for eid in eids]
    assert sent == [1, 1, 0, 0]
    assert r.counters["rate_limited_global"] >= 1
    assert r.next_timer() == pytest.approx(0.5)
    (d,) = r.timer(0.5).datagrams
    assert _request(d)[1].records[0].eid_prefix == eids[2]
    (d,) = r.timer(1.0).datagrams
    assert _request(d)[1].records[0].eid_prefix == eids[3]
    assert r.queued_packets == 4


def test_retries_back_off_with_new_nonces_and_fail_over() -> None:
    r, _ = _resolver(resolvers=(MR1, MR2), max_attempts=5)
    (first,) = r.miss(0, EID, b"p", 0.0).datagrams
    sends = [(0.0, first)]
    while (when := r.next_timer()) is not None and len(sends) < 5:
        assert r.timer(when - 0.001) == Output()
        (d,) = r.timer(when).datagrams
        sends.append((when, d))
    times = [t for t, _ in sends]
    assert times == [0.0, 1.0, 3.0, 7.0, 15.0]  # 1, 2, 4, 8 s between tries
    assert [d.destination for _, d in sends] == [MR1, MR2, MR1, MR2, MR1]
    nonces = [_request(d)[1].nonce for _, d in sends]
    assert len(set(nonces)) == 5
    assert r.counters["retries"] == 4
    # Then, after the capped back-off, give up: packets dropped, request forgotten.
    assert r.next_timer() == 23.0
    out = r.timer(23.0)
    assert out == Output()
    assert r.pending() == () and r.queued_packets == 0
    assert r.counters["resolution_failed"] == 1 and r.counters["queued_dropped"] == 1
    # A late answer is unknown; a new miss tries again at once.
    assert r.receive(_reply(nonces[0]), ETR, 4342, 23.1) == Output()
    assert r.counters["unknown_nonce"] == 1
    assert len(r.miss(0, EID, b"p", 23.2).datagrams) == 1


def test_an_earlier_nonce_still_answers_and_its_resolver_is_preferred() -> None:
    r, _ = _resolver(resolvers=(MR1, MR2))
    r.miss(0, EID, b"p", 0.0)
    (second,) = r.timer(1.0).datagrams
    assert second.destination == MR2
    # The answer to the retry (via MR2) arrives: MR2 is preferred from now on.
    out = r.receive(_reply(_request(second)[1].nonce), ETR, 4342, 1.1)
    assert out.released == (Released(0, b"p"),)
    (d,) = r.miss(0, OTHER, None, 2.0).datagrams
    assert d.destination == MR2
    # An answer with the first nonce of a request that is still retrying counts.
    (retry,) = r.timer(3.0).datagrams
    assert retry.destination == MR1
    out = r.receive(_reply(_request(d)[1].nonce, _record("198.51.100.0")), ETR, 4342, 3.1)
    assert len(out.changes) == 1
    assert r.pending() == ()


# -- refresh ------------------------------------------------------------------


def test_entries_in_use_are_refreshed_before_their_ttl_runs_out() -> None:
    r, cache = _resolver()
    out = r.miss(0, EID, None, 0.0)
    _answer(r, out, 0.0, _record(ttl=1))
    used = EidPrefix.parse("192.0.2.0/24")
    idle = EidPrefix.parse("198.51.100.0/24")
    cache.insert(MapEntry(idle, (Locator(ETR),), 60.0), 0.0)
    for t in range(1, 54):
        r.used((used,), float(t))
        assert r.timer(float(t)).datagrams == ()
    # 60 s TTL: refreshed when max(10% of it, 5 s) = 6 s are left.
    r.used((used,), 54.0)
    assert r.next_timer() == 54.0
    request = _only(r.timer(54.0))
    assert (request.records[0].eid_prefix, request.records[0].mask_len) == (used.address, 24)
    assert r.pending()[0].reason is RequestReason.REFRESH
    assert cache.get(used) is not None  # the old entry keeps serving
    r.used((used,), 54.5)  # no second request while one is outstanding
    assert r.timer(54.5).datagrams == ()
    answered = r.receive(_reply(request.nonce, _record(ttl=2)), ETR, 4342, 54.8)
    (change,) = answered.changes
    assert isinstance(change, Installed) and change.entry.ttl == 120.0
    # The unused entry was never refreshed: it expires.
    out = r.timer(60.0)
    assert out.changes == (Removed(idle, RemovalReason.EXPIRED),)
    assert r.counters["map_requests_sent"] == 2


def test_static_and_negative_entries_are_not_refreshed() -> None:
    r, cache = _resolver()
    static = MapEntry(EidPrefix.parse("192.0.2.0/24"), (Locator(ETR),))
    negative = MapEntry(EidPrefix.parse("198.51.100.0/24"), (), 10.0, Action.NATIVELY_FORWARD)
    cache.insert(static, 0.0)
    cache.insert(negative, 0.0)
    r.used((static.prefix, negative.prefix, EidPrefix.parse("203.0.113.0/24")), 9.5)
    assert r.timer(9.5).datagrams == ()
    assert r.pending() == ()


# -- Solicit-Map-Request ------------------------------------------------------


def _smr(*eids: IPv4Address) -> bytes:
    records = tuple(EidRecord(eid, 32) for eid in eids)
    return encode(MapRequest(77, (ETR,), records, smr=True))


def test_smr_sends_an_smr_invoked_request_via_the_map_resolver() -> None:
    r, cache = _resolver()
    entry = MapEntry(EidPrefix.parse("192.0.2.0/24"), (Locator(ETR),), 600.0)
    cache.insert(entry, 0.0)
    out = r.receive(_smr(EID, OTHER), ETR, 4342, 1.0)
    assert out.changes == () and out.released == ()
    (d,) = out.datagrams
    assert (d.destination, d.port) == (MR1, 4342)
    request = _request(d)[1]
    assert request.smr_invoked and not request.smr
    (record,) = request.records
    assert (record.eid_prefix, record.mask_len) == (entry.prefix.address, 24)
    assert cache.get(entry.prefix) == entry  # nothing changed by the SMR itself
    assert r.counters["smr_received"] == 1
    assert r.counters["smr_ignored"] == 1  # OTHER: nothing cached
    # A second SMR while the first is outstanding changes nothing.
    assert r.receive(_smr(EID), ETR, 4342, 1.1) == Output()
    assert r.counters["smr_ignored"] == 2
    # Answered, then another SMR right away: rate-limited to one per second.
    r.receive(_reply(request.nonce), ETR, 4342, 1.2)
    assert r.receive(_smr(EID), ETR, 4342, 1.5) == Output()
    assert r.next_timer() == 2.0
    assert _only(r.timer(2.0)).smr_invoked


def test_an_smr_naming_the_changed_eid_as_its_source_is_understood() -> None:
    """OpenOverlayRouter's form: the record is the ITR's own EID prefix the
    traffic came from, the source EID the one that changed."""
    r, cache = _resolver()
    entry = MapEntry(EidPrefix.parse("192.0.2.0/24"), (Locator(ETR),), 600.0)
    cache.insert(entry, 0.0)
    smr = MapRequest(77, (ETR,), (EidRecord(IPv4Address("198.51.100.0"), 24),), source_eid=EID,
                     smr=True)
    request = _request(_only_datagram(r.receive(encode(smr), ETR, 4342, 1.0)))[1]
    assert request.smr_invoked
    assert [(x.eid_prefix, x.mask_len) for x in request.records] == [(entry.prefix.address, 24)]
    assert r.counters["smr_invoked"] == 1 and r.counters["smr_ignored"] == 1


def _only_datagram(out: Output) -> Datagram:
    (datagram,) = out.datagrams
    return datagram


# -- publish/subscribe (RFC 9437) ---------------------------------------------


def _pubsub() -> tuple[Resolver, MapCache]:
    return _resolver(map_servers=(MS,), subscribe=True, xtr_id=XTR_ID, site_id=3)


def _notify(*records: MappingRecord, key: bytes = MS.key, xtr_id: int | None = XTR_ID) -> bytes:
    notify = MapNotify(0x55, records, xtr_id=xtr_id, site_id=None if xtr_id is None else 3)
    return encode(auth.sign(notify, key, MS.key_id))


@pytest.mark.parametrize("pitr", [False, True])
def test_a_pitrs_requests_say_so(pitr: bool) -> None:
    r, _ = _resolver(pitr=pitr)
    assert _only(r.miss(0, EID, None, 0.0)).pitr is pitr


def test_subscribing_requests_carry_the_n_bit_and_xtr_id() -> None:
    r, _ = _pubsub()
    request = _only(r.miss(0, EID, None, 0.0))
    assert request.records[0].notify
    assert (request.xtr_id, request.site_id) == (XTR_ID, 3)


def test_publication_from_the_map_server_is_installed_and_acked() -> None:
    r, cache = _pubsub()
    r.miss(0, EID, b"p", 0.0)
    record = _record(rlocs=(ETR2,))
    out = r.receive(_notify(record), MS.address, 4342, 0.5)
    (change,) = out.changes
    assert isinstance(change, Installed) and change.entry.locators[0].address == ETR2
    assert out.released == (Released(0, b"p"),)
    (d,) = out.datagrams
    assert (d.destination, d.port) == (MS.address, 4342)
    assert auth.verify(d.payload, MS.key)
    ack = decode(d.payload)
    assert isinstance(ack, MapNotifyAck)
    assert (ack.nonce, ack.records, ack.key_id) == (0x55, (record,), MS.key_id)
    assert r.counters["notify_accepted"] == 1
    # No locators but a TTL: unregistered space now, a negative entry (as a
    # negative Map-Reply would give), not a withdrawal that makes the next packet ask.
    out = r.receive(_notify(_record(rlocs=(), action=Action.NATIVELY_FORWARD)), MS.address,
                    4342, 1.0)
    (change,) = out.changes
    assert isinstance(change, Installed) and change.entry.negative
    assert change.entry.action is Action.NATIVELY_FORWARD
    # TTL 0: the mapping is withdrawn.
    out = r.receive(_notify(_record(rlocs=(), ttl=0)), MS.address, 4342, 2.0)
    assert out.changes == (Removed(EidPrefix.parse("192.0.2.0/24"), RemovalReason.WITHDRAWN),)
    assert len(out.datagrams) == 1 and len(cache) == 0


@pytest.mark.parametrize(
    ("payload", "source", "reason"),
    [
        (_notify(_record(), key=b"wrong"), MS.address, "notify_bad_auth"),
        (encode(MapNotify(1, (_record(),))), MS.address, "notify_bad_auth"),  # key ID 0
        (_notify(_record()), IPv4Address("198.18.0.99"), "notify_unknown_source"),
        (_notify(_record(), xtr_id=XTR_ID + 1), MS.address, "notify_wrong_xtr_id"),
    ],
)
def test_bad_publications_change_nothing(
    payload: bytes, source: IPv4Address, reason: str
) -> None:
    r, cache = _pubsub()
    assert r.receive(payload, source, 4342, 0.5) == Output()
    assert r.counters[reason] == 1
    assert len(cache) == 0


# -- helpers ------------------------------------------------------------------


def test_entry_of_a_record() -> None:
    record = MappingRecord(
        InstanceIdAddress(5, IPv4Address("192.0.2.0")), 24, (LocatorRecord(ETR),), ttl=2
    )
    entry = entry_of(record, 7.0)
    assert entry == MapEntry(EidPrefix.parse("[5]192.0.2.0/24"), (Locator(ETR),), 120.0,
                             created=7.0)
    assert entry_of(MappingRecord(InstanceIdAddress(2**24, EID), 32), 0.0) is None


def test_static_mappings_outrank_the_network() -> None:
    r, cache = _pubsub()
    static = MapEntry(EidPrefix.parse("192.0.2.0/24"), (Locator(ETR),), None)
    cache.insert(static, 0.0)
    published = r.receive(_notify(_record(rlocs=(ETR2,))), MS.address, 4342, 0.1)
    assert published.changes == () and cache.get(static.prefix) == static
    withdrawn = r.receive(_notify(_record(ttl=0)), MS.address, 4342, 0.2)
    assert withdrawn.changes == () and cache.get(static.prefix) == static
    assert r.counters["static_kept"] == 2
