"""From a checked configuration to the control-plane machines of a node.

Pure: the daemon calls these at start-up and whenever this node's RLOCs
change (a followed interface got a new address), and gets new values to
hand to the machines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

from lispd.config.model import (
    DatabaseMapping,
    MapServerConfig,
    RlocConfig,
    StaticMapping,
    XtrConfig,
)
from lispd.control.mapserver import Site
from lispd.control.registrar import LocalMapping, MapServerPeer
from lispd.mapcache import EidPrefix, Locator, MapEntry
from lispd.wire.auth import KeyId
from lispd.wire.records import Action

__all__ = [
    "database", "local_mappings", "local_prefixes", "map_server_peers", "prefix_of", "sites",
    "static_entry",
]

IPAddress = IPv4Address | IPv6Address

KEY_IDS = {"hmac-sha1": KeyId.HMAC_SHA1_96, "hmac-sha256": KeyId.HMAC_SHA256_128}


STATIC_ACTIONS = {
    "drop": Action.DROP_NO_REASON,
    "native-forward": Action.NATIVELY_FORWARD,
    "send-map-request": Action.SEND_MAP_REQUEST,
}


def static_entry(mapping: StaticMapping) -> MapEntry:
    """The map-cache entry of an [[xtr.static-mapping]]: it never expires."""
    prefix = EidPrefix(
        mapping.instance_id, mapping.eid_prefix.network_address, mapping.eid_prefix.prefixlen
    )
    locators = tuple(Locator(r.address, r.priority, r.weight) for r in mapping.rlocs)
    return MapEntry(prefix, locators, ttl=None, action=STATIC_ACTIONS[mapping.action])


def sites(config: MapServerConfig) -> tuple[Site, ...]:
    return tuple(
        Site(
            site.name,
            site.key.encode(),
            tuple(
                EidPrefix.of(site.instance_id, p.network_address, p.prefixlen)
                for p in site.eid_prefixes
            ),
            site.accept_more_specifics,
        )
        for site in config.sites
    )


def map_server_peers(xtr: XtrConfig) -> tuple[MapServerPeer, ...]:
    return tuple(
        MapServerPeer(peer.address, peer.key.encode(), KEY_IDS[peer.key_id], peer.proxy_reply)
        for peer in xtr.map_servers
    )


def database(
    mappings: Iterable[DatabaseMapping], rlocs: Iterable[IPAddress]
) -> tuple[DatabaseMapping, ...]:
    """The local mappings (Config.database) with their RLOCs filled in: a
    mapping that names none is announced at this node's RLOCs of the moment."""
    current = tuple(RlocConfig(address) for address in rlocs)
    return tuple(mapping if mapping.rlocs else replace(mapping, rlocs=current)
                 for mapping in mappings)


def local_mappings(mappings: Iterable[DatabaseMapping]) -> tuple[LocalMapping, ...]:
    """What the registrar registers: mappings that have RLOCs right now."""
    return tuple(
        LocalMapping(m.instance_id, m.eid_prefix, m.rlocs) for m in mappings if m.rlocs
    )


def prefix_of(mapping: DatabaseMapping) -> EidPrefix:
    prefix = mapping.eid_prefix
    return EidPrefix.of(mapping.instance_id, prefix.network_address, prefix.prefixlen)


def local_prefixes(mappings: Iterable[DatabaseMapping]) -> tuple[EidPrefix, ...]:
    return tuple(prefix_of(m) for m in mappings)
