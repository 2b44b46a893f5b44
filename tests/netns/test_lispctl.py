"""The real `lispctl` against real daemons: a map-server and an xTR that
registers with it and resolves through it (a static mapping, a VXLAN
segment, RLOC probing on). Every command in its human and its JSON form;
`map-cache flush` forgets what was learnt and keeps the configuration's
entries; a refused reload exits 1 with the daemon's reason; then garbage at
the control socket, after which the daemon still runs and answers.

Underlay 198.18.0.0/24 on the veth `ul0`: the xTR at .1, the map-server at
.9. The xTR's own EID 192.0.2.10 sits on its TUN.
"""

from __future__ import annotations

import json
import random
import socket
import sys
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lispd import ctl
from lispd.lab import Lab, Lispd, lab, map_server_config
from tests.needs import require_netns, require_program
from tests.traffic import wait_for

pytestmark = pytest.mark.netns

XTR_RLOC, MS_RLOC, ABSENT_RLOC = "198.18.0.1", "198.18.0.9", "198.18.0.2"
EID = "192.0.2.10"
UNREGISTERED = "192.0.2.250"
"""Inside the site's prefix, registered by nobody: a negative Map-Reply for it is learnt."""
KEY = "ctl-test-s3cret"
LISPCTL = Path(sys.executable).with_name("lispctl")
ANSWER_WAIT = 10.0

MS_CONFIG = map_server_config(MS_RLOC, KEY)

XTR_CONFIG = f"""
[underlay]
rlocs = ["{XTR_RLOC}"]

[xtr]
eid-space = ["192.0.2.0/24", "198.51.100.0/24"]
map-resolvers = ["{MS_RLOC}"]
proxy-etrs = ["{MS_RLOC}"]
rloc-probe-interval = 30

[[xtr.map-server]]
address = "{MS_RLOC}"
key = "{KEY}"

[[xtr.database-mapping]]
eid-prefix = "{EID}/32"
assign = true

[[xtr.static-mapping]]
eid-prefix = "198.51.100.0/24"
rlocs = [{{ address = "{ABSENT_RLOC}" }}]

[[vxlan]]
device = "vxl0"
vni = 100
local = "{XTR_RLOC}"
flood = ["{ABSENT_RLOC}"]
static = [{{ mac = "02:00:00:00:00:0b", vtep = "{ABSENT_RLOC}" }}]
"""


@dataclass
class Pair:
    lab: Lab
    ms: Lispd
    xtr: Lispd

    def lispctl(self, daemon: Lispd, *argv: str) -> tuple[int, str, str]:
        """The real command, run where the daemon runs; (status, stdout, stderr)."""
        done = self.lab.ns(daemon.namespace, str(LISPCTL), "--socket", str(daemon.socket),
                           *argv, check=False)
        return done.returncode, done.stdout, done.stderr

    def answered(self, daemon: Lispd, *argv: str) -> str:
        status, out, err = self.lispctl(daemon, *argv)
        assert status == 0 and err == "", (argv, status, err, daemon.log()[-3000:])
        return out

    def json(self, daemon: Lispd, *argv: str) -> Any:
        return json.loads(self.answered(daemon, "--json", *argv))


def registered(ms: Lispd) -> bool:
    return any(row["prefix"] == f"[0]{EID}/32" for row in ms.request("show", "registrations"))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    require_netns()
    require_program("ping", "iputils-ping")
    if not LISPCTL.exists():
        pytest.fail(f"no {LISPCTL}: `pip install -e .` makes it")
    with lab() as topology:
        xtr_ns, ms_ns = topology.add("x"), topology.add("ms")
        topology.link(xtr_ns, "ul0", ms_ns, "ul0")
        topology.ns(xtr_ns, "ip", "addr", "add", f"{XTR_RLOC}/24", "dev", "ul0")
        topology.ns(ms_ns, "ip", "addr", "add", f"{MS_RLOC}/24", "dev", "ul0")
        ms = topology.lispd(ms_ns, MS_CONFIG, tmp_path, "ms")
        xtr = topology.lispd(xtr_ns, XTR_CONFIG, tmp_path, "xtr")
        assert wait_for(lambda: registered(ms), ANSWER_WAIT), ms.log()[-3000:]
        yield Pair(topology, ms, xtr)
        for daemon in (xtr, ms):
            status = daemon.stop()
            assert status == 0, f"lispd {daemon.name} exited {status}:\n{daemon.log()[-3000:]}"


def learn_negative(pair: Pair) -> None:
    """Send to an EID nobody registered: the map-resolver's negative answer is learnt."""
    pair.lab.ns(pair.xtr.namespace, "ping", "-c", "1", "-W", "1", "-I", EID, UNREGISTERED,
                check=False)

    def learnt() -> bool:
        return any(not row["static"] for row in pair.xtr.request("show", "map-cache"))

    assert wait_for(learnt, ANSWER_WAIT), pair.xtr.request("show", "map-cache")


# -- every command -------------------------------------------------------------------------


def test_show_tables_of_an_xtr(pair: Pair) -> None:
    learn_negative(pair)
    xtr = pair.xtr
    human = pair.answered(xtr, "show", "map-cache")
    assert human.startswith("EID-PREFIX") and "[0]198.51.100.0/24" in human and "static" in human
    cache = {row["eid-prefix"]: row for row in pair.json(xtr, "show", "map-cache")}
    assert cache["[0]198.51.100.0/24"]["static"] is True
    assert any(row["rlocs"] == [] and row["expires-at"] > 0 for row in cache.values())

    database = pair.json(xtr, "show", "database")
    assert [m["eid-prefix"] for m in database["mappings"]] == [f"{EID}/32"]
    assert wait_for(lambda: all(row["acknowledged"] for row in
                                pair.json(xtr, "show", "database")["registrations"]),
                    ANSWER_WAIT)
    assert f"[0]{EID}/32" in pair.answered(xtr, "show", "database")
    own = pair.json(xtr, "show", "registrations")
    assert [(row["server"], row["eid-prefix"]) for row in own] == [(MS_RLOC, f"{EID}/32")]
    assert "registered" in pair.answered(xtr, "show", "registrations")

    vxlan = pair.json(xtr, "show", "vxlan")
    assert [s["device"] for s in vxlan["segments"]] == ["vxl0"]
    assert {"vni": 100, "mac": "02:00:00:00:00:0b", "vtep": ABSENT_RLOC,
            "static": True} in vxlan["fdb"]
    assert "02:00:00:00:00:0b" in pair.answered(xtr, "show", "vxlan")

    peers = pair.json(xtr, "show", "peers")
    assert [s["address"] for s in peers["map-servers"]] == [MS_RLOC]
    assert peers["map-resolvers"][0]["address"] == MS_RLOC
    assert peers["proxy-etrs"] == [MS_RLOC] and isinstance(peers["probes"], list)
    human = pair.answered(xtr, "show", "peers")
    assert "Map-servers:" in human and KEY not in human
    assert KEY not in json.dumps(peers)

    stats = pair.json(xtr, "show", "stats")
    assert stats["resolver_map_requests_sent"] >= 1
    assert pair.answered(xtr, "show", "stats").startswith("COUNTER")
    for table in ("resolver", "probes"):
        assert isinstance(pair.json(xtr, "show", table), list)
        assert pair.answered(xtr, "show", table).startswith("EID-PREFIX")

    version = pair.json(xtr, "version")
    assert version["roles"] == ["xtr", "vxlan"] and version["config"] == str(xtr.config_path)
    assert pair.answered(xtr, "version").startswith(f"lispd {version['version']} ")


def test_show_tables_of_a_map_server(pair: Pair) -> None:
    ms = pair.ms
    rows = pair.json(ms, "show", "registrations")
    assert [row["prefix"] for row in rows] == [f"[0]{EID}/32"]
    human = pair.answered(ms, "show", "registrations")
    assert f"[0]{EID}/32" in human and "tenant" in human and KEY not in human
    # The xTR subscribed to what it resolved? Either way the table reads.
    assert isinstance(pair.json(ms, "show", "subscriptions"), list)
    assert pair.answered(ms, "show", "subscriptions").startswith("EID-PREFIX")
    assert pair.json(ms, "version")["roles"] == ["map-server"]


@pytest.mark.parametrize(("table", "reason"), [("database", "this node is no xTR"),
                                               ("peers", "this node is no xTR"),
                                               ("resolver", "this node resolves nothing")])
def test_a_table_the_node_does_not_have_exits_1(pair: Pair, table: str, reason: str) -> None:
    status, out, err = pair.lispctl(pair.ms, "show", table)
    assert (status, out) == (1, "")
    assert err.startswith(f"lispctl: lispd refused 'show {table}': {reason}"), err


def test_flush_forgets_learnt_entries_and_keeps_static_ones(pair: Pair) -> None:
    xtr = pair.xtr
    learn_negative(pair)
    learnt = [row["eid-prefix"] for row in xtr.request("show", "map-cache") if not row["static"]]
    assert pair.json(xtr, "map-cache", "flush", "203.0.113.0/24") == {"flushed": 0}
    assert pair.answered(xtr, "map-cache", "flush", "192.0.2.0/24") == (
        f"flushed {len(learnt)} map-cache {'entry' if len(learnt) == 1 else 'entries'}\n")
    assert [row["eid-prefix"] for row in pair.json(xtr, "show", "map-cache")] == [
        "[0]198.51.100.0/24"]

    learn_negative(pair)
    assert pair.json(xtr, "map-cache", "flush")["flushed"] >= 1
    assert [row["eid-prefix"] for row in xtr.request("show", "map-cache")] == [
        "[0]198.51.100.0/24"]

    status, _, err = pair.lispctl(xtr, "map-cache", "flush", "192.0.2.1/24")
    assert status == 1 and "did you mean 192.0.2.0/24?" in err


def test_a_refused_reload_exits_1_with_the_daemons_reason(pair: Pair) -> None:
    xtr = pair.xtr
    good = xtr.config_path.read_text()
    xtr.config_path.write_text(good + "\n[xtr\nthis is not TOML\n")
    try:
        status, out, err = pair.lispctl(xtr, "reload")
    finally:
        xtr.config_path.write_text(good)
    assert (status, out) == (1, "")
    # The daemon's reason names the file and the line it could not read.
    assert err.startswith("lispctl: lispd refused 'reload': "), err
    assert f"{xtr.config_path}:" in err, err
    assert xtr.process is not None and xtr.process.poll() is None
    assert pair.json(xtr, "show", "stats")


def test_lispctl_without_a_daemon_exits_2(pair: Pair, tmp_path: Path) -> None:
    done = pair.lab.ns(pair.xtr.namespace, str(LISPCTL), "--socket", str(tmp_path / "no.sock"),
                       "show", "stats", check=False)
    assert done.returncode == 2 and "no such socket" in done.stderr


# -- garbage at the socket -------------------------------------------------------------------


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(ANSWER_WAIT)
    sock.connect(str(path))
    return sock


def answer_line(sock: socket.socket) -> dict[str, Any]:
    """The next answer on the connection."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


def ended(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_garbage_at_the_socket_leaves_the_daemon_answering(pair: Pair) -> None:
    path = pair.xtr.socket
    rng = random.Random(5)

    # Random bytes, in lines: an error answer for each line, the connection stays.
    with connect(path) as sock:
        for _ in range(20):
            line = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            sock.sendall(line.replace(b"\n", b"") + b"\n")
            assert answer_line(sock)["ok"] is False
        sock.sendall(b'{"command": "version"}\n')
        assert answer_line(sock)["ok"] is True

    # A 1 MiB line: one error answer, then the daemon hangs up.
    with connect(path) as sock:
        # It stops reading at 64 KiB: the rest may not go, the answer is there.
        with suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"x" * (1 << 20) + b"\n")
        assert answer_line(sock)["error"].startswith("request too long")
        assert ended(sock)

    # Half a JSON object, then gone.
    with connect(path) as sock:
        sock.sendall(b'{"command": "show", "args": ["st')

    # Many connections at once: the ones past the limit are turned away.
    with ExitStack() as stack:
        socks = [stack.enter_context(connect(path)) for _ in range(ctl.MAX_CONNECTIONS + 8)]
        answers = []
        for sock in socks:
            # One turned away may be closed already; its answer waits all the same.
            with suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b'{"command": "version"}\n')
            answers.append(answer_line(sock))
        turned_away = [a for a in answers if not a["ok"]]
        assert len(turned_away) >= 8, answers
        assert all(a["error"].startswith("too many control connections") for a in turned_away)

    # Still running, still answering, and no answer failed inside.
    xtr = pair.xtr
    assert xtr.process is not None and xtr.process.poll() is None
    assert wait_for(lambda: pair.lispctl(xtr, "show", "stats")[0] == 0, ANSWER_WAIT)
    assert pair.json(xtr, "version")["roles"] == ["xtr", "vxlan"]
    assert "control_request_failed" not in xtr.log()
