"""The paper's topology ("Figure 2") in network namespaces: a router per
cloud, the tenant's VMs on VXLAN segments behind it, an on-premise site, a
mapping system and a proxy xTR towards hosts that run no LISP, all joined
by a routed underlay (the core).

               onhost 198.51.100.10  inet 203.0.113.10, 2001:db8:ff00::10
               2001:db8:10::10       (no LISP; the PxTR is its gateway)
                   │ lan0                 │ wan0
  ms: Map-Server,  onprem: site       pxtr: PxTR          r1: router of      r2: router of
  Map-Resolver     gateway xTR        (PITR + PETR)       cloud 1, gateway   cloud 2, gateway
                                                          of VNI 11 and 12   of VNI 21 and 22
  198.18.1.2       198.18.2.2         198.18.3.2          198.18.4.2         198.18.5.2
      │ .1.0/24        │ .2.0/24          │ .3.0/24           │ .4.0/24          │ .5.0/24
  ════╧════════════════╧══════════════════╧════ core (router) ╧══════════════════╧══════════
      │ .11.0/24       │ .12.0/24         │ .21.0/24          │ .22.0/24     │ .31.0/24  │ .32.0/24
    vm11             vm12               vm21                vm22           └── c1  mob  c2 ──┘
    vx0: VNI 11      VNI 12             VNI 21              VNI 22         VNI 11 at r1 at the
    to r1            to r1              to r2               to r2          start (c2 down)

Underlay (198.18.0.0/15): `core` routes between point-to-point /24s, .1 on
its side, .2 on a node's (ms 1, onprem 2, pxtr 3, r1 4, r2 5) and .10 on a
VM's (the clouds' IaaS networks: vm11 11, vm12 12, vm21 21, vm22 22, mob 31
and 32). The lispd nodes have their default route via the core; a VM routes
only 198.18.0.0/15 via the core: its default routes are the overlay's.

Overlay (the tenant's EID space: 192.0.2.0/24, 198.51.100.0/24,
2001:db8::/40; instance 0):

    VNI  router  gateway addresses                    VM     VM's EIDs
    11   r1      192.0.2.1/26     2001:db8:11::1/64   vm11   192.0.2.10    2001:db8:11::10
    12   r1      192.0.2.65/26    2001:db8:12::1/64   vm12   192.0.2.80    2001:db8:12::80
    21   r2      192.0.2.129/26   2001:db8:21::1/64   vm21   192.0.2.140   2001:db8:21::140
    22   r2      192.0.2.193/26   2001:db8:22::1/64   vm22   192.0.2.200   2001:db8:22::200
    on-premise LAN (onprem lan0): 198.51.100.1/24, 2001:db8:10::1/64; onhost .10 / ::10

- `ms` runs lispd with [map-server] (and so the map-resolver): one site
  "tenant" of the whole EID space, more-specifics accepted.
- `r1` and `r2` are xTRs and the gateways of their clouds' segments
  (gateway [[vxlan]] segments: an address on the TAP, the segment's prefix a
  local EID prefix): the tenant's 192.0.2.0/24 is split, a /25 per cloud.
  Each segment takes dynamic EIDs from the whole EID space.
- `onprem` is the on-premise site gateway (lispd, or OpenOverlayRouter with
  `Options(onprem="oor")`), its LAN behind lan0, the host `onhost` there.
- `pxtr` is a proxy xTR (RFC 6832): the PITR the internet host `inet`
  reaches the EID space through (it is inet's gateway), and the PETR every
  xTR sends traffic for non-EIDs to (`proxy-etrs`).
- The VMs run no lispd: each has a kernel vxlan device `vx0` towards its
  segment's router, with its EIDs and default routes via the segment's
  gateway on it (`vm_join`).
- `mob` is a mobile VM: its EIDs 192.0.2.70 and 2001:db8:12::70 are of
  VNI 12's prefix, but it sits on VNI 11 at r1 (a dynamic EID). It joins
  the segment when start() has started the routers, so that r1 hears it
  announce itself; `move_mob` takes it to cloud 2 (uplink c2, VNI 21 at r2)
  with the same EIDs.

Every address is from the ranges DESIGN.md allows; everything lives in the
lab's namespaces and goes with them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from ipaddress import ip_interface
from pathlib import Path
from typing import Any, Literal

from lispd.lab import Lab, Lispd, map_server_config, oor_mapping, toml_strings
from lispd.pcap import Capture

__all__ = ["EID_SPACE", "INET", "KEY", "MOB", "MS", "ONHOST", "ONPREM", "PXTR", "R1", "R2",
           "SEGMENTS", "VMS", "Options", "Paper", "Segment", "Vm"]

KEY = "tenant-s3cret"
MS, ONPREM, PXTR, R1, R2 = "198.18.1.2", "198.18.2.2", "198.18.3.2", "198.18.4.2", "198.18.5.2"
EID_SPACE = ("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/40")
# Where the routers' segments take dynamic EIDs from: the tenant's cloud space.
DYNAMIC_EID = ("192.0.2.0/24", "2001:db8::/40")
VXLAN_PORT = 4789
# The underlay net (198.18.<net>.0/24) of each lispd node; it is .2 there.
NODE_NETS = {"ms": 1, "onprem": 2, "pxtr": 3, "r1": 4, "r2": 5}
# The on-premise LAN: (router, host) of each family, with the prefix length.
ONPREM_LAN = (("198.51.100.1", "198.51.100.10", 24), ("2001:db8:10::1", "2001:db8:10::10", 64))
ONPREM_PREFIXES = ("198.51.100.0/24", "2001:db8:10::/64")
# The internet host behind the PxTR, and the PxTR's side of that network.
WAN = (("203.0.113.1", "203.0.113.10", 24), ("2001:db8:ff00::1", "2001:db8:ff00::10", 64))


@dataclass(frozen=True)
class Segment:
    """A VXLAN segment and its gateway: the router and its addresses there."""

    vni: int
    router: str
    address4: str
    address6: str

    @property
    def device(self) -> str:
        return f"vni{self.vni}"

    @property
    def gateways(self) -> tuple[str, str]:
        return str(ip_interface(self.address4).ip), str(ip_interface(self.address6).ip)

    @property
    def prefixes(self) -> tuple[str, str]:
        return (str(ip_interface(self.address4).network),
                str(ip_interface(self.address6).network))


@dataclass(frozen=True)
class Vm:
    """A VM without lispd: its uplink nets (198.18.<net>.0/24, its first one
    up at the start), the segment it is on at the start, and its EIDs with
    their prefix lengths, of `home`'s prefixes (its gateway is there)."""

    name: str
    nets: tuple[int, ...]
    vni: int
    home: int
    eid4: str
    eid6: str

    @property
    def address4(self) -> str:
        return str(ip_interface(self.eid4).ip)

    @property
    def address6(self) -> str:
        return str(ip_interface(self.eid6).ip)


SEGMENTS = {
    11: Segment(11, "r1", "192.0.2.1/26", "2001:db8:11::1/64"),
    12: Segment(12, "r1", "192.0.2.65/26", "2001:db8:12::1/64"),
    21: Segment(21, "r2", "192.0.2.129/26", "2001:db8:21::1/64"),
    22: Segment(22, "r2", "192.0.2.193/26", "2001:db8:22::1/64"),
}
VMS = {
    "vm11": Vm("vm11", (11,), 11, 11, "192.0.2.10/26", "2001:db8:11::10/64"),
    "vm12": Vm("vm12", (12,), 12, 12, "192.0.2.80/26", "2001:db8:12::80/64"),
    "vm21": Vm("vm21", (21,), 21, 21, "192.0.2.140/26", "2001:db8:21::140/64"),
    "vm22": Vm("vm22", (22,), 22, 22, "192.0.2.200/26", "2001:db8:22::200/64"),
}
MOB = Vm("mob", (31, 32), 11, 12, "192.0.2.70/26", "2001:db8:12::70/64")
MOB_UPLINKS = ("c1", "c2")
MOB_MOVED_VNI = 21
# Where traffic starts and ends that is not a VM's: (namespace role, IPv4, IPv6).
ONHOST = ("onhost", ONPREM_LAN[0][1], ONPREM_LAN[1][1])
INET = ("inet", WAN[0][1], WAN[1][1])
ROUTERS = {"r1": R1, "r2": R2}


def vtep(net: int) -> str:
    """A VM's underlay address (its VTEP) on net."""
    return f"198.18.{net}.10"


@dataclass(frozen=True)
class Options:
    """`onprem`: what runs the on-premise site gateway, lispd or
    OpenOverlayRouter ("oor"). `register_interval`: every xTR's."""

    onprem: Literal["lispd", "oor"] = "lispd"
    register_interval: int = 60


@dataclass
class Paper:
    lab: Lab
    workdir: Path
    options: Options = field(default_factory=Options)
    daemons: dict[str, Lispd] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lab = self.lab
        for role in ("core", *NODE_NETS, "onhost", "inet", *VMS, MOB.name):
            self.namespaces[role] = lab.add(role)
        self.core = self.namespaces["core"]
        lab.ns(self.core, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for role, net in NODE_NETS.items():
            self._uplink(self.namespaces[role], "ul0", f"c-{role}", net, up=True)
        if self.options.onprem == "oor":
            # OOR reads its data packets from a raw socket: what reaches it
            # must be cut to the MTU, as on a wire, not a veth's whole
            # UDP_SEGMENT train (tests/interop/oor.py).
            lab.ns(self.core, "ethtool", "-K", "c-onprem", "tx-udp-segmentation", "off")
        self._lan(self.namespaces["onprem"], "lan0", self.namespaces["onhost"], ONPREM_LAN)
        self._lan(self.namespaces["pxtr"], "wan0", self.namespaces["inet"], WAN)
        for vm in VMS.values():
            namespace = self.namespaces[vm.name]
            self._uplink(namespace, "ul0", f"c-{vm.name}", vm.nets[0], up=True)
            self.vm_join(namespace, vm.vni, self.router_rloc(vm.vni), vtep(vm.nets[0]), vm)
        mob = self.namespaces[MOB.name]
        self._uplink(mob, MOB_UPLINKS[0], "c-mob1", MOB.nets[0], up=True)
        self._uplink(mob, MOB_UPLINKS[1], "c-mob2", MOB.nets[1], up=False)
        # mob joins its segment in start(), once r1 runs to hear it announce itself.

    # -- building ------------------------------------------------------------------

    def ns(self, role: str) -> str:
        """The namespace of a role (core, ms, onprem, onhost, pxtr, inet, r1, r2, vm11...)."""
        return self.namespaces[role]

    def _uplink(self, namespace: str, device: str, core_device: str, net: int, *,
                up: bool) -> None:
        """A point-to-point underlay network 198.18.<net>.0/24 to the core."""
        self.lab.core_link(namespace, device, self.core, core_device, net)
        if up:
            self.attach(namespace, device, net)
        else:
            self.lab.ns(namespace, "ip", "link", "set", device, "down")

    def attach(self, namespace: str, device: str, net: int) -> None:
        """Give a node its address on network <net> and its route there: a
        lispd node's default route, a VM's route to the underlay (its default
        routes are the overlay's)."""
        node = net in NODE_NETS.values()
        self.lab.ns(namespace, "ip", "link", "set", device, "up")
        self.lab.on_net(namespace, device, net, 2 if node else 10,
                        route="default" if node else "198.18.0.0/15")

    def detach(self, namespace: str, device: str) -> None:
        """Take a node off an underlay network: the link down, its addresses gone."""
        self.lab.ns(namespace, "ip", "link", "set", device, "down")
        self.lab.ns(namespace, "ip", "addr", "flush", "dev", device)

    def _lan(self, router: str, router_if: str, host: str,
             addresses: tuple[tuple[str, str, int], ...]) -> None:
        """A veth from router to a host namespace (eth0), with each family's
        addresses and the host's default routes via the router."""
        self.lab.link(router, router_if, host, "eth0")
        for gateway, address, length in addresses:
            extra = ["nodad"] if ":" in address else []
            self.lab.ns(router, "ip", "addr", "add", f"{gateway}/{length}", "dev", router_if,
                        *extra)
            self.lab.ns(host, "ip", "addr", "add", f"{address}/{length}", "dev", "eth0", *extra)
            family = "-6" if ":" in address else "-4"
            self.lab.ns(host, "ip", family, "route", "add", "default", "via", gateway)

    @staticmethod
    def router_rloc(vni: int) -> str:
        return ROUTERS[SEGMENTS[vni].router]

    def vm_join(self, namespace: str, vni: int, router_rloc: str, own_uplink: str,
                vm: Vm | None = None) -> None:
        """(Re)make the VM's kernel vxlan device vx0 on segment vni towards
        router_rloc, from its underlay address own_uplink, with the VM's EIDs
        and its default routes via its home segment's gateway. `vm`: which
        VM it is (by default, the one whose namespace this is)."""
        if vm is None:
            (vm,) = (v for v in (*VMS.values(), MOB) if self.namespaces[v.name] == namespace)
        lab = self.lab
        lab.ns(namespace, "ip", "link", "del", "vx0", check=False)
        lab.ns(namespace, "ip", "link", "add", "vx0", "type", "vxlan", "id", str(vni),
               "local", own_uplink, "remote", router_rloc, "dstport", str(VXLAN_PORT),
               "nolearning")
        # A VM announces itself (gratuitous ARP, unsolicited NA) when its link
        # comes up: how a gateway hears at once of one that moved there.
        lab.ns(namespace, "sysctl", "-qw", "net.ipv4.conf.vx0.arp_notify=1",
               "net.ipv6.conf.vx0.ndisc_notify=1")
        lab.ns(namespace, "ip", "addr", "add", vm.eid4, "dev", "vx0")
        lab.ns(namespace, "ip", "addr", "add", vm.eid6, "dev", "vx0", "nodad")
        lab.ns(namespace, "ip", "link", "set", "vx0", "up")
        gateway4, gateway6 = SEGMENTS[vm.home].gateways
        lab.ns(namespace, "ip", "-4", "route", "replace", "default", "via", gateway4, "dev", "vx0")
        lab.ns(namespace, "ip", "-6", "route", "replace", "default", "via", gateway6, "dev", "vx0")

    def move_mob(self) -> None:
        """The mobile VM leaves cloud 1 and comes up on cloud 2's network, on
        VNI 21 at r2, with the same EIDs and gateway."""
        mob = self.namespaces[MOB.name]
        self.detach(mob, MOB_UPLINKS[0])
        self.attach(mob, MOB_UPLINKS[1], MOB.nets[1])
        self.vm_join(mob, MOB_MOVED_VNI, self.router_rloc(MOB_MOVED_VNI), vtep(MOB.nets[1]),
                     MOB)

    def rejoin(self, name: str, vni: int) -> None:
        """A VM of VMS moves to segment vni (of either router) and keeps its
        EIDs, gateway and underlay address (the IaaS network routes it)."""
        vm = VMS[name]
        self.vm_join(self.namespaces[name], vni, self.router_rloc(vni), vtep(vm.nets[0]), vm)

    # -- configs ---------------------------------------------------------------------

    def _xtr(self, rloc: str) -> str:
        """[underlay] and [xtr] of an xTR: the EID space, the mapping system,
        the proxy-ETR."""
        return (
            f'[underlay]\nrlocs = ["{rloc}"]\n\n'
            f"[xtr]\neid-space = {toml_strings(EID_SPACE)}\n"
            f'map-resolvers = ["{MS}"]\nproxy-etrs = ["{PXTR}"]\n'
            f"register-interval = {self.options.register_interval}\n\n"
            f'[[xtr.map-server]]\naddress = "{MS}"\nkey = "{KEY}"\n\n'
        )

    def ms_config(self) -> str:
        return map_server_config(MS, KEY, EID_SPACE,
                                 register_interval=self.options.register_interval)

    def onprem_config(self) -> str:
        return self._xtr(ONPREM) + "".join(
            f'[[xtr.database-mapping]]\neid-prefix = "{prefix}"\ninterface = "lan0"\n\n'
            for prefix in ONPREM_PREFIXES
        )

    def onprem_oor_config(self) -> str:
        """The on-premise site gateway as OpenOverlayRouter: HMAC-SHA-1 (its
        only key type), the PxTR as its proxy-ETR."""
        return "\n".join([
            "debug = 1",
            "operating-mode = xTR",
            "encapsulation = LISP",
            "map-request-retries = 2",
            "rloc-probing {\n    rloc-probe-interval = 0\n}",
            f"map-resolver = {{\n    {MS}\n}}",
            f"map-server {{\n    address = {MS}\n    key-type = 1\n    key = {KEY}\n"
            "    proxy-reply = off\n}",
            *(f"proxy-etr-{family} {{\n    address = {PXTR}\n    priority = 1\n    weight = 100\n}}"
              for family in ("ipv4", "ipv6")),
            *(oor_mapping("database-mapping", prefix, ONPREM) for prefix in ONPREM_PREFIXES),
        ])

    def router_config(self, router: str) -> str:
        """r1 or r2: an xTR and the gateway of its segments."""
        rloc = ROUTERS[router]
        text = self._xtr(rloc)
        for segment in SEGMENTS.values():
            if segment.router != router:
                continue
            vteps = [vtep(vm.nets[0]) for vm in VMS.values() if vm.vni == segment.vni]
            # The mobile VM, where it is at the start and where it moves to.
            if segment.vni == MOB.vni:
                vteps.append(vtep(MOB.nets[0]))
            if segment.vni == MOB_MOVED_VNI:
                vteps.append(vtep(MOB.nets[1]))
            text += (
                f'[[vxlan]]\ndevice = "{segment.device}"\nvni = {segment.vni}\n'
                f'local = "{rloc}"\nflood = {toml_strings(vteps)}\n'
                f"address = {toml_strings([segment.address4, segment.address6])}\n"
                f"instance-id = 0\ndynamic-eid = {toml_strings(DYNAMIC_EID)}\n\n"
            )
        return text

    def pxtr_config(self) -> str:
        """The proxy xTR: an ITR and ETR of no EIDs of its own."""
        return (
            f'[underlay]\nrlocs = ["{PXTR}"]\n\n'
            f"[xtr]\neid-space = {toml_strings(EID_SPACE)}\n"
            f'map-resolvers = ["{MS}"]\n\n'
            '[proxy]\nserved-itrs = ["198.18.0.0/15"]\n'
        )

    # -- running ---------------------------------------------------------------------

    def _start(self, role: str, config: str) -> Lispd:
        daemon = self.lab.lispd(self.namespaces[role], config, self.workdir, role)
        self.daemons[role] = daemon
        return daemon

    def start(self) -> None:
        """The mapping system first, then the routers, the PxTR and the
        on-premise site gateway (which register with it)."""
        self._start("ms", self.ms_config())
        for router in ROUTERS:
            self._start(router, self.router_config(router))
        self._start("pxtr", self.pxtr_config())
        if self.options.onprem == "oor":
            # lispd turns forwarding on for a site gateway; OOR leaves it to the host.
            self.lab.ns(self.namespaces["onprem"], "sysctl", "-qw", "net.ipv4.ip_forward=1",
                        "net.ipv6.conf.all.forwarding=1")
            self.lab.oor(self.namespaces["onprem"], self.onprem_oor_config(), self.workdir,
                         "onprem")
        else:
            self._start("onprem", self.onprem_config())
        self.join_mob()

    def join_mob(self) -> None:
        """The mobile VM joins VNI 11 at r1 (again: its vx0 made anew): its
        link comes up and it announces its EIDs (gratuitous ARP, unsolicited
        NA), which a gateway that runs hears."""
        self.vm_join(self.namespaces[MOB.name], MOB.vni, self.router_rloc(MOB.vni),
                     vtep(MOB.nets[0]), MOB)

    def stop(self) -> dict[str, int]:
        """Stop every lispd, last started first; their exit codes. (OOR goes
        with its namespace.)"""
        return {name: daemon.stop() for name, daemon in reversed(self.daemons.items())}

    # -- numbered streams to the mobile VM (lispd.stream) -------------------------------
    # Each end in a session of its own: a Ctrl-C at the terminal is for whoever
    # runs the scenario (lispd demo), which stops them with their namespace.

    def receiver(self, version: int, port: int, seconds: float) -> subprocess.Popen[bytes]:
        """The mobile VM's end of a stream to its IPv4 or IPv6 EID, for at
        most `seconds`; returns once it listens."""
        process = self.lab.popen(
            self.namespaces[MOB.name], sys.executable, "-m", "lispd.stream", "receive",
            MOB.address4 if version == 4 else MOB.address6, str(port), str(seconds),
            stdout=subprocess.PIPE, start_new_session=True)
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("stream receiver did not start")
        return process

    def sender(self, client: str, version: int, port: int, rate: int,
               count: int) -> subprocess.Popen[bytes]:
        """`count` datagrams at `rate` a second from `client` to the mobile VM."""
        return self.lab.popen(
            self.endpoint(client)[0], sys.executable, "-m", "lispd.stream", "send",
            MOB.address4 if version == 4 else MOB.address6, str(port), str(rate), str(count),
            stdout=subprocess.PIPE, start_new_session=True)

    def cloud1_capture(self) -> Capture:
        """What reaches cloud 1 for the mobile VM, seen by the core: LISP data
        to r1 (nothing else sends it any in the move scenarios), VXLAN to the
        VM's old VTEP."""
        return Capture(self.lab, self.core, "any",
                       f"(udp dst port 4341 and dst host {R1}) or "
                       f"(udp dst port 4789 and dst host {vtep(MOB.nets[0])})")

    # -- looking -----------------------------------------------------------------------

    def registrations(self) -> dict[str, str]:
        """What the map-server holds: prefix ("[0]192.0.2.0/26") -> who registered it."""
        rows: list[dict[str, Any]] = self.daemons["ms"].request("show", "registrations")
        return {row["prefix"]: row["source"] for row in rows}

    def expected_registrations(self) -> dict[str, str]:
        """What every xTR registers once it runs: prefix -> its RLOC."""
        expected = {f"[0]{prefix}": ONPREM for prefix in ONPREM_PREFIXES}
        for segment in SEGMENTS.values():
            for prefix in segment.prefixes:
                expected[f"[0]{prefix}"] = ROUTERS[segment.router]
        return expected

    def registered(self) -> bool:
        """Whether the map-server holds every xTR's registrations."""
        held = self.registrations()
        return all(held.get(prefix) == source
                   for prefix, source in self.expected_registrations().items())

    def endpoint(self, name: str) -> tuple[str, str, str]:
        """(namespace, IPv4, IPv6) of a VM, of `onhost` or of `inet`."""
        if name in VMS or name == MOB.name:
            vm = VMS.get(name, MOB)
            return self.namespaces[name], vm.address4, vm.address6
        role, address4, address6 = {"onhost": ONHOST, "inet": INET}[name]
        return self.namespaces[role], address4, address6

    def address(self, name: str, version: int) -> str:
        """The IPv4 or IPv6 address (EID) of a VM, of `onhost` or of `inet`."""
        return self.endpoint(name)[2 if version == 6 else 1]

    def neighbours(self, namespace: str, device: str) -> list[dict[str, Any]]:
        """`ip -j neigh show dev device` in namespace."""
        shown = self.lab.ns(namespace, "ip", "-j", "neigh", "show", "dev", device).stdout
        rows: list[dict[str, Any]] = json.loads(shown or "[]")
        return rows
