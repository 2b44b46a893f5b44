"""The C forwarding tables against naive Python models: the FIB against a
list of (key, entry) scanned for the longest match, the FDB against a dict.
"""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import (
    IPv4Address,
    IPv6Address,
    ip_address,
    ip_network,
)
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from lispd.dataplane.tables import (
    Fdb,
    FdbEntry,
    Fib,
    FibAction,
    FibEntry,
    FibKey,
    FibLocator,
    InvalidEntryError,
    Learned,
    TableError,
    TableFull,
)
from lispd.ffi import ffi, lib
from tests import strategies as s

IPAddress = IPv4Address | IPv6Address

INSTANCES = (0, 1, 0xFFFFFF)
# Mostly one instance, so that prefixes meet.
instances = st.one_of(st.just(0), st.sampled_from(INSTANCES))
# A few anchors per family so that random prefixes and addresses overlap.
ANCHORS_V4 = (0xC0000200, 0xC6336400, 0x0A000001)
ANCHORS_V6 = (0x20010DB8 << 96, (0x20010DB8 << 96) | (0xABCD << 64) | 1, 0xFE80 << 112)


# --------------------------------------------------------------------------
# Strategies


@st.composite
def addresses(draw: st.DrawFn, version: int | None = None) -> IPAddress:
    """An address near one of the anchors (low bits scrambled) or anywhere."""
    version = version or draw(st.sampled_from((4, 6)))
    bits = 32 if version == 4 else 128
    anchors = ANCHORS_V4 if version == 4 else ANCHORS_V6
    if draw(st.integers(0, 4)) == 0:
        value = draw(st.integers(0, (1 << bits) - 1))
    else:
        low = draw(st.sampled_from((0, 1, 3, 8, 13, 16, 24, 40, bits)))
        low = min(low, bits)
        value = draw(st.sampled_from(anchors)) ^ (draw(st.integers(0, (1 << low) - 1)))
    return IPv4Address(value) if version == 4 else IPv6Address(value)


@st.composite
def fib_keys(draw: st.DrawFn) -> FibKey:
    address = draw(addresses())
    bits = address.max_prefixlen
    length = draw(st.one_of(st.sampled_from((0, bits, bits // 2, 8, 24)),
                            st.integers(0, bits)))
    network = ip_network((address, length), strict=False)
    return FibKey(draw(instances), network)


locators = st.builds(FibLocator, st.one_of(s.ipv4, s.ipv6),
                     st.one_of(st.integers(0, 255), s.u32))


@st.composite
def fib_entries(draw: st.DrawFn) -> FibEntry:
    action = draw(st.sampled_from(FibAction))
    low = 1 if action == FibAction.ENCAP else 0
    found = draw(st.lists(locators, min_size=low, max_size=8))
    return FibEntry(action, tuple(found), draw(s.u32), draw(st.booleans()))


set_op = st.tuples(st.just("set"), fib_keys(), fib_entries())
# A supernet or subnet of a prefix set earlier: (which, where, length).
nest_op = st.tuples(st.just("nest"), st.integers(0, 100), s.u128, st.integers(0, 128),
                    fib_entries())
lookup_op = st.tuples(st.just("lookup"), instances, addresses())
# An address inside a prefix set earlier: (which one, where in it).
probe_op = st.tuples(st.just("probe"), st.integers(0, 100), s.u128)
# Delete a prefix set earlier (perhaps already gone).
forget_op = st.tuples(st.just("forget"), st.integers(0, 100))
fib_ops = st.lists(
    st.one_of(
        set_op, nest_op, nest_op, lookup_op, probe_op, probe_op, probe_op, forget_op,
        st.tuples(st.just("delete"), fib_keys()),
        st.just(("drain",)),
        st.just(("clear",)),
    ),
    min_size=10,
    max_size=80,
)


# --------------------------------------------------------------------------
# The FIB model


class FibModel:
    """A list of (key, entry) and the set of keys hit since the last drain."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: list[tuple[FibKey, FibEntry]] = []
        self.used: set[FibKey] = set()

    def find(self, key: FibKey) -> int | None:
        for i, (k, _) in enumerate(self.entries):
            if k == key:
                return i
        return None

    def set(self, key: FibKey, entry: FibEntry) -> bool:
        at = self.find(key)
        if at is not None:
            self.entries[at] = (key, entry)
        elif len(self.entries) >= self.limit:
            return False
        else:
            self.entries.append((key, entry))
        return True

    def delete(self, key: FibKey) -> bool:
        at = self.find(key)
        if at is None:
            return False
        del self.entries[at]
        self.used.discard(key)
        return True

    def clear(self) -> None:
        self.entries.clear()
        self.used.clear()

    def lookup(self, instance_id: int, address: IPAddress) -> tuple[FibKey, FibEntry] | None:
        best = self.longest(instance_id, address)
        if best is not None:
            self.used.add(best[0])
        return best

    def longest(self, instance_id: int, address: IPAddress) -> tuple[FibKey, FibEntry] | None:
        """The longest match, not counted as a hit (lispd_fib_find)."""
        covering = [
            (key, entry) for key, entry in self.entries
            if key.instance_id == instance_id and key.prefix.version == address.version
            and address in key.prefix
        ]
        event(f"lookup: {min(len(covering), 3)}{'+' * (len(covering) >= 3)} covering prefixes")
        if not covering:
            return None
        return max(covering, key=lambda pair: pair[0].prefix.prefixlen)

    def drain(self) -> set[FibKey]:
        used, self.used = self.used, set()
        return used


def resolve(op: Any, history: list[FibKey]) -> Any:
    """A probe, nest or forget op made concrete against the keys set so far."""
    if op[0] not in ("probe", "nest", "forget") or not history:
        return op
    key = history[op[1] % len(history)]
    if op[0] == "forget":
        return ("delete", key)
    address = key.prefix.network_address + op[2] % key.prefix.num_addresses
    if op[0] == "probe":
        return ("lookup", key.instance_id, address)
    length = op[3] % (address.max_prefixlen + 1)
    return ("set", FibKey(key.instance_id, ip_network((address, length), strict=False)), op[4])


def run_fib(ops: list[Any], limit: int) -> None:
    fib, model = Fib(limit), FibModel(limit)
    history: list[FibKey] = []
    for drawn in ops:
        op = resolve(drawn, history)
        match op:
            case ("set", key, entry):
                history.append(key)
                if model.set(key, entry):
                    fib.set(key, entry)
                else:
                    with pytest.raises(TableFull):
                        fib.set(key, entry)
            case ("delete", key):
                assert fib.delete(key) == model.delete(key)
            case ("lookup", instance_id, address):
                # A find first: same answer, and no hit for drain_used.
                assert fib.find(instance_id, address) == model.longest(instance_id, address)
                assert fib.lookup(instance_id, address) == model.lookup(instance_id, address)
            case ("drain",):
                drained = fib.drain_used()
                assert len(drained) == len(set(drained))
                assert set(drained) == model.drain()
            case ("clear",):
                fib.clear()
                model.clear()
        assert len(fib) == len(model.entries)
    drained = fib.drain_used()
    assert len(drained) == len(set(drained))
    assert set(drained) == model.drain()
    assert fib.drain_used() == []


# --------------------------------------------------------------------------
# FIB tests


def test_actions_mirror_the_header() -> None:
    for action in FibAction:
        assert getattr(lib, f"LISPD_ACT_{action.name}") == action.value
    assert {getattr(lib, n) for n in dir(lib) if n.startswith("LISPD_ACT_")} == set(FibAction)


@settings(max_examples=300)
@given(fib_ops)
def test_fib_equals_longest_match_model(ops: list[Any]) -> None:
    run_fib(ops, limit=1000)


@settings(max_examples=150)
@given(st.integers(0, 6), fib_ops)
def test_fib_limit(limit: int, ops: list[Any]) -> None:
    run_fib(ops, limit)


def test_fib_default_route_and_host_routes() -> None:
    fib = Fib(16)
    hosts = [FibKey(0, ip_network("192.0.2.1/32")), FibKey(0, ip_network("2001:db8::1/128"))]
    defaults = [FibKey(0, ip_network("0.0.0.0/0")), FibKey(0, ip_network("::/0"))]
    for key in defaults + hosts:
        fib.set(key, FibEntry(FibAction.PUNT if key in defaults else FibAction.DROP))
    assert fib.lookup(0, ip_address("192.0.2.1")) == (hosts[0], FibEntry(FibAction.DROP))
    assert fib.lookup(0, ip_address("192.0.2.2")) == (defaults[0], FibEntry(FibAction.PUNT))
    assert fib.lookup(0, ip_address("2001:db8::1")) == (hosts[1], FibEntry(FibAction.DROP))
    assert fib.lookup(0, ip_address("2001:db8::")) == (defaults[1], FibEntry(FibAction.PUNT))
    assert fib.lookup(1, ip_address("192.0.2.1")) is None  # another instance
    assert set(fib.drain_used()) == set(defaults + hosts)


def test_fib_many_prefixes_with_growth_and_deletes() -> None:
    """Thousands of entries (several index and node-array growths, deletes
    moving nodes) against a per-length dict: the same answers."""
    rng = random.Random(9300)
    fib = Fib(50_000)
    model: dict[FibKey, FibEntry] = {}
    seen: list[FibKey] = []
    for round_ in range(12_000):
        if seen and rng.random() < 0.5:  # a supernet or subnet of a known prefix
            near = rng.choice(seen).prefix
            address = near.network_address + rng.getrandbits(near.max_prefixlen - near.prefixlen)
        else:
            address = ip_address(rng.getrandbits(32)) if rng.random() < 0.6 else ip_address(
                rng.getrandbits(128) | 1 << 100)
        bits = address.max_prefixlen
        length = rng.choice((0, bits, rng.randint(0, bits))) if rng.random() < 0.05 else (
            rng.randint(8, bits))
        network = ip_network((address, length), strict=False)
        key = FibKey(rng.choice(INSTANCES), network)
        seen.append(key)
        if rng.random() < 0.25 and model:
            victim = rng.choice(seen) if round_ % 2 else key
            assert fib.delete(victim) == (model.pop(victim, None) is not None)
        else:
            entry = FibEntry(FibAction.ENCAP, (FibLocator(ip_address(rng.getrandbits(32)),
                                                          rng.randint(0, 255)),),
                             rng.getrandbits(32))
            fib.set(key, entry)
            model[key] = entry
    assert len(fib) == len(model)
    expected_used: set[FibKey] = set()
    keys = list(model)
    for _ in range(3000):
        key = rng.choice(keys)
        net = key.prefix
        host = net.network_address + rng.getrandbits(net.max_prefixlen - net.prefixlen)
        want = None
        for length in range(net.max_prefixlen, -1, -1):
            candidate = FibKey(key.instance_id, ip_network((host, length), strict=False))
            if candidate in model:
                want = (candidate, model[candidate])
                expected_used.add(candidate)
                break
        assert fib.lookup(key.instance_id, host) == want
    assert set(fib.drain_used()) == expected_used
    for key in keys:
        assert fib.delete(key)
    assert len(fib) == 0
    assert fib.lookup(0, ip_address("192.0.2.1")) is None


def test_find_is_no_hit() -> None:
    fib = Fib(2)
    key = FibKey(7, ip_network("198.51.100.0/24"))
    fib.set(key, FibEntry(FibAction.DROP))
    assert fib.find(7, ip_address("198.51.100.9")) == (key, FibEntry(FibAction.DROP))
    assert fib.find(7, ip_address("198.51.101.9")) is None
    assert fib.find(1 << 24, ip_address("198.51.100.9")) is None
    assert fib.drain_used() == []
    assert fib.lookup(7, ip_address("198.51.100.9")) is not None
    assert fib.drain_used() == [key]


def test_drain_never_returns_deleted_keys_nor_grows_with_churn() -> None:
    fib = Fib(1)
    key = FibKey(7, ip_network("198.51.100.0/24"))
    address = ip_address("198.51.100.9")
    for _ in range(5000):
        fib.set(key, FibEntry(FibAction.DROP))
        assert fib.lookup(7, address) is not None
        assert fib.delete(key)
    assert fib.drain_used() == []
    for _ in range(5000):
        fib.set(key, FibEntry(FibAction.DROP))
        assert fib.lookup(7, address) is not None
        fib.set(key, FibEntry(FibAction.NATIVE))  # a replace keeps it queued
        assert fib.delete(key)
        fib.set(key, FibEntry(FibAction.DROP))
        assert fib.lookup(7, address) is not None
    assert fib.drain_used() == [key]
    assert fib.drain_used() == []


def test_drain_follows_entries_moved_by_deletes() -> None:
    """Deleting an entry moves another into its place inside the table;
    a queued hit on the moved entry must still drain as that entry, even
    after a new entry takes the place it left."""
    fib = Fib(8)
    keys = [FibKey(0, ip_network(f"192.0.2.{i}/32")) for i in range(4)]
    for key in keys:
        fib.set(key, FibEntry(FibAction.DROP))
    for key in keys[1:]:
        assert fib.lookup(0, key.prefix.network_address) is not None
    assert fib.delete(keys[1])
    fresh = FibKey(0, ip_network("192.0.2.128/25"))
    fib.set(fresh, FibEntry(FibAction.PUNT))
    assert fib.delete(keys[0])
    fib.set(keys[0], FibEntry(FibAction.PUNT))
    assert sorted(map(str, fib.drain_used())) == sorted(map(str, keys[2:]))
    assert fib.drain_used() == []
    assert fib.lookup(0, ip_address("192.0.2.3")) == (keys[3], FibEntry(FibAction.DROP))
    assert fib.drain_used() == [keys[3]]


@settings(max_examples=100)
@given(st.lists(fib_keys(), min_size=1, max_size=40, unique=True), st.integers(1, 5))
def test_partial_drains_add_up(keys: list[FibKey], cap: int) -> None:
    fib = Fib(100)
    for key in keys:
        fib.set(key, FibEntry(FibAction.DROP))
    expected = set()
    for key in keys:
        found = fib.lookup(key.instance_id, key.prefix.network_address)
        assert found is not None
        expected.add(found[0])
    out = ffi.new("struct lispd_fib_key[]", cap)
    drained: list[tuple[int, int, int, bytes]] = []
    while n := lib.lispd_fib_drain_used(fib.handle, out, cap):
        assert n <= cap
        drained += [(k.instance_id, k.family, k.prefix_len, bytes(k.prefix)) for k in out[0:n]]
    assert len(drained) == len(expected)
    assert {(k.instance_id, k.prefix.version, k.prefix.prefixlen,
             k.prefix.network_address.packed.ljust(16, b"\0")) for k in expected} == set(drained)


# Raw C structs for the -1 cases the typed wrapper cannot even express.


def c_key(key: FibKey) -> Any:
    out = ffi.new("struct lispd_fib_key *")
    out.instance_id = key.instance_id
    out.family = key.prefix.version
    out.prefix_len = key.prefix.prefixlen
    packed = key.prefix.network_address.packed
    ffi.memmove(out.prefix, packed, len(packed))
    return out


def c_entry(entry: FibEntry) -> Any:
    out = ffi.new("struct lispd_fib_entry *")
    out.action = entry.action
    out.reencap = entry.reencap
    out.lsbs = entry.lsbs
    out.n_locators = len(entry.locators)
    for i, locator in enumerate(entry.locators):
        out.locators[i].family = locator.address.version
        ffi.memmove(out.locators[i].address, locator.address.packed,
                    len(locator.address.packed))
        out.locators[i].weight = locator.weight
    return out


@st.composite
def broken(draw: st.DrawFn) -> tuple[str, Any, Any]:
    key, entry = draw(fib_keys()), draw(fib_entries())
    k, e = c_key(key), c_entry(entry)
    bits = key.prefix.max_prefixlen
    how = draw(st.sampled_from(("family", "length", "host bit", "v4 tail", "instance",
                                "action", "reencap", "no locator", "too many",
                                "locator family")))
    match how:
        case "family":
            k.family = draw(st.integers(0, 255).filter(lambda f: f not in (4, 6)))
        case "length":
            k.prefix_len = draw(st.integers(bits + 1, 255))
        case "host bit":
            if key.prefix.prefixlen == bits:
                k.prefix_len = bits - 1
                k.prefix[bits // 8 - 1] |= 1
            else:
                bit = draw(st.integers(key.prefix.prefixlen, bits - 1))
                k.prefix[bit // 8] |= 0x80 >> (bit % 8)
        case "v4 tail":
            k.family = 4
            k.prefix_len = min(k.prefix_len, 32)
            k.prefix[draw(st.integers(4, 15))] = draw(st.integers(1, 255))
        case "instance":
            k.instance_id = draw(st.integers(1 << 24, (1 << 32) - 1))
        case "action":
            e.action = draw(st.integers(5, 255))
        case "reencap":  # a flag: anything but 0/1 is a bug on the caller's side
            e.reencap = draw(st.integers(2, 255))
        case "no locator":
            e.action = lib.LISPD_ACT_ENCAP
            e.n_locators = 0
        case "too many":
            e.n_locators = draw(st.integers(9, (1 << 32) - 1))
        case "locator family":
            e.n_locators = draw(st.integers(1, 8))
            for i in range(e.n_locators):
                e.locators[i].family = draw(st.sampled_from((4, 6)))
            e.locators[draw(st.integers(0, e.n_locators - 1))].family = draw(
                st.integers(0, 255).filter(lambda f: f not in (4, 6)))
    return how, k, e


@settings(max_examples=300)
@given(broken())
def test_fib_rejects_invalid_keys_and_entries(case: tuple[str, Any, Any]) -> None:
    how, k, e = case
    fib = Fib(4)
    assert lib.lispd_fib_set(fib.handle, k, e) == -1, how
    assert len(fib) == 0
    if how in ("family", "length", "host bit", "v4 tail", "instance"):
        assert lib.lispd_fib_delete(fib.handle, k) == -1


@given(fib_keys(), fib_entries())
@settings(max_examples=100)
def test_fib_typed_wrapper_refuses_what_c_cannot_hold(key: FibKey, entry: FibEntry) -> None:
    fib = Fib(4)
    with pytest.raises(ValueError, match="instance-id"):
        fib.set(replace(key, instance_id=1 << 24), entry)
    nine = (FibLocator(ip_address("198.18.0.1"), 1),) * 9
    with pytest.raises(InvalidEntryError):
        fib.set(key, replace(entry, locators=nine))
    with pytest.raises(ValueError, match="weight"):
        fib.set(key, FibEntry(FibAction.ENCAP, (FibLocator(ip_address("198.18.0.1"), -1),)))
    with pytest.raises(InvalidEntryError):
        fib.set(key, FibEntry(FibAction.ENCAP, ()))
    assert len(fib) == 0
    assert fib.lookup(1 << 24, key.prefix.network_address) is None
    assert not fib.delete(replace(key, instance_id=1 << 24))
    unknown = ffi.new("uint8_t[16]")
    assert lib.lispd_fib_lookup(fib.handle, 0, 5, unknown, ffi.NULL) == ffi.NULL
    assert isinstance(TableFull(), TableError)


def test_fib_zero_limit_and_full_table() -> None:
    entry = FibEntry(FibAction.DROP)
    empty = Fib(0)
    with pytest.raises(TableFull):
        empty.set(FibKey(0, ip_network("0.0.0.0/0")), entry)
    fib = Fib(3)
    keys = [FibKey(0, ip_network(f"192.0.2.{i}/32")) for i in range(4)]
    for key in keys[:3]:
        fib.set(key, entry)
    with pytest.raises(TableFull):
        fib.set(keys[3], entry)
    fib.set(keys[0], FibEntry(FibAction.PUNT))  # replacing fits
    assert lib.lispd_fib_set(fib.handle, c_key(keys[3]), c_entry(entry)) == -2
    fib.clear()
    assert len(fib) == 0
    for key in keys[1:]:
        fib.set(key, entry)
    assert fib.lookup(0, ip_address("192.0.2.0")) is None


# --------------------------------------------------------------------------
# The FDB


MACS = (
    bytes.fromhex("020000000001"),
    bytes.fromhex("020000000002"),
    bytes.fromhex("00163e000003"),
    bytes.fromhex("fe0000000004"),
    bytes.fromhex("010203040506"),  # multicast (I/G bit)
    bytes.fromhex("ffffffffffff"),  # broadcast
)
VNIS = (0, 4096, 0xFFFFFF)
VTEPS: tuple[IPAddress, ...] = (
    IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2"), IPv6Address("2001:db8::1"),
    IPv6Address("2001:db8::2"),
)
times = st.one_of(st.integers(0, 2000), s.u64)
fdb_entries = st.builds(FdbEntry, st.sampled_from(VNIS), st.sampled_from(MACS),
                        st.sampled_from(VTEPS), st.booleans(), times)
fdb_ops = st.lists(
    st.one_of(
        st.tuples(st.just("learn"), st.sampled_from(VNIS), st.sampled_from(MACS),
                  st.sampled_from(VTEPS), times),
        st.tuples(st.just("learn"), st.sampled_from(VNIS), st.sampled_from(MACS),
                  st.sampled_from(VTEPS), times),
        st.tuples(st.just("set"), fdb_entries),
        st.tuples(st.just("delete"), st.sampled_from(VNIS), st.sampled_from(MACS)),
        st.tuples(st.just("age"), times, st.one_of(st.integers(0, 1000), s.u64)),
        st.tuples(st.just("lookup"), st.sampled_from(VNIS), st.sampled_from(MACS)),
    ),
    min_size=5,
    max_size=60,
)


def multicast(mac: bytes) -> bool:
    return bool(mac[0] & 1)


def run_fdb(ops: list[Any], limit: int) -> None:
    fdb = Fdb(limit)
    model: dict[tuple[int, bytes], FdbEntry] = {}
    for op in ops:
        match op:
            case ("learn", vni, mac, vtep, now):
                old = model.get((vni, mac))
                if multicast(mac):
                    with pytest.raises(InvalidEntryError):
                        fdb.learn(vni, mac, vtep, now)
                elif old is None and len(model) >= limit:
                    with pytest.raises(TableFull):
                        fdb.learn(vni, mac, vtep, now)
                elif old is not None and old.static:
                    assert fdb.learn(vni, mac, vtep, now) == Learned.STATIC
                else:
                    want = Learned.REFRESHED if old and old.vtep == vtep else Learned.ADDED_OR_MOVED
                    assert fdb.learn(vni, mac, vtep, now) == want
                    event("learn: " + ("new" if old is None else
                                       "refreshed" if want == Learned.REFRESHED else "moved"))
                    model[vni, mac] = FdbEntry(vni, mac, vtep, False, now)
            case ("set", entry):
                key = (entry.vni, entry.mac)
                if multicast(entry.mac):
                    with pytest.raises(InvalidEntryError):
                        fdb.set(entry)
                elif key not in model and len(model) >= limit:
                    with pytest.raises(TableFull):
                        fdb.set(entry)
                else:
                    fdb.set(entry)
                    model[key] = entry
            case ("delete", vni, mac):
                assert fdb.delete(vni, mac) == (model.pop((vni, mac), None) is not None)
            case ("age", now, max_age):
                old = [key for key, e in model.items()
                       if not e.static and now > e.last_seen_ms and now - e.last_seen_ms > max_age]
                for key in old:
                    del model[key]
                event(f"age: removed {min(len(old), 2)}{'+' * (len(old) >= 2)}")
                assert fdb.age(now, max_age) == len(old)
            case ("lookup", vni, mac):
                assert fdb.lookup(vni, mac) == model.get((vni, mac))
        assert len(fdb) == len(model)
    dumped = fdb.dump()
    assert len(dumped) == len(model)
    assert {(e.vni, e.mac): e for e in dumped} == model


@settings(max_examples=300)
@given(fdb_ops)
def test_fdb_equals_dict_model(ops: list[Any]) -> None:
    run_fdb(ops, limit=100)


@settings(max_examples=150)
@given(st.integers(0, 4), fdb_ops)
def test_fdb_limit(limit: int, ops: list[Any]) -> None:
    run_fdb(ops, limit)


def test_fdb_many_macs() -> None:
    rng = random.Random(7348)
    fdb = Fdb(20_000)
    model: dict[tuple[int, bytes], IPAddress] = {}
    for now in range(40_000):
        vni = rng.choice(VNIS)
        mac = bytes([rng.getrandbits(8) & 0xFE]) + rng.randbytes(5)
        if model and rng.random() < 0.2:
            vni, mac = rng.choice(list(model)) if now % 50 == 0 else (vni, mac)
            assert fdb.delete(vni, mac) == (model.pop((vni, mac), None) is not None)
            continue
        vtep = rng.choice(VTEPS)
        if (vni, mac) not in model and len(model) >= 20_000:
            continue
        fdb.learn(vni, mac, vtep, now)
        model[vni, mac] = vtep
    assert len(fdb) == len(model)
    for (vni, mac), vtep in model.items():
        found = fdb.lookup(vni, mac)
        assert found is not None
        assert found.vtep == vtep
    assert fdb.age(10**9, 0) == len(model)
    assert len(fdb) == 0
    assert fdb.dump() == []


def test_fdb_static_precedence_and_raw_refusals() -> None:
    fdb = Fdb(8)
    mac, vtep = MACS[0], VTEPS[0]
    fdb.set(FdbEntry(5, mac, vtep, True, 0))
    assert fdb.learn(5, mac, VTEPS[1], 10**6) == Learned.STATIC
    assert fdb.lookup(5, mac) == FdbEntry(5, mac, vtep, True, 0)
    assert fdb.age(2**64 - 1, 0) == 0
    fdb.set(FdbEntry(5, mac, VTEPS[2], False, 100))  # set overrides, learned now
    assert fdb.learn(5, mac, VTEPS[2], 150) == Learned.REFRESHED
    assert fdb.age(1150, 1000) == 0
    assert fdb.age(1151, 1000) == 1
    with pytest.raises(ValueError, match="VNI"):
        fdb.learn(1 << 24, mac, vtep, 0)
    raw = ffi.new("struct lispd_fdb_entry *")
    raw.vni, raw.family = 1 << 24, 4
    ffi.memmove(raw.mac, mac, 6)
    assert lib.lispd_fdb_set(fdb.handle, raw) == -1
    raw.vni, raw.family = 1, 5
    assert lib.lispd_fdb_set(fdb.handle, raw) == -1
    raw.family = 4
    raw.mac[0] = 0x01
    assert lib.lispd_fdb_set(fdb.handle, raw) == -1
    four = ffi.new("uint8_t[4]")
    assert lib.lispd_fdb_learn(fdb.handle, 1 << 24, MACS[1], 4, four, 0) == -1
    assert lib.lispd_fdb_learn(fdb.handle, 1, MACS[1], 0, four, 0) == -1
    assert lib.lispd_fdb_learn(fdb.handle, 1, MACS[4], 4, four, 0) == -1
    assert lib.lispd_fdb_learn(fdb.handle, 1, MACS[1], 4, four, 0) == 1
    assert len(fdb) == 1  # the learned (5, mac) aged out above


def test_fdb_ages_one_segment_at_a_time() -> None:
    fdb = Fdb(8)
    vtep = IPv4Address("198.18.0.2")
    for vni, last in ((100, 0), (200, 0), (200, 900)):
        mac = bytes([2, 0, 0, 0, vni // 100, last // 100])
        fdb.set(FdbEntry(vni, mac, vtep, False, last))
    assert fdb.age(1000, 500, vni=100) == 1
    assert {e.vni for e in fdb.dump()} == {200}
    assert fdb.age(1000, 500, vni=200) == 1
    assert [e.last_seen_ms for e in fdb.dump()] == [900]
