"""What one step of the fast path decided: shared by the C wrapper
(lispd.dataplane.fastpath) and its Python twin (lispd.dataplane.reference),
so the two compare field by field."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address


class VerdictKind(enum.IntEnum):
    """The values of LISPD_VERDICT_* (tests hold them to the C)."""

    SEND = 0
    WRITE = 1
    DROP = 2
    MISS = 3
    FLOOD = 4


@dataclass(frozen=True, slots=True)
class Verdict:
    """`data` is the packet the step produced: the outer packet for SEND,
    what goes to the device for WRITE, the frame for FLOOD. `reason` names
    the drop (LISPD_DROP_* in lower case without the prefix)."""

    kind: VerdictKind
    reason: str | None = None
    data: bytes = b""
    index: int = 0
    instance_id: int = 0
    address: IPv4Address | IPv6Address | None = None
