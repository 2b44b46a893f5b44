"""Segmentation and coalescing of TCP/UDP super-packets, in Python: the slow
reference the C offload path (issue 6) is checked against, as reference.py is
for the per-packet steps.

With IFF_VNET_HDR a TUN read is a virtio-net header and a packet of up to
64 KiB; the header says how the kernel wants it cut (GSO) and where a
checksum is still to be made (NEEDS_CSUM). `segment` does what the NIC would:
MTU-sized packets with their IP lengths and IDs, TCP sequence numbers and
flags, and every checksum made. `coalesce` goes the other way for what the
ETR writes to the TUN: consecutive segments of one TCP flow (and, where the
device took USO, datagrams of one UDP flow) become one super-packet with a
GSO header, so the kernel's stack sees few, large packets.

    virtio_net_hdr (10 octets, little-endian; TUNSETVNETLE makes the kernel
    use that byte order on every host):

     0        1        2                 4                 6
    +--------+--------+--------+--------+--------+--------+
    | flags  |gso_type|     hdr_len     |    gso_size     |
    +--------+--------+--------+--------+--------+--------+
    |   csum_start    |   csum_offset   |
    +--------+--------+--------+--------+
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lispd.wire.inet import csum_add, csum_fold

__all__ = [
    "GSO_NONE", "GSO_TCPV4", "GSO_TCPV6", "GSO_UDP_L4", "NEEDS_CSUM", "VNET_HDR_LEN",
    "GsoError", "VirtioNetHdr", "coalesce", "segment",
]

NEEDS_CSUM = 1
GSO_NONE, GSO_TCPV4, GSO_UDP_L4, GSO_TCPV6 = 0, 1, 5, 4
VNET_HDR_LEN = 10
MAX_SUPER = 65535
MAX_RUN = 128  # TCP segments in one super-packet (the C coalescer's iovecs)
MAX_UDP_RUN = 64  # UDP datagrams in one (the kernel's UDP_MAX_SEGMENTS)
_HDR = struct.Struct("<BBHHHH")
_TCP, _UDP = 6, 17
_FIN, _PSH, _CWR = 0x01, 0x08, 0x80


class GsoError(ValueError):
    """The kernel's header or packet cannot be cut as asked (a bug or a kernel
    we do not understand: counted as a drop by the data path)."""


@dataclass(frozen=True)
class VirtioNetHdr:
    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    def encode(self) -> bytes:
        return _HDR.pack(self.flags, self.gso_type, self.hdr_len, self.gso_size,
                         self.csum_start, self.csum_offset)

    @classmethod
    def decode(cls, data: bytes) -> VirtioNetHdr:
        if len(data) < VNET_HDR_LEN:
            raise GsoError(f"virtio-net header of {len(data)} octets, want {VNET_HDR_LEN}")
        return cls(*_HDR.unpack_from(data))


@dataclass(frozen=True)
class _Layout:
    """Where the headers of an IPv4/IPv6 + TCP/UDP packet are."""

    version: int
    l4: int  # offset of the TCP/UDP header
    payload: int  # offset of the payload
    protocol: int


def _layout(packet: bytes) -> _Layout:
    if not packet:
        raise GsoError("empty packet")
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        l4, protocol = (packet[0] & 0x0F) * 4, packet[9]
    elif version == 6 and len(packet) >= 40:
        l4, protocol = 40, packet[6]  # extension headers: never offloaded by lispd's TUN
    else:
        raise GsoError("not an IPv4 or IPv6 packet")
    if protocol == _TCP and len(packet) >= l4 + 20:
        payload = l4 + (packet[l4 + 12] >> 4) * 4
    elif protocol == _UDP and len(packet) >= l4 + 8:
        payload = l4 + 8
    else:
        raise GsoError(f"protocol {protocol} with a short or missing header")
    if payload > len(packet):
        raise GsoError("transport header longer than the packet")
    return _Layout(version, l4, payload, protocol)


def _pseudo_sum(packet: bytes, layout: _Layout, length: int) -> int:
    """The unfolded pseudo-header sum (RFC 793/768/8200) for `length` octets of L4."""
    addresses = packet[12:20] if layout.version == 4 else packet[8:40]
    return csum_add(0, addresses) + layout.protocol + (length >> 16) + (length & 0xFFFF)


def _finish(packet: bytearray, layout: _Layout) -> None:
    """Lengths, IPv4 header checksum and the full L4 checksum of one packet."""
    total = len(packet)
    if layout.version == 4:
        struct.pack_into("!H", packet, 2, total)
        struct.pack_into("!H", packet, 10, 0)
        struct.pack_into("!H", packet, 10, csum_fold(csum_add(0, bytes(packet[:layout.l4]))))
    else:
        struct.pack_into("!H", packet, 4, total - 40)
    l4_length = total - layout.l4
    at = layout.l4 + (16 if layout.protocol == _TCP else 6)
    if layout.protocol == _UDP:
        struct.pack_into("!H", packet, layout.l4 + 4, l4_length)
    struct.pack_into("!H", packet, at, 0)
    check = csum_fold(csum_add(_pseudo_sum(bytes(packet), layout, l4_length),
                               bytes(packet[layout.l4:])))
    if layout.protocol == _UDP and check == 0:
        check = 0xFFFF  # RFC 768: zero means "no checksum"
    struct.pack_into("!H", packet, at, check)


def segment(header: VirtioNetHdr, packet: bytes) -> list[bytes]:
    """What a NIC would send for this TUN read: the packet cut into gso_size
    payloads (or the one packet), every length and checksum made."""
    if header.gso_type == GSO_NONE:
        if not header.flags & NEEDS_CSUM:
            return [packet]
        start, offset = header.csum_start, header.csum_offset
        if start + offset + 2 > len(packet):
            raise GsoError("checksum offset beyond the packet")
        done = bytearray(packet)
        struct.pack_into("!H", done, start + offset, 0)
        # The field held the pseudo-header sum; a zero field plus it is the same.
        # A computed 0 goes out as 0xFFFF (skb_checksum_help; RFC 768 for UDP).
        partial = csum_add(0, packet[start:])
        struct.pack_into("!H", done, start + offset, csum_fold(partial) or 0xFFFF)
        return [bytes(done)]
    layout = _layout(packet)
    wanted = {GSO_TCPV4: (4, _TCP), GSO_TCPV6: (6, _TCP), GSO_UDP_L4: (layout.version, _UDP)}
    if wanted.get(header.gso_type) != (layout.version, layout.protocol):
        raise GsoError(f"gso_type {header.gso_type} does not match the packet")
    if header.gso_size == 0:
        raise GsoError("gso_size 0")
    head, data = packet[:layout.payload], packet[layout.payload:]
    pieces = [data[i:i + header.gso_size] for i in range(0, len(data), header.gso_size)] or [b""]
    out = []
    for index, piece in enumerate(pieces):
        one = bytearray(head + piece)
        if layout.version == 4:
            identification = (struct.unpack_from("!H", head, 4)[0] + index) & 0xFFFF
            struct.pack_into("!H", one, 4, identification)
        if layout.protocol == _TCP:
            sequence = (struct.unpack_from("!I", head, layout.l4 + 4)[0]
                        + index * header.gso_size) & 0xFFFFFFFF
            struct.pack_into("!I", one, layout.l4 + 4, sequence)
            flags = head[layout.l4 + 13]
            if index != len(pieces) - 1:
                flags &= ~(_FIN | _PSH)
            if index != 0:
                flags &= ~_CWR
            one[layout.l4 + 13] = flags
        _finish(one, layout)
        out.append(bytes(one))
    return out


def _flow(packet: bytes, layout: _Layout) -> bytes:
    """What must be equal for two segments to be one super-packet: the IP
    header but for length, ID and checksum; the TCP header but for sequence
    number, flags PSH and checksum; of UDP, the ports."""
    ip = bytearray(packet[:layout.l4])
    if layout.version == 4:
        ip[2:6] = b"\0\0\0\0"
        ip[10:12] = b"\0\0"
    else:
        ip[4:6] = b"\0\0"
    if layout.protocol == _UDP:
        return bytes(ip) + packet[layout.l4:layout.l4 + 4]
    tcp = bytearray(packet[layout.l4:layout.payload])
    tcp[4:8] = b"\0\0\0\0"
    tcp[13] &= ~_PSH & 0xFF
    tcp[16:18] = b"\0\0"
    return bytes(ip + tcp)


def _joinable(run: list[bytes], layout: _Layout, size: int, nxt: bytes) -> bool:
    """Whether segment `nxt` continues `run` (of `size` payload octets each so
    far): the same flow, the next sequence number (TCP), the next IPv4 ID
    (what segmentation gives back), and only the run's last one short (or,
    TCP, pushed)."""
    try:
        other = _layout(nxt)
    except GsoError:
        return False
    first, last = run[0], run[-1]
    if other != layout or _flow(nxt, other) != _flow(first, layout):
        return False
    last_length = len(last) - layout.payload
    tcp = layout.protocol == _TCP
    if last_length != size or (tcp and last[layout.l4 + 13] & _PSH):
        return False
    if layout.version == 4:
        first_id = struct.unpack_from("!H", first, 4)[0]
        if struct.unpack_from("!H", nxt, 4)[0] != (first_id + len(run)) & 0xFFFF:
            return False
    if tcp:
        seq = struct.unpack_from("!I", last, layout.l4 + 4)[0]
        if struct.unpack_from("!I", nxt, layout.l4 + 4)[0] != (seq + last_length) & 0xFFFFFFFF:
            return False
    return 0 < len(nxt) - layout.payload <= size and _whole(nxt, layout)


def _whole(packet: bytes, layout: _Layout) -> bool:
    """No trailing octets past the IP (and UDP) length, and a right checksum:
    a run goes up with its checksum left to the kernel, so a damaged segment
    must not hide in it. A zero UDP checksum is "none" over IPv4 (RFC 768)
    and invalid over IPv6 (RFC 8200 8.1)."""
    if layout.version == 4:
        length = struct.unpack_from("!H", packet, 2)[0]
    else:
        length = 40 + struct.unpack_from("!H", packet, 4)[0]
    if length != len(packet):
        return False
    l4_length = len(packet) - layout.l4
    if layout.protocol == _UDP:
        udp_length, check = struct.unpack_from("!HH", packet, layout.l4 + 4)
        if udp_length != l4_length:
            return False
        if check == 0:
            return layout.version == 4
    return csum_fold(csum_add(_pseudo_sum(packet, layout, l4_length), packet[layout.l4:])) == 0


def _coalescible(packet: bytes, udp: bool) -> _Layout | None:
    try:
        layout = _layout(packet)
    except GsoError:
        return None
    if (layout.protocol == _UDP and not udp) or len(packet) == layout.payload:
        return None
    if layout.version == 4 and packet[6] & 0x3F | packet[7]:  # a fragment
        return None
    if layout.protocol == _TCP and packet[layout.l4 + 13] & ~(0x10 | _PSH) & 0xFF:
        return None  # ACK and PSH only: SYN, FIN, RST, URG, ECE, CWR go alone
    return layout if _whole(packet, layout) else None


def coalesce(packets: list[bytes], *, udp: bool = False) -> list[tuple[VirtioNetHdr, bytes]]:
    """Runs of consecutive segments of one TCP flow (with `udp`, a device
    that took USO, of one UDP flow too) as super-packets (GSO header,
    checksum left partial as the kernel expects); everything else as it
    came, with an empty header."""
    out: list[tuple[VirtioNetHdr, bytes]] = []
    index = 0
    while index < len(packets):
        first = packets[index]
        layout = _coalescible(first, udp)
        run = [first]
        if layout is not None:
            size = len(first) - layout.payload
            total = len(first)
            most = MAX_RUN if layout.protocol == _TCP else MAX_UDP_RUN
            while index + len(run) < len(packets):
                nxt = packets[index + len(run)]
                grown = total + len(nxt) - layout.payload
                if (grown > MAX_SUPER or len(run) == most
                        or not _joinable(run, layout, size, nxt)):
                    break
                run.append(nxt)
                total = grown
        index += len(run)
        if layout is None or len(run) == 1:
            out.append((VirtioNetHdr(), first))
            continue
        out.append(_super(run, layout))
    return out


def _super(run: list[bytes], layout: _Layout) -> tuple[VirtioNetHdr, bytes]:
    tcp = layout.protocol == _TCP
    one = bytearray(run[0][:layout.payload])
    if tcp:
        one[layout.l4 + 13] |= run[-1][layout.l4 + 13] & _PSH
    for packet in run:
        one += packet[layout.payload:]
    total = len(one)
    if layout.version == 4:
        struct.pack_into("!H", one, 2, total)
        struct.pack_into("!H", one, 10, 0)
        struct.pack_into("!H", one, 10, csum_fold(csum_add(0, bytes(one[:layout.l4]))))
    else:
        struct.pack_into("!H", one, 4, total - 40)
    if not tcp:
        struct.pack_into("!H", one, layout.l4 + 4, total - layout.l4)
    # NEEDS_CSUM: the field holds the pseudo-header sum, folded, not complemented.
    partial = _pseudo_sum(bytes(one), layout, total - layout.l4)
    at = 16 if tcp else 6
    struct.pack_into("!H", one, layout.l4 + at, ~csum_fold(partial) & 0xFFFF)
    gso_type = GSO_UDP_L4 if not tcp else GSO_TCPV4 if layout.version == 4 else GSO_TCPV6
    header = VirtioNetHdr(NEEDS_CSUM, gso_type, layout.payload, len(run[0]) - layout.payload,
                          layout.l4, at)
    return header, bytes(one)
