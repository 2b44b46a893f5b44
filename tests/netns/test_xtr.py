"""Two xTRs with static mappings, real devices and real daemons: ping and a
20 MB TCP transfer between EIDs, checked byte for byte, for each inner/outer
family pair and both deployment shapes (the VM is its own xTR; a site
gateway with a host behind it). Then the counters say the traffic went
through the fast path with no drop it should not have had, and SIGTERM
leaves no device behind. The transfer runs on the offload path (the
default: TSO super-packets in, UDP_SEGMENT trains out, UDP_GRO trains in,
coalesced super-packets out) and, for one family pair per shape, on the
plain batched path (`offloads = "off"`).
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


CASES = [(inner, outer, "offload") for inner, outer in FAMILIES] + [
    (4, 6, "batched"), (6, 4, "batched")]


@pytest.mark.parametrize("shape", ["own", "gateway"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"v{c[0]}-v{c[1]}-{c[2]}")
def test_ping_and_transfer(topology: Lab, tmp_path: Path, shape: sites.Shape,
                           case: tuple[int, int, str]) -> None:
    inner, outer, path = case
    daemon = 'offloads = "off"' if path == "batched" else ""
    a, b = sites.two_sites(topology, tmp_path, shape, outer, daemon=daemon)
    before = {site.name: site.daemon.stats() for site in (a, b)}

    traffic.ping(topology, a.endpoint.namespace, b.endpoint.address(inner))
    traffic.transfer(topology, a.endpoint.namespace, b.endpoint.namespace,
                     b.endpoint.address(inner), seed=inner * 10 + outer)

    grew = {}
    for site in (a, b):
        grew[site.name] = sites.growth(before[site.name], site.daemon.stats())
        # Data one way, ACKs and echo replies the other: both sides
        # encapsulate and decapsulate.
        assert grew[site.name]["itr_packets"] > 0 and grew[site.name]["etr_packets"] > 0, grew
        dropped = {name: value for name in sites.NEVER_DROPPED
                   if (value := grew[site.name][name])}
        assert not dropped, (site.name, dropped)
    # The 20 MB went from a to b: at least that much was decapsulated at b.
    assert grew["b"]["etr_bytes"] >= traffic.TRANSFER_BYTES
    if path == "offload":
        # a cut TCP super-packets into trains, b took trains in and wrote
        # super-packets up; nothing had to fall back to one by one.
        assert grew["a"]["super_reads"] > 0 and grew["a"]["gso_trains"] > 0, grew["a"]
        assert grew["a"]["gso_segments"] > grew["a"]["gso_trains"], grew["a"]
        assert grew["b"]["gro_trains"] > 0 and grew["b"]["super_writes"] > 0, grew["b"]
        assert grew["a"]["gso_fallbacks"] == grew["b"]["gso_fallbacks"] == 0
    else:
        for name in ("super_reads", "gso_trains", "gro_trains", "super_writes"):
            assert grew["a"][name] == grew["b"][name] == 0, name
    for site in (a, b):
        assert site.daemon.request("version")["dataplane"] == path

    for site in (a, b):
        sites.stop_cleanly(topology, site)
