"""The control socket: one JSON object per line each way, over a Unix stream
socket (the protocol is docs/control-socket.md).

Request: {"command": "show", "args": ["stats"]}. Answer: {"ok": true,
"result": ...} or {"ok": false, "error": "..."}. The daemon carries on
whatever a client sends: a malformed request gets an error answer and the
connection stays; an oversized one gets an error answer and is closed; a
failing handler gets an "internal error" answer and a log line.

Who may talk to it: the file is mode 0660, and the peer's credentials
(SO_PEERCRED, SO_PEERGROUPS) are checked again on accept, so a socket left
world-writable by mistake still only serves root, lispd's own user and the
members of the socket file's group. The connections are bounded in number
and closed when idle, so a stuck client holds nothing for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import inspect
import json
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

__all__ = [
    "IDLE_TIMEOUT", "MAX_CONNECTIONS", "MAX_REQUEST", "ControlServer", "Peer", "RequestError",
    "refusal", "request",
]

MAX_REQUEST = 64 * 1024
"""Bytes in one request line, newline included."""
MAX_CONNECTIONS = 16
IDLE_TIMEOUT = 60.0
"""Seconds a connection may wait for its next request, or for its answer to be read."""

# SO_PEERGROUPS (Linux 4.13) is not in Python's socket module; 59 on every
# architecture that uses the generic socket option numbers.
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_GROUPS_BUFFER = 1024  # the most Python's getsockopt reads: 256 groups

log = structlog.get_logger("lispd.ctl")

Handler = Callable[[str, list[str]], Any]
"""(command, args) -> the result, or an awaitable of it; raises RequestError."""


class RequestError(Exception):
    """The client's fault, or a request the daemon refuses: the error answer."""


@dataclass(frozen=True)
class Peer:
    """Who is at the other end of a connection (as of its connect())."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...] = ()


def peer_of(sock: Any) -> Peer:
    """The credentials of a connected Unix socket's peer. `sock` is a socket
    or the socket-like object an event loop hands out."""
    pid, uid, gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, _GROUPS_BUFFER)
    except OSError:
        # An old kernel, or more groups than fit: the primary group still counts.
        raw = b""
    groups = struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])
    return Peer(pid, uid, gid, groups)


def refusal(peer: Peer, owner: int, group: int) -> str | None:
    """Why `peer` may not use a socket of lispd's user `owner` whose file
    belongs to `group`; None when it may."""
    if peer.uid in (0, owner) or group == peer.gid or group in peer.groups:
        return None
    return (
        f"permission denied: uid {peer.uid} is not root, lispd's user (uid {owner})"
        f" or in group {_group_name(group)}"
    )


def _group_name(gid: int) -> str:
    try:
        return f"{grp.getgrgid(gid).gr_name} ({gid})"
    except KeyError:
        return str(gid)


def _parse(line: bytes) -> tuple[str, list[str]]:
    try:
        request = json.loads(line)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer too long
        raise RequestError(f"not JSON lispd reads: {error}") from None
    except RecursionError:
        raise RequestError("not JSON lispd reads: nested too deeply") from None
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        raise RequestError('a request is an object with a "command" string')
    args = request.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise RequestError('"args" is a list of strings')
    return request["command"], args


def _encode(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer).encode() + b"\n"


class ControlServer:
    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.path = path
        self._handler = handler
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._group = os.getegid()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a killed daemon
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        self._group = os.stat(self.path).st_gid
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=MAX_REQUEST
        )

    def _file_group(self) -> int:
        """The socket file's group now: an operator may chgrp it while lispd runs."""
        try:
            return os.stat(self.path).st_gid
        except OSError:
            return self._group

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            refused = self._admission(writer)
            if refused is not None:
                await self._answer(writer, {"ok": False, "error": refused})
                return
            self._connections.add(writer)
            while await self._one_request(reader, writer):
                pass
        except OSError:
            pass  # the client went away, or stopped reading its answers (a TimeoutError)
        finally:
            self._connections.discard(writer)
            writer.close()

    def _admission(self, writer: asyncio.StreamWriter) -> str | None:
        """Why this new connection is turned away, or None."""
        if len(self._connections) >= self._max_connections:
            return f"too many control connections (at most {self._max_connections}): try again"
        peer = peer_of(writer.get_extra_info("socket"))
        refused = refusal(peer, os.geteuid(), self._file_group())
        if refused is not None:
            log.warning("control_peer_refused", pid=peer.pid, uid=peer.uid, gid=peer.gid)
        return refused

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read one request and answer it; whether to go on with this connection."""
        try:
            async with asyncio.timeout(self._idle_timeout):
                line = await reader.readline()
        except TimeoutError:
            await self._answer(writer, {"ok": False, "error": (
                f"idle for {self._idle_timeout:g} s: closing the connection")})
            return False
        except ValueError:  # the line went past the reader's limit
            await self._answer(writer, {"ok": False, "error": (
                f"request too long (at most {MAX_REQUEST} bytes): closing the connection")})
            return False
        if not line:
            return False
        writer.write(await self._respond(line))
        await self._drain(writer)
        return True

    async def _respond(self, line: bytes) -> bytes:
        """The encoded answer to one request line: never raises but on cancellation."""
        command = "?"
        try:
            command, args = _parse(line)
            result = self._handler(command, args)
            if inspect.isawaitable(result):
                result = await result
            return _encode({"ok": True, "result": result})
        except RequestError as error:
            return _encode({"ok": False, "error": str(error)})
        except Exception as error:
            # A bug in an answer must not take the control socket down.
            log.exception("control_request_failed", command=command)
            return _encode({"ok": False, "error": f"internal error: {error!r}"})

    async def _answer(self, writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
        writer.write(_encode(answer))
        await self._drain(writer)

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self._idle_timeout):
            await writer.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def request(path: Path, command: str, *args: str, timeout: float = 5.0) -> Any:
    """One blocking request (lispctl, tests): the result.

    Raises RequestError with the daemon's message for an error answer, and
    OSError when there is no answer (no daemon, no permission, a timeout, or
    the connection closed without one).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(_encode({"command": command, "args": list(args)}))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    try:
        answer = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConnectionError(f"{path}: the connection closed without an answer") from None
    if not answer.get("ok"):
        raise RequestError(answer.get("error", "an error answer without a message"))
    return answer["result"]
