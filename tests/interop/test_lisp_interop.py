"""LISP data-plane interop: an OpenOverlayRouter xTR and a lispd xTR reach
each other's EIDs, IPv4 and IPv6 EIDs on an IPv4 underlay: pings both ways,
and a few MB over TCP each way whose SHA-256 must match.

Neither side has a mapping system: each has a static map-cache entry for the
other's EIDs (`static-map-cache` in OOR, `[[xtr.static-mapping]]` in lispd).
OOR 1.3.0 needs no map-resolver or map-server for that: without them it
logs "NO MAP RESOLVER CONFIGURED" (CRIT) and "NO MAP SERVER CONFIGURED"
(WARNING) and forwards anyway, so its config names none. RLOC probing is
switched off: lispd has no control plane to answer probes yet.

Underlay 198.18.0.0/24 on a bridge in a hub namespace that also forwards
(OOR routes its own traffic via the default gateway of its RLOC
interface). lispd's node is the VM that is its own xTR (EIDs on its TUN);
OOR's EIDs sit on lo as in tests/interop/oor.py, and OOR routes traffic
sourced from its EID prefixes into its lispTun0.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lispd.lab import Lab, Lispd, lab, oor_static_xtr
from tests import traffic
from tests.interop import oor
from tests.needs import require_netns, require_program
from tests.netns.sites import Mapping, xtr_config

pytestmark = [pytest.mark.interop, pytest.mark.netns]

LISPD_RLOC, OOR_RLOC = "198.18.0.20", "198.18.0.21"
LISPD_EID4, LISPD_EID6 = "192.0.2.10", "2001:db8::10"
OOR_PREFIX4, OOR_EID4 = "192.0.2.64/26", "192.0.2.65"
OOR_PREFIX6, OOR_EID6 = "2001:db8:1::/64", "2001:db8:1::1"
OOR_START = 20.0  # seconds OOR may take to install its EID routing
PINGS = 3
TRANSFER = 3 * 1024 * 1024  # octets each way

LISPD_CONFIG = xtr_config(
    [LISPD_RLOC],
    eid_space=["192.0.2.0/24", "2001:db8::/32"],
    database=[Mapping(f"{LISPD_EID4}/32", LISPD_RLOC, assign=True),
              Mapping(f"{LISPD_EID6}/128", LISPD_RLOC, assign=True)],
    static=[Mapping(OOR_PREFIX4, OOR_RLOC, priority=1, weight=100),
            Mapping(OOR_PREFIX6, OOR_RLOC)],
)


def oor_config() -> str:
    """An OOR xTR with static map-cache entries for lispd's EIDs, no mapping system."""
    return oor_static_xtr(
        database=[(OOR_PREFIX4, OOR_RLOC), (OOR_PREFIX6, OOR_RLOC)],
        static=[(f"{LISPD_EID4}/32", LISPD_RLOC), (f"{LISPD_EID6}/128", LISPD_RLOC)],
    )


def build(topology: Lab) -> tuple[str, str]:
    """Hub with the underlay bridge and gateway; the lispd and OOR namespaces."""
    hub = oor.hub(topology)
    return oor.attach(topology, hub, "lx", LISPD_RLOC), oor.attach(topology, hub, "ox", OOR_RLOC)


def start_oor(topology: Lab, namespace: str, workdir: Path) -> subprocess.Popen[bytes]:
    # The host EIDs sit on lo (this kernel may lack the dummy driver).
    topology.ns(namespace, "ip", "addr", "add", f"{OOR_EID4}/32", "dev", "lo")
    topology.ns(namespace, "ip", "addr", "add", f"{OOR_EID6}/128", "dev", "lo", "nodad")
    process = topology.oor(namespace, oor_config(), workdir, "xtr")
    # OOR is ready once it sends what its EIDs source into lispTun0.
    if not traffic.wait_for(lambda: topology.oor_routed(namespace, [OOR_PREFIX4, OOR_PREFIX6]),
                            OOR_START):
        process.kill()
        log_text = (workdir / "oor-xtr.log").read_text(errors="replace")
        pytest.fail(f"OOR did not install its EID routing:\n{log_text[-3000:]}")
    return process


def ping(topology: Lab, namespace: str, source: str, target: str) -> str:
    return traffic.ping_output(topology, namespace, target, count=PINGS, source=source)


def diagnostics(daemon: Lispd, workdir: Path) -> str:
    oor_log = (workdir / "oor-xtr.log").read_text(errors="replace")
    return f"--- lispd log\n{daemon.log()[-3000:]}\n--- OOR log\n{oor_log[-3000:]}"


def test_oor_and_lispd_reach_each_others_eids(tmp_path: Path) -> None:
    require_netns()
    require_program("oor", "openoverlayrouter")
    require_program("ethtool", "ethtool")
    require_program("ping", "iputils-ping")
    require_program("stdbuf", "coreutils")
    with lab() as topology:
        lx, ox = build(topology)
        daemon = topology.lispd(lx, LISPD_CONFIG, tmp_path, "lx")
        process = start_oor(topology, ox, tmp_path)
        outputs = {
            "lispd->oor v4": ping(topology, lx, LISPD_EID4, OOR_EID4),
            "oor->lispd v4": ping(topology, ox, OOR_EID4, LISPD_EID4),
            "lispd->oor v6": ping(topology, lx, LISPD_EID6, OOR_EID6),
            "oor->lispd v6": ping(topology, ox, OOR_EID6, LISPD_EID6),
        }
        # TCP both ways, from EID to EID (OOR only encapsulates what its
        # EIDs send, so the sender binds its EID).
        traffic.transfer(topology, lx, ox, OOR_EID4, bind=LISPD_EID4, size=TRANSFER)
        traffic.transfer(topology, ox, lx, LISPD_EID6, bind=OOR_EID6, size=TRANSFER)
        stats = daemon.stats()
        report = diagnostics(daemon, tmp_path)
        status = daemon.stop()
        process.kill()
        process.wait(timeout=10)
    for what, output in outputs.items():
        assert traffic.replies(output) >= PINGS, f"{what}:\n{output}\n{report}"
    # Every echo went out through lispd's ITR and came back through its ETR
    # (each way: PINGS requests one way, PINGS replies the other, per family).
    assert stats["itr_packets"] >= 4 * PINGS, stats
    assert stats["etr_packets"] >= 4 * PINGS, stats
    assert stats["drop_not_local_eid"] == 0, stats
    assert stats["drop_bad_flags"] == 0, stats
    assert stats["drop_bad_inner"] == 0, stats
    assert stats["drop_truncated"] == 0, stats
    assert status == 0, report
