"""The LISP control messages of RFC 9301, as frozen dataclasses.

Counts and lengths on the wire (Record Count, IRC, Authentication Data
Length) and presence bits (M for the Map-Reply record, I for xTR-ID/Site-ID)
are derived from the fields here, so a message can never disagree with
itself. Reserved bits are sent as zero and ignored on receipt. The codec is
lispd.wire.control.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from lispd.wire.address import NO_ADDRESS, Address
from lispd.wire.inet import IpHeader, UdpHeader
from lispd.wire.records import EidRecord, MappingRecord


class MessageType(IntEnum):
    MAP_REQUEST = 1
    MAP_REPLY = 2
    MAP_REGISTER = 3
    MAP_NOTIFY = 4
    MAP_NOTIFY_ACK = 5
    ENCAPSULATED_CONTROL = 8


@dataclass(frozen=True)
class MapRequest:
    """RFC 9301 section 5.2 (I bit, N bit and the xTR-ID/Site-ID: RFC 9437).

         0                   1                   2                   3
         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |Type=1 |A|M|P|S|p|s|R|I|  Rsvd   |L|D|   IRC   | Record Count  |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                         Nonce . . .                           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                         . . . Nonce                           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |         Source-EID-AFI        |   Source EID Address  ...     |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |         ITR-RLOC-AFI 1        |    ITR-RLOC Address 1  ...    |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                              ...                              |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |         ITR-RLOC-AFI n        |    ITR-RLOC Address n  ...    |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
      / |N|   Reserved  | EID mask-len  |        EID-Prefix-AFI         |
    Rec +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
      \\ |                       EID-Prefix  ...                         |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                   Map-Reply Record  ...                       |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                            xTR-ID (128 bits, when I)          |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                            Site-ID (64 bits, when I)          |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

    A authoritative, M map-data-present (map_reply_record is not None),
    P probe, S SMR, p PITR, s SMR-invoked, L local-xTR, D dont-map-reply,
    IRC the number of ITR-RLOCs minus one (so 1 to 32 of them).
    """

    nonce: int
    itr_rlocs: tuple[Address, ...]
    records: tuple[EidRecord, ...]
    source_eid: Address = NO_ADDRESS
    authoritative: bool = False
    probe: bool = False
    smr: bool = False
    pitr: bool = False
    smr_invoked: bool = False
    local_xtr: bool = False
    dont_map_reply: bool = False
    map_reply_record: MappingRecord | None = None
    xtr_id: int | None = None
    site_id: int | None = None


@dataclass(frozen=True)
class MapReply:
    """RFC 9301 section 5.4.

         0                   1                   2                   3
         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |Type=2 |P|E|S|          Reserved               | Record Count  |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                         Nonce . . .                           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                         . . . Nonce                           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                    Mapping Records ...                        |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

    P probe (the reply to an RLOC probe), E echo-nonce-capable,
    S security (LISP-SEC).
    """

    nonce: int
    records: tuple[MappingRecord, ...]
    probe: bool = False
    echo_nonce_capable: bool = False
    security: bool = False


@dataclass(frozen=True)
class MapRegister:
    """RFC 9301 section 5.6 (xTR-ID and Site-ID: RFC 9437).

         0                   1                   2                   3
         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |Type=3 |P|S|I|           Reserved            |M| Record Count  |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                         Nonce . . .                           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                         . . . Nonce                           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |            Key ID             |  Authentication Data Length   |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        ~                     Authentication Data                       ~
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                    Mapping Records ...                        |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                 xTR-ID (128 bits, when I)                     |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                 Site-ID (64 bits, when I)                     |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

    P proxy Map-Reply, S security-capable, I xTR-ID present, M want
    Map-Notify. Key ID names the HMAC (lispd.wire.auth.KeyId).
    """

    nonce: int
    records: tuple[MappingRecord, ...]
    key_id: int = 0
    auth_data: bytes = b""
    proxy_reply: bool = False
    security_capable: bool = False
    want_map_notify: bool = False
    xtr_id: int | None = None
    site_id: int | None = None


@dataclass(frozen=True)
class MapNotify:
    """RFC 9301 section 5.7; Map-Notify-Ack (type 5) has the same layout.

         0                   1                   2                   3
         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |Type=4 |I|              Reserved               | Record Count  |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                         Nonce . . .                           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                         . . . Nonce                           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |            Key ID             |  Authentication Data Length   |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        ~                     Authentication Data                       ~
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |                    Mapping Records ...                        |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
        |          xTR-ID (128 bits) and Site-ID (64 bits), when I      |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    """

    nonce: int
    records: tuple[MappingRecord, ...]
    key_id: int = 0
    auth_data: bytes = b""
    xtr_id: int | None = None
    site_id: int | None = None


@dataclass(frozen=True)
class MapNotifyAck(MapNotify):
    """RFC 9301 section 5.7: type 5, the Map-Notify layout."""


@dataclass(frozen=True)
class EncapsulatedControlMessage:
    """RFC 9301 section 5.8.

         0                   1                   2                   3
         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    LH  |Type=8 |S|D|E|M|            Reserved                           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
      / |                       IPv4 or IPv6 Header                     |
    IH  |                  (uses RLOC or EID addresses)                 |
      \\ |                                                               |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
      / |       Source Port = xxxx      |       Dest Port = yyyy        |
    UDP +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
      \\ |           UDP Length          |        UDP Checksum           |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    LCM |                      LISP Control Message                     |
        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

    S security (LISP-SEC), D DDT-originated, E to-ETR, M to-MS. The inner
    headers are kept as received (lengths and checksums included);
    lispd.wire.control.encapsulate builds a new one.
    """

    inner_ip: IpHeader
    inner_udp: UdpHeader
    message: ControlMessage
    security: bool = False
    ddt: bool = False
    to_etr: bool = False
    to_ms: bool = False


# What an Encapsulated Control Message can carry: any message but another ECM.
ControlMessage = MapRequest | MapReply | MapRegister | MapNotify | MapNotifyAck
Message = ControlMessage | EncapsulatedControlMessage
