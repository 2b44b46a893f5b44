"""The batched C fast path (native/steps.c, native/batch.c), typed.

`FastPath` owns a `struct lispd_dp` over the forwarding tables of
lispd.dataplane.tables. The daemon calls the *_batch methods from the event
loop when a descriptor is readable; each moves up to LISPD_BATCH packets in
one C call. The *_process methods run one step on one packet without I/O:
tests use them to hold the C against its Python twin.

Missed packets come back to Python (`Miss.packet`) so that the daemon can
queue them while it resolves the EID and send them with `itr_send` once the
mapping is in. `recent_itrs` names the ITRs whose packets the ETR took in:
whom to solicit (SMR) when a local mapping changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from lispd.dataplane.entries import FibKey, IPNetwork
from lispd.dataplane.tables import Fdb, Fib, key_in
from lispd.dataplane.verdict import Verdict, VerdictKind
from lispd.ffi import buffer_in, constants, ffi, lib

IpAddress = IPv4Address | IPv6Address

BATCH: int = lib.LISPD_BATCH
HEADROOM: int = lib.LISPD_HEADROOM
BUFFER: int = lib.LISPD_BUFFER
RECENT_ITRS: int = lib.LISPD_RECENT_ITRS
VNET_HDR: int = lib.LISPD_VNET_HDR
GSO_SENDERS: int = lib.LISPD_GSO_SENDERS
SERVED_ITRS: int = lib.LISPD_MAX_SERVED_ITRS
_MAX_SEGMENTS = 65536
DROP_REASONS: dict[int, str] = {
    value: name for value, name in constants("LISPD_DROP_").items() if name != "count"
}
COUNTERS = (
    "itr_packets",
    "itr_bytes",
    "etr_packets",
    "etr_bytes",
    "etr_reencap_packets",
    "etr_reencap_bytes",
    "vxlan_tx_packets",
    "vxlan_tx_bytes",
    "vxlan_rx_packets",
    "vxlan_rx_bytes",
    "flood_copies",
    "misses",
    "icmp_too_big",
    "icmp_too_big_bytes",
    "fdb_learned",
    "fdb_learn_full",
    "batches",
    "super_reads",
    "gso_trains",
    "gso_segments",
    "gso_fallbacks",
    "gro_trains",
    "gro_segments",
    "super_writes",
    "super_segments",
)


class FastPathError(Exception):
    """The fast path refused a setting (our fault: a bug or a limit)."""


@dataclass(frozen=True, slots=True)
class Miss:
    """A packet to an EID the map-cache has nothing for: the EID is Python's
    to resolve, the packet (the inner IP packet, as long as its header says)
    Python's to hold until then (or drop)."""

    instance_id: int
    address: IpAddress
    packet: bytes


def _family(address: IpAddress) -> int:
    return int(lib.LISPD_FAMILY_IPV6 if address.version == 6 else lib.LISPD_FAMILY_IPV4)


def _address(family: int, raw: Any) -> IpAddress:
    length = 16 if family == lib.LISPD_FAMILY_IPV6 else 4
    return ip_address(bytes(ffi.buffer(raw, length)))


def _locator(address: IpAddress, cdata: Any) -> None:
    cdata.family = _family(address)
    ffi.memmove(cdata.address, address.packed, len(address.packed))


class FastPath:
    """One data plane: its devices, underlay and counters."""

    def __init__(self, mapcache: Fib, database: Fib, fdb: Fdb) -> None:
        # The tables must outlive the C object that points at them.
        self._tables = (mapcache, database, fdb)
        handle = lib.lispd_dp_new(mapcache.handle, database.handle, fdb.handle)
        if handle == ffi.NULL:
            raise MemoryError("lispd_dp_new")
        self._dp: Any = ffi.gc(handle, lib.lispd_dp_free)
        self._counters: Any = lib.lispd_dp_counters(self._dp)
        self._misses: Any = ffi.new("struct lispd_miss[]", BATCH)
        self._n_misses: Any = ffi.new("uint32_t *")
        self._verdict: Any = ffi.new("struct lispd_verdict *")
        self._outer: Any = ffi.new("struct lispd_outer *")
        self._recent: Any = ffi.new("struct lispd_locator[]", RECENT_ITRS)

    def seed(self, seed: int) -> None:
        lib.lispd_dp_seed(self._dp, seed)

    def set_underlay(
        self,
        rloc4: IPv4Address | None,
        rloc6: IPv6Address | None,
        mtu: int,
        raw4_fd: int = -1,
        raw6_fd: int = -1,
    ) -> None:
        lib.lispd_dp_set_underlay(
            self._dp,
            buffer_in(rloc4.packed) if rloc4 else ffi.NULL,
            buffer_in(rloc6.packed) if rloc6 else ffi.NULL,
            mtu,
            raw4_fd,
            raw6_fd,
        )

    def add_tun(self, fd: int, instance_id: int) -> int:
        index: int = lib.lispd_dp_add_tun(self._dp, fd, instance_id)
        if index < 0:
            raise FastPathError(f"cannot add a TUN for instance-id {instance_id}")
        return index

    def add_segment(self, fd: int, vni: int, local: IpAddress, learning: bool) -> int:
        index: int = lib.lispd_dp_add_segment(
            self._dp, fd, vni, _family(local), buffer_in(local.packed), int(learning)
        )
        if index < 0:
            raise FastPathError(f"cannot add VXLAN segment {vni}")
        return index

    def set_vnet(self, layer: int, index: int, on: bool, *, udp: bool = False) -> None:
        """The device (layer 3: TUN index, 2: segment index) carries
        virtio-net headers: super-packets in, coalesced writes out (UDP ones
        too with `udp`: the kernel took USO on it)."""
        mode = 0 if not on else 2 if udp else 1
        if lib.lispd_dp_set_vnet(self._dp, layer, index, mode) < 0:
            raise FastPathError(f"no layer-{layer} device {index}")

    def set_train_senders(self, version: int, senders: list[tuple[int, int]]) -> None:
        """(fd, bound port) of the UDP sockets trains of the outer family
        leave by; [] for none (and ports from the flow hash again)."""
        if len(senders) > GSO_SENDERS:
            raise FastPathError(f"{len(senders)} train senders, at most {GSO_SENDERS}")
        fds = ffi.new("int[]", [fd for fd, _ in senders] or [0])
        ports = ffi.new("uint16_t[]", [port for _, port in senders] or [0])
        family = lib.LISPD_FAMILY_IPV6 if version == 6 else lib.LISPD_FAMILY_IPV4
        if lib.lispd_dp_set_gso_senders(self._dp, family, fds, ports, len(senders)) < 0:
            raise FastPathError(f"cannot set IPv{version} train senders")

    def set_flood(self, segment: int, peers: tuple[IpAddress, ...]) -> None:
        array = ffi.new("struct lispd_locator[]", max(len(peers), 1))
        for slot, peer in zip(array, peers, strict=False):
            _locator(peer, slot)
        if lib.lispd_dp_set_flood(self._dp, segment, array, len(peers)) < 0:
            raise FastPathError(f"cannot set {len(peers)} flood peers on segment {segment}")

    def set_served_itrs(self, served: tuple[IPNetwork, ...]) -> None:
        """The RLOC prefixes of the ITRs this node is the proxy-ETR of."""
        if len(served) > SERVED_ITRS:
            raise FastPathError(f"{len(served)} served ITR prefixes, at most {SERVED_ITRS}")
        keys = ffi.new("struct lispd_fib_key[]", max(len(served), 1))
        for slot, prefix in zip(keys, served, strict=False):
            key_in(FibKey(0, prefix), slot)
        if lib.lispd_dp_set_served_itrs(self._dp, keys, len(served)) < 0:
            raise FastPathError(f"cannot serve ITRs {', '.join(map(str, served))}")

    # -- I/O, one batch per call ------------------------------------------

    def itr_batch(self, tun: int) -> tuple[int, list[Miss]]:
        """Packets read (or -1) and one Miss per missed packet, in order."""
        moved: int = lib.lispd_itr_batch(self._dp, tun, self._misses, BATCH, self._n_misses)
        # The packets live in the C batch buffers until the next batch call:
        # copied out here, before anything else can run.
        misses = [
            Miss(
                miss.instance_id,
                _address(miss.family, miss.address),
                bytes(ffi.buffer(miss.packet, miss.length)),
            )
            for miss in self._misses[0 : self._n_misses[0]]
        ]
        return moved, misses

    def itr_send(self, tun: int, packet: bytes) -> VerdictKind:
        """Send a packet that waited for its mapping, as if just read from
        TUN tun: SEND (sent), WRITE (too big: ICMP answer written to the
        TUN), MISS (still no mapping: counted as drop_miss) or DROP (counted
        by reason, send and write errors included)."""
        kind: int = lib.lispd_itr_inject(self._dp, tun, buffer_in(packet), len(packet),
                                         self._verdict)
        return VerdictKind(kind)

    def etr_batch(self, udp_fd: int, now_ms: int) -> int:
        """now_ms: the clock recent_itrs is asked with."""
        moved: int = lib.lispd_etr_batch(self._dp, udp_fd, now_ms)
        return moved

    def recent_itrs(self, since_ms: int) -> list[IpAddress]:
        """The ITRs whose packets the ETR took in (wrote to a TUN or
        re-encapsulated) at or after since_ms, most recent first; at most
        RECENT_ITRS are remembered."""
        n: int = lib.lispd_dp_recent_itrs(self._dp, since_ms, self._recent, RECENT_ITRS)
        return [_address(slot.family, slot.address) for slot in self._recent[0:n]]

    def vxlan_tx_batch(self, segment: int) -> int:
        moved: int = lib.lispd_vxlan_tx_batch(self._dp, segment)
        return moved

    def vxlan_rx_batch(self, udp_fd: int, now_ms: int) -> int:
        moved: int = lib.lispd_vxlan_rx_batch(self._dp, udp_fd, now_ms)
        return moved

    def counters(self) -> dict[str, int]:
        """Every counter, drops as drop_<reason>."""
        values = {name: int(getattr(self._counters, name)) for name in COUNTERS}
        for value, reason in DROP_REASONS.items():
            values[f"drop_{reason}"] = int(self._counters.drops[value])
        return values

    # -- one step on one packet (tests) -----------------------------------

    def _verdict_of(self, buf: bytearray) -> Verdict:
        v = self._verdict
        kind = VerdictKind(v.verdict)
        if kind is VerdictKind.DROP:
            return Verdict(kind, reason=DROP_REASONS[v.reason])
        data = bytes(buf[v.offset : v.offset + v.length])
        if kind is VerdictKind.MISS:
            return Verdict(
                kind, data=data, instance_id=v.instance_id, address=_address(v.family, v.address)
            )
        address = _address(v.family, v.address) if kind is VerdictKind.SEND else None
        return Verdict(kind, data=data, index=v.index, address=address)

    def _headroomed(self, packet: bytes) -> tuple[bytearray, Any]:
        buf = bytearray(HEADROOM) + bytearray(packet) + bytearray(1280)
        return buf, ffi.from_buffer("uint8_t[]", buf)

    def itr_process(self, tun: int, packet: bytes, nonce: int) -> Verdict:
        buf, c = self._headroomed(packet)
        lib.lispd_itr_process(self._dp, tun, c, len(buf), HEADROOM, len(packet), nonce,
                              self._verdict)
        return self._verdict_of(buf)

    def etr_process(
        self,
        payload: bytes,
        outer_ttl: int,
        outer_tos: int,
        *,
        source: IpAddress | None = None,
        now_ms: int = 0,
        nonce: int = 0,
    ) -> Verdict:
        """source: the outer source, remembered as a recent ITR when the
        packet is taken in (None: not remembered); nonce: for a
        re-encapsulation."""
        buf, c = self._headroomed(payload)
        outer = self._outer
        outer.ttl, outer.tos = outer_ttl, outer_tos
        outer.family = 0 if source is None else _family(source)
        if source is not None:
            ffi.memmove(outer.source, source.packed, len(source.packed))
        lib.lispd_etr_process(self._dp, c, len(buf), HEADROOM, len(payload), outer, now_ms,
                              nonce, self._verdict)
        return self._verdict_of(buf)

    def vxlan_tx_process(self, segment: int, frame: bytes) -> Verdict:
        buf, c = self._headroomed(frame)
        lib.lispd_vxlan_tx_process(self._dp, segment, c, len(buf), HEADROOM, len(frame),
                                   self._verdict)
        return self._verdict_of(buf)

    def vxlan_encap(self, segment: int, frame: bytes, peer: IpAddress) -> Verdict:
        buf, c = self._headroomed(frame)
        locator = ffi.new("struct lispd_locator *")
        _locator(peer, locator)
        lib.lispd_vxlan_encap(self._dp, segment, c, len(buf), HEADROOM, len(frame), locator,
                              self._verdict)
        return self._verdict_of(buf)

    def vxlan_rx_process(self, payload: bytes, source: IpAddress, now_ms: int) -> Verdict:
        buf = bytearray(payload)
        lib.lispd_vxlan_rx_process(self._dp, ffi.from_buffer("uint8_t[]", buf), len(buf),
                                   _family(source), buffer_in(source.packed), now_ms,
                                   self._verdict)
        return self._verdict_of(buf)


class OffloadError(ValueError):
    """The C offload routines refused a packet (header and packet disagree)."""


def gso_segment(vnet_header: bytes, packet: bytes, l3: int = 0) -> list[bytes]:
    """lispd_gso_segment: what the fast path cuts one TUN (l3 0) or TAP
    (l3 14) read into; twin of lispd.dataplane.gso.segment."""
    if len(vnet_header) != VNET_HDR:
        raise OffloadError(f"virtio-net header of {len(vnet_header)} octets")
    room = len(packet) * 3 + 65536
    out = ffi.new("uint8_t[]", room)
    lengths = ffi.new("uint32_t[]", _MAX_SEGMENTS)
    n: int = lib.lispd_gso_segment(buffer_in(vnet_header), buffer_in(packet), len(packet), l3,
                                   out, room, lengths, _MAX_SEGMENTS)
    if n < 0:
        raise OffloadError("header and packet disagree" if n == -1 else "no room")
    pieces, at = [], 0
    for length in lengths[0:n]:
        pieces.append(bytes(ffi.buffer(out + at, length)))
        at += length
    return pieces


def gro_coalesce(packets: list[bytes], l3: int = 0, *,
                 udp: bool = False) -> list[tuple[bytes, bytes]]:
    """lispd_gro_coalesce: (virtio-net header, packet) as the ETR writes
    them; twin of lispd.dataplane.gso.coalesce."""
    data = bytearray(b"".join(packets))
    room = len(data) + VNET_HDR * len(packets) + 1
    out = ffi.new("uint8_t[]", room)
    lengths = ffi.new("uint32_t[]", max(len(packets), 1))
    n: int = lib.lispd_gro_coalesce(ffi.from_buffer("uint8_t[]", data),
                                    ffi.new("uint32_t[]", [len(p) for p in packets] or [0]),
                                    len(packets), l3, int(udp), out, room, lengths)
    if n < 0:
        raise OffloadError("no room")
    outputs, at = [], 0
    for length in lengths[0:n]:
        whole = bytes(ffi.buffer(out + at, length))
        outputs.append((whole[:VNET_HDR], whole[VNET_HDR:]))
        at += length
    return outputs
