"""Convergence after a move: how long the traffic to a moved service stops,
and how many packets are lost, in the four-site scenario of lispd.clouds.

Two moves (tests/netns/test_mobility.py asserts they converge; this measures):

    vm        the VM moves to another cloud: its RLOC changes under lispd
    service   the service is redeployed on another VM (the new xTR registers
              the EID, the map-server tells the old one)

each with four ways for the client's ITR to learn of it:

    pubsub+smr   RFC 9437 Map-Notify from the map-server, and SMR from the ETR
    smr          SMR only (the ITR re-resolves through the map-resolver)
    pubsub       Map-Notify only
    neither      nothing but the entry's TTL: the stream never recovers, every
                 packet after the move is lost (shown for scale)

A client on-premise sends a numbered UDP stream (RATE packets/s for SECONDS)
to the service; the move happens MOVE_AT seconds in. The loss is what
never arrived (at either VM, for a redeployment). The gap is counted on the
stream's clock: the longest run of consecutive packets nobody received,
times the send interval. Median and worst over --runs runs; every run goes to
bench/results/convergence-<UTC>.json. Needs root; everything happens in
namespaces made (and deleted) by lispd.lab.

    python bench/convergence.py [--runs N] [--rate PPS] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lispd.clouds import SERVICE4, Clouds, Options
from lispd.lab import lab
from lispd.stream import Arrivals, outage

RESULTS = Path(__file__).resolve().parent / "results"
WAYS = {
    "pubsub+smr": Options(),
    "smr": Options(subscribe=False),
    "pubsub": Options(smr=False),
    "neither": Options(subscribe=False, smr=False),
}
MOVE_AT = 1.5


@dataclass(frozen=True)
class Run:
    move: str
    way: str
    sent: int
    lost: int
    gap_ms: float


def registered(clouds: Clouds) -> bool:
    rows: list[dict[str, Any]] = clouds.daemons["ms"].request("show", "registrations")
    return any(row["prefix"] == f"[0]{SERVICE4}/32" for row in rows)


def one_run(move: str, way: str, rate: int, seconds: float) -> Run:
    count = int(rate * seconds)
    with lab() as topology, tempfile.TemporaryDirectory() as workdir:
        clouds = Clouds(topology, Path(workdir), WAYS[way])
        clouds.start()
        deadline = time.monotonic() + 10
        while not registered(clouds):
            if time.monotonic() > deadline:
                raise RuntimeError("the service never registered")
            time.sleep(0.1)
        topology.ns(clouds.host, "ping", "-c", "2", "-i", "0.2", "-W", "2", SERVICE4)
        receivers = [clouds.receiver(clouds.vm, seconds + 3)]
        if move == "service":
            receivers.append(clouds.receiver(clouds.vm2, seconds + 3))
        sender = clouds.sender(rate, count)
        time.sleep(MOVE_AT)
        if move == "vm":
            clouds.move_vm()
        else:
            clouds.redeploy()
        sent = clouds.sent(sender)
        arrivals: list[Arrivals] = [clouds.arrivals(r) for r in receivers]
        clouds.stop()
    received = set().union(*(a.sequence_numbers for a in arrivals)) & set(range(sent))
    return Run(move, way, sent, sent - len(received), round(outage(arrivals, sent, rate) * 1000, 1))


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM as Ctrl-C, so lab() deletes the namespaces on the way out.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    runs: list[Run] = []
    for number in range(args.runs):
        for move in ("vm", "service"):
            for way in WAYS:
                run = one_run(move, way, args.rate, args.seconds)
                runs.append(run)
                print(f"run {number + 1}: {move:7} {way:10} gap {run.gap_ms:8.1f} ms  "
                      f"lost {run.lost}", file=sys.stderr, flush=True)
    print(f"\n{'move':8} {'way':11} {'gap ms median':>14} {'worst':>8} "
          f"{'lost median':>12} {'worst':>6}")
    for move in ("vm", "service"):
        for way in WAYS:
            mine = [r for r in runs if r.move == move and r.way == way]
            gap = [r.gap_ms for r in mine]
            lost = [r.lost for r in mine]
            print(f"{move:8} {way:11} {statistics.median(gap):14.1f} {max(gap):8.1f} "
                  f"{statistics.median(lost):12.0f} {max(lost):6d}")
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"convergence-{stamp}.json"
    out.write_text(json.dumps({
        "machine": platform.uname()._asdict(),
        "rate": args.rate, "seconds": args.seconds, "move_at": MOVE_AT,
        "runs": [asdict(r) for r in runs],
    }, indent=2))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
