"""Map-Notifies the Map-Server sends on its own, retransmitted until acknowledged.

RFC 9301 section 5.7: a Map-Notify that is not the answer to a Map-Register
(here: to a registrant whose prefix another xTR took over, and every
RFC 9437 notification to a subscriber) is acknowledged by a Map-Notify-Ack
with the same nonce, authenticated with the same key. Until it comes, the
Map-Notify is sent again every ``NOTIFY_RETRY`` seconds, ``NOTIFY_RETRANSMITS``
times at most; then the Map-Server gives up (and says so to its caller).

One Map-Notify is outstanding per key: a newer one for the same subscription
replaces it, since the subscriber needs only the latest state. The table is
bounded: past the limit a Map-Notify still goes out once, untracked.
Due times sit in a heap with lazy deletion (an acknowledged or replaced
entry is dropped when it surfaces).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, replace

from lispd.control.events import Datagram
from lispd.mapcache import EidPrefix

__all__ = [
    "DEFAULT_MAX_PENDING",
    "NOTIFY_RETRANSMITS",
    "NOTIFY_RETRY",
    "Notifier",
    "NotifyKey",
    "PendingNotify",
]

DEFAULT_MAX_PENDING = 16_384

NOTIFY_RETRY = 1.0
"""Seconds between sends of an unacknowledged Map-Notify."""

NOTIFY_RETRANSMITS = 3
"""Times an unacknowledged Map-Notify is sent again before giving up."""

NotifyKey = tuple[int, EidPrefix] | int
"""What an outstanding Map-Notify is about: a subscription's (xTR-ID, prefix),
or, for one to a displaced registrant, its own nonce."""


@dataclass(frozen=True, slots=True)
class PendingNotify:
    """A Map-Notify awaiting its Map-Notify-Ack.

    ``site`` names the key the Ack must be signed with; ``sends`` counts the
    transmissions so far; ``due`` is when the next one (or giving up) is.
    """

    key: NotifyKey
    nonce: int
    site: str
    datagram: Datagram
    sends: int
    due: float


class Notifier:
    """Outstanding Map-Notifies: retransmitted until acknowledged (RFC 9301 section 5.7)."""

    def __init__(
        self, limit: int = DEFAULT_MAX_PENDING, count: Callable[[str], None] = lambda _: None
    ) -> None:
        self.limit = limit
        self._count = count
        self._pending: dict[NotifyKey, PendingNotify] = {}
        self._by_nonce: dict[int, set[NotifyKey]] = {}
        self._heap: list[tuple[float, int, NotifyKey]] = []
        self._pushed = 0

    def __len__(self) -> int:
        return len(self._pending)

    def track(
        self, key: NotifyKey, nonce: int, site: str, datagram: Datagram, now: float
    ) -> None:
        """Start waiting for the Ack of a Map-Notify just sent (``site`` names the key)."""
        if self.done(key) is not None:
            self._count("map_notify_superseded")
        if len(self._pending) >= self.limit:
            self._count("map_notify_untracked")  # it goes out once, unretransmitted
            return
        pending = PendingNotify(key, nonce, site, datagram, sends=1, due=now + NOTIFY_RETRY)
        self._pending[key] = pending
        self._by_nonce.setdefault(nonce, set()).add(key)
        self._pushed += 1
        heapq.heappush(self._heap, (pending.due, self._pushed, key))
        # Acknowledged notifies leave their entries behind: rebuild before
        # the stale ones dominate.
        if len(self._heap) > 2 * len(self._pending) + 64:
            self._heap = [(p.due, n, k)
                          for n, (k, p) in enumerate(self._pending.items(), self._pushed + 1)]
            self._pushed += len(self._heap)
            heapq.heapify(self._heap)

    def with_nonce(self, nonce: int) -> list[PendingNotify]:
        """The outstanding Map-Notifies with this nonce (usually one, rarely none)."""
        return [self._pending[k] for k in self._by_nonce.get(nonce, ())]

    def done(self, key: NotifyKey) -> PendingNotify | None:
        """Stop retransmitting (acknowledged, replaced or moot); its heap entry goes stale."""
        pending = self._pending.pop(key, None)
        if pending is not None:
            keys = self._by_nonce[pending.nonce]
            keys.discard(key)
            if not keys:
                del self._by_nonce[pending.nonce]
        return pending

    def _settle(self) -> None:
        heap = self._heap
        while heap:
            when, _, key = heap[0]
            current = self._pending.get(key)
            if current is None or current.due != when:
                # Acknowledged or replaced (a replacement has its own entry).
                heapq.heappop(heap)
            else:
                return

    def next_due(self) -> float | None:
        self._settle()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> tuple[list[Datagram], list[PendingNotify]]:
        """The retransmissions due at now, and the Map-Notifies given up on."""
        out: list[Datagram] = []
        given_up: list[PendingNotify] = []
        while (when := self.next_due()) is not None and when <= now:
            _, _, key = heapq.heappop(self._heap)
            pending = self._pending[key]
            if pending.sends > NOTIFY_RETRANSMITS:
                self.done(key)
                given_up.append(pending)
                continue
            again = replace(pending, sends=pending.sends + 1, due=now + NOTIFY_RETRY)
            self._pending[key] = again
            self._pushed += 1
            heapq.heappush(self._heap, (again.due, self._pushed, key))
            out.append(pending.datagram)
        return out, given_up
