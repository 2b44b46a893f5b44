"""The control socket server and its blocking client, over a real Unix socket:
framing, limits, failing handlers and who may connect."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import structlog

from lispd import ctl
from lispd.ctl import ControlServer, Peer, RequestError

ANSWER_WAIT = 10.0
"""Seconds a test waits for an answer before it calls the server stuck."""


def handler(command: str, args: list[str]) -> Any:
    """Echoes; "slow" answers later (an awaitable), "fail" is a bug, "no" a refusal."""
    if command == "slow":
        return _later(args)
    if command == "fail":
        raise KeyError("a bug")
    if command == "no":
        raise RequestError("refused: " + " ".join(args))
    return {"command": command, "args": args}


async def _later(args: list[str]) -> list[str]:
    await asyncio.sleep(0)
    return args


async def start(path: Path, **limits: Any) -> ControlServer:
    server = ControlServer(path, handler, **limits)
    await server.start()
    return server


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[ControlServer]:
    made = await start(tmp_path / "run" / "control.sock")
    yield made
    await made.close()


class Client:
    """A raw connection: lines out, lines in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, path: Path) -> Client:
        reader, writer = await asyncio.open_unix_connection(str(path))
        return cls(reader, writer)

    async def ask(self, line: bytes) -> dict[str, Any]:
        self.writer.write(line)
        return await self.answer()

    async def answer(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), ANSWER_WAIT)
        assert line.endswith(b"\n"), line
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ended(self) -> bool:
        """Whether the server closed the connection (EOF, or a reset)."""
        try:
            return await asyncio.wait_for(self.reader.read(), ANSWER_WAIT) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()


# -- framing ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_blocking_client_gets_the_result(server: ControlServer) -> None:
    result = await asyncio.to_thread(ctl.request, server.path, "show", "stats")
    assert result == {"command": "show", "args": ["stats"]}


@pytest.mark.asyncio
async def test_the_blocking_client_raises_the_error_answer(server: ControlServer) -> None:
    with pytest.raises(RequestError, match="refused: reload"):
        await asyncio.to_thread(ctl.request, server.path, "no", "reload")


def test_the_blocking_client_raises_oserror_without_a_daemon(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ctl.request(tmp_path / "nothing.sock", "version")


@pytest.mark.asyncio
async def test_requests_on_one_connection_are_answered_in_turn(server: ControlServer) -> None:
    client = await Client.connect(server.path)
    for n in range(3):
        answer = await client.ask(json.dumps({"command": "c", "args": [str(n)]}).encode() + b"\n")
        assert answer == {"ok": True, "result": {"command": "c", "args": [str(n)]}}
    client.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(("line", "error"), [
    (b"{not json\n", "not JSON"),
    (b"\xff\xfe\n", "not JSON"),
    (b"[" * 60000 + b"\n", "nested too deeply"),
    (b"[1, 2]\n", 'a request is an object with a "command" string'),
    (b'{"command": 7}\n', 'a request is an object with a "command" string'),
    (b'{"command": "show", "args": "stats"}\n', '"args" is a list of strings'),
    (b'{"command": "show", "args": [1]}\n', '"args" is a list of strings'),
])
async def test_a_malformed_request_gets_an_error_and_the_connection_stays(
    server: ControlServer, line: bytes, error: str
) -> None:
    client = await Client.connect(server.path)
    answer = await client.ask(line)
    assert answer["ok"] is False and error in answer["error"], answer
    assert await client.ask(b'{"command": "again"}\n') == {
        "ok": True, "result": {"command": "again", "args": []}}
    client.close()


@pytest.mark.asyncio
async def test_an_oversized_request_gets_an_error_and_is_closed(server: ControlServer) -> None:
    client = await Client.connect(server.path)
    answer = await client.ask(b'{"command": "' + b"x" * (2 * ctl.MAX_REQUEST) + b'"}\n')
    assert answer == {"ok": False, "error": (
        f"request too long (at most {ctl.MAX_REQUEST} bytes): closing the connection")}
    assert await client.ended()
    # And the server still serves.
    assert await asyncio.to_thread(ctl.request, server.path, "version")


@pytest.mark.asyncio
async def test_an_awaitable_result_is_awaited(server: ControlServer) -> None:
    assert await asyncio.to_thread(ctl.request, server.path, "slow", "a", "b") == ["a", "b"]


@pytest.mark.asyncio
async def test_a_failing_handler_is_an_internal_error_logged_and_survived(
    server: ControlServer,
) -> None:
    client = await Client.connect(server.path)
    with structlog.testing.capture_logs() as logs:
        answer = await client.ask(b'{"command": "fail"}\n')
    assert answer == {"ok": False, "error": "internal error: KeyError('a bug')"}
    (logged,) = [entry for entry in logs if entry["event"] == "control_request_failed"]
    assert logged["command"] == "fail" and logged["log_level"] == "error"
    assert (await client.ask(b'{"command": "still"}\n'))["ok"] is True
    client.close()


@pytest.mark.asyncio
async def test_an_unencodable_result_is_an_internal_error(tmp_path: Path) -> None:
    made = ControlServer(tmp_path / "c.sock", lambda command, args: {"set": {1}})
    await made.start()
    with pytest.raises(RequestError, match="internal error: TypeError"):
        await asyncio.to_thread(ctl.request, made.path, "x")
    await made.close()


# -- limits ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_connections_beyond_the_limit_are_turned_away(tmp_path: Path) -> None:
    made = await start(tmp_path / "c.sock", max_connections=2)
    kept = [await Client.connect(made.path) for _ in range(2)]
    for client in kept:  # admitted: each gets answers
        assert (await client.ask(b'{"command": "hello"}\n'))["ok"] is True
    extra = await Client.connect(made.path)
    assert await extra.answer() == {
        "ok": False, "error": "too many control connections (at most 2): try again"}
    assert await extra.ended()
    kept.pop().close()
    # Once the server has seen that one go, there is room again.
    for _ in range(100):
        again = await Client.connect(made.path)
        answer = await again.ask(b'{"command": "hello"}\n')
        again.close()
        if answer["ok"]:
            break
        await asyncio.sleep(0.05)
    assert answer["ok"] is True, answer
    kept.pop().close()
    await made.close()


@pytest.mark.asyncio
async def test_an_idle_connection_is_closed(tmp_path: Path) -> None:
    made = await start(tmp_path / "c.sock", idle_timeout=0.1)
    client = await Client.connect(made.path)
    assert await client.answer() == {
        "ok": False, "error": "idle for 0.1 s: closing the connection"}
    assert await client.ended()
    await made.close()


@pytest.mark.asyncio
async def test_close_ends_open_connections_and_removes_the_socket(tmp_path: Path) -> None:
    made = await start(tmp_path / "c.sock")
    client = await Client.connect(made.path)
    assert (await client.ask(b'{"command": "hello"}\n'))["ok"] is True
    await made.close()
    assert await client.ended()
    assert not made.path.exists()


@pytest.mark.asyncio
async def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(path))  # bound, never listening: what a killed daemon leaves
    made = await start(path)
    assert await asyncio.to_thread(ctl.request, path, "version")
    await made.close()


# -- who may connect -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_socket_is_mode_0660(server: ControlServer) -> None:
    mode = os.stat(server.path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660


def test_refusal_lets_root_lispds_user_and_the_group_in() -> None:
    owner, group = 1000, 2000
    assert ctl.refusal(Peer(1, 0, 0), owner, group) is None
    assert ctl.refusal(Peer(1, owner, 5), owner, group) is None
    assert ctl.refusal(Peer(1, 3000, group), owner, group) is None
    assert ctl.refusal(Peer(1, 3000, 5, (7, group)), owner, group) is None
    refused = ctl.refusal(Peer(1, 3000, 5, (7,)), owner, group)
    assert refused is not None
    assert refused.startswith("permission denied: uid 3000 is not root, lispd's user (uid 1000)"
                              " or in group ")


def test_peer_of_reads_the_connecting_process() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        peer = ctl.peer_of(left)
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.geteuid(), os.getegid())
    assert set(peer.groups) <= set(os.getgroups())


NOBODY = 65534
OTHER_GROUP = 64999  # no member, no file: only these tests use it


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is root's alone)."""
    if os.geteuid() != 0:
        message = "needs root to connect as another user"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="lispd-ctl-") as made:
        os.chmod(made, 0o711)
        yield Path(made)


def _ask_as(path: Path, uid: int, gid: int, groups: list[int], write: int) -> None:
    """In a forked child: become uid/gid/groups, ask `path`, write what came back."""
    try:
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(ANSWER_WAIT)
            sock.connect(str(path))
            sock.sendall(b'{"command": "who"}\n')
            answer = sock.makefile("rb").readline()
        os.write(write, answer)
    except BaseException as error:
        os.write(write, json.dumps({"client": repr(error)}).encode())
    finally:
        os._exit(0)


async def answer_as(path: Path, uid: int, gid: int, groups: list[int]) -> dict[str, Any]:
    """What the server answers a client running as uid (a real other process)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _ask_as(path, uid, gid, groups, write)
    os.close(write)

    def collect() -> bytes:
        with os.fdopen(read, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        return data

    answer: dict[str, Any] = json.loads(await asyncio.to_thread(collect))
    return answer


@pytest.mark.asyncio
async def test_another_user_is_refused_even_when_the_mode_would_let_it_in(
    reachable_dir: Path,
) -> None:
    made = await start(reachable_dir / "control.sock")
    os.chmod(made.path, 0o666)  # the mistake the credential check is there for
    answer = await answer_as(made.path, NOBODY, NOBODY, [])
    group = os.stat(made.path).st_gid
    refused = ctl.refusal(Peer(0, NOBODY, NOBODY), os.geteuid(), group)
    assert refused is not None and answer == {"ok": False, "error": refused}
    await made.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("membership", ["primary", "supplementary"])
async def test_a_member_of_the_socket_group_is_served(reachable_dir: Path,
                                                      membership: str) -> None:
    made = await start(reachable_dir / "control.sock")
    os.chown(made.path, -1, OTHER_GROUP)  # what `chgrp lispd` does to it
    if membership == "primary":
        answer = await answer_as(made.path, NOBODY, OTHER_GROUP, [])
    else:
        answer = await answer_as(made.path, NOBODY, NOBODY, [OTHER_GROUP])
    assert answer == {"ok": True, "result": {"command": "who", "args": []}}
    await made.close()


@pytest.mark.asyncio
async def test_the_file_mode_keeps_other_users_out(reachable_dir: Path) -> None:
    made = await start(reachable_dir / "control.sock")
    answer = await answer_as(made.path, NOBODY, NOBODY, [])
    assert answer == {"client": "PermissionError(13, 'Permission denied')"}
    await made.close()


def test_an_integer_too_long_to_read_is_the_clients_fault() -> None:
    with pytest.raises(ctl.RequestError, match="not JSON lispd reads"):
        ctl._parse(b'{"command": "show", "n": ' + b"9" * 5000 + b"}")
