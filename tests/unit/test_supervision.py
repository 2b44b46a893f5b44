"""What systemd hears (lispd.supervision), with a real notify socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lispd.sdnotify import Notifier
from lispd.supervision import Supervision
from tests.unit.test_sdnotify import FakeSystemd, fields


@pytest.mark.asyncio
async def test_nothing_but_the_truth_before_ready_and_after_stopping(tmp_path: Path) -> None:
    systemd = FakeSystemd(tmp_path / "notify")
    registered = False
    supervision = Supervision(
        asyncio.get_running_loop(), Notifier(systemd.env_value), status=lambda: "a node",
        registered=lambda: registered, ready_timeout=30.0,
    )
    supervision.start()
    # A reload while start-up still waits for the map-server says nothing.
    supervision.reloading("/etc/lispd/lispd.toml")
    supervision.reloaded()
    await asyncio.sleep(0.2)
    assert systemd.receive(0.1) is None
    registered = True
    await asyncio.sleep(0.2)  # the loop runs the wait, which now ends
    ready = systemd.wait_for(lambda f: f.get("READY") == "1", 5.0)
    assert ready == {"READY": "1", "STATUS": "a node"}
    supervision.reloading("/etc/lispd/lispd.toml")
    supervision.reloaded()
    assert fields(systemd.receive() or "")["RELOADING"] == "1"
    assert fields(systemd.receive() or "")["READY"] == "1"
    # A reload that ends after the stop began must not say READY again.
    supervision.stopping()
    assert fields(systemd.receive() or "")["STOPPING"] == "1"
    supervision.reloaded()
    assert systemd.receive(0.1) is None
    supervision.close()
    systemd.close()
