"""The map-cache: what an ITR knows of EID-to-RLOC mappings (RFC 9300 section 4).

An ITR looks up the destination EID of each packet, longest prefix first,
within the packet's instance (RFC 8060 section 4.1: the instance-id
qualifies the EID, so 10.0.0.0/8 in instance 1 and in instance 2 are two
prefixes). A hit gives a locator set, and the ITR encapsulates to one of
its RLOCs. Entries come from Map-Replies (RFC 9301 section 5.4) and expire
with their record TTL; a negative Map-Reply (no locators) installs an entry
whose ACT field says what to do instead (drop, forward natively, or ask
again). Static entries (from the configuration) never expire.

This module is pure: no I/O, no clock. Time is the caller's `now`
(monotonic seconds). The map-cache is authoritative; the C forwarding table
the fast path reads is a copy, so every mutating method returns the changes
(`Installed`, `Removed`) that the daemon pushes into it, in order.

Shape: per (instance-id, family), a dict per prefix length mapping the
masked address (an int) to its entry, plus the lengths present, longest
first; a lookup costs one dict probe per length present. Least-recently-used
order of the non-static entries is an OrderedDict; expiry is a heap with lazy
deletion (a replaced or removed entry leaves a stale item that is skipped).
"""

from __future__ import annotations

import heapq
import math
import re
from collections import OrderedDict
from collections.abc import Container, Iterator
from dataclasses import dataclass, replace
from enum import Enum
from ipaddress import IPv4Address, IPv6Address

from lispd.wire.address import Address, InstanceIdAddress, MacAddress
from lispd.wire.records import Action

MAX_INSTANCE_ID = 2**24 - 1
"""The data plane carries 24 bits of instance-id (RFC 9300 section 5.3)."""

MAX_FLOW_HASH = 2**32 - 1
MAX_USABLE_LOCATORS = 8
"""Locators a flow is spread over at most: the C entry's array (LISPD_MAX_LOCATORS)."""
"""The fast path's flow hash is 32 bits (lispd_flow_hash in native/)."""

EidAddress = IPv4Address | IPv6Address | MacAddress
RlocAddress = IPv4Address | IPv6Address


class EidFamily(Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"
    MAC = "mac"

    @property
    def bits(self) -> int:
        return _BITS[self]


_BITS = {EidFamily.IPV4: 32, EidFamily.IPV6: 128, EidFamily.MAC: 48}
# _MASKS[family][length]: the network mask of a /length prefix as an int.
_MASKS = {
    family: tuple(((1 << bits) - 1) ^ ((1 << (bits - length)) - 1) for length in range(bits + 1))
    for family, bits in _BITS.items()
}
_MAC_TEXT = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}")
_PREFIX_TEXT = re.compile(r"(?:\[([0-9]{1,8})\])?([^/\[\]]+)/([0-9]{1,3})")


def _family_and_value(address: object) -> tuple[EidFamily, int]:
    """The family of an EID address and the address as an unsigned integer."""
    if isinstance(address, IPv4Address):
        return EidFamily.IPV4, int(address)
    if isinstance(address, IPv6Address):
        return EidFamily.IPV6, int(address)
    if isinstance(address, MacAddress):
        if not isinstance(address.octets, bytes) or len(address.octets) != 6:
            raise ValueError(f"a MAC address is 6 octets of bytes, not {address.octets!r}")
        return EidFamily.MAC, int.from_bytes(address.octets, "big")
    raise TypeError(f"not an IPv4, IPv6 or MAC address: {address!r}")


def _address_of(family: EidFamily, value: int) -> EidAddress:
    if family is EidFamily.IPV4:
        return IPv4Address(value)
    if family is EidFamily.IPV6:
        return IPv6Address(value)
    return MacAddress(value.to_bytes(6, "big"))


def _parse_address(text: str) -> EidAddress:
    if _MAC_TEXT.fullmatch(text):
        return MacAddress(bytes.fromhex(text.replace(":", "").replace("-", "")))
    try:
        return IPv4Address(text)
    except ValueError:
        pass
    # A scoped IPv6 address (fe80::1%eth0) names an interface, not an EID.
    if "%" not in text:
        try:
            return IPv6Address(text)
        except ValueError:
            pass
    raise ValueError(f"not an IPv4, IPv6 or MAC address: {text!r}")


@dataclass(frozen=True)
class EidPrefix:
    """An EID prefix qualified by its instance-id (RFC 8060 section 4.1).

    Bits of `address` past `length` must be zero, so that equal prefixes
    compare and hash equal; `EidPrefix.of` masks them instead.
    """

    instance_id: int
    address: EidAddress
    length: int

    def __post_init__(self) -> None:
        if not 0 <= self.instance_id <= MAX_INSTANCE_ID:
            raise ValueError(f"instance-id {self.instance_id} is not in 0..{MAX_INSTANCE_ID}")
        family, value = _family_and_value(self.address)
        if isinstance(self.address, IPv6Address) and self.address.scope_id is not None:
            raise ValueError(f"a scoped IPv6 address is not an EID: {self.address}")
        if not 0 <= self.length <= family.bits:
            raise ValueError(f"prefix length {self.length} is not in 0..{family.bits}")
        masked = value & _MASKS[family][self.length]
        if masked != value:
            raise ValueError(
                f"{self.address}/{self.length} has bits set past the prefix length"
                f" (did you mean {_address_of(family, masked)}/{self.length}?)"
            )

    @classmethod
    def of(cls, instance_id: int, address: EidAddress, length: int) -> EidPrefix:
        """The prefix of `length` bits that covers `address` (its host bits cleared)."""
        family, value = _family_and_value(address)
        if not 0 <= length <= family.bits:
            raise ValueError(f"prefix length {length} is not in 0..{family.bits}")
        return cls(instance_id, _address_of(family, value & _MASKS[family][length]), length)

    @classmethod
    def parse(cls, text: str, instance_id: int = 0) -> EidPrefix:
        """Read "192.0.2.0/24", "2001:db8::/32" or "02:00:00:00:00:01/48".

        The length is required (a missing one is more often a typo than a host
        route). A leading "[iid]", as `str()` writes, gives the instance-id; it
        must then agree with `instance_id` unless that is left at 0.
        """
        match = _PREFIX_TEXT.fullmatch(text)
        if match is None:
            raise ValueError(f"not an EID prefix (want ADDRESS/LENGTH): {text!r}")
        iid_text, address_text, length_text = match.groups()
        if iid_text is not None:
            if instance_id not in (0, int(iid_text)):
                raise ValueError(f"{text!r} names instance-id {iid_text}, not {instance_id}")
            instance_id = int(iid_text)
        return cls(instance_id, _parse_address(address_text), int(length_text))

    @property
    def family(self) -> EidFamily:
        return _family_and_value(self.address)[0]

    def covers(self, instance_id: int, address: EidAddress) -> bool:
        """Whether `address` in instance `instance_id` falls within this prefix."""
        family, value = _family_and_value(address)
        mine, base = _family_and_value(self.address)
        return (
            instance_id == self.instance_id
            and family is mine
            and value & _MASKS[family][self.length] == base
        )

    def __str__(self) -> str:
        return f"[{self.instance_id}]{self.address}/{self.length}"


def wire_eid(prefix: EidPrefix) -> Address:
    """The prefix's address as records carry it: a non-zero instance-id wraps
    it in an Instance ID LCAF (RFC 8060 section 4.1)."""
    if prefix.instance_id == 0:
        return prefix.address
    return InstanceIdAddress(prefix.instance_id, prefix.address)


@dataclass(frozen=True)
class Locator:
    """One RLOC of a locator set (RFC 9301 section 5.4, Priority and Weight).

    Lower priority is preferred; 255 means "not for unicast". Among the
    locators of the best priority, traffic is split by weight. `up` is the
    reachability the daemon currently believes (R bit, probing, LSBs).
    """

    address: RlocAddress
    priority: int = 1
    weight: int = 100
    up: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.address, IPv4Address | IPv6Address):
            raise TypeError(f"an RLOC is an IPv4 or IPv6 address, not {self.address!r}")
        if not 0 <= self.priority <= 255:
            raise ValueError(f"priority {self.priority} is not in 0..255")
        if not 0 <= self.weight <= 255:
            raise ValueError(f"weight {self.weight} is not in 0..255")


@dataclass(frozen=True)
class MapEntry:
    """A mapping: an EID prefix, its locator set, how long it lives.

    `ttl` is in seconds (the wire's minutes converted by the caller); None
    marks a static entry that never expires and is never evicted. An entry
    expires at `created + ttl`: from that instant on it is no longer used.
    `action` is what a negative entry (no locators) asks for.
    """

    prefix: EidPrefix
    locators: tuple[Locator, ...] = ()
    ttl: float | None = None
    action: Action = Action.NO_ACTION
    created: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.locators, tuple):
            raise TypeError("locators must be a tuple (entries are immutable and hashable)")
        if self.ttl is not None and not (math.isfinite(self.ttl) and self.ttl >= 0):
            raise ValueError(f"ttl {self.ttl} is not a finite number of seconds >= 0")

    @property
    def negative(self) -> bool:
        return not self.locators

    @property
    def static(self) -> bool:
        return self.ttl is None

    @property
    def expires_at(self) -> float | None:
        return None if self.ttl is None else self.created + self.ttl

    def expired(self, now: float) -> bool:
        return self.ttl is not None and now >= self.created + self.ttl

    def usable_locators(self) -> tuple[Locator, ...]:
        """The up locators of the best priority below 255, in their given order
        (the first MAX_USABLE_LOCATORS of them: a peer may announce more)."""
        candidates = [loc for loc in self.locators if loc.up and loc.priority < 255]
        if not candidates:
            return ()
        best = min(loc.priority for loc in candidates)
        return tuple(loc for loc in candidates if loc.priority == best)[:MAX_USABLE_LOCATORS]


def choose_locator(entry: MapEntry, flow_hash: int) -> Locator | None:
    """The RLOC that carries the flow whose 32-bit hash is `flow_hash`.

    The rule (RFC 9301 section 5.4 leaves the split to the ITR), which the C
    fast path implements over the locators the daemon pushes to it (see
    struct lispd_locator in native/lispd_native.h) and which must stay
    bit-identical to it:

        usable = entry.usable_locators()        # None when empty
        total  = sum of their weights
        total == 0:  usable[flow_hash % len(usable)]
        otherwise:   r = flow_hash % total; the first usable[i] with
                     r < weight[0] + ... + weight[i]

    So a flow sticks to one RLOC while the locator set is unchanged, a weight
    0 locator gets nothing unless all weights are 0, and the split over
    uniformly spread hashes follows the weights.
    """
    if not 0 <= flow_hash <= MAX_FLOW_HASH:
        raise ValueError(f"flow hash {flow_hash} is not a 32-bit unsigned value")
    usable = entry.usable_locators()
    if not usable:
        return None
    total = sum(loc.weight for loc in usable)
    if total == 0:
        return usable[flow_hash % len(usable)]
    r = flow_hash % total
    cumulative = 0
    for loc in usable:
        cumulative += loc.weight
        if r < cumulative:
            return loc
    raise AssertionError("unreachable: r < total, the last cumulative weight")


class RemovalReason(Enum):
    EXPIRED = "expired"
    EVICTED = "evicted"
    FLUSHED = "flushed"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Installed:
    """An entry was added, or replaced the entry of the same prefix."""

    entry: MapEntry


@dataclass(frozen=True)
class Removed:
    prefix: EidPrefix
    reason: RemovalReason


Change = Installed | Removed

COUNTERS = (
    "insertions",
    "replacements",
    "evictions",
    "expirations",
    "withdrawals",
    "flushes",
    "refused_full",
)
"""What `MapCache.counters` counts, each from 0: entries inserted for a new
prefix, entries that replaced one of the same prefix, entries removed (one
name per RemovalReason), and insertions refused because only static entries
were left to evict."""
_REMOVALS = {
    RemovalReason.EVICTED: "evictions",
    RemovalReason.EXPIRED: "expirations",
    RemovalReason.WITHDRAWN: "withdrawals",
    RemovalReason.FLUSHED: "flushes",
}


class MapCacheFull(Exception):  # noqa: N818 - the name is the agreed API
    """The cache is at its limit and every entry is static: nothing to evict."""


class _Slot:
    """An installed entry with its bookkeeping; seq tells stale heap items apart."""

    __slots__ = ("entry", "last_used", "seq")

    def __init__(self, entry: MapEntry, last_used: float, seq: int) -> None:
        self.entry = entry
        self.last_used = last_used
        self.seq = seq


class _Table:
    """The entries of one (instance-id, family)."""

    __slots__ = ("by_length", "lengths")

    def __init__(self) -> None:
        self.by_length: dict[int, dict[int, _Slot]] = {}
        self.lengths: list[int] = []  # the keys of by_length, longest first


class MapCache:
    """EID prefixes to mappings, bounded by `limit` entries.

    Inserting a new prefix into a full cache evicts the least recently used
    non-static entry; an insert, a lookup hit and a touch count as a use.
    Expired entries stay (invisible to lookup) until `expire` removes them,
    so that removals always come out as changes for the C copy.

    `counters` (the names in COUNTERS, all present from the start so that
    metrics have stable names) counts what the cache did, whoever asked.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"map-cache limit {limit} must be at least 1")
        self._limit = limit
        self._slots: dict[EidPrefix, _Slot] = {}
        self._tables: dict[tuple[int, EidFamily], _Table] = {}
        self._lru: OrderedDict[EidPrefix, None] = OrderedDict()  # non-static, oldest first
        self._heap: list[tuple[float, int, EidPrefix]] = []  # (expires_at, seq, prefix)
        self._seq = 0
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    @property
    def limit(self) -> int:
        return self._limit

    def insert(self, entry: MapEntry, now: float) -> list[Change]:
        """Install `entry` (stamped `created=now`), replacing one of the same prefix.

        Returns [Removed(victim, EVICTED)] when room had to be made, then
        [Installed(entry)]. Raises MapCacheFull, changing nothing, when the
        cache is full of static entries.
        """
        if entry.created != now:
            entry = replace(entry, created=now)
        prefix = entry.prefix
        changes: list[Change] = []
        old = self._slots.get(prefix)
        if old is None and len(self._slots) >= self._limit:
            if not self._lru:
                self.counters["refused_full"] += 1
                raise MapCacheFull(f"map-cache full ({self._limit} static entries): {prefix}")
            victim = next(iter(self._lru))
            self._remove(victim)
            self._count_removals(RemovalReason.EVICTED)
            changes.append(Removed(victim, RemovalReason.EVICTED))
        self._seq += 1
        slot = _Slot(entry, now, self._seq)
        self._slots[prefix] = slot
        family, value = _family_and_value(prefix.address)
        table = self._tables.setdefault((prefix.instance_id, family), _Table())
        level = table.by_length.get(prefix.length)
        if level is None:
            level = table.by_length[prefix.length] = {}
            table.lengths = sorted(table.by_length, reverse=True)
        level[value] = slot
        self._lru.pop(prefix, None)
        if entry.ttl is not None:
            self._lru[prefix] = None
            heapq.heappush(self._heap, (now + entry.ttl, slot.seq, prefix))
            # Replacing entries (refreshes) leaves stale items behind; rebuild
            # before they outnumber the live ones so the heap stays bounded.
            if len(self._heap) > 2 * len(self._slots) + 64:
                self._rebuild_heap()
        self.counters["insertions" if old is None else "replacements"] += 1
        changes.append(Installed(entry))
        return changes

    def withdraw(self, prefix: EidPrefix) -> list[Change]:
        """Remove the entry of exactly `prefix`, static or not."""
        if prefix not in self._slots:
            return []
        self._remove(prefix)
        self._count_removals(RemovalReason.WITHDRAWN)
        return [Removed(prefix, RemovalReason.WITHDRAWN)]

    def lookup(self, instance_id: int, address: EidAddress, now: float) -> MapEntry | None:
        """The unexpired entry with the longest prefix covering `address`, if any."""
        family, value = _family_and_value(address)
        table = self._tables.get((instance_id, family))
        if table is None:
            return None
        masks = _MASKS[family]
        for length in table.lengths:
            slot = table.by_length[length].get(value & masks[length])
            if slot is not None and not slot.entry.expired(now):
                self._use(slot, now)
                return slot.entry
        return None

    def touch(self, prefix: EidPrefix, now: float) -> None:
        """Note a use of `prefix` seen by the fast path (ignored if absent)."""
        slot = self._slots.get(prefix)
        if slot is not None:
            self._use(slot, now)

    def last_used(self, prefix: EidPrefix) -> float | None:
        """When `prefix` was last installed, looked up or touched; None if absent."""
        slot = self._slots.get(prefix)
        return None if slot is None else slot.last_used

    def expire(self, now: float) -> list[Change]:
        """Remove the entries expired at `now`, earliest expiry first."""
        changes: list[Change] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, prefix = heapq.heappop(heap)
            slot = self._slots.get(prefix)
            if slot is not None and slot.seq == seq:
                self._remove(prefix)
                changes.append(Removed(prefix, RemovalReason.EXPIRED))
        self._count_removals(RemovalReason.EXPIRED, len(changes))
        return changes

    def next_expiry(self) -> float | None:
        """The earliest time at which `expire` will have something to remove."""
        heap = self._heap
        while heap:
            _, seq, prefix = heap[0]
            slot = self._slots.get(prefix)
            if slot is not None and slot.seq == seq:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def flush(self, prefix: EidPrefix | None = None,
              keep: Container[EidPrefix] = frozenset()) -> list[Change]:
        """Remove the non-static entries, all or those `prefix` covers, but
        those at a prefix in `keep`.

        Covered means the same instance and family, and equal or more
        specific. Static entries stay: they belong to the configuration.
        """
        if prefix is None:
            victims = list(self._lru)
        else:
            victims = [entry.prefix for entry in self.within(prefix) if not entry.static]
        victims = [victim for victim in victims if victim not in keep]
        for victim in victims:
            self._remove(victim)
        self._count_removals(RemovalReason.FLUSHED, len(victims))
        return [Removed(victim, RemovalReason.FLUSHED) for victim in victims]

    def within(self, prefix: EidPrefix) -> list[MapEntry]:
        """The entries `prefix` covers: same instance and family, equal or more specific."""
        family, base = _family_and_value(prefix.address)
        table = self._tables.get((prefix.instance_id, family))
        mask = _MASKS[family][prefix.length]
        return [slot.entry for level in self._levels_from(table, prefix.length)
                for value, slot in level.items() if value & mask == base]

    def get(self, prefix: EidPrefix) -> MapEntry | None:
        """The entry of exactly `prefix`, expired or not."""
        slot = self._slots.get(prefix)
        return None if slot is None else slot.entry

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[MapEntry]:
        return (slot.entry for slot in self._slots.values())

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._slots

    def _count_removals(self, reason: RemovalReason, n: int = 1) -> None:
        self.counters[_REMOVALS[reason]] += n

    def _use(self, slot: _Slot, now: float) -> None:
        slot.last_used = now
        if slot.entry.ttl is not None:
            self._lru.move_to_end(slot.entry.prefix)

    def _remove(self, prefix: EidPrefix) -> None:
        del self._slots[prefix]
        self._lru.pop(prefix, None)
        family, value = _family_and_value(prefix.address)
        key = (prefix.instance_id, family)
        table = self._tables[key]
        level = table.by_length[prefix.length]
        del level[value]
        if not level:
            del table.by_length[prefix.length]
            table.lengths.remove(prefix.length)
            if not table.lengths:
                del self._tables[key]

    @staticmethod
    def _levels_from(table: _Table | None, shortest: int) -> Iterator[dict[int, _Slot]]:
        """The per-length dicts of `table` for lengths >= shortest."""
        if table is not None:
            for length in table.lengths:
                if length < shortest:
                    break
                yield table.by_length[length]

    def _rebuild_heap(self) -> None:
        self._heap = [
            (slot.entry.created + slot.entry.ttl, slot.seq, prefix)
            for prefix, slot in self._slots.items()
            if slot.entry.ttl is not None
        ]
        heapq.heapify(self._heap)
