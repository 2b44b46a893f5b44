"""lispd's data plane on the wire, as Wireshark's dissectors (tshark) read it.

Two site gateways on one underlay link. Instance-id 7 (a tenant with its own
TUN lisp7 and routing table 107) joins a host behind each gateway's lan7;
VNI 100 bridges the gateways' TAPs. tcpdump captures the underlay at gateway
A while hosts ping across both overlays. Each captured datagram must be what
tshark calls `lisp-data` (UDP 4341) or `vxlan` (UDP 4789), with the
header fields lispd meant (instance-id 7, N bit and a nonce equal to the
one lispd.wire.data decodes from the raw octets, L bit and the source
site's locator-status-bits, VNI 100), carrying the ICMP echoes between the
expected hosts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

from lispd.lab import Lab, lab
from lispd.pcap import Capture
from lispd.wire.data import LISP_DATA_PORT, VXLAN_PORT, LispDataHeader, VxlanHeader
from tests import traffic
from tests.interop.wireshark import as_list, dissect
from tests.needs import require_netns, require_program
from tests.netns.sites import Instance, Mapping, Segment, link, xtr_config

pytestmark = [pytest.mark.interop, pytest.mark.netns]

IID, TABLE, VNI = 7, 107, 100
PINGS = 3
CAPTURE_LIMIT = 200  # frames tcpdump keeps at most
SOURCE_PORTS = range(0xC000, 0x10000)  # RFC 7348 section 5's recommendation

SITES = {  # role: (RLOC, site prefix, gateway on lan7, host, TAP address)
    "a": ("198.18.0.1", "198.51.100.0/25", "198.51.100.1", "198.51.100.10", "203.0.113.1"),
    "b": ("198.18.0.2", "198.51.100.128/25", "198.51.100.129", "198.51.100.130",
          "203.0.113.2"),
}


def _config(role: str) -> str:
    rloc, prefix, _, _, _ = SITES[role]
    peer_rloc, peer_prefix, _, _, _ = SITES["b" if role == "a" else "a"]
    return xtr_config(
        [rloc], eid_space=["192.0.2.0/24"],
        instances=[Instance(IID, "lisp7", TABLE, ("198.51.100.0/24",), ("lan7",))],
        database=[Mapping(prefix, rloc, instance_id=IID, interface="lan7")],
        static=[Mapping(peer_prefix, peer_rloc, instance_id=IID)],
        extra=Segment("vxl100", VNI, rloc, (peer_rloc,)).toml(),
    )


def _build(topology: Lab, workdir: Path) -> dict[str, str]:
    """Gateways ga, gb on the underlay, hosts ha, hb on their lan7; lispd on ga, gb."""
    names = {f"g{role}": topology.add(f"g{role}") for role in SITES}
    names |= {f"h{role}": topology.add(f"h{role}") for role in SITES}
    topology.link(names["ga"], "eth0", names["gb"], "eth0")
    for role, (rloc, prefix, gateway, host, _) in SITES.items():
        gw, hs = names[f"g{role}"], names[f"h{role}"]
        length = prefix.split("/")[1]
        topology.ns(gw, "ip", "addr", "add", f"{rloc}/24", "dev", "eth0")
        topology.link(gw, "lan7", hs, "eth0")
        topology.ns(gw, "ip", "addr", "add", f"{gateway}/{length}", "dev", "lan7")
        topology.ns(hs, "ip", "addr", "add", f"{host}/{length}", "dev", "eth0")
        topology.ns(hs, "ip", "route", "add", "default", "via", gateway)
    for role in SITES:
        topology.lispd(names[f"g{role}"], _config(role), workdir, f"g{role}")
    for role, (_, _, _, _, tap_address) in SITES.items():
        topology.ns(names[f"g{role}"], "ip", "addr", "add", f"{tap_address}/24",
                    "dev", "vxl100")
    return names


def _icmp_echo(layers: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """(inner source, inner destination, echo type, sequence) of an inner ICMP echo."""
    icmp = layers.get("icmp")
    if icmp is None:
        return None
    inner = as_list(layers["ip"])[-1]
    return inner["ip.src"], inner["ip.dst"], icmp["icmp.type"], icmp["icmp.seq"]


def _echoes_seen(echoes: list[tuple[str, str, str, str]], source: str, target: str) -> None:
    """Every echo request source -> target was answered, and PINGS at least."""
    requests = {seq for s, d, kind, seq in echoes if (s, d, kind) == (source, target, "8")}
    replies = {seq for s, d, kind, seq in echoes if (s, d, kind) == (target, source, "0")}
    assert len(replies) >= PINGS and replies <= requests, echoes


def test_lisp_and_vxlan_headers_as_tshark_reads_them(tmp_path: Path) -> None:
    require_netns()
    for program, package in (("tcpdump", "tcpdump"), ("tshark", "tshark"),
                             ("ping", "iputils-ping")):
        require_program(program, package)
    pcap = tmp_path / "underlay.pcap"
    with lab() as topology:
        names = _build(topology, tmp_path)
        macs = {link(topology, names[f"g{role}"], "vxl100")["address"] for role in SITES}
        capture = Capture(topology, names["ga"], "eth0",
                                  f"udp port {LISP_DATA_PORT} or udp port {VXLAN_PORT}",
                                  pcap=pcap, count=CAPTURE_LIMIT, snaplen=0)
        try:
            over_lisp = traffic.ping_output(topology, names["ha"], SITES["b"][3], count=PINGS)
            over_vxlan = traffic.ping_output(topology, names["ga"], SITES["b"][4], count=PINGS)
        finally:
            capture.stop()  # after a moment for the last reply to reach the file
    assert " 0 received" not in over_lisp, over_lisp
    assert " 0 received" not in over_vxlan, over_vxlan

    raw = [bytes(frame[UDP].payload) for frame in rdpcap(str(pcap))]
    # 4341 and 4789 are tshark's default ports for these dissectors; say so
    # anyway, so a source port that happens to be another's cannot win.
    frames = dissect(pcap, f"udp.port=={LISP_DATA_PORT},lisp-data",
                     f"udp.port=={VXLAN_PORT},vxlan")
    assert len(frames) == len(raw) > 0
    kinds: Counter[str] = Counter()
    lisp_echoes, vxlan_echoes = [], []
    rlocs = sorted(site[0] for site in SITES.values())
    for layers, payload in zip(frames, raw, strict=True):
        outer_ip, outer_udp = as_list(layers["ip"])[0], as_list(layers["udp"])[0]
        assert sorted([outer_ip["ip.src"], outer_ip["ip.dst"]]) == rlocs, outer_ip
        if outer_udp["udp.dstport"] == str(LISP_DATA_PORT):
            kinds["lisp-data"] += 1
            assert int(outer_udp["udp.srcport"]) in SOURCE_PORTS, outer_udp
            header = LispDataHeader.decode(payload)
            ws = layers["lisp-data"]
            flags = ws["lisp-data.flags_tree"]
            assert flags["lisp-data.flags.nonce"] == "1" and header.nonce is not None, ws
            assert int(ws["lisp-data.nonce"], 0) == header.nonce, (ws, header)
            assert flags["lisp-data.flags.enr"] == "0" and not header.echo_nonce_request
            assert flags["lisp-data.flags.mv"] == "0" and header.map_versions is None
            assert flags["lisp-data.flags.iid"] == "1" and header.instance_id == IID
            assert int(ws["lisp-data.iid"], 0) == IID, ws
            # Sent from a local EID of a one-RLOC site: L bit, that RLOC's bit.
            assert flags["lisp-data.flags.lsb"] == "1", ws
            assert header.locator_status_bits == 1
            assert int(ws["lisp-data.lsb8"], 0) == 1, ws
            if (echo := _icmp_echo(layers)) is not None:
                lisp_echoes.append(echo)
        elif outer_udp["udp.dstport"] == str(VXLAN_PORT):
            kinds["vxlan"] += 1
            assert int(outer_udp["udp.srcport"]) in SOURCE_PORTS, outer_udp
            ws = layers["vxlan"]
            assert ws["vxlan.flags_tree"]["vxlan.flag_i"] == "1", ws
            assert int(ws["vxlan.vni"], 0) == VNI == VxlanHeader.decode(payload).vni, ws
            inner_eth = as_list(layers["eth"])[1]
            assert inner_eth["eth.src"] in macs, (inner_eth, macs)
            if (echo := _icmp_echo(layers)) is not None:
                assert {inner_eth["eth.src"], inner_eth["eth.dst"]} == macs, (inner_eth, macs)
                vxlan_echoes.append(echo)
        else:
            pytest.fail(f"neither LISP data nor VXLAN: {outer_udp}")
    assert kinds["lisp-data"] >= 2 * PINGS and kinds["vxlan"] >= 2 * PINGS, kinds
    _echoes_seen(lisp_echoes, SITES["a"][3], SITES["b"][3])
    _echoes_seen(vxlan_echoes, SITES["a"][4], SITES["b"][4])
