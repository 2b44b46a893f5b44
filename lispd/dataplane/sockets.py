"""The underlay sockets of the data plane.

Outer packets leave through raw IPPROTO_RAW sockets: the C fast path writes
the whole outer IP + UDP header itself, so the UDP source port can follow the
inner flow (RFC 9300 section 5.3, RFC 7348 section 5) and one sendmmsg carries
packets to many RLOCs. They arrive on ordinary UDP sockets (4341, 4789),
unconnected, because uvloop drops the reader of a connected UDP socket after
one ICMP port-unreachable.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address

IpAddress = IPv4Address | IPv6Address

# Linux values the socket module does not name.
IP_RECVTOS = 13
IP_RECVTTL = 12
IP_FREEBIND = 15
IPV6_FREEBIND = 78
UDP_NO_CHECK6_RX = 102
RECEIVE_BUFFER = 4 << 20


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
