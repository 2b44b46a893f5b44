"""The Map-Server and Map-Resolver as a sans-IO machine (RFC 9301 sections 8.2 to 8.4).

The machine is fed the payload of each UDP datagram that arrived on the LISP
control port with its source and ``now`` (monotonic seconds), and answers
with the datagrams to send (lispd.control.events.Datagram). ``expire(now)``
is called when ``next_timer()`` comes due. It owns no socket and no clock.

Map-Server side (RFC 9301 section 8.2; message in section 5.6):

- A Map-Register is authenticated with the key of the configured site whose
  eid-prefixes cover its records (the longest covering site prefix picks the
  site); every record must lie within that site's eid-prefixes, and be no
  more specific than one of them unless the site accepts more specifics.
  Any failure changes nothing and is counted by reason (``counters``):
  "malformed", "unknown_key_id", "outside_site", "bad_auth",
  "more_specific_refused".
- The registration table is keyed by (instance-id, EID prefix) (an EidPrefix
  carries both). An entry expires 3 x ``register_interval`` after its last
  refresh (section 8.2: a Map-Server times out a registration after three
  missed Map-Registers); a record with TTL 0 deregisters it at once.
  The last registrant of a prefix wins (no merging of locator sets).
- Want-map-notify (M bit): a Map-Notify (section 5.7) with the same nonce and
  the registered records, signed with the site key under the Key ID of the
  Map-Register, goes back to the source address and port of the Map-Register.
- Mobility: when a registration with a different set of RLOCs takes over a
  prefix from another registrant, that previous registrant gets a Map-Notify
  too (a fresh nonce, the new records), so it learns that the EID moved.

Map-Resolver side (RFC 9301 section 8.3; ECM in section 5.8):

- An ECM carrying a Map-Request is opened and the EID of its first record is
  looked up, longest registered prefix first.
- Registered, without proxy-reply: the Map-Request is forwarded, still in its
  ECM with its original inner headers, the to-ETR (E) bit set, to an RLOC of
  the registration (best priority first; the registrant's source address if
  none is usable), port 4342 (section 8.2).
- Registered, with proxy-reply (P bit of the Map-Register): the Map-Server
  answers with a Map-Reply itself (section 5.4), the nonce echoed, to the
  first ITR-RLOC, at the source port of the inner UDP header.
- Unregistered: a negative Map-Reply, action Natively-Forward, TTL 15
  minutes (section 8.3), whose prefix is the largest that covers the EID and
  no registered prefix of the same instance and family (``negative_prefix``).

Anything that fails to decode is counted as "malformed" and answered with
nothing; control messages the machine has no use for are counted as
"unexpected".
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address

from lispd.control.events import Datagram
from lispd.mapcache import EidAddress, EidPrefix
from lispd.wire import DecodeError, EncodeError, auth
from lispd.wire.address import Address, InstanceIdAddress, MacAddress, address_bits
from lispd.wire.control import LISP_CONTROL_PORT, decode, encode
from lispd.wire.messages import (
    EncapsulatedControlMessage,
    MapNotify,
    MapRegister,
    MapReply,
    MapRequest,
)
from lispd.wire.records import Action, MappingRecord

__all__ = [
    "DEFAULT_REGISTER_INTERVAL",
    "NEGATIVE_TTL_MINUTES",
    "MapServer",
    "Registration",
    "Site",
    "negative_prefix",
]

DEFAULT_REGISTER_INTERVAL = 60.0
"""Seconds between an ETR's Map-Registers (RFC 9301 section 8.2)."""

EXPIRY_FACTOR = 3
"""A registration lives this many register intervals past its last refresh."""

NEGATIVE_TTL_MINUTES = 15
"""Record TTL of a negative Map-Reply for non-registered space (section 8.3)."""

RlocAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Site:
    """A configured site: who may register what, with which shared key."""

    name: str
    key: bytes
    eid_prefixes: tuple[EidPrefix, ...]
    accept_more_specifics: bool = False


@dataclass(frozen=True)
class Registration:
    """One entry of the registration table (RFC 9301 section 8.2)."""

    prefix: EidPrefix
    site: str
    record: MappingRecord
    source: RlocAddress
    source_port: int
    key_id: int
    proxy_reply: bool
    want_map_notify: bool
    registered_at: float
    refreshed_at: float
    expires_at: float
    xtr_id: int | None = None
    site_id: int | None = None

    @property
    def rlocs(self) -> frozenset[Address]:
        return frozenset(loc.locator for loc in self.record.locators)


def _random_nonce() -> int:
    return secrets.randbits(64)


# -- prefixes between the wire and the table -----------------------------------


def _split(address: Address) -> tuple[int, Address]:
    """Instance-id and inner address of a wire EID (plain addresses are instance 0)."""
    if isinstance(address, InstanceIdAddress):
        return address.instance_id, address.address
    return 0, address


def _eid(address: Address) -> tuple[int, EidAddress]:
    instance_id, inner = _split(address)
    if not isinstance(inner, IPv4Address | IPv6Address | MacAddress):
        raise ValueError(f"not an EID address: {address!r}")
    return instance_id, inner


def _prefix_of(address: Address, mask_len: int) -> EidPrefix:
    """The EidPrefix of a wire EID prefix; ValueError/TypeError when it is none."""
    instance_id, inner = _eid(address)
    return EidPrefix.of(instance_id, inner, mask_len)


def _wire_eid(prefix: EidPrefix) -> Address:
    if prefix.instance_id == 0:
        return prefix.address
    return InstanceIdAddress(prefix.instance_id, prefix.address)


def _value(address: EidAddress) -> int:
    if isinstance(address, MacAddress):
        return int.from_bytes(address.octets, "big")
    return int(address)


def _bits(address: EidAddress) -> int:
    return address_bits(address)


def _inside(outer: EidPrefix, inner: EidPrefix) -> bool:
    """Whether inner lies within outer (same instance and family, at least as long)."""
    return inner.length >= outer.length and outer.covers(inner.instance_id, inner.address)


def negative_prefix(
    instance_id: int, address: EidAddress, registered: Iterable[EidPrefix]
) -> EidPrefix:
    """The largest prefix that covers address and no registered prefix (section 8.3).

    Start from the host route and widen while no registered prefix of the
    same instance and family would lie inside. A registered prefix r lies
    inside the /L that covers address exactly when L <= r.length and the top
    L bits agree, that is L <= min(r.length, common bits); so the answer is
    one bit longer than the largest such bound (0 when there is none). The
    caller makes sure address is not itself covered by a registered prefix
    (then no such prefix exists and the host route is returned).
    """
    bits = _bits(address)
    value = _value(address)
    family = type(address)
    length = 0
    for prefix in registered:
        if prefix.instance_id != instance_id or type(prefix.address) is not family:
            continue
        common = bits - (value ^ _value(prefix.address)).bit_length()
        length = max(length, min(common, prefix.length) + 1)
    return EidPrefix.of(instance_id, address, min(length, bits))


# -- the machine ------------------------------------------------------------------


class MapServer:
    """Map-Server and Map-Resolver (RFC 9301 sections 8.2 and 8.3), sans-IO."""

    def __init__(
        self,
        sites: tuple[Site, ...],
        register_interval: float = DEFAULT_REGISTER_INTERVAL,
        nonces: Callable[[], int] = _random_nonce,
    ) -> None:
        if not register_interval > 0:
            raise ValueError(f"register interval {register_interval} must be > 0")
        self.sites = sites
        self.register_interval = register_interval
        self.counters: dict[str, int] = {}
        self._nonces = nonces
        self._table: dict[EidPrefix, Registration] = {}

    # -- inputs ----------------------------------------------------------------

    def receive(
        self, payload: bytes, source: RlocAddress, source_port: int, now: float
    ) -> list[Datagram]:
        """One datagram from (source, source_port) arrived on the control port."""
        try:
            message = decode(payload)
        except DecodeError:
            self._count("malformed")
            return []
        if isinstance(message, MapRegister):
            return self._map_register(message, payload, source, source_port, now)
        if isinstance(message, EncapsulatedControlMessage) and isinstance(
            message.message, MapRequest
        ):
            return self._map_request(message, message.message)
        self._count("unexpected")
        return []

    def expire(self, now: float) -> list[Datagram]:
        """Forget registrations whose time has come (nothing is sent)."""
        for prefix, registration in list(self._table.items()):
            if registration.expires_at <= now:
                del self._table[prefix]
                self._count("expired")
        return []

    def next_timer(self) -> float | None:
        """When expire() next has work to do, or None."""
        return min((r.expires_at for r in self._table.values()), default=None)

    def registrations(self) -> tuple[Registration, ...]:
        """The registration table, for display (by instance, family, address, length)."""
        return tuple(
            sorted(
                self._table.values(),
                key=lambda r: (
                    r.prefix.instance_id,
                    _bits(r.prefix.address),
                    _value(r.prefix.address),
                    r.prefix.length,
                ),
            )
        )

    # -- Map-Register (section 8.2) --------------------------------------------

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    def _site_for(self, prefix: EidPrefix) -> tuple[Site, EidPrefix] | None:
        best: tuple[Site, EidPrefix] | None = None
        for site in self.sites:
            for site_prefix in site.eid_prefixes:
                if _inside(site_prefix, prefix) and (
                    best is None or site_prefix.length > best[1].length
                ):
                    best = (site, site_prefix)
        return best

    def _admit(self, message: MapRegister, payload: bytes) -> tuple[Site, list[EidPrefix]] | str:
        """The site and record prefixes of an acceptable Map-Register, or why not."""
        if not message.records:
            return "malformed"
        try:
            prefixes = [_prefix_of(r.eid_prefix, r.mask_len) for r in message.records]
        except (ValueError, TypeError):
            return "malformed"
        if message.key_id not in (auth.KeyId.HMAC_SHA1_96, auth.KeyId.HMAC_SHA256_128):
            return "unknown_key_id"
        found = self._site_for(prefixes[0])
        if found is None:
            return "outside_site"
        site = found[0]
        try:
            if not auth.verify(payload, site.key):
                return "bad_auth"
        except DecodeError:
            return "bad_auth"
        for prefix in prefixes:
            covering = [p for p in site.eid_prefixes if _inside(p, prefix)]
            if not covering:
                return "outside_site"
            if not site.accept_more_specifics and all(p.length < prefix.length for p in covering):
                return "more_specific_refused"
        return site, prefixes

    def _map_register(
        self,
        message: MapRegister,
        payload: bytes,
        source: RlocAddress,
        source_port: int,
        now: float,
    ) -> list[Datagram]:
        admitted = self._admit(message, payload)
        if isinstance(admitted, str):
            self._count(admitted)
            return []
        site, prefixes = admitted
        self._count("map_register")
        displaced: dict[tuple[RlocAddress, int, int], list[MappingRecord]] = {}
        for prefix, record in zip(prefixes, message.records, strict=True):
            previous = self._table.get(prefix)
            if record.ttl == 0:
                if previous is not None:
                    del self._table[prefix]
                    self._count("deregistered")
                continue
            registration = Registration(
                prefix=prefix,
                site=site.name,
                record=record,
                source=source,
                source_port=source_port,
                key_id=message.key_id,
                proxy_reply=message.proxy_reply,
                want_map_notify=message.want_map_notify,
                registered_at=now if previous is None else previous.registered_at,
                refreshed_at=now,
                expires_at=now + EXPIRY_FACTOR * self.register_interval,
                xtr_id=message.xtr_id,
                site_id=message.site_id,
            )
            if previous is None:
                self._count("registered")
            else:
                self._count("refreshed")
                moved = previous.rlocs != registration.rlocs
                elsewhere = (previous.source, previous.source_port) != (source, source_port)
                if moved and elsewhere:
                    self._count("moved")
                    key = (previous.source, previous.source_port, previous.key_id)
                    displaced.setdefault(key, []).append(record)
            self._table[prefix] = registration
        out: list[Datagram] = []
        if message.want_map_notify:
            notify = MapNotify(
                message.nonce, message.records, xtr_id=message.xtr_id, site_id=message.site_id
            )
            out.extend(self._notify(notify, site, message.key_id, source, source_port))
        for (old_source, old_port, key_id), records in displaced.items():
            notify = MapNotify(self._nonces(), tuple(records))
            out.extend(self._notify(notify, site, key_id, old_source, old_port))
        return out

    def _notify(
        self, notify: MapNotify, site: Site, key_id: int, to: RlocAddress, port: int
    ) -> list[Datagram]:
        """A Map-Notify signed with the site key (section 5.7)."""
        try:
            payload = encode(auth.sign(notify, site.key, auth.KeyId(key_id)))
        except EncodeError:
            self._count("encode_error")
            return []
        self._count("map_notify_sent")
        return [Datagram(to, port, payload)]

    # -- Map-Request (section 8.3) ------------------------------------------------

    def _lookup(self, instance_id: int, address: EidAddress) -> Registration | None:
        for length in range(_bits(address), -1, -1):
            found = self._table.get(EidPrefix.of(instance_id, address, length))
            if found is not None:
                return found
        return None

    def _map_request(self, ecm: EncapsulatedControlMessage, request: MapRequest) -> list[Datagram]:
        if not request.records:
            self._count("malformed")
            return []
        try:
            instance_id, address = _eid(request.records[0].eid_prefix)
        except ValueError:
            self._count("malformed")
            return []
        registration = self._lookup(instance_id, address)
        if registration is not None and not registration.proxy_reply:
            return self._forward(ecm, registration)
        if registration is not None:
            record = replace(registration.record, authoritative=False)
            self._count("proxy_reply")
        else:
            prefix = negative_prefix(instance_id, address, self._table)
            record = MappingRecord(
                _wire_eid(prefix),
                prefix.length,
                (),
                ttl=NEGATIVE_TTL_MINUTES,
                action=Action.NATIVELY_FORWARD,
            )
            self._count("negative_reply")
        itr = next(
            (a for a in request.itr_rlocs if isinstance(a, IPv4Address | IPv6Address)),
            ecm.inner_ip.source,
        )
        try:
            payload = encode(MapReply(request.nonce, (record,)))
        except EncodeError:
            self._count("encode_error")
            return []
        return [Datagram(itr, ecm.inner_udp.source_port, payload)]

    def _forward(
        self, ecm: EncapsulatedControlMessage, registration: Registration
    ) -> list[Datagram]:
        """The ECM to an ETR of the registration, to-ETR bit set (sections 5.8, 8.2)."""
        usable = sorted(
            (
                loc
                for loc in registration.record.locators
                if isinstance(loc.locator, IPv4Address | IPv6Address)
                and loc.reachable
                and loc.priority != 255
            ),
            key=lambda loc: loc.priority,
        )
        etr: RlocAddress = registration.source
        if usable and isinstance(usable[0].locator, IPv4Address | IPv6Address):
            etr = usable[0].locator
        forwarded = replace(ecm, to_etr=True, to_ms=False, ddt=False)
        try:
            payload = encode(forwarded)
        except EncodeError:
            self._count("encode_error")
            return []
        self._count("map_request_forwarded")
        return [Datagram(etr, LISP_CONTROL_PORT, payload)]
