"""The batch entry points of the fast path on real descriptors: missed
packets handed over with their bytes, a queued packet injected, the ETR's
recent-ITR table and re-encapsulation.

A TUN is stood in for by one end of a Unix datagram socketpair (read and
write keep packet boundaries, as on a TUN); the LISP socket is a UDP socket
on loopback. What goes out of the raw sockets is tested in a private network
namespace of a forked child (root only), never in the namespace of the test.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import socket
import struct
import subprocess
import traceback
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest

from lispd.dataplane import fastpath
from lispd.dataplane.fastpath import FastPath, Miss
from lispd.dataplane.sockets import raw_sender, udp_receiver
from lispd.dataplane.tables import Fdb, Fib, FibAction, FibEntry, FibKey, FibLocator
from lispd.dataplane.verdict import VerdictKind
from lispd.ffi import ffi, lib
from lispd.wire.inet import Ipv4Header, inet_checksum
from tests.needs import require_netns

IID = 7
LO4, LO4_B, LO4_C = IPv4Address("127.0.0.1"), IPv4Address("127.0.0.2"), IPv4Address("127.0.0.3")
LO6 = IPv6Address("::1")
WAIT = 2.0


def ipv4(src: str, dst: str, *, ttl: int = 64, size: int = 60, df: bool = True) -> bytes:
    header = Ipv4Header(IPv4Address(src), IPv4Address(dst), size, 17, ttl, 0, 1,
                        0b010 if df else 0, 0, 0)
    encoded = header.encode()
    encoded = encoded[:10] + struct.pack("!H", inet_checksum(encoded)) + encoded[12:]
    return encoded + bytes(i & 0xFF for i in range(size - 20))


def ipv6(src: str, dst: str, *, size: int = 80) -> bytes:
    first = 6 << 28
    header = struct.pack("!IHBB", first, size - 40, 17, 64)
    return header + IPv6Address(src).packed + IPv6Address(dst).packed + bytes(size - 40)


def lisp(packet: bytes, iid: int = IID) -> bytes:
    return struct.pack("!II", 0x88000001, iid << 8) + packet


class Node:
    """A fast path with one TUN (a socketpair) for instance IID."""

    def __init__(self, mtu: int = 1500, raw4: int = -1, raw6: int = -1) -> None:
        self.mapcache, self.database = Fib(16), Fib(16)
        self.fp = FastPath(self.mapcache, self.database, Fdb(4))
        self.fp.set_underlay(LO4, LO6, mtu, raw4, raw6)
        self.tun, self.host = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.tun.setblocking(False)
        self.host.settimeout(WAIT)
        assert self.fp.add_tun(self.tun.fileno(), IID) == 0

    def route(self, prefix: str, *rlocs: str, reencap: bool = False) -> None:
        locators = tuple(FibLocator(ip_address(r), 1) for r in rlocs)
        self.mapcache.set(FibKey(IID, ip_network(prefix)),
                          FibEntry(FibAction.ENCAP, locators, reencap=reencap))

    def local(self, prefix: str) -> None:
        self.database.set(FibKey(IID, ip_network(prefix)), FibEntry(FibAction.LOCAL, lsbs=1))

    def counters(self) -> dict[str, int]:
        return {k: v for k, v in self.fp.counters().items() if v}

    def close(self) -> None:
        self.tun.close()
        self.host.close()


@pytest.fixture
def node() -> Iterator[Node]:
    made = Node()
    yield made
    made.close()


# -- ITR: misses carry their packets ------------------------------------------


def test_every_missed_packet_comes_back_with_its_bytes(node: Node) -> None:
    packets = [
        ipv4("10.1.0.1", "10.9.0.1"),
        ipv4("10.1.0.1", "10.9.0.1", size=100),  # the same EID: no dedup
        ipv6("2001:db8::1", "2001:db8:9::1"),
        ipv4("10.1.0.1", "10.9.0.2") + b"trailing",  # past its length: left out
    ]
    for packet in packets:
        node.host.send(packet)
    moved, misses = node.fp.itr_batch(0)
    assert moved == 4
    assert misses == [
        Miss(IID, IPv4Address("10.9.0.1"), packets[0]),
        Miss(IID, IPv4Address("10.9.0.1"), packets[1]),
        Miss(IID, IPv6Address("2001:db8:9::1"), packets[2]),
        Miss(IID, IPv4Address("10.9.0.2"), packets[3][:60]),
    ]
    # Handed over, not dropped: Python queues them and counts its own drops.
    assert node.counters() == {"misses": 4, "batches": 1}
    # Copied out: the next batch reuses the C buffers, the Miss keeps its bytes.
    node.host.send(ipv4("10.1.0.1", "10.9.0.3", size=200))
    assert node.fp.itr_batch(0)[1][0].packet[19] == 3
    assert misses[0].packet == packets[0]


def test_misses_past_the_cap_are_dropped_in_c(node: Node) -> None:
    for i in range(5):
        node.host.send(ipv4("10.1.0.1", f"10.9.0.{i + 1}"))
    out = ffi.new("struct lispd_miss[]", 2)
    n = ffi.new("uint32_t *")
    assert lib.lispd_itr_batch(node.fp._dp, 0, out, 2, n) == 5
    assert n[0] == 2
    assert bytes(ffi.buffer(out[1].packet, out[1].length)) == ipv4("10.1.0.1", "10.9.0.2")
    assert node.counters() == {"misses": 2, "drop_miss": 3, "batches": 1}


def test_a_miss_is_a_frozen_value() -> None:
    miss = Miss(1, IPv4Address("10.9.0.1"), b"\x45")
    with pytest.raises(AttributeError):
        miss.packet = b""  # type: ignore[misc]
    assert not hasattr(miss, "__dict__")


# -- ITR: injecting a queued packet --------------------------------------------


def test_injected_packets_tell_what_became_of_them(node: Node) -> None:
    node.route("10.9.0.0/16", "198.18.0.2")
    # Still no mapping: the caller gave up waiting, so it is a drop now.
    assert node.fp.itr_send(0, ipv4("10.1.0.1", "10.5.0.1")) is VerdictKind.MISS
    # Not overlay traffic at all.
    assert node.fp.itr_send(0, ipv4("10.1.0.1", "224.0.0.5")) is VerdictKind.DROP
    # Encapsulated, but no raw socket to send it with.
    assert node.fp.itr_send(0, ipv4("10.1.0.1", "10.9.0.1")) is VerdictKind.DROP
    # No TUN 3; more than any TUN reads.
    assert node.fp.itr_send(3, ipv4("10.1.0.1", "10.9.0.1")) is VerdictKind.DROP
    assert node.fp.itr_send(0, bytes(70_000)) is VerdictKind.DROP
    assert node.counters() == {
        "drop_miss": 1, "drop_not_overlay": 1, "drop_send_error": 1,
        "drop_unknown_instance": 1, "drop_too_big": 1,
    }


def test_an_injected_packet_too_big_is_answered_on_its_tun() -> None:
    node = Node(mtu=576)
    try:
        node.route("10.9.0.0/16", "198.18.0.2")
        packet = ipv4("10.1.0.1", "10.9.0.1", size=1000)
        assert node.fp.itr_send(0, packet) is VerdictKind.WRITE
        answer = node.host.recv(2000)
        assert answer[9] == 1 and answer[20:22] == b"\x03\x04"  # ICMP frag needed
        assert struct.unpack_from("!H", answer, 26)[0] == 576 - 36
        assert node.counters() == {"icmp_too_big": 1, "icmp_too_big_bytes": len(answer)}
        node.tun.close()  # a TUN that is gone: the write fails
        assert node.fp.itr_send(0, packet) is VerdictKind.DROP
        assert node.counters()["drop_write_error"] == 1
    finally:
        node.host.close()


# -- ETR: recent ITRs, receiving behind headroom -------------------------------


def lisp_socket() -> tuple[socket.socket, tuple[str, int]]:
    sock = udp_receiver(LO4, 0)
    return sock, sock.getsockname()


def readable(sock: socket.socket) -> None:
    ready, _, _ = select.select([sock], [], [], WAIT)
    assert ready, "nothing arrived"


def test_the_etr_remembers_who_sent_what_it_took_in(node: Node) -> None:
    node.local("10.1.0.0/24")
    node.route("10.1.7.0/24", "198.18.0.2", reencap=True)
    receiver, address = lisp_socket()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 5)
    try:
        sender.sendto(lisp(ipv4("10.9.0.1", "10.1.0.1", ttl=30)), address)
        readable(receiver)
        assert node.fp.etr_batch(receiver.fileno(), 1000) == 1
        written = node.host.recv(2000)
        assert written[:8] == ipv4("10.9.0.1", "10.1.0.1")[:8] and written[8] == 5
        assert inet_checksum(written[:20]) == 0
        assert node.fp.recent_itrs(0) == [LO4]
        assert node.fp.recent_itrs(1000) == [LO4]
        assert node.fp.recent_itrs(1001) == []
        # A packet for a moved EID is re-encapsulated; with no raw socket to
        # send it, that is a send error (but its sender was still an ITR).
        sender.sendto(lisp(ipv4("10.9.0.1", "10.1.7.7")), address)
        sender.sendto(lisp(ipv4("10.9.0.1", "10.2.0.1")), address)  # not ours
        readable(receiver)
        assert node.fp.etr_batch(receiver.fileno(), 2000) in (1, 2)
        while node.fp.etr_batch(receiver.fileno(), 2000) > 0:
            pass
        assert node.fp.recent_itrs(1500) == [LO4]
        assert node.counters() == {
            "etr_packets": 1, "etr_bytes": 60, "drop_send_error": 1,
            "drop_not_local_eid": 1, "batches": node.fp.counters()["batches"],
        }
    finally:
        receiver.close()
        sender.close()


def test_vxlan_still_receives_behind_the_headroom(node: Node) -> None:
    tap, host = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    tap.setblocking(False)
    receiver, address = lisp_socket()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        segment = node.fp.add_segment(tap.fileno(), 42, LO4, learning=True)
        frame = bytes.fromhex("020000000001 020000000002 88cc") + b"hello"
        sender.sendto(struct.pack("!II", 0x08000000, 42 << 8) + frame, address)
        readable(receiver)
        assert node.fp.vxlan_rx_batch(receiver.fileno(), 5) == 1
        host.settimeout(WAIT)
        assert host.recv(2000) == frame
        assert segment == 0 and node.counters()["fdb_learned"] == 1
    finally:
        for sock in (tap, host, receiver, sender):
            sock.close()


# -- on the wire: raw sockets, in a namespace of our own -----------------------


CLONE_NEWNET = 0x40000000


def in_private_netns(body: Callable[[], None]) -> None:
    """Run body in a forked child in a new network namespace (loopback up);
    its failure, traceback and all, fails the test."""
    require_netns()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        outcome: tuple[str, str] = ("ok", "")
        try:
            os.close(read_end)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            body()
        except BaseException:
            outcome = ("error", traceback.format_exc())
        with os.fdopen(write_end, "wb") as pipe:
            pickle.dump(outcome, pipe)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    status, details = pickle.loads(data) if data else ("error", "the child died")
    if status != "ok":
        pytest.fail(f"in the private namespace:\n{details}")


def listener(address: IPv4Address | IPv6Address) -> socket.socket:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((str(address), 4341))
    sock.settimeout(WAIT)
    return sock


@pytest.mark.netns
def test_an_injected_packet_leaves_through_the_raw_socket() -> None:
    def body() -> None:
        raw4, raw6 = raw_sender(4), raw_sender(6)
        node = Node(raw4=raw4.fileno(), raw6=raw6.fileno())
        node.route("10.9.0.0/16", str(LO4_B))
        node.route("2001:db8:9::/48", str(LO6))
        at4, at6 = listener(LO4_B), listener(LO6)
        for packet, at, source in (
            (ipv4("10.1.0.1", "10.9.0.1"), at4, LO4),
            (ipv6("2001:db8::1", "2001:db8:9::1"), at6, LO6),
        ):
            assert node.fp.itr_send(0, packet) is VerdictKind.SEND
            payload, sender = at.recvfrom(4000)
            assert ip_address(sender[0]) == source
            assert payload[0] & 0x88 == 0x88 and payload[4:7] == IID.to_bytes(3)
            assert payload[8:] == packet
        overhead = (20 + 16) + (40 + 16)
        assert node.counters() == {"itr_packets": 2, "itr_bytes": 60 + 80 + overhead}

    in_private_netns(body)


@pytest.mark.netns
def test_a_packet_for_a_moved_eid_is_sent_on() -> None:
    def body() -> None:
        raw4 = raw_sender(4)
        node = Node(raw4=raw4.fileno())
        node.local("10.1.0.0/24")
        node.route("10.1.7.0/24", str(LO4_B), reencap=True)
        etr = udp_receiver(LO4, 4341)
        there = listener(LO4_B)
        itr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        itr.bind((str(LO4_C), 0))
        itr.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 20)
        moved = ipv4("10.9.0.1", "10.1.7.7", ttl=30)
        itr.sendto(lisp(moved), (str(LO4), 4341))
        readable(etr)
        assert node.fp.etr_batch(etr.fileno(), 77) == 1
        payload, sender = there.recvfrom(4000)
        assert ip_address(sender[0]) == LO4
        assert payload[0] & 0x88 == 0x88 and payload[4:7] == IID.to_bytes(3)
        inner = payload[8:]
        assert inner[8] == 19 and inet_checksum(inner[:20]) == 0
        assert inner[9:10] + inner[12:] == moved[9:10] + moved[12:]
        assert node.fp.recent_itrs(0) == [LO4_C]
        counters = node.counters()
        assert counters["etr_reencap_packets"] == 1
        assert counters["etr_reencap_bytes"] == 20 + 8 + 8 + len(moved)
        assert "etr_packets" not in counters

    in_private_netns(body)


def test_counter_names_include_the_reencap_ones() -> None:
    assert {"etr_reencap_packets", "etr_reencap_bytes"} <= set(fastpath.COUNTERS)
