"""Data-plane throughput: lispd against kernel VXLAN, OpenOverlayRouter and a bare veth.

Seven paths, each between its own two namespaces joined by a veth:

    direct       the underlay itself, no tunnel
    kvxlan       kernel VXLAN (vni 42, port 4789) on the veth
    oor          OpenOverlayRouter's data plane: two OOR xTRs (TUN, UDP 4341)
                 with static map-cache entries pointing at each other
    lisp         lispd LISP xTRs (TUN, UDP 4341), offloads "auto"
    vxlan        lispd VXLAN VTEPs (TAP, UDP 4789), offloads "auto"
    lisp-plain   lispd LISP xTRs, offloads "off" (the plain batched path)
    vxlan-plain  lispd VXLAN VTEPs, offloads "off"

Each round runs, per path (the order rotated each round), iperf3 single-stream
TCP, UDP with 1400-byte payloads and UDP with 64-byte payloads (unlimited
rate). The table shows the median over the rounds: TCP Gbit/s and
retransmissions, UDP packets per second the receiver got (and the loss), each
with its ratio to kernel VXLAN, and the CPU seconds spent per Gbit carried
(whole machine, and the tunnel's daemons, lispd or OOR, alone). Drops are
taken from lispd's own counters, from the kernel's UDP socket counters and
from the devices. Each lispd says which data path it runs (`lispctl
version`: "batched", "offload"). The same figures, every run included, go to
bench/results/throughput-<UTC>.json.

Needs root, iperf3 and iproute2 (and OpenOverlayRouter's `oor` for its
path). Everything happens in namespaces created (and deleted, even on
failure or Ctrl-C) by lispd.lab.

    python bench/throughput.py [--seconds N] [--rounds N] [--quick] [--paths a,b,...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from lispd import ctl
from lispd.lab import Lab, Lispd, lab, oor_static_xtr

RESULTS = Path(__file__).parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
IPERF_PORT = 5201
LISP_PORT = 4341
VXLAN_PORT = 4789
# Beyond the test's own length: iperf3's set-up, its result exchange, slack.
IPERF_GRACE_S = 20.0
BASELINE = "kvxlan"
OOR_START_S = 20.0  # how long OOR may take to route what its EIDs send


@dataclass(frozen=True)
class Test:
    name: str
    title: str
    iperf_args: tuple[str, ...]

    @property
    def udp(self) -> bool:
        return "-u" in self.iperf_args


TESTS = (
    Test("tcp", "TCP, one stream", ()),
    Test("udp1400", "UDP, 1400-byte payloads", ("-u", "-b", "0", "-l", "1400")),
    Test("udp64", "UDP, 64-byte payloads", ("-u", "-b", "0", "-l", "64")),
)


@dataclass
class Route:
    """One path: iperf3 runs from client_ns (bound to client_addr) to
    server_addr in server_ns; daemons are its lispd processes, if any."""

    name: str
    title: str
    client_ns: str
    server_ns: str
    client_addr: str
    server_addr: str
    daemons: list[Lispd] = field(default_factory=list)
    udp_port: int | None = None  # the tunnel's UDP port (socket drops)
    # Tunnel daemons that are not lispd (OOR), by name: CPU only, no counters.
    others: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # What each lispd says its data path is (lispctl version), at the start
    # and at the end of the runs.
    dataplane: dict[str, list[str]] = field(default_factory=dict)

    def pids(self) -> dict[str, int]:
        """The tunnel's daemons (lispd or OOR), name -> process id."""
        pids = {d.name: d.process.pid for d in self.daemons if d.process is not None}
        pids.update({name: process.pid for name, process in self.others.items()})
        return pids


# -- building the paths ---------------------------------------------------------


def pair(topology: Lab, role: str, subnet: str) -> tuple[str, str, str, str]:
    """Two namespaces joined by a veth (u0 on both sides) addressed from
    198.18.<subnet>.0/24: (namespace a, namespace b, address a, address b)."""
    a, b = topology.add(f"{role}a"), topology.add(f"{role}b")
    topology.link(a, "u0", b, "u0")
    addr_a, addr_b = f"198.18.{subnet}.1", f"198.18.{subnet}.2"
    topology.ns(a, "ip", "addr", "add", f"{addr_a}/24", "dev", "u0")
    topology.ns(b, "ip", "addr", "add", f"{addr_b}/24", "dev", "u0")
    return a, b, addr_a, addr_b


def build_direct(topology: Lab, workdir: Path) -> Route:
    a, b, addr_a, addr_b = pair(topology, "dir", "1")
    return Route("direct", "direct veth", a, b, addr_a, addr_b)


def build_kernel_vxlan(topology: Lab, workdir: Path) -> Route:
    a, b, addr_a, addr_b = pair(topology, "kvx", "2")
    for ns, local, remote, overlay in ((a, addr_a, addr_b, "1"), (b, addr_b, addr_a, "2")):
        topology.ns(ns, "ip", "link", "add", "vx42", "type", "vxlan", "id", "42",
                    "dstport", str(VXLAN_PORT), "local", local, "remote", remote, "dev", "u0")
        topology.ns(ns, "ip", "addr", "add", f"198.51.100.{overlay}/24", "dev", "vx42")
        topology.ns(ns, "ip", "link", "set", "vx42", "up")
    return Route("kvxlan", "kernel VXLAN", a, b, "198.51.100.1", "198.51.100.2",
                 udp_port=VXLAN_PORT)


def build_oor(topology: Lab, workdir: Path) -> Route:
    """Two OOR xTRs, each the other's static map-cache entry. OOR sends its
    own traffic via the default gateway of its RLOC interface: each side's
    is the other's address. The EIDs go on OOR's TUN (lispTun0) once it
    routes what they source into it."""
    a, b, addr_a, addr_b = pair(topology, "oor", "7")
    eid_a, eid_b = "192.0.2.30", "192.0.2.40"
    route = Route("oor", "OOR LISP", a, b, eid_a, eid_b, udp_port=LISP_PORT)
    sides = ((a, addr_a, eid_a, addr_b, eid_b, "oor-a"), (b, addr_b, eid_b, addr_a, eid_a, "oor-b"))
    for ns, own, eid, peer, peer_eid, name in sides:
        topology.ns(ns, "ip", "route", "add", "default", "via", peer)
        config = oor_static_xtr(database=[(f"{eid}/32", own)], static=[(f"{peer_eid}/32", peer)])
        route.others[name] = topology.oor(ns, config, workdir, name)
    deadline = time.monotonic() + OOR_START_S
    for ns, _, eid, _, _, name in sides:
        while not topology.oor_routed(ns, [f"{eid}/32"]):
            process = route.others[name]
            if process.poll() is not None or time.monotonic() > deadline:
                log = (workdir / f"oor-{name}.log").read_text(errors="replace")
                raise RuntimeError(f"OOR {name} did not route its EID within {OOR_START_S:g} s"
                                   f" (exit status {process.poll()}):\n{log[-2000:]}")
            time.sleep(0.1)
        topology.ns(ns, "ip", "addr", "add", f"{eid}/32", "dev", "lispTun0")
    return route


def lisp_config(own_rloc: str, peer_rloc: str, own_eid: str, peer_eid: str) -> str:
    return (
        f'[underlay]\nrlocs = ["{own_rloc}"]\n\n'
        '[xtr]\neid-space = ["192.0.2.0/24"]\n\n'
        f'[[xtr.database-mapping]]\neid-prefix = "{own_eid}/32"\nassign = true\n'
        f'rlocs = [{{ address = "{own_rloc}" }}]\n\n'
        f'[[xtr.static-mapping]]\neid-prefix = "{peer_eid}/32"\n'
        f'rlocs = [{{ address = "{peer_rloc}" }}]\n'
    )


def build_lisp(topology: Lab, workdir: Path, *, name: str, title: str, role: str,
               subnet: str, eids: tuple[str, str], offloads: str) -> Route:
    a, b, addr_a, addr_b = pair(topology, role, subnet)
    eid_a, eid_b = eids
    route = Route(name, title, a, b, eid_a, eid_b, udp_port=LISP_PORT)
    keys = f'offloads = "{offloads}"'
    route.daemons.append(topology.lispd(a, lisp_config(addr_a, addr_b, eid_a, eid_b),
                                        workdir, f"{name}-a", daemon=keys))
    route.daemons.append(topology.lispd(b, lisp_config(addr_b, addr_a, eid_b, eid_a),
                                        workdir, f"{name}-b", daemon=keys))
    return route


def vxlan_config(own: str, peer: str) -> str:
    return (
        f'[underlay]\nrlocs = ["{own}"]\n\n'
        f'[[vxlan]]\ndevice = "vxl100"\nvni = 100\nlocal = "{own}"\nflood = ["{peer}"]\n'
    )


def build_lispd_vxlan(topology: Lab, workdir: Path, *, name: str, title: str, role: str,
                      subnet: str, overlay: tuple[str, str], offloads: str) -> Route:
    a, b, addr_a, addr_b = pair(topology, role, subnet)
    route = Route(name, title, a, b, *overlay, udp_port=VXLAN_PORT)
    keys = f'offloads = "{offloads}"'
    for ns, own, peer, address, side in ((a, addr_a, addr_b, route.client_addr, "a"),
                                         (b, addr_b, addr_a, route.server_addr, "b")):
        route.daemons.append(topology.lispd(ns, vxlan_config(own, peer), workdir,
                                            f"{name}-{side}", daemon=keys))
        topology.ns(ns, "ip", "addr", "add", f"{address}/24", "dev", "vxl100")
        topology.ns(ns, "ip", "link", "set", "vxl100", "up")
    return route


# Every path, in the order of the table; --paths picks some.
PATHS: dict[str, Callable[[Lab, Path], Route]] = {
    "direct": build_direct,
    "kvxlan": build_kernel_vxlan,
    "oor": build_oor,
    "lisp": partial(build_lisp, name="lisp", title="lispd LISP", role="lsp", subnet="3",
                    eids=("192.0.2.10", "192.0.2.20"), offloads="auto"),
    "vxlan": partial(build_lispd_vxlan, name="vxlan", title="lispd VXLAN", role="lvx",
                     subnet="4", overlay=("203.0.113.1", "203.0.113.2"), offloads="auto"),
    "lisp-plain": partial(build_lisp, name="lisp-plain", title="lispd LISP plain", role="lspp",
                          subnet="5", eids=("192.0.2.11", "192.0.2.21"), offloads="off"),
    "vxlan-plain": partial(build_lispd_vxlan, name="vxlan-plain", title="lispd VXLAN plain",
                           role="lvxp", subnet="6", overlay=("203.0.113.3", "203.0.113.4"),
                           offloads="off"),
}


def dataplane_of(route: Route) -> None:
    """Note what each lispd of the path says its data path is, now."""
    for daemon in route.daemons:
        try:
            answer = str(daemon.request("version").get("dataplane", "not said"))
        except (ctl.RequestError, OSError) as error:  # a daemon gone: the runs still count
            answer = f"no answer ({error})"
        route.dataplane.setdefault(daemon.name, []).append(answer)


def reachable(topology: Lab, route: Route) -> bool:
    """A few bounded pings, so a broken path fails here and not in iperf3."""
    for _ in range(5):
        done = topology.ns(route.client_ns, "ping", "-c", "1", "-W", "1", "-I",
                           route.client_addr, route.server_addr, check=False)
        if done.returncode == 0:
            return True
    return False


# -- counters -----------------------------------------------------------------


def system_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def process_cpu(pid: int) -> float:
    """user + system CPU seconds of a process (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    after_name = stat[stat.rindex(")") + 2 :].split()
    return (int(after_name[11]) + int(after_name[12])) / CLK_TCK  # utime, stime


def daemon_cpu(route: Route) -> dict[str, float]:
    """CPU seconds of each tunnel daemon (lispd, OOR) of the path, by name."""
    return {name: process_cpu(pid) for name, pid in route.pids().items()}


def kernel_counters(topology: Lab, ns: str, udp_port: int | None) -> dict[str, int]:
    """Drop counters of one namespace: UDP (all sockets, and the tunnel's
    socket alone) and every device's rx/tx drops."""
    counters: dict[str, int] = {}
    snmp = topology.ns(ns, "cat", "/proc/net/snmp").stdout.splitlines()
    for head, values in zip(snmp[::2], snmp[1::2], strict=False):
        if head.startswith("Udp:"):
            udp = dict(zip(head.split()[1:], values.split()[1:], strict=True))
            counters["udp_rcvbuf_errors"] = int(udp["RcvbufErrors"])
            counters["udp_sndbuf_errors"] = int(udp["SndbufErrors"])
            counters["udp_in_errors"] = int(udp["InErrors"])
    if udp_port is not None:
        port = f":{udp_port:04X}"
        socket_drops = 0
        for line in topology.ns(ns, "cat", "/proc/net/udp").stdout.splitlines()[1:]:
            columns = line.split()
            if columns[1].endswith(port):
                socket_drops += int(columns[-1])
        counters[f"udp_{udp_port}_socket_drops"] = socket_drops
    links = json.loads(topology.ns(ns, "ip", "-s", "-j", "link", "show").stdout)
    for link in links:
        stats = link.get("stats64", {})
        for direction in ("rx", "tx"):
            counters[f"{link['ifname']}_{direction}_dropped"] = int(
                stats.get(direction, {}).get("dropped", 0))
    return counters


@dataclass
class Snapshot:
    when: float
    busy: float
    total: float
    daemon_cpu: dict[str, float]
    daemons: dict[str, dict[str, int]]
    kernel: dict[str, dict[str, int]]


def snapshot(topology: Lab, route: Route, cpu_first: bool) -> Snapshot:
    """Counters around a run; the CPU figures are read nearest the run."""
    def cpu() -> tuple[float, float, float, dict[str, float]]:
        busy, total = system_cpu()
        return time.monotonic(), busy, total, daemon_cpu(route)

    first = cpu() if cpu_first else None
    daemons = {d.name: d.stats() for d in route.daemons}
    kernel = {side: kernel_counters(topology, ns, route.udp_port)
              for side, ns in (("client", route.client_ns), ("server", route.server_ns))}
    when, busy, total, spent = first or cpu()
    return Snapshot(when, busy, total, spent, daemons, kernel)


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def drops_of(before: Snapshot, after: Snapshot) -> dict[str, int]:
    """Every drop-like counter that moved during a run, named where it is."""
    drops: dict[str, int] = {}
    for name, counters in after.daemons.items():
        for key, value in delta(before.daemons[name], counters).items():
            if key.startswith("drop_") or key in ("misses", "icmp_too_big", "fdb_learn_full"):
                drops[f"{name}:{key}"] = value
    for side, counters in after.kernel.items():
        for key, value in delta(before.kernel[side], counters).items():
            drops[f"{side}-ns:{key}"] = value
    return drops


# -- one iperf3 run -------------------------------------------------------------


def wait_listening(topology: Lab, ns: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        listening = topology.ns(ns, "ss", "-Hltn", f"sport = :{IPERF_PORT}").stdout
        if listening.strip():
            return
        if server.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError(f"iperf3 server in {ns} did not start listening")


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_iperf(topology: Lab, route: Route, test: Test, seconds: float) -> dict[str, Any]:
    """One bounded iperf3 run; a dict of results (with "error" if it failed)."""
    # The server binds its address too: its UDP replies must come from it, and
    # OOR only tunnels what its EIDs source (unbound, they go out natively).
    server = topology.popen(route.server_ns, "iperf3", "-s", "-1", "-B", route.server_addr,
                            "-p", str(IPERF_PORT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict[str, Any] = {"path": route.name, "test": test.name}
    try:
        wait_listening(topology, route.server_ns, server)
        before = snapshot(topology, route, cpu_first=False)
        client = subprocess.run(
            ["ip", "netns", "exec", route.client_ns, "iperf3", "-c", route.server_addr,
             "-B", route.client_addr, "-p", str(IPERF_PORT), "-t", f"{seconds:g}", "-J",
             *test.iperf_args],
            capture_output=True, text=True, timeout=seconds + IPERF_GRACE_S, check=False,
        )
        after = snapshot(topology, route, cpu_first=True)
    except subprocess.TimeoutExpired:
        result["error"] = f"iperf3 did not finish within {seconds + IPERF_GRACE_S:g} s"
        return result
    except RuntimeError as error:
        result["error"] = str(error)
        return result
    finally:
        stop_process(server, 5.0)
    try:
        report = json.loads(client.stdout)
    except json.JSONDecodeError:
        report = {"error": (client.stderr or client.stdout).strip()[-300:]}
    if "error" in report:
        result["error"] = report["error"]
        return result
    end = report["end"]
    received = end["sum_received"]
    elapsed = float(received["seconds"])
    result["seconds"] = elapsed
    result["received_bytes"] = int(received["bytes"])
    gbit = received["bytes"] * 8 / 1e9
    result["gbit_s"] = gbit / elapsed
    if test.udp:
        packets = int(received["packets"]) - int(received["lost_packets"])
        result["sent_packets"] = int(end["sum_sent"]["packets"])
        result["received_packets"] = packets
        result["pps"] = packets / elapsed
        result["loss_percent"] = float(received["lost_percent"])
    else:
        result["retransmits"] = int(end["sum_sent"].get("retransmits", 0))
    result["system_cpu_s"] = after.busy - before.busy
    result["system_cpu_share"] = (after.busy - before.busy) / max(after.total - before.total,
                                                                   1e-9)
    result["daemon_cpu_s_by_daemon"] = {
        name: spent - before.daemon_cpu[name] for name, spent in after.daemon_cpu.items()}
    result["daemon_cpu_s"] = sum(result["daemon_cpu_s_by_daemon"].values())
    result["system_cpu_s_per_gbit"] = result["system_cpu_s"] / gbit if gbit else None
    result["daemon_cpu_s_per_gbit"] = (
        result["daemon_cpu_s"] / gbit if gbit and after.daemon_cpu else None)
    result["drops"] = drops_of(before, after)
    result["lispd_counters"] = {
        name: delta(before.daemons[name], counters) for name, counters in after.daemons.items()
    }
    return result


# -- the report ---------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(routes: list[Route], runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for route in routes:
        row: dict[str, Any] = {"title": route.title, "dataplane": route.dataplane}
        for test in TESTS:
            mine = [r for r in runs if r["path"] == route.name and r["test"] == test.name]
            good = [r for r in mine if "error" not in r]
            figures: dict[str, Any] = {"runs": len(mine), "failed": len(mine) - len(good)}
            keys = ["gbit_s", "system_cpu_s_per_gbit", "daemon_cpu_s_per_gbit"]
            keys += ["pps", "loss_percent"] if test.udp else ["retransmits"]
            for key in keys:
                figures[key] = median_of(good, key)
            drops: dict[str, int] = {}
            for r in good:
                for where, count in r["drops"].items():
                    drops[where] = drops.get(where, 0) + count
            figures["drops_total"] = drops
            figures["errors"] = [r["error"] for r in mine if "error" in r]
            row[test.name] = figures
        summary[route.name] = row
    base = summary.get(BASELINE, {})
    for row in summary.values():
        for test in TESTS:
            key = "pps" if test.udp else "gbit_s"
            mine, theirs = row[test.name][key], base.get(test.name, {}).get(key)
            row[test.name]["ratio_to_kernel_vxlan"] = mine / theirs if mine and theirs else None
    return summary


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def ratio(value: float | None) -> str:
    return "" if value is None else f"({value:.2f}x)"


TITLE = 19  # width of the path column


def print_table(summary: dict[str, dict[str, Any]], rounds: int, seconds: float) -> None:
    base = ("(x) = ratio to kernel VXLAN" if BASELINE in summary
            else "no ratios: kernel VXLAN is not among --paths")
    print(f"\nmedian of {rounds} round(s) of {seconds:g} s per test; {base};"
          " pps = packets the receiver got")
    print(f"{'':<{TITLE}}{'TCP, 1 stream':^26}{'UDP 1400 B':^28}{'UDP 64 B':^28}"
          f"{'CPU s/Gbit (TCP)':^18}")
    header = (f"{'path':<{TITLE}}{'Gbit/s':>10}{'':>9}{'retr':>7}"
              f"{'kpps':>12}{'':>9}{'loss%':>7}{'kpps':>12}{'':>9}{'loss%':>7}"
              f"{'system':>10}{'daemon':>8}")
    print(header)
    print("-" * len(header))
    for row in summary.values():
        tcp, big, small = row["tcp"], row["udp1400"], row["udp64"]
        print(f"{row['title']:<{TITLE}}"
              f"{fmt(tcp['gbit_s'], '.2f'):>10}{ratio(tcp['ratio_to_kernel_vxlan']):>9}"
              f"{fmt(tcp['retransmits'], '.0f'):>7}"
              f"{fmt(big['pps'] and big['pps'] / 1e3, '.1f'):>12}"
              f"{ratio(big['ratio_to_kernel_vxlan']):>9}{fmt(big['loss_percent'], '.1f'):>7}"
              f"{fmt(small['pps'] and small['pps'] / 1e3, '.1f'):>12}"
              f"{ratio(small['ratio_to_kernel_vxlan']):>9}{fmt(small['loss_percent'], '.1f'):>7}"
              f"{fmt(tcp['system_cpu_s_per_gbit'], '.2f'):>10}"
              f"{fmt(tcp['daemon_cpu_s_per_gbit'], '.2f'):>8}")
    print("\n(daemon: the tunnel's own processes, the two lispd or the two oor)")
    reported = [row for row in summary.values() if row["dataplane"]]
    if reported:
        print("\ndata path each lispd reports (lispctl version; start -> end of the runs"
              " where it changed)")
        for row in reported:
            paths = ", ".join(f"{name}: {' -> '.join(dict.fromkeys(seen))}"
                              for name, seen in row["dataplane"].items())
            print(f"  {row['title']:<{TITLE}}{paths}")
    print("\ndrops during the runs, summed over rounds: lispd's own counters (lisp-a:...),"
          " the kernel's in the\nclient/server namespace (udp_rcvbuf_errors: all UDP sockets,"
          " iperf3's included; udp_<port>_socket_drops:\nthe tunnel's socket alone;"
          " <device>_tx_dropped on a TUN/TAP: the queue to lispd or OOR overflowed)")
    for row in summary.values():
        for test in TESTS:
            figures = row[test.name]
            for error in figures["errors"]:
                print(f"  {row['title']:<{TITLE}}{test.name:<9}FAILED: {error}")
            if figures["drops_total"]:
                listed = ", ".join(f"{k}={v}" for k, v in sorted(figures["drops_total"].items()))
                print(f"  {row['title']:<{TITLE}}{test.name:<9}{listed}")


def package_version(package: str) -> str | None:
    """The installed version of a Debian package, if dpkg knows it."""
    if shutil.which("dpkg-query") is None:
        return None
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                          capture_output=True, text=True, timeout=10, check=False)
    return done.stdout.strip() or None


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]
    repo = Path(__file__).resolve().parent.parent
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=10, check=False)
        return done.stdout.strip()
    revision = git("rev-parse", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        revision += " (with uncommitted changes)"
    return {
        "hostname": platform.node(),
        "cpu_model": models[0] if models else platform.processor(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "python": platform.python_version(),
        "iperf3": subprocess.run(["iperf3", "--version"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout.splitlines()[0],
        "lispd_revision": revision,
        "openoverlayrouter": package_version("openoverlayrouter"),
    }


# -- main -----------------------------------------------------------------------


@contextlib.contextmanager
def terminated_cleanly() -> Iterator[None]:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so the namespaces still go."""
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def path_names(text: str) -> list[str]:
    """--paths: names separated by commas, in the table's order."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - PATHS.keys())
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown path {', '.join(unknown) or '(none given)'}; known: {', '.join(PATHS)}")
    return [name for name in PATHS if name in names]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each iperf3 run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (at least 2; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2-second runs, 1 round")
    parser.add_argument("--paths", type=path_names, default=list(PATHS), metavar="A,B,...",
                        help=f"only these paths (default: all of {','.join(PATHS)})")
    args = parser.parse_args()
    seconds: float = 2.0 if args.quick else args.seconds
    rounds: int = 1 if args.quick else max(2, args.rounds)
    chosen: list[str] = args.paths
    if os.geteuid() != 0:
        print("throughput bench skipped: it needs root (network namespaces)")
        return 0
    tools = ["iperf3", "ip", "ss", "ping"] + (["oor", "stdbuf"] if "oor" in chosen else [])
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        print(f"throughput bench cannot run: missing {', '.join(missing)} (make deps; `oor` is"
              " in the Debian package openoverlayrouter, or leave it out with --paths)")
        return 1
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    routes: list[Route] = []
    interrupted = False
    with terminated_cleanly(), tempfile.TemporaryDirectory(prefix="lispd-bench-") as tmp, \
            lab() as topology:
        try:
            for name in chosen:
                routes.append(PATHS[name](topology, Path(tmp)))
            for route in routes:
                if not reachable(topology, route):
                    raise RuntimeError(f"{route.title}: {route.server_addr} does not answer ping")
                dataplane_of(route)
            total = rounds * len(routes) * len(TESTS)
            for number in range(rounds):
                order = routes[number % len(routes):] + routes[: number % len(routes)]
                for route in order:
                    for test in TESTS:
                        result = run_iperf(topology, route, test, seconds)
                        result["round"] = number + 1
                        runs.append(result)
                        shown = (f"{result['pps'] / 1e3:.1f} kpps" if "pps" in result else
                                 f"{result['gbit_s']:.2f} Gbit/s" if "gbit_s" in result else
                                 f"FAILED: {result['error']}")
                        print(f"[{len(runs):>2}/{total}] round {number + 1} "
                              f"{route.title:<{TITLE}}{test.name:<9}{shown}", flush=True)
            for route in routes:
                dataplane_of(route)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            # Ignore a second Ctrl-C while the daemons stop and the namespaces go.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                for route in routes:
                    for daemon in route.daemons:
                        with contextlib.suppress(RuntimeError, OSError):
                            status = daemon.stop()
                            # Ctrl-C reaches the daemons too: they may be stopping already.
                            if status != 0 and not interrupted:
                                print(f"lispd {daemon.name} exited with status {status}:\n"
                                      f"{daemon.log()[-2000:]}", file=sys.stderr)
                    for process in route.others.values():
                        if process.poll() is None:
                            process.terminate()
                        stop_process(process, 5.0)
            finally:
                topology.close()
                signal.signal(signal.SIGINT, previous)
    summary = summarise(routes, runs)
    print_table(summary, rounds, seconds)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"throughput-{stamp}.json"
    out.write_text(json.dumps({
        "when_utc": stamp,
        "machine": machine(),
        "seconds_per_run": seconds,
        "rounds": rounds,
        "wall_seconds": time.monotonic() - started,
        "baseline": BASELINE,
        "paths": chosen,
        "summary": summary,
        "runs": runs,
    }, indent=2) + "\n")
    print(f"\nwritten {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    failed = sum(1 for run in runs if "error" in run)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as interruption:
        print(f"\ninterrupted ({str(interruption) or 'SIGINT'}); the namespaces are deleted",
              file=sys.stderr)
        sys.exit(130)
    except RuntimeError as failure:  # a path that cannot be built (the namespaces are gone)
        print(f"throughput bench failed: {failure}", file=sys.stderr)
        sys.exit(1)
