"""Network namespaces for the demo, tests and benches: uniquely named,
always deleted; lispd daemons, and OpenOverlayRouter as an independent
peer, run inside them.

Only `ip` commands inside namespaces this module created; nothing touches
the root namespace but the creation and deletion of the namespaces
themselves.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from lispd import ctl


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

    def lispd(self, namespace: str, config: str, workdir: Path, name: str, *,
              env: dict[str, str] | None = None, daemon: str = "") -> Lispd:
        """Start a lispd in namespace (stopped by close() at the latest); `env`
        adds to the environment it runs in, `daemon` to its [daemon] section."""
        return Lispd(self, namespace, config, workdir, name, env=env, daemon=daemon).start()

    def oor(self, namespace: str, config: str, workdir: Path,
            name: str) -> subprocess.Popen[bytes]:
        """Start OpenOverlayRouter (`oor`, Debian openoverlayrouter) with config
        in namespace (killed by close() at the latest); its config and log are
        workdir/oor-{name}.conf and .log. It makes its TUN lispTun0 at once;
        oor_routed() says when it sends what its EIDs source into it."""
        path = workdir / f"oor-{name}.conf"
        path.write_text(config)
        with (workdir / f"oor-{name}.log").open("wb") as log:
            # Line-buffered, so the log is complete when the namespace is killed.
            return self.popen(namespace, "stdbuf", "-oL", "-eL", "oor", "-f", str(path),
                              stdout=log, stderr=subprocess.STDOUT, cwd=workdir)

    def oor_routed(self, namespace: str, prefixes: Iterable[str]) -> bool:
        """Whether OOR in namespace sends what its EID prefixes source into
        its tunnel yet: a `from PREFIX lookup` rule per prefix, of either family
        (`ip rule` writes a host prefix without its length)."""
        rules = (self.ns(namespace, "ip", "-4", "rule", "show").stdout
                 + self.ns(namespace, "ip", "-6", "rule", "show").stdout)
        for prefix in prefixes:
            network = ip_network(prefix)
            shown = (network.network_address if network.prefixlen == network.max_prefixlen
                     else network)
            if f"from {shown} lookup" not in rules:
                return False
        return True

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

    def core_link(self, namespace: str, device: str, core: str, core_device: str,
                  net: int) -> None:
        """A point-to-point underlay network 198.18.<net>.0/24 from namespace
        to the router `core`, which is .1 on it."""
        self.link(namespace, device, core, core_device)
        self.ns(core, "ip", "addr", "add", f"198.18.{net}.1/24", "dev", core_device)

    def on_net(self, namespace: str, device: str, net: int, host: int, *,
               route: str = "default") -> None:
        """198.18.<net>.<host>/24 on device, and `route` via the core there."""
        self.ns(namespace, "ip", "addr", "add", f"198.18.{net}.{host}/24", "dev", device)
        self.ns(namespace, "ip", "route", "replace", route, "via", f"198.18.{net}.1")

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


def toml_strings(values: Sequence[str]) -> str:
    """A TOML array of strings."""
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def map_server_config(rloc: str, key: str, prefixes: Sequence[str] = ("192.0.2.0/24",), *,
                      site: str = "tenant", register_interval: int | None = None) -> str:
    """A lispd map-server (and map-resolver) at rloc with one site of the
    prefixes, more-specifics accepted."""
    interval = "" if register_interval is None else f"register-interval = {register_interval}\n"
    return (
        f'[underlay]\nrlocs = ["{rloc}"]\n\n[map-server]\nlisten = ["{rloc}"]\n{interval}\n'
        f'[[map-server.site]]\nname = "{site}"\nkey = "{key}"\n'
        f"eid-prefixes = {toml_strings(prefixes)}\naccept-more-specifics = true\n"
    )


def oor_mapping(kind: str, prefix: str, rloc: str) -> str:
    """An OpenOverlayRouter mapping block (kind: database-mapping,
    static-map-cache) of prefix at one RLOC, instance 0, priority 1, weight 100."""
    return f"""
{kind} {{
    eid-prefix = {prefix}
    iid = 0
    rloc-address {{
        address = {rloc}
        priority = 1
        weight = 100
    }}
}}
"""


def oor_static_xtr(database: Sequence[tuple[str, str]],
                   static: Sequence[tuple[str, str]]) -> str:
    """An OpenOverlayRouter xTR with no mapping system: its database mappings
    and static map-cache entries, each (prefix, RLOC); RLOC probing off.

    OOR 1.3.0 forwards without a map-resolver or map-server (it logs "NO MAP
    RESOLVER CONFIGURED" and carries on). It sends its own traffic via the
    default gateway of its RLOC interface, so that interface needs a default
    route; it routes what its EIDs source (and only that) into lispTun0.
    """
    return "\n".join([
        "debug = 1",
        "operating-mode = xTR",
        "encapsulation = LISP",
        "rloc-probing {\n    rloc-probe-interval = 0\n}",
        *(oor_mapping("database-mapping", prefix, rloc) for prefix, rloc in database),
        *(oor_mapping("static-map-cache", prefix, rloc) for prefix, rloc in static),
    ])


class Lispd:
    """A lispd daemon in one of a lab's namespaces, with its config, log and
    control socket in workdir. The config given has no [daemon] section: the
    lab supplies it."""

    def __init__(self, topology: Lab, namespace: str, config: str, workdir: Path, name: str,
                 *, env: dict[str, str] | None = None, daemon: str = ""):
        self.topology = topology
        self.daemon_keys = daemon
        self.env = {**os.environ, **(env or {})}
        self.namespace = namespace
        self.name = name
        self.socket = workdir / f"{name}.sock"
        self.config_path = workdir / f"{name}.toml"
        self.log_path = workdir / f"{name}.log"
        self.rewrite(config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> Lispd:
        with self.log_path.open("wb") as log:
            self.process = self.topology.popen(
                self.namespace, sys.executable, "-m", "lispd", "run", "--config",
                str(self.config_path), stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if '"event": "ready"' in self.log():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"lispd {self.name} did not become ready:\n{self.log()}")

    def rewrite(self, config: str) -> None:
        """Replace the configuration file (the [daemon] section stays the lab's);
        a reload then reads it."""
        self.config = config
        self.config_path.write_text(
            f'[daemon]\ncontrol-socket = "{self.socket}"\nlog-format = "json"\n'
            f'log-level = "info"\n{self.daemon_keys}\n\n{config}'
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, command: str, *args: str) -> Any:
        return ctl.request(self.socket, command, *args)

    def stats(self) -> dict[str, int]:
        counters: dict[str, int] = self.request("show", "stats")
        return counters

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait: the exit status (0 for a clean exit)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"lispd {self.name} ignored SIGTERM:\n{self.log()}") from None
