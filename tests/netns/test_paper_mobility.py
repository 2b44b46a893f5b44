"""The paper's move (lispd.paper): a VM keeps its addresses when it moves
from a segment of one cloud to a segment of the other, while streams from
the on-premise host and from the internet host (through the PxTR) run to it.

The mobile VM is a dynamic EID at cloud 1's router from the start: native
to VNI 12's prefix, it sits on VNI 11, and r1 registered its host routes.
It moves to VNI 21 at r2: r2 hears it announce itself and registers it, the
map-server tells r1, which withdraws its dynamic EID, sends what still comes
on to r2 and tells the ITRs (SMR). Asserted: each stream resumes at the new
place and, once the mapping system and the ITRs have converged, nothing
more goes to cloud 1. Once with lispd, once with OpenOverlayRouter as the
on-premise router. How long it took is not a test's to say.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lispd.lab import lab
from lispd.paper import MOB, R1, R2, Options, Paper
from lispd.stream import Arrivals
from tests.needs import require_netns, require_program
from tests.traffic import ping, wait_for

pytestmark = pytest.mark.netns

RATE = 500  # per stream: four of them
COUNT = 3000  # six seconds
MOVE_AT = 1.5
TAIL = 500  # the last second of each stream must all arrive
STREAMS = [("onhost", 4, 9000), ("inet", 4, 9001), ("onhost", 6, 9002), ("inet", 6, 9003)]
HOSTS = {4: f"[0]{MOB.address4}/32", 6: f"[0]{MOB.address6}/128"}


@pytest.fixture(params=["lispd", "oor"])
def paper(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paper]:
    require_netns()
    require_program("tcpdump", "tcpdump")
    if request.param == "oor":
        require_program("oor", "openoverlayrouter")
    with lab() as topology:
        scenario = Paper(topology, tmp_path_factory.mktemp(f"move-{request.param}"),
                         Options(onprem=request.param))
        scenario.start()
        assert wait_for(lambda: scenario.registered() and at(scenario, R1), 15), (
            scenario.registrations())
        # Both clients have talked to the VM before: their caches hold cloud 1.
        # So has a VM of its home segment, for which r1 answers (it is on VNI 11).
        for client in ("onhost", "inet", "vm12"):
            for version in (4, 6):
                ping(topology, scenario.endpoint(client)[0], scenario.address("mob", version))
        yield scenario
        codes = scenario.stop()
        assert all(code == 0 for code in codes.values()), codes


def at(paper: Paper, rloc: str) -> bool:
    """Whether the map-server holds both of the VM's host EIDs from rloc."""
    held = paper.registrations()
    return all(held.get(prefix) == rloc for prefix in HOSTS.values())


def test_a_vm_moved_to_another_cloud_keeps_its_addresses(paper: Paper) -> None:
    seconds = COUNT / RATE
    receivers = [paper.receiver(version, port, seconds + 4) for _, version, port in STREAMS]
    senders = [paper.sender(client, version, port, RATE, COUNT)
               for client, version, port in STREAMS]
    time.sleep(MOVE_AT)
    paper.move_mob()
    # Converged: the mapping system has the VM at cloud 2 and cloud 1 let go.
    r1 = paper.daemons["r1"]
    assert wait_for(lambda: at(paper, R2), 5), paper.registrations()
    assert wait_for(lambda: r1.stats()["gateway_left_moved"] == 2, 5), r1.stats()
    # From now on nothing may reach cloud 1 for the VM: its router's RLOC
    # gets no LISP data (nothing else sends it any here), nor its old VTEP
    # any VXLAN.
    time.sleep(0.5)  # the ITRs act on the SMR / publication they were just sent
    capture = paper.cloud1_capture()
    for sender in senders:
        sender.communicate(timeout=seconds + 10)
    late = capture.packets()
    arrivals = [Arrivals.parse(r.communicate(timeout=15)[0].decode().splitlines()[-1])
                for r in receivers]
    for (client, version, _), got in zip(STREAMS, arrivals, strict=True):
        tail = {seq for seq in got.sequence_numbers if seq >= COUNT - TAIL}
        assert len(tail) >= TAIL * 0.99, (client, version, got.lost(COUNT))
    assert late == [], f"{len(late)} packets still went to cloud 1"
    # Cloud 1 withdrew its dynamic EIDs; cloud 2 holds them.
    assert r1.stats()["gateway_left_moved"] == 2
    r2 = paper.daemons["r2"].stats()
    assert r2["gateway_arrived"] >= 2
    assert r2["gateway_left_moved"] == r2["gateway_left_silent"] == 0
    assert r1.stats()["registrar_displaced"] >= 2
    # And the VM reaches, and is reached from, its old neighbours in cloud 1.
    for version in (4, 6):
        ping(paper.lab, paper.endpoint("vm11")[0], paper.address("mob", version))
        ping(paper.lab, paper.endpoint("mob")[0], paper.address("vm12", version))


@pytest.fixture
def lispd_paper(tmp_path: Path) -> Iterator[Paper]:
    require_netns()
    with lab() as topology:
        scenario = Paper(topology, tmp_path)
        scenario.start()
        assert wait_for(scenario.registered, 15), scenario.registrations()
        yield scenario
        codes = scenario.stop()
        assert all(code == 0 for code in codes.values()), codes


VM12 = {4: "[0]192.0.2.80/32", 6: "[0]2001:db8:12::80/128"}


def test_a_vm_native_to_its_segment_leaves_for_the_other_cloud_and_comes_back(
        lispd_paper: Paper) -> None:
    """vm12's addresses are of VNI 12's own prefix at r1. Moved to VNI 22 at
    r2, r2 registers its host EIDs; the map-server tells r1, whose prefix
    covers them: r1 sends on what still comes and answers for the VM on its
    home segment. Back on VNI 12, r1 registers them and r2 lets go."""
    paper = lispd_paper
    r1, r2 = paper.daemons["r1"], paper.daemons["r2"]
    clients = ("onhost", "inet", "vm11", "vm21", "mob")  # mob: of vm12's home subnet
    for client in clients:
        ping(paper.lab, paper.endpoint(client)[0], paper.address("vm12", 4))
    paper.rejoin("vm12", 22)
    assert wait_for(lambda: all(paper.registrations().get(p) == R2 for p in VM12.values()),
                    5), paper.registrations()
    assert wait_for(lambda: r1.stats().get("registrar_left", 0) == 2, 5), r1.stats()
    for client in clients:
        for version in (4, 6):
            ping(paper.lab, paper.endpoint(client)[0], paper.address("vm12", version))
    # r1 still registers its segment's prefix: only the host went.
    assert paper.registrations()["[0]192.0.2.64/26"] == R1
    paper.rejoin("vm12", 12)
    assert wait_for(lambda: all(paper.registrations().get(p) == R1 for p in VM12.values()),
                    5), paper.registrations()
    assert wait_for(lambda: r2.stats()["gateway_left_moved"] == 2, 5), r2.stats()
    for client in clients:
        for version in (4, 6):
            ping(paper.lab, paper.endpoint(client)[0], paper.address("vm12", version))
