"""lispd under a stand-in for systemd: a real daemon in a lab namespace with
NOTIFY_SOCKET naming a datagram socket this test bound (the namespace shares
the file system), and the notifications that arrive there.

READY=1 waits for the devices and, with map-servers configured, for the
first acknowledged registration (or the ready-timeout, which STATUS then
owns up to); WATCHDOG=1 keeps coming while the loop turns; SIGHUP is framed
by RELOADING=1 and READY=1; SIGTERM says STOPPING=1.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lispd.lab import Lab, Lispd, lab, map_server_config
from tests.needs import require_netns
from tests.unit.test_sdnotify import FakeSystemd

pytestmark = pytest.mark.netns

MS, XTR = "198.18.1.2", "198.18.1.10"
KEY = "tenant-s3cret"
EID = "192.0.2.100"
WAIT = 20.0
"""Seconds any one notification may take to come before the test gives up."""

MS_CONFIG = map_server_config(MS, KEY)

DATABASE = f"""
[[xtr.database-mapping]]
eid-prefix = "{EID}/32"
assign = true
"""

XTR_CONFIG = f"""
[underlay]
rlocs = ["{XTR}"]

[xtr]
eid-space = ["192.0.2.0/24"]

[[xtr.map-server]]
address = "{MS}"
key = "{KEY}"
{DATABASE}"""

STATIC_XTR_CONFIG = f"""
[underlay]
rlocs = ["{XTR}"]

[xtr]
eid-space = ["192.0.2.0/24"]
{DATABASE}
[[xtr.static-mapping]]
eid-prefix = "192.0.2.20/32"
rlocs = [{{ address = "{MS}" }}]
"""


@pytest.fixture
def topology() -> Iterator[Lab]:
    require_netns()
    with lab() as made:
        yield made


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


def underlay(topology: Lab) -> tuple[str, str]:
    """Two namespaces on one underlay network: (map-server's, xTR's)."""
    ms, xtr = topology.add("ms"), topology.add("xtr")
    topology.link(ms, "ul0", xtr, "ul0")
    topology.ns(ms, "ip", "addr", "add", f"{MS}/24", "dev", "ul0")
    topology.ns(xtr, "ip", "addr", "add", f"{XTR}/24", "dev", "ul0")
    return ms, xtr


def notified_lispd(topology: Lab, namespace: str, config: str, workdir: Path,
                   systemd: FakeSystemd, *, ready_timeout: float | None = None) -> Lispd:
    """A lispd whose NOTIFY_SOCKET is the fake systemd's, with a 2 s watchdog."""
    extra = "" if ready_timeout is None else f"ready-timeout = {ready_timeout}"
    return topology.lispd(namespace, config, workdir, "xtr", daemon=extra,
                          env={**systemd.env, "WATCHDOG_USEC": "2000000"})


def registered(ms: Lispd) -> set[str]:
    rows: list[dict[str, Any]] = ms.request("show", "registrations")
    return {row["prefix"] for row in rows}


def ready(systemd: FakeSystemd) -> dict[str, str]:
    message = systemd.wait_for(lambda f: f.get("READY") == "1", WAIT)
    assert message is not None, systemd.messages
    return message


def test_ready_once_registered_then_watchdog_reload_and_stop(
        topology: Lab, tmp_path: Path, systemd: FakeSystemd) -> None:
    ms_ns, xtr_ns = underlay(topology)
    ms = topology.lispd(ms_ns, MS_CONFIG, tmp_path, "ms")
    xtr = notified_lispd(topology, xtr_ns, XTR_CONFIG, tmp_path, systemd)

    message = ready(systemd)
    # READY=1 came after the Map-Notify, so the map-server holds the
    # registration already.
    assert f"[0]{EID}/32" in registered(ms)
    status = message["STATUS"].lower()
    assert "regist" in status and "not acknowledged" not in status, message

    # The loop turns: pings keep coming (every second with a 2 s watchdog).
    for _ in range(3):
        assert systemd.wait_for(lambda f: f.get("WATCHDOG") == "1", WAIT), systemd.messages

    assert xtr.process is not None
    xtr.process.send_signal(signal.SIGHUP)
    reloading = systemd.wait_for(lambda f: f.get("RELOADING") == "1", WAIT)
    assert reloading is not None, systemd.messages
    assert reloading["STATUS"] and int(reloading["MONOTONIC_USEC"]) > 0
    ready(systemd)

    assert xtr.stop() == 0, xtr.log()
    stopping = systemd.wait_for(lambda f: f.get("STOPPING") == "1", WAIT)
    assert stopping is not None, systemd.messages
    assert stopping["STATUS"]
    assert ms.stop() == 0, ms.log()


def test_ready_after_the_timeout_when_no_registration_is_acknowledged(
        topology: Lab, tmp_path: Path, systemd: FakeSystemd) -> None:
    # The map-server's address answers, but no map-server runs there.
    _, xtr_ns = underlay(topology)
    xtr = notified_lispd(topology, xtr_ns, XTR_CONFIG, tmp_path, systemd, ready_timeout=2)

    message = ready(systemd)
    assert "not acknowledged" in message["STATUS"].lower(), message
    assert xtr.stop() == 0, xtr.log()


def test_ready_without_map_servers_once_the_devices_are_up(
        topology: Lab, tmp_path: Path, systemd: FakeSystemd) -> None:
    _, xtr_ns = underlay(topology)
    xtr = notified_lispd(topology, xtr_ns, STATIC_XTR_CONFIG, tmp_path, systemd)

    message = ready(systemd)
    assert message["STATUS"], message
    # The TUN it announced ready with is there.
    assert "lisp0" in topology.ns(xtr_ns, "ip", "-br", "link").stdout
    assert xtr.stop() == 0, xtr.log()
