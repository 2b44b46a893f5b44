"""Shared topology for the xTR namespace tests: two sites on a veth underlay.

Addresses (DESIGN.md, "Network rules"):

- underlay: 198.18.0.1/24 (site a) and 198.18.0.2/24 (site b) on the veth
  `ul0`, plus 2001:db8:ff00::1/64 and ::2/64 (inside 2001:db8:ff00::/40,
  apart from every EID prefix used here);
- the VM is its own xTR (`own`): the EIDs 192.0.2.10 / 2001:db8::10 (a) and
  192.0.2.20 / 2001:db8::20 (b) sit on the TUN of the xTR's namespace;
- site gateway (`gateway`): a host namespace behind each xTR on the LAN veth
  `lan0`: site a 192.0.2.0/26 and 2001:db8:0:a::/64 (xTR .1 / ::1, host
  .2 / ::2), site b 192.0.2.64/26 and 2001:db8:0:b::/64 (xTR .65 / ::1,
  host .66 / ::2).

Run as `python -m tests.netns.sites COMMAND ...` inside a namespace this
module is also the traffic helper (see `_child_main` at the bottom): a TCP
sink and source for bulk transfers with a content check, a banner server
and client, a UDP blaster and an MTU probe. Every one of them is bounded in
bytes or packets and in time.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lispd.lab import Lab, Lispd

ROOT = Path(__file__).resolve().parents[2]
Shape = Literal["own", "gateway"]
EID_SPACE = ("192.0.2.0/24", "2001:db8::/48")
UNDERLAY = "ul0"
LAN = "lan0"
TRANSFER_BYTES = 20 * 1024 * 1024
CHILD_TIMEOUT = 60.0
LINE_TIMEOUT = 15.0

# Drop reasons that traffic between two correctly configured xTRs never
# causes (drop_miss is left out: IPv6 multicast/link-local noise the kernel
# sends into a TUN has no mapping).
NEVER_DROPPED = (
    "drop_truncated",
    "drop_bad_inner",
    "drop_bad_flags",
    "drop_unknown_instance",
    "drop_not_local_eid",
    "drop_negative",
    "drop_native_forward",
    "drop_too_big",
    "drop_no_rloc",
    "drop_send_error",
    "drop_write_error",
)


@dataclass(frozen=True)
class Xtr:
    """The namespace of an xTR and its RLOCs."""

    namespace: str
    rloc4: str
    rloc6: str

    def rloc(self, version: int) -> str:
        return self.rloc6 if version == 6 else self.rloc4


@dataclass(frozen=True)
class Endpoint:
    """Where a site's traffic starts and ends: a namespace and its EIDs."""

    namespace: str
    address4: str
    address6: str

    def address(self, version: int) -> str:
        return self.address6 if version == 6 else self.address4


@dataclass(frozen=True)
class Mapping:
    """A database or static mapping of a generated config."""

    prefix: str
    rloc: str
    instance_id: int = 0
    assign: bool = False
    interface: str | None = None

    def toml(self, table: str) -> str:
        lines = [f"[[xtr.{table}]]", f'eid-prefix = "{self.prefix}"']
        if self.instance_id:
            lines.append(f"instance-id = {self.instance_id}")
        if self.assign:
            lines.append("assign = true")
        if self.interface is not None:
            lines.append(f'interface = "{self.interface}"')
        lines.append(f'rlocs = [{{ address = "{self.rloc}" }}]')
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Instance:
    """An [[xtr.instance]] of a generated config."""

    instance_id: int
    tun: str
    table: int
    eid_space: tuple[str, ...]
    interfaces: tuple[str, ...]

    def toml(self) -> str:
        return (
            "[[xtr.instance]]\n"
            f"instance-id = {self.instance_id}\n"
            f'tun = "{self.tun}"\n'
            f"table = {self.table}\n"
            f"eid-space = {_strings(self.eid_space)}\n"
            f"interfaces = {_strings(self.interfaces)}\n"
        )


def _strings(values: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def xtr_config(
    xtr: Xtr,
    *,
    database: Sequence[Mapping],
    static: Sequence[Mapping],
    instances: Sequence[Instance] = (),
    eid_space: Sequence[str] = EID_SPACE,
    tun_mtu: int | None = None,
    extra: str = "",
) -> str:
    """The config text (without [daemon]: the lab adds it) of one xTR."""
    text = (
        f"[underlay]\nrlocs = {_strings([xtr.rloc4, xtr.rloc6])}\n\n"
        f'[xtr]\ntun = "lisp0"\neid-space = {_strings(eid_space)}\n'
    )
    if tun_mtu is not None:
        text += f"tun-mtu = {tun_mtu}\n"
    text += "\n"
    text += "".join(instance.toml() + "\n" for instance in instances)
    text += "".join(mapping.toml("database-mapping") + "\n" for mapping in database)
    text += "".join(mapping.toml("static-mapping") + "\n" for mapping in static)
    return text + extra


# -- building -----------------------------------------------------------------


def underlay(topology: Lab, mtu: int = 1500) -> tuple[Xtr, Xtr]:
    """Namespaces `a` and `b` joined by the underlay veth."""
    a, b = topology.add("a"), topology.add("b")
    topology.link(a, UNDERLAY, b, UNDERLAY)
    xtrs = (Xtr(a, "198.18.0.1", "2001:db8:ff00::1"), Xtr(b, "198.18.0.2", "2001:db8:ff00::2"))
    for xtr in xtrs:
        topology.ns(xtr.namespace, "ip", "link", "set", UNDERLAY, "mtu", str(mtu))
        topology.ns(xtr.namespace, "ip", "addr", "add", f"{xtr.rloc4}/24", "dev", UNDERLAY)
        topology.ns(xtr.namespace, "ip", "addr", "add", f"{xtr.rloc6}/64", "dev", UNDERLAY,
                    "nodad")
    return xtrs


# Site LANs of the gateway shape: (IPv4 prefix, xTR, host), (IPv6 ...).
LANS = {
    "a": (("192.0.2.0/26", "192.0.2.1", "192.0.2.2"),
          ("2001:db8:0:a::/64", "2001:db8:0:a::1", "2001:db8:0:a::2")),
    "b": (("192.0.2.64/26", "192.0.2.65", "192.0.2.66"),
          ("2001:db8:0:b::/64", "2001:db8:0:b::1", "2001:db8:0:b::2")),
}
OWN_EIDS = {"a": ("192.0.2.10", "2001:db8::10"), "b": ("192.0.2.20", "2001:db8::20")}


def lan(topology: Lab, xtr: Xtr, site: str, role: str, *, xtr_if: str = LAN,
        prefix_routes: bool = True) -> Endpoint:
    """A host namespace on a LAN veth behind xtr, with its default routes via
    the xTR. prefix_routes=False leaves the LAN routes of the xTR side to
    lispd (for LANs whose prefixes overlap in one namespace)."""
    host = topology.add(role)
    topology.link(xtr.namespace, xtr_if, host, "eth0")
    (prefix4, gateway4, address4), (prefix6, gateway6, address6) = LANS[site]
    length4, length6 = prefix4.split("/")[1], prefix6.split("/")[1]
    extra = [] if prefix_routes else ["noprefixroute"]
    topology.ns(xtr.namespace, "ip", "addr", "add", f"{gateway4}/{length4}", "dev", xtr_if,
                *extra)
    topology.ns(xtr.namespace, "ip", "addr", "add", f"{gateway6}/{length6}", "dev", xtr_if,
                "nodad", *extra)
    topology.ns(host, "ip", "addr", "add", f"{address4}/{length4}", "dev", "eth0")
    topology.ns(host, "ip", "addr", "add", f"{address6}/{length6}", "dev", "eth0", "nodad")
    topology.ns(host, "ip", "route", "add", "default", "via", gateway4)
    topology.ns(host, "ip", "-6", "route", "add", "default", "via", gateway6)
    return Endpoint(host, address4, address6)


@dataclass
class Site:
    """One running site: its xTR, its daemon and where its traffic ends."""

    name: str
    xtr: Xtr
    daemon: Lispd
    endpoint: Endpoint


def site_mappings(shape: Shape, xtr: Xtr, site: str, peer: Xtr, peer_site: str, *,
                  outer: int) -> tuple[list[Mapping], list[Mapping]]:
    """(database, static) mappings of one site of a pair: both EID families,
    the peer's EIDs at the peer's RLOC of the outer family."""
    if shape == "own":
        own = OWN_EIDS[site]
        theirs = OWN_EIDS[peer_site]
        database = [Mapping(f"{own[0]}/32", xtr.rloc(outer), assign=True),
                    Mapping(f"{own[1]}/128", xtr.rloc(outer), assign=True)]
        static = [Mapping(f"{theirs[0]}/32", peer.rloc(outer)),
                  Mapping(f"{theirs[1]}/128", peer.rloc(outer))]
        return database, static
    database = [Mapping(prefix, xtr.rloc(outer), interface=LAN)
                for prefix, _, _ in LANS[site]]
    static = [Mapping(prefix, peer.rloc(outer)) for prefix, _, _ in LANS[peer_site]]
    return database, static


def two_sites(topology: Lab, workdir: Path, shape: Shape, outer: int, *,
              tun_mtu: int | None = None, extra: dict[str, str] | None = None,
              xtrs: tuple[Xtr, Xtr] | None = None) -> tuple[Site, Site]:
    """Sites a and b of the given shape, daemons running, the peer's EIDs
    mapped to its RLOC of the `outer` family. extra: more config text by site
    name; xtrs: an underlay made already."""
    xtrs_by_name = dict(zip("ab", xtrs or underlay(topology), strict=True))
    endpoints: dict[str, Endpoint] = {}
    for name, xtr in xtrs_by_name.items():
        if shape == "own":
            eid4, eid6 = OWN_EIDS[name]
            endpoints[name] = Endpoint(xtr.namespace, eid4, eid6)
        else:
            endpoints[name] = lan(topology, xtr, name, f"h{name}")
    sites = []
    for name, peer in (("a", "b"), ("b", "a")):
        xtr = xtrs_by_name[name]
        database, static = site_mappings(shape, xtr, name, xtrs_by_name[peer], peer, outer=outer)
        config = xtr_config(xtr, database=database, static=static, tun_mtu=tun_mtu,
                            extra=(extra or {}).get(name, ""))
        daemon = topology.lispd(xtr.namespace, config, workdir, f"xtr-{name}")
        sites.append(Site(name, xtr, daemon, endpoints[name]))
    return sites[0], sites[1]


# -- looking at a namespace ---------------------------------------------------


def links(topology: Lab, namespace: str) -> set[str]:
    shown = topology.ns(namespace, "ip", "-j", "link", "show").stdout
    return {link["ifname"] for link in json.loads(shown)}


def stop_cleanly(topology: Lab, site: Site, devices: Sequence[str] = ("lisp0",)) -> None:
    """SIGTERM: exit status 0, and the devices lispd made are gone."""
    status = site.daemon.stop()
    assert status == 0, f"lispd {site.name} exited {status}:\n{site.daemon.log()[-3000:]}"
    left = links(topology, site.xtr.namespace) & set(devices)
    assert not left, f"still there after lispd {site.name} stopped: {left}"


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after}


def ping(topology: Lab, namespace: str, address: str, count: int = 3) -> str:
    """A bounded ping that must be answered; its output."""
    done = topology.ns(namespace, "ping", "-c", str(count), "-i", "0.2", "-W", "2", "-w", "10",
                       address, check=False)
    assert done.returncode == 0, f"ping {address} from {namespace}:\n{done.stdout}{done.stderr}"
    return done.stdout


# -- traffic helpers (children running this module in a namespace) ------------


def child(topology: Lab, namespace: str, *args: str,
          stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return topology.popen(namespace, sys.executable, "-m", "tests.netns.sites", *args,
                          cwd=ROOT, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_line(process: subprocess.Popen[bytes], timeout: float = LINE_TIMEOUT) -> str:
    """One line of a child's stdout, waiting at most timeout."""
    assert process.stdout is not None
    line = b""
    deadline = time.monotonic() + timeout
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([process.stdout], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(process.stdout.fileno(), 1) if ready else b""
        if not chunk:
            process.kill()
            _, stderr = process.communicate(timeout=5)
            raise AssertionError(f"child said {line!r}, then nothing: {stderr.decode()}")
        line += chunk
    return line.decode().strip()


def finish(process: subprocess.Popen[bytes], timeout: float = CHILD_TIMEOUT) -> str:
    """Wait for a child: the rest of its stdout; it must exit 0."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    assert process.returncode == 0, f"child exited {process.returncode}: {stderr.decode()}"
    return stdout.decode()


def payload(size: int, seed: int) -> bytes:
    """The deterministic pseudo-random bytes of a transfer."""
    return random.Random(seed).randbytes(size)


@dataclass
class Transfer:
    """A TCP transfer from one namespace to another, the content checked."""

    size: int
    seed: int
    sink: subprocess.Popen[bytes]
    source: subprocess.Popen[bytes] | None = None
    expected: tuple[int, str] = field(default=(0, ""))

    def received(self) -> tuple[int, str]:
        """(bytes, sha256) the sink got; waits for both ends."""
        assert self.source is not None
        finish(self.source)
        answer = json.loads(finish(self.sink).strip().splitlines()[-1])
        return answer["bytes"], answer["sha256"]


def start_transfer(topology: Lab, sender: Endpoint, receiver: Endpoint, version: int, *,
                   size: int = TRANSFER_BYTES, seed: int = 1, port: int = 5001) -> Transfer:
    """Start the sink and the source; returns once the sink has accepted."""
    address = receiver.address(version)
    sink = child(topology, receiver.namespace, "sink", address, str(port))
    transfer = Transfer(size, seed, sink)
    assert read_line(sink) == "listening"
    transfer.source = child(topology, sender.namespace, "source", address, str(port), str(size),
                            str(seed))
    data = payload(size, seed)
    transfer.expected = (len(data), hashlib.sha256(data).hexdigest())
    assert read_line(sink) == "accepted"
    return transfer


def transfer(topology: Lab, sender: Endpoint, receiver: Endpoint, version: int,
             **kwargs: Any) -> None:
    """A whole transfer: what arrives is what was sent."""
    started = start_transfer(topology, sender, receiver, version, **kwargs)
    assert started.received() == started.expected


# -- pcap (tcpdump -w -) --------------------------------------------------------

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6 = 1, 101, 228, 229
LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2 = 113, 276


def pcap_packets(data: bytes) -> list[bytes]:
    """The network-layer packets of a classic pcap file."""
    if len(data) < 24:
        return []
    magic = data[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    (linktype,) = struct.unpack_from(order + "I", data, 20)
    skip = {LINKTYPE_ETHERNET: 14, LINKTYPE_RAW: 0, LINKTYPE_IPV4: 0, LINKTYPE_IPV6: 0,
            LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20}[linktype]
    packets, offset = [], 24
    while offset + 16 <= len(data):
        _, _, captured, _ = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        if linktype == LINKTYPE_ETHERNET and frame[12:14] == b"\x81\x00":
            frame = frame[4:]
        packets.append(frame[skip:])
    return packets


class Capture:
    """tcpdump writing a pcap to a pipe; bounded in packets and time."""

    def __init__(self, topology: Lab, namespace: str, device: str, expression: str, *,
                 count: int = 5000, snaplen: int = 2048) -> None:
        # Immediate mode: each packet reaches the pipe at once, none is left
        # in a half-full kernel block when tcpdump is stopped.
        self.process = topology.popen(
            namespace, "timeout", "60", "tcpdump", "-i", device, "-n", "-U", "--immediate-mode",
            "-w", "-", "-s", str(snaplen), "-c", str(count), expression,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        deadline = time.monotonic() + LINE_TIMEOUT
        said = b""
        while b"listening on" not in said and time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stderr], [], [], 0.5)
            if ready:
                chunk = os.read(self.process.stderr.fileno(), 4096)
                if not chunk:
                    break
                said += chunk
        assert b"listening on" in said, f"tcpdump did not start: {said.decode()}"

    def packets(self, settle: float = 0.3) -> list[bytes]:
        """Stop the capture: the packets seen."""
        time.sleep(settle)  # let the last packets reach the pipe
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        stdout, _ = self.process.communicate(timeout=15)
        return pcap_packets(stdout)


# -- the children ----------------------------------------------------------------


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _listener(address: str, port: int) -> socket.socket:
    server = socket.socket(_family(address), socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(8)
    server.settimeout(CHILD_TIMEOUT / 2)
    return server


def _sink(address: str, port: str) -> None:
    """Accept one connection, read to EOF: the byte count and sha256."""
    server = _listener(address, int(port))
    _say("listening")
    connection, _ = server.accept()
    _say("accepted")
    connection.settimeout(CHILD_TIMEOUT / 2)
    digest, count = hashlib.sha256(), 0
    while chunk := connection.recv(1 << 16):
        digest.update(chunk)
        count += len(chunk)
    connection.close()
    _say(json.dumps({"bytes": count, "sha256": digest.hexdigest()}))


def _source(address: str, port: str, size: str, seed: str) -> None:
    data = payload(int(size), int(seed))
    client = socket.create_connection((address, int(port)), timeout=CHILD_TIMEOUT / 2)
    client.sendall(data)
    client.shutdown(socket.SHUT_WR)
    client.close()


def _banner(address: str, port: str, text: str, count: str) -> None:
    """Answer `count` connections with text, then exit."""
    server = _listener(address, int(port))
    _say("listening")
    for _ in range(int(count)):
        connection, _ = server.accept()
        connection.sendall(text.encode())
        connection.close()


def _fetch(address: str, port: str) -> None:
    """Connect, print what the server says (or the error)."""
    try:
        client = socket.create_connection((address, int(port)), timeout=3)
        client.settimeout(3)
        data = b""
        while chunk := client.recv(4096):
            data += chunk
        _say(data.decode(errors="replace"))
    except OSError as error:
        _say(f"error: {error.strerror or error}")


def _blast(path: str, burst: str, pause: str, at_least: str, at_most: str) -> None:
    """Send the datagrams of a JSON-lines file ({"to": [address, port],
    "hex": payload}) in order, over and over, in bursts with a pause between
    them: at least `at_least` datagrams, then until a line (or EOF) arrives
    on stdin, at most `at_most`. Says "started" after the first burst and
    the count sent at the end."""
    records = []
    with open(path) as lines:
        for line in lines:
            record = json.loads(line)
            records.append((bytes.fromhex(record["hex"]), (record["to"][0], record["to"][1])))
    sockets = {family: socket.socket(family, socket.SOCK_DGRAM)
               for family in (socket.AF_INET, socket.AF_INET6)}
    sent, stop = 0, False
    deadline = time.monotonic() + CHILD_TIMEOUT / 2
    while sent < int(at_most) and time.monotonic() < deadline:
        data, to = records[sent % len(records)]
        for attempt in range(50):
            try:
                sockets[_family(to[0])].sendto(data, to)
                break
            except OSError as error:
                # ICMP errors of earlier sends, a full queue: try again.
                if error.errno not in (errno.ECONNREFUSED, errno.ENOBUFS, errno.EAGAIN):
                    raise
                time.sleep(0.001 * (attempt + 1))
        else:
            raise RuntimeError(f"could not send datagram {sent}")
        sent += 1
        if sent % int(burst) == 0:
            if sent == int(burst):
                _say("started")
            time.sleep(float(pause))
            stop = stop or bool(select.select([sys.stdin], [], [], 0)[0])
            if stop and sent >= int(at_least):
                break
    _say(json.dumps({"sent": sent}))


# Linux values the socket module does not name.
IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, IP_RECVERR = 10, 3, 11
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, IPV6_RECVERR = 23, 3, 25
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3


def _probe(address: str, size: str, tries: str) -> None:
    """Send UDP datagrams of `size` octets of IP packet with DF set (IPv4) /
    no fragmentation (IPv6) to address port 9, and report the first ICMP
    error the kernel queues for the socket (what a sender learns)."""
    family = _family(address)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        data = bytes(int(size) - 40 - 8)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        data = bytes(int(size) - 20 - 8)
    answer: dict[str, Any] = {"error": None}
    for _ in range(int(tries)):
        with contextlib.suppress(OSError):
            sock.sendto(data, (address, 9))
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                _, ancillary, _, _ = sock.recvmsg(2048, 512, socket.MSG_ERRQUEUE)
            except BlockingIOError:
                time.sleep(0.02)
                continue
            for _level, _type, cdata in ancillary:
                ee_errno, origin, kind, code, _pad, info, _data = struct.unpack_from(
                    "=IBBBBII", cdata
                )
                if origin in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
                    answer["error"] = {"errno": ee_errno, "type": kind, "code": code,
                                       "mtu": info}
            if answer["error"] is not None:
                _say(json.dumps(answer))
                return
    _say(json.dumps(answer))


COMMANDS: dict[str, Callable[..., None]] = {
    "sink": _sink, "source": _source, "banner": _banner, "fetch": _fetch, "blast": _blast,
    "probe": _probe,
}


@contextlib.contextmanager
def _quiet_broken_pipe() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        sys.exit(1)


if __name__ == "__main__":
    with _quiet_broken_pipe():
        COMMANDS[sys.argv[1]](*sys.argv[2:])
