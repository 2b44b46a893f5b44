"""The map-cache against a naive reference, and the locator choice against its rule.

The reference is deliberately dumb: a list scanned for the longest match,
prefixes compared as strings of bits, LRU as a use counter, expiry as a
filter. The cache and the reference see the same operations with the same
fake clock and must agree on every answer and every emitted change.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address

from hypothesis import event, given, note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from lispd.mapcache import (
    MAX_FLOW_HASH,
    MAX_INSTANCE_ID,
    Change,
    EidAddress,
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

# --- strategies -------------------------------------------------------------

# A few bases per family, close to each other, so that random prefixes nest,
# collide and shadow each other often instead of being scattered over 2**128.
BITS = {"ipv4": 32, "ipv6": 128, "mac": 48}
BASES = {
    "ipv4": [0xC0000200, 0xC0000280, 0xC6336400, 0x00000000],
    "ipv6": [0x20010DB8 << 96, (0x20010DB8 << 96) | (1 << 64), 0xFE80 << 112],
    "mac": [0x020000000001, 0x020000000100, 0xFFFFFFFFFFFF],
}
INSTANCES = [0, 1, MAX_INSTANCE_ID]


def make_address(family: str, value: int) -> EidAddress:
    if family == "ipv4":
        return IPv4Address(value)
    if family == "ipv6":
        return IPv6Address(value)
    return MacAddress(value.to_bytes(6, "big"))


@st.composite
def eid_addresses(draw: st.DrawFn, family: str) -> EidAddress:
    bits = BITS[family]
    base = draw(st.sampled_from(BASES[family]))
    # Keep the top `shared` bits of the base, randomise the rest.
    shared = draw(st.sampled_from([bits, bits - 1, bits - 8, bits // 2, 0]))
    noise = draw(st.integers(0, (1 << bits) - 1)) & ((1 << (bits - shared)) - 1)
    return make_address(family, base ^ noise)


@st.composite
def lookup_keys(draw: st.DrawFn) -> tuple[int, EidAddress]:
    family = draw(st.sampled_from(sorted(BITS)))
    return draw(st.sampled_from(INSTANCES)), draw(eid_addresses(family))


@st.composite
def eid_prefixes(draw: st.DrawFn) -> EidPrefix:
    family = draw(st.sampled_from(sorted(BITS)))
    bits = BITS[family]
    length = draw(
        st.one_of(st.sampled_from([0, bits // 4, bits // 2, bits - 8, bits]), st.integers(0, bits))
    )
    iid = draw(st.sampled_from(INSTANCES))
    return EidPrefix.of(iid, draw(eid_addresses(family)), length)


rlocs = st.one_of(
    st.integers(0, 2**32 - 1).map(IPv4Address), st.integers(0, 2**128 - 1).map(IPv6Address)
)
locators = st.builds(
    Locator,
    address=rlocs,
    priority=st.one_of(st.sampled_from([0, 1, 2, 255]), st.integers(0, 255)),
    weight=st.one_of(st.sampled_from([0, 1, 50, 100, 255]), st.integers(0, 255)),
    up=st.booleans(),
)
locator_sets = st.lists(locators, max_size=5).map(tuple)
# Mostly finite (a fifth static), in half seconds so that expiry ties the clock.
ttls = st.integers(-10, 40).map(lambda t: None if t < 0 else t / 2)


@st.composite
def map_entries(draw: st.DrawFn, prefix: st.SearchStrategy[EidPrefix]) -> MapEntry:
    return MapEntry(
        prefix=draw(prefix),
        locators=draw(locator_sets),
        ttl=draw(ttls),
        action=draw(st.sampled_from(Action)),
        # insert() stamps the time; whatever the caller put here is overwritten.
        created=draw(st.sampled_from([0.0, -5.0, 1e6])),
    )


# --- the reference model ----------------------------------------------------


def bit_string(address: EidAddress) -> str:
    raw = address.octets if isinstance(address, MacAddress) else address.packed
    return "".join(f"{octet:08b}" for octet in raw)


def naive_covers(prefix: EidPrefix, instance_id: int, address: EidAddress) -> bool:
    return (
        prefix.instance_id == instance_id
        and type(prefix.address) is type(address)
        and bit_string(prefix.address)[: prefix.length] == bit_string(address)[: prefix.length]
    )


@dataclass
class RefItem:
    entry: MapEntry
    last_used: float
    use: int  # when last used, on a counter: smaller is less recent
    seq: int  # install order, the tie-break between equal expiry times


class Reference:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[RefItem] = []
        self.counter = 0

    def tick(self) -> int:
        self.counter += 1
        return self.counter

    def find(self, prefix: EidPrefix) -> RefItem | None:
        for item in self.items:
            if item.entry.prefix == prefix:
                return item
        return None

    def is_expired(self, item: RefItem, now: float) -> bool:
        ttl = item.entry.ttl
        return ttl is not None and now >= item.entry.created + ttl

    def insert(self, entry: MapEntry, now: float) -> list[Change]:
        entry = replace(entry, created=now)
        changes: list[Change] = []
        item = self.find(entry.prefix)
        if item is None and len(self.items) >= self.limit:
            evictable = [it for it in self.items if it.entry.ttl is not None]
            if not evictable:
                raise MapCacheFull
            victim = min(evictable, key=lambda it: it.use)
            self.items.remove(victim)
            changes.append(Removed(victim.entry.prefix, RemovalReason.EVICTED))
        if item is None:
            self.items.append(RefItem(entry, now, self.tick(), self.tick()))
        else:
            item.entry, item.last_used, item.use, item.seq = entry, now, self.tick(), self.tick()
        changes.append(Installed(entry))
        return changes

    def withdraw(self, prefix: EidPrefix) -> list[Change]:
        item = self.find(prefix)
        if item is None:
            return []
        self.items.remove(item)
        return [Removed(prefix, RemovalReason.WITHDRAWN)]

    def lookup(self, instance_id: int, address: EidAddress, now: float) -> MapEntry | None:
        matches = [
            it
            for it in self.items
            if naive_covers(it.entry.prefix, instance_id, address) and not self.is_expired(it, now)
        ]
        if not matches:
            return None
        best = max(matches, key=lambda it: it.entry.prefix.length)
        best.last_used, best.use = now, self.tick()
        return best.entry

    def touch(self, prefix: EidPrefix, now: float) -> None:
        item = self.find(prefix)
        if item is not None:
            item.last_used, item.use = now, self.tick()

    def expire(self, now: float) -> list[Change]:
        dead = [it for it in self.items if self.is_expired(it, now)]
        dead.sort(key=lambda it: (it.entry.created + (it.entry.ttl or 0), it.seq))
        for item in dead:
            self.items.remove(item)
        return [Removed(it.entry.prefix, RemovalReason.EXPIRED) for it in dead]

    def next_expiry(self) -> float | None:
        times = [it.entry.created + it.entry.ttl for it in self.items if it.entry.ttl is not None]
        return min(times, default=None)

    def flush(self, prefix: EidPrefix | None) -> list[Change]:
        victims = [
            it
            for it in self.items
            if it.entry.ttl is not None
            and (
                prefix is None
                or (
                    it.entry.prefix.length >= prefix.length
                    and naive_covers(prefix, it.entry.prefix.instance_id, it.entry.prefix.address)
                )
            )
        ]
        for item in victims:
            self.items.remove(item)
        return [Removed(it.entry.prefix, RemovalReason.FLUSHED) for it in victims]


# --- the comparison ---------------------------------------------------------


class MapCacheMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.cache = MapCache(1)
        self.ref = Reference(1)

    @initialize(
        limit=st.one_of(st.integers(1, 6), st.just(10_000)),
        start=st.integers(0, 10**6),
        entries=st.lists(map_entries(eid_prefixes()), max_size=8),
    )
    def start(self, limit: int, start: int, entries: list[MapEntry]) -> None:
        # Hypothesis's swarm testing switches whole rules off in some runs;
        # entries installed here give every run something to work on.
        self.cache, self.ref = MapCache(limit), Reference(limit)
        self.now = float(start)
        for entry in entries:
            self.do_insert(entry)

    def some_prefix(self, data: st.DataObject) -> EidPrefix:
        """A present prefix, a relative of one (so that entries nest and
        shadow each other), or any prefix."""
        present = [it.entry.prefix for it in self.ref.items]
        how = data.draw(st.sampled_from(["present", "relative", "any"] if present else ["any"]))
        if how == "any":
            return data.draw(eid_prefixes())
        prefix = data.draw(st.sampled_from(present))
        if how == "present":
            return prefix
        # An ancestor or a descendant: a random address inside, a random length.
        bits = BITS[prefix.family.value]
        inside = self.address_inside(data, prefix)
        iid = data.draw(st.sampled_from([prefix.instance_id, prefix.instance_id, *INSTANCES]))
        return EidPrefix.of(iid, inside, data.draw(st.integers(0, bits)))

    def address_inside(self, data: st.DataObject, prefix: EidPrefix) -> EidAddress:
        bits = BITS[prefix.family.value]
        host = data.draw(st.integers(0, (1 << (bits - prefix.length)) - 1))
        return make_address(prefix.family.value, int(bit_string(prefix.address), 2) | host)

    def statics(self) -> set[EidPrefix]:
        return {it.entry.prefix for it in self.ref.items if it.entry.ttl is None}

    def check_statics_kept(self, before: set[EidPrefix], changes: list[Change]) -> None:
        for change in changes:
            if isinstance(change, Removed) and change.reason is not RemovalReason.WITHDRAWN:
                assert change.prefix not in before, change

    @rule(dt=st.one_of(st.integers(0, 30), st.integers(0, 10).map(lambda t: t / 4)))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(data=st.data())
    def insert(self, data: st.DataObject) -> None:
        self.do_insert(data.draw(map_entries(st.just(self.some_prefix(data)))))

    @rule(data=st.data(), ttl=ttls)
    def refresh(self, data: st.DataObject, ttl: float | None) -> None:
        # What the resolver does with a new Map-Reply for an entry in use:
        # the same prefix again, with a new TTL counted from now.
        if self.ref.items:
            item = data.draw(st.sampled_from(self.ref.items))
            self.do_insert(replace(item.entry, ttl=ttl))

    def do_insert(self, entry: MapEntry) -> None:
        before = self.statics()
        try:
            expected = self.ref.insert(entry, self.now)
        except MapCacheFull:
            snapshot = {e.prefix: e for e in self.cache}
            try:
                self.cache.insert(entry, self.now)
            except MapCacheFull:
                event("insert: full of static entries")
                assert {e.prefix: e for e in self.cache} == snapshot
                return
            raise AssertionError("the reference was full, the cache was not") from None
        got = self.cache.insert(entry, self.now)
        note(f"insert {entry.prefix} ttl={entry.ttl} -> {got}")
        event(f"insert: {len(got)} changes")
        assert got == expected
        self.check_statics_kept(before, got)

    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        prefix = self.some_prefix(data)
        assert self.cache.withdraw(prefix) == self.ref.withdraw(prefix)

    @rule(key=lookup_keys())
    def lookup(self, key: tuple[int, EidAddress]) -> None:
        iid, address = key
        self.check_lookup(iid, address)

    @rule(data=st.data())
    def lookup_inside_a_prefix(self, data: st.DataObject) -> None:
        # An address drawn inside a present prefix, so that hits are common.
        prefix = self.some_prefix(data)
        address = self.address_inside(data, prefix)
        iid = data.draw(st.sampled_from([prefix.instance_id, *INSTANCES]))
        self.check_lookup(iid, address)

    def check_lookup(self, iid: int, address: EidAddress) -> None:
        covering = [it for it in self.ref.items if naive_covers(it.entry.prefix, iid, address)]
        expected = self.ref.lookup(iid, address, self.now)
        assert self.cache.lookup(iid, address, self.now) == expected
        event(f"lookup: {'hit' if expected else 'miss'} among {min(len(covering), 3)} covering")

    @rule(data=st.data())
    def touch(self, data: st.DataObject) -> None:
        prefix = self.some_prefix(data)
        self.cache.touch(prefix, self.now)
        self.ref.touch(prefix, self.now)

    @rule()
    def expire(self) -> None:
        before = self.statics()
        got = self.cache.expire(self.now)
        assert got == self.ref.expire(self.now)
        event(f"expire: {min(len(got), 3)} removed")
        self.check_statics_kept(before, got)

    @rule(data=st.data(), everything=st.integers(0, 4).map(lambda n: n == 0))
    def flush(self, data: st.DataObject, everything: bool) -> None:
        prefix = None if everything else self.some_prefix(data)
        before = self.statics()
        got = self.cache.flush(prefix)
        expected = self.ref.flush(prefix)
        # Flush order is not part of the contract; each prefix goes once.
        assert len(got) == len(set(got))
        assert set(got) == set(expected)
        event(f"flush {'all' if everything else 'prefix'}: {min(len(got), 3)} removed")
        self.check_statics_kept(before, got)

    @invariant()
    def agrees_with_reference(self) -> None:
        assert len(self.cache) == len(self.ref.items) <= self.ref.limit
        expected = {it.entry.prefix: it.entry for it in self.ref.items}
        assert {e.prefix: e for e in self.cache} == expected
        for item in self.ref.items:
            prefix = item.entry.prefix
            assert prefix in self.cache
            assert self.cache.get(prefix) == item.entry
            assert self.cache.last_used(prefix) == item.last_used
        assert self.cache.next_expiry() == self.ref.next_expiry()


TestMapCacheAgainstReference = MapCacheMachine.TestCase


@given(
    entries=st.lists(map_entries(eid_prefixes()), max_size=60),
    keys=st.lists(lookup_keys(), max_size=30),
    now=st.integers(0, 60),
)
def test_lookup_is_the_longest_unexpired_match(
    entries: list[MapEntry], keys: list[tuple[int, EidAddress]], now: int
) -> None:
    cache, ref = MapCache(10_000), Reference(10_000)
    for i, entry in enumerate(entries):
        cache.insert(entry, float(i))
        ref.insert(entry, float(i))
    for iid, address in keys:
        assert cache.lookup(iid, address, float(now)) == ref.lookup(iid, address, float(now))
    for entry in entries:
        # Every installed prefix answers for its own address unless a more
        # specific or an expired entry is in the way; the reference decides.
        iid, address = entry.prefix.instance_id, entry.prefix.address
        assert cache.lookup(iid, address, float(now)) == ref.lookup(iid, address, float(now))


@given(prefix=eid_prefixes(), other=st.sampled_from(INSTANCES))
def test_same_prefix_in_two_instances_stays_apart(prefix: EidPrefix, other: int) -> None:
    twin = replace(prefix, instance_id=other)
    if twin == prefix:
        return
    cache = MapCache(10)
    cache.insert(MapEntry(prefix, (Locator(IPv4Address("198.18.0.1")),), ttl=10), 0)
    cache.insert(MapEntry(twin, (Locator(IPv4Address("198.18.0.2")),), ttl=20), 0)
    one, two = cache.get(prefix), cache.get(twin)
    assert one is not None and two is not None and one != two
    assert cache.lookup(prefix.instance_id, prefix.address, 1) == one
    assert cache.lookup(other, prefix.address, 1) == two
    assert cache.expire(15) == [Removed(prefix, RemovalReason.EXPIRED)]
    assert cache.lookup(prefix.instance_id, prefix.address, 16) is None
    assert cache.lookup(other, prefix.address, 16) == two


# --- choose_locator ---------------------------------------------------------

hashes = st.integers(0, MAX_FLOW_HASH)


def entry_with(locs: tuple[Locator, ...]) -> MapEntry:
    return MapEntry(EidPrefix.parse("192.0.2.0/24"), locs, ttl=60)


def by_slots(locs: tuple[Locator, ...], flow_hash: int) -> Locator | None:
    """The rule restated: one slot per unit of weight (or one per locator if
    all weights are 0), and the hash picks a slot."""
    up = [loc for loc in locs if loc.up and loc.priority != 255]
    if not up:
        return None
    best = min(loc.priority for loc in up)
    usable = [loc for loc in up if loc.priority == best]
    slots = [loc for loc in usable for _ in range(loc.weight)] or usable
    return slots[flow_hash % len(slots)]


@given(locs=locator_sets, flow_hash=hashes)
def test_choice_follows_the_cumulative_weight_rule(
    locs: tuple[Locator, ...], flow_hash: int
) -> None:
    entry = entry_with(locs)
    chosen = choose_locator(entry, flow_hash)
    assert chosen == by_slots(locs, flow_hash)
    assert choose_locator(entry, flow_hash) == chosen  # deterministic: the flow sticks
    if chosen is None:
        assert entry.usable_locators() == ()
        return
    assert chosen.up
    assert chosen.priority != 255
    best = min(loc.priority for loc in locs if loc.up and loc.priority != 255)
    assert chosen.priority == best
    assert chosen in entry.usable_locators()


@given(locs=locator_sets)
def test_usable_locators_keep_their_order(locs: tuple[Locator, ...]) -> None:
    usable = MapEntry(EidPrefix.parse("192.0.2.0/24"), locs).usable_locators()
    positions = [i for i, loc in enumerate(locs) if any(loc is u for u in usable)]
    assert [locs[i] for i in positions] == list(usable)
    assert len({loc.priority for loc in usable}) <= 1


@given(
    weights=st.lists(st.integers(0, 255), min_size=1, max_size=8).map(
        lambda ws: ws if any(ws) else [*ws, 1]
    ),
    rounds=st.integers(1, 4),
    start=st.integers(0, 2**31),
)
def test_split_over_consecutive_hashes_is_exactly_the_weights(
    weights: list[int], rounds: int, start: int
) -> None:
    locs = tuple(Locator(IPv4Address(0xC6120000 + i), weight=w) for i, w in enumerate(weights))
    entry = entry_with(locs)
    total = sum(weights)
    counts = Counter(choose_locator(entry, h) for h in range(start, start + rounds * total))
    assert counts == Counter({loc: rounds * loc.weight for loc in locs if loc.weight})


@given(n=st.integers(1, 8), start=st.integers(0, 2**31))
def test_all_zero_weights_split_uniformly_by_index(n: int, start: int) -> None:
    locs = tuple(Locator(IPv4Address(0xC6120000 + i), weight=0) for i in range(n))
    entry = entry_with(locs)
    for h in range(start, start + 3 * n):
        assert choose_locator(entry, h) == locs[h % n]
