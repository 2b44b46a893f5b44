"""lispd.timeline: captured LISP packets told in words. The frames are built
here: control messages and data packets encoded by lispd.wire, inside IPv4
(or IPv6) and UDP headers packed by hand, as lispd.pcap.read hands them over."""

from __future__ import annotations

import struct
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lispd.pcap import Frame
from lispd.timeline import Line, StreamPath, at, fold, render, stream_paths, timeline
from lispd.wire.address import InstanceIdAddress
from lispd.wire.control import encapsulate, encode
from lispd.wire.data import LispDataHeader, VxlanHeader
from lispd.wire.messages import (
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
    Message,
)
from lispd.wire.records import Action, EidRecord, LocatorRecord, MappingRecord

MS, ONPREM, VM, VM2 = "198.18.1.2", "198.18.2.2", "198.18.3.10", "198.18.5.10"
MOVED_VM, STRANGER = "198.18.4.10", "203.0.113.9"
ROLES = {MS: "ms", ONPREM: "onprem", VM: "vm", MOVED_VM: "vm", VM2: "vm2"}
SERVICE, HOST = "192.0.2.100", "192.0.2.2"
STREAM_PORT = 9000
T0 = 1_700_000_000.0  # a capture clock: seconds since the epoch


def ms(milliseconds: float) -> float:
    """A time on the capture clock, milliseconds after T0."""
    return T0 + milliseconds / 1000


# -- packets, by hand ----------------------------------------------------------------


def _checksum(data: bytes) -> int:
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(source: str, destination: str, payload: bytes, protocol: int = 17,
         fragment: int = 0x4000) -> bytes:
    """An IPv4 header (20 octets, DF unless told otherwise) and its payload."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, fragment, 64, protocol,
                         0, IPv4Address(source).packed, IPv4Address(destination).packed)
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + payload


def ipv6(source: str, destination: str, payload: bytes, next_header: int = 17) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 64,
                       IPv6Address(source).packed, IPv6Address(destination).packed) + payload


def udp(source_port: int, destination_port: int, payload: bytes) -> bytes:
    # Checksum 0 (none, over IPv4): the timeline does not check it.
    return struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload


def control(time: float, source: str, destination: str, message: Message, *,
            source_port: int = 4342, destination_port: int = 4342) -> Frame:
    datagram = udp(source_port, destination_port, encode(message))
    if ":" in source:
        return Frame(time, ipv6(source, destination, datagram))
    return Frame(time, ipv4(source, destination, datagram))


def stream_packet(sequence: int, port: int = STREAM_PORT) -> bytes:
    """What lispd.stream sends: sequence number and send time, padded to 64 octets."""
    payload = struct.pack("!Qd", sequence, 0.0).ljust(64, b"\0")
    return ipv4(HOST, SERVICE, udp(40000, port, payload))


def data(time: float, source: str, destination: str, sequence: int,
         port: int = STREAM_PORT) -> Frame:
    """A LISP data packet (UDP 4341) carrying a stream packet."""
    lisp = LispDataHeader(nonce=0xABCDE, instance_id=0, locator_status_bits=1).encode()
    return Frame(time, ipv4(source, destination,
                            udp(61000, 4341, lisp + stream_packet(sequence, port))))


# -- messages, by lispd.wire ----------------------------------------------------------


def eid(address: str = SERVICE, instance_id: int = 0) -> InstanceIdAddress:
    return InstanceIdAddress(instance_id, ip_address(address))


def record(*rlocs: str, prefix: str = SERVICE, mask_len: int = 32, ttl: int = 1440,
           action: Action = Action.NO_ACTION, instance_id: int = 0) -> MappingRecord:
    return MappingRecord(eid(prefix, instance_id), mask_len,
                         tuple(LocatorRecord(ip_address(rloc)) for rloc in rlocs), ttl, action)


def register(*records: MappingRecord, nonce: int = 1) -> MapRegister:
    return MapRegister(nonce, records, key_id=1, auth_data=bytes(20), want_map_notify=True,
                       xtr_id=7, site_id=1)


def notify(*records: MappingRecord, nonce: int = 1) -> MapNotify:
    return MapNotify(nonce, records, key_id=1, auth_data=bytes(20), xtr_id=7, site_id=1)


def notify_ack(*records: MappingRecord, nonce: int = 1) -> MapNotifyAck:
    return MapNotifyAck(nonce, records, key_id=1, auth_data=bytes(20), xtr_id=7, site_id=1)


def request(prefix: str = SERVICE, itr: str = ONPREM, nonce: int = 2, *, smr: bool = False,
            smr_invoked: bool = False, probe: bool = False,
            subscribe: bool = False) -> MapRequest:
    """A Map-Request for one EID prefix; `subscribe` sets the record's N bit."""
    return MapRequest(nonce, (ip_address(itr),), (EidRecord(eid(prefix), 32, subscribe),),
                      smr=smr, smr_invoked=smr_invoked, probe=probe)


def ecm_request(prefix: str = SERVICE, itr: str = ONPREM, *, smr_invoked: bool = False,
                subscribe: bool = False) -> Message:
    """A Map-Request in an ECM, as an ITR sends it to the Map-Resolver."""
    inner = request(prefix, itr, smr_invoked=smr_invoked, subscribe=subscribe)
    return encapsulate(inner, IPv4Address(itr), IPv4Address(prefix), to_ms=True)


def reply(*records: MappingRecord, nonce: int = 2, probe: bool = False) -> MapReply:
    return MapReply(nonce, records, probe=probe)


def kinds(lines: list[Line]) -> list[tuple[str, str, str]]:
    return [(line.kind, line.source, line.destination) for line in lines]


def one(frame: Frame, roles: dict[str, str] | None = None) -> Line:
    (line,) = timeline([frame], ROLES if roles is None else roles, STREAM_PORT)
    return line


# -- each control message in words ------------------------------------------------------


def test_map_register() -> None:
    line = one(control(T0, VM2, MS, register(record(VM2))))
    assert line == Line(T0, "Map-Register", "vm2", "ms", (f"{SERVICE}/32",), f"at {VM2}")
    assert line.ends == "vm2 → ms"
    assert line.says == f"{SERVICE}/32 at {VM2}"


def test_map_notify_and_map_notify_ack_are_told_apart() -> None:
    lines = timeline([control(T0, MS, VM2, notify(record(VM2))),
                      control(T0 + 0.001, VM2, MS, notify_ack(record(VM2)))], ROLES, STREAM_PORT)
    assert lines == [
        Line(T0, "Map-Notify", "ms", "vm2", (f"{SERVICE}/32",), f"at {VM2}"),
        Line(T0 + 0.001, "Map-Notify-Ack", "vm2", "ms", (f"{SERVICE}/32",), f"at {VM2}"),
    ]


def test_encapsulated_map_request() -> None:
    line = one(control(T0, ONPREM, MS, ecm_request()))
    assert line == Line(T0, "Map-Request (ECM)", "onprem", "ms", (f"{SERVICE}/32",), "")
    assert line.says == f"{SERVICE}/32"


def test_plain_map_request_and_its_flags() -> None:
    assert one(control(T0, ONPREM, VM2, request())).kind == "Map-Request"
    subscribe = one(control(T0, ONPREM, MS, ecm_request(subscribe=True)))
    assert (subscribe.kind, subscribe.detail) == ("Map-Request (ECM)", "[subscribe]")
    invoked = one(control(T0, ONPREM, MS, ecm_request(smr_invoked=True)))
    assert (invoked.kind, invoked.detail) == ("Map-Request (ECM)", "[SMR-invoked]")
    both = one(control(T0, ONPREM, MS, ecm_request(smr_invoked=True, subscribe=True)))
    assert both.detail == "[SMR-invoked, subscribe]"
    assert both.says == f"{SERVICE}/32 [SMR-invoked, subscribe]"


def test_smr_and_rloc_probe() -> None:
    smr = one(control(T0, VM, ONPREM, request(itr=VM, smr=True)))
    assert smr == Line(T0, "SMR", "vm", "onprem", (f"{SERVICE}/32",), "")
    probe = one(control(T0, ONPREM, VM2, request(probe=True)))
    assert (probe.kind, probe.source, probe.destination) == ("RLOC-probe", "onprem", "vm2")
    # The probe's answer is a Map-Reply all the same.
    assert one(control(T0, VM2, ONPREM, reply(record(VM2), probe=True))).kind == "Map-Reply"


def test_map_reply_and_where_it_says_the_eid_is() -> None:
    line = one(control(T0, VM2, ONPREM, reply(record(VM2))))
    assert line == Line(T0, "Map-Reply", "vm2", "onprem", (f"{SERVICE}/32",), f"at {VM2}")
    two = one(control(T0, VM2, ONPREM, reply(record(VM2, VM))))
    assert two.detail == f"at {VM2} {VM}"


def test_negative_and_withdrawn_records() -> None:
    unregistered = reply(record(action=Action.NATIVELY_FORWARD, ttl=15))
    assert one(control(T0, MS, ONPREM, unregistered)).detail == "unregistered"
    ask = reply(record(action=Action.SEND_MAP_REQUEST, ttl=1))
    assert one(control(T0, MS, ONPREM, ask)).detail == "without locators (send-map-request)"
    dropped = reply(record(action=Action.DROP_POLICY_DENIED))
    assert one(control(T0, MS, ONPREM, dropped)).detail == "without locators (drop-policy-denied)"
    withdrawn = register(record(VM, ttl=0))
    assert one(control(T0, VM, MS, withdrawn)).detail == "withdrawn"


def test_several_records_name_every_prefix_and_each_place_once() -> None:
    message = register(record(VM2), record(VM2, prefix="2001:db8::100", mask_len=128),
                       record(VM2, VM, prefix="192.0.2.102"), record(VM, prefix="192.0.2.0",
                                                                     mask_len=26, ttl=0))
    line = one(control(T0, VM2, MS, message))
    assert line.eids == (f"{SERVICE}/32", "2001:db8::100/128", "192.0.2.102/32", "192.0.2.0/26")
    assert line.detail == f"at {VM2}; at {VM2} {VM}; withdrawn"


def test_instance_id_zero_is_left_unsaid_any_other_is_shown() -> None:
    default = one(control(T0, VM2, MS, register(record(VM2))))
    assert default.eids == (f"{SERVICE}/32",)
    tenant = one(control(T0, VM2, MS, register(record(VM2, instance_id=4096))))
    assert tenant.eids == (f"[4096]{SERVICE}/32",)
    plain = MappingRecord(IPv4Address(SERVICE), 32, (LocatorRecord(IPv4Address(VM2)),))
    assert one(control(T0, VM2, MS, register(plain))).eids == (f"{SERVICE}/32",)


def test_an_ecm_carrying_another_message_says_so() -> None:
    inner = encapsulate(register(record(VM2)), IPv4Address(VM2), IPv4Address(MS), to_ms=True)
    line = one(control(T0, VM2, MS, inner))
    assert (line.kind, line.eids, line.detail) == (
        "Map-Register (ECM)", (f"{SERVICE}/32",), f"at {VM2}")


# -- who, when ---------------------------------------------------------------------------


def test_nodes_are_named_by_rloc_and_unknown_rlocs_stay_addresses() -> None:
    assert one(control(T0, MOVED_VM, MS, register(record(MOVED_VM)))).source == "vm"
    stranger = one(control(T0, STRANGER, MS, register(record(STRANGER))))
    assert (stranger.source, stranger.destination) == (STRANGER, "ms")
    nobody = one(control(T0, VM2, MS, register(record(VM2))), roles={})
    assert nobody.ends == f"{VM2} → {MS}"


def test_an_ipv6_underlay_is_named_too() -> None:
    roles = {"2001:db8:ffff::1": "ms", "2001:db8:ffff::5": "vm2"}
    frame = control(T0, "2001:db8:ffff:0::5", "2001:db8:ffff::1", register(record(VM2)))
    assert one(frame, roles).ends == "vm2 → ms"


def test_a_control_message_from_an_ephemeral_port_is_told() -> None:
    # The timeline keys on the destination port.
    frame = control(T0, ONPREM, MS, ecm_request(), source_port=53000)
    assert one(frame).kind == "Map-Request (ECM)"


def test_a_map_reply_to_the_requesters_source_port_is_told() -> None:
    frame = control(T0, VM2, ONPREM, reply(record(VM2)), source_port=4342,
                    destination_port=53000)
    assert kinds(timeline([frame], ROLES, STREAM_PORT)) == [("Map-Reply", "vm2", "onprem")]


def test_lines_come_in_time_order_whatever_the_frame_order() -> None:
    frames = [
        control(T0 + 0.030, VM2, ONPREM, reply(record(VM2))),
        control(T0 + 0.000, VM2, MS, register(record(VM2))),
        control(T0 + 0.020, ONPREM, MS, ecm_request()),
        control(T0 + 0.010, MS, VM2, notify(record(VM2))),
    ]
    lines = timeline(frames, ROLES, STREAM_PORT)
    assert kinds(lines) == [("Map-Register", "vm2", "ms"), ("Map-Notify", "ms", "vm2"),
                            ("Map-Request (ECM)", "onprem", "ms"), ("Map-Reply", "vm2", "onprem")]
    assert [line.time for line in lines] == sorted(frame.time for frame in frames)


def test_lines_at_the_same_time_keep_capture_order() -> None:
    frames = [control(T0, MS, name_rloc, notify(record(VM2))) for name_rloc in (VM2, VM, ONPREM)]
    assert [line.destination for line in timeline(frames, ROLES, STREAM_PORT)] == [
        "vm2", "vm", "onprem"]


def test_at_is_milliseconds_after_zero() -> None:
    assert at(T0 + 0.0015, T0) == "+1.5 ms"
    assert at(T0, T0) == "+0.0 ms"
    assert at(T0 - 0.25, T0) == "-250.0 ms"
    assert at(T0 + 2, T0) == "+2000.0 ms"


def test_render_aligns_columns_and_adds_notes() -> None:
    lines = [
        Line(T0 + 0.0015, "Map-Register", "vm2", "ms", (f"{SERVICE}/32",), f"at {VM2}"),
        Line(T0 + 0.0123, "SMR", "vm", "onprem", (f"{SERVICE}/32",)),
        Line(T0 + 1.5, "stream", "onprem", "vm2", detail="first packet (#7)"),
    ]
    notes = {("SMR", "vm", "onprem"): "look it up again", ("stream", "onprem", "vm2"): "moved"}
    # Columns as wide as their widest cell (10, 12, 12 and 29 here), two spaces apart.
    assert render(lines, T0, notes) == [
        "   +1.5 ms  Map-Register  vm2 → ms" + " " * 6 + f"{SERVICE}/32 at {VM2}",
        "  +12.3 ms  SMR" + " " * 11 + "vm → onprem" + " " * 3 + f"{SERVICE}/32" + " " * 17
        + "look it up again",
        "+1500.0 ms  stream" + " " * 8 + "onprem → vm2  first packet (#7)" + " " * 14 + "moved",
    ]
    assert render(lines[:1], T0) == [f"+1.5 ms  Map-Register  vm2 → ms  {SERVICE}/32 at {VM2}"]
    assert render([], T0) == []


# -- the stream ------------------------------------------------------------------------------


def migration() -> list[Frame]:
    """The stream moving from cloud A to cloud B: onprem sends #0-#6 to vm,
    vm forwards #5 and #6 (which arrived after the move) to vm2, and onprem
    sends #7-#9 to vm2 once it learnt of the move."""
    frames = [data(ms(seq), ONPREM, VM, seq) for seq in range(7)]
    frames += [data(ms(seq + 0.2), VM, VM2, seq) for seq in (5, 6)]
    frames += [data(ms(seq), ONPREM, VM2, seq) for seq in range(7, 10)]
    return sorted(frames, key=lambda frame: frame.time)


def test_stream_paths_in_the_order_first_used() -> None:
    paths = stream_paths(migration(), ROLES, STREAM_PORT)
    assert [(path.source, path.destination) for path in paths] == [
        ("onprem", "vm"), ("vm", "vm2"), ("onprem", "vm2")]
    assert [sequence for _, sequence in paths[0].packets] == list(range(7))
    assert paths[1] == StreamPath("vm", "vm2", ((ms(5.2), 5), (ms(6.2), 6)))
    assert (paths[2].first, paths[2].last) == ((ms(7), 7), (ms(9), 9))


def test_where_the_stream_began_or_stopped_taking_a_path() -> None:
    lines = timeline(migration(), ROLES, STREAM_PORT)
    assert [(line.time, line.kind, line.ends, line.detail) for line in lines] == [
        (ms(5.2), "stream", "vm → vm2", "first packet (#5)"),
        (ms(6), "stream", "onprem → vm", "last packet (#6)"),
        (ms(6.2), "stream", "vm → vm2", "last packet (#6)"),
        (ms(7), "stream", "onprem → vm2", "first packet (#7)"),
    ]
    assert all(line.eids == () for line in lines)


def test_a_path_with_one_packet_in_the_middle_says_so() -> None:
    frames = [data(T0 + 0.001 * seq, ONPREM, VM, seq) for seq in range(5)]
    frames += [data(T0 + 0.0031, VM, VM2, 3)]
    lines = timeline(frames, ROLES, STREAM_PORT)
    assert [(line.ends, line.detail) for line in lines] == [("vm → vm2", "the only packet (#3)")]


def test_a_steady_stream_on_one_path_is_no_event() -> None:
    frames = [data(T0 + 0.001 * seq, ONPREM, VM, seq) for seq in range(20)]
    assert timeline(frames, ROLES, STREAM_PORT) == []
    (path,) = stream_paths(frames, ROLES, STREAM_PORT)
    assert len(path.packets) == 20


def test_other_data_packets_are_not_the_stream() -> None:
    frames = [
        data(T0, ONPREM, VM, 1, port=STREAM_PORT + 1),  # another service's traffic
        Frame(T0, ipv4(ONPREM, VM, udp(61000, 4789,  # VXLAN, not LISP
                                       VxlanHeader(100).encode() + stream_packet(2)))),
        Frame(T0, ipv4(ONPREM, VM, udp(61000, 4341, b"\x80\0\0\1"))),  # truncated LISP header
        Frame(T0, ipv4(ONPREM, VM, udp(61000, 4341, bytes(8) + b"\x45\0"))),  # cut inner IP
        # Inner ICMP, not UDP.
        Frame(T0, ipv4(ONPREM, VM, udp(61000, 4341, bytes(8) + ipv4(HOST, SERVICE, bytes(8),
                                                                      protocol=1)))),
        # Inner UDP to the stream's port, too short for a sequence number.
        Frame(T0, ipv4(ONPREM, VM, udp(61000, 4341,
                                       bytes(8) + ipv4(HOST, SERVICE, udp(1, STREAM_PORT,
                                                                          b"1234")))))
    ]
    assert stream_paths(frames, ROLES, STREAM_PORT) == []
    assert timeline(frames, ROLES, STREAM_PORT) == []


def test_control_and_stream_lines_interleave_by_time() -> None:
    frames = [
        *migration(),
        control(ms(4.5), VM2, MS, register(record(VM2))),
        control(ms(4.7), MS, VM, notify(record(VM2))),
        control(ms(5.0), VM, ONPREM, request(itr=VM, smr=True)),
        control(ms(6.5), ONPREM, MS, ecm_request(smr_invoked=True)),
        control(ms(6.7), VM2, ONPREM, reply(record(VM2))),
    ]
    assert kinds(timeline(frames, ROLES, STREAM_PORT)) == [
        ("Map-Register", "vm2", "ms"), ("Map-Notify", "ms", "vm"), ("SMR", "vm", "onprem"),
        ("stream", "vm", "vm2"), ("stream", "onprem", "vm"), ("stream", "vm", "vm2"),
        ("Map-Request (ECM)", "onprem", "ms"), ("Map-Reply", "vm2", "onprem"),
        ("stream", "onprem", "vm2"),
    ]


# -- folding repeats ----------------------------------------------------------------------------


def test_fold_keeps_the_first_of_each_and_sets_the_repeats_aside() -> None:
    frames = [
        control(T0, VM2, MS, register(record(VM2), nonce=1)),
        control(T0 + 0.001, MS, VM2, notify(record(VM2), nonce=1)),
        control(T0 + 0.002, VM, ONPREM, request(itr=VM, smr=True, nonce=5)),
        control(T0 + 1.002, VM, ONPREM, request(itr=VM, smr=True, nonce=6)),  # SMR resent
        control(T0 + 2.002, VM, ONPREM, request(itr=VM, smr=True, nonce=7)),  # and again
        control(T0 + 60, VM2, MS, register(record(VM2), nonce=2)),  # a refresh
    ]
    shown, repeats = fold(timeline(frames, ROLES, STREAM_PORT))
    assert kinds(shown) == [("Map-Register", "vm2", "ms"), ("Map-Notify", "ms", "vm2"),
                            ("SMR", "vm", "onprem")]
    assert [line.time for line in shown] == [T0, T0 + 0.001, T0 + 0.002]
    assert kinds(repeats) == [("SMR", "vm", "onprem")] * 2 + [("Map-Register", "vm2", "ms")]
    assert [line.time for line in repeats] == [T0 + 1.002, T0 + 2.002, T0 + 60]


def test_fold_tells_apart_direction_kind_and_what_is_said() -> None:
    base = Line(T0, "Map-Notify", "ms", "vm", (f"{SERVICE}/32",), f"at {VM2}")
    different = [
        replace(base, source="vm", destination="ms"),
        replace(base, destination="onprem"),
        replace(base, kind="Map-Notify-Ack"),
        replace(base, eids=("2001:db8::100/128",)),
        replace(base, detail="withdrawn"),
    ]
    shown, repeats = fold([base, *different])
    assert (shown, repeats) == ([base, *different], [])
    again = replace(base, time=T0 + 5)
    assert fold([base, again]) == ([base], [again])
    # Only what is shown counts: the same words from the same ends are a repeat.
    same_words = replace(base, time=T0 + 6, eids=(), detail=f"{SERVICE}/32 at {VM2}")
    assert fold([base, same_words]) == ([base], [same_words])


def test_fold_of_nothing() -> None:
    assert fold([]) == ([], [])


# -- what is not LISP, or not well-formed, is left out -----------------------------------------


def _junk_frames() -> list[Frame]:
    good = encode(register(record(VM2)))
    return [
        Frame(T0, b""),
        Frame(T0, b"\x45"),
        Frame(T0, bytes.fromhex("0001080006040001")),  # ARP, not IP
        Frame(T0, ipv4(VM2, MS, udp(4342, 4342, good))[:-1]),  # cut short by the snap length
        Frame(T0, ipv4(VM2, MS, udp(4342, 4342, good)) + b"\0"),  # trailing octet
        Frame(T0, ipv4(VM2, MS, udp(4342, 4342, good), protocol=6)),  # TCP, not UDP
        Frame(T0, ipv4(VM2, MS, udp(4342, 4342, good), fragment=0x2000)),  # a fragment
        Frame(T0, ipv6("2001:db8::5", "2001:db8::1", udp(4342, 4342, good), 0)),  # hop-by-hop
        Frame(T0, ipv4(VM2, MS, udp(4342, 4341, good))),  # control message to the data port
        Frame(T0, ipv4(VM2, MS, udp(40000, 53, good))),  # neither end the control port
        Frame(T0, ipv4(VM2, MS, udp(4342, 4342, b""))),  # empty datagram
        Frame(T0, ipv4(VM2, MS, udp(4342, 4342, b"\xf0" + bytes(15)))),  # type 15
        Frame(T0, ipv4(VM2, MS, udp(4342, 4342, good[:-3]))),  # truncated Map-Register
        Frame(T0, ipv4(VM2, MS, udp(4342, 4342, good + b"\0"))),  # trailing octet
        Frame(T0, ipv4(ONPREM, MS, udp(4342, 4342, b"\x80" + bytes(3)
                                       + ipv4(ONPREM, SERVICE, udp(4342, 4342, encode(
                                           ecm_request()))))))  # an ECM in an ECM
    ]


def test_malformed_and_unrelated_packets_are_skipped() -> None:
    assert timeline(_junk_frames(), ROLES, STREAM_PORT) == []
    assert stream_paths(_junk_frames(), ROLES, STREAM_PORT) == []


def test_what_is_well_formed_among_junk_is_still_told() -> None:
    frames = _junk_frames()
    frames.insert(5, control(T0 + 0.5, VM2, MS, register(record(VM2))))
    frames.insert(9, data(T0 + 0.6, ONPREM, VM, 3))
    frames.insert(11, data(T0 + 0.7, ONPREM, VM2, 4))
    frames.append(data(T0 + 0.8, ONPREM, VM2, 5))
    lines = timeline(frames, ROLES, STREAM_PORT)
    assert [(line.kind, line.ends, line.detail) for line in lines] == [
        ("Map-Register", "vm2 → ms", f"at {VM2}"),
        ("stream", "onprem → vm", "last packet (#3)"),
        ("stream", "onprem → vm2", "first packet (#4)"),
    ]


@given(st.binary(max_size=120), st.sampled_from([4341, 4342]), st.booleans())
def test_random_datagrams_never_raise(payload: bytes, port: int, over_ipv6: bool) -> None:
    datagram = udp(4342, port, payload)
    packet = ipv6("2001:db8::5", "2001:db8::1", datagram) if over_ipv6 else ipv4(VM2, MS,
                                                                                 datagram)
    lines = timeline([Frame(T0, packet), Frame(T0, payload)], ROLES, STREAM_PORT)
    assert len(lines) <= 2
    assert all(isinstance(line, Line) for line in lines)


@given(st.data())
def test_damaged_control_messages_never_raise(draw: st.DataObject) -> None:
    messages = [encode(register(record(VM2, VM))), encode(ecm_request(subscribe=True)),
                encode(reply(record(VM2))), encode(notify_ack(record(VM2, ttl=0)))]
    message = bytearray(draw.draw(st.sampled_from(messages)))
    for _ in range(draw.draw(st.integers(1, 4))):
        message[draw.draw(st.integers(0, len(message) - 1))] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(message)))
    frame = Frame(T0, ipv4(VM2, MS, udp(4342, 4342, bytes(message[:cut]))))
    lines = timeline([frame], ROLES, STREAM_PORT)
    assert len(lines) <= 1
    assert all(line.kind and line.ends == "vm2 → ms" for line in lines)


# -- as lispd demo calls it ---------------------------------------------------------------------


def test_the_demo_s_account_of_a_migration(capsys: pytest.CaptureFixture[str]) -> None:
    """timeline, fold and render through demo.tell_timeline, with the demo's
    roles, stream port and notes, on a capture of the move made up here."""
    from lispd import clouds, demo  # noqa: PLC0415

    ms, onprem, vm, vm2 = clouds.MS, clouds.ONPREM, clouds.VM_RLOC, clouds.VM2_RLOC
    service = clouds.SERVICE4
    moved_at = T0
    other = "192.0.2.101"  # the VM's own EID: another prefix, counted, not told
    frames = [
        data(T0 - 0.002 + 0.001 * seq, onprem, vm, seq, port=clouds.STREAM_PORT)
        for seq in range(4)
    ] + [
        control(T0 + 0.010, vm2, ms, register(record(vm2, prefix=service))),
        control(T0 + 0.011, ms, vm2, notify(record(vm2, prefix=service))),
        control(T0 + 0.012, ms, vm, notify(record(vm2, prefix=service))),
        control(T0 + 0.013, vm, ms, register(record(vm, prefix=other))),
        control(T0 + 0.020, vm, onprem, request(service, itr=vm, smr=True)),
        control(T0 + 0.021, onprem, ms, ecm_request(service, itr=onprem, smr_invoked=True)),
        control(T0 + 0.022, ms, vm2, ecm_request(service, itr=onprem, smr_invoked=True)),
        control(T0 + 0.023, vm2, onprem, reply(record(vm2, prefix=service))),
        data(T0 + 0.030, onprem, vm2, 4, port=clouds.STREAM_PORT),
        data(T0 + 0.031, onprem, vm2, 5, port=clouds.STREAM_PORT),
        control(T0 + 1.020, vm, onprem, request(service, itr=vm, smr=True, nonce=9)),
    ]
    demo.tell_timeline(timeline(frames, clouds.ROLES, clouds.STREAM_PORT), moved_at)
    told = capsys.readouterr().out.splitlines()
    # The rendered lines are indented by four, the narration by two.
    rows = [row.split() for row in told if row.startswith("    ")]
    assert [row[:3] for row in rows] == [
        ["+1.0", "ms", "stream"], ["+10.0", "ms", "Map-Register"], ["+11.0", "ms", "Map-Notify"],
        ["+12.0", "ms", "Map-Notify"], ["+20.0", "ms", "SMR"], ["+21.0", "ms", "Map-Request"],
        ["+22.0", "ms", "Map-Request"], ["+23.0", "ms", "Map-Reply"], ["+30.0", "ms", "stream"],
    ]
    text = " ".join(" ".join(told).split())
    for note in ("the client's packets to cloud A", "cloud B's VM, reloaded, registers the EID",
                 "cloud A's VM: replaced, it steps aside", "cloud A's VM: look the EID up again",
                 "the gateway asks the mapping system", "which asks cloud B's VM",
                 "which answers", "the client's packets to cloud B"):
        assert note in text, note
    assert "last packet (#3)" in text and "first packet (#4)" in text
    assert "+1020.0 ms … +1020.0 ms: 1 more messages that repeat lines above" in text
    assert "(1 more control messages" in text
