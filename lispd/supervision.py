"""What systemd hears from a running daemon (Type=notify): when it is ready,
a one-line status, watchdog pings from the event loop, reloads and the stop.

Ready means the devices are up and, when map-servers are configured, one of
them has acknowledged a registration: until then peers cannot reach this
node's EIDs, and units ordered after lispd would start too early. A
map-server that never answers must not hold the boot: after `ready_timeout`
READY=1 goes anyway, and the status says the registration is unacknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from lispd.sdnotify import Notifier

__all__ = ["READY_POLL", "Supervision"]

log = structlog.get_logger("lispd")

READY_POLL = 0.05
"""Seconds between looks at the registrar while start-up waits for an acknowledgement."""


class Supervision:
    """`registered()` is None when no map-server is configured, else whether
    one has acknowledged a registration; `status()` is the one-line summary."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        notifier: Notifier,
        *,
        status: Callable[[], str],
        registered: Callable[[], bool | None],
        ready_timeout: float,
    ) -> None:
        self._loop = loop
        self._notifier = notifier
        self._status = status
        self._registered = registered
        self._ready_timeout = ready_timeout
        self._ready = False
        self._stopping = False
        self._last_status = ""
        self._watchdog: asyncio.TimerHandle | None = None
        self._waiting: asyncio.Task[None] | None = None

    def start(self) -> None:
        """The devices are up: ping the watchdog from now on, and say ready
        once registered (or the wait is over)."""
        self._ping()
        self._waiting = self._loop.create_task(self._announce_ready())

    async def _announce_ready(self) -> None:
        deadline = self._loop.time() + self._ready_timeout
        while self._registered() is False and self._loop.time() < deadline:
            await asyncio.sleep(READY_POLL)
        if self._stopping:
            return  # READY after STOPPING would tell systemd the unit came up
        registered = self._registered()
        if registered is False:
            log.warning("ready_without_registration", waited=self._ready_timeout)
        self._ready = True
        self._last_status = self._status()
        log.info("ready_notified", status=self._last_status)
        self._notifier.ready(self._last_status)

    def _ping(self) -> None:
        interval = self._notifier.watchdog_interval
        if interval is None:
            return
        # From a loop timer: a loop that is stuck stops the pings, and systemd
        # restarts the daemon (WatchdogSec=).
        self._notifier.watchdog()
        self._watchdog = self._loop.call_later(interval, self._ping)

    def refresh(self) -> None:
        """Send the status again if it changed (called once a second)."""
        if not self._ready:
            return
        status = self._status()
        if status != self._last_status:
            self._last_status = status
            self._notifier.status(status)

    # A reload before READY, or one that ends after STOPPING, must not tell
    # systemd the unit is ready: these say nothing then.

    def reloading(self, source: str) -> None:
        if self._ready and not self._stopping:
            self._notifier.reloading(f"reloading {source}")

    def reloaded(self) -> None:
        if self._ready and not self._stopping:
            self._last_status = self._status()
            self._notifier.ready(self._last_status)

    def stopping(self) -> None:
        self._stopping = True
        self._notifier.stopping("stopping: deregistering and removing devices")

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._waiting is not None:
            self._waiting.cancel()
        self._notifier.close()
