"""Hypothesis strategies for every wire type, shared by the property tests
and the Wireshark differential."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st

from lispd.wire.address import (
    NO_ADDRESS,
    Address,
    AfiListAddress,
    InstanceIdAddress,
    MacAddress,
    address_bits,
)
from lispd.wire.auth import KeyId
from lispd.wire.control import encapsulate
from lispd.wire.data import LispDataHeader, VxlanHeader
from lispd.wire.messages import (
    ControlMessage,
    EncapsulatedControlMessage,
    MapNotify,
    MapNotifyAck,
    MapRegister,
    MapReply,
    MapRequest,
    Message,
)
from lispd.wire.records import Action, EidRecord, LocatorRecord, MappingRecord

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, (1 << 64) - 1)
u128 = st.integers(0, (1 << 128) - 1)

ipv4 = st.builds(IPv4Address, u32)
ipv6 = st.builds(IPv6Address, u128)
mac = st.builds(MacAddress, st.binary(min_size=6, max_size=6))
plain_address = st.one_of(ipv4, ipv6, mac)


def instance_id(inner: st.SearchStrategy[Address]) -> st.SearchStrategy[InstanceIdAddress]:
    return st.builds(InstanceIdAddress, u32, inner, u8)


# An EID as it appears in records: a plain address, optionally in an
# Instance-ID LCAF.
eid = st.one_of(plain_address, instance_id(plain_address))
# A locator: plain, or an AFI list of them (what dual-stack RLOCs look like).
locator = st.one_of(
    ipv4, ipv6, st.builds(AfiListAddress, st.lists(plain_address, max_size=3).map(tuple))
)
any_address: st.SearchStrategy[Address] = st.one_of(
    st.just(NO_ADDRESS), eid, locator
)


@st.composite
def eid_prefix(draw: st.DrawFn) -> tuple[Address, int]:
    prefix = draw(eid)
    return prefix, draw(st.integers(0, address_bits(prefix)))


locator_records = st.builds(
    LocatorRecord, locator, u8, u8, u8, u8, st.booleans(), st.booleans(), st.booleans()
)


@st.composite
def mapping_records(draw: st.DrawFn) -> MappingRecord:
    prefix, mask_len = draw(eid_prefix())
    return MappingRecord(
        prefix,
        mask_len,
        tuple(draw(st.lists(locator_records, max_size=4))),
        draw(u32),
        draw(st.sampled_from(Action)),
        draw(st.booleans()),
        draw(st.integers(0, 0xFFF)),
    )


@st.composite
def eid_records(draw: st.DrawFn) -> EidRecord:
    prefix, mask_len = draw(eid_prefix())
    return EidRecord(prefix, mask_len, draw(st.booleans()))


records = st.lists(mapping_records(), max_size=3).map(tuple)
xtr_site = st.one_of(st.just((None, None)), st.tuples(u128, u64))
auth_data = st.sampled_from([0, 1, 2]).flatmap(
    lambda k: st.tuples(
        st.just(k), st.binary(min_size=[0, 20, 32][k], max_size=[0, 20, 32][k])
    )
)


@st.composite
def map_requests(draw: st.DrawFn, itr_rloc: st.SearchStrategy[Address] = locator) -> MapRequest:
    xtr_id, site_id = draw(xtr_site)
    return MapRequest(
        draw(u64),
        tuple(draw(st.lists(itr_rloc, min_size=1, max_size=32))),
        tuple(draw(st.lists(eid_records(), max_size=3))),
        draw(st.one_of(st.just(NO_ADDRESS), eid)),
        *draw(st.tuples(*[st.booleans()] * 7)),
        map_reply_record=draw(st.none() | mapping_records()),
        xtr_id=xtr_id,
        site_id=site_id,
    )


map_replies = st.builds(MapReply, u64, records, st.booleans(), st.booleans(), st.booleans())


@st.composite
def map_registers(draw: st.DrawFn) -> MapRegister:
    key_id, data = draw(auth_data)
    xtr_id, site_id = draw(xtr_site)
    return MapRegister(
        draw(u64), draw(records), key_id, data,
        *draw(st.tuples(*[st.booleans()] * 3)),
        xtr_id=xtr_id, site_id=site_id,
    )


def _notifies(cls: type[MapNotify]) -> st.SearchStrategy[MapNotify]:
    @st.composite
    def build(draw: st.DrawFn) -> MapNotify:
        key_id, data = draw(auth_data)
        xtr_id, site_id = draw(xtr_site)
        return cls(draw(u64), draw(records), key_id, data, xtr_id, site_id)

    return build()


map_notifies = _notifies(MapNotify)
map_notify_acks = _notifies(MapNotifyAck)


def control_messages(
    itr_rloc: st.SearchStrategy[Address] = locator,
) -> st.SearchStrategy[ControlMessage]:
    return st.one_of(
        map_requests(itr_rloc), map_replies, map_registers(), map_notifies, map_notify_acks
    )


_ANY_CONTROL_MESSAGE = control_messages()


@st.composite
def ecms(
    draw: st.DrawFn,
    inner: st.SearchStrategy[ControlMessage] = _ANY_CONTROL_MESSAGE,
    inner_port: st.SearchStrategy[int] = u16,
) -> EncapsulatedControlMessage:
    family = draw(st.sampled_from([ipv4, ipv6]))
    ecm = encapsulate(
        draw(inner),
        draw(family),
        draw(family),
        draw(inner_port),
        draw(inner_port),
        to_ms=draw(st.booleans()),
        to_etr=draw(st.booleans()),
        ttl=draw(u8),
    )
    return ecm




def all_messages(
    itr_rloc: st.SearchStrategy[Address] = locator, inner_port: st.SearchStrategy[int] = u16
) -> st.SearchStrategy[Message]:
    return st.one_of(
        control_messages(itr_rloc), ecms(control_messages(itr_rloc), inner_port)
    )


lisp_data_headers = st.builds(
    LispDataHeader,
    nonce=st.none() | u24,
    instance_id=st.none() | u24,
    key_id=st.integers(0, 3),
).flatmap(
    lambda h: st.builds(
        LispDataHeader,
        nonce=st.just(h.nonce),
        echo_nonce_request=st.booleans() if h.nonce is not None else st.just(False),
        map_versions=st.none() | st.tuples(st.integers(0, 0xFFF), st.integers(0, 0xFFF))
        if h.nonce is None
        else st.none(),
        instance_id=st.just(h.instance_id),
        locator_status_bits=st.none() | (u8 if h.instance_id is not None else u32),
        key_id=st.just(h.key_id),
    )
)
vxlan_headers = st.builds(VxlanHeader, u24)
key_ids = st.sampled_from([KeyId.HMAC_SHA1_96, KeyId.HMAC_SHA256_128])
