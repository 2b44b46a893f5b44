"""What a loaded configuration is: frozen, fully typed, already checked.

Everything here has passed every check in `lispd.config`; the daemon trusts
it and never re-validates. Section records are keyword-only so call sites
stay readable and fields can be added in any order as the format grows.
Defaults here are the defaults of the file format: a key left out of the file
gets the value written below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from pathlib import Path
from typing import Literal

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
IPInterface = IPv4Interface | IPv6Interface

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
Offloads = Literal["auto", "off"]
NegativeAction = Literal["drop", "native-forward", "send-map-request"]
KeyIdName = Literal["hmac-sha1", "hmac-sha256"]


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    """[daemon]: the process itself.

    `log_format` "auto" writes JSON lines unless stdout is a terminal, where
    it writes console lines. `metrics_listen` (address, TCP port) serves the
    Prometheus text format; None serves none. `ready_timeout` is how long
    start-up waits for the first acknowledged registration before telling
    systemd it is ready anyway (0: not at all), so a map-server that is down
    delays a boot by that much at most. `offloads` "auto" opens the TUN/TAP
    devices with TCP/UDP segmentation offload (IFF_VNET_HDR, TUNSETOFFLOAD)
    and uses UDP GSO/GRO on the underlay sockets where the kernel supports
    them, falling back to the plain batched path where it refuses; "off"
    always takes the plain batched path.
    """

    control_socket: Path = Path("/run/lispd/control.sock")
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"
    metrics_listen: tuple[IPAddress, int] | None = None
    offloads: Offloads = "auto"
    ready_timeout: float = 15.0


@dataclass(frozen=True, kw_only=True)
class UnderlayConfig:
    """[underlay]: the network the VMs really sit on.

    `rlocs` are fixed addresses; `interfaces` are followed: their global
    addresses are this node's RLOCs at any moment, so a VM that moves to
    another network keeps working (it re-registers with the new address).
    """

    rlocs: tuple[IPAddress, ...] = ()
    interfaces: tuple[str, ...] = ()
    mtu: int = 1500

    @property
    def follows_interfaces(self) -> bool:
        return bool(self.interfaces)


@dataclass(frozen=True)
class RlocConfig:
    """One locator of a mapping (RFC 9301 section 5.4 priority and weight)."""

    address: IPAddress
    priority: int = 1
    weight: int = 100


@dataclass(frozen=True, kw_only=True)
class DatabaseMapping:
    """[[xtr.database-mapping]]: local EIDs this node is the ETR for.

    `assign` puts the (host) EID on the TUN, so the VM is its own xTR;
    `interface` names the LAN interface the EIDs sit behind (site gateway).
    No `rlocs` means "this node's RLOCs", whatever they are at the time.
    """

    eid_prefix: IPNetwork
    instance_id: int = 0
    assign: bool = False
    interface: str | None = None
    rlocs: tuple[RlocConfig, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StaticMapping:
    """[[xtr.static-mapping]]: a map-cache entry that never expires.

    With no RLOCs it is a negative mapping and `action` says what to do with
    packets to it; with RLOCs `action` has no meaning and is refused.
    """

    eid_prefix: IPNetwork
    instance_id: int = 0
    rlocs: tuple[RlocConfig, ...] = ()
    action: NegativeAction = "drop"


@dataclass(frozen=True, kw_only=True)
class InstanceConfig:
    """[[xtr.instance]]: a further instance-id (tenant), its TUN and routing table."""

    instance_id: int
    tun: str
    table: int
    eid_space: tuple[IPNetwork, ...]
    interfaces: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class MapServerPeerConfig:
    """[[xtr.map-server]]: a map-server this ETR registers with (RFC 9301 section 5.6).

    The key is a shared secret: it is kept out of repr() so it never reaches a log.
    """

    address: IPAddress
    key: str = field(repr=False)
    key_id: KeyIdName = "hmac-sha256"
    proxy_reply: bool = False


@dataclass(frozen=True, kw_only=True)
class XtrConfig:
    """[xtr]: the LISP ITR/ETR role. Instance-id 0 uses `tun` and the main table.

    With `proxy_etrs`, what a LAN or gateway segment of instance 0 sends
    outside the main table's own routes goes into the TUN through
    `proxy_etr_table` (a further instance uses its own table), so that it
    reaches non-LISP destinations through a proxy-ETR (RFC 6832)."""

    tun: str = "lisp0"
    eid_space: tuple[IPNetwork, ...]
    map_cache_limit: int = 100000
    tun_mtu: int | None = None
    database_mappings: tuple[DatabaseMapping, ...] = ()
    static_mappings: tuple[StaticMapping, ...] = ()
    instances: tuple[InstanceConfig, ...] = ()
    map_resolvers: tuple[IPAddress, ...] = ()
    proxy_etrs: tuple[IPAddress, ...] = ()
    proxy_etr_table: int = 4341
    map_servers: tuple[MapServerPeerConfig, ...] = ()
    register_interval: int = 60
    subscribe: bool = True
    solicit_map_request: bool = True
    rloc_probe_interval: float = 30.0

    def tun_for(self, instance_id: int) -> str | None:
        """The TUN that carries `instance_id`, or None if it is not configured."""
        if instance_id == 0:
            return self.tun
        for instance in self.instances:
            if instance.instance_id == instance_id:
                return instance.tun
        return None

    def assigned_eids(self) -> frozenset[IPAddress]:
        """The host EIDs put on a TUN (database mappings with `assign`)."""
        return frozenset(m.eid_prefix.network_address for m in self.database_mappings if m.assign)


@dataclass(frozen=True)
class StaticMac:
    """A MAC address pinned to a VTEP; `mac` is the 6 octets."""

    mac: bytes
    vtep: IPAddress


@dataclass(frozen=True, kw_only=True)
class VxlanConfig:
    """[[vxlan]]: one RFC 7348 segment bridged to a TAP device.

    With `address` (one per family at most) the node is the segment's
    gateway: the address goes on the TAP and the segment's prefix is a local
    EID prefix in `instance_id`. `dynamic_eid` ranges are where hosts that
    moved here from elsewhere come from: such a host, seen on the segment
    outside its prefix, gets its host route and a registration of its own,
    until it stays silent for `dynamic_eid_timeout` seconds or another xTR
    registers it (lispd.gateway).
    """

    device: str
    vni: int
    local: IPAddress
    flood: tuple[IPAddress, ...] = ()
    learning: bool = True
    ageing: int = 300
    static: tuple[StaticMac, ...] = ()
    mtu: int | None = None
    address: tuple[IPInterface, ...] = ()
    instance_id: int = 0
    dynamic_eid: tuple[IPNetwork, ...] = ()
    dynamic_eid_timeout: float = 120.0

    @property
    def prefixes(self) -> tuple[IPNetwork, ...]:
        """The segment's own prefixes: the networks of its addresses."""
        return tuple(interface.network for interface in self.address)


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    """[proxy]: a proxy xTR (RFC 6832) for hosts that run no LISP.

    `pitr`: the node takes traffic from non-LISP hosts towards the EID space
    ([xtr] eid-space is routed into its TUN) and encapsulates it like an ITR;
    its Map-Requests say so (the p bit, RFC 9301 section 5.2).
    `served_itrs`: the RLOC prefixes of the ITRs it is the proxy-ETR of: LISP
    traffic from them whose destination is no EID is decapsulated and
    forwarded natively. Empty: no PETR; an ETR refuses such traffic.
    """

    pitr: bool = True
    served_itrs: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SiteConfig:
    """[[map-server.site]]: who may register which EID prefixes, with which key."""

    name: str
    key: str = field(repr=False)
    eid_prefixes: tuple[IPNetwork, ...]
    instance_id: int = 0
    accept_more_specifics: bool = False


@dataclass(frozen=True, kw_only=True)
class MapServerConfig:
    """[map-server]: this node is a Map-Server and Map-Resolver (RFC 9301 section 8)."""

    listen: tuple[IPAddress, ...]
    register_interval: int = 60
    sites: tuple[SiteConfig, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Config:
    """A whole configuration file. `xtr` is None when the file has no [xtr]."""

    daemon: DaemonConfig = DaemonConfig()
    underlay: UnderlayConfig
    xtr: XtrConfig | None = None
    vxlan: tuple[VxlanConfig, ...] = ()
    map_server: MapServerConfig | None = None
    proxy: ProxyConfig | None = None
    source: str = "<string>"

    def database(self) -> tuple[DatabaseMapping, ...]:
        """The local EID prefixes: [[xtr.database-mapping]]s, then each
        gateway segment's prefixes (their routes are the TAP's own)."""
        if self.xtr is None:
            return ()
        segments = tuple(
            DatabaseMapping(eid_prefix=prefix, instance_id=segment.instance_id)
            for segment in self.vxlan
            for prefix in segment.prefixes
        )
        return (*self.xtr.database_mappings, *segments)
