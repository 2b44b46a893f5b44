"""What Wireshark's dissectors (tshark -T json) make of datagrams we encode,
and what they should make of them, field by field."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from lispd.wire.address import Address, AfiListAddress, InstanceIdAddress, MacAddress
from lispd.wire.messages import (
    EncapsulatedControlMessage,
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
    Message,
)
from lispd.wire.records import EidRecord, MappingRecord

Json = Any
_ADDRESS_KEY_ENDINGS = (".ipv4", "_ipv4", ".ipv6", "_ipv6", ".mac", "loc.locator")


def write_pcap(path: Path, datagrams: list[tuple[int, bytes]]) -> None:
    """One Ethernet/IPv4/UDP frame per (destination port, payload)."""
    frames = [
        Ether() / IP(src="198.18.0.1", dst="198.18.0.2") / UDP(sport=40000, dport=port) / Raw(p)
        for port, p in datagrams
    ]
    wrpcap(str(path), frames)


def dissect(path: Path, *decode_as: str) -> list[Json]:
    """The layers of each frame of a pcap, as tshark -T json has them;
    decode_as: tshark -d rules ("udp.port==4341,lisp-data")."""
    rules = [arg for rule in decode_as for arg in ("-d", rule)]
    result = subprocess.run(
        ["tshark", "-r", str(path), "-T", "json", "--no-duplicate-keys", *rules],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return [frame["_source"]["layers"] for frame in json.loads(result.stdout)]


def as_list(node: Json) -> list[Json]:
    if node is None:
        return []
    return node if isinstance(node, list) else [node]


def walk(node: Json) -> Iterator[tuple[str, Json]]:
    """(key, value) of every leaf under node, in document order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list):
                for item in as_list(value):
                    yield from walk({key: item} if not isinstance(item, dict) else item)
            else:
                yield key, value


def _canonical(text: str) -> str:
    # Wireshark writes ::/96 IPv6 addresses with a dotted tail; Python does not.
    try:
        return str(ip_address(text))
    except ValueError:
        return text.lower()


def addresses_in(node: Json) -> list[str]:
    return [_canonical(v) for k, v in walk(node) if k.endswith(_ADDRESS_KEY_ENDINGS)]


def flat_addresses(address: Address) -> list[str]:
    match address:
        case IPv4Address() | IPv6Address() | MacAddress():
            return [str(address)]
        case InstanceIdAddress(address=inner):
            return flat_addresses(inner)
        case AfiListAddress(addresses=items):
            return [a for item in items for a in flat_addresses(item)]
        case _:
            return []


def instance_ids(address: Address) -> list[str]:
    match address:
        case InstanceIdAddress(instance_id=iid, address=inner):
            return [str(iid), *instance_ids(inner)]
        case AfiListAddress(addresses=items):
            return [i for item in items for i in instance_ids(item)]
        case _:
            return []


def bit(value: bool) -> str:
    return "1" if value else "0"


def colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def check_mapping(ws: Json, record: MappingRecord) -> None:
    assert ws["lisp.mapping.ttl"] == str(record.ttl)
    assert ws["lisp.mapping.loccnt"] == str(len(record.locators))
    assert ws["lisp.mapping.eid.masklen"] == str(record.mask_len)
    assert ws["lisp.mapping.act"] == str(int(record.action))
    assert ws["lisp.mapping.auth"] == bit(record.authoritative)
    assert ws["lisp.mapping.ver"] == str(record.map_version)
    locators = as_list(ws.get("lisp.loc"))
    assert len(locators) == len(record.locators)
    eid_part = {k: v for k, v in ws.items() if k != "lisp.loc"}
    assert addresses_in(eid_part) == flat_addresses(record.eid_prefix)
    assert [v for k, v in walk(eid_part) if k == "lisp.lcaf.iid"] == instance_ids(
        record.eid_prefix
    )
    for ws_loc, loc in zip(locators, record.locators, strict=True):
        assert ws_loc["lisp.loc.priority"] == str(loc.priority)
        assert ws_loc["lisp.loc.weight"] == str(loc.weight)
        assert ws_loc["lisp.loc.multicast_priority"] == str(loc.m_priority)
        assert ws_loc["lisp.loc.multicast_weight"] == str(loc.m_weight)
        flags = ws_loc["lisp.loc.flags_tree"]
        assert flags["lisp.loc.flags.local"] == bit(loc.local)
        assert flags["lisp.loc.flags.probe"] == bit(loc.probed)
        assert flags["lisp.loc.flags.reach"] == bit(loc.reachable)
        assert addresses_in(ws_loc) == flat_addresses(loc.locator)


def check_mappings(ws: Json, records: tuple[MappingRecord, ...]) -> None:
    assert ws["lisp.records"] == str(len(records))
    mappings = as_list(ws.get("lisp.mapping"))
    assert len(mappings) == len(records)
    for ws_record, record in zip(mappings, records, strict=True):
        check_mapping(ws_record, record)


def check_request_record(ws: Json, record: EidRecord) -> None:
    assert ws["lisp.mreq.record.prefix.length"] == str(record.mask_len)
    assert int(ws["lisp.mreq.record.res"], 16) & 0x80 == (0x80 if record.notify else 0)
    assert addresses_in(ws) == flat_addresses(record.eid_prefix)


def check_authenticated(ws: Json, m: MapRegister | MapNotify) -> None:
    assert ws["lisp.nonce"] == f"0x{m.nonce:016x}"
    assert int(ws["lisp.keyid"], 16) == m.key_id
    assert ws["lisp.authlen"] == str(len(m.auth_data))
    assert ws["lisp.auth"] == colon_hex(m.auth_data)
    check_mappings(ws, m.records)
    if m.xtr_id is not None and m.site_id is not None:
        assert ws["lisp.xtrid"] == colon_hex(m.xtr_id.to_bytes(16, "big"))
        assert ws["lisp.siteid"] == colon_hex(m.site_id.to_bytes(8, "big"))


def check_message(layers: Json, lisp: list[Json], m: Message) -> None:
    """Compare message m to the 'lisp' layer(s) Wireshark dissected."""
    ws = lisp[0]
    match m:
        case EncapsulatedControlMessage():
            assert ws["lisp.type"] == "8"
            assert ws["lisp.ecm.flags.sec"] == bit(m.security)
            assert ws["lisp.ecm.flags.ddt"] == bit(m.ddt)
            # Wireshark 4.0 predates RFC 9301's E and M bits: it shows them
            # as the top of its reserved field.
            assert int(ws["lisp.ecm.res"], 16) == (m.to_etr << 25) | (m.to_ms << 24)
            inner_udp = as_list(layers["udp"])[1]
            assert inner_udp["udp.srcport"] == str(m.inner_udp.source_port)
            assert inner_udp["udp.dstport"] == str(m.inner_udp.destination_port)
            inner_ip = as_list(layers.get("ipv6") or layers["ip"])[-1]
            src = inner_ip.get("ip.src") or inner_ip.get("ipv6.src")
            assert _canonical(src) == str(m.inner_ip.source)
            check_message(layers, lisp[1:], m.message)
        case MapRequest():
            assert ws["lisp.type"] == "1"
            flags = ws["lisp.mreq.flags_tree"]
            assert flags["lisp.mreq.flags.auth"] == bit(m.authoritative)
            assert flags["lisp.mreq.flags.mrp"] == bit(m.map_reply_record is not None)
            assert flags["lisp.mreq.flags.probe"] == bit(m.probe)
            assert flags["lisp.mreq.flags.smr"] == bit(m.smr)
            assert flags["lisp.mreq.flags.pitr"] == bit(m.pitr)
            assert flags["lisp.mreq.flags.smri"] == bit(m.smr_invoked)
            # Wireshark 4.0 folds I, L and D into its reserved field.
            expected_res = ((m.xtr_id is not None) << 7) | (m.local_xtr << 1) | m.dont_map_reply
            assert int(ws["lisp.mreq.res"], 16) == expected_res
            assert ws["lisp.irc"] == str(len(m.itr_rlocs) - 1)
            assert ws["lisp.records"] == str(len(m.records))
            assert ws["lisp.nonce"] == f"0x{m.nonce:016x}"
            source = {
                k: v for k, v in ws.items() if k.startswith(("lisp.mreq.srceid", "Source EID"))
            }
            assert addresses_in(source) == flat_addresses(m.source_eid)
            itr = as_list(ws.get("lisp.mreq.itr_rloc"))
            assert [a for node in itr for a in addresses_in(node)] == [
                a for rloc in m.itr_rlocs for a in flat_addresses(rloc)
            ]
            records = as_list(ws.get("lisp.mreq.record"))
            for ws_record, record in zip(records, m.records, strict=True):
                check_request_record(ws_record, record)
            if m.map_reply_record is not None:
                check_mapping(ws["lisp.mrep.record"]["lisp.mapping"], m.map_reply_record)
        case MapReply():
            assert ws["lisp.type"] == "2"
            assert ws["lisp.mrep.flags.probe"] == bit(m.probe)
            assert ws["lisp.mrep.flags.enlr"] == bit(m.echo_nonce_capable)
            assert ws["lisp.mrep.flags.sec"] == bit(m.security)
            assert ws["lisp.nonce"] == f"0x{m.nonce:016x}"
            check_mappings(ws, m.records)
        case MapRegister():
            assert ws["lisp.type"] == "3"
            assert ws["lisp.mreg.flags.pmr"] == bit(m.proxy_reply)
            assert ws["lisp.mreg.flags.sec"] == bit(m.security_capable)
            assert ws["lisp.mreg.flags.xtrid"] == bit(m.xtr_id is not None)
            assert ws["lisp.mreg.flags.wmn"] == bit(m.want_map_notify)
            check_authenticated(ws, m)
        case MapNotifyAck():
            # Wireshark 4.0 names type 5 but does not dissect its body.
            assert ws["lisp.type"] == "5"
        case MapNotify():
            assert ws["lisp.type"] == "4"
            assert ws["lisp.mnot.flags.xtrid"] == bit(m.xtr_id is not None)
            check_authenticated(ws, m)
