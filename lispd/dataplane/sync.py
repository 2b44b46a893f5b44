"""Keeping the C forwarding tables a faithful copy of Python's state.

The map-cache (lispd.mapcache) is authoritative: every change it reports is
mirrored into the C map-cache table here, and the entries the fast path used
are reported back so LRU and refresh see them. The local database (this
node's EID prefixes) is mirrored the same way.

How a map-cache entry becomes a forwarding entry also depends on local
policy (`FibPolicy`): where natively forwarded traffic goes (proxy-ETRs,
RFC 6832) and which prefixes this node re-encapsulates for (EIDs that moved
away from it, whose packets still arrive from ITRs with a stale mapping).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_network

from lispd.config.model import DatabaseMapping
from lispd.dataplane.tables import Fib, FibAction, FibEntry, FibKey, FibLocator
from lispd.mapcache import MAX_USABLE_LOCATORS, Change, EidPrefix, Installed, MapCache, MapEntry
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




@dataclass(frozen=True, slots=True)
class FibPolicy:
    """Local policy applied to map-cache entries on their way into the C table.

    proxy_etrs: where a natively-forward negative entry sends its packets,
    encapsulated (RFC 6832 section 4.1: an ITR uses a PETR for non-LISP
    destinations); none: such packets are dropped (native_forward), this
    node having no native path of its own out of the overlay.
    reencap: prefixes whose packets the ETR re-encapsulates to the entry's
    locators instead of dropping them as not local.
    """

    proxy_etrs: tuple[IPv4Address | IPv6Address, ...] = ()
    reencap: frozenset[EidPrefix] = frozenset()


DEFAULT_POLICY = FibPolicy()


def _proxy_etr_locators(policy: FibPolicy) -> tuple[FibLocator, ...]:
    """The proxy-ETRs in the order given (the first eight, all the C entry
    holds), sharing the traffic equally: nothing tells the fast path which
    of them is up, so flows are spread rather than all sent to one."""
    return tuple(FibLocator(address, 1) for address in policy.proxy_etrs[:MAX_USABLE_LOCATORS])


def fib_entry(entry: MapEntry, policy: FibPolicy = DEFAULT_POLICY) -> FibEntry:
    """Only the locators the fast path may pick (up, best priority), in
    map-cache order, so C's weighted choice equals lispd.mapcache's."""
    reencap = entry.prefix in policy.reencap
    if entry.negative:
        action = NEGATIVE_ACTIONS.get(entry.action, FibAction.DROP)
        if action is FibAction.NATIVE and policy.proxy_etrs:
            return FibEntry(FibAction.ENCAP, _proxy_etr_locators(policy), reencap=reencap)
        return FibEntry(action, reencap=reencap)
    usable = entry.usable_locators()
    if not usable:
        return FibEntry(FibAction.DROP, reencap=reencap)
    return FibEntry(
        FibAction.ENCAP,
        tuple(FibLocator(rloc.address, rloc.weight) for rloc in usable),
        reencap=reencap,
    )


def apply(fib: Fib, changes: list[Change], policy: FibPolicy = DEFAULT_POLICY) -> None:
    for change in changes:
        key = fib_key(change.entry.prefix if isinstance(change, Installed) else change.prefix)
        if key is None:
            continue
        if isinstance(change, Installed):
            fib.set(key, fib_entry(change.entry, policy))
        else:
            fib.delete(key)


def report_used(fib: Fib, mapcache: MapCache, now: float) -> list[EidPrefix]:
    """Tell the map-cache which entries the fast path hit; returns their
    prefixes (those the map-cache still holds), for the machines that
    refresh entries in use before they expire."""
    used: list[EidPrefix] = []
    for key in fib.drain_used():
        prefix = EidPrefix(key.instance_id, key.prefix.network_address, key.prefix.prefixlen)
        if prefix in mapcache:
            mapcache.touch(prefix, now)
            used.append(prefix)
    return used


def database_entry(mapping: DatabaseMapping) -> tuple[FibKey, FibEntry]:
    """A local EID prefix. Its locator-status-bits (RFC 9300 section 5.3):
    bit i set when the i-th locator of the mapping is up; our own locators
    are up while we run."""
    lsbs = (1 << min(len(mapping.rlocs), 32)) - 1
    return FibKey(mapping.instance_id, mapping.eid_prefix), FibEntry(FibAction.LOCAL, lsbs=lsbs)
