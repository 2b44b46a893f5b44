"""The offload path's batch calls on real descriptors, in a private network
namespace of a forked child: a TUN with virtio-net headers stood in for by a
Unix datagram socketpair, train senders and the LISP socket on its loopback.
What leaves is held to the Python twin (lispd.dataplane.gso): a super-packet
becomes one UDP_SEGMENT train of exactly the segments the twin cuts; one to
an unknown EID becomes those segments as misses; a train the kernel refuses
goes out again one by one through the raw socket; a UDP_GRO train, and
datagrams of one flow that came one by one, go up as the super-packet the
twin coalesces."""

from __future__ import annotations

import socket
import struct

import pytest
from scapy.layers.inet import IP, TCP

from lispd.dataplane import sockets
from lispd.dataplane.gso import GSO_NONE, GSO_TCPV4, NEEDS_CSUM, VirtioNetHdr, coalesce, segment
from lispd.dataplane.sockets import raw_sender, udp_receiver
from lispd.wire.inet import csum_add, csum_fold
from tests.unit.test_dataplane_batch import (
    IID,
    LO4,
    LO4_B,
    LO4_C,
    Node,
    in_private_netns,
    lisp,
    listener,
    readable,
)

pytestmark = pytest.mark.netns

SRC, DST = "192.0.2.10", "198.51.100.20"
MSS = 1400


def stream(count: int, *, seq: int = 1000, ident: int = 50) -> list[bytes]:
    """TCP segments as a sender puts them on the wire (scapy's checksums)."""
    return [bytes(IP(src=SRC, dst=DST, id=ident + i, ttl=64)
                  / TCP(sport=40000, dport=5201, seq=seq + i * MSS, flags="A")
                  / bytes((i + j) & 0xFF for j in range(MSS))) for i in range(count)]


def super_packet(segments: list[bytes]) -> tuple[VirtioNetHdr, bytes]:
    """What the kernel hands a TUN with TSO: the twin's coalesced form."""
    ((header, packet),) = coalesce(segments)
    assert header.gso_type == GSO_TCPV4
    return header, packet


def offload_node(**kwargs: int) -> tuple[Node, list[socket.socket]]:
    node = Node(**kwargs)
    node.fp.set_vnet(3, 0, True)
    senders = sockets.train_senders(4, 2)
    node.fp.set_train_senders(4, [(s.fileno(), s.getsockname()[1]) for s in senders])
    return node, senders


def receive_all(at: socket.socket, count: int) -> list[tuple[bytes, tuple[str, int]]]:
    return [at.recvfrom(65535) for _ in range(count)]


def test_a_super_packet_leaves_as_one_train_of_the_twins_segments() -> None:
    def body() -> None:
        node, senders = offload_node()
        node.route("198.51.100.0/24", str(LO4_B))
        at = listener(LO4_B)
        segments = stream(30)
        header, packet = super_packet(segments)
        node.host.send(header.encode() + packet)
        moved, misses = node.fp.itr_batch(0)
        assert (moved, misses) == (1, [])
        got = [datagram for datagram, _ in receive_all(at, len(segments))]
        for datagram, want in zip(got, segment(header, packet), strict=True):
            assert datagram[0] & 0x88 == 0x88 and datagram[4:7] == IID.to_bytes(3)
            assert datagram[8:] == want
        assert len({d[1:4] for d in got}) == len(got)  # a nonce each
        counters = node.counters()
        assert counters["super_reads"] == counters["gso_trains"] == 1
        assert counters["gso_segments"] == counters["itr_packets"] == len(segments)
        assert counters["itr_bytes"] == sum(20 + 8 + 8 + len(s) for s in segments)
        # The flow's packets after it leave by the same train sender: one
        # source port, one of the senders'.
        node.host.send(VirtioNetHdr().encode() + stream(1, seq=1000 + 30 * MSS, ident=80)[0])
        assert node.fp.itr_batch(0) == (1, [])
        _, (address, port) = at.recvfrom(65535)
        assert address == str(LO4) and port in {s.getsockname()[1] for s in senders}

    in_private_netns(body)


def test_a_packet_the_kernel_left_the_checksum_to_gets_it_made() -> None:
    def body() -> None:
        node, _ = offload_node()
        node.route("198.51.100.0/24", str(LO4_B))
        at = listener(LO4_B)
        (right,) = stream(1)
        partial = bytearray(right)
        # What the kernel hands over with NEEDS_CSUM: the pseudo-header sum in the field.
        pseudo = struct.pack("!4s4sxBH", bytes(right[12:16]), bytes(right[16:20]), 6,
                             len(right) - 20)
        partial[36:38] = (~csum_fold(csum_add(0, pseudo)) & 0xFFFF).to_bytes(2, "big")
        header = VirtioNetHdr(NEEDS_CSUM, GSO_NONE, 0, 0, 20, 16)
        node.host.send(header.encode() + bytes(partial))
        assert node.fp.itr_batch(0) == (1, [])
        assert at.recvfrom(65535)[0][8:] == right

    in_private_netns(body)


def test_a_super_packet_to_an_unknown_eid_comes_back_as_its_segments() -> None:
    def body() -> None:
        node, _ = offload_node()
        segments = stream(12)
        header, packet = super_packet(segments)
        node.host.send(header.encode() + packet)
        moved, misses = node.fp.itr_batch(0)
        assert moved == 1
        assert [m.packet for m in misses] == segments
        assert {str(m.address) for m in misses} == {DST}
        assert node.counters()["misses"] == len(segments)

    in_private_netns(body)


def test_a_refused_train_goes_out_again_one_by_one() -> None:
    def body() -> None:
        raw4 = raw_sender(4)
        node = Node(raw4=raw4.fileno())
        node.fp.set_vnet(3, 0, True)
        # An IPv6 socket cannot send to an IPv4 address: the kernel refuses.
        wrong = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        wrong.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        wrong.bind(("::", 50123))
        node.fp.set_train_senders(4, [(wrong.fileno(), 50123)])
        node.route("198.51.100.0/24", str(LO4_B))
        at = listener(LO4_B)
        segments = stream(8)
        header, packet = super_packet(segments)
        node.host.send(header.encode() + packet)
        assert node.fp.itr_batch(0) == (1, [])
        got = receive_all(at, len(segments))
        assert [d[8:] for d, _ in got] == segments
        assert {port for _, (_, port) in got} == {50123}  # the flow's port still
        counters = node.counters()
        # Refused twice: the super-packet's train, then the train of its
        # segments cut on the slow path; then the raw socket took them.
        assert counters["gso_fallbacks"] == 2 and "gso_trains" not in counters
        assert counters["itr_packets"] == len(segments)

    in_private_netns(body)


def lisp_train(segments: list[bytes], *, train: bool) -> int:
    """Send LISP-encapsulated segments from LO4_C to LO4:4341, as one
    UDP_SEGMENT train or one datagram each; returns how many datagrams."""
    itr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    itr.bind((str(LO4_C), 0))
    payloads = [lisp(s) for s in segments]
    if train:
        size = struct.pack("H", len(payloads[0]))
        itr.sendmsg([b"".join(payloads)], [(socket.IPPROTO_UDP, sockets.UDP_SEGMENT, size)],
                    0, (str(LO4), 4341))
    else:
        for payload in payloads:
            itr.sendto(payload, (str(LO4), 4341))
    itr.close()
    return len(payloads)


@pytest.mark.parametrize("train", [True, False], ids=["udp-gro-train", "one-by-one"])
def test_the_etr_writes_the_twins_super_packet(train: bool) -> None:
    def body() -> None:
        node, _ = offload_node()
        node.local("198.51.100.0/24")
        etr = udp_receiver(LO4, 4341)
        assert sockets.enable_gro(etr)
        segments = stream(20)
        damaged = bytearray(segments[15])
        damaged[-1] ^= 0xFF  # a run never hides it: it goes up alone
        segments[15] = bytes(damaged)
        lisp_train(segments, train=train)
        readable(etr)
        moved = 0
        while moved < (1 if train else len(segments)):
            got = node.fp.etr_batch(etr.fileno(), 5)
            assert got > 0
            moved += got
        written = []
        node.host.setblocking(False)
        while True:
            try:
                written.append(node.host.recv(70000))
            except BlockingIOError:
                break
        want = coalesce(segments)
        assert [(VirtioNetHdr.decode(w[:10]), w[10:]) for w in written] == want
        assert [h.gso_type for h, _ in want] == [GSO_TCPV4, GSO_NONE, GSO_TCPV4]
        counters = node.counters()
        assert counters["etr_packets"] == len(segments)
        assert counters["super_writes"] == 2 and counters["super_segments"] == 15 + 4
        if train:
            assert counters["gro_trains"] == 1 and counters["gro_segments"] == len(segments)

    in_private_netns(body)
