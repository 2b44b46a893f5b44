"""The asyncio side of the fast path: a reader per descriptor, one C call
per batch.

asyncio's DatagramProtocol would hand Python every packet; here the loop only
says "readable" and the callback drains the descriptor through the C batch
functions, a bounded number of rounds per wake-up so one busy device cannot
starve the others (the loop comes back to it at once if it is still readable).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from lispd.dataplane.fastpath import BATCH, FastPath, Miss

ROUNDS_PER_WAKEUP = 16

log = structlog.get_logger("lispd.dataplane")


class Engine:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fastpath: FastPath,
        on_misses: Callable[[list[Miss]], None],
        clock_ms: Callable[[], int],
    ) -> None:
        self._loop = loop
        self._fastpath = fastpath
        self._on_misses = on_misses
        self._clock_ms = clock_ms
        self._fds: list[int] = []
        self.read_errors = 0

    def _watch(self, fd: int, what: str, batch: Callable[[], int]) -> None:
        def drain() -> None:
            for _ in range(ROUNDS_PER_WAKEUP):
                moved = batch()
                if moved < 0:
                    self.read_errors += 1
                    if self.read_errors == 1 or self.read_errors % 1000 == 0:
                        log.warning("read_error", device=what, errors=self.read_errors)
                    return
                if moved < BATCH:
                    return

        self._loop.add_reader(fd, drain)
        self._fds.append(fd)

    def watch_tun(self, index: int, fd: int, name: str) -> None:
        def batch() -> int:
            moved, misses = self._fastpath.itr_batch(index)
            if misses:
                self._on_misses(misses)
            return moved

        self._watch(fd, name, batch)

    def watch_lisp(self, fd: int, name: str) -> None:
        self._watch(fd, name, lambda: self._fastpath.etr_batch(fd, self._clock_ms()))

    def watch_tap(self, segment: int, fd: int, name: str) -> None:
        self._watch(fd, name, lambda: self._fastpath.vxlan_tx_batch(segment))

    def watch_vxlan(self, fd: int, name: str) -> None:
        self._watch(fd, name, lambda: self._fastpath.vxlan_rx_batch(fd, self._clock_ms()))

    def close(self) -> None:
        for fd in self._fds:
            self._loop.remove_reader(fd)
        self._fds.clear()
