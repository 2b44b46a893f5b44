"""The ETR registrar: registration with the map-servers and answers for our EIDs.

A sans-IO protocol machine (DESIGN principle 2): it is fed datagrams and
``now`` and returns the datagrams to send; ``next_timer()`` says when it wants
``timer(now)`` to be called. It never reads a clock nor touches a socket.

- RFC 9301 section 5.6 (Map-Register) and section 8.2 (ETR/Map-Server
  interface): every local mapping is registered with every configured
  map-server, authenticated (section 5.6 Key ID and Authentication Data),
  with the M bit (want Map-Notify) set, records authoritative and carrying
  a TTL and our RLOCs. Registrations are refreshed every ``register_interval``
  (section 8.2: 60 s). A registration not acknowledged by a Map-Notify
  (section 5.7) with its nonce and a valid HMAC is sent again after 1 s,
  2 s, 4 s ... up to ``register_interval`` between tries.
- RFC 9301 section 6.1.5 / 5.5: a Map-Request for one of our EIDs (plain,
  or in an ECM forwarded by a map-server) gets an authoritative Map-Reply,
  RLOC probes (section 7.1) one with the P bit (lispd.control.etr).
- Section 8.2: on shutdown each mapping is deregistered with a Record TTL of
  zero so the mapping system forgets it at once.
- RFC 9437 section 5: with an ``xtr_id`` every Map-Register carries it and a
  Site-ID (I bit); the map-server then knows which key signs the
  notifications this xTR subscribes to.
- Mobility, the RLOCs changed: ``update`` registers a mapping whose
  locators changed at once with every map-server, a new nonce and the
  back-off reset, so the map-server moves the EID without waiting for the
  next refresh.
- Mobility, the EID moved to another xTR: a Map-Notify from a configured
  map-server, with a valid HMAC and a nonce that acknowledges none of our
  registrations, whose records cover a local mapping with locators that are
  not ours, says another xTR registered that EID (the map-server tells the
  displaced registrant, RFC 9301 section 5.7). The mapping is *yielded*: no
  more refreshes, retries or deregistration (a TTL 0 Map-Register would
  remove the new registrant's mapping), no more Map-Replies for it, still
  listed by ``status()``. The Map-Notify is acknowledged with a
  Map-Notify-Ack (same nonce and records, signed with that map-server's
  key), and a ``Displaced`` event is queued for the daemon
  (``take_events()``). A repeat of that Map-Notify (the map-server
  retransmits until the Ack arrives) is acknowledged again and changes
  nothing more. ``reclaim`` registers a yielded mapping again, and so does
  ``update`` when its locators changed.
- A record strictly inside one of our prefixes, at other locators (and no
  prefix of ours itself), says a host of ours left for another xTR: a
  ``Left`` event, the Map-Notify acknowledged; our prefix stays ours.

Anything received that is not for us is counted in ``counters`` by reason
and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from lispd.control.etr import (
    LocalMapping,
    answer,
    back_in,
    left_from,
    local_records,
    taken_over,
)
from lispd.control.events import Datagram, random_nonce
from lispd.wire import auth
from lispd.wire.auth import KeyId
from lispd.wire.control import LISP_CONTROL_PORT, decode, encode
from lispd.wire.errors import DecodeError, EncodeError
from lispd.wire.messages import (
    EncapsulatedControlMessage,
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapRequest,
)
from lispd.wire.records import MappingRecord

__all__ = [
    "DEFAULT_RECORD_TTL",
    "DEFAULT_REGISTER_INTERVAL",
    "FIRST_RETRY",
    "Displaced",
    "Event",
    "Left",
    "LocalMapping",
    "MapServerPeer",
    "Registrar",
    "RegistrationStatus",
    "Returned",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

DEFAULT_REGISTER_INTERVAL = 60.0
"""RFC 9301 section 8.2: Map-Register is sent every 60 seconds."""
DEFAULT_RECORD_TTL = 1440
"""RFC 9301 section 5.4: Record TTL in minutes; one day is the recommended value."""
FIRST_RETRY = 1.0
"""Seconds before an unacknowledged Map-Register is first sent again."""
SEEN_NOTIFIES = 256
"""How many displacement Map-Notify nonces are remembered, to spot repeats."""


@dataclass(frozen=True)
class MapServerPeer:
    """A map-server and the key shared with it (RFC 9301 section 5.6 Key ID);
    proxy_reply asks it to answer Map-Requests for us (the P bit)."""

    address: IPAddress
    key: bytes = field(repr=False)
    key_id: KeyId = KeyId.HMAC_SHA256_128
    proxy_reply: bool = False


@dataclass(frozen=True)
class RegistrationStatus:
    """Where one mapping stands with one map-server.

    ``attempts`` counts the Map-Registers sent with the current nonce;
    ``acknowledged_at`` is when the last acknowledging Map-Notify arrived;
    ``yielded`` says another xTR took the EID over: nothing is sent for it.
    """

    server: IPAddress
    instance_id: int
    eid_prefix: IPNetwork
    nonce: int
    acknowledged: bool
    attempts: int
    last_sent: float
    due: float
    backoff: float
    acknowledged_at: float | None = None
    yielded: bool = False


@dataclass(frozen=True)
class Displaced:
    """Another xTR registered one of our EID prefixes (mobility: the service moved).

    ``records`` are those of the map-server's Map-Notify that cover the
    prefix: the new mapping, to install in the map-cache.
    """

    instance_id: int
    eid_prefix: IPNetwork
    records: tuple[MappingRecord, ...]
    at: float


@dataclass(frozen=True)
class Left:
    """Another xTR registered a more specific prefix inside one of ours: a
    host of ours moved there (the map-server tells the registrants of the
    covering prefixes). ``records`` are the Map-Notify's for ``eid_prefix``."""

    instance_id: int
    eid_prefix: IPNetwork
    records: tuple[MappingRecord, ...]
    at: float


@dataclass(frozen=True)
class Returned:
    """A more specific prefix inside one of ours that another xTR had
    registered (``Left``) is registered no more: ours again."""

    instance_id: int
    eid_prefix: IPNetwork
    at: float


Event = Displaced | Left | Returned

_RegKey = tuple[IPAddress, int, IPNetwork]


class Registrar:
    """The ETR side of the mapping system for the local database-mappings."""

    def __init__(
        self,
        mappings: tuple[LocalMapping, ...],
        map_servers: tuple[MapServerPeer, ...],
        register_interval: float = DEFAULT_REGISTER_INTERVAL,
        nonce: Callable[[], int] = random_nonce,
        *,
        record_ttl: int = DEFAULT_RECORD_TTL,
        xtr_id: int | None = None,
        site_id: int | None = None,
    ) -> None:
        if register_interval < FIRST_RETRY:
            raise ValueError(f"register interval {register_interval} is below {FIRST_RETRY} s")
        if xtr_id is not None and not 0 <= xtr_id < 1 << 128:
            raise ValueError(f"xTR-ID {xtr_id} is not a 128-bit value")
        if site_id is not None and not 0 <= site_id < 1 << 64:
            raise ValueError(f"Site-ID {site_id} is not a 64-bit value")
        self._mappings: dict[tuple[int, IPNetwork], LocalMapping] = {m.key: m for m in mappings}
        self._servers = {s.address: s for s in map_servers}
        self.register_interval = register_interval
        self._nonce = nonce
        self._record_ttl = record_ttl
        # RFC 9437 section 5: xTR-ID and Site-ID go together (the I bit covers both).
        self._xtr_id = xtr_id
        self._site_id = None if xtr_id is None else (site_id or 0)
        self._registrations: dict[_RegKey, RegistrationStatus] = {}
        # Mappings another xTR took over, as they were when yielded.
        self._yielded: dict[tuple[int, IPNetwork], LocalMapping] = {}
        self._seen_notifies: dict[int, None] = {}  # insertion-ordered, bounded
        self._events: list[Event] = []
        self._running = False
        self.counters: dict[str, int] = {}

    # -- inputs -------------------------------------------------------------

    def start(self, now: float) -> list[Datagram]:
        """Register every mapping with every map-server (RFC 9301 section 8.2)."""
        self._running = True
        out: list[Datagram] = []
        for key, mapping in self._mappings.items():
            for server in self._servers.values():
                if key in self._yielded:
                    self._mark_yielded(server, mapping, now)
                else:
                    out.append(self._register(server, mapping, now))
        return out

    def timer(self, now: float) -> list[Datagram]:
        """Send the refreshes and retries that are due at ``now``."""
        if not self._running:
            return []
        out: list[Datagram] = []
        for key, reg in list(self._registrations.items()):
            if reg.due > now or reg.yielded:
                continue
            server = self._servers[key[0]]
            mapping = self._mappings[(key[1], key[2])]
            if reg.acknowledged:
                # Periodic refresh: a new registration, a new nonce.
                out.append(self._register(server, mapping, now))
            else:
                # Retry with the same nonce, so a late Map-Notify still counts.
                backoff = min(reg.backoff * 2, self.register_interval)
                self._registrations[key] = replace(
                    reg, attempts=reg.attempts + 1, last_sent=now, due=now + backoff,
                    backoff=backoff,
                )
                out.append(self._send_register(server, mapping, reg.nonce))
                self._count("register_retries")
        return out

    def next_timer(self) -> float | None:
        """When ``timer`` wants to be called next, or None when nothing is pending."""
        if not self._running:
            return None
        return min((r.due for r in self._registrations.values() if not r.yielded), default=None)

    def receive(
        self, payload: bytes, source: IPAddress, source_port: int, now: float
    ) -> list[Datagram]:
        """One datagram received on the LISP control port."""
        if not self._running:
            self._count("not_running")
            return []
        try:
            message = decode(payload)
        except DecodeError:
            self._count("malformed")
            return []
        match message:
            case MapNotifyAck():
                self._count("unexpected_type")
            case MapNotify():
                return self._receive_map_notify(message, payload, source, source_port, now)
            case MapRequest():
                return self._receive_map_request(message, source_port)
            case EncapsulatedControlMessage(message=MapRequest() as inner):
                # RFC 9301 section 5.8: a map-server forwards the ECM'd request.
                return self._receive_map_request(inner, message.inner_udp.source_port)
            case _:
                self._count("unexpected_type")
        return []

    def stop(self, now: float) -> list[Datagram]:
        """Deregister every mapping: Map-Registers with Record TTL 0 (RFC 9301 section 8.2).

        A yielded mapping is left alone: its prefix is another xTR's now.
        """
        out: list[Datagram] = []
        if self._running:
            for mapping in self._serving():
                out.extend(self._deregister(mapping))
        self._running = False
        self._registrations.clear()
        return out

    def update(self, mappings: tuple[LocalMapping, ...], now: float) -> list[Datagram]:
        """Replace the local mappings; changed and new ones are registered at once.

        Mappings that are gone are deregistered (TTL 0) unless yielded;
        unchanged ones keep their registration state and timers. A yielded
        mapping stays yielded unless its locators changed: then it is this
        xTR's again and registered at once.
        """
        new = {m.key: m for m in mappings}
        old = self._mappings
        self._mappings = new
        # A yielded mapping that is gone or got other locators is yielded no more.
        ended = {k for k, m in self._yielded.items() if new.get(k) != m}
        for key in ended:
            del self._yielded[key]
            self._count("yield_ended")
        if not self._running:
            return []
        out: list[Datagram] = []
        for key, mapping in old.items():
            if key not in new:
                for server in self._servers.values():
                    self._registrations.pop((server.address, *key), None)
                if key not in ended:  # a yielded prefix is another xTR's: leave it be
                    out.extend(self._deregister(mapping))
        for key, mapping in new.items():
            if key not in self._yielded and (old.get(key) != mapping or key in ended):
                for server in self._servers.values():
                    out.append(self._register(server, mapping, now))
        return out

    def set_peers(self, peers: tuple[MapServerPeer, ...], now: float) -> list[Datagram]:
        """The configured map-servers changed (reload).

        A map-server that is gone gets every mapping deregistered (TTL 0,
        with the key it knew); a new one, or one whose key or flags changed,
        gets every mapping registered at once. The others keep their
        registration state and timers.
        """
        new = {peer.address: peer for peer in peers}
        old, self._servers = self._servers, new
        out: list[Datagram] = []
        for address, peer in old.items():
            if new.get(address) == peer:
                continue
            for key in [k for k in self._registrations if k[0] == address]:
                del self._registrations[key]
            if address not in new and self._running:
                out.extend(self._deregister_at(peer, mapping) for mapping in self._serving())
        for address, peer in new.items():
            if old.get(address) == peer:
                continue
            for mapping in self._mappings.values():
                if mapping.key in self._yielded:
                    self._mark_yielded(peer, mapping, now)
                elif self._running:
                    out.append(self._register(peer, mapping, now))
        return out

    def reclaim(self, key: tuple[int, IPNetwork], now: float) -> list[Datagram]:
        """Register a yielded mapping again, with every map-server (nothing if not yielded)."""
        mapping = self._mappings.get(key)
        if mapping is None or self._yielded.pop(key, None) is None:
            return []
        self._count("reclaimed")
        if not self._running:
            return []
        return [self._register(server, mapping, now) for server in self._servers.values()]

    def take_events(self) -> list[Event]:
        """The displacements seen since the last call (oldest first)."""
        events, self._events = self._events, []
        return events

    # -- state --------------------------------------------------------------

    def status(self) -> tuple[RegistrationStatus, ...]:
        """Every (map-server, mapping) registration, in a stable order."""
        return tuple(
            self._registrations[key]
            for key in sorted(self._registrations, key=lambda k: (str(k[0]), k[1], str(k[2])))
        )

    def yielded(self) -> tuple[tuple[int, IPNetwork], ...]:
        """The keys of the mappings another xTR took over."""
        return tuple(self._yielded)

    def acknowledged(self, server: IPAddress) -> bool:
        """Whether the map-server has acknowledged every current (not yielded) registration."""
        regs = [r for r in self._registrations.values() if r.server == server and not r.yielded]
        return bool(regs) and all(r.acknowledged for r in regs)

    # -- registration -------------------------------------------------------

    def _register(self, server: MapServerPeer, mapping: LocalMapping, now: float) -> Datagram:
        """A new registration: new nonce, back-off from the start (section 8.2)."""
        nonce = self._nonce()
        self._registrations[(server.address, *mapping.key)] = RegistrationStatus(
            server.address,
            mapping.instance_id,
            mapping.eid_prefix,
            nonce,
            acknowledged=False,
            attempts=1,
            last_sent=now,
            due=now + FIRST_RETRY,
            backoff=FIRST_RETRY,
        )
        return self._send_register(server, mapping, nonce)

    def _mark_yielded(self, server: MapServerPeer, mapping: LocalMapping, now: float) -> None:
        key = (server.address, *mapping.key)
        reg = self._registrations.get(key)
        if reg is None:
            reg = RegistrationStatus(
                server.address, mapping.instance_id, mapping.eid_prefix, 0,
                acknowledged=False, attempts=0, last_sent=now, due=now, backoff=FIRST_RETRY,
            )
        self._registrations[key] = replace(reg, yielded=True)

    def _send_register(
        self,
        server: MapServerPeer,
        mapping: LocalMapping,
        nonce: int,
        *,
        ttl: int | None = None,
        want_map_notify: bool = True,
    ) -> Datagram:
        register = MapRegister(
            nonce,
            local_records(mapping, self._record_ttl if ttl is None else ttl),
            want_map_notify=want_map_notify,
            proxy_reply=server.proxy_reply,
            xtr_id=self._xtr_id,
            site_id=self._site_id,
        )
        signed = auth.sign(register, server.key, server.key_id)
        self._count("registers_sent")
        return Datagram(server.address, LISP_CONTROL_PORT, encode(signed))

    def _deregister(self, mapping: LocalMapping) -> Iterable[Datagram]:
        for server in self._servers.values():
            yield self._deregister_at(server, mapping)

    def _deregister_at(self, server: MapServerPeer, mapping: LocalMapping) -> Datagram:
        self._count("deregisters_sent")
        return self._send_register(server, mapping, self._nonce(), ttl=0, want_map_notify=False)

    def _serving(self) -> list[LocalMapping]:
        """The mappings that are ours to register (not yielded to another xTR)."""
        return [m for key, m in self._mappings.items() if key not in self._yielded]

    # -- Map-Notify -----------------------------------------------------------

    def _receive_map_notify(
        self, notify: MapNotify, payload: bytes, source: IPAddress, port: int, now: float
    ) -> list[Datagram]:
        """RFC 9301 section 5.7: the Map-Notify of a registration, or of a displacement."""
        server = self._servers.get(source)
        if server is None:
            self._count("unknown_source")
            return []
        good = auth.authentic(payload, server.key)
        if not good:
            self._count("bad_auth")
            return []
        for key, reg in self._registrations.items():
            if key[0] == source and reg.nonce == notify.nonce and not reg.yielded:
                if not reg.acknowledged:
                    self._registrations[key] = replace(
                        reg,
                        acknowledged=True,
                        acknowledged_at=now,
                        backoff=FIRST_RETRY,
                        due=reg.last_sent + self.register_interval,
                    )
                self._count("acknowledged")
                return []
        return self._displacement(notify, server, port, now)

    def _displacement(
        self, notify: MapNotify, server: MapServerPeer, port: int, now: float
    ) -> list[Datagram]:
        """An unsolicited Map-Notify: does it give one of our EIDs to another xTR?"""
        if notify.nonce in self._seen_notifies:
            # The map-server sends it again until our Ack arrives: Ack again, act once.
            self._count("displaced_repeat")
            return self._ack(notify, server, port)
        taken = [
            (mapping, tuple(r for r in notify.records if taken_over(r, mapping)))
            for mapping in self._mappings.values()
        ]
        taken = [(mapping, records) for mapping, records in taken if records]
        left = {
            (mapping.instance_id, network): record
            for mapping in self._mappings.values() if mapping.key not in self._yielded
            for record in notify.records if (network := left_from(record, mapping)) is not None
            and (mapping.instance_id, network) not in self._mappings
        }
        back = {
            (mapping.instance_id, network)
            for mapping in self._mappings.values() if mapping.key not in self._yielded
            for record in notify.records if (network := back_in(record, mapping)) is not None
        }
        if not taken and not left and not back:
            self._count("unknown_nonce")
            return []
        self._seen_notifies[notify.nonce] = None
        if len(self._seen_notifies) > SEEN_NOTIFIES:
            del self._seen_notifies[next(iter(self._seen_notifies))]
        for mapping, records in taken:
            if mapping.key in self._yielded:
                continue
            self._yielded[mapping.key] = mapping
            for peer in self._servers.values():
                self._mark_yielded(peer, mapping, now)
            self._events.append(Displaced(mapping.instance_id, mapping.eid_prefix, records, now))
            self._count("displaced")
        for (instance_id, network), record in left.items():
            self._events.append(Left(instance_id, network, (record,), now))
            self._count("left")
        for instance_id, network in back:
            self._events.append(Returned(instance_id, network, now))
            self._count("returned")
        return self._ack(notify, server, port)

    def _ack(self, notify: MapNotify, server: MapServerPeer, port: int) -> list[Datagram]:
        """Section 5.7: the Map-Notify-Ack, same nonce and records, signed with our key."""
        ack = MapNotifyAck(
            notify.nonce, notify.records, xtr_id=notify.xtr_id, site_id=notify.site_id
        )
        try:
            payload = encode(auth.sign(ack, server.key, server.key_id))
        except EncodeError:
            self._count("encode_error")
            return []
        self._count("notify_acks_sent")
        return [Datagram(server.address, port, payload)]

    def _receive_map_request(self, request: MapRequest, reply_port: int) -> list[Datagram]:
        """RFC 9301 sections 5.5 and 6.1.5 (and 7.1 for RLOC probes); lispd.control.etr."""
        # A yielded mapping is no longer ours to answer for.
        ours = (m for key, m in self._mappings.items() if key not in self._yielded)
        return answer(request, reply_port, ours, self._record_ttl, self._count)

    def _count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1
