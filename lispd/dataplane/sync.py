"""Keeping the C forwarding tables a faithful copy of Python's state.

The map-cache (lispd.mapcache) is authoritative: every change it reports is
mirrored into the C map-cache table here, and the entries the fast path used
are reported back so LRU and refresh see them. The local database (this
node's EID prefixes) is mirrored the same way.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

from lispd.config.model import DatabaseMapping
from lispd.dataplane.tables import Fib, FibAction, FibEntry, FibKey, FibLocator
from lispd.mapcache import Change, EidPrefix, Installed, MapCache, MapEntry
from lispd.wire.records import Action

NEGATIVE_ACTIONS = {
    Action.NO_ACTION: FibAction.DROP,
    Action.DROP_NO_REASON: FibAction.DROP,
    Action.NATIVELY_FORWARD: FibAction.NATIVE,
    Action.SEND_MAP_REQUEST: FibAction.PUNT,
}


def fib_key(prefix: EidPrefix) -> FibKey | None:
    """The C table's key for an IP EID prefix; None for MAC EIDs, which the
    IP fast path never looks up."""
    if not isinstance(prefix.address, IPv4Address | IPv6Address):
        return None
    return FibKey(prefix.instance_id, ip_network((prefix.address, prefix.length)))


def fib_entry(entry: MapEntry) -> FibEntry:
    """Only the locators the fast path may pick (up, best priority), in
    map-cache order, so C's weighted choice equals lispd.mapcache's."""
    if entry.negative:
        return FibEntry(NEGATIVE_ACTIONS.get(entry.action, FibAction.DROP))
    usable = entry.usable_locators()
    if not usable:
        return FibEntry(FibAction.DROP)
    return FibEntry(
        FibAction.ENCAP, tuple(FibLocator(rloc.address, rloc.weight) for rloc in usable)
    )


def apply(fib: Fib, changes: list[Change]) -> None:
    for change in changes:
        key = fib_key(change.entry.prefix if isinstance(change, Installed) else change.prefix)
        if key is None:
            continue
        if isinstance(change, Installed):
            fib.set(key, fib_entry(change.entry))
        else:
            fib.delete(key)


def report_used(fib: Fib, mapcache: MapCache, now: float) -> int:
    """Tell the map-cache which entries the fast path hit; returns how many."""
    used = fib.drain_used()
    for key in used:
        prefix = EidPrefix(key.instance_id, key.prefix.network_address, key.prefix.prefixlen)
        if prefix in mapcache:
            mapcache.touch(prefix, now)
    return len(used)


def database_entry(mapping: DatabaseMapping) -> tuple[FibKey, FibEntry]:
    """A local EID prefix. Its locator-status-bits (RFC 9300 section 5.3):
    bit i set when the i-th locator of the mapping is up; our own locators
    are up while we run."""
    lsbs = (1 << min(len(mapping.rlocs), 32)) - 1
    return FibKey(mapping.instance_id, mapping.eid_prefix), FibEntry(FibAction.LOCAL, lsbs=lsbs)
