"""RLOC probing end to end: a multihomed ETR, an ITR that probes its locators,
and traffic that follows the one that answers.

                     ┌───────── core (router) ─────────┐
     198.18.1.0/24   │ 198.18.2.0/24     198.18.6.0/24 (c-p)  198.18.7.0/24 (c-s)
         ms ─────────┤── itr ─────────────── etr (ulp) ──────── etr (uls)
   (Map-Server +     │  192.0.2.200         192.0.2.100, priority 1 at 198.18.6.10
    Map-Resolver)    │  (on its TUN)                    priority 2 at 198.18.7.10

- `etr` is its own xTR for 192.0.2.100/32 with two underlay links to the
  core; its database-mapping names both RLOCs: 198.18.6.10 priority 1 (the
  primary), 198.18.7.10 priority 2 (the secondary). It registers with `ms`.
- `itr` is its own xTR for 192.0.2.200/32; it resolves the ETR's EID
  through `ms` and probes the locators every 0.5 s
  (rloc-probe-interval = 0.5: a probe times out after 0.5 s, three misses
  mark a locator down, about 2 s).
- The primary fails where it is cut in the core (`ip link set c-p down`):
  the ETR's own end of the link loses its carrier too.

The ETR's underlay routing is that of a multihomed host: a default route
over each link (the primary's preferred) that the kernel ignores while the
link is down, and what leaves from the secondary's address leaves over the
secondary's link (source routing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lispd.lab import Lab, Lispd, lab
from lispd.pcap import Capture
from tests.needs import require_netns, require_program
from tests.traffic import wait_for

pytestmark = pytest.mark.netns

KEY = "probe-s3cret"
MS = "198.18.1.2"
ITR_RLOC = "198.18.2.10"
PRIMARY, SECONDARY = "198.18.6.10", "198.18.7.10"
PRIMARY_CORE, SECONDARY_CORE = "c-p", "c-s"
SERVICE, CLIENT = "192.0.2.100", "192.0.2.200"
SERVICE_PREFIX = f"[0]{SERVICE}/32"
PROBE_INTERVAL = 0.5
# Three missed probes of 0.5 s each, the probe schedule and the daemon's
# once-a-second housekeeping: about 2 s; 6 s is a generous bound.
DOWN_WITHIN = 6.0
UP_WITHIN = 4.0
LISP_DATA_PORT = 4341
LISP_DATA = f"udp dst port {LISP_DATA_PORT}"


def _xtr_common(probe_interval: float) -> str:
    return (
        f'eid-space = ["192.0.2.0/24"]\nmap-resolvers = ["{MS}"]\nsubscribe = false\n'
        f"solicit-map-request = false\nrloc-probe-interval = {probe_interval}\n\n"
        f'[[xtr.map-server]]\naddress = "{MS}"\nkey = "{KEY}"\n\n'
    )


MS_CONFIG = (
    f'[underlay]\nrlocs = ["{MS}"]\n\n[map-server]\nlisten = ["{MS}"]\n\n'
    f'[[map-server.site]]\nname = "multihomed"\nkey = "{KEY}"\n'
    'eid-prefixes = ["192.0.2.0/24"]\naccept-more-specifics = true\n'
)

ETR_CONFIG = (
    f'[underlay]\nrlocs = ["{PRIMARY}", "{SECONDARY}"]\n\n[xtr]\n' + _xtr_common(0)
    + f'[[xtr.database-mapping]]\neid-prefix = "{SERVICE}/32"\nassign = true\n'
    f'rlocs = [{{ address = "{PRIMARY}", priority = 1 }}, '
    f'{{ address = "{SECONDARY}", priority = 2 }}]\n'
)

ITR_CONFIG = (
    f'[underlay]\nrlocs = ["{ITR_RLOC}"]\n\n[xtr]\n' + _xtr_common(PROBE_INTERVAL)
    + f'[[xtr.database-mapping]]\neid-prefix = "{CLIENT}/32"\nassign = true\n'
)


@dataclass
class Multihomed:
    lab: Lab
    workdir: Path
    daemons: dict[str, Lispd] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lab = self.lab
        self.core, self.ms = lab.add("core"), lab.add("ms")
        self.itr, self.etr = lab.add("itr"), lab.add("etr")
        for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0"):
            lab.ns(self.core, "sysctl", "-qw", key)
        self._link(self.ms, "ul0", "c-ms", 1, MS)
        self._link(self.itr, "ul0", "c-itr", 2, ITR_RLOC)
        # The ETR ignores a route over a link without carrier (the primary
        # cut at the core); the default route falls back to the secondary.
        lab.ns(self.etr, "sysctl", "-qw", "net.ipv4.conf.all.ignore_routes_with_linkdown=1")
        lab.ns(self.etr, "sysctl", "-qw", "net.ipv4.conf.default.ignore_routes_with_linkdown=1")
        self._link(self.etr, "ulp", PRIMARY_CORE, 6, PRIMARY, metric=10)
        self._link(self.etr, "uls", SECONDARY_CORE, 7, SECONDARY, metric=20)
        lab.ns(self.etr, "ip", "route", "add", "default", "via", "198.18.7.1", "dev", "uls",
               "table", "107")
        lab.ns(self.etr, "ip", "rule", "add", "from", SECONDARY, "table", "107",
               "priority", "1007")

    def _link(self, namespace: str, device: str, core_device: str, net: int, address: str,
              *, metric: int = 0) -> None:
        self.lab.link(namespace, device, self.core, core_device)
        self.lab.ns(self.core, "ip", "addr", "add", f"198.18.{net}.1/24", "dev", core_device)
        self.lab.ns(namespace, "sysctl", "-qw", f"net.ipv4.conf.{device}.rp_filter=0")
        self.lab.ns(namespace, "ip", "addr", "add", f"{address}/24", "dev", device)
        self.lab.ns(namespace, "ip", "route", "add", "default", "via", f"198.18.{net}.1",
                    "dev", device, "metric", str(metric))

    def start(self) -> None:
        for name, namespace, config in (("ms", self.ms, MS_CONFIG),
                                        ("etr", self.etr, ETR_CONFIG),
                                        ("itr", self.itr, ITR_CONFIG)):
            self.daemons[name] = self.lab.lispd(namespace, config, self.workdir, name)

    def stop(self) -> dict[str, int]:
        return {name: daemon.stop() for name, daemon in reversed(self.daemons.items())}

    # -- looking -----------------------------------------------------------------

    def registered(self) -> set[str]:
        rows: list[dict[str, Any]] = self.daemons["ms"].request("show", "registrations")
        return {row["prefix"] for row in rows}

    def locators(self) -> dict[str, bool]:
        """The ITR's map-cache entry for the service: {RLOC: up}."""
        for row in self.daemons["itr"].request("show", "map-cache"):
            if row["eid-prefix"] == SERVICE_PREFIX:
                return {rloc["address"]: rloc["up"] for rloc in row["rlocs"]}
        return {}

    def probes(self) -> dict[str, dict[str, Any]]:
        """The ITR prober's state of the service's locators, by RLOC."""
        rows: list[dict[str, Any]] = self.daemons["itr"].request("show", "probes")
        return {row["locator"]: row for row in rows if row["prefix"] == SERVICE_PREFIX}

    def prober_stats(self) -> dict[str, int]:
        return {k: v for k, v in self.daemons["itr"].stats().items() if k.startswith("prober_")}

    def diagnosis(self) -> str:
        """What to look at when an assertion fails."""
        itr, etr = self.daemons["itr"], self.daemons["etr"]
        etr_stats = {k: v for k, v in etr.stats().items()
                     if k.startswith(("registrar_", "control_"))}
        return (f"map-cache {self.locators()}\nprobes {self.probes()}\n"
                f"itr prober {self.prober_stats()}\netr {etr_stats}\n"
                f"itr log tail:\n{itr.log()[-2000:]}")

    # -- doing -------------------------------------------------------------------

    def ping(self, count: int = 5) -> str:
        """A bounded ping from the ITR's EID to the service; must be answered."""
        done = self.lab.ns(self.itr, "ping", "-c", str(count), "-i", "0.2", "-W", "2",
                           "-w", "10", "-I", CLIENT, SERVICE, check=False)
        assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{self.diagnosis()}"
        return done.stdout

    def capture(self, core_device: str) -> Capture:
        """LISP data packets the core forwards out of core_device, toward the ETR."""
        return Capture(self.lab, self.core, core_device, f"{LISP_DATA} and dst net 198.18.6.0/23")

    def cut(self, up: bool) -> None:
        self.lab.ns(self.core, "ip", "link", "set", PRIMARY_CORE, "up" if up else "down")


def lisp_to(packets: list[bytes], rloc: str) -> int:
    """How many of the captured IPv4 packets are LISP data to rloc from the ITR."""
    wanted, source = bytes(map(int, rloc.split("."))), bytes(map(int, ITR_RLOC.split(".")))
    return sum(1 for p in packets
               if len(p) >= 24 and p[0] >> 4 == 4 and p[9] == 17 and p[16:20] == wanted
               and p[12:16] == source and p[22:24] == LISP_DATA_PORT.to_bytes(2, "big"))


@pytest.fixture
def multihomed(tmp_path: Path) -> Iterator[Multihomed]:
    require_netns()
    require_program("ping", "iputils-ping")
    require_program("tcpdump", "tcpdump")
    with lab() as topology:
        scenario = Multihomed(topology, tmp_path)
        scenario.start()
        assert wait_for(lambda: SERVICE_PREFIX in scenario.registered(), 10), (
            scenario.registered(), scenario.daemons["etr"].log()[-3000:])
        yield scenario
        codes = scenario.stop()
        assert all(code == 0 for code in codes.values()), codes


def both_probed_up(scenario: Multihomed) -> bool:
    probes = scenario.probes()
    return all(probes.get(rloc, {}).get("last-reply") is not None
               for rloc in (PRIMARY, SECONDARY))


def test_etr_answers_probes_on_both_locators(multihomed: Multihomed) -> None:
    """Both links up: each locator answers its own probes, from its own address."""
    multihomed.ping(count=2)
    assert wait_for(lambda: both_probed_up(multihomed), 5), multihomed.diagnosis()
    assert multihomed.locators() == {PRIMARY: True, SECONDARY: True}, multihomed.diagnosis()
    stats = multihomed.prober_stats()
    assert stats.get("prober_wrong_source", 0) == 0, multihomed.diagnosis()
    assert stats.get("prober_locator_down", 0) == 0, multihomed.diagnosis()


def test_traffic_follows_the_reachable_locator(multihomed: Multihomed) -> None:
    scenario = multihomed
    # 1. Both locators up: the traffic goes to the primary (priority 1) only.
    scenario.ping(count=2)  # resolves the EID; the prober starts on its locators
    assert wait_for(lambda: both_probed_up(scenario), 5), scenario.diagnosis()
    primary, secondary = scenario.capture(PRIMARY_CORE), scenario.capture(SECONDARY_CORE)
    scenario.ping()
    to_primary, to_secondary = primary.packets(), secondary.packets()
    assert lisp_to(to_primary, PRIMARY) >= 5, scenario.diagnosis()
    assert lisp_to(to_secondary, SECONDARY) == 0, scenario.diagnosis()
    assert scenario.locators() == {PRIMARY: True, SECONDARY: True}, scenario.diagnosis()

    # 2. The primary's link is cut: the prober marks it down within a few
    # seconds and the traffic moves to the secondary.
    scenario.cut(up=False)
    cut_at = time.monotonic()
    assert wait_for(lambda: scenario.locators().get(PRIMARY) is False, DOWN_WITHIN), (
        scenario.diagnosis())
    took = time.monotonic() - cut_at
    assert scenario.locators()[SECONDARY] is True, scenario.diagnosis()
    assert scenario.probes()[PRIMARY]["misses"] >= 3, scenario.diagnosis()
    assert scenario.prober_stats()["prober_locator_down"] == 1, scenario.diagnosis()
    secondary = scenario.capture(SECONDARY_CORE)
    scenario.ping()
    assert lisp_to(secondary.packets(), SECONDARY) >= 5, scenario.diagnosis()

    # 3. The link comes back: the next answered probe marks the primary up and
    # the traffic returns to it.
    scenario.cut(up=True)
    assert wait_for(lambda: scenario.locators().get(PRIMARY) is True, UP_WITHIN), (
        scenario.diagnosis())
    assert scenario.prober_stats()["prober_locator_up"] == 1, scenario.diagnosis()
    primary, secondary = scenario.capture(PRIMARY_CORE), scenario.capture(SECONDARY_CORE)
    scenario.ping()
    to_primary, to_secondary = primary.packets(), secondary.packets()
    assert lisp_to(to_primary, PRIMARY) >= 5, scenario.diagnosis()
    assert lisp_to(to_secondary, SECONDARY) == 0, scenario.diagnosis()
    print(f"primary marked down {took:.1f} s after the cut")
