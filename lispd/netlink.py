"""Links, addresses, routes, rules and forwarding, through rtnetlink.

The only module that imports pyroute2 (DESIGN.md, principle 5). It uses the
synchronous `IPRoute`: pyroute2's async API does not work under uvloop, so the
daemon calls these methods from an executor. The sync `IPRoute` of pyroute2
0.9 drives an asyncio loop of its own, per thread, so on a thread whose loop
is running it fails ("this event loop is already running"; under uvloop it
also leaves a failed task behind); `Netlink()` refuses to be made there.
Simplest: one `ThreadPoolExecutor(max_workers=1)` that makes and uses it.

Every address, route and rule a `Netlink` object adds is written in a
ledger; `undo()` removes them, newest first. That is how lispd removes what
it made on exit. Devices are not in the ledger: lispd's TUN/TAP devices are
not persistent and vanish (with their addresses and routes) with the fd.

Adds are idempotent, so a daemon restarted after a crash can configure the
same things again: when the kernel says "File exists" and what exists is
exactly what was asked for, that is success, but the entry is not recorded,
since this run did not make it. Deletes are idempotent too.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
)
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import (  # type: ignore[import-untyped]
    NetlinkError as _PyrouteError,
)

Family = Literal[4, 6]
Interface = IPv4Interface | IPv6Interface
Network = IPv4Network | IPv6Network

MAIN_TABLE = 254
RT_SCOPE_LINK = 253  # what `ip route add PREFIX dev DEV` uses for IPv4
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
RT_SCOPE_UNIVERSE = 0
NUD_STALE = 0x04
# rtnetlink multicast groups (linux/rtnetlink.h): address and link changes.
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400

# What the kernel answers when a delete finds nothing to delete: no such
# route (ESRCH), rule (ENOENT), address (EADDRNOTAVAIL) or device (ENODEV).
_GONE = frozenset({errno.ESRCH, errno.ENOENT, errno.EADDRNOTAVAIL, errno.ENODEV})

_FORWARDING = {
    4: "net/ipv4/ip_forward",
    6: "net/ipv6/conf/all/forwarding",
}


class NetlinkError(Exception):
    """A netlink request failed; the message says what was attempted.

    `code` is the errno the kernel answered (0 when the failure was ours).
    """

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AddressRecord:
    """An address lispd put on a device."""

    dev: str
    interface: Interface

    def __str__(self) -> str:
        return f"address {self.interface} dev {self.dev}"


@dataclass(frozen=True)
class RouteRecord:
    """A route to `prefix` out of `dev`, in `table` (None: main)."""

    prefix: Network
    dev: str
    table: int | None = None

    def __str__(self) -> str:
        table = "" if self.table is None else f" table {self.table}"
        return f"route {self.prefix} dev {self.dev}{table}"


@dataclass(frozen=True)
class RuleRecord:
    """A policy rule: packets that came in on `iif`, or that come from
    `source`, look up `table`."""

    iif: str | None
    table: int
    family: Family
    priority: int | None = None
    source: Network | None = None
    suppress_prefixlength: int | None = None

    def __str__(self) -> str:
        priority = "" if self.priority is None else f" priority {self.priority}"
        selector = f"iif {self.iif}" if self.iif is not None else f"from {self.source}"
        suppress = ("" if self.suppress_prefixlength is None
                    else f" suppress_prefixlength {self.suppress_prefixlength}")
        return f"ipv{self.family} rule {selector} table {self.table}{suppress}{priority}"


Record = AddressRecord | RouteRecord | RuleRecord


class Netlink:
    """rtnetlink in one network namespace, with a ledger of what it added.

    `netns=None` works on the namespace of the calling process (the daemon's
    way); a name (as in /run/netns/NAME, which must exist) is for tests and
    tools. Leaving the `with` block closes the socket but does not undo:
    the daemon decides when to call `undo()`.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ledger: list[Record] = []
        where = "" if netns is None else f" in netns {netns}"
        if _loop_running():
            raise NetlinkError(
                f"open rtnetlink socket{where}: not on the event loop's thread (use an executor)"
            )
        try:
            # flags=0: never create the namespace (pyroute2's default
            # O_CREAT would make a new empty one for a mistyped name).
            self._ipr: Any = IPRoute(netns=netns, flags=0) if netns is not None else IPRoute()
        except (_PyrouteError, OSError) as error:
            raise NetlinkError(f"open rtnetlink socket{where}: {_reason(error)}") from error

    def __enter__(self) -> Netlink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._ipr.close()

    # Links.

    def link_index(self, name: str) -> int:
        indexes = self._call(f"look up link {name}", self._ipr.link_lookup, ifname=name)
        if not indexes:
            raise NetlinkError(f"no such device {name}", errno.ENODEV)
        return int(indexes[0])

    def link_exists(self, name: str) -> bool:
        return bool(self._call(f"look up link {name}", self._ipr.link_lookup, ifname=name))

    def link_mtu(self, name: str) -> int:
        index = self.link_index(name)
        (link,) = self._call(f"get link {name}", self._ipr.link, "get", index=index)
        return int(link.get_attr("IFLA_MTU"))

    def link_mac(self, name: str) -> bytes:
        """The device's link-layer (MAC) address."""
        index = self.link_index(name)
        (link,) = self._call(f"get link {name}", self._ipr.link, "get", index=index)
        return bytes.fromhex(str(link.get_attr("IFLA_ADDRESS")).replace(":", ""))

    def set_neighbor(self, name: str, address: IPv4Address | IPv6Address, mac: bytes) -> None:
        """`address` is at `mac` on the device, as a stale entry: used at once,
        confirmed by the kernel's own unicast probe. Not in the ledger: the
        kernel ages it, and it goes with the device."""
        index = self.link_index(name)
        self._call(f"set neighbor {address} on {name}", self._ipr.neigh, "replace",
                   dst=str(address), lladdr=mac.hex(":"), ifindex=index, state=NUD_STALE,
                   family=_family(address.version))

    def forget_neighbor(self, name: str, address: IPv4Address | IPv6Address) -> None:
        """No neighbor entry for `address` on the device (none there is fine):
        else the kernel would go on probing a host that has gone."""
        index = self.link_index(name)
        try:
            self._ipr.neigh("del", dst=str(address), ifindex=index,
                            family=_family(address.version))
        except _PyrouteError as error:
            if error.code not in _GONE:
                raise NetlinkError(f"forget neighbor {address} on {name}: {_reason(error)}",
                                   error.code) from error

    def set_link(
        self, name: str, *, up: bool = True, mtu: int | None = None, txqlen: int | None = None,
        gso_max_size: int | None = None,
    ) -> None:
        """Set a link up or down and, if given, its MTU, transmit queue
        length and largest GSO super-packet. Not in the ledger."""
        index = self.link_index(name)
        changes: dict[str, Any] = {"state": "up" if up else "down"}
        what = f"set link {name} {changes['state']}"
        if mtu is not None:
            changes["mtu"] = mtu
            what += f" mtu {mtu}"
        if txqlen is not None:
            changes["txqlen"] = txqlen
            what += f" txqueuelen {txqlen}"
        if gso_max_size is not None:
            changes["gso_max_size"] = gso_max_size
            what += f" gso_max_size {gso_max_size}"
        self._call(what, self._ipr.link, "set", index=index, **changes)

    # Addresses.

    def add_address(self, name: str, interface: Interface) -> None:
        """Add an address (e.g. 192.0.2.10/32); IPv6 with nodad, usable at once."""
        record = AddressRecord(name, interface)
        self._add(record, lambda: self._address("add", record), lambda: self._has_address(record))


    def _address(self, command: str, record: AddressRecord) -> None:
        index = self.link_index(record.dev)
        extra: dict[str, Any] = {}
        if command == "add" and record.interface.version == 6:
            # No duplicate address detection: the EID must be usable as soon
            # as lispd says it is ready, and it is ours by configuration.
            extra["flags"] = IFA_F_NODAD
        self._ipr.addr(
            command,
            index=index,
            address=str(record.interface.ip),
            prefixlen=record.interface.network.prefixlen,
            **extra,
        )

    def _has_address(self, record: AddressRecord) -> bool:
        index = self.link_index(record.dev)
        family = _family(record.interface.version)
        for message in self._ipr.get_addr(index=index, family=family):
            # IFA_LOCAL is the address itself; IPv6 sends only IFA_ADDRESS.
            local = message.get_attr("IFA_LOCAL") or message.get_attr("IFA_ADDRESS")
            if (
                local is not None
                and ip_address(local) == record.interface.ip
                and message["prefixlen"] == record.interface.network.prefixlen
            ):
                return True
        return False

    def global_addresses(self, name: str) -> tuple[IPv4Address | IPv6Address, ...]:
        """The usable unicast addresses of a device, oldest first ((), if it is gone).

        Link-local and tentative (DAD not done) addresses cannot carry an
        underlay, so they are left out, as are deprecated ones.
        """
        try:
            index = self.link_index(name)
        except NetlinkError:
            return ()
        found: list[IPv4Address | IPv6Address] = []
        for message in self._ipr.get_addr(index=index):
            if message["scope"] != RT_SCOPE_UNIVERSE:
                continue
            flags = message.get_attr("IFA_FLAGS") or message["flags"]
            if flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED):
                continue
            local = message.get_attr("IFA_LOCAL") or message.get_attr("IFA_ADDRESS")
            if local is not None:
                found.append(ip_address(local))
        return tuple(found)

    # Routes.

    def add_route(self, prefix: Network, *, dev: str, table: int | None = None) -> None:
        """Route `prefix` out of `dev` (no gateway), in `table` (None: main)."""
        record = RouteRecord(prefix, dev, table)
        self._add(record, lambda: self._route("add", record), lambda: self._has_route(record))


    def _route(self, command: str, record: RouteRecord) -> None:
        spec: dict[str, Any] = {
            "dst": str(record.prefix),
            "oif": self.link_index(record.dev),
            "table": MAIN_TABLE if record.table is None else record.table,
        }
        if record.prefix.version == 4:
            spec["scope"] = RT_SCOPE_LINK
        self._ipr.route(command, **spec)

    def _has_route(self, record: RouteRecord) -> bool:
        # The kernel says "File exists" for the same prefix in the same
        # table whatever the device; only the same device counts as ours.
        index = self.link_index(record.dev)
        table = MAIN_TABLE if record.table is None else record.table
        family = _family(record.prefix.version)
        for message in self._ipr.get_routes(family=family, table=table):
            dst = message.get_attr("RTA_DST")  # absent for a default route
            if (
                message["dst_len"] == record.prefix.prefixlen
                and (dst is None or ip_address(dst) == record.prefix.network_address)
                and message.get_attr("RTA_OIF") == index
                and (message.get_attr("RTA_TABLE") or message["table"]) == table
            ):
                return True
        return False

    # Rules.

    def add_rule(
        self,
        *,
        table: int,
        family: Family,
        iif: str | None = None,
        source: Network | None = None,
        priority: int | None = None,
        suppress_prefixlength: int | None = None,
    ) -> None:
        """Packets that came in on `iif` (or, given `source` instead, that
        come from it) look up `table`; with `suppress_prefixlength` N, a
        route found there that is no longer than N does not count.

        Without a priority the kernel picks one just below the first
        non-zero rule. A re-run is idempotent on kernels since 4.16, which
        answer "File exists" for an identical rule (older ones add a copy).
        """
        if (iif is None) == (source is None):
            raise ValueError("a rule selects by exactly one of iif and source")
        record = RuleRecord(iif, table, family, priority, source, suppress_prefixlength)
        # The kernel answers "File exists" only for an identical rule.
        self._add(record, lambda: self._rule("add", record), lambda: True)


    def _rule(self, command: str, record: RuleRecord) -> None:
        self._ipr.rule(command, **rule_request(record))

    # Forwarding.

    def set_forwarding(self, ipv4: bool, ipv6: bool) -> None:
        """Turn IPv4 and IPv6 forwarding on or off in this object's namespace.

        Not in the ledger: forwarding is the host's policy, not lispd's state
        to undo. Note that IPv6 forwarding on stops the namespace accepting
        router advertisements on interfaces with accept_ra=1.
        """
        self._sysctl(
            f"set forwarding ipv4 {int(ipv4)} ipv6 {int(ipv6)}",
            {_FORWARDING[4]: int(ipv4), _FORWARDING[6]: int(ipv6)},
        )

    def accept_local(self, name: str) -> None:
        """Accept packets coming in on `name` whose source is one of this
        host's addresses (the ITR answers "too big" from its own RLOC through
        the TUN). Goes with the device; nothing to undo."""
        self._sysctl(f"set accept_local on {name}", {f"net/ipv4/conf/{name}/accept_local": 1})

    def no_redirects(self, name: str) -> None:
        """Send no ICMP redirects out of `name`: a packet that leaves where it
        came in is routed so on purpose there. (A proxy xTR routes back into
        its TUN what it decapsulated from it: a served ITR's packet to an EID,
        sent to the proxy-ETR while unresolved; a gateway routes a moved host's
        packets to hosts native to its segment.) The kernel sends one where
        `all` or the device says so: both go to 0; other devices keep their own
        setting (1 by default). Goes with the device; `all` is the host's,
        like forwarding."""
        self._sysctl(f"set send_redirects off on {name}",
                     {"net/ipv4/conf/all/send_redirects": 0,
                      f"net/ipv4/conf/{name}/send_redirects": 0})

    def _sysctl(self, what: str, settings: dict[str, int]) -> None:
        """/proc/sys/net shows the namespace of the process that opens it, so
        for the current namespace we write the files; for a named one we run
        `ip netns exec NAME sysctl -w` (iproute2 and procps)."""
        if self.netns is None:
            try:
                for key, value in settings.items():
                    Path("/proc/sys", key).write_text(f"{value}\n")
            except OSError as error:
                raise NetlinkError(f"{what}: {_reason(error)}", error.errno or 0) from error
            return
        # procps takes the /-separated form, which keeps a '.' in a device name.
        assignments = [f"{key}={value}" for key, value in settings.items()]
        try:
            done = subprocess.run(
                ["ip", "netns", "exec", self.netns, "sysctl", "-q", "-w", *assignments],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as error:
            raise NetlinkError(f"{what} in netns {self.netns}: {error}") from error
        if done.returncode != 0:
            problem = done.stderr.strip() or f"exit status {done.returncode}"
            raise NetlinkError(f"{what} in netns {self.netns}: {problem}")

    # One record at a time (a reload's difference).

    def add(self, record: Record) -> None:
        """Make what `record` describes (as add_address, add_route or add_rule)."""
        match record:
            case AddressRecord(dev, interface):
                self.add_address(dev, interface)
            case RouteRecord(prefix, dev, table):
                self.add_route(prefix, dev=dev, table=table)
            case RuleRecord(iif, table, family, priority, source, suppress):
                self.add_rule(iif=iif, source=source, table=table, family=family,
                              priority=priority, suppress_prefixlength=suppress)

    def withdraw(self, record: Record) -> bool:
        """Remove something this object made; what it found already there (not
        in the ledger: the kernel's own connected route, say) is left alone."""
        return record in self._ledger and self._delete(record)

    # The ledger.

    def created(self) -> tuple[Record, ...]:
        """What this object added and has not removed, oldest first."""
        return tuple(self._ledger)

    def undo(self) -> None:
        """Remove everything in the ledger, newest first.

        What is already gone (a TUN that closed took its routes with it) is
        fine. Every entry is tried; the ones that could not be removed stay
        in the ledger and are named in the NetlinkError raised at the end.
        """
        failures: list[str] = []
        for record in reversed(list(self._ledger)):
            try:
                self._delete(record)
            except NetlinkError as error:
                failures.append(str(error))
        if failures:
            raise NetlinkError("undo: " + "; ".join(failures))

    def _add(
        self, record: Record, request: Callable[[], None], identical: Callable[[], bool]
    ) -> None:
        try:
            request()
        except NetlinkError as error:  # link_index: no such device
            raise NetlinkError(f"add {record}: {error}", error.code) from error
        except _PyrouteError as error:
            if error.code == errno.EEXIST and _quietly(identical):
                return  # already there exactly as wanted: a re-run, not ours
            raise NetlinkError(f"add {record}: {_reason(error)}", error.code) from error
        except OSError as error:
            raise NetlinkError(f"add {record}: {_reason(error)}", error.errno or 0) from error
        self._ledger.append(record)

    def _delete(self, record: Record) -> bool:
        gone = False
        try:
            if isinstance(record, AddressRecord):
                self._address("del", record)
            elif isinstance(record, RouteRecord):
                self._route("del", record)
            else:
                self._rule("del", record)
        except NetlinkError as error:
            # link_index: the device is gone, and what was on it with it.
            if error.code != errno.ENODEV:
                raise NetlinkError(f"delete {record}: {error}", error.code) from error
            gone = True
        except _PyrouteError as error:
            if error.code not in _GONE:
                raise NetlinkError(f"delete {record}: {_reason(error)}", error.code) from error
            gone = True
        except OSError as error:
            raise NetlinkError(f"delete {record}: {_reason(error)}", error.errno or 0) from error
        if record in self._ledger:
            self._ledger.remove(record)
        return not gone

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except _PyrouteError as error:
            raise NetlinkError(f"{what}: {_reason(error)}", error.code) from error
        except OSError as error:
            raise NetlinkError(f"{what}: {_reason(error)}", error.errno or 0) from error


def rule_request(record: RuleRecord) -> dict[str, Any]:
    """pyroute2's keyword arguments for a rule. Its names, not iproute2's:
    pyroute2 leaves out a key it has no attribute for without a word (the
    FRA_SUPPRESS_PREFIXLEN attribute is `suppress_prefixlen`, not
    `suppress_prefixlength`, which made a rule that suppressed nothing)."""
    spec: dict[str, Any] = {"table": record.table, "family": _family(record.family)}
    if record.iif is not None:
        spec["iifname"] = record.iif
    if record.source is not None:
        spec["src"] = str(record.source.network_address)
        spec["src_len"] = record.source.prefixlen
    if record.priority is not None:
        spec["priority"] = record.priority
    if record.suppress_prefixlength is not None:
        spec["suppress_prefixlen"] = record.suppress_prefixlength
    return spec


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _quietly(question: Callable[[], bool]) -> bool:
    """The answer, or False if even asking fails."""
    try:
        return question()
    except (NetlinkError, _PyrouteError, OSError):
        return False


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _reason(error: BaseException) -> str:
    """The kernel's words for an error: "File exists", not "(17, 'File exists')"."""
    if isinstance(error, _PyrouteError):
        return str(error.args[1]) if len(error.args) > 1 else str(error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


class AddressWatch:
    """A wake-up when any address, link or route of this namespace changes.

    A plain rtnetlink socket joined to the address and link groups: the
    daemon adds it to its loop and, when it becomes readable, drains it and
    asks `Netlink.global_addresses` what is true now. Reading the current
    state rather than parsing each event makes missed or reordered events
    harmless (the socket may overflow under a burst: ENOBUFS just means
    "look again").
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                   socket.NETLINK_ROUTE)
        # Routes too: a new address is only usable once its route is there.
        self._sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
                         | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE))

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> int:
        """Read every pending event; how many datagrams there were."""
        count = 0
        while True:
            try:
                self._sock.recv(65536)
            except BlockingIOError:
                return count
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
            count += 1

    def close(self) -> None:
        self._sock.close()
