"""TUN (layer 3) and TAP (layer 2) devices, opened with the TUNSETIFF ioctl.

A device lives exactly as long as lispd's file descriptor: we never set
TUNSETPERSIST, so however lispd ends (SIGTERM, crash, kill -9) the kernel
deletes the device and, with it, every address and route on it. For the same
reason we ask for IFF_TUN_EXCL: a device of that name that already exists is
someone else's (another daemon, or a persistent device an operator made), and
attaching to it would leave it behind with our configuration on it.

Only the stdlib is used (fcntl, os, struct); see linux/if_tun.h and
Documentation/networking/tuntap.rst for the interface.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from typing import Literal

Kind = Literal["tun", "tap"]

TUN_PATH = "/dev/net/tun"

# linux/if_tun.h. TUNSETIFF is _IOW('T', 202, int); TUNSETOFFLOAD
# _IOW('T', 208, unsigned int); TUNSETVNETHDRSZ _IOW('T', 216, int);
# TUNSETVNETLE _IOW('T', 220, int).
TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
TUNSETVNETLE = 0x400454DC
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_USO4 = 0x20
TUN_F_USO6 = 0x40
VNET_HDR_LEN = 10  # struct virtio_net_hdr, without the num_buffers of _mrg_rxbuf
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_TUN_EXCL = 0x8000

# linux/if.h: IFNAMSIZ counts the terminating NUL, so 15 usable bytes.
IFNAMSIZ = 16
# struct ifreq is 40 bytes on 64-bit Linux: the name, then a union whose
# first member (for TUNSETIFF) is the short ifr_flags.
_IFREQ = struct.Struct(f"{IFNAMSIZ}sH22x")


class DeviceError(OSError):
    """A TUN/TAP device could not be opened; the message names the device."""


@dataclass(frozen=True)
class Device:
    """An open TUN or TAP device: the fd lispd reads and writes frames on.

    `name` is the name the kernel gave (the same as asked for, unless the
    request was a template such as "lisp%d"). `vnet_hdr` says whether every
    frame on the fd carries a struct virtio_net_hdr in front.
    """

    fd: int
    name: str
    kind: Kind
    vnet_hdr: bool = False


def open_tun(name: str, *, vnet_hdr: bool = False) -> Device:
    """Open a new layer-3 TUN device: IP packets, no packet-info prefix.

    `vnet_hdr`: as for open_tap.
    """
    return _open(name, "tun", vnet_hdr)


def open_tap(name: str, *, vnet_hdr: bool = False) -> Device:
    """Open a new layer-2 TAP device: Ethernet frames, no packet-info prefix.

    `vnet_hdr` (on either kind) sets IFF_VNET_HDR, the prefix through which
    the kernel hands over and accepts offloaded super-packets (DESIGN.md,
    principle 4); `enable_offloads` then asks for them.
    """
    return _open(name, "tap", vnet_hdr)


def enable_offloads(device: Device) -> tuple[str, ...]:
    """Ask the kernel to hand `device` (opened with vnet_hdr) TCP and, where
    it has them, UDP super-packets with partial checksums: the offloads it
    took, by name ("tso4", "tso6", "uso4", "uso6"). A kernel without UDP
    segmentation offload (before 6.2) refuses USO with EINVAL; then TSO
    alone. DeviceError when it refuses even that: the device still works,
    packet by packet, with empty virtio-net headers."""
    if not device.vnet_hdr:
        raise DeviceError(errno.EINVAL, f"{device.kind} device {device.name!r}: no IFF_VNET_HDR")
    try:
        fcntl.ioctl(device.fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
        # Little-endian headers on every host (the C reads them so).
        fcntl.ioctl(device.fd, TUNSETVNETLE, struct.pack("i", 1))
    except OSError as error:
        raise _error(device.kind, device.name, error, opening=False) from error
    tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
    last: OSError | None = None
    for flags, names in ((tcp | TUN_F_USO4 | TUN_F_USO6, ("tso4", "tso6", "uso4", "uso6")),
                         (tcp, ("tso4", "tso6"))):
        try:
            fcntl.ioctl(device.fd, TUNSETOFFLOAD, flags)
        except OSError as error:
            last = error
            continue
        return names
    assert last is not None
    raise _error(device.kind, device.name, last, opening=False) from last


def close(device: Device) -> None:
    """Close the fd, which deletes the device (it is not persistent)."""
    os.close(device.fd)


def _open(name: str, kind: Kind, vnet_hdr: bool) -> Device:
    encoded = name.encode()
    if not encoded:
        raise DeviceError(errno.EINVAL, f"{kind} device: empty name")
    if len(encoded) >= IFNAMSIZ:
        # struct.pack would silently cut the name; the kernel would then
        # make a device nobody asked for.
        raise DeviceError(
            errno.ENAMETOOLONG,
            f"{kind} device {name!r}: name is {len(encoded)} bytes, at most {IFNAMSIZ - 1}",
        )
    flags = (IFF_TUN if kind == "tun" else IFF_TAP) | IFF_NO_PI | IFF_TUN_EXCL
    if vnet_hdr:
        flags |= IFF_VNET_HDR
    try:
        fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise _error(kind, name, error, opening=True) from error
    try:
        answer = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(encoded, flags))
    except OSError as error:
        os.close(fd)
        raise _error(kind, name, error, opening=False) from error
    given = _IFREQ.unpack(answer)[0].rstrip(b"\0").decode()
    return Device(fd=fd, name=given, kind=kind, vnet_hdr=vnet_hdr)


def _error(kind: Kind, name: str, error: OSError, *, opening: bool) -> DeviceError:
    code = error.errno or errno.EIO
    if opening and code == errno.ENOENT:
        reason = f"no {TUN_PATH} (tun module not loaded, or not in this container)"
    elif code in (errno.EPERM, errno.EACCES):
        reason = "permission denied: needs CAP_NET_ADMIN"
    elif code == errno.EBUSY:
        reason = "a device of that name already exists"
    elif code == errno.EINVAL and not opening:
        reason = "invalid name or flags"
    else:
        reason = os.strerror(code)
    return DeviceError(code, f"{kind} device {name!r}: {reason}")
