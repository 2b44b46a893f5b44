"""Network namespaces for the demo, tests and benches: uniquely named,
always deleted.

Only `ip` commands inside namespaces this module created; nothing touches
the root namespace but the creation and deletion of the namespaces
themselves.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


class Lab:
    """A set of namespaces named <prefix>-<role>, deleted on close."""

    def __init__(self) -> None:
        self.prefix = f"lt{uuid.uuid4().hex[:8]}"
        self.namespaces: list[str] = []
        self._links = 0

    def add(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        self.ns(name, "ip", "link", "set", "lo", "up")
        return name

    def ns(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", name, *args, check=check)

    def popen(self, name: str, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = subprocess.Popen(
            ["ip", "netns", "exec", name, *args], **kwargs
        )
        return process

    def link(self, a: str, a_if: str, b: str, b_if: str) -> None:
        """A veth pair with one end in each namespace, both up."""
        self._links += 1
        # Temporary names, unique on the machine, created directly inside
        # the namespaces (IFNAMSIZ allows 15 characters).
        tmp_a, tmp_b = f"{self.prefix}a{self._links}", f"{self.prefix}b{self._links}"
        run("ip", "link", "add", tmp_a, "netns", a, "type", "veth", "peer", tmp_b, "netns", b)
        self.ns(a, "ip", "link", "set", tmp_a, "name", a_if)
        self.ns(b, "ip", "link", "set", tmp_b, "name", b_if)
        self.ns(a, "ip", "link", "set", a_if, "up")
        self.ns(b, "ip", "link", "set", b_if, "up")

    def close(self) -> None:
        for name in reversed(self.namespaces):
            # Kill whatever still runs inside before the namespace goes.
            pids = run("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            run("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    topology = Lab()
    try:
        yield topology
    finally:
        topology.close()
