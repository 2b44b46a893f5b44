"""Shared values returned by the sans-IO control-plane machines (DESIGN principle 2).

A machine is fed datagrams and ``now``; it answers with the datagrams to send and
the time at which it next wants to be woken (``next_timer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram to send: where to, which port, what bytes."""

    destination: IPv4Address | IPv6Address
    port: int
    payload: bytes

