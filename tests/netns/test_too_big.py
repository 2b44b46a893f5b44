"""A DF packet larger than the path gets the ICMP answer.

The xTR of site a is configured with `tun-mtu = 1500`, so its TUN accepts
packets that cannot fit the 1500-octet underlay once encapsulated. A packet
of 1500 octets that may not be fragmented (IPv4 DF; every IPv6 packet) must
be answered with ICMP "fragmentation needed" (type 3 code 4) / ICMPv6
"packet too big" (type 2) naming what does fit: the underlay MTU less the
encapsulation overhead of the outer family (lispd.dataplane.plan).

Two steps are checked apart: lispd writes the right answer into the TUN
(seen by tcpdump on the TUN), and the sender's kernel takes it (the error
reaches the sending socket, which is how a real sender learns the path MTU).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

from lispd.dataplane.plan import LISP_OVERHEAD
from lispd.lab import Lab, lab
from lispd.pcap import Capture
from tests import traffic
from tests.needs import require_netns, require_program
from tests.netns import sites

pytestmark = pytest.mark.netns

UNDERLAY_MTU = 1500
PACKET = 1500  # the IP packet sent: fits the TUN, not the underlay once wrapped

# Site a's EIDs: 192.0.2.10 and 2001:db8::10 on its TUN. Site b's EIDs, by
# the family of the RLOC they are mapped to: (inner, outer) -> address.
REMOTE = {
    (4, 4): "192.0.2.20",
    (4, 6): "192.0.2.21",
    (6, 6): "2001:db8::20",
    (6, 4): "2001:db8::21",
}
LOCAL = {4: "192.0.2.10", 6: "2001:db8::10"}
CASES = sorted(REMOTE)


def _config(xtr: sites.Xtr, peer: sites.Xtr, local: dict[int, str],
            remote: dict[tuple[int, int], str], tun_mtu: int | None) -> str:
    database = [sites.Mapping(f"{local[4]}/32", xtr.rloc4, assign=True),
                sites.Mapping(f"{local[6]}/128", xtr.rloc6, assign=True)]
    static = [sites.Mapping(f"{address}/{32 if inner == 4 else 128}", peer.rloc(outer))
              for (inner, outer), address in remote.items()]
    return sites.xtr_config(xtr.rlocs, database=database, static=static, tun_mtu=tun_mtu)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, sites.Site]]:
    """Site a (tun-mtu 1500) and site b, which owns every address of REMOTE."""
    require_netns()
    require_program("tcpdump", "tcpdump")
    workdir = tmp_path_factory.mktemp("too-big")
    with lab() as topology:
        a, b = sites.underlay(topology, mtu=UNDERLAY_MTU)
        # Site b answers for all four remote EIDs and maps a's two back.
        b_local = {4: "192.0.2.20", 6: "2001:db8::20"}
        b_config = _config(b, a, b_local, {(4, 4): LOCAL[4], (6, 6): LOCAL[6]}, None)
        extra = [sites.Mapping(f"{REMOTE[key]}/{32 if key[0] == 4 else 128}", b.rloc(key[1]),
                               assign=True) for key in ((4, 6), (6, 4))]
        b_config += "".join(mapping.toml("database-mapping") + "\n" for mapping in extra)
        daemon_b = topology.lispd(b.namespace, b_config, workdir, "xtr-b")
        a_config = _config(a, b, LOCAL, REMOTE, tun_mtu=PACKET)
        daemon_a = topology.lispd(a.namespace, a_config, workdir, "xtr-a")
        site_a = sites.Site("a", a, daemon_a, sites.Endpoint(a.namespace, LOCAL[4], LOCAL[6]))
        yield topology, site_a
        for daemon in (daemon_a, daemon_b):
            assert daemon.stop() == 0, daemon.log()[-3000:]


def _expected_mtu(outer: int) -> int:
    return UNDERLAY_MTU - LISP_OVERHEAD[outer]


def _probe(topology: Lab, namespace: str, address: str) -> dict[str, int] | None:
    probe = traffic.child(topology, namespace, "probe", address, str(PACKET), "3")
    answer: dict[str, int] | None = json.loads(traffic.finish(probe))["error"]
    return answer


def _too_big_answers(packets: list[bytes], inner: int) -> list[tuple[int, int, int, bytes]]:
    """(type, code, mtu, quoted packet) of the ICMP errors in a TUN capture."""
    found = []
    for packet in packets:
        if inner == 4 and packet[:1] and packet[0] >> 4 == 4 and packet[9] == 1:
            icmp = packet[(packet[0] & 0x0F) * 4 :]
            kind, code, _, _, mtu = struct.unpack_from("!BBHHH", icmp)
            if kind == 3:
                found.append((kind, code, mtu, icmp[8:]))
        elif inner == 6 and packet[:1] and packet[0] >> 4 == 6 and packet[6] == 58:
            icmp = packet[40:]
            kind, code, _, mtu = struct.unpack_from("!BBHI", icmp)
            if kind == 2:
                found.append((kind, code, mtu, icmp[8:]))
    return found


@pytest.mark.parametrize(("inner", "outer"), CASES, ids=lambda v: f"v{v}")
def test_answer_written_to_the_tun(pair: tuple[Lab, sites.Site], inner: int, outer: int) -> None:
    topology, a = pair
    destination = REMOTE[(inner, outer)]
    traffic.ping(topology, a.endpoint.namespace, destination, count=1)  # the path works
    before = a.daemon.stats()
    capture = Capture(topology, a.xtr.namespace, "lisp0",
                              "icmp" if inner == 4 else "icmp6")
    _probe(topology, a.endpoint.namespace, destination)
    answers = _too_big_answers(capture.packets(), inner)
    grew = sites.growth(before, a.daemon.stats())

    assert answers, "no ICMP too-big answer came out of the TUN"
    kind, code, mtu, quoted = answers[0]
    if inner == 4:
        assert (kind, code) == (3, 4)  # destination unreachable, fragmentation needed
        quoted_destination = quoted[16:20]
    else:
        assert (kind, code) == (2, 0)  # packet too big
        quoted_destination = quoted[24:40]
    assert mtu == _expected_mtu(outer)
    assert ip_address(quoted_destination) == ip_address(destination)
    assert grew["icmp_too_big"] >= 1
    assert grew["itr_packets"] == 0  # nothing too big went out
    assert grew["drop_too_big"] == 0  # a DF packet is answered, not dropped


@pytest.mark.parametrize(("inner", "outer"), CASES, ids=lambda v: f"v{v}")
def test_sender_learns_the_mtu(pair: tuple[Lab, sites.Site], inner: int, outer: int) -> None:
    topology, a = pair
    error = _probe(topology, a.endpoint.namespace, REMOTE[(inner, outer)])
    assert error is not None, (
        "the sender's kernel did not take the ICMP answer (lispd counted "
        f"{a.daemon.stats()['icmp_too_big']} answers written to the TUN)"
    )
    assert error["mtu"] == _expected_mtu(outer)
    assert error["type"] == (3 if inner == 4 else 2)
