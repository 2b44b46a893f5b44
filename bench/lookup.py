"""FIB lookup bench: longest-prefix-match lookups per second in the C table
with 1k / 100k / 1M random IPv4 prefixes (/8../32, so 25 distinct lengths:
a lookup probes up to 25 of them) and random destinations, plus 1M /24s
(one length: one probe), and the table's memory per entry. Prints a table
and writes JSON under bench/results/.

Two measurements per table:
- through cffi, one lispd_fib_lookup call per destination from Python, as
  lispd.dataplane.tables does. The same call with family 0 (refused before
  any probe) is timed too: the cffi + loop overhead; the difference is an
  estimate of the C lookup alone as seen from Python: it includes the
  cache and TLB misses that a C loop overlaps across consecutive lookups.
- in one C loop: the header has no batch lookup, so the bench compiles
  native/fib.c (with its hash index) a second time, with the same flags, together with a small
  loop (a private cffi module in a temporary directory; skipped when no
  compiler is at hand). This is the number the fast path sees.
"""

from __future__ import annotations

import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lispd.ffi import ffi, lib

ROOT = Path(__file__).resolve().parent.parent
# (prefixes, shortest, longest length)
TABLES = ((1_000, 8, 32), (100_000, 8, 32), (1_000_000, 8, 32), (1_000_000, 24, 24))
DESTINATIONS = 100_000
BUDGET_S = 0.5  # per timed loop

LOOP_SOURCE = r"""
#include "lispd_native.h"

struct lispd_fib *bench_new(uint32_t limit) { return lispd_fib_new(limit); }
void bench_free(struct lispd_fib *fib) { lispd_fib_free(fib); }

/* prefixes: n records of 4 address octets + 1 length octet. */
uint32_t bench_fill(struct lispd_fib *fib, const uint8_t *prefixes, uint32_t n)
{
    struct lispd_fib_key key = {0};
    struct lispd_fib_entry entry = {0};
    entry.action = LISPD_ACT_ENCAP;
    entry.n_locators = 1;
    entry.locators[0].family = LISPD_FAMILY_IPV4;
    key.family = LISPD_FAMILY_IPV4;
    for (uint32_t i = 0; i < n; i++) {
        for (int j = 0; j < 4; j++)
            key.prefix[j] = prefixes[5 * i + j];
        key.prefix_len = prefixes[5 * i + 4];
        if (lispd_fib_set(fib, &key, &entry) != 0)
            return i;
    }
    return n;
}

/* Look up n 4-octet addresses, rounds times over; returns the hits. */
uint64_t bench_lookup(struct lispd_fib *fib, const uint8_t *addresses, uint32_t n,
                      uint32_t rounds)
{
    uint64_t hits = 0;
    for (uint32_t r = 0; r < rounds; r++)
        for (uint32_t i = 0; i < n; i++)
            hits += lispd_fib_lookup(fib, 0, LISPD_FAMILY_IPV4, addresses + 4 * i, 0) != 0;
    return hits;
}
"""

LOOP_CDEF = """
struct lispd_fib;
struct lispd_fib *bench_new(uint32_t limit);
void bench_free(struct lispd_fib *fib);
uint32_t bench_fill(struct lispd_fib *fib, const uint8_t *prefixes, uint32_t n);
uint64_t bench_lookup(struct lispd_fib *fib, const uint8_t *addresses, uint32_t n,
                      uint32_t rounds);
"""


def build_loop(workdir: Path) -> Any | None:
    """The private module: native/fib.c + the loop above, or None."""
    try:
        from cffi import FFI  # noqa: PLC0415 - only this bench needs the builder

        builder = FFI()
        builder.cdef(LOOP_CDEF)
        builder.set_source(
            "_lispd_bench_lookup", LOOP_SOURCE,
            sources=[str(ROOT / "native" / name) for name in ("fib.c", "hashindex.c")],
            include_dirs=[str(ROOT / "native")],
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                                "-Werror"],
        )
        builder.compile(tmpdir=str(workdir), verbose=False)
        sys.path.insert(0, str(workdir))
        import _lispd_bench_lookup  # type: ignore[import-not-found]  # noqa: PLC0415

        return _lispd_bench_lookup
    except Exception as error:  # a bench without a compiler still runs
        print(f"(no C loop: {error.__class__.__name__}: {error})")
        return None


def random_prefixes(rng: random.Random, n: int, shortest: int, longest: int) -> bytes:
    out = bytearray(5 * n)
    for i in range(n):
        length = rng.randint(shortest, longest)
        address = rng.getrandbits(32) & (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
        out[5 * i : 5 * i + 4] = address.to_bytes(4, "big")
        out[5 * i + 4] = length
    return bytes(out)


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    import resource  # noqa: PLC0415

    return pages * resource.getpagesize()


def formula_bytes_per_entry(size: int, limit: int) -> float:
    """From native/fib.c: a node is the entry, three 64-bit key words and a
    32-bit queue position (8-aligned); a 4-byte queue cell per node; 8-byte
    index slots, a power of two >= 32 and >= 2 x size; nodes allocated by
    doubling from 16, capped at limit."""
    node = (ffi.sizeof("struct lispd_fib_entry") + 3 * 8 + 4 + 7) // 8 * 8
    slots = 32
    while slots < 2 * size:
        slots *= 2
    cap = 16
    while cap < size:
        cap *= 2
    cap = min(cap, limit)
    return ((node + 4) * cap + 8 * slots) / max(size, 1)


def timed(call: Any, n_per_call: int) -> float:
    """Best rate (items per second) over three runs of about BUDGET_S."""
    best = 0.0
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < BUDGET_S / 3:
            call()
            count += n_per_call
        best = max(best, count / elapsed)
    return best


def cffi_fill(fib: Any, prefixes: bytes) -> None:
    key = ffi.new("struct lispd_fib_key *")
    entry = ffi.new("struct lispd_fib_entry *")
    entry.action = lib.LISPD_ACT_ENCAP
    entry.n_locators = 1
    entry.locators[0].family = 4
    key.family = 4
    prefix = key.prefix
    fib_set = lib.lispd_fib_set
    for i in range(0, len(prefixes), 5):
        prefix[0], prefix[1], prefix[2], prefix[3], key.prefix_len = prefixes[i : i + 5]
        if fib_set(fib, key, entry) != 0:
            raise RuntimeError("lispd_fib_set failed")


def main() -> None:
    rng = random.Random(9300)
    destinations = rng.randbytes(4 * DESTINATIONS)
    c_destinations = ffi.new("uint8_t[]", destinations)
    pointers = [c_destinations + 4 * i for i in range(DESTINATIONS)]
    null = ffi.NULL
    lookup = lib.lispd_fib_lookup
    with tempfile.TemporaryDirectory(prefix="lispd-bench-") as tmp:
        loop = build_loop(Path(tmp))
        rows = []
        for n, shortest, longest in TABLES:
            prefixes = random_prefixes(rng, n, shortest, longest)
            before = rss_bytes()
            start = time.perf_counter()
            fib = ffi.gc(lib.lispd_fib_new(n), lib.lispd_fib_free)
            cffi_fill(fib, prefixes)
            fill_s = time.perf_counter() - start
            size = lib.lispd_fib_size(fib)
            rss_per_entry = (rss_bytes() - before) / size

            def lookups(fib: Any = fib) -> None:
                for p in pointers:
                    lookup(fib, 0, 4, p, null)

            def empty_calls(fib: Any = fib) -> None:
                for p in pointers:
                    lookup(fib, 0, 0, p, null)  # family 0: refused at once

            hits = sum(lookup(fib, 0, 4, p, null) != null for p in pointers)
            cffi_rate = timed(lookups, DESTINATIONS)
            empty_rate = timed(empty_calls, DESTINATIONS)
            c_only_ns = max(1e9 / cffi_rate - 1e9 / empty_rate, 0.0)
            del fib
            row: dict[str, Any] = {
                "prefixes": n, "lengths": f"/{shortest}-/{longest}", "entries": size,
                "hit_ratio": hits / DESTINATIONS,
                "cffi_fill_per_s": size / fill_s, "cffi_lookups_per_s": cffi_rate,
                "cffi_empty_calls_per_s": empty_rate, "cffi_minus_empty_ns": c_only_ns,
                "rss_bytes_per_entry": rss_per_entry,
                "formula_bytes_per_entry": formula_bytes_per_entry(size, n),
            }
            if loop is not None:
                table = ffi_loop_table(loop, n, prefixes)
                c_dest = loop.ffi.from_buffer("uint8_t[]", destinations)
                c_hits = loop.lib.bench_lookup(table, c_dest, DESTINATIONS, 1)
                assert c_hits == hits, (c_hits, hits)  # same prefixes, same answers
                row["c_loop_lookups_per_s"] = timed(
                    lambda t=table, d=c_dest: loop.lib.bench_lookup(t, d, DESTINATIONS, 1),
                    DESTINATIONS)
                loop.lib.bench_free(table)
            rows.append(row)
    print(f"{'prefixes':>10}{'lengths':>9}{'entries':>10}{'hits':>6}{'C loop/s':>13}{'cffi/s':>12}"
          f"{'empty call/s':>14}{'Δ ns':>7}{'B/entry':>9}{'(RSS)':>8}")
    for row in rows:
        c_loop = row.get("c_loop_lookups_per_s")
        print(f"{row['prefixes']:>10,}{row['lengths']:>9}{row['entries']:>10,}{row['hit_ratio']:>6.0%}"
              f"{c_loop or 0:>13,.0f}{row['cffi_lookups_per_s']:>12,.0f}"
              f"{row['cffi_empty_calls_per_s']:>14,.0f}{row['cffi_minus_empty_ns']:>7.0f}"
              f"{row['formula_bytes_per_entry']:>9.0f}{row['rss_bytes_per_entry']:>8.0f}")
    print("cffi/s: one Python-level cffi call per lookup. The per-call cffi + loop overhead"
          " (the empty call: same arguments, family 0) is paid per lookup and dominates"
          " whenever few lengths are probed. 'Δ ns' = cffi time minus empty-call time: the C"
          " lookup plus the cache and TLB misses that a C loop overlaps across lookups and a"
          " call from Python cannot.\n"
          "C loop/s: native/fib.c compiled again with a C loop around lispd_fib_lookup: what"
          " the batched fast path sees.\n"
          f"B/entry: formula from native/fib.c (sizeof struct lispd_fib_entry ="
          f" {ffi.sizeof('struct lispd_fib_entry')}); RSS: measured growth while filling.")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    result = {"machine": platform.node(), "cpu": platform.processor(), "rows": rows,
              "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (out / "lookup.json").write_text(json.dumps(result, indent=2) + "\n")


def ffi_loop_table(loop: Any, n: int, prefixes: bytes) -> Any:
    table = loop.lib.bench_new(n)
    filled = loop.lib.bench_fill(table, loop.ffi.from_buffer("uint8_t[]", prefixes), n)
    if filled != n:
        raise RuntimeError(f"bench_fill stopped at {filled}")
    return table


if __name__ == "__main__":
    main()
