"""TUN/TAP devices and netlink configuration, on real devices in namespaces.

Devices are made in the network namespace of the process that opens them, so
the code under test runs in a child process inside a fresh namespace: this
very module, run as `python -m tests.netns.test_devices` (see `_child_main`
at the bottom), which reads one command per line and answers one JSON line.
The test process looks at the namespace from outside with `ip -j`, so what
is checked is what the kernel has, not what lispd believes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from ipaddress import ip_interface, ip_network
from pathlib import Path
from typing import Any

import pytest

from lispd.dataplane import tuntap
from lispd.lab import Lab, lab
from lispd.netlink import Family, Netlink, NetlinkError
from tests.needs import require_netns
from tests.traffic import wait_for

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[2]
TUN, TAP = "lisp0", "lisptap0"
TABLE = 107
ANSWER_TIMEOUT = 10.0
GONE = 2.0  # seconds a dead process's devices may take to go


# The configuration the child applies: (device, address) and
# (prefix, device, table) in the shapes `ip -j` reports them.
ADDRESSES = [(TUN, "192.0.2.10/32"), (TUN, "2001:db8::10/128"), (TAP, "198.51.100.1/24")]
ROUTES = [
    ("203.0.113.0/24", TUN, None),
    ("2001:db8:100::/48", TUN, None),
    ("0.0.0.0/0", TUN, TABLE),
    ("::/0", TUN, TABLE),
]
RULES: list[tuple[Family, int]] = [(4, 100), (6, 100)]  # (family, priority), iif TAP, table TABLE


@pytest.fixture
def topology() -> Iterator[Lab]:
    require_netns()
    with lab() as made:
        yield made


class Child:
    """This module running inside a namespace, driven one command at a time."""

    def __init__(self, topology: Lab, namespace: str) -> None:
        self.process = topology.popen(
            namespace,
            sys.executable,
            "-m",
            "tests.netns.test_devices",
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )

    def ask(self, command: str) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()
        line = b""
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(left, 0))
            chunk = os.read(self.process.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                self.process.kill()
                _, stderr = self.process.communicate(timeout=5)
                pytest.fail(f"child gave no answer to {command!r}: {stderr.decode()}")
            line += chunk
        answer = json.loads(line)
        assert "error" not in answer, f"{command}: {answer['error']}"
        return answer

    def finish(self) -> int:
        """Wait for the child to exit by itself; its exit status."""
        _, stderr = self.process.communicate(timeout=ANSWER_TIMEOUT)
        assert not stderr, stderr.decode()
        return self.process.returncode


def ask_once(topology: Lab, namespace: str, command: str) -> Any:
    """One command to a child of its own, which must then exit 0: the answer."""
    child = Child(topology, namespace)
    answer = child.ask(command)
    child.ask("exit")
    assert child.finish() == 0
    return answer


def ip(topology: Lab, namespace: str, *args: str) -> Any:
    shown = topology.ns(namespace, "ip", "-j", *args, check=False)
    if shown.returncode != 0:
        # A numbered table with no route left in a family is no table at all.
        assert "FIB table does not exist" in shown.stderr, shown.stderr
        return []
    return json.loads(shown.stdout) if shown.stdout.strip() else []


def links(topology: Lab, namespace: str) -> dict[str, Any]:
    return {link["ifname"]: link for link in ip(topology, namespace, "link", "show")}


def addresses(topology: Lab, namespace: str, dev: str) -> set[str]:
    (link,) = ip(topology, namespace, "addr", "show", "dev", dev)
    return {
        f"{info['local']}/{info['prefixlen']}"
        for info in link["addr_info"]
        if info.get("scope") != "link"
    }


def routes(topology: Lab, namespace: str, table: int | None) -> set[tuple[str, str]]:
    found = set()
    for family in ("-4", "-6"):
        where = [] if table is None else ["table", str(table)]
        for route in ip(topology, namespace, family, "route", "show", *where):
            dst = route["dst"]
            if dst == "default":
                dst = "0.0.0.0/0" if family == "-4" else "::/0"
            found.add((dst, route["dev"]))
    return found


def rules(topology: Lab, namespace: str) -> set[tuple[int, int, str, str]]:
    """(family, priority, iif, table) of every rule that names an iif."""
    return {
        (family, rule["priority"], rule["iif"], rule["table"])
        for family in (4, 6)
        for rule in ip(topology, namespace, f"-{family}", "rule", "show")
        if "iif" in rule
    }


def forwarding(topology: Lab, namespace: str) -> tuple[str, str]:
    shown = topology.ns(namespace, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()
    shown6 = topology.ns(namespace, "cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout
    return shown, shown6.strip()


def test_devices_addresses_routes_rules_then_undo_then_gone(topology: Lab) -> None:
    namespace = topology.add("dev")
    child = Child(topology, namespace)

    opened = child.ask("setup")
    for fd_flags in opened["fds"]:
        assert fd_flags == {"nonblock": True, "cloexec": True}
    assert forwarding(topology, namespace) == ("1", "1")
    seen = links(topology, namespace)
    assert seen[TUN]["mtu"] == 1400 and "UP" in seen[TUN]["flags"]
    assert seen[TAP]["mtu"] == 1450 and "UP" in seen[TAP]["flags"]
    assert seen[TUN]["link_type"] == "none"  # layer 3: no link-layer header
    assert seen[TAP]["link_type"] == "ether"
    for dev in (TUN, TAP):
        wanted = {address for on, address in ADDRESSES if on == dev}
        assert addresses(topology, namespace, dev) == wanted
    main, numbered = routes(topology, namespace, None), routes(topology, namespace, TABLE)
    for prefix, dev, table in ROUTES:
        assert (prefix, dev) in (numbered if table else main)
    assert rules(topology, namespace) == {
        (family, priority, TAP, str(TABLE)) for family, priority in RULES
    }
    recorded = opened["created"]
    assert len(recorded) == len(ADDRESSES) + len(ROUTES) + len(RULES)
    assert f"route 0.0.0.0/0 dev {TUN} table {TABLE}" in recorded

    # A re-run after a crash: the same adds succeed and are not recorded
    # again; a route for the same prefix out of another device is a conflict.
    again = child.ask("again")
    assert again["created"] == recorded
    assert again["conflict"] == f"add route 203.0.113.0/24 dev {TAP}: File exists"

    assert child.ask("undo")["created"] == []
    assert addresses(topology, namespace, TUN) == set()
    assert addresses(topology, namespace, TAP) == set()
    assert not {(prefix, dev) for prefix, dev, _ in ROUTES} & (
        routes(topology, namespace, None) | routes(topology, namespace, TABLE)
    )
    assert rules(topology, namespace) == set()
    assert {TUN, TAP} <= set(links(topology, namespace))  # undo leaves devices

    # Not persistent: the devices go with the process that opened them.
    child.ask("exit")
    assert child.finish() == 0
    assert wait_for(lambda: set(links(topology, namespace)) == {"lo"}, GONE, step=0.05)


def test_kill_9_leaves_no_device(topology: Lab) -> None:
    namespace = topology.add("kill")
    child = Child(topology, namespace)
    child.ask("open")
    assert {TUN, TAP} <= set(links(topology, namespace))
    child.process.send_signal(signal.SIGKILL)
    child.process.communicate(timeout=ANSWER_TIMEOUT)
    assert wait_for(lambda: set(links(topology, namespace)) == {"lo"}, GONE, step=0.05)


def test_device_errors_name_the_device(topology: Lab) -> None:
    errors = ask_once(topology, topology.add("err"), "errors")
    assert errors["twice"]["errno"] == errno.EBUSY
    assert TUN in errors["twice"]["message"]
    assert errors["tap-on-tun-name"]["errno"] == errno.EBUSY
    assert errors["too-long"]["errno"] == errno.ENAMETOOLONG
    assert "x" * 16 in errors["too-long"]["message"]
    assert errors["missing-link"] == "add route 192.0.2.0/24 dev nope0: no such device nope0"


def test_undo_after_the_tun_went_away(topology: Lab) -> None:
    namespace = topology.add("gone")
    answer = ask_once(topology, namespace, "gone")
    # The routes and address went with the TUN; the rule (which outlives
    # its iif) was still removed, and undo did not complain.
    assert answer["before"] == 3 and answer["after"] == []
    assert rules(topology, namespace) == set()


def test_named_namespace_from_outside(topology: Lab) -> None:
    namespace = topology.add("named")
    topology.ns(namespace, "ip", "link", "add", "v0", "type", "veth", "peer", "v1")
    with Netlink(namespace) as netlink:
        assert netlink.link_exists("v0") and not netlink.link_exists("v9")
        netlink.set_link("v0", mtu=1300)
        netlink.set_link("v1")
        assert netlink.link_mtu("v0") == 1300
        netlink.add_address("v0", ip_interface("2001:db8::1/128"))
        netlink.add_route(ip_network("2001:db8:2::/48"), dev="v0", table=TABLE)
        netlink.add_rule(iif="v1", table=TABLE, family=6, priority=200)
        netlink.set_forwarding(ipv4=True, ipv6=False)
        assert forwarding(topology, namespace) == ("1", "0")
        assert addresses(topology, namespace, "v0") == {"2001:db8::1/128"}
        assert routes(topology, namespace, TABLE) == {("2001:db8:2::/48", "v0")}
        assert rules(topology, namespace) == {(6, 200, "v1", str(TABLE))}
        netlink.undo()
        assert netlink.created() == ()
        assert addresses(topology, namespace, "v0") == set()
        assert rules(topology, namespace) == set()
        with pytest.raises(NetlinkError, match="no such device v9"):
            netlink.link_index("v9")
    with pytest.raises(NetlinkError, match="No such file"):
        Netlink(f"{topology.prefix}-missing")


# The child: runs inside the namespace as `python -m tests.netns.test_devices`.


def _setup(netlink: Netlink) -> None:
    for dev, address in ADDRESSES:
        netlink.add_address(dev, ip_interface(address))
    for prefix, dev, table in ROUTES:
        netlink.add_route(ip_network(prefix), dev=dev, table=table)
    for family, priority in RULES:
        netlink.add_rule(iif=TAP, table=TABLE, family=family, priority=priority)


def _fd_flags(device: tuntap.Device) -> dict[str, bool]:
    return {
        "nonblock": bool(fcntl.fcntl(device.fd, fcntl.F_GETFL) & os.O_NONBLOCK),
        "cloexec": bool(fcntl.fcntl(device.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
    }


def _error(call: Callable[[], object]) -> dict[str, Any]:
    try:
        call()
    except tuntap.DeviceError as error:
        return {"errno": error.errno, "message": str(error)}
    return {"errno": 0, "message": "no error"}


def _child_main() -> None:
    netlink = Netlink()
    devices: list[tuntap.Device] = []

    def open_both() -> dict[str, Any]:
        devices.extend([tuntap.open_tun(TUN), tuntap.open_tap(TAP)])
        return {"fds": [_fd_flags(device) for device in devices]}

    def setup() -> dict[str, Any]:
        answer = open_both()
        netlink.set_link(TUN, mtu=1400)
        netlink.set_link(TAP, mtu=1450)
        netlink.set_forwarding(ipv4=True, ipv6=True)
        _setup(netlink)
        return answer | {"created": [str(record) for record in netlink.created()]}

    def again() -> dict[str, Any]:
        _setup(netlink)
        try:
            netlink.add_route(ip_network("203.0.113.0/24"), dev=TAP)
            conflict = "no error"
        except NetlinkError as error:
            conflict = str(error)
        return {"created": [str(record) for record in netlink.created()], "conflict": conflict}

    def errors() -> dict[str, Any]:
        devices.append(tuntap.open_tun(TUN))
        try:
            netlink.add_route(ip_network("192.0.2.0/24"), dev="nope0")
            missing = "no error"
        except NetlinkError as error:
            missing = str(error)
        return {
            "twice": _error(lambda: tuntap.open_tun(TUN)),
            "tap-on-tun-name": _error(lambda: tuntap.open_tap(TUN)),
            "too-long": _error(lambda: tuntap.open_tun("x" * 16)),
            "missing-link": missing,
        }

    def gone() -> dict[str, Any]:
        device = tuntap.open_tun(TUN)
        netlink.set_link(TUN)
        netlink.add_address(TUN, ip_interface("192.0.2.10/32"))
        netlink.add_route(ip_network("203.0.113.0/24"), dev=TUN, table=TABLE)
        netlink.add_rule(iif=TUN, table=TABLE, family=4, priority=100)
        before = len(netlink.created())
        tuntap.close(device)
        netlink.undo()
        return {"before": before, "after": [str(record) for record in netlink.created()]}

    def undo() -> dict[str, Any]:
        netlink.undo()
        return {"created": [str(record) for record in netlink.created()]}

    commands: dict[str, Callable[[], dict[str, Any]]] = {
        "open": open_both,
        "setup": setup,
        "again": again,
        "errors": errors,
        "gone": gone,
        "undo": undo,
        "exit": dict,
    }
    for line in sys.stdin:
        command = line.strip()
        try:
            answer = commands[command]()
        except Exception:
            answer = {"error": traceback.format_exc()}
        print(json.dumps(answer), flush=True)
        if command == "exit":
            break
    # Closing the fds (here, or the kernel at exit) deletes the devices.
    for device in devices:
        tuntap.close(device)
    netlink.close()


if __name__ == "__main__":
    _child_main()
