"""Shared topology for the xTR namespace tests: two sites on a veth underlay.

Addresses (DESIGN.md, "Network rules"):

- underlay: 198.18.0.1/24 (site a) and 198.18.0.2/24 (site b) on the veth
  `ul0`, plus 2001:db8:ff00::1/64 and ::2/64 (inside 2001:db8:ff00::/40,
  apart from every EID prefix used here);
- the VM is its own xTR (`own`): the EIDs 192.0.2.10 / 2001:db8::10 (a) and
  192.0.2.20 / 2001:db8::20 (b) sit on the TUN of the xTR's namespace;
- site gateway (`gateway`): a host namespace behind each xTR on the LAN veth
  `lan0`: site a 192.0.2.0/26 and 2001:db8:0:a::/64 (xTR .1 / ::1, host
  .2 / ::2), site b 192.0.2.64/26 and 2001:db8:0:b::/64 (xTR .65 / ::1,
  host .66 / ::2).

The config builders (Mapping, Instance, Segment, xtr_config) serve the
interop tests' lispd nodes too; the traffic between the sites is
tests/traffic.py's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lispd.lab import Lab, Lispd, toml_strings

Shape = Literal["own", "gateway"]
EID_SPACE = ("192.0.2.0/24", "2001:db8::/48")
UNDERLAY = "ul0"
LAN = "lan0"

# Drop reasons that traffic between two correctly configured xTRs never
# causes (drop_miss is left out: IPv6 multicast/link-local noise the kernel
# sends into a TUN has no mapping).
NEVER_DROPPED = (
    "drop_truncated",
    "drop_bad_inner",
    "drop_bad_flags",
    "drop_unknown_instance",
    "drop_not_local_eid",
    "drop_negative",
    "drop_native_forward",
    "drop_too_big",
    "drop_no_rloc",
    "drop_send_error",
    "drop_write_error",
    "drop_bad_offload",
)


@dataclass(frozen=True)
class Xtr:
    """The namespace of an xTR and its RLOCs."""

    namespace: str
    rloc4: str
    rloc6: str

    @property
    def rlocs(self) -> tuple[str, str]:
        return self.rloc4, self.rloc6

    def rloc(self, version: int) -> str:
        return self.rloc6 if version == 6 else self.rloc4


@dataclass(frozen=True)
class Endpoint:
    """Where a site's traffic starts and ends: a namespace and its EIDs."""

    namespace: str
    address4: str
    address6: str

    def address(self, version: int) -> str:
        return self.address6 if version == 6 else self.address4


@dataclass(frozen=True)
class Mapping:
    """A database or static mapping of a generated config."""

    prefix: str
    rloc: str
    instance_id: int = 0
    assign: bool = False
    interface: str | None = None
    priority: int | None = None
    weight: int | None = None

    def toml(self, table: str) -> str:
        lines = [f"[[xtr.{table}]]", f'eid-prefix = "{self.prefix}"']
        if self.instance_id:
            lines.append(f"instance-id = {self.instance_id}")
        if self.assign:
            lines.append("assign = true")
        if self.interface is not None:
            lines.append(f'interface = "{self.interface}"')
        rloc = f'address = "{self.rloc}"'
        if self.priority is not None:
            rloc += f", priority = {self.priority}"
        if self.weight is not None:
            rloc += f", weight = {self.weight}"
        lines.append(f"rlocs = [{{ {rloc} }}]")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Instance:
    """An [[xtr.instance]] of a generated config."""

    instance_id: int
    tun: str
    table: int
    eid_space: tuple[str, ...]
    interfaces: tuple[str, ...]

    def toml(self) -> str:
        return (
            "[[xtr.instance]]\n"
            f"instance-id = {self.instance_id}\n"
            f'tun = "{self.tun}"\n'
            f"table = {self.table}\n"
            f"eid-space = {toml_strings(self.eid_space)}\n"
            f"interfaces = {toml_strings(self.interfaces)}\n"
        )


@dataclass(frozen=True)
class Segment:
    """A [[vxlan]] segment of a generated config; static: (MAC, VTEP) pairs."""

    device: str
    vni: int
    local: str
    flood: tuple[str, ...] = ()
    learning: bool | None = None
    static: tuple[tuple[str, str], ...] = ()

    def toml(self) -> str:
        text = f'[[vxlan]]\ndevice = "{self.device}"\nvni = {self.vni}\nlocal = "{self.local}"\n'
        if self.flood:
            text += f"flood = {toml_strings(self.flood)}\n"
        if self.learning is not None:
            text += f"learning = {str(self.learning).lower()}\n"
        if self.static:
            entries = (f'{{ mac = "{mac}", vtep = "{vtep}" }}' for mac, vtep in self.static)
            text += f"static = [{', '.join(entries)}]\n"
        return text


def underlay_section(rlocs: Sequence[str]) -> str:
    return f"[underlay]\nrlocs = {toml_strings(rlocs)}\n\n"


def xtr_config(
    rlocs: Sequence[str],
    *,
    database: Sequence[Mapping],
    static: Sequence[Mapping],
    instances: Sequence[Instance] = (),
    eid_space: Sequence[str] = EID_SPACE,
    tun_mtu: int | None = None,
    extra: str = "",
) -> str:
    """The config text (without [daemon]: the lab adds it) of an xTR with
    these RLOCs; extra: more of it (a Segment's, say)."""
    text = (underlay_section(rlocs)
            + f'[xtr]\ntun = "lisp0"\neid-space = {toml_strings(eid_space)}\n')
    if tun_mtu is not None:
        text += f"tun-mtu = {tun_mtu}\n"
    text += "\n"
    text += "".join(instance.toml() + "\n" for instance in instances)
    text += "".join(mapping.toml("database-mapping") + "\n" for mapping in database)
    text += "".join(mapping.toml("static-mapping") + "\n" for mapping in static)
    return text + extra


# -- building -----------------------------------------------------------------


def underlay(topology: Lab, mtu: int = 1500) -> tuple[Xtr, Xtr]:
    """Namespaces `a` and `b` joined by the underlay veth."""
    a, b = topology.add("a"), topology.add("b")
    topology.link(a, UNDERLAY, b, UNDERLAY)
    xtrs = (Xtr(a, "198.18.0.1", "2001:db8:ff00::1"), Xtr(b, "198.18.0.2", "2001:db8:ff00::2"))
    for xtr in xtrs:
        topology.ns(xtr.namespace, "ip", "link", "set", UNDERLAY, "mtu", str(mtu))
        topology.ns(xtr.namespace, "ip", "addr", "add", f"{xtr.rloc4}/24", "dev", UNDERLAY)
        topology.ns(xtr.namespace, "ip", "addr", "add", f"{xtr.rloc6}/64", "dev", UNDERLAY,
                    "nodad")
    return xtrs


# Site LANs of the gateway shape: (IPv4 prefix, xTR, host), (IPv6 ...).
LANS = {
    "a": (("192.0.2.0/26", "192.0.2.1", "192.0.2.2"),
          ("2001:db8:0:a::/64", "2001:db8:0:a::1", "2001:db8:0:a::2")),
    "b": (("192.0.2.64/26", "192.0.2.65", "192.0.2.66"),
          ("2001:db8:0:b::/64", "2001:db8:0:b::1", "2001:db8:0:b::2")),
}
OWN_EIDS = {"a": ("192.0.2.10", "2001:db8::10"), "b": ("192.0.2.20", "2001:db8::20")}


def lan(topology: Lab, xtr: Xtr, site: str, role: str, *, xtr_if: str = LAN,
        prefix_routes: bool = True) -> Endpoint:
    """A host namespace on a LAN veth behind xtr, with its default routes via
    the xTR. prefix_routes=False leaves the LAN routes of the xTR side to
    lispd (for LANs whose prefixes overlap in one namespace)."""
    host = topology.add(role)
    topology.link(xtr.namespace, xtr_if, host, "eth0")
    (prefix4, gateway4, address4), (prefix6, gateway6, address6) = LANS[site]
    length4, length6 = prefix4.split("/")[1], prefix6.split("/")[1]
    extra = [] if prefix_routes else ["noprefixroute"]
    topology.ns(xtr.namespace, "ip", "addr", "add", f"{gateway4}/{length4}", "dev", xtr_if,
                *extra)
    topology.ns(xtr.namespace, "ip", "addr", "add", f"{gateway6}/{length6}", "dev", xtr_if,
                "nodad", *extra)
    topology.ns(host, "ip", "addr", "add", f"{address4}/{length4}", "dev", "eth0")
    topology.ns(host, "ip", "addr", "add", f"{address6}/{length6}", "dev", "eth0", "nodad")
    topology.ns(host, "ip", "route", "add", "default", "via", gateway4)
    topology.ns(host, "ip", "-6", "route", "add", "default", "via", gateway6)
    return Endpoint(host, address4, address6)


@dataclass
class Site:
    """One running site: its xTR, its daemon and where its traffic ends."""

    name: str
    xtr: Xtr
    daemon: Lispd
    endpoint: Endpoint


def site_mappings(shape: Shape, xtr: Xtr, site: str, peer: Xtr, peer_site: str, *,
                  outer: int) -> tuple[list[Mapping], list[Mapping]]:
    """(database, static) mappings of one site of a pair: both EID families,
    the peer's EIDs at the peer's RLOC of the outer family."""
    if shape == "own":
        own = OWN_EIDS[site]
        theirs = OWN_EIDS[peer_site]
        database = [Mapping(f"{own[0]}/32", xtr.rloc(outer), assign=True),
                    Mapping(f"{own[1]}/128", xtr.rloc(outer), assign=True)]
        static = [Mapping(f"{theirs[0]}/32", peer.rloc(outer)),
                  Mapping(f"{theirs[1]}/128", peer.rloc(outer))]
        return database, static
    database = [Mapping(prefix, xtr.rloc(outer), interface=LAN)
                for prefix, _, _ in LANS[site]]
    static = [Mapping(prefix, peer.rloc(outer)) for prefix, _, _ in LANS[peer_site]]
    return database, static


def two_sites(topology: Lab, workdir: Path, shape: Shape, outer: int, *,
              tun_mtu: int | None = None, extra: dict[str, str] | None = None,
              xtrs: tuple[Xtr, Xtr] | None = None, daemon: str = "") -> tuple[Site, Site]:
    """Sites a and b of the given shape, daemons running, the peer's EIDs
    mapped to its RLOC of the `outer` family. extra: more config text by site
    name; xtrs: an underlay made already; daemon: [daemon] keys of both."""
    xtrs_by_name = dict(zip("ab", xtrs or underlay(topology), strict=True))
    endpoints: dict[str, Endpoint] = {}
    for name, xtr in xtrs_by_name.items():
        if shape == "own":
            eid4, eid6 = OWN_EIDS[name]
            endpoints[name] = Endpoint(xtr.namespace, eid4, eid6)
        else:
            endpoints[name] = lan(topology, xtr, name, f"h{name}")
    sites = []
    for name, peer in (("a", "b"), ("b", "a")):
        xtr = xtrs_by_name[name]
        database, static = site_mappings(shape, xtr, name, xtrs_by_name[peer], peer, outer=outer)
        config = xtr_config(xtr.rlocs, database=database, static=static, tun_mtu=tun_mtu,
                            extra=(extra or {}).get(name, ""))
        started = topology.lispd(xtr.namespace, config, workdir, f"xtr-{name}", daemon=daemon)
        sites.append(Site(name, xtr, started, endpoints[name]))
    return sites[0], sites[1]


# -- looking at a namespace ---------------------------------------------------


def links(topology: Lab, namespace: str) -> set[str]:
    shown = topology.ns(namespace, "ip", "-j", "link", "show").stdout
    return {link["ifname"] for link in json.loads(shown)}


def link(topology: Lab, namespace: str, device: str) -> dict[str, Any]:
    """What `ip -j link show` says of one device (address, mtu, ...)."""
    (shown,) = json.loads(topology.ns(namespace, "ip", "-j", "link", "show", device).stdout)
    return dict(shown)


def stop_cleanly(topology: Lab, site: Site, devices: Sequence[str] = ("lisp0",)) -> None:
    """SIGTERM: exit status 0, and the devices lispd made are gone."""
    status = site.daemon.stop()
    assert status == 0, f"lispd {site.name} exited {status}:\n{site.daemon.log()[-3000:]}"
    left = links(topology, site.xtr.namespace) & set(devices)
    assert not left, f"still there after lispd {site.name} stopped: {left}"


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after}
