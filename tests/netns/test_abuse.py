"""Hostile input on the underlay while real traffic flows.

Two xTRs (the VM is its own xTR, IPv4 inside and out) move 20 MB from a to
b. Meanwhile a third namespace, the attacker, linked to b by a veth of MTU
9000, throws a few thousand crafted and random UDP datagrams at b's LISP
data port (4341, on both of b's RLOCs) and at the VXLAN port (4789) of a
segment configured on b. Each crafted datagram has exactly one defect, so
the drop counter it must land in is known; random ones only have to be
dropped somehow (none of them can be a valid packet for b, see `_random`).

Then: the transfer arrived intact, the daemon still answers, every kind of
crafted datagram shows up in its drop counter, nothing but drops came of the
attack, and the daemon exits 0 on SIGTERM leaving no device behind.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pytest

from lispd.lab import Lab, lab
from lispd.wire.data import LispDataHeader, VxlanHeader
from lispd.wire.inet import inet_checksum
from tests import traffic
from tests.needs import require_netns
from tests.netns import sites

pytestmark = pytest.mark.netns

VNI = 100
VXLAN = sites.Segment(f"vxl{VNI}", VNI, "198.18.0.2").toml()
ATTACKER = {4: ("198.19.0.1", "198.19.0.2"), 6: ("2001:db8:ff01::1", "2001:db8:ff01::2")}
LOCAL_EIDS = ("192.0.2.20", "2001:db8::20")  # site b's own EIDs
BIG = 8900  # datagram size under the attacker link's MTU of 9000
RANDOM_PER_PORT = 400
BURST, PAUSE = 16, 0.004  # the attacker's pace: 16 datagrams, then a pause (s)
MAX_ROUNDS = 8
SETTLE = 5.0  # at most this long for the daemon to drain its sockets (s)
# Drop reasons only a bad datagram from outside causes.
ETR_REASONS = ("drop_truncated", "drop_bad_flags", "drop_unknown_instance", "drop_bad_inner",
               "drop_not_local_eid", "drop_unknown_vni", "drop_bad_frame")


@dataclass(frozen=True)
class Datagram:
    to: tuple[str, int]
    payload: bytes
    reason: str | None  # the drop counter it must reach; None: random
    valid: bool = False  # a good VXLAN frame: delivered, not dropped


# -- crafting -------------------------------------------------------------------


def ipv4(destination: str, size: int = 60, *, source: str = "203.0.113.9", ihl: int = 5,
         total: int | None = None, good_checksum: bool = True, version: int = 4) -> bytes:
    """A UDP-in-IPv4 packet of `size` octets (fields overridable)."""
    header = bytearray(struct.pack(
        "!BBHHHBBH4s4s", (version << 4) | ihl, 0, size if total is None else total, 1, 0x4000,
        64, 17, 0, ip_address(source).packed, ip_address(destination).packed,
    ))
    struct.pack_into("!H", header, 10, inet_checksum(bytes(header)) ^ (0 if good_checksum
                                                                          else 0x5555))
    body = struct.pack("!HHHH", 40000, 9, size - 28, 0) + bytes(max(size - 28, 0))
    return bytes(header) + body[: size - 20]


def ipv6(destination: str, size: int = 80, *, source: str = "2001:db8:9::9",
         payload_length: int | None = None) -> bytes:
    plen = size - 40 if payload_length is None else payload_length
    header = struct.pack("!IHBB16s16s", 6 << 28, plen, 17, 64, ip_address(source).packed,
                         ip_address(destination).packed)
    return header + struct.pack("!HHHH", 40000, 9, size - 40, 0) + bytes(size - 48)


def lisp(inner: bytes, *, flags: int | None = None, instance_id: int | None = None,
         rng: random.Random) -> bytes:
    header = bytearray(LispDataHeader(nonce=rng.getrandbits(24), instance_id=instance_id).encode())
    if flags is not None:
        header[0] = flags
    return bytes(header) + inner


def vxlan(frame: bytes, *, vni: int = VNI, flags: int | None = None) -> bytes:
    header = bytearray(VxlanHeader(vni).encode())
    if flags is not None:
        header[0] = flags
    return bytes(header) + frame


def ethernet(size: int, rng: random.Random) -> bytes:
    source = bytes([0x02]) + rng.randbytes(5)  # locally administered unicast
    return b"\xff" * 6 + source + b"\x88\xb5" + bytes(size - 14)


def _crafted(rng: random.Random, b: sites.Xtr) -> list[Datagram]:
    """Datagrams with one defect each, several copies of every kind."""
    local4, local6 = LOCAL_EIDS
    good4, good6 = ipv4(local4), ipv6(local6)
    kinds: list[tuple[str, bytes, str]] = []  # (port kind, payload, reason)

    def add(port: str, reason: str, *payloads: bytes) -> None:
        kinds.extend((port, payload, reason) for payload in payloads)

    header = lisp(b"", rng=rng)
    add("lisp", "drop_truncated",
        *(header[:n] for n in range(8)),  # not even a LISP header
        header,  # a header and nothing inside
        header + good4[:10],  # half an IPv4 header
        header + ipv4(local4, total=1000),  # claims more than there is
        header + good6[:30],  # half an IPv6 header
        header + ipv6(local6, payload_length=1000))
    add("lisp", "drop_bad_flags",
        lisp(good4, flags=0x90, rng=rng),  # N and V
        lisp(good4, flags=0x81, rng=rng), lisp(good4, flags=0x82, rng=rng),  # K bits
        lisp(good4, flags=0x83, rng=rng), lisp(good6, flags=0x13, rng=rng),
        lisp(ipv4(local4, BIG - 8), flags=0x91, rng=rng))
    add("lisp", "drop_unknown_instance",
        *(lisp(good4, instance_id=iid, rng=rng) for iid in (1, 7, 0xFFFFFF)),
        lisp(good6, instance_id=4096, rng=rng),
        lisp(ipv4(local4, BIG - 8), instance_id=7, rng=rng))
    add("lisp", "drop_not_local_eid",  # the open-relay check
        *(lisp(ipv4(destination), rng=rng) for destination in
          ("192.0.2.99", "192.0.2.10", ATTACKER[4][1], "198.18.0.1", "203.0.113.1")),
        *(lisp(ipv6(destination), rng=rng) for destination in
          ("2001:db8::99", "2001:db8::10", ATTACKER[6][1])),
        lisp(ipv4("192.0.2.99", BIG - 8), rng=rng),
        lisp(ipv4("192.0.2.99"), flags=0x80 | 0x40 | 0x20, rng=rng))  # L and E are fine
    add("lisp", "drop_bad_inner",  # not IPv4/IPv6, or a broken IPv4 header
        *(lisp(bytes([version << 4]) + good4[1:], rng=rng) for version in (0, 1, 5, 7, 15)),
        lisp(ipv4(local4, ihl=4), rng=rng),
        lisp(ipv4(local4, good_checksum=False), rng=rng),
        lisp(ipv4(local4, total=12), rng=rng))
    frame = ethernet(60, rng)
    add("vxlan", "drop_truncated", *(vxlan(frame)[:n] for n in range(8)))
    add("vxlan", "drop_bad_flags", vxlan(frame, flags=0x00), vxlan(frame, flags=0x80),
        vxlan(frame, flags=0xF7))
    add("vxlan", "drop_unknown_vni", *(vxlan(frame, vni=vni) for vni in (0, 101, 0xFFFFFF)),
        vxlan(ethernet(BIG - 8, rng), vni=7))
    add("vxlan", "drop_bad_frame", *(vxlan(frame[:n]) for n in range(14)))

    ports = {"lisp": [(b.rloc4, 4341), (b.rloc6, 4341)], "vxlan": [(b.rloc4, 4789)]}
    datagrams = []
    for _ in range(20):  # copies of each kind, to each of its addresses
        for port, payload, reason in kinds:
            datagrams += [Datagram(to, payload, reason) for to in ports[port]]
    # Good frames, so the VXLAN port is known to be listening.
    datagrams += [Datagram((b.rloc4, 4789), vxlan(ethernet(60, rng)), None, valid=True)
                  for _ in range(50)]
    return datagrams


def _could_be_valid(payload: bytes, port: int) -> bool:
    """Whether random bytes might pass for a packet b would deliver."""
    if port == 4789:
        return len(payload) >= 8 and payload[0] & 0x08 != 0 and payload[4:7] == bytes([0, 0, VNI])
    local4, local6 = (ip_address(eid).packed for eid in LOCAL_EIDS)
    return payload[8 + 16 : 8 + 20] == local4 or payload[8 + 24 : 8 + 40] == local6


def _random(rng: random.Random, b: sites.Xtr) -> list[Datagram]:
    datagrams = []
    for to in ((b.rloc4, 4341), (b.rloc6, 4341), (b.rloc4, 4789)):
        for number in range(RANDOM_PER_PORT):
            size = BIG if number % 50 == 0 else rng.randrange(0, 1500)
            payload = rng.randbytes(size)
            while _could_be_valid(payload, to[1]):
                payload = rng.randbytes(size)
            datagrams.append(Datagram(to, payload, None))
    return datagrams


# -- the test -------------------------------------------------------------------


@pytest.fixture
def topology() -> Iterator[Lab]:
    require_netns()
    with lab() as made:
        yield made


def _attacker(topology: Lab, b: sites.Xtr) -> str:
    attacker = topology.add("x")
    topology.link(b.namespace, "atk0", attacker, "ul0")
    for namespace, dev, index in ((b.namespace, "atk0", 0), (attacker, "ul0", 1)):
        topology.ns(namespace, "ip", "link", "set", dev, "mtu", "9000")
        topology.ns(namespace, "ip", "addr", "add", f"{ATTACKER[4][index]}/24", "dev", dev)
        topology.ns(namespace, "ip", "addr", "add", f"{ATTACKER[6][index]}/64", "dev", dev,
                    "nodad")
    topology.ns(attacker, "ip", "route", "add", "198.18.0.0/24", "via", ATTACKER[4][0])
    topology.ns(attacker, "ip", "-6", "route", "add", "2001:db8:ff00::/64", "via",
                ATTACKER[6][0])
    # Neighbours resolved beforehand: datagrams queued for an unresolved
    # neighbour are dropped once the queue is full.
    for version in (4, 6):
        traffic.ping(topology, attacker, b.rloc(version), count=1)
    return attacker


def _udp_errors(topology: Lab, namespace: str) -> dict[str, int]:
    """The UDP receive-side error counters of a namespace (both families)."""
    errors: dict[str, int] = {}
    snmp = topology.ns(namespace, "cat", "/proc/net/snmp").stdout.splitlines()
    names, values = (line.split()[1:] for line in snmp if line.startswith("Udp:"))
    errors.update({f"Udp{name}": int(value) for name, value in zip(names, values, strict=True)
                   if "Errors" in name})
    for line in topology.ns(namespace, "cat", "/proc/net/snmp6").stdout.splitlines():
        name, value = line.split()
        if name.startswith("Udp6") and "Errors" in name:
            errors[name] = int(value)
    return errors


def test_garbage_on_the_underlay_while_a_transfer_runs(topology: Lab, tmp_path: Path) -> None:
    xtrs = sites.underlay(topology)
    attacker = _attacker(topology, xtrs[1])
    a, b = sites.two_sites(topology, tmp_path, "own", 4, extra={"b": VXLAN}, xtrs=xtrs)
    rng = random.Random(4341)
    datagrams = _crafted(rng, b.xtr) + _random(rng, b.xtr)
    rng.shuffle(datagrams)
    plan = tmp_path / "datagrams.jsonl"
    plan.write_text("".join(
        json.dumps({"to": list(d.to), "hex": d.payload.hex()}) + "\n" for d in datagrams
    ))
    before = b.daemon.stats()

    # The attack starts before the transfer and goes on (in rounds over the
    # datagrams) until the transfer is over: at least one whole round.
    blast = traffic.child(topology, attacker, "blast", str(plan), str(BURST), str(PAUSE),
                          str(len(datagrams)), str(MAX_ROUNDS * len(datagrams)),
                          stdin=subprocess.PIPE)
    assert traffic.read_line(blast) == "started"
    transfer = traffic.start_transfer(topology, a.endpoint.namespace, b.endpoint.namespace,
                                      b.endpoint.address4, seed=99)
    received = transfer.received()
    assert blast.stdin is not None
    blast.stdin.write(b"stop\n")
    blast.stdin.flush()
    sent = json.loads(traffic.finish(blast))["sent"]
    assert received == transfer.expected
    datagrams = [datagrams[number % len(datagrams)] for number in range(sent)]

    # The daemon still answers. The last datagrams may still be in its
    # sockets for a moment: wait (bounded) until the drops add up.
    bad = sum(1 for d in datagrams if not d.valid)
    deadline = time.monotonic() + SETTLE
    while True:
        grew = sites.growth(before, b.daemon.stats())
        if sum(grew[reason] for reason in ETR_REASONS) >= bad or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    errors = _udp_errors(topology, b.xtr.namespace)
    assert grew["vxlan_rx_packets"] == sum(1 for d in datagrams if d.valid)
    assert grew["etr_bytes"] >= traffic.TRANSFER_BYTES
    sites.stop_cleanly(topology, b, devices=("lisp0", f"vxl{VNI}"))
    sites.stop_cleanly(topology, a)

    # Every crafted kind in its own counter (randoms may add to any of them)...
    expected = Counter(d.reason for d in datagrams if d.reason is not None)
    short = {reason: {"counted": grew[reason], "sent": count}
             for reason, count in sorted(expected.items()) if grew[reason] < count}
    assert not short, f"drop counters short of the datagrams sent: {short} (UDP: {errors})"
    # ... and every bad datagram dropped, once.
    counted = {reason: grew[reason] for reason in ETR_REASONS}
    assert sum(counted.values()) == bad, (counted, bad, errors)
