"""What an ETR knows of its own EIDs, and its answers for them (RFC 9301).

The registrar (lispd.control.registrar) registers these mappings and hands
Map-Requests for them here:

- ``LocalMapping``: an EID prefix this node is the ETR for, and its RLOCs;
  ``local_records`` is how it goes on the wire (section 5.4: authoritative,
  the TTL, each RLOC with its priority and weight, L bit set).
- ``answer``: sections 5.5 and 6.1.5: a Map-Request for one of our EIDs
  (plain, or carried in an Encapsulated Control Message forwarded by a
  map-server, section 5.8) gets an authoritative Map-Reply (section 5.4)
  with the nonce echoed, sent to the first usable ITR-RLOC at the request's
  source port. RLOC-probe requests (section 7.1, P bit) get a Map-Reply with
  the P bit, and the p bit on our locators. A Solicit-Map-Request is a hint
  for the ITR side, not a question for us.
- ``taken_over``: whether a record (of a map-server's Map-Notify) gives a
  mapping's EIDs to locators that are not ours (mobility: the EID moved).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from lispd.config.model import DatabaseMapping, RlocConfig
from lispd.control.events import Datagram
from lispd.wire.address import Address, InstanceIdAddress
from lispd.wire.control import encode
from lispd.wire.errors import EncodeError
from lispd.wire.messages import MapReply, MapRequest
from lispd.wire.records import EidRecord, LocatorRecord, MappingRecord

__all__ = ["LocalMapping", "answer", "local_records", "taken_over"]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


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


def _eid_address(instance_id: int, prefix: IPNetwork) -> Address:
    """RFC 8060 section 4.1: a non-zero instance-id wraps the EID in an Instance ID LCAF."""
    if instance_id:
        return InstanceIdAddress(instance_id, prefix.network_address)
    return prefix.network_address


def _network(address: Address, mask_len: int) -> tuple[int, IPNetwork] | None:
    """Instance-id and IP network of a wire EID prefix, or None when it is not one."""
    match address:
        case InstanceIdAddress(instance_id=iid, address=IPv4Address() | IPv6Address() as inner):
            pass
        case IPv4Address() | IPv6Address():
            iid, inner = 0, address
        case _:
            return None
    try:
        return iid, ip_network((inner, mask_len), strict=False)
    except ValueError:
        return None


def local_records(
    mapping: LocalMapping, ttl: int, *, probed: bool = False
) -> tuple[MappingRecord, ...]:
    """The mapping as the records of a Map-Register or Map-Reply (section 5.4)."""
    locators = tuple(
        LocatorRecord(
            rloc.address, rloc.priority, rloc.weight, local=True, probed=probed, reachable=True
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


def taken_over(record: MappingRecord, mapping: LocalMapping) -> bool:
    """Whether the record is the mapping's prefix with locators that are not ours.

    Only the same prefix: the map-server's displacement notice carries the
    new registration of exactly the prefix the old registrant held. A wider
    record from another xTR (a publication for a covering prefix) takes
    nothing: with more-specifics registered, the longest match still wins
    (a dynamic EID inside another router's segment prefix)."""
    return _elsewhere(record, mapping) == mapping.eid_prefix


def left_from(record: MappingRecord, mapping: LocalMapping) -> IPNetwork | None:
    """The record's prefix when it lies strictly inside the mapping's and has
    locators that are not ours: part of our prefix is served elsewhere (a
    host that left our segment registered by another xTR)."""
    return _strictly_inside(_elsewhere(record, mapping), mapping)


def back_in(record: MappingRecord, mapping: LocalMapping) -> IPNetwork | None:
    """The record's prefix when it is a withdrawal (no locators, TTL 0) of a
    prefix strictly inside the mapping's: a host that had left is
    registered elsewhere no more."""
    if record.locators or record.ttl != 0:
        return None
    found = _network(record.eid_prefix, record.mask_len)
    if found is None or found[0] != mapping.instance_id:
        return None
    return _strictly_inside(found[1], mapping)


def _strictly_inside(network: IPNetwork | None, mapping: LocalMapping) -> IPNetwork | None:
    prefix = mapping.eid_prefix
    inside = (network is not None and network.version == prefix.version and network != prefix
              and network.subnet_of(prefix))  # type: ignore[arg-type]
    return network if inside else None


def _elsewhere(record: MappingRecord, mapping: LocalMapping) -> IPNetwork | None:
    """The record's prefix, when it is of the mapping's instance and at
    locators none of which are the mapping's (one of ours among them: it is
    still served here, and sending it on would come back to us)."""
    theirs = {loc.locator for loc in record.locators}
    ours: set[Address] = {rloc.address for rloc in mapping.locators}
    if not theirs or not theirs.isdisjoint(ours):
        return None
    found = _network(record.eid_prefix, record.mask_len)
    if found is None or found[0] != mapping.instance_id:
        return None
    return found[1]


def _lookup(mappings: Iterable[LocalMapping], record: EidRecord) -> LocalMapping | None:
    """The most specific mapping that covers the requested EID prefix."""
    found = _network(record.eid_prefix, record.mask_len)
    if found is None:
        return None
    iid, wanted = found
    best: LocalMapping | None = None
    for mapping in mappings:
        if (
            mapping.instance_id == iid
            and mapping.eid_prefix.version == wanted.version
            and wanted.subnet_of(mapping.eid_prefix)  # type: ignore[arg-type]
            and (best is None or mapping.eid_prefix.prefixlen > best.eid_prefix.prefixlen)
        ):
            best = mapping
    return best


def answer(
    request: MapRequest,
    reply_port: int,
    mappings: Iterable[LocalMapping],
    ttl: int,
    count: Callable[[str], None],
) -> list[Datagram]:
    """The Map-Reply to a Map-Request for our EIDs (sections 5.5, 6.1.5 and 7.1)."""
    if request.smr:
        count("smr_ignored")
        return []
    mappings = tuple(mappings)
    found: list[LocalMapping] = []
    for wanted in request.records:
        mapping = _lookup(mappings, wanted)
        if mapping is not None and mapping not in found:
            found.append(mapping)
    if not found:
        count("not_our_eid")
        return []
    itr = next((r for r in request.itr_rlocs if isinstance(r, IPv4Address | IPv6Address)), None)
    if itr is None:
        count("no_usable_itr_rloc")
        return []
    records = tuple(
        record for mapping in found for record in local_records(mapping, ttl, probed=request.probe)
    )
    try:
        payload = encode(MapReply(request.nonce, records, probe=request.probe))
    except EncodeError:
        count("reply_too_large")
        return []
    count("probe_replies_sent" if request.probe else "replies_sent")
    return [Datagram(itr, reply_port, payload)]
