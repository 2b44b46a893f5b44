"""MapCache.counters: what the cache did, counted, on a fake clock."""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address

import pytest

from lispd.mapcache import (
    COUNTERS,
    Change,
    EidPrefix,
    Locator,
    MapCache,
    MapCacheFull,
    MapEntry,
    RemovalReason,
    Removed,
)

RLOC = Locator(IPv4Address("198.18.0.1"))


def entry(text: str, ttl: float | None = 60.0) -> MapEntry:
    return MapEntry(EidPrefix.parse(text), (RLOC,), ttl)


def test_every_counter_is_there_from_the_start_at_zero() -> None:
    assert MapCache(4).counters == dict.fromkeys(COUNTERS, 0)


def test_insertions_and_replacements() -> None:
    cache = MapCache(4)
    cache.insert(entry("192.0.2.0/24"), now=0.0)
    cache.insert(entry("198.51.100.0/24"), now=1.0)
    cache.insert(entry("192.0.2.0/24", ttl=120.0), now=2.0)
    assert cache.counters["insertions"] == 2
    assert cache.counters["replacements"] == 1


def test_evictions() -> None:
    cache = MapCache(2)
    for n, text in enumerate(("192.0.2.0/25", "192.0.2.128/25", "198.51.100.0/24")):
        cache.insert(entry(text), now=float(n))
    assert cache.counters["evictions"] == 1
    assert cache.counters["insertions"] == 3


def test_expirations_count_each_entry_once() -> None:
    cache = MapCache(8)
    cache.insert(entry("192.0.2.0/24", ttl=10.0), now=0.0)
    cache.insert(entry("198.51.100.0/24", ttl=10.0), now=0.0)
    cache.insert(entry("203.0.113.0/24", ttl=100.0), now=0.0)
    cache.insert(entry("2001:db8::/32", ttl=None), now=0.0)
    cache.expire(now=5.0)
    assert cache.counters["expirations"] == 0
    cache.expire(now=10.0)
    cache.expire(now=11.0)
    assert cache.counters["expirations"] == 2


def test_a_refreshed_entry_does_not_expire_at_its_old_time() -> None:
    cache = MapCache(8)
    cache.insert(entry("192.0.2.0/24", ttl=10.0), now=0.0)
    cache.insert(entry("192.0.2.0/24", ttl=10.0), now=8.0)
    cache.expire(now=10.0)
    assert cache.counters["expirations"] == 0


def test_withdrawals_count_only_what_was_there() -> None:
    cache = MapCache(4)
    cache.insert(entry("192.0.2.0/24"), now=0.0)
    cache.withdraw(EidPrefix.parse("192.0.2.0/24"))
    cache.withdraw(EidPrefix.parse("192.0.2.0/24"))
    assert cache.counters["withdrawals"] == 1


def test_flushes_count_entries_and_spare_static_ones() -> None:
    cache = MapCache(8)
    cache.insert(entry("192.0.2.0/25"), now=0.0)
    cache.insert(entry("192.0.2.128/25"), now=0.0)
    cache.insert(entry("198.51.100.0/24"), now=0.0)
    cache.insert(entry("203.0.113.0/24", ttl=None), now=0.0)
    cache.flush(EidPrefix.parse("192.0.2.0/24"))
    assert cache.counters["flushes"] == 2
    cache.flush()
    assert cache.counters["flushes"] == 3
    assert len(cache) == 1


def test_refused_when_full_of_static_entries() -> None:
    cache = MapCache(1)
    cache.insert(entry("192.0.2.0/24", ttl=None), now=0.0)
    before = dict(cache.counters)
    with pytest.raises(MapCacheFull):
        cache.insert(entry("198.51.100.0/24"), now=1.0)
    assert cache.counters == {**before, "refused_full": 1}


def test_removal_counters_agree_with_the_changes_returned() -> None:
    cache = MapCache(3)
    changes: list[Change] = []
    for n in range(6):
        changes += cache.insert(entry(f"192.0.2.{n * 16}/28", ttl=10.0 + n), now=float(n))
    changes += cache.withdraw(EidPrefix.parse("192.0.2.80/28"))
    changes += cache.expire(now=16.5)
    cache.insert(entry("198.51.100.0/24"), now=17.0)
    changes += cache.flush()
    removed = Counter(c.reason for c in changes if isinstance(c, Removed))
    names = {
        RemovalReason.EVICTED: "evictions",
        RemovalReason.EXPIRED: "expirations",
        RemovalReason.WITHDRAWN: "withdrawals",
        RemovalReason.FLUSHED: "flushes",
    }
    assert all(removed[reason] > 0 for reason in names)
    assert {name: cache.counters[name] for name in names.values()} == {
        name: removed[reason] for reason, name in names.items()
    }
