"""Differential against Wireshark: what lispd encodes, tshark decodes to the
same fields (type, flags, nonce, counts, EID prefixes, RLOCs, key ID, VNI)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from lispd.wire.control import encode
from lispd.wire.data import LISP_DATA_PORT, VXLAN_PORT, LispDataHeader, VxlanHeader
from lispd.wire.messages import Message
from tests import strategies as s
from tests.interop import wireshark as ws
from tests.needs import require_program

pytestmark = pytest.mark.interop

BATCH = 40
# Each example is one tshark run over a batch of messages.
# No shrinking: each step would be a tshark run; the failure names the message.
RUNS = settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.generate])


@pytest.fixture(autouse=True)
def _tshark() -> None:
    require_program("tshark", "tshark")


# Wireshark 4.0 decodes ITR-RLOCs of AFI 1 and 2 only (LCAF ones it skips),
# and picks the dissector of an ECM's inner datagram by port: use 4342, as
# real ECMs do, so that a random port does not summon, say, DHCP.
WIRESHARK_MESSAGES = s.all_messages(s.ipv4 | s.ipv6, st.just(4342))


@RUNS
@given(st.lists(WIRESHARK_MESSAGES, min_size=BATCH, max_size=BATCH))
def test_control_messages_agree_with_wireshark(messages: list[Message]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "control.pcap"
        ws.write_pcap(pcap, [(4342, encode(m)) for m in messages])
        frames = ws.dissect(pcap)
    assert len(frames) == len(messages)
    for layers, message in zip(frames, messages, strict=True):
        if "_ws.malformed" in layers:
            raise AssertionError(f"Wireshark: malformed {message!r}: {layers['_ws.malformed']}")
        try:
            ws.check_message(layers, ws.as_list(layers["lisp"]), message)
        except AssertionError as error:
            raise AssertionError(f"{message!r}\n{layers['lisp']!r}") from error


INNER_IP = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2))
INNER_FRAME = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / INNER_IP)


@RUNS
@given(
    st.lists(s.lisp_data_headers, min_size=BATCH, max_size=BATCH),
    st.lists(s.vxlan_headers, min_size=BATCH, max_size=BATCH),
)
def test_data_headers_agree_with_wireshark(
    lisp: list[LispDataHeader], vxlan: list[VxlanHeader]
) -> None:
    datagrams = [(LISP_DATA_PORT, h.encode() + INNER_IP) for h in lisp]
    datagrams += [(VXLAN_PORT, h.encode() + INNER_FRAME) for h in vxlan]
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "data.pcap"
        ws.write_pcap(pcap, datagrams)
        frames = ws.dissect(pcap)
    for layers, header in zip(frames[:BATCH], lisp, strict=True):
        got = layers["lisp-data"]
        flags = got["lisp-data.flags_tree"]
        assert flags["lisp-data.flags.nonce"] == ws.bit(header.nonce is not None)
        assert flags["lisp-data.flags.lsb"] == ws.bit(header.locator_status_bits is not None)
        assert flags["lisp-data.flags.enr"] == ws.bit(header.echo_nonce_request)
        assert flags["lisp-data.flags.mv"] == ws.bit(header.map_versions is not None)
        assert flags["lisp-data.flags.iid"] == ws.bit(header.instance_id is not None)
        if header.nonce is not None:
            assert got["lisp-data.nonce"] == str(header.nonce)
        if header.instance_id is not None:
            assert got["lisp-data.iid"] == str(header.instance_id)
        assert "ip" in layers and len(ws.as_list(layers["ip"])) == 2
    for layers, header in zip(frames[BATCH:], vxlan, strict=True):
        got = layers["vxlan"]
        assert got["vxlan.flags_tree"]["vxlan.flag_i"] == "1"
        assert got["vxlan.vni"] == str(header.vni)
        assert "eth" in layers and len(ws.as_list(layers["eth"])) == 2
