"""The ETR step's new duties, one packet at a time, C and model side by side:
re-encapsulating for EIDs that moved away, proxy-ETR for served ITRs, and
remembering recent ITRs.

(test_fastpath_twin.py holds the C to the model on drawn states; here are
the cases worth spelling out.)
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest

from lispd.dataplane import fastpath
from lispd.dataplane import reference as ref
from lispd.dataplane.tables import Fdb, Fib, FibAction, FibEntry, FibKey, FibLocator
from lispd.dataplane.verdict import Verdict, VerdictKind
from lispd.ffi import ffi, lib
from lispd.wire.inet import Ipv4Header, inet_checksum

IpAddress = IPv4Address | IPv6Address

HERE4, THERE4 = IPv4Address("198.51.100.1"), IPv4Address("198.51.100.2")
ITR4 = IPv4Address("198.51.100.9")
LOCAL = ip_network("10.1.0.0/24")  # this node's EIDs
MOVED = ip_network("10.1.7.0/24")  # were here, now behind THERE4
IID = 7


def ipv4(src: str, dst: str, *, ttl: int = 64, tos: int = 0, size: int = 60,
         trailing: bytes = b"") -> bytes:
    header = Ipv4Header(IPv4Address(src), IPv4Address(dst), size, 17, ttl, tos, 1, 0b010, 0, 0)
    encoded = header.encode()
    encoded = encoded[:10] + struct.pack("!H", inet_checksum(encoded)) + encoded[12:]
    return encoded + bytes(size - 20) + trailing


def lisp(packet: bytes, iid: int = IID) -> bytes:
    return struct.pack("!II", 0x88000001, iid << 8) + packet


class Twins:
    """One C data plane and its model, configured alike."""

    def __init__(self, mapcache: list[tuple[int, str, FibEntry]],
                 database: list[tuple[int, str]], rloc4: IPv4Address = HERE4,
                 mtu: int = 1500, tuns: tuple[int, ...] = (IID,),
                 *, served: tuple[str, ...] = ()) -> None:
        self.mapcache, self.database = Fib(16), Fib(16)
        self.c = fastpath.FastPath(self.mapcache, self.database, Fdb(1))
        self.model = ref.ReferenceDataplane()
        for iid, prefix, entry in mapcache:
            self.mapcache.set(FibKey(iid, ip_network(prefix)), entry)
            self.model.mapcache.set(iid, ip_network(prefix), entry)
        for iid, prefix in database:
            local = FibEntry(FibAction.LOCAL, lsbs=1)
            self.database.set(FibKey(iid, ip_network(prefix)), local)
            self.model.database.set(iid, ip_network(prefix), local)
        self.c.set_underlay(rloc4, None, mtu)
        self.model.set_underlay(rloc4, None, mtu)
        for iid in tuns:
            self.c.add_tun(-1, iid)
            self.model.add_tun(iid)
        self.c.set_served_itrs(tuple(ip_network(prefix) for prefix in served))
        self.model.set_served_itrs(ip_network(prefix) for prefix in served)

    def etr(self, payload: bytes, ttl: int = 64, tos: int = 0, *,
            source: IpAddress | None = ITR4, now_ms: int = 0, nonce: int = 0) -> Verdict:
        got = self.c.etr_process(payload, ttl, tos, source=source, now_ms=now_ms, nonce=nonce)
        want = self.model.etr_process(payload, ttl, tos, source=source, now_ms=now_ms,
                                      nonce=nonce)
        assert got == want
        assert self.c.recent_itrs(0) == self.model.recent_itrs(0)
        return got


def to_there(reencap: bool = True) -> FibEntry:
    return FibEntry(FibAction.ENCAP, (FibLocator(THERE4, 1),), reencap=reencap)


def moved_away(rloc4: IPv4Address = HERE4, mtu: int = 1500) -> Twins:
    return Twins([(IID, str(MOVED), to_there())], [(IID, str(LOCAL))], rloc4=rloc4, mtu=mtu)


# -- re-encapsulation ---------------------------------------------------------


def test_a_packet_for_a_moved_eid_goes_on_where_it_went() -> None:
    twins = moved_away()
    inner = ipv4("10.1.0.5", "10.1.7.7", ttl=30, tos=0xB8 | ref.ECT_0, trailing=b"junk")
    verdict = twins.etr(lisp(inner), ttl=20, tos=ref.CE, nonce=0xABCDEF12, now_ms=5)
    assert verdict.kind is VerdictKind.SEND and verdict.address == THERE4
    outer = verdict.data
    assert outer[12:16] == HERE4.packed and outer[16:20] == THERE4.packed
    assert struct.unpack_from("!H", outer, 22)[0] == 4341
    flags, nonce, word = struct.unpack_from("!B3sI", outer, 28)
    # N + nonce, I + the received instance-id, L: the source is local.
    assert flags == 0x80 | 0x40 | 0x08 and nonce == bytes.fromhex("cdef12")
    assert word == IID << 8 | 1
    moved = outer[36:]
    assert len(moved) == 60  # trailing octets past the IP length left behind
    assert moved[8] == 19  # min(30, 20) less this hop
    assert moved[1] == 0xB8 | ref.CE  # RFC 6040: CE from outside kept
    assert inet_checksum(moved[:20]) == 0
    assert outer[8] == 19 and outer[1] == 0xB8 | ref.CE  # copied outwards
    assert twins.c.recent_itrs(0) == [ITR4]
    assert twins.mapcache.drain_used() == [FibKey(IID, MOVED)]  # in use: keep it fresh


@pytest.mark.parametrize(
    ("mapcache", "why"),
    [
        ([], "no map-cache entry"),
        ([(IID, str(MOVED), to_there(reencap=False))], "an ITR's entry, not one to re-encapsulate"),
        ([(IID, str(MOVED), FibEntry(FibAction.DROP, reencap=True))], "negative"),
        ([(IID, str(MOVED), FibEntry(FibAction.NATIVE, reencap=True))], "native"),
        ([(IID, str(MOVED), FibEntry(FibAction.PUNT, reencap=True))], "unresolved"),
        ([(0, str(MOVED), to_there())], "another instance"),
        ([(IID, "10.1.7.0/25", to_there()), (IID, "10.1.7.0/26", to_there(False))],
         "a more specific entry says no"),
    ],
)
def test_no_open_relay(mapcache: list[tuple[int, str, FibEntry]], why: str) -> None:
    twins = Twins(mapcache, [(IID, str(LOCAL))], tuns=(0, IID))
    verdict = twins.etr(lisp(ipv4("10.9.0.1", "10.1.7.7")))
    assert verdict.reason == "not_local_eid", why
    assert twins.c.recent_itrs(0) == []  # dropped: nobody to solicit
    # Nor was any map-cache entry used: outsiders cannot keep them refreshed.
    assert twins.mapcache.drain_used() == [] and not twins.model.mapcache.drain_used()
    assert twins.c.counters()["drop_not_local_eid"] == 0  # steps count nothing


@pytest.mark.parametrize(("inner_ttl", "outer_ttl", "result"),
                         [(64, 2, 1), (2, 64, 1), (1, 64, None), (64, 1, None), (0, 0, None),
                          (255, 255, 254)])
def test_re_encapsulation_is_a_hop(inner_ttl: int, outer_ttl: int, result: int | None) -> None:
    twins = moved_away()
    verdict = twins.etr(lisp(ipv4("10.9.0.1", "10.1.7.7", ttl=inner_ttl)), ttl=outer_ttl)
    if result is None:
        assert verdict.reason == "ttl_expired"
    else:
        assert verdict.kind is VerdictKind.SEND and verdict.data[36 + 8] == result


def test_two_nodes_pointing_at_each_other_cannot_loop_a_packet_forever() -> None:
    a = moved_away(rloc4=HERE4)
    b = Twins([(IID, str(MOVED), FibEntry(FibAction.ENCAP, (FibLocator(HERE4, 1),),
                                          reencap=True))], [], rloc4=THERE4)
    payload = lisp(ipv4("10.9.0.1", "10.1.7.7", ttl=255))
    hops, node, ttl = 0, a, 255
    while True:
        verdict = node.etr(payload, ttl=ttl)
        if verdict.kind is not VerdictKind.SEND:
            break
        hops += 1
        payload, ttl = verdict.data[28:], verdict.data[8]
        node = b if node is a else a
    assert verdict.reason == "ttl_expired"
    assert hops == 254


def test_a_re_encapsulation_that_does_not_fit_is_dropped_without_icmp() -> None:
    twins = moved_away(mtu=1500)
    fits = ipv4("10.9.0.1", "10.1.7.7", size=1500 - 36)
    assert twins.etr(lisp(fits)).kind is VerdictKind.SEND
    too_big = ipv4("10.9.0.1", "10.1.7.7", size=1500 - 35)
    assert twins.etr(lisp(too_big)).reason == "too_big"


def test_a_locator_of_a_family_without_rloc() -> None:
    there6 = IPv6Address("2001:db8:ff00::2")
    twins = Twins([(IID, str(MOVED), FibEntry(FibAction.ENCAP, (FibLocator(there6, 1),),
                                              reencap=True))], [])
    assert twins.etr(lisp(ipv4("10.9.0.1", "10.1.7.7"))).reason == "no_rloc"


def test_outer_ce_on_a_not_ect_packet_is_dropped_before_re_encapsulation() -> None:
    twins = moved_away()
    assert twins.etr(lisp(ipv4("10.9.0.1", "10.1.7.7")), tos=ref.CE).reason == "ecn"


# -- proxy-ETR (RFC 6832) -----------------------------------------------------


def petr(*served: str) -> Twins:
    return Twins([(IID, str(MOVED), to_there())], [(IID, str(LOCAL))], served=served)


@pytest.mark.parametrize("served", [("198.51.100.0/24",), ("2001:db8::/32", "198.51.100.9/32"),
                                    ("0.0.0.0/0",), ("198.51.100.8/31",)])
def test_a_proxy_etr_forwards_what_its_itrs_send_to_non_eids(served: tuple[str, ...]) -> None:
    twins = petr(*served)
    inner = ipv4("10.1.0.5", "203.0.113.9", ttl=30)
    verdict = twins.etr(lisp(inner), ttl=20)
    assert verdict.kind is VerdictKind.WRITE and verdict.index == 0
    assert verdict.data[8] == 20 and verdict.data[12:] == inner[12:]  # the outer TTL, once
    assert twins.c.recent_itrs(0) == [ITR4]


@pytest.mark.parametrize(("served", "source"), [
    ((), ITR4),
    (("198.51.100.0/30",), ITR4),
    (("198.51.100.8/32",), ITR4),
    (("::/0",), ITR4),
    (("0.0.0.0/0",), None),  # no outer source known: no proxy
])
def test_a_proxy_etr_is_no_open_relay_for_others(served: tuple[str, ...],
                                                  source: IPv4Address | None) -> None:
    twins = petr(*served)
    verdict = twins.etr(lisp(ipv4("10.1.0.5", "203.0.113.9")), source=source)
    assert verdict.reason == "not_local_eid"


def test_a_proxy_etr_still_sends_on_what_moved_away() -> None:
    verdict = petr("0.0.0.0/0").etr(lisp(ipv4("10.9.0.1", "10.1.7.7")))
    assert verdict.kind is VerdictKind.SEND and verdict.address == THERE4


def test_served_itr_prefixes_are_bounded() -> None:
    fast = fastpath.FastPath(Fib(1), Fib(1), Fdb(1))
    many = tuple(ip_network(f"198.51.100.{i}/32") for i in range(fastpath.SERVED_ITRS + 1))
    with pytest.raises(fastpath.FastPathError, match="at most 16"):
        fast.set_served_itrs(many)
    fast.set_served_itrs(many[:-1])


def test_the_c_side_refuses_a_prefix_with_host_bits() -> None:
    fast = fastpath.FastPath(Fib(1), Fib(1), Fdb(1))
    key = ffi.new("struct lispd_fib_key *")
    key.family, key.prefix_len = lib.LISPD_FAMILY_IPV4, 24
    key.prefix[0:4] = [198, 51, 100, 1]
    assert lib.lispd_dp_set_served_itrs(fast._dp, key, 1) == -1
    key.prefix[3] = 0
    assert lib.lispd_dp_set_served_itrs(fast._dp, key, 1) == 0
    key.prefix_len = 33
    assert lib.lispd_dp_set_served_itrs(fast._dp, key, 1) == -1


# -- recent ITRs ---------------------------------------------------------------


def itr(i: int) -> IpAddress:
    return IPv4Address(0xC0000200 + i) if i % 3 else IPv6Address((0x20010DB8 << 96) + i)


def test_recent_itrs_are_those_whose_packets_were_taken_in() -> None:
    twins = moved_away()
    local = lisp(ipv4("10.9.0.1", "10.1.0.1"))
    moved = lisp(ipv4("10.9.0.1", "10.1.7.1"))
    assert twins.etr(local, source=itr(1), now_ms=100).kind is VerdictKind.WRITE
    assert twins.etr(moved, source=itr(2), now_ms=200).kind is VerdictKind.SEND
    # Dropped ones are not remembered; nor is a packet of unknown source.
    assert twins.etr(lisp(ipv4("10.9.0.1", "10.5.0.1")), source=itr(3), now_ms=300).reason
    assert twins.etr(local[:20], source=itr(4), now_ms=300).reason == "truncated"
    assert twins.etr(local, source=None, now_ms=400).kind is VerdictKind.WRITE
    assert twins.c.recent_itrs(0) == [itr(2), itr(1)]
    assert twins.c.recent_itrs(150) == [itr(2)]
    assert twins.c.recent_itrs(201) == []
    # Seen again: moves to the front, with its new time.
    twins.etr(local, source=itr(1), now_ms=500)
    assert twins.c.recent_itrs(300) == [itr(1)]
    assert twins.c.recent_itrs(0) == [itr(1), itr(2)]


def test_the_recent_itr_table_is_bounded_and_forgets_the_least_recent() -> None:
    assert fastpath.RECENT_ITRS == ref.RecentItrs().limit == 256
    twins = moved_away()
    local = lisp(ipv4("10.9.0.1", "10.1.0.1"))
    for i in range(1, 257):  # full, with ties on the ms
        twins.etr(local, source=itr(i), now_ms=1000 + i // 2)
    assert len(twins.c.recent_itrs(0)) == 256
    twins.etr(local, source=itr(1), now_ms=2000)  # refreshed: no longer the oldest
    for i in range(257, 300):  # 43 newcomers replace the 43 least recent
        twins.etr(local, source=itr(i), now_ms=3000)
    recent = twins.c.recent_itrs(0)
    assert len(recent) == 256 and len(set(recent)) == 256
    assert itr(1) in recent
    assert not {itr(i) for i in range(2, 45)} & set(recent)
    assert {itr(i) for i in range(45, 300)} <= set(recent)
    assert recent[:43] == [itr(i) for i in range(299, 256, -1)]  # latest first
    # Churn well past the bound: it stays the bound, C and model alike.
    for i in range(300, 1300):
        twins.etr(local, source=itr(i % 700), now_ms=4000 + i % 5)
    assert len(twins.c.recent_itrs(0)) == 256


def test_a_miss_carries_its_packet() -> None:
    twins = Twins([], [(0, "10.1.0.0/16")], tuns=(0,))
    packet = ipv4("10.1.0.1", "10.9.0.1", size=48)
    got = twins.c.itr_process(0, packet + b"trailing", 1)
    want = twins.model.itr_process(0, packet + b"trailing", 1)
    assert got == want
    assert got.kind is VerdictKind.MISS and got.data == packet
    assert got.address == IPv4Address("10.9.0.1")
