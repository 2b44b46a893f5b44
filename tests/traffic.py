"""Traffic inside the namespaces of a lab (lispd.lab), for the namespace and
interop tests: bounded TCP transfers whose content is checked, pings,
tcpdump captures, and waiting for a condition.

Run as `python -m tests.traffic COMMAND ...` inside a namespace, this module
is also the traffic child (see COMMANDS at the bottom): a TCP sink and
source for bulk transfers with a content check, a banner server and client,
a UDP blaster and an MTU probe. Every one of them is bounded in bytes or
packets and in time. Nothing here runs in the root namespace: every process
starts through the lab, in a namespace it made.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lispd.lab import Lab

ROOT = Path(__file__).resolve().parents[1]
TRANSFER_BYTES = 20 * 1024 * 1024
CHILD_TIMEOUT = 60.0
LINE_TIMEOUT = 15.0
PINGS = 3


# -- waiting --------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Whether condition() came true within timeout seconds, looked at every step."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


# -- ping -------------------------------------------------------------------------


def _ping(topology: Lab, namespace: str, target: str, count: int,
          *options: str) -> subprocess.CompletedProcess[str]:
    # -w bounds the run and has a lost echo sent again until count replies are in.
    return topology.ns(namespace, "ping", "-c", str(count), "-i", "0.2", "-w", "10", *options,
                       target, check=False)


def ping_output(topology: Lab, namespace: str, target: str, *, count: int = PINGS,
                source: str = "") -> str:
    """count echo requests to target (from the address source, if given):
    ping's stdout and stderr, whatever came back."""
    done = _ping(topology, namespace, target, count, *(["-I", source] if source else []))
    return done.stdout + done.stderr


def replies(output: str) -> int:
    """How many echo replies ping's output counts."""
    for line in output.splitlines():
        if "packets transmitted" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def ping(topology: Lab, namespace: str, target: str, count: int = PINGS) -> str:
    """A ping that must be answered (at least count replies: ping exits 0); its output."""
    done = _ping(topology, namespace, target, count, "-W", "2")
    assert done.returncode == 0, f"ping {target} from {namespace}:\n{done.stdout}{done.stderr}"
    return done.stdout


# -- children (this module in a namespace) ----------------------------------------


def child(topology: Lab, namespace: str, *args: str,
          stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return topology.popen(namespace, sys.executable, "-m", "tests.traffic", *args,
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


# -- TCP transfers with a content check -------------------------------------------


def payload(size: int, seed: int) -> bytes:
    """The deterministic pseudo-random bytes of a transfer."""
    return random.Random(seed).randbytes(size)


def _counted(data: bytes) -> tuple[int, str]:
    """(octets, sha256) of data: what each end of a transfer reports."""
    return len(data), hashlib.sha256(data).hexdigest()


def _report(output: str) -> tuple[int, str]:
    answer = json.loads(output.strip().splitlines()[-1])
    return answer["bytes"], answer["sha256"]


@dataclass
class Transfer:
    """A TCP transfer from one namespace to another, the content checked."""

    size: int
    seed: int
    sink: subprocess.Popen[bytes]
    source: subprocess.Popen[bytes] | None = None
    expected: tuple[int, str] = field(default=(0, ""))

    def received(self) -> tuple[int, str]:
        """(bytes, sha256) the sink got; waits for both ends. The source
        must have sent what was expected."""
        assert self.source is not None
        sent = _report(finish(self.source))
        assert sent == self.expected, f"seed {self.seed}: sent {sent}, meant {self.expected}"
        return _report(finish(self.sink))

    def check(self) -> None:
        """What arrived is what was sent and meant: octets and sha256."""
        received = self.received()
        assert received == self.expected, f"seed {self.seed}: got {received}, meant {self.expected}"


def start_transfer(topology: Lab, sender: str, receiver: str, address: str, *,
                   bind: str = "", size: int = TRANSFER_BYTES, seed: int | None = None,
                   port: int = 5001) -> Transfer:
    """Start a sink on address in the namespace receiver and a source in the
    namespace sender (from the address bind, if given) that sends size
    pseudo-random octets (of seed, a random one if None); returns once the
    sink has accepted."""
    if seed is None:
        seed = random.randrange(2**32)
    sink = child(topology, receiver, "sink", address, str(port))
    transfer = Transfer(size, seed, sink)
    assert read_line(sink) == "listening"
    transfer.source = child(topology, sender, "source", address, str(port), str(size),
                            str(seed), bind)
    transfer.expected = _counted(payload(size, seed))
    assert read_line(sink) == "accepted"
    return transfer


def transfer(topology: Lab, sender: str, receiver: str, address: str, **kwargs: Any) -> None:
    """A whole transfer (start_transfer's arguments): what arrives is what was sent."""
    start_transfer(topology, sender, receiver, address, **kwargs).check()


# -- the children ------------------------------------------------------------------


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


def _source(address: str, port: str, size: str, seed: str, bind: str = "") -> None:
    """Connect (from bind, if given), send the payload, close: its byte
    count and sha256."""
    data = payload(int(size), int(seed))
    client = socket.create_connection((address, int(port)), timeout=CHILD_TIMEOUT / 2,
                                      source_address=(bind, 0) if bind else None)
    client.sendall(data)
    client.shutdown(socket.SHUT_WR)
    client.close()
    count, sha256 = _counted(data)
    _say(json.dumps({"bytes": count, "sha256": sha256}))


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
