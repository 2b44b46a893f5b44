"""The map-cache's changes mirrored into the C table, and use reported back."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

from lispd.dataplane import sync
from lispd.dataplane.tables import Fib, FibAction, FibKey, FibLocator
from lispd.mapcache import EidPrefix, Locator, MapCache, MapEntry
from lispd.wire.records import Action

A, B, C = ip_address("198.18.0.1"), ip_address("198.18.0.2"), ip_address("198.18.0.3")


def test_only_up_locators_of_the_best_priority_reach_the_fast_path() -> None:
    prefix = EidPrefix.parse("192.0.2.0/24")
    entry = MapEntry(prefix, (Locator(A, 2, 10), Locator(B, 1, 30, up=False), Locator(C, 1, 70)))
    fib_entry = sync.fib_entry(entry)
    assert fib_entry.action is FibAction.ENCAP
    assert fib_entry.locators == (FibLocator(C, 70),)


def test_negative_entries_keep_their_action() -> None:
    prefix = EidPrefix.parse("2001:db8::/32")
    cases = {
        Action.NATIVELY_FORWARD: FibAction.NATIVE,
        Action.SEND_MAP_REQUEST: FibAction.PUNT,
        Action.DROP_POLICY_DENIED: FibAction.DROP,
        Action.NO_ACTION: FibAction.DROP,
    }
    for action, expected in cases.items():
        assert sync.fib_entry(MapEntry(prefix, action=action)).action is expected
    all_down = MapEntry(prefix, (Locator(A, up=False),))
    assert sync.fib_entry(all_down).action is FibAction.DROP


def test_changes_are_mirrored_and_use_is_reported_back() -> None:
    fib, cache = Fib(4), MapCache(4)
    first = MapEntry(EidPrefix.parse("192.0.2.0/25"), (Locator(A),), ttl=60.0)
    second = MapEntry(EidPrefix.parse("192.0.2.128/25"), (Locator(B),), ttl=120.0)
    sync.apply(fib, cache.insert(first, 0.0))
    sync.apply(fib, cache.insert(second, 0.0))
    assert len(fib) == 2
    hit = fib.lookup(0, ip_address("192.0.2.200"))
    assert hit is not None and hit[0] == FibKey(0, ip_network("192.0.2.128/25"))
    assert sync.report_used(fib, cache, 30.0) == 1
    assert cache.last_used(second.prefix) == 30.0
    # Expiry in Python removes the C copy too.
    sync.apply(fib, cache.expire(90.0))
    assert len(fib) == 1
    assert fib.lookup(0, ip_address("192.0.2.1")) is None


def test_mac_eids_stay_in_python() -> None:
    fib, cache = Fib(4), MapCache(4)
    mac = MapEntry(EidPrefix.parse("02:00:00:00:00:01/48"), (Locator(A),))
    sync.apply(fib, cache.insert(mac, 0.0))
    assert len(cache) == 1 and len(fib) == 0
