"""The Prometheus endpoint of a running daemon (metrics-listen), scraped from
inside its namespace: the stable families are there from the start, and the
numbers are those `show stats` gives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lispd.lab import lab
from tests.needs import require_netns
from tests.netns.sites import Mapping, underlay, xtr_config

pytestmark = pytest.mark.netns

FETCH = ("import sys, urllib.request; "
         "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")


def test_a_running_daemon_serves_its_counters(tmp_path: Path) -> None:
    require_netns()
    with lab() as topology:
        a, b = underlay(topology)
        config = xtr_config([a.rloc4], database=[Mapping("192.0.2.10/32", a.rloc4, assign=True)],
                            static=[Mapping("192.0.2.20/32", b.rloc4)])
        daemon = topology.lispd(a.namespace, config, tmp_path, "a",
                                daemon=f'metrics-listen = "{a.rloc4}:9100"')
        # Traffic to count: pings into the overlay (no one answers; they leave encapsulated).
        topology.ns(a.namespace, "ping", "-c", "3", "-i", "0.2", "-W", "1", "192.0.2.20",
                    check=False)
        text = topology.ns(a.namespace, sys.executable, "-c", FETCH,
                           f"http://{a.rloc4}:9100/metrics").stdout
        stats = daemon.request("show", "stats")
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert {"lispd_packets", "lispd_dropped_packets", "lispd_map_server_map_registers",
                "lispd_map_cache_entries", "lispd_build_info"} <= families.keys()
        itr_tx = [s.value for s in families["lispd_packets"].samples
                  if s.labels == {"path": "itr", "direction": "tx"} and s.name.endswith("_total")]
        assert itr_tx == [stats["itr_packets"]]
        assert stats["itr_packets"] >= 3
        entries = families["lispd_map_cache_entries"].samples[0].value
        assert entries == len(daemon.request("show", "map-cache"))
        assert daemon.stop() == 0
