"""The ITR's resolver: map-cache misses become Map-Requests, answers become entries.

A sans-IO protocol machine (DESIGN principle 2): it is fed misses, datagrams
and ``now`` and returns an Output (datagrams to send, the map-cache changes it
made, the packets that may go now); ``next_timer()`` says when it wants
``timer(now)``. It never reads a clock nor touches a socket. It mutates the
daemon's authoritative MapCache, which is passed in.

- RFC 9301 sections 6.1 and 8.3: a miss sends a Map-Request for the host EID,
  in an Encapsulated Control Message (section 5.8) to a map-resolver; the
  packets that missed wait in a bounded queue (per EID and in total) and are
  released, in arrival order, when an answer installs an entry covering them,
  even one that answers another EID's request with a wider prefix.
- Section 5.3: at most one Map-Request per EID per second and a global token
  bucket; what exceeds a limit waits for the timer rather than being lost.
  Unanswered requests are sent again with a new nonce (older nonces of the
  same request stay valid) after 1 s, 2 s, 4 s ... up to a cap, each time to
  the next map-resolver; the one whose request was answered is preferred
  next time. After ``max_attempts`` the request is forgotten, its packets
  dropped and ``resolution_failed`` counted, so that a later miss tries again.
- Section 5.4: a Map-Reply is accepted only with the nonce of an outstanding
  request and only if every record overlaps the requested prefix; the
  records become entries (TTL minutes to seconds, capped at ``max_ttl``; IP
  RLOCs only; a negative record keeps its action). A Record TTL of zero
  removes the entry of its prefix.
- Section 6.1: an entry that the data plane uses (``used``, each second) is
  asked for again when a tenth of its TTL (at least 5 s) is left; the old
  entry keeps serving until the answer replaces it. ``used`` only schedules:
  ``timer`` sends. Unused entries are left to expire (``timer`` expires them
  from the map-cache, so the daemon need not).
- Section 6.1.2: a Solicit-Map-Request makes the resolver ask the mapping
  system again (s bit) for the entry that covers each EID it names; the SMR
  itself changes nothing, so a forged one costs at most a Map-Request.
- RFC 9437: with ``subscribe`` every Map-Request asks for notifications (N
  bit, I bit with this xTR's xTR-ID). A Map-Notify from a configured
  map-server with a good HMAC replaces the entries of its records (TTL 0
  withdraws; no locators with a TTL is a negative entry, as in a negative
  Map-Reply) and is answered with a signed Map-Notify-Ack.

Only IP EIDs are resolved (the ECM's inner destination is the EID). Anything
refused is counted in ``counters`` by reason and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv6Address

from lispd.control.events import Datagram, Output, Released, random_nonce
from lispd.control.itr import (
    IPAddress,
    PrefixedRecords,
    asks_for_request,
    covering_entry,
    eid_prefix_of,
    entry_of,
    inside,
    ip_records,
    itr_rlocs_for,
    mapping_entry,
    overlaps,
)
from lispd.control.pending import (
    PendingRequest,
    Request,
    RequestReason,
    RequestTable,
    ResolverLimits,
)
from lispd.control.registrar import MapServerPeer
from lispd.mapcache import Change, EidPrefix, MapCache, MapCacheFull, MapEntry, wire_eid
from lispd.wire import DecodeError, EncodeError, auth
from lispd.wire.address import InstanceIdAddress
from lispd.wire.control import LISP_CONTROL_PORT, MAX_ITR_RLOCS, decode, encapsulate, encode
from lispd.wire.messages import MapNotify, MapNotifyAck, MapReply, MapRequest
from lispd.wire.records import EidRecord

__all__ = [
    "DEFAULT_LIMITS",
    "PendingRequest",
    "RequestReason",
    "Resolver",
    "ResolverLimits",
    "entry_of",
]

DEFAULT_LIMITS = ResolverLimits()


class Resolver:
    """The ITR side of the mapping system (RFC 9301 sections 5.3, 6.1, 8.3; RFC 9437)."""

    def __init__(
        self,
        mapcache: MapCache,
        map_resolvers: tuple[IPAddress, ...],
        itr_rlocs: tuple[IPAddress, ...],
        *,
        map_servers: tuple[MapServerPeer, ...] = (),
        subscribe: bool = False,
        pitr: bool = False,
        xtr_id: int = 0,
        site_id: int = 0,
        nonces: Callable[[], int] = random_nonce,
        limits: ResolverLimits = DEFAULT_LIMITS,
    ) -> None:
        if not (0 <= xtr_id < 2**128 and 0 <= site_id < 2**64):
            raise ValueError("xTR-ID is 128 bits and Site-ID 64 bits, unsigned")
        self._mapcache = mapcache
        self._pitr = pitr
        self._map_resolvers: tuple[IPAddress, ...] = ()
        self.set_map_resolvers(map_resolvers)
        self._itr_rlocs: tuple[IPAddress, ...] = ()
        self.set_itr_rlocs(itr_rlocs)
        self._servers: dict[IPAddress, MapServerPeer] = {}
        self.set_map_servers(map_servers)
        self._subscribe = subscribe
        self._xtr_id = xtr_id
        self._site_id = site_id
        self._nonces = nonces
        self.limits = limits
        # The refresh must fall before expiry even if `used` only comes once a tick.
        self._refresh_min = max(limits.refresh_min, limits.used_interval)
        self._table = RequestTable(limits)
        self.counters: dict[str, int] = {}

    # -- configuration ---------------------------------------------------------

    def set_itr_rlocs(self, rlocs: Iterable[IPAddress]) -> None:
        """This node's RLOCs changed (it moved); later Map-Requests carry the new ones."""
        # At most 32 ITR-RLOCs fit a Map-Request (5-bit IRC, section 5.2).
        self._itr_rlocs = tuple(rlocs)[:MAX_ITR_RLOCS]

    def set_map_resolvers(self, map_resolvers: Iterable[IPAddress]) -> None:
        self._map_resolvers = tuple(map_resolvers)
        self._preferred = 0

    def set_map_servers(self, map_servers: Iterable[MapServerPeer]) -> None:
        """The map-servers whose pub/sub Map-Notifies are believed, with their keys."""
        self._servers = {server.address: server for server in map_servers}

    # -- inputs ----------------------------------------------------------------

    def miss(
        self, instance_id: int, address: IPAddress, packet: bytes | None, now: float
    ) -> Output:
        """The data plane had no entry for ``address`` in ``instance_id``."""
        entry = self._mapcache.lookup(instance_id, address, now)
        if entry is not None and not asks_for_request(entry):
            # The answer arrived between the data plane's lookup and this call.
            if packet is None:
                return Output()
            self._count("released_at_once")
            return Output(released=(Released(instance_id, packet),))
        key = EidPrefix.of(instance_id, address, address.max_prefixlen)
        request = self._table.get(key) or self._open(key, RequestReason.MISS, now)
        if request is None:
            if packet is not None:
                self._count("packets_dropped")
            return Output()
        request.reason = RequestReason.MISS  # a refresh of a host entry that packets now need
        if packet is not None:
            if self._table.enqueue(request, packet):
                self._count("packets_queued")
            else:
                self._count("queue_overflow")
        return self._run(now)

    def used(self, prefixes: Iterable[EidPrefix], now: float) -> None:
        """The data plane used these entries: refresh those about to expire (section 6.1).

        Refreshes are only scheduled here; ``timer`` sends them (next_timer is now).
        """
        for prefix in prefixes:
            entry = self._mapcache.get(prefix)
            if (
                entry is None
                or entry.static
                or entry.negative
                or entry.expired(now)
                or not isinstance(prefix.address, IPv4Address | IPv6Address)
                or prefix in self._table
                or now < self._refresh_at(entry)
            ):
                continue
            if self._open(prefix, RequestReason.REFRESH, now) is not None:
                self._count("refreshes_started")

    def receive(
        self, payload: bytes, source: IPAddress, source_port: int, now: float
    ) -> Output:
        """One datagram from (source, source_port) arrived on the control port."""
        try:
            message = decode(payload)
        except DecodeError:
            self._count("malformed")
            return Output()
        match message:
            case MapReply(probe=True):
                self._count("probe_reply_ignored")  # the RLOC prober's, not ours
            case MapReply():
                return self._map_reply(message, now)
            case MapNotifyAck():
                self._count("unexpected")
            case MapNotify():
                return self._map_notify(message, payload, source, source_port, now)
            case MapRequest(smr=True):
                return self._solicit_map_request(message, now)
            case _:
                self._count("unexpected")
        return Output()

    def timer(self, now: float) -> Output:
        """Send what is due, give up what waited too long, expire old entries."""
        expired = self._mapcache.expire(now)
        if expired:
            self._count("entries_expired", len(expired))
        return Output(changes=tuple(expired)) + self._run(now)

    def next_timer(self) -> float | None:
        """When ``timer`` wants to be called next, or None."""
        candidates = []
        head = self._table.head()
        if head is not None:
            due = head.due
            if head.attempts < self.limits.max_attempts:  # giving up needs no token
                due = max(due, self._table.bucket.ready_at())
            candidates.append(due)
        expiry = self._mapcache.next_expiry()
        if expiry is not None:
            candidates.append(expiry)
        return min(candidates, default=None)

    # -- state -----------------------------------------------------------------

    def pending(self) -> tuple[PendingRequest, ...]:
        """The outstanding Map-Requests, oldest first."""
        return self._table.pending(self._map_resolvers)

    @property
    def queued_packets(self) -> int:
        return self._table.queued

    # -- requests --------------------------------------------------------------

    def _open(self, key: EidPrefix, reason: RequestReason, now: float) -> Request | None:
        if not self._map_resolvers:
            self._count("no_map_resolver")
            return None
        if not self._itr_rlocs:
            self._count("no_itr_rloc")
            return None
        request = self._table.open(key, reason, now)
        if isinstance(request, str):
            self._count(request)
            return None
        if request.due > now:
            self._count("rate_limited")
        return request

    def _run(self, now: float) -> Output:
        """Send, retry or give up every request that is due, within the rate limits."""
        table = self._table
        datagrams: list[Datagram] = []
        while (request := table.head()) is not None and request.due <= now:
            if request.attempts >= self.limits.max_attempts:
                self._give_up(request)
            elif not table.bucket.ready(now):
                # In order: everything behind the head waits for the next token too.
                self._count("rate_limited_global")
                break
            else:
                datagram = self._send(request, now)
                if datagram is not None:
                    datagrams.append(datagram)
        return Output(datagrams=tuple(datagrams))

    def _send(self, request: Request, now: float) -> Datagram | None:
        resolvers = self._map_resolvers
        if not resolvers or not self._itr_rlocs:
            self._count("no_map_resolver" if not resolvers else "no_itr_rloc")
            self._give_up(request)
            return None
        # Failover: each retry goes to the next map-resolver (section 8.3).
        index = (
            self._preferred % len(resolvers)
            if request.resolver is None
            else (request.resolver + 1) % len(resolvers)
        )
        nonce = self._nonces()
        try:
            payload = self._encapsulated_request(request, nonce, resolvers[index])
        except EncodeError:
            self._count("encode_error")
            self._give_up(request)
            return None
        backoff = min(self.limits.first_retry * 2**request.attempts, self.limits.max_retry)
        self._table.sent(request, nonce, index, now, now + backoff)
        self._count("map_requests_sent")
        if request.attempts > 1:
            self._count("retries")
        return Datagram(resolvers[index], LISP_CONTROL_PORT, payload)

    def _encapsulated_request(self, request: Request, nonce: int, towards: IPAddress) -> bytes:
        """An ECM'd Map-Request for the request's prefix (sections 5.2 and 5.8),
        our RLOCs of the map-resolver's family first: the answer goes to the first."""
        key = request.key
        eid = key.address
        assert isinstance(eid, IPv4Address | IPv6Address)
        message = MapRequest(
            nonce,
            itr_rlocs_for(itr_rlocs_for(self._itr_rlocs, towards), towards),
            (EidRecord(wire_eid(key), key.length, notify=self._subscribe),),
            smr_invoked=request.reason is RequestReason.SMR_INVOKED,
            pitr=self._pitr,
            xtr_id=self._xtr_id if self._subscribe else None,
            site_id=self._site_id if self._subscribe else None,
        )
        # The inner header is of the EID's family; with no RLOC of that family
        # the unspecified address stands in (answers go to the ITR-RLOCs).
        source = next(
            (rloc for rloc in self._itr_rlocs if rloc.version == eid.version),
            IPv4Address(0) if eid.version == 4 else IPv6Address(0),
        )
        return encode(encapsulate(message, source, eid))

    def _give_up(self, request: Request) -> None:
        dropped = self._table.close(request)
        self._count("resolution_failed")
        if dropped:
            self._count("queued_dropped", len(dropped))

    def _refresh_at(self, entry: MapEntry) -> float:
        """When an entry in use is asked for again: a tenth of its TTL (at least
        ``refresh_min``) before expiry, but never in the first half of its life."""
        assert entry.ttl is not None
        margin = max(entry.ttl * self.limits.refresh_fraction, self._refresh_min)
        return max(entry.created + entry.ttl / 2, entry.created + entry.ttl - margin)

    # -- answers ---------------------------------------------------------------

    def _map_reply(self, reply: MapReply, now: float) -> Output:
        """RFC 9301 section 5.4: a Map-Reply to one of our outstanding requests."""
        found = self._table.by_nonce(reply.nonce)
        if found is None:
            self._count("unknown_nonce")
            return Output()
        request, resolver = found
        records = ip_records(reply.records)
        if not records:
            self._count("reply_malformed")
            return Output()
        if not all(overlaps(prefix, request.key) for prefix, _ in records):
            # An answer about something we did not ask for is not believed.
            self._count("reply_prefix_mismatch")
            return Output()
        self._count("replies_accepted")
        self._preferred = resolver
        changes, installed = self._apply(records, now)
        # The nonce matched: this request is answered, even if nothing in the
        # answer could be installed; asking again would get the same answer.
        released = self._settle(installed, request.key)
        return Output(changes=tuple(changes), released=released)

    def _map_notify(
        self, notify: MapNotify, payload: bytes, source: IPAddress, port: int, now: float
    ) -> Output:
        """RFC 9437 section 5: a publication from a map-server we subscribed with."""
        server = self._servers.get(source)
        if server is None:
            self._count("notify_unknown_source")
            return Output()
        good = auth.authentic(payload, server.key)
        if not good:
            self._count("notify_bad_auth")
            return Output()
        if notify.xtr_id is not None and notify.xtr_id != self._xtr_id:
            self._count("notify_wrong_xtr_id")
            return Output()
        records = ip_records(notify.records)
        if records is None:
            self._count("notify_malformed")
            return Output()
        self._count("notify_accepted")
        changes, installed = self._apply(records, now)
        released = self._settle(installed, None)
        ack = MapNotifyAck(
            notify.nonce, notify.records, xtr_id=notify.xtr_id, site_id=notify.site_id
        )
        datagrams: tuple[Datagram, ...] = ()
        try:
            datagrams = (Datagram(source, port, encode(auth.sign(ack, server.key, server.key_id))),)
            self._count("notify_acks_sent")
        except EncodeError:
            self._count("encode_error")
        return Output(datagrams, tuple(changes), released)

    def _solicit_map_request(self, smr: MapRequest, now: float) -> Output:
        """RFC 9301 section 6.1.2: ask the mapping system again; believe nothing in the SMR.

        Which EID changed, implementations say in either field: lispd names
        it in the record (and as source EID); OpenOverlayRouter as the source
        EID, its record being one of the ITR's own EIDs the traffic came from
        (covered by no entry here: ignored)."""
        self._count("smr_received")
        named = [eid_prefix_of(r.eid_prefix, r.mask_len) for r in smr.records]
        source = smr.source_eid
        if isinstance(source, InstanceIdAddress):
            named.append(eid_prefix_of(source, source.address.max_prefixlen)
                         if isinstance(source.address, IPv4Address | IPv6Address) else None)
        elif isinstance(source, IPv4Address | IPv6Address):
            named.append(eid_prefix_of(source, source.max_prefixlen))
        for prefix in dict.fromkeys(named):  # lispd's source EID repeats its record
            entry = None
            if prefix is not None and isinstance(prefix.address, IPv4Address | IPv6Address):
                entry = covering_entry(self._mapcache, prefix.instance_id, prefix.address, now)
            if entry is None or entry.static or entry.prefix in self._table:
                self._count("smr_ignored")
            elif self._open(entry.prefix, RequestReason.SMR_INVOKED, now) is not None:
                self._count("smr_invoked")
        return self._run(now)

    def _apply(
        self, records: PrefixedRecords, now: float
    ) -> tuple[list[Change], list[EidPrefix]]:
        """Install (or withdraw) the records' entries: the changes, the installed prefixes."""
        changes: list[Change] = []
        installed: list[EidPrefix] = []
        for prefix, record in records:
            current = self._mapcache.get(prefix)
            if current is not None and current.static:
                # The operator's static mapping outranks anything the network says.
                self._count("static_kept")
                continue
            # Record TTL 0: remove at once (section 5.4). A publication of
            # unregistered space (no locators, a TTL) is the negative entry a
            # Map-Reply would have given; withdrawing it would only make the
            # next packet ask again.
            if record.ttl == 0:
                withdrawn = self._mapcache.withdraw(prefix)
                self._count("entries_withdrawn", len(withdrawn))
                changes.extend(withdrawn)
                continue
            entry = mapping_entry(prefix, record, self.limits.max_ttl)
            if entry is None:
                self._count("unusable_record")  # locators, but none of them IP
                continue
            try:
                changes.extend(self._mapcache.insert(entry, now))
            except MapCacheFull:
                self._count("mapcache_full")
                continue
            self._count("entries_installed")
            installed.append(prefix)
        return changes, installed

    def _settle(
        self, installed: list[EidPrefix], answered: EidPrefix | None
    ) -> tuple[Released, ...]:
        """Close the requests the new entries answer; their packets go, oldest first."""
        if not installed and answered is None:
            return ()
        done = [
            request
            for request in self._table
            if request.key == answered
            or any(
                prefix == request.key
                or (request.reason is RequestReason.MISS and inside(request.key, prefix))
                for prefix in installed
            )
        ]
        packets = sorted(
            (seq, request.key.instance_id, packet)
            for request in done
            for seq, packet in self._table.close(request)
        )
        if packets:
            self._count("packets_released", len(packets))
        return tuple(Released(iid, packet) for _, iid, packet in packets)

    def _count(self, reason: str, n: int = 1) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + n
