"""Mobility, the heart of it: a service keeps its EID while it moves, and a
1000 packets-per-second stream to it resumes by itself (lispd.clouds).

1. The VM moves to another cloud: its underlay address changes under lispd,
   which re-registers and tells its peers.
2. The service is redeployed on another VM: the new xTR registers the EID,
   the map-server tells the old one, which steps aside.

Each test asserts that the stream resumed at the new location and that,
after convergence, nothing goes to the old one. How long it took is the
convergence bench's to report (bench/convergence.py), not a test's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lispd.clouds import SERVICE4, Clouds, Options
from lispd.lab import lab
from lispd.pcap import Capture
from lispd.stream import Arrivals
from tests.needs import require_netns, require_program
from tests.traffic import wait_for

pytestmark = pytest.mark.netns

RATE = 1000
COUNT = 4000  # four seconds of stream
MOVE_AT = 1.5  # seconds into it
CONVERGED = 1000  # the last second of the stream must all arrive at the new place
OLD_RLOC = "198.18.3.10"


def registered(clouds: Clouds) -> set[str]:
    rows: list[dict[str, Any]] = clouds.daemons["ms"].request("show", "registrations")
    return {row["prefix"] for row in rows}


# Each way an ITR can learn of the move on its own. (With neither, it learns
# when the entry's TTL runs out: the bench measures that, a test would wait a day.)
@pytest.fixture(params=[Options(), Options(subscribe=False), Options(smr=False)],
                ids=["pubsub+smr", "smr-only", "pubsub-only"])
def clouds(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Clouds]:
    require_netns()
    require_program("tcpdump", "tcpdump")
    with lab() as topology:
        scenario = Clouds(topology, tmp_path, request.param)
        scenario.start()
        assert wait_for(lambda: f"[0]{SERVICE4}/32" in registered(scenario), 10)
        # The client has talked to the service before: its map-cache holds the old place.
        result = topology.ns(scenario.host, "ping", "-c", "2", "-i", "0.2", "-W", "2", SERVICE4,
                             check=False)
        assert result.returncode == 0, result.stdout
        yield scenario
        codes = scenario.stop()
        assert all(code == 0 for code in codes.values()), codes


def tail(arrivals: Arrivals) -> set[int]:
    return {seq for seq in arrivals.sequence_numbers if seq >= COUNT - CONVERGED}


def old_place_capture(clouds: Clouds) -> Capture:
    """LISP data to the old RLOC, seen by the core router (every interface)."""
    return Capture(clouds.lab, clouds.core, "any", f"udp dst port 4341 and dst host {OLD_RLOC}")


def test_vm_moves_to_another_cloud(clouds: Clouds) -> None:
    receiver = clouds.receiver(clouds.vm, COUNT / RATE + 3)
    sender = clouds.sender(RATE, COUNT)
    time.sleep(MOVE_AT)
    clouds.move_vm()
    # Convergence is well inside a second; the capture covers the stream's last part.
    time.sleep(1.0)
    capture = old_place_capture(clouds)
    assert clouds.sent(sender) == COUNT
    late = capture.packets()
    arrivals = clouds.arrivals(receiver)
    vm = clouds.daemons["vm"]
    assert len(tail(arrivals)) >= CONVERGED * 0.99, (arrivals.lost(COUNT), vm.log()[-2000:])
    assert late == [], f"{len(late)} packets still went to {OLD_RLOC}"
    cache = {row["eid-prefix"]: row for row in clouds.daemons["onprem"].request("show",
                                                                                 "map-cache")}
    assert [r["address"] for r in cache[f"[0]{SERVICE4}/32"]["rlocs"]] == ["198.18.4.10"]
    assert vm.stats()["registrar_acknowledged"] >= 2  # registered at the old place, then anew


def test_service_redeployed_on_another_vm(clouds: Clouds) -> None:
    old = clouds.receiver(clouds.vm, COUNT / RATE + 3)
    new = clouds.receiver(clouds.vm2, COUNT / RATE + 3)
    sender = clouds.sender(RATE, COUNT)
    time.sleep(MOVE_AT)
    clouds.redeploy()
    time.sleep(1.0)
    capture = old_place_capture(clouds)
    assert clouds.sent(sender) == COUNT
    late = capture.packets()
    at_old, at_new = clouds.arrivals(old), clouds.arrivals(new)
    assert len(tail(at_new)) >= CONVERGED * 0.99, at_new.lost(COUNT)
    assert tail(at_old) == set()
    assert late == [], f"{len(late)} packets still went to {OLD_RLOC}"
    vm = clouds.daemons["vm"].stats()
    assert vm["registrar_displaced"] >= 1
    # The old xTR no longer registers the EID: only vm2's registration is left.
    rows = clouds.daemons["ms"].request("show", "registrations")
    (row,) = [r for r in rows if r["prefix"] == f"[0]{SERVICE4}/32"]
    assert row["source"] == "198.18.5.10"
