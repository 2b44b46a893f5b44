"""lispctl: the table formatter, the human form of every answer (rendered from
real answers), the command line and its exit status against a real control
server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

import lispd
from lispd import answers, ctl, lispctl
from lispd.ctl import ControlServer
from tests.unit.test_answers import MAP_SERVER, NOW, XTR, Node, learn, make, plane_of, register

# -- the table formatter ---------------------------------------------------------------------


def test_table_aligns_columns_and_puts_numbers_right() -> None:
    shown = lispctl.table(("NAME", "VALUE"), [("itr_packets", "7"), ("drop_miss", "1234")])
    assert shown.splitlines() == [
        "NAME         VALUE",
        "itr_packets      7",
        "drop_miss     1234",
    ]


def test_table_of_nothing_says_so() -> None:
    assert lispctl.table(("A", "B"), []) == "A  B\n(none)"


# -- the human form of real answers ----------------------------------------------------------


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = asyncio.new_event_loop()
    yield made
    made.close()


@pytest.fixture
def xtr(loop: asyncio.AbstractEventLoop) -> Node:
    node = make(loop, XTR)
    learn(node, "192.0.2.128/25", "198.18.0.3", ttl=3600, at=NOW - 600)
    plane = plane_of(node)
    assert plane.node.registrar is not None and plane.node.resolver is not None
    plane.node.registrar.start(NOW - 12)
    plane.node.resolver.miss(0, ip_address("192.0.2.70"), None, NOW)
    return node


def shown(node: Node, *request: str) -> str:
    command, *args = request
    return lispctl.render(request, answers.answer(node, command, args, now=NOW))


def test_every_show_table_has_a_human_form() -> None:
    assert set(lispctl.SHOWN) == set(answers.SHOW)


def test_map_cache(xtr: Node) -> None:
    lines = shown(xtr, "show", "map-cache").splitlines()
    assert lines[0].split() == ["EID-PREFIX", "RLOCS", "(PRIORITY/WEIGHT)", "TTL", "EXPIRES",
                                "ACTION"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["[0]198.51.100.0/24"].split()[1:] == ["198.18.0.2", "2/50", "static", "never",
                                                      "-"]
    assert rows["[0]192.0.2.128/25"].split()[1:] == ["198.18.0.3", "1/100", "1h00m", "in",
                                                     "50m00s", "-"]


def test_database_and_registrations(xtr: Node) -> None:
    text = shown(xtr, "show", "database")
    assert text.startswith("Mappings:\nEID-PREFIX")
    assert "[0]192.0.2.0/26  198.18.0.1 1/100" in text
    assert "Registrations:\nMAP-SERVER" in text
    row = text.splitlines()[-1].split()
    assert row == ["198.18.0.9", "[0]192.0.2.0/26", "pending", "1", "12s", "ago", "-"]
    assert shown(xtr, "show", "registrations").splitlines()[-1].split() == row


def test_registrations_on_a_map_server(loop: asyncio.AbstractEventLoop) -> None:
    server = make(loop, MAP_SERVER)
    register(server, "192.0.2.64/26", "198.18.2.2", NOW - 90)
    header, row = shown(server, "show", "registrations").splitlines()
    assert header.split()[:2] == ["EID-PREFIX", "SITE"]
    assert row.split() == ["[0]192.0.2.64/26", "tenant", "198.18.2.2", "1/100", "198.18.2.2",
                           "1m30s", "ago", "in", "1m30s"]
    assert shown(server, "show", "subscriptions").endswith("(none)")


def test_vxlan(xtr: Node) -> None:
    text = shown(xtr, "show", "vxlan")
    segments, fdb = text.split("\n\n")
    assert segments.splitlines()[2].split() == ["100", "tap0", "198.18.0.1", "198.18.0.2",
                                                "yes", "5m00s"]
    assert fdb.splitlines()[2].split() == ["100", "02:00:00:00:00:0b", "198.18.0.2", "static"]


def test_peers(xtr: Node) -> None:
    sections = dict(part.split(":\n", 1) for part in shown(xtr, "show", "peers").split("\n\n"))
    assert list(sections) == ["Map-servers", "Map-resolvers", "Proxy-ETRs", "RLOC probes"]
    assert sections["Map-servers"].splitlines()[1].split() == [
        "198.18.0.9", "hmac-sha256", "yes", "0/1"]
    assert sections["Map-resolvers"].splitlines()[1].split() == ["198.18.0.9", "1"]
    assert sections["Proxy-ETRs"].splitlines()[1] == "198.18.0.7"
    assert sections["RLOC probes"].endswith("(none)")


def test_stats_moved_counters_first(xtr: Node) -> None:
    xtr.counted = {"b": 0, "a": 0, "z": 5, "c": 2}
    assert [line.split()[0] for line in shown(xtr, "show", "stats").splitlines()] == [
        "COUNTER", "c", "z", "a", "b"]


def test_resolver_and_probes(xtr: Node) -> None:
    assert shown(xtr, "show", "resolver").splitlines()[1].split()[:5] == [
        "[0]192.0.2.70/32", "miss", "1", "198.18.0.9", "0"]
    assert shown(xtr, "show", "probes").endswith("(none)")


def test_flush_reload_and_version_read_as_sentences() -> None:
    assert lispctl.render(("map-cache", "flush"), {"flushed": 1}) == "flushed 1 map-cache entry"
    assert lispctl.render(("map-cache", "flush", "192.0.2.0/24"), {"flushed": 3}) == (
        "flushed 3 map-cache entries")
    assert lispctl.render(("reload",), {"applied": ["a", "b"]}) == "a\nb"
    assert lispctl.render(("reload",), {"applied": []}) == "reloaded: nothing changed"
    version = lispctl.render(("version",), {"version": "9", "python": "3.11.7", "pid": 42,
                                            "config": "/etc/lispd/lispd.toml", "roles": ["xtr"],
                                            "dataplane": "batched"})
    assert version.splitlines() == [
        "lispd 9 (python 3.11.7, pid 42, roles: xtr, data path batched,"
        " config /etc/lispd/lispd.toml)",
        f"lispctl {lispd.__version__}"]


# -- the command line against a real control server ------------------------------------------


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Path]:
    """A control server answering for an xTR node, on its own thread's loop."""
    loop = asyncio.new_event_loop()
    node = make(loop, XTR)
    server = ControlServer(tmp_path / "control.sock",
                           lambda command, args: answers.answer(node, command, args))
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.path
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = lispctl.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_show_prints_the_table(daemon: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "--socket", str(daemon), "show", "map-cache")
    assert (status, err) == (0, "")
    assert out.startswith("EID-PREFIX") and "[0]198.51.100.0/24" in out


@pytest.mark.parametrize("argv", [("--json", "show", "map-cache"),
                                  ("show", "map-cache", "--json"),
                                  ("show", "--json", "map-cache")])
def test_json_before_or_after_the_command(daemon: Path, capsys: pytest.CaptureFixture[str],
                                          argv: tuple[str, ...]) -> None:
    status, out, _ = run(capsys, "--socket", str(daemon), *argv)
    assert status == 0
    assert json.loads(out) == ctl.request(daemon, "show", "map-cache")


def test_the_socket_from_the_environment(daemon: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISPD_SOCKET", str(daemon))
    status, out, _ = run(capsys, "version")
    assert status == 0 and out.startswith("lispd ")


def test_an_error_answer_exits_1(daemon: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "--socket", str(daemon), "map-cache", "flush", "192.0.2.1/24")
    assert (status, out) == (1, "")
    assert err.startswith("lispctl: lispd refused 'map-cache flush 192.0.2.1/24': map-cache "
                          "flush: ")
    assert "did you mean 192.0.2.0/24?" in err


def test_a_refused_reload_exits_1(daemon: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "--socket", str(daemon), "reload")
    assert status == 1
    assert err == "lispctl: lispd refused 'reload': reload refused: xtr.tun: not a string\n"


def test_flush(daemon: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--socket", str(daemon), "map-cache", "flush") == (
        0, "flushed 0 map-cache entries\n", "")


def test_no_socket_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "none.sock"
    status, out, err = run(capsys, "--socket", str(path), "show", "stats")
    assert (status, out) == (2, "")
    assert err == (f"lispctl: no answer from lispd at {path}: no such socket (is lispd running?"
                   " is this the control-socket of its config?)\n")


def test_a_socket_nobody_listens_on_exits_2(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(path))
        status, _, err = run(capsys, "--socket", str(path), "show", "stats")
    assert status == 2
    assert err.endswith("connection refused (is lispd running? the socket may be a stopped "
                        "one's)\n")


def test_no_permission_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Root passes every file mode, so the refusal is made up here.
    def refuse(*_: Any, **__: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ctl, "request", refuse)
    status, _, err = run(capsys, "--socket", str(tmp_path / "c.sock"), "show", "stats")
    assert status == 2
    assert err.endswith("permission denied (run as root, as lispd's user or in the socket's "
                        "group)\n")


@pytest.mark.parametrize("argv", [(), ("show",), ("show", "nothing"), ("map-cache",),
                                  ("map-cache", "drop"), ("reload", "now")])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exited:
        lispctl.main(list(argv))
    assert exited.value.code == 2
    assert "usage: lispctl" in capsys.readouterr().err
