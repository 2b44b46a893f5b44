"""`lispd demo`: the embedded default. With no arguments and no config, it
builds the paper's scenario in network namespaces on this machine (the
four sites of lispd.clouds), runs real lispd daemons with generated
configs, shows a client on-premise reaching a service in cloud A through
LISP, moves the service to cloud B while the client keeps sending (the
empty VM there runs lispd from the start; the service's EIDs are added to
its configuration and `lispctl reload` applies them), tells
what happened (a timeline decoded from a capture on the core router, the
gap and the loss the client's stream measured, the map-cache before and
after), shows an L2 segment stretched across the clouds, and cleans up, on
Ctrl-C and SIGTERM too.

    lispd demo                  run it (as root), about 10 s
    lispd demo --scenario paper the paper's router topology and a VM's move
    lispd demo --keep           leave the topology up, with how to look at it
    lispd demo --clean PREFIX   remove what --keep left up

The last line of a run is `RESULT {json}`: the measured figures, for machines.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from lispd import lispctl
from lispd.clouds import (
    HOST4,
    MS,
    ONPREM,
    ROLES,
    SEGMENT_DEVICE,
    SEGMENT_HOSTS,
    SEGMENT_VNI,
    SERVICE4,
    SERVICE6,
    STREAM_PORT,
    VM2_RLOC,
    VM_RLOC,
    VTEPS,
    Clouds,
    Options,
)
from lispd.lab import Lab, run
from lispd.pcap import Capture
from lispd.stream import Arrivals, outage
from lispd.timeline import Line, at, fold, render, stream_paths, timeline

__all__ = ["main"]

STEPS = 7
RATE = 1000  # packets per second of the client's stream
SECONDS = 4.0  # how long it sends
MOVE_AT = 1.5  # seconds into the stream
PINGS = 3
CLOUD_A, CLOUD_B = VM_RLOC, VM2_RLOC  # where the service is before and after the move
PREFIX = re.compile(r"lt[0-9a-f]{8}")
LISPCTL = Path(sys.executable).with_name("lispctl")  # the operator's tool, beside this Python
WIDTH = 92
VMS = {"vm": "cloud A's VM", "vm2": "cloud B's VM"}
# What each message of the service's timeline means in this scenario, by
# (kind, source, destination).
NOTES = {
    ("Map-Register", "vm2", "ms"): "cloud B's VM, reloaded, registers the EID",
    ("Map-Notify", "ms", "vm2"): "accepted",
    ("Map-Notify", "ms", "vm"): "cloud A's VM: replaced, it steps aside",
    ("Map-Notify", "ms", "onprem"): "the gateway (a subscriber) learns of it",
    ("SMR", "vm", "onprem"): "cloud A's VM: look the EID up again",
    ("SMR", "vm2", "vm"): "cloud B's VM: look the EID up again (see below)",
    ("SMR", "vm", "vm2"): "cloud A's VM, to cloud B's too (see below)",
    ("Map-Request (ECM)", "vm", "ms"): "cloud A's VM asks too",
    ("Map-Request (ECM)", "onprem", "ms"): "the gateway asks the mapping system",
    ("Map-Request (ECM)", "ms", "vm2"): "which asks cloud B's VM",
    ("Map-Reply", "vm2", "onprem"): "which answers",
    ("Map-Reply", "vm2", "vm"): "and answers cloud A's VM",
    ("stream", "onprem", "vm"): "the client's packets to cloud A",
    ("stream", "onprem", "vm2"): "the client's packets to cloud B",
    ("stream", "vm", "vm2"): "cloud A's VM sends them on to cloud B",
}


def say(text: str = "") -> None:
    print(text, flush=True)


def tell(text: str) -> None:
    """Narration, wrapped to fit a terminal."""
    say(textwrap.fill(text, WIDTH, initial_indent="  ", subsequent_indent="  ",
                      break_on_hyphens=False))


def indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line if line else line for line in text.splitlines())


def step(number: int, title: str, *, total: int = STEPS) -> None:
    say(f"\n[{number}/{total}] {title}")


def workdir_of(prefix: str) -> Path:
    """Where a run keeps its configs, logs and capture (found again by --clean)."""
    return Path(tempfile.gettempdir()) / f"lispd-demo-{prefix}"


def remove(prefix: str) -> list[str]:
    """Delete every namespace of the run `prefix` (killing what runs in them)
    and its work directory: the namespaces deleted. Works from the names, so
    it also finds a namespace whose creation an interruption cut short."""
    listed = run("ip", "netns", "list", check=False).stdout.splitlines()
    mine = [line.split()[0] for line in listed if line.startswith(f"{prefix}-")]
    # Lab.close is what removes namespaces: given these, it removes them.
    leftovers = Lab()
    leftovers.prefix, leftovers.namespaces = prefix, list(mine)
    leftovers.close()
    shutil.rmtree(workdir_of(prefix), ignore_errors=True)
    return mine


def replies(output: str) -> int:
    """How many echo replies ping's summary counts."""
    found = re.search(r"(\d+) received", output)
    return int(found.group(1)) if found else 0


def ping(topology: Lab, namespace: str, target: str) -> int:
    """PINGS echo requests (bounded: -w): how many were answered."""
    done = topology.ns(namespace, "ping", "-c", str(PINGS), "-i", "0.2", "-w", "5", target,
                       check=False)
    return replies(done.stdout)


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def role(address: str) -> str:
    return f"{address} ({ROLES[address]})" if address in ROLES else address


def show(clouds: Clouds, daemon: str, table: str) -> str:
    """`lispctl show TABLE` of one of the daemons, as lispctl prints it."""
    return lispctl.render(("show", table), clouds.daemons[daemon].request("show", table))


def registered(clouds: Clouds) -> set[str]:
    """The EID prefixes the mapping system holds."""
    rows: list[dict[str, Any]] = clouds.daemons["ms"].request("show", "registrations")
    return {row["prefix"] for row in rows}


def service_rlocs(clouds: Clouds) -> list[str]:
    """Where the on-premise gateway's map-cache says the service is."""
    rows: list[dict[str, Any]] = clouds.daemons["onprem"].request("show", "map-cache")
    return [rloc["address"] for row in rows if row["eid-prefix"] == f"[0]{SERVICE4}/32"
            for rloc in row["rlocs"]]


# -- the steps --------------------------------------------------------------------


def build(topology: Lab, workdir: Path) -> Clouds:
    step(1, "Building the topology: network namespaces joined by a router")
    clouds = Clouds(topology, workdir, Options(segment=True))
    nodes = [
        ("ms", "the mapping system (Map-Server + Map-Resolver)", MS, "-"),
        ("onprem", "the on-premise gateway (an xTR)", ONPREM, "192.0.2.0/26 (its LAN)"),
        ("host", "a client on the on-premise LAN", "-", HOST4),
        ("vm", "a VM in cloud A, running the service", CLOUD_A,
         f"{SERVICE4}, {SERVICE6}, {VTEPS['vm']}"),
        ("vm2", "an empty VM in cloud B", CLOUD_B, VTEPS["vm2"]),
        ("core", "the router between the sites (the Internet)", "198.18.x.1", "-"),
    ]
    say(indent(lispctl.table(("NODE", "WHAT", "RLOC", "EIDS"), nodes)))
    tell("An EID names a service or a host, and stays the same wherever it runs (the service"
         f" is {SERVICE4} and {SERVICE6}; {VTEPS['vm']} and {VTEPS['vm2']} are the VMs' own)."
         " An RLOC says where it is now: the underlay address of the xTR in front of it. An"
         " xTR carries packets for an EID in LISP (UDP 4341) to the RLOC the mapping system"
         " names for it.")
    return clouds


def start(clouds: Clouds) -> None:
    step(2, "Starting lispd: the mapping system, the on-premise gateway, the VMs in clouds A"
         " and B")
    clouds.start()
    clouds.start_empty_vm2()
    for name, daemon in clouds.daemons.items():
        say(f"  {name:6} lispd run --config {daemon.config_path}")
    eids = {f"[0]{SERVICE4}/32", f"[0]{VTEPS['vm2']}/32"}
    if not wait_for(lambda: eids <= registered(clouds), 10):
        raise RuntimeError("the service's EID or vm2's own never registered with the mapping"
                           " system")
    tell("Each xTR registered its EIDs with the mapping system (Map-Register); vm2, the empty"
         f" VM, only its own ({VTEPS['vm2']}). What the mapping system holds (lispctl show"
         " registrations):")
    say(indent(show(clouds, "ms", "registrations")))


def reach(clouds: Clouds) -> dict[str, int]:
    step(3, "The client reaches the service through LISP")
    answered = {}
    for target in (SERVICE4, SERVICE6):
        answered[target] = ping(clouds.lab, clouds.host, target)
        say(f"  host → {target}: {answered[target]} of {PINGS} pings answered")
    tell("The gateway did not know where the service was: it asked the mapping system"
         " (Map-Request), held the first packets meanwhile and cached the answer. Its"
         " map-cache (lispctl show map-cache):")
    say(indent(show(clouds, "onprem", "map-cache")))
    return answered


def tell_timeline(lines: list[Line], zero: float) -> None:
    """The service's IPv4 EID's part of the timeline, repeats folded."""
    about = f"{SERVICE4}/32"
    mine = [replace(line, eids=()) for line in lines if line.eids in ((), (about,))]
    shown, repeats = fold(mine)
    say(f"\n  What happened to {about}, as the core router saw it (t = 0: `lispctl reload` was"
        " run on vm2):")
    say(indent("\n".join(render(shown, zero, NOTES))))
    if repeats:
        resending = sorted({line.source for line in repeats if line.kind == "SMR"})
        who = (f"{VMS.get(resending[0], resending[0])} resends its SMRs" if len(resending) == 1
               else "the VMs resend their SMRs")
        why = f", as {who} twice, 1 s apart, in case one was lost" if resending else ""
        tell(f"{at(repeats[0].time, zero)} … {at(repeats[-1].time, zero)}: {len(repeats)}"
             f" more messages that repeat lines above{why}.")
    if any(line.kind == "SMR" and {line.source, line.destination} == {"vm", "vm2"}
           for line in shown):
        tell("The VMs also SMR each other: lispd SMRs every ITR that sent it traffic lately,"
             " and each had sent the other some on the L2 segment of step 6 (the IPv6"
             " multicast their TAP devices send as they come up, router solicitations and MLD"
             " reports, flooded over LISP).")
    others = [line for line in lines if line.eids not in ((), (about,))]
    own = {f"{eid}/32" for eid in VTEPS.values()}
    theirs = sum(1 for line in others if set(line.eids) & own)
    if others:
        tell(f"({len(others)} more control messages: the same for {SERVICE6}"
             + (f"; {theirs} about the VMs' own EIDs, the ends of the L2 segment of step 6"
                if theirs else "") + ".)")


def migrate(clouds: Clouds, workdir: Path) -> dict[str, Any]:
    step(4, "Moving the service to cloud B while the client keeps talking to it")
    topology = clouds.lab
    count = int(RATE * SECONDS)
    # Snap length: whole control messages, and of data packets the stream's sequence numbers.
    capture = Capture(topology, clouds.core, "any", "inbound and udp and (port 4341 or port 4342)",
                      pcap=workdir / "core.pcap", count=20000, snaplen=512)
    say("  capturing LISP traffic on the core router (tcpdump)")
    receivers = [clouds.receiver(clouds.vm, SECONDS + 3), clouds.receiver(clouds.vm2, SECONDS + 3)]
    sender = clouds.sender(RATE, count)
    say(f"  the client sends {RATE} numbered UDP packets a second for {SECONDS:g} s"
        f" to {SERVICE4}:{STREAM_PORT}")
    time.sleep(MOVE_AT)
    tell(f"{MOVE_AT:g} s in: the service is deployed on vm2 in cloud B, with the same addresses:"
         " its configuration gains the service's EIDs, and `lispctl reload` applies just that.")
    applied, moved_at = deploy(clouds)
    displaced = wait_for(lambda: clouds.daemons["vm"].stats().get("registrar_displaced", 0) > 0,
                         2)
    say("  cloud A's VM " + ("was told by the mapping system (Map-Notify), and stepped aside"
                             if displaced else "has not been told yet"))
    sent = clouds.sent(sender)
    arrivals: list[Arrivals] = [clouds.arrivals(receiver) for receiver in receivers]
    frames = capture.frames()
    say(f"  the stream is over: {sent} packets sent")
    tell_timeline(timeline(frames, ROLES, STREAM_PORT), moved_at)

    received = set().union(*(a.sequence_numbers for a in arrivals)) & set(range(sent))
    gap_ms = round(outage(arrivals, sent, RATE) * 1000, 1)
    lost = sent - len(received)
    last_second = {seq for seq in arrivals[1].sequence_numbers if seq >= sent - RATE}
    say(f"\n  gap in the client's traffic: {gap_ms:g} ms; lost: {lost} of {sent} packets")
    say(f"  the last second of the stream: {len(last_second)} of {RATE} packets arrived"
        " in cloud B")
    forwarded = [path for path in stream_paths(frames, ROLES, STREAM_PORT)
                 if (path.source, path.destination) == ("vm", "vm2")]
    if forwarded:
        tell(f"Packets that still reached cloud A after the move: {len(forwarded[0].packets)};"
             " its lispd sent them on to cloud B rather than drop them.")
    tell("(The other kind of move, a VM whose own address changes as it migrates, is measured"
         " by bench/convergence.py: its lispd re-registers at once and SMRs its peers.)")
    return {"reload_applied": applied, "sent": sent, "lost": lost, "gap_ms": gap_ms, "rate": RATE,
            "duration_ms": SECONDS * 1000,
            "last_second": {"sent": RATE, "arrived_in_cloud_b": len(last_second)}}


def changed_sections(before: str, after: str) -> list[str]:
    """The lines of the sections (blank-line separated) that a configuration
    lost ("- ") and gained ("+ ")."""
    old, new = before.split("\n\n"), after.split("\n\n")
    lines = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("delete", "replace"):
            lines += [f"- {line}" for section in old[i1:i2] for line in section.splitlines()
                      if line]
        if tag in ("insert", "replace"):
            lines += [f"+ {line}" for section in new[j1:j2] for line in section.splitlines()
                      if line]
    return lines


def deploy(clouds: Clouds) -> tuple[list[str], float]:
    """The service's EIDs added to vm2's configuration file, and `lispctl
    reload` run there, as an operator would: the lines the daemon applied,
    and when the reload was asked for (time.time(), the capture's clock)."""
    daemon = clouds.daemons["vm2"]
    before = daemon.config
    clouds.deploy_on_vm2()
    say(f"  {daemon.config_path.name} gains:")
    say(indent("\n".join(changed_sections(before, daemon.config))))
    command = ["ip", "netns", "exec", daemon.namespace, str(LISPCTL), "--socket",
               str(daemon.socket), "reload"]
    say(f"  # {shlex.join(command)}")
    asked_at = time.time()
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    answered_in = time.time() - asked_at
    if done.returncode != 0:
        raise RuntimeError(f"lispctl reload failed (exit status {done.returncode}):"
                           f" {done.stderr.strip() or done.stdout.strip()}")
    applied = done.stdout.strip().splitlines()
    say(indent("\n".join(applied)))
    say(f"  (lispctl answered {answered_in:.2f} s after it was run)")
    return applied, asked_at


def after(clouds: Clouds) -> None:
    step(5, "After the move: the on-premise gateway's map-cache")
    say(indent(show(clouds, "onprem", "map-cache")))
    tell(f"The service kept its addresses; only its RLOC changed, to {role(CLOUD_B)}.")


def segment(clouds: Clouds) -> int:
    step(6, "An L2 segment stretched across the clouds (VXLAN over LISP)")
    clouds.address_segment()
    a, b = SEGMENT_HOSTS["vm"], SEGMENT_HOSTS["vm2"]
    tell(f"Both VMs have a TAP device ({SEGMENT_DEVICE}) on VXLAN segment {SEGMENT_VNI}: vm"
         f" {a}, vm2 {b}, one subnet, one broadcast domain. lispd puts each Ethernet frame in"
         f" VXLAN addressed to the other VM's own EID ({VTEPS['vm']}, {VTEPS['vm2']}), and"
         " that, like any packet to an EID, in LISP.")
    answered = ping(clouds.lab, clouds.vm, b)
    say(f"  vm (cloud A) → {b} (vm2, cloud B): {answered} of {PINGS} pings answered"
        " (after an ARP broadcast, flooded over LISP)")
    say("  What vm's VTEP learnt (lispctl show vxlan):")
    say(indent(show(clouds, "vm", "vxlan")))
    return answered


def shut_down(clouds: Clouds) -> dict[str, int]:
    step(7, "Shutting down: cloud A's VM first, then the rest")
    codes = {"vm": clouds.daemons.pop("vm").stop()}
    tell("vm's lispd withdrew what it still registered (its own EID); the service's EIDs stay"
         " with cloud B. The mapping system now:")
    say(indent(show(clouds, "ms", "registrations")))
    return codes | clouds.stop()


def keep_instructions(clouds: Clouds, workdir: Path) -> None:
    step(7, "Leaving the topology up (--keep)")
    prefix = clouds.lab.prefix
    say("  Look around (as root):")
    for name, table in (("onprem", "map-cache"), ("ms", "registrations"), ("vm", "vxlan"),
                        ("vm2", "database")):
        daemon = clouds.daemons[name]
        say(f"    ip netns exec {daemon.namespace} {LISPCTL} --socket"
            f" {daemon.socket} show {table}")
    say(f"    ip netns exec {prefix}-host ping {SERVICE4}")
    say(f"    ip netns exec {prefix}-vm ping {SEGMENT_HOSTS['vm2']}")
    say(f"  Configs, logs and the capture (core.pcap, for Wireshark): {workdir}")
    say(f"  Remove it all: {LISPCTL.with_name('lispd')} demo --clean {prefix}")


# -- running it -------------------------------------------------------------------


def scenario(topology: Lab, workdir: Path, keep: bool) -> dict[str, Any]:
    """Steps 1 to 7: the figures measured."""
    clouds = build(topology, workdir)
    start(clouds)
    answered = reach(clouds)
    before = service_rlocs(clouds)
    result = migrate(clouds, workdir)
    after(clouds)
    result.update(pings=answered, map_cache_before=before, map_cache_after=service_rlocs(clouds),
                  cloud_a=CLOUD_A, cloud_b=CLOUD_B, segment_pings=segment(clouds))
    if keep:
        keep_instructions(clouds, workdir)
    else:
        result["exit_codes"] = shut_down(clouds)
    return result


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt (with the signal's number)
    inside; outside, they are ignored, so that cleaning up is not cut short."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        yield
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def missing() -> str | None:
    """Why the demo cannot run here, if it cannot."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces (sudo make demo)"
    for program, package in (("ip", "iproute2"), ("tcpdump", "tcpdump"), ("ping", "iputils-ping")):
        if shutil.which(program) is None:
            return f"needs `{program}` (Debian package {package}; `make deps` installs it)"
    return None


def demo(keep: bool, which: str = "clouds") -> int:
    began = time.monotonic()
    topology = Lab()
    workdir = workdir_of(topology.prefix)
    result: dict[str, Any] | None = None
    status = 1
    try:
        with interruptible():
            workdir.mkdir(mode=0o700)
            say(f"lispd demo: each node is a network namespace named {topology.prefix}-NODE, "
                + ("left up at the end (--keep)." if keep else
                   "deleted at the end (even on Ctrl-C)."))
            if which == "paper":
                # Imported here: it builds on this module's narration.
                from lispd import paper_demo  # noqa: PLC0415
                result = paper_demo.scenario(topology, workdir, keep)
            else:
                result = scenario(topology, workdir, keep)
        status = 0
    except KeyboardInterrupt as stop:
        signum = stop.args[0] if stop.args else signal.SIGINT
        say(f"\ninterrupted ({signal.Signals(signum).name}): cleaning up")
        status = 128 + signum
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        say(f"\nthe demo failed: {error}")
    finally:
        if status != 0 or not keep:
            gone = remove(topology.prefix)
            say(f"deleted {len(gone)} namespaces ({topology.prefix}-*) and {workdir}")
    if result is None:
        return status
    result.update(prefix=topology.prefix, kept=keep,
                  runtime_s=round(time.monotonic() - began, 1))
    say(f"\ndone in {result['runtime_s']:g} s")
    say("RESULT " + json.dumps(result))
    return 0


def clean(prefix: str) -> int:
    if os.geteuid() != 0:
        print("lispd demo: needs root to delete network namespaces", file=sys.stderr)
        return 2
    if not PREFIX.fullmatch(prefix):
        print(f"lispd demo: {prefix!r} is not a demo's prefix (lt and 8 hex digits)",
              file=sys.stderr)
        return 2
    gone = remove(prefix)
    say(f"deleted {len(gone)} namespaces ({prefix}-*) and {workdir_of(prefix)}")
    return 0


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lispd demo",
        description="Build a small LISP overlay in network namespaces on this machine (a"
        " mapping system, an on-premise site, two clouds), move a service from one cloud to"
        " the other while a client talks to it, show what happened, and clean up. Needs root;"
        " takes about 10 seconds.",
        epilog="The last line of a run is RESULT {json}: the measured figures, for machines.")
    parser.add_argument("--keep", action="store_true",
                        help="leave the topology up, and say how to look at it and remove it")
    parser.add_argument("--scenario", choices=("clouds", "paper"), default="clouds",
                        help="clouds (the default): a service moves between two clouds; "
                        "paper: the paper's topology, a router per cloud with VMs on VXLAN "
                        "segments, a proxy xTR, and a VM moved from a segment of one cloud to "
                        "one of the other")
    parser.add_argument("--clean", metavar="PREFIX",
                        help="remove what `lispd demo --keep` left up (its namespaces PREFIX-*)")
    options = parser.parse_args(args)
    if options.clean is not None:
        return clean(options.clean)
    problem = missing()
    if problem is not None:
        print(f"lispd demo: {problem}", file=sys.stderr)
        return 2
    return demo(options.keep, options.scenario)
