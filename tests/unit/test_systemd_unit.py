"""systemd/lispd.service: the settings the operations issue asks for are there,
and `systemd-analyze verify` accepts the unit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lispd.config.model import DaemonConfig

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "lispd.service"
INSTALLED = "/usr/local/bin/lispd"


def settings(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> every value given, in order (systemd allows a key
    more than once)."""
    found: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault((section, key.strip()), []).append(value.strip())
    return found


@pytest.fixture(scope="module")
def unit() -> dict[tuple[str, str], list[str]]:
    return settings(UNIT.read_text())


def one(unit: dict[tuple[str, str], list[str]], key: str, section: str = "Service") -> str:
    values = unit.get((section, key), [])
    assert len(values) == 1, (key, values)
    return values[0]


def seconds(value: str) -> float:
    """A systemd time span of the "30s" form, the only one the unit uses."""
    assert value.endswith("s") and value[:-1].isdigit(), value
    return float(value[:-1])


def test_a_notify_service_with_watchdog_reload_and_restart(
        unit: dict[tuple[str, str], list[str]]) -> None:
    assert one(unit, "Type") == "notify"
    assert one(unit, "NotifyAccess") == "main"
    assert one(unit, "WatchdogSec") == "30s"
    assert one(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "Restart") == "on-failure"
    assert one(unit, "KillSignal") == "SIGTERM"
    for key in ("RestartSec", "TimeoutStopSec"):
        seconds(one(unit, key))
    # The file that is checked before the start is the one the daemon runs with.
    assert one(unit, "ExecStartPre") == f"{INSTALLED} check-config /etc/lispd/lispd.toml"
    assert one(unit, "ExecStart") == f"{INSTALLED} run --config /etc/lispd/lispd.toml"
    assert one(unit, "Wants", "Unit") == "network-online.target"
    assert one(unit, "After", "Unit") == "network-online.target"
    assert one(unit, "WantedBy", "Install") == "multi-user.target"


def test_only_the_network_capabilities(unit: dict[tuple[str, str], list[str]]) -> None:
    wanted = {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert set(one(unit, "CapabilityBoundingSet").split()) == wanted
    assert set(one(unit, "AmbientCapabilities").split()) == wanted
    assert one(unit, "NoNewPrivileges") == "yes"


def test_hardening_leaves_what_the_daemon_needs(unit: dict[tuple[str, str], list[str]]) -> None:
    # The TUN/TAP clone device stays reachable: no private /dev, one device allowed.
    assert ("Service", "PrivateDevices") not in unit
    assert one(unit, "DevicePolicy") == "closed"
    assert one(unit, "DeviceAllow") == "/dev/net/tun rw"
    # Net sysctls are written at start: /proc/sys must stay writable.
    assert ("Service", "ProtectKernelTunables") not in unit
    assert ("Service", "ProcSubset") not in unit
    # libffi closures need writable and executable memory.
    assert ("Service", "MemoryDenyWriteExecute") not in unit
    assert set(one(unit, "RestrictAddressFamilies").split()) == {
        "AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"}
    for key, value in [("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("ProtectKernelModules", "yes"),
                       ("ProtectControlGroups", "yes"), ("RestrictNamespaces", "yes"),
                       ("LockPersonality", "yes"), ("SystemCallArchitectures", "native")]:
        assert one(unit, key) == value, key


def test_the_start_timeout_leaves_room_for_the_ready_timeout(
        unit: dict[tuple[str, str], list[str]]) -> None:
    # A map-server that is down delays READY=1 by the ready-timeout; the start
    # must not be failed for it.
    assert seconds(one(unit, "TimeoutStartSec")) > 2 * DaemonConfig().ready_timeout


def test_the_default_control_socket_is_in_the_runtime_directory(
        unit: dict[tuple[str, str], list[str]]) -> None:
    directory = Path("/run") / one(unit, "RuntimeDirectory")
    assert DaemonConfig().control_socket.parent == directory
    assert one(unit, "RuntimeDirectoryMode") == "0750"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("needs `systemd-analyze` (Debian package systemd; `make test` installs it)")
    lispd = Path(sys.executable).parent / "lispd"
    if not lispd.exists():
        pytest.skip(f"needs the lispd entry point at {lispd} (`pip install -e .` makes it)")
    # verify checks that every Exec*= program exists: point them at this
    # checkout's lispd instead of the installed location.
    copy = tmp_path / "lispd.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED, str(lispd)))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                          timeout=60, check=False)
    output = done.stdout + done.stderr
    # Outside a systemd-booted machine (no systemd as PID 1) verify has printed
    # nothing at all for this unit; lines about other units (the targets it
    # names, say, on an odd machine) would not be this unit's problem, so only
    # lines naming it count.
    about_unit = [line for line in output.splitlines()
                  if "lispd.service" in line or str(copy) in line]
    assert done.returncode == 0, output
    assert not about_unit, output
