"""A capture of LISP traffic (lispd.pcap) told in time order and in words:
every control message (RFC 9301) by kind, between nodes named by their
RLOCs, and where a numbered stream (lispd.stream) went through the LISP
data plane: the first and last of its packets on each underlay path.

Decoding is lispd.wire's; a datagram it refuses is left out, not guessed at.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import assert_never

from lispd.pcap import Frame
from lispd.wire import DecodeError
from lispd.wire.address import Address, InstanceIdAddress
from lispd.wire.control import LISP_CONTROL_PORT, decode
from lispd.wire.data import HEADER_LENGTH, LISP_DATA_PORT, LispDataHeader
from lispd.wire.inet import Ipv4Header, read_ip_header, read_udp_header
from lispd.wire.messages import (
    EncapsulatedControlMessage,
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
    Message,
)
from lispd.wire.reader import Reader
from lispd.wire.records import Action, MappingRecord

__all__ = ["Line", "StreamPath", "at", "fold", "render", "stream_paths", "timeline"]

IPPROTO_UDP = 17
# A lispd.stream datagram starts with its sequence number, 64 bits big-endian.
_SEQUENCE = struct.Struct("!Q")


@dataclass(frozen=True)
class Line:
    """One thing that happened: when (capture clock, seconds), what kind of
    thing, between which nodes, about which EID prefixes, and the rest."""

    time: float
    kind: str  # "Map-Register", "SMR", "Map-Request (ECM)", ..., or "stream"
    source: str
    destination: str
    eids: tuple[str, ...] = ()
    detail: str = ""

    @property
    def ends(self) -> str:
        return f"{self.source} → {self.destination}"

    @property
    def says(self) -> str:
        return " ".join(part for part in (*self.eids, self.detail) if part)


@dataclass(frozen=True)
class _Udp:
    time: float
    source: str
    destination: str
    source_port: int
    port: int
    """The destination port."""
    payload: bytes

    @property
    def control(self) -> bool:
        """A LISP control message: to the control port, or an answer from it
        (Map-Replies go to the requester's source port)."""
        return self.port == LISP_CONTROL_PORT or (
            self.source_port == LISP_CONTROL_PORT and self.port != LISP_DATA_PORT)


@dataclass(frozen=True)
class StreamPath:
    """The stream packets seen on one underlay path (RLOC to RLOC, named)."""

    source: str
    destination: str
    packets: tuple[tuple[float, int], ...]  # (time, sequence number), in capture order

    @property
    def first(self) -> tuple[float, int]:
        return self.packets[0]

    @property
    def last(self) -> tuple[float, int]:
        return self.packets[-1]


def _udp(frame: Frame, roles: Mapping[str, str]) -> _Udp | None:
    """The UDP datagram a frame carries, its ends named; None for anything else."""
    try:
        reader = Reader(frame.packet)
        ip = read_ip_header(reader)
        protocol = ip.protocol if isinstance(ip, Ipv4Header) else ip.next_header
        if protocol != IPPROTO_UDP:
            return None
        udp = read_udp_header(reader)
    except DecodeError:
        return None
    return _Udp(frame.time, _name(ip.source, roles), _name(ip.destination, roles),
                udp.source_port, udp.destination_port, reader.take(reader.remaining, "UDP payload"))


def _name(address: IPv4Address | IPv6Address, roles: Mapping[str, str]) -> str:
    return roles.get(str(address), str(address))


def _sequence(payload: bytes, stream_port: int) -> int | None:
    """The stream's sequence number in a LISP data payload, if it is the stream's."""
    try:
        LispDataHeader.decode(payload)
        reader = Reader(payload, HEADER_LENGTH)
        ip = read_ip_header(reader)
        protocol = ip.protocol if isinstance(ip, Ipv4Header) else ip.next_header
        if protocol != IPPROTO_UDP or read_udp_header(reader).destination_port != stream_port:
            return None
        (sequence,) = _SEQUENCE.unpack(reader.take(_SEQUENCE.size, "stream sequence number"))
    except DecodeError:
        return None
    return int(sequence)


def stream_paths(frames: Iterable[Frame], roles: Mapping[str, str],
                 stream_port: int) -> list[StreamPath]:
    """Each underlay path the stream's packets took, in the order first used."""
    seen: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for frame in frames:
        udp = _udp(frame, roles)
        if udp is None or udp.port != LISP_DATA_PORT:
            continue
        sequence = _sequence(udp.payload, stream_port)
        if sequence is not None:
            seen.setdefault((udp.source, udp.destination), []).append((udp.time, sequence))
    return [StreamPath(source, destination, tuple(packets))
            for (source, destination), packets in seen.items()]


def timeline(frames: Sequence[Frame], roles: Mapping[str, str], stream_port: int) -> list[Line]:
    """What the capture shows, in time order: the control messages, and where
    the stream's packets began or stopped taking a path (a path that carried
    the stream from its first captured packet, or to its last, is the
    steady state, not an event)."""
    lines = []
    for frame in frames:
        udp = _udp(frame, roles)
        if udp is None or not udp.control:
            continue
        try:
            message = decode(udp.payload)
        except DecodeError:
            continue
        kind, eids, detail = _describe(message)
        lines.append(Line(udp.time, kind, udp.source, udp.destination, eids, detail))
    paths = stream_paths(frames, roles, stream_port)
    if paths:
        lowest = min(path.first[1] for path in paths)
        highest = max(path.last[1] for path in paths)
    for path in paths:
        edges = []
        if path.first[1] > lowest:
            edges.append((path.first, "first packet"))
        if path.last[1] < highest:
            edges.append((path.last, "last packet"))
        if len(edges) == 2 and len(path.packets) == 1:
            edges = [(path.first, "the only packet")]
        for (time, sequence), which in edges:
            lines.append(Line(time, "stream", path.source, path.destination,
                              detail=f"{which} (#{sequence})"))
    return sorted(lines, key=lambda line: line.time)


def fold(lines: Iterable[Line]) -> tuple[list[Line], list[Line]]:
    """(the lines, the repeats): a line that says what an earlier one said
    (a retransmission, a refresh) is a repeat."""
    said: set[tuple[str, str, str]] = set()
    shown: list[Line] = []
    repeats: list[Line] = []
    for line in lines:
        key = (line.kind, line.ends, line.says)
        (repeats if key in said else shown).append(line)
        said.add(key)
    return shown, repeats


def at(time: float, zero: float) -> str:
    """A time as milliseconds after `zero`."""
    return f"{(time - zero) * 1000:+.1f} ms"


def render(lines: Sequence[Line], zero: float,
           notes: Mapping[tuple[str, str, str], str] | None = None) -> list[str]:
    """The lines in aligned columns, each time after `zero`, with the note for
    its (kind, source, destination), if any."""
    notes = notes or {}
    rows = [(at(line.time, zero), line.kind, line.ends, line.says,
             notes.get((line.kind, line.source, line.destination), "")) for line in lines]
    if not rows:
        return []
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return [f"{time:>{widths[0]}}  {kind:<{widths[1]}}  {ends:<{widths[2]}}  "
            f"{says:<{widths[3]}}  {note}".rstrip()
            for time, kind, ends, says, note in rows]


# -- control messages in words ------------------------------------------------


_KINDS = {MapReply: "Map-Reply", MapRegister: "Map-Register", MapNotify: "Map-Notify",
          MapNotifyAck: "Map-Notify-Ack"}


def _describe(message: Message) -> tuple[str, tuple[str, ...], str]:
    """(kind, the EID prefixes it is about, what else it says) of a control message."""
    match message:
        case EncapsulatedControlMessage():
            kind, eids, detail = _describe(message.message)
            return f"{kind} (ECM)", eids, detail
        case MapRequest():
            eids = tuple(_eid(record.eid_prefix, record.mask_len) for record in message.records)
            notes = [note for flag, note in ((message.smr_invoked, "SMR-invoked"),
                                             (any(r.notify for r in message.records), "subscribe"))
                     if flag]
            kind = "SMR" if message.smr else "RLOC-probe" if message.probe else "Map-Request"
            return kind, eids, f"[{', '.join(notes)}]" if notes else ""
        case MapReply() | MapRegister() | MapNotify():
            eids = tuple(_eid(record.eid_prefix, record.mask_len) for record in message.records)
            places = dict.fromkeys(_place(record) for record in message.records)
            return _KINDS[type(message)], eids, "; ".join(places)
        case _:
            assert_never(message)


def _eid(address: Address, mask_len: int) -> str:
    if isinstance(address, InstanceIdAddress):
        inner = _eid(address.address, mask_len)
        return f"[{address.instance_id}]{inner}" if address.instance_id else inner
    return f"{address}/{mask_len}"


def _place(record: MappingRecord) -> str:
    if record.ttl == 0:
        return "withdrawn"
    if record.locators:
        return "at " + " ".join(str(locator.locator) for locator in record.locators)
    return "unregistered" if record.action == Action.NATIVELY_FORWARD else (
        f"without locators ({record.action.name.lower().replace('_', '-')})")
