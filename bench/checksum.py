"""Native core micro-bench: the C checksum and header writers against their
Python twins, measured in the same run. Prints a table and writes JSON under
bench/results/.

The data-plane benches (lispd vs kernel VXLAN vs direct veth) come with the
data plane; this one only says what the C core buys over the reference.
"""

from __future__ import annotations

import json
import platform
import random
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from lispd import native
from lispd.wire import inet
from lispd.wire.data import LispDataHeader

ROUNDS = 5
BUDGET_S = 0.2  # per measurement, so the whole bench stays under a minute


def rate(call: Callable[[], object]) -> float:
    """Best calls per second over ROUNDS runs of about BUDGET_S each."""
    best = 0.0
    for _ in range(ROUNDS):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < BUDGET_S:
            for _ in range(64):
                call()
            count += 64
        best = max(best, count / elapsed)
    return best


def main() -> None:
    rng = random.Random(7)
    rows = []
    for size in (64, 1400, 9000, 65535):
        data = rng.randbytes(size)
        c = rate(lambda data=data: native.inet_checksum(data))
        py = rate(lambda data=data: inet.inet_checksum(data))
        rows.append({"what": f"inet_checksum {size} B", "c_per_s": c, "python_per_s": py,
                     "c_gbit_s": c * size * 8 / 1e9})
    header = LispDataHeader(nonce=0x123456, instance_id=77, locator_status_bits=1)
    buf = bytearray(128)
    rows.append({"what": "LISP header write", "c_per_s": rate(
        lambda: native.write_lisp_header(buf, 42, header)),
        "python_per_s": rate(lambda: header.write_into(buf, 42))})
    src, dst = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
    rows.append({"what": "IPv4 header build", "c_per_s": rate(
        lambda: native.write_ipv4_header(buf, 14, src, dst, 1400)),
        "python_per_s": rate(lambda: inet.build_ipv4_header(src, dst, 1400).encode())})
    print(f"{'measurement':<26}{'C calls/s':>14}{'Python calls/s':>16}{'C/Python':>10}")
    for row in rows:
        ratio = row["c_per_s"] / row["python_per_s"]
        row["ratio"] = ratio
        print(f"{row['what']:<26}{row['c_per_s']:>14,.0f}{row['python_per_s']:>16,.0f}"
              f"{ratio:>9.1f}x")
    print("(header writes are dominated by the cffi call itself: the data plane calls C once"
          " per batch, not per header)")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    result = {"machine": platform.node(), "cpu": platform.processor(), "rows": rows,
              "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (out / "checksum.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
