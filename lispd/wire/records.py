r"""Mapping records, locator records and Map-Request EID records.

RFC 9301 section 5.4, the Mapping Record (in Map-Reply, Map-Register,
Map-Notify, and the optional Map-Reply record of a Map-Request):

        0                   1                   2                   3
        0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
       +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   +-> |                          Record TTL                           |
   |   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   R   | Locator Count | EID mask-len  | ACT |A|       Reserved        |
   e   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   c   | Rsvd  |  Map-Version Number   |       EID-Prefix-AFI          |
   o   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   r   |                          EID-Prefix                           |
   d   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |  /|    Priority   |    Weight     |  M Priority   |   M Weight    |
   | L +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   | o |        Unused Flags     |L|p|R|           Loc-AFI             |
   | c +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |  \|                             Locator                           |
   +-> +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Record TTL is in minutes. ACT is the action of a negative record; A is the
authoritative bit; L, p and R are the local, probed and reachable bits of a
locator. Reserved and unused bits are sent as zero and ignored on receipt.

RFC 9301 section 5.2 with RFC 9437 section 5, the EID record of a
Map-Request (N asks to be notified of changes, pub/sub):

   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |N|   Reserved  | EID mask-len  |        EID-Prefix-AFI         |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |                       EID-Prefix  ...                         |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from lispd.wire.address import Address, address_bits, read_address, write_address
from lispd.wire.errors import EncodeError, check_bits
from lispd.wire.reader import Reader

_LOCATOR = struct.Struct("!BBBBH")
_RECORD = struct.Struct("!IBBHH")
_REQUEST_RECORD = struct.Struct("!BB")


class Action(IntEnum):
    """ACT field of a (negative) mapping record, RFC 9301 section 5.4."""

    NO_ACTION = 0
    NATIVELY_FORWARD = 1
    SEND_MAP_REQUEST = 2
    DROP_NO_REASON = 3
    DROP_POLICY_DENIED = 4
    DROP_AUTH_FAILURE = 5


@dataclass(frozen=True)
class LocatorRecord:
    locator: Address
    priority: int = 1
    weight: int = 100
    m_priority: int = 255
    m_weight: int = 0
    local: bool = False
    probed: bool = False
    reachable: bool = True


@dataclass(frozen=True)
class MappingRecord:
    eid_prefix: Address
    mask_len: int
    locators: tuple[LocatorRecord, ...] = ()
    ttl: int = 1440
    action: Action = Action.NO_ACTION
    authoritative: bool = False
    map_version: int = 0


@dataclass(frozen=True)
class EidRecord:
    """An EID prefix asked for in a Map-Request."""

    eid_prefix: Address
    mask_len: int
    notify: bool = False


def _mask_problem(prefix: Address, mask_len: int) -> str | None:
    if not 0 <= mask_len <= address_bits(prefix):
        return f"EID mask-len {mask_len} out of range for {type(prefix).__name__}"
    return None


def _check_mask(r: Reader, prefix: Address, mask_len: int) -> None:
    problem = _mask_problem(prefix, mask_len)
    if problem:
        raise r.fail(problem)


def _check_mask_to_send(out: bytearray, prefix: Address, mask_len: int) -> None:
    problem = _mask_problem(prefix, mask_len)
    if problem:
        raise EncodeError(problem, len(out))


def read_locator(r: Reader) -> LocatorRecord:
    priority, weight, m_priority, m_weight, flags = _LOCATOR.unpack(r.take(6, "locator record"))
    locator = read_address(r)
    return LocatorRecord(
        locator,
        priority,
        weight,
        m_priority,
        m_weight,
        local=bool(flags & 0x4),
        probed=bool(flags & 0x2),
        reachable=bool(flags & 0x1),
    )


def write_locator(out: bytearray, loc: LocatorRecord) -> None:
    for what, value in (
        ("priority", loc.priority),
        ("weight", loc.weight),
        ("M priority", loc.m_priority),
        ("M weight", loc.m_weight),
    ):
        check_bits(what, value, 8, len(out))
    flags = (loc.local << 2) | (loc.probed << 1) | int(loc.reachable)
    out += _LOCATOR.pack(loc.priority, loc.weight, loc.m_priority, loc.m_weight, flags)
    write_address(out, loc.locator)


def read_mapping_record(r: Reader) -> MappingRecord:
    ttl, locator_count, mask_len, act_a, version_word = _RECORD.unpack(
        r.take(_RECORD.size, "mapping record")
    )
    act = act_a >> 13
    if act not in Action._value2member_map_:
        r.offset -= 4
        raise r.fail(f"unassigned ACT value {act}")
    prefix = read_address(r)
    _check_mask(r, prefix, mask_len)
    locators = tuple(read_locator(r) for _ in range(locator_count))
    return MappingRecord(
        prefix,
        mask_len,
        locators,
        ttl,
        Action(act),
        authoritative=bool(act_a & 0x1000),
        map_version=version_word & 0x0FFF,
    )


def write_mapping_record(out: bytearray, rec: MappingRecord) -> None:
    at = len(out)
    check_bits("record TTL", rec.ttl, 32, at)
    _check_mask_to_send(out, rec.eid_prefix, rec.mask_len)
    check_bits("map-version", rec.map_version, 12, at)
    if len(rec.locators) > 255:
        raise EncodeError(f"{len(rec.locators)} locators exceed 255", at)
    act_a = (int(rec.action) << 13) | (rec.authoritative << 12)
    out += _RECORD.pack(rec.ttl, len(rec.locators), rec.mask_len, act_a, rec.map_version)
    write_address(out, rec.eid_prefix)
    for loc in rec.locators:
        write_locator(out, loc)


def read_eid_record(r: Reader) -> EidRecord:
    flags, mask_len = _REQUEST_RECORD.unpack(r.take(2, "EID record"))
    prefix = read_address(r)
    _check_mask(r, prefix, mask_len)
    return EidRecord(prefix, mask_len, notify=bool(flags & 0x80))


def write_eid_record(out: bytearray, rec: EidRecord) -> None:
    _check_mask_to_send(out, rec.eid_prefix, rec.mask_len)
    out += _REQUEST_RECORD.pack(0x80 if rec.notify else 0, rec.mask_len)
    write_address(out, rec.eid_prefix)
