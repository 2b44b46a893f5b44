"""Map-Server/Map-Resolver bench: ECM Map-Requests answered per second with 1k,
10k and 100k registered prefixes, and the memory the Map-Server holds.

Everything is in-process (no socket, no network): the sans-IO machine
(lispd.control.mapserver.MapServer) is fed the bytes a socket would hand it.

Per table size:
- registration: random IPv6 prefixes (/48 to /64 inside 2001:db8::/32, the
  documentation range), one record and one RLOC per Map-Register, half of
  them with the proxy-reply (P) bit, each signed with HMAC-SHA-256-128 and
  fed to ``receive`` as the bytes an ETR would send. The memory is what
  tracemalloc sees the Map-Server keep after registering (the payloads
  themselves are built before tracing starts and are not kept by it).
- requests: Encapsulated Map-Requests (RFC 9301 section 5.8) built ahead,
  in three kinds: for a registered EID without P (forwarded to the ETR),
  with P (proxy Map-Reply) and for unregistered space (negative Map-Reply,
  which needs the largest uncovered prefix). Each is followed by a
  ``next_timer()`` call, as the daemon re-arms its timer after every input.
  The rate is the best of three runs of about BUDGET_S / 3 per kind; "mix"
  is the rate of a stream of a quarter forwarded, a quarter proxy and half
  negative requests (the weighted harmonic mean of the three).

Prints a table and writes bench/results/mapserver.json.

    python bench/mapserver.py            # about 35 s
    python bench/mapserver.py --quick    # 1k and 10k only
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
import tracemalloc
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

from lispd.control.mapserver import MapServer, Site
from lispd.mapcache import EidPrefix
from lispd.wire import auth
from lispd.wire.control import encapsulate, encode
from lispd.wire.messages import MapRegister, MapRequest
from lispd.wire.records import EidRecord, LocatorRecord, MappingRecord

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1_000, 10_000, 100_000)
REQUESTS_PER_KIND = 2_000
BUDGET_S = 1.5  # per kind and size
KEY = b"bench-site-key"
SITE_PREFIX = EidPrefix.parse("2001:db8::/32")
ITR_RLOC = IPv4Address("198.18.9.9")
ITR_EID = IPv6Address("2001:db8:ffff:ffff::1")
BASE = int(SITE_PREFIX.address)
LENGTHS = range(48, 65)


def random_prefixes(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """n distinct (address value, length) inside 2001:db8::/32, lengths /48 to /64."""
    seen: set[tuple[int, int]] = set()
    while len(seen) < n:
        length = rng.choice(LENGTHS)
        value = BASE | (rng.getrandbits(96) & ~((1 << (128 - length)) - 1) & ((1 << 96) - 1))
        seen.add((value, length))
    return sorted(seen)


def registers(rng: random.Random, prefixes: list[tuple[int, int]]) -> list[bytes]:
    out = []
    for i, (value, length) in enumerate(prefixes):
        rloc = IPv4Address(0xC6120000 | rng.getrandbits(16))  # 198.18.0.0/16
        record = MappingRecord(IPv6Address(value), length, (LocatorRecord(rloc),), ttl=1440)
        message = MapRegister(i + 1, (record,), proxy_reply=i % 2 == 1, want_map_notify=False)
        out.append(encode(auth.sign(message, KEY, auth.KeyId.HMAC_SHA256_128)))
    return out


def request(eid: IPv6Address, nonce: int) -> bytes:
    inner = MapRequest(nonce, (ITR_RLOC,), (EidRecord(eid, 128),))
    return encode(encapsulate(inner, ITR_EID, eid, source_port=61000, to_ms=True))


def requests(
    rng: random.Random, prefixes: list[tuple[int, int]]
) -> dict[str, list[bytes]]:
    """Pre-built ECM payloads per kind (registered prefix i has P when i is odd)."""
    registered = set(prefixes)
    kinds: dict[str, list[bytes]] = {"forwarded": [], "proxy": [], "negative": []}
    while min(len(v) for v in kinds.values()) < REQUESTS_PER_KIND:
        i = rng.randrange(len(prefixes))
        value, length = prefixes[i]
        host = value | rng.getrandbits(128 - length)
        kind = "proxy" if i % 2 else "forwarded"
        if len(kinds[kind]) < REQUESTS_PER_KIND:
            kinds[kind].append(request(IPv6Address(host), rng.getrandbits(64)))
        # Unregistered: a random address of the site that no prefix covers.
        other = BASE | rng.getrandbits(96)
        if len(kinds["negative"]) < REQUESTS_PER_KIND and not any(
            ((other >> (128 - n)) << (128 - n), n) in registered for n in LENGTHS
        ):
            kinds["negative"].append(request(IPv6Address(other), rng.getrandbits(64)))
    return kinds


def timed(call: Callable[[], int]) -> float:
    """Best rate (calls per second) over three runs of about BUDGET_S / 3."""
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < BUDGET_S / 3:
            count += call()
        best = max(best, count / elapsed)
    return best


def measure(n: int, rng: random.Random) -> dict[str, Any]:
    prefixes = random_prefixes(rng, n)
    payloads = registers(rng, prefixes)
    site = Site("bench", KEY, (SITE_PREFIX,), accept_more_specifics=True)
    ms = MapServer((site,), register_interval=60.0)
    source = IPv4Address("198.18.0.10")

    start = time.perf_counter()
    for payload in payloads:
        ms.receive(payload, source, 4342, 0.0)
    register_s = time.perf_counter() - start
    assert len(ms.registrations()) == n, ms.counters
    del ms

    # Memory: the same registrations again, into a fresh Map-Server, traced.
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    ms = MapServer((site,), register_interval=60.0)
    for payload in payloads:
        ms.receive(payload, source, 4342, 0.0)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del payloads

    kinds = requests(rng, prefixes)
    rates: dict[str, float] = {}
    for kind, batch in kinds.items():
        # Check the kind is what the machine does with it, once.
        counters = dict(ms.counters)
        out = ms.receive(batch[0], ITR_RLOC, 4342, 1.0)
        assert len(out) == 1, (kind, ms.counters)
        counter = {
            "forwarded": "map_request_forwarded",
            "proxy": "proxy_reply",
            "negative": "negative_reply",
        }[kind]
        assert ms.counters.get(counter, 0) == counters.get(counter, 0) + 1, kind

        def run(batch: list[bytes] = batch, ms: MapServer = ms) -> int:
            receive, next_timer = ms.receive, ms.next_timer
            for payload in batch:
                receive(payload, ITR_RLOC, 4342, 1.0)
                next_timer()
            return len(batch)

        # A slow machine (the naive lookup at 100k) gets a smaller batch so a
        # run still fits the budget.
        probe = time.perf_counter()
        run(batch[:20])
        per_call = (time.perf_counter() - probe) / 20
        if per_call * len(batch) > BUDGET_S / 3:
            small = batch[: max(20, int(BUDGET_S / 3 / per_call))]
            rates[kind] = timed(lambda small=small, run=run: run(small))
        else:
            rates[kind] = timed(run)
    mix = 1.0 / (0.25 / rates["forwarded"] + 0.25 / rates["proxy"] + 0.5 / rates["negative"])
    return {
        "prefixes": n,
        "registers_per_s": n / register_s,
        "requests_per_s": {**rates, "mix": mix},
        "memory_bytes": after - before,
        "memory_bytes_per_prefix": (after - before) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k prefixes only")
    args = parser.parse_args()
    rng = random.Random(9437)
    began = time.perf_counter()
    rows = [measure(n, rng) for n in (SIZES[:2] if args.quick else SIZES)]
    print(
        f"{'prefixes':>9}{'registers/s':>13}{'forwarded/s':>13}{'proxy/s':>10}"
        f"{'negative/s':>12}{'mix/s':>9}{'memory MiB':>12}{'B/prefix':>10}"
    )
    for row in rows:
        r = row["requests_per_s"]
        print(
            f"{row['prefixes']:>9,}{row['registers_per_s']:>13,.0f}{r['forwarded']:>13,.0f}"
            f"{r['proxy']:>10,.0f}{r['negative']:>12,.0f}{r['mix']:>9,.0f}"
            f"{row['memory_bytes'] / 2**20:>12.1f}{row['memory_bytes_per_prefix']:>10,.0f}"
        )
    print(
        "registers/s: signed Map-Registers (one record) verified and installed.\n"
        "forwarded/proxy/negative: ECM Map-Requests answered per second (plus a next_timer()"
        " call each); mix: a quarter forwarded, a quarter proxy, half negative.\n"
        "memory: what tracemalloc sees the Map-Server keep for its registrations."
    )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    result = {
        "machine": platform.node(),
        "cpu": platform.processor(),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": time.perf_counter() - began,
        "rows": rows,
    }
    (out / "mapserver.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
