"""The underlay sockets of the data plane.

Outer packets leave through raw IPPROTO_RAW sockets: the C fast path writes
the whole outer IP + UDP header itself, so the UDP source port can follow the
inner flow (RFC 9300 section 5.3, RFC 7348 section 5) and one sendmmsg carries
packets to many RLOCs. They arrive on ordinary UDP sockets (4341, 4789),
unconnected, because uvloop drops the reader of a connected UDP socket after
one ICMP port-unreachable.

With offloads, trains of encapsulated segments leave through a small pool
of UDP sockets instead (UDP_SEGMENT: the kernel cuts one sendmsg into
datagrams), each bound to a port from the dynamic range; a flow hashes to
one of them and its raw sends take the same source port. The receiving
sockets then ask for UDP_GRO: one recvmsg returns a train.
"""

from __future__ import annotations

import errno
import random
import socket
from ipaddress import IPv4Address, IPv6Address

IpAddress = IPv4Address | IPv6Address

# Linux values the socket module does not name.
IP_RECVTOS = 13
IP_RECVTTL = 12
IP_FREEBIND = 15
IPV6_FREEBIND = 78
UDP_NO_CHECK6_RX = 102
UDP_SEGMENT = 103
UDP_GRO = 104
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0
RECEIVE_BUFFER = 4 << 20
TRAIN_SENDERS = 8
DYNAMIC_PORTS = range(49152, 65536)  # RFC 6335


def raw_sender(version: int) -> socket.socket:
    """A socket that sends whole IP packets we built (IPv4: header included;
    IPv6: IPPROTO_RAW implies IPV6_HDRINCL since Linux 4.5)."""
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RECEIVE_BUFFER)
    return sock


def udp_receiver(address: IpAddress, port: int) -> socket.socket:
    """An unconnected UDP socket on address:port that reports the outer
    TTL/hop limit and TOS/traffic class of what it receives (the ETR carries
    them into the inner header)."""
    if address.version == 6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        # RFC 9300 and RFC 7348 allow a zero UDP checksum over IPv6 (RFC 6935).
        sock.setsockopt(socket.IPPROTO_UDP, UDP_NO_CHECK6_RX, 1)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        # The address may be an EID that lands on the TUN a moment later.
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setblocking(False)
    try:
        sock.bind((str(address), port))
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"bind {address} port {port}: {error.strerror}") from None
    return sock


def enable_gro(sock: socket.socket) -> bool:
    """UDP_GRO on a receiving socket (Linux 5.0); whether the kernel took it."""
    try:
        sock.setsockopt(socket.IPPROTO_UDP, UDP_GRO, 1)
    except OSError:
        return False
    return True


def train_senders(version: int, count: int = TRAIN_SENDERS) -> list[socket.socket]:
    """`count` unconnected UDP sockets of the family, each bound to its own
    port from the dynamic range, that accept UDP_SEGMENT (Linux 4.18). The
    outer source address, TOS and TTL go with each send (IP_PKTINFO,
    IP_TOS, IP_TTL). OSError when the kernel has no UDP_SEGMENT or no port
    could be bound; none are left open then."""
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    made: list[socket.socket] = []
    try:
        for _ in range(count):
            made.append(_train_sender(family))
    except OSError:
        for sock in made:
            sock.close()
        raise
    return made


def _train_sender(family: socket.AddressFamily) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        # The probe: ENOPROTOOPT on a kernel without UDP GSO. 0 sets no
        # default segment size; every send says its own.
        sock.setsockopt(socket.IPPROTO_UDP, UDP_SEGMENT, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RECEIVE_BUFFER)
        # Nothing is meant to arrive here: the smallest queue the kernel allows.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            wildcard = "::"
        else:
            # DF clear, as on the raw path: a smaller hop fragments the
            # outer packet and the ETR reassembles.
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
            wildcard = "0.0.0.0"
        for port in random.sample(DYNAMIC_PORTS, 64):
            try:
                sock.bind((wildcard, port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                continue
            return sock
        raise OSError(errno.EADDRINUSE, "no free port in 49152-65535 for a train sender")
    except OSError:
        sock.close()
        raise
