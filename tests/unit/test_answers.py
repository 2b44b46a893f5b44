"""Answers to control requests, against a node made of the real parts: a parsed
configuration, a real map-cache, FDB and control plane (never started: no
socket is opened), fed through the machines' own inputs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address
from typing import Any

import pytest

import lispd
from lispd import answers, ctl
from lispd.config import Config, parse
from lispd.control import queries, setup
from lispd.control.plane import ControlPlane
from lispd.dataplane.fastpath import FastPath
from lispd.dataplane.tables import Fdb, FdbEntry, Fib
from lispd.lab import map_server_config
from lispd.mapcache import EidPrefix, Locator, MapCache, MapEntry
from lispd.wire import auth
from lispd.wire.control import decode, encode
from lispd.wire.messages import MapRegister, MapReply, MapRequest
from lispd.wire.records import Action, EidRecord, LocatorRecord, MappingRecord

NOW = 1000.0
KEY = "tenant-s3cret"

XTR = f"""
[underlay]
rlocs = ["198.18.0.1"]

[xtr]
eid-space = ["192.0.2.0/24", "198.51.100.0/24"]
map-resolvers = ["198.18.0.9"]
proxy-etrs = ["198.18.0.7"]
rloc-probe-interval = 10

[[xtr.map-server]]
address = "198.18.0.9"
key = "{KEY}"
proxy-reply = true

[[xtr.database-mapping]]
eid-prefix = "192.0.2.0/26"

[[xtr.static-mapping]]
eid-prefix = "198.51.100.0/24"
rlocs = [{{ address = "198.18.0.2", priority = 2, weight = 50 }}]

[[vxlan]]
device = "tap0"
vni = 100
local = "198.18.0.1"
flood = ["198.18.0.2"]
static = [{{ mac = "02:00:00:00:00:0b", vtep = "198.18.0.2" }}]
"""

MAP_SERVER = map_server_config("198.18.0.9", KEY)

BARE_XTR = """
[underlay]
rlocs = ["198.18.0.1"]

[xtr]
eid-space = ["192.0.2.0/24"]
rloc-probe-interval = 0
"""


@dataclass
class Node:
    """What the daemon shows answers: the real tables; flush and reload as the
    daemon's contract says (reload answers `reloaded`, or refuses)."""

    config: Config
    mapcache: MapCache
    fdb: Fdb
    plane: ControlPlane | None
    dataplane_path: str = "batched"
    reloaded: list[str] | None = None
    counted: dict[str, int] = field(default_factory=lambda: {"itr_packets": 3})

    def counters(self) -> dict[str, int]:
        return self.counted

    def flush(self, prefix: EidPrefix | None) -> int:
        return len(self.mapcache.flush(prefix))

    async def reload(self) -> list[str]:
        if self.reloaded is None:
            raise ctl.RequestError("reload refused: xtr.tun: not a string")
        return self.reloaded


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = asyncio.new_event_loop()
    yield made
    made.close()


def make(loop: asyncio.AbstractEventLoop, text: str, *, plane: bool = True) -> Node:
    config = parse(text)
    mapcache, fdb = MapCache(100), Fdb(100)
    fib, database_fib = Fib(100), Fib(10)
    node = Node(config, mapcache, fdb, None)
    if config.xtr is not None:
        for static in config.xtr.static_mappings:
            mapcache.insert(MapEntry(
                EidPrefix.of(0, static.eid_prefix.network_address, static.eid_prefix.prefixlen),
                tuple(Locator(r.address, r.priority, r.weight) for r in static.rlocs)), NOW)
    for segment in config.vxlan:
        for pinned in segment.static:
            fdb.set(FdbEntry(segment.vni, pinned.mac, pinned.vtep, True, 0))
    if plane:
        node.plane = ControlPlane(
            loop, config, mapcache=mapcache, mapcache_fib=fib, database_fib=database_fib,
            fastpath=FastPath(fib, database_fib, fdb), tuns={}, rlocs=config.underlay.rlocs,
        )
    return node


@pytest.fixture
def xtr(loop: asyncio.AbstractEventLoop) -> Node:
    return make(loop, XTR)


def ask(node: Node, *request: str, now: float = NOW) -> Any:
    command, *args = request
    result = answers.answer(node, command, args, now=now)
    json.dumps(result)  # every answer goes out as JSON
    return result


def learn(node: Node, prefix: str, rloc: str, ttl: float, at: float) -> None:
    entry = MapEntry(EidPrefix.parse(prefix), (Locator(ip_address(rloc)),), ttl=ttl)
    node.mapcache.insert(entry, at)


def plane_of(node: Node) -> ControlPlane:
    assert node.plane is not None
    return node.plane


# -- requests --------------------------------------------------------------------------------


def test_version(xtr: Node) -> None:
    result = ask(xtr, "version")
    assert result["version"] == lispd.__version__
    assert result["roles"] == ["xtr", "vxlan"]
    assert result["dataplane"] == "batched"
    assert result["config"] == "<string>"
    assert {"python", "pid"} <= set(result)


def test_help_lists_every_request(xtr: Node) -> None:
    assert ask(xtr, "help") == [*(f"show {t}" for t in answers.SHOW), "show map-cache PREFIX",
                                "map-cache flush [PREFIX]", "reload", "version", "help"]


@pytest.mark.parametrize("request_", [("frobnicate",), ("show",), ("show", "everything"),
                                      ("show", "stats", "now"), ("map-cache", "drop"),
                                      ("map-cache", "flush", "a", "b"), ("reload", "now")])
def test_an_unknown_request_is_named_with_the_known_ones(xtr: Node,
                                                        request_: tuple[str, ...]) -> None:
    with pytest.raises(ctl.RequestError) as raised:
        ask(xtr, *request_)
    message = str(raised.value)
    assert message.startswith(f"unknown request {' '.join(request_)!r}; known: show map-cache;")
    assert message.endswith("reload; version; help")


def test_show_stats_is_the_counters(xtr: Node) -> None:
    assert ask(xtr, "show", "stats") == {"itr_packets": 3}


def test_show_map_cache(xtr: Node) -> None:
    learn(xtr, "192.0.2.128/25", "198.18.0.3", ttl=60, at=NOW - 20)
    xtr.mapcache.insert(MapEntry(EidPrefix.parse("192.0.2.64/26"), ttl=900,
                                 action=Action.NATIVELY_FORWARD), NOW)
    rows = {row["eid-prefix"]: row for row in ask(xtr, "show", "map-cache")}
    assert rows["[0]198.51.100.0/24"] == {
        "eid-prefix": "[0]198.51.100.0/24", "ttl": None, "expires-at": None, "static": True,
        "action": "no_action",
        "rlocs": [{"address": "198.18.0.2", "priority": 2, "weight": 50, "up": True}],
    }
    learnt = rows["[0]192.0.2.128/25"]
    assert (learnt["ttl"], learnt["expires-at"], learnt["static"]) == (60, 40.0, False)
    negative = rows["[0]192.0.2.64/26"]
    assert (negative["rlocs"], negative["action"]) == ([], "natively_forward")


def test_flush_forgets_learnt_entries_and_keeps_static_ones(xtr: Node) -> None:
    learn(xtr, "192.0.2.128/25", "198.18.0.3", ttl=60, at=NOW)
    learn(xtr, "192.0.2.0/27", "198.18.0.4", ttl=60, at=NOW)
    assert ask(xtr, "map-cache", "flush", "[0]192.0.2.0/26") == {"flushed": 1}
    assert ask(xtr, "map-cache", "flush", "192.0.2.0/24") == {"flushed": 1}
    learn(xtr, "192.0.2.0/27", "198.18.0.4", ttl=60, at=NOW)
    assert ask(xtr, "map-cache", "flush") == {"flushed": 1}
    assert [row["eid-prefix"] for row in ask(xtr, "show", "map-cache")] == ["[0]198.51.100.0/24"]


@pytest.mark.parametrize(("text", "reason"), [
    ("192.0.2.1/24", "did you mean 192.0.2.0/24?"),
    ("192.0.2.0", "not an EID prefix (want ADDRESS/LENGTH)"),
    ("192.0.2.0/33", "prefix length 33 is not in 0..32"),
    ("[99999999]192.0.2.0/24", "instance-id 99999999 is not in"),
])
def test_flush_of_a_bad_prefix_says_why(xtr: Node, text: str, reason: str) -> None:
    with pytest.raises(ctl.RequestError, match=r"^map-cache flush: ") as raised:
        ask(xtr, "map-cache", "flush", text)
    assert reason in str(raised.value)


@pytest.mark.asyncio
async def test_reload_answers_what_was_applied(xtr: Node) -> None:
    xtr.reloaded = ["xtr.map-resolvers: 198.18.0.9 -> 198.18.0.10"]
    assert await ask_async(xtr, "reload") == {"applied": xtr.reloaded}


@pytest.mark.asyncio
async def test_a_refused_reload_is_the_daemons_error(xtr: Node) -> None:
    with pytest.raises(ctl.RequestError) as raised:
        await ask_async(xtr, "reload")
    assert str(raised.value) == "reload refused: xtr.tun: not a string"


async def ask_async(node: Node, *request: str) -> Any:
    command, *args = request
    result = await answers.answer(node, command, args, now=NOW)
    return result


def test_show_vxlan(xtr: Node) -> None:
    xtr.fdb.set(FdbEntry(100, bytes.fromhex("02000000000a"), IPv4Address("198.18.0.3"), False,
                         5))
    assert ask(xtr, "show", "vxlan") == {
        "segments": [{"vni": 100, "device": "tap0", "local": "198.18.0.1",
                      "flood": ["198.18.0.2"], "learning": True, "ageing": 300}],
        "fdb": [
            {"vni": 100, "mac": "02:00:00:00:00:0a", "vtep": "198.18.0.3", "static": False},
            {"vni": 100, "mac": "02:00:00:00:00:0b", "vtep": "198.18.0.2", "static": True},
        ],
    }


# -- the control plane's tables --------------------------------------------------------------


def test_show_database_and_the_xtrs_registrations(xtr: Node) -> None:
    registrar = plane_of(xtr).node.registrar
    assert registrar is not None
    registrar.start(NOW - 5)
    database = ask(xtr, "show", "database")
    assert database["mappings"] == [{
        "eid-prefix": "192.0.2.0/26", "instance-id": 0, "assign": False, "interface": None,
        "rlocs": [{"address": "198.18.0.1", "priority": 1, "weight": 100}]}]
    (row,) = database["registrations"]
    assert (row["server"], row["eid-prefix"], row["acknowledged"], row["attempts"]) == (
        "198.18.0.9", "192.0.2.0/26", False, 1)
    # Points in time are seconds from the answer: sent 5 s ago.
    assert row["last-sent"] == -5.0 and row["acknowledged-at"] is None
    assert ask(xtr, "show", "registrations") == database["registrations"]


def register(node: Node, prefix: str, rloc: str, now: float) -> None:
    """A signed Map-Register, as an xTR sends it, into the map-server."""
    address, length = prefix.split("/")
    record = MappingRecord(ip_address(address), int(length),
                           (LocatorRecord(ip_address(rloc), 1, 100, reachable=True),),
                           ttl=1440, authoritative=True)
    message = auth.sign(MapRegister(7, (record,), want_map_notify=True), KEY.encode(),
                        auth.KeyId.HMAC_SHA256_128)
    server = plane_of(node).node.map_server
    assert server is not None
    server.receive(encode(message), ip_address(rloc), 4342, now)


def test_show_registrations_on_a_map_server(loop: asyncio.AbstractEventLoop) -> None:
    server = make(loop, MAP_SERVER)
    register(server, "192.0.2.64/26", "198.18.2.2", NOW - 10)
    (row,) = ask(server, "show", "registrations")
    assert (row["prefix"], row["site"], row["source"], row["key-id"]) == (
        "[0]192.0.2.64/26", "tenant", "198.18.2.2", 2)
    assert [loc["locator"] for loc in row["record"]["locators"]] == ["198.18.2.2"]
    assert row["registered-at"] == -10.0 and row["expires-at"] > 0
    assert ask(server, "show", "subscriptions") == []


def test_show_peers(xtr: Node) -> None:
    plane = plane_of(xtr)
    assert plane.node.registrar is not None and plane.node.resolver is not None
    plane.node.registrar.start(NOW)
    plane.node.resolver.miss(0, IPv4Address("192.0.2.200"), None, NOW)
    peers = ask(xtr, "show", "peers")
    (server,) = peers["map-servers"]
    assert (server["address"], server["key-id"], server["proxy-reply"]) == (
        "198.18.0.9", "hmac-sha256", True)
    assert [row["eid-prefix"] for row in server["registrations"]] == ["192.0.2.0/26"]
    assert peers["map-resolvers"] == [{"address": "198.18.0.9", "pending": 1}]
    assert peers["proxy-etrs"] == ["198.18.0.7"]
    assert peers["probes"] == []


def test_show_resolver_and_probes(xtr: Node) -> None:
    plane = plane_of(xtr)
    assert plane.node.resolver is not None
    plane.node.resolver.miss(0, IPv4Address("192.0.2.200"), None, NOW - 1)
    (pending,) = ask(xtr, "show", "resolver")
    assert (pending["reason"], pending["attempts"], pending["map-resolver"]) == (
        "miss", 1, "198.18.0.9")
    assert pending["created"] == -1.0
    assert ask(xtr, "show", "probes") == []


def test_no_table_shows_a_key(xtr: Node, loop: asyncio.AbstractEventLoop) -> None:
    server = make(loop, MAP_SERVER)
    register(server, "192.0.2.64/26", "198.18.2.2", NOW)
    plane = plane_of(xtr)
    assert plane.node.registrar is not None
    plane.node.registrar.start(NOW)
    for node in (xtr, server):
        for table in answers.SHOW:
            try:
                shown = json.dumps(ask(node, "show", table))
            except ctl.RequestError:
                continue
            assert KEY not in shown and KEY.encode().hex() not in shown, table


def test_jsonable_leaves_out_fields_kept_from_repr(xtr: Node) -> None:
    assert xtr.config.xtr is not None
    (peer,) = setup.map_server_peers(xtr.config.xtr)
    assert queries.jsonable(peer) == {"address": "198.18.0.9", "key-id": "hmac_sha256_128",
                                      "proxy-reply": True}
    assert "key" not in queries.jsonable(xtr.config.xtr.map_servers[0])


@pytest.mark.parametrize(("text", "table", "reason"), [
    (BARE_XTR, "registrations", "this node neither is a map-server ([map-server]) nor "
                                "registers with one ([[xtr.map-server]])"),
    (BARE_XTR, "subscriptions", "this node is no map-server"),
    (BARE_XTR, "resolver", "this node resolves nothing (xtr.map-resolvers is empty)"),
    (BARE_XTR, "probes", "RLOC probing is off (xtr.rloc-probe-interval is 0)"),
    (MAP_SERVER, "database", "this node is no xTR"),
    (MAP_SERVER, "peers", "this node is no xTR"),
])
def test_a_table_of_a_role_not_configured_says_what_turns_it_on(
    loop: asyncio.AbstractEventLoop, text: str, table: str, reason: str
) -> None:
    node = make(loop, text)
    with pytest.raises(ctl.RequestError) as raised:
        ask(node, "show", table)
    assert str(raised.value).startswith(reason)


def test_peers_without_probing_say_so(loop: asyncio.AbstractEventLoop) -> None:
    peers = ask(make(loop, BARE_XTR), "show", "peers")
    assert peers == {"map-servers": [], "map-resolvers": [], "proxy-etrs": [], "probes": None}


def test_control_tables_wait_for_the_control_plane(loop: asyncio.AbstractEventLoop) -> None:
    node = make(loop, XTR, plane=False)
    for table in ("database", "registrations", "peers", "subscriptions", "resolver", "probes"):
        with pytest.raises(ctl.RequestError, match="the control plane is not running yet"):
            ask(node, "show", table)
    # The data plane's tables need none.
    assert ask(node, "show", "vxlan")["segments"][0]["vni"] == 100
    assert len(ask(node, "show", "map-cache")) == 1



def test_show_map_cache_within_a_prefix_and_its_bound(
    xtr: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    learn(xtr, "192.0.2.128/25", "198.18.0.3", ttl=60, at=NOW)
    learn(xtr, "192.0.2.0/27", "198.18.0.4", ttl=60, at=NOW)
    within = ask(xtr, "show", "map-cache", "192.0.2.0/25")
    assert [row["eid-prefix"] for row in within] == ["[0]192.0.2.0/27"]
    with pytest.raises(ctl.RequestError, match=r"^show map-cache: "):
        ask(xtr, "show", "map-cache", "not-a-prefix")
    monkeypatch.setattr(answers, "SHOW_LIMIT", 2)
    with pytest.raises(ctl.RequestError, match="3 map-cache entries, more than the 2"):
        ask(xtr, "show", "map-cache")


STATIC_ONLY = """
[underlay]
rlocs = ["198.18.0.1"]

[xtr]
eid-space = ["192.0.2.0/24", "198.51.100.0/24"]

[[xtr.database-mapping]]
eid-prefix = "192.0.2.0/26"

[[xtr.static-mapping]]
eid-prefix = "198.51.100.0/24"
rlocs = [{ address = "198.18.0.2" }]
"""


def test_a_static_only_xtr_answers_rloc_probes(loop: asyncio.AbstractEventLoop) -> None:
    """No map-server, no map-resolver: the peer's prober (on by default)
    still gets its answers, or it would mark this node's locator down."""
    plane = plane_of(make(loop, STATIC_ONLY))
    assert plane.enabled and plane.node.registrar is not None
    assert plane.acknowledged_by() is None  # nothing to wait for at start-up
    assert plane.node.registrar.start(NOW) == []  # no one to register with
    probe = MapRequest(0x5EED, (IPv4Address("198.18.0.2"),),
                       (EidRecord(IPv4Address("192.0.2.1"), 32),), probe=True)
    out = plane.node.receive(encode(probe), IPv4Address("198.18.0.2"), 4342,
                             IPv4Address("198.18.0.1"), NOW)
    (reply,) = [decode(datagram.payload) for datagram, _ in out.sourced]
    assert isinstance(reply, MapReply) and reply.probe and reply.nonce == 0x5EED
