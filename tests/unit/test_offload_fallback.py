"""Where the kernel refuses the device offloads, the device still works
packet by packet (empty virtio-net headers) and says so; where it takes
them, super-packets are capped so one leaves in one train. Real TUN/TAPs
in a private network namespace of a forked child."""

from __future__ import annotations

import errno
import json
import subprocess

import pytest

from lispd.dataplane import tuntap
from lispd.dataplane.plan import Plan, Tap, Tun
from lispd.host import SUPER_PACKET_MAX, Host
from tests.unit.test_dataplane_batch import in_private_netns

pytestmark = pytest.mark.netns

PLAN = Plan((Tun("lisp0", 0, 1400),), (Tap("vxl100", 100, 1450),), (), (), (), False)


def gso_max_size(name: str) -> int:
    shown = subprocess.run(["ip", "-d", "-j", "link", "show", name], capture_output=True,
                           text=True, check=True).stdout
    size: int = json.loads(shown)[0]["gso_max_size"]
    return size


def test_devices_take_the_offloads_and_cap_their_super_packets() -> None:
    def body() -> None:
        host = Host(PLAN, offloads=True)
        host.bring_up()
        try:
            assert all(device.vnet_hdr for device in host.devices)
            # TSO always; USO where the kernel has it (6.2 on).
            for name in ("lisp0", "vxl100"):
                assert host.offloaded[name][:2] == ("tso4", "tso6"), host.offloaded
                assert gso_max_size(name) == SUPER_PACKET_MAX
        finally:
            host.tear_down()

    in_private_netns(body)


def test_a_refused_offload_leaves_a_working_device_without_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(device: tuntap.Device) -> tuple[str, ...]:
        raise tuntap.DeviceError(errno.EINVAL, f"tun device {device.name!r}: refused")

    def body() -> None:
        monkeypatch.setattr(tuntap, "enable_offloads", refuse)
        host = Host(PLAN, offloads=True)
        host.bring_up()
        try:
            assert host.offloaded == {"lisp0": (), "vxl100": ()}
            # No super-packets will come: the kernel's own GSO cap stays.
            assert gso_max_size("lisp0") != SUPER_PACKET_MAX
        finally:
            host.tear_down()

    in_private_netns(body)


def test_offloads_off_opens_plain_devices() -> None:
    def body() -> None:
        host = Host(PLAN, offloads=False)
        host.bring_up()
        try:
            assert not any(device.vnet_hdr for device in host.devices)
            assert host.offloaded == {}
        finally:
            host.tear_down()

    in_private_netns(body)


def test_offloads_need_the_virtio_net_header() -> None:
    with pytest.raises(tuntap.DeviceError, match="no IFF_VNET_HDR"):
        tuntap.enable_offloads(tuntap.Device(fd=-1, name="x", kind="tun"))
