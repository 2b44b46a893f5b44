"""`lispd demo --scenario paper`: the paper's own topology (lispd.paper).

A router per cloud with the tenant's VMs on VXLAN segments behind it, the
on-premise site, a mapping system and a proxy xTR towards an internet host
that runs no LISP. It shows who registered what, that every kind of pair
reaches each other in both families, and then moves a VM from VNI 11 in
cloud 1 to VNI 21 in cloud 2 while the on-premise host and the internet
host stream to it: what each stream lost, where the VM's EIDs are
registered before and after, and that cloud 1 gets nothing more for it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lispd.demo import ping as count_replies
from lispd.demo import say, tell, wait_for
from lispd.demo import step as numbered
from lispd.lab import Lab
from lispd.paper import MOB, R1, R2, Paper
from lispd.stream import Arrivals, outage

__all__ = ["scenario"]

STEPS = 5
RATE, COUNT = 500, 2500  # per stream: five seconds
MOVE_AT = 1.5
STREAMS = [("onhost", 4, 9000), ("inet", 4, 9001), ("onhost", 6, 9002), ("inet", 6, 9003)]
# (from, to, what it shows)
PAIRS = [
    ("vm11", "vm12", "two segments of one router"),
    ("vm11", "vm21", "cloud 1 to cloud 2 (LISP between the routers)"),
    ("vm22", "onhost", "cloud 2 to the on-premise site"),
    ("inet", "vm11", "internet host to cloud 1 (through the PITR)"),
    ("vm21", "inet", "cloud 2 to the internet host (through the PETR)"),
    ("inet", "onhost", "internet host to the on-premise site"),
    ("vm12", "mob", "to the moved VM, native to VNI 12, on VNI 11"),
]
NAMES = {"198.18.1.2": "ms", "198.18.2.2": "onprem", "198.18.3.2": "pxtr", R1: "r1", R2: "r2"}


def scenario(topology: Lab, workdir: Path, keep: bool) -> dict[str, Any]:
    """Steps 1 to 5: the figures measured."""
    step(1, "the topology: a router per cloud, VMs on VXLAN segments, a PxTR")
    paper = Paper(topology, workdir)
    tell("ms is the Map-Server/Map-Resolver; r1 is the gateway of VNI 11 (192.0.2.0/26) and "
         "VNI 12 (192.0.2.64/26) in cloud 1, r2 of VNI 21 and 22 (192.0.2.128/25) in cloud 2; "
         "onprem is the site gateway of 198.51.100.0/24; pxtr is the proxy xTR the internet "
         "host 203.0.113.10 (no LISP) reaches the overlay through. The VMs run no LISP: a "
         "kernel vxlan device to their router each. The mobile VM 192.0.2.70 (of VNI 12) sits "
         "on VNI 11: r1 treats it as a dynamic EID.")
    paper.start()
    if not wait_for(lambda: paper.registered() and held_by(paper, R1), 15):
        raise RuntimeError(f"registrations incomplete: {paper.registrations()}")
    step(2, "what the map-server holds")
    before = paper.registrations()
    for prefix, source in sorted(before.items()):
        say(f"    {prefix:<28} {source} ({NAMES.get(source, '?')})")
    step(3, "every kind of pair, IPv4 and IPv6")
    pings: dict[str, int] = {}
    for source, target, what in PAIRS:
        for version in (4, 6):
            got = count_replies(topology, paper.endpoint(source)[0],
                                paper.address(target, version))
            pings[f"{source}->{target} IPv{version}"] = got
            say(f"    {source:>6} -> {target:<6} IPv{version}: {got}/3 replies   {what}")
    step(4, "the mobile VM moves from VNI 11 (cloud 1) to VNI 21 (cloud 2), streams running")
    moved = move(paper)
    step(5, "after the move")
    after = paper.registrations()
    for version, prefix in hosts().items():
        say(f"    {prefix:<28} {before.get(prefix)} -> {after.get(prefix)} "
            f"({NAMES.get(after.get(prefix, ''), '?')}), IPv{version}")
    r1 = paper.daemons["r1"].stats()
    tell(f"r1 withdrew {r1.get('gateway_left_moved', 0)} dynamic EIDs when the map-server "
         f"told it (displaced {r1.get('registrar_displaced', 0)} times) and sent on "
         f"{r1.get('etr_reencap_packets', 0)} packets that still reached it; after "
         f"convergence cloud 1 got {moved['late_packets']} more for the VM.")
    result: dict[str, Any] = {"pings": pings, "registrations_before": before,
                              "registrations_after": after, **moved}
    if keep:
        say(f"\nleft up: the namespaces {topology.prefix}-*, configs and logs in {workdir}")
    else:
        result["exit_codes"] = paper.stop()
    return result


def step(number: int, title: str) -> None:
    numbered(number, title, total=STEPS)


def hosts() -> dict[int, str]:
    return {4: f"[0]{MOB.address4}/32", 6: f"[0]{MOB.address6}/128"}


def held_by(paper: Paper, rloc: str) -> bool:
    held = paper.registrations()
    return all(held.get(prefix) == rloc for prefix in hosts().values())


def move(paper: Paper) -> dict[str, Any]:
    """The streams, the move, and what arrived where."""
    seconds = COUNT / RATE
    receivers = [paper.receiver(version, port, seconds + 4) for _, version, port in STREAMS]
    senders = [paper.sender(client, version, port, RATE, COUNT)
               for client, version, port in STREAMS]
    tell(f"{len(STREAMS)} streams of {RATE} packets/s for {seconds:g} s: from onhost and from "
         f"inet, to 192.0.2.70 and 2001:db8:12::70. At {MOVE_AT} s the VM leaves cloud 1's "
         "network, comes up on cloud 2's and rejoins on VNI 21 (a new vxlan device towards "
         "r2), keeping its addresses and its gateway.")
    time.sleep(MOVE_AT)
    moved_at = time.monotonic()
    paper.move_mob()
    converged = wait_for(lambda: held_by(paper, R2)
                         and paper.daemons["r1"].stats()["gateway_left_moved"] == 2, 5)
    registered_after = time.monotonic() - moved_at
    time.sleep(0.5)
    capture = paper.cloud1_capture()
    for sender in senders:
        sender.communicate(timeout=seconds + 10)
    late = capture.packets()
    streams: dict[str, Any] = {}
    for (client, version, _), receiver in zip(STREAMS, receivers, strict=True):
        got = Arrivals.parse(receiver.communicate(timeout=15)[0].decode().splitlines()[-1])
        gap = outage([got], COUNT, RATE)
        streams[f"{client} IPv{version}"] = {"lost": got.lost(COUNT), "outage_s": round(gap, 3)}
        say(f"    from {client:<6} IPv{version}: {got.lost(COUNT):4d} of {COUNT} lost, "
            f"longest gap {gap * 1000:.0f} ms")
    tell(f"the map-server had the VM at r2 and r1 had let go {registered_after:.2f} s after the "
         f"move" if converged else "the mapping system did not converge within 5 s")
    return {"streams": streams, "converged": converged,
            "registered_after_s": round(registered_after, 3), "late_packets": len(late)}
