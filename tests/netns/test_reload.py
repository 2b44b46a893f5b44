"""Reload (SIGHUP, `reload` on the control socket) on running daemons: only
the difference is applied, under traffic, and a bad file changes nothing."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lispd import ctl
from lispd.clouds import SERVICE4, Clouds, Options
from lispd.lab import Lispd, lab
from tests.needs import require_netns
from tests.netns.sites import Segment, underlay, underlay_section
from tests.traffic import wait_for

pytestmark = pytest.mark.netns

NEW_EID = "192.0.2.101"
RATE, COUNT = 500, 2000  # a four-second stream


def registered(clouds: Clouds) -> set[str]:
    rows: list[dict[str, Any]] = clouds.daemons["ms"].request("show", "registrations")
    return {row["prefix"] for row in rows}


def tun_addresses(clouds: Clouds) -> str:
    return clouds.lab.ns(clouds.vm, "ip", "-o", "addr", "show", "dev", "lisp0").stdout


def reload(daemon: Lispd) -> Any:
    return daemon.request("reload")


@pytest.fixture
def clouds(tmp_path: Path) -> Iterator[Clouds]:
    require_netns()
    with lab() as topology:
        scenario = Clouds(topology, tmp_path, Options(probe_interval=0.0))
        scenario.start()
        assert wait_for(lambda: f"[0]{SERVICE4}/32" in registered(scenario), 10)
        yield scenario
        codes = scenario.stop()
        assert all(code == 0 for code in codes.values()), codes


NEW_MAPPING = f'\n[[xtr.database-mapping]]\neid-prefix = "{NEW_EID}/32"\nassign = true\n'


def test_reload_under_traffic_applies_the_difference_and_keeps_the_map_cache(
    clouds: Clouds,
) -> None:
    vm, onprem = clouds.daemons["vm"], clouds.daemons["onprem"]
    original, gateway = vm.config, onprem.config
    receiver = clouds.receiver(clouds.vm, COUNT / RATE + 3)
    sender = clouds.sender(RATE, COUNT)
    assert wait_for(lambda: any(e["eid-prefix"] == f"[0]{SERVICE4}/32"
                                for e in onprem.request("show", "map-cache")), 5)
    cached = onprem.request("show", "map-cache")

    # A new EID on the VM, by the control socket: added to the TUN, registered.
    vm.rewrite(original + NEW_MAPPING)
    applied = reload(vm)
    assert f"database-mapping added: [0]{NEW_EID}/32" in str(applied)
    assert NEW_EID in tun_addresses(clouds)
    assert wait_for(lambda: f"[0]{NEW_EID}/32" in registered(clouds), 5)
    # And a static mapping on the gateway, by SIGHUP.
    onprem.rewrite(gateway + (
        '\n[[xtr.static-mapping]]\neid-prefix = "192.0.2.224/27"\naction = "drop"\n'
    ))
    assert onprem.process is not None
    onprem.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: '"event": "reloaded"' in onprem.log(), 5), onprem.log()

    arrivals = clouds.arrivals(receiver)
    assert clouds.sent(sender) == COUNT
    # The packet path never broke, and what the gateway had learnt is still there.
    assert arrivals.lost(COUNT) == 0
    after = onprem.request("show", "map-cache")
    learnt = {(e["eid-prefix"], str(e["rlocs"])) for e in cached}
    assert learnt <= {(e["eid-prefix"], str(e["rlocs"])) for e in after}
    assert any(e["eid-prefix"] == "[0]192.0.2.224/27" for e in after)
    # The new EID answers from the on-premise host, through the mapping system.
    ping = clouds.lab.ns(clouds.host, "ping", "-c", "2", "-i", "0.2", "-W", "2", NEW_EID,
                         check=False)
    assert ping.returncode == 0, ping.stdout

    # Taken away again: deregistered at once, off the TUN.
    vm.rewrite(original)
    assert f"database-mapping removed: [0]{NEW_EID}/32" in str(reload(vm))
    assert wait_for(lambda: f"[0]{NEW_EID}/32" not in registered(clouds), 5)
    assert NEW_EID not in tun_addresses(clouds)
    assert f"[0]{SERVICE4}/32" in registered(clouds)


def test_a_bad_file_changes_nothing_and_says_why(clouds: Clouds) -> None:
    vm = clouds.daemons["vm"]
    good = vm.config
    before = vm.request("show", "database")["mappings"]
    receiver = clouds.receiver(clouds.vm, COUNT / RATE + 3)
    sender = clouds.sender(RATE, COUNT)
    vm.rewrite(good + '\n[[xtr.database-mapping]]\neid-prefx = "192.0.2.102/32"\n')
    with pytest.raises(ctl.RequestError) as refused:
        reload(vm)
    message = str(refused.value)
    assert "reload refused, still running the old configuration" in message
    assert "did you mean 'eid-prefix'?" in message
    assert '"event": "reload_refused"' in vm.log()
    # What needs a restart is refused too, naming the keys.
    vm.rewrite(good.replace('interfaces = ["ula", "ulb"]', 'interfaces = ["ula"]'))
    with pytest.raises(ctl.RequestError, match=r"need a restart: underlay"):
        reload(vm)
    # By SIGHUP: logged, and the daemon carries on.
    assert vm.process is not None
    vm.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: vm.log().count('"event": "reload_refused"') >= 3, 5)
    assert vm.process.poll() is None
    assert vm.request("show", "database")["mappings"] == before
    arrivals = clouds.arrivals(receiver)
    assert clouds.sent(sender) == COUNT
    assert arrivals.lost(COUNT) == 0


def test_a_reload_that_changes_nothing_says_so(clouds: Clouds) -> None:
    assert reload(clouds.daemons["ms"]) in (["no changes"], {"applied": ["no changes"]})


def test_vxlan_flood_list_by_reload(tmp_path: Path) -> None:
    """Two VTEPs with no flood list cannot find each other (ARP has nowhere
    to go); a reload gives them one and the segment works."""
    require_netns()
    with lab() as topology:
        a, b = underlay(topology)
        daemons: list[Lispd] = []
        for xtr, peer, host in ((a, b, "203.0.113.1"), (b, a, "203.0.113.2")):
            lone = Segment("vx0", 100, xtr.rloc4)
            daemon = topology.lispd(xtr.namespace, underlay_section([xtr.rloc4]) + lone.toml(),
                                    tmp_path, xtr.namespace)
            topology.ns(xtr.namespace, "ip", "addr", "add", f"{host}/24", "dev", "vx0")
            daemon.rewrite(underlay_section([xtr.rloc4])
                           + Segment("vx0", 100, xtr.rloc4, flood=(peer.rloc4,)).toml())
            daemons.append(daemon)
        alone = topology.ns(a.namespace, "ping", "-c", "1", "-W", "1", "203.0.113.2",
                            check=False)
        assert alone.returncode != 0
        for daemon in daemons:
            assert "vxlan vni 100 flood: " in str(reload(daemon))
        deadline = time.monotonic() + 5
        while True:
            ping = topology.ns(a.namespace, "ping", "-c", "1", "-W", "1", "203.0.113.2",
                               check=False)
            if ping.returncode == 0 or time.monotonic() > deadline:
                break
        assert ping.returncode == 0, ping.stdout
        assert all(daemon.stop() == 0 for daemon in daemons)


def test_a_reload_removes_only_what_lispd_made(tmp_path: Path) -> None:
    """The route of a LAN mapping that the kernel already had (the LAN's
    connected route) is not lispd's: taking the mapping away leaves it."""
    require_netns()
    with lab() as topology:
        a, _ = underlay(topology)
        lan = topology.add("lan")
        topology.link(a.namespace, "lan7", lan, "eth0")
        topology.ns(a.namespace, "ip", "addr", "add", "192.0.2.65/26", "dev", "lan7")
        topology.ns(a.namespace, "ip", "addr", "add", "192.0.2.129/26", "dev", "lan7")
        base = underlay_section([a.rloc4]) + '[xtr]\neid-space = ["203.0.113.0/24"]\n'
        connected = ('\n[[xtr.database-mapping]]\neid-prefix = "192.0.2.64/26"\n'
                     'interface = "lan7"\n')
        daemon = topology.lispd(a.namespace, base + connected, tmp_path, "gw")

        def routes() -> str:
            return topology.ns(a.namespace, "ip", "-4", "route", "show", "dev", "lan7").stdout

        # A mapping whose route lispd does make, in the same reload.
        daemon.rewrite(base + '\n[[xtr.database-mapping]]\neid-prefix = "192.0.2.160/27"\n'
                       'interface = "lan7"\n')
        reload(daemon)
        assert "192.0.2.64/26" in routes()  # the kernel's, still there
        assert "192.0.2.160/27" in routes()  # lispd's
        daemon.rewrite(base + connected)
        reload(daemon)
        assert "192.0.2.64/26" in routes()
        assert "192.0.2.160/27" not in routes()
        assert daemon.stop() == 0
        assert "192.0.2.64/26" in routes()
