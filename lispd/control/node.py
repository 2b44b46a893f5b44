"""One node's control plane: which machine a control message is for (sans-IO).

A node may be a Map-Server/Map-Resolver, an ETR (registrar), an ITR
(resolver and RLOC prober) and an SMR source all at once, behind the same
UDP port. `route` reads the type and the flags of the first octet (RFC 9301
sections 5.2 to 5.8) and names the machine; only a Map-Notify needs more,
since one can answer our Map-Register (the registrar's), tell us another
xTR took our EID over (the registrar's too) or publish a mapping we
subscribed to (the resolver's): the records decide, by whether they are
local prefixes.

Output is split by where it must leave from. Answers leave from the address
the question came to (`sourced`, with that address): an ETR's Map-Reply to
an RLOC probe must come from the probed RLOC (RFC 9301 section 7.1), and
ETRs check that a Map-Notify comes from the map-server they registered
with, which speaks from its listen address. What the xTR starts itself
(registrations, Map-Requests, SMRs) leaves from this node's first RLOC of
the family (`xtr`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv6Address

from lispd.control.events import Datagram, Output
from lispd.control.mapserver import MapServer
from lispd.control.probing import RlocProber
from lispd.control.registrar import Registrar
from lispd.control.resolver import Resolver
from lispd.control.smr import Solicitor
from lispd.mapcache import EidPrefix
from lispd.wire.address import InstanceIdAddress
from lispd.wire.control import decode
from lispd.wire.errors import DecodeError
from lispd.wire.messages import MapNotify, MessageType

__all__ = ["ControlNode", "Outgoing", "Route", "route"]

IPAddress = IPv4Address | IPv6Address


class Route(Enum):
    MAP_SERVER = "map-server"
    REGISTRAR = "registrar"
    RESOLVER = "resolver"
    PROBER = "prober"
    MAP_NOTIFY = "map-notify"
    NONE = "none"


_REQUEST_PROBE = 0x02  # Map-Request: Type A M P S, the P bit of octet 0
_REQUEST_SMR = 0x01
_REPLY_PROBE = 0x08  # Map-Reply: Type P E S
_ECM_TO_ETR = 0x02  # ECM: Type S D E M


def route(payload: bytes) -> Route:
    """The machine a control message is for, from its first octet."""
    if not payload:
        return Route.NONE
    first = payload[0]
    match first >> 4:
        case MessageType.MAP_REQUEST:
            if first & _REQUEST_SMR and not first & _REQUEST_PROBE:
                return Route.RESOLVER
            return Route.REGISTRAR
        case MessageType.MAP_REPLY:
            return Route.PROBER if first & _REPLY_PROBE else Route.RESOLVER
        case MessageType.MAP_REGISTER | MessageType.MAP_NOTIFY_ACK:
            return Route.MAP_SERVER
        case MessageType.MAP_NOTIFY:
            return Route.MAP_NOTIFY
        case MessageType.ENCAPSULATED_CONTROL:
            return Route.REGISTRAR if first & _ECM_TO_ETR else Route.MAP_SERVER
    return Route.NONE


@dataclass(frozen=True)
class Outgoing:
    """What to send: the xTR's output, and the datagrams that must leave from an address."""

    xtr: Output = field(default_factory=Output)
    sourced: tuple[tuple[Datagram, IPAddress | None], ...] = ()


class ControlNode:
    """The machines of one node and the routing between them."""

    def __init__(
        self,
        *,
        map_server: MapServer | None = None,
        registrar: Registrar | None = None,
        resolver: Resolver | None = None,
        prober: RlocProber | None = None,
        solicitor: Solicitor | None = None,
        local_prefixes: Callable[[], Iterable[EidPrefix]] = tuple,
        server_addresses: tuple[IPAddress, ...] = (),
    ) -> None:
        self.map_server = map_server
        self.registrar = registrar
        self.resolver = resolver
        self.prober = prober
        self.solicitor = solicitor
        self._local_prefixes = local_prefixes
        self._server_addresses = server_addresses
        self.counters: dict[str, int] = {}

    def receive(
        self, payload: bytes, source: IPAddress, port: int, local: IPAddress | None, now: float
    ) -> Outgoing:
        """A datagram from (source, port) that arrived at our address `local`."""
        where = route(payload)
        if where is Route.MAP_SERVER and self.map_server is None and payload[0] >> 4 == (
            MessageType.ENCAPSULATED_CONTROL
        ):
            # Map-servers from before RFC 9301 (OpenOverlayRouter 1.3.0) forward
            # the ECM to the ETR without the E bit: on a node that is no
            # map-server, an ECM can only be for its ETR.
            where = Route.REGISTRAR
        if where is Route.MAP_NOTIFY:
            where = self._notify_route(payload)
        if where is Route.MAP_SERVER and self.map_server is not None:
            answers = self.map_server.receive(payload, source, port, now)
            return Outgoing(sourced=tuple((d, local or self._server_source(d)) for d in answers))
        if where is Route.REGISTRAR and self.registrar is not None:
            answers = self.registrar.receive(payload, source, port, now)
            return Outgoing(sourced=tuple((d, local) for d in answers))
        if where is Route.RESOLVER and self.resolver is not None:
            return Outgoing(self.resolver.receive(payload, source, port, now))
        if where is Route.PROBER and self.prober is not None:
            return Outgoing(self.prober.receive(payload, source, port, now))
        self._count(f"unrouted_{where.value}")
        return Outgoing()

    def timer(self, now: float) -> Outgoing:
        xtr = Output()
        if self.registrar is not None:
            xtr += Output(tuple(self.registrar.timer(now)))
        if self.resolver is not None:
            xtr += self.resolver.timer(now)
        if self.prober is not None:
            xtr += self.prober.timer(now)
        if self.solicitor is not None:
            xtr += Output(tuple(self.solicitor.timer(now)))
        sourced: tuple[tuple[Datagram, IPAddress | None], ...] = ()
        if self.map_server is not None:
            sourced = tuple((d, self._server_source(d)) for d in self.map_server.timer(now))
        return Outgoing(xtr, sourced)

    def next_timer(self) -> float | None:
        machines = (self.registrar, self.resolver, self.prober, self.solicitor, self.map_server)
        times = [m.next_timer() for m in machines if m is not None]
        return min((t for t in times if t is not None), default=None)

    def _server_source(self, datagram: Datagram) -> IPAddress | None:
        """The map-server speaks from its first listen address of the family."""
        version = datagram.destination.version
        return next((a for a in self._server_addresses if a.version == version), None)

    def _notify_route(self, payload: bytes) -> Route:
        try:
            message = decode(payload)
        except DecodeError:
            # The registrar counts it as malformed like any other.
            return Route.REGISTRAR
        if not isinstance(message, MapNotify):
            return Route.REGISTRAR
        # Ours when a record is one of our prefixes: the answer to our
        # Map-Register, or another xTR taking that prefix over; or inside one
        # and without an xTR-ID: the map-server telling us that a host of ours
        # left. A publication (RFC 9437) names the subscriber's xTR-ID: one for
        # an EID prefix someone else serves, around or inside ours, is the
        # resolver's.
        local = list(self._local_prefixes())
        for record in message.records:
            address = record.eid_prefix
            instance_id = 0
            if isinstance(address, InstanceIdAddress):
                instance_id, address = address.instance_id, address.address
            if not isinstance(address, IPv4Address | IPv6Address):
                continue
            prefix = EidPrefix.of(instance_id, address, record.mask_len)
            if prefix in local or (message.xtr_id is None and any(
                    p.length < prefix.length and p.covers(instance_id, address) for p in local)):
                return Route.REGISTRAR
        return Route.RESOLVER if self.resolver is not None else Route.REGISTRAR

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1
