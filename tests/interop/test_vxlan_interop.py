"""VXLAN interop: lispd's VTEP against the Linux kernel's `vxlan` device,
and VXLAN over LISP between two lispd nodes.

Kernel peer: a kernel vxlan device holds UDP 4789 in its namespace, so
lispd's VTEP sits in a namespace of its own at the other end of a veth.
The hosts of the segment are the devices themselves: an address on lispd's
TAP on one side, on the kernel's vx0 on the other. They resolve each other
by ARP, ping, and move a few MB over TCP whose SHA-256 must match.

VXLAN over LISP: each lispd is its own xTR with an EID on its TUN, and its
VTEP's address is that EID, so every VXLAN datagram is itself routed into
the TUN and LISP-encapsulated: the underlay carries UDP 4341 only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lispd.lab import Lab, Lispd, lab
from lispd.pcap import Capture
from tests import traffic
from tests.needs import require_netns, require_program
from tests.netns.sites import Mapping, Segment, link, underlay_section, xtr_config

pytestmark = [pytest.mark.interop, pytest.mark.netns]

VNI = 100
HOST_A, HOST_B = "203.0.113.1", "203.0.113.2"
TRANSFER = 3 * 1024 * 1024  # octets each way
PINGS = 3
CAPTURE_LIMIT = 500  # frames tcpdump keeps at most


@dataclass(frozen=True)
class Underlay:
    family: int
    lispd: str  # lispd's VTEP / RLOC
    peer: str  # the other end
    prefix_len: int

    def address(self, which: str) -> list[str]:
        """`ip addr add` arguments (no DAD wait for IPv6)."""
        local = self.lispd if which == "lispd" else self.peer
        extra = ["nodad"] if self.family == 6 else []
        return [f"{local}/{self.prefix_len}", "dev", "eth0", *extra]


IPV4 = Underlay(4, "198.18.0.1", "198.18.0.2", 24)
IPV6 = Underlay(6, "2001:db8:ff00::1", "2001:db8:ff00::2", 64)


# -- helpers -----------------------------------------------------------------


def ping(topology: Lab, namespace: str, target: str) -> str:
    return traffic.ping_output(topology, namespace, target, count=PINGS)


def transfer(topology: Lab, sender: str, receiver: str, address: str) -> None:
    traffic.transfer(topology, sender, receiver, address, size=TRANSFER)


def neighbour(topology: Lab, namespace: str, address: str, device: str) -> str | None:
    """The MAC the kernel resolved for address on device, if any."""
    shown = topology.ns(namespace, "ip", "-j", "neigh", "show", address, "dev", device).stdout
    for entry in json.loads(shown or "[]"):
        if "lladdr" in entry:
            return str(entry["lladdr"])
    return None


# Switch a device's transmit checksumming off with the legacy ethtool ioctl
# (ETHTOOL_STXCSUM), so the kernel finishes checksums in software.
TX_CSUM_OFF = """
import ctypes, fcntl, socket, struct, sys
value = ctypes.create_string_buffer(struct.pack("II", 0x17, 0))
request = struct.pack("16sP", sys.argv[1].encode(), ctypes.addressof(value)).ljust(40, b"\\0")
fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8946, request)
"""


def tx_checksum_off(topology: Lab, namespace: str, device: str) -> None:
    """A veth hands partially checksummed packets (CHECKSUM_PARTIAL) to its
    peer namespace, where a kernel socket trusts them, but the octets a UDP
    socket reads still hold the unfinished inner TCP checksum of what a
    kernel vxlan device encapsulated. A NIC would finish it on the wire; with
    transmit checksumming off, the kernel does so before the veth."""
    topology.ns(namespace, sys.executable, "-c", TX_CSUM_OFF, device)


def tshark_fields(pcap: Path, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", str(pcap), "-T", "fields", "-E", "separator=|",
            "-E", "occurrence=a", "-E", "aggregator=,",
            "-d", "udp.port==4341,lisp-data", "-d", "udp.port==4789,vxlan"]
    for field in fields:
        args += ["-e", field]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60)
    return [line.split("|") for line in done.stdout.splitlines()]


# -- lispd VTEP <-> kernel vxlan ---------------------------------------------


def _kernel_peer_test(tmp_path: Path, underlay: Underlay, learning: bool) -> None:
    require_netns()
    require_program("ping", "iputils-ping")
    require_program("bridge", "iproute2")
    with lab() as topology:
        lx = topology.add("vtep")
        kx = topology.add("kvx")
        topology.link(lx, "eth0", kx, "eth0")
        topology.ns(lx, "ip", "addr", "add", *underlay.address("lispd"))
        topology.ns(kx, "ip", "addr", "add", *underlay.address("kernel"))
        # The kernel VTEP: no learning, BUM (and every unknown unicast) to lispd.
        topology.ns(kx, "ip", "link", "add", "vx0", "type", "vxlan", "id", str(VNI),
                    "dstport", "4789", "local", underlay.peer, "nolearning")
        topology.ns(kx, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0",
                    "dst", underlay.lispd)
        tx_checksum_off(topology, kx, "eth0")
        kernel_mac = link(topology, kx, "vx0")["address"]
        segment = Segment("vxl100", VNI, underlay.lispd, (underlay.peer,), learning,
                          () if learning else ((kernel_mac, underlay.peer),))
        config = underlay_section([underlay.lispd]) + segment.toml()
        daemon = topology.lispd(lx, config, tmp_path, "vtep")
        tap = link(topology, lx, "vxl100")
        if not learning:
            # Unicast to lispd's MAC by a static kernel fdb entry as well.
            topology.ns(kx, "bridge", "fdb", "append", tap["address"], "dev", "vx0",
                        "dst", underlay.lispd)
        # Same MTU both sides: what lispd worked out for its TAP.
        topology.ns(kx, "ip", "link", "set", "vx0", "mtu", str(tap["mtu"]), "up")
        topology.ns(lx, "ip", "addr", "add", f"{HOST_A}/24", "dev", "vxl100")
        topology.ns(kx, "ip", "addr", "add", f"{HOST_B}/24", "dev", "vx0")

        pings = [ping(topology, lx, HOST_B), ping(topology, kx, HOST_A)]
        resolved = (neighbour(topology, lx, HOST_B, "vxl100"),
                    neighbour(topology, kx, HOST_A, "vx0"))
        before = daemon.stats()
        transfer(topology, lx, kx, HOST_B)
        transfer(topology, kx, lx, HOST_A)
        after = daemon.stats()
        fdb = daemon.request("show", "vxlan")["fdb"]
        log = daemon.log()
        status = daemon.stop()

    for output in pings:
        assert traffic.replies(output) >= PINGS, f"{output}\n{log[-3000:]}"
    # ARP went across the segment both ways: each side knows the other's MAC.
    assert resolved == (kernel_mac, tap["address"]), resolved
    entry = {"vni": VNI, "mac": kernel_mac, "vtep": underlay.peer, "static": not learning}
    assert entry in fdb, fdb
    moved = {key: after[key] - before.get(key, 0) for key in after}
    # Thousands of segments each way, and unicast went to the known VTEP,
    # not to the flood list.
    assert moved["vxlan_tx_packets"] > 1000 and moved["vxlan_rx_packets"] > 1000, moved
    assert moved["flood_copies"] * 10 < moved["vxlan_tx_packets"], moved
    # The offload path carried it: TAP super-frames cut into UDP_SEGMENT
    # trains that the kernel's vxlan took as datagrams; what came back one by
    # one was coalesced before it went up the TAP.
    assert moved["super_reads"] > 0 and moved["gso_segments"] > moved["gso_trains"] > 0, moved
    assert moved["super_writes"] > 0 and moved["gso_fallbacks"] == 0, moved
    if learning:
        assert after["fdb_learned"] >= 1, after
    else:
        assert after["fdb_learned"] == 0, after
    drops = {key: value for key, value in after.items() if key.startswith("drop_") and value}
    assert drops == {}, drops
    assert status == 0, log[-3000:]


def test_kernel_vxlan_peer_ipv4_learning(tmp_path: Path) -> None:
    _kernel_peer_test(tmp_path, IPV4, learning=True)


def test_kernel_vxlan_peer_ipv6_static(tmp_path: Path) -> None:
    # IPv6 underlay: the kernel drops zero-checksum UDP over IPv6 by default
    # (noudp6zerocsumrx), so this also shows lispd fills the checksum in.
    _kernel_peer_test(tmp_path, IPV6, learning=False)


# -- VXLAN over LISP between two lispd nodes ----------------------------------

NODES = {  # role: (RLOC, EID, host address on the TAP)
    "a": ("198.18.0.1", "192.0.2.10", HOST_A),
    "b": ("198.18.0.2", "192.0.2.20", HOST_B),
}


def _over_lisp_config(role: str) -> str:
    rloc, eid, _ = NODES[role]
    peer_rloc, peer_eid, _ = NODES["b" if role == "a" else "a"]
    return xtr_config(
        [rloc], eid_space=["192.0.2.0/24"],
        database=[Mapping(f"{eid}/32", rloc, assign=True)],
        static=[Mapping(f"{peer_eid}/32", peer_rloc)],
        extra=Segment("vxl100", VNI, eid, (peer_eid,)).toml(),
    )


def test_vxlan_over_lisp_between_lispd_nodes(tmp_path: Path) -> None:
    require_netns()
    require_program("ping", "iputils-ping")
    require_program("tcpdump", "tcpdump")
    require_program("tshark", "tshark")
    pcap = tmp_path / "underlay.pcap"
    with lab() as topology:
        a, b = topology.add("a"), topology.add("b")
        names = {"a": a, "b": b}
        topology.link(a, "eth0", b, "eth0")
        daemons: dict[str, Lispd] = {}
        for role, namespace in names.items():
            topology.ns(namespace, "ip", "addr", "add", f"{NODES[role][0]}/24", "dev", "eth0")
            daemons[role] = topology.lispd(namespace, _over_lisp_config(role), tmp_path, role)
        before = {role: daemon.stats() for role, daemon in daemons.items()}
        capture = Capture(topology, a, "eth0", "udp", pcap=pcap, count=CAPTURE_LIMIT,
                                  snaplen=0)
        try:
            for role, namespace in names.items():
                topology.ns(namespace, "ip", "addr", "add", f"{NODES[role][2]}/24",
                            "dev", "vxl100")
            pings = [ping(topology, a, HOST_B), ping(topology, b, HOST_A)]
        finally:
            capture.stop()
        transfer(topology, a, b, HOST_B)
        transfer(topology, b, a, HOST_A)
        after = {role: daemon.stats() for role, daemon in daemons.items()}
        fdbs = {role: daemon.request("show", "vxlan")["fdb"] for role, daemon in daemons.items()}
        logs = "\n".join(daemon.log()[-2000:] for daemon in daemons.values())
        statuses = [daemon.stop() for daemon in daemons.values()]

    for output in pings:
        assert traffic.replies(output) >= PINGS, f"{output}\n{logs}"
    for role, peer in (("a", "b"), ("b", "a")):
        # Each VTEP learned the other's TAP MAC behind the other's EID.
        assert [(e["vni"], e["vtep"]) for e in fdbs[role]] == [(VNI, NODES[peer][1])], fdbs
        # Control-plane counters appear when first counted: missing ones were 0.
        moved = {key: after[role][key] - before[role].get(key, 0) for key in after[role]}
        assert moved["vxlan_tx_packets"] > 1000 and moved["vxlan_rx_packets"] > 1000, moved
        # Every VXLAN datagram rode the LISP tunnel (ITR on the way out, ETR in).
        assert moved["itr_packets"] >= moved["vxlan_tx_packets"], moved
        assert moved["etr_packets"] >= moved["vxlan_rx_packets"], moved
        assert after[role]["drop_not_local_eid"] == 0, after[role]
    assert statuses == [0, 0], logs

    # On the underlay: UDP is LISP data only, no bare VXLAN; inside the
    # LISP packets, VXLAN between the EIDs with VNI 100.
    frames = tshark_fields(pcap, "frame.protocols", "udp.dstport", "ip.src", "ip.dst",
                           "vxlan.vni")
    assert frames, "nothing captured on the underlay"
    vxlan_inside = 0
    for protocols, ports, sources, destinations, vnis in frames:
        # LISP data, or the xTRs' own control messages (RLOC probes, 4342).
        assert ports.split(",")[0] in ("4341", "4342"), (protocols, ports)
        assert ports.split(",")[0] == "4341" or not vnis, (protocols, ports)
        if vnis:
            vxlan_inside += 1
            assert ports.split(",")[1] == "4789" and vnis == str(VNI), (ports, vnis)
            assert sorted(sources.split(",")[1:2] + destinations.split(",")[1:2]) == [
                NODES["a"][1], NODES["b"][1]
            ], (sources, destinations)
    assert vxlan_inside >= 4 * PINGS, frames

