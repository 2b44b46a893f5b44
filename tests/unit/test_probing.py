"""RLOC probing (lispd.control.probing), driven by a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address
from itertools import count

import pytest

from lispd.control.events import Datagram, Output
from lispd.control.probing import ProbeState, RlocProber
from lispd.mapcache import EidPrefix, Installed, Locator, MapCache, MapEntry
from lispd.wire.address import InstanceIdAddress
from lispd.wire.control import decode, encode
from lispd.wire.messages import MapReply, MapRequest
from lispd.wire.records import Action

ITR = IPv4Address("198.18.1.10")
ITR6 = IPv6Address("2001:db8:ffff::10")
ETR = IPv4Address("198.18.2.20")
ETR2 = IPv4Address("198.18.2.21")
ETR3 = IPv4Address("198.18.2.22")
A = EidPrefix.parse("192.0.2.0/24")
B = EidPrefix.parse("[4]198.51.100.0/24")


def _setup(**kwargs: object) -> tuple[RlocProber, MapCache]:
    cache = MapCache(100)
    cache.insert(MapEntry(A, (Locator(ETR), Locator(ETR2, 2)), 600.0), 0.0)
    cache.insert(MapEntry(B, (Locator(ETR3),), 600.0), 0.0)
    nonces: Iterator[int] = count(5000)
    options: dict[str, object] = {"interval": 0.5, "timeout": 0.25, "misses": 3}
    options.update(kwargs)
    prober = RlocProber(cache, (ITR6, ITR), nonces=lambda: next(nonces), **options)  # type: ignore[arg-type]
    return prober, cache


def _probe(d: Datagram) -> MapRequest:
    request = decode(d.payload)
    assert isinstance(request, MapRequest)
    return request


def _reply(d: Datagram, *, probe: bool = True) -> bytes:
    return encode(MapReply(_probe(d).nonce, (), probe=probe))


def _up(cache: MapCache, prefix: EidPrefix) -> dict[IPv4Address | IPv6Address, bool]:
    entry = cache.get(prefix)
    assert entry is not None
    return {loc.address: loc.up for loc in entry.locators}


def _drive(
    prober: RlocProber,
    start: float,
    until: float,
    used: tuple[EidPrefix, ...] = (A,),
    answering: frozenset[IPv4Address] = frozenset({ETR}),
) -> list[Output]:
    """Call used() each 0.25 s and timer() when due; answer probes to `answering` at once."""
    outputs = []
    now = start
    while now <= until:
        prober.used(used, now)
        while (when := prober.next_timer()) is not None and when <= now:
            out = prober.timer(now)
            outputs.append(out)
            for d in out.datagrams:
                if d.destination in answering:
                    outputs.append(prober.receive(_reply(d), d.destination, 4342, now))
        now += 0.25
    return outputs


def test_only_locators_of_entries_in_use_are_probed() -> None:
    prober, _ = _setup()
    prober.used((A,), 0.0)
    assert prober.next_timer() == 0.0
    out = prober.timer(0.0)
    assert out.changes == ()
    assert sorted(d.destination for d in out.datagrams) == [ETR, ETR2]
    for d in out.datagrams:
        assert d.port == 4342
        probe = _probe(d)
        assert probe.probe and not probe.smr
        assert probe.itr_rlocs == (ITR, ITR6)  # the locator's family first
        (record,) = probe.records
        assert (record.eid_prefix, record.mask_len) == (A.address, 24)
    assert len({_probe(d).nonce for d in out.datagrams}) == 2
    assert prober.next_timer() == 0.25
    # An instance-id is carried in the record.
    prober.used((B,), 0.1)
    (d,) = prober.timer(0.1).datagrams
    assert _probe(d).records[0].eid_prefix == InstanceIdAddress(4, B.address)


def test_negative_and_unknown_entries_are_not_probed() -> None:
    prober, cache = _setup()
    negative = MapEntry(EidPrefix.parse("203.0.113.0/24"), (), 60.0, Action.NATIVELY_FORWARD)
    cache.insert(negative, 0.0)
    prober.used((negative.prefix, EidPrefix.parse("10.0.0.0/8")), 0.0)
    assert prober.next_timer() is None
    assert prober.timer(0.0) == Output()


def test_locator_down_after_missed_probes_then_up_on_a_reply() -> None:
    prober, cache = _setup()
    outputs = _drive(prober, 0.0, 1.0)
    assert all(out.changes == () for out in outputs)
    (state,) = [s for s in prober.state() if s.locator == ETR2]
    assert state.misses == 2 and state.up
    outputs = _drive(prober, 1.25, 1.25)
    (change,) = [c for out in outputs for c in out.changes]
    assert isinstance(change, Installed)
    assert _up(cache, A) == {ETR: True, ETR2: False}
    # Marking down keeps the entry's expiry where it was.
    assert change.entry.expires_at == pytest.approx(600.0)
    assert prober.counters["locator_down"] == 1
    # Still probed while down; the first good reply marks it up again.
    out = prober.timer(1.5)
    (to_etr2,) = [d for d in out.datagrams if d.destination == ETR2]
    back = prober.receive(_reply(to_etr2), ETR2, 4342, 1.6)
    (change,) = back.changes
    assert isinstance(change, Installed)
    assert _up(cache, A) == {ETR: True, ETR2: True}
    (state,) = [s for s in prober.state() if s.locator == ETR2]
    assert state.up and state.misses == 0
    assert state.rtt == pytest.approx(0.1) and state.last_reply == 1.6
    assert prober.counters["locator_up"] == 1


def test_answered_locator_stays_up() -> None:
    prober, cache = _setup()
    _drive(prober, 0.0, 5.0)
    (state,) = [s for s in prober.state() if s.locator == ETR]
    assert state == ProbeState(A, ETR, True, 0, 11, 5.0, 5.0, 0.0)
    assert _up(cache, A)[ETR]


def test_replies_from_elsewhere_or_with_unknown_nonces_prove_nothing() -> None:
    prober, cache = _setup(misses=1)
    prober.used((A,), 0.0)
    out = prober.timer(0.0)
    (to_etr2,) = [d for d in out.datagrams if d.destination == ETR2]
    prober.timer(0.25)
    assert _up(cache, A)[ETR2] is False
    assert prober.receive(_reply(to_etr2), ETR3, 4342, 0.3) == Output()
    assert prober.counters["wrong_source"] == 1
    bogus = encode(MapReply(1, (), probe=True))
    assert prober.receive(bogus, ETR2, 4342, 0.3) == Output()
    assert prober.counters["unknown_nonce"] == 1
    # Not a probe reply, or not a message at all.
    assert prober.receive(_reply(to_etr2, probe=False), ETR2, 4342, 0.3) == Output()
    assert prober.receive(b"\x20", ETR2, 4342, 0.3) == Output()
    assert prober.counters["unexpected"] == 1 and prober.counters["malformed"] == 1
    assert _up(cache, A)[ETR2] is False
    # A late answer to that probe, from the locator, still counts.
    assert len(prober.receive(_reply(to_etr2), ETR2, 4342, 0.4).changes) == 1
    assert _up(cache, A)[ETR2] is True


def test_a_refresh_does_not_undo_a_probed_down() -> None:
    prober, cache = _setup(misses=1)
    prober.used((A,), 0.0)
    prober.timer(0.0)
    prober.timer(0.25)  # neither locator answered: both down
    assert _up(cache, A) == {ETR: False, ETR2: False}
    # The resolver refreshes the entry; the Map-Reply's R bits say up.
    cache.insert(MapEntry(A, (Locator(ETR), Locator(ETR2, 2)), 600.0), 0.3)
    prober.used((A,), 0.3)
    out = prober.timer(0.5)
    assert len(out.changes) == 2
    assert _up(cache, A) == {ETR: False, ETR2: False}


def test_locator_set_changes_are_followed() -> None:
    prober, cache = _setup()
    prober.used((A,), 0.0)
    prober.timer(0.0)
    cache.insert(MapEntry(A, (Locator(ETR3),), 600.0), 0.1)
    out = prober.timer(0.25)
    assert [d.destination for d in out.datagrams] == [ETR3]
    assert [s.locator for s in prober.state()] == [ETR3]
    cache.withdraw(A)
    assert prober.timer(0.5) == Output()
    assert prober.state() == ()


def test_idle_entries_stop_being_probed() -> None:
    prober, _ = _setup(idle_timeout=2.0)
    _drive(prober, 0.0, 1.0)
    sent = prober.counters["probes_sent"]
    now = 1.0
    while (when := prober.next_timer()) is not None:
        now = when
        prober.timer(now)
    assert now < 3.5
    assert prober.state() == ()
    assert prober.counters["probes_sent"] == sent + 6  # until 2 s after the last use


def test_probing_is_bounded() -> None:
    prober, _ = _setup(max_probed=2)
    prober.used((A, B), 0.0)
    assert len(prober.timer(0.0).datagrams) == 2
    assert prober.counters["probe_limit"] == 1
    assert len(prober.state()) == 2


def test_itr_rlocs_follow_the_node() -> None:
    prober, _ = _setup()
    prober.set_itr_rlocs((IPv4Address("198.18.7.7"),))
    prober.used((B,), 0.0)
    (d,) = prober.timer(0.0).datagrams
    assert _probe(d).itr_rlocs == (IPv4Address("198.18.7.7"),)
    prober.set_itr_rlocs(())
    assert prober.timer(0.5).datagrams == ()
    assert prober.counters["no_itr_rloc"] == 1


def test_default_timeout_fits_a_short_interval() -> None:
    cache = MapCache(10)
    assert RlocProber(cache, (ITR,), interval=0.5).timeout == 0.5
    assert RlocProber(cache, (ITR,)).timeout == 2.0
    with pytest.raises(ValueError, match="timeout"):
        RlocProber(cache, (ITR,), interval=1.0, timeout=2.0)
