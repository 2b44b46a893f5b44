"""The records of the forwarding tables, without the C: what
lispd.dataplane.tables puts into the C tables and what the pure-Python twin
(lispd.dataplane.reference) keeps in its naive ones."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class FibAction(IntEnum):
    """What the fast path does with a matching packet (LISPD_ACT_*)."""

    ENCAP = 0
    DROP = 1
    NATIVE = 2
    PUNT = 3
    LOCAL = 4


class Learned(IntEnum):
    """What lispd_fdb_learn did."""

    REFRESHED = 0       # known behind that VTEP: last seen updated
    ADDED_OR_MOVED = 1  # new, or now behind another VTEP
    STATIC = 2          # a static entry holds the MAC: nothing changed


@dataclass(frozen=True)
class FibLocator:
    """An RLOC and its weight among the locators of an entry."""

    address: IPAddress
    weight: int


@dataclass(frozen=True)
class FibEntry:
    """`lsbs`: the locator-status-bits a local EID prefix sends (database).
    `reencap` (map-cache, ENCAP): an ETR that receives a packet for an EID of
    this prefix that is not local sends it on to these locators, rather than
    dropping it; set for EIDs that moved away from this node."""

    action: FibAction
    locators: tuple[FibLocator, ...] = ()
    lsbs: int = 0
    reencap: bool = False


@dataclass(frozen=True)
class FibKey:
    instance_id: int
    prefix: IPNetwork


@dataclass(frozen=True)
class FdbEntry:
    vni: int
    mac: bytes
    vtep: IPAddress
    static: bool
    last_seen_ms: int
