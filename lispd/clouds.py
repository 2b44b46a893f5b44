"""The paper's scenario in network namespaces: a mapping system, an on-premise
site, and VMs in two clouds, joined by a routed underlay; and the two moves.

                       ┌──────────── core (router) ────────────┐
      198.18.1.0/24    │ 198.18.2.0/24   198.18.3.0/24   198.18.4.0/24   198.18.5.0/24
          ms ──────────┤── onprem xTR ── vm (cloud A) ─── vm (cloud B) ── vm2 (cloud B)
   (Map-Server +       │     │ lan0          ula               ulb            ul0
    Map-Resolver)      │   host 192.0.2.2 (192.0.2.0/26, 2001:db8:0:a::/64)

- `ms` runs lispd with [map-server]: one site, the tenant's 192.0.2.0/24 and
  2001:db8::/48, more-specifics accepted.
- `onprem` is a site gateway: its LAN prefixes are behind `lan0`, the
  client `host` sits there.
- `vm` is its own xTR with the service's EIDs 192.0.2.100 and 2001:db8::100
  on its TUN. It follows its underlay interfaces: it starts on `ula`
  (cloud A, 198.18.3.10) and `move_vm` moves it to `ulb` (cloud B,
  198.18.4.10), the way a migrated VM comes up on another network.
- `vm2` is another VM in cloud B (198.18.5.10). `redeploy` starts lispd on
  it with the service's EIDs: the service was redeployed there. Or
  `start_empty_vm2` runs lispd there before the move, as an empty VM (only
  what is its own), and `deploy_on_vm2` adds the service's EIDs to its
  configuration file, for a reload to apply.
- With `Options(segment=True)` each VM also has an EID of its own (VTEPS)
  and a VTEP there on one VXLAN segment with the other VM (VXLAN over LISP);
  `address_segment` gives their TAPs addresses from SEGMENT_HOSTS.

Every address is from the ranges DESIGN.md allows; everything lives in the
lab's namespaces and goes with them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lispd.lab import Lab, Lispd, map_server_config
from lispd.stream import Arrivals

__all__ = ["KEY", "ROLES", "SEGMENT_DEVICE", "SEGMENT_HOSTS", "SEGMENT_VNI", "SERVICE4", "SERVICE6",
           "STREAM_PORT", "VM2_RLOC", "VM_RLOC", "VTEPS", "Clouds", "Options"]

KEY = "tenant-s3cret"
SERVICE4, SERVICE6 = "192.0.2.100", "2001:db8::100"
HOST4, HOST6 = "192.0.2.2", "2001:db8:0:a::2"
MS, ONPREM = "198.18.1.2", "198.18.2.2"
EID_SPACE = '["192.0.2.0/24", "2001:db8::/48"]'
STREAM_PORT = 9000
# The VMs' underlay addresses (RLOCs): vm in cloud A, then in B after move_vm; vm2 in B.
VM_RLOC, MOVED_VM_RLOC, VM2_RLOC = "198.18.3.10", "198.18.4.10", "198.18.5.10"
# Who is behind each underlay address (the VM keeps its name when it moves).
ROLES = {MS: "ms", ONPREM: "onprem", VM_RLOC: "vm", MOVED_VM_RLOC: "vm", VM2_RLOC: "vm2"}
# The underlay interfaces each VM's lispd follows.
INTERFACES = {"vm": '["ula", "ulb"]', "vm2": '["ul0"]'}
# The segment option: each VM's own EID (its VTEP) and its address on the segment.
VTEPS = {"vm": "192.0.2.101", "vm2": "192.0.2.102"}
SEGMENT_HOSTS = {"vm": "198.51.100.1", "vm2": "198.51.100.2"}
SEGMENT_DEVICE, SEGMENT_VNI = "vxl100", 100


@dataclass(frozen=True)
class Options:
    """What the xTRs do; the convergence bench turns SMR and pub/sub off and on."""

    subscribe: bool = True
    smr: bool = True
    probe_interval: float = 0.0
    register_interval: int = 60
    segment: bool = False


@dataclass
class Clouds:
    lab: Lab
    workdir: Path
    options: Options = field(default_factory=Options)
    daemons: dict[str, Lispd] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lab = self.lab
        self.core = lab.add("core")
        self.ms, self.onprem, self.host = lab.add("ms"), lab.add("onprem"), lab.add("host")
        self.vm, self.vm2 = lab.add("vm"), lab.add("vm2")
        lab.ns(self.core, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._uplink(self.ms, "ul0", "c-ms", 1, up=True)
        self._uplink(self.onprem, "ul0", "c-op", 2, up=True)
        self._uplink(self.vm, "ula", "c-a", 3, up=True)
        self._uplink(self.vm, "ulb", "c-b", 4, up=False)
        self._uplink(self.vm2, "ul0", "c-b2", 5, up=True)
        lab.link(self.onprem, "lan0", self.host, "eth0")
        lab.ns(self.onprem, "ip", "addr", "add", "192.0.2.1/26", "dev", "lan0")
        lab.ns(self.onprem, "ip", "addr", "add", "2001:db8:0:a::1/64", "dev", "lan0", "nodad")
        lab.ns(self.host, "ip", "addr", "add", f"{HOST4}/26", "dev", "eth0")
        lab.ns(self.host, "ip", "addr", "add", f"{HOST6}/64", "dev", "eth0", "nodad")
        lab.ns(self.host, "ip", "route", "add", "default", "via", "192.0.2.1")
        lab.ns(self.host, "ip", "-6", "route", "add", "default", "via", "2001:db8:0:a::1")

    def _uplink(self, namespace: str, device: str, core_device: str, net: int, *,
                up: bool) -> None:
        """A point-to-point underlay network 198.18.<net>.0/24 to the core."""
        self.lab.core_link(namespace, device, self.core, core_device, net)
        if up:
            self.attach(namespace, device, net)

    def attach(self, namespace: str, device: str, net: int) -> None:
        """Give a node its address on network <net> and its default route there."""
        self.lab.on_net(namespace, device, net, 2 if net in (1, 2) else 10)

    # -- configs -----------------------------------------------------------------

    def _xtr(self) -> str:
        o = self.options
        return (
            f'map-resolvers = ["{MS}"]\nsubscribe = {str(o.subscribe).lower()}\n'
            f"solicit-map-request = {str(o.smr).lower()}\n"
            f"rloc-probe-interval = {o.probe_interval}\n"
            f"register-interval = {o.register_interval}\n\n"
            f'[[xtr.map-server]]\naddress = "{MS}"\nkey = "{KEY}"\n\n'
        )

    def ms_config(self) -> str:
        return map_server_config(MS, KEY, ("192.0.2.0/24", "2001:db8::/48"),
                                 register_interval=self.options.register_interval)

    def onprem_config(self) -> str:
        return (
            f'[underlay]\nrlocs = ["{ONPREM}"]\n\n'
            f'[xtr]\neid-space = {EID_SPACE}\n' + self._xtr()
            + '[[xtr.database-mapping]]\neid-prefix = "192.0.2.0/26"\ninterface = "lan0"\n\n'
            '[[xtr.database-mapping]]\neid-prefix = "2001:db8:0:a::/64"\ninterface = "lan0"\n'
        )

    def vm_config(self, name: str, interfaces: str, *, service: bool = True) -> str:
        """The config of VM `name` ("vm" or "vm2"): running the service, or
        without it (`service=False`: an empty VM, only what is its own)."""
        eids = [f"{SERVICE4}/32", f"{SERVICE6}/128"] if service else []
        segment = ""
        if self.options.segment:
            (peer,) = (VTEPS[other] for other in VTEPS if other != name)
            eids.append(f"{VTEPS[name]}/32")
            segment = (f'\n[[vxlan]]\ndevice = "{SEGMENT_DEVICE}"\nvni = {SEGMENT_VNI}\n'
                       f'local = "{VTEPS[name]}"\nflood = ["{peer}"]\n')
        return (
            f"[underlay]\ninterfaces = {interfaces}\n\n"
            f'[xtr]\neid-space = {EID_SPACE}\n' + self._xtr()
            + "\n".join(f'[[xtr.database-mapping]]\neid-prefix = "{eid}"\nassign = true\n'
                        for eid in eids)
            + segment
        )

    # -- running -----------------------------------------------------------------

    def start(self) -> None:
        """The mapping system first, then the xTRs (which register with it)."""
        self.daemons["ms"] = self.lab.lispd(self.ms, self.ms_config(), self.workdir, "ms")
        self.daemons["onprem"] = self.lab.lispd(self.onprem, self.onprem_config(),
                                                self.workdir, "onprem")
        self.daemons["vm"] = self.lab.lispd(self.vm, self.vm_config("vm", INTERFACES["vm"]),
                                            self.workdir, "vm")

    def start_empty_vm2(self) -> Lispd:
        """lispd on vm2 before the service is there: an empty VM (with
        Options(segment=True), its own EID and its end of the segment)."""
        daemon = self.lab.lispd(self.vm2, self.vm_config("vm2", INTERFACES["vm2"], service=False),
                                self.workdir, "vm2")
        self.daemons["vm2"] = daemon
        return daemon

    def deploy_on_vm2(self) -> Lispd:
        """The service is deployed on the running vm2: its configuration file
        gains the service's EIDs. Nothing changes until a reload reads it."""
        daemon = self.daemons["vm2"]
        daemon.rewrite(self.vm_config("vm2", INTERFACES["vm2"]))
        return daemon

    def move_vm(self) -> None:
        """Case 1: the VM leaves cloud A and comes up on cloud B's network."""
        self.lab.ns(self.vm, "ip", "link", "set", "ula", "down")
        self.lab.ns(self.vm, "ip", "addr", "flush", "dev", "ula")
        self.lab.ns(self.vm, "ip", "link", "set", "ulb", "up")
        self.attach(self.vm, "ulb", 4)

    def redeploy(self) -> Lispd:
        """Case 2: the service starts on vm2 (cloud B) with the same EIDs."""
        daemon = self.lab.lispd(self.vm2, self.vm_config("vm2", INTERFACES["vm2"]), self.workdir,
                                "vm2")
        self.daemons["vm2"] = daemon
        return daemon

    def address_segment(self) -> None:
        """Both VMs' addresses on the segment (each on its TAP, one /24)."""
        for name, namespace in (("vm", self.vm), ("vm2", self.vm2)):
            self.lab.ns(namespace, "ip", "addr", "add", f"{SEGMENT_HOSTS[name]}/24",
                        "dev", SEGMENT_DEVICE)

    def stop(self) -> dict[str, int]:
        """Stop every daemon; their exit codes."""
        return {name: daemon.stop() for name, daemon in reversed(self.daemons.items())}

    # -- a numbered stream from the on-premise host to the service -----------------
    # Each end runs in a session of its own: a Ctrl-C at the terminal is for
    # whoever runs the scenario (lispd demo), which stops them with their namespace.

    def receiver(self, namespace: str, seconds: float) -> subprocess.Popen[bytes]:
        """The service's end of the stream in namespace; returns once it listens."""
        process = self.lab.popen(
            namespace, sys.executable, "-m", "lispd.stream", "receive", SERVICE4,
            str(STREAM_PORT), str(seconds), stdout=subprocess.PIPE, start_new_session=True,
        )
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("stream receiver did not start")
        return process

    def sender(self, rate: int, count: int) -> subprocess.Popen[bytes]:
        """The client's end: count datagrams at rate per second from the host."""
        return self.lab.popen(
            self.host, sys.executable, "-m", "lispd.stream", "send", SERVICE4,
            str(STREAM_PORT), str(rate), str(count), stdout=subprocess.PIPE,
            start_new_session=True,
        )

    @staticmethod
    def arrivals(process: subprocess.Popen[bytes], timeout: float = 30.0) -> Arrivals:
        out, _ = process.communicate(timeout=timeout)
        return Arrivals.parse(out.decode().strip().splitlines()[-1])

    @staticmethod
    def sent(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
        out, _ = process.communicate(timeout=timeout)
        result: dict[str, int] = json.loads(out.decode().strip().splitlines()[-1])
        return result["sent"]
