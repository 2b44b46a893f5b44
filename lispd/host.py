"""The host side of a node: the devices, addresses, routes and rules its
plan asks for, made through netlink and undone at exit.

Every method runs on the daemon's netlink thread (pyroute2's sync IPRoute
keeps per-thread state) and blocks. The devices are non-persistent TUN/TAPs,
so they go with the process even after a kill -9; addresses and routes on
them go too. What lives on devices lispd did not make (a LAN's route, the
rules of an instance) is in the netlink ledger and undone by `tear_down`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import replace
from ipaddress import ip_interface
from typing import TypeVar

import structlog

from lispd import reload
from lispd.config.model import IPAddress, UnderlayConfig
from lispd.dataplane import plan as host_plan
from lispd.dataplane import tuntap
from lispd.netlink import (
    AddressRecord,
    Netlink,
    NetlinkError,
    Record,
    RouteRecord,
    RuleRecord,
)

__all__ = ["Host"]

log = structlog.get_logger("lispd")

# A train repeats the headers of its super-packet (up to 8 + 52 octets per
# segment for LISP with TCP timestamps); 60000 octets of super-packet leave
# room for that at MSS 1000 and more (smaller MSS: two trains).
SUPER_PACKET_MAX = 60000

Item = host_plan.Address | host_plan.Route | host_plan.Rule
ItemT = TypeVar("ItemT", host_plan.Address, host_plan.Route, host_plan.Rule)


class Host:
    """`offloads`: open the TUN/TAPs with virtio-net headers and ask for
    segmentation offloads; `offloaded` then says what each device got (an
    empty tuple where the kernel refused: it works packet by packet)."""

    def __init__(self, plan: host_plan.Plan, *, offloads: bool = False) -> None:
        self.plan = plan
        self.offloads = offloads
        self.offloaded: dict[str, tuple[str, ...]] = {}
        self._netlink: Netlink | None = None
        self._devices: list[tuntap.Device] = []

    @property
    def netlink(self) -> Netlink:
        if self._netlink is None:
            self._netlink = Netlink()
        return self._netlink

    @property
    def devices(self) -> tuple[tuntap.Device, ...]:
        return tuple(self._devices)

    def bring_up(self) -> None:
        """Open the devices and configure everything the plan says."""
        plan, netlink = self.plan, self.netlink
        for tun in plan.tuns:
            self._open(tuntap.open_tun(tun.name, vnet_hdr=self.offloads))
            netlink.set_link(tun.name, up=True, mtu=tun.mtu, txqlen=host_plan.TUN_TXQUEUELEN,
                             gso_max_size=self._gso_max_size(tun.name))
            netlink.accept_local(tun.name)
            netlink.no_redirects(tun.name)
        for tap in plan.taps:
            self._open(tuntap.open_tap(tap.name, vnet_hdr=self.offloads))
            netlink.set_link(tap.name, up=True, mtu=tap.mtu,
                             gso_max_size=self._gso_max_size(tap.name))
        items: tuple[Item, ...] = (*plan.addresses, *plan.routes, *plan.rules)
        for item in items:
            self._add(item)
        if plan.forwarding:
            netlink.set_forwarding(ipv4=True, ipv6=True)

    def _open(self, device: tuntap.Device) -> None:
        self._devices.append(device)
        if device.vnet_hdr:
            try:
                self.offloaded[device.name] = tuntap.enable_offloads(device)
            except tuntap.DeviceError as error:
                log.warning("device_offloads_refused", device=device.name, error=str(error))
                self.offloaded[device.name] = ()

    def _gso_max_size(self, name: str) -> int | None:
        """Super-packets small enough that, cut and encapsulated, they leave
        in one UDP_SEGMENT train (whose UDP payload must fit 64 KiB)."""
        return SUPER_PACKET_MAX if self.offloaded.get(name) else None

    def rlocs(self, underlay: UnderlayConfig) -> tuple[IPAddress, ...]:
        """This node's RLOCs now: the fixed ones, then the followed interfaces' addresses."""
        found = list(underlay.rlocs)
        for name in underlay.interfaces:
            found.extend(a for a in self.netlink.global_addresses(name) if a not in found)
        return tuple(found)

    def change(self, plan: host_plan.Plan) -> None:
        """A reload's new plan (same devices): what went is removed first (only
        if lispd made it), then what came is added. All or nothing: if an
        addition fails, the additions are taken back and the removals put back,
        and NetlinkError says which failed."""
        difference = reload.plan_difference(self.plan, plan)
        netlink = self.netlink
        removed: list[Record] = []
        for record in map(_record, difference.remove):
            try:
                if netlink.withdraw(record):
                    removed.append(record)
            except NetlinkError as error:
                # Still in the ledger: it goes at exit with the rest.
                log.warning("reload_remove_failed", item=str(record), error=str(error))
        added: list[Record] = []
        try:
            for record in map(_record, difference.add):
                netlink.add(record)
                added.append(record)
            if difference.forwarding:
                netlink.set_forwarding(ipv4=True, ipv6=True)
        except NetlinkError:
            for record in reversed(added):
                with contextlib.suppress(NetlinkError):
                    netlink.withdraw(record)
            lost = self._restore(reversed(removed))
            # What could not be put back is not there: the plan says so, and
            # the next reload that wants it adds it.
            self.plan = _without(self.plan, lost)
            raise
        self.plan = plan

    def _restore(self, records: Iterable[Record]) -> set[Record]:
        """Add back what a failed reload removed; the records that could not be."""
        lost: set[Record] = set()
        for record in records:
            try:
                self.netlink.add(record)
            except NetlinkError as error:
                log.error("reload_rollback_failed", item=str(record), error=str(error))
                lost.add(record)
        return lost

    def tear_down(self) -> None:
        """Close the devices (what was on them goes with them), then undo the rest."""
        for device in self._devices:
            tuntap.close(device)
        self._devices.clear()
        self.offloaded.clear()
        if self._netlink is not None:
            self._netlink.undo()
            self._netlink.close()
            self._netlink = None

    def _add(self, item: Item) -> None:
        self.netlink.add(_record(item))


def _without(plan: host_plan.Plan, lost: set[Record]) -> host_plan.Plan:
    def kept(items: tuple[ItemT, ...]) -> tuple[ItemT, ...]:
        return tuple(item for item in items if _record(item) not in lost)

    return replace(plan, addresses=kept(plan.addresses), routes=kept(plan.routes),
                   rules=kept(plan.rules))


def _record(item: Item) -> Record:
    """The netlink ledger's record of a plan item."""
    match item:
        case host_plan.Address(device, interface):
            return AddressRecord(device, ip_interface(interface))
        case host_plan.Route(prefix, device, table):
            return RouteRecord(prefix, device, table)
        case host_plan.Rule(iif, table, family, priority, source, suppress):
            return RuleRecord(iif, table, family, priority, source, suppress)
