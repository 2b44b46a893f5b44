"""Shared values returned by the sans-IO control-plane machines (DESIGN principle 2).

A machine is fed datagrams and ``now``; it answers with the datagrams to send and
the time at which it next wants to be woken (``next_timer``). The ITR side
also changes the map-cache and releases the packets that waited for it; it
returns those in an Output, which the daemon applies in order: map-cache
changes first (mirrored into the C table), then datagrams, then the released
packets through the ITR fast path.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from lispd.mapcache import Change


def random_nonce() -> int:
    """A fresh 64-bit nonce (RFC 9301 section 5.2): the machines' default source;
    tests pass a counter instead."""
    return secrets.randbits(64)


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram to send: where to, which port, what bytes."""

    destination: IPv4Address | IPv6Address
    port: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Released:
    """A packet that waited for resolution and may go now (its instance-id's TUN path)."""

    instance_id: int
    packet: bytes


@dataclass(frozen=True, slots=True)
class Output:
    """What one input to an ITR-side machine asks the daemon to do."""

    datagrams: tuple[Datagram, ...] = ()
    changes: tuple[Change, ...] = ()
    released: tuple[Released, ...] = ()

    def __add__(self, other: Output) -> Output:
        return Output(
            self.datagrams + other.datagrams,
            self.changes + other.changes,
            self.released + other.released,
        )
