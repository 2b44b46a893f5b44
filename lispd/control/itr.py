"""Pieces shared by the ITR-side machines (lispd.control.resolver, lispd.control.probing).

Conversions between the wire's EID and locator encodings and the map-cache's
EidPrefix/MapEntry (RFC 9301 section 5.4, RFC 8060 section 4.1), and the
token bucket behind the global Map-Request rate limit (RFC 9301 section 5.3).
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

from lispd.mapcache import EidPrefix, Locator, MapCache, MapEntry
from lispd.wire.address import Address, InstanceIdAddress, MacAddress
from lispd.wire.records import Action, MappingRecord

__all__ = [
    "DEFAULT_MAX_TTL",
    "IPAddress",
    "PrefixedRecords",
    "TokenBucket",
    "asks_for_request",
    "covering_entry",
    "eid_prefix_of",
    "entry_of",
    "inside",
    "ip_records",
    "itr_rlocs_for",
    "mapping_entry",
    "overlaps",
]

IPAddress = IPv4Address | IPv6Address

SECONDS_PER_MINUTE = 60
"""Record TTL is in minutes on the wire (RFC 9301 section 5.4), seconds in the map-cache."""
DEFAULT_MAX_TTL = 86400.0
"""Seconds an answer is kept at most, whatever its Record TTL (soft state, DESIGN 6)."""

PrefixedRecords = list[tuple[EidPrefix, MappingRecord]]


def eid_prefix_of(address: Address, mask_len: int) -> EidPrefix | None:
    """The EidPrefix of a wire EID prefix (host bits cleared), or None if it is none."""
    instance_id = 0
    if isinstance(address, InstanceIdAddress):
        instance_id, address = address.instance_id, address.address
    if not isinstance(address, IPv4Address | IPv6Address | MacAddress):
        return None
    try:
        return EidPrefix.of(instance_id, address, mask_len)
    except (ValueError, TypeError):
        return None  # instance-id beyond 24 bits, a MAC of the wrong size, ...


def overlaps(a: EidPrefix, b: EidPrefix) -> bool:
    """Whether one of the prefixes lies within the other."""
    if a.length <= b.length:
        return a.covers(b.instance_id, b.address)
    return b.covers(a.instance_id, a.address)


def mapping_entry(prefix: EidPrefix, record: MappingRecord, max_ttl: float) -> MapEntry | None:
    """The map-cache entry of a mapping record (RFC 9301 section 5.4).

    Locators keep priority and weight; the R bit says whether they are up.
    Only IP locators are usable by the data plane: a record whose locators
    are all of other kinds gives None rather than a misleading negative
    entry. The TTL is capped at ``max_ttl`` seconds, which also gives the
    "recipient decides" value 0xffffffff its meaning.
    """
    locators = tuple(
        Locator(loc.locator, loc.priority, loc.weight, up=loc.reachable)
        for loc in record.locators
        if isinstance(loc.locator, IPv4Address | IPv6Address)
    )
    if record.locators and not locators:
        return None
    ttl = min(float(record.ttl * SECONDS_PER_MINUTE), max_ttl)
    return MapEntry(prefix, locators, ttl, record.action)


def entry_of(
    record: MappingRecord, now: float, max_ttl: float = DEFAULT_MAX_TTL
) -> MapEntry | None:
    """The map-cache entry (created ``now``) of a mapping record, or None if it has none."""
    prefix = eid_prefix_of(record.eid_prefix, record.mask_len)
    entry = None if prefix is None else mapping_entry(prefix, record, max_ttl)
    return None if entry is None else replace(entry, created=now)


def covering_entry(
    mapcache: MapCache, instance_id: int, address: IPAddress, now: float
) -> MapEntry | None:
    """The unexpired entry with the longest prefix covering ``address``.

    Unlike MapCache.lookup this is not a use: a control message naming an
    EID must not keep that entry alive in the LRU order.
    """
    for length in range(address.max_prefixlen, -1, -1):
        entry = mapcache.get(EidPrefix.of(instance_id, address, length))
        if entry is not None and not entry.expired(now):
            return entry
    return None


def ip_records(records: tuple[MappingRecord, ...]) -> PrefixedRecords | None:
    """Each record with its IP EID prefix; None if one has none."""
    converted = []
    for record in records:
        prefix = eid_prefix_of(record.eid_prefix, record.mask_len)
        if prefix is None or not isinstance(prefix.address, IPv4Address | IPv6Address):
            return None
        converted.append((prefix, record))
    return converted


def asks_for_request(entry: MapEntry) -> bool:
    """A negative entry whose action is Send-Map-Request still needs resolving."""
    return entry.negative and entry.action is Action.SEND_MAP_REQUEST


def inside(key: EidPrefix, prefix: EidPrefix) -> bool:
    """Whether ``key`` lies within ``prefix``."""
    return prefix.length <= key.length and prefix.covers(key.instance_id, key.address)


def itr_rlocs_for(
    rlocs: tuple[IPAddress, ...], towards: IPAddress
) -> tuple[IPAddress, ...]:
    """The ITR-RLOCs with those of ``towards``'s family first.

    An ETR answers to the first ITR-RLOC it can use (RFC 9301 section 5.2),
    so this keeps the answer in the family the request travelled in.
    """
    return tuple(sorted(rlocs, key=lambda rloc: rloc.version != towards.version))


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (RFC 9301 section 5.3)."""

    # Refill arithmetic in floats can leave 0.999999...; a token that close is a token.
    _EPSILON = 1e-9

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp: float | None = None

    def ready(self, now: float) -> bool:
        """Whether a token is available at ``now``."""
        if self._stamp is None:
            self._stamp = now
        elif now > self._stamp:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
        return self._tokens >= 1 - self._EPSILON

    def take(self) -> None:
        self._tokens = max(0.0, self._tokens - 1)

    def ready_at(self) -> float:
        """The earliest time a token is available (minus infinity: now)."""
        if self._stamp is None or self._tokens >= 1 - self._EPSILON:
            return -math.inf
        return self._stamp + (1 - self._tokens) / self._rate
