"""Live interop: OpenOverlayRouter's map-server and xTRs register, resolve
and forward; every datagram they exchange must decode, re-encode byte-exact
and (for Map-Register/Map-Notify) verify with the shared key.

Set LISPD_SAVE_OOR_CAPTURE=path to keep the capture (that is how
tests/vectors/oor-1.3.0-lab.pcap was made).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lispd.lab import lab
from lispd.pcap import Capture
from tests.interop import oor
from tests.needs import require_netns, require_program
from tests.traffic import wait_for
from tests.vectors.captures import check_capture

pytestmark = [pytest.mark.interop, pytest.mark.netns]

REGISTRATION_WAIT = 8.0


def test_openoverlayrouter_exchange_round_trips(tmp_path: Path) -> None:
    require_program("oor", "openoverlayrouter")
    require_program("ethtool", "ethtool")
    require_program("tcpdump", "tcpdump")
    require_program("ping", "iputils-ping")
    require_program("stdbuf", "coreutils")
    pcap = tmp_path / "oor.pcap"
    require_netns()
    with lab() as topology:
        roles = oor.build(topology, tmp_path)
        tcpdump = Capture(topology, roles["hub"], "br0", oor.LISP_TRAFFIC, pcap=pcap, snaplen=0)
        try:
            # OOR registers at start-up; wait until both registrations were
            # acknowledged (Map-Notify seen) before resolving.
            def notified() -> bool:
                try:
                    return check_capture(pcap, oor.KEY.encode())["MapNotify"] >= 2
                except Exception:  # the file is still being written: look again
                    return False

            assert wait_for(notified, REGISTRATION_WAIT), "OOR xTRs did not register"
            _, _, source = oor.XTRS["x1"]
            _, _, target = oor.XTRS["x2"]
            ping = topology.ns(
                roles["x1"], "ping", "-c", "6", "-i", "0.3", "-W", "1", "-I", source, target,
                check=False,
            )
        finally:
            tcpdump.stop(settle=0.5)
    assert " 0 received" not in ping.stdout, ping.stdout
    seen = check_capture(pcap, oor.KEY.encode())
    for kind in ("MapRegister", "MapNotify", "ECM/MapRequest", "MapReply", "data"):
        assert seen[kind] > 0, f"no {kind} in the OOR exchange: {dict(seen)}"
    if target_path := os.environ.get("LISPD_SAVE_OOR_CAPTURE"):
        shutil.copy(pcap, target_path)
