"""Publish/subscribe at the Map-Server (RFC 9437).

The Map-Server (lispd.control.mapserver) hands subscription requests and
registration changes to a ``Publisher``; it keeps the subscriptions and
answers with the signed Map-Notifies to send. The Map-Notifies are kept for
retransmission by lispd.control.notifier until acknowledged.

- A Map-Request whose first record has the N bit, with the I bit and an
  xTR-ID, subscribes that xTR to the record's EID prefix (section 5); the
  Map-Server still answers it as any other. The subscriber is its first
  IPv4/IPv6 ITR-RLOC, port 4342. There is one subscription per (xTR-ID,
  prefix), so a new request refreshes it (address, nonce, lifetime); the
  table is bounded, and a subscription lapses ``lifetime`` after its last
  request.
- Authentication (section 7): a Map-Request carries no HMAC, so the xTR-ID
  must be one a registration was accepted with; notifications are signed
  with that site's key under that registration's Key ID. An unknown xTR-ID
  is not subscribed ("subscribe_unknown_xtr").
- On subscribing the Map-Server sends a Map-Notify with the request's nonce
  and the current mapping of the prefix (section 5; a negative record when
  unregistered). The Map-Notify-Ack confirms the subscription; when none
  comes after the retransmissions, the subscription is dropped
  ("subscription_unconfirmed"): otherwise a forged request would make the
  Map-Server send notifications for a day to an address that never asked.
- Publication (section 6): when the registration that is the longest match
  of a subscribed prefix (or one inside a subscribed prefix) is added, gets
  another locator set, is deregistered or expires, the subscriber gets a
  Map-Notify with the nonce after the last one used towards it (section 5)
  and the new record. A prefix that went away is sent as a record without
  locators, TTL 0 and action Send-Map-Request (registrations.withdrawn_record),
  followed by the registration that now covers the subscribed prefix, if
  any: a negative record for wider space would not displace the subscriber's
  more specific cached entry.
- A single ITR-RLOC of AFI 0 withdraws every subscription of the xTR-ID
  (section 5).

Not done: checking that a refresh's nonce follows the last one (a refresh is
accepted with any nonce), and a confirming Map-Notify on withdrawal.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address

from lispd.control.events import Datagram
from lispd.control.notifier import Notifier
from lispd.control.registrations import (
    PrefixIndex,
    Registration,
    RegistrationTable,
    Site,
    negative_record,
    published,
    withdrawn_record,
)
from lispd.control.registrations import address_value as _value
from lispd.mapcache import EidPrefix
from lispd.wire.address import NoAddress, address_bits
from lispd.wire.control import LISP_CONTROL_PORT
from lispd.wire.messages import MapNotify, MapRequest
from lispd.wire.records import MappingRecord

__all__ = [
    "DEFAULT_MAX_SUBSCRIPTIONS",
    "SUBSCRIPTION_LIFETIME",
    "Changes",
    "Publisher",
    "Subscription",
    "SubscriptionTable",
]

RlocAddress = IPv4Address | IPv6Address
Changes = list[tuple[EidPrefix, Registration | None]]
"""Registrations that changed: the prefix, and its registration now (None: gone)."""
Sign = Callable[[MapNotify, Site, int, RlocAddress, int], Datagram | None]

_NONCE_MASK = (1 << 64) - 1

SUBSCRIPTION_LIFETIME = 24 * 3600.0
"""Seconds a subscription lives past its last request: lispd's choice of the
default Record TTL (one day, RFC 9301 section 5.4), so an ITR that asks
again when its map-cache entry runs out renews in time."""

DEFAULT_MAX_SUBSCRIPTIONS = 10_000


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscriber's interest in an EID prefix (RFC 9437 section 5).

    ``site`` and ``key_id`` name the key notifications are signed with: those
    of the registration that carried the same xTR-ID (RFC 9437 section 7).
    ``nonce`` is the last one used towards the subscriber: the request's,
    then one more for every notification (RFC 9437 section 5). ``confirmed``
    turns true when the subscriber acknowledges a Map-Notify.
    """

    prefix: EidPrefix
    xtr_id: int
    site_id: int
    subscriber: RlocAddress
    port: int
    site: str
    key_id: int
    nonce: int
    subscribed_at: float
    refreshed_at: float
    expires_at: float
    confirmed: bool = False

    @property
    def key(self) -> tuple[int, EidPrefix]:
        return (self.xtr_id, self.prefix)


class SubscriptionTable:
    """Subscriptions by (xTR-ID, EID prefix), bounded, expiring, found by prefix."""

    def __init__(self, limit: int = DEFAULT_MAX_SUBSCRIPTIONS) -> None:
        self.limit = limit
        self._index: PrefixIndex[dict[int, Subscription]] = PrefixIndex()
        self._by_xtr: dict[int, set[EidPrefix]] = {}
        self._count = 0
        # (expires_at when pushed, tie-breaker, xTR-ID, prefix), moved on refresh lazily.
        self._heap: list[tuple[float, int, int, EidPrefix]] = []
        self._pushed = 0

    def __len__(self) -> int:
        return self._count

    def get(self, key: tuple[int, EidPrefix]) -> Subscription | None:
        found = self._index.get(key[1])
        return None if found is None else found.get(key[0])

    def put(self, subscription: Subscription) -> bool:
        """Add or replace; False (nothing changed) when a new one would exceed the limit."""
        xtr_id, prefix = subscription.key
        by_xtr = self._index.get(prefix)
        new = by_xtr is None or xtr_id not in by_xtr
        if new and self._count >= self.limit:
            return False
        if by_xtr is None:
            by_xtr = {}
            self._index.set(prefix, by_xtr)
        by_xtr[xtr_id] = subscription
        if new:
            self._count += 1
            self._by_xtr.setdefault(xtr_id, set()).add(prefix)
            self._pushed += 1
            entry = (subscription.expires_at, self._pushed, xtr_id, prefix)
            heapq.heappush(self._heap, entry)
            # Removed subscriptions leave their entries behind (subscribe and
            # withdraw churn): rebuild before the stale ones dominate.
            if len(self._heap) > 2 * self._count + 64:
                self._heap = [(sub.expires_at, n, *sub.key)
                              for n, sub in enumerate(self.values(), self._pushed + 1)]
                self._pushed += len(self._heap)
                heapq.heapify(self._heap)
        return True

    def remove(self, key: tuple[int, EidPrefix]) -> Subscription | None:
        xtr_id, prefix = key
        by_xtr = self._index.get(prefix)
        if by_xtr is None or xtr_id not in by_xtr:
            return None
        gone = by_xtr.pop(xtr_id)
        if not by_xtr:
            self._index.pop(prefix)
        prefixes = self._by_xtr[xtr_id]
        prefixes.discard(prefix)
        if not prefixes:
            del self._by_xtr[xtr_id]
        self._count -= 1
        return gone

    def of_xtr(self, xtr_id: int) -> list[Subscription]:
        prefixes = self._by_xtr.get(xtr_id, set())
        return [s for p in prefixes if (s := self.get((xtr_id, p))) is not None]

    def values(self) -> Iterator[Subscription]:
        for by_xtr in self._index.values():
            yield from by_xtr.values()

    def affected(self, changed: EidPrefix) -> tuple[list[Subscription], list[Subscription]]:
        """The subscriptions a change to the registration of ``changed`` may concern.

        First those inside it (the changed prefix may be their longest
        match), then those strictly around it (part of their space changed).
        """
        inside = [s for by_xtr in self._index.within(changed) for s in by_xtr.values()]
        around = [
            s
            for by_xtr in self._index.covering(changed)
            for s in by_xtr.values()
            if s.prefix.length < changed.length
        ]
        return inside, around

    def _settle(self) -> None:
        heap = self._heap
        while heap:
            when, _, xtr_id, prefix = heap[0]
            current = self.get((xtr_id, prefix))
            if current is None:
                heapq.heappop(heap)
            elif current.expires_at != when:
                self._pushed += 1
                heapq.heapreplace(heap, (current.expires_at, self._pushed, xtr_id, prefix))
            else:
                return

    def next_expiry(self) -> float | None:
        self._settle()
        return self._heap[0][0] if self._heap else None

    def expire(self, now: float) -> list[Subscription]:
        gone: list[Subscription] = []
        while (when := self.next_expiry()) is not None and when <= now:
            _, _, xtr_id, prefix = heapq.heappop(self._heap)
            subscription = self.remove((xtr_id, prefix))
            if subscription is not None:
                gone.append(subscription)
        return gone


class Publisher:
    """Subscriptions in, signed Map-Notifies out (RFC 9437 sections 5 and 6).

    It reads the Map-Server's registration table and shares its notifier
    (retransmissions) and two of its helpers, so that signing and counting
    stay in one place: ``sign`` (a Map-Notify signed with a site key, as a
    Datagram; None when it cannot be encoded) and ``count``.
    """

    def __init__(
        self,
        registrations: RegistrationTable,
        sites: Mapping[str, Site],
        notifier: Notifier,
        *,
        sign: Sign,
        count: Callable[[str], None],
        limit: int = DEFAULT_MAX_SUBSCRIPTIONS,
        lifetime: float = SUBSCRIPTION_LIFETIME,
    ) -> None:
        if not lifetime > 0:
            raise ValueError(f"subscription lifetime {lifetime} must be > 0")
        self.table = SubscriptionTable(limit)
        self.lifetime = lifetime
        self._registrations = registrations
        self._sites = sites
        self._notifier = notifier
        self._sign = sign
        self._count = count

    def subscriptions(self) -> tuple[Subscription, ...]:
        """For display: by instance, family, address, length, then xTR-ID."""
        def order(s: Subscription) -> tuple[int, int, int, int, int]:
            p = s.prefix
            return (p.instance_id, address_bits(p.address), _value(p.address), p.length, s.xtr_id)

        return tuple(sorted(self.table.values(), key=order))

    def subscribe(self, request: MapRequest, prefix: EidPrefix, now: float) -> list[Datagram]:
        """Section 5: the N bit of the request's first record, for prefix."""
        xtr_id, site_id = request.xtr_id, request.site_id
        if xtr_id is None or site_id is None:
            self._count("subscribe_no_xtr_id")
            return []
        if len(request.itr_rlocs) == 1 and isinstance(request.itr_rlocs[0], NoAddress):
            # Withdrawal: no address to notify. The xTR need not be registered
            # any more; its subscriptions may well outlive its registrations.
            for gone in self.table.of_xtr(xtr_id):
                self.table.remove(gone.key)
                self._notifier.done(gone.key)
                self._count("unsubscribed")
            return []
        known = self._registrations.site_of_xtr(xtr_id)
        if known is None:
            self._count("subscribe_unknown_xtr")
            return []
        subscriber = next(
            (a for a in request.itr_rlocs if isinstance(a, IPv4Address | IPv6Address)), None
        )
        if subscriber is None:
            self._count("subscribe_no_itr_rloc")
            return []
        site, key_id = known
        previous = self.table.get((xtr_id, prefix))
        subscription = Subscription(
            prefix, xtr_id, site_id, subscriber, LISP_CONTROL_PORT, site, key_id,
            nonce=request.nonce,
            subscribed_at=now if previous is None else previous.subscribed_at,
            refreshed_at=now,
            expires_at=now + self.lifetime,
            # A confirmation holds for the address that gave it, not for a new one.
            confirmed=previous is not None
            and previous.confirmed
            and previous.subscriber == subscriber,
        )
        if not self.table.put(subscription):
            self._count("subscribe_refused_full")
            return []
        self._count("subscribed" if previous is None else "subscription_refreshed")
        return self._notify(subscription, self._current(prefix), now, request.nonce)

    def publish(self, changes: Changes, now: float) -> list[Datagram]:
        """Section 6: tell the subscribers concerned by changed registrations."""
        if not changes or not len(self.table):
            return []
        longest = self._registrations.index.longest
        records: dict[tuple[int, EidPrefix], list[MappingRecord]] = {}
        subscriptions: dict[tuple[int, EidPrefix], Subscription] = {}
        for prefix, new in changes:
            change = withdrawn_record(prefix) if new is None else published(new.record)
            inside, around = self.table.affected(prefix)
            for subscription in inside:
                sub = subscription.prefix
                best = longest(sub.instance_id, sub.address, sub.length)
                if best is not None and best.prefix.length > prefix.length:
                    continue  # a more specific registration still decides for it
                batch = records.setdefault(subscription.key, [])
                batch.append(change)
                if new is None and best is not None:
                    batch.append(published(best.record))
                subscriptions[subscription.key] = subscription
            for subscription in around:
                records.setdefault(subscription.key, []).append(change)
                subscriptions[subscription.key] = subscription
        out: list[Datagram] = []
        for key, batch in records.items():
            self._count("subscription_notify")
            out.extend(self._notify(subscriptions[key], tuple(dict.fromkeys(batch)), now))
        return out

    def expire(self, now: float) -> None:
        """Forget the subscriptions whose lifetime is over."""
        for gone in self.table.expire(now):
            self._notifier.done(gone.key)
            self._count("subscription_expired")

    def drop_unknown_sites(self) -> None:
        """Forget the subscriptions of sites the configuration no longer has
        (reload): their key is gone, so nothing could be sent to them."""
        for subscription in [s for s in self.table.values() if s.site not in self._sites]:
            self.table.remove(subscription.key)
            self._notifier.done(subscription.key)
            self._count("subscription_site_removed")

    def acknowledged(self, key: tuple[int, EidPrefix]) -> None:
        """A Map-Notify-Ack came from the subscriber: the subscription is confirmed."""
        subscription = self.table.get(key)
        if subscription is not None and not subscription.confirmed:
            self.table.put(replace(subscription, confirmed=True))

    def unacknowledged(self, key: tuple[int, EidPrefix]) -> None:
        """The Map-Notify was never acknowledged: drop the subscription unless confirmed."""
        subscription = self.table.get(key)
        if subscription is not None and not subscription.confirmed:
            self.table.remove(key)
            self._count("subscription_unconfirmed")

    def _current(self, prefix: EidPrefix) -> tuple[MappingRecord, ...]:
        """The mapping a subscriber to prefix should hold now."""
        index = self._registrations.index
        best = index.longest(prefix.instance_id, prefix.address, prefix.length)
        if best is not None:
            return (published(best.record),)
        return (negative_record(index.negative(prefix.instance_id, prefix.address)),)

    def _notify(
        self,
        subscription: Subscription,
        records: tuple[MappingRecord, ...],
        now: float,
        nonce: int | None = None,
    ) -> list[Datagram]:
        """A Map-Notify to a subscriber, kept for retransmission until acknowledged."""
        site = self._sites.get(subscription.site)
        if site is None:  # its site was removed by a reload, just now
            return []
        if nonce is None:
            nonce = (subscription.nonce + 1) & _NONCE_MASK
            self.table.put(replace(subscription, nonce=nonce))
        notify = MapNotify(
            nonce, records, xtr_id=subscription.xtr_id, site_id=subscription.site_id
        )
        sent = self._sign(
            notify, site, subscription.key_id, subscription.subscriber, subscription.port
        )
        if sent is None:
            return []
        self._notifier.track(subscription.key, nonce, site.name, sent, now)
        return [sent]
