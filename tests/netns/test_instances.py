"""Instance IDs: two tenants with the same EID prefixes on the same pair of
site gateways stay apart.

Each xTR serves tenant 1 on instance-id 0 (lisp0, the main table, LAN veth
lan0) and tenant 2 on instance-id 7 (lisp7, table 107, LAN veth lan7). Each
tenant has a host behind each xTR, and the two tenants' hosts have the very
same addresses (site a 192.0.2.2, site b 192.0.2.66, behind gateways .1 and
.65). Every tenant's host at site b answers a TCP connection with a banner
naming its tenant, on the same port: a client that gets the right banner
reached its own peer and not the other tenant's. A capture on the underlay
shows each tenant's packets carry its own instance-id in the LISP header.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from lispd.lab import Lab, lab
from lispd.pcap import Capture
from lispd.wire.data import LispDataHeader
from tests import traffic
from tests.needs import require_netns, require_program
from tests.netns import sites

pytestmark = pytest.mark.netns

TENANTS = {"t1": 0, "t7": 7}  # tenant -> instance-id
LANS = {0: "lan0", 7: "lan7"}
PORT = 7000
CONNECTIONS = 3


def _banner(tenant: str, site: str) -> str:
    return f"hello from tenant {tenant} at site {site}"


@pytest.fixture
def topology() -> Iterator[Lab]:
    require_netns()
    require_program("ping", "iputils-ping")
    require_program("tcpdump", "tcpdump")
    with lab() as made:
        yield made


def _config(xtr: sites.Xtr, site: str, peer: sites.Xtr, peer_site: str) -> str:
    (local, _, _), _ = sites.LANS[site]
    (remote, _, _), _ = sites.LANS[peer_site]
    database = [sites.Mapping(local, xtr.rloc4, instance_id=iid, interface=LANS[iid])
                for iid in TENANTS.values()]
    static = [sites.Mapping(remote, peer.rloc4, instance_id=iid) for iid in TENANTS.values()]
    instance = sites.Instance(7, "lisp7", 107, ("192.0.2.0/24",), (LANS[7],))
    return sites.xtr_config(xtr.rlocs, database=database, static=static, instances=[instance],
                            eid_space=["192.0.2.0/24"])


def _lisp_packets(frames: list[bytes]) -> list[tuple[LispDataHeader, bytes]]:
    """(LISP header, inner packet) of the IPv4 LISP data packets captured."""
    found = []
    for packet in frames:
        if not packet or packet[0] >> 4 != 4 or packet[9] != 17:
            continue
        udp = packet[(packet[0] & 0x0F) * 4 :]
        _, destination = struct.unpack_from("!HH", udp)
        if destination == 4341:
            found.append((LispDataHeader.decode(udp, 8), udp[16:]))
    return found


def test_tenants_with_the_same_prefixes_stay_apart(topology: Lab, tmp_path: Path) -> None:
    a, b = sites.underlay(topology)
    hosts: dict[tuple[str, str], sites.Endpoint] = {}
    for tenant, iid in TENANTS.items():
        for xtr, site in ((a, "a"), (b, "b")):
            hosts[(tenant, site)] = sites.lan(topology, xtr, site, f"{tenant}{site}",
                                              xtr_if=LANS[iid], prefix_routes=False)
    daemons = {
        "a": topology.lispd(a.namespace, _config(a, "a", b, "b"), tmp_path, "xtr-a"),
        "b": topology.lispd(b.namespace, _config(b, "b", a, "a"), tmp_path, "xtr-b"),
    }
    servers = {
        tenant: traffic.child(topology, hosts[(tenant, "b")].namespace, "banner",
                              hosts[(tenant, "b")].address4, str(PORT), _banner(tenant, "b"),
                              str(CONNECTIONS))
        for tenant in TENANTS
    }
    for server in servers.values():
        assert traffic.read_line(server) == "listening"
    capture = Capture(topology, a.namespace, sites.UNDERLAY, "udp port 4341")

    for tenant in TENANTS:
        client, peer = hosts[(tenant, "a")], hosts[(tenant, "b")]
        traffic.ping(topology, client.namespace, peer.address4)
        for _ in range(CONNECTIONS):
            fetched = traffic.child(topology, client.namespace, "fetch", peer.address4,
                                    str(PORT))
            assert traffic.finish(fetched).strip() == _banner(tenant, "b")
    for server in servers.values():
        traffic.finish(server)

    # On the underlay: each banner travelled in its tenant's instance, and
    # every packet of either tenant was in one of the two instances.
    seen = _lisp_packets(capture.packets())
    instances = {header.instance_id or 0 for header, _ in seen}
    assert instances == set(TENANTS.values())
    for tenant, iid in TENANTS.items():
        carried = {header.instance_id for header, inner in seen
                   if _banner(tenant, "b").encode() in inner}
        # Instance-id 0 goes without the I bit (decoded as None); any other
        # sets it and names the instance (RFC 9300 section 5.3).
        assert carried == {iid or None}, (tenant, carried)

    for name, daemon in daemons.items():
        grown = daemon.stats()
        assert grown["itr_packets"] > 0 and grown["etr_packets"] > 0, (name, grown)
        dropped = {key: grown[key] for key in sites.NEVER_DROPPED if grown[key]}
        assert not dropped, (name, dropped)
    for name, xtr in (("a", a), ("b", b)):
        running = sites.Site(name, xtr, daemons[name], hosts[("t1", name)])
        sites.stop_cleanly(topology, running, devices=("lisp0", "lisp7"))
        # The tenant's rules and routing table went with it.
        for family in ("-4", "-6"):
            rules = topology.ns(xtr.namespace, "ip", family, "rule", "show").stdout
            assert "107" not in rules, rules
            table = topology.ns(xtr.namespace, "ip", family, "route", "show", "table", "107",
                                check=False).stdout
            assert not table.strip(), table
