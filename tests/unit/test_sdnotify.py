"""The systemd notify protocol against a real AF_UNIX datagram socket standing
in for systemd: the exact bytes of each message, paths and abstract names,
the watchdog settings, one-line STATUS texts, and sends that fail."""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lispd.sdnotify import STATUS_LIMIT, Notifier, one_line


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: a bound AF_UNIX datagram socket
    (a path, or an abstract name given as "@name") that collects messages."""

    def __init__(self, address: Path | str) -> None:
        self.env_value = str(address)
        bind_to = "\0" + self.env_value[1:] if self.env_value.startswith("@") else self.env_value
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.messages: list[str] = []

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.env_value}

    def receive(self, timeout: float = 5.0) -> str | None:
        """The next message, or None if none came within timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            message = self.sock.recv(4096).decode()
        except TimeoutError:
            return None
        self.messages.append(message)
        return message

    def wait_for(self, wanted: Callable[[dict[str, str]], bool],
                 timeout: float) -> dict[str, str] | None:
        """Receive until a message whose fields satisfy wanted; None if none
        came within timeout seconds. Every message received is kept."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is None:
                return None
            if wanted(fields(message)):
                return fields(message)
        return None

    def close(self) -> None:
        self.sock.close()
        if not self.env_value.startswith("@"):
            Path(self.env_value).unlink(missing_ok=True)


def fields(message: str) -> dict[str, str]:
    """A notify message's KEY=value lines as a dict."""
    return dict(line.split("=", 1) for line in message.split("\n"))


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


@pytest.fixture
def notifier(systemd: FakeSystemd) -> Iterator[Notifier]:
    made = Notifier.from_environment(systemd.env)
    yield made
    made.close()


def test_each_message_is_sent_as_sd_notify_spells_it(systemd: FakeSystemd,
                                                     notifier: Notifier) -> None:
    assert notifier.enabled
    assert notifier.address == systemd.env_value
    notifier.ready("up: 2 TUNs")
    assert systemd.receive() == "READY=1\nSTATUS=up: 2 TUNs"
    notifier.status("3 map-cache entries")
    assert systemd.receive() == "STATUS=3 map-cache entries"
    notifier.stopping("stopping")
    assert systemd.receive() == "STOPPING=1\nSTATUS=stopping"
    notifier.watchdog()
    assert systemd.receive() == "WATCHDOG=1"
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading("reloading /etc/lispd/lispd.toml")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    message = systemd.receive()
    assert message is not None
    match = re.fullmatch(r"RELOADING=1\nSTATUS=reloading /etc/lispd/lispd.toml\n"
                         r"MONOTONIC_USEC=(\d+)", message)
    assert match, message
    # The clock systemd compares it with is CLOCK_MONOTONIC, in microseconds.
    assert before <= int(match.group(1)) <= after
    assert notifier.counters == {"sent": 5, "send_failed": 0}


def test_abstract_socket() -> None:
    fake = FakeSystemd(f"@lispd-test-{uuid.uuid4().hex}")
    notifier = Notifier.from_environment(fake.env)
    try:
        notifier.ready("up")
        assert fake.receive() == "READY=1\nSTATUS=up"
    finally:
        notifier.close()
        fake.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.address is None
    # Nobody to ping: no watchdog either.
    assert notifier.watchdog_interval is None
    notifier.ready("up")
    notifier.reloading("reloading")
    notifier.status("status")
    notifier.watchdog()
    notifier.stopping("stopping")
    notifier.close()
    assert notifier.counters == {"sent": 0, "send_failed": 0}


@pytest.mark.parametrize("value", ["", "relative/notify.sock", "@", "vsock:2:1234"])
def test_a_notify_socket_of_no_form_we_speak_disables(value: str) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": value})
    assert not notifier.enabled
    notifier.ready("up")
    assert notifier.counters == {"sent": 0, "send_failed": 0}


def test_the_environment_is_read_not_changed(systemd: FakeSystemd) -> None:
    environ = {**systemd.env, "WATCHDOG_USEC": "1000000"}
    copy = dict(environ)
    Notifier.from_environment(environ).close()
    assert environ == copy


@pytest.mark.parametrize(
    ("watchdog", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"}, 1.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_when_meant_for_us(
        systemd: FakeSystemd, watchdog: dict[str, str], interval: float | None) -> None:
    notifier = Notifier.from_environment({**systemd.env, **watchdog}, pid=4242)
    assert notifier.watchdog_interval == interval
    notifier.close()


def test_watchdog_pid_defaults_to_this_process(systemd: FakeSystemd) -> None:
    environ = {**systemd.env, "WATCHDOG_USEC": "4000000"}
    mine = Notifier.from_environment({**environ, "WATCHDOG_PID": str(os.getpid())})
    other = Notifier.from_environment({**environ, "WATCHDOG_PID": str(os.getpid() + 1)})
    assert (mine.watchdog_interval, other.watchdog_interval) == (2.0, None)
    mine.close()
    other.close()


def test_a_failed_send_is_counted_not_raised_and_sending_resumes(
        tmp_path: Path, systemd: FakeSystemd, notifier: Notifier) -> None:
    systemd.close()
    notifier.ready("up")
    notifier.watchdog()
    assert notifier.counters == {"sent": 0, "send_failed": 2}
    # systemd re-executed: a new socket at the same path is reached again.
    again = FakeSystemd(tmp_path / "notify.sock")
    try:
        notifier.watchdog()
        assert again.receive() == "WATCHDOG=1"
        assert notifier.counters == {"sent": 1, "send_failed": 2}
    finally:
        again.close()


def test_a_full_receiver_does_not_block_the_sender(systemd: FakeSystemd,
                                                   notifier: Notifier) -> None:
    # Nobody reads: the socket's queue fills and, being non-blocking, the
    # sends that do not fit fail at once instead of waiting.
    attempts = 5000
    for _ in range(attempts):
        notifier.watchdog()
    counters = notifier.counters
    assert counters["send_failed"] > 0
    assert counters["sent"] + counters["send_failed"] == attempts
    assert systemd.receive() == "WATCHDOG=1"


def test_status_is_one_bounded_line(systemd: FakeSystemd, notifier: Notifier) -> None:
    notifier.status("devices up\nREADY=1\r\n\tregistered\x00 ok")
    assert systemd.receive() == "STATUS=devices up READY=1 registered ok"
    notifier.ready("x" * 1000)
    message = systemd.receive()
    assert message is not None
    status = fields(message)["STATUS"]
    assert len(status) == STATUS_LIMIT
    assert status.endswith("…")


def test_one_line_keeps_ordinary_text_as_it_is() -> None:
    assert one_line("ready: 2 TUNs, registered with 198.18.1.2") == (
        "ready: 2 TUNs, registered with 198.18.1.2")
    assert one_line("é ✓") == "é ✓"
    assert one_line("x" * STATUS_LIMIT) == "x" * STATUS_LIMIT


def test_close_stops_sending(systemd: FakeSystemd, notifier: Notifier) -> None:
    notifier.close()
    notifier.close()
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    notifier.ready("up")
    assert systemd.receive(timeout=0.2) is None
    assert notifier.counters == {"sent": 0, "send_failed": 0}
