"""Hand-picked map-cache cases: text forms, validation, the edges of the contract."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from lispd.mapcache import (
    MAX_USABLE_LOCATORS,
    EidFamily,
    EidPrefix,
    Installed,
    Locator,
    MapCache,
    MapCacheFull,
    MapEntry,
    RemovalReason,
    Removed,
    choose_locator,
)
from lispd.wire.address import MacAddress
from lispd.wire.records import Action

RLOC_A = Locator(IPv4Address("198.18.0.1"))
RLOC_B = Locator(IPv4Address("198.18.0.2"))
MAC = MacAddress(bytes.fromhex("020000000001"))


def v4(text: str) -> IPv4Address:
    return IPv4Address(text)


def entry(text: str, ttl: float | None = 60.0, *locators: Locator, iid: int = 0) -> MapEntry:
    return MapEntry(EidPrefix.parse(text, iid), locators or (RLOC_A,), ttl)


# --- EidPrefix --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iid", "shown", "family"),
    [
        ("192.0.2.0/24", 0, "[0]192.0.2.0/24", EidFamily.IPV4),
        ("0.0.0.0/0", 7, "[7]0.0.0.0/0", EidFamily.IPV4),
        ("2001:db8::/32", 16777215, "[16777215]2001:db8::/32", EidFamily.IPV6),
        ("2001:0DB8:0:0:0:0:0:1/128", 1, "[1]2001:db8::1/128", EidFamily.IPV6),
        ("02:00:00:00:00:01/48", 0, "[0]02:00:00:00:00:01/48", EidFamily.MAC),
        ("02-00-00-00-00-00/24", 3, "[3]02:00:00:00:00:00/24", EidFamily.MAC),
    ],
)
def test_parse_and_str(text: str, iid: int, shown: str, family: EidFamily) -> None:
    prefix = EidPrefix.parse(text, iid)
    assert str(prefix) == shown
    assert prefix.family is family
    assert prefix.instance_id == iid
    # What str() writes, parse() reads back, instance-id included.
    assert EidPrefix.parse(shown) == prefix


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("192.0.2.0", "want ADDRESS/LENGTH"),
        ("192.0.2.0/", "want ADDRESS/LENGTH"),
        ("192.0.2.0/+24", "want ADDRESS/LENGTH"),
        (" 192.0.2.0/24", "not an IPv4, IPv6 or MAC address"),
        ("192.0.2.0/33", r"prefix length 33 is not in 0\.\.32"),
        ("2001:db8::/129", r"prefix length 129 is not in 0\.\.128"),
        ("02:00:00:00:00:01/49", r"prefix length 49 is not in 0\.\.48"),
        ("192.0.2.1/24", r"bits set past the prefix length \(did you mean 192\.0\.2\.0/24\?\)"),
        ("2001:db8::1/64", r"did you mean 2001:db8::/64\?"),
        ("02:00:00:00:00:01/40", r"did you mean 02:00:00:00:00:00/40\?"),
        ("192.0.2.256/32", "not an IPv4, IPv6 or MAC address"),
        ("010.0.0.0/8", "not an IPv4, IPv6 or MAC address"),
        ("fe80::%eth0/64", "not an IPv4, IPv6 or MAC address"),
        ("02:00:00-00:00:01/48", "not an IPv4, IPv6 or MAC address"),
        ("[16777216]10.0.0.0/8", r"instance-id 16777216 is not in 0\.\.16777215"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EidPrefix.parse(text)


def test_parse_instance_id_in_text_and_argument() -> None:
    assert EidPrefix.parse("[5]10.0.0.0/8").instance_id == 5
    assert EidPrefix.parse("[5]10.0.0.0/8", 5).instance_id == 5
    with pytest.raises(ValueError, match="names instance-id 5, not 6"):
        EidPrefix.parse("[5]10.0.0.0/8", 6)


def test_constructor_validates_and_of_masks() -> None:
    with pytest.raises(ValueError, match="instance-id -1"):
        EidPrefix(-1, v4("10.0.0.0"), 8)
    with pytest.raises(ValueError, match="instance-id 16777216"):
        EidPrefix(2**24, v4("10.0.0.0"), 8)
    with pytest.raises(ValueError, match="prefix length -1"):
        EidPrefix(0, v4("10.0.0.0"), -1)
    with pytest.raises(ValueError, match="bits set past"):
        EidPrefix(0, v4("10.0.0.1"), 31)
    with pytest.raises(ValueError, match="6 octets"):
        EidPrefix(0, MacAddress(b"\x02\x00"), 16)
    with pytest.raises(ValueError, match="scoped"):
        EidPrefix(0, IPv6Address("fe80::%eth0"), 64)
    with pytest.raises(TypeError, match="not an IPv4, IPv6 or MAC"):
        EidPrefix(0, "10.0.0.0", 8)  # type: ignore[arg-type]
    assert EidPrefix.of(0, v4("10.1.2.3"), 8) == EidPrefix(0, v4("10.0.0.0"), 8)
    assert EidPrefix.of(0, v4("10.1.2.3"), 0) == EidPrefix(0, v4("0.0.0.0"), 0)
    assert EidPrefix.of(2, MAC, 47) == EidPrefix(2, MacAddress(bytes.fromhex("020000000000")), 47)
    with pytest.raises(ValueError, match="prefix length 33"):
        EidPrefix.of(0, v4("10.1.2.3"), 33)


def test_covers() -> None:
    prefix = EidPrefix.parse("192.0.2.0/25", 3)
    assert prefix.covers(3, v4("192.0.2.0"))
    assert prefix.covers(3, v4("192.0.2.127"))
    assert not prefix.covers(3, v4("192.0.2.128"))
    assert not prefix.covers(4, v4("192.0.2.1"))
    assert not prefix.covers(3, IPv6Address("::c000:201"))
    assert EidPrefix.parse("::/0").covers(0, IPv6Address("2001:db8::1"))
    assert not EidPrefix.parse("::/0").covers(0, v4("0.0.0.0"))
    assert EidPrefix.parse("02:00:00:00:00:00/40").covers(0, MAC)
    assert not EidPrefix.parse("02:00:00:00:00:00/48").covers(0, MAC)


# --- Locator and MapEntry ---------------------------------------------------


def test_locator_and_entry_validation() -> None:
    with pytest.raises(ValueError, match="priority 256"):
        Locator(v4("198.18.0.1"), priority=256)
    with pytest.raises(ValueError, match="weight -1"):
        Locator(v4("198.18.0.1"), weight=-1)
    with pytest.raises(TypeError, match="RLOC"):
        Locator(MAC)  # type: ignore[arg-type]
    prefix = EidPrefix.parse("192.0.2.0/24")
    with pytest.raises(ValueError, match="ttl -1"):
        MapEntry(prefix, (), ttl=-1)
    with pytest.raises(ValueError, match="ttl nan"):
        MapEntry(prefix, (), ttl=float("nan"))
    with pytest.raises(TypeError, match="tuple"):
        MapEntry(prefix, [RLOC_A])  # type: ignore[arg-type]


def test_entry_properties() -> None:
    negative = MapEntry(EidPrefix.parse("192.0.2.0/24"), ttl=15, action=Action.DROP_NO_REASON)
    assert negative.negative and not negative.static
    assert negative.expires_at == 15.0
    assert replace_created(negative, 100).expires_at == 115.0
    assert not negative.expired(14.999) and negative.expired(15)
    static = entry("192.0.2.0/24", None)
    assert static.static and not static.negative
    assert static.expires_at is None and not static.expired(1e12)


def replace_created(e: MapEntry, created: float) -> MapEntry:
    return MapEntry(e.prefix, e.locators, e.ttl, e.action, created)


def test_usable_locators_and_choice() -> None:
    down = Locator(v4("198.18.0.3"), priority=0, up=False)
    never = Locator(v4("198.18.0.4"), priority=255)
    backup = Locator(v4("198.18.0.5"), priority=5)
    a = Locator(v4("198.18.0.6"), priority=2, weight=30)
    b = Locator(v4("198.18.0.7"), priority=2, weight=70)
    e = entry("192.0.2.0/24", 60, down, never, backup, a, b)
    assert e.usable_locators() == (a, b)
    # r = h % 100: 0..29 to a, 30..99 to b.
    assert [choose_locator(e, h) for h in (0, 29, 30, 99, 100, 129, 130)] == [a, a, b, b, a, a, b]
    assert choose_locator(entry("192.0.2.0/24", 60, down, never), 7) is None
    assert choose_locator(MapEntry(EidPrefix.parse("192.0.2.0/24")), 7) is None
    zero = entry("192.0.2.0/24", 60, Locator(a.address, weight=0), Locator(b.address, weight=0))
    chosen = [choose_locator(zero, h) for h in range(4)]
    assert [loc.address if loc else None for loc in chosen] == [a.address, b.address] * 2
    with pytest.raises(ValueError, match="32-bit"):
        choose_locator(e, 2**32)
    with pytest.raises(ValueError, match="32-bit"):
        choose_locator(e, -1)


# --- MapCache ---------------------------------------------------------------


def test_longest_match_per_instance_and_family() -> None:
    cache = MapCache(10)
    wide, narrow = entry("10.0.0.0/8"), entry("10.1.0.0/16", 60, RLOC_B)
    other_iid = entry("10.1.0.0/16", 60, RLOC_B, iid=9)
    six = entry("::/0")
    for e in (wide, narrow, other_iid, six):
        cache.insert(e, 0)
    assert cache.lookup(0, v4("10.1.2.3"), 1) == narrow
    assert cache.lookup(0, v4("10.2.0.0"), 1) == wide
    assert cache.lookup(9, v4("10.1.2.3"), 1) == other_iid
    assert cache.lookup(9, v4("10.2.0.0"), 1) is None
    assert cache.lookup(0, v4("11.0.0.0"), 1) is None
    assert cache.lookup(0, IPv6Address("2001:db8::1"), 1) == six
    assert cache.lookup(0, MAC, 1) is None


def test_insert_stamps_created_and_replace_is_one_installed() -> None:
    cache = MapCache(10)
    first = entry("192.0.2.0/24", 30)
    [installed] = cache.insert(first, 100)
    assert installed == Installed(replace_created(first, 100))
    assert cache.get(first.prefix) == replace_created(first, 100)
    again = entry("192.0.2.0/24", 30, RLOC_B)
    assert cache.insert(again, 110) == [Installed(replace_created(again, 110))]
    assert len(cache) == 1
    # The old expiry (130) is stale: only the new one (140) counts.
    assert cache.next_expiry() == 140
    assert cache.expire(135) == []
    assert cache.expire(140) == [Removed(first.prefix, RemovalReason.EXPIRED)]
    assert cache.next_expiry() is None


def test_expired_entries_are_invisible_until_expire_removes_them() -> None:
    cache = MapCache(10)
    wide, narrow = entry("10.0.0.0/8", None), entry("10.1.0.0/16", 5)
    cache.insert(wide, 0)
    cache.insert(narrow, 0)
    assert cache.lookup(0, v4("10.1.0.1"), 4.9) == replace_created(narrow, 0)
    # From the expiry instant on, the less specific entry answers.
    assert cache.lookup(0, v4("10.1.0.1"), 5) == wide
    assert narrow.prefix in cache and len(cache) == 2
    assert cache.expire(5) == [Removed(narrow.prefix, RemovalReason.EXPIRED)]
    assert narrow.prefix not in cache


def test_eviction_is_least_recently_used_and_comes_before_installed() -> None:
    cache = MapCache(3)
    a, b, c, d = (entry(f"192.0.2.{i * 64}/26") for i in range(4))
    for t, e in enumerate((a, b, c)):
        cache.insert(e, t)
    assert cache.lookup(0, v4("192.0.2.1"), 10) is not None  # a is now the most recent
    cache.touch(b.prefix, 11)  # then b
    assert cache.last_used(a.prefix) == 10 and cache.last_used(b.prefix) == 11
    assert cache.last_used(c.prefix) == 2
    changes = cache.insert(d, 12)
    assert changes == [Removed(c.prefix, RemovalReason.EVICTED), Installed(replace_created(d, 12))]
    assert cache.last_used(c.prefix) is None
    cache.touch(c.prefix, 13)  # absent: ignored
    assert len(cache) == 3


def test_static_entries_are_never_evicted_and_a_full_static_cache_refuses() -> None:
    cache = MapCache(2)
    s1, s2 = entry("10.0.0.0/8", None), entry("11.0.0.0/8", None)
    dynamic = entry("12.0.0.0/8", 10)
    cache.insert(s1, 0)
    cache.insert(dynamic, 0)
    assert cache.insert(s2, 1) == [
        Removed(dynamic.prefix, RemovalReason.EVICTED),
        Installed(replace_created(s2, 1)),
    ]
    with pytest.raises(MapCacheFull):
        cache.insert(dynamic, 2)
    assert {e.prefix for e in cache} == {s1.prefix, s2.prefix}
    # Replacing an entry in a full cache needs no room.
    longer = entry("10.0.0.0/8", 30)
    assert cache.insert(longer, 3) == [Installed(replace_created(longer, 3))]
    assert cache.expire(1e9) == [Removed(s1.prefix, RemovalReason.EXPIRED)]
    assert cache.flush() == []
    assert cache.withdraw(s2.prefix) == [Removed(s2.prefix, RemovalReason.WITHDRAWN)]
    assert cache.withdraw(s2.prefix) == []
    with pytest.raises(ValueError, match="at least 1"):
        MapCache(0)


def test_flush_keeps_what_it_is_told_to() -> None:
    cache = MapCache(100)
    for name in ("10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16"):
        cache.insert(entry(name), 0)
    kept = EidPrefix.parse("10.1.2.0/24")
    changes = cache.flush(keep={kept})
    assert {c.prefix for c in changes if isinstance(c, Removed)} == {
        EidPrefix.parse("10.1.0.0/16"), EidPrefix.parse("10.2.0.0/16")}
    assert cache.flush(EidPrefix.parse("10.1.0.0/16"), keep={kept}) == []
    assert kept in cache


def test_flush_by_prefix() -> None:
    cache = MapCache(100)
    names = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16", "0.0.0.0/0", "::/0"]
    for name in names:
        cache.insert(entry(name), 0)
    cache.insert(entry("10.1.0.0/16", iid=1), 0)
    cache.insert(entry("10.1.9.0/24", None), 0)
    changes = cache.flush(EidPrefix.parse("10.1.0.0/16"))
    assert {c.prefix for c in changes if isinstance(c, Removed)} == {
        EidPrefix.parse("10.1.0.0/16"),
        EidPrefix.parse("10.1.2.0/24"),
    }
    assert all(isinstance(c, Removed) and c.reason is RemovalReason.FLUSHED for c in changes)
    assert EidPrefix.parse("10.1.0.0/16", 1) in cache
    assert EidPrefix.parse("10.1.9.0/24") in cache  # static
    assert cache.flush(EidPrefix.parse("172.16.0.0/12")) == []
    assert cache.flush(EidPrefix.parse("0.0.0.0/0", 5)) == []
    rest = cache.flush()
    assert len(rest) == 5
    assert [e.prefix for e in cache] == [EidPrefix.parse("10.1.9.0/24")]


def test_mac_eids() -> None:
    cache = MapCache(10)
    host = MapEntry(EidPrefix(4, MAC, 48), (RLOC_B,), 60)
    oui = MapEntry(EidPrefix.of(4, MAC, 24), (RLOC_A,), 60)
    cache.insert(host, 0)
    cache.insert(oui, 0)
    assert cache.lookup(4, MAC, 1) == host
    assert cache.lookup(4, MacAddress(bytes.fromhex("0200000000ff")), 1) == oui
    assert cache.lookup(0, MAC, 1) is None


def test_refreshing_keeps_the_expiry_heap_bounded() -> None:
    cache = MapCache(10)
    for t in range(10_000):
        cache.insert(entry("192.0.2.0/24", 3600), t)
    assert len(cache._heap) <= 2 * len(cache) + 65
    assert cache.next_expiry() == 9_999 + 3600


def test_a_hundred_thousand_entries() -> None:
    cache = MapCache(100_000)
    base = int(v4("10.0.0.0"))
    for i in range(100_000):
        length = 32 if i % 2 else 24
        address = IPv4Address(base + (i << 8) + (i % 2))
        cache.insert(MapEntry(EidPrefix.of(0, address, length), (RLOC_A,), 60 + i % 7), 0)
    assert len(cache) == 100_000
    # 10.0.1.1/32 (i=1) and 10.0.0.0/24 (i=0): the /32 answers only its host.
    hit = cache.lookup(0, v4("10.0.1.1"), 1)
    assert hit is not None and hit.prefix.length == 32
    assert cache.lookup(0, v4("10.0.0.77"), 1) is not None
    assert cache.lookup(0, v4("10.0.1.2"), 1) is None
    # The two looked up are recent now; 10.0.2.0/24 (i=2) is the least recent.
    overflow = cache.insert(entry("192.0.2.0/24"), 2)
    assert overflow[0] == Removed(EidPrefix.parse("10.0.2.0/24"), RemovalReason.EVICTED)
    assert cache.next_expiry() == 60
    assert len(cache.expire(60)) == len(range(0, 100_000, 7))
    assert len(cache) == 100_000 - len(range(0, 100_000, 7))


def test_split_over_spread_hashes_follows_the_weights() -> None:
    # Flow hashes as the fast path makes them: 32-bit FNV-1a, here over
    # 20 000 distinct made-up 5-tuples.
    def fnv1a(data: bytes) -> int:
        h = 0x811C9DC5
        for octet in data:
            h = ((h ^ octet) * 0x01000193) & 0xFFFFFFFF
        return h

    a, b, c = (Locator(v4(f"198.18.0.{i}"), weight=w) for i, w in ((1, 20), (2, 30), (3, 50)))
    e = entry("192.0.2.0/24", 60, a, b, c)
    flows = 20_000
    counts = dict.fromkeys((a, b, c), 0)
    for n in range(flows):
        chosen = choose_locator(e, fnv1a(n.to_bytes(4, "big") + b"\xc0\x00\x02\x01\x06\x1f\x90"))
        assert chosen is not None
        counts[chosen] += 1
    for loc, count in counts.items():
        assert abs(count / flows - loc.weight / 100) < 0.02, counts


def test_a_flow_is_spread_over_eight_locators_at_most() -> None:
    locators = tuple(Locator(IPv4Address(0xC6120000 + i)) for i in range(12))
    entry = MapEntry(EidPrefix.parse("192.0.2.0/24"), locators, ttl=60.0)
    assert entry.usable_locators() == locators[:MAX_USABLE_LOCATORS]
