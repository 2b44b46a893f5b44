"""A reload's host changes (lispd.host.Host.change) against a fake netlink
that keeps a ledger like the real one: removals first, only of what lispd
made; all or nothing when an addition fails."""

from __future__ import annotations

from ipaddress import ip_interface, ip_network

import pytest

from lispd.dataplane.plan import Address, Plan, Route
from lispd.host import Host
from lispd.netlink import AddressRecord, NetlinkError, Record, RouteRecord

A = Address("lisp0", "192.0.2.10/32")
B = Address("lisp0", "192.0.2.11/32")
LAN = Route(ip_network("192.0.2.64/26"), "lan0", None)


class FakeNetlink:
    def __init__(self, refuse: set[Record] = frozenset(), kernel: set[Record] = frozenset()):
        self.ledger: list[Record] = []
        self.present: set[Record] = set(kernel)  # what the kernel has, lispd's or not
        self.refuse = set(refuse)
        self.calls: list[str] = []

    def add(self, record: Record) -> None:
        self.calls.append(f"add {record}")
        if record in self.refuse:
            raise NetlinkError(f"add {record}: refused")
        if record not in self.present:  # already there: not ours (EEXIST and identical)
            self.present.add(record)
            self.ledger.append(record)

    def withdraw(self, record: Record) -> bool:
        self.calls.append(f"withdraw {record}")
        if record not in self.ledger:
            return False
        self.ledger.remove(record)
        self.present.discard(record)
        return True

    def set_forwarding(self, ipv4: bool, ipv6: bool) -> None:
        self.calls.append("forwarding")


def plan(*items: Address | Route) -> Plan:
    return Plan((), (), tuple(i for i in items if isinstance(i, Address)),
                tuple(i for i in items if isinstance(i, Route)), (), False)


def host_with(netlink: FakeNetlink, *items: Address | Route) -> Host:
    host = Host(plan(*items))
    host._netlink = netlink  # type: ignore[assignment]
    for item in items:
        host._add(item)
    return host


def rec(item: Address | Route) -> Record:
    if isinstance(item, Address):
        return AddressRecord(item.device, ip_interface(item.interface))
    return RouteRecord(item.prefix, item.device, item.table)


def test_removals_come_first_and_spare_what_lispd_did_not_make() -> None:
    netlink = FakeNetlink(kernel={rec(LAN)})  # the LAN's connected route
    host = host_with(netlink, A, LAN)
    host.change(plan(B))
    assert netlink.present == {rec(B)} | ({rec(LAN)})
    assert netlink.calls[-3:] == [f"withdraw {rec(LAN)}", f"withdraw {rec(A)}", f"add {rec(B)}"]
    assert host.plan == plan(B)


def test_a_failed_addition_puts_everything_back() -> None:
    netlink = FakeNetlink(refuse={rec(B)})
    host = host_with(netlink, A)
    with pytest.raises(NetlinkError):
        host.change(plan(B))
    assert netlink.present == {rec(A)}
    assert host.plan == plan(A)


def test_what_cannot_be_put_back_leaves_the_plan() -> None:
    netlink = FakeNetlink()
    host = host_with(netlink, A)
    netlink.refuse = {rec(B), rec(A)}  # B fails, and so does restoring A
    with pytest.raises(NetlinkError):
        host.change(plan(B))
    assert netlink.present == set()
    assert host.plan == plan()  # a later reload that wants A adds it again
    netlink.refuse = set()
    host.change(plan(A))
    assert netlink.present == {rec(A)}
