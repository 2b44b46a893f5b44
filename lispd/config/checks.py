"""Checks between sections: what no single table can know by itself.

Each check takes the sections it needs and runs only when they were built;
a section that failed its own checks has already been reported, and judging
others against it would only add noise.
"""

from __future__ import annotations

from lispd.config.model import (
    IPAddress,
    MapServerConfig,
    ProxyConfig,
    UnderlayConfig,
    VxlanConfig,
    XtrConfig,
)
from lispd.config.reader import Node, duplicates


def database_rlocs(root: Node, underlay: UnderlayConfig, xtr: XtrConfig) -> None:
    """An ETR can only announce RLOCs it really has (followed interfaces: unknown here)."""
    if underlay.follows_interfaces:
        return
    own = set(underlay.rlocs)
    listed = ", ".join(str(rloc) for rloc in underlay.rlocs)
    for index, mapping in enumerate(xtr.database_mappings):
        at = root.key("xtr").key("database-mapping").item(index).key("rlocs")
        for position, rloc in enumerate(mapping.rlocs):
            if rloc.address not in own:
                at.item(position).key("address").report(
                    f"{rloc.address} is not one of this node's underlay.rlocs ({listed})"
                )


def vxlan_locals(root: Node, underlay: UnderlayConfig, xtr: XtrConfig | None,
                 vxlans: tuple[VxlanConfig, ...]) -> None:
    """A VTEP sends from an underlay RLOC, or from an EID of its own (VXLAN over LISP)."""
    if underlay.follows_interfaces:
        return
    usable: set[IPAddress] = set(underlay.rlocs)
    if xtr is not None:
        usable |= xtr.assigned_eids()
    for index, vxlan in enumerate(vxlans):
        if vxlan.local not in usable:
            root.key("vxlan").item(index).key("local").report(
                f"{vxlan.local} is neither one of underlay.rlocs nor an EID assigned by an "
                "[[xtr.database-mapping]] with assign = true"
            )


def vnis(root: Node, vxlans: tuple[VxlanConfig, ...]) -> None:
    duplicates(root.key("vxlan"), vxlans, lambda vxlan: vxlan.vni, "vni", at="vni")


def gateways(root: Node, xtr: XtrConfig | None, vxlans: tuple[VxlanConfig, ...]) -> None:
    """A gateway segment's prefix is a local EID prefix: it needs the LISP role,
    an instance that exists, and a place in the EID space no other one has."""
    taken: dict[tuple[int, object], str] = {}
    if xtr is not None:
        for index, mapping in enumerate(xtr.database_mappings):
            at = root.key("xtr").key("database-mapping").item(index).key("eid-prefix")
            taken[(mapping.instance_id, mapping.eid_prefix)] = at.path
    for index, vxlan in enumerate(vxlans):
        node = root.key("vxlan").item(index)
        if not vxlan.address:
            if vxlan.instance_id:
                node.key("instance-id").report("has no meaning without an address on the segment")
            continue
        if xtr is None:
            node.key("address").report(
                "a gateway segment's prefix is a local EID prefix: it needs an [xtr] section"
            )
            continue
        if xtr.tun_for(vxlan.instance_id) is None:
            node.key("instance-id").report(
                f"instance-id {vxlan.instance_id} has no [[xtr.instance]] (nor is it 0)"
            )
        for position, prefix in enumerate(vxlan.prefixes):
            at = node.key("address").item(position)
            other = taken.setdefault((vxlan.instance_id, prefix), at.path)
            if other != at.path:
                at.report(f"the prefix {prefix} is already a local EID prefix at {other}")


def proxy(root: Node, xtr: XtrConfig | None, config: ProxyConfig) -> None:
    """A proxy xTR is an ITR and an ETR of no EIDs of its own: it needs the LISP role,
    and as PITR a way to learn mappings."""
    node = root.key("proxy")
    if xtr is None:
        node.report("a proxy xTR needs an [xtr] section: its TUN, eid-space and map-resolvers")
        return
    if not config.pitr and not config.served_itrs:
        node.report("neither a PITR (pitr = false) nor a PETR (no served-itrs): nothing to do")
    if config.pitr and not xtr.map_resolvers and not xtr.static_mappings:
        node.key("pitr").report(
            "a PITR resolves the EIDs it encapsulates to: give [xtr] map-resolvers "
            "(or static-mappings), or set pitr = false"
        )


def device_names(root: Node, underlay: UnderlayConfig | None, xtr: XtrConfig | None,
                 vxlans: tuple[VxlanConfig, ...] | None) -> None:
    """Devices lispd creates need names of their own, apart from the interfaces it uses."""
    created: list[tuple[Node, str]] = []
    # The interfaces that exist already, each with how to point at it.
    existing: dict[str, str] = {}
    for index, name in enumerate(underlay.interfaces if underlay else ()):
        at = root.key("underlay").key("interfaces").item(index)
        existing.setdefault(name, f"an underlay interface ({at.path})")
    if xtr is not None:
        node = root.key("xtr")
        created.append((node.key("tun"), xtr.tun))
        for index, instance in enumerate(xtr.instances):
            at = node.key("instance").item(index)
            created.append((at.key("tun"), instance.tun))
            for position, name in enumerate(instance.interfaces):
                lan = at.key("interfaces").item(position)
                existing.setdefault(name, f"a LAN interface ({lan.path})")
        for index, mapping in enumerate(xtr.database_mappings):
            if mapping.interface is not None:
                lan = node.key("database-mapping").item(index).key("interface")
                existing.setdefault(mapping.interface, f"a LAN interface ({lan.path})")
    for index, vxlan in enumerate(vxlans or ()):
        created.append((root.key("vxlan").item(index).key("device"), vxlan.device))
    first: dict[str, str] = {}
    for at, name in created:
        if name in first:
            at.report(f"device name {name} is already used by {first[name]}")
        elif name in existing:
            at.report(f"{name} is {existing[name]}; lispd creates this device")
        first.setdefault(name, at.path)


def listen_addresses(root: Node, underlay: UnderlayConfig, server: MapServerConfig) -> None:
    """A map-server answers on addresses this node has."""
    if underlay.follows_interfaces:
        return
    listed = ", ".join(str(rloc) for rloc in underlay.rlocs)
    for index, listen in enumerate(server.listen):
        if listen not in underlay.rlocs:
            root.key("map-server").key("listen").item(index).report(
                f"{listen} is not one of this node's underlay.rlocs ({listed})"
            )


def control_peers(root: Node, underlay: UnderlayConfig, xtr: XtrConfig) -> None:
    """What lispd sends to must be reachable from an RLOC of its family: map-servers,
    map-resolvers, proxy-ETRs and, of a static mapping, at least one locator."""
    if underlay.follows_interfaces:
        return
    families = {rloc.version for rloc in underlay.rlocs}
    node = root.key("xtr")
    peers: list[tuple[Node, IPAddress]] = [
        *((node.key("map-resolvers").item(i), a) for i, a in enumerate(xtr.map_resolvers)),
        *((node.key("proxy-etrs").item(i), a) for i, a in enumerate(xtr.proxy_etrs)),
        *((node.key("map-server").item(i).key("address"), p.address)
          for i, p in enumerate(xtr.map_servers)),
    ]
    for at, peer in peers:
        if peer.version not in families:
            at.report(f"{peer} is IPv{peer.version}, but this node has no IPv{peer.version} RLOC")
    for index, mapping in enumerate(xtr.static_mappings):
        versions = {rloc.address.version for rloc in mapping.rlocs}
        # The node has an RLOC of one family at least: a mapping with both has a usable one.
        if len(versions) == 1 and not versions & families:
            (version,) = versions
            node.key("static-mapping").item(index).key("rlocs").report(
                f"all its RLOCs are IPv{version}, but this node has no IPv{version} RLOC"
            )
