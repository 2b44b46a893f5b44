"""RLOC probing: is each locator of the mappings in use still reachable?

A sans-IO protocol machine (DESIGN principle 2), RFC 9301 section 7.1. For
every locator of every positive map-cache entry that the data plane uses
(``used``), an RLOC-probe Map-Request (P bit, not encapsulated, a fresh
nonce, the entry's EID prefix as its record, this node's ITR-RLOCs) goes to
the locator's address, port 4342, every ``interval`` seconds. A probe not
answered within ``timeout`` is a miss; after ``misses`` consecutive misses the
locator is marked down in the map-cache (the entry re-inserted with
``up=False``, an Installed change the daemon mirrors into the C table). A
down locator keeps being probed; the first good answer (a Map-Reply with the
P bit and the nonce of a recent probe to that locator, from that locator's
address) marks it up again.

"Down" wins until a probe says otherwise: if the entry is replaced (a
refresh whose R bit says up) while the prober holds a locator down, the
prober marks it down again; a locator the mapping system says is down (R
bit clear) is taken as down until a probe answers.

Probing is bounded: only entries used within ``idle_timeout`` are probed,
and at most ``max_probed`` (prefix, locator) pairs at once.

The map-cache stamps an insert with ``now``; to keep an entry's expiry where
it was, a re-insert carries the remaining lifetime as its TTL.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from lispd.control.events import Datagram, Output, random_nonce
from lispd.control.itr import IPAddress, itr_rlocs_for
from lispd.mapcache import Change, EidPrefix, MapCache, MapEntry, wire_eid
from lispd.wire import DecodeError, EncodeError
from lispd.wire.control import LISP_CONTROL_PORT, MAX_ITR_RLOCS, decode, encode
from lispd.wire.messages import MapReply, MapRequest
from lispd.wire.records import EidRecord

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_MISSES",
    "DEFAULT_TIMEOUT",
    "ProbeState",
    "RlocProber",
]

DEFAULT_INTERVAL = 30.0
"""Seconds between two probes of one locator."""
DEFAULT_TIMEOUT = 2.0
"""Seconds a probe waits for its answer (at most the interval)."""
DEFAULT_MISSES = 3
"""Consecutive unanswered probes that mark a locator down."""


@dataclass(frozen=True)
class ProbeState:
    """One probed (EID prefix, locator) pair, for display (``lispctl``)."""

    prefix: EidPrefix
    locator: IPAddress
    up: bool
    misses: int
    probes_sent: int
    last_sent: float | None
    last_reply: float | None
    rtt: float | None


class _Pair:
    __slots__ = (
        "deadline",
        "last_reply",
        "last_sent",
        "locator",
        "misses",
        "next_probe",
        "outstanding",
        "prefix",
        "probes_sent",
        "rtt",
        "sent",
        "up",
    )

    def __init__(self, prefix: EidPrefix, locator: IPAddress, up: bool, now: float) -> None:
        self.prefix = prefix
        self.locator = locator
        self.up = up
        self.misses = 0
        self.probes_sent = 0
        self.last_sent: float | None = None
        self.last_reply: float | None = None
        self.rtt: float | None = None
        self.next_probe = now
        self.outstanding: int | None = None  # nonce of the latest probe, while unanswered
        self.deadline: float | None = None  # ... and when it counts as missed
        self.sent: deque[tuple[int, float]] = deque()  # recent (nonce, sent at)

    def wake(self) -> float:
        return self.next_probe if self.deadline is None else min(self.deadline, self.next_probe)


class _Watched:
    """A map-cache entry being probed: when it was last used, the version we saw."""

    __slots__ = ("entry", "last_used", "pairs")

    def __init__(self, last_used: float) -> None:
        self.last_used = last_used
        self.entry: MapEntry | None = None
        self.pairs: dict[IPAddress, _Pair] = {}


_PairKey = tuple[EidPrefix, IPAddress]


class RlocProber:
    """RLOC-probing of the locators of the map-cache entries in use (RFC 9301 section 7.1)."""

    def __init__(
        self,
        mapcache: MapCache,
        itr_rlocs: tuple[IPAddress, ...],
        *,
        interval: float = DEFAULT_INTERVAL,
        timeout: float | None = None,
        misses: int = DEFAULT_MISSES,
        nonces: Callable[[], int] = random_nonce,
        idle_timeout: float = 60.0,
        max_probed: int = 1024,
    ) -> None:
        timeout = min(DEFAULT_TIMEOUT, interval) if timeout is None else timeout
        if not 0 < timeout <= interval:
            raise ValueError(f"probe timeout {timeout} must be > 0 and at most the interval")
        if misses < 1 or max_probed < 1 or not idle_timeout > 0:
            raise ValueError("misses and max_probed must be at least 1, idle_timeout > 0")
        self._mapcache = mapcache
        self._itr_rlocs: tuple[IPAddress, ...] = ()
        self.set_itr_rlocs(itr_rlocs)
        self.interval = interval
        self.timeout = timeout
        self.misses = misses
        self._nonces = nonces
        self._idle_timeout = idle_timeout
        self._max_probed = max_probed
        self._watched: dict[EidPrefix, _Watched] = {}
        self._pairs = 0
        self._by_nonce: dict[int, _PairKey] = {}
        self._heap: list[tuple[float, int, EidPrefix, IPAddress]] = []
        self._live: dict[_PairKey, int] = {}  # pair -> seq of its current heap item
        self._to_adopt: dict[EidPrefix, float] = {}  # newly used prefixes -> since when
        self._seq = 0
        self.counters: dict[str, int] = {}

    def set_itr_rlocs(self, rlocs: Iterable[IPAddress]) -> None:
        """This node's RLOCs changed; later probes carry the new ones."""
        self._itr_rlocs = tuple(rlocs)[:MAX_ITR_RLOCS]

    # -- inputs ----------------------------------------------------------------

    def used(self, prefixes: Iterable[EidPrefix], now: float) -> None:
        """The data plane used these entries: probe their locators (from ``timer``)."""
        for prefix in prefixes:
            entry = self._mapcache.get(prefix)
            watched = self._watched.get(prefix)
            if watched is not None:
                watched.last_used = now
                if entry is watched.entry:
                    continue
            elif entry is None or entry.negative or entry.expired(now):
                continue
            else:
                self._watched[prefix] = _Watched(now)
            # A new or replaced entry is adopted in timer, where changes can be returned.
            self._to_adopt.setdefault(prefix, now)

    def receive(
        self, payload: bytes, source: IPAddress, source_port: int, now: float
    ) -> Output:
        """A probe reply (Map-Reply with the P bit) arrived from (source, source_port)."""
        try:
            message = decode(payload)
        except DecodeError:
            self._count("malformed")
            return Output()
        if not isinstance(message, MapReply) or not message.probe:
            self._count("unexpected")
            return Output()
        key = self._by_nonce.get(message.nonce)
        pair = None if key is None else self._pair(*key)
        if pair is None:
            self._count("unknown_nonce")
            return Output()
        if source != pair.locator:
            # Someone else presenting the nonce proves nothing about the locator.
            self._count("wrong_source")
            return Output()
        sent_at = next((at for nonce, at in pair.sent if nonce == message.nonce), now)
        self._by_nonce.pop(message.nonce)
        pair.sent = deque((n, at) for n, at in pair.sent if n != message.nonce)
        self._count("probe_replies")
        pair.misses = 0
        pair.last_reply = now
        pair.rtt = now - sent_at
        if message.nonce == pair.outstanding:
            pair.outstanding = pair.deadline = None
        # A refreshed entry not yet seen must be adopted before it is marked.
        changes = self._adopt(pair.prefix, now)
        if self._pair(pair.prefix, pair.locator) is not pair:
            return Output(changes=tuple(changes))  # the entry or the locator is gone
        if not pair.up:
            pair.up = True
            self._count("locator_up")
            changes.extend(self._mark(pair.prefix, pair.locator, True, now))
        self._reschedule(pair)
        return Output(changes=tuple(changes))

    def timer(self, now: float) -> Output:
        """Send the probes that are due; count the unanswered; mark locators down."""
        datagrams: list[Datagram] = []
        changes: list[Change] = []
        to_adopt, self._to_adopt = self._to_adopt, {}
        for prefix in to_adopt:
            changes.extend(self._adopt(prefix, now))
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, prefix, locator = heapq.heappop(heap)
            if self._live.get((prefix, locator)) != seq:
                continue
            del self._live[(prefix, locator)]
            pair = self._pair(prefix, locator)
            if pair is None:
                continue
            watched = self._watched[prefix]
            if now - watched.last_used >= self._idle_timeout:
                self._forget(prefix)
                continue
            changes.extend(self._adopt(prefix, now))
            if self._pair(prefix, locator) is None:
                continue  # the entry went away or lost this locator
            changes.extend(self._step(pair, now, datagrams))
            self._reschedule(pair)
        return Output(tuple(datagrams), tuple(changes))

    def next_timer(self) -> float | None:
        """When ``timer`` wants to be called next, or None."""
        adopt = min(self._to_adopt.values(), default=None)
        heap = self._heap
        while heap:
            _, seq, prefix, locator = heap[0]
            if self._live.get((prefix, locator)) == seq:
                return heap[0][0] if adopt is None else min(adopt, heap[0][0])
            heapq.heappop(heap)
        return adopt

    def state(self) -> tuple[ProbeState, ...]:
        """Every probed (prefix, locator) pair, by prefix then locator."""
        pairs = sorted(
            (pair for watched in self._watched.values() for pair in watched.pairs.values()),
            key=lambda p: (str(p.prefix), p.locator.version, int(p.locator)),
        )
        return tuple(
            ProbeState(
                p.prefix, p.locator, p.up, p.misses, p.probes_sent, p.last_sent,
                p.last_reply, p.rtt,
            )
            for p in pairs
        )

    # -- probing ---------------------------------------------------------------

    def _step(self, pair: _Pair, now: float, datagrams: list[Datagram]) -> list[Change]:
        changes: list[Change] = []
        if pair.deadline is not None and pair.deadline <= now:
            pair.outstanding = pair.deadline = None
            pair.misses += 1
            self._count("probe_timeouts")
            if pair.misses >= self.misses and pair.up:
                pair.up = False
                self._count("locator_down")
                changes = self._mark(pair.prefix, pair.locator, False, now)
        if pair.next_probe <= now:
            datagram = self._probe(pair, now)
            if datagram is not None:
                datagrams.append(datagram)
            pair.next_probe = now + self.interval
        return changes

    def _probe(self, pair: _Pair, now: float) -> Datagram | None:
        """An RLOC-probe Map-Request to the pair's locator (section 7.1)."""
        if not self._itr_rlocs:
            self._count("no_itr_rloc")
            return None
        nonce = self._nonces()
        request = MapRequest(
            nonce,
            itr_rlocs_for(self._itr_rlocs, pair.locator),
            (EidRecord(wire_eid(pair.prefix), pair.prefix.length),),
            probe=True,
        )
        try:
            payload = encode(request)
        except EncodeError:
            self._count("encode_error")
            return None
        # Late answers to the last few probes still count as signs of life.
        if len(pair.sent) >= self.misses + 1:
            old, _ = pair.sent.popleft()
            self._by_nonce.pop(old, None)
        pair.sent.append((nonce, now))
        self._by_nonce[nonce] = (pair.prefix, pair.locator)
        pair.outstanding = nonce
        pair.deadline = now + self.timeout
        pair.probes_sent += 1
        pair.last_sent = now
        self._count("probes_sent")
        return Datagram(pair.locator, LISP_CONTROL_PORT, payload)

    # -- following the map-cache -----------------------------------------------

    def _adopt(self, prefix: EidPrefix, now: float) -> list[Change]:
        """Bring the pairs of a watched prefix in line with its current entry."""
        watched = self._watched.get(prefix)
        if watched is None:
            return []
        entry = self._mapcache.get(prefix)
        if entry is None or entry.negative or entry.expired(now):
            self._forget(prefix)
            return []
        if entry is watched.entry:
            return []
        watched.entry = entry
        locators = {loc.address: loc for loc in entry.locators}
        for address in [a for a in watched.pairs if a not in locators]:
            self._drop(watched.pairs.pop(address))
        hold_down: list[IPAddress] = []
        for address, locator in locators.items():
            pair = watched.pairs.get(address)
            if pair is None:
                if self._pairs >= self._max_probed:
                    self._count("probe_limit")
                    continue
                pair = watched.pairs[address] = _Pair(prefix, address, locator.up, now)
                self._pairs += 1
                self._reschedule(pair)
            elif not pair.up and locator.up:
                hold_down.append(address)  # probes said down; a refresh does not undo that
            elif pair.up and not locator.up:
                pair.up = False  # the mapping system says down; a probe answer undoes that
        if not watched.pairs:
            self._forget(prefix)  # nothing to probe (cap reached): try again when used
            return []
        changes: list[Change] = []
        for address in hold_down:
            changes.extend(self._mark(prefix, address, False, now))
        return changes

    def _mark(self, prefix: EidPrefix, address: IPAddress, up: bool, now: float) -> list[Change]:
        """Re-insert the entry with the locator's ``up`` changed, expiry unchanged."""
        entry = self._mapcache.get(prefix)
        if entry is None or entry.expired(now):
            return []
        locators = tuple(
            replace(loc, up=up) if loc.address == address else loc for loc in entry.locators
        )
        if locators == entry.locators:
            return []
        expires_at = entry.expires_at
        ttl = None if expires_at is None else expires_at - now
        changes = self._mapcache.insert(replace(entry, locators=locators, ttl=ttl), now)
        watched = self._watched.get(prefix)
        if watched is not None:
            watched.entry = self._mapcache.get(prefix)
        return list(changes)

    def _pair(self, prefix: EidPrefix, locator: IPAddress) -> _Pair | None:
        watched = self._watched.get(prefix)
        return None if watched is None else watched.pairs.get(locator)

    def _forget(self, prefix: EidPrefix) -> None:
        watched = self._watched.pop(prefix, None)
        if watched is not None:
            for pair in watched.pairs.values():
                self._drop(pair)
            self._to_adopt.pop(prefix, None)

    def _drop(self, pair: _Pair) -> None:
        self._pairs -= 1
        self._live.pop((pair.prefix, pair.locator), None)
        for nonce, _ in pair.sent:
            self._by_nonce.pop(nonce, None)

    def _reschedule(self, pair: _Pair) -> None:
        self._push(pair.prefix, pair.locator, pair.wake())

    def _push(self, prefix: EidPrefix, locator: IPAddress, when: float) -> None:
        self._seq += 1
        self._live[(prefix, locator)] = self._seq
        heapq.heappush(self._heap, (when, self._seq, prefix, locator))
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [item for item in self._heap if self._live.get(item[2:]) == item[1]]
            heapq.heapify(self._heap)

    def _count(self, reason: str, n: int = 1) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + n

