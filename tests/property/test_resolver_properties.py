"""Properties of the ITR machines under random input and time (hypothesis).

Resolver: whatever happens, the queues stay within their bounds, every
packet that missed is released at most once, in arrival order per EID, or
counted as dropped; Map-Requests for one EID are at least a second apart and
all of them stay within the token bucket; and once the answers stop, every
request is given up in bounded time.

RLOC prober: only locators of entries in use are probed, never more pairs
than the cap, marking never moves an entry's expiry, and the map-cache says
what the prober believes.
"""

from __future__ import annotations

from collections import Counter
from ipaddress import IPv4Address
from itertools import count

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from lispd.control.events import Output
from lispd.control.probing import RlocProber
from lispd.control.resolver import Resolver, ResolverLimits
from lispd.mapcache import EidPrefix, Installed, Locator, MapCache, MapEntry
from lispd.wire.control import decode, encode
from lispd.wire.messages import EncapsulatedControlMessage, MapReply, MapRequest
from lispd.wire.records import LocatorRecord, MappingRecord

MR = (IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2"))
ITR = IPv4Address("198.18.1.10")
ETR = IPv4Address("198.18.2.20")
EIDS = [IPv4Address(f"192.0.2.{i}") for i in (1, 2, 130)] + [IPv4Address("198.51.100.1")]
PER_EID, TOTAL, RATE, BURST = 3, 5, 4.0, 3

miss = st.tuples(st.just("miss"), st.integers(0, len(EIDS) - 1), st.booleans())
wait = st.tuples(st.just("wait"), st.floats(0.0, 3.0))
answer = st.tuples(
    st.just("answer"),
    st.integers(0, 50),  # which nonce seen so far (modulo)
    st.sampled_from([32, 25, 24, 0]),  # answer prefix length around the asked EID
    st.integers(0, 2),  # TTL in minutes
    st.booleans(),  # negative
)
garbage = st.tuples(st.just("garbage"), st.binary(max_size=40))
steps = st.lists(st.one_of(miss, wait, answer, garbage), max_size=60)


def _sends(out: Output) -> list[tuple[int, EidPrefix]]:
    found = []
    for d in out.datagrams:
        ecm = decode(d.payload)
        assert isinstance(ecm, EncapsulatedControlMessage)
        request = ecm.message
        assert isinstance(request, MapRequest)
        (record,) = request.records
        assert isinstance(record.eid_prefix, IPv4Address)
        found.append((request.nonce, EidPrefix(0, record.eid_prefix, record.mask_len)))
    return found


@given(steps)
def test_resolver_invariants(script: list[tuple[object, ...]]) -> None:
    cache = MapCache(8)
    nonces = count(1)
    limits = ResolverLimits(
        queue_per_eid=PER_EID, queue_total=TOTAL, request_rate=RATE, request_burst=BURST,
        max_attempts=3,
    )
    resolver = Resolver(cache, MR, (ITR,), nonces=lambda: next(nonces), limits=limits)
    now = 0.0
    packet_ids = count()
    offered: list[tuple[int, bytes]] = []  # (EID index, packet)
    released: list[bytes] = []
    sent: list[tuple[float, int, EidPrefix]] = []

    def take(out: Output, at: float) -> None:
        released.extend(r.packet for r in out.released)
        sent.extend((at, nonce, key) for nonce, key in _sends(out))

    for step in script:
        match step:
            case ("miss", int(index), bool(with_packet)):
                packet = None
                if with_packet:
                    packet = next(packet_ids).to_bytes(4, "big")
                    offered.append((index, packet))
                take(resolver.miss(0, EIDS[index], packet, now), now)
            case ("wait", float(dt)):
                now += dt
                when = resolver.next_timer()
                while when is not None and when <= now:
                    take(resolver.timer(when), when)
                    later = resolver.next_timer()
                    assert later is None or later > when  # progress, no busy loop
                    when = later
            case ("answer", int(pick), int(length), int(ttl), bool(negative)):
                if not sent:
                    continue
                _, nonce, key = sent[pick % len(sent)]
                prefix = EidPrefix.of(0, key.address, min(length, key.length))
                locators = () if negative else (LocatorRecord(ETR),)
                record = MappingRecord(prefix.address, prefix.length, locators, ttl=ttl)
                take(resolver.receive(encode(MapReply(nonce, (record,))), ETR, 4342, now), now)
            case ("garbage", bytes(data)):
                take(resolver.receive(data, ETR, 4342, now), now)
        pending = resolver.pending()
        assert all(p.queued <= PER_EID for p in pending)
        assert sum(p.queued for p in pending) == resolver.queued_packets <= TOTAL
        assert len({p.prefix for p in pending}) == len(pending)

    # Quiet: with no more answers every request is given up within bounded time.
    for _ in range(200):
        when = resolver.next_timer()
        if when is None or not resolver.pending():
            break
        now = max(now, when)
        take(resolver.timer(now), now)
    assert resolver.pending() == () and resolver.queued_packets == 0

    event(f"released some: {bool(released)}, gave up: {'resolution_failed' in resolver.counters}")
    # Conservation: every packet is released at most once, or counted as dropped.
    counts = Counter(released)
    assert all(n == 1 for n in counts.values())
    c = resolver.counters
    dropped = c.get("queue_overflow", 0) + c.get("queued_dropped", 0)
    assert len(released) + dropped == len(offered)
    # Per EID, packets leave in the order they came.
    position = {packet: i for i, packet in enumerate(released)}
    for index in range(len(EIDS)):
        mine = [position[p] for i, p in offered if i == index and p in position]
        assert mine == sorted(mine)
    # Rate limits: one request per EID per second; the token bucket overall.
    last: dict[EidPrefix, float] = {}
    for at, _, key in sent:
        assert key not in last or at - last[key] >= 1.0 - 1e-9
        last[key] = at
    times = [at for at, _, _ in sent]
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= BURST + RATE * (times[j] - times[i]) + 1e-6


# -- the RLOC prober ------------------------------------------------------------

LOCATORS = [IPv4Address(f"198.18.3.{i}") for i in range(1, 5)]
PREFIXES = [EidPrefix.parse(p) for p in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/25")]
MAX_PROBED = 4

prober_steps = st.lists(
    st.one_of(
        st.tuples(st.just("used"), st.sets(st.integers(0, len(PREFIXES) - 1))),
        st.tuples(st.just("wait"), st.floats(0.0, 2.0), st.sets(st.sampled_from(LOCATORS))),
        st.tuples(st.just("refresh"), st.integers(0, len(PREFIXES) - 1), st.booleans()),
        st.tuples(st.just("withdraw"), st.integers(0, len(PREFIXES) - 1)),
        st.tuples(st.just("garbage"), st.binary(max_size=30)),
    ),
    max_size=50,
)


def _entry(index: int, up: bool = True) -> MapEntry:
    locators = (LOCATORS[index], LOCATORS[(index + 1) % len(LOCATORS)])
    return MapEntry(PREFIXES[index], tuple(Locator(a, up=up) for a in locators), 100.0)


@given(prober_steps)
def test_prober_invariants(script: list[tuple[object, ...]]) -> None:
    cache = MapCache(10)
    for index in range(len(PREFIXES)):
        cache.insert(_entry(index), 0.0)
    expiry = {prefix: 100.0 for prefix in PREFIXES}
    nonces = count(1)
    prober = RlocProber(
        cache, (ITR,), interval=0.5, timeout=0.25, misses=2, nonces=lambda: next(nonces),
        idle_timeout=3.0, max_probed=MAX_PROBED,
    )
    now = 0.0
    last_used: dict[EidPrefix, float] = {}

    def check(out: Output, at: float) -> None:
        for d in out.datagrams:
            probe = decode(d.payload)
            assert isinstance(probe, MapRequest) and probe.probe
            (record,) = probe.records
            assert isinstance(record.eid_prefix, IPv4Address)
            prefix = EidPrefix(0, record.eid_prefix, record.mask_len)
            entry = cache.get(prefix)
            assert entry is not None and d.destination in {loc.address for loc in entry.locators}
            assert at - last_used[prefix] < 3.0  # only entries in use are probed
        for change in out.changes:
            # Marking up or down never moves an entry's expiry.
            assert isinstance(change, Installed)
            assert change.entry.expires_at == pytest.approx(expiry[change.entry.prefix])

    def run(answering: set[IPv4Address], until: float) -> None:
        while (when := prober.next_timer()) is not None and when <= until:
            out = prober.timer(when)
            check(out, when)
            for d in out.datagrams:
                if d.destination in answering:
                    reply = encode(MapReply(decode_nonce(d.payload), (), probe=True))
                    check(prober.receive(reply, d.destination, 4342, when), when)

    for step in script:
        match step:
            case ("used", set() as indices):
                chosen = [PREFIXES[i] for i in indices]
                prober.used(chosen, now)
                last_used.update(dict.fromkeys(chosen, now))
                run(set(), now)
            case ("wait", float(dt), set() as answering):
                run(answering, now + dt)
                now += dt
            case ("refresh", int(index), bool(up)):
                cache.insert(_entry(index, up), now)
                expiry[PREFIXES[index]] = now + 100.0
                if PREFIXES[index] in last_used:
                    prober.used((PREFIXES[index],), now)
                    last_used[PREFIXES[index]] = now
                run(set(), now)
            case ("withdraw", int(index)):
                cache.withdraw(PREFIXES[index])
            case ("garbage", bytes(data)):
                assert prober.receive(data, LOCATORS[0], 4342, now).changes == ()
        states = prober.state()
        assert len(states) <= MAX_PROBED
        for state in states:
            entry = cache.get(state.prefix)
            if entry is not None and state.prefix in last_used:
                # What the prober believes is what the data plane is told.
                (locator,) = [loc for loc in entry.locators if loc.address == state.locator]
                assert locator.up == state.up
    marked = ("locator_down" in prober.counters, "locator_up" in prober.counters)
    event(f"marked down, up: {marked}")


def decode_nonce(payload: bytes) -> int:
    probe = decode(payload)
    assert isinstance(probe, MapRequest)
    return probe.nonce
