"""A numbered UDP stream, to see what a move costs: which packets were lost,
and how long the traffic stopped.

`python -m lispd.stream send ADDRESS PORT RATE COUNT` sends COUNT datagrams
at RATE per second, each carrying its sequence number and send time; it is
bounded in packets and time (COUNT / RATE seconds plus nothing).
`python -m lispd.stream receive ADDRESS PORT SECONDS` prints "ready", records
every datagram's sequence number and arrival time for at most SECONDS, and
prints one JSON line with them. Both run inside a lab's namespaces.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Arrivals", "outage"]

_FORMAT = "!Qd"
_SIZE = struct.calcsize(_FORMAT)
_PADDING = 64
_IP_FREEBIND = 15
_IPV6_FREEBIND = 78


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def send(address: str, port: int, rate: float, count: int) -> None:
    sock = socket.socket(_family(address), socket.SOCK_DGRAM)
    interval = 1.0 / rate
    start = time.monotonic()
    errors = 0
    for seq in range(count):
        due = start + seq * interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            sock.sendto(struct.pack(_FORMAT, seq, time.time()).ljust(_PADDING, b"\0"),
                        (address, port))
        except OSError:
            # No route for a moment (the underlay is moving): a lost packet.
            errors += 1
    print(json.dumps({"sent": count, "errors": errors}), flush=True)


def receive(address: str, port: int, seconds: float) -> None:
    sock = socket.socket(_family(address), socket.SOCK_DGRAM)
    # The service may start before its EID is on the TUN (a VM booting).
    if ":" in address:
        sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_FREEBIND, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
    sock.bind((address, port))
    sock.settimeout(0.2)
    print("ready", flush=True)
    arrivals: list[tuple[int, float]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(2048)
        except TimeoutError:
            continue
        if len(data) >= _SIZE:
            seq, _ = struct.unpack_from(_FORMAT, data)
            arrivals.append((seq, time.monotonic()))
    print(json.dumps({"arrivals": arrivals}), flush=True)


@dataclass(frozen=True)
class Arrivals:
    """What a receiver saw: (sequence number, arrival time) in arrival order."""

    packets: tuple[tuple[int, float], ...]

    @classmethod
    def parse(cls, line: str) -> Arrivals:
        return cls(tuple((int(s), float(t)) for s, t in json.loads(line)["arrivals"]))

    @property
    def sequence_numbers(self) -> set[int]:
        return {seq for seq, _ in self.packets}

    def lost(self, sent: int) -> int:
        return sent - len(self.sequence_numbers & set(range(sent)))


def outage(receivers: Sequence[Arrivals], sent: int, rate: float) -> float:
    """Seconds of stream lost in one piece: the longest run of consecutive
    sequence numbers no receiver got, over the stream's own clock (so a
    stream that never recovers counts to its end)."""
    got = set().union(*(r.sequence_numbers for r in receivers))
    longest = run = 0
    for seq in range(sent):
        run = 0 if seq in got else run + 1
        longest = max(longest, run)
    return longest / rate


def main(argv: Sequence[str]) -> int:
    match list(argv):
        case ["send", address, port, rate, count]:
            send(address, int(port), float(rate), int(count))
        case ["receive", address, port, seconds]:
            receive(address, int(port), float(seconds))
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
