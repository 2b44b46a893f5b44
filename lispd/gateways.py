"""The dynamic-EID machines (lispd.gateway) on the host: one packet socket
per gateway segment's TAP, a timer, and what their events mean.

A packet socket sees every frame the TAP carries, both ways; a classic BPF
filter keeps it to ARP and ICMPv6 Neighbor Solicitations/Advertisements, so
that the segment's traffic never reaches Python, and frames the host itself
sent (PACKET_OUTGOING) are skipped. What the machine transmits is sent on
the same socket: out of the TAP, into the fast path, over VXLAN.

A host that arrived gets its host route on the TAP (in its instance's
table) and a neighbor entry (the segment may not flood to its VTEP, so the
host's MAC must not have to be asked for), and becomes a local EID of the
control plane; one that left loses all three, and one registered elsewhere
gets its host route into the TUN instead.
"""

from __future__ import annotations

import asyncio
import ctypes
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_network

import structlog

from lispd.config.model import Config
from lispd.control.plane import ControlPlane
from lispd.dataplane.tables import TableError
from lispd.gateway import (
    COUNTERS,
    DynamicEids,
    Event,
    GatewaySegment,
    HostArrived,
    HostLeft,
    IPAddress,
    Transmit,
)
from lispd.mapcache import EidPrefix
from lispd.netlink import Netlink, NetlinkError, RouteRecord

__all__ = ["Gateways", "neighbor_filter", "packet_socket"]

log = structlog.get_logger("lispd.gateway")

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
FRAMES_PER_WAKE = 64  # then back to the loop: a flood cannot starve the rest
SNAP = 0x40000

# Classic BPF (linux/filter.h): ld/ldh/ldb absolute, jeq immediate, ret.
_LDH, _LDB, _JEQ, _RET = 0x28, 0x30, 0x15, 0x06


def neighbor_filter() -> bytes:
    """ARP, or IPv6 with ICMPv6 (no extension header: RFC 4861 messages
    carry none) of type 135 or 136; anything else is not read."""
    program = [
        (_LDH, 0, 0, 12),           # 0: ethertype
        (_JEQ, 6, 0, 0x0806),       # 1: ARP -> 8
        (_JEQ, 0, 6, 0x86DD),       # 2: not IPv6 -> 9
        (_LDB, 0, 0, 14 + 6),       # 3: next header
        (_JEQ, 0, 4, 58),           # 4: not ICMPv6 -> 9
        (_LDB, 0, 0, 14 + 40),      # 5: ICMPv6 type
        (_JEQ, 1, 0, 135),          # 6: NS -> 8
        (_JEQ, 0, 1, 136),          # 7: not NA -> 9
        (_RET, 0, 0, SNAP),         # 8: take it
        (_RET, 0, 0, 0),            # 9: leave it
    ]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def packet_socket(device: str) -> socket.socket:
    """Bound only once the filter is on, so nothing unfiltered is queued."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        code = neighbor_filter()
        buffer = ctypes.create_string_buffer(code)
        program = struct.pack("HL", len(code) // 8, ctypes.addressof(buffer))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
        sock.bind((device, ETH_P_ALL))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Segment:
    device: str
    tun: str  # the instance's
    table: int | None  # the instance's routing table (None: main)
    machine: DynamicEids
    sock: socket.socket


class Gateways:
    """The gateway segments with dynamic-EID ranges of one daemon."""

    def __init__(self, loop: asyncio.AbstractEventLoop, plane: ControlPlane,
                 netlink: Callable[[Callable[[Netlink], None]], None]) -> None:
        """`netlink(work)` runs work(netlink) where netlink calls may block."""
        self._loop = loop
        self._plane = plane
        self._netlink = netlink
        self._segments: dict[int, _Segment] = {}  # by VNI
        self._timer: asyncio.TimerHandle | None = None
        plane.dynamic_moved_away = self._moved_away
        plane.dynamic_returned = self._returned

    def open(self, config: Config, macs: dict[str, bytes]) -> None:
        """A machine for each segment with dynamic-EID ranges; `macs`: their TAPs'."""
        tables = {i.instance_id: i.table for i in config.xtr.instances} if config.xtr else {}
        for vxlan in config.vxlan:
            if vxlan.dynamic_eid:
                segment = GatewaySegment(
                    vni=vxlan.vni, instance_id=vxlan.instance_id, mac=macs[vxlan.device],
                    addresses=tuple(a.ip for a in vxlan.address), prefixes=vxlan.prefixes,
                    ranges=vxlan.dynamic_eid, timeout=vxlan.dynamic_eid_timeout)
                tun = config.xtr.tun_for(vxlan.instance_id) if config.xtr else None
                assert tun is not None  # config checked it
                self._add(segment, vxlan.device, tun, tables.get(vxlan.instance_id))

    def _add(self, segment: GatewaySegment, device: str, tun: str, table: int | None) -> None:
        sock = packet_socket(device)
        self._segments[segment.vni] = _Segment(device, tun, table, DynamicEids(segment), sock)
        # A moved host talking to one native to the segment goes through this
        # node, by design: no redirect is to tell it otherwise.
        self._netlink(lambda netlink: netlink.no_redirects(device))
        self._loop.add_reader(sock.fileno(), self._readable, segment.vni)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for segment in self._segments.values():
            self._loop.remove_reader(segment.sock.fileno())
            segment.sock.close()
        self._segments.clear()

    def counters(self) -> dict[str, int]:
        """The machines' counters, summed over the segments."""
        return {name: sum(s.machine.counters[name] for s in self._segments.values())
                for name in COUNTERS}

    def dynamic_eids(self) -> int:
        """Hosts on the segments that are dynamic EIDs now."""
        return sum(len(s.machine.hosts) for s in self._segments.values())

    # -- in --------------------------------------------------------------------------

    def _readable(self, vni: int) -> None:
        segment = self._segments[vni]
        now = time.monotonic()
        for _ in range(FRAMES_PER_WAKE):
            try:
                frame, address = segment.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                log.warning("gateway_read_failed", device=segment.device, error=str(error))
                break
            if address[2] != PACKET_OUTGOING:
                self._handle(segment.machine.received(frame, now))
        self._rearm()

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        for segment in list(self._segments.values()):
            self._handle(segment.machine.timer(now))
        self._rearm()

    def _rearm(self) -> None:
        due = min((t for s in self._segments.values()
                   if (t := s.machine.next_timer()) is not None), default=None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if due is not None:
            delay = max(due - time.monotonic(), 0.0)
            self._timer = self._loop.call_later(delay, self._tick)

    def _moved_away(self, prefix: EidPrefix) -> None:
        address = prefix.address
        if not isinstance(address, IPv4Address | IPv6Address) or (
                prefix.length != address.max_prefixlen):
            return  # dynamic EIDs are IP hosts
        tracked = False
        for segment in list(self._segments.values()):
            if segment.machine.segment.instance_id == prefix.instance_id:
                events = segment.machine.moved_away(address)
                tracked = tracked or bool(events)
                self._handle(events)
        if not tracked:
            self._left_home(address, prefix.instance_id)
        self._rearm()

    def _returned(self, prefix: EidPrefix) -> None:
        """A host that left a segment's prefix is registered elsewhere no more:
        the segment's own route covers it again, and nobody answers for it."""
        address = prefix.address
        segment = next((s for s in self._segments.values()
                        if s.machine.segment.instance_id == prefix.instance_id), None)
        if not isinstance(address, IPv4Address | IPv6Address) or segment is None:
            return
        away = RouteRecord(ip_network(address), segment.tun, segment.table)
        self._on_host(lambda netlink: netlink.withdraw(away))
        for other in self._segments.values():
            if other.machine.segment.instance_id == prefix.instance_id:
                other.machine.away.discard(address)

    def _left_home(self, address: IPAddress, instance_id: int) -> None:
        """A host of a segment's own prefix is registered elsewhere: this
        node's hosts reach it through the overlay, its home segment's
        neighbours through this node."""
        segment = next((s for s in self._segments.values()
                        if s.machine.segment.instance_id == instance_id), None)
        if segment is None:
            return
        log.info("host_left_home", eid=str(address))
        away = RouteRecord(ip_network(address), segment.tun, segment.table)
        self._on_host(lambda netlink: netlink.add(away))
        self._mark_away(address, instance_id)

    # -- out -------------------------------------------------------------------------

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            segment = self._segments[event.vni]
            try:
                if isinstance(event, Transmit):
                    segment.sock.send(event.frame)
                elif isinstance(event, HostArrived):
                    self._arrived(segment, event)
                elif isinstance(event, HostLeft):
                    self._left(segment, event)
            except (OSError, TableError) as error:  # one event's failure, not the rest's
                log.warning("gateway_event_failed", device=segment.device,
                            event=type(event).__name__, error=str(error))

    def _on_host(self, *steps: Callable[[Netlink], object]) -> None:
        """The steps, in order, on the netlink thread; each failure is logged
        and the next step still taken."""
        def work(netlink: Netlink) -> None:
            for step in steps:
                try:
                    step(netlink)
                except NetlinkError as error:
                    log.warning("gateway_host_change_failed", error=str(error))

        self._netlink(work)

    def _arrived(self, segment: _Segment, event: HostArrived) -> None:
        host = ip_network(event.address)
        log.info("dynamic_host_seen", vni=event.vni, eid=str(event.address),
                 mac=event.mac.hex(":"))
        here = RouteRecord(host, segment.device, segment.table)
        away = RouteRecord(host, segment.tun, segment.table)

        self._on_host(lambda netlink: netlink.withdraw(away),  # it had left, and is back
                      lambda netlink: netlink.add(here),
                      lambda netlink: netlink.set_neighbor(segment.device, event.address,
                                                           event.mac))
        self._plane.add_dynamic(event.instance_id, host)
        self._mark_away(event.address, event.instance_id, except_vni=event.vni)

    def _left(self, segment: _Segment, event: HostLeft) -> None:
        host = ip_network(event.address)
        log.info("dynamic_host_left", vni=event.vni, eid=str(event.address), why=event.why)
        self._plane.remove_dynamic(event.instance_id, host)
        here = RouteRecord(host, segment.device, segment.table)
        # Registered elsewhere: this node's own hosts reach it through the
        # overlay, not through a local prefix that may cover it (its home
        # segment's, say). Gone silent: wherever the routes say.
        away = RouteRecord(host, segment.tun, segment.table) if event.why == "moved" else None

        self._on_host(lambda netlink: netlink.withdraw(here),
                      lambda netlink: netlink.forget_neighbor(segment.device, event.address),
                      *(() if away is None else (lambda netlink: netlink.add(away),)))
        if event.why == "moved":
            self._mark_away(event.address, event.instance_id)
        else:
            for other in self._segments.values():
                if other.machine.segment.instance_id == event.instance_id:
                    other.machine.away.discard(event.address)

    def _mark_away(self, address: IPAddress, instance_id: int, *,
                   except_vni: int | None = None) -> None:
        """The segments whose prefixes hold the address (its home segment)
        answer for it: it is not on them, this node is the way there."""
        for vni, other in self._segments.items():
            machine = other.machine
            if machine.segment.instance_id != instance_id:
                continue
            if vni != except_vni and any(address in p for p in machine.segment.prefixes):
                machine.away.add(address)
            else:
                machine.away.discard(address)
