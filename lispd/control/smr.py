"""Solicit-Map-Request, the ETR side (RFC 9301 section 6.1.2), sans-IO.

When the mapping of a local EID prefix changes (its RLOCs moved, or another
xTR took it over), the ITRs that were sending to us still hold the old
mapping. We tell them with an SMR: a Map-Request with the S bit and the
changed prefix as the source EID. The record names the changed prefix too,
unless this node caches a prefix that the ITR serves: then that one, the
form OpenOverlayRouter's ITR insists on (it acts only on an SMR whose record
is one of its own EIDs; lispd's resolver takes either). An ITR does not trust
the SMR itself: it asks the mapping system again (an SMR-invoked
Map-Request), so a forged SMR can cost a lookup but never redirect traffic.

SMRs are datagrams and may be lost, so each is sent again after `interval`
seconds, `resends` times (the RFC leaves the retransmission policy open; the
ITR side rate-limits what it does with them). The number of ITRs solicited at
once is bounded, so a node with many peers cannot flood the underlay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from lispd.control.events import Datagram, random_nonce
from lispd.mapcache import EidPrefix, wire_eid
from lispd.wire.control import LISP_CONTROL_PORT, encode
from lispd.wire.messages import MapRequest
from lispd.wire.records import EidRecord

__all__ = ["MAX_PENDING", "Solicitor"]

IPAddress = IPv4Address | IPv6Address
MAX_PENDING = 4096
"""(ITR, prefix) pairs with resends outstanding at most; more are sent once."""


@dataclass
class _Pending:
    itr: IPAddress
    prefix: EidPrefix
    theirs: EidPrefix | None
    left: int
    due: float


class Solicitor:
    """Sends SMRs for changed local prefixes to the ITRs that used them."""

    def __init__(
        self,
        resends: int = 2,
        interval: float = 1.0,
        nonces: Callable[[], int] = random_nonce,
    ) -> None:
        self.resends = resends
        self.interval = interval
        self._nonces = nonces
        self._itr_rlocs: tuple[IPAddress, ...] = ()
        self._pending: dict[tuple[IPAddress, EidPrefix], _Pending] = {}
        self.counters: dict[str, int] = {}

    def set_itr_rlocs(self, rlocs: Iterable[IPAddress]) -> None:
        """Our RLOCs, named in the SMR so the ITR can answer (section 5.2)."""
        self._itr_rlocs = tuple(rlocs)

    def solicit(
        self,
        prefixes: Iterable[EidPrefix],
        itrs: Iterable[IPAddress],
        now: float,
        theirs: Mapping[tuple[IPAddress, int], EidPrefix] | None = None,
    ) -> list[Datagram]:
        """SMR every ITR about every prefix, now and `resends` times more;
        `theirs`: an EID prefix behind each ITR by IP version, where this node
        knows one (the ITR answers from an EID of the changed one's family)."""
        out: list[Datagram] = []
        wanted = list(prefixes)
        for itr in itrs:
            for prefix in wanted:
                version = prefix.address.version if isinstance(
                    prefix.address, IPv4Address | IPv6Address) else 0
                their = (theirs or {}).get((itr, version))
                datagram = self._smr(itr, prefix, their)
                if datagram is None:
                    continue
                out.append(datagram)
                key = (itr, prefix)
                if self.resends and (key in self._pending or len(self._pending) < MAX_PENDING):
                    self._pending[key] = _Pending(itr, prefix, their, self.resends,
                                                  now + self.interval)
        return out

    def cancel(self, prefix: EidPrefix) -> None:
        """Stop resending about prefix (it changed again; a new solicit follows)."""
        for key in [k for k in self._pending if k[1] == prefix]:
            del self._pending[key]

    def timer(self, now: float) -> list[Datagram]:
        out: list[Datagram] = []
        for key, pending in list(self._pending.items()):
            if pending.due > now:
                continue
            datagram = self._smr(pending.itr, pending.prefix, pending.theirs)
            if datagram is not None:
                out.append(datagram)
            pending.left -= 1
            pending.due = now + self.interval
            if pending.left <= 0 or datagram is None:
                del self._pending[key]
        return out

    def next_timer(self) -> float | None:
        return min((p.due for p in self._pending.values()), default=None)

    def _smr(self, itr: IPAddress, prefix: EidPrefix,
             theirs: EidPrefix | None) -> Datagram | None:
        if not isinstance(prefix.address, IPv4Address | IPv6Address):
            self._count("smr_not_ip")
            return None
        if not self._itr_rlocs:
            # Without an RLOC of ours the ITR could not answer: nothing to say yet.
            self._count("smr_no_rloc")
            return None
        eid = wire_eid(prefix)
        named = theirs if theirs is not None else prefix
        request = MapRequest(
            self._nonces(),
            self._itr_rlocs,
            (EidRecord(wire_eid(named), named.length),),
            source_eid=eid,
            smr=True,
        )
        self._count("smr_sent")
        return Datagram(itr, LISP_CONTROL_PORT, encode(request))

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1
