"""A real daemon's life in a namespace: what it makes while it runs, that
SIGTERM and SIGINT take all of it away again with exit status 0, and that a
kill -9 leaves nothing that stops the next start (or piles up)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lispd.lab import Lab, Lispd, lab
from tests.needs import require_netns
from tests.netns.sites import Instance, Mapping, Segment, underlay, xtr_config

pytestmark = pytest.mark.netns


@pytest.fixture
def topology() -> Iterator[Lab]:
    require_netns()
    with lab() as made:
        yield made


def _ip(topology: Lab, namespace: str, *args: str) -> Any:
    return json.loads(topology.ns(namespace, "ip", "-j", *args).stdout or "[]")


def host_state(topology: Lab, namespace: str) -> dict[str, Any]:
    """Devices, addresses, routes (every table) and rules, as the kernel has them."""
    links = sorted(link["ifname"] for link in _ip(topology, namespace, "link", "show"))
    addresses = sorted(
        (entry["ifname"], info["local"], info["prefixlen"])
        for entry in _ip(topology, namespace, "addr", "show")
        for info in entry.get("addr_info", [])
        if info.get("scope") != "link"
    )
    routes = sorted(
        json.dumps(route, sort_keys=True)
        for family in ("-4", "-6")
        for route in _ip(topology, namespace, family, "route", "show", "table", "all")
        # The kernel's own, and the subnet-router anycast routes IPv6 adds once
        # forwarding is on (forwarding is the host's policy: lispd leaves it on).
        if route.get("type") not in ("local", "broadcast", "multicast", "anycast")
    )
    rules = sorted(
        json.dumps(rule, sort_keys=True)
        for family in ("-4", "-6")
        for rule in _ip(topology, namespace, family, "rule", "show")
    )
    return {"links": links, "addresses": addresses, "routes": routes, "rules": rules}


def gateway(topology: Lab, tmp_path: Path) -> tuple[str, str]:
    """A site gateway with everything lispd can make: a TUN per instance,
    a TAP, EIDs on the TUN, routes to a LAN, a routing table and its rules."""
    a, b = underlay(topology)
    lan = topology.add("lan")
    topology.link(a.namespace, "lan7", lan, "eth0")
    config = xtr_config(
        [a.rloc4],
        database=[Mapping("192.0.2.10/32", a.rloc4, assign=True),
                  Mapping("192.0.2.64/26", a.rloc4, instance_id=7, interface="lan7")],
        static=[Mapping("192.0.2.128/26", b.rloc4)],
        instances=[Instance(7, "lisp7", 107, ("192.0.2.0/24",), ("lan7",))],
        extra=Segment("vx100", 100, a.rloc4, flood=(b.rloc4,)).toml(),
    )
    return a.namespace, config


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_stop_signal_takes_away_everything_made(
    topology: Lab, tmp_path: Path, stop: signal.Signals
) -> None:
    namespace, config = gateway(topology, tmp_path)
    before = host_state(topology, namespace)
    daemon = topology.lispd(namespace, config, tmp_path, "gw")
    running = host_state(topology, namespace)
    assert {"lisp0", "lisp7", "vx100"} <= set(running["links"])
    assert ("lisp0", "192.0.2.10", 32) in running["addresses"]
    assert len(running["routes"]) > len(before["routes"])
    assert len(running["rules"]) > len(before["rules"])
    assert daemon.process is not None
    daemon.process.send_signal(stop)
    assert daemon.process.wait(15) == 0, daemon.log()
    assert '"event": "stopped"' in daemon.log()
    assert host_state(topology, namespace) == before
    assert not daemon.socket.exists()


def test_after_kill_9_the_next_start_works_and_cleans_up(topology: Lab, tmp_path: Path) -> None:
    namespace, config = gateway(topology, tmp_path)
    before = host_state(topology, namespace)
    crashed = topology.lispd(namespace, config, tmp_path, "gw")
    assert crashed.process is not None
    crashed.process.send_signal(signal.SIGKILL)
    crashed.process.wait(15)
    # The devices went with the process; its rules and control socket stayed.
    left = host_state(topology, namespace)
    assert "lisp0" not in left["links"]
    assert crashed.socket.exists()

    again: Lispd = topology.lispd(namespace, config, tmp_path, "gw")
    assert again.request("show", "stats")["itr_packets"] == 0
    assert {"lisp0", "lisp7", "vx100"} <= set(host_state(topology, namespace)["links"])
    assert again.stop() == 0
    # What the crash left on devices that outlive lispd (the LAN's route and
    # rules) was found in place by the next start and left in place; nothing
    # accumulates, and every device and address is gone.
    after = host_state(topology, namespace)
    assert after == left
    assert after["links"] == before["links"]
    assert after["addresses"] == before["addresses"]
