"""The Prometheus endpoint: the catalogue against the code, the text, the HTTP server."""

from __future__ import annotations

import ast
import asyncio
import errno
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal

import pytest
from prometheus_client.parser import text_string_to_metric_families

import lispd.control
from lispd import __version__, gateway, mapcache, metrics_catalogue
from lispd.control.mapserver import MapServer
from lispd.control.node import Route
from lispd.control.registrar import Registrar
from lispd.dataplane import fastpath
from lispd.metrics import MetricsServer, exposition
from lispd.metrics_catalogue import CATALOGUE, series_of
from lispd.sdnotify import Notifier

LOCALHOST = IPv4Address("127.0.0.1")
CONTROL = Path(lispd.control.__file__).parent
# Which machine's counters (the prefix ControlPlane.counters gives them) each
# file of lispd/control counts into: notifier and subscriptions count with
# the map-server's _count, which it hands them.
MACHINE_OF_FILE = {
    "mapserver.py": "map_server",
    "notifier.py": "map_server",
    "subscriptions.py": "map_server",
    "registrar.py": "registrar",
    "resolver.py": "resolver",
    "probing.py": "prober",
    "smr.py": "smr",
    "node.py": "control",
    "udp.py": "control_socket",
}
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
Sample = tuple[str, frozenset[tuple[str, str]]]


def samples(text: bytes) -> dict[Sample, float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def sample_of(flat: str, kind: Literal["counter", "gauge"] = "counter") -> Sample:
    family, values = series_of(flat, kind)
    return family.name, frozenset(zip(family.labels, values, strict=True))


# --- the catalogue ------------------------------------------------------------


def test_the_catalogue_is_well_formed() -> None:
    bases = ["lispd_build_info", "lispd_dataplane_info", "lispd_event_loop_responsive"]
    flats: set[tuple[str, str]] = set()
    for family in CATALOGUE:
        assert NAME.fullmatch(family.name), family.name
        assert family.name.startswith("lispd_")
        assert family.name.endswith("_total") == (family.kind == "counter"), family.name
        assert family.help and all(LABEL.fullmatch(label) for label in family.labels)
        assert not any(label.startswith("__") for label in family.labels)
        bases.append(family.name.removesuffix("_total"))
        values = list(family.series.values())
        assert len(set(values)) == len(values), f"{family.name}: two names, one series"
        assert all(len(v) == len(family.labels) for v in values), family.name
        assert all(len(v) == len(family.labels) - 1 for v in family.prefixes.values())
        for flat in family.series:
            assert (family.kind, flat) not in flats, f"{flat} catalogued twice"
            flats.add((family.kind, flat))
    assert len(set(bases)) == len(bases), "two families share a name"


def test_the_catalogue_covers_the_fast_path() -> None:
    assert set(metrics_catalogue.DROP_REASONS) == set(fastpath.DROP_REASONS.values())
    for flat in (*fastpath.COUNTERS, *(f"drop_{r}" for r in fastpath.DROP_REASONS.values())):
        assert flat in series_of(flat)[0].series, flat


# The parts Daemon.counters() merges under a prefix, and the names each counts.
DAEMON_PARTS: dict[str, Callable[[], set[str]]] = {
    "map_cache_": lambda: set(mapcache.COUNTERS),
    "systemd_notify_": lambda: set(Notifier(None).counters),
    "gateway_": lambda: set(gateway.COUNTERS),
}


def test_the_catalogue_knows_every_part_the_daemon_merges() -> None:
    tree = ast.parse((CONTROL.parent / "daemon.py").read_text())
    method = next(
        f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "counters"
    )
    prefixes = {
        node.values[0].value
        for node in ast.walk(method)
        if isinstance(node, ast.JoinedStr) and isinstance(node.values[0], ast.Constant)
    }
    assert prefixes <= set(DAEMON_PARTS), f"a new part: catalogue {prefixes - set(DAEMON_PARTS)}"
    for prefix, names in DAEMON_PARTS.items():
        for name in names():
            assert prefix + name in series_of(prefix + name)[0].series, prefix + name


def _count_calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_count"
        ):
            yield node


def _returned_strings(path: Path, function: str) -> set[str]:
    """The string constants `function` (anywhere in the file) returns."""
    tree = ast.parse(path.read_text())
    return {
        node.value.value
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef) and f.name == function
        for node in ast.walk(f)
        if isinstance(node, ast.Return)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


# Counter names passed as variables: (file, variable) -> where their values come from.
DYNAMIC: dict[tuple[str, str], Callable[[], set[str]]] = {
    ("mapserver.py", "admitted"): lambda: _returned_strings(CONTROL / "registrations.py", "admit"),
    ("resolver.py", "request"): lambda: _returned_strings(CONTROL / "pending.py", "open"),
}


def _names(file: str, arg: ast.expr) -> tuple[set[str], set[str]]:
    """The counter names an argument of _count can be: (exact names, prefixes)."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}, set()
    if isinstance(arg, ast.IfExp):
        body, orelse = _names(file, arg.body), _names(file, arg.orelse)
        return body[0] | orelse[0], body[1] | orelse[1]
    if (
        isinstance(arg, ast.JoinedStr)
        and isinstance(arg.values[0], ast.Constant)
        and isinstance(arg.values[0].value, str)
    ):
        return set(), {arg.values[0].value}
    if isinstance(arg, ast.Name) and (file, arg.id) in DYNAMIC:
        found = DYNAMIC[(file, arg.id)]()
        assert found, f"{file}: no string values found for {arg.id}"
        return found, set()
    raise AssertionError(f"{file}:{arg.lineno}: cannot tell what {ast.unparse(arg)} counts")


def control_counter_names() -> tuple[set[str], set[str]]:
    """Every flat name (and run-time prefix) the control machines can count."""
    exact: set[str] = set()
    prefixes: set[str] = set()
    for path in sorted(CONTROL.glob("*.py")):
        calls = list(_count_calls(ast.parse(path.read_text())))
        if not calls:
            continue
        assert path.name in MACHINE_OF_FILE, f"{path.name} counts: whose counters are these?"
        machine = MACHINE_OF_FILE[path.name]
        for call in calls:
            names, starts = _names(path.name, call.args[0])
            exact |= {f"{machine}_{name}" for name in names}
            prefixes |= {f"{machine}_{start}" for start in starts}
    return exact, prefixes


def test_the_catalogue_covers_every_control_counter() -> None:
    exact, prefixes = control_counter_names()
    assert len(exact) > 100  # the walk found the counters
    missing = sorted(flat for flat in exact if flat not in series_of(flat)[0].series)
    assert not missing, f"not in lispd.metrics_catalogue.CATALOGUE: {missing}"
    for prefix in prefixes:
        family, _ = series_of(prefix + "something")
        assert prefix in family.prefixes, f"no catalogued family for {prefix}*"
    # The routes are known now: their series are there from the first scrape.
    for route in Route:
        assert f"control_unrouted_{route.value}" in series_of("control_unrouted_none")[0].series


def test_the_walk_sees_what_the_machines_count() -> None:
    exact, _ = control_counter_names()
    server = MapServer(())
    server.receive(b"\xff", IPv4Address("198.18.0.1"), 4342, now=0.0)
    registrar = Registrar((), (), 60.0)
    registrar.receive(b"\xff", IPv4Address("198.18.0.1"), 4342, now=0.0)
    seen = {f"map_server_{k}" for k in server.counters}
    seen |= {f"registrar_{k}" for k in registrar.counters}
    assert seen == {"map_server_malformed", "registrar_not_running"}
    assert seen <= exact


def test_counters_are_only_written_by_count() -> None:
    """So that the walk over _count calls sees every name."""

    class Writes(ast.NodeVisitor):
        def __init__(self) -> None:
            self.function = ""
            self.bad: list[int] = []

        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            outer, self.function = self.function, node.name
            self.generic_visit(node)
            self.function = outer

        def visit_Subscript(self, node: ast.Subscript) -> None:
            if (
                isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "counters"
                and self.function != "_count"
            ):
                self.bad.append(node.lineno)
            self.generic_visit(node)

    for path in CONTROL.glob("*.py"):
        writes = Writes()
        writes.visit(ast.parse(path.read_text()))
        assert not writes.bad, f"{path.name}:{writes.bad}: counters written outside _count"


def test_the_machines_are_those_the_control_plane_prefixes() -> None:
    tree = ast.parse((CONTROL / "plane.py").read_text())
    method = next(
        f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "counters"
    )
    prefixes = {
        key.value
        for d in ast.walk(method)
        if isinstance(d, ast.Dict)
        for key in d.keys
        if isinstance(key, ast.Constant)
    }
    assert prefixes == set(MACHINE_OF_FILE.values())


# --- the text -----------------------------------------------------------------


def test_every_catalogued_series_is_there_at_zero() -> None:
    text = exposition({}, {}, "batched")
    found = samples(text)
    for family in CATALOGUE:
        for flat in family.series:
            assert found[sample_of(flat, family.kind)] == 0, flat
    assert found[("lispd_build_info", frozenset({("version", __version__)}))] == 1
    assert found[("lispd_dataplane_info", frozenset({("path", "batched")}))] == 1
    assert found[("lispd_event_loop_responsive", frozenset())] == 1
    assert not any(name.startswith("lispd_uncatalogued") for name, _ in found)


def test_counters_and_gauges_land_in_their_series() -> None:
    counters = {
        "itr_packets": 11,
        "vxlan_rx_bytes": 1500,
        "drop_miss": 3,
        "drop_ttl_expired": 4,
        "map_server_bad_auth": 2,
        "map_server_map_register": 9,
        "control_socket_receive_error_econnrefused": 5,
        "map_cache_evictions": 6,
    }
    gauges = {"map_cache_entries": 42.0, "registrar_registrations_pending": 1.0}
    found = samples(exposition(counters, gauges, "batched"))
    expected = {
        ("lispd_packets_total", (("path", "itr"), ("direction", "tx"))): 11,
        ("lispd_bytes_total", (("path", "vxlan"), ("direction", "rx"))): 1500,
        ("lispd_dropped_packets_total", (("reason", "miss"),)): 3,
        ("lispd_dropped_packets_total", (("reason", "ttl_expired"),)): 4,
        ("lispd_dropped_packets_total", (("reason", "truncated"),)): 0,
        ("lispd_map_server_map_registers_total", (("result", "bad_auth"),)): 2,
        ("lispd_map_server_map_registers_total", (("result", "accepted"),)): 9,
        ("lispd_control_socket_errors_total",
         (("operation", "receive"), ("error", "econnrefused"))): 5,
        ("lispd_map_cache_removals_total", (("reason", "evicted"),)): 6,
        ("lispd_map_cache_entries", ()): 42,
        ("lispd_registrar_registrations", (("state", "pending"),)): 1,
        ("lispd_registrar_registrations", (("state", "yielded"),)): 0,
    }
    for (name, labels), value in expected.items():
        assert found[(name, frozenset(labels))] == value, name


def test_unknown_names_are_exported_generically() -> None:
    counters = {"brand_new-thing": 7}
    gauges = {"odd gauge": 1.5}
    found = samples(exposition(counters, gauges, "batched"))
    assert found[("lispd_uncatalogued_total", frozenset({("counter", "brand_new-thing")}))] == 7
    assert found[("lispd_uncatalogued_gauge", frozenset({("gauge", "odd gauge")}))] == 1.5


def test_a_counter_name_is_not_read_as_a_gauge() -> None:
    found = samples(exposition({}, {"itr_packets": 3.0}, "batched"))
    assert found[("lispd_uncatalogued_gauge", frozenset({("gauge", "itr_packets")}))] == 3
    assert found[("lispd_packets_total", frozenset({("path", "itr"), ("direction", "tx")}))] == 0


# --- the server ---------------------------------------------------------------


def fetch(port: int) -> tuple[int, bytes]:
    # No proxy: an http_proxy in the environment must not see loopback requests.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.asyncio
async def test_the_server_serves_the_counters_read_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    readers: set[int] = set()

    def counters() -> dict[str, int]:
        readers.add(threading.get_ident())
        return {"etr_packets": 12, "drop_bad_flags": 1}

    server = MetricsServer(loop, LOCALHOST, 0, counters, lambda: {"map_cache_limit": 1000.0},
                           lambda: "batched")
    server.start()
    try:
        assert server.port != 0
        status, body = await loop.run_in_executor(None, fetch, server.port)
    finally:
        server.close()
    assert status == 200
    found = samples(body)
    assert found[("lispd_packets_total", frozenset({("path", "etr"), ("direction", "rx")}))] == 12
    assert found[("lispd_dropped_packets_total", frozenset({("reason", "bad_flags")}))] == 1
    assert found[("lispd_map_cache_limit", frozenset())] == 1000
    assert found[("lispd_event_loop_responsive", frozenset())] == 1
    assert readers == {loop_thread}


@pytest.mark.asyncio
async def test_a_stuck_loop_does_not_hang_the_scrape() -> None:
    loop = asyncio.get_running_loop()
    server = MetricsServer(loop, LOCALHOST, 0, lambda: {"itr_packets": 1}, dict,
                           lambda: "batched", timeout=0.2)
    server.start()
    answered = threading.Event()
    result: list[tuple[int, bytes]] = []

    def scrape() -> None:
        result.append(fetch(server.port))
        answered.set()

    worker = threading.Thread(target=scrape)
    worker.start()
    try:
        # Blocking here is the point: the loop is stuck until the scrape returns.
        # The wait's bound only keeps a broken build from hanging the suite.
        answered.wait(60)
    finally:
        worker.join(60)
        server.close()
    assert result, "the scrape did not return"
    status, body = result[0]
    assert status == 200
    found = samples(body)
    assert found[("lispd_event_loop_responsive", frozenset())] == 0
    assert found[("lispd_build_info", frozenset({("version", __version__)}))] == 1
    assert not any(name == "lispd_packets_total" for name, _ in found)


def test_a_closed_loop_gets_the_info_only() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    server = MetricsServer(loop, LOCALHOST, 0, dict, dict, lambda: "batched")
    server.start()
    try:
        status, body = fetch(server.port)
    finally:
        server.close()
    assert status == 200
    assert samples(body)[("lispd_event_loop_responsive", frozenset())] == 0


@pytest.mark.asyncio
async def test_a_failing_part_fails_the_scrape() -> None:
    def broken() -> dict[str, int]:
        raise ValueError("a bug")

    loop = asyncio.get_running_loop()
    server = MetricsServer(loop, LOCALHOST, 0, broken, dict, lambda: "batched")
    server.start()
    try:
        status, _ = await loop.run_in_executor(None, fetch, server.port)
    finally:
        server.close()
    assert status == 500


def test_close_frees_the_port() -> None:
    loop = asyncio.new_event_loop()
    try:
        server = MetricsServer(loop, LOCALHOST, 0, dict, dict, lambda: "batched")
        server.start()
        port = server.port
        server.close()
        with socket.socket() as sock:
            # SO_REUSEADDR, like any server: past connections may linger in
            # TIME_WAIT, but a listener still holding the port would refuse us.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen()
    finally:
        loop.close()


def test_a_port_in_use_is_a_clear_error() -> None:
    loop = asyncio.new_event_loop()
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            server = MetricsServer(loop, LOCALHOST, port, dict, dict, lambda: "batched")
            with pytest.raises(OSError, match=f"metrics-listen 127.0.0.1:{port}") as raised:
                server.start()
            assert raised.value.errno == errno.EADDRINUSE
    finally:
        loop.close()
