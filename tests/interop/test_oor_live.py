"""Live interop: OpenOverlayRouter's map-server and xTRs register, resolve
and forward; every datagram they exchange must decode, re-encode byte-exact
and (for Map-Register/Map-Notify) verify with the shared key.

Set LISPD_SAVE_OOR_CAPTURE=path to keep the capture (that is how
tests/vectors/oor-1.3.0-lab.pcap was made).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lispd.lab import lab
from tests.interop import oor
from tests.needs import require_netns, require_program
from tests.vectors.captures import check_capture

pytestmark = [pytest.mark.interop, pytest.mark.netns]

REGISTRATION_WAIT = 8.0


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_openoverlayrouter_exchange_round_trips(tmp_path: Path) -> None:
    require_program("oor", "openoverlayrouter")
    require_program("tcpdump", "tcpdump")
    require_program("ping", "iputils-ping")
    pcap = tmp_path / "oor.pcap"
    require_netns()
    with lab() as topology:
        roles = oor.build(topology, tmp_path)
        tcpdump = oor.capture(topology, roles["hub"], pcap)
        try:
            # OOR registers at start-up; wait until both registrations were
            # acknowledged (Map-Notify seen) before resolving.
            def notified() -> bool:
                try:
                    return check_capture(pcap, oor.KEY.encode())["MapNotify"] >= 2
                except Exception:  # the file is still being written: look again
                    return False

            assert _wait_for(notified, REGISTRATION_WAIT), "OOR xTRs did not register"
            _, _, source = oor.XTRS["x1"]
            _, _, target = oor.XTRS["x2"]
            ping = topology.ns(
                roles["x1"], "ping", "-c", "6", "-i", "0.3", "-W", "1", "-I", source, target,
                check=False,
            )
            time.sleep(0.5)
        finally:
            tcpdump.terminate()
            tcpdump.wait(timeout=10)
    assert " 0 received" not in ping.stdout, ping.stdout
    seen = check_capture(pcap, oor.KEY.encode())
    for kind in ("MapRegister", "MapNotify", "ECM/MapRequest", "MapReply", "data"):
        assert seen[kind] > 0, f"no {kind} in the OOR exchange: {dict(seen)}"
    if target_path := os.environ.get("LISPD_SAVE_OOR_CAPTURE"):
        shutil.copy(pcap, target_path)
