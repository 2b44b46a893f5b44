"""The mapping system end to end: lispd as Map-Server/Map-Resolver, xTRs that
register and resolve through it, in the four-site scenario of lispd.clouds."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lispd.clouds import HOST4, HOST6, MS, SERVICE4, SERVICE6, Clouds, Options
from lispd.lab import Lab, lab
from tests.needs import require_netns
from tests.traffic import wait_for

pytestmark = pytest.mark.netns


def registered(clouds: Clouds) -> set[str]:
    rows: list[dict[str, Any]] = clouds.daemons["ms"].request("show", "registrations")
    return {row["prefix"] for row in rows}


EXPECTED = {"[0]192.0.2.0/26", "[0]2001:db8:0:a::/64", "[0]192.0.2.100/32",
            "[0]2001:db8::100/128"}


@pytest.fixture
def clouds(tmp_path: Path) -> Iterator[Clouds]:
    require_netns()
    with lab() as topology:
        scenario = Clouds(topology, tmp_path, Options(probe_interval=0.0))
        scenario.start()
        assert wait_for(lambda: registered(scenario) >= EXPECTED, 10), registered(scenario)
        yield scenario
        codes = scenario.stop()
        assert all(code == 0 for code in codes.values()), codes


def ping_once(topology: Lab, namespace: str, target: str) -> bool:
    """One echo request, no retry: True when its reply came back."""
    result = topology.ns(namespace, "ping", "-c", "1", "-W", "3", target, check=False)
    return result.returncode == 0


def test_first_packet_of_a_cold_resolution_is_not_lost(clouds: Clouds) -> None:
    topology = clouds.lab
    onprem = clouds.daemons["onprem"]
    assert onprem.request("show", "map-cache") == []
    assert ping_once(topology, clouds.host, SERVICE4), onprem.log()
    assert ping_once(topology, clouds.host, SERVICE6), onprem.log()
    stats = onprem.stats()
    assert stats["resolver_packets_queued"] >= 2
    assert stats["resolver_packets_released"] == stats["resolver_packets_queued"]
    assert stats.get("resolver_queue_overflow", 0) == 0
    cache = {row["eid-prefix"]: row for row in onprem.request("show", "map-cache")}
    assert cache["[0]192.0.2.100/32"]["rlocs"][0]["address"] == "198.18.3.10"
    # And the way back: the VM resolved the host's prefix the same way.
    vm_cache = {row["eid-prefix"] for row in clouds.daemons["vm"].request("show", "map-cache")}
    assert {"[0]192.0.2.0/26", "[0]2001:db8:0:a::/64"} <= vm_cache


def test_unregistered_eid_space_gets_one_negative_reply(clouds: Clouds) -> None:
    topology = clouds.lab
    onprem = clouds.daemons["onprem"]
    topology.ns(clouds.host, "ping", "-c", "20", "-i", "0.05", "-W", "1", "192.0.2.250",
                check=False)
    stats = onprem.stats()
    assert stats["resolver_map_requests_sent"] == 1, (
        {k: v for k, v in stats.items() if k.startswith("resolver")},
        onprem.request("show", "map-cache"), onprem.log()[-3000:])
    negative = [row for row in onprem.request("show", "map-cache") if not row["rlocs"]]
    assert negative, onprem.request("show", "map-cache")
    (entry,) = negative
    # The largest prefix covering .250 and no registered prefix: 192.0.2.128/25.
    assert entry["eid-prefix"] == "[0]192.0.2.128/25"
    assert entry["action"] == "natively_forward"
    assert stats["drop_native_forward"] >= 19


BAD_REGISTERS = r"""
import socket, sys
from ipaddress import ip_address
from lispd.wire import auth
from lispd.wire.control import encode
from lispd.wire.messages import MapRegister
from lispd.wire.records import LocatorRecord, MappingRecord

def register(prefix, key, key_id=auth.KeyId.HMAC_SHA256_128, ttl=1440):
    address, length = prefix.split("/")
    record = MappingRecord(ip_address(address), int(length),
                           (LocatorRecord(ip_address("198.18.2.2"), 1, 100, reachable=True),),
                           ttl=ttl, authoritative=True)
    return encode(auth.sign(MapRegister(7, (record,), want_map_notify=True), key, key_id))

good = register("192.0.2.64/26", b"tenant-s3cret")
tampered = bytearray(good); tampered[-1] ^= 1
wrong_key_id = bytearray(good); wrong_key_id[13] = 9
messages = {
    "bad_auth": register("192.0.2.64/26", b"wrong-key"),
    "unknown_key_id": bytes(wrong_key_id),
    "malformed": good[:30],
    "tampered": bytes(tampered),
    "outside_site": register("198.51.100.0/24", b"tenant-s3cret"),
}
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for name in sys.argv[2:]:
    sock.sendto(good if name == "good" else messages[name], (sys.argv[1], 4342))
"""


def send_registers(topology: Lab, namespace: str, *names: str) -> None:
    topology.ns(namespace, sys.executable, "-c", BAD_REGISTERS, MS, *names)


def test_bad_registrations_change_nothing(clouds: Clouds) -> None:
    topology = clouds.lab
    ms = clouds.daemons["ms"]
    before = ms.request("show", "registrations")
    send_registers(topology, clouds.onprem, "bad_auth", "unknown_key_id", "malformed",
                   "tampered", "outside_site")
    assert wait_for(lambda: ms.stats().get("map_server_outside_site", 0) == 1, 5)
    stats = ms.stats()
    assert stats["map_server_bad_auth"] == 2  # the wrong key and the tampered message
    assert stats["map_server_unknown_key_id"] == 1
    assert stats["map_server_malformed"] == 1
    after = ms.request("show", "registrations")
    assert [r["prefix"] for r in after] == [r["prefix"] for r in before]


def test_registrations_expire_when_not_refreshed(tmp_path: Path) -> None:
    require_netns()
    with lab() as topology:
        scenario = Clouds(topology, tmp_path, Options(register_interval=1))
        scenario.start()
        assert wait_for(lambda: registered(scenario) >= EXPECTED, 10)
        send_registers(topology, scenario.onprem, "good")
        assert wait_for(lambda: "[0]192.0.2.64/26" in registered(scenario), 5)
        # Three register intervals without a refresh: gone; the xTRs' own stay.
        assert wait_for(lambda: "[0]192.0.2.64/26" not in registered(scenario), 6)
        assert registered(scenario) >= EXPECTED
        assert scenario.daemons["ms"].stats()["map_server_expired"] >= 1
        scenario.stop()


def test_stop_deregisters_at_once(clouds: Clouds) -> None:
    assert clouds.daemons["vm"].stop() == 0
    assert wait_for(lambda: "[0]192.0.2.100/32" not in registered(clouds), 3)
    del clouds.daemons["vm"]


def test_hosts_talk_both_ways(clouds: Clouds) -> None:
    topology = clouds.lab
    for target in (SERVICE4, SERVICE6):
        result = topology.ns(clouds.host, "ping", "-c", "3", "-i", "0.2", "-W", "2", target,
                             check=False)
        assert result.returncode == 0, result.stdout
    for target in (HOST4, HOST6):
        result = topology.ns(clouds.vm, "ping", "-c", "3", "-i", "0.2", "-W", "2", target,
                             check=False)
        assert result.returncode == 0, result.stdout
