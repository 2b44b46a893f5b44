"""The sections of the file, declared: keys, converters, and the checks of each.

A check here sees one built table (and which keys the file wrote); checks
that need two sections at once are in `lispd.config.checks`. To add a key:
a field in `model`, a `Key` below, a check if the value has rules beyond
its type and range, and its entry in systemd/lispd.toml.example (a test
holds the example to every key of `parse.ROOT`).
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv6Network
from typing import get_args

from lispd.config.model import (
    DaemonConfig,
    DatabaseMapping,
    InstanceConfig,
    IPNetwork,
    KeyIdName,
    LogFormat,
    LogLevel,
    MapServerConfig,
    MapServerPeerConfig,
    NegativeAction,
    Offloads,
    ProxyConfig,
    RlocConfig,
    SiteConfig,
    StaticMac,
    StaticMapping,
    UnderlayConfig,
    VxlanConfig,
    XtrConfig,
)
from lispd.config.reader import (
    Array,
    Key,
    Node,
    Table,
    absolute_path,
    address,
    address_port,
    boolean,
    choice,
    duplicates,
    ifname,
    integer,
    interface_address,
    network,
    same_family,
    seconds,
    secret,
    string,
    unicast_mac,
)

IID_MAX = (1 << 24) - 1  # RFC 8060 section 4.1: a 24-bit Instance ID
VNI_MAX = (1 << 24) - 1  # RFC 7348 section 5: a 24-bit VNI
TABLE_MAX = (1 << 32) - 1
# Linux's own tables: 253 default, 254 main, 255 local (0 is "unspecified").
RESERVED_TABLES = frozenset({253, 254, 255})
# The smallest MTU on the overlay devices we accept: the IPv4 minimum
# reassembly size. IPv6 needs 1280 and Linux drops IPv6 from a smaller device.
DEVICE_MTU_MIN = 576
IPV6_MTU_MIN = 1280
MTU_MAX = 65535

# A bound that catches a slip (15000 for 15). The unit's TimeoutStartSec has
# to be longer than the value chosen, or systemd kills lispd while it waits.
READY_TIMEOUT_MAX = 600
# The fast path's room for flood VTEPs per segment (LISPD_MAX_FLOOD in
# native/lispd_native.h; a test holds the two equal).
MAX_FLOOD = 64
# Its room for the ITR prefixes a proxy-ETR serves (LISPD_MAX_SERVED_ITRS).
MAX_SERVED_ITRS = 16

DAEMON = Table(
    DaemonConfig,
    (
        Key("control-socket", absolute_path),
        Key("log-format", choice(*get_args(LogFormat))),
        Key("log-level", choice(*get_args(LogLevel))),
        Key("metrics-listen", address_port),
        Key("offloads", choice(*get_args(Offloads))),
        Key("ready-timeout", seconds(0, READY_TIMEOUT_MAX)),
    ),
)

def _some_rloc(node: Node, underlay: UnderlayConfig, given: frozenset[str]) -> None:
    if not underlay.rlocs and not underlay.interfaces:
        node.key("rlocs").report(
            "required: this node's own RLOC addresses (at least one), or the interfaces "
            "whose addresses are its RLOCs (interfaces = [...])"
        )


UNDERLAY = Table(
    UnderlayConfig,
    (
        Key("rlocs", Array(address, at_least=1, unique="RLOC")),
        Key("interfaces", Array(ifname, at_least=1, unique="interface")),
        Key("mtu", integer(IPV6_MTU_MIN, MTU_MAX)),
    ),
    checks=(_some_rloc,),
)

RLOC = Table(
    RlocConfig,
    (
        Key("address", address),
        Key("priority", integer(0, 255)),
        Key("weight", integer(0, 255)),
    ),
)


def _distinct_rlocs(node: Node, mapping: DatabaseMapping | StaticMapping,
                    given: frozenset[str]) -> None:
    duplicates(node.key("rlocs"), mapping.rlocs, lambda rloc: rloc.address, "RLOC", at="address")


def _assign(node: Node, mapping: DatabaseMapping, given: frozenset[str]) -> None:
    prefix = mapping.eid_prefix
    if mapping.assign and prefix.prefixlen != prefix.max_prefixlen:
        node.key("assign").report(
            f"assign puts one EID on the TUN: it needs a /{prefix.max_prefixlen}, not {prefix}"
        )
    if mapping.assign and mapping.interface is not None:
        node.key("interface").report(
            "not together with assign: the EID is either on this node's TUN (assign) "
            "or behind a LAN interface"
        )


DATABASE_MAPPING = Table(
    DatabaseMapping,
    (
        Key("eid-prefix", network),
        Key("instance-id", integer(0, IID_MAX)),
        Key("assign", boolean),
        Key("interface", ifname),
        Key("rlocs", Array(RLOC, at_least=1)),
    ),
    checks=(_assign, _distinct_rlocs),
)


def _action(node: Node, mapping: StaticMapping, given: frozenset[str]) -> None:
    if "action" in given and mapping.rlocs:
        node.key("action").report(
            "only for a negative mapping (no rlocs): a mapping with RLOCs forwards to them"
        )


STATIC_MAPPING = Table(
    StaticMapping,
    (
        Key("eid-prefix", network),
        Key("instance-id", integer(0, IID_MAX)),
        Key("rlocs", Array(RLOC)),
        Key("action", choice(*get_args(NegativeAction))),
    ),
    checks=(_action, _distinct_rlocs),
)


def _instance(node: Node, instance: InstanceConfig, given: frozenset[str]) -> None:
    if instance.instance_id == 0:
        node.key("instance-id").report(
            "instance-id 0 is the default instance: [xtr] itself configures it"
        )
    if instance.table in RESERVED_TABLES:
        node.key("table").report(
            f"table {instance.table} is Linux's own (253 default, 254 main, 255 local)"
        )


INSTANCE = Table(
    InstanceConfig,
    (
        Key("instance-id", integer(0, IID_MAX)),
        Key("tun", ifname),
        Key("table", integer(1, TABLE_MAX)),
        Key("eid-space", Array(network, at_least=1, unique="prefix"),
            missing="required: the remote EID prefixes routed into this instance's TUN"),
        Key("interfaces", Array(ifname, unique="interface")),
    ),
    checks=(_instance,),
)


def _instances(node: Node, xtr: XtrConfig, given: frozenset[str]) -> None:
    instances = node.key("instance")
    duplicates(instances, xtr.instances, lambda i: i.instance_id, "instance-id", at="instance-id")
    duplicates(instances, xtr.instances, lambda i: i.table, "table", at="table")
    # A LAN interface's traffic goes to exactly one instance.
    owner: dict[str, tuple[int, str]] = {}
    for index, instance in enumerate(xtr.instances):
        for position, name in enumerate(instance.interfaces):
            at = instances.item(index).key("interfaces").item(position)
            if name in owner and owner[name][0] != instance.instance_id:
                iid, path = owner[name]
                at.report(f"{name} already belongs to instance-id {iid} ({path})")
            owner.setdefault(name, (instance.instance_id, at.path))


def _unique_prefixes(entries: Iterable[tuple[Node, str, int, IPNetwork]]) -> None:
    """Report each (where, what to cite, instance-id, prefix) that an earlier entry repeats."""
    seen: dict[tuple[int, IPNetwork], str] = {}
    for at, cite, iid, prefix in entries:
        if (iid, prefix) in seen:
            at.report(
                f"duplicate eid-prefix {prefix} in instance-id {iid} (also at {seen[iid, prefix]})"
            )
        seen.setdefault((iid, prefix), cite)


def _mapping_instances(node: Node, xtr: XtrConfig, given: frozenset[str]) -> None:
    declared = {instance.instance_id for instance in xtr.instances} | {0}
    lan_instance = {
        name: instance.instance_id for instance in xtr.instances for name in instance.interfaces
    }
    mappings: list[tuple[Node, DatabaseMapping | StaticMapping]] = [
        *((node.key("database-mapping").item(i), m) for i, m in enumerate(xtr.database_mappings)),
        *((node.key("static-mapping").item(i), m) for i, m in enumerate(xtr.static_mappings)),
    ]
    # One mapping per prefix: a static mapping of a local one would send this
    # node's own EIDs away.
    _unique_prefixes(
        (at.key("eid-prefix"), at.path, m.instance_id, m.eid_prefix) for at, m in mappings
    )
    for at, mapping in mappings:
        iid = mapping.instance_id
        if iid not in declared:
            at.key("instance-id").report(
                f"instance-id {iid} is not declared: add an [[xtr.instance]] for it"
            )
        interface = mapping.interface if isinstance(mapping, DatabaseMapping) else None
        if interface is not None and lan_instance.get(interface, 0) != iid:
            at.key("interface").report(
                f"{interface} carries instance-id {lan_instance.get(interface, 0)} "
                f"(see [[xtr.instance]] interfaces), but this mapping is in instance-id {iid}"
            )


def _static_mappings(node: Node, xtr: XtrConfig, given: frozenset[str]) -> None:
    """A static mapping is used for what the kernel routes into a TUN, that is its
    instance's eid-space; a negative one's action must have somewhere to go."""
    spaces = {0: xtr.eid_space} | {i.instance_id: i.eid_space for i in xtr.instances}
    if len(xtr.static_mappings) > xtr.map_cache_limit:
        node.key("static-mapping").report(
            f"{len(xtr.static_mappings)} static mappings do not fit in map-cache-limit "
            f"{xtr.map_cache_limit}"
        )
    for index, mapping in enumerate(xtr.static_mappings):
        at = node.key("static-mapping").item(index)
        prefix, space = mapping.eid_prefix, spaces.get(mapping.instance_id)
        # An undeclared instance-id has been reported by _mapping_instances.
        if space is not None and not any(prefix.overlaps(p) for p in space):
            listed = ", ".join(str(p) for p in space)
            at.key("eid-prefix").report(
                f"{prefix} is outside the eid-space of instance-id {mapping.instance_id} "
                f"({listed}): nothing is routed to it through the TUN, so it would never be used"
            )
        if mapping.rlocs:
            continue  # `action` beside RLOCs is refused by _action
        if mapping.action == "native-forward" and not xtr.proxy_etrs:
            at.key("action").report(
                "native-forward sends through xtr.proxy-etrs and there are none: "
                "packets would be dropped"
            )
        if mapping.action == "send-map-request" and not xtr.map_resolvers:
            at.key("action").report(
                "send-map-request needs xtr.map-resolvers to send Map-Requests to"
            )


def _tun_mtu(node: Node, xtr: XtrConfig, given: frozenset[str]) -> None:
    if xtr.tun_mtu is None or xtr.tun_mtu >= IPV6_MTU_MIN:
        return
    prefixes = [
        *xtr.eid_space,
        *(m.eid_prefix for m in xtr.database_mappings),
        *(m.eid_prefix for m in xtr.static_mappings),
        *(p for instance in xtr.instances for p in instance.eid_space),
    ]
    if any(isinstance(prefix, IPv6Network) for prefix in prefixes):
        node.key("tun-mtu").report(
            f"{xtr.tun_mtu} is below {IPV6_MTU_MIN}, the least IPv6 EIDs need"
        )


MAP_SERVER_PEER = Table(
    MapServerPeerConfig,
    (
        Key("address", address),
        Key("key", secret, missing="required: the key shared with this map-server's site"),
        Key("key-id", choice(*get_args(KeyIdName))),
        Key("proxy-reply", boolean),
    ),
)

# RFC 9301 section 8.2 asks for 60 s; a minute to an hour covers every deployment
# we know, and a map-server expires registrations after three missed intervals.
REGISTER_INTERVAL = integer(1, 3600)


def _xtr_peers(node: Node, xtr: XtrConfig, given: frozenset[str]) -> None:
    duplicates(node.key("map-server"), xtr.map_servers, lambda p: p.address, "map-server",
               at="address")
    if xtr.subscribe and "subscribe" in given and not xtr.map_resolvers:
        node.key("subscribe").report("subscribing needs map-resolvers to send Map-Requests to")


def _proxy_etr_table(node: Node, xtr: XtrConfig, given: frozenset[str]) -> None:
    at = node.key("proxy-etr-table")
    if xtr.proxy_etr_table in RESERVED_TABLES:
        at.report(f"table {xtr.proxy_etr_table} is Linux's own (253 default, 254 main, 255 local)")
    for index, instance in enumerate(xtr.instances):
        if instance.table == xtr.proxy_etr_table:
            at.report(f"table {instance.table} is already the table of "
                      f"{node.key('instance').item(index).path}")


XTR = Table(
    XtrConfig,
    (
        Key("tun", ifname),
        Key("eid-space", Array(network, at_least=1, unique="prefix"),
            missing="required: the remote EID prefixes to route into the TUN (at least one)"),
        Key("map-cache-limit", integer(1)),
        Key("tun-mtu", integer(DEVICE_MTU_MIN, MTU_MAX)),
        Key("database-mapping", Array(DATABASE_MAPPING), field="database_mappings"),
        Key("static-mapping", Array(STATIC_MAPPING), field="static_mappings"),
        Key("instance", Array(INSTANCE), field="instances"),
        Key("map-resolvers", Array(address, unique="map-resolver")),
        Key("proxy-etrs", Array(address, unique="proxy-ETR")),
        Key("proxy-etr-table", integer(1, TABLE_MAX)),
        Key("map-server", Array(MAP_SERVER_PEER), field="map_servers"),
        Key("register-interval", REGISTER_INTERVAL),
        Key("subscribe", boolean),
        Key("solicit-map-request", boolean),
        Key("rloc-probe-interval", seconds(0, 3600)),
    ),
    checks=(_instances, _mapping_instances, _static_mappings, _tun_mtu, _xtr_peers,
            _proxy_etr_table),
)

STATIC_MAC = Table(StaticMac, (Key("mac", unicast_mac), Key("vtep", address)))


def _vteps(node: Node, vxlan: VxlanConfig, given: frozenset[str]) -> None:
    peers = [
        *((node.key("flood").item(i), vtep) for i, vtep in enumerate(vxlan.flood)),
        *((node.key("static").item(i).key("vtep"), e.vtep) for i, e in enumerate(vxlan.static)),
    ]
    for at, vtep in peers:
        # One VXLAN socket per local address: every peer has to be of its family.
        same_family(at, vtep, vxlan.local, f"local ({vxlan.local})")
        if vtep == vxlan.local:
            at.report(f"{vtep} is this VTEP's own address (local)")
    duplicates(node.key("static"), vxlan.static, lambda e: e.mac.hex(":"), "mac", at="mac")


def _gateway(node: Node, vxlan: VxlanConfig, given: frozenset[str]) -> None:
    """One gateway address per family; dynamic EIDs only where there is one to
    answer for, from ranges that reach past the segment's own prefix."""
    duplicates(node.key("address"), vxlan.address, lambda a: f"IPv{a.version}", "address family",
               at=None)
    families = {interface.version for interface in vxlan.address}
    for index, wanted in enumerate(vxlan.dynamic_eid):
        at = node.key("dynamic-eid").item(index)
        if wanted.version not in families:
            at.report(f"{wanted} is IPv{wanted.version}, but the segment has no IPv"
                      f"{wanted.version} address (address = [...]) to be the gateway with")
            continue
        own = next(i.network for i in vxlan.address if i.version == wanted.version)
        if wanted.subnet_of(own):  # type: ignore[arg-type]
            at.report(f"{wanted} lies inside the segment's own prefix {own}: hosts from it "
                      "are local anyway; a dynamic-eid range is wider, where moved hosts come from")
    if "dynamic-eid-timeout" in given and not vxlan.dynamic_eid:
        node.key("dynamic-eid-timeout").report("has no effect without dynamic-eid ranges")


VXLAN = Table(
    VxlanConfig,
    (
        Key("device", ifname),
        Key("vni", integer(0, VNI_MAX)),
        Key("local", address),
        Key("flood", Array(address, unique="VTEP", at_most=MAX_FLOOD)),
        Key("learning", boolean),
        Key("ageing", integer(1, (1 << 31) - 1)),
        Key("static", Array(STATIC_MAC)),
        Key("mtu", integer(DEVICE_MTU_MIN, MTU_MAX)),
        Key("address", Array(interface_address)),
        Key("instance-id", integer(0, IID_MAX)),
        Key("dynamic-eid", Array(network, unique="prefix")),
        Key("dynamic-eid-timeout", seconds(1, 86400)),
    ),
    checks=(_vteps, _gateway),
)

PROXY = Table(
    ProxyConfig,
    (
        Key("pitr", boolean),
        Key("served-itrs", Array(network, unique="prefix", at_most=MAX_SERVED_ITRS)),
    ),
)


def _site(node: Node, site: SiteConfig, given: frozenset[str]) -> None:
    if not site.name.strip():
        node.key("name").report("a site needs a name (it is shown in registrations and logs)")


SITE = Table(
    SiteConfig,
    (
        Key("name", string),
        Key("key", secret, missing="required: the key this site's ETRs sign Map-Registers with"),
        Key("eid-prefixes", Array(network, at_least=1),
            missing="required: the EID prefixes this site may register (at least one)"),
        Key("instance-id", integer(0, IID_MAX)),
        Key("accept-more-specifics", boolean),
    ),
    checks=(_site,),
)


def _sites(node: Node, server: MapServerConfig, given: frozenset[str]) -> None:
    sites = node.key("site")
    duplicates(sites, server.sites, lambda s: s.name, "site name", at="name")
    # The longest site prefix covering a registration picks the site, and so
    # the key: a prefix in two sites would leave that to the order of the file.
    places = [
        (sites.item(index).key("eid-prefixes").item(i), site.instance_id, prefix)
        for index, site in enumerate(server.sites)
        for i, prefix in enumerate(site.eid_prefixes)
    ]
    _unique_prefixes((at, at.path, iid, prefix) for at, iid, prefix in places)


MAP_SERVER = Table(
    MapServerConfig,
    (
        Key("listen", Array(address, at_least=1, unique="address"),
            missing="required: the addresses this map-server answers on (at least one)"),
        Key("register-interval", REGISTER_INTERVAL),
        Key("site", Array(SITE), field="sites"),
    ),
    checks=(_sites,),
)
