"""`lispd demo`, as a newcomer runs it: the whole run, its figures checked
for sanity (never for speed), the move made by `lispctl reload` on the VM
that ran empty from the start; Ctrl-C and SIGTERM part-way leave nothing
behind; --keep leaves the topology up for lispctl, and --clean removes it."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
from typing import Any

import pytest

from lispd.demo import remove, workdir_of
from lispd.lab import run
from tests.needs import require_netns, require_program
from tests.traffic import ROOT, read_line

pytestmark = pytest.mark.netns

DEMO = [sys.executable, "-m", "lispd", "demo"]
TIMEOUT = 120  # the demo takes ~10 s; this only bounds a hung one
PREFIX = re.compile(r"namespace named (lt[0-9a-f]{8})-NODE")


@pytest.fixture(autouse=True)
def _machine() -> None:
    require_netns()
    require_program("tcpdump", "tcpdump")
    require_program("ping", "iputils-ping")


def namespaces(prefix: str) -> list[str]:
    listed = run("ip", "netns", "list").stdout.splitlines()
    return [line.split()[0] for line in listed if line.startswith(f"{prefix}-")]


def demo(*args: str) -> tuple[str, str]:
    """A whole run: (its output, its prefix); namespaces of a failed one removed."""
    done = subprocess.run([*DEMO, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    found = PREFIX.search(done.stdout)
    assert found, done.stdout + done.stderr
    if done.returncode != 0:
        remove(found.group(1))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, found.group(1)


def section(output: str, number: int) -> str:
    """What step `number` printed."""
    return output.split(f"[{number}/7]", 1)[1].split(f"[{number + 1}/7]", 1)[0]


def result(output: str) -> dict[str, Any]:
    (line,) = [line for line in output.splitlines() if line.startswith("RESULT ")]
    parsed: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return parsed


def test_demo_moves_the_service_and_cleans_up() -> None:
    output, prefix = demo()
    figures = result(output)
    for number in range(1, 8):
        assert f"[{number}/7]" in output
    # The figures are measured, so only their sanity is checked.
    assert figures["sent"] == figures["rate"] * figures["duration_ms"] / 1000
    assert 0 <= figures["lost"] <= figures["sent"]
    assert 0 <= figures["gap_ms"] < figures["duration_ms"]
    printed = re.search(r"gap in the client's traffic: ([\d.]+) ms; lost: (\d+) of (\d+)", output)
    assert printed, output
    assert (float(printed[1]), int(printed[2]), int(printed[3])) == (
        figures["gap_ms"], figures["lost"], figures["sent"])
    # The stream resumed at the new place: its last second arrived in cloud B.
    last = figures["last_second"]
    assert last["arrived_in_cloud_b"] >= 0.99 * last["sent"], figures
    assert figures["map_cache_before"] == [figures["cloud_a"]]
    assert figures["map_cache_after"] == [figures["cloud_b"]]
    assert figures["pings"] == {"192.0.2.100": 3, "2001:db8::100": 3}
    assert figures["segment_pings"] == 3
    # vm2 ran lispd from step 2 on, as an empty VM: its own EID only.
    started = section(output, 2)
    assert re.search(r"^  vm2 +lispd run --config \S+/vm2\.toml$", started, re.M), started
    assert re.search(r"\[0\]192\.0\.2\.102/32 +tenant +198\.18\.5\.10 ", started), started
    assert not re.search(r"\[0\]192\.0\.2\.100/32 +tenant +198\.18\.5\.10 ", started), started
    # The move was `lispctl reload` there, the operator's tool, and its answer.
    moved = section(output, 4)
    assert re.search(rf"^  # ip netns exec {prefix}-vm2 \S+/lispctl --socket \S+/vm2\.sock"
                     r" reload$", moved, re.M), moved
    applied = ["database-mapping added: [0]192.0.2.100/32",
               "database-mapping added: [0]2001:db8::100/128"]
    assert figures["reload_applied"] == applied, figures
    for line in applied:
        assert re.search(rf"^ +{re.escape(line)}$", moved, re.M), moved
    assert "t = 0: `lispctl reload` was run on vm2" in moved, moved
    assert set(figures["exit_codes"].values()) == {0}, figures
    # The timeline was decoded from the capture: the new place registered,
    # the mapping system told the old one.
    assert re.search(r"Map-Register +vm2 → ms", output), output
    assert re.search(r"Map-Notify +ms → vm ", output), output
    assert namespaces(prefix) == []
    assert not workdir_of(prefix).exists()


@pytest.mark.parametrize(("at", "signum"), [("[1/7]", signal.SIGINT), ("[4/7]", signal.SIGINT),
                                            ("[4/7]", signal.SIGTERM)])
def test_interrupted_demo_leaves_nothing(at: str, signum: signal.Signals) -> None:
    process = subprocess.Popen(DEMO, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    prefix = ""
    try:
        first = read_line(process)
        found = PREFIX.search(first)
        assert found, first
        prefix = found.group(1)
        while at not in read_line(process):
            pass
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 128 + signum, out.decode() + err.decode()
        assert b"interrupted" in out, out.decode()
        assert b"Traceback" not in err, err.decode()
        assert namespaces(prefix) == []
        assert not workdir_of(prefix).exists()
    finally:
        process.kill()
        process.wait()
        if prefix:
            remove(prefix)


def test_keep_leaves_it_up_for_lispctl_until_clean() -> None:
    output, prefix = demo("--keep")
    try:
        assert len(namespaces(prefix)) == 6
        assert result(output)["kept"] is True
        # The instructions' first command works as printed.
        (command,) = [line.strip() for line in output.splitlines()
                      if "show map-cache" in line and "lispctl" in line]
        shown = subprocess.run(shlex.split(command), capture_output=True, text=True,
                               timeout=30, check=False)
        assert shown.returncode == 0, shown.stderr
        assert "198.18.5.10" in shown.stdout, shown.stdout
        (clean,) = [line.split(": ", 1)[1] for line in output.splitlines()
                    if "demo --clean" in line]
        cleaned = subprocess.run(shlex.split(clean), capture_output=True, text=True,
                                 timeout=60, check=False)
        assert cleaned.returncode == 0, cleaned.stderr
        assert namespaces(prefix) == []
        assert not workdir_of(prefix).exists()
    finally:
        remove(prefix)


def test_clean_refuses_what_is_not_a_demo_prefix() -> None:
    done = subprocess.run([*DEMO, "--clean", "ltc"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2
    assert "not a demo's prefix" in done.stderr


def test_the_paper_scenario_reaches_everything_and_moves_the_vm() -> None:
    output, prefix = demo("--scenario", "paper")
    figures = result(output)
    for number in range(1, 6):
        assert f"[{number}/5]" in output
    assert set(figures["pings"].values()) == {3}, figures["pings"]
    host4, host6 = "[0]192.0.2.70/32", "[0]2001:db8:12::70/128"
    for prefix_ in (host4, host6):
        assert figures["registrations_before"][prefix_] == "198.18.4.2"  # r1, cloud 1
        assert figures["registrations_after"][prefix_] == "198.18.5.2"  # r2, cloud 2
    assert figures["converged"] and figures["late_packets"] == 0, figures
    # Measured, so only sane: some loss at most, never the whole stream.
    for stream in figures["streams"].values():
        assert 0 <= stream["lost"] < 2500 and 0 <= stream["outage_s"] < 5, figures["streams"]
    assert set(figures["exit_codes"].values()) == {0}, figures
    assert namespaces(prefix) == []
    assert not workdir_of(prefix).exists()
