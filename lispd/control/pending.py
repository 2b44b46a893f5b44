"""The resolver's table of outstanding Map-Requests (RFC 9301 section 5.3).

Pure bookkeeping for lispd.control.resolver, no protocol: which requests
are outstanding (at most one per EID prefix), when each is next due (first
send, retry or give-up), which nonces belong to which request, which packets
wait for it, and the rate limits (one Map-Request per EID prefix per second,
a global token bucket). Bounded everywhere: requests by ``max_pending``,
packets per request and in total, nonces by the attempts of live requests,
send times by pruning those older than the per-EID interval.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from lispd.control.itr import IPAddress, TokenBucket
from lispd.mapcache import EidPrefix

__all__ = [
    "MIN_REQUEST_INTERVAL",
    "PendingRequest",
    "Request",
    "RequestReason",
    "RequestTable",
    "ResolverLimits",
]

MIN_REQUEST_INTERVAL = 1.0
"""RFC 9301 section 5.3: one Map-Request per EID-prefix per second at most."""


class RequestReason(Enum):
    """Why a Map-Request is outstanding (RFC 9301 sections 6.1 and 6.1.2)."""

    MISS = "miss"
    REFRESH = "refresh"
    SMR_INVOKED = "smr-invoked"


@dataclass(frozen=True)
class PendingRequest:
    """An outstanding Map-Request, for display (``lispctl``).

    ``attempts`` counts the Map-Requests sent so far, ``nonce`` is the latest
    one's, ``due`` is when the request next needs attention (its first send,
    a retry, or giving up), ``queued`` the packets waiting for it.
    """

    prefix: EidPrefix
    reason: RequestReason
    attempts: int
    nonce: int | None
    map_resolver: IPAddress | None
    created: float
    due: float
    queued: int


@dataclass(frozen=True)
class ResolverLimits:
    """The resolver's bounds and timers (RFC 9301 sections 5.3 and 6.1), with defaults.

    Queues: ``queue_per_eid`` packets wait per EID, ``queue_total`` in all;
    ``max_pending`` requests are outstanding at most. Rate: ``request_rate``
    Map-Requests per second overall, ``request_burst`` at once. Retries:
    after ``first_retry`` seconds, doubling up to ``max_retry``, and
    ``max_attempts`` sends in all. Answers live ``max_ttl`` seconds at most.
    Refresh: when ``refresh_fraction`` of the TTL, at least ``refresh_min``
    seconds and one ``used_interval``, is left.
    """

    queue_per_eid: int = 16
    queue_total: int = 1024
    max_pending: int = 1024
    request_rate: float = 100.0
    request_burst: int = 100
    max_attempts: int = 5
    first_retry: float = 1.0
    max_retry: float = 8.0
    max_ttl: float = 86400.0
    refresh_fraction: float = 0.1
    refresh_min: float = 5.0
    used_interval: float = 1.0

    def __post_init__(self) -> None:
        counts = (
            self.queue_per_eid, self.queue_total, self.max_pending, self.request_burst,
            self.max_attempts,
        )
        if min(counts) < 1:
            raise ValueError("queue, pending, burst and attempt limits must be at least 1")
        if not MIN_REQUEST_INTERVAL <= self.first_retry <= self.max_retry:
            raise ValueError(f"retries need {MIN_REQUEST_INTERVAL} <= first_retry <= max_retry")
        if not (self.request_rate > 0 and self.max_ttl > 0 and 0 <= self.refresh_fraction < 1):
            raise ValueError("request rate and max TTL must be > 0, refresh fraction in [0, 1)")


class Request:
    """One outstanding request; the table and the resolver update it in place."""

    __slots__ = ("attempts", "created", "due", "key", "nonces", "packets", "reason", "resolver")

    def __init__(self, key: EidPrefix, reason: RequestReason, created: float) -> None:
        self.key = key
        self.reason = reason
        self.created = created
        self.due = created
        self.attempts = 0
        self.nonces: list[int] = []
        self.packets: list[tuple[int, bytes]] = []  # (arrival sequence, packet)
        self.resolver: int | None = None  # index of the map-resolver last asked


class RequestTable:
    """Outstanding requests keyed by EID prefix, due times in a heap, packets in queues."""

    def __init__(self, limits: ResolverLimits) -> None:
        self._queue_per_eid = limits.queue_per_eid
        self._queue_total = limits.queue_total
        self._max_pending = limits.max_pending
        self.bucket = TokenBucket(limits.request_rate, limits.request_burst)
        self._requests: dict[EidPrefix, Request] = {}
        self._by_nonce: dict[int, tuple[EidPrefix, int]] = {}  # nonce -> (key, resolver)
        self._heap: list[tuple[float, int, EidPrefix]] = []  # (due, seq, key)
        self._live: dict[EidPrefix, int] = {}  # key -> seq of its current heap item
        self._seq = 0  # orders heap items and queued packets
        self._last_sent: dict[EidPrefix, float] = {}
        self._prune_at = 256
        self.queued = 0

    def __len__(self) -> int:
        return len(self._requests)

    def __contains__(self, key: object) -> bool:
        return key in self._requests

    def __iter__(self) -> Iterator[Request]:
        return iter(list(self._requests.values()))

    def get(self, key: EidPrefix) -> Request | None:
        return self._requests.get(key)

    def by_nonce(self, nonce: int) -> tuple[Request, int] | None:
        """The request a nonce was sent for, and the map-resolver it went to."""
        found = self._by_nonce.get(nonce)
        request = None if found is None else self._requests.get(found[0])
        return None if found is None or request is None else (request, found[1])

    def open(self, key: EidPrefix, reason: RequestReason, now: float) -> Request | str:
        """A new request, due at once or when the per-EID limit allows; or why not."""
        if len(self._requests) >= self._max_pending:
            return "pending_full"
        request = Request(key, reason, now)
        self._requests[key] = request
        self.schedule(request, max(now, self.earliest(key)))
        return request

    def earliest(self, key: EidPrefix) -> float:
        """When a Map-Request for ``key`` may be sent next (section 5.3)."""
        return self._last_sent.get(key, -math.inf) + MIN_REQUEST_INTERVAL

    def enqueue(self, request: Request, packet: bytes) -> bool:
        """Queue a packet behind the request; False (not queued) when a bound is reached."""
        if len(request.packets) >= self._queue_per_eid or self.queued >= self._queue_total:
            return False
        self._seq += 1
        request.packets.append((self._seq, packet))
        self.queued += 1
        return True

    def schedule(self, request: Request, due: float) -> None:
        self._seq += 1
        request.due = due
        self._live[request.key] = self._seq
        heapq.heappush(self._heap, (due, self._seq, request.key))
        # Rescheduling leaves stale items behind; rebuild before they dominate.
        if len(self._heap) > 2 * len(self._requests) + 64:
            self._heap = [(r.due, self._live[k], k) for k, r in self._requests.items()]
            heapq.heapify(self._heap)

    def head(self) -> Request | None:
        """The request due first (stale heap items are dropped on the way)."""
        heap = self._heap
        while heap:
            _, seq, key = heap[0]
            request = self._requests.get(key)
            if request is not None and self._live.get(key) == seq:
                return request
            heapq.heappop(heap)
        return None

    def sent(
        self, request: Request, nonce: int, resolver: int, now: float, retry_at: float
    ) -> None:
        """Note a Map-Request sent for ``request`` and when to try again."""
        self.bucket.take()
        request.attempts += 1
        request.resolver = resolver
        request.nonces.append(nonce)
        self._by_nonce[nonce] = (request.key, resolver)
        self._last_sent[request.key] = now
        self.schedule(request, retry_at)
        if len(self._last_sent) > self._prune_at:
            self._last_sent = {
                key: at
                for key, at in self._last_sent.items()
                if at + MIN_REQUEST_INTERVAL > now or key in self._requests
            }
            self._prune_at = max(256, 2 * len(self._last_sent))

    def close(self, request: Request) -> list[tuple[int, bytes]]:
        """Forget the request and its nonces; its queued (sequence, packet) pairs."""
        del self._requests[request.key]
        self._live.pop(request.key, None)
        for nonce in request.nonces:
            self._by_nonce.pop(nonce, None)
        self.queued -= len(request.packets)
        return request.packets

    def pending(self, resolvers: tuple[IPAddress, ...]) -> tuple[PendingRequest, ...]:
        """Every outstanding request, oldest first."""
        return tuple(
            PendingRequest(
                r.key,
                r.reason,
                r.attempts,
                r.nonces[-1] if r.nonces else None,
                resolvers[r.resolver % len(resolvers)]
                if r.resolver is not None and resolvers
                else None,
                r.created,
                r.due,
                len(r.packets),
            )
            for r in sorted(self._requests.values(), key=lambda r: r.created)
        )
