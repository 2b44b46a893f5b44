"""The map-cache's changes mirrored into the C table, and use reported back."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

from lispd.dataplane import sync
from lispd.dataplane.tables import Fib, FibAction, FibEntry, FibKey, FibLocator
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
    assert sync.report_used(fib, cache, 30.0) == [second.prefix]
    assert sync.report_used(fib, cache, 31.0) == []  # drained
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


# -- local policy: proxy-ETRs and re-encapsulation ---------------------------

P1, P2 = ip_address("198.18.0.7"), ip_address("2001:db8:ff00::7")


def test_native_forward_goes_to_the_proxy_etrs_when_there_are_any() -> None:
    """RFC 6832 4.1: non-LISP destinations through the proxy-ETRs, in the
    order configured, sharing the traffic equally."""
    native = MapEntry(EidPrefix.parse("0.0.0.0/0"), action=Action.NATIVELY_FORWARD)
    policy = sync.FibPolicy(proxy_etrs=(P1, P2))
    entry = sync.fib_entry(native, policy)
    assert entry.action is FibAction.ENCAP
    assert entry.locators == (FibLocator(P1, 1), FibLocator(P2, 1))
    assert not entry.reencap
    # Without proxy-ETRs (the default policy too) it stays native: dropped.
    assert sync.fib_entry(native, sync.FibPolicy()).action is FibAction.NATIVE
    assert sync.fib_entry(native).action is FibAction.NATIVE


def test_proxy_etrs_only_replace_native_forward() -> None:
    prefix = EidPrefix.parse("2001:db8::/32")
    policy = sync.FibPolicy(proxy_etrs=(P1,))
    for action, expected in {
        Action.SEND_MAP_REQUEST: FibAction.PUNT,
        Action.DROP_POLICY_DENIED: FibAction.DROP,
        Action.NO_ACTION: FibAction.DROP,
    }.items():
        assert sync.fib_entry(MapEntry(prefix, action=action), policy).action is expected
    positive = MapEntry(prefix, (Locator(A),))
    assert sync.fib_entry(positive, policy) == sync.fib_entry(positive)
    assert sync.fib_entry(positive, policy).locators == (FibLocator(A, 100),)


def test_at_most_eight_proxy_etrs_reach_the_fast_path() -> None:
    many = tuple(ip_address(f"198.18.1.{i}") for i in range(1, 12))
    native = MapEntry(EidPrefix.parse("0.0.0.0/0"), action=Action.NATIVELY_FORWARD)
    entry = sync.fib_entry(native, sync.FibPolicy(proxy_etrs=many))
    assert [loc.address for loc in entry.locators] == list(many[:8])
    Fib(1).set(FibKey(0, ip_network("0.0.0.0/0")), entry)  # the C table takes it


def test_reencap_marks_exactly_the_listed_prefixes() -> None:
    moved = EidPrefix.parse("192.0.2.10/32")
    policy = sync.FibPolicy(reencap=frozenset({moved}))
    assert sync.fib_entry(MapEntry(moved, (Locator(A),)), policy).reencap
    # Not a covering or covered prefix: the very one.
    for other in ("192.0.2.0/24", "192.0.2.10/31", "[1]192.0.2.10/32"):
        entry = MapEntry(EidPrefix.parse(other), (Locator(A),))
        assert not sync.fib_entry(entry, policy).reencap, other
    # Negative and proxy-ETR entries carry the mark too.
    native = MapEntry(moved, action=Action.NATIVELY_FORWARD)
    both = sync.FibPolicy(proxy_etrs=(P1,), reencap=frozenset({moved}))
    assert sync.fib_entry(native, both) == FibEntry(
        FibAction.ENCAP, (FibLocator(P1, 1),), reencap=True
    )


def test_apply_uses_the_policy_and_keeps_its_old_signature() -> None:
    fib, cache = Fib(4), MapCache(4)
    moved = MapEntry(EidPrefix.parse("192.0.2.10/32"), (Locator(B),))
    native = MapEntry(EidPrefix.parse("198.51.100.0/24"), action=Action.NATIVELY_FORWARD)
    policy = sync.FibPolicy(proxy_etrs=(P1,), reencap=frozenset({moved.prefix}))
    sync.apply(fib, cache.insert(moved, 0.0), policy)
    sync.apply(fib, cache.insert(native, 0.0), policy=policy)
    hit = fib.lookup(0, ip_address("192.0.2.10"))
    assert hit is not None and hit[1].reencap and hit[1].locators == (FibLocator(B, 100),)
    hit = fib.lookup(0, ip_address("198.51.100.1"))
    assert hit is not None and hit[1] == FibEntry(FibAction.ENCAP, (FibLocator(P1, 1),))
    # Without a policy: as before.
    plain = Fib(4)
    sync.apply(plain, MapCache(4).insert(native, 0.0))
    hit = plain.lookup(0, ip_address("198.51.100.1"))
    assert hit is not None and hit[1].action is FibAction.NATIVE


def test_the_policy_is_a_frozen_value() -> None:
    policy = sync.FibPolicy()
    assert policy == sync.FibPolicy((), frozenset())
    assert hash(policy) == hash(sync.FibPolicy())
