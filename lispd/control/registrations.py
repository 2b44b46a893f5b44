"""The Map-Server's registration table and the prefix index under it (RFC 9301 section 8).

Also the pieces around the table that the Map-Server (lispd.control.mapserver)
and its publish/subscribe side (lispd.control.subscriptions) share: the
configured Site, ``admit`` (which site a Map-Register is for, and whether it
may register what it says; section 8.2), and the records the Map-Server
hands on (registered, negative, withdrawn).

A Map-Server answers every Map-Request with a longest-prefix match over its
registrations and, for unregistered space, with the largest prefix that
covers the requested EID and no registered prefix (section 8.3). With 100k
registrations neither may cost a pass over the table, and neither may
building a throw-away EidPrefix per probe. So ``PrefixIndex`` keeps, per
(instance-id, family):

- a dict from an integer key (address value shifted left 8 bits, or'ed with
  the prefix length) to the item: exact and longest-match probes cost one
  dict lookup per prefix length present (longest first), on plain ints;
- the same keys in a sorted list: the registered prefixes nearest to an
  address in that order are the only ones that can bound the uncovered
  prefix around it (``negative``), and the prefixes inside a prefix are a
  contiguous run of it (``within``).

``RegistrationTable`` is that index for Registrations, plus an expiry heap
with one entry per registration (a refresh moves the entry only when it
comes to the top) and which site and Key ID last registered each xTR-ID
(RFC 9437 section 7: a subscriber's notifications are signed with that key).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Generic, TypeVar

from lispd.mapcache import EidAddress, EidPrefix, wire_eid
from lispd.wire import auth
from lispd.wire.address import Address, InstanceIdAddress, MacAddress
from lispd.wire.messages import MapRegister
from lispd.wire.records import Action, MappingRecord

__all__ = [
    "NEGATIVE_TTL_MINUTES",
    "PrefixIndex",
    "Registration",
    "RegistrationTable",
    "Site",
    "address_value",
    "admit",
    "eid_of",
    "negative_record",
    "published",
    "still_admitted",
    "withdrawn_record",
]

RlocAddress = IPv4Address | IPv6Address
T = TypeVar("T")

NEGATIVE_TTL_MINUTES = 15
"""Record TTL of a negative Map-Reply for non-registered space (section 8.3)."""

_BITS = {IPv4Address: 32, IPv6Address: 128, MacAddress: 48}
# _MASKS[bits][length]: the network mask of a /length prefix as an int.
_MASKS = {
    bits: tuple(((1 << bits) - 1) ^ ((1 << (bits - n)) - 1) for n in range(bits + 1))
    for bits in _BITS.values()
}


def address_value(address: EidAddress) -> int:
    """The EID address as an unsigned integer."""
    if isinstance(address, MacAddress):
        return int.from_bytes(address.octets, "big")
    return int(address)


@dataclass(frozen=True)
class Site:
    """A configured site: who may register what, with which shared key."""

    name: str
    key: bytes = field(repr=False)
    eid_prefixes: tuple[EidPrefix, ...]
    accept_more_specifics: bool = False


@dataclass(frozen=True, slots=True)
class Registration:
    """One entry of the registration table (RFC 9301 section 8.2)."""

    prefix: EidPrefix
    site: str
    record: MappingRecord
    source: RlocAddress
    source_port: int
    key_id: int
    proxy_reply: bool
    want_map_notify: bool
    registered_at: float
    refreshed_at: float
    expires_at: float
    xtr_id: int | None = None
    site_id: int | None = None

    @property
    def rlocs(self) -> frozenset[Address]:
        return frozenset(loc.locator for loc in self.record.locators)


# -- between the wire and the table ------------------------------------------------


def eid_of(address: Address) -> tuple[int, EidAddress]:
    """Instance-id and EID of a wire EID address; ValueError when it is none."""
    instance_id = 0
    if isinstance(address, InstanceIdAddress):
        instance_id, address = address.instance_id, address.address
    if not isinstance(address, IPv4Address | IPv6Address | MacAddress):
        raise ValueError(f"not an EID address: {address!r}")
    return instance_id, address


def _inside(outer: EidPrefix, inner: EidPrefix) -> bool:
    """Whether inner lies within outer (same instance and family, at least as long)."""
    return inner.length >= outer.length and outer.covers(inner.instance_id, inner.address)


def _site_for(sites: Iterable[Site], prefix: EidPrefix) -> Site | None:
    """The site with the longest eid-prefix that contains prefix."""
    best: tuple[Site, int] | None = None
    for site in sites:
        for site_prefix in site.eid_prefixes:
            if _inside(site_prefix, prefix) and (best is None or site_prefix.length > best[1]):
                best = (site, site_prefix.length)
    return None if best is None else best[0]


def admit(
    sites: Iterable[Site], message: MapRegister, payload: bytes
) -> tuple[Site, list[EidPrefix]] | str:
    """The site and record prefixes of an acceptable Map-Register, or why not (section 8.2).

    The longest site eid-prefix covering the first record picks the site,
    whose key must verify the HMAC; every record must then lie within that
    site's eid-prefixes, and be no more specific than one of them unless the
    site accepts more specifics.
    """
    if not message.records:
        return "malformed"
    try:
        prefixes = [
            EidPrefix.of(*eid_of(r.eid_prefix), r.mask_len) for r in message.records
        ]
    except (ValueError, TypeError):
        return "malformed"
    if message.key_id not in (auth.KeyId.HMAC_SHA1_96, auth.KeyId.HMAC_SHA256_128):
        return "unknown_key_id"
    site = _site_for(sites, prefixes[0])
    if site is None:
        return "outside_site"
    if not auth.authentic(payload, site.key):
        return "bad_auth"
    for prefix in prefixes:
        refused = _refusal(site, prefix)
        if refused is not None:
            return refused
    return site, prefixes


def still_admitted(sites: Iterable[Site], registration: Registration) -> bool:
    """Whether a held registration is one the (changed) sites would accept now."""
    site = _site_for(sites, registration.prefix)
    return (site is not None and site.name == registration.site
            and _refusal(site, registration.prefix) is None)


def _refusal(site: Site, prefix: EidPrefix) -> str | None:
    covering = [p for p in site.eid_prefixes if _inside(p, prefix)]
    if not covering:
        return "outside_site"
    if not site.accept_more_specifics and all(p.length < prefix.length for p in covering):
        return "more_specific_refused"
    return None


def negative_record(prefix: EidPrefix) -> MappingRecord:
    """Section 8.3: unregistered space, forward natively, ask again in 15 minutes."""
    return MappingRecord(
        wire_eid(prefix), prefix.length, (), ttl=NEGATIVE_TTL_MINUTES,
        action=Action.NATIVELY_FORWARD,
    )


def withdrawn_record(prefix: EidPrefix) -> MappingRecord:
    """A prefix no longer registered: TTL 0 drops it from a map-cache at once
    (RFC 9301 section 5.4); Send-Map-Request says what to do instead."""
    return MappingRecord(
        wire_eid(prefix), prefix.length, (), ttl=0, action=Action.SEND_MAP_REQUEST
    )


def published(record: MappingRecord) -> MappingRecord:
    """A registered record as the Map-Server hands it on: it speaks for the ETR,
    it is not the authority (so the A bit is clear)."""
    return replace(record, authoritative=False)


class _Family(Generic[T]):
    """The prefixes of one instance-id and address family."""

    __slots__ = ("bits", "items", "keys", "lengths", "longest_first")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.items: dict[int, T] = {}
        self.keys: list[int] = []  # sorted: by address value, then length
        self.lengths: dict[int, int] = {}  # length -> how many prefixes have it
        self.longest_first: tuple[int, ...] = ()

    def recount(self, length: int, delta: int) -> None:
        count = self.lengths.get(length, 0) + delta
        if count:
            self.lengths[length] = count
        else:
            del self.lengths[length]
        if count in (0, 1):  # a length appeared or vanished
            self.longest_first = tuple(sorted(self.lengths, reverse=True))


class PrefixIndex(Generic[T]):
    """Items by EID prefix: exact, longest match, neighbours and ranges, per family."""

    def __init__(self) -> None:
        self._families: dict[tuple[int, int], _Family[T]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _family(self, instance_id: int, address: EidAddress) -> tuple[_Family[T] | None, int]:
        bits = _BITS[type(address)]
        return self._families.get((instance_id, bits)), bits

    def get(self, prefix: EidPrefix) -> T | None:
        family, _ = self._family(prefix.instance_id, prefix.address)
        if family is None:
            return None
        return family.items.get(address_value(prefix.address) << 8 | prefix.length)

    def set(self, prefix: EidPrefix, item: T) -> None:
        family, bits = self._family(prefix.instance_id, prefix.address)
        if family is None:
            family = self._families[(prefix.instance_id, bits)] = _Family(bits)
        key = address_value(prefix.address) << 8 | prefix.length
        if key not in family.items:
            insort(family.keys, key)
            family.recount(prefix.length, 1)
            self._count += 1
        family.items[key] = item

    def pop(self, prefix: EidPrefix) -> T | None:
        family, bits = self._family(prefix.instance_id, prefix.address)
        key = address_value(prefix.address) << 8 | prefix.length
        if family is None or key not in family.items:
            return None
        item = family.items.pop(key)
        del family.keys[bisect_left(family.keys, key)]
        family.recount(prefix.length, -1)
        self._count -= 1
        if not family.items:
            del self._families[(prefix.instance_id, bits)]
        return item

    def values(self) -> Iterator[T]:
        for family in self._families.values():
            yield from family.items.values()

    def longest(
        self, instance_id: int, address: EidAddress, max_length: int | None = None
    ) -> T | None:
        """The item of the longest prefix (no longer than max_length) covering address."""
        family, bits = self._family(instance_id, address)
        if family is None:
            return None
        value = address_value(address)
        masks = _MASKS[bits]
        limit = bits if max_length is None else max_length
        items = family.items
        for length in family.longest_first:
            if length <= limit:
                found = items.get((value & masks[length]) << 8 | length)
                if found is not None:
                    return found
        return None

    def covering(self, prefix: EidPrefix) -> Iterator[T]:
        """The items of the prefixes that contain prefix (itself included), longest first."""
        family, bits = self._family(prefix.instance_id, prefix.address)
        if family is None:
            return
        value = address_value(prefix.address)
        masks = _MASKS[bits]
        for length in family.longest_first:
            if length <= prefix.length:
                found = family.items.get((value & masks[length]) << 8 | length)
                if found is not None:
                    yield found

    def within(self, prefix: EidPrefix) -> Iterator[T]:
        """The items of the prefixes inside prefix (itself included), in address order.

        A prefix inside P has its address in P's range and a length of at
        least P's; a shorter one with its address in that range can only
        have P's own address (its bits past its length are zero), and the
        lower bound of the key range leaves those out.
        """
        family, bits = self._family(prefix.instance_id, prefix.address)
        if family is None:
            return
        low = address_value(prefix.address)
        high = low | ((1 << (bits - prefix.length)) - 1)
        keys = family.keys
        start = bisect_left(keys, low << 8 | prefix.length)
        stop = bisect_right(keys, high << 8 | 0xFF)
        # A copy: the caller may change the index while it walks the result.
        for key in keys[start:stop]:
            if key & 0xFF >= prefix.length:
                yield family.items[key]

    def negative(self, instance_id: int, address: EidAddress) -> EidPrefix:
        """negative_prefix over the prefixes of this index, looking only at two neighbours.

        The bound each registered prefix r puts on the answer is
        min(common bits with address, r.length). Among the prefixes whose
        address is above the EID, the nearest one shares the most bits (the
        standard property of sorted integers) and none of them covers the
        EID, so its bound is its common bits. Below the EID, the nearest
        address (its longest prefix first, by the key order) shares the most
        bits too; a farther prefix sharing k bits would have to sort above
        a covering prefix of length L < k between them, which is impossible
        (its address would begin with the EID's first k bits and so be at
        least the covering prefix's address). So the neighbours decide.
        """
        bits = _BITS[type(address)]
        value = address_value(address)
        family = self._families.get((instance_id, bits))
        length = 0
        if family is not None:
            keys = family.keys
            at = bisect_right(keys, value << 8 | 0xFF)
            for key in keys[max(at - 1, 0) : at + 1]:
                common = bits - (value ^ (key >> 8)).bit_length()
                length = max(length, min(common, key & 0xFF) + 1)
        return EidPrefix.of(instance_id, address, min(length, bits))


class RegistrationTable:
    """Registrations by (instance-id, EID prefix), with expiry and xTR-ID bookkeeping."""

    def __init__(self) -> None:
        self.index: PrefixIndex[Registration] = PrefixIndex()
        # One heap entry per registration: (expires_at when pushed, tie-breaker, prefix).
        self._heap: list[tuple[float, int, EidPrefix]] = []
        self._pushed = 0
        # xTR-ID -> registrations carrying it, and the (site, Key ID) of the latest.
        self._xtr_count: dict[int, int] = {}
        self._xtr_site: dict[int, tuple[str, int]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def get(self, prefix: EidPrefix) -> Registration | None:
        return self.index.get(prefix)

    def values(self) -> Iterator[Registration]:
        return self.index.values()

    def install(self, registration: Registration) -> Registration | None:
        """Add or replace the registration of its prefix; returns the one it replaces."""
        previous = self.index.get(registration.prefix)
        self.index.set(registration.prefix, registration)
        if previous is None:
            self._push(registration)
        else:
            self._forget_xtr(previous)
        if registration.xtr_id is not None:
            xtr_id = registration.xtr_id
            self._xtr_count[xtr_id] = self._xtr_count.get(xtr_id, 0) + 1
            self._xtr_site[xtr_id] = (registration.site, registration.key_id)
        return previous

    def remove(self, prefix: EidPrefix) -> Registration | None:
        """Forget the registration of prefix (its heap entry is dropped when it surfaces)."""
        previous = self.index.pop(prefix)
        if previous is not None:
            self._forget_xtr(previous)
        return previous

    def site_of_xtr(self, xtr_id: int) -> tuple[str, int] | None:
        """The site and Key ID of the latest accepted registration carrying xtr_id."""
        return self._xtr_site.get(xtr_id)

    def _forget_xtr(self, registration: Registration) -> None:
        xtr_id = registration.xtr_id
        if xtr_id is None:
            return
        count = self._xtr_count[xtr_id] - 1
        if count:
            self._xtr_count[xtr_id] = count
        else:
            del self._xtr_count[xtr_id]
            del self._xtr_site[xtr_id]

    def _push(self, registration: Registration) -> None:
        self._pushed += 1
        heapq.heappush(self._heap, (registration.expires_at, self._pushed, registration.prefix))
        # Deregistered prefixes leave their entries behind: rebuild before
        # the stale ones dominate.
        if len(self._heap) > 2 * len(self) + 64:
            self._heap = [(r.expires_at, n, r.prefix)
                          for n, r in enumerate(self.values(), self._pushed + 1)]
            self._pushed += len(self._heap)
            heapq.heapify(self._heap)

    def _settle(self) -> None:
        """Bring the heap top up to date: drop removed entries, move refreshed ones."""
        heap = self._heap
        while heap:
            when, _, prefix = heap[0]
            current = self.index.get(prefix)
            if current is None:
                heapq.heappop(heap)
            elif current.expires_at != when:
                self._pushed += 1
                heapq.heapreplace(heap, (current.expires_at, self._pushed, prefix))
            else:
                return

    def next_expiry(self) -> float | None:
        self._settle()
        return self._heap[0][0] if self._heap else None

    def expire(self, now: float) -> list[Registration]:
        """Remove and return the registrations whose time has come."""
        gone: list[Registration] = []
        while (when := self.next_expiry()) is not None and when <= now:
            _, _, prefix = heapq.heappop(self._heap)
            registration = self.remove(prefix)
            if registration is not None:
                gone.append(registration)
        return gone
