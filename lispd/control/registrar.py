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
  or carried in an Encapsulated Control Message, section 5.8, forwarded by
  a map-server) gets an authoritative Map-Reply (section 5.4) with the nonce
  echoed, sent to the first usable ITR-RLOC at the request's source port.
  RLOC-probe requests (section 7.1, P bit) get a Map-Reply with the P bit.
- Section 8.2: on shutdown each mapping is deregistered with a Record TTL of
  zero so the mapping system forgets it at once.

Anything received that is not for us is counted in ``counters`` by reason
and otherwise ignored.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from lispd.config.model import DatabaseMapping, RlocConfig
from lispd.control.events import Datagram
from lispd.wire import auth
from lispd.wire.address import Address, InstanceIdAddress
from lispd.wire.auth import KeyId
from lispd.wire.control import LISP_CONTROL_PORT, decode, encode
from lispd.wire.errors import DecodeError, EncodeError
from lispd.wire.messages import (
    EncapsulatedControlMessage,
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
)
from lispd.wire.records import EidRecord, LocatorRecord, MappingRecord

__all__ = [
    "DEFAULT_RECORD_TTL",
    "DEFAULT_REGISTER_INTERVAL",
    "FIRST_RETRY",
    "LocalMapping",
    "MapServerPeer",
    "Registrar",
    "RegistrationStatus",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

DEFAULT_REGISTER_INTERVAL = 60.0
"""RFC 9301 section 8.2: Map-Register is sent every 60 seconds."""
DEFAULT_RECORD_TTL = 1440
"""RFC 9301 section 5.4: Record TTL in minutes; one day is the recommended value."""
FIRST_RETRY = 1.0
"""Seconds before an unacknowledged Map-Register is first sent again."""


@dataclass(frozen=True)
class LocalMapping:
    """An EID prefix this node is the ETR for, and its RLOCs (RFC 9301 section 5.4)."""

    instance_id: int
    eid_prefix: IPNetwork
    locators: tuple[RlocConfig, ...]

    @classmethod
    def from_config(cls, mapping: DatabaseMapping) -> LocalMapping:
        return cls(mapping.instance_id, mapping.eid_prefix, mapping.rlocs)

    @property
    def key(self) -> tuple[int, IPNetwork]:
        return (self.instance_id, self.eid_prefix)


@dataclass(frozen=True)
class MapServerPeer:
    """A map-server and the key shared with it (RFC 9301 section 5.6 Key ID)."""

    address: IPAddress
    key: bytes
    key_id: KeyId = KeyId.HMAC_SHA256_128


@dataclass(frozen=True)
class RegistrationStatus:
    """Where one mapping stands with one map-server.

    ``attempts`` counts the Map-Registers sent with the current nonce;
    ``acknowledged_at`` is when the last acknowledging Map-Notify arrived.
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


_RegKey = tuple[IPAddress, int, IPNetwork]


def _eid_address(instance_id: int, prefix: IPNetwork) -> Address:
    """RFC 8060 section 4.1: a non-zero instance-id wraps the EID in an Instance ID LCAF."""
    if instance_id:
        return InstanceIdAddress(instance_id, prefix.network_address)
    return prefix.network_address


def _unwrap_eid(address: Address) -> tuple[int, IPAddress] | None:
    match address:
        case InstanceIdAddress(instance_id=iid, address=IPv4Address() | IPv6Address() as inner):
            return iid, inner
        case IPv4Address() | IPv6Address():
            return 0, address
        case _:
            return None


class Registrar:
    """The ETR side of the mapping system for the local database-mappings."""

    def __init__(
        self,
        mappings: tuple[LocalMapping, ...],
        map_servers: tuple[MapServerPeer, ...],
        register_interval: float = DEFAULT_REGISTER_INTERVAL,
        nonce: Callable[[], int] = lambda: secrets.randbits(64),
        *,
        record_ttl: int = DEFAULT_RECORD_TTL,
    ) -> None:
        if register_interval < FIRST_RETRY:
            raise ValueError(f"register interval {register_interval} is below {FIRST_RETRY} s")
        self._mappings: dict[tuple[int, IPNetwork], LocalMapping] = {m.key: m for m in mappings}
        self._servers = {s.address: s for s in map_servers}
        self.register_interval = register_interval
        self._nonce = nonce
        self._record_ttl = record_ttl
        self._registrations: dict[_RegKey, RegistrationStatus] = {}
        self._running = False
        self.counters: dict[str, int] = {}

    # -- inputs -------------------------------------------------------------

    def start(self, now: float) -> list[Datagram]:
        """Register every mapping with every map-server (RFC 9301 section 8.2)."""
        self._running = True
        out: list[Datagram] = []
        for mapping in self._mappings.values():
            for server in self._servers.values():
                out.append(self._register(server, mapping, now))
        return out

    def timer(self, now: float) -> list[Datagram]:
        """Send the refreshes and retries that are due at ``now``."""
        if not self._running:
            return []
        out: list[Datagram] = []
        for key, reg in list(self._registrations.items()):
            if reg.due > now:
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
        if not self._running or not self._registrations:
            return None
        return min(reg.due for reg in self._registrations.values())

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
                self._receive_map_notify(message, payload, source, now)
            case MapRequest():
                return self._receive_map_request(message, source_port)
            case EncapsulatedControlMessage(message=MapRequest() as inner):
                # RFC 9301 section 5.8: a map-server forwards the ECM'd request.
                return self._receive_map_request(inner, message.inner_udp.source_port)
            case _:
                self._count("unexpected_type")
        return []

    def stop(self, now: float) -> list[Datagram]:
        """Deregister every mapping: Map-Registers with Record TTL 0 (RFC 9301 section 8.2)."""
        out: list[Datagram] = []
        if self._running:
            for mapping in self._mappings.values():
                out.extend(self._deregister(mapping))
        self._running = False
        self._registrations.clear()
        return out

    def update(self, mappings: tuple[LocalMapping, ...], now: float) -> list[Datagram]:
        """Replace the local mappings; changed and new ones are registered at once.

        Mappings that are gone are deregistered (TTL 0); unchanged ones keep
        their registration state and timers.
        """
        new = {m.key: m for m in mappings}
        old = self._mappings
        self._mappings = new
        if not self._running:
            return []
        out: list[Datagram] = []
        for key, mapping in old.items():
            if key not in new:
                for server in self._servers.values():
                    self._registrations.pop((server.address, *key), None)
                out.extend(self._deregister(mapping))
        for key, mapping in new.items():
            if old.get(key) != mapping:
                for server in self._servers.values():
                    out.append(self._register(server, mapping, now))
        return out

    # -- state --------------------------------------------------------------

    def status(self) -> tuple[RegistrationStatus, ...]:
        """Every (map-server, mapping) registration, in a stable order."""
        return tuple(
            self._registrations[key]
            for key in sorted(self._registrations, key=lambda k: (str(k[0]), k[1], str(k[2])))
        )

    def acknowledged(self, server: IPAddress) -> bool:
        """Whether the map-server has acknowledged every current registration."""
        regs = [r for r in self._registrations.values() if r.server == server]
        return bool(regs) and all(r.acknowledged for r in regs)

    # -- registration -------------------------------------------------------

    def _records(
        self, mapping: LocalMapping, ttl: int, *, probed: bool = False
    ) -> tuple[MappingRecord, ...]:
        locators = tuple(
            LocatorRecord(
                rloc.address,
                rloc.priority,
                rloc.weight,
                local=True,
                probed=probed,
                reachable=True,
            )
            for rloc in mapping.locators
        )
        record = MappingRecord(
            _eid_address(mapping.instance_id, mapping.eid_prefix),
            mapping.eid_prefix.prefixlen,
            locators,
            ttl=ttl,
            authoritative=True,
        )
        return (record,)

    def _register(self, server: MapServerPeer, mapping: LocalMapping, now: float) -> Datagram:
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
            self._records(mapping, self._record_ttl if ttl is None else ttl),
            want_map_notify=want_map_notify,
        )
        signed = auth.sign(register, server.key, server.key_id)
        self._count("registers_sent")
        return Datagram(server.address, LISP_CONTROL_PORT, encode(signed))

    def _deregister(self, mapping: LocalMapping) -> Iterable[Datagram]:
        for server in self._servers.values():
            self._count("deregisters_sent")
            yield self._send_register(
                server, mapping, self._nonce(), ttl=0, want_map_notify=False
            )

    def _receive_map_notify(
        self, notify: MapNotify, payload: bytes, source: IPAddress, now: float
    ) -> None:
        """RFC 9301 section 5.7: a Map-Notify acknowledges the Map-Register with its nonce."""
        server = self._servers.get(source)
        if server is None:
            self._count("unknown_source")
            return
        try:
            good = auth.verify(payload, server.key)
        except DecodeError:
            good = False
        if not good:
            self._count("bad_auth")
            return
        for key, reg in self._registrations.items():
            if key[0] == source and reg.nonce == notify.nonce:
                if not reg.acknowledged:
                    self._registrations[key] = replace(
                        reg,
                        acknowledged=True,
                        acknowledged_at=now,
                        backoff=FIRST_RETRY,
                        due=reg.last_sent + self.register_interval,
                    )
                self._count("acknowledged")
                return
        self._count("unknown_nonce")

    # -- Map-Requests -------------------------------------------------------

    def _lookup(self, record: EidRecord) -> LocalMapping | None:
        """The most specific local mapping that covers the requested EID prefix."""
        eid = _unwrap_eid(record.eid_prefix)
        if eid is None:
            return None
        iid, address = eid
        try:
            wanted = ip_network((address, record.mask_len), strict=False)
        except ValueError:
            return None
        best: LocalMapping | None = None
        for mapping in self._mappings.values():
            if (
                mapping.instance_id == iid
                and mapping.eid_prefix.version == wanted.version
                and wanted.subnet_of(mapping.eid_prefix)  # type: ignore[arg-type]
                and (best is None or mapping.eid_prefix.prefixlen > best.eid_prefix.prefixlen)
            ):
                best = mapping
        return best

    def _receive_map_request(self, request: MapRequest, reply_port: int) -> list[Datagram]:
        """RFC 9301 sections 5.5 and 6.1.5 (and 7.1 for RLOC probes)."""
        if request.smr:
            # Solicit-Map-Request: a re-resolution hint for the ITR, not a question for us.
            self._count("smr_ignored")
            return []
        found: list[LocalMapping] = []
        for record in request.records:
            mapping = self._lookup(record)
            if mapping is not None and mapping not in found:
                found.append(mapping)
        if not found:
            self._count("not_our_eid")
            return []
        itr = next(
            (r for r in request.itr_rlocs if isinstance(r, IPv4Address | IPv6Address)), None
        )
        if itr is None:
            self._count("no_usable_itr_rloc")
            return []
        records = tuple(
            record
            for mapping in found
            for record in self._records(mapping, self._record_ttl, probed=request.probe)
        )
        reply = MapReply(request.nonce, records, probe=request.probe)
        try:
            payload = encode(reply)
        except EncodeError:
            self._count("reply_too_large")
            return []
        self._count("probe_replies_sent" if request.probe else "replies_sent")
        return [Datagram(itr, reply_port, payload)]

    def _count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1
