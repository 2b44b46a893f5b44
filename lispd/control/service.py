"""The control plane on the event loop: a thin adapter around ControlNode.

It feeds the node what the control sockets receive and the timer it asked
for, with `now` from the monotonic clock, and carries out what comes back:
map-cache changes first (so the C table knows the new entries), then the
datagrams, then the packets that waited for resolution (which need those
entries). Nothing here decides anything; the machines do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import structlog

from lispd.control.events import Output, Released
from lispd.control.node import ControlNode, Outgoing
from lispd.control.udp import ControlSockets, IPAddress
from lispd.mapcache import Change

__all__ = ["ControlService"]

log = structlog.get_logger("lispd.control")
T = TypeVar("T")


class ControlService:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        node: ControlNode,
        *,
        apply_changes: Callable[[tuple[Change, ...]], None],
        release: Callable[[tuple[Released, ...]], None],
        clock: Callable[[], float] = time.monotonic,
        after: Callable[[], None] = lambda: None,
    ) -> None:
        self.node = node
        self._loop = loop
        self._apply_changes = apply_changes
        self._release = release
        self._clock = clock
        self._after = after
        self.sockets = ControlSockets(loop, self._received)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def bind(self, addresses: Iterable[IPAddress]) -> None:
        self.sockets.bind(addresses)

    def now(self) -> float:
        return self._clock()

    def deliver(self, outgoing: Outgoing | Output) -> None:
        """Carry out what a machine asked for, then re-arm the timer."""
        if isinstance(outgoing, Output):
            outgoing = Outgoing(outgoing)
        xtr = outgoing.xtr
        # Each step on its own: a failure in one (a bug) must not lose the
        # datagrams or packets of the others.
        if xtr.changes:
            self._guarded("apply_changes", lambda: self._apply_changes(xtr.changes))
        for datagram in xtr.datagrams:
            self.sockets.send(datagram)
        for datagram, source in outgoing.sourced:
            self.sockets.send(datagram, source)
        if xtr.released:
            self._guarded("release", lambda: self._release(xtr.released))
        self._guarded("after", self._after)
        self.rearm()

    def rearm(self) -> None:
        """Wake at the node's next timer (earlier timers replace later ones)."""
        due = self.node.next_timer()
        if due is None:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(due - self._clock(), 0.0)
        self._timer_at = due
        self._timer = self._loop.call_later(delay, self._fire)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.sockets.close()

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self.deliver(self._guarded("timer", lambda: self.node.timer(self._clock())) or Outgoing())

    def _received(self, payload: bytes, source: IPAddress, port: int, local: IPAddress) -> None:
        self.deliver(
            self._guarded(
                "receive", lambda: self.node.receive(payload, source, port, local, self._clock())
            )
            or Outgoing()
        )

    @staticmethod
    def _guarded(what: str, step: Callable[[], T]) -> T | None:
        # A machine bug must not take the daemon down with it: the loop
        # carries on with the other machines and the data plane, and the
        # traceback says whose fault it was.
        try:
            return step()
        except Exception:
            log.exception("control_machine_failed", step=what)
            return None
