"""The gateway's packet socket on a real device: its BPF filter lets ARP and
Neighbor Solicitations/Advertisements through and nothing else, and frames
the host itself sent are told apart (lispd.gateways)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from lispd.lab import Lab, lab
from tests.needs import require_netns
from tests.traffic import ping

pytestmark = pytest.mark.netns

# In the namespace: open the socket on veth `gw0`, then report what it read
# (ethertype, ICMPv6 type or IP protocol, outgoing or not) within 3 s.
LISTEN = """
import json, select, socket, sys, time
from lispd.gateways import PACKET_OUTGOING, packet_socket
sock = packet_socket("gw0")
print("ready", flush=True)
seen, deadline = [], time.monotonic() + 3
while time.monotonic() < deadline and len(seen) < 200:
    if select.select([sock], [], [], 0.1)[0]:
        frame, address = sock.recvfrom(65535)
        kind = int.from_bytes(frame[12:14], "big")
        detail = frame[54] if kind == 0x86DD else frame[23] if kind == 0x0800 else frame[21]
        seen.append([kind, detail, address[2] == PACKET_OUTGOING])
print(json.dumps(seen))
"""


@pytest.fixture
def pair() -> Iterator[tuple[Lab, str, str]]:
    require_netns()
    with lab() as topology:
        here, there = topology.add("here"), topology.add("there")
        topology.link(here, "gw0", there, "peer0")
        for namespace, device, host in ((here, "gw0", 1), (there, "peer0", 2)):
            topology.ns(namespace, "ip", "addr", "add", f"198.18.200.{host}/24", "dev", device)
            topology.ns(namespace, "ip", "addr", "add", f"2001:db8:200::{host}/64", "dev",
                        device, "nodad")
        yield topology, here, there


def test_only_neighbor_discovery_is_read(pair: tuple[Lab, str, str]) -> None:
    topology, here, _ = pair
    listener = topology.popen(here, sys.executable, "-c", LISTEN, stdout=-1)
    assert listener.stdout is not None
    assert listener.stdout.readline().strip() == b"ready"
    ping(topology, here, "198.18.200.2", count=2)
    ping(topology, here, "2001:db8:200::2", count=2)
    out, _ = listener.communicate(timeout=10)
    seen = {tuple(row) for row in json.loads(out.decode().splitlines()[-1])}
    # The peer's ARP reply and Neighbor Advertisement, in; this host's request
    # and solicitation, out, and marked so.
    assert (0x0806, 2, False) in seen and (0x0806, 1, True) in seen
    assert (0x86DD, 136, False) in seen and (0x86DD, 135, True) in seen
    # No echo requests or replies of either family got through the filter.
    assert {kind for kind, _, _ in seen} <= {0x0806, 0x86DD}
    assert {detail for kind, detail, _ in seen if kind == 0x86DD} <= {135, 136}
