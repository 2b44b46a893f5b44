"""Packet captures in a lab's namespaces: tcpdump writes a pcap file, `read`
turns it into timestamped network-layer packets.

Only classic pcap (what `tcpdump -w` writes), with the link types tcpdump
gives a veth, the `any` device or a TUN. Captures are bounded in packets and
time, like every traffic loop of the lab.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lispd.lab import Lab

__all__ = ["Capture", "Frame", "read"]

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6 = 1, 101, 228, 229
LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 113, 276
# Octets of link-layer header before the network-layer packet.
_LINK_HEADER = {LINKTYPE_ETHERNET: 14, LINKTYPE_RAW: 0, LINKTYPE_IPV4: 0, LINKTYPE_IPV6: 0,
                LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20}
# Magic number: (byte order, fraction of a second the timestamps count).
_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 10**6), b"\xa1\xb2\xc3\xd4": (">", 10**6),
          b"\x4d\x3c\xb2\xa1": ("<", 10**9), b"\xa1\xb2\x3c\x4d": (">", 10**9)}
# Where the EtherType sits, for the link types whose captures libpcap puts an
# 802.1Q tag back into (after the MAC addresses, or in SLL's protocol field).
_ETHERTYPE_AT = {LINKTYPE_ETHERNET: 12, LINKTYPE_LINUX_SLL: 14}
_VLAN = b"\x81\x00"
_STARTUP = 15.0
_LIMIT_SECONDS = 60


@dataclass(frozen=True)
class Frame:
    """One captured packet: when (seconds since the epoch, the capturing
    host's clock) and its network-layer bytes (as far as captured)."""

    time: float
    packet: bytes


def read(data: bytes) -> list[Frame]:
    """The frames of a classic pcap file; a truncated last record is left out
    (tcpdump may have been stopped while writing it)."""
    if len(data) < 24 or data[:4] not in _MAGIC:
        return []
    order, per_second = _MAGIC[data[:4]]
    (linktype,) = struct.unpack_from(order + "I", data, 20)
    if linktype not in _LINK_HEADER:
        raise ValueError(f"pcap link type {linktype} is not one of {sorted(_LINK_HEADER)}")
    skip = _LINK_HEADER[linktype]
    frames, offset = [], 24
    while offset + 16 <= len(data):
        seconds, fraction, captured, _ = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        if len(frame) < captured:
            break
        at = _ETHERTYPE_AT.get(linktype)
        if at is not None and frame[at : at + 2] == _VLAN:
            frame = frame[:at] + frame[at + 4 :]
        # One division of the exact count: the nearest float to the time.
        frames.append(Frame((seconds * per_second + fraction) / per_second, frame[skip:]))
    return frames


class Capture:
    """tcpdump on a device of a namespace, bounded in packets and time; the
    constructor returns once it listens. It writes the pcap into a pipe or,
    given `pcap`, into that file (where tshark, or a reader watching it grow,
    finds it). `expression` is a pcap filter; on the `any` device,
    `inbound` keeps a forwarded packet from being seen twice. snaplen 0:
    whole frames."""

    def __init__(self, topology: Lab, namespace: str, device: str, expression: str, *,
                 pcap: Path | None = None, count: int = 5000, snaplen: int = 2048) -> None:
        self.pcap = pcap
        # Immediate mode: each packet reaches the pipe or file at once, none
        # is left in a half-full kernel block when tcpdump is stopped.
        self.process = topology.popen(
            namespace, "timeout", str(_LIMIT_SECONDS), "tcpdump", "-i", device, "-n", "-U",
            "--immediate-mode", "-w", "-" if pcap is None else str(pcap), "-s", str(snaplen),
            "-c", str(count), expression,
            stdout=subprocess.PIPE if pcap is None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the terminal is for whoever made the lab
        )
        assert self.process.stderr is not None
        deadline = time.monotonic() + _STARTUP
        said = b""
        while b"listening on" not in said and time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stderr], [], [], 0.5)
            chunk = os.read(self.process.stderr.fileno(), 4096) if ready else b""
            if ready and not chunk:
                break
            said += chunk
        if b"listening on" not in said:
            self.process.kill()
            self.process.communicate()
            raise RuntimeError(f"tcpdump did not start: {said.decode(errors='replace')}")

    def stop(self, settle: float = 0.3) -> bytes:
        """Stop the capture: the pcap it wrote."""
        time.sleep(settle)  # let the last packets reach the pipe or file
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        stdout, _ = self.process.communicate(timeout=15)
        return stdout if self.pcap is None else self.pcap.read_bytes()

    def frames(self, settle: float = 0.3) -> list[Frame]:
        """Stop the capture: the frames seen, with their times."""
        return read(self.stop(settle))

    def packets(self, settle: float = 0.3) -> list[bytes]:
        """Stop the capture: the packets seen."""
        return [frame.packet for frame in self.frames(settle)]
