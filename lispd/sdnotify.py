"""The systemd notify protocol (sd_notify(3)), written out: it is one datagram
of `KEY=value` lines to the AF_UNIX socket named by $NOTIFY_SOCKET.

`Type=notify` units learn from it when the daemon is ready (READY=1), what
it is doing (STATUS=), that it is reloading (RELOADING=1) or stopping
(STOPPING=1), and that its event loop still turns (WATCHDOG=1). Without
$NOTIFY_SOCKET (not started by systemd) every method does nothing.

Sending never raises and never blocks: systemd may be re-executing or the
socket gone, and the daemon must carry on regardless. Failures are counted.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger("lispd")

STATUS_LIMIT = 200
"""Characters of a STATUS= text; `systemctl status` shows one line of it."""


def one_line(text: str) -> str:
    """`text` as a single bounded line: a newline would start another KEY=value
    assignment, so every control character becomes a space."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= STATUS_LIMIT else flat[: STATUS_LIMIT - 1] + "…"


def _socket_address(value: str) -> str | None:
    """The AF_UNIX address of a NOTIFY_SOCKET value; None if of no form we speak."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        # An abstract socket: its name starts with a NUL byte instead.
        return "\0" + value[1:]
    return None


def _watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings: half the timeout systemd set, as
    sd_watchdog_enabled(3) advises, when the watchdog is meant for us."""
    owner = environ.get("WATCHDOG_PID")
    if owner is not None and owner.strip() != str(pid):
        # Set for another process (an ExecStartPre=, a parent): not ours.
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


class Notifier:
    """Notifications to systemd; a disabled one (enabled False) does nothing."""

    def __init__(self, address: str | None, watchdog_interval: float | None = None) -> None:
        self.address = address
        """The NOTIFY_SOCKET value this notifier sends to (None: disabled)."""
        self.counters = {"sent": 0, "send_failed": 0}
        self._target = _socket_address(address) if address is not None else None
        self._sock: socket.socket | None = None
        if self._target is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        elif address is not None:
            log.warning("notify_socket_unsupported", notify_socket=address)
        # A watchdog with nobody to ping is no watchdog.
        self.watchdog_interval = watchdog_interval if self.enabled else None
        self._failing = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ,
                         pid: int | None = None) -> Notifier:
        """A notifier as systemd's environment describes it. The variables stay
        where they are: whether children should see them is the caller's call."""
        address = environ.get("NOTIFY_SOCKET") or None
        interval = _watchdog_interval(environ, os.getpid() if pid is None else pid)
        return cls(address, interval)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={one_line(status)}")

    def reloading(self, status: str) -> None:
        # systemd >= 253 wants the reload's start time (Type=notify-reload);
        # older ones ignore the key, so it is always sent.
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nSTATUS={one_line(status)}\nMONOTONIC_USEC={now_usec}")

    def stopping(self, status: str) -> None:
        self._send(f"STOPPING=1\nSTATUS={one_line(status)}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={one_line(status)}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.watchdog_interval = None

    def _send(self, message: str) -> None:
        if self._sock is None or self._target is None:
            return
        try:
            # Addressed on every send, not connected once: after a systemd
            # re-exec the path names a new socket, which sendto reaches.
            self._sock.sendto(message.encode(), self._target)
        except OSError as error:
            self.counters["send_failed"] += 1
            # Logged when sending starts to fail, not on every watchdog tick.
            if not self._failing:
                self._failing = True
                log.warning("notify_failed", notify_socket=self.address, error=str(error))
            return
        self.counters["sent"] += 1
        self._failing = False
