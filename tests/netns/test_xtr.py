"""Two xTRs with static mappings, real devices and real daemons: ping and a
20 MB TCP transfer between EIDs, checked byte for byte, for each inner/outer
family pair and both deployment shapes (the VM is its own xTR; a site
gateway with a host behind it). Then the counters say the traffic went
through the fast path with no drop it should not have had, and SIGTERM
leaves no device behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lispd.lab import Lab, lab
from tests import traffic
from tests.needs import require_netns, require_program
from tests.netns import sites

pytestmark = pytest.mark.netns

# (inner family, outer family): the outer one is that of the static
# mapping's RLOC; every node has RLOCs of both families.
FAMILIES = [(4, 4), (6, 4), (4, 6), (6, 6)]


@pytest.fixture
def topology() -> Iterator[Lab]:
    require_netns()
    require_program("ping", "iputils-ping")
    with lab() as made:
        yield made


@pytest.mark.parametrize("shape", ["own", "gateway"])
@pytest.mark.parametrize(("inner", "outer"), FAMILIES, ids=lambda v: f"v{v}")
def test_ping_and_transfer(topology: Lab, tmp_path: Path, shape: sites.Shape, inner: int,
                           outer: int) -> None:
    a, b = sites.two_sites(topology, tmp_path, shape, outer)
    before = {site.name: site.daemon.stats() for site in (a, b)}

    traffic.ping(topology, a.endpoint.namespace, b.endpoint.address(inner))
    traffic.transfer(topology, a.endpoint.namespace, b.endpoint.namespace,
                     b.endpoint.address(inner), seed=inner * 10 + outer)

    for site in (a, b):
        grew = sites.growth(before[site.name], site.daemon.stats())
        # Data one way, ACKs and echo replies the other: both sides
        # encapsulate and decapsulate.
        assert grew["itr_packets"] > 0 and grew["etr_packets"] > 0, (site.name, grew)
        dropped = {name: grew[name] for name in sites.NEVER_DROPPED if grew[name]}
        assert not dropped, (site.name, dropped)
    # The 20 MB went from a to b: at least that much was decapsulated at b.
    assert sites.growth(before["b"], b.daemon.stats())["etr_bytes"] >= traffic.TRANSFER_BYTES

    for site in (a, b):
        sites.stop_cleanly(topology, site)
