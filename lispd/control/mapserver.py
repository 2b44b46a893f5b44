"""The Map-Server and Map-Resolver as a sans-IO machine (RFC 9301 sections 8.2 to 8.4).

The machine is fed the payload of each UDP datagram that arrived on the LISP
control port with its source and ``now`` (monotonic seconds), and answers
with the datagrams to send (lispd.control.events.Datagram). ``timer(now)``
(also called ``expire``) is called when ``next_timer()`` comes due. It owns
no socket and no clock. Every input that is refused changes nothing and is
counted by reason in ``counters``.

Map-Server side (RFC 9301 section 8.2; message in section 5.6):

- A Map-Register is authenticated with the key of the configured site whose
  eid-prefixes cover its records (the longest covering site prefix picks the
  site); every record must lie within that site's eid-prefixes, and be no
  more specific than one of them unless the site accepts more specifics.
  Refusals: "malformed", "unknown_key_id", "outside_site", "bad_auth",
  "more_specific_refused".
- The registration table (lispd.control.registrations) is keyed by
  (instance-id, EID prefix). An entry expires 3 x ``register_interval``
  after its last refresh (section 8.2: three missed Map-Registers); a record
  with TTL 0 deregisters it at once, but only when it comes from the
  registrant or names the registered RLOCs ("deregister_ignored" otherwise:
  a displaced xTR shutting down must not remove the mapping that replaced
  it). The last registrant of a prefix wins (no merging of locator sets).
- Want-map-notify (M bit): a Map-Notify (section 5.7) with the same nonce and
  the registered records, signed with the site key under the Key ID of the
  Map-Register, goes back to the source address and port of the Map-Register.
- Mobility: when a registration with a different set of RLOCs takes over a
  prefix from another registrant, that previous registrant gets a Map-Notify
  too (a fresh nonce, the new records), so it learns that the EID moved. So
  do the registrants of the less specific prefixes that cover a prefix newly
  registered (or taken over) at other RLOCs: a host that left the segment
  of a covering prefix for another xTR (a dynamic EID there). It is sent
  again until acknowledged (below).

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

Publish/subscribe (RFC 9437; lispd.control.subscriptions): a Map-Request
whose first record has the N bit subscribes its xTR-ID to the prefix; the
subscriber is sent the mapping now and whenever the registration covering
the prefix changes, signed with the key of the site the xTR-ID registered
with. ``subscriptions()`` lists them.

Every Map-Notify the Map-Server sends on its own (to a displaced registrant,
to a subscriber) is sent again every 1 s, 3 times at most, until a
Map-Notify-Ack with its nonce and a valid HMAC arrives (RFC 9301 section
5.7; lispd.control.notifier). ``timer(now)`` does the retransmissions and
expiries, and ``next_timer()`` includes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

from lispd.control.events import Datagram, random_nonce
from lispd.control.notifier import DEFAULT_MAX_PENDING, Notifier
from lispd.control.registrations import (
    NEGATIVE_TTL_MINUTES,
    Registration,
    RegistrationTable,
    Site,
    address_value,
    admit,
    eid_of,
    negative_record,
    published,
    still_admitted,
    withdrawn_record,
)
from lispd.control.subscriptions import (
    DEFAULT_MAX_SUBSCRIPTIONS,
    SUBSCRIPTION_LIFETIME,
    Changes,
    Publisher,
    Subscription,
)
from lispd.mapcache import EidAddress, EidPrefix
from lispd.wire import DecodeError, EncodeError, auth
from lispd.wire.address import address_bits
from lispd.wire.control import LISP_CONTROL_PORT, decode, encode
from lispd.wire.messages import (
    EncapsulatedControlMessage,
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
)
from lispd.wire.records import MappingRecord

__all__ = [
    "DEFAULT_REGISTER_INTERVAL",
    "NEGATIVE_TTL_MINUTES",
    "MapServer",
    "Registration",
    "Site",
    "Subscription",
    "negative_prefix",
]

DEFAULT_REGISTER_INTERVAL = 60.0
"""Seconds between an ETR's Map-Registers (RFC 9301 section 8.2)."""

EXPIRY_FACTOR = 3
"""A registration lives this many register intervals past its last refresh."""

RlocAddress = IPv4Address | IPv6Address


def _order(prefix: EidPrefix) -> tuple[int, int, int, int]:
    """Display order: instance, family, address, length."""
    return (
        prefix.instance_id,
        address_bits(prefix.address),
        address_value(prefix.address),
        prefix.length,
    )


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

    This is the reference; the Map-Server uses PrefixIndex.negative, which
    gives the same answer from the two neighbours of address in its index.
    """
    bits = address_bits(address)
    value = address_value(address)
    family = type(address)
    length = 0
    for prefix in registered:
        if prefix.instance_id != instance_id or type(prefix.address) is not family:
            continue
        common = bits - (value ^ address_value(prefix.address)).bit_length()
        length = max(length, min(common, prefix.length) + 1)
    return EidPrefix.of(instance_id, address, min(length, bits))


# -- the machine ------------------------------------------------------------------


# A registrant to tell of a move: its address, port, Key ID and site.
_Told = tuple[RlocAddress, int, int, str]


class MapServer:
    """Map-Server and Map-Resolver (RFC 9301 sections 8.2 and 8.3, RFC 9437), sans-IO."""

    def __init__(
        self,
        sites: tuple[Site, ...],
        register_interval: float = DEFAULT_REGISTER_INTERVAL,
        nonces: Callable[[], int] = random_nonce,
        *,
        max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
        subscription_lifetime: float = SUBSCRIPTION_LIFETIME,
        max_pending_notifies: int = DEFAULT_MAX_PENDING,
    ) -> None:
        if not register_interval > 0:
            raise ValueError(f"register interval {register_interval} must be > 0")
        self.sites = sites
        self.register_interval = register_interval
        self.counters: dict[str, int] = {}
        self._nonces = nonces
        self._sites_by_name = {site.name: site for site in sites}
        self._table = RegistrationTable()
        self._notifier = Notifier(max_pending_notifies, count=self._count)
        self._publisher = Publisher(
            self._table, self._sites_by_name, self._notifier,
            sign=self._signed, count=self._count,
            limit=max_subscriptions, lifetime=subscription_lifetime,
        )

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
        if isinstance(message, MapNotifyAck):
            self._map_notify_ack(message, payload)
            return []
        if isinstance(message, EncapsulatedControlMessage) and isinstance(
            message.message, MapRequest
        ):
            return self._map_request(message, message.message, now)
        self._count("unexpected")
        return []

    def timer(self, now: float) -> list[Datagram]:
        """Expire registrations and subscriptions, send the retransmissions due."""
        expired = self._table.expire(now)
        gone: dict[_Told, list[MappingRecord]] = {}
        for registration in expired:
            self._count("expired")
            self._tell_covering_gone(registration, gone)
        out = self._notify(gone, now)
        out += self._publisher.publish([(r.prefix, None) for r in expired], now)
        self._publisher.expire(now)
        again, given_up = self._notifier.due(now)
        for _ in again:
            self._count("map_notify_retransmitted")
        for pending in given_up:
            self._count("map_notify_unacknowledged")
            if isinstance(pending.key, tuple):
                self._publisher.unacknowledged(pending.key)
        return out + again

    def next_timer(self) -> float | None:
        """When timer() next has work to do, or None."""
        times = (
            self._table.next_expiry(),
            self._publisher.table.next_expiry(),
            self._notifier.next_due(),
        )
        return min((t for t in times if t is not None), default=None)

    def set_sites(self, sites: tuple[Site, ...], now: float) -> list[Datagram]:
        """The configured sites changed (reload): registrations no site admits any
        more are withdrawn at once and their subscribers told; the others stay.
        A changed key applies from the next Map-Register on."""
        self.sites = sites
        # The publisher holds this dict: change it in place.
        self._sites_by_name.clear()
        self._sites_by_name.update((site.name, site) for site in sites)
        self._publisher.drop_unknown_sites()
        gone = [r for r in self._table.values() if not still_admitted(sites, r)]
        for registration in gone:
            self._table.remove(registration.prefix)
            self._count("withdrawn_by_configuration")
        return self._publisher.publish([(r.prefix, None) for r in gone], now)

    def registrations(self) -> tuple[Registration, ...]:
        """The registration table, for display (by instance, family, address, length)."""
        return tuple(sorted(self._table.values(), key=lambda r: _order(r.prefix)))

    def registration_count(self) -> int:
        """How many registrations are held (without sorting them, as registrations() does)."""
        return len(self._table)

    def subscriptions(self) -> tuple[Subscription, ...]:
        """The subscriptions, for display (by instance, family, address, length, xTR-ID)."""
        return self._publisher.subscriptions()

    def pending_notifies(self) -> int:
        """How many Map-Notifies await their Map-Notify-Ack."""
        return len(self._notifier)

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    # -- Map-Register (section 8.2) --------------------------------------------

    def _map_register(
        self,
        message: MapRegister,
        payload: bytes,
        source: RlocAddress,
        source_port: int,
        now: float,
    ) -> list[Datagram]:
        admitted = admit(self.sites, message, payload)
        if isinstance(admitted, str):
            self._count(admitted)
            return []
        site, prefixes = admitted
        self._count("map_register")
        # Who hears that a prefix went elsewhere, and under which site's key.
        displaced: dict[_Told, list[MappingRecord]] = {}
        changes: Changes = []
        for prefix, record in zip(prefixes, message.records, strict=True):
            previous = self._table.get(prefix)
            if record.ttl == 0:
                if previous is None:
                    continue
                ours = (previous.source, previous.source_port) == (source, source_port)
                if not ours and previous.rlocs != {loc.locator for loc in record.locators}:
                    self._count("deregister_ignored")
                    continue
                self._table.remove(prefix)
                self._count("deregistered")
                changes.append((prefix, None))
                self._tell_covering_gone(previous, displaced)
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
                changes.append((prefix, registration))
                self._tell_covering(prefix, registration, record, displaced)
            else:
                self._count("refreshed")
                moved = previous.rlocs != registration.rlocs
                elsewhere = (previous.source, previous.source_port) != (source, source_port)
                if moved and elsewhere:
                    self._count("moved")
                    key = (previous.source, previous.source_port, previous.key_id,
                           previous.site)
                    displaced.setdefault(key, []).append(record)
                    self._tell_covering(prefix, registration, record, displaced)
                if set(previous.record.locators) != set(record.locators):
                    changes.append((prefix, registration))
            self._table.install(registration)
        out: list[Datagram] = []
        if message.want_map_notify:
            notify = MapNotify(
                message.nonce, message.records, xtr_id=message.xtr_id, site_id=message.site_id
            )
            sent = self._signed(notify, site, message.key_id, source, source_port)
            out.extend(() if sent is None else (sent,))
        return out + self._notify(displaced, now) + self._publisher.publish(changes, now)

    def _notify(self, told: dict[_Told, list[MappingRecord]], now: float) -> list[Datagram]:
        """A Map-Notify of its records to each registrant told of a move, under
        its site's key, sent again until acknowledged."""
        out: list[Datagram] = []
        for (old_source, old_port, key_id, name), records in told.items():
            theirs = self._sites_by_name.get(name)
            if theirs is None:
                continue
            nonce = self._nonces()
            notify = MapNotify(nonce, tuple(records))
            sent = self._signed(notify, theirs, key_id, old_source, old_port)
            if sent is not None:
                self._notifier.track(nonce, nonce, theirs.name, sent, now)
                out.append(sent)
        return out

    def _tell_covering(
        self,
        prefix: EidPrefix,
        registration: Registration,
        record: MappingRecord,
        told: dict[_Told, list[MappingRecord]],
    ) -> None:
        """A more specific prefix came to other RLOCs than those of the
        registrations covering it: their registrants hear of it (a host that
        left the segment of a covering prefix, say), once each."""
        for covering in self._table.index.covering(prefix):
            if covering.prefix.length >= prefix.length or covering.rlocs == registration.rlocs:
                continue
            key = (covering.source, covering.source_port, covering.key_id, covering.site)
            if (covering.source, covering.source_port) != (
                    registration.source, registration.source_port) \
                    and record not in told.get(key, []):
                self._count("more_specific_told")
                told.setdefault(key, []).append(record)

    def _tell_covering_gone(self, gone: Registration,
                            told: dict[_Told, list[MappingRecord]]) -> None:
        """A more specific prefix is registered no more: the registrants of
        the prefixes covering it, who were told it went elsewhere, hear that
        it is theirs again (a withdrawn record: no locators, TTL 0)."""
        for covering in self._table.index.covering(gone.prefix):
            if covering.prefix.length >= gone.prefix.length or covering.rlocs == gone.rlocs \
                    or (covering.source, covering.source_port) == (gone.source, gone.source_port):
                continue
            self._count("more_specific_gone_told")
            key = (covering.source, covering.source_port, covering.key_id, covering.site)
            told.setdefault(key, []).append(withdrawn_record(gone.prefix))

    def _signed(
        self, notify: MapNotify, site: Site, key_id: int, to: RlocAddress, port: int
    ) -> Datagram | None:
        """A Map-Notify signed with the site key (section 5.7)."""
        try:
            payload = encode(auth.sign(notify, site.key, auth.KeyId(key_id)))
        except (EncodeError, ValueError):
            self._count("encode_error")
            return None
        self._count("map_notify_sent")
        return Datagram(to, port, payload)

    def _map_notify_ack(self, ack: MapNotifyAck, payload: bytes) -> None:
        """The Map-Notify-Ack of one of our Map-Notifies (RFC 9301 section 5.7)."""
        candidates = self._notifier.with_nonce(ack.nonce)
        if not candidates:
            self._count("map_notify_ack_unknown")
            return
        for pending in candidates:
            site = self._sites_by_name.get(pending.site)  # None: removed by a reload
            if site is not None and auth.authentic(payload, site.key):
                self._notifier.done(pending.key)
                self._count("map_notify_acked")
                if isinstance(pending.key, tuple):
                    self._publisher.acknowledged(pending.key)
                return
        self._count("map_notify_ack_bad_auth")

    # -- Map-Request (section 8.3) ------------------------------------------------

    def _map_request(
        self, ecm: EncapsulatedControlMessage, request: MapRequest, now: float
    ) -> list[Datagram]:
        if not request.records:
            self._count("malformed")
            return []
        first = request.records[0]
        try:
            instance_id, address = eid_of(first.eid_prefix)
        except ValueError:
            self._count("malformed")
            return []
        out = self._answer(ecm, request, instance_id, address)
        if first.notify:
            prefix = EidPrefix.of(instance_id, address, first.mask_len)
            out.extend(self._publisher.subscribe(request, prefix, now))
        return out

    def _answer(
        self,
        ecm: EncapsulatedControlMessage,
        request: MapRequest,
        instance_id: int,
        address: EidAddress,
    ) -> list[Datagram]:
        registration = self._table.index.longest(instance_id, address)
        if registration is not None and not registration.proxy_reply:
            return self._forward(ecm, registration)
        if registration is not None:
            record = published(registration.record)
            self._count("proxy_reply")
        else:
            record = negative_record(self._table.index.negative(instance_id, address))
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
