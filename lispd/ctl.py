"""The control socket: one JSON object per line each way, over a Unix stream
socket.

Request: {"command": "show", "args": ["stats"]}. Answer: {"ok": true,
"result": ...} or {"ok": false, "error": "..."}. A malformed or oversized
request gets an error answer and the connection is closed; the daemon carries
on. (lispctl, the human front end, comes with the operations work.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

MAX_REQUEST = 64 * 1024
log = structlog.get_logger("lispd.ctl")

Handler = Callable[[str, list[str]], Any]


class RequestError(Exception):
    """The client's fault: a bad request."""


def _parse(line: bytes) -> tuple[str, list[str]]:
    try:
        request = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(f"not JSON: {error}") from None
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        raise RequestError('a request is an object with a "command" string')
    args = request.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise RequestError('"args" is a list of strings')
    return request["command"], args


class ControlServer:
    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a killed daemon
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=MAX_REQUEST
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await self._answer(writer, {"ok": False, "error": "request too long"})
                    return
                if not line:
                    return
                try:
                    command, args = _parse(line)
                    answer = {"ok": True, "result": self._handler(command, args)}
                except RequestError as error:
                    answer = {"ok": False, "error": str(error)}
                await self._answer(writer, answer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def request(path: Path, command: str, *args: str, timeout: float = 5.0) -> Any:
    """One blocking request (tests, tools): the result, or RequestError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps({"command": command, "args": list(args)}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data)
    if not answer.get("ok"):
        raise RequestError(answer.get("error", "no answer"))
    return answer["result"]
