"""What a reload changes in the control machines: map-servers of the
registrar, sites of the map-server (fake clock, no I/O); and what it
refuses, needing a restart."""

from __future__ import annotations

from dataclasses import replace

from lispd.config import parse
from lispd.control.mapserver import MapServer, Site
from lispd.mapcache import EidPrefix
from lispd.reload import restart_needed, summary
from lispd.wire import auth
from lispd.wire.control import decode, encode
from lispd.wire.messages import MapNotify, MapNotifyAck
from tests.unit.test_mapserver import (
    ETR_A,
    ETR_B,
    KEY,
    OTHER,
    SITE,
    XTR_B,
    record,
    register,
    subscribe,
    subscribed_server,
)
from tests.unit.test_registrar import EID, EID_IID, MS1, MS2, _ack, _register, _registrar

# -- the registrar's map-servers --------------------------------------------------


def test_a_new_map_server_gets_every_mapping_registered_at_once() -> None:
    r = _registrar((EID, EID_IID), (MS1,))
    for d in r.start(0.0):
        _ack(r, d, 0.1)
    out = r.set_peers((MS1, MS2), 5.0)
    assert {d.destination for d in out} == {MS2.address}
    assert len(out) == 2
    assert all(_register(d).records[0].ttl > 0 for d in out)
    # MS1's registrations kept their state: still acknowledged, no resend.
    assert r.acknowledged(MS1.address)
    assert not r.acknowledged(MS2.address)


def test_a_removed_map_server_is_deregistered_with_its_own_key() -> None:
    r = _registrar((EID,), (MS1, MS2))
    r.start(0.0)
    out = r.set_peers((MS1,), 5.0)
    assert [d.destination for d in out] == [MS2.address]
    message = _register(out[0])
    assert message.records[0].ttl == 0
    assert message.key_id == MS2.key_id
    assert all(s.server == MS1.address for s in r.status())
    # Nothing more goes to MS2, not even retries.
    assert all(d.destination == MS1.address for d in r.timer(100.0))


def test_a_changed_key_registers_again_with_the_new_key_without_deregistering() -> None:
    r = _registrar((EID,), (MS1,))
    for d in r.start(0.0):
        _ack(r, d, 0.1)
    rekeyed = replace(MS1, key=b"new-s3cret")
    out = r.set_peers((rekeyed,), 5.0)
    assert len(out) == 1
    assert _register(out[0]).records[0].ttl > 0
    assert not r.acknowledged(MS1.address)
    _ack(r, out[0], 5.1, rekeyed)
    assert r.acknowledged(MS1.address)


def test_unchanged_peers_change_nothing() -> None:
    r = _registrar((EID,), (MS1, MS2))
    r.start(0.0)
    before = r.status()
    assert r.set_peers((MS2, MS1), 5.0) == []
    assert r.status() == before


def test_peers_set_before_start_are_registered_by_start() -> None:
    r = _registrar((EID,), (MS1,))
    assert r.set_peers((MS2,), 0.0) == []
    assert {d.destination for d in r.start(1.0)} == {MS2.address}


# -- the map-server's sites --------------------------------------------------------


def _holding() -> MapServer:
    ms = MapServer((SITE,), 60.0)
    ms.receive(register(record("192.0.2.0", 25)), ETR_A, 4342, 0.0)
    ms.receive(register(record("192.0.2.128", 25)), ETR_A, 4342, 0.0)
    assert len(ms.registrations()) == 2
    return ms


def test_a_site_that_no_longer_covers_a_registration_drops_it() -> None:
    ms = _holding()
    narrowed = replace(SITE, eid_prefixes=(EidPrefix.parse("192.0.2.0/25"),))
    ms.set_sites((narrowed,), 1.0)
    assert [str(r.prefix) for r in ms.registrations()] == ["[0]192.0.2.0/25"]
    assert ms.counters["withdrawn_by_configuration"] == 1


def test_a_site_removed_drops_its_registrations_and_refuses_new_ones() -> None:
    ms = _holding()
    ms.set_sites((), 1.0)
    assert ms.registrations() == ()
    assert ms.receive(register(record("192.0.2.0", 25)), ETR_A, 4342, 2.0) == []
    assert ms.counters["outside_site"] == 1


def test_a_new_key_applies_to_the_next_register_and_keeps_what_is_held() -> None:
    ms = _holding()
    ms.set_sites((replace(SITE, key=b"rotated"),), 1.0)
    assert len(ms.registrations()) == 2
    assert ms.receive(register(record("192.0.2.0", 25)), ETR_A, 4342, 2.0) == []
    assert ms.counters["bad_auth"] == 1
    out = ms.receive(register(record("192.0.2.0", 25), key=b"rotated"), ETR_A, 4342, 3.0)
    assert isinstance(decode(out[0].payload), MapNotify)


def test_strict_site_now_refuses_a_held_more_specific() -> None:
    ms = _holding()
    strict = Site(SITE.name, KEY, SITE.eid_prefixes, accept_more_specifics=False)
    ms.set_sites((strict,), 1.0)
    assert ms.registrations() == ()


def test_a_mapping_removed_as_a_map_server_is_added_never_reaches_it() -> None:
    """The order the plane uses on reload: mappings first, then map-servers."""
    r = _registrar((EID, EID_IID), (MS1,))
    r.start(0.0)
    first = r.update((EID,), 5.0)
    then = r.set_peers((MS1, MS2), 5.0)
    assert [d.destination for d in first] == [MS1.address]
    assert _register(first[0]).records[0].ttl == 0
    to_new = [_register(d) for d in then if d.destination == MS2.address]
    assert [m.records[0].eid_prefix for m in to_new] == [EID.eid_prefix.network_address]


def test_a_removed_site_takes_its_subscriptions_and_a_late_ack_is_harmless() -> None:
    ms = subscribed_server()
    out = subscribe(ms)
    notify = out[1]  # the first Map-Notify to the subscriber, of site cloud-b
    assert len(ms.subscriptions()) == 1
    ms.set_sites(tuple(s for s in ms.sites if s.name != "cloud-b"), 2.0)
    assert ms.subscriptions() == ()
    assert ms.counters["subscription_site_removed"] == 1
    # The subscriber's Map-Notify-Ack still arrives: counted, nothing raised.
    message = decode(notify.payload)
    assert isinstance(message, MapNotify)
    ack = encode(auth.sign(MapNotifyAck(message.nonce, message.records, xtr_id=XTR_B,
                                        site_id=3), OTHER, auth.KeyId.HMAC_SHA256_128))
    assert ms.receive(ack, ETR_B, 4342, 2.5) == []
    # Nothing is sent for cloud-b any more.
    assert all(d.destination != ETR_B for d in ms.timer(10.0))


# -- what needs a restart ------------------------------------------------------------

NODE = """
[underlay]
rlocs = ["198.18.1.10"]

[xtr]
eid-space = ["192.0.2.0/24"]
"""


def test_offloads_changed_needs_a_restart_and_naming_it_again_does_not() -> None:
    auto = parse('[daemon]\noffloads = "auto"\n' + NODE)
    off = parse('[daemon]\noffloads = "off"\n' + NODE)
    assert restart_needed(auto, off) == ("daemon.offloads",)
    assert restart_needed(off, auto) == ("daemon.offloads",)
    # The default is "auto": writing it out changes nothing.
    assert restart_needed(parse(NODE), auto) == ()
    assert summary(parse(NODE), auto) == []


def test_offloads_is_named_beside_the_other_restart_keys() -> None:
    old = parse(NODE)
    new = parse('[daemon]\noffloads = "off"\ncontrol-socket = "/run/lispd/other.sock"\n'
                'metrics-listen = "127.0.0.1:9100"\n' + NODE)
    assert restart_needed(old, new) == ("daemon.control-socket", "daemon.metrics-listen",
                                        "daemon.offloads")
