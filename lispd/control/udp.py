"""The LISP control port (UDP 4342) on the event loop: the machines' only I/O.

One unconnected UDP socket per local address the control plane answers on
(this node's RLOCs, a map-server's listen addresses). Sockets are bound to
their address, not the wildcard, so a reply leaves from the address its
request came to: ETRs check that a Map-Notify comes from the map-server
they registered with. IP_FREEBIND lets a socket be bound before its address
is up (a followed interface that is still being configured).

Each wake-up drains at most BATCH datagrams per socket, so a flood on the
control port cannot starve the data plane; what is left waits for the next
turn of the loop. Send errors (an unreachable peer, a vanished address)
are counted, never raised: the machines retry on their own timers.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address

from lispd.control.events import Datagram
from lispd.wire.control import LISP_CONTROL_PORT

__all__ = ["BATCH", "ControlSockets", "Receiver"]

IPAddress = IPv4Address | IPv6Address
BATCH = 64
MAX_DATAGRAM = 65535
IP_FREEBIND = 15

Receiver = Callable[[bytes, IPAddress, int, IPAddress], None]
"""Called with (payload, source address, source port, local address)."""


def _open(address: IPAddress, port: int) -> socket.socket:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        if address.version == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((str(address), port))
    except OSError:
        sock.close()
        raise
    return sock


class ControlSockets:
    """The control sockets of this node, rebound as its addresses change."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        receiver: Receiver,
        port: int = LISP_CONTROL_PORT,
    ) -> None:
        self._loop = loop
        self._receiver = receiver
        self._port = port
        self._sockets: dict[IPAddress, socket.socket] = {}
        self.counters: dict[str, int] = {}

    @property
    def addresses(self) -> frozenset[IPAddress]:
        return frozenset(self._sockets)

    def bind(self, addresses: Iterable[IPAddress]) -> None:
        """Answer on exactly these addresses from now on; the first of a family
        is where what has no source of its own leaves from."""
        wanted = list(dict.fromkeys(addresses))
        for address in [a for a in self._sockets if a not in wanted]:
            self._close(address)
        for address in [a for a in wanted if a not in self._sockets]:
            sock = _open(address, self._port)
            self._sockets[address] = sock
            self._loop.add_reader(sock.fileno(), self._drain, address, sock)
        self._sockets = {address: self._sockets[address] for address in wanted}

    def send(self, datagram: Datagram, source: IPAddress | None = None) -> bool:
        """Send from `source` if we have it, else from any address of the family."""
        sock = self._sockets.get(source) if source is not None else None
        if sock is None or sock.family != self._family(datagram.destination):
            sock = next(
                (s for a, s in self._sockets.items() if a.version == datagram.destination.version),
                None,
            )
        if sock is None:
            self._count("send_no_socket")
            return False
        try:
            sock.sendto(datagram.payload, (str(datagram.destination), datagram.port))
        except OSError as error:
            self._count(f"send_error_{errno.errorcode.get(error.errno or 0, 'unknown').lower()}")
            return False
        self._count("sent")
        return True

    def close(self) -> None:
        for address in list(self._sockets):
            self._close(address)

    @staticmethod
    def _family(address: IPAddress) -> int:
        return socket.AF_INET6 if address.version == 6 else socket.AF_INET

    def _close(self, address: IPAddress) -> None:
        sock = self._sockets.pop(address)
        self._loop.remove_reader(sock.fileno())
        sock.close()

    def _drain(self, local: IPAddress, sock: socket.socket) -> None:
        for _ in range(BATCH):
            try:
                payload, peer = sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError as error:
                # ICMP errors queued on the socket surface here; they name
                # nobody we could act on.
                self._count(f"receive_error_{errno.errorcode.get(error.errno or 0, 'x').lower()}")
                continue
            self._count("received")
            host = peer[0].split("%", 1)[0]
            self._receiver(payload, ip_address(host), peer[1], local)

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1
