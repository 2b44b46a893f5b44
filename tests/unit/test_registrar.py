"""The ETR registrar (lispd.control.registrar), driven by a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest

from lispd.config.model import DatabaseMapping, RlocConfig
from lispd.control.events import Datagram
from lispd.control.registrar import (
    Displaced,
    Left,
    LocalMapping,
    MapServerPeer,
    Registrar,
    Returned,
)
from lispd.wire import auth
from lispd.wire.address import InstanceIdAddress, MacAddress
from lispd.wire.auth import KeyId
from lispd.wire.control import decode, encapsulate, encode
from lispd.wire.messages import (
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
)
from lispd.wire.records import EidRecord, LocatorRecord, MappingRecord

MS1 = MapServerPeer(IPv4Address("198.18.0.1"), b"s3cret", KeyId.HMAC_SHA256_128)
MS2 = MapServerPeer(IPv4Address("198.18.0.2"), b"other", KeyId.HMAC_SHA1_96)
RLOC = IPv4Address("198.18.1.10")
NEW_RLOC = IPv4Address("203.0.113.7")
ITR = IPv4Address("198.18.2.20")
EID = LocalMapping(0, IPv4Network("192.0.2.0/24"), (RlocConfig(RLOC, 1, 100),))
EID_IID = LocalMapping(7, IPv4Network("10.1.0.0/16"), (RlocConfig(RLOC, 2, 50),))


def _nonces() -> Iterator[int]:
    n = 1000
    while True:
        n += 1
        yield n


def _registrar(
    mappings: tuple[LocalMapping, ...] = (EID,),
    servers: tuple[MapServerPeer, ...] = (MS1,),
) -> Registrar:
    it = _nonces()
    return Registrar(mappings, servers, 60.0, lambda: next(it))


def _register(d: Datagram) -> MapRegister:
    message = decode(d.payload)
    assert isinstance(message, MapRegister)
    return message


def _notify(nonce: int, server: MapServerPeer = MS1, key: bytes | None = None) -> bytes:
    signed = auth.sign(MapNotify(nonce, ()), server.key if key is None else key, server.key_id)
    return encode(signed)


def _ack(r: Registrar, d: Datagram, now: float, server: MapServerPeer = MS1) -> None:
    assert r.receive(_notify(_register(d).nonce, server), server.address, 4342, now) == []


def _request(eid: str = "192.0.2.33", *, probe: bool = False, smr: bool = False) -> MapRequest:
    record = EidRecord(IPv4Address(eid), 32)
    return MapRequest(0xABCDEF, (ITR,), (record,), probe=probe, smr=smr)


# -- registration -------------------------------------------------------------


def test_start_registers_every_mapping_with_every_server() -> None:
    r = _registrar((EID, EID_IID), (MS1, MS2))
    out = r.start(0.0)
    assert len(out) == 4
    assert {(d.destination, d.port) for d in out} == {(MS1.address, 4342), (MS2.address, 4342)}
    for d in out:
        server = MS1 if d.destination == MS1.address else MS2
        assert auth.verify(d.payload, server.key)
        register = _register(d)
        assert register.want_map_notify
        assert register.key_id == server.key_id
        (record,) = register.records
        assert record.ttl == 1440 and record.authoritative
        assert [loc.locator for loc in record.locators] == [RLOC]
    eids = {_register(d).records[0].eid_prefix for d in out}
    assert eids == {IPv4Address("192.0.2.0"), InstanceIdAddress(7, IPv4Address("10.1.0.0"))}
    assert len({_register(d).nonce for d in out}) == 4
    assert r.next_timer() == 1.0
    assert not r.acknowledged(MS1.address)


def test_from_config() -> None:
    config = DatabaseMapping(
        eid_prefix=IPv4Network("192.0.2.0/24"), rlocs=(RlocConfig(RLOC, 1, 100),)
    )
    assert LocalMapping.from_config(config) == EID


def test_retries_back_off_exponentially_capped_at_the_interval() -> None:
    r = _registrar()
    (first,) = r.start(0.0)
    nonce = _register(first).nonce
    now, times = 0.0, []
    for _ in range(9):
        when = r.next_timer()
        assert when is not None
        assert r.timer(when - 0.001) == []  # nothing early
        now = when
        (again,) = r.timer(now)
        assert _register(again).nonce == nonce  # same registration, same nonce
        times.append(now)
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert r.status()[0].attempts == 10
    assert r.counters["register_retries"] == 9


def test_map_notify_acknowledges_then_refresh_every_interval() -> None:
    r = _registrar()
    (first,) = r.start(0.0)
    _ack(r, first, 0.2)
    (status,) = r.status()
    assert status.acknowledged and status.acknowledged_at == 0.2
    assert r.acknowledged(MS1.address)
    assert r.next_timer() == 60.0
    assert r.timer(59.9) == []
    (refresh,) = r.timer(60.0)
    assert _register(refresh).nonce != _register(first).nonce
    assert not r.acknowledged(MS1.address)
    assert r.next_timer() == 61.0  # unacknowledged again: retry after 1 s
    _ack(r, refresh, 60.5)
    assert r.next_timer() == 120.0


def test_ack_after_retries_resets_the_back_off() -> None:
    r = _registrar()
    (first,) = r.start(0.0)
    r.timer(1.0)
    (retry,) = r.timer(3.0)
    _ack(r, retry, 3.1)
    assert r.next_timer() == 63.0
    (refresh,) = r.timer(63.0)
    assert r.next_timer() == 64.0
    assert _register(refresh).nonce != _register(first).nonce


def test_late_notify_for_an_old_nonce_is_unknown() -> None:
    r = _registrar()
    (first,) = r.start(0.0)
    _ack(r, first, 0.1)
    r.timer(60.0)
    r.receive(_notify(_register(first).nonce), MS1.address, 4342, 60.1)
    assert r.counters["unknown_nonce"] == 1
    assert not r.acknowledged(MS1.address)


def test_each_server_is_acknowledged_separately() -> None:
    r = _registrar((EID,), (MS1, MS2))
    one, two = r.start(0.0)
    _ack(r, one, 0.1, MS1)
    assert r.acknowledged(MS1.address) and not r.acknowledged(MS2.address)
    assert r.next_timer() == 1.0
    (retry,) = r.timer(1.0)
    assert retry.destination == MS2.address
    # MS1's nonce presented by MS2 (signed with MS2's key) acknowledges nothing.
    r.receive(_notify(_register(one).nonce, MS2), MS2.address, 4342, 1.1)
    assert r.counters["unknown_nonce"] == 1
    _ack(r, two, 1.2, MS2)
    assert r.acknowledged(MS2.address)


def test_a_more_specific_elsewhere_is_a_host_that_left() -> None:
    """The map-server tells us of a host inside our prefix registered by
    another xTR: acknowledged and reported; the prefix stays ours."""
    r = _settled()
    inside = _theirs("192.0.2.70", 32)
    out = r.receive(_unsolicited(inside), MS1.address, 4342, 5.0)
    (ack,) = out
    assert isinstance(decode(ack.payload), MapNotifyAck)
    (event,) = r.take_events()
    assert isinstance(event, Left)
    assert (event.instance_id, event.eid_prefix, event.records) == (
        0, IPv4Network("192.0.2.70/32"), (inside,))
    assert r.yielded() == () and r.counters["left"] == 1
    # The map-server sends it again until our Ack arrives: acked, not reported again.
    assert len(r.receive(_unsolicited(inside), MS1.address, 4342, 5.5)) == 1
    assert r.take_events() == []


def test_a_host_that_left_registered_elsewhere_no_more_is_back() -> None:
    r = _settled()
    withdrawn = replace(_theirs("192.0.2.70", 32), locators=(), ttl=0)
    assert len(r.receive(_unsolicited(withdrawn), MS1.address, 4342, 5.0)) == 1  # acked
    (event,) = r.take_events()
    assert isinstance(event, Returned)
    assert (event.instance_id, event.eid_prefix) == (0, IPv4Network("192.0.2.70/32"))
    assert r.counters["returned"] == 1 and r.yielded() == ()


@pytest.mark.parametrize(
    ("payload", "source", "reason"),
    [
        (b"\x40", MS1.address, "malformed"),
        (_notify(1001, key=b"wrong"), MS1.address, "bad_auth"),
        (_notify(1001), IPv4Address("192.0.2.99"), "unknown_source"),
        (encode(MapNotifyAck(1001, ())), MS1.address, "unexpected_type"),
        (encode(MapReply(1001, ())), MS1.address, "unexpected_type"),
        (encode(MapNotify(1001, ())), MS1.address, "bad_auth"),  # key ID 0
    ],
)
def test_bad_notifies_are_counted_and_ignored(
    payload: bytes, source: IPv4Address, reason: str
) -> None:
    r = _registrar()
    r.start(0.0)
    assert r.receive(payload, source, 4342, 0.5) == []
    assert r.counters[reason] == 1
    assert not r.acknowledged(MS1.address)
    assert r.next_timer() == 1.0


# -- Map-Requests and RLOC probes ---------------------------------------------------


def _reply(out: list[Datagram], port: int = 61000) -> MapReply:
    (d,) = out
    assert (d.destination, d.port) == (ITR, port)
    reply = decode(d.payload)
    assert isinstance(reply, MapReply)
    return reply


def test_map_request_for_our_eid_gets_an_authoritative_reply() -> None:
    r = _registrar()
    r.start(0.0)
    reply = _reply(r.receive(encode(_request()), ITR, 61000, 1.0))
    assert reply.nonce == 0xABCDEF and not reply.probe
    (record,) = reply.records
    assert record.authoritative
    assert (record.eid_prefix, record.mask_len) == (IPv4Address("192.0.2.0"), 24)
    assert [(loc.locator, loc.priority, loc.weight) for loc in record.locators] == [
        (RLOC, 1, 100)
    ]
    assert r.counters["replies_sent"] == 1


def test_rloc_probe_gets_a_reply_with_the_p_bit() -> None:
    r = _registrar()
    r.start(0.0)
    reply = _reply(r.receive(encode(_request(probe=True)), ITR, 4342, 1.0), 4342)
    assert reply.probe and reply.records[0].locators[0].probed
    assert r.counters["probe_replies_sent"] == 1


def test_reply_goes_to_the_first_usable_itr_rloc() -> None:
    r = _registrar()
    r.start(0.0)
    request = replace(_request(), itr_rlocs=(MacAddress(b"\x00" * 6), ITR, IPv4Address("1.1.1.1")))
    _reply(r.receive(encode(request), IPv4Address("9.9.9.9"), 61000, 1.0))
    only_mac = replace(request, itr_rlocs=(MacAddress(b"\x00" * 6),))
    assert r.receive(encode(only_mac), ITR, 61000, 1.0) == []
    assert r.counters["no_usable_itr_rloc"] == 1


def test_encapsulated_request_from_a_map_server_is_answered() -> None:
    r = _registrar()
    r.start(0.0)
    ecm = encapsulate(
        _request(), IPv4Address("192.0.2.200"), IPv4Address("192.0.2.33"), 51000, 4342
    )
    reply = _reply(r.receive(encode(ecm), MS1.address, 4342, 1.0), 51000)
    assert reply.nonce == 0xABCDEF


def test_instance_id_and_most_specific_mapping() -> None:
    narrow = LocalMapping(0, IPv4Network("192.0.2.128/25"), (RlocConfig(NEW_RLOC),))
    r = _registrar((EID, narrow, EID_IID))
    r.start(0.0)
    reply = _reply(r.receive(encode(_request("192.0.2.200")), ITR, 61000, 1.0))
    assert reply.records[0].mask_len == 25
    iid = MapRequest(5, (ITR,), (EidRecord(InstanceIdAddress(7, IPv4Address("10.1.2.3")), 32),))
    reply = _reply(r.receive(encode(iid), ITR, 61000, 1.0))
    assert reply.records[0].eid_prefix == InstanceIdAddress(7, IPv4Address("10.1.0.0"))
    # The same address in another instance is not ours.
    other = replace(iid, records=(EidRecord(InstanceIdAddress(8, IPv4Address("10.1.2.3")), 32),))
    assert r.receive(encode(other), ITR, 61000, 1.0) == []
    assert r.counters["not_our_eid"] == 1


@pytest.mark.parametrize(
    "record",
    [
        EidRecord(IPv4Address("198.51.100.1"), 32),
        EidRecord(IPv4Address("192.0.0.0"), 16),  # wider than ours
        EidRecord(IPv6Address("2001:db8::1"), 128),
        EidRecord(MacAddress(b"\x02" * 6), 48),
    ],
)
def test_request_for_an_eid_we_do_not_have_is_counted(record: EidRecord) -> None:
    r = _registrar()
    r.start(0.0)
    request = MapRequest(9, (ITR,), (record,))
    assert r.receive(encode(request), ITR, 61000, 1.0) == []
    assert r.counters["not_our_eid"] == 1


def test_smr_is_not_answered() -> None:
    r = _registrar()
    r.start(0.0)
    assert r.receive(encode(_request(smr=True)), ITR, 4342, 1.0) == []
    assert r.counters["smr_ignored"] == 1


# -- stop and update --------------------------------------------------------------


def test_stop_deregisters_with_ttl_zero_and_goes_quiet() -> None:
    r = _registrar((EID, EID_IID), (MS1, MS2))
    r.start(0.0)
    out = r.stop(5.0)
    assert len(out) == 4
    for d in out:
        register = _register(d)
        assert register.records[0].ttl == 0 and not register.want_map_notify
        assert auth.verify(d.payload, MS1.key if d.destination == MS1.address else MS2.key)
    assert r.next_timer() is None
    assert r.timer(100.0) == []
    assert r.status() == ()
    assert r.receive(encode(_request()), ITR, 61000, 6.0) == []
    assert r.stop(7.0) == []


def test_update_with_a_new_rloc_registers_at_once() -> None:
    r = _registrar((EID, EID_IID))
    a, b = r.start(0.0)
    _ack(r, a, 0.1)
    _ack(r, b, 0.1)
    moved = replace(EID, locators=(RlocConfig(NEW_RLOC),))
    (d,) = r.update((moved, EID_IID), 30.0)
    register = _register(d)
    assert [loc.locator for loc in register.records[0].locators] == [NEW_RLOC]
    assert register.records[0].ttl == 1440
    assert r.next_timer() == 31.0  # the new registration awaits its Map-Notify
    unchanged = [s for s in r.status() if s.instance_id == 7]
    assert unchanged[0].acknowledged and unchanged[0].due == 60.0
    reply = _reply(r.receive(encode(_request()), ITR, 61000, 31.0))
    assert reply.records[0].locators[0].locator == NEW_RLOC


def test_update_removing_a_mapping_deregisters_it() -> None:
    r = _registrar((EID, EID_IID))
    r.start(0.0)
    (d,) = r.update((EID_IID,), 10.0)
    register = _register(d)
    assert register.records[0].ttl == 0
    assert register.records[0].eid_prefix == IPv4Address("192.0.2.0")
    assert [s.instance_id for s in r.status()] == [7]
    assert r.receive(encode(_request()), ITR, 61000, 11.0) == []


def test_update_before_start_sends_nothing() -> None:
    r = _registrar()
    assert r.update((EID_IID,), 0.0) == []
    assert r.next_timer() is None
    (d,) = r.start(1.0)
    assert _register(d).records[0].eid_prefix == InstanceIdAddress(7, IPv4Address("10.1.0.0"))


def test_register_interval_below_the_first_retry_is_refused() -> None:
    with pytest.raises(ValueError, match="register interval"):
        Registrar((EID,), (MS1,), 0.5)


# -- xTR-ID (RFC 9437) ------------------------------------------------------------


def test_every_register_carries_the_xtr_id() -> None:
    it = _nonces()
    r = Registrar((EID,), (MS1,), 60.0, lambda: next(it), xtr_id=0xABC, site_id=5)
    (first,) = r.start(0.0)
    (retry,) = r.timer(1.0)
    (gone,) = r.stop(2.0)
    for d in (first, retry, gone):
        register = _register(d)
        assert (register.xtr_id, register.site_id) == (0xABC, 5)
        assert auth.verify(d.payload, MS1.key)
    # The Site-ID defaults to 0; without an xTR-ID there is neither.
    (d,) = Registrar((EID,), (MS1,), xtr_id=1).start(0.0)
    assert (_register(d).xtr_id, _register(d).site_id) == (1, 0)
    (d,) = _registrar().start(0.0)
    assert (_register(d).xtr_id, _register(d).site_id) == (None, None)


@pytest.mark.parametrize(("xtr_id", "site_id"), [(-1, None), (1 << 128, None), (1, 1 << 64)])
def test_out_of_range_ids_are_refused(xtr_id: int, site_id: int | None) -> None:
    with pytest.raises(ValueError):
        Registrar((EID,), (MS1,), xtr_id=xtr_id, site_id=site_id)


# -- mobility 1: our locators changed ---------------------------------------------------


def test_locator_change_registers_at_once_everywhere_with_a_fresh_back_off() -> None:
    r = _registrar((EID,), (MS1, MS2))
    old = r.start(0.0)
    for when in (1.0, 3.0, 7.0):  # unanswered: the back-off grew to 8 s
        r.timer(when)
    assert {s.backoff for s in r.status()} == {8.0}
    moved = replace(EID, locators=(RlocConfig(NEW_RLOC),))
    out = r.update((moved,), 9.5)
    assert {d.destination for d in out} == {MS1.address, MS2.address}
    for d in out:
        register = _register(d)
        assert [loc.locator for loc in register.records[0].locators] == [NEW_RLOC]
        assert register.nonce not in {_register(o).nonce for o in old}
    assert {(s.attempts, s.backoff, s.due) for s in r.status()} == {(1, 1.0, 10.5)}
    assert r.next_timer() == 10.5
    # A late Map-Notify for the old registration acknowledges nothing.
    r.receive(_notify(_register(old[0]).nonce), MS1.address, 4342, 9.6)
    assert r.counters["unknown_nonce"] == 1
    _ack(r, out[0], 9.7, MS1 if out[0].destination == MS1.address else MS2)
    assert sum(s.acknowledged for s in r.status()) == 1


# -- mobility 2: another xTR took our EID over --------------------------------------------


def _theirs(prefix: str = "192.0.2.0", mask: int = 24, rloc: IPv4Address = NEW_RLOC,
            iid: int = 0) -> MappingRecord:
    eid: IPv4Address | InstanceIdAddress = IPv4Address(prefix)
    if iid:
        eid = InstanceIdAddress(iid, IPv4Address(prefix))
    return MappingRecord(eid, mask, (LocatorRecord(rloc),))


def _unsolicited(*records: MappingRecord, nonce: int = 77, server: MapServerPeer = MS1,
                 key: bytes | None = None) -> bytes:
    notify = MapNotify(nonce, records or (_theirs(),))
    return encode(auth.sign(notify, server.key if key is None else key, server.key_id))


def _settled(servers: tuple[MapServerPeer, ...] = (MS1,)) -> Registrar:
    """Both mappings registered and acknowledged by every server."""
    r = _registrar((EID, EID_IID), servers)
    for d in r.start(0.0):
        _ack(r, d, 0.1, MS1 if d.destination == MS1.address else MS2)
    return r


def test_displacement_yields_the_mapping_acks_and_reports() -> None:
    r = _settled()
    payload = _unsolicited()
    (ack_d,) = r.receive(payload, MS1.address, 4342, 5.0)
    assert (ack_d.destination, ack_d.port) == (MS1.address, 4342)
    assert auth.verify(ack_d.payload, MS1.key)
    ack = decode(ack_d.payload)
    assert isinstance(ack, MapNotifyAck)
    assert (ack.nonce, ack.records) == (77, (_theirs(),))
    assert r.take_events() == [Displaced(0, EID.eid_prefix, (_theirs(),), 5.0)]
    assert r.take_events() == []
    assert r.yielded() == (EID.key,)
    (yielded,) = [s for s in r.status() if s.instance_id == 0]
    assert yielded.yielded
    assert r.counters["displaced"] == 1
    # No more refreshes for it, and no more answers for it.
    assert r.next_timer() == 60.0
    out = r.timer(60.0)
    assert [_register(d).records[0].eid_prefix for d in out] == [
        InstanceIdAddress(7, IPv4Address("10.1.0.0"))
    ]
    assert r.receive(encode(_request()), ITR, 61000, 61.0) == []
    assert r.counters["not_our_eid"] == 1
    # Nor a deregistration on stop: the prefix is the other xTR's.
    gone = r.stop(70.0)
    assert [_register(d).records[0].eid_prefix for d in gone] == [
        InstanceIdAddress(7, IPv4Address("10.1.0.0"))
    ]


def test_a_repeated_displacement_notify_is_acked_again_and_acted_on_once() -> None:
    r = _settled()
    first = r.receive(_unsolicited(), MS1.address, 4342, 5.0)
    again = r.receive(_unsolicited(), MS1.address, 4342, 6.0)
    assert decode(again[0].payload) == decode(first[0].payload)
    assert len(r.take_events()) == 1
    assert r.counters["displaced_repeat"] == 1
    # Even after a reclaim, a retransmission of the old news changes nothing.
    r.reclaim(EID.key, 7.0)
    assert r.receive(_unsolicited(), MS1.address, 4342, 8.0) != []
    assert r.yielded() == () and r.take_events() == []


def test_displacement_via_one_server_stops_registering_with_all() -> None:
    r = _settled((MS1, MS2))
    r.receive(_unsolicited(), MS1.address, 4342, 5.0)
    assert {(str(s.server), s.yielded) for s in r.status() if s.instance_id == 0} == {
        (str(MS1.address), True), (str(MS2.address), True),
    }
    assert r.acknowledged(MS2.address)  # what is still ours is acknowledged
    out = r.timer(60.0)
    assert {d.destination for d in out} == {MS1.address, MS2.address}
    assert all(_register(d).records[0].mask_len == 16 for d in out)


def test_the_same_prefix_displaces_an_instance_mapping() -> None:
    r = _settled()
    r.receive(_unsolicited(_theirs("10.1.0.0", 16, iid=7)), MS1.address, 4342, 5.0)
    (event,) = r.take_events()
    assert (event.instance_id, event.eid_prefix) == (7, EID_IID.eid_prefix)


@pytest.mark.parametrize(
    "records",
    [
        (_theirs(rloc=RLOC),),  # our own locators: no one took anything
        (_theirs("192.0.0.0", 16),),  # a wider one: ours is the longer match still
        (_theirs("10.0.0.0", 8, iid=7),),
        (_theirs("198.51.100.0", 24),),  # not ours at all
        (_theirs(iid=9),),  # same prefix, another instance
        (replace(_theirs(), locators=()),),  # nobody holds it
        (),
    ],
)
def test_unsolicited_notify_that_displaces_nothing(records: tuple[MappingRecord, ...]) -> None:
    r = _settled()
    payload = encode(auth.sign(MapNotify(77, records), MS1.key, MS1.key_id))
    assert r.receive(payload, MS1.address, 4342, 5.0) == []
    assert r.counters["unknown_nonce"] == 1
    assert r.take_events() == [] and r.yielded() == ()


@pytest.mark.parametrize(
    ("payload", "source", "reason"),
    [
        (_unsolicited(key=b"wrong"), MS1.address, "bad_auth"),
        (_unsolicited(), IPv4Address("198.18.0.99"), "unknown_source"),
        (_unsolicited(server=MS2), MS1.address, "bad_auth"),  # MS2's key, from MS1
        (encode(MapNotify(77, (_theirs(),))), MS1.address, "bad_auth"),  # no HMAC
    ],
)
def test_forged_displacement_changes_nothing(
    payload: bytes, source: IPv4Address, reason: str
) -> None:
    r = _settled()
    before = r.status()
    assert r.receive(payload, source, 4342, 5.0) == []
    assert r.counters[reason] == 1
    assert r.status() == before and r.take_events() == [] and r.yielded() == ()


def test_update_keeps_a_yielded_mapping_unless_its_locators_change() -> None:
    r = _settled()
    r.receive(_unsolicited(), MS1.address, 4342, 5.0)
    assert r.update((EID, EID_IID), 10.0) == []
    assert r.yielded() == (EID.key,)
    moved = replace(EID, locators=(RlocConfig(NEW_RLOC),))
    (d,) = r.update((moved, EID_IID), 20.0)
    assert [loc.locator for loc in _register(d).records[0].locators] == [NEW_RLOC]
    assert r.yielded() == ()
    assert not any(s.yielded for s in r.status())
    assert r.counters["yield_ended"] == 1


def test_update_dropping_a_yielded_mapping_does_not_deregister_it() -> None:
    r = _settled()
    r.receive(_unsolicited(), MS1.address, 4342, 5.0)
    assert r.update((EID_IID,), 10.0) == []
    assert r.yielded() == ()
    assert [s.instance_id for s in r.status()] == [7]


def test_reclaim_registers_a_yielded_mapping_again() -> None:
    r = _settled((MS1, MS2))
    r.receive(_unsolicited(), MS1.address, 4342, 5.0)
    out = r.reclaim(EID.key, 30.0)
    assert {d.destination for d in out} == {MS1.address, MS2.address}
    assert all(_register(d).records[0].locators[0].locator == RLOC for d in out)
    assert r.next_timer() == 31.0
    assert r.counters["reclaimed"] == 1
    assert r.reclaim(EID.key, 31.0) == []  # not yielded (any more)
    assert r.reclaim((0, IPv4Network("203.0.113.0/24")), 31.0) == []
    _reply(r.receive(encode(_request()), ITR, 61000, 32.0))  # answered again


def test_a_yielded_mapping_stays_yielded_across_stop_and_start() -> None:
    r = _settled()
    r.receive(_unsolicited(), MS1.address, 4342, 5.0)
    r.stop(6.0)
    out = r.start(7.0)
    assert [_register(d).records[0].mask_len for d in out] == [16]
    assert [s.yielded for s in r.status()] == [True, False]


def test_proxy_reply_asks_the_map_server_to_answer_for_us() -> None:
    peer = MapServerPeer(IPv4Address("198.18.0.1"), b"k", proxy_reply=True)
    registrar = Registrar((LocalMapping(0, IPv4Network("192.0.2.0/24"),
                                        (RlocConfig(IPv4Address("198.18.0.2")),)),), (peer,))
    (datagram,) = registrar.start(0.0)
    register = decode(datagram.payload)
    assert isinstance(register, MapRegister) and register.proxy_reply
    assert "b'k'" not in repr(peer)
