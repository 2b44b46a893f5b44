"""What the host must look like for a configuration: devices, MTUs,
addresses, routes and rules, worked out without touching anything.

The daemon carries a plan out through lispd.netlink (which records what it
made, to undo on exit); tests read plans directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_interface
from typing import Literal

from lispd.config.model import Config, VxlanConfig, XtrConfig

IpAddress = IPv4Address | IPv6Address
IpNetwork = IPv4Network | IPv6Network

# Outer IP + UDP + LISP (RFC 9300 section 5.1) and, for VXLAN, + the inner
# Ethernet header (RFC 7348 section 4).
LISP_OVERHEAD = {4: 20 + 8 + 8, 6: 40 + 8 + 8}
VXLAN_OVERHEAD = {4: 20 + 8 + 8 + 14, 6: 40 + 8 + 8 + 14}
MIN_MTU = 1280
RULE_PRIORITY = 1000
MAIN_TABLE = 254
DEFAULT_ROUTES = (IPv4Network("0.0.0.0/0"), IPv6Network("::/0"))
FAMILIES: tuple[Literal[4, 6], ...] = (4, 6)
# The kernel drops what it routes into a TUN whose queue is full, and a TCP
# sender reads each drop as congestion; 500, the TUN default, is short for a
# reader that drains in batches. 1000 is what Ethernet devices (and TAPs) get.
TUN_TXQUEUELEN = 1000


@dataclass(frozen=True, slots=True)
class Tun:
    name: str
    instance_id: int
    mtu: int


@dataclass(frozen=True, slots=True)
class Tap:
    name: str
    vni: int
    mtu: int


@dataclass(frozen=True, slots=True)
class Address:
    device: str
    interface: str  # "192.0.2.10/32"


@dataclass(frozen=True, slots=True)
class Route:
    prefix: IpNetwork
    device: str
    table: int | None


@dataclass(frozen=True, slots=True)
class Rule:
    """Packets in on `iif`, or (iif None) from `source`, look up `table`."""

    iif: str | None
    table: int
    family: Literal[4, 6]
    priority: int
    source: IpNetwork | None = None
    suppress_prefixlength: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    tuns: tuple[Tun, ...]
    taps: tuple[Tap, ...]
    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]
    forwarding: bool


def tun_mtu(config: Config) -> int:
    """The TUN's MTU: what still fits the underlay once encapsulated, for the
    worst outer family among our RLOCs."""
    assert config.xtr is not None
    if config.xtr.tun_mtu is not None:
        return config.xtr.tun_mtu
    # Followed interfaces may bring either family: leave room for the larger.
    versions = ({4, 6} if config.underlay.interfaces
                else {rloc.version for rloc in config.underlay.rlocs})
    worst = max(LISP_OVERHEAD[version] for version in versions)
    return max(config.underlay.mtu - worst, MIN_MTU)


def tap_mtu(config: Config, segment: VxlanConfig) -> int:
    """A TAP's MTU: frames that fit once wrapped in VXLAN, and in LISP too
    when the VTEP address is an EID (VXLAN over LISP)."""
    if segment.mtu is not None:
        return segment.mtu
    path = config.underlay.mtu
    if config.xtr is not None and segment.local in config.xtr.assigned_eids():
        path = tun_mtu(config)
    return max(path - VXLAN_OVERHEAD[segment.local.version], 68)


def _xtr_plan(config: Config, xtr: XtrConfig) -> tuple[list[Tun], list[Address], list[Route],
                                                       list[Rule], bool]:
    mtu = tun_mtu(config)
    tuns = [Tun(xtr.tun, 0, mtu)]
    tables: dict[int, int | None] = {0: None}
    rules: list[Rule] = []
    routes = [Route(prefix, xtr.tun, None) for prefix in xtr.eid_space]
    for instance in xtr.instances:
        tuns.append(Tun(instance.tun, instance.instance_id, mtu))
        tables[instance.instance_id] = instance.table
        routes += [Route(prefix, instance.tun, instance.table) for prefix in instance.eid_space]
        # Both what arrives from the tenant's LAN and what the ETR hands to
        # the instance's TUN are routed in the instance's own table.
        for device in (instance.tun, *instance.interfaces):
            # Explicit priorities, ahead of the main table (32766), make a
            # re-run after a crash find its rules instead of adding twins.
            priority = RULE_PRIORITY + len(rules) // 2
            rules += [Rule(device, instance.table, 4, priority),
                      Rule(device, instance.table, 6, priority)]
    addresses: list[Address] = []
    gateway = any(instance.interfaces for instance in xtr.instances)
    # The LANs and segments this node routes for, by instance.
    lans: dict[int, list[str]] = {}
    for segment in config.vxlan:
        if not segment.address:
            continue
        gateway = True
        lans.setdefault(segment.instance_id, []).append(segment.device)
        addresses += [Address(segment.device, str(a)) for a in segment.address]
        table = tables[segment.instance_id]
        if table is not None:
            # The address made the segment's route in the main table; the
            # instance's table needs its own, and the TAP's traffic its rule.
            routes += [Route(prefix, segment.device, table) for prefix in segment.prefixes]
            priority = RULE_PRIORITY + len(rules) // 2
            rules += [Rule(segment.device, table, 4, priority),
                      Rule(segment.device, table, 6, priority)]
    for mapping in xtr.database_mappings:
        tun = xtr.tun_for(mapping.instance_id)
        assert tun is not None  # config checked it
        if mapping.assign:
            addresses.append(Address(tun, str(ip_interface(mapping.eid_prefix))))
            table = tables[mapping.instance_id]
            if table is not None:
                # What this host sends from a tenant's EID is the tenant's
                # traffic: route it in the tenant's table.
                rules.append(Rule(None, table, mapping.eid_prefix.version,
                                  RULE_PRIORITY + len(rules), mapping.eid_prefix))
        if mapping.interface is not None:
            gateway = True
            routes.append(
                Route(mapping.eid_prefix, mapping.interface, tables[mapping.instance_id])
            )
            lans.setdefault(mapping.instance_id, []).append(mapping.interface)
    routes = _without_local_twins(config, xtr, tables, routes)
    if xtr.proxy_etrs:
        for instance in xtr.instances:
            lans.setdefault(instance.instance_id, []).extend(instance.interfaces)
        routes += _towards_proxy_etrs(xtr, tables, lans, rules)
    return tuns, addresses, routes, rules, gateway


def _without_local_twins(config: Config, xtr: XtrConfig, tables: dict[int, int | None],
                         routes: list[Route]) -> list[Route]:
    """The routes less those into a TUN for exactly a prefix that is a LAN's or
    a gateway segment's in the same table: an eid-space prefix that is all
    local has nothing remote to route into the TUN, and the kernel holds one
    route per prefix and table (a second one is "File exists")."""
    tuns = {xtr.tun, *(instance.tun for instance in xtr.instances)}
    local = {(route.prefix, route.table) for route in routes if route.device not in tuns}
    # A segment of instance 0 has its route from its address, not from the plan.
    local |= {(prefix, tables[segment.instance_id])
              for segment in config.vxlan for prefix in segment.prefixes}
    return [route for route in routes
            if route.device not in tuns or (route.prefix, route.table) not in local]


def _towards_proxy_etrs(xtr: XtrConfig, tables: dict[int, int | None],
                        lans: dict[int, list[str]], rules: list[Rule]) -> list[Route]:
    """Default routes into the TUN for what the LANs send outside the EID space
    (RFC 6832: the ITR encapsulates it to a proxy-ETR). An instance's table
    takes them directly; instance 0 shares the main table with the host, so
    its LANs look up the main table first without its default route
    (suppress_prefixlength 0) and then a table of their own."""
    routes: list[Route] = []
    for instance_id, devices in lans.items():
        tun = xtr.tun_for(instance_id)
        assert tun is not None  # config checked it
        table = tables[instance_id]
        if table is not None:
            routes += [Route(prefix, tun, table) for prefix in DEFAULT_ROUTES]
            continue
        if not devices:
            continue
        routes += [Route(prefix, tun, xtr.proxy_etr_table) for prefix in DEFAULT_ROUTES]
        for device in dict.fromkeys(devices):
            priority = RULE_PRIORITY + len(rules) // 2
            rules += [Rule(device, MAIN_TABLE, family, priority, suppress_prefixlength=0)
                      for family in FAMILIES]
            rules += [Rule(device, xtr.proxy_etr_table, family, priority + 1)
                      for family in FAMILIES]
    return routes


def plan(config: Config) -> Plan:
    tuns: list[Tun] = []
    addresses: list[Address] = []
    routes: list[Route] = []
    rules: list[Rule] = []
    forwarding = False
    if config.xtr is not None:
        tuns, addresses, routes, rules, forwarding = _xtr_plan(config, config.xtr)
    taps = [Tap(seg.device, seg.vni, tap_mtu(config, seg)) for seg in config.vxlan]
    # A PITR forwards what non-LISP hosts send it into the TUN.
    forwarding = forwarding or config.proxy is not None
    return Plan(tuple(tuns), tuple(taps), tuple(addresses), tuple(routes), tuple(rules),
                forwarding)
