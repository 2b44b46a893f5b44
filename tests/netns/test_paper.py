"""The paper's topology (lispd.paper): static reachability, both families.

VMs that run no lispd reach each other through their cloud's router (one
router: routed between its segments; two: LISP between the routers), the
on-premise site, and a host that runs no LISP through the proxy xTR (as
PITR towards the EID space, as PETR away from it); the same for the
on-premise site with OpenOverlayRouter as its gateway. The mobile VM, a
dynamic EID at r1 (on VNI 11, of VNI 12's prefix), is reached like the
rest; its move is test_paper_mobility's (here only its side of it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from lispd.lab import lab
from lispd.paper import MOB, MOB_MOVED_VNI, ONPREM_PREFIXES, R1, R2, Options, Paper, vtep
from tests.needs import require_netns, require_program
from tests.netns.sites import NEVER_DROPPED, growth
from tests.traffic import PINGS, ping, ping_output, replies, wait_for

pytestmark = pytest.mark.netns

# The xTRs' own drops that static traffic between these nodes never causes
# (sites.NEVER_DROPPED), and what the routers' segments never see either.
NEVER = (*NEVER_DROPPED, "drop_ecn", "drop_ttl_expired", "drop_unknown_vni", "drop_bad_frame",
         "drop_no_destination")
XTRS = ("r1", "r2", "pxtr", "onprem")

# Every VM (the mobile one, a dynamic EID, too), the on-premise host and
# the internet host: each reaches every other, both families.
ENDPOINTS = ("vm11", "vm12", "vm21", "vm22", "mob", "onhost", "inet")
PAIRS = [(a, b) for a in ENDPOINTS for b in ENDPOINTS if a != b]
# With OpenOverlayRouter as the on-premise site gateway: its traffic.
ONPREM_PAIRS = [("onhost", "vm11"), ("vm22", "onhost"), ("inet", "onhost"), ("onhost", "inet")]


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paper]:
    require_netns()
    with lab() as topology:
        scenario = Paper(topology, tmp_path_factory.mktemp("paper"))
        scenario.start()
        mob = (f"[0]{MOB.address4}/32", f"[0]{MOB.address6}/128")
        registered = wait_for(lambda: scenario.registered() and all(
            scenario.registrations().get(prefix) == R1 for prefix in mob), 15)
        assert registered, (scenario.registrations(), scenario.expected_registrations())
        yield scenario
        codes = scenario.stop()
        assert all(code == 0 for code in codes.values()), codes


@pytest.fixture(scope="module")
def oor_paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paper]:
    require_netns()
    require_program("oor", "openoverlayrouter")
    with lab() as topology:
        scenario = Paper(topology, tmp_path_factory.mktemp("paper-oor"), Options(onprem="oor"))
        scenario.start()
        registered = wait_for(scenario.registered, 15)
        assert registered, (scenario.registrations(), scenario.expected_registrations())
        assert wait_for(lambda: topology.oor_routed(scenario.ns("onprem"), ONPREM_PREFIXES), 10)
        yield scenario
        codes = scenario.stop()
        assert all(code == 0 for code in codes.values()), codes


def stats(paper: Paper) -> dict[str, dict[str, int]]:
    return {name: paper.daemons[name].stats() for name in XTRS}


def reach(paper: Paper, source: str, target: str, version: int) -> None:
    ping(paper.lab, paper.endpoint(source)[0], paper.address(target, version))


@pytest.mark.parametrize("version", [4, 6], ids=["ipv4", "ipv6"])
def test_everything_reaches_everything(paper: Paper, version: int) -> None:
    """Every pair at once (each ping bounded, -w): the ones not answered."""
    def answered(pair: tuple[str, str]) -> str | None:
        done = ping_output(paper.lab, paper.endpoint(pair[0])[0],
                           paper.address(pair[1], version))
        return None if replies(done) >= PINGS else f"{pair[0]} -> {pair[1]}:\n{done}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        failed = [f for f in pool.map(answered, PAIRS) if f is not None]
    assert failed == [], "\n".join(failed)


@pytest.mark.parametrize("version", [4, 6], ids=["ipv4", "ipv6"])
def test_the_proxy_xtr_carries_the_non_lisp_traffic(paper: Paper, version: int) -> None:
    before = stats(paper)
    reach(paper, "inet", "vm21", version)  # PITR: encapsulated to r2
    reach(paper, "vm11", "inet", version)  # PETR: r1 encapsulates to the PxTR
    grown = {name: growth(before[name], now) for name, now in stats(paper).items()}
    # Both ways of each ping: in from the internet host and out to it.
    assert grown["pxtr"]["itr_packets"] >= 6, grown["pxtr"]
    assert grown["pxtr"]["etr_packets"] >= 6, grown["pxtr"]
    assert grown["r1"]["itr_packets"] >= 3 and grown["r2"]["etr_packets"] >= 3, grown
    # r1 sent the echo requests for a non-EID to the proxy-ETR: its map-cache
    # holds the mapping system's negative answer for the internet host.
    (entry,) = covering(paper.daemons["r1"].request("show", "map-cache"),
                        paper.address("inet", version))
    assert (entry["action"], entry["rlocs"]) == ("natively_forward", []), entry


def covering(cache: list[dict[str, Any]], address: str) -> list[dict[str, Any]]:
    """The map-cache rows ("[0]203.0.113.0/24"...) whose prefix holds address."""
    return [row for row in cache
            if ip_address(address) in ip_network(row["eid-prefix"].split("]", 1)[1])]


def test_nothing_dropped_that_should_not_be(paper: Paper) -> None:
    for name, counters in stats(paper).items():
        dropped = {reason: counters[reason] for reason in NEVER if counters.get(reason)}
        assert dropped == {}, f"{name} dropped {dropped}"


def link_details(paper: Paper, namespace: str, device: str) -> dict[str, Any]:
    shown = paper.lab.ns(namespace, "ip", "-d", "-j", "addr", "show", "dev", device).stdout
    (details,) = json.loads(shown)
    return dict(details)


def test_the_mobile_vm_moves_to_cloud_2(paper: Paper) -> None:
    """Last: the move itself (the VM's side of it), not its reachability."""
    mob = paper.ns(MOB.name)
    paper.move_mob()
    old, new = link_details(paper, mob, "c1"), link_details(paper, mob, "c2")
    assert old["addr_info"] == [] and "UP" not in old["flags"]
    assert [a["local"] for a in new["addr_info"] if a["family"] == "inet"] == [vtep(MOB.nets[1])]
    vx0 = link_details(paper, mob, "vx0")
    vxlan = vx0["linkinfo"]["info_data"]
    assert (vxlan["id"], vxlan["remote"], vxlan["local"]) == (MOB_MOVED_VNI, R2,
                                                             vtep(MOB.nets[1]))
    assert {a["local"] for a in vx0["addr_info"] if a.get("scope") == "global"} == {
        MOB.address4, MOB.address6}
    sysctls = paper.lab.ns(mob, "sysctl", "-n", "net.ipv4.conf.vx0.arp_notify",
                           "net.ipv6.conf.vx0.ndisc_notify").stdout.split()
    assert sysctls == ["1", "1"]


@pytest.mark.parametrize("version", [4, 6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize(("source", "target"), ONPREM_PAIRS,
                         ids=[f"{a}-{b}" for a, b in ONPREM_PAIRS])
def test_reachable_with_oor_on_premise(oor_paper: Paper, source: str, target: str,
                                       version: int) -> None:
    reach(oor_paper, source, target, version)
